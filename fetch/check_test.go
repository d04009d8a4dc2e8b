package fetch

import (
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/refetch/refetch/internal/fakeclock"
	"github.com/refetch/refetch/resilience/store"

	"github.com/refetch/refetch/resilience"
)

// Check builds its own client (NewClient), so these tests talk to real
// loopback servers: redirects and connection errors are the real ones.
// Time is the fake clock's: waits and latency take no time.

// sequence is a handler that answers hit n with handlers[n], repeating the
// last one; it counts the hits.
type sequence struct {
	mu       sync.Mutex
	hits     int
	handlers []http.HandlerFunc
}

func (s *sequence) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	n := s.hits
	s.hits++
	s.mu.Unlock()
	s.handlers[min(n, len(s.handlers)-1)](w, r)
}

func (s *sequence) count() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.hits
}

func reply200(body string, kv ...string) http.HandlerFunc {
	return replyStatus(200, body, kv...)
}

func replyStatus(code int, body string, kv ...string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		for i := 0; i+1 < len(kv); i += 2 {
			w.Header().Add(kv[i], kv[i+1])
		}
		w.WriteHeader(code)
		fmt.Fprint(w, body)
	}
}

func checkRequest(t *testing.T, raw string) *Request {
	t.Helper()
	return &Request{Method: http.MethodGet, URL: mustURL(t, raw), Header: http.Header{}, MaxRedirs: 10, MaxSize: 1 << 20}
}

// checkPolicy is the policy cmd gives check by default (jitter off).
func checkPolicy() resilience.Policy {
	return resilience.Policy{Attempts: 3, Delay: time.Second, Multiplier: 2, Cap: 10 * time.Second,
		RetryOn: resilience.MustStatusSet("408,425,429,500,502,503,504"), RetryUnsafe: true, MaxRetryAfter: time.Minute}
}

func expectStatus(s string) *Expectations {
	return &Expectations{Status: resilience.MustStatusSet(s), StatusText: s}
}

func mustJQ(t *testing.T, expr string) *Expectations {
	t.Helper()
	code, err := CompileJQ(expr)
	if err != nil {
		t.Fatal(err)
	}
	e := expectStatus("2xx")
	e.JSON, e.JSONText = code, expr
	return e
}

func mustHeader(t *testing.T, s string) *Expectations {
	t.Helper()
	h, err := ParseHeaderExpectation(s)
	if err != nil {
		t.Fatal(err)
	}
	e := expectStatus("2xx")
	e.Headers = []HeaderExpectation{h}
	return e
}

func TestCheckOne(t *testing.T) {
	clockOf := func(r *http.Request) *testClock { return r.Context().Value(clockKey{}).(*testClock) }
	tests := []struct {
		name     string
		handlers []http.HandlerFunc
		expect   func(t *testing.T) *Expectations
		policy   func(p *resilience.Policy)
		maxSize  int64 // 0: 1 MiB
		breaker  func(t *testing.T, clock *testClock) func(*Request) *resilience.Breaker

		healthy  bool
		failed   []string // parts of the failures, in order
		notIn    string   // never in the failures
		attempts int
		hits     int // 0: attempts
		status   int // 0: none reported
		latency  int64
		waits    []time.Duration
		errClass error
	}{
		{name: "healthy", handlers: []http.HandlerFunc{reply200("ok")},
			healthy: true, attempts: 1, status: 200},
		{name: "status not expected", handlers: []http.HandlerFunc{replyStatus(500, "oops")},
			failed: []string{"status 500 not in 2xx"}, attempts: 3, status: 500, errClass: resilience.ErrRetriesExhausted,
			waits: []time.Duration{time.Second, 2 * time.Second}},
		{name: "a 404 is retried too: a service coming up may not route yet",
			handlers: []http.HandlerFunc{replyStatus(404, ""), reply200("up")},
			healthy:  true, attempts: 2, status: 200},
		{name: "body regex", handlers: []http.HandlerFunc{reply200("starting")},
			expect: func(t *testing.T) *Expectations {
				e := expectStatus("2xx")
				e.Body = regexp.MustCompile("ready")
				return e
			},
			failed: []string{"body does not match /ready/"}, attempts: 3, status: 200, errClass: resilience.ErrRetriesExhausted},
		{name: "jq true", handlers: []http.HandlerFunc{reply200(`{"status":"ok"}`)},
			expect:  func(t *testing.T) *Expectations { return mustJQ(t, `.status == "ok"`) },
			healthy: true, attempts: 1, status: 200},
		{name: "jq false", handlers: []http.HandlerFunc{reply200(`{"status":"down"}`)},
			expect: func(t *testing.T) *Expectations { return mustJQ(t, `.status == "ok"`) },
			failed: []string{`.status == "ok" yielded false, not true`}, attempts: 3, status: 200},
		{name: "jq on a body that is not JSON", handlers: []http.HandlerFunc{reply200("<html>")},
			expect: func(t *testing.T) *Expectations { return mustJQ(t, `.status == "ok"`) },
			failed: []string{"body is not JSON"}, attempts: 3, status: 200},
		{name: "jq that yields nothing", handlers: []http.HandlerFunc{reply200(`{}`)},
			expect: func(t *testing.T) *Expectations { return mustJQ(t, `empty`) },
			failed: []string{"yielded nothing"}, attempts: 3, status: 200},
		{name: "jq every value must be true", handlers: []http.HandlerFunc{reply200(`[true, false]`)},
			expect: func(t *testing.T) *Expectations { return mustJQ(t, `.[]`) },
			failed: []string{"yielded false"}, attempts: 3, status: 200},
		{name: "header missing", handlers: []http.HandlerFunc{reply200("ok")},
			expect: func(t *testing.T) *Expectations { return mustHeader(t, "X-Ready: ^yes$") },
			failed: []string{"header X-Ready missing"}, attempts: 3, status: 200},
		{name: "header does not match", handlers: []http.HandlerFunc{reply200("ok", "X-Ready", "no")},
			expect: func(t *testing.T) *Expectations { return mustHeader(t, "x-ready: ^yes$") },
			failed: []string{`header X-Ready: "no" does not match /^yes$/`}, attempts: 3, status: 200},
		{name: "header matches one of its values", handlers: []http.HandlerFunc{reply200("ok", "X-Ready", "yes", "X-Ready", "no")},
			expect:  func(t *testing.T) *Expectations { return mustHeader(t, "X-Ready: ^yes$") },
			healthy: true, attempts: 1, status: 200},
		{name: "a secret header is not shown", handlers: []http.HandlerFunc{reply200("ok", "Set-Cookie", "session=hunter2")},
			expect: func(t *testing.T) *Expectations { return mustHeader(t, "Set-Cookie: ^id=") },
			failed: []string{"header Set-Cookie:"}, notIn: "hunter2", attempts: 3, status: 200},
		{name: "latency over the bound",
			handlers: []http.HandlerFunc{func(w http.ResponseWriter, r *http.Request) {
				clockOf(r).Advance(2 * time.Second)
				fmt.Fprint(w, "slow")
			}},
			expect: func(t *testing.T) *Expectations {
				e := expectStatus("2xx")
				e.MaxLatency = time.Second
				return e
			},
			failed: []string{"latency 2s over 1s"}, attempts: 3, status: 200, latency: 2000},
		{name: "latency within the bound",
			handlers: []http.HandlerFunc{func(w http.ResponseWriter, r *http.Request) {
				clockOf(r).Advance(500 * time.Millisecond)
				fmt.Fprint(w, "quick")
			}},
			expect: func(t *testing.T) *Expectations {
				e := expectStatus("2xx")
				e.MaxLatency = time.Second
				return e
			},
			healthy: true, attempts: 1, status: 200, latency: 500},
		{name: "retries until healthy",
			handlers: []http.HandlerFunc{replyStatus(503, ""), replyStatus(503, ""), reply200("ok")},
			healthy:  true, attempts: 3, status: 200, waits: []time.Duration{time.Second, 2 * time.Second}},
		{name: "a body over the size bound is no answer",
			handlers: []http.HandlerFunc{reply200("0123456789")}, maxSize: 4,
			failed: []string{"body exceeds the size limit: Content-Length 10 > 4"}, attempts: 3, status: 200},
		{name: "a gzip body over the size bound once decoded is no answer, as in fetch",
			handlers: []http.HandlerFunc{replyGzip(strings.Repeat("a", 5000))}, maxSize: 1000,
			failed: []string{"body exceeds the size limit (1000 bytes)"}, attempts: 3, status: 200},
		{name: "a gzip body within the size bound once decoded",
			handlers: []http.HandlerFunc{replyGzip(strings.Repeat("a", 1000))}, maxSize: 1000,
			healthy: true, attempts: 1, status: 200},
		{name: "a body that says gzip and is not, with a size bound and no body expectation",
			handlers: []http.HandlerFunc{replyStatus(200, "this is not gzip", "Content-Encoding", "gzip")}, maxSize: 1000,
			healthy: true, attempts: 1, status: 200},
		{name: "rate limited beyond the longest wait",
			handlers: []http.HandlerFunc{replyStatus(429, "", "Retry-After", "3600")},
			failed:   []string{"status 429 not in 2xx", "the server asked to retry after 1h0m0s, longer than check waits without a time limit (1m0s)"},
			attempts: 1, status: 429, errClass: resilience.ErrRateLimited},
		{name: "no attempt limit: only MaxTime ends it, with a last chance before the end",
			handlers: []http.HandlerFunc{replyStatus(503, "")},
			policy: func(p *resilience.Policy) {
				*p = resilience.Policy{Attempts: 1, NoAttemptLimit: true, Delay: 25 * time.Minute, Multiplier: 1,
					MaxTime: time.Hour, LastChance: time.Minute, RetryOn: resilience.MustStatusSet("408,425,429,500,502,503,504"), RetryUnsafe: true}
			},
			// At 0, 25m and 50m; the next full wait would pass the hour, so
			// the last attempt starts a minute before the end, at 59m.
			failed: []string{"status 503 not in 2xx", "not healthy before the time ran out"}, attempts: 4, status: 503,
			waits: []time.Duration{25 * time.Minute, 25 * time.Minute, 9 * time.Minute}, errClass: resilience.ErrDeadline},
		{name: "circuit open: nothing sent",
			handlers: []http.HandlerFunc{reply200("ok")},
			breaker: func(t *testing.T, clock *testClock) func(*Request) *resilience.Breaker {
				dir := t.TempDir()
				b := newTestBreaker(t, dir)
				tk, _ := b.Admit(context.Background(), clock.Now())
				b.Record(context.Background(), tk, resilience.Verdict{Kind: resilience.Retryable, Breaker: resilience.CountFailure, Err: errors.New("503")}, clock.Now(), time.Time{})
				return func(*Request) *resilience.Breaker { return newTestBreaker(t, dir) }
			},
			failed: []string{"circuit open: check.test is open"}, attempts: 0, hits: -1, errClass: resilience.ErrCircuitOpen},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clock := newTestClock()
			seq := &sequence{handlers: tt.handlers}
			srv := httptest.NewUnstartedServer(seq)
			srv.Config.BaseContext = func(net.Listener) context.Context {
				return context.WithValue(context.Background(), clockKey{}, clock)
			}
			srv.Start()
			defer srv.Close()
			req := checkRequest(t, srv.URL+"/health")
			if tt.maxSize != 0 {
				req.MaxSize = tt.maxSize
			}
			cfg := CheckConfig{Requests: []*Request{req}, Policy: checkPolicy(), Expect: expectStatus("2xx"),
				Clock: clock, NewTimer: clock.NewTimer}
			if tt.expect != nil {
				cfg.Expect = tt.expect(t)
			}
			if tt.policy != nil {
				tt.policy(&cfg.Policy)
			}
			if tt.breaker != nil {
				cfg.Breaker = tt.breaker(t, clock)
			}
			rep := Check(context.Background(), cfg)
			if len(rep.Results) != 1 {
				t.Fatalf("%d results", len(rep.Results))
			}
			res := rep.Results[0]
			if res.Healthy != tt.healthy || rep.Healthy != tt.healthy {
				t.Errorf("healthy %v (report %v), want %v; failed %q", res.Healthy, rep.Healthy, tt.healthy, res.Failed)
			}
			if tt.healthy && (len(res.Failed) != 0 || res.Err != nil || rep.Unhealthy() != 0) {
				t.Errorf("healthy, yet failed %q, error %v, %d unhealthy", res.Failed, res.Err, rep.Unhealthy())
			}
			if !tt.healthy && (res.Err == nil || rep.Unhealthy() != 1) {
				t.Errorf("unhealthy without an error (%v) or not counted (%d)", res.Err, rep.Unhealthy())
			}
			if tt.errClass != nil && !errors.Is(res.Err, tt.errClass) {
				t.Errorf("error %v, want %v", res.Err, tt.errClass)
			}
			joined := strings.Join(res.Failed, "; ")
			rest := joined
			for _, want := range tt.failed {
				i := strings.Index(rest, want)
				if i < 0 {
					t.Errorf("failed %q lacks %q (in order)", joined, want)
					break
				}
				rest = rest[i+len(want):]
			}
			if tt.notIn != "" && strings.Contains(joined, tt.notIn) {
				t.Errorf("failed %q shows %q", joined, tt.notIn)
			}
			if res.Attempts != tt.attempts {
				t.Errorf("%d attempts, want %d", res.Attempts, tt.attempts)
			}
			hits := tt.hits
			if hits == 0 {
				hits = tt.attempts
			}
			if hits < 0 {
				hits = 0
			}
			if seq.count() != hits {
				t.Errorf("%d requests reached the server, want %d", seq.count(), hits)
			}
			switch {
			case tt.status == 0 && res.Status != nil:
				t.Errorf("status %d reported, want none", *res.Status)
			case tt.status != 0 && (res.Status == nil || *res.Status != tt.status):
				t.Errorf("status %v, want %d", res.Status, tt.status)
			}
			if tt.latency != 0 && (res.LatencyMS == nil || *res.LatencyMS != tt.latency) {
				t.Errorf("latency %v ms, want %d", res.LatencyMS, tt.latency)
			}
			if tt.waits != nil && fmt.Sprint(clock.Waits()) != fmt.Sprint(tt.waits) {
				t.Errorf("waits %v, want %v", clock.Waits(), tt.waits)
			}
		})
	}
}

// clockKey carries the test's fake clock to a handler, which moves it to
// fake the server's latency.
type clockKey struct{}

func newTestBreaker(t *testing.T, dir string) *resilience.Breaker {
	t.Helper()
	b, err := resilience.NewBreaker(resilience.Settings{Key: "check.test", Failures: 1, Quorum: 1, Node: "n", Reset: time.Minute,
		TrialTimeout: time.Minute, Store: &store.FileStore{Dir: dir}})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestCheckExpectedRedirectIsObservedNotFollowed(t *testing.T) {
	target := &sequence{handlers: []http.HandlerFunc{reply200("moved here")}}
	mux := http.NewServeMux()
	mux.Handle("/next", target)
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "/next", http.StatusMovedPermanently)
	})
	srv := httptest.NewServer(mux)
	defer srv.Close()
	clock := newTestClock()
	for _, tc := range []struct {
		expect      string
		status      int
		targetCalls int
	}{
		{"301", 301, 0},     // a redirect is what is expected: look at it
		{"2xx", 200, 1},     // otherwise it is followed
		{"200,301", 301, 0}, // any 3xx in the set stops the following
	} {
		before := target.count()
		rep := Check(context.Background(), CheckConfig{Requests: []*Request{checkRequest(t, srv.URL+"/old")}, Policy: checkPolicy(),
			Expect: expectStatus(tc.expect), Clock: clock, NewTimer: clock.NewTimer})
		res := rep.Results[0]
		if !res.Healthy || res.Status == nil || *res.Status != tc.status || target.count()-before != tc.targetCalls {
			t.Errorf("expect %s: healthy %v, status %v, target hit %d times; failed %q", tc.expect, res.Healthy, res.Status, target.count()-before, res.Failed)
		}
	}
}

func TestCheckSeveralURLsHealthyOnlyIfAll(t *testing.T) {
	up := httptest.NewServer(reply200("ok"))
	defer up.Close()
	down := httptest.NewServer(replyStatus(500, "oops"))
	defer down.Close()
	clock := newTestClock()
	run := func(urls ...string) CheckReport {
		var reqs []*Request
		for _, u := range urls {
			reqs = append(reqs, checkRequest(t, u))
		}
		return Check(context.Background(), CheckConfig{Requests: reqs, Policy: checkPolicy(), Expect: expectStatus("2xx"),
			Clock: clock, NewTimer: clock.NewTimer})
	}
	rep := run(up.URL+"/a", down.URL+"/b", up.URL+"/c")
	if rep.Healthy || rep.Unhealthy() != 1 || len(rep.Results) != 3 {
		t.Fatalf("healthy %v, %d unhealthy of %d", rep.Healthy, rep.Unhealthy(), len(rep.Results))
	}
	for i, want := range []struct {
		url     string
		healthy bool
	}{{up.URL + "/a", true}, {down.URL + "/b", false}, {up.URL + "/c", true}} {
		if r := rep.Results[i]; r.URL != want.url || r.Healthy != want.healthy {
			t.Errorf("result %d: %s healthy %v, want %s %v (results keep the order of the URLs)", i, r.URL, r.Healthy, want.url, want.healthy)
		}
	}
	if rep := run(up.URL+"/a", up.URL+"/c"); !rep.Healthy || rep.Unhealthy() != 0 {
		t.Errorf("all up: healthy %v, %d unhealthy", rep.Healthy, rep.Unhealthy())
	}
}

func TestCheckRedactsTheURL(t *testing.T) {
	srv := httptest.NewServer(reply200("ok"))
	defer srv.Close()
	u, _ := url.Parse(srv.URL)
	u.User = url.UserPassword("probe", "hunter2")
	clock := newTestClock()
	rep := Check(context.Background(), CheckConfig{Requests: []*Request{checkRequest(t, u.String())}, Policy: checkPolicy(),
		Expect: expectStatus("2xx"), Clock: clock, NewTimer: clock.NewTimer})
	if r := rep.Results[0]; !r.Healthy || strings.Contains(r.URL, "hunter2") || !strings.Contains(r.URL, "probe") {
		t.Errorf("result URL %q, healthy %v", r.URL, r.Healthy)
	}
}

func TestCheckClientErrorIsUnhealthy(t *testing.T) {
	req := checkRequest(t, "http://check.test/")
	req.CACert = filepath.Join(t.TempDir(), "missing.pem")
	rep := Check(context.Background(), CheckConfig{Requests: []*Request{req}, Policy: checkPolicy(), Expect: expectStatus("2xx")})
	if r := rep.Results[0]; r.Healthy || r.Err == nil || r.Attempts != 0 || len(r.Failed) != 1 || !strings.Contains(r.Failed[0], "missing.pem") {
		t.Errorf("result %+v", r)
	}
}

// TestCheckCutAttemptKeepsTheLastRealFailure: when the run's time runs out
// during an attempt, that attempt says nothing about the service, so the
// report keeps what the last real attempt saw (connection refused), not
// "deadline exceeded" or "context canceled".
func TestCheckCutAttemptKeepsTheLastRealFailure(t *testing.T) {
	// A port nothing listens on: connection refused.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()

	clock := newTestClock()
	ctx, cancel := context.WithCancelCause(context.Background())
	defer cancel(nil)
	policy := checkPolicy()
	policy.NoAttemptLimit, policy.MaxTime = true, time.Hour
	rep := Check(ctx, CheckConfig{
		Requests: []*Request{checkRequest(t, "http://"+addr+"/health")}, Policy: policy, Expect: expectStatus("2xx"),
		Hooks: Hooks{OnRequest: func(n int, req *http.Request) {
			if n == 2 {
				// The run's time is up as the second attempt starts: the
				// executor's MaxTime cancels with this same cause.
				cancel(resilience.ErrDeadline)
			}
		}},
		Clock: clock, NewTimer: clock.NewTimer,
	})
	res := rep.Results[0]
	if res.Healthy || res.Attempts != 2 || !errors.Is(res.Err, resilience.ErrDeadline) {
		t.Fatalf("healthy %v, %d attempts, error %v", res.Healthy, res.Attempts, res.Err)
	}
	joined := strings.Join(res.Failed, "; ")
	if !strings.Contains(joined, "connection refused") || !strings.Contains(joined, "not healthy before the time ran out") {
		t.Errorf("failed %q: want the last real failure and the deadline", joined)
	}
	if strings.Contains(joined, "context canceled") || strings.Contains(joined, "no answer: deadline exceeded") {
		t.Errorf("failed %q reports the cut attempt", joined)
	}
	if res.Status != nil || res.LatencyMS == nil {
		t.Errorf("status %v, latency %v: want no status and the refused attempt's latency", res.Status, res.LatencyMS)
	}
}

func TestCheckReportUnhealthyCount(t *testing.T) {
	rep := CheckReport{Results: []CheckResult{{Healthy: true}, {}, {Healthy: true}, {}}}
	if n := rep.Unhealthy(); n != 2 {
		t.Errorf("Unhealthy() = %d, want 2", n)
	}
	if n := (&CheckReport{}).Unhealthy(); n != 0 {
		t.Errorf("empty report: Unhealthy() = %d", n)
	}
}

// checkWith runs one request through Check with the fake clock.
func checkWith(t *testing.T, h http.Handler, mod func(cfg *CheckConfig)) (CheckResult, *testClock, *sequence) {
	t.Helper()
	clock := newTestClock()
	seq, _ := h.(*sequence)
	srv := httptest.NewUnstartedServer(h)
	srv.Config.BaseContext = func(net.Listener) context.Context {
		return context.WithValue(context.Background(), clockKey{}, clock)
	}
	srv.Start()
	t.Cleanup(srv.Close)
	req := checkRequest(t, srv.URL+"/health")
	req.MaxSize = 0 // as cmd builds it without --max-size
	cfg := CheckConfig{Requests: []*Request{req}, Policy: checkPolicy(), Expect: expectStatus("2xx"),
		BodyLimit: 1 << 20, Clock: clock, NewTimer: clock.NewTimer}
	if mod != nil {
		mod(&cfg)
	}
	return Check(context.Background(), cfg).Results[0], clock, seq
}

// TestCheckRetryAfterCutToTheTimeLeft: under a time limit, a Retry-After
// beyond it is waited until the last chance, then checked again; the
// retry line still shows the server's value.
func TestCheckRetryAfterCutToTheTimeLeft(t *testing.T) {
	var logged []time.Duration
	res, clock, seq := checkWith(t, &sequence{handlers: []http.HandlerFunc{replyStatus(503, "", "Retry-After", "3600"), reply200("ok")}},
		func(cfg *CheckConfig) {
			cfg.Policy.NoAttemptLimit, cfg.Policy.MaxTime, cfg.Policy.LastChance, cfg.Policy.MaxRetryAfter = true, time.Minute, 100*time.Millisecond, 0
			cfg.OnRetry = func(_ string, info resilience.RetryInfo) { logged = append(logged, info.RetryAfter) }
		})
	if !res.Healthy || res.Attempts != 2 || seq.count() != 2 {
		t.Fatalf("healthy %v after %d attempts; failed %q", res.Healthy, res.Attempts, res.Failed)
	}
	if w := clock.Waits(); len(w) != 1 || w[0] > time.Minute || w[0] < 59*time.Second {
		t.Errorf("waits %v: want one wait that ends before the minute", w)
	}
	if len(logged) != 1 || logged[0] != time.Hour {
		t.Errorf("retry lines showed Retry-After %v, want the server's 1h", logged)
	}
}

// TestCheckBodyOnlyForBodyExpectations: a body past the bound passes
// without a body expectation, and fails one saying why; gzip is decoded
// for it and the headers stay as sent.
func TestCheckBodyOnlyForBodyExpectations(t *testing.T) {
	big := strings.Repeat("x", 2<<20)
	res, _, _ := checkWith(t, &sequence{handlers: []http.HandlerFunc{reply200(big)}}, nil)
	if !res.Healthy {
		t.Errorf("a 2 MiB body without body expectations: failed %q", res.Failed)
	}
	res, _, _ = checkWith(t, &sequence{handlers: []http.HandlerFunc{reply200(big + "ok")}}, func(cfg *CheckConfig) {
		cfg.Expect.Body = regexp.MustCompile("ok")
		cfg.Policy.Attempts = 1
	})
	if res.Healthy || len(res.Failures) != 1 || !errors.As(res.Failures[0], new(*BodyLimitError)) {
		t.Errorf("a 2 MiB body with --expect-body: failed %q", res.Failed)
	}
	gz := func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Accept-Encoding") != "gzip" {
			t.Errorf("Accept-Encoding %q", r.Header.Get("Accept-Encoding"))
		}
		w.Header().Set("Content-Encoding", "gzip")
		zw := gzip.NewWriter(w)
		fmt.Fprint(zw, `{"ok": true}`)
		zw.Close()
	}
	res, _, _ = checkWith(t, &sequence{handlers: []http.HandlerFunc{gz}}, func(cfg *CheckConfig) {
		cfg.Expect = mustJQ(t, ".ok")
		h, _ := ParseHeaderExpectation("Content-Encoding: ^gzip$")
		cfg.Expect.Headers = []HeaderExpectation{h}
	})
	if !res.Healthy {
		t.Errorf("gzip: failed %q", res.Failed)
	}
	br := replyStatus(200, "\x00\x01", "Content-Encoding", "br")
	res, _, _ = checkWith(t, &sequence{handlers: []http.HandlerFunc{br}}, func(cfg *CheckConfig) {
		cfg.Expect = mustJQ(t, ".ok")
		cfg.Policy.Attempts = 1
	})
	if res.Healthy || !strings.Contains(strings.Join(res.Failed, ";"), "br-encoded") {
		t.Errorf("br: failed %q", res.Failed)
	}
}

// TestCheckJSONTextBounded: halt yields nothing; jq's messages and the
// values yielded are cut, at a character boundary.
func TestCheckJSONTextBounded(t *testing.T) {
	long := strings.Repeat("é", 500)
	for _, tc := range []struct {
		expr, body, want string
	}{
		{"halt", `{}`, "yielded nothing"},
		{"true, halt", `{}`, ""},
		{"error(.m)", `{"m": "` + long + `"}`, "error"},
		{".m", `{"m": "` + long + `"}`, "yielded"},
	} {
		e := mustJQ(t, tc.expr)
		failed := e.Evaluate(context.Background(), Observation{Status: 200, Body: []byte(tc.body)})
		if tc.want == "" {
			if len(failed) != 0 {
				t.Errorf("%s: %v", tc.expr, failed)
			}
			continue
		}
		if len(failed) != 1 {
			t.Fatalf("%s: %v", tc.expr, failed)
		}
		msg := failed[0].Error()
		if !strings.Contains(msg, tc.want) || len(msg) > 300 || !utf8.ValidString(msg) {
			t.Errorf("%s: %d bytes, valid UTF-8 %v: %q", tc.expr, len(msg), utf8.ValidString(msg), msg)
		}
	}
}

func TestExcerptKeepsCharactersWhole(t *testing.T) {
	for n := 0; n < 12; n++ {
		got := excerpt("aé€😀bcdefgh", n)
		if !utf8.ValidString(got) || len(strings.TrimSuffix(got, "…")) > n {
			t.Errorf("excerpt(…, %d) = %q", n, got)
		}
	}
	if excerpt("short", 10) != "short" {
		t.Error("a short string was cut")
	}
}

// TestCheckLatencyRounding: the latency reported and the latency in the
// message are one rounding of one measure.
func TestCheckLatencyRounding(t *testing.T) {
	// The bound also ends the attempt in real time (a context deadline),
	// so it is an hour here: a millisecond bound raced a loaded machine.
	// The fake clock makes the latency an hour and 1.6 ms.
	slow := func(w http.ResponseWriter, r *http.Request) {
		r.Context().Value(clockKey{}).(*testClock).Advance(time.Hour + 1600*time.Microsecond)
		fmt.Fprint(w, "ok")
	}
	res, _, _ := checkWith(t, &sequence{handlers: []http.HandlerFunc{slow}}, func(cfg *CheckConfig) {
		cfg.Expect.MaxLatency = time.Hour
		cfg.Policy.Attempts = 1
	})
	if res.LatencyMS == nil || *res.LatencyMS != 3600002 || !strings.Contains(strings.Join(res.Failed, ";"), "latency 1h0m0.002s over 1h0m0s") {
		t.Errorf("latency %v ms, failed %q", res.LatencyMS, res.Failed)
	}
}

// A body cut after its headers says its size once: the cut says how far
// it came.
func TestCheckBodyCutSaysSizeOnce(t *testing.T) {
	cuts := func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", "100")
		fmt.Fprint(w, "hello") // the server closes the connection short of 100 B
	}
	res, _, _ := checkWith(t, &sequence{handlers: []http.HandlerFunc{cuts}}, func(cfg *CheckConfig) { cfg.Policy.Attempts = 1 })
	joined := strings.Join(res.Failed, "; ")
	if !strings.Contains(joined, "status 200, then the server closed the connection after 5 B of 100 B") || strings.Count(joined, "5 B") != 1 {
		t.Errorf("failed %q", joined)
	}
}

// TestCheckAttemptLimits: --max-latency ends an attempt that hangs at the
// bound, --timeout at its own, each saying so and how far it got.
func TestCheckAttemptLimits(t *testing.T) {
	release := make(chan struct{})
	defer close(release)
	hangs := func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
		case <-release:
		}
	}
	stalls := func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", "100")
		fmt.Fprint(w, "hello")
		w.(http.Flusher).Flush()
		hangs(w, r)
	}
	for _, tc := range []struct {
		name    string
		handler http.HandlerFunc
		mod     func(cfg *CheckConfig)
		limit   CheckLimit
		want    string
	}{
		{"latency bound", hangs, func(cfg *CheckConfig) { cfg.Expect.MaxLatency, cfg.Policy.Timeout = 50*time.Millisecond, time.Hour },
			LimitMaxLatency, "latency over 50ms (the latency bound), so the attempt was ended: connected to 127.0.0.1:"},
		{"timeout", hangs, func(cfg *CheckConfig) { cfg.Policy.Timeout = 50 * time.Millisecond },
			LimitTimeout, "no answer within the attempt's time limit (50ms): connected to 127.0.0.1:"},
		{"stall after headers", stalls, func(cfg *CheckConfig) { cfg.Policy.Timeout = 50 * time.Millisecond },
			LimitTimeout, "status 200 came, then the body stalled after 5 B"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			res, _, _ := checkWith(t, &sequence{handlers: []http.HandlerFunc{tc.handler}}, func(cfg *CheckConfig) {
				cfg.Policy.Attempts = 1
				tc.mod(cfg)
			})
			var na *NoAnswerError
			if res.Healthy || len(res.Failures) == 0 || !errors.As(res.Failures[len(res.Failures)-1], &na) || na.Limit != tc.limit {
				t.Fatalf("failures %q", res.Failed)
			}
			if joined := strings.Join(res.Failed, "; "); !strings.Contains(joined, tc.want) {
				t.Errorf("failed %q lacks %q", joined, tc.want)
			}
		})
	}
}

// TestCheckWaitingIsReported: an attempt without an answer is reported
// while it lasts, with how far it got.
func TestCheckWaitingIsReported(t *testing.T) {
	release := make(chan struct{})
	defer close(release)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
		case <-release:
		}
	}))
	defer srv.Close()
	var mu sync.Mutex
	var stages []string
	Check(ctx, CheckConfig{Requests: []*Request{checkRequest(t, srv.URL)}, Policy: checkPolicy(), Expect: expectStatus("2xx"),
		WaitingEvery: 20 * time.Millisecond,
		OnWaiting: func(url string, n int, after time.Duration, stage string) {
			mu.Lock()
			stages = append(stages, stage)
			mu.Unlock()
			cancel() // one is enough
		}})
	mu.Lock()
	defer mu.Unlock()
	if len(stages) == 0 || !strings.HasPrefix(stages[0], "connected to 127.0.0.1:") || !strings.HasSuffix(stages[0], "no response headers") {
		t.Errorf("stages %q", stages)
	}
}

// TestCheckStableRetryOnAndPollFloor: --stable counts healthy answers in
// a row; a status outside --retry-on (when given) is final; attempts are
// at least MinInterval apart whatever the backoff says.
func TestCheckStableRetryOnAndPollFloor(t *testing.T) {
	ok, bad := reply200("ok"), replyStatus(500, "no")
	res, _, seq := checkWith(t, &sequence{handlers: []http.HandlerFunc{ok, bad, ok, ok, ok}}, func(cfg *CheckConfig) {
		cfg.Stable, cfg.Policy.Attempts = 3, 10
	})
	if !res.Healthy || seq.count() != 5 {
		t.Errorf("stable: healthy %v after %d requests", res.Healthy, seq.count())
	}
	res, _, _ = checkWith(t, &sequence{handlers: []http.HandlerFunc{ok, bad}}, func(cfg *CheckConfig) {
		cfg.Stable, cfg.Policy.Attempts = 2, 4
	})
	if res.Healthy || res.Attempts != 4 {
		t.Errorf("flapping: healthy %v after %d attempts", res.Healthy, res.Attempts)
	}
	res, _, seq = checkWith(t, &sequence{handlers: []http.HandlerFunc{replyStatus(404, "")}}, func(cfg *CheckConfig) {
		cfg.HonourRetryOn = true
	})
	var end *CheckEndError
	if res.Healthy || seq.count() != 1 || !errors.As(res.Failures[len(res.Failures)-1], &end) || end.Reason != EndNotRetried {
		t.Errorf("retry-on: %d requests, failed %q", seq.count(), res.Failed)
	}
	_, clock, _ := checkWith(t, &sequence{handlers: []http.HandlerFunc{bad}}, func(cfg *CheckConfig) {
		cfg.Policy.Delay, cfg.MinInterval = 0, 100*time.Millisecond
	})
	for _, w := range clock.Waits() {
		if w != 0 && w != 100*time.Millisecond {
			t.Errorf("waits %v", clock.Waits())
		}
	}
	if n := len(clock.Waits()); n < 2 {
		t.Errorf("waits %v: the floor did not hold the attempts apart", clock.Waits())
	}
}

// TestCheckEarlierFailuresBounded: a long run of distinct failures keeps
// a bounded summary.
func TestCheckEarlierFailuresBounded(t *testing.T) {
	var e EarlierFailures
	for i := 0; i < 1000; i++ {
		e.add(fmt.Sprintf("failure %d", i%10), []error{fmt.Errorf("failure %d", i%10)})
	}
	if len(e.Kinds) != maxEarlierKinds || e.Other != 600 || len(e.Error()) > 300 {
		t.Errorf("%d kinds, %d other: %q", len(e.Kinds), e.Other, e.Error())
	}
}

func TestParseHeaderExpectationWantsAToken(t *testing.T) {
	for _, s := range []string{"X Bad: .", "X(y): .", "Ünï: .", "X\x01: ."} {
		if _, err := ParseHeaderExpectation(s); err == nil || !strings.Contains(err.Error(), "not a header name") {
			t.Errorf("%q: %v", s, err)
		}
	}
	if h, err := ParseHeaderExpectation("x-ready: ^yes$"); err != nil || h.Name != "X-Ready" {
		t.Errorf("%+v %v", h, err)
	}
}

// TestExcerptJSONKeepsEscapesWhole: a yielded value cut for the message is
// cut before an escape it would split, never inside one.
func TestExcerptJSONKeepsEscapesWhole(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{`"abcdefgh\u001b[31m"`, `"abcdefgh…`},
		{`"abcdefghi\n"`, `"abcdefghi…`},
		{`"abcdefg\\x"`, `"abcdefg\\x…`},
		{`"short"`, `"short"`},
	} {
		if got := excerptJSON(tc.in, 11); got != tc.want {
			t.Errorf("excerptJSON(%s) = %s, want %s", tc.in, got, tc.want)
		}
	}
}

// TestCheckPollFloorIsWait: the gap the MinInterval floor adds after a
// shorter delay is the wait after the attempt before, never the next
// attempt's duration: each attempt's duration is its own request, and
// the waits are what was waited.
func TestCheckPollFloorIsWait(t *testing.T) {
	slow := func(code int) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			r.Context().Value(clockKey{}).(*testClock).Advance(5 * time.Millisecond)
			w.WriteHeader(code)
		}
	}
	var retries []time.Duration
	res, clock, seq := checkWith(t, &sequence{handlers: []http.HandlerFunc{slow(503), slow(503), slow(200)}}, func(cfg *CheckConfig) {
		cfg.Policy.Delay, cfg.Policy.Multiplier, cfg.MinInterval = 10*time.Millisecond, 1, 100*time.Millisecond
		cfg.OnRetry = func(_ string, info resilience.RetryInfo) { retries = append(retries, info.Wait) }
	})
	if !res.Healthy || seq.count() != 3 || res.Trace == nil || len(res.Trace.Attempts) != 3 {
		t.Fatalf("healthy %v after %d requests, trace %+v", res.Healthy, seq.count(), res.Trace)
	}
	// The executor waits the 10ms delay, pace the 90ms left of the floor.
	if w := clock.Waits(); len(w) != 4 || w[0] != 10*time.Millisecond || w[1] != 90*time.Millisecond {
		t.Errorf("waits %v, want 10ms then 90ms between attempts", w)
	}
	for i, a := range res.Trace.Attempts {
		// (The duration is the test clock's; the trace's phases are timed
		// by the machine's, so they are not compared: on a loaded machine
		// the real request takes longer than the 5ms the server adds.)
		if a.Duration != 5*time.Millisecond {
			t.Errorf("attempt %d: duration %v, want its own request's 5ms", a.N, a.Duration)
		}
		want := 100 * time.Millisecond
		if i == 2 {
			want = 0
		}
		if a.Wait != want {
			t.Errorf("attempt %d: wait %v, want %v", a.N, a.Wait, want)
		}
	}
	if len(retries) != 2 || retries[0] != 100*time.Millisecond {
		t.Errorf("-v's waits %v, want 100ms each", retries)
	}
}

// TestCheckUnaskedPartialContent: a 206 with part of the body, to a check
// that asked for all of it, is no whole answer (as fetch judges it): the
// check goes on to the next attempt. A 206 of the whole body passes, and
// so does a part when the check sent a Range of its own.
func TestCheckUnaskedPartialContent(t *testing.T) {
	part := replyStatus(206, "hello", "Content-Range", "bytes 0-4/10")
	res, _, seq := checkWith(t, &sequence{handlers: []http.HandlerFunc{part, reply200("hello12345")}}, nil)
	if !res.Healthy || res.Attempts != 2 || seq.count() != 2 {
		t.Fatalf("healthy %v after %d attempts (%d requests), failed %q", res.Healthy, res.Attempts, seq.count(), res.Failed)
	}
	res, _, _ = checkWith(t, &sequence{handlers: []http.HandlerFunc{part}}, func(cfg *CheckConfig) { cfg.Policy.Attempts = 1 })
	if res.Healthy || !strings.Contains(strings.Join(res.Failed, ";"), "part of the body (bytes 0-4 of 10, 206) to a request for all of it") {
		t.Fatalf("a partial 206 judged healthy %v, failed %q", res.Healthy, res.Failed)
	}
	whole := replyStatus(206, "hello", "Content-Range", "bytes 0-4/5")
	if res, _, _ = checkWith(t, &sequence{handlers: []http.HandlerFunc{whole}}, nil); !res.Healthy || res.Attempts != 1 {
		t.Fatalf("a whole-body 206: healthy %v after %d attempts, failed %q", res.Healthy, res.Attempts, res.Failed)
	}
	res, _, _ = checkWith(t, &sequence{handlers: []http.HandlerFunc{part}}, func(cfg *CheckConfig) {
		cfg.Requests[0].Header.Set("Range", "bytes=0-4")
	})
	if !res.Healthy || res.Attempts != 1 {
		t.Fatalf("a part the check asked for: healthy %v after %d attempts, failed %q", res.Healthy, res.Attempts, res.Failed)
	}
	// A whole-body 206 with no Content-Length (chunked) is judged by its
	// Content-Range: longer is an overrun, shorter a cut body.
	unsized := func(body string) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Range", "bytes 0-4/5")
			w.WriteHeader(206)
			w.Write([]byte(body[:2]))
			w.(http.Flusher).Flush() // no Content-Length from here on
			w.Write([]byte(body[2:]))
		}
	}
	for body, want := range map[string]string{"hello!!": "more than it said", "hel": "closed the connection"} {
		res, _, _ = checkWith(t, &sequence{handlers: []http.HandlerFunc{unsized(body)}}, func(cfg *CheckConfig) { cfg.Policy.Attempts = 1 })
		if res.Healthy || !strings.Contains(strings.Join(res.Failed, ";"), want) {
			t.Errorf("a whole-body 206 of %q: healthy %v, failed %q; want %q", body, res.Healthy, res.Failed, want)
		}
	}
	if res, _, _ = checkWith(t, &sequence{handlers: []http.HandlerFunc{unsized("hello")}}, nil); !res.Healthy {
		t.Errorf("an unsized whole-body 206 of the right length: failed %q", res.Failed)
	}
}

// TestCheckMemoryFlat: a long --wait does not grow with its attempts. A
// tour saw ~5 KB per attempt kept to the end (each answer's headers and
// connection); then under 1 KiB (a record for the reports); now the
// trace keeps the first and the latest CheckKeepAttempts records and
// counts the others. Each answer here carries 4 KB of headers.
func TestCheckMemoryFlat(t *testing.T) {
	pad := strings.Repeat("x", 4000)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Pad", pad)
		w.WriteHeader(http.StatusServiceUnavailable)
	}))
	defer srv.Close()
	kept := func(attempts int) (int64, CheckResult) {
		p := checkPolicy()
		p.Attempts, p.Delay, p.Jitter = attempts, 0, 0
		var before, after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		// Every attempt paced by the floor between polls, on a clock
		// that moves only by the waits.
		clock := fakeclock.New(fakeclock.Start)
		rep := Check(context.Background(), CheckConfig{Requests: []*Request{checkRequest(t, srv.URL)}, Policy: p, Expect: expectStatus("2xx"),
			MinInterval: time.Second, Clock: clock, NewTimer: func() resilience.Timer { return clock.NewTimer() }})
		runtime.GC()
		runtime.ReadMemStats(&after)
		runtime.KeepAlive(rep)
		return int64(after.HeapAlloc) - int64(before.HeapAlloc), rep.Results[0]
	}
	const few, many = 10 * CheckKeepAttempts, 50 * CheckKeepAttempts
	small, _ := kept(few)
	big, res := kept(many)
	tr := res.Trace
	if res.Attempts != many || tr.Count() != many || len(tr.Attempts) != CheckKeepAttempts || tr.Omitted != many-CheckKeepAttempts {
		t.Fatalf("%d attempts, trace %d (%d listed, %d omitted), want %d with %d listed", res.Attempts, tr.Count(), len(tr.Attempts), tr.Omitted, many, CheckKeepAttempts)
	}
	head := CheckKeepAttempts / 2
	if tr.OmittedAfter != head || tr.Attempts[head-1].N != head || tr.Attempts[head].N != many-CheckKeepAttempts+head+1 || tr.Attempts[len(tr.Attempts)-1].N != many {
		t.Errorf("listed: after %d, attempts %d, %d, last %d", tr.OmittedAfter, tr.Attempts[head-1].N, tr.Attempts[head].N, tr.Attempts[len(tr.Attempts)-1].N)
	}
	if res.OmittedFailed != tr.Omitted {
		t.Errorf("%d omitted attempts failed, want %d", res.OmittedFailed, tr.Omitted)
	}
	// Flat: the 4,000 attempts more keep less than 100 bytes each (a
	// record each would be several hundred).
	t.Logf("%d B for %d attempts, %d B for %d", small, few, big, many)
	if w := tr.Attempts[len(tr.Attempts)-2].Wait; w != time.Second {
		t.Errorf("the wait before the last attempt: %v, want the 1s floor", w)
	}
	for _, a := range tr.Attempts {
		if a.Duration != 0 {
			t.Fatalf("attempt %d lasted %v: the floor's gap was not moved out of it", a.N, a.Duration)
		}
	}
	if per := (big - small) / (many - few); per > 100 {
		t.Errorf("each attempt past %d keeps %d bytes (%d B for %d attempts, %d B for %d)", few, per, small, few, big, many)
	}
}

// TestPacedGapsKeepsListedAttempts: the gaps of the attempts a trace
// lists (the first half and the latest) survive any number of others.
func TestPacedGapsKeepsListedAttempts(t *testing.T) {
	var p pacedGaps
	const n = 1234
	for i := 1; i <= n; i++ {
		p.set(i, time.Duration(i))
	}
	for i := 1; i <= n; i++ {
		if i > CheckKeepAttempts/2 && i <= n-(CheckKeepAttempts-CheckKeepAttempts/2) {
			continue // not listed
		}
		if got := p.get(i); got != time.Duration(i) {
			t.Errorf("attempt %d: gap %d", i, got)
		}
	}
}

// TestCheckJSONEvaluationBounded: a slow --expect-json ends with the
// attempt's time limit, saying so (a tour's 'last(range(1e10))' ran until
// killed with no --wait, or ended with Go's "context deadline exceeded"),
// and valid JSON nested past the decoder's depth is said to be that, not
// "not JSON".
func TestCheckJSONEvaluationBounded(t *testing.T) {
	e := mustJQ(t, "last(range(1e10)) > 0")
	ctx, cancel := evalContext(context.Background(), 50*time.Millisecond, 0)
	defer cancel()
	failed := e.Evaluate(ctx, Observation{Status: 200, Body: []byte(`{"status":"ok"}`)})
	if len(failed) != 1 || !strings.Contains(failed[0].Error(), "evaluating it took longer than the attempt's time left (--timeout 50ms)") {
		t.Errorf("slow expression: %v", failed)
	}
	ended, stop := context.WithCancel(context.Background())
	stop()
	failed = e.Evaluate(ended, Observation{Status: 200, Body: []byte(`{}`)})
	if len(failed) != 1 || strings.Contains(failed[0].Error(), "context canceled") {
		t.Errorf("the check's end: %v", failed)
	}
	deep := strings.Repeat("[", 20000) + strings.Repeat("]", 20000)
	failed = mustJQ(t, "true").Evaluate(context.Background(), Observation{Status: 200, Body: []byte(deep)})
	if len(failed) != 1 || !strings.Contains(failed[0].Error(), "nested deeper than 10,000 levels") {
		t.Errorf("deep JSON: %v", failed)
	}
}

// A body that says gzip and is not is said to be that, not an encoding
// check "does not decode" (a tour read it so).
func TestCheckCorruptGzipSaysSo(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Encoding", "gzip")
		io.WriteString(w, "this is not gzip")
	}))
	defer srv.Close()
	p := checkPolicy()
	p.Attempts = 1
	e := expectStatus("2xx")
	e.Body = regexp.MustCompile("ok")
	rep := Check(context.Background(), CheckConfig{Requests: []*Request{checkRequest(t, srv.URL)}, Policy: p, Expect: e})
	got := strings.Join(rep.Results[0].Failed, "; ")
	if !strings.Contains(got, "the body is not valid gzip (Content-Encoding: gzip)") || strings.Contains(got, "does not decode") {
		t.Errorf("failed: %q", got)
	}
}

// A redirect to a host that refuses names where it led: the checked URL
// itself answered (a tour read "connection refused" as the service down).
func TestCheckRedirectTargetNamed(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := "http://" + l.Addr().String() + "/x"
	l.Close()
	srv := httptest.NewServer(http.RedirectHandler(dead, http.StatusFound))
	defer srv.Close()
	p := checkPolicy()
	p.Attempts = 1
	rep := Check(context.Background(), CheckConfig{Requests: []*Request{checkRequest(t, srv.URL)}, Policy: p, Expect: expectStatus("2xx")})
	res := rep.Results[0]
	if got := strings.Join(res.Failed, "; "); !strings.Contains(got, `redirected to "`+dead+`": `) || !strings.Contains(got, "connection refused") {
		t.Errorf("failed %q, err %v", got, res.Err)
	}
}

// replyGzip answers 200 with body gzipped, as it is sent (Content-Length
// the compressed size).
func replyGzip(body string) http.HandlerFunc {
	var b bytes.Buffer
	zw := gzip.NewWriter(&b)
	zw.Write([]byte(body))
	zw.Close()
	return func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Encoding", "gzip")
		w.Header().Set("Content-Length", strconv.Itoa(b.Len()))
		w.Write(b.Bytes())
	}
}

// TestCheckEndQuotaIsNotRetryAfter: a check that ends on a spent quota
// the server advertised says so, not "the server asked to retry after"
// (a tour found it worded as a Retry-After no server sent), as fetch and
// probe word it.
func TestCheckEndQuotaIsNotRetryAfter(t *testing.T) {
	for _, tc := range []struct {
		e    CheckEndError
		want string
	}{
		{CheckEndError{Reason: EndRetryAfter, RetryAfter: 5 * time.Minute, MaxRetryAfter: time.Minute, Quota: true},
			"the server's quota for this caller is spent for 5m0s, longer than check waits"},
		{CheckEndError{Reason: EndRetryAfter, RetryAfter: 5 * time.Minute, Limit: 10 * time.Second, Quota: true},
			"the server's quota for this caller is spent for 5m0s, past the end of"},
		{CheckEndError{Reason: EndRetryAfter, RetryAfter: 5 * time.Minute, MaxRetryAfter: time.Minute},
			"the server asked to retry after 5m0s, longer than check waits"},
	} {
		if got := tc.e.Error(); !strings.Contains(got, tc.want) {
			t.Errorf("%+v: %q, want %q", tc.e, got, tc.want)
		}
	}
}
