package e2e

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/refetch/refetch/cmd"
)

// These tests run refetch as a user would, against httptest servers that
// misbehave. The refetch they run is this test binary itself: TestMain
// runs refetch's main instead of the tests when the binary is started as
// "refetch" or with REFETCH_E2E_RUN_MAIN=1, so the tests need no second
// build and the binary under test carries whatever the test binary does
// (-race, -cover).

// runMainEnv, set to 1 in a child's environment (env.vars sets it), makes
// this test binary run refetch. A child started under the name "refetch"
// (binary, or a copy installed by the action's scripts, found in PATH by
// a shell) runs refetch without it.
const runMainEnv = "REFETCH_E2E_RUN_MAIN"

// binary is a copy of this test binary named refetch, in a temp dir of
// its own (tests open that dir to other users).
var binary string

func TestMain(m *testing.M) {
	if os.Getenv(runMainEnv) == "1" || filepath.Base(os.Args[0]) == "refetch" {
		// Never m.Run: a child must print nothing of the testing
		// package's (PASS, coverage) and run no test. Package-level
		// initializers run here too, so they must stay cheap: large
		// fixtures are made below, for the tests only.
		os.Exit(cmd.Main())
	}
	dir, err := os.MkdirTemp("", "refetch-e2e-*")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binary = filepath.Join(dir, "refetch")
	if err := copyExecutable(binary); err != nil {
		fmt.Fprintln(os.Stderr, "installing the test binary as refetch:", err)
		os.RemoveAll(dir)
		os.Exit(1)
	}
	flag.Parse()
	if testing.CoverMode() != "" {
		// A child built with -cover writes its counters to GOCOVERDIR,
		// and warns on stderr at exit without one: -test.gocoverdir,
		// where go test merges them into the report, or a dir of ours.
		covdir := ""
		if f := flag.Lookup("test.gocoverdir"); f != nil {
			covdir = f.Value.String()
		}
		if covdir == "" {
			covdir = filepath.Join(dir, "cover")
			os.Mkdir(covdir, 0o755)
		}
		os.Setenv("GOCOVERDIR", covdir)
	}
	for _, make := range fixtures {
		make()
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// fixtures make the tests' large bodies, in the test process only (a
// child that runs as refetch never needs them); files of one system add
// theirs in init.
var fixtures []func()

// copyExecutable copies the running test binary to dst, mode 0755. A
// copy, not a symlink: argv[0] then names refetch wherever the binary is
// run from, and its dir is one the tests may open to other users.
func copyExecutable(dst string) error {
	exe, err := os.Executable()
	if err != nil {
		return err
	}
	src, err := os.Open(exe)
	if err != nil {
		return err
	}
	defer src.Close()
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o755)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, src); err != nil {
		out.Close()
		return err
	}
	return out.Close()
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
		runMainEnv + "=1",
	}
	if d := os.Getenv("GOCOVERDIR"); d != "" { // set by TestMain under -cover
		e.vars = append(e.vars, "GOCOVERDIR="+d)
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

// sh runs script with sh -c in e's dir and variables ("$0" is the refetch
// binary, "$1"… are args: for redirections and closed streams) and returns
// its exit code and its stdout and stderr together.
func (e *env) sh(script string, args ...string) (int, string) {
	cmd := exec.Command("sh", append([]string{"-c", script, binary}, args...)...)
	cmd.Env, cmd.Dir = e.vars, e.dir
	out, err := cmd.CombinedOutput()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		e.t.Fatalf("running sh: %v", err)
	}
	return code, string(out)
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

// outputBody is a body past the in-memory buffer, so buffered modes spill
// to a temp file in $TMPDIR first. TestMain makes it (makeOutputBody): a
// package-level initializer would run in every refetch child too.
var outputBody []byte

func init() { fixtures = append(fixtures, func() { outputBody = makeOutputBody() }) }

func makeOutputBody() []byte {
	b := make([]byte, 5<<20+123)
	for i := range b {
		b[i] = byte(i*31 + i>>11)
	}
	return b
}

// bodyServer serves outputBody, counting requests in c.
func bodyServer(t *testing.T, c *counter) *httptest.Server {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c.next()
		w.Write(outputBody)
	}))
	t.Cleanup(srv.Close)
	return srv
}
