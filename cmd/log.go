package cmd

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/fatih/color"
	"github.com/refetch/refetch/fetch"
	"github.com/refetch/refetch/resilience"
)

// Logger is the one formatter of stderr lines: retries, warnings, the
// final error, and -v request/response lines with secrets redacted.
type Logger struct {
	mu      sync.Mutex
	w       io.Writer
	quiet   bool
	verbose bool
	color   bool
	tty     bool
	cd      *countdown
	yellow  *color.Color
	red     *color.Color
	dim     *color.Color
	green   *color.Color
	// status is a live line (a batch's progress) kept below the log
	// lines; "" when there is none.
	status string
	// warned, when not nil, holds the warnings written so far, each of
	// which is then written once (see dedupe).
	warned map[string]bool
}

// NewLogger returns a logger for w. Color is used when wanted is true.
func NewLogger(w io.Writer, quiet, verbose, wantColor bool) *Logger {
	return newLogger(w, quiet, verbose, wantColor, false)
}

// newLogger also says whether w is a terminal, which enables progress.
func newLogger(w io.Writer, quiet, verbose, wantColor, tty bool) *Logger {
	return &Logger{w: w, quiet: quiet, verbose: verbose && !quiet, color: wantColor, tty: tty,
		yellow: paint(wantColor, color.FgYellow), red: paint(wantColor, color.FgRed, color.Bold),
		dim: paint(wantColor, color.Faint), green: paint(wantColor, color.FgGreen)}
}

// paint returns a color that is on only when enabled, whatever the
// package-wide defaults of fatih/color say.
func paint(enabled bool, a ...color.Attribute) *color.Color {
	c := color.New(a...)
	if enabled {
		c.EnableColor()
	} else {
		c.DisableColor()
	}
	return c
}

// UseColor decides whether stderr gets color: --color always or auto on a
// terminal, and never when NO_COLOR is set (non-empty) or TERM is dumb.
func UseColor(mode string, tty bool, getenv func(string) string) bool {
	if getenv("NO_COLOR") != "" {
		return false
	}
	switch mode {
	case "always":
		return true
	case "never":
		return false
	}
	return tty && getenv("TERM") != "dumb"
}

func (l *Logger) line(s string) {
	l.stopCountdown()
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.status != "" {
		fmt.Fprint(l.w, "\r\x1b[K")
	}
	fmt.Fprintln(l.w, s)
	if l.status != "" {
		fmt.Fprint(l.w, l.status)
	}
}

// FormatDuration renders a wait for humans: "250ms", "1.2s", "1m30s".
func FormatDuration(d time.Duration) string {
	switch {
	case d < time.Second:
		return d.Round(time.Millisecond).String()
	case d < time.Minute:
		return d.Round(100 * time.Millisecond).String()
	}
	return d.Round(time.Second).String()
}

// Retry logs one retry: "attempt 1/3: 503 Service Unavailable; retrying in 1.2s".
func (l *Logger) Retry(info resilience.RetryInfo) { l.RetryFor("", info) }

// RetryFor logs one retry of the named target (several checks run at once).
// Attempts without a count limit (check --wait, Attempts 0) show no "/N".
func (l *Logger) RetryFor(target string, info resilience.RetryInfo) {
	if l.quiet {
		return
	}
	msg := fmt.Sprintf("attempt %d", info.Attempt)
	if info.Attempts > 0 {
		msg += fmt.Sprintf("/%d", info.Attempts)
	}
	if target != "" {
		msg = target + ": " + msg
	}
	step, why := nextStep(info.Err)
	msg += fmt.Sprintf(": %s; %s in %s", describe(info.Err), step, FormatDuration(info.Wait))
	switch {
	case info.RetryAfter >= 0 && info.QuotaReset:
		msg += " (the server's quota for this caller resets then)"
	case info.RetryAfter >= 0:
		msg += fmt.Sprintf(" (Retry-After %s)", FormatDuration(info.RetryAfter))
	}
	if why != "" {
		msg += ": " + printable(fetch.Redact(why))
	}
	l.line(l.yellow.Sprint(msg))
	if target == "" {
		// One countdown line only makes sense for one thing waiting.
		l.startCountdown(info)
	}
}

// Hold logs a wait for a key's hold: a Retry-After that an earlier run
// (here or on another machine sharing the store) recorded.
func (l *Logger) Hold(h resilience.HoldInfo) {
	if l.quiet {
		return
	}
	until := resilience.ClockTime(h.Until, time.Now())
	switch {
	case h.Quota:
		l.line(l.yellow.Sprintf("%s: the server's quota for this caller is spent until %s; waiting %s",
			printable(fetch.Redact(h.Key)), until, FormatDuration(h.Wait)))
	case h.Own:
		l.line(l.yellow.Sprintf("%s asked for no requests until %s (its Retry-After on this run's last response); waiting %s",
			printable(fetch.Redact(h.Key)), until, FormatDuration(h.Wait)))
	default:
		l.line(l.yellow.Sprintf("%s asked for no requests until %s (a Retry-After or a spent quota seen by an earlier run); waiting %s",
			printable(fetch.Redact(h.Key)), until, FormatDuration(h.Wait)))
	}
}

// HeldInBatch logs that a batch's URLs of h's key wait for its hold
// while the other URLs go on.
func (l *Logger) HeldInBatch(h *resilience.HoldError) {
	if l.quiet {
		return
	}
	why := "a Retry-After or a spent quota"
	if h.Quota {
		why = "the server's quota for this caller is spent"
	}
	wait := max(time.Until(h.Until), 0).Round(100 * time.Millisecond)
	l.line(l.yellow.Sprintf("%s: no requests until %s (%s); its URLs wait %s, the others go on",
		printable(fetch.Redact(h.Key)), resilience.ClockTime(h.Until, time.Now()), why, FormatDuration(wait)))
}

// Quota logs, with -v, the quota a response advertised:
// "quota: 0 of 100 left per 1m0s, resets in 30s (X-RateLimit)".
func (l *Logger) Quota(h http.Header) {
	if !l.verbose {
		return
	}
	q, ok := resilience.ParseQuota(h, time.Now())
	if !ok {
		return
	}
	l.line(l.dim.Sprint(printable(fetch.Redact(quotaLine(q)))))
}

// quotaLine is q in words, for -v.
func quotaLine(q resilience.Quota) string {
	msg := fmt.Sprintf("quota: %d", q.Remaining)
	if q.Limit >= 0 {
		msg += fmt.Sprintf(" of %d", q.Limit)
	}
	msg += " left"
	if q.Window > 0 {
		msg += " per " + q.Window.String()
	}
	switch {
	case q.Reset > resilience.MaxRetryAfter:
		msg += fmt.Sprintf(", resets in %s (held for %s at most)", FormatDuration(q.Reset), FormatDuration(resilience.MaxRetryAfter))
	case q.Reset >= 0:
		msg += ", resets in " + FormatDuration(q.Reset)
	default:
		msg += ", reset not said"
	}
	src := q.DialectName()
	if q.Policy != "" {
		src += ", policy " + strconv.Quote(q.Policy)
	}
	return msg + " (" + src + ")"
}

// RateWait logs a wait for a rate slot (--rate), as Hold logs a hold.
func (l *Logger) RateWait(w resilience.RateWaitInfo) {
	if l.quiet {
		return
	}
	l.line(l.yellow.Sprintf("%s: waiting %s for a request slot (--rate)", printable(fetch.Redact(w.Origin)), FormatDuration(w.Wait)))
}

// Warnf logs a warning; -q silences it.
func (l *Logger) Warnf(format string, args ...any) {
	if l.quiet {
		return
	}
	msg := printable(fetch.Redact(fmt.Sprintf(format, args...)))
	l.mu.Lock()
	seen := l.warned[msg]
	if l.warned != nil {
		l.warned[msg] = true
	}
	l.mu.Unlock()
	if seen {
		return
	}
	l.line(l.yellow.Sprint("refetch: warning: " + msg))
}

// Infof logs a plain line; -q silences it.
func (l *Logger) Infof(format string, args ...any) {
	if l.quiet {
		return
	}
	l.line(printable(fetch.Redact(fmt.Sprintf(format, args...))))
}

// Okf logs a success line in green; -q silences it.
func (l *Logger) Okf(format string, args ...any) {
	if l.quiet {
		return
	}
	l.line(l.green.Sprint(printable(fetch.Redact(fmt.Sprintf(format, args...)))))
}

// BreakerChange logs a state change this run made to a breaker.
func (l *Logger) BreakerChange(from, to resilience.State, r resilience.Record) {
	switch {
	case to == resilience.StateOpen && r.RetryAt != nil:
		l.Warnf("circuit for %s opened after %d consecutive failure%s; no requests until %s",
			r.Key, r.ConsecutiveFailures, plural(r.ConsecutiveFailures), resilience.ClockTime(*r.RetryAt, time.Now()))
	case to == resilience.StateHalfOpen:
		l.Infof("circuit for %s is half-open: sending one trial request", r.Key)
	case to == resilience.StateClosed:
		l.Okf("circuit for %s closed: the trial request succeeded", r.Key)
	}
}

func plural(n int) string {
	if n == 1 {
		return ""
	}
	return "s"
}

// Close ends any live countdown; call it before the process exits.
func (l *Logger) Close() { l.stopCountdown() }

// Error logs the final error line, which -q does not silence, in
// describe's words. Usage errors carry a hint to --help.
func (l *Logger) Error(err error) {
	msg := "refetch: " + describe(err)
	var usage *UsageError
	if errors.As(err, &usage) && usage.Cmd != "" {
		msg += fmt.Sprintf(" (see '%s --help')", usage.Cmd)
	}
	l.line(l.red.Sprint(msg))
}

// Request logs a request with -v, curl style.
func (l *Logger) Request(n int, req *http.Request) { l.request(attemptTag("", n), req) }

// attemptTag is how -v lines name attempt n: [2], or in a batch, where
// several URLs' lines interleave, [line 7 #2] (label the URL's place in
// the input).
func attemptTag(label string, n int) string {
	if label == "" {
		return "[" + strconv.Itoa(n) + "]"
	}
	return "[" + label + " #" + strconv.Itoa(n) + "]"
}

// verboseFor returns -v's request, response and hedge hooks for the URL at
// label in a batch: each line names it (a tour could not tell, with -P 8,
// which URL a response belonged to).
func (l *Logger) verboseFor(label string) (func(int, *http.Request), func(int, *http.Response), func(int, fetch.HedgeInfo)) {
	return func(n int, req *http.Request) { l.request(attemptTag(label, n), req) },
		func(n int, resp *http.Response) { l.response(attemptTag(label, n), resp) },
		func(n int, h fetch.HedgeInfo) { l.hedge(attemptTag(label, n), h) }
}

func (l *Logger) request(tag string, req *http.Request) {
	if !l.verbose {
		return
	}
	var b strings.Builder
	fmt.Fprintf(&b, "> %s %s %s %s\n", tag, req.Method, fetch.RedactURL(req.URL), req.Proto)
	writeHeaders(&b, "> ", req.Header)
	l.block(b.String())
}

// block logs the lines of a -v block, each shown as the one formatter
// shows any line: passwords redacted, control characters escaped (a
// server's status line or header must not drive the terminal).
func (l *Logger) block(s string) {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	for i, line := range lines {
		lines[i] = printable(fetch.Redact(line))
	}
	l.line(l.dim.Sprint(strings.Join(lines, "\n")))
}

// Response logs a response with -v, curl style.
func (l *Logger) Response(n int, resp *http.Response) { l.response(attemptTag("", n), resp) }

func (l *Logger) response(tag string, resp *http.Response) {
	if !l.verbose {
		return
	}
	var b strings.Builder
	fmt.Fprintf(&b, "< %s %s %s\n", tag, resp.Proto, strings.TrimSpace(fmt.Sprint(resp.StatusCode, " ", fetch.StatusText(resp))))
	writeHeaders(&b, "< ", resp.Header)
	l.block(b.String())
	l.Quota(resp.Header)
}

func writeHeaders(b *strings.Builder, prefix string, h http.Header) {
	names := make([]string, 0, len(h))
	for k := range h {
		names = append(names, k)
	}
	sort.Strings(names)
	for _, k := range names {
		for _, v := range h[k] {
			fmt.Fprintf(b, "%s%s: %s\n", prefix, k, fetch.RedactHeader(k, v))
		}
	}
}
