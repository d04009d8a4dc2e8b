package cmd

import (
	"errors"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/refetch/refetch/fetch"
	"github.com/refetch/refetch/resilience"
)

// describe is the one place that puts an error into words for people and
// reports: the layers below say what happened in their own terms, and
// this adds what only the command layer knows, the flag that changes it.
// The result is redacted.
func describe(err error) string {
	if err == nil {
		return ""
	}
	return printable(fetch.Redact(err.Error() + hint(err)))
}

// hint returns the advice for err, naming the flag a person can use, or "".
func hint(err error) string {
	var (
		reset   *resetHint
		re      *resilience.RunError
		open    *resilience.OpenError
		timeout *resilience.TimeoutError
		cut     *fetch.BodyCutError
	)
	switch {
	case errors.As(err, &open):
		where := ""
		if errors.As(err, &reset) && reset.plan.explicitDir {
			where += " --state-dir " + shellQuote(reset.plan.dir)
		}
		tail := ""
		if errors.As(err, &reset) && reset.plan.storeGiven {
			// The same store the run used; its URL may hold a password,
			// so it is not repeated here.
			where += " --store URL"
			tail = " (URL: this run's --store)"
		}
		return "; reset with: refetch breaker reset" + where + " " + shellQuote(open.Record.Key) + tail
	case errors.As(err, &re) && re.Reason == resilience.ReasonTimeUp,
		errors.As(err, &re) && re.Reason == resilience.ReasonWaitPastDeadline:
		return " (--max-time sets the limit)"
	case errors.As(err, &re) && re.Reason == resilience.ReasonRetryAfterTooLong:
		return " (--max-retry-after sets the longest wait; come back after the server's time)"
	case errors.As(err, &re) && re.Reason == resilience.ReasonUnsafeMethod:
		return " (--retry-unsafe retries it anyway)"
	case resilience.IsCertificateError(err):
		return " (use --cacert FILE to trust the server's CA, or -k to skip verification)"
	case errors.As(err, &timeout) && errors.As(err, &cut) && cut.Read > 0:
		return " (a larger --timeout, or --timeout 0, lets big bodies finish)"
	case errors.As(err, &timeout):
		return " (--timeout sets the limit of one attempt)"
	case errors.Is(err, fetch.ErrTooLarge):
		return " (--max-size sets the limit)"
	case errors.Is(err, fetch.ErrTooManyRedirects):
		return " (--max-redirs sets the limit)"
	}
	return ""
}

// shellQuote quotes s for a POSIX shell, so a command refetch suggests can
// be pasted as it is, whatever the key or path holds.
func shellQuote(s string) string {
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// printable escapes what a terminal would act on — control characters,
// escape sequences, line breaks — in text that comes from outside (keys,
// servers' words), so that one line on stderr stays one harmless line.
func printable(s string) string {
	if strings.IndexFunc(s, isControl) < 0 {
		return s
	}
	var b strings.Builder
	for _, r := range s {
		if isControl(r) {
			q := strconv.QuoteRune(r)
			b.WriteString(q[1 : len(q)-1])
			continue
		}
		b.WriteRune(r)
	}
	return b.String()
}

func isControl(r rune) bool {
	return r < 0x20 || r == 0x7f || (r >= 0x80 && r < 0xa0) || r == utf8.RuneError
}
