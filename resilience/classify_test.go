package resilience

import (
	"context"
	"crypto/x509"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"syscall"
	"testing"
)

func TestClassify(t *testing.T) {
	retryOn := MustStatusSet("408,425,429,500,502,503,504")
	refused := &net.OpError{Op: "dial", Net: "tcp", Err: &os.SyscallError{Syscall: "connect", Err: syscall.ECONNREFUSED}}
	reset := &net.OpError{Op: "read", Net: "tcp", Err: &os.SyscallError{Syscall: "read", Err: syscall.ECONNRESET}}
	dnsTemp := &net.DNSError{Err: "server misbehaving", Name: "x", IsTemporary: true}
	dnsGone := &net.DNSError{Err: "no such host", Name: "x", IsNotFound: true}
	tests := []struct {
		name    string
		method  string
		a       Attempt
		unsafe  bool
		kind    Kind
		breaker Effect
		blocked bool
	}{
		{"200", "GET", Attempt{Status: 200}, false, Success, CountSuccess, false},
		{"204", "GET", Attempt{Status: 204}, false, Success, CountSuccess, false},
		{"503", "GET", Attempt{Status: 503}, false, Retryable, CountFailure, false},
		{"500", "GET", Attempt{Status: 500}, false, Retryable, CountFailure, false},
		{"408", "GET", Attempt{Status: 408}, false, Retryable, CountFailure, false},
		{"429 does not count", "GET", Attempt{Status: 429}, false, Retryable, Ignore, false},
		{"404", "GET", Attempt{Status: 404}, false, Permanent, Ignore, false},
		{"401", "GET", Attempt{Status: 401}, false, Permanent, Ignore, false},
		{"501", "GET", Attempt{Status: 501}, false, Permanent, Ignore, false},
		{"304 is not success", "GET", Attempt{Status: 304}, false, Permanent, Ignore, false},
		{"PUT 503", "PUT", Attempt{Status: 503}, false, Retryable, CountFailure, false},
		{"DELETE reset", "DELETE", Attempt{Err: reset}, false, Retryable, CountFailure, false},
		{"POST 503 not retried", "POST", Attempt{Status: 503}, false, Permanent, CountFailure, true},
		{"PATCH 502 not retried", "PATCH", Attempt{Status: 502}, false, Permanent, CountFailure, true},
		{"POST 429 retried", "POST", Attempt{Status: 429}, false, Retryable, Ignore, false},
		{"POST refused retried", "POST", Attempt{Err: refused}, false, Retryable, CountFailure, false},
		{"POST DNS temporary retried", "POST", Attempt{Err: dnsTemp}, false, Retryable, CountFailure, false},
		{"POST reset not retried", "POST", Attempt{Err: reset}, false, Permanent, CountFailure, true},
		{"POST cut body not retried", "POST", Attempt{Status: 200, Err: io.ErrUnexpectedEOF}, false, Permanent, CountFailure, true},
		{"POST 503 --retry-unsafe", "POST", Attempt{Status: 503}, true, Retryable, CountFailure, false},
		{"POST reset --retry-unsafe", "POST", Attempt{Err: reset}, true, Retryable, CountFailure, false},
		{"refused", "GET", Attempt{Err: refused}, false, Retryable, CountFailure, false},
		{"reset", "GET", Attempt{Err: fmt.Errorf("read: %w", reset)}, false, Retryable, CountFailure, false},
		{"body cut short", "GET", Attempt{Status: 200, Err: io.ErrUnexpectedEOF}, false, Retryable, CountFailure, false},
		{"timeout", "GET", Attempt{Err: &TimeoutError{}}, false, Retryable, CountFailure, false},
		{"DNS temporary", "GET", Attempt{Err: dnsTemp}, false, Retryable, CountFailure, false},
		{"DNS not found", "GET", Attempt{Err: dnsGone}, false, Permanent, Ignore, false},
		{"unknown CA", "GET", Attempt{Err: x509.UnknownAuthorityError{}}, false, Permanent, Ignore, false},
		{"bad hostname", "GET", Attempt{Err: fmt.Errorf("tls: %w", x509.HostnameError{Host: "x"})}, false, Permanent, Ignore, false},
		{"cancelled", "GET", Attempt{Err: context.Canceled}, false, Cancelled, Ignore, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v := Classify(tt.method, tt.a, retryOn, tt.unsafe)
			if v.Kind != tt.kind || v.Breaker != tt.breaker || v.UnsafeNotRetried != tt.blocked {
				t.Errorf("Classify = {%v %v unsafe=%v}, want {%v %v unsafe=%v}",
					v.Kind, v.Breaker, v.UnsafeNotRetried, tt.kind, tt.breaker, tt.blocked)
			}
			if tt.kind != Success && v.Err == nil {
				t.Errorf("failure verdict has no error")
			}
		})
	}
}

func TestClassifyCustomRetryOn(t *testing.T) {
	set := MustStatusSet("404")
	if v := Classify("GET", Attempt{Status: 404}, set, false); v.Kind != Retryable {
		t.Errorf("404 in --retry-on: got %v", v.Kind)
	}
	if v := Classify("GET", Attempt{Status: 503}, set, false); v.Kind != Permanent {
		t.Errorf("503 not in --retry-on: got %v", v.Kind)
	}
}

func BenchmarkClassify(b *testing.B) {
	retryOn := MustStatusSet("408,425,429,500,502,503,504")
	reset := &net.OpError{Op: "read", Net: "tcp", Err: &os.SyscallError{Syscall: "read", Err: syscall.ECONNRESET}}
	for i := 0; i < b.N; i++ {
		Classify("GET", Attempt{Status: 503}, retryOn, false)
		Classify("POST", Attempt{Err: reset}, retryOn, false)
	}
}

// The one rule for repeating an unsafe method: --retry-unsafe or an
// Idempotency-Key header.
func TestRepeatOptIn(t *testing.T) {
	keyed := http.Header{"Idempotency-Key": {"k1"}}
	if RepeatOptIn(http.Header{}, false) || !RepeatOptIn(http.Header{}, true) || !RepeatOptIn(keyed, false) {
		t.Error("RepeatOptIn: want --retry-unsafe or an Idempotency-Key")
	}
}
