package fetch

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/refetch/refetch/internal/fakeclock"
	"github.com/refetch/refetch/resilience/store"

	"github.com/refetch/refetch/resilience"
)

// testClock is internal/fakeclock's clock for the executor, and the
// source of fake latency for test servers: timers fire at once and move
// the clock by the wait, so a run that waits hours takes no time.
type testClock struct{ *fakeclock.Clock }

func newTestClock() *testClock { return newTestClockAt(time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)) }

func newTestClockAt(t time.Time) *testClock { return &testClock{fakeclock.New(t)} }

// NewTimer is the executor's timer factory on c.
func (c *testClock) NewTimer() resilience.Timer { return c.Clock.NewTimer() }

// reply is a scripted transport's answer to one request.
type reply func(req *http.Request) (*http.Response, error)

// script is an http.RoundTripper that answers request n with replies[n];
// a request beyond the script is an error the test will see.
type script struct {
	mu      sync.Mutex
	replies []reply
	reqs    []*http.Request
}

func (s *script) RoundTrip(req *http.Request) (*http.Response, error) {
	s.mu.Lock()
	n := len(s.reqs)
	s.reqs = append(s.reqs, req)
	s.mu.Unlock()
	if n >= len(s.replies) {
		return nil, fmt.Errorf("script: unexpected request %d to %s", n+1, req.URL)
	}
	return s.replies[n](req)
}

func (s *script) calls() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.reqs)
}

func response(req *http.Request, code int, body io.Reader, length int64, kv ...string) *http.Response {
	h := http.Header{}
	for i := 0; i+1 < len(kv); i += 2 {
		h.Add(kv[i], kv[i+1])
	}
	return &http.Response{StatusCode: code, Status: fmt.Sprintf("%d %s", code, http.StatusText(code)),
		Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1, Header: h, Body: io.NopCloser(body),
		ContentLength: length, Request: req}
}

// answer replies with a status, a complete body and header pairs.
func answer(code int, body string, kv ...string) reply {
	return func(req *http.Request) (*http.Response, error) {
		return response(req, code, strings.NewReader(body), int64(len(body)), kv...), nil
	}
}

// unsized replies 200 with a body of unknown length (no Content-Length).
func unsized(body string) reply {
	return func(req *http.Request) (*http.Response, error) {
		return response(req, 200, strings.NewReader(body), -1), nil
	}
}

// cutAfter replies 200 announcing total bytes, sends sent, then fails.
func cutAfter(sent string, total int64) reply {
	return func(req *http.Request) (*http.Response, error) {
		return response(req, 200, &cutReader{data: []byte(sent), err: io.ErrUnexpectedEOF}, total), nil
	}
}

func transportError(err error) reply {
	return func(*http.Request) (*http.Response, error) { return nil, err }
}

func times(n int, r reply) []reply {
	out := make([]reply, n)
	for i := range out {
		out[i] = r
	}
	return out
}

type cutReader struct {
	data []byte
	err  error
}

func (r *cutReader) Read(p []byte) (int, error) {
	if len(r.data) == 0 {
		return 0, r.err
	}
	n := copy(p, r.data)
	r.data = r.data[n:]
	return n, nil
}

// failWriter is a destination that cannot be written (a full disk, a
// closed pipe).
type failWriter struct{}

var errDiskFull = errors.New("no space left on device")

func (failWriter) Write([]byte) (int, error) { return 0, errDiskFull }

var refused = &net.OpError{Op: "dial", Net: "tcp", Err: &os.SyscallError{Syscall: "connect", Err: syscall.ECONNREFUSED}}

func mustURL(t *testing.T, raw string) *url.URL {
	t.Helper()
	u, err := ParseURL(raw)
	if err != nil {
		t.Fatal(err)
	}
	return u
}

// runEnv is one Run's world: a scripted transport, a fake clock and a
// stale cache in a temporary directory.
type runEnv struct {
	t      *testing.T
	clock  *testClock
	cache  *resilience.StaleCache
	dir    string
	script *script
	out    bytes.Buffer
}

func newRunEnv(t *testing.T, cacheMax int64) *runEnv {
	e := &runEnv{t: t, clock: newTestClock(), dir: t.TempDir()}
	var err error
	if e.cache, err = resilience.NewStaleCache(e.dir, cacheMax); err != nil {
		t.Fatal(err)
	}
	return e
}

// config is the fetch refetch makes by default, with jitter off so the
// waits are exact: GET, three attempts, 1s doubling waits.
func (e *runEnv) config() Config {
	return Config{
		Request: &Request{Method: http.MethodGet, URL: mustURL(e.t, "http://api.test/items"), Header: http.Header{}, MaxRedirs: 10},
		Policy: resilience.Policy{Attempts: 3, Delay: time.Second, Multiplier: 2, Cap: 10 * time.Second,
			RetryOn: resilience.MustStatusSet("408,425,429,500,502,503,504"), MaxRetryAfter: time.Minute},
		Sink:     &BufferSink{Dst: &e.out},
		Clock:    e.clock,
		NewTimer: e.clock.NewTimer,
	}
}

// run runs cfg with a client whose transport answers with replies; the
// client is NewClient's, so the redirect policy is the real one.
func (e *runEnv) run(ctx context.Context, cfg Config, replies ...reply) (*Result, error) {
	e.t.Helper()
	e.script = &script{replies: replies}
	client, err := NewClient(cfg.Request)
	if err != nil {
		e.t.Fatal(err)
	}
	client.Transport = e.script
	cfg.Client = client
	defer cfg.Sink.Close()
	return Run(ctx, cfg)
}

// prime fills the stale cache with body through a successful run of cfg.
func (e *runEnv) prime(cfg Config, body string) {
	e.t.Helper()
	cfg.Sink = &BufferSink{}
	cfg.Fallback = Fallback{Stale: e.cache}
	if _, err := e.run(context.Background(), cfg, answer(200, body)); err != nil {
		e.t.Fatalf("priming the stale cache: %v", err)
	}
	if files, _ := filepath.Glob(filepath.Join(e.dir, "*.stale")); len(files) == 0 {
		e.t.Fatal("priming the stale cache saved nothing")
	}
}

func (e *runEnv) staleFiles() []string {
	files, err := filepath.Glob(filepath.Join(e.dir, "*.stale"))
	if err != nil {
		e.t.Fatal(err)
	}
	return files
}

func TestRunFallbackChain(t *testing.T) {
	fb := []byte("fallback")
	tests := []struct {
		name string
		// prime, if set, is the body a successful run saves to the stale
		// cache before the run under test; age is the time that then passes.
		prime string
		age   time.Duration
		// corrupt overwrites the saved entry with garbage.
		corrupt  bool
		cacheMax int64 // 0: 1 KiB
		setup    func(e *runEnv, cfg *Config)
		replies  []reply

		wantErr    error // what the returned error wraps; nil: served
		wantRunErr error // what Result.Err wraps; nil: none
		wantSource Source
		wantOut    string
		wantCalls  int
		check      func(t *testing.T, e *runEnv, res *Result)
	}{
		{
			name:       "fresh success",
			replies:    []reply{answer(200, "fresh")},
			setup:      func(e *runEnv, cfg *Config) { cfg.Fallback.Data = fb },
			wantSource: SourceNetwork, wantOut: "fresh", wantCalls: 1,
			check: func(t *testing.T, e *runEnv, res *Result) {
				if res.Size != 5 || res.Status != 200 || len(res.Trace.Attempts) != 1 || res.StaleSkipped != nil {
					t.Errorf("size %d, status %d, %d attempts, stale skipped %v", res.Size, res.Status, len(res.Trace.Attempts), res.StaleSkipped)
				}
			},
		},
		{
			name:       "retried to success, waits from the policy",
			replies:    []reply{answer(503, "busy"), answer(503, "busy"), answer(200, "third")},
			wantSource: SourceNetwork, wantOut: "third", wantCalls: 3,
			check: func(t *testing.T, e *runEnv, res *Result) {
				if w := e.clock.Waits(); len(w) != 2 || w[0] != time.Second || w[1] != 2*time.Second {
					t.Errorf("waits %v, want [1s 2s]", w)
				}
				if a := res.Trace.Attempts; a[0].Status != 503 || a[0].Wait != time.Second || a[2].Status != 200 {
					t.Errorf("trace %+v", a)
				}
			},
		},
		{
			name:       "Retry-After within the bound is waited for",
			replies:    []reply{answer(429, "", "Retry-After", "5"), answer(200, "ok")},
			wantSource: SourceNetwork, wantOut: "ok", wantCalls: 2,
			check: func(t *testing.T, e *runEnv, res *Result) {
				if w := e.clock.Waits(); len(w) != 1 || w[0] != 5*time.Second || res.Trace.RetryAfter != 5*time.Second {
					t.Errorf("waits %v, trace Retry-After %v; want the server's 5s", w, res.Trace.RetryAfter)
				}
			},
		},
		{
			name:       "success saves to the stale cache",
			setup:      func(e *runEnv, cfg *Config) { cfg.Fallback.Stale = e.cache },
			replies:    []reply{answer(200, `{"v":1}`, "Content-Type", "application/json")},
			wantSource: SourceNetwork, wantOut: `{"v":1}`, wantCalls: 1,
			check: func(t *testing.T, e *runEnv, res *Result) {
				if res.CacheErr != nil {
					t.Fatalf("CacheErr: %v", res.CacheErr)
				}
				entry, _, err := e.cache.Load((&Request{Method: "GET", URL: mustURL(t, "http://api.test/items")}).staleKey(), 0, e.clock.Now())
				if err != nil || entry == nil {
					t.Fatalf("no entry saved: %v", err)
				}
				if string(entry.Body) != `{"v":1}` || entry.ContentType != "application/json" || entry.Status != 200 || !entry.SavedAt.Equal(e.clock.Now()) {
					t.Errorf("entry %+v, body %q", entry, entry.Body)
				}
			},
		},
		{
			name:       "a POST is never cached",
			setup:      func(e *runEnv, cfg *Config) { cfg.Fallback.Stale = e.cache; cfg.Request.Method = http.MethodPost },
			replies:    []reply{answer(200, "created")},
			wantSource: SourceNetwork, wantOut: "created", wantCalls: 1,
			check: func(t *testing.T, e *runEnv, res *Result) {
				if f := e.staleFiles(); len(f) != 0 {
					t.Errorf("a POST body was cached: %v", f)
				}
			},
		},
		{
			name:       "a body too large to keep forgets the older entry",
			prime:      "old",
			cacheMax:   16,
			setup:      func(e *runEnv, cfg *Config) { cfg.Fallback.Stale = e.cache },
			replies:    []reply{answer(200, strings.Repeat("n", 17))},
			wantSource: SourceNetwork, wantOut: strings.Repeat("n", 17), wantCalls: 1,
			check: func(t *testing.T, e *runEnv, res *Result) {
				if f := e.staleFiles(); len(f) != 0 {
					t.Errorf("the older, smaller answer is still cached: %v", f)
				}
				if res.CacheErr != nil {
					t.Errorf("a body over the bound is not a cache error: %v", res.CacheErr)
				}
			},
		},
		{
			name: "a cache that cannot be written does not fail the fetch",
			setup: func(e *runEnv, cfg *Config) {
				file := filepath.Join(e.dir, "not-a-dir")
				if err := os.WriteFile(file, nil, 0o600); err != nil {
					t.Fatal(err)
				}
				cfg.Fallback.Stale, _ = resilience.NewStaleCache(filepath.Join(file, "cache"), 1<<10)
			},
			replies:    []reply{answer(200, "good")},
			wantSource: SourceNetwork, wantOut: "good", wantCalls: 1,
			check: func(t *testing.T, e *runEnv, res *Result) {
				if res.CacheErr == nil || !strings.Contains(res.CacheErr.Error(), "stale cache not saved") {
					t.Errorf("CacheErr = %v", res.CacheErr)
				}
			},
		},
		{
			name:  "failure serves the stale copy, before the fallback",
			prime: "cached",
			age:   90 * time.Second,
			setup: func(e *runEnv, cfg *Config) {
				cfg.Fallback = Fallback{Stale: e.cache, StaleFor: time.Hour, Data: fb}
			},
			replies:    times(3, answer(503, "busy")),
			wantRunErr: resilience.ErrRetriesExhausted,
			wantSource: SourceStale, wantOut: "cached", wantCalls: 3,
			check: func(t *testing.T, e *runEnv, res *Result) {
				// 90s passed, then the run waited 1s and 2s.
				if res.StaleAge != 93*time.Second || res.Size != 6 || res.Status != 503 {
					t.Errorf("stale age %v, size %d, status %d", res.StaleAge, res.Size, res.Status)
				}
			},
		},
		{
			name:       "a stale copy of any age when StaleFor is 0",
			prime:      "ancient",
			age:        1000 * time.Hour,
			setup:      func(e *runEnv, cfg *Config) { cfg.Fallback = Fallback{Stale: e.cache, Data: fb} },
			replies:    times(3, answer(503, "busy")),
			wantRunErr: resilience.ErrRetriesExhausted,
			wantSource: SourceStale, wantOut: "ancient", wantCalls: 3,
		},
		{
			name:  "a stale copy too old falls through to the fallback",
			prime: "cached",
			age:   2 * time.Hour,
			setup: func(e *runEnv, cfg *Config) {
				cfg.Fallback = Fallback{Stale: e.cache, StaleFor: time.Hour, Data: fb}
			},
			replies:    times(3, answer(503, "busy")),
			wantRunErr: resilience.ErrRetriesExhausted,
			wantSource: SourceFallback, wantOut: "fallback", wantCalls: 3,
			check: func(t *testing.T, e *runEnv, res *Result) {
				if res.StaleSkipped != nil {
					t.Errorf("a copy too old is not skipped for a fault: %v", res.StaleSkipped)
				}
			},
		},
		{
			name:  "a stale copy too old and no fallback: the run's error",
			prime: "cached",
			age:   2 * time.Hour,
			setup: func(e *runEnv, cfg *Config) {
				cfg.Fallback = Fallback{Stale: e.cache, StaleFor: time.Hour}
			},
			replies:    times(3, answer(503, "busy")),
			wantErr:    resilience.ErrRetriesExhausted,
			wantRunErr: resilience.ErrRetriesExhausted,
			wantSource: SourceNone, wantCalls: 3,
		},
		{
			name:    "a corrupt stale copy falls through to the fallback and says why",
			prime:   "cached",
			corrupt: true,
			setup: func(e *runEnv, cfg *Config) {
				cfg.Fallback = Fallback{Stale: e.cache, Data: fb}
			},
			replies:    times(3, answer(503, "busy")),
			wantRunErr: resilience.ErrRetriesExhausted,
			wantSource: SourceFallback, wantOut: "fallback", wantCalls: 3,
			check: func(t *testing.T, e *runEnv, res *Result) {
				if res.StaleSkipped == nil || !strings.Contains(res.StaleSkipped.Error(), "corrupt") {
					t.Errorf("StaleSkipped = %v", res.StaleSkipped)
				}
			},
		},
		{
			name:       "a corrupt stale copy and no fallback: the run's error, and why the copy was skipped",
			prime:      "cached",
			corrupt:    true,
			setup:      func(e *runEnv, cfg *Config) { cfg.Fallback = Fallback{Stale: e.cache} },
			replies:    times(3, answer(503, "busy")),
			wantErr:    resilience.ErrRetriesExhausted,
			wantRunErr: resilience.ErrRetriesExhausted,
			wantSource: SourceNone, wantCalls: 3,
			check: func(t *testing.T, e *runEnv, res *Result) {
				if res.StaleSkipped == nil {
					t.Error("StaleSkipped not set")
				}
			},
		},
		{
			name:       "no stale copy and no fallback: the run's error",
			setup:      func(e *runEnv, cfg *Config) { cfg.Fallback = Fallback{Stale: e.cache} },
			replies:    times(3, answer(503, "busy")),
			wantErr:    resilience.ErrRetriesExhausted,
			wantRunErr: resilience.ErrRetriesExhausted,
			wantSource: SourceNone, wantCalls: 3,
			check: func(t *testing.T, e *runEnv, res *Result) {
				if res.StaleSkipped != nil || res.Size != 0 {
					t.Errorf("stale skipped %v, size %d", res.StaleSkipped, res.Size)
				}
			},
		},
		{
			name:       "fallback served, the run's error kept",
			setup:      func(e *runEnv, cfg *Config) { cfg.Fallback.Data = fb },
			replies:    []reply{answer(404, "no such item")},
			wantRunErr: resilience.ErrPermanent,
			wantSource: SourceFallback, wantOut: "fallback", wantCalls: 1,
			check: func(t *testing.T, e *runEnv, res *Result) {
				if res.Size != int64(len(fb)) || res.Status != 404 {
					t.Errorf("size %d, status %d", res.Size, res.Status)
				}
			},
		},
		{
			name:       "an empty fallback is a fallback",
			setup:      func(e *runEnv, cfg *Config) { cfg.Fallback.Data = []byte{} },
			replies:    []reply{answer(404, "")},
			wantRunErr: resilience.ErrPermanent,
			wantSource: SourceFallback, wantOut: "", wantCalls: 1,
		},
		{
			name: "the fallback cannot be written: an output error, the run's error kept",
			setup: func(e *runEnv, cfg *Config) {
				cfg.Fallback.Data = fb
				cfg.Sink = &BufferSink{Dst: failWriter{}}
			},
			replies:    times(3, answer(503, "busy")),
			wantErr:    ErrOutput,
			wantRunErr: resilience.ErrRetriesExhausted,
			wantSource: SourceNone, wantCalls: 3,
			check: func(t *testing.T, e *runEnv, res *Result) {
				if msg := res.Err.Error(); !strings.HasPrefix(msg, "retries exhausted") {
					t.Errorf("Result.Err = %q, want the run's own error", msg)
				}
			},
		},
		{
			name:  "the stale copy cannot be written: an output error",
			prime: "cached",
			setup: func(e *runEnv, cfg *Config) {
				cfg.Fallback = Fallback{Stale: e.cache, Data: fb}
				cfg.Sink = &BufferSink{Dst: failWriter{}}
			},
			replies:    times(3, answer(503, "busy")),
			wantErr:    ErrOutput,
			wantRunErr: resilience.ErrRetriesExhausted,
			wantSource: SourceNone, wantCalls: 3,
		},
		{
			name:       "a fresh body that cannot be written: an output error, nothing served",
			setup:      func(e *runEnv, cfg *Config) { cfg.Fallback.Data = fb; cfg.Sink = &BufferSink{Dst: failWriter{}} },
			replies:    []reply{answer(200, "fresh")},
			wantErr:    ErrOutput,
			wantRunErr: ErrOutput,
			wantSource: SourceNone, wantCalls: 1,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			max := tt.cacheMax
			if max == 0 {
				max = 1 << 10
			}
			e := newRunEnv(t, max)
			cfg := e.config()
			if tt.prime != "" {
				e.prime(e.config(), tt.prime)
				e.clock.Advance(tt.age)
			}
			if tt.corrupt {
				for _, f := range e.staleFiles() {
					if err := os.WriteFile(f, []byte("garbage, not an entry"), 0o600); err != nil {
						t.Fatal(err)
					}
				}
			}
			if tt.setup != nil {
				tt.setup(e, &cfg)
			}
			res, err := e.run(context.Background(), cfg, tt.replies...)
			if tt.wantErr == nil && err != nil || tt.wantErr != nil && !errors.Is(err, tt.wantErr) {
				t.Fatalf("error = %v, want %v", err, tt.wantErr)
			}
			if res == nil {
				t.Fatal("no result")
			}
			if tt.wantRunErr == nil && res.Err != nil || tt.wantRunErr != nil && !errors.Is(res.Err, tt.wantRunErr) {
				t.Errorf("Result.Err = %v, want %v", res.Err, tt.wantRunErr)
			}
			if res.Source != tt.wantSource {
				t.Errorf("source %q, want %q", res.Source, tt.wantSource)
			}
			if e.out.String() != tt.wantOut {
				t.Errorf("served %q, want %q", e.out.String(), tt.wantOut)
			}
			if n := e.script.calls(); n != tt.wantCalls {
				t.Errorf("%d requests, want %d", n, tt.wantCalls)
			}
			if tt.check != nil {
				tt.check(t, e, res)
			}
		})
	}
}

func TestRunServeErrorSaysWhatFailed(t *testing.T) {
	e := newRunEnv(t, 1<<10)
	cfg := e.config()
	cfg.Fallback.Data = []byte("fallback")
	cfg.Sink = &BufferSink{Dst: failWriter{}}
	_, err := e.run(context.Background(), cfg, times(3, answer(503, "busy"))...)
	msg := fmt.Sprint(err)
	for _, want := range []string{"cannot serve the fallback", errDiskFull.Error(), "the fetch had failed: retries exhausted after 3 attempts"} {
		if !strings.Contains(msg, want) {
			t.Errorf("error %q lacks %q", msg, want)
		}
	}
}

func TestRunInterruptedServesNoFallback(t *testing.T) {
	e := newRunEnv(t, 1<<10)
	e.prime(e.config(), "cached")
	cfg := e.config()
	cfg.Fallback = Fallback{Stale: e.cache, Data: []byte("fallback")}
	errSignal := errors.New("interrupted by SIGINT")
	ctx, cancel := context.WithCancelCause(context.Background())
	defer cancel(nil)
	res, err := e.run(ctx, cfg, func(req *http.Request) (*http.Response, error) {
		// The signal arrives while the request is in flight.
		cancel(errSignal)
		return nil, req.Context().Err()
	})
	if !errors.Is(err, errSignal) {
		t.Fatalf("error = %v, want the cancellation's cause", err)
	}
	var re *resilience.RunError
	if errors.As(err, &re) {
		t.Errorf("an interruption became a run failure: %v", err)
	}
	if res.Source != SourceNone || e.out.Len() != 0 || e.script.calls() != 1 {
		t.Errorf("source %q, served %q, %d requests: an interrupted run serves nothing and stops", res.Source, e.out.String(), e.script.calls())
	}
}

func TestRunStreamedBodyCutIsNotRetriedOrPatched(t *testing.T) {
	tests := []struct {
		name      string
		stream    bool
		replies   []reply
		wantErr   error
		wantOut   string
		wantCalls int
	}{
		// -N: part of the body is already on stdout; a retry would
		// duplicate it and a fallback would be appended to it.
		{"streamed, cut after bytes", true, []reply{cutAfter("first half", 100), answer(200, "never")},
			ErrPartialStream, "first half", 1},
		// Nothing reached stdout yet: a retry is safe.
		{"streamed, cut before the first byte", true, []reply{cutAfter("", 100), answer(200, "whole")},
			nil, "whole", 2},
		// Buffered: the cut body is dropped and the retry's body alone is served.
		{"buffered, cut after bytes", false, []reply{cutAfter("first half", 100), answer(200, "whole")},
			nil, "whole", 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newRunEnv(t, 1<<10)
			cfg := e.config()
			cfg.Fallback.Data = []byte("fallback")
			if tt.stream {
				cfg.Sink = &StreamSink{Dst: &e.out}
			}
			res, err := e.run(context.Background(), cfg, tt.replies...)
			if tt.wantErr == nil && err != nil || tt.wantErr != nil && !errors.Is(err, tt.wantErr) {
				t.Fatalf("error = %v, want %v", err, tt.wantErr)
			}
			if e.out.String() != tt.wantOut || e.script.calls() != tt.wantCalls {
				t.Errorf("served %q after %d requests, want %q after %d", e.out.String(), e.script.calls(), tt.wantOut, tt.wantCalls)
			}
			if tt.wantErr != nil {
				var cut *BodyCutError
				if !errors.As(err, &cut) || cut.Read != 10 || cut.Total != 100 || !cut.Streamed {
					t.Errorf("BodyCutError = %+v", cut)
				}
				if res.Source != SourceNone {
					t.Errorf("source %q: a fallback was served after a partial stream", res.Source)
				}
			}
		})
	}
}

// netHTTPHeadersTooLarge is net/http's error for response headers over
// Transport.MaxResponseHeaderBytes, as its transport returns it.
var netHTTPHeadersTooLarge = fmt.Errorf("net/http: server response headers exceeded %d bytes; aborted", 1<<20)

func TestRunExitClasses(t *testing.T) {
	// openBreaker is a real breaker on a file store in the run's temp dir,
	// as a process would make it; several share the store's state.
	openBreaker := func(t *testing.T, e *runEnv, failures int) *resilience.Breaker {
		t.Helper()
		b, err := resilience.NewBreaker(resilience.Settings{Key: "http://api.test:80", Failures: failures, Quorum: 1, Node: "n",
			Reset: time.Minute, TrialTimeout: time.Minute, Store: &store.FileStore{Dir: e.dir}})
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	tests := []struct {
		name     string
		setup    func(t *testing.T, e *runEnv, cfg *Config)
		replies  []reply
		class    error // the sentinel the error wraps
		also     error // another error it wraps, if any
		calls    int
		msg      string // a part of the message
		notMsg   string // must not be in the message
		fallback bool   // a fallback is served for this class
		check    func(t *testing.T, e *runEnv, err error, res *Result)
	}{
		{name: "permanent status", replies: []reply{answer(404, "gone")},
			class: resilience.ErrPermanent, calls: 1, msg: "failed, not retryable: 404 Not Found", fallback: true},
		{name: "retries exhausted", replies: times(3, answer(503, "busy")),
			class: resilience.ErrRetriesExhausted, calls: 3, msg: "retries exhausted after 3 attempts: 503 Service Unavailable", fallback: true},
		{name: "connection refused, retried", replies: times(3, transportError(refused)),
			class: resilience.ErrRetriesExhausted, also: syscall.ECONNREFUSED, calls: 3, msg: "connection refused", fallback: true},
		{name: "a hang-up before the response is said in words", replies: times(3, transportError(io.EOF)),
			class: resilience.ErrRetriesExhausted, also: io.EOF, calls: 3, msg: "server closed the connection without a response", fallback: true},
		{name: "unsafe method not retried",
			setup:   func(t *testing.T, e *runEnv, cfg *Config) { cfg.Request.Method = http.MethodPost },
			replies: []reply{answer(503, "busy")},
			class:   resilience.ErrPermanent, calls: 1, msg: "not retried, because the request may have reached the server", fallback: true},
		{name: "rate limited beyond MaxRetryAfter", replies: []reply{answer(429, "slow down", "Retry-After", "120")},
			class: resilience.ErrRateLimited, calls: 1, msg: "server asked to retry after 2m0s", fallback: true,
			check: func(t *testing.T, e *runEnv, err error, res *Result) {
				var re *resilience.RunError
				if !errors.As(err, &re) || re.RetryAfter != 2*time.Minute || re.Reason != resilience.ReasonRetryAfterTooLong {
					t.Errorf("RunError = %+v", re)
				}
				if len(e.clock.Waits()) != 0 {
					t.Errorf("waited %v for a Retry-After beyond the bound", e.clock.Waits())
				}
			}},
		{name: "rate limited on the only attempt",
			setup:   func(t *testing.T, e *runEnv, cfg *Config) { cfg.Policy.Attempts = 1 },
			replies: []reply{answer(429, "slow down", "Retry-After", "120")},
			class:   resilience.ErrRateLimited, calls: 1, msg: "rate limited", notMsg: "retries exhausted", fallback: true},
		{name: "deadline: the next wait would pass MaxTime",
			setup: func(t *testing.T, e *runEnv, cfg *Config) {
				cfg.Policy = resilience.Policy{Attempts: 10, Delay: 10 * time.Minute, Multiplier: 2, MaxTime: time.Hour,
					RetryOn: resilience.MustStatusSet("408,425,429,500,502,503,504")}
			},
			replies: times(10, answer(503, "busy")),
			// Waits of 10m and 20m; the next, 40m, would end past the hour.
			class: resilience.ErrDeadline, calls: 3, msg: "the next retry in 40m0s would pass the time limit of 1h0m0s", fallback: true,
			check: func(t *testing.T, e *runEnv, err error, res *Result) {
				var re *resilience.RunError
				if !errors.As(err, &re) || re.Reason != resilience.ReasonWaitPastDeadline || re.Wait != 40*time.Minute {
					t.Errorf("RunError = %+v", re)
				}
			}},
		{name: "circuit open: no request sent",
			setup: func(t *testing.T, e *runEnv, cfg *Config) {
				// Another process's run opened the breaker.
				b := openBreaker(t, e, 1)
				tk, err := b.Admit(context.Background(), e.clock.Now())
				if err != nil {
					t.Fatal(err)
				}
				b.Record(context.Background(), tk, resilience.Verdict{Kind: resilience.Retryable, Breaker: resilience.CountFailure, Err: errors.New("503 Service Unavailable")}, e.clock.Now(), time.Time{})
				cfg.Breaker = openBreaker(t, e, 1)
			},
			class: resilience.ErrCircuitOpen, calls: 0, msg: "http://api.test:80 is open", fallback: true,
			check: func(t *testing.T, e *runEnv, err error, res *Result) {
				var open *resilience.OpenError
				if !errors.As(err, &open) || len(res.Trace.Attempts) != 0 {
					t.Errorf("OpenError %v, %d attempts", open, len(res.Trace.Attempts))
				}
			}},
		{name: "the breaker opens during the run",
			setup:   func(t *testing.T, e *runEnv, cfg *Config) { cfg.Breaker = openBreaker(t, e, 2) },
			replies: times(2, answer(503, "busy")),
			class:   resilience.ErrRetriesExhausted, calls: 2, msg: "the circuit opened, so retries stopped", fallback: true,
			check: func(t *testing.T, e *runEnv, err error, res *Result) {
				if s := res.Trace.Breaker; !s.On || s.State != resilience.StateOpen {
					t.Errorf("breaker after the run: %+v", s)
				}
			}},
		{name: "output error while streaming",
			setup:   func(t *testing.T, e *runEnv, cfg *Config) { cfg.Sink = &StreamSink{Dst: failWriter{}} },
			replies: []reply{answer(200, "body")},
			class:   ErrOutput, calls: 1, msg: errDiskFull.Error(), notMsg: "failed, not retryable"},
		{name: "output error on commit",
			setup:   func(t *testing.T, e *runEnv, cfg *Config) { cfg.Sink = &BufferSink{Dst: failWriter{}} },
			replies: []reply{answer(200, "body")},
			class:   ErrOutput, calls: 1, msg: errDiskFull.Error(), notMsg: "failed, not retryable"},
		{name: "body too large by its Content-Length",
			setup:   func(t *testing.T, e *runEnv, cfg *Config) { cfg.Request.MaxSize = 4 },
			replies: []reply{answer(200, "0123456789")},
			class:   resilience.ErrPermanent, also: ErrTooLarge, calls: 1, msg: "Content-Length 10 > 4", fallback: true},
		{name: "body too large as it arrives",
			setup:   func(t *testing.T, e *runEnv, cfg *Config) { cfg.Request.MaxSize = 4 },
			replies: []reply{unsized("0123456789")},
			class:   resilience.ErrPermanent, also: ErrTooLarge, calls: 1, msg: "(4 bytes)", fallback: true},
		{name: "too many redirects",
			setup:   func(t *testing.T, e *runEnv, cfg *Config) { cfg.Request.MaxRedirs = 2 },
			replies: []reply{answer(302, "", "Location", "/a"), answer(302, "", "Location", "/b"), answer(302, "", "Location", "/c")},
			class:   resilience.ErrPermanent, also: ErrTooManyRedirects, calls: 3, msg: "more than 2", fallback: true,
			check: func(t *testing.T, e *runEnv, err error, res *Result) {
				if got := e.script.reqs[2].URL.Path; got != "/b" {
					t.Errorf("third request to %s, want the second Location /b", got)
				}
			}},
		{name: "no redirects allowed",
			setup:   func(t *testing.T, e *runEnv, cfg *Config) { cfg.Request.MaxRedirs = 0 },
			replies: []reply{answer(301, "", "Location", "/elsewhere")},
			class:   resilience.ErrPermanent, also: ErrTooManyRedirects, calls: 1, fallback: true},
		{name: "response headers too large", replies: []reply{transportError(netHTTPHeadersTooLarge)},
			class: resilience.ErrPermanent, also: ErrHeadersTooLarge, calls: 1, msg: "response headers exceed 1 MiB", fallback: true},
	}
	for _, tt := range tests {
		for _, withFallback := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s/fallback=%v", tt.name, withFallback), func(t *testing.T) {
				e := newRunEnv(t, 1<<10)
				cfg := e.config()
				if withFallback {
					cfg.Fallback.Data = []byte("fallback")
				}
				if tt.setup != nil {
					tt.setup(t, e, &cfg)
				}
				res, err := e.run(context.Background(), cfg, tt.replies...)
				if n := e.script.calls(); n != tt.calls {
					t.Errorf("%d requests, want %d", n, tt.calls)
				}
				if withFallback && tt.fallback {
					// Every failure class of the run may be answered by the
					// fallback; the run's error is kept for the report.
					if err != nil || res.Source != SourceFallback || !errors.Is(res.Err, tt.class) {
						t.Errorf("with a fallback: error %v, source %q, Result.Err %v", err, res.Source, res.Err)
					}
					return
				}
				if !errors.Is(err, tt.class) || tt.also != nil && !errors.Is(err, tt.also) {
					t.Fatalf("error = %v, want %v and %v", err, tt.class, tt.also)
				}
				if res.Source != SourceNone || e.out.Len() != 0 {
					t.Errorf("source %q, served %q", res.Source, e.out.String())
				}
				msg := err.Error()
				if tt.msg != "" && !strings.Contains(msg, tt.msg) {
					t.Errorf("message %q lacks %q", msg, tt.msg)
				}
				if tt.notMsg != "" && strings.Contains(msg, tt.notMsg) {
					t.Errorf("message %q says %q", msg, tt.notMsg)
				}
				if tt.check != nil {
					tt.check(t, e, err, res)
				}
			})
		}
	}
}

func TestRunRedirectFollowedWithinLimit(t *testing.T) {
	e := newRunEnv(t, 1<<10)
	cfg := e.config()
	cfg.Request.MaxRedirs = 1
	res, err := e.run(context.Background(), cfg, answer(302, "", "Location", "/moved"), answer(200, "here"))
	if err != nil || res.Source != SourceNetwork || e.out.String() != "here" {
		t.Fatalf("error %v, source %q, served %q", err, res.Source, e.out.String())
	}
	if got := e.script.reqs[1].URL.String(); got != "http://api.test/moved" {
		t.Errorf("redirect went to %s", got)
	}
}

func TestRunHooksSeeEveryAttemptAndTheBody(t *testing.T) {
	e := newRunEnv(t, 1<<10)
	cfg := e.config()
	var (
		requests, responses []int
		retries             []resilience.RetryInfo
		prog                = &countingProgress{}
		total               int64
	)
	cfg.Hooks = Hooks{
		OnRequest:  func(n int, req *http.Request) { requests = append(requests, n) },
		OnResponse: func(n int, resp *http.Response) { responses = append(responses, resp.StatusCode) },
		OnRetry:    func(info resilience.RetryInfo) { retries = append(retries, info) },
		OnBody:     func(n int64) Progress { total = n; return prog },
	}
	if _, err := e.run(context.Background(), cfg, answer(503, "busy"), answer(200, "0123456789")); err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(requests) != "[1 2]" || fmt.Sprint(responses) != "[503 200]" {
		t.Errorf("requests %v, responses %v", requests, responses)
	}
	if len(retries) != 1 || retries[0].Attempt != 1 || retries[0].Attempts != 3 || retries[0].Wait != time.Second || retries[0].RetryAfter != -1 {
		t.Errorf("retries %+v", retries)
	}
	if total != 10 || prog.n != 10 || prog.done != 1 {
		t.Errorf("OnBody(%d), progress saw %d bytes, Done %d times", total, prog.n, prog.done)
	}
}

type countingProgress struct{ n, done int }

func (p *countingProgress) Add(n int) { p.n += n }
func (p *countingProgress) Done()     { p.done++ }

func TestRunWithoutClientBuildsOne(t *testing.T) {
	// A --cacert that cannot be read stops the run before any request.
	cfg := Config{Request: &Request{Method: "GET", URL: mustURL(t, "http://api.test/"), CACert: filepath.Join(t.TempDir(), "missing.pem")},
		Sink: &BufferSink{}}
	if _, err := Run(context.Background(), cfg); err == nil || !strings.Contains(err.Error(), "cannot read") {
		t.Errorf("error = %v, want the CA file's", err)
	}
}

// TestRunStaleCacheNeverCrossesIdentities saves a body for one caller and
// fails the next run of another: the other must not get the first one's
// body. The same caller again gets it, which shows the cache works.
func TestRunStaleCacheNeverCrossesIdentities(t *testing.T) {
	user := func(u string) func(*Request) { return func(r *Request) { r.User = u } }
	header := func(name string, values ...string) func(*Request) {
		return func(r *Request) { r.Header[name] = values }
	}
	inURL := func(u, p string) func(*Request) { return func(r *Request) { r.URL.User = url.UserPassword(u, p) } }
	anonymous := func(*Request) {}
	tests := []struct {
		name         string
		saver, other func(*Request)
		secrets      []string // never written to the cache
		sameIdentity bool
	}{
		{"basic auth from -u", user("alice:x"), user("bob:y"), []string{"alice:x"}, false},
		{"basic auth in the URL", inURL("alice", "pw-a"), inURL("bob", "pw-b"), []string{"pw-a"}, false},
		{"Authorization", header("Authorization", "Bearer token-a"), header("Authorization", "Bearer token-b"), []string{"token-a"}, false},
		{"Cookie", header("Cookie", "session=cookie-a"), header("Cookie", "session=cookie-b"), []string{"cookie-a"}, false},
		{"Proxy-Authorization", header("Proxy-Authorization", "Basic proxy-a"), header("Proxy-Authorization", "Basic proxy-b"), []string{"proxy-a"}, false},
		{"authenticated body, anonymous caller", header("Authorization", "Bearer token-a"), anonymous, []string{"token-a"}, false},
		{"anonymous body, authenticated caller", anonymous, user("bob:y"), nil, false},
		{"the same cookies in another order", header("Cookie", "a=1", "b=2"), header("Cookie", "b=2", "a=1"), nil, true},
		{"a header that names no one", header("Accept", "text/plain"), header("Accept", "application/json"), nil, true},
		{"X-Api-Key", header("X-Api-Key", "key-a"), header("X-Api-Key", "key-b"), []string{"key-a"}, false},
		{"api-key, any case", header("api-key", "key-a"), header("API-KEY", "key-b"), []string{"key-a"}, false},
		{"X-Auth-Token, anonymous caller", header("X-Auth-Token", "key-a"), anonymous, []string{"key-a"}, false},
		{"another user agent", header("User-Agent", "one/1"), header("User-Agent", "two/2"), nil, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newRunEnv(t, 1<<10)
			as := func(who func(*Request)) Config {
				cfg := e.config()
				who(cfg.Request)
				cfg.Fallback.Stale = e.cache
				return cfg
			}
			e.prime(as(tt.saver), "private body")
			for _, f := range e.staleFiles() {
				data, _ := os.ReadFile(f)
				for _, s := range tt.secrets {
					if bytes.Contains(data, []byte(s)) || strings.Contains(f, s) {
						t.Errorf("the cache holds the credential %q", s)
					}
				}
			}
			res, err := e.run(context.Background(), as(tt.other), times(3, answer(503, "busy"))...)
			served := res.Source == SourceStale
			if served != tt.sameIdentity {
				t.Fatalf("other caller: source %q, served %q, error %v", res.Source, e.out.String(), err)
			}
			if !tt.sameIdentity {
				if !errors.Is(err, resilience.ErrRetriesExhausted) || e.out.Len() != 0 {
					t.Errorf("other caller: error %v, served %q", err, e.out.String())
				}
				// The saver itself still gets its copy.
				res, err = e.run(context.Background(), as(tt.saver), times(3, answer(503, "busy"))...)
				if err != nil || res.Source != SourceStale || e.out.String() != "private body" {
					t.Errorf("saver: error %v, source %q, served %q", err, res.Source, e.out.String())
				}
			}
		})
	}
}

// A redirect sends no Referer (net/http would send the previous URL,
// query and all: a signed URL's token, to another origin), as curl sends
// none; a Referer the user gave is kept.
func TestRunRedirectSendsNoReferer(t *testing.T) {
	for _, given := range []string{"", "https://mine.test/"} {
		e := newRunEnv(t, 1<<10)
		cfg := e.config()
		cfg.Request.URL = mustURL(t, "http://api.test/items?token=SECRET")
		if given != "" {
			cfg.Request.Header.Set("Referer", given)
		}
		if _, err := e.run(context.Background(), cfg, answer(302, "", "Location", "http://other.test/landing"), answer(200, "here")); err != nil {
			t.Fatal(err)
		}
		if got := e.script.reqs[1].Header.Get("Referer"); got != given {
			t.Errorf("Referer given %q: the redirect sent %q", given, got)
		}
	}
}
