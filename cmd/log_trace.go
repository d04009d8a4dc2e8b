package cmd

import (
	"fmt"
	"strings"
	"time"

	"github.com/refetch/refetch/fetch"
)

// The -v lines of redirect hops and phase timings: part of the one stderr
// formatter, Logger (log.go).

// Redirect logs one redirect hop with -v: "< [1] 301 Moved Permanently →
// URL", the URL's password redacted.
func (l *Logger) Redirect(n int, hop fetch.Hop) {
	if !l.verbose {
		return
	}
	status := fmt.Sprint(hop.Status)
	if hop.StatusText != "" {
		status += " " + hop.StatusText
	}
	l.line(l.dim.Sprint(printable(fetch.Redact(fmt.Sprintf("< [%d] %s → %s", n, status, hop.Location)))))
}

// Trace logs where attempt n's time went with -v, in one line:
// "* [1] 127.0.0.1:8080 HTTP/1.1 new connection: dns - connect 0.21ms tls -
// first byte 12ms body 0.35ms" ("-": the phase did not happen).
func (l *Logger) Trace(n int, t *fetch.AttemptTrace) {
	if !l.verbose {
		return
	}
	l.line(l.dim.Sprint(traceLine(n, t)))
}

func traceLine(n int, t *fetch.AttemptTrace) string {
	var b strings.Builder
	fmt.Fprintf(&b, "* [%d] ", n)
	if t.Copy > 0 {
		fmt.Fprintf(&b, "copy %d: ", t.Copy)
	}
	if t.RemoteAddr != "" {
		b.WriteString(t.RemoteAddr + " ")
	}
	switch {
	case t.Proto != "":
		b.WriteString(t.Proto + " ")
	default:
		b.WriteString("no response, ")
	}
	switch {
	case t.Reused:
		b.WriteString("reused connection:")
	case t.Happened[fetch.PhaseFirstByte]:
		b.WriteString("new connection:")
	default:
		b.WriteString("no connection:")
	}
	for p := range fetch.NumPhases {
		v := "-"
		if t.CopyShows(p) {
			v = FormatMillis(t.Phases[p])
		}
		fmt.Fprintf(&b, " %s %s", p.Label(), v)
	}
	if t.Resumed {
		fmt.Fprintf(&b, "; resumed from byte %s, %s received", fetch.GroupDigits(t.ResumedFrom), fetch.FormatBytes(t.BodyBytes))
	}
	if t.Restart != "" {
		b.WriteString("; " + printable(fetch.Redact(t.Restart)))
	}
	return b.String()
}

// FormatMillis renders a short time for timing lines with the precision
// that matters at its size: "0.21ms", "3.5ms", "120ms", "1.2s". Like the
// reports' milliseconds (fetch.Millis) it truncates, never rounds up, so
// -v and --json agree on every digit -v shows.
func FormatMillis(d time.Duration) string {
	switch {
	case d < 0:
		return "-" + FormatMillis(-d)
	case d < time.Millisecond:
		return fmt.Sprintf("0.%02dms", d/(10*time.Microsecond))
	case d < 10*time.Millisecond:
		return fmt.Sprintf("%d.%dms", d/time.Millisecond, d%time.Millisecond/(100*time.Microsecond))
	case d < time.Second:
		return fmt.Sprintf("%dms", d/time.Millisecond)
	}
	return FormatDuration(d)
}
