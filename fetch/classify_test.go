package fetch

import (
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"strings"
	"syscall"
	"testing"

	"github.com/refetch/refetch/resilience"
)

func TestClassifyFetchErrorsAreFinalAndSpareTheBreaker(t *testing.T) {
	p := resilience.Policy{RetryOn: resilience.MustStatusSet("408,425,429,500,502,503,504")}
	reset := &net.OpError{Op: "read", Net: "tcp", Err: &os.SyscallError{Syscall: "read", Err: syscall.ECONNRESET}}
	cut := &BodyCutError{Read: 10, Total: 100, Err: io.ErrUnexpectedEOF}
	tests := []struct {
		name    string
		a       resilience.Attempt
		kind    resilience.Kind
		breaker resilience.Effect
	}{
		{"redirects", resilience.Attempt{Err: fmt.Errorf("%w (more than 10)", ErrTooManyRedirects)}, resilience.Permanent, resilience.Ignore},
		{"too large", resilience.Attempt{Status: 200, Err: ErrTooLarge}, resilience.Permanent, resilience.Ignore},
		{"headers too large", resilience.Attempt{Err: fmt.Errorf("%w: x", ErrHeadersTooLarge)}, resilience.Permanent, resilience.Ignore},
		{"partial stream", resilience.Attempt{Status: 200, Err: &BodyCutError{Read: 1, Streamed: true, Err: io.ErrUnexpectedEOF}}, resilience.Permanent, resilience.Ignore},
		{"partial stream timed out", resilience.Attempt{Status: 200, Err: &resilience.TimeoutError{After: 1e9, Err: &BodyCutError{Read: 1, Streamed: true, Err: io.ErrUnexpectedEOF}}}, resilience.Permanent, resilience.Ignore},
		{"output", resilience.Attempt{Status: 200, Err: fmt.Errorf("%w: disk full", ErrOutput)}, resilience.Permanent, resilience.Ignore},
		// Everything else is the HTTP classification's.
		{"cut body", resilience.Attempt{Status: 200, Err: cut}, resilience.Retryable, resilience.CountFailure},
		{"reset", resilience.Attempt{Err: reset}, resilience.Retryable, resilience.CountFailure},
		{"503", resilience.Attempt{Status: 503}, resilience.Retryable, resilience.CountFailure},
		{"404", resilience.Attempt{Status: 404}, resilience.Permanent, resilience.Ignore},
		{"200", resilience.Attempt{Status: 200}, resilience.Success, resilience.CountSuccess},
	}
	for _, tt := range tests {
		v := Classify("GET", tt.a, p)
		if v.Kind != tt.kind || v.Breaker != tt.breaker {
			t.Errorf("%s: Classify = {%v %v}, want {%v %v}", tt.name, v.Kind, v.Breaker, tt.kind, tt.breaker)
		}
	}
}

func TestHeadersTooLargeRecognisesNetHTTPsError(t *testing.T) {
	// The one error text refetch looks at: keep it in step with net/http.
	if !headersTooLarge(fmt.Errorf("net/http: server response headers exceeded %d bytes; aborted", 1<<20)) {
		t.Error("net/http's header-size error not recognised")
	}
	if headersTooLarge(io.EOF) || headersTooLarge(nil) {
		t.Error("other errors taken for the header-size error")
	}
}

func TestBodyCutMessages(t *testing.T) {
	for n, want := range map[int64]string{0: "0 B", 1023: "1023 B", 1024: "1.0 KiB", 1536: "1.5 KiB", 5 << 20: "5.0 MiB", 3 << 30: "3.0 GiB"} {
		if got := FormatBytes(n); got != want {
			t.Errorf("FormatBytes(%d) = %s, want %s", n, got, want)
		}
	}
	cut := &BodyCutError{Read: 12 << 20, Total: 2 << 30, Err: io.ErrUnexpectedEOF}
	if got := cut.Error(); got != "the server closed the connection after 12.0 MiB of 2.0 GiB" {
		t.Errorf("BodyCutError = %q", got)
	}
	resetCut := &BodyCutError{Read: 5 << 20, Total: 16 << 20, Err: &net.OpError{Op: "read", Net: "tcp", Err: os.NewSyscallError("read", syscall.ECONNRESET)}}
	if got := resetCut.Error(); got != "the server reset the connection after 5.0 MiB of 16.0 MiB" {
		t.Errorf("BodyCutError of a reset = %q", got)
	}
	if got := (&BodyCutError{Read: 0, Total: 10, Err: io.ErrUnexpectedEOF}).Error(); got != "the server closed the connection before the body's first byte" {
		t.Errorf("BodyCutError before the first byte = %q", got)
	}
	if got := (&BodyCutError{Read: 10, Total: 20, Err: errors.New("odd")}).Error(); got != "body cut short after 10 B of 20 B: odd" {
		t.Errorf("BodyCutError of another error = %q", got)
	}
	te := &resilience.TimeoutError{After: 30e9, Err: cut}
	if got := te.Error(); got != "attempt timed out after 30s with 12.0 MiB of 2.0 GiB received" {
		t.Errorf("TimeoutError = %q", got)
	}
	if strings.Contains(te.Error(), "--") {
		t.Errorf("a message below cmd names a flag: %q", te.Error())
	}
	// Rounded figures that read alike though the body is short give the
	// exact counts (a tour read "2.9 MiB of 2.9 MiB" as whole).
	short := &BodyCutError{Read: 2_995_000, Total: 3_000_000, Err: io.ErrUnexpectedEOF}
	if got := short.Error(); got != "the server closed the connection after 2,995,000 of 3,000,000 bytes" {
		t.Errorf("a body a little short = %q", got)
	}
	// A timed-out attempt that had started over says so: the retry line
	// that follows resumes from its bytes, not the earlier attempt's.
	over := &BodyCutError{Read: 1 << 20, Total: 3 << 20, StartedOver: "the server sent a new version", From: 0, Err: io.ErrUnexpectedEOF}
	if got := (&resilience.TimeoutError{After: 1e9, Err: over}).Error(); got != "attempt timed out after 1s with 1.0 MiB of 3.0 MiB received (this attempt started over: the server sent a new version)" {
		t.Errorf("TimeoutError of a restart = %q", got)
	}
	streamed := &BodyCutError{Read: 1, Streamed: true, Err: io.ErrUnexpectedEOF}
	if got := (&resilience.TimeoutError{After: 1e9, Err: streamed}).Error(); !strings.Contains(got, "partly streamed, so it is not retried") {
		t.Errorf("TimeoutError of a streamed body = %q", got)
	}
}

// A reset before any response reads in words, and keeps its class.
func TestResetBeforeResponseInWords(t *testing.T) {
	reset := &net.OpError{Op: "read", Net: "tcp", Err: os.NewSyscallError("read", syscall.ECONNRESET)}
	err := unwrapURLError(&url.Error{Op: "Get", URL: "http://x", Err: reset})
	if err.Error() != "the server reset the connection before its response" {
		t.Errorf("message %q", err)
	}
	if c := resilience.ClassifyTransport(err); c != resilience.FailReset {
		t.Errorf("class %q", c)
	}
}
