package e2e

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// switchable serves "fresh" while up, and the given failure while down.
type switchable struct {
	down atomic.Bool
	fail func(w http.ResponseWriter, r *http.Request)
	hits counter
}

func (s *switchable) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.hits.next()
	if s.down.Load() {
		s.fail(w, r)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	fmt.Fprint(w, `{"fresh":true}`)
}

func status503(w http.ResponseWriter, r *http.Request) {
	http.Error(w, "down", http.StatusServiceUnavailable)
}

func TestE2EFallbackText(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(http.HandlerFunc(status503))
	defer srv.Close()
	r := newEnv(t).run(args("--fallback", "[]", srv.URL)...)
	r.wantCode(t, 0)
	if r.stdout != "[]" {
		t.Errorf("stdout = %q", r.stdout)
	}
	if !strings.Contains(r.stderr, "serving fallback: retries exhausted after 3 attempts: 503 Service Unavailable") {
		t.Errorf("stderr:\n%s", r.stderr)
	}
}

func TestE2EFallbackFile(t *testing.T) {
	t.Parallel()
	var c counter
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { c.next(); http.NotFound(w, r) }))
	defer srv.Close()
	e := newEnv(t)
	fb := filepath.Join(e.dir, "default.json")
	os.WriteFile(fb, []byte(`{"default":1}`), 0o600)
	out := filepath.Join(e.dir, "out.json")
	r := e.run(args("--fallback-file", fb, "-o", out, srv.URL)...)
	r.wantCode(t, 0)
	if data, _ := os.ReadFile(out); string(data) != `{"default":1}` {
		t.Errorf("-o got %q", data)
	}
	if !strings.Contains(r.stderr, "serving fallback: failed, not retryable: 404 Not Found") {
		t.Errorf("stderr:\n%s", r.stderr)
	}
	assertNoTempFiles(t, e.dir)
	before := c.get()
	r = e.run(args("--fallback-file", filepath.Join(e.dir, "missing"), srv.URL)...)
	r.wantCode(t, 2)
	if c.get() != before || !strings.Contains(r.stderr, "--fallback-file") {
		t.Errorf("requests %d→%d, stderr:\n%s", before, c.get(), r.stderr)
	}
}

func TestE2EStaleIfError(t *testing.T) {
	t.Parallel()
	s := &switchable{fail: status503}
	srv := httptest.NewServer(s)
	defer srv.Close()
	e := newEnv(t).with("REFETCH_BREAKER_FAILURES=0")
	fresh := e.run(args("--stale-if-error", "1h", srv.URL)...)
	fresh.wantCode(t, 0)
	s.down.Store(true)

	r := e.run(args("--stale-if-error", "1h", "--fallback", "fallback", srv.URL)...)
	r.wantCode(t, 0)
	if r.stdout != `{"fresh":true}` {
		t.Errorf("stale stdout = %q", r.stdout)
	}
	if !strings.Contains(r.stderr, "serving stale response from") || !strings.Contains(r.stderr, "ago: retries exhausted") {
		t.Errorf("stderr:\n%s", r.stderr)
	}

	rep := e.run(args("--json", "--stale-if-error", "1h", srv.URL)...).report(t)
	if rep["ok"] != true || rep["source"] != "stale" || rep["fallback"] != true || rep["exit_code"] != 0.0 ||
		rep["error"] == nil || rep["details"].(map[string]any)["class"] != "retries_exhausted" {
		t.Errorf("report = %v", rep)
	}
	if d, ok := rep["data"].(map[string]any); !ok || d["fresh"] != true {
		t.Errorf("data = %v", rep["data"])
	}

	// Too old for the limit: the fallback is next in line.
	r = e.run(args("--stale-if-error", "1ns", "--fallback", "fallback", srv.URL)...)
	r.wantCode(t, 0)
	if r.stdout != "fallback" {
		t.Errorf("stdout = %q, want the fallback", r.stdout)
	}
	// Too old and no fallback: the error.
	e.run(args("--stale-if-error", "1ns", srv.URL)...).wantCode(t, 4)
}

func TestE2EStaleNotWrittenWithoutFlagOrForPost(t *testing.T) {
	t.Parallel()
	s := &switchable{fail: status503}
	srv := httptest.NewServer(s)
	defer srv.Close()
	e := newEnv(t)
	e.run(args(srv.URL)...).wantCode(t, 0)
	e.run(args("--stale-if-error", "1h", "-X", "POST", srv.URL+"/p")...).wantCode(t, 0)
	s.down.Store(true)
	e.run(args("--breaker-failures", "0", "--stale-if-error", "1h", srv.URL)...).wantCode(t, 4)
	e.run(args("--breaker-failures", "0", "--stale-if-error", "1h", "-X", "POST", srv.URL+"/p")...).wantCode(t, 3)
	if files, _ := filepath.Glob(filepath.Join(e.dir, "cache", "refetch", "*")); len(files) != 0 {
		t.Errorf("cache written: %v", files)
	}
}

func TestE2EFallbackForEveryFailureClass(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name  string
		fail  func(w http.ResponseWriter, r *http.Request)
		extra []string
		class string
	}{
		{"permanent", func(w http.ResponseWriter, r *http.Request) { http.Error(w, "gone", http.StatusGone) }, nil, "permanent"},
		{"exhausted", status503, nil, "retries_exhausted"},
		{"rate limited", func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Retry-After", "3600")
			w.WriteHeader(http.StatusTooManyRequests)
		}, nil, "rate_limited"},
		{"deadline", func(w http.ResponseWriter, r *http.Request) {
			select {
			case <-r.Context().Done():
			case <-time.After(10 * time.Second):
			}
		}, []string{"--max-time", "100ms"}, "deadline"},
		{"circuit open", status503, []string{"--breaker-failures", "1", "-n", "1"}, "circuit_open"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := &switchable{fail: tc.fail}
			srv := httptest.NewServer(s)
			defer srv.Close()
			e := newEnv(t)
			base := append([]string{"--stale-if-error", "1h", "--fallback", "fb"}, tc.extra...)
			e.run(args(append(base, srv.URL)...)...).wantCode(t, 0)
			s.down.Store(true)
			if tc.class == "circuit_open" {
				e.run(args(append(base, srv.URL)...)...).wantCode(t, 0) // opens it
			}
			r := e.run(args(append(append(base, "--json"), srv.URL)...)...)
			r.wantCode(t, 0)
			rep := r.report(t)
			if rep["source"] != "stale" || rep["details"].(map[string]any)["class"] != tc.class {
				t.Errorf("report = %v", rep)
			}
			// Without the stale copy: the fallback.
			os.RemoveAll(filepath.Join(e.dir, "cache"))
			rep = e.run(args(append(append(base, "--json"), srv.URL)...)...).report(t)
			if rep["source"] != "fallback" || rep["data"] != "fb" || rep["fallback"] != true {
				t.Errorf("report = %v", rep)
			}
		})
	}
}

func TestE2EInterruptGetsNoFallback(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(http.HandlerFunc(status503))
	defer srv.Close()
	e := newEnv(t)
	cmd := e.command("fetch", "--fallback", "fb", "--delay", "1h", "--cap", "1h", srv.URL)
	stderr := newLockedBuffer()
	var stdout strings.Builder
	cmd.Stderr, cmd.Stdout = stderr, &stdout
	cmd.Start()
	waitFor(t, "the wait", func() bool { return strings.Contains(stderr.String(), "retrying in") })
	cmd.Process.Signal(os.Interrupt)
	cmd.Wait()
	if cmd.ProcessState.ExitCode() != 130 || stdout.String() != "" {
		t.Errorf("exit %d, stdout %q", cmd.ProcessState.ExitCode(), stdout.String())
	}
}
