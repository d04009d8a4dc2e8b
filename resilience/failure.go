package resilience

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"net"
	"net/http"
	"syscall"
)

// FailureClass names the kind of a failed request: the one failure
// taxonomy. The retry verdict (Classify) and a probe's counts both derive
// from ClassifyTransport, so "refused" means the same to both.
type FailureClass string

// The transport failure classes, found from typed errors only.
const (
	// FailRefused: nothing listens on the port (ECONNREFUSED, Winsock's
	// WSAECONNREFUSED). The request provably did not reach the server.
	FailRefused FailureClass = "refused"
	// FailReset: the connection was reset or aborted (ECONNRESET,
	// ECONNABORTED, EPIPE and their Winsock twins).
	FailReset FailureClass = "reset"
	// FailClosed: the server closed the connection before the response
	// or its body was complete (EOF).
	FailClosed FailureClass = "closed"
	// FailTimeout: a deadline passed (--timeout) or a network timeout.
	FailTimeout FailureClass = "timeout"
	// FailTLS: the TLS handshake failed: a certificate that does not
	// verify, an alert, a server that does not speak TLS.
	FailTLS FailureClass = "tls"
	// FailDNS: the name did not resolve (for good, or for now).
	FailDNS FailureClass = "dns"
	// FailOther: anything else.
	FailOther FailureClass = "other"
)

// Winsock's numbers for a refused, reset and aborted connection, which
// package syscall names on Windows only (golang.org/x/sys/windows has
// them with these values). They are listed on every system so that the
// taxonomy is one table, tested everywhere; no other system uses them.
const (
	wsaeconnrefused = syscall.Errno(10061)
	wsaeconnreset   = syscall.Errno(10054)
	wsaeconnaborted = syscall.Errno(10053)
)

// refusedErrnos and resetErrnos are the system errors of a refused and of
// a reset connection.
var (
	refusedErrnos = []error{syscall.ECONNREFUSED, wsaeconnrefused}
	resetErrnos   = []error{syscall.ECONNRESET, syscall.ECONNABORTED, syscall.EPIPE, wsaeconnreset, wsaeconnaborted}
)

// ClassifyTransport puts a request's transport failure in its class by
// its type, never by its text ("" for nil). A lookup that timed out is
// dns (the phase that failed); a TLS handshake that timed out is timeout.
// Failures of the layers above (sizes, redirects) are the caller's to
// tell before asking.
func ClassifyTransport(err error) FailureClass {
	var (
		dns    *net.DNSError
		netErr net.Error
	)
	switch {
	case err == nil:
		return ""
	case errors.As(err, &dns):
		return FailDNS
	case isAny(err, refusedErrnos):
		return FailRefused
	case isAny(err, resetErrnos):
		return FailReset
	case tlsFailure(err):
		return FailTLS
	case errors.Is(err, context.DeadlineExceeded), errors.As(err, &netErr) && netErr.Timeout():
		return FailTimeout
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return FailClosed
	}
	return FailOther
}

func isAny(err error, targets []error) bool {
	for _, t := range targets {
		if errors.Is(err, t) {
			return true
		}
	}
	return false
}

// tlsFailure reports a TLS handshake that no retry can fix: a certificate
// that does not verify, an alert from the server, or a server that does
// not speak TLS (a record that is not TLS, or an HTTP answer to TLS).
func tlsFailure(err error) bool {
	var (
		record tls.RecordHeaderError
		alert  tls.AlertError
	)
	return IsCertificateError(err) || errors.As(err, &record) || errors.As(err, &alert) ||
		errors.Is(err, http.ErrSchemeMismatch)
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

// CutWords says, in words a person acts on, how a transfer that had
// begun ended early in class c: "the server reset the connection". It is
// "" for a class with no such words of its own (a timeout says it through
// TimeoutError, the rest keep their system error). The one wording of a
// cut transfer: the fetch layer's messages and the command layer's lines
// take it from here.
func (c FailureClass) CutWords() string {
	switch c {
	case FailReset:
		return "the server reset the connection"
	case FailClosed:
		return "the server closed the connection"
	}
	return ""
}
