package fetch

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/refetch/refetch/resilience"
)

func TestPercentile(t *testing.T) {
	seq := func(n int) []time.Duration {
		out := make([]time.Duration, n)
		for i := range out {
			out[i] = time.Duration(i+1) * time.Millisecond
		}
		return out
	}
	ms := time.Millisecond
	tests := []struct {
		name   string
		values []time.Duration
		p      float64
		want   time.Duration
	}{
		{"no values", nil, 50, 0},
		{"one value p50", seq(1), 50, ms},
		{"one value p99", seq(1), 99, ms},
		{"10 values p50", seq(10), 50, 5 * ms},
		{"10 values p90", seq(10), 90, 9 * ms},
		{"10 values p99 is the max", seq(10), 99, 10 * ms},
		{"20 values p50", seq(20), 50, 10 * ms},
		{"20 values p90", seq(20), 90, 18 * ms},
		{"20 values p99", seq(20), 99, 20 * ms},
		{"100 values p99", seq(100), 99, 99 * ms},
		{"3 values p50 rounds the rank up", seq(3), 50, 2 * ms},
		{"p100 is the max", seq(7), 100, 7 * ms},
	}
	for _, tt := range tests {
		if got := Percentile(tt.values, tt.p); got != tt.want {
			t.Errorf("%s: Percentile(p%v) = %v, want %v", tt.name, tt.p, got, tt.want)
		}
	}
}

func TestLatencyStatsSortsAndRounds(t *testing.T) {
	st := NewLatencyStats([]time.Duration{3 * time.Millisecond, 1234567 * time.Nanosecond, 2 * time.Millisecond})
	if st.Count != 3 || *st.P50 != 2 || *st.P90 != 3 || *st.P99 != 3 || *st.Max != 3 {
		t.Errorf("stats = %d %v %v %v %v", st.Count, *st.P50, *st.P90, *st.P99, *st.Max)
	}
	// Truncated to the microsecond, never rounded up.
	for d, want := range map[time.Duration]float64{1234567: 1.234, 1234999: 1.234, 999: 0, 1000: 0.001, 3 * time.Second: 3000} {
		if got := Millis(d); got != want {
			t.Errorf("Millis(%d) = %v, want %v", d, got, want)
		}
	}
	if st := NewLatencyStats(nil); st.Count != 0 || st.P50 != nil || st.Max != nil {
		t.Errorf("empty stats = %+v", st)
	}
}

// sample builds a probe sample whose trace has the given phases.
func sample(n, status int, err error, ph phases) ProbeSample {
	tr := &AttemptTrace{ended: true}
	for p, d := range ph {
		tr.Phases[p], tr.Happened[p] = d, true
		tr.Total += d
		if p < PhaseBody && status != 0 {
			tr.TTFB += d
		}
	}
	return ProbeSample{N: n, Status: status, Err: err, Class: ClassifyError(err), Trace: tr}
}

func TestProbeReportSummary(t *testing.T) {
	ms := time.Millisecond
	refused := &net.OpError{Op: "dial", Net: "tcp", Err: os.NewSyscallError("connect", syscall.ECONNREFUSED)}
	cut := &BodyCutError{Read: 10, Total: 100, Err: io.ErrUnexpectedEOF}
	tests := []struct {
		name      string
		samples   []ProbeSample
		planned   int
		successes int
		rate      *float64
		statuses  map[string]int
		errs      map[string]int
		ttfbCount int
		slowPhase string
		slowCount int
		below     map[float64]bool
	}{
		{name: "nothing ended", planned: 5, statuses: map[string]int{}, errs: map[string]int{},
			below: map[float64]bool{1: false}},
		{name: "7 of 10 succeed, one slow first byte",
			samples: []ProbeSample{
				sample(1, 200, nil, phases{PhaseConnect: ms, PhaseFirstByte: 2 * ms, PhaseBody: ms}),
				sample(2, 503, nil, phases{PhaseConnect: ms, PhaseFirstByte: ms, PhaseBody: ms}),
				sample(3, 200, nil, phases{PhaseConnect: ms, PhaseFirstByte: 2 * ms, PhaseBody: ms}),
				sample(4, 200, nil, phases{PhaseConnect: ms, PhaseFirstByte: 900 * ms, PhaseBody: ms}),
				sample(5, 503, nil, phases{PhaseConnect: ms, PhaseFirstByte: ms, PhaseBody: ms}),
				sample(6, 200, nil, phases{PhaseConnect: ms, PhaseFirstByte: 2 * ms, PhaseBody: ms}),
				sample(7, 200, nil, phases{PhaseConnect: ms, PhaseFirstByte: 2 * ms, PhaseBody: ms}),
				sample(8, 200, nil, phases{PhaseConnect: ms, PhaseFirstByte: 2 * ms, PhaseBody: ms}),
				sample(9, 0, refused, phases{PhaseConnect: ms}),
				sample(10, 200, nil, phases{PhaseConnect: ms, PhaseFirstByte: 3 * ms, PhaseBody: ms}),
			},
			planned: 10, successes: 7, rate: ptr(0.7),
			statuses: map[string]int{"200": 7, "503": 2}, errs: map[string]int{"refused": 1}, ttfbCount: 9,
			// p90 of the totals is the 9th of 10 (5ms): the 900ms one and the 5ms one.
			slowPhase: "first_byte", slowCount: 2,
			below: map[float64]bool{0.7: false, 0.71: true, 0.69: false, 0: false, 1: true}},
		{name: "a 200 whose body was cut counts as its error, not its status",
			samples: []ProbeSample{
				sample(1, 200, cut, phases{PhaseConnect: ms, PhaseFirstByte: ms, PhaseBody: 40 * ms}),
				sample(2, 200, nil, phases{PhaseConnect: ms, PhaseFirstByte: ms, PhaseBody: ms}),
			},
			planned: 3, successes: 1, rate: ptr(0.5),
			statuses: map[string]int{"200": 1}, errs: map[string]int{"closed": 1}, ttfbCount: 2,
			slowPhase: "body", slowCount: 1,
			below: map[float64]bool{0.5: false, 0.51: true}},
	}
	u, _ := url.Parse("http://user:pw@127.0.0.1:1/x")
	for _, tt := range tests {
		rep := NewProbeReport(&Request{Method: "GET", URL: u}, tt.samples, tt.planned, 200*ms, time.Second)
		if rep.URL != "http://user:REDACTED@127.0.0.1:1/x" {
			t.Errorf("%s: URL %q", tt.name, rep.URL)
		}
		if rep.Requests != len(tt.samples) || rep.Complete != (len(tt.samples) == tt.planned) || rep.Successes != tt.successes {
			t.Errorf("%s: requests %d complete %v successes %d", tt.name, rep.Requests, rep.Complete, rep.Successes)
		}
		if (rep.SuccessRate == nil) != (tt.rate == nil) || rep.SuccessRate != nil && *rep.SuccessRate != *tt.rate {
			t.Errorf("%s: success rate %v, want %v", tt.name, rep.SuccessRate, tt.rate)
		}
		if fmt.Sprint(rep.Statuses) != fmt.Sprint(tt.statuses) || fmt.Sprint(rep.Errors) != fmt.Sprint(tt.errs) {
			t.Errorf("%s: statuses %v errors %v", tt.name, rep.Statuses, rep.Errors)
		}
		if rep.LatencyMS.FirstByte.Count != tt.ttfbCount || rep.LatencyMS.Total.Count != len(tt.samples) {
			t.Errorf("%s: latency counts %d/%d", tt.name, rep.LatencyMS.FirstByte.Count, rep.LatencyMS.Total.Count)
		}
		if len(rep.Samples) != len(tt.samples) {
			t.Errorf("%s: %d samples in the report", tt.name, len(rep.Samples))
		}
		switch {
		case tt.slowPhase == "" && rep.Slowest != nil:
			t.Errorf("%s: slowest = %+v, want none", tt.name, rep.Slowest)
		case tt.slowPhase != "" && (rep.Slowest == nil || rep.Slowest.Phase == nil || *rep.Slowest.Phase != tt.slowPhase ||
			rep.Slowest.Count != tt.slowCount || rep.Slowest.Share <= 0 || rep.Slowest.Share > 1):
			t.Errorf("%s: slowest = %+v, want %s over %d", tt.name, rep.Slowest, tt.slowPhase, tt.slowCount)
		}
		for rate, want := range tt.below {
			if got := rep.Below(rate); got != want {
				t.Errorf("%s: Below(%v) = %v, want %v", tt.name, rate, got, want)
			}
		}
	}
}

func TestProbeReportRetryAfterAndExamples(t *testing.T) {
	timeout := &resilience.TimeoutError{After: time.Second, Err: context.DeadlineExceeded}
	s := []ProbeSample{sample(1, 429, nil, nil), sample(2, 429, nil, nil), sample(3, 503, nil, nil),
		sample(4, 0, timeout, nil), sample(5, 0, timeout, nil)}
	s[0].RetryAfter, s[1].RetryAfter, s[2].RetryAfter = "1", "1", "120"
	rep := NewProbeReport(&Request{Method: "GET", URL: &url.URL{Scheme: "http", Host: "h"}}, s, 5, time.Second, time.Second)
	if fmt.Sprint(rep.RetryAfter) != "[{1 2} {120 1}]" {
		t.Errorf("retry_after = %v", rep.RetryAfter)
	}
	if rep.ErrorExamples["timeout"] != "attempt timed out after 1s" || rep.Errors["timeout"] != 2 {
		t.Errorf("errors %v, examples %v", rep.Errors, rep.ErrorExamples)
	}
}

func ptr[T any](v T) *T { return &v }

// TestClassifyErrorTyped: every class comes from the error's type, through
// any wrapping, and never from its text.
func TestClassifyErrorTyped(t *testing.T) {
	dnsErr := &net.DNSError{Err: "no such host", Name: "x.invalid", IsNotFound: true}
	refused := &net.OpError{Op: "dial", Net: "tcp", Err: os.NewSyscallError("connect", syscall.ECONNREFUSED)}
	reset := &net.OpError{Op: "read", Net: "tcp", Err: os.NewSyscallError("read", syscall.ECONNRESET)}
	tests := []struct {
		name string
		err  error
		want ErrorClass
	}{
		{"nil", nil, ""},
		{"refused", refused, ClassRefused},
		{"refused in a url.Error", &url.Error{Op: "Get", URL: "http://x", Err: refused}, ClassRefused},
		{"reset", reset, ClassReset},
		{"reset in a cut body", &BodyCutError{Read: 1, Err: reset}, ClassReset},
		{"broken pipe", os.NewSyscallError("write", syscall.EPIPE), ClassReset},
		{"dns", dnsErr, ClassDNS},
		{"dns wrapped", fmt.Errorf("lookup: %w", dnsErr), ClassDNS},
		{"dns timeout is dns", &net.DNSError{Err: "i/o timeout", Name: "x", IsTimeout: true}, ClassDNS},
		{"attempt timeout", &resilience.TimeoutError{After: time.Second, Err: context.DeadlineExceeded}, ClassTimeout},
		{"deadline", fmt.Errorf("x: %w", context.DeadlineExceeded), ClassTimeout},
		{"tls record header", tls.RecordHeaderError{Msg: "first record does not look like a TLS handshake"}, ClassTLS},
		{"tls alert", tls.AlertError(40), ClassTLS},
		{"plain HTTP answer to https", &url.Error{Op: "Get", URL: "https://x", Err: http.ErrSchemeMismatch}, ClassTLS},
		{"server closed before answering", fmt.Errorf("server closed the connection without a response (%w)", io.EOF), ClassClosed},
		{"body cut short", &BodyCutError{Read: 3, Total: 10, Err: io.ErrUnexpectedEOF}, ClassClosed},
		{"too many redirects", fmt.Errorf("%w (more than 10)", ErrTooManyRedirects), ClassRedirects},
		{"body too large", fmt.Errorf("%w (5 bytes)", ErrTooLarge), ClassTooLarge},
		{"headers too large", ErrHeadersTooLarge, ClassTooLarge},
		// Text never decides: these only look like known classes.
		{"text that says refused", errors.New("connect: connection refused"), ClassOther},
		{"text that says timeout", errors.New("i/o timeout"), ClassOther},
		{"text that says EOF", errors.New("unexpected EOF"), ClassOther},
	}
	for _, tt := range tests {
		if got := ClassifyError(tt.err); got != tt.want {
			t.Errorf("%s: ClassifyError(%v) = %q, want %q", tt.name, tt.err, got, tt.want)
		}
	}
}

// TestClassifyRealFailures: the errors a real request gets from real
// misbehaving peers land in their classes.
func TestClassifyRealFailures(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closedAddr := ln.Addr().String()
	ln.Close()
	// A peer that reads the request, then resets the connection.
	resetter := rawServer(t, func(c net.Conn) {
		readRequest(c)
		c.(*net.TCPConn).SetLinger(0)
		c.Close()
	})
	// A peer that reads the request, then closes without answering.
	closer := rawServer(t, func(c net.Conn) {
		readRequest(c)
		c.Close()
	})
	stall := make(chan struct{})
	staller := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-stall:
		case <-r.Context().Done():
		}
	}))
	defer staller.Close()
	defer close(stall)
	tlsSrv := httptest.NewTLSServer(http.NotFoundHandler())
	defer tlsSrv.Close()
	plain := httptest.NewServer(http.NotFoundHandler())
	defer plain.Close()
	tests := []struct {
		name    string
		url     string
		timeout time.Duration
		want    ErrorClass
	}{
		{"nothing listening", "http://" + closedAddr + "/", 0, ClassRefused},
		{"reset after the request", "http://" + resetter + "/", 0, ClassReset},
		{"closed without an answer", "http://" + closer + "/", 0, ClassClosed},
		{"no first byte before --timeout", staller.URL, 50 * time.Millisecond, ClassTimeout},
		{"certificate of an unknown authority", tlsSrv.URL, 0, ClassTLS},
		{"https to a plain server", strings.Replace(plain.URL, "http:", "https:", 1), 0, ClassTLS},
	}
	for _, tt := range tests {
		u, _ := url.Parse(tt.url)
		cfg := ProbeConfig{Request: &Request{Method: "GET", URL: u, MaxRedirs: 10}, Count: 1, Interval: time.Second, Timeout: tt.timeout}
		samples, err := Probe(context.Background(), cfg)
		if err != nil || len(samples) != 1 {
			t.Fatalf("%s: %v, %d samples", tt.name, err, len(samples))
		}
		if s := samples[0]; s.Class != tt.want || s.Success() {
			t.Errorf("%s: class %q (%v), want %q", tt.name, s.Class, s.Err, tt.want)
		}
	}
}

// rawServer accepts TCP connections on loopback and hands each to serve.
func rawServer(t *testing.T, serve func(net.Conn)) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	t.Cleanup(func() { ln.Close(); wg.Wait() })
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			serve(c)
		}
	}()
	return ln.Addr().String()
}

// readRequest reads a request's head (refetch's probes send no body).
func readRequest(c net.Conn) {
	buf := make([]byte, 0, 4096)
	tmp := make([]byte, 1024)
	for !strings.Contains(string(buf), "\r\n\r\n") {
		n, err := c.Read(tmp)
		if err != nil {
			return
		}
		buf = append(buf, tmp[:n]...)
	}
}

// probeTimer is a timer of clock that records each wait in waits and,
// while hold (if set) says so, never fires.
func probeTimer(clock *testClock, waits *[]time.Duration, hold func() bool) resilience.Timer {
	t := clock.Clock.NewTimer()
	t.OnStart = func(d time.Duration) { *waits = append(*waits, d) }
	t.Hold = hold
	return t
}

// TestProbeIntervalIsStartToStart: the wait after a request is the
// interval less the request's own time, none after a request slower than
// the interval and none after the last; requests are sequential.
func TestProbeIntervalIsStartToStart(t *testing.T) {
	clock := newTestClockAt(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
	costs := []time.Duration{50 * time.Millisecond, 300 * time.Millisecond, 0, 200 * time.Millisecond}
	var mu sync.Mutex
	hits, inFlight, maxInFlight := 0, 0, 0
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		inFlight++
		maxInFlight = max(maxInFlight, inFlight)
		clock.Advance(costs[hits])
		hits++
		mu.Unlock()
		fmt.Fprint(w, "ok")
		mu.Lock()
		inFlight--
		mu.Unlock()
	}))
	defer srv.Close()
	u, _ := url.Parse(srv.URL)
	var waits []time.Duration
	samples, err := Probe(context.Background(), ProbeConfig{
		Request: &Request{Method: "GET", URL: u}, Count: 4, Interval: 200 * time.Millisecond,
		Clock:    clock,
		NewTimer: func() resilience.Timer { return probeTimer(clock, &waits, nil) },
	})
	if err != nil || len(samples) != 4 {
		t.Fatalf("%v, %d samples", err, len(samples))
	}
	want := []time.Duration{150 * time.Millisecond, 200 * time.Millisecond}
	if fmt.Sprint(waits) != fmt.Sprint(want) {
		t.Errorf("waits = %v, want %v", waits, want)
	}
	if maxInFlight != 1 {
		t.Errorf("%d requests at once", maxInFlight)
	}
	for i, s := range samples {
		if s.N != i+1 || !s.Success() || s.Trace.Reused {
			t.Errorf("sample %d: n %d, status %d, err %v, reused %v", i, s.N, s.Status, s.Err, s.Trace.Reused)
		}
	}
}

// TestProbeStopsAtOnceWhenCancelled: a cancellation ends the probe at
// once, during a wait or right after a request, with the requests done and
// the cause.
func TestProbeStopsAtOnceWhenCancelled(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { fmt.Fprint(w, "ok") }))
	defer srv.Close()
	u, _ := url.Parse(srv.URL)
	cause := errors.New("signal")
	for _, tc := range []struct {
		name           string
		duringWait     bool // else right after the second request
		samples, waits int
	}{{"during the second wait", true, 2, 2}, {"after the second request", false, 2, 1}} {
		clock := newTestClockAt(time.Time{})
		var waits []time.Duration
		ctx, cancel := context.WithCancelCause(context.Background())
		cfg := ProbeConfig{Request: &Request{Method: "GET", URL: u}, Count: 5, Interval: time.Hour, Clock: clock}
		if tc.duringWait {
			// The second wait is cancelled while it runs, and never ends by itself.
			cfg.NewTimer = func() resilience.Timer {
				return probeTimer(clock, &waits, func() bool {
					if len(waits) == 2 {
						cancel(cause)
						return true
					}
					return false
				})
			}
		} else {
			cfg.NewTimer = func() resilience.Timer { return probeTimer(clock, &waits, nil) }
			cfg.OnSample = func(s ProbeSample) {
				if s.N == 2 {
					cancel(cause)
				}
			}
		}
		samples, err := Probe(ctx, cfg)
		cancel(nil)
		if !errors.Is(err, cause) || len(samples) != tc.samples || len(waits) != tc.waits {
			t.Errorf("%s: err %v, %d samples, waits %v; want the cause, %d samples and %d waits",
				tc.name, err, len(samples), waits, tc.samples, tc.waits)
		}
	}
}
