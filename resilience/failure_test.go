package resilience

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"syscall"
	"testing"
)

// TestClassifyTransport: the one taxonomy, by type, with each system's
// errno (Winsock's included, on every system), and the retry verdict that
// derives from it.
func TestClassifyTransport(t *testing.T) {
	op := func(err error) error {
		return &net.OpError{Op: "dial", Net: "tcp", Err: &os.SyscallError{Syscall: "connect", Err: err}}
	}
	for _, tc := range []struct {
		name      string
		err       error
		class     FailureClass
		postRetry bool // a POST is retried: it provably was not sent
		kind      Kind
	}{
		{"refused", op(syscall.ECONNREFUSED), FailRefused, true, Retryable},
		{"refused, Winsock", op(wsaeconnrefused), FailRefused, true, Retryable},
		{"reset", op(syscall.ECONNRESET), FailReset, false, Retryable},
		{"reset, Winsock", op(wsaeconnreset), FailReset, false, Retryable},
		{"aborted, Winsock", op(wsaeconnaborted), FailReset, false, Retryable},
		{"broken pipe", op(syscall.EPIPE), FailReset, false, Retryable},
		{"eof", fmt.Errorf("reading: %w", io.ErrUnexpectedEOF), FailClosed, false, Retryable},
		{"timeout", fmt.Errorf("x: %w", context.DeadlineExceeded), FailTimeout, false, Retryable},
		{"dns, temporary", &net.DNSError{Err: "server misbehaving", Name: "h", IsTemporary: true}, FailDNS, true, Retryable},
		{"dns, no such host", &net.DNSError{Err: "no such host", Name: "h", IsNotFound: true}, FailDNS, false, Permanent},
		{"certificate", &tls.CertificateVerificationError{Err: x509.UnknownAuthorityError{}}, FailTLS, false, Permanent},
		{"not TLS", tls.RecordHeaderError{Msg: "first record does not look like a TLS handshake"}, FailTLS, false, Permanent},
		{"HTTP answer to TLS", http.ErrSchemeMismatch, FailTLS, false, Permanent},
		{"other", errors.New("something"), FailOther, false, Retryable},
	} {
		if got := ClassifyTransport(tc.err); got != tc.class {
			t.Errorf("%s: class %q, want %q", tc.name, got, tc.class)
		}
		if v := Classify("GET", Attempt{Err: tc.err}, MustStatusSet("408,425,429,500,502,503,504"), false); v.Kind != tc.kind {
			t.Errorf("%s: GET verdict %v, want %v", tc.name, v.Kind, tc.kind)
		}
		post := Classify("POST", Attempt{Err: tc.err}, MustStatusSet("408,425,429,500,502,503,504"), false)
		if retried := post.Kind == Retryable; retried != tc.postRetry {
			t.Errorf("%s: POST retried %v, want %v", tc.name, retried, tc.postRetry)
		}
	}
	if ClassifyTransport(nil) != "" {
		t.Error("nil has a class")
	}
}
