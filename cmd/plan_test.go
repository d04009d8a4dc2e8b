package cmd

import (
	"context"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/refetch/refetch/resilience/store"

	"github.com/refetch/refetch/fetch"
	"github.com/refetch/refetch/resilience"
	"github.com/spf13/pflag"
)

// parseRetryFlags registers the retry flags of fetch (or check) on a
// fresh flag set and parses args, as the command does.
func parseRetryFlags(t *testing.T, check bool, args ...string) *RetryFlags {
	t.Helper()
	fs := pflag.NewFlagSet("test", pflag.ContinueOnError)
	fs.SetOutput(io.Discard)
	r := &RetryFlags{}
	r.register(fs, check)
	if err := fs.Parse(args); err != nil {
		t.Fatalf("%v: %v", args, err)
	}
	r.resolveGiven(fs)
	return r
}

func wantUsage(t *testing.T, err error, part string) {
	t.Helper()
	var usage *UsageError
	if !errors.As(err, &usage) || ExitCode(err) != ExitUsage {
		t.Errorf("error %v (%T) is not a usage error", err, err)
		return
	}
	// What a person sees: describe names the flags of the fetch layer's
	// errors.
	if msg := describe(err); !strings.Contains(msg, part) {
		t.Errorf("usage error %q lacks %q", msg, part)
	}
}

func TestRetryFlagsPolicy(t *testing.T) {
	defaults := resilience.Policy{Attempts: 3, Delay: time.Second, Multiplier: 2, Cap: 10 * time.Second, Jitter: 0.5,
		Timeout: 30 * time.Second, RetryOn: resilience.MustStatusSet("408,425,429,500,502,503,504"), MaxRetryAfter: time.Minute}
	with := func(change func(p *resilience.Policy)) resilience.Policy {
		p := defaults
		change(&p)
		return p
	}
	tests := []struct {
		args  []string
		check bool
		want  resilience.Policy
		usage string // a part of the usage error; "" for none
	}{
		{args: nil, want: defaults},
		// A bound of 0 is no bound; an amount of 0 is none of it.
		{args: []string{"--cap", "0"}, want: with(func(p *resilience.Policy) { p.Cap = 0 })},
		{args: []string{"--max-retry-after", "0"}, want: with(func(p *resilience.Policy) { p.MaxRetryAfter = 0 })},
		{args: []string{"--max-time", "0", "--timeout", "0"}, want: with(func(p *resilience.Policy) { p.Timeout = 0 })},
		{args: []string{"--delay", "0", "--jitter", "0"}, want: with(func(p *resilience.Policy) { p.Delay, p.Jitter = 0, 0 })},
		{args: []string{"--multiplier", "1", "--jitter", "1"}, want: with(func(p *resilience.Policy) { p.Multiplier, p.Jitter = 1, 1 })},
		{args: []string{"-n", "7", "--max-time", "1m", "--retry-on", "5xx,429", "--retry-unsafe"}, want: with(func(p *resilience.Policy) {
			p.Attempts, p.MaxTime, p.RetryOn, p.RetryUnsafe = 7, time.Minute, resilience.MustStatusSet("5xx,429"), true
		})},
		// check has no --max-retry-after: it honours fetch's default.
		{args: []string{"--breaker-failures", "2"}, check: true, want: defaults},
		// Where zero makes no sense, it is a usage error.
		{args: []string{"--attempts", "0"}, usage: "invalid --attempts 0: must be at least 1"},
		{args: []string{"-n", "-2"}, usage: "invalid --attempts -2"},
		{args: []string{"--breaker-reset", "0"}, usage: "invalid --breaker-reset 0"},
		{args: []string{"--multiplier", "0.5"}, usage: "invalid --multiplier 0.5: must be at least 1"},
		{args: []string{"--multiplier", "NaN"}, usage: "invalid --multiplier NaN"},
		{args: []string{"--multiplier", "+Inf"}, usage: "invalid --multiplier +Inf"},
		{args: []string{"--jitter", "NaN"}, usage: "invalid --jitter NaN: must be between 0 and 1"},
		{args: []string{"--jitter", "1.5"}, usage: "invalid --jitter 1.5"},
		{args: []string{"--jitter", "-0.1"}, usage: "invalid --jitter -0.1"},
		{args: []string{"--breaker-failures", "-1"}, usage: "invalid --breaker-failures -1"},
		{args: []string{"--retry-on", "abc"}, usage: "invalid --retry-on"},
		{args: []string{"--retry-on", ""}, usage: "invalid --retry-on"},
		{args: []string{"--delay", "-1s"}, usage: "invalid --delay -1s: must not be negative"},
		{args: []string{"--cap", "-1s"}, usage: "invalid --cap -1s"},
		{args: []string{"--max-time", "-1s"}, usage: "invalid --max-time -1s"},
		{args: []string{"--timeout", "-1s"}, usage: "invalid --timeout -1s"},
		{args: []string{"--max-retry-after", "-1s"}, usage: "invalid --max-retry-after -1s"},
		{args: []string{"--breaker-reset", "-1s"}, usage: "invalid --breaker-reset -1s"},
	}
	for _, tt := range tests {
		r := parseRetryFlags(t, tt.check, tt.args...)
		got, err := r.policy()
		if tt.usage != "" {
			wantUsage(t, err, tt.usage)
			continue
		}
		if err != nil {
			t.Errorf("%v: %v", tt.args, err)
			continue
		}
		if got != tt.want {
			t.Errorf("%v: policy\n %+v, want\n %+v", tt.args, got, tt.want)
		}
	}
	// NaN is no valid value, whichever way it is spelled.
	for _, v := range []float64{math.NaN(), math.Inf(1)} {
		r := parseRetryFlags(t, false)
		r.Jitter = v
		if _, err := r.policy(); err == nil {
			t.Errorf("jitter %v accepted", v)
		}
	}
}

func TestBreakerFailures(t *testing.T) {
	tests := []struct {
		args     []string
		attempts int
		want     int
	}{
		{nil, 1, 3}, // single attempts: three failed runs open it
		{nil, 3, 3},
		{nil, 7, 7}, // one run that exhausts its retries opens it
		{[]string{"--breaker-failures", "5"}, 7, 5},
		{[]string{"--breaker-failures", "1"}, 3, 1},
		{[]string{"--breaker-failures", "0"}, 7, 0}, // off
	}
	for _, tt := range tests {
		r := parseRetryFlags(t, false, tt.args...)
		if got := r.breakerFailures(tt.attempts); got != tt.want {
			t.Errorf("%v with %d attempts: %d, want %d", tt.args, tt.attempts, got, tt.want)
		}
	}
}

// planOf runs `refetch <command> args...` in-process up to the plan, with
// env as the environment; plan makes the plan from the options. It
// returns stderr and the plan's error.
func planOf(t *testing.T, env map[string]string, command string, args []string, plan func(o any) error) (string, error) {
	t.Helper()
	f, _, errOut := testFactory(env)
	root := NewCmdRoot(f)
	for _, c := range root.Commands() {
		if c.Name() == command {
			root.RemoveCommand(c)
		}
	}
	ran := false
	switch command {
	case "fetch":
		root.AddCommand(NewCmdFetch(f, func(_ context.Context, o *FetchOptions) error { ran = true; return plan(o) }))
	case "check":
		root.AddCommand(NewCmdCheck(f, func(_ context.Context, o *CheckOptions) error { ran = true; return plan(o) }))
	}
	root.SetArgs(append([]string{command}, args...))
	err := root.Execute()
	if !ran {
		t.Fatalf("%s %v did not reach its plan: %v", command, args, err)
	}
	return errOut.String(), err
}

func planFetch(t *testing.T, env map[string]string, args ...string) (*fetchPlan, string, error) {
	t.Helper()
	var p *fetchPlan
	stderr, err := planOf(t, env, "fetch", args, func(o any) error {
		var err error
		p, err = o.(*FetchOptions).plan(context.Background())
		return err
	})
	return p, stderr, err
}

// resolvedCheck is a check plan with the breaker plan of each request
// resolved, as runCheck resolves them (with their warnings).
type resolvedCheck struct {
	*checkPlan
	breakers []*breakerPlan
}

func planCheck(t *testing.T, env map[string]string, args ...string) (*resolvedCheck, string, error) {
	t.Helper()
	var p *resolvedCheck
	stderr, err := planOf(t, env, "check", args, func(o any) error {
		plan, err := o.(*CheckOptions).plan(context.Background())
		if err != nil {
			return err
		}
		p = &resolvedCheck{checkPlan: plan}
		for _, req := range plan.reqs {
			p.breakers = append(p.breakers, plan.breaker(req))
		}
		return nil
	})
	return p, stderr, err
}

func TestFetchPlan(t *testing.T) {
	const u = "http://api.test/items"
	dir := t.TempDir()
	fallbackFile := filepath.Join(dir, "fallback.json")
	if err := os.WriteFile(fallbackFile, []byte(`{"items":[]}`), 0o600); err != nil {
		t.Fatal(err)
	}
	home := map[string]string{"HOME": "/home/u", "REFETCH_NODE": "node-1"}
	noDirs := map[string]string{}
	unixCacheDir := runtime.GOOS != "darwin" && runtime.GOOS != "windows" && runtime.GOOS != "ios" && runtime.GOOS != "plan9"
	tests := []struct {
		name  string
		env   map[string]string
		args  []string
		usage string // a part of the usage error; "" for none
		skip  bool
		check func(t *testing.T, p *fetchPlan, stderr string)
	}{
		{name: "-N with --json", env: home, args: []string{"-N", "--json", u}, usage: "-N streams the body to stdout, --json prints a report there instead"},
		{name: "-N with -o", env: home, args: []string{"-N", "-o", filepath.Join(dir, "out"), u}, usage: "-N streams to stdout, -o writes a file atomically"},
		{name: "-N with -o -", env: home, args: []string{"-N", "-o", "-", u}},
		{name: "--fallback with --fallback-file", env: home, args: []string{"--fallback", "[]", "--fallback-file", fallbackFile, u},
			usage: "--fallback and --fallback-file cannot be used together"},
		{name: "an empty --fallback with --fallback-file", env: home, args: []string{"--fallback", "", "--fallback-file", fallbackFile, u},
			usage: "cannot be used together"},
		{name: "unreadable --fallback-file", env: home, args: []string{"--fallback-file", filepath.Join(dir, "missing"), u},
			usage: "--fallback-file: " + filepath.Join(dir, "missing") + ": no such file or directory"},
		{name: "a malformed URL", env: home, args: []string{"http://[::1"}, usage: "missing ']'"},
		{name: "an unsupported scheme", env: home, args: []string{"ftp://api.test/"}, usage: `unsupported scheme "ftp"`},
		{name: "a bad retry flag", env: home, args: []string{"--breaker-reset", "0", u}, usage: "invalid --breaker-reset 0"},
		{name: "negative --stale-if-error", env: home, args: []string{"--stale-if-error", "-1s", u}, usage: "invalid --stale-if-error -1s"},
		{name: "bad -H", env: home, args: []string{"-H", "NoColon", u}, usage: "invalid -H"},
		{name: "bad -X", env: home, args: []string{"-X", "GET /", u}, usage: `invalid -X "GET /"`},
		{name: "bad --max-size", env: home, args: []string{"--max-size", "1X", u}, usage: "invalid --max-size"},
		{name: "negative --max-redirs", env: home, args: []string{"--max-redirs", "-1", u}, usage: "invalid --max-redirs -1"},
		{name: "unreadable -d @file", env: home, args: []string{"-d", "@" + filepath.Join(dir, "missing"), u}, usage: "-d @"},
		{name: "missing --cacert", env: home, args: []string{"--cacert", filepath.Join(dir, "ca.pem"), u}, usage: "--cacert"},
		{name: "the request", env: home, args: []string{"-d", "a=1", "-H", "X-A: 1", "-u", "alice:x", "--max-size", "2K", "--max-redirs", "3", u},
			check: func(t *testing.T, p *fetchPlan, stderr string) {
				r := p.req
				if r.Method != "POST" || string(r.Body) != "a=1" || r.Header.Get("X-A") != "1" || r.User != "alice:x" ||
					r.MaxSize != 2048 || r.MaxRedirs != 3 || r.URL.String() != u {
					t.Errorf("request %+v", r)
				}
			}},
		{name: "--fallback-file is read at plan time", env: home, args: []string{"--fallback-file", fallbackFile, u},
			check: func(t *testing.T, p *fetchPlan, stderr string) {
				if string(p.fallback.Data) != `{"items":[]}` {
					t.Errorf("fallback %q", p.fallback.Data)
				}
			}},
		{name: "an empty --fallback is a fallback", env: home, args: []string{"--fallback", "", u},
			check: func(t *testing.T, p *fetchPlan, stderr string) {
				if p.fallback.Data == nil || len(p.fallback.Data) != 0 {
					t.Errorf("fallback %q (nil %v)", p.fallback.Data, p.fallback.Data == nil)
				}
			}},
		{name: "no fallback, no stale cache unless asked", env: home, args: []string{u},
			check: func(t *testing.T, p *fetchPlan, stderr string) {
				if p.fallback.Data != nil || p.fallback.Stale != nil {
					t.Errorf("fallback %+v", p.fallback)
				}
			}},
		{name: "--stale-if-error with a cache dir", env: map[string]string{"XDG_CACHE_HOME": "/xdg-cache"}, args: []string{"--stale-if-error", "1h", u},
			check: func(t *testing.T, p *fetchPlan, stderr string) {
				if p.fallback.Stale == nil || p.fallback.Stale.MaxBytes() != staleMaxBytes || p.fallback.StaleFor != time.Hour {
					t.Errorf("fallback %+v", p.fallback)
				}
			}},
		{name: "--stale-if-error steps aside without a cache dir", env: noDirs, args: []string{"--stale-if-error", "1h", "--breaker-failures", "0", u},
			skip: !unixCacheDir,
			check: func(t *testing.T, p *fetchPlan, stderr string) {
				if p.fallback.Stale != nil {
					t.Error("a stale cache without a cache dir")
				}
				if !strings.Contains(stderr, "refetch: warning: --stale-if-error disabled for this run: no cache dir") {
					t.Errorf("stderr %q", stderr)
				}
			}},
		{name: "-q silences the stepping aside", env: noDirs, args: []string{"-q", "--stale-if-error", "1h", u},
			skip: !unixCacheDir,
			check: func(t *testing.T, p *fetchPlan, stderr string) {
				if stderr != "" || p.breaker != nil || p.fallback.Stale != nil {
					t.Errorf("stderr %q, breaker %+v", stderr, p.breaker)
				}
			}},
		{name: "the breaker steps aside without a state dir", env: noDirs, args: []string{u},
			check: func(t *testing.T, p *fetchPlan, stderr string) {
				if p.breaker != nil {
					t.Errorf("breaker %+v", p.breaker)
				}
				if !strings.Contains(stderr, "refetch: warning: circuit breaker disabled for this run: no state dir: set --state-dir or REFETCH_STATE_DIR") {
					t.Errorf("stderr %q", stderr)
				}
			}},
		{name: "the breaker's defaults", env: home, args: []string{u},
			check: func(t *testing.T, p *fetchPlan, stderr string) {
				want := breakerPlan{key: "http://api.test:80", failures: 3, quorum: 1, node: "node-1", reset: time.Minute,
					dir: filepath.Join("/home/u", ".local", "state", "refetch")}
				if fs, ok := p.breaker.store.(*store.FileStore); !ok || fs.Dir != want.dir {
					t.Errorf("store %#v, want the file store in %s", p.breaker.store, want.dir)
				}
				p.breaker.store = nil
				if p.breaker == nil || *p.breaker != want || stderr != "" {
					t.Errorf("breaker %+v, want %+v; stderr %q", p.breaker, want, stderr)
				}
			}},
		{name: "--state-dir is explicit", env: home, args: []string{"--state-dir", "/s", "-n", "5", "--breaker-reset", "5m", "--breaker-key", "api", u},
			check: func(t *testing.T, p *fetchPlan, stderr string) {
				want := breakerPlan{key: "api", failures: 5, quorum: 1, node: "node-1", reset: 5 * time.Minute, dir: "/s", explicitDir: true}
				if p.breaker != nil {
					p.breaker.store = nil
				}
				if p.breaker == nil || *p.breaker != want {
					t.Errorf("breaker %+v, want %+v", p.breaker, want)
				}
			}},
		{name: "REFETCH_STATE_DIR is explicit too", env: map[string]string{"REFETCH_STATE_DIR": "/env-state"}, args: []string{u},
			check: func(t *testing.T, p *fetchPlan, stderr string) {
				if p.breaker == nil || p.breaker.dir != "/env-state" || !p.breaker.explicitDir {
					t.Errorf("breaker %+v", p.breaker)
				}
			}},
		{name: "--breaker-failures 0 turns it off, without a warning", env: noDirs, args: []string{"--breaker-failures", "0", u},
			check: func(t *testing.T, p *fetchPlan, stderr string) {
				if p.breaker != nil || stderr != "" {
					t.Errorf("breaker %+v, stderr %q", p.breaker, stderr)
				}
			}},
		{name: "--breaker-failures given wins over the attempts", env: home, args: []string{"--breaker-failures", "2", "-n", "9", u},
			check: func(t *testing.T, p *fetchPlan, stderr string) {
				if p.breaker == nil || p.breaker.failures != 2 || p.policy.Attempts != 9 {
					t.Errorf("breaker %+v, attempts %d", p.breaker, p.policy.Attempts)
				}
			}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.skip {
				t.Skip("this system's cache dir does not come from HOME")
			}
			p, stderr, err := planFetch(t, tt.env, tt.args...)
			if tt.usage != "" {
				wantUsage(t, err, tt.usage)
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if tt.check != nil {
				tt.check(t, p, stderr)
			}
		})
	}
}

func TestCheckPlan(t *testing.T) {
	const u = "http://api.test/health"
	home := map[string]string{"HOME": "/home/u", "REFETCH_NODE": "node-1"}
	tests := []struct {
		name  string
		env   map[string]string
		args  []string
		usage string
		check func(t *testing.T, p *resolvedCheck, stderr string)
	}{
		{name: "without --wait: the attempts limit the run", env: home, args: []string{u},
			check: func(t *testing.T, p *resolvedCheck, stderr string) {
				if p.policy.MaxTime != 0 || p.policy.NoAttemptLimit || p.policy.LastChance != 0 || p.policy.Attempts != 3 || !p.policy.RetryUnsafe {
					t.Errorf("policy %+v", p.policy)
				}
			}},
		{name: "--wait: only the time limits the attempts", env: home, args: []string{"--wait", "30s", u},
			check: func(t *testing.T, p *resolvedCheck, stderr string) {
				if p.policy.MaxTime != 30*time.Second || !p.policy.NoAttemptLimit || p.policy.LastChance != time.Second {
					t.Errorf("policy %+v", p.policy)
				}
			}},
		{name: "--wait with --attempts: both limit", env: home, args: []string{"--wait", "30s", "-n", "4", u},
			check: func(t *testing.T, p *resolvedCheck, stderr string) {
				if p.policy.MaxTime != 30*time.Second || p.policy.NoAttemptLimit || p.policy.Attempts != 4 {
					t.Errorf("policy %+v", p.policy)
				}
			}},
		{name: "--wait with REFETCH_ATTEMPTS: given too", env: map[string]string{"HOME": "/home/u", "REFETCH_ATTEMPTS": "4"}, args: []string{"--wait", "30s", u},
			check: func(t *testing.T, p *resolvedCheck, stderr string) {
				if p.policy.NoAttemptLimit || p.policy.Attempts != 4 {
					t.Errorf("policy %+v", p.policy)
				}
			}},
		{name: "--wait longer than --max-time", env: home, args: []string{"--wait", "30s", "--max-time", "10s", u},
			check: func(t *testing.T, p *resolvedCheck, stderr string) {
				if p.policy.MaxTime != 10*time.Second {
					t.Errorf("MaxTime %v, want the shorter 10s", p.policy.MaxTime)
				}
			}},
		{name: "--wait shorter than --max-time", env: home, args: []string{"--wait", "10s", "--max-time", "30s", u},
			check: func(t *testing.T, p *resolvedCheck, stderr string) {
				if p.policy.MaxTime != 10*time.Second {
					t.Errorf("MaxTime %v, want the shorter 10s", p.policy.MaxTime)
				}
			}},
		{name: "1 MiB kept for body expectations unless --max-size; no bound on bodies", env: home, args: []string{u, "http://other.test/"},
			check: func(t *testing.T, p *resolvedCheck, stderr string) {
				if len(p.reqs) != 2 || p.reqs[0].MaxSize != 0 || p.reqs[1].MaxSize != 0 || p.bodyLimit != 1<<20 {
					t.Errorf("requests %+v, body limit %d", p.reqs, p.bodyLimit)
				}
			}},
		{name: "--max-size 0: no bound", env: home, args: []string{"--max-size", "0", u},
			check: func(t *testing.T, p *resolvedCheck, stderr string) {
				if p.reqs[0].MaxSize != 0 || p.bodyLimit != 0 {
					t.Errorf("MaxSize %d, body limit %d", p.reqs[0].MaxSize, p.bodyLimit)
				}
			}},
		{name: "--max-size 5K", env: home, args: []string{"--max-size", "5K", u},
			check: func(t *testing.T, p *resolvedCheck, stderr string) {
				if p.reqs[0].MaxSize != 5<<10 || p.bodyLimit != 5<<10 {
					t.Errorf("MaxSize %d, body limit %d", p.reqs[0].MaxSize, p.bodyLimit)
				}
			}},
		{name: "the expectations", env: home,
			args: []string{"--expect-status", "200,204", "--expect-body", "ready", "--expect-json", ".ok", "--expect-header", "content-type: ^application/json",
				"--max-latency", "500ms", u},
			check: func(t *testing.T, p *resolvedCheck, stderr string) {
				e := p.expect
				if !e.Status.Contains(204) || e.Status.Contains(201) || e.StatusText != "200,204" || e.Body.String() != "ready" ||
					e.JSON == nil || e.JSONText != ".ok" || len(e.Headers) != 1 || e.Headers[0].Name != "Content-Type" || e.MaxLatency != 500*time.Millisecond {
					t.Errorf("expectations %+v", e)
				}
			}},
		{name: "bad --expect-status", env: home, args: []string{"--expect-status", "abc", u}, usage: "invalid --expect-status"},
		{name: "bad --expect-body", env: home, args: []string{"--expect-body", "(", u}, usage: "invalid --expect-body"},
		{name: "bad --expect-json", env: home, args: []string{"--expect-json", ".[", u}, usage: `invalid --expect-json ".["`},
		{name: "--expect-header without a colon", env: home, args: []string{"--expect-header", "Ready", u}, usage: "invalid --expect-header"},
		{name: "--expect-header with a bad regex", env: home, args: []string{"--expect-header", "X-A: (", u}, usage: "invalid --expect-header"},
		{name: "negative --wait", env: home, args: []string{"--wait", "-1s", u}, usage: "invalid --wait -1s: must not be negative"},
		{name: "negative --max-latency", env: home, args: []string{"--max-latency", "-1s", u}, usage: "must not be negative"},
		{name: "a bad retry flag", env: home, args: []string{"--jitter", "2", u}, usage: "invalid --jitter 2"},
		{name: "one bad URL of several", env: home, args: []string{u, "ftp://api.test/"}, usage: `unsupported scheme "ftp"`},
		{name: "the breaker is off by default", env: home, args: []string{"-n", "9", u},
			check: func(t *testing.T, p *resolvedCheck, stderr string) {
				if bp := p.breakers[0]; bp != nil || stderr != "" {
					t.Errorf("breaker %+v, stderr %q", bp, stderr)
				}
			}},
		{name: "--breaker-failures turns it on", env: home, args: []string{"--breaker-failures", "2", "--state-dir", "/s", u},
			check: func(t *testing.T, p *resolvedCheck, stderr string) {
				want := breakerPlan{key: "http://api.test:80", failures: 2, quorum: 1, node: "node-1", reset: time.Minute, dir: "/s", explicitDir: true}
				bp := p.breakers[0]
				if bp != nil {
					bp.store = nil
				}
				if bp == nil || *bp != want {
					t.Errorf("breaker %+v, want %+v", bp, want)
				}
			}},
		{name: "--breaker-failures 0 keeps it off", env: home, args: []string{"--breaker-failures", "0", u},
			check: func(t *testing.T, p *resolvedCheck, stderr string) {
				if bp := p.breakers[0]; bp != nil {
					t.Errorf("breaker %+v", bp)
				}
			}},
		{name: "the breaker steps aside without a state dir, as fetch's does", env: map[string]string{}, args: []string{"--breaker-failures", "2", u},
			check: func(t *testing.T, p *resolvedCheck, stderr string) {
				if bp := p.breakers[0]; bp != nil {
					t.Errorf("breaker %+v", bp)
				}
				if _, fetchStderr, _ := planFetch(t, map[string]string{}, u); !strings.Contains(stderr, "circuit breaker disabled for this run") ||
					stderr != fetchStderr {
					t.Errorf("check warns %q, fetch warns %q", stderr, fetchStderr)
				}
			}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, stderr, err := planCheck(t, tt.env, tt.args...)
			if tt.usage != "" {
				wantUsage(t, err, tt.usage)
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if tt.check != nil {
				tt.check(t, p, stderr)
			}
		})
	}
}

func TestDescribeNamesTheFlag(t *testing.T) {
	last := errors.New("503 Service Unavailable")
	run := func(class error, reason resilience.Reason, last error) error {
		return &resilience.RunError{Class: class, Reason: reason, Last: last, Attempts: 3, RetryAfter: -1,
			Limit: 30 * time.Second, Wait: 8 * time.Second}
	}
	open := &resilience.OpenError{Record: resilience.Record{Key: "https://api.test:443", State: resilience.StateOpen}, Now: time.Now()}
	openRun := &resilience.RunError{Class: resilience.ErrCircuitOpen, Last: open, RetryAfter: -1}
	bodyCut := &resilience.TimeoutError{After: 30 * time.Second, Err: &fetch.BodyCutError{Read: 1 << 20, Total: 8 << 20, Err: errors.New("context deadline exceeded")}}
	headersLate := &resilience.TimeoutError{After: 30 * time.Second, Err: errors.New("context deadline exceeded")}
	unknownCA := &url.Error{Op: "Get", URL: "https://api.test/", Err: x509.UnknownAuthorityError{}}
	tests := []struct {
		name string
		err  error
		want string // the hint
		not  string // must not be in the message
	}{
		{"time up", run(resilience.ErrDeadline, resilience.ReasonTimeUp, last), " (--max-time sets the limit)", ""},
		{"next wait past the deadline", run(resilience.ErrDeadline, resilience.ReasonWaitPastDeadline, last), " (--max-time sets the limit)", ""},
		{"Retry-After too long", run(resilience.ErrRateLimited, resilience.ReasonRetryAfterTooLong, last), "--max-retry-after sets the longest wait", ""},
		{"unsafe method", run(resilience.ErrPermanent, resilience.ReasonUnsafeMethod, last), " (--retry-unsafe, or an Idempotency-Key header the server honours, retries it anyway)", ""},
		{"unknown CA", run(resilience.ErrPermanent, resilience.ReasonNone, unknownCA), "(the certificate is signed by a CA this run does not trust: --cacert FILE trusts it, -k skips verification)", ""},
		{"timeout with a cut body", run(resilience.ErrRetriesExhausted, resilience.ReasonNone, bodyCut), "(a larger --timeout, or --timeout 0, lets big bodies finish)", ""},
		{"timeout before any body", run(resilience.ErrRetriesExhausted, resilience.ReasonNone, headersLate), " (--timeout sets the limit of one attempt)", "larger"},
		{"body too large", run(resilience.ErrPermanent, resilience.ReasonNone, fmt.Errorf("%w (5 bytes)", fetch.ErrTooLarge)), " (--max-size sets the limit)", ""},
		{"too many redirects", run(resilience.ErrPermanent, resilience.ReasonNone, fmt.Errorf("%w (more than 10)", fetch.ErrTooManyRedirects)), " (--max-redirs sets the limit)", ""},
		{"circuit open", openRun, "; reset with: refetch breaker reset 'https://api.test:443'", "--state-dir"},
		{"circuit open, default state dir", withResetHint(openRun, &breakerPlan{key: "k", dir: "/home/u/.local/state/refetch"}),
			"; reset with: refetch breaker reset 'https://api.test:443'", "--state-dir"},
		{"circuit open, explicit state dir", withResetHint(openRun, &breakerPlan{key: "k", dir: "/s", explicitDir: true}),
			"; reset with: refetch breaker reset --state-dir '/s' 'https://api.test:443'", ""},
		{"retries exhausted: nothing to add", run(resilience.ErrRetriesExhausted, resilience.ReasonNone, last), "", "--"},
	}
	for _, tt := range tests {
		msg := describe(tt.err)
		if !strings.HasPrefix(msg, tt.err.Error()) {
			t.Errorf("%s: %q does not start with the error's own words %q", tt.name, msg, tt.err.Error())
		}
		if h := hint(tt.err); tt.want == "" && h != "" || !strings.Contains(h, tt.want) {
			t.Errorf("%s: hint %q, want %q", tt.name, h, tt.want)
		}
		if tt.not != "" && strings.Contains(msg, tt.not) {
			t.Errorf("%s: %q has %q", tt.name, msg, tt.not)
		}
	}
	if describe(nil) != "" {
		t.Errorf("describe(nil) = %q", describe(nil))
	}
	// withResetHint leaves other errors alone.
	if err := withResetHint(last, &breakerPlan{explicitDir: true}); err != last {
		t.Errorf("withResetHint wrapped %v", err)
	}
	if err := withResetHint(openRun, nil); err != error(openRun) {
		t.Errorf("withResetHint without a plan wrapped %v", err)
	}
	// describe's words are redacted.
	leaky := run(resilience.ErrRetriesExhausted, resilience.ReasonNone, errors.New(`Get "http://alice:hunter2@api.test/": EOF`))
	if msg := describe(leaky); strings.Contains(msg, "hunter2") {
		t.Errorf("describe leaks a password: %q", msg)
	}
}

func TestFlagErrorSaysWhatTheFlagTakes(t *testing.T) {
	tests := []struct {
		args []string
		want string
	}{
		{[]string{"fetch", "--delay", "5", "http://api.test/"}, `refetch: invalid --delay "5": want a duration with a unit, such as 500ms, 2s or 1m30s (see 'refetch fetch --help')`},
		{[]string{"fetch", "-n", "three", "http://api.test/"}, `refetch: invalid --attempts "three": want a whole number (see 'refetch fetch --help')`},
		{[]string{"check", "--jitter", "half", "http://api.test/"}, `refetch: invalid --jitter "half": want a number (see 'refetch check --help')`},
		{[]string{"fetch", "--insecure=maybe", "http://api.test/"}, `refetch: invalid --insecure "maybe": want true or false`},
		{[]string{"fetch", "--max-tme", "5s", "http://api.test/"}, `refetch: unknown flag: --max-tme (did you mean --max-time?) (see 'refetch fetch --help')`},
		{[]string{"fetch", "--attemps", "3", "http://api.test/"}, `refetch: unknown flag: --attemps (did you mean --attempts?) (see 'refetch fetch --help')`},
		{[]string{"check", "--expect-statu", "200", "http://api.test/"}, `refetch: unknown flag: --expect-statu (did you mean --expect-status?) (see 'refetch check --help')`},
		{[]string{"fetch", "--verbos", "http://api.test/"}, `refetch: unknown flag: --verbos (did you mean --verbose?) (see 'refetch fetch --help')`},
		{[]string{"fetch", "--max-tme=5s", "http://api.test/"}, `refetch: unknown flag: --max-tme (did you mean --max-time?)`},
		{[]string{"fetch", "--zzzzzzzz", "http://api.test/"}, `refetch: unknown flag: --zzzzzzzz (see 'refetch fetch --help')`},
	}
	for _, tt := range tests {
		f, out, errOut := testFactory(nil)
		code := Run(context.Background(), f, tt.args)
		stderr := errOut.String()
		if code != ExitUsage || !strings.Contains(stderr, tt.want) || out.Len() != 0 {
			t.Errorf("%v: exit %d, stdout %q, stderr %q; want exit 2 and %q", tt.args, code, out.String(), stderr, tt.want)
		}
		if strings.Count(stderr, "\n") != 1 || strings.Contains(stderr, "strconv") || strings.Contains(stderr, "time:") {
			t.Errorf("%v: want one line without Go's parser words: %q", tt.args, stderr)
		}
	}
	plain := errors.New("unknown flag: --x")
	if err := flagError(plain); err != plain {
		t.Errorf("flagError changed %v", err)
	}
}

func TestRunCommandLines(t *testing.T) {
	tests := []struct {
		name   string
		env    map[string]string
		args   []string
		code   int
		stderr string // a part of stderr ("" for empty stderr)
		stdout string // a part of stdout ("" for empty stdout)
	}{
		{"unknown command", nil, []string{"fetc", "http://api.test/"}, 2, `refetch: unknown command "fetc" (did you mean "fetch"?) (see 'refetch --help')`, ""},
		{"unknown command, a prefix of one", nil, []string{"chec"}, 2, `(did you mean "check"?)`, ""},
		{"unknown command, a typo", nil, []string{"chek"}, 2, `(did you mean "check"?)`, ""},
		{"unknown command, no suggestion", nil, []string{"zzz"}, 2, `refetch: unknown command "zzz" (see 'refetch --help')`, ""},
		{"a URL where the command goes", nil, []string{"https://api.test/x"}, 2, `refetch: unknown command "https://api.test/x" (to fetch a URL: refetch fetch URL)`, ""},
		{"help of no command", nil, []string{"help", "nosuch"}, 2, `refetch: unknown help topic "nosuch"`, ""},
		{"--version with an argument", nil, []string{"--version", "extra"}, 2, `refetch: --version takes no arguments, got "extra"`, ""},
		{"--version alone", nil, []string{"--version"}, 0, "", "refetch "},
		{"help of no subcommand", nil, []string{"help", "breaker", "nosuch"}, 2, `refetch: unknown help topic "breaker nosuch" (see`, ""},
		{"help of a typo", nil, []string{"help", "fecth"}, 2, `unknown help topic "fecth" (did you mean "fetch"?)`, ""},
		{"fetch without a URL", nil, []string{"fetch"}, 2, "refetch: missing URL (see 'refetch fetch --help')", ""},
		{"fetch with two URLs (a batch) and a bad -P", nil, []string{"fetch", "-P", "0", "http://a.test/", "http://b.test/"}, 2, "invalid --parallel 0", ""},
		{"check without a URL", nil, []string{"check"}, 2, "refetch: missing URL (see 'refetch check --help')", ""},
		{"breaker without a subcommand", nil, []string{"breaker"}, 2, "missing subcommand: status or reset", ""},
		{"breaker reset without a key", nil, []string{"breaker", "reset"}, 2, "give a KEY or --all", ""},
		{"refetch alone prints the help", nil, nil, 0, "", "Usage:\n  refetch [flags]\n  refetch [command]"},
		{"-q with -v", nil, []string{"-q", "-v", "fetch", "http://api.test/"}, 2, "-q and -v cannot be used together", ""},
		{"bad --color", nil, []string{"--color", "purple", "version"}, 2, `invalid --color "purple"`, ""},
		{"a bad variable", map[string]string{"REFETCH_ATTEMPTS": "many"}, []string{"fetch", "http://api.test/"}, 2,
			`refetch: invalid REFETCH_ATTEMPTS="many": want a whole number`, ""},
		{"a usage error before any request", map[string]string{"HOME": "/home/u"}, []string{"fetch", "--breaker-reset", "0", "http://api.test/"}, 2,
			"invalid --breaker-reset 0", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f, out, errOut := testFactory(tt.env)
			code := Run(context.Background(), f, tt.args)
			if code != tt.code {
				t.Errorf("exit %d, want %d; stderr %q", code, tt.code, errOut.String())
			}
			if tt.stderr == "" && errOut.Len() != 0 || !strings.Contains(errOut.String(), tt.stderr) {
				t.Errorf("stderr %q, want %q", errOut.String(), tt.stderr)
			}
			if tt.stdout == "" && out.Len() != 0 || !strings.Contains(out.String(), tt.stdout) {
				t.Errorf("stdout %q, want %q", out.String(), tt.stdout)
			}
		})
	}
}

func TestFetchJSONUsageErrorReport(t *testing.T) {
	// With --json a usage error still prints its report: scripts parse
	// stdout whatever happened, and it agrees with the exit code.
	f, out, errOut := testFactory(map[string]string{"HOME": "/home/u"})
	code := Run(context.Background(), f, []string{"fetch", "--json", "-N", "http://alice:hunter2@api.test/"})
	if code != ExitUsage {
		t.Fatalf("exit %d: %s", code, errOut.String())
	}
	var rep struct {
		OK       bool    `json:"ok"`
		URL      string  `json:"url"`
		Method   string  `json:"method"`
		Source   string  `json:"source"`
		ExitCode int     `json:"exit_code"`
		Error    *string `json:"error"`
		Details  struct {
			Class string `json:"class"`
		} `json:"details"`
	}
	if err := jsonDecode(out.String(), &rep); err != nil {
		t.Fatalf("stdout is not one JSON report: %v\n%s", err, out.String())
	}
	if rep.OK || rep.ExitCode != ExitUsage || rep.Details.Class != "usage" || rep.Method != "GET" || rep.Source != "none" ||
		rep.Error == nil || !strings.Contains(*rep.Error, "-N streams") || strings.Contains(out.String(), "hunter2") {
		t.Errorf("report %+v\n%s", rep, out.String())
	}

	// A flag that does not parse leaves the URL unparsed too: the report
	// names the one argument that is a URL (redacted), none when two are.
	for args, want := range map[string]string{
		"fetch --json --delay 5 http://alice:hunter2@api.test/":           "http://alice:REDACTED@api.test/",
		"fetch --json --attemps 3 http://api.test/":                       "http://api.test/",
		"fetch --json --delay 5 --fallback https://status.test/ http://x": "",
	} {
		f, out, _ := testFactory(map[string]string{"HOME": "/home/u"})
		if code := Run(context.Background(), f, strings.Fields(args)); code != ExitUsage {
			t.Errorf("%s: exit %d", args, code)
		}
		if err := jsonDecode(out.String(), &rep); err != nil || rep.URL != want {
			t.Errorf("%s: url %q (%v), want %q", args, rep.URL, err, want)
		}
	}
}

// jsonDecode decodes s, which must hold exactly one JSON value, into v.
func jsonDecode(s string, v any) error {
	dec := json.NewDecoder(strings.NewReader(s))
	if err := dec.Decode(v); err != nil {
		return err
	}
	if dec.More() {
		return errors.New("more than one JSON value")
	}
	return nil
}

// The tests below run whole commands in-process against loopback servers,
// with the fake clock and instant timer of runWithFakeTime for fetch, so
// the plans above are seen to reach the run.

// flakyServer answers 503 while down is set and "fresh" otherwise, and
// counts its requests.
type flakyServer struct {
	*httptest.Server
	down atomic.Bool
	hits atomic.Int32
}

func newFlakyServer(t *testing.T) *flakyServer {
	s := &flakyServer{}
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.hits.Add(1)
		if s.down.Load() {
			http.Error(w, "busy", http.StatusServiceUnavailable)
			return
		}
		fmt.Fprint(w, "fresh")
	}))
	t.Cleanup(s.Close)
	return s
}

// fetchErrWithFakeTime is runWithFakeTime returning the run's error, for
// its words.
func fetchErrWithFakeTime(f *Factory, args ...string) error {
	_, err := fetchWithFakeTime(f, args...)
	return err
}

func TestBreakerLifecycleInProcess(t *testing.T) {
	srv := newFlakyServer(t)
	srv.down.Store(true)
	state := t.TempDir()
	u, _ := url.Parse(srv.URL)
	key := BreakerKey(u)
	fetchArgs := []string{"fetch", "--state-dir", state, "--delay", "1s", "--jitter", "0", srv.URL}

	// Three failed attempts open the breaker (default max(3, attempts)).
	f, _, errOut := testFactory(nil)
	if code, _ := runWithFakeTime(t, f, fetchArgs...); code != ExitExhausted {
		t.Fatalf("first run: exit %d: %s", code, errOut.String())
	}
	if want := "circuit for " + key + " opened after 3 consecutive failures"; !strings.Contains(errOut.String(), want) {
		t.Errorf("stderr lacks %q:\n%s", want, errOut.String())
	}
	// The next run sends nothing, exits 5 and says how to reset the
	// breaker in the state dir it used.
	f, _, _ = testFactory(nil)
	err := fetchErrWithFakeTime(f, fetchArgs...)
	if ExitCode(err) != ExitCircuitOpen || srv.hits.Load() != 3 {
		t.Fatalf("second run: %v after %d requests", err, srv.hits.Load())
	}
	if want := fmt.Sprintf("reset with: refetch breaker reset --state-dir '%s' '%s'", state, key); !strings.Contains(describe(err), want) {
		t.Errorf("%q lacks %q", describe(err), want)
	}

	f, out, errOut := testFactory(nil)
	if code := Run(context.Background(), f, []string{"breaker", "status", "--state-dir", state, "--json"}); code != 0 {
		t.Fatalf("status: exit %d: %s", code, errOut.String())
	}
	var recs []breakerStatusJSON
	if err := jsonDecode(out.String(), &recs); err != nil || len(recs) != 1 || recs[0].Key != key || recs[0].State != "open" ||
		recs[0].ConsecutiveFailures != 3 || recs[0].OpenedAt == nil || !strings.Contains(recs[0].LastError, "503") {
		t.Fatalf("status --json: %v %+v", err, recs)
	}
	f, out, _ = testFactory(nil)
	if code := Run(context.Background(), f, []string{"breaker", "status", "--state-dir", state}); code != 0 ||
		!strings.Contains(out.String(), "KEY") || !strings.Contains(out.String(), key) || !strings.Contains(out.String(), "open") {
		t.Errorf("status: exit %d:\n%s", code, out.String())
	}
	f, out, _ = testFactory(nil)
	if code := Run(context.Background(), f, []string{"breaker", "status", "--state-dir", state, "--json", "other:80"}); code != 0 ||
		jsonDecode(out.String(), &recs) != nil || len(recs) != 1 || recs[0].State != "closed" {
		t.Errorf("status of an unknown key: exit %d: %s", code, out.String())
	}

	f, _, errOut = testFactory(nil)
	if code := Run(context.Background(), f, []string{"breaker", "reset", "--state-dir", state, key}); code != 0 ||
		!strings.Contains(errOut.String(), "reset "+key+": closed") {
		t.Fatalf("reset: exit %d: %s", code, errOut.String())
	}
	// Closed again: the next run reaches the server.
	f, _, _ = testFactory(nil)
	if code, _ := runWithFakeTime(t, f, fetchArgs...); code != ExitExhausted || srv.hits.Load() != 6 {
		t.Errorf("after reset: exit %d after %d requests", code, srv.hits.Load())
	}
	f, _, errOut = testFactory(nil)
	if code := Run(context.Background(), f, []string{"breaker", "reset", "--state-dir", state, "--all"}); code != 0 ||
		!strings.Contains(errOut.String(), "reset 1 breaker in "+state) {
		t.Errorf("reset --all: exit %d: %s", code, errOut.String())
	}
	f, out, _ = testFactory(nil)
	if code := Run(context.Background(), f, []string{"breaker", "status", "--state-dir", state}); code != 0 ||
		!strings.Contains(out.String(), "no breakers in "+state) {
		t.Errorf("status after reset --all: exit %d: %s", code, out.String())
	}
	// Without any state dir, breaker commands have nothing to work on.
	f, _, errOut = testFactory(nil)
	if code := Run(context.Background(), f, []string{"breaker", "status"}); code != ExitUsage || !strings.Contains(errOut.String(), "no state dir") {
		t.Errorf("status without a state dir: exit %d: %s", code, errOut.String())
	}
}

func TestFetchServesStaleThenFallbackInProcess(t *testing.T) {
	srv := newFlakyServer(t)
	env := map[string]string{"XDG_CACHE_HOME": t.TempDir()}
	args := []string{"fetch", "--json", "--stale-if-error", "0", "--fallback", "[]", "-n", "2", "--jitter", "0", "--breaker-failures", "0", srv.URL}
	type report struct {
		OK       bool            `json:"ok"`
		Source   string          `json:"source"`
		Fallback bool            `json:"fallback"`
		Data     json.RawMessage `json:"data"`
		ExitCode int             `json:"exit_code"`
		Error    *string         `json:"error"`
		Details  *struct {
			Class string `json:"class"`
		} `json:"details"`
		StaleSkipped *string `json:"stale_skipped"`
	}
	run := func() (int, report, string) {
		t.Helper()
		f, out, errOut := testFactory(env)
		code, _ := runWithFakeTime(t, f, args...)
		var rep report
		if err := jsonDecode(out.String(), &rep); err != nil {
			t.Fatalf("stdout is not one report: %v\n%s", err, out.String())
		}
		return code, rep, errOut.String()
	}

	code, rep, stderr := run()
	if code != 0 || rep.Source != "network" || string(rep.Data) != `"fresh"` || rep.Error != nil || stderr != "" {
		t.Fatalf("fresh: exit %d, %+v, stderr %q", code, rep, stderr)
	}
	srv.down.Store(true)
	code, rep, stderr = run()
	if code != 0 || !rep.OK || rep.Source != "stale" || !rep.Fallback || string(rep.Data) != `"fresh"` ||
		rep.Error == nil || rep.Details == nil || rep.Details.Class != "retries_exhausted" {
		t.Errorf("stale: exit %d, %+v", code, rep)
	}
	if !strings.Contains(stderr, "refetch: warning: serving stale response from 1s ago: retries exhausted after 2 attempts") {
		t.Errorf("stale: stderr %q", stderr)
	}
	// A corrupt stale copy is skipped, and the report says why.
	files, _ := filepath.Glob(filepath.Join(env["XDG_CACHE_HOME"], "refetch", "*.stale"))
	if len(files) != 1 {
		t.Fatalf("stale files %v", files)
	}
	if err := os.WriteFile(files[0], []byte("garbage"), 0o600); err != nil {
		t.Fatal(err)
	}
	code, rep, stderr = run()
	if code != 0 || rep.Source != "fallback" || string(rep.Data) != `[]` || rep.StaleSkipped == nil || !strings.Contains(*rep.StaleSkipped, "corrupt") {
		t.Errorf("fallback: exit %d, %+v", code, rep)
	}
	if !strings.Contains(stderr, "stale copy not served") || !strings.Contains(stderr, "serving fallback: retries exhausted") {
		t.Errorf("fallback: stderr %q", stderr)
	}
}

func TestCheckInProcess(t *testing.T) {
	up := newFlakyServer(t)
	down := newFlakyServer(t)
	down.down.Store(true)

	f, out, errOut := testFactory(nil)
	if code := Run(context.Background(), f, []string{"check", "-n", "1", up.URL, down.URL}); code != ExitUnhealthy {
		t.Fatalf("exit %d: %s", code, errOut.String())
	}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	if len(lines) != 2 || !strings.HasPrefix(lines[0], "healthy") || !strings.HasPrefix(lines[1], "unhealthy") ||
		!strings.Contains(lines[1], "status 503 not in 2xx") || !strings.Contains(lines[1], "1 attempt") {
		t.Errorf("stdout:\n%s", out.String())
	}
	if !strings.Contains(errOut.String(), "refetch: unhealthy: 1 of 2 URLs") {
		t.Errorf("stderr %q", errOut.String())
	}

	f, out, _ = testFactory(nil)
	if code := Run(context.Background(), f, []string{"check", "--json", up.URL}); code != 0 {
		t.Fatalf("exit %d", code)
	}
	var rep fetch.CheckReport
	if err := jsonDecode(out.String(), &rep); err != nil || !rep.Healthy || len(rep.Results) != 1 || rep.Results[0].Status == nil ||
		*rep.Results[0].Status != 200 || len(rep.Results[0].Failed) != 0 {
		t.Errorf("report %v %+v:\n%s", err, rep, out.String())
	}
}

func TestCheckLastChance(t *testing.T) {
	for limit, want := range map[time.Duration]time.Duration{
		500 * time.Millisecond: 100 * time.Millisecond, 4 * time.Second: 400 * time.Millisecond,
		10 * time.Second: time.Second, 2 * time.Minute: time.Second,
	} {
		if got := checkLastChance(limit); got != want {
			t.Errorf("checkLastChance(%s) = %s, want %s", limit, got, want)
		}
	}
}

// TestCompletionOffersFlagValues: flags whose values are words complete
// to them, not to file names (a tour's bash offered files for --color).
func TestCompletionOffersFlagValues(t *testing.T) {
	for args, want := range map[string]string{
		"fetch --color":  "auto\nalways\nnever\n:4\n",
		"check --report": "junit=\ntap=\ntap13=\n:6\n",
		"fetch --hedge":  "auto\n100ms\n0\n:4\n",
		"probe --rate":   "auto\n1/s\n10/s\n1/m\n1/h\n:4\n",
		"help":           "breaker\ncheck\ncompletion\ndemo\nfetch\nprobe\nversion\n:4\n",
	} {
		f, out, _ := testFactory(nil)
		Run(context.Background(), f, append(append([]string{"__complete"}, strings.Fields(args)...), ""))
		if out.String() != want {
			t.Errorf("%s: %q, want %q", args, out.String(), want)
		}
	}
}
