package resilience

import (
	"errors"
	"fmt"
	"strings"
	"time"
)

// Sentinel errors name the failure classes of a run. A run's error wraps
// exactly one of them; callers map them to exit codes with errors.Is.
var (
	// ErrPermanent: the last attempt failed in a way retrying cannot fix
	// (a permanent status or error, or an unsafe method not retried).
	ErrPermanent = errors.New("failed, not retryable")
	// ErrRetriesExhausted: every attempt failed with a retryable failure.
	ErrRetriesExhausted = errors.New("retries exhausted")
	// ErrCircuitOpen: the breaker rejected the attempt; no request was sent.
	ErrCircuitOpen = errors.New("circuit open")
	// ErrRateLimited: the server asked for a wait longer than allowed.
	ErrRateLimited = errors.New("rate limited")
	// ErrDeadline: the whole-run time budget (--max-time) passed.
	ErrDeadline = errors.New("deadline exceeded")
)

// Errors an attempt can carry that classification treats as permanent.
var (
	// ErrTooManyRedirects is returned when a response redirects more often
	// than the policy allows.
	ErrTooManyRedirects = errors.New("too many redirects")
	// ErrTooLarge is returned when a body exceeds the size limit.
	ErrTooLarge = errors.New("body exceeds --max-size")
	// ErrPartialStream is returned when a streamed body was cut after some
	// of it had already been written to its destination: a retry would
	// duplicate data, so it is not retried.
	ErrPartialStream = errors.New("body cut short after streaming began")
	// ErrOutput wraps a failure to write the body locally (disk full, a
	// closed pipe): the server is not at fault and a retry would not help.
	ErrOutput = errors.New("writing output")
)

// TimeoutError reports that one attempt ran past its own time limit. Err
// is what the attempt saw when it was cut off.
type TimeoutError struct {
	After time.Duration
	Err   error
}

func (e *TimeoutError) Error() string {
	msg := fmt.Sprintf("attempt timed out after %s", e.After)
	var cut *BodyCutError
	if errors.As(e.Err, &cut) && cut.Read > 0 {
		// The server was sending: the limit, not the server, ended it.
		msg += " with " + cut.progress() + " received (a larger --timeout lets big bodies finish)"
	}
	if errors.Is(e.Err, ErrPartialStream) {
		msg += "; the body was partly streamed, so it is not retried"
	}
	return msg
}

// BodyCutError reports a body that ended before it was complete.
type BodyCutError struct {
	Read  int64 // bytes received
	Total int64 // the announced length, -1 if none
	Err   error
}

func (e *BodyCutError) Error() string {
	return "body cut short after " + e.progress() + ": " + e.Err.Error()
}

func (e *BodyCutError) Unwrap() error { return e.Err }

func (e *BodyCutError) progress() string {
	if e.Total > 0 {
		return FormatBytes(e.Read) + " of " + FormatBytes(e.Total)
	}
	return FormatBytes(e.Read)
}

// FormatBytes renders a byte count for messages: "512 B", "1.5 MiB".
func FormatBytes(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit && exp < 4; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTP"[exp])
}

// Unwrap lets classification see a partly streamed body behind the timeout.
func (e *TimeoutError) Unwrap() error { return e.Err }

// Timeout reports true, so TimeoutError is classified like a network timeout.
func (e *TimeoutError) Timeout() bool { return true }

// RunError is the error of a failed run. Class is one of the sentinel
// errors above; Last is the last attempt's failure, if any.
type RunError struct {
	Class    error
	Last     error
	Attempts int
	// RetryAfter is the server's last Retry-After value, or -1 if none.
	RetryAfter time.Duration
	// Detail adds context to the message (for example why the circuit is open).
	Detail string
}

func (e *RunError) Error() string {
	var b strings.Builder
	b.WriteString(e.Class.Error())
	switch {
	case errors.Is(e.Class, ErrRetriesExhausted):
		fmt.Fprintf(&b, " after %d attempt%s", e.Attempts, plural(e.Attempts))
	case errors.Is(e.Class, ErrRateLimited) && e.RetryAfter >= 0:
		fmt.Fprintf(&b, ": server asked to retry after %s", e.RetryAfter.Round(time.Second))
	}
	if e.Detail != "" {
		b.WriteString(": ")
		b.WriteString(e.Detail)
	}
	if e.Last != nil {
		b.WriteString(": ")
		b.WriteString(e.Last.Error())
	}
	return b.String()
}

// Unwrap exposes both the class and the last failure to errors.Is/As.
func (e *RunError) Unwrap() []error {
	if e.Last == nil {
		return []error{e.Class}
	}
	return []error{e.Class, e.Last}
}

// StatusError is the failure of an attempt that got a response with a
// status that is not a success.
type StatusError struct {
	Code int
	Text string // the reason phrase, e.g. "Service Unavailable"
}

func (e *StatusError) Error() string {
	if e.Text == "" {
		return fmt.Sprintf("%d", e.Code)
	}
	return fmt.Sprintf("%d %s", e.Code, e.Text)
}

func plural(n int) string {
	if n == 1 {
		return ""
	}
	return "s"
}
