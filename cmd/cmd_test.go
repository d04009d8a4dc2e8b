package cmd

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/refetch/refetch/internal/fakeclock"

	"github.com/refetch/refetch/fetch"
	"github.com/refetch/refetch/resilience"
	"github.com/spf13/cobra"
)

var update = flag.Bool("update", false, "rewrite golden files in testdata/")

func testFactory(env map[string]string) (*Factory, *strings.Builder, *strings.Builder) {
	ios, _, _, _ := Test()
	var out, errOut strings.Builder
	ios.Out, ios.ErrOut = &out, &errOut
	return &Factory{IO: ios, Getenv: func(k string) string { return env[k] }}, &out, &errOut
}

func TestExitCode(t *testing.T) {
	run := func(class error) error { return &resilience.RunError{Class: class, RetryAfter: -1} }
	tests := []struct {
		err  error
		want int
	}{
		{nil, 0},
		{errors.New("boom"), 1},
		{&UsageError{Err: errors.New("bad")}, 2},
		{fmt.Errorf("wrapped: %w", &UsageError{Err: errors.New("bad")}), 2},
		{run(resilience.ErrPermanent), 3},
		{run(resilience.ErrRetriesExhausted), 4},
		{run(resilience.ErrCircuitOpen), 5},
		{&resilience.OpenError{}, 5},
		{run(resilience.ErrRateLimited), 6},
		{run(resilience.ErrDeadline), 7},
		{fmt.Errorf("check: %w", ErrUnhealthy), 8},
		{&InterruptError{Signal: syscall.SIGINT}, 130},
		{&InterruptError{Signal: syscall.SIGTERM}, 143},
		{fmt.Errorf("%w: disk full", fetch.ErrOutput), 1},
		{&InterruptError{Signal: syscall.SIGHUP}, 129},
		// An error's text never decides its class: a connection failure
		// that says "invalid argument" is not a usage error.
		{&resilience.RunError{Class: resilience.ErrRetriesExhausted, RetryAfter: -1,
			Last: errors.New("dial tcp [fe80::1]:80: connect: invalid argument")}, 4},
		{errors.New("unknown flag: --x"), 1},
	}
	classes := map[int]string{0: "", 1: "internal", 2: "usage", 3: "permanent", 4: "retries_exhausted", 5: "circuit_open",
		6: "rate_limited", 7: "deadline", 8: "unhealthy", 129: "interrupted", 130: "interrupted", 143: "interrupted"}
	for _, tt := range tests {
		if got := ExitCode(tt.err); got != tt.want {
			t.Errorf("ExitCode(%v) = %d, want %d", tt.err, got, tt.want)
		}
		if got := FailureClass(tt.err); got != classes[tt.want] {
			t.Errorf("FailureClass(%v) = %q, want %q", tt.err, got, classes[tt.want])
		}
	}
}

func TestFetchFlagsFromCommandLineAndEnv(t *testing.T) {
	f, _, _ := testFactory(map[string]string{"REFETCH_MAX_TIME": "30s", "REFETCH_ATTEMPTS": "9",
		"REFETCH_HEADER": "X-A: 1\nX-B: 2", "REFETCH_INSECURE": "true"})
	var got *FetchOptions
	root := NewCmdRoot(f)
	for _, c := range root.Commands() {
		if c.Name() == "fetch" {
			root.RemoveCommand(c)
		}
	}
	root.AddCommand(NewCmdFetch(f, func(_ context.Context, o *FetchOptions) error { got = o; return nil }))
	root.SetArgs([]string{"fetch", "-n", "4", "--delay", "250ms", "-X", "POST", "http://x"})
	if err := root.Execute(); err != nil {
		t.Fatal(err)
	}
	if got.Attempts != 4 || got.MaxTime != 30*time.Second || got.Delay != 250*time.Millisecond || got.Method != "POST" ||
		!got.Insecure || len(got.Headers) != 2 || got.URL != "http://x" {
		t.Errorf("options = %+v", got)
	}
}

func TestEnvName(t *testing.T) {
	if got := EnvName("max-retry-after"); got != "REFETCH_MAX_RETRY_AFTER" {
		t.Errorf("EnvName = %s", got)
	}
}

// envOf is a getenv over the given name, value pairs.
func envOf(kv ...string) func(string) string {
	m := map[string]string{}
	for i := 0; i+1 < len(kv); i += 2 {
		m[kv[i]] = kv[i+1]
	}
	return func(k string) string { return m[k] }
}

func TestUseColor(t *testing.T) {
	env := envOf
	tests := []struct {
		mode string
		tty  bool
		env  func(string) string
		want bool
	}{
		{"auto", true, env(), true},
		{"auto", false, env(), false},
		{"auto", true, env("NO_COLOR", "1"), false},
		{"auto", true, env("TERM", "dumb"), false},
		{"always", false, env(), true},
		{"always", true, env("NO_COLOR", "x"), false},
		{"never", true, env(), false},
	}
	for _, tt := range tests {
		if got := UseColor(tt.mode, tt.tty, tt.env); got != tt.want {
			t.Errorf("UseColor(%s, tty=%v) = %v", tt.mode, tt.tty, got)
		}
	}
}

func TestParseSize(t *testing.T) {
	for in, want := range map[string]int64{"0": 0, "10": 10, "10K": 10 << 10, "3m": 3 << 20, "1G": 1 << 30, "2MiB": 2 << 20, "5KB": 5 << 10} {
		if got, err := parseSize(in); err != nil || got != want {
			t.Errorf("parseSize(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, bad := range []string{"", "-1", "1X", "K", "99999999999T", "1.5M", "1025T", "1125899906842625", "99999999999999999999"} {
		if _, err := parseSize(bad); err == nil {
			t.Errorf("parseSize(%q) accepted", bad)
		}
	}
	// The bound itself is taken; past it the message names the bound.
	if got, err := parseSize("1024T"); err != nil || got != 1<<50 {
		t.Errorf("parseSize(1024T) = %d, %v", got, err)
	}
	for _, big := range []string{"1025T", "9223372036854775807", "99999999999999999999"} {
		if _, err := parseSize(big); err == nil || !strings.Contains(err.Error(), "at most 1024T") {
			t.Errorf("parseSize(%q): %v, want the bound named", big, err)
		}
	}
}

func TestBreakerKey(t *testing.T) {
	for in, want := range map[string]string{
		"http://Example.COM/a?b":   "http://example.com:80",
		"https://example.com/":     "https://example.com:443",
		"http://u:p@host:8080/x":   "http://host:8080",
		"https://[::1]:8443/x":     "https://[::1]:8443",
		"HTTP://example.com:81/xy": "http://example.com:81",
		// One origin, one key, however it is written.
		"http://[0:0:0:0:0:0:0:1]/":       "http://[::1]:80",
		"http://[0000::0001]:80/":         "http://[::1]:80",
		"http://[::FFFF:127.0.0.1]:8080/": "http://127.0.0.1:8080",
		"http://[::ffff:7f00:1]:8080/":    "http://127.0.0.1:8080",
		"http://[FE80::1%25Eth0]:8080/":   "http://[fe80::1%Eth0]:8080",
		"https://[2001:DB8:0:0:0:0:0:1]/": "https://[2001:db8::1]:443",
		"http://Example.COM.:80/":         "http://example.com:80",
		"https://example.com:0443/":       "https://example.com:443",
		"http://BÜCHER.example/":          "http://xn--bcher-kva.example:80",
		"http://xn--BCHER-kva.example/":   "http://xn--bcher-kva.example:80",
	} {
		u, _ := url.Parse(in)
		if got := BreakerKey(u); got != want {
			t.Errorf("BreakerKey(%s) = %s, want %s", in, got, want)
		}
	}
}

func TestStateDirOrder(t *testing.T) {
	env := envOf
	tests := []struct {
		flag string
		env  func(string) string
		want string // "" for an error
	}{
		{"/flag", env("XDG_STATE_HOME", "/xdg", "HOME", "/home/u"), "/flag"},
		{"", env("XDG_STATE_HOME", "/xdg", "HOME", "/home/u"), filepath.Join("/xdg", "refetch")},
		// The XDG spec: a relative path in XDG_* is ignored.
		{"", env("XDG_STATE_HOME", "xdg", "HOME", "/home/u"), filepath.Join("/home/u", ".local", "state", "refetch")},
		{"", env("HOME", "/home/u"), filepath.Join("/home/u", ".local", "state", "refetch")},
		{"", env(), ""},
		{"", env("HOME", "relative"), ""},
	}
	for _, tt := range tests {
		got, err := StateDir(tt.flag, tt.env)
		if got != tt.want || (tt.want == "") != errors.Is(err, errNoStateDir) {
			t.Errorf("StateDir(%q) = %q, %v; want %q", tt.flag, got, err, tt.want)
		}
	}
	if d, _ := CacheDir(env("XDG_CACHE_HOME", "rel", "HOME", "/home/u")); d != filepath.Join("/home/u", ".cache", "refetch") {
		t.Errorf("CacheDir with a relative XDG_CACHE_HOME = %q", d)
	}
	if _, err := CacheDir(env()); err == nil {
		t.Error("CacheDir without HOME or XDG_CACHE_HOME found a dir")
	}
}

func TestFetchRunWithInjectedTimer(t *testing.T) {
	hits := 0
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits++
		if hits < 3 {
			http.Error(w, "busy", http.StatusServiceUnavailable)
			return
		}
		fmt.Fprint(w, "done")
	}))
	defer srv.Close()
	f, out, errOut := testFactory(nil)
	code, waits := runWithFakeTime(t, f, "fetch", "--delay", "1h", "--cap", "2h", "--jitter", "0", "--breaker-failures", "0", srv.URL)
	if code != 0 || out.String() != "done" || len(waits) != 2 || waits[0] != time.Hour || waits[1] != 2*time.Hour {
		t.Errorf("exit %d, stdout %q, waits %v", code, out.String(), waits)
	}
	if !strings.Contains(errOut.String(), "attempt 2/3: 503 Service Unavailable; retrying in 2h0m0s") {
		t.Errorf("stderr:\n%s", errOut.String())
	}
}

func TestHelpGolden(t *testing.T) {
	for _, args := range [][]string{{"--help"}, {"fetch", "--help"}, {"check", "--help"}, {"probe", "--help"}, {"breaker", "status", "--help"}} {
		name := strings.ReplaceAll(strings.Join(args[:len(args)-1], "-"), " ", "-")
		if name == "" {
			name = "root"
		}
		f, out, _ := testFactory(nil)
		if code := Run(context.Background(), f, args); code != 0 {
			t.Fatalf("%v: exit %d", args, code)
		}
		golden := filepath.Join("testdata", "help-"+name+".golden")
		if *update {
			os.WriteFile(golden, []byte(out.String()), 0o644)
			continue
		}
		want, err := os.ReadFile(golden)
		if err != nil {
			t.Fatalf("%v (run go test ./cmd -update)", err)
		}
		if out.String() != string(want) {
			t.Errorf("%v help differs from %s (run go test ./cmd -update to accept):\n%s", args, golden, out.String())
		}
	}
}

// runWithFakeTime runs a fetch in-process with an instant timer and
// returns the exit code and the waits it asked for.
func runWithFakeTime(t *testing.T, f *Factory, args ...string) (int, []time.Duration) {
	t.Helper()
	waits, err := fetchWithFakeTime(f, args...)
	return ExitCode(err), waits
}

// fetchWithFakeTime runs a fetch in-process on a fake clock whose timer
// fires at once, and returns the waits it asked for and the run's error.
func fetchWithFakeTime(f *Factory, args ...string) ([]time.Duration, error) {
	ft := newFakeTime()
	err := runReplaced(f, NewCmdFetch(f, func(ctx context.Context, o *FetchOptions) error {
		o.Clock, o.NewTimer = ft.clock, ft.newTimer
		return runFetch(ctx, o)
	}), args)
	return ft.clock.Waits(), err
}

// fakeTime is internal/fakeclock's clock, whose timers fire at once,
// advancing it by the wait and recording each wait: an in-process run
// "waits" an hour at once.
type fakeTime struct {
	clock *fakeclock.Clock
}

func newFakeTime() *fakeTime {
	// Near the real now: state files written on this clock expire by it
	// (FileStore.TTL), and breaker status reads them on the real one.
	return &fakeTime{clock: fakeclock.New(time.Now().UTC().Truncate(time.Hour))}
}

func (ft *fakeTime) newTimer() resilience.Timer { return ft.clock.NewTimer() }

// runReplaced runs args on a command tree whose command of c's name is c
// (a test's own run function), and returns the error Execute returns.
func runReplaced(f *Factory, c *cobra.Command, args []string) error {
	root := NewCmdRoot(f)
	for _, old := range root.Commands() {
		if old.Name() == c.Name() {
			root.RemoveCommand(old)
		}
	}
	root.AddCommand(c)
	root.SetArgs(args)
	return root.Execute()
}

func TestProgressOnlyOnATerminal(t *testing.T) {
	hits := 0
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits++
		if hits == 1 {
			http.Error(w, "busy", http.StatusServiceUnavailable)
			return
		}
		w.Header().Set("Content-Length", "4000")
		for i := 0; i < 4; i++ {
			w.Write(make([]byte, 1000))
			w.(http.Flusher).Flush()
			time.Sleep(120 * time.Millisecond)
		}
	}))
	defer srv.Close()
	for _, tc := range []struct {
		tty   bool
		quiet bool
		want  bool
	}{{true, false, true}, {false, false, false}, {true, true, false}} {
		hits = 0
		f, _, errOut := testFactory(nil)
		f.IO.ErrTTY = tc.tty
		args := []string{"fetch", "--delay", "5s", "--jitter", "0", "--breaker-failures", "0", "-o", filepath.Join(t.TempDir(), "out"), srv.URL}
		if tc.quiet {
			args = append(args, "-q")
		}
		if code, _ := runWithFakeTime(t, f, args...); code != 0 {
			t.Fatalf("exit %d: %s", code, errOut.String())
		}
		got := errOut.String()
		hasBar, hasCountdown := strings.Contains(got, "downloading"), strings.Contains(got, "next attempt in 5s")
		if hasBar != tc.want || hasCountdown != tc.want {
			t.Errorf("tty=%v quiet=%v: bar %v, countdown %v, want %v:\n%q", tc.tty, tc.quiet, hasBar, hasCountdown, tc.want, got)
		}
	}
}

// TestCheckResultLinesNeverColored: --color is stderr's (README); check's
// result lines on stdout are for scripts and CI logs, plain even on a
// terminal and with --color always.
func TestCheckResultLinesNeverColored(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { fmt.Fprint(w, "ok") }))
	defer srv.Close()
	for _, tc := range []struct {
		tty  bool
		args []string
	}{{true, nil}, {false, nil}, {true, []string{"--color", "always"}}, {false, []string{"--color", "always"}}} {
		f, out, _ := testFactory(nil)
		f.IO.OutTTY, f.IO.ErrTTY = tc.tty, tc.tty
		if code := Run(context.Background(), f, append(append([]string{"check"}, tc.args...), srv.URL)); code != 0 {
			t.Fatalf("exit %d", code)
		}
		if strings.Contains(out.String(), "\x1b[") || !strings.HasPrefix(out.String(), "healthy ") {
			t.Errorf("tty=%v %v: stdout %q", tc.tty, tc.args, out.String())
		}
	}
}
