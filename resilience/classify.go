package resilience

import (
	"context"
	"errors"
	"net"
	"net/http"
	"strings"

	"github.com/refetch/refetch/resilience/store"
)

// Attempt is what one try produced: a response status and header, or an
// error when no usable response came. Status is 0 when there was no response.
type Attempt struct {
	Status     int
	StatusText string
	Header     http.Header
	Err        error
	// Detail is what the caller wants kept with the attempt; resilience
	// never looks at it. The executor copies it into the AttemptRecord.
	Detail any
}

// Kind is the class of one attempt's outcome.
type Kind int

// The outcome classes of the design's classification table.
const (
	Success Kind = iota
	Retryable
	Permanent
	Cancelled
)

func (k Kind) String() string {
	switch k {
	case Success:
		return "success"
	case Retryable:
		return "retryable"
	case Permanent:
		return "permanent"
	case Cancelled:
		return "cancelled"
	}
	return "unknown"
}

// Effect is what an outcome does to the circuit breaker (see package store).
type Effect = store.Effect

// Breaker effects.
const (
	Ignore       = store.Ignore
	CountSuccess = store.CountSuccess
	CountFailure = store.CountFailure
)

// Verdict is the classification of one attempt.
type Verdict struct {
	Kind    Kind
	Breaker Effect
	// Err describes the failure (nil on success).
	Err error
	// UnsafeNotRetried is set when a retryable failure was not retried
	// because the method is not idempotent.
	UnsafeNotRetried bool
}

// Idempotent reports whether a method may be repeated without changing the
// result: GET, HEAD, OPTIONS, PUT, DELETE and TRACE are.
func Idempotent(method string) bool {
	switch strings.ToUpper(method) {
	case http.MethodGet, http.MethodHead, http.MethodOptions, http.MethodPut,
		http.MethodDelete, http.MethodTrace:
		return true
	}
	return false
}

// RepeatOptIn reports whether a request whose method is not idempotent
// (POST, PATCH, ...) may still be sent again: the caller said so
// (--retry-unsafe), or the request carries an Idempotency-Key header
// (draft-ietf-httpapi-idempotency-key-header, as Stripe's API does: the
// server applies a key once and answers a repeat with the first
// outcome). It is the one rule for repeating such a request, used by the
// retries (fetch.Run) and the hedges (cmd's --hedge).
func RepeatOptIn(h http.Header, retryUnsafe bool) bool {
	return retryUnsafe || h.Get("Idempotency-Key") != ""
}

// ClassifyFunc turns one attempt into a verdict: whether it succeeded,
// may be retried or is final, and what it does to the breaker. The
// executor calls it once per attempt with the run's method and policy.
// Classify is the HTTP-level one; callers that know more failure kinds
// (the fetch layer's output and size errors, check's expectations) wrap
// it with their own.
type ClassifyFunc func(method string, a Attempt, p Policy) Verdict

// ClassifyPolicy is Classify as a ClassifyFunc: it reads the retried
// statuses and the unsafe-retry switch from the policy.
func ClassifyPolicy(method string, a Attempt, p Policy) Verdict {
	return Classify(method, a, p.RetryOn, p.RetryUnsafe)
}

// Classify is the one HTTP classification: it turns an attempt into a
// verdict following the design's table. Statuses in retryOn are retried;
// other 4xx/5xx are permanent. Non-idempotent methods (POST, PATCH, …) are
// retried only when the request provably did not reach the application
// (connection refused, DNS failure) or the status is 429, unless
// retryUnsafe is set.
func Classify(method string, a Attempt, retryOn StatusSet, retryUnsafe bool) Verdict {
	if a.Err != nil {
		return classifyError(method, a.Err, retryUnsafe)
	}
	if a.Status >= 200 && a.Status <= 299 {
		return Verdict{Kind: Success, Breaker: CountSuccess}
	}
	serr := &StatusError{Code: a.Status, Text: a.StatusText}
	if !retryOn.Contains(a.Status) {
		return Verdict{Kind: Permanent, Breaker: Ignore, Err: serr}
	}
	effect := CountFailure
	if a.Status == http.StatusTooManyRequests {
		// The server is alive and answering; it is only pacing us.
		effect = Ignore
	}
	if !retryUnsafe && !Idempotent(method) && a.Status != http.StatusTooManyRequests {
		return Verdict{Kind: Permanent, Breaker: effect, Err: serr, UnsafeNotRetried: true}
	}
	return Verdict{Kind: Retryable, Breaker: effect, Err: serr}
}

// classifyError is the verdict of a transport failure, from its class
// (ClassifyTransport): TLS failures and names that do not exist are
// permanent; an unsafe method is retried only when the request provably
// did not reach the application (refused, or a name that did not
// resolve).
func classifyError(method string, err error, retryUnsafe bool) Verdict {
	if errors.Is(err, context.Canceled) {
		return Verdict{Kind: Cancelled, Breaker: Ignore, Err: err}
	}
	class := ClassifyTransport(err)
	switch {
	case class == FailTLS:
		return Verdict{Kind: Permanent, Breaker: Ignore, Err: err}
	case class == FailDNS && dnsNotFound(err):
		// NXDOMAIN: the name does not exist; retrying will not create it.
		return Verdict{Kind: Permanent, Breaker: Ignore, Err: err}
	case !retryUnsafe && !Idempotent(method) && class != FailRefused && class != FailDNS:
		return Verdict{Kind: Permanent, Breaker: CountFailure, Err: err, UnsafeNotRetried: true}
	}
	return Verdict{Kind: Retryable, Breaker: CountFailure, Err: err}
}

func dnsNotFound(err error) bool {
	var dns *net.DNSError
	return errors.As(err, &dns) && dns.IsNotFound && !dns.IsTemporary
}
