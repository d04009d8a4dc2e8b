package main_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// These tests build the refetch binary once and run it as a user would,
// against httptest servers that misbehave.

var binary string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "refetch-e2e-*")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binary = filepath.Join(dir, "refetch")
	buildArgs := []string{"build", "-o", binary}
	if raceBuild {
		buildArgs = append(buildArgs, "-race")
	}
	build := exec.Command("go", append(buildArgs, ".")...)
	build.Stderr = os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "building refetch:", err)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// result is one run of the binary.
type result struct {
	stdout, stderr string
	code           int
}

// env is an isolated environment: its own state, cache and home dirs.
type env struct {
	t    *testing.T
	dir  string
	vars []string
}

func newEnv(t *testing.T) *env {
	t.Helper()
	dir := t.TempDir()
	e := &env{t: t, dir: dir}
	e.vars = []string{
		"HOME=" + dir,
		"PATH=" + os.Getenv("PATH"),
		"XDG_STATE_HOME=" + filepath.Join(dir, "state"),
		"XDG_CACHE_HOME=" + filepath.Join(dir, "cache"),
		"TMPDIR=" + os.TempDir(),
		// A race-enabled binary otherwise sleeps a second at every exit;
		// a detected race still fails the run (exit 66).
		"GORACE=atexit_sleep_ms=0 exitcode=66",
	}
	return e
}

func (e *env) with(vars ...string) *env {
	c := *e
	c.vars = append(append([]string{}, e.vars...), vars...)
	return &c
}

func (e *env) command(args ...string) *exec.Cmd {
	cmd := exec.Command(binary, args...)
	cmd.Env = e.vars
	cmd.Dir = e.dir
	return cmd
}

func (e *env) run(args ...string) result {
	e.t.Helper()
	return e.runStdin("", args...)
}

func (e *env) runStdin(stdin string, args ...string) result {
	e.t.Helper()
	cmd := e.command(args...)
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	cmd.Stdin = strings.NewReader(stdin)
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		e.t.Fatalf("running refetch: %v", err)
	}
	return result{stdout: out.String(), stderr: errOut.String(), code: code}
}

func (r result) wantCode(t *testing.T, code int) {
	t.Helper()
	if r.code != code {
		t.Fatalf("exit code = %d, want %d\nstdout: %q\nstderr: %s", r.code, code, r.stdout, r.stderr)
	}
}

// report parses a --json run's stdout, which must be exactly one object.
func (r result) report(t *testing.T) map[string]any {
	t.Helper()
	dec := json.NewDecoder(strings.NewReader(r.stdout))
	var m map[string]any
	if err := dec.Decode(&m); err != nil {
		t.Fatalf("stdout is not a JSON object: %v\n%q", err, r.stdout)
	}
	if dec.More() {
		t.Fatalf("stdout holds more than one JSON value: %q", r.stdout)
	}
	return m
}

// counter counts requests to a handler.
type counter struct{ n atomic.Int64 }

func (c *counter) next() int64 { return c.n.Add(1) }
func (c *counter) get() int64  { return c.n.Load() }

// fast are flags that keep retries quick and deterministic.
var fast = []string{"--delay", "10ms", "--jitter", "0", "--multiplier", "1"}

func args(extra ...string) []string { return append(append([]string{"fetch"}, fast...), extra...) }

// waitFor polls until cond is true or a generous limit passes.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// lockedBuffer is a bytes.Buffer safe to read while a process writes it.
type lockedBuffer struct {
	mu  chan struct{}
	buf bytes.Buffer
}

func newLockedBuffer() *lockedBuffer { return &lockedBuffer{mu: make(chan struct{}, 1)} }

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu <- struct{}{}
	defer func() { <-b.mu }()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu <- struct{}{}
	defer func() { <-b.mu }()
	return b.buf.String()
}

// downServer answers every request with 503, counting requests in c if
// it is not nil; it is closed when the test ends.
func downServer(t *testing.T, c *counter) *httptest.Server {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if c != nil {
			c.next()
		}
		http.Error(w, "down", http.StatusServiceUnavailable)
	}))
	t.Cleanup(srv.Close)
	return srv
}
