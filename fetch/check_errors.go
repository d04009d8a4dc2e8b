package fetch

import (
	"errors"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"
)

// The failures of a health check that say more than one line of text can
// carry to the command layer: each has a Text method that takes the words
// the command uses for its limits (its flags), and an Error method that
// uses neutral words. The fetch layer names no flag.

// CheckLimit is what ended a check's attempt before it had a whole answer.
type CheckLimit int

const (
	// LimitNone: the transport failed on its own (refused, reset, TLS).
	LimitNone CheckLimit = iota
	// LimitTimeout: the attempt's own time limit (Policy.Timeout).
	LimitTimeout
	// LimitMaxLatency: the latency bound (Expectations.MaxLatency); an
	// attempt is cut there, since a later answer could not be healthy.
	LimitMaxLatency
	// LimitRunEnd: the end of the whole check (Policy.MaxTime, a signal).
	LimitRunEnd
)

// LimitWords are the names of the limits in a check's messages, indexed
// by CheckLimit; the command layer gives its flags' names.
type LimitWords [LimitRunEnd + 1]string

// neutralLimits are the limits' names in the fetch layer's own words.
var neutralLimits = LimitWords{"", "the attempt's time limit", "the latency bound", "the end of the check"}

// NoAnswerError is an attempt of a check that got no whole answer: it
// says how far the attempt got (connecting, connected, headers, part of
// the body) and what ended it.
type NoAnswerError struct {
	Limit CheckLimit
	// After is how long the attempt ran.
	After time.Duration
	// Bound is the limit's value (Timeout or MaxLatency; 0 for the others).
	Bound time.Duration
	// Addr is the server's address the attempt reached or tried; "" none.
	Addr      string
	Connected bool
	// Status is the response's status when its headers came; 0 none.
	Status int
	// Received is the body bytes received (before decoding).
	Received int64
	// Err is the transport's error (redacted in messages); for a limit,
	// what the transport said when it was cut (not shown).
	Err error
}

func (e *NoAnswerError) Error() string { return e.Text(neutralLimits) }

// Text is the failure in words, calling the limits by words.
func (e *NoAnswerError) Text(words LimitWords) string {
	stage := e.stage()
	switch e.Limit {
	case LimitTimeout:
		return fmt.Sprintf("no answer within %s (%s): %s", words[LimitTimeout], e.Bound, stage)
	case LimitMaxLatency:
		return fmt.Sprintf("latency over %s (%s), so the attempt was ended: %s", e.Bound, words[LimitMaxLatency], stage)
	case LimitRunEnd:
		return fmt.Sprintf("cut off by %s %s into the attempt: %s", words[LimitRunEnd], roundMS(e.After), stage)
	}
	var cut *BodyCutError
	switch {
	case e.Status != 0 && errors.As(e.Err, &cut):
		// The cut says how far the body came itself: say it once.
		return fmt.Sprintf("status %d, then %s", e.Status, excerpt(Redact(e.Err.Error()), 200))
	case e.Status != 0:
		return fmt.Sprintf("status %d, then the body failed after %s: %s", e.Status, FormatBytes(e.Received), excerpt(Redact(e.Err.Error()), 200))
	}
	return "no answer: " + excerpt(Redact(e.Err.Error()), 200) + CertificateAdvice(e.Err)
}

// stage says how far an attempt that was cut off had got.
func (e *NoAnswerError) stage() string {
	addr := e.Addr
	switch {
	case e.Status != 0:
		return fmt.Sprintf("status %d came, then the body stalled after %s", e.Status, FormatBytes(e.Received))
	case e.Connected:
		return "connected to " + addr + ", no response headers"
	case addr != "":
		return "connecting to " + addr + ", not connected"
	}
	return "no connection attempt yet (resolving the host name)"
}

// Timeout reports whether a limit ended the attempt.
func (e *NoAnswerError) Timeout() bool { return e.Limit != LimitNone }

// BodyLimitError is a body expectation that could not look at the body:
// it is larger than the bound check keeps, or encoded in a way check does
// not decode.
type BodyLimitError struct {
	// Limit is the bound passed; 0 when the problem is the encoding.
	Limit    int64
	Encoding string
	// BadGzip: the body said gzip and is not valid gzip.
	BadGzip bool
}

func (e *BodyLimitError) Error() string {
	if e.BadGzip {
		return "the body is not valid gzip (Content-Encoding: gzip), so the body expectations could not be checked"
	}
	if e.Limit == 0 {
		return fmt.Sprintf("body is %s-encoded, which check does not decode (gzip only), so the body expectations could not be checked", excerpt(Redact(e.Encoding), 40))
	}
	return fmt.Sprintf("body over %s, the most check keeps for the body expectations, so they could not be checked", FormatBytes(e.Limit))
}

// EndReason says why a check stopped before it was healthy.
type EndReason int

// Reasons a check ended unhealthy, beyond the failures of its last attempt.
const (
	// EndTimeUp: the time (Policy.MaxTime) ran out.
	EndTimeUp EndReason = iota + 1
	// EndAttempts: the attempts ran out while time was left.
	EndAttempts
	// EndBreakerOpened: the breaker opened during the check.
	EndBreakerOpened
	// EndRetryAfter: the server asked for a wait longer than check allows.
	EndRetryAfter
	// EndNotRetried: the status is not one the check retries.
	EndNotRetried
	// EndRetryBudget: the origin's retry budget (--retry-budget) refused
	// the retry.
	EndRetryBudget
	// EndRateSlot: the origin's next rate slot (--rate) is past the time
	// limit.
	EndRateSlot
)

// CheckEndError says why a check ended before it was healthy, and how
// much of its time was left when it ended early.
type CheckEndError struct {
	Reason   EndReason
	Attempts int
	// Limit is the check's whole time (Policy.MaxTime; 0: none); Left what
	// was left of it when the check ended (0: none or no limit).
	Limit time.Duration
	Left  time.Duration
	// RetryAfter is the server's wait and MaxRetryAfter the longest
	// allowed (EndRetryAfter); with EndTimeUp, the last attempt's
	// Retry-After (0: none).
	RetryAfter, MaxRetryAfter time.Duration
	// Quota: the wait (EndRetryAfter) is a spent quota's reset the
	// server advertised, not a Retry-After.
	Quota bool
	// Status is the status not retried (EndNotRetried).
	Status int
	// Budget says how the budget was spent (EndRetryBudget).
	Budget string
	// Wait is the wait for the next rate slot (EndRateSlot).
	Wait time.Duration
}

func (e *CheckEndError) Error() string {
	return e.Text(EndWords{Time: "the time", Attempts: fmt.Sprintf("the limit of %d attempts", e.Attempts),
		Breaker: "its failure threshold", RetryAfter: "without a time limit", RetryOn: "the retried statuses"})
}

// EndWords are the command's names for what can end a check.
type EndWords struct {
	// Time names the check's time limit ("--wait 2m"); Attempts the
	// attempt limit ("--attempts 3"); Breaker the breaker's threshold
	// ("--breaker-failures 3"); RetryAfter the longest wait for a
	// Retry-After ("without --wait"); RetryOn the retried statuses.
	Time, Attempts, Breaker, RetryAfter, RetryOn string
}

// Text is the reason in words, calling the limits by words.
func (e *CheckEndError) Text(w EndWords) string {
	left := ""
	if e.Left > 0 && e.Limit > 0 {
		left = fmt.Sprintf(", with %s of %s left", roundTenth(e.Left), w.Time)
	}
	switch e.Reason {
	case EndTimeUp:
		if e.RetryAfter > 0 {
			// A maintenance page: the verdict, often the only line a CI
			// log reader sees, says when the server said to come back.
			return fmt.Sprintf("not healthy before the time ran out (%s); the server asked to retry after %s",
				w.Time, e.RetryAfter.Round(time.Second))
		}
		return fmt.Sprintf("not healthy before the time ran out (%s)", w.Time)
	case EndAttempts:
		return fmt.Sprintf("gave up after %d attempt%s (%s)%s", e.Attempts, plural(e.Attempts), w.Attempts, left)
	case EndBreakerOpened:
		return fmt.Sprintf("the circuit opened (%s), so the checks stopped%s", w.Breaker, left)
	case EndRetryAfter:
		asked := fmt.Sprintf("the server asked to retry after %s", e.RetryAfter.Round(time.Second))
		if e.Quota {
			asked = fmt.Sprintf("the server's quota for this caller is spent for %s", e.RetryAfter.Round(time.Second))
		}
		if e.Limit > 0 {
			return fmt.Sprintf("%s, past the end of %s", asked, w.Time)
		}
		return fmt.Sprintf("%s, longer than check waits %s (%s)", asked, w.RetryAfter, e.MaxRetryAfter)
	case EndNotRetried:
		return fmt.Sprintf("status %d is not retried (%s)%s", e.Status, w.RetryOn, left)
	case EndRateSlot:
		return fmt.Sprintf("the next request slot of the rate (--rate) is %s off, past the end of %s, so nothing was sent",
			roundTenth(e.Wait), w.Time)
	case EndRetryBudget:
		return fmt.Sprintf("retry budget spent (--retry-budget): %s, so the failure was not retried", e.Budget)
	}
	return "unhealthy"
}

// NotStableError is a healthy answer that is not yet the number in a row
// a check wants (CheckConfig.Stable).
type NotStableError struct{ Have, Want int }

func (e *NotStableError) Error() string { return e.Text(fmt.Sprint(e.Want, " wanted")) }

// Text says it, calling the wanted count by name ("--stable 3").
func (e *NotStableError) Text(name string) string {
	return fmt.Sprintf("healthy %d time%s in a row, not yet stable (%s)", e.Have, plural(e.Have), name)
}

// EarlierFailures summarizes the failures of the attempts before the last
// one, each distinct message once with its count, in the order first seen.
type EarlierFailures struct {
	Kinds []EarlierKind
	// Other counts the attempts whose failure was none of Kinds (there
	// are at most maxEarlierKinds kinds).
	Other int
}

// EarlierKind is one distinct failure and how many attempts had it.
type EarlierKind struct {
	// Failure is the failure's text, which tells kinds apart; Errs are
	// the failures of its first attempt, for a caller that words them.
	Failure string
	Errs    []error
	Count   int
	// Same is set when the last attempt failed the same way: the summary
	// then says so instead of repeating it.
	Same bool
}

// maxEarlierKinds bounds the distinct earlier failures a check keeps: a
// long --wait does not grow the report.
const maxEarlierKinds = 4

func (e *EarlierFailures) add(failure string, errs []error) {
	for i := range e.Kinds {
		if e.Kinds[i].Failure == failure {
			e.Kinds[i].Count++
			return
		}
	}
	if len(e.Kinds) < maxEarlierKinds {
		e.Kinds = append(e.Kinds, EarlierKind{Failure: failure, Errs: errs, Count: 1})
		return
	}
	e.Other++
}

func (e *EarlierFailures) Error() string {
	return e.Text(func(err error) string { return err.Error() })
}

// Text is the summary with each failure put into words by word.
func (e *EarlierFailures) Text(word func(error) string) string {
	parts := make([]string, 0, len(e.Kinds)+1)
	for _, k := range e.Kinds {
		if k.Same {
			parts = append(parts, fmt.Sprintf("the same as the last (%d attempt%s)", k.Count, plural(k.Count)))
			continue
		}
		msgs := make([]string, len(k.Errs))
		for i, err := range k.Errs {
			msgs[i] = word(err)
		}
		parts = append(parts, fmt.Sprintf("%s (%d attempt%s)", strings.Join(msgs, "; "), k.Count, plural(k.Count)))
	}
	if e.Other > 0 {
		parts = append(parts, fmt.Sprintf("%d attempt%s with other failures", e.Other, plural(e.Other)))
	}
	return "earlier: " + strings.Join(parts, ", ")
}

// Excerpt is excerpt, for the other layers' messages.
func Excerpt(s string, n int) string { return excerpt(s, n) }

// excerpt cuts s to at most n bytes at a character boundary, marking the
// cut with "…", so that no message grows with what a server sends and no
// UTF-8 character is split.
func excerpt(s string, n int) string {
	if len(s) <= n {
		return s
	}
	cut := n
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + "…"
}

// excerptJSON is excerpt for JSON text: a cut never splits a backslash
// escape (\u001b, \n), which would read as garbage.
func excerptJSON(s string, n int) string {
	if len(s) <= n {
		return s
	}
	cut := excerpt(s, n)
	body := strings.TrimSuffix(cut, "…")
	// Find the escape the cut may be inside: the last backslash that is
	// not itself escaped, within the longest escape (\uXXXX, 6 bytes).
	for i := len(body) - 1; i >= 0 && i >= len(body)-6; i-- {
		if body[i] != '\\' {
			continue
		}
		run := 0
		for j := i; j >= 0 && body[j] == '\\'; j-- {
			run++
		}
		if run%2 == 0 {
			break // an escaped backslash: complete
		}
		if need := escapeLen(body[i:]); len(body)-i < need {
			body = body[:i]
		}
		break
	}
	return body + "…"
}

// escapeLen is the length of the JSON escape that s starts with.
func escapeLen(s string) int {
	if len(s) > 1 && s[1] == 'u' {
		return 6
	}
	return 2
}

// roundMS is d rounded to the millisecond, the one rounding of a check's
// latencies in messages and reports.
func roundMS(d time.Duration) time.Duration { return d.Round(time.Millisecond) }

// roundTenth rounds d for messages about the time left: 1m59.9s, 250ms.
func roundTenth(d time.Duration) time.Duration {
	if d < time.Second {
		return d.Round(time.Millisecond)
	}
	return d.Round(100 * time.Millisecond)
}

func plural(n int) string {
	if n == 1 {
		return ""
	}
	return "s"
}
