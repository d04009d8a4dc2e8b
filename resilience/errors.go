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
	// ErrDeadline: the whole-run time budget (Policy.MaxTime) passed.
	ErrDeadline = errors.New("deadline exceeded")
)

// TimeoutDetailer is implemented by attempt errors that can say what the
// attempt had achieved when its time limit cut it off ("with 1.2 MiB of
// 5.0 MiB received"). TimeoutError appends the detail to its message.
type TimeoutDetailer interface {
	TimeoutDetail() string
}

// TimeoutError reports that one attempt ran past its own time limit
// (Policy.Timeout). Err is what the attempt saw when it was cut off.
type TimeoutError struct {
	After time.Duration
	Err   error
}

func (e *TimeoutError) Error() string {
	msg := fmt.Sprintf("attempt timed out after %s", e.After)
	if s := timeoutDetail(e.Err); s != "" {
		msg += " " + s
	}
	return msg
}

// timeoutDetail is what err (an attempt's failure when its time ran out)
// says it had achieved, "" if nothing.
func timeoutDetail(err error) string {
	var d TimeoutDetailer
	if errors.As(err, &d) {
		return d.TimeoutDetail()
	}
	return ""
}

// Unwrap lets classification see what is behind the timeout.
func (e *TimeoutError) Unwrap() error { return e.Err }

// Timeout reports true, so TimeoutError is classified like a network timeout.
func (e *TimeoutError) Timeout() bool { return true }

// Reason says why a run ended the way it did, beyond its class, so that
// callers can explain it in their own words (naming their own settings).
type Reason int

// Reasons a run ended.
const (
	// ReasonNone: the class says it all.
	ReasonNone Reason = iota
	// ReasonTimeUp: Policy.MaxTime passed during an attempt or a wait.
	ReasonTimeUp
	// ReasonWaitPastDeadline: the next wait (RunError.Wait) would have
	// ended after Policy.MaxTime, so the run stopped at once.
	ReasonWaitPastDeadline
	// ReasonRetryAfterTooLong: the server's Retry-After (RunError.RetryAfter)
	// is beyond Policy.MaxRetryAfter or beyond the time left.
	ReasonRetryAfterTooLong
	// ReasonUnsafeMethod: a retryable failure of a non-idempotent request
	// was not retried, because the request may have reached the server.
	ReasonUnsafeMethod
	// ReasonBreakerOpened: the breaker opened during the run and refused
	// the next attempt.
	ReasonBreakerOpened
	// ReasonHeld: the key is held (a Retry-After an earlier run recorded)
	// for longer (RunError.RetryAfter) than Policy.MaxRetryAfter or the
	// time left allows waiting.
	ReasonHeld
	// ReasonRateWait: the origin's next rate slot (RunError.Wait away) is
	// beyond Policy.MaxTime; no request was sent for it.
	ReasonRateWait
	// ReasonBudgetSpent: the origin's retry budget (RunError.Budget)
	// refused the retry.
	ReasonBudgetSpent
)

// RunError is the error of a failed run. Class is one of the sentinel
// errors above; Last is the last attempt's failure, if any.
type RunError struct {
	Class    error
	Last     error
	Attempts int
	// RetryAfter is the server's last Retry-After value, or -1 if none.
	RetryAfter time.Duration
	// Reason refines the class; Wait is the refused wait of
	// ReasonWaitPastDeadline, Limit the limit that was reached (MaxTime or
	// MaxRetryAfter).
	Reason Reason
	Wait   time.Duration
	Limit  time.Duration
	// Budget says how the retry budget was spent (ReasonBudgetSpent).
	Budget *BudgetSpent
	// PastDeadline: the refused server wait (ReasonRetryAfterTooLong,
	// ReasonHeld) passed the end of MaxTime (Limit then), Left away, not
	// MaxRetryAfter.
	PastDeadline bool
	Left         time.Duration
	// Quota: the refused wait is a spent quota's reset, not a Retry-After.
	// Own: this run's own response asked for it, not an earlier run's.
	Quota, Own bool
	// CutAttempt is the attempt MaxTime cut off (ReasonTimeUp), 0 when
	// the time ran out in a wait; CutDetail is how far it had got ("with
	// 3.0 MiB of 6.0 MiB received", "" unknown), and LastN the number of
	// the attempt Last is of.
	CutAttempt int
	CutDetail  string
	LastN      int
}

func (e *RunError) Error() string {
	var b strings.Builder
	b.WriteString(e.Class.Error())
	switch {
	case errors.Is(e.Class, ErrRetriesExhausted):
		fmt.Fprintf(&b, " after %d attempt%s", e.Attempts, plural(e.Attempts))
	case errors.Is(e.Class, ErrRateLimited) && e.Quota && e.RetryAfter >= 0:
		fmt.Fprintf(&b, ": the server's quota for this caller is spent until %s (in %s)",
			ClockTime(time.Now().Add(e.RetryAfter), time.Now()), e.RetryAfter.Round(time.Second))
	case errors.Is(e.Class, ErrRateLimited) && e.RetryAfter >= 0:
		fmt.Fprintf(&b, ": server asked to retry after %s", e.RetryAfter.Round(time.Second))
	}
	switch e.Reason {
	case ReasonTimeUp:
		fmt.Fprintf(&b, ": the time limit of %s passed", e.Limit)
		if e.CutAttempt > 0 {
			fmt.Fprintf(&b, " during attempt %d", e.CutAttempt)
			if e.CutDetail != "" {
				b.WriteString(", " + e.CutDetail)
			}
			if e.Last != nil && e.LastN > 0 {
				// Last is an earlier attempt's: say whose.
				fmt.Fprintf(&b, "; attempt %d: %s", e.LastN, e.Last.Error())
				return b.String()
			}
		}
	case ReasonWaitPastDeadline:
		fmt.Fprintf(&b, ": the next retry in %s would pass the time limit of %s", e.Wait.Round(time.Millisecond), e.Limit)
	case ReasonRetryAfterTooLong:
		b.WriteString(e.beyond())
	case ReasonUnsafeMethod:
		b.WriteString(": not retried, because the request may have reached the server")
	case ReasonBreakerOpened:
		b.WriteString(": the circuit opened, so retries stopped")
	case ReasonHeld:
		switch {
		case e.Own:
			b.WriteString(" (as this run's last response said)")
		case e.Quota:
			b.WriteString(" (as an earlier run learned)")
		default:
			b.WriteString(" (a Retry-After or a spent quota an earlier run recorded)")
		}
		b.WriteString(e.beyond())
	case ReasonRateWait:
		fmt.Fprintf(&b, ": the next request slot of the rate (--rate) in %s would pass the time limit of %s", e.Wait.Round(time.Millisecond), e.Limit)
	case ReasonBudgetSpent:
		if e.Budget != nil {
			b.WriteString(": " + e.Budget.String() + ", so the failure was not retried")
		}
	}
	if e.Last != nil {
		b.WriteString(": ")
		b.WriteString(e.Last.Error())
	}
	return b.String()
}

// beyond says which limit a refused wait passed.
func (e *RunError) beyond() string {
	if e.PastDeadline {
		return fmt.Sprintf(", beyond the time left (%s of the time limit of %s)", e.Left.Round(100*time.Millisecond), e.Limit)
	}
	if e.Limit > 0 {
		return fmt.Sprintf(", beyond the longest wait allowed (%s)", e.Limit)
	}
	return ", beyond the time left"
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
