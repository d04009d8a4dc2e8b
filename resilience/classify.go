package resilience

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"github.com/refetch/refetch/resilience/store"
	"net"
	"net/http"
	"strings"
	"syscall"
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

// DefaultRetryOn is the default set of retried statuses.
const DefaultRetryOn = "408,425,429,500,502,503,504"

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

func classifyError(method string, err error, retryUnsafe bool) Verdict {
	if errors.Is(err, context.Canceled) {
		return Verdict{Kind: Cancelled, Breaker: Ignore, Err: err}
	}
	if permanentError(err) {
		return Verdict{Kind: Permanent, Breaker: Ignore, Err: err}
	}
	if dnsNotFound(err) {
		// NXDOMAIN: the name does not exist; retrying will not create it.
		return Verdict{Kind: Permanent, Breaker: Ignore, Err: err}
	}
	if !retryUnsafe && !Idempotent(method) && !notSent(err) {
		return Verdict{Kind: Permanent, Breaker: CountFailure, Err: err, UnsafeNotRetried: true}
	}
	return Verdict{Kind: Retryable, Breaker: CountFailure, Err: err}
}

// permanentError reports network errors that no retry can fix:
// certificate problems and a TLS handshake with something that does not
// speak TLS. Errors of the layers above (sizes, redirects, local output)
// are classified there, before Classify is asked.
func permanentError(err error) bool {
	var (
		record tls.RecordHeaderError
		alert  tls.AlertError
	)
	return IsCertificateError(err) || errors.As(err, &record) || errors.As(err, &alert)
}

// IsCertificateError reports whether err is a failure to verify the
// server's TLS certificate (unknown authority, wrong host name, expired).
func IsCertificateError(err error) bool {
	var (
		unknownAuth x509.UnknownAuthorityError
		hostname    x509.HostnameError
		invalid     x509.CertificateInvalidError
		verify      *tls.CertificateVerificationError
	)
	return errors.As(err, &unknownAuth) || errors.As(err, &hostname) ||
		errors.As(err, &invalid) || errors.As(err, &verify)
}

func dnsNotFound(err error) bool {
	var dns *net.DNSError
	return errors.As(err, &dns) && dns.IsNotFound && !dns.IsTemporary
}

// notSent reports failures that prove the request never reached the
// application: the connection was refused or the name did not resolve.
func notSent(err error) bool {
	if errors.Is(err, syscall.ECONNREFUSED) {
		return true
	}
	var dns *net.DNSError
	return errors.As(err, &dns)
}
