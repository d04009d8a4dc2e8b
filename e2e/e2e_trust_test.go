package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
)

// Issue 12, classes 4, 5, 7, 9, 10 and 11: exit codes that tell the truth,
// one meaning for zero, a stale cache that never crosses identities, and
// messages a person can act on.

// TestE2EJSONExitCodeIsTheProcessExitCode: for every kind of ending, the
// --json report is exactly one object and its exit_code is the process's.
func TestE2EJSONExitCodeIsTheProcessExitCode(t *testing.T) {
	t.Parallel()
	var hits counter
	down := downServer(t, &hits)
	limited := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Retry-After", "120")
		http.Error(w, "slow down", http.StatusTooManyRequests)
	}))
	defer limited.Close()
	missing := httptest.NewServer(http.NotFoundHandler())
	defer missing.Close()
	e := newEnv(t)
	tests := []struct {
		name string
		env  []string
		args []string
		code int // -1: whatever the run decides, as long as the report agrees
	}{
		// connect(2) to a link-local address without a zone fails with
		// EINVAL ("invalid argument"), which once made refetch say 2.
		{"link-local IPv6", nil, []string{"-n", "1", "--breaker-failures", "0", "http://[fe80::1]:80/"}, -1},
		{"bad --delay", nil, []string{"--delay", "5", down.URL}, 2},
		{"bad --delay after --json", nil, []string{"--json", "--delay", "5", down.URL}, 2},
		{"bad --delay, REFETCH_JSON", []string{"REFETCH_JSON=true"}, []string{"--delay", "5", down.URL}, 2},
		{"bad REFETCH_CAP", []string{"REFETCH_CAP=5"}, []string{down.URL}, 2},
		{"no URL", nil, nil, 2},
		{"two URLs (a batch), bad -P", nil, []string{"-P", "0", down.URL, down.URL}, 2},
		{"unknown flag", nil, []string{"--no-such-flag", down.URL}, 2},
		{"-N with --json", nil, []string{"-N", down.URL}, 2},
		{"--breaker-reset 0", nil, []string{"--breaker-reset", "0", down.URL}, 2},
		{"404", nil, []string{missing.URL}, 3},
		{"503s", []string{"REFETCH_BREAKER_FAILURES=0"}, []string{down.URL}, 4},
		{"Retry-After beyond the limit on the only attempt", nil, []string{"-n", "1", "--max-retry-after", "10s", limited.URL}, 6},
		{"Retry-After beyond the limit with attempts left", nil, []string{"-n", "3", "--max-retry-after", "10s", limited.URL}, 6},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// --json last: a bad flag before it stops the parse there.
			a := append(args(tt.args...), "--json")
			if len(tt.env) > 0 && strings.HasPrefix(tt.env[0], "REFETCH_JSON") {
				a = args(tt.args...)
			}
			r := e.with(tt.env...).run(a...)
			if tt.code >= 0 {
				r.wantCode(t, tt.code)
			}
			rep := r.report(t)
			if got := rep["exit_code"]; got != float64(r.code) {
				t.Errorf("report exit_code = %v, process exit %d\n%s", got, r.code, r.stdout)
			}
			if r.code != 0 && rep["ok"] != false {
				t.Errorf("failed run reports ok: %s", r.stdout)
			}
			for _, internal := range []string{"strconv.", "time: ", "context canceled"} {
				if strings.Contains(r.stdout+r.stderr, internal) {
					t.Errorf("Go internals (%q) in the output:\n%s%s", internal, r.stdout, r.stderr)
				}
			}
		})
	}
	// The rate-limited run says when to come back (a fresh state dir: the
	// runs above left a hold on the key).
	rep := newEnv(t).run(args("--json", "-n", "1", "--max-retry-after", "10s", limited.URL)...).report(t)
	if rep["retry_after_ms"] != 120000.0 || rep["details"].(map[string]any)["class"] != "rate_limited" {
		t.Errorf("report = %v", rep)
	}
}

// TestE2EZeroMeansOneThing: for a bound, 0 is no bound; for an amount,
// 0 is none; a zero that makes no sense is exit 2 before any request.
func TestE2EZeroMeansOneThing(t *testing.T) {
	t.Parallel()
	var hits, n counter
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.next()
		if n.next() == 1 {
			w.Header().Set("Retry-After", "1")
			http.Error(w, "busy", http.StatusServiceUnavailable)
			return
		}
		fmt.Fprint(w, "ok")
	}))
	defer srv.Close()
	e := newEnv(t).with("REFETCH_BREAKER_FAILURES=0")
	for _, bad := range [][]string{{"--breaker-reset", "0"}, {"--attempts", "0"}, {"--multiplier", "0"}} {
		r := e.run(args(append(bad, srv.URL)...)...)
		r.wantCode(t, 2)
		if hits.get() != 0 || !strings.Contains(r.stderr, bad[0]) {
			t.Errorf("%v: %d requests, stderr %q", bad, hits.get(), r.stderr)
		}
	}
	// --max-retry-after 0: no bound, so Retry-After: 1 is honoured, not exit 6.
	r := e.run(args("--max-retry-after", "0", "--delay", "0", srv.URL)...)
	r.wantCode(t, 0)
	if !strings.Contains(r.stderr, "(Retry-After 1s)") {
		t.Errorf("stderr:\n%s", r.stderr)
	}
	// --cap 0 (no cap), --timeout 0 and --max-time 0 (no bound), --delay 0
	// (retry at once) are all accepted.
	n.n.Store(1)
	e.run(args("--cap", "0", "--timeout", "0", "--max-time", "0", "--delay", "0", srv.URL)...).wantCode(t, 0)
}

// TestE2EStaleCacheNeverCrossesIdentities: a body cached for one set of
// credentials is never served to another, and no credential reaches disk.
func TestE2EStaleCacheNeverCrossesIdentities(t *testing.T) {
	t.Parallel()
	var down atomic.Bool
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		user, pass, _ := r.BasicAuth()
		switch {
		case down.Load():
			http.Error(w, "down", http.StatusServiceUnavailable)
		case user == "alice" && pass == "s3cret-pw":
			fmt.Fprint(w, "alice's data")
		default:
			http.Error(w, "who are you", http.StatusUnauthorized)
		}
	}))
	defer srv.Close()
	e := newEnv(t).with("REFETCH_BREAKER_FAILURES=0")
	e.run(args("--stale-if-error", "1h", "-u", "alice:s3cret-pw", srv.URL)...).wantCode(t, 0)
	for _, who := range [][]string{
		{"-u", "bob:other"},
		{"-u", "alice:wrong-pw"},
		{"-H", "Authorization: Bearer token"},
		{"-H", "Cookie: session=x"},
		nil,
	} {
		r := e.run(args(append(append([]string{"--stale-if-error", "1h"}, who...), srv.URL)...)...)
		r.wantCode(t, 3)
		if r.stdout != "" {
			t.Errorf("%v was served %q", who, r.stdout)
		}
	}
	down.Store(true)
	r := e.run(args("--stale-if-error", "1h", "-u", "alice:s3cret-pw", srv.URL)...)
	r.wantCode(t, 0)
	if r.stdout != "alice's data" {
		t.Errorf("alice's own stale copy not served: %q", r.stdout)
	}
	filepath.Walk(filepath.Join(e.dir, "cache"), func(path string, info os.FileInfo, err error) error {
		if err == nil && !info.IsDir() {
			data, _ := os.ReadFile(path)
			if strings.Contains(string(data), "s3cret") || strings.Contains(path, "alice") {
				t.Errorf("credentials in the cache: %s", path)
			}
		}
		return nil
	})
}

// TestE2EMessagesAPersonCanActOn: no Go internals; the flag that helps.
func TestE2EMessagesAPersonCanActOn(t *testing.T) {
	t.Parallel()
	e := newEnv(t).with("REFETCH_BREAKER_FAILURES=0")
	down := downServer(t, nil)
	for _, tc := range []struct {
		env  []string
		args []string
		want string
	}{
		{nil, []string{"--delay", "5", down.URL}, `invalid --delay "5": want a duration with a unit`},
		{nil, []string{"-n", "two", down.URL}, `invalid --attempts "two": want a whole number`},
		{[]string{"REFETCH_TIMEOUT=soon"}, []string{down.URL}, `REFETCH_TIMEOUT="soon": want a duration`},
		{nil, []string{"-N", "-o", "x", down.URL}, "-N streams to stdout"},
		{nil, []string{"-N", "--json", down.URL}, "use one"},
	} {
		r := e.with(tc.env...).run(args(tc.args...)...)
		r.wantCode(t, 2)
		if !strings.Contains(r.stderr, tc.want) || strings.Count(strings.TrimSpace(r.stderr), "\n") != 0 {
			t.Errorf("%v: stderr %q, want one line with %q", tc.args, r.stderr, tc.want)
		}
	}
	// A certificate failure says how to trust the server.
	tlsSrv := httptest.NewUnstartedServer(http.NotFoundHandler())
	tlsSrv.Config.ErrorLog = quietLog()
	tlsSrv.StartTLS()
	defer tlsSrv.Close()
	r := e.run(args(tlsSrv.URL)...)
	r.wantCode(t, 3)
	if !strings.Contains(r.stderr, "--cacert") || !strings.Contains(r.stderr, "-k") {
		t.Errorf("TLS failure gives no way out:\n%s", r.stderr)
	}
	// A POST not retried says how to retry it.
	r = e.run(args("-d", "x", down.URL)...)
	r.wantCode(t, 3)
	if !strings.Contains(r.stderr, "--retry-unsafe") || strings.Contains(r.stderr, "failed, not retryable: --") {
		t.Errorf("stderr:\n%s", r.stderr)
	}
	// --max-time cutting an attempt: the last real failure, not "context canceled".
	var stalls counter
	stall := stallingServer(t, &stalls)
	r = e.run(args("--max-time", "300ms", "--timeout", "0", stall.URL)...)
	r.wantCode(t, 7)
	if strings.Contains(r.stderr, "context canceled") || !strings.Contains(r.stderr, "--max-time") {
		t.Errorf("stderr:\n%s", r.stderr)
	}
}

// TestE2ENoHomeBothStepAside: without HOME or XDG_STATE_HOME, fetch and
// check (with a breaker asked for) both warn and go on without a breaker;
// a relative XDG_STATE_HOME is ignored, as the XDG spec says.
func TestE2ENoHomeBothStepAside(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/fail" {
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		fmt.Fprint(w, "ok")
	}))
	defer srv.Close()
	dir := t.TempDir()
	bare := &env{t: t, dir: dir, vars: []string{"PATH=" + os.Getenv("PATH"), "GORACE=atexit_sleep_ms=0 exitcode=66"}}
	for _, a := range [][]string{{"fetch", srv.URL}, {"check", "--breaker-failures", "3", srv.URL, srv.URL + "/b"}} {
		r := bare.run(a...)
		r.wantCode(t, 0)
		if strings.Count(r.stderr, "circuit breaker disabled for this run") != 1 {
			t.Errorf("%v: stderr %q, want the warning once", a, r.stderr)
		}
	}
	rel := bare.with("HOME="+dir, "XDG_STATE_HOME=relative/state", "XDG_CACHE_HOME=relative/cache")
	rel.run("fetch", "--stale-if-error", "1h", srv.URL).wantCode(t, 0)
	// A failure is written to the state dir (a success on a closed
	// breaker writes nothing).
	rel.run("fetch", "-n", "1", srv.URL+"/fail").wantCode(t, 4)
	if _, err := os.Stat(filepath.Join(dir, "relative")); err == nil {
		t.Error("a relative XDG dir was used")
	}
	for _, p := range []string{".local/state/refetch", ".cache/refetch"} {
		if _, err := os.Stat(filepath.Join(dir, p)); err != nil {
			t.Errorf("%s not used: %v", p, err)
		}
	}
}

// TestE2ECheckExpectingARedirectDoesNotFollowIt: --expect-status 3xx can
// pass, because check then looks at the redirect instead of following it.
func TestE2ECheckExpectingARedirectDoesNotFollowIt(t *testing.T) {
	t.Parallel()
	var followed counter
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/target" {
			followed.next()
			return
		}
		http.Redirect(w, r, "/target", http.StatusMovedPermanently)
	}))
	defer srv.Close()
	e := newEnv(t)
	r := e.run(check("--json", "--expect-status", "3xx", srv.URL+"/old")...)
	r.wantCode(t, 0)
	var rep struct {
		Results []struct{ Status int } `json:"results"`
	}
	json.Unmarshal([]byte(r.stdout), &rep)
	if len(rep.Results) != 1 || rep.Results[0].Status != 301 || followed.get() != 0 {
		t.Errorf("stdout %s, followed %d", r.stdout, followed.get())
	}
	// Expecting 2xx still follows it.
	e.run(check(srv.URL+"/old")...).wantCode(t, 0)
	if followed.get() != 1 {
		t.Errorf("followed %d times, want 1", followed.get())
	}
}

// TestE2EHeaderFlagReplacesItsVariable: like every flag, -H on the command
// line wins over REFETCH_HEADER, whole (README says so).
func TestE2EHeaderFlagReplacesItsVariable(t *testing.T) {
	t.Parallel()
	got := make(chan http.Header, 2)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { got <- r.Header }))
	defer srv.Close()
	e := newEnv(t).with("REFETCH_HEADER=X-Env: 1")
	e.run(args(srv.URL)...).wantCode(t, 0)
	if h := <-got; h.Get("X-Env") != "1" {
		t.Errorf("REFETCH_HEADER not sent: %v", h)
	}
	e.run(args("-H", "X-Cli: 2", srv.URL)...).wantCode(t, 0)
	if h := <-got; h.Get("X-Env") != "" || h.Get("X-Cli") != "2" {
		t.Errorf("headers = %v, want only -H's", h)
	}
}

// quietLog keeps a test server's expected TLS handshake errors out of the
// test output.
func quietLog() *log.Logger { return log.New(io.Discard, "", 0) }

// TestE2EHoldIsSharedBetweenRuns: a 429's Retry-After holds the key for the
// next run in another process: it waits, or, past --max-retry-after, ends
// with exit 6 without sending anything.
func TestE2EHoldIsSharedBetweenRuns(t *testing.T) {
	t.Parallel()
	var hits counter
	var retryAfter atomic.Value
	retryAfter.Store("120")
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if hits.next() == 1 {
			w.Header().Set("Retry-After", retryAfter.Load().(string))
			http.Error(w, "slow down", http.StatusTooManyRequests)
			return
		}
		fmt.Fprint(w, "ok")
	}))
	defer srv.Close()
	e := newEnv(t)
	e.run(args("-n", "1", "--max-retry-after", "10s", srv.URL)...).wantCode(t, 6)
	r := e.run(args("--json", "--max-retry-after", "10s", srv.URL)...)
	r.wantCode(t, 6)
	rep := r.report(t)
	if hits.get() != 1 || rep["attempts"] == nil || len(rep["attempts"].([]any)) != 0 ||
		!strings.Contains(r.stderr, "asked for no requests until") {
		t.Errorf("held run sent %d requests; report %v; stderr %s", hits.get()-1, rep, r.stderr)
	}
	// A short hold is waited out, said on stderr and in --json.
	hits.n.Store(0)
	retryAfter.Store("1")
	e2 := newEnv(t)
	e2.run(args("-n", "1", srv.URL)...).wantCode(t, 4)
	r = e2.run(args("--json", srv.URL)...)
	r.wantCode(t, 0)
	rep = r.report(t)
	if hits.get() != 2 || rep["held_ms"].(float64) <= 0 || !strings.Contains(r.stderr, "waiting") {
		t.Errorf("requests %d, held_ms %v, stderr %s", hits.get(), rep["held_ms"], r.stderr)
	}
}

// TestE2ETourFindings: what a hostile tour of the binary found, each a
// class of its own.
func TestE2ETourFindings(t *testing.T) {
	t.Parallel()
	var hits counter
	var mu sync.Mutex
	var lastReq *http.Request
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.next()
		mu.Lock()
		lastReq = r.Clone(context.Background())
		mu.Unlock()
		switch r.URL.Path {
		case "/to-ftp":
			w.Header().Set("Location", "ftp://example.test/x")
			w.WriteHeader(http.StatusFound)
		case "/to-garbage":
			w.Header().Set("Location", "%zz")
			w.WriteHeader(http.StatusFound)
		case "/to-bad-host":
			w.Header().Set("Location", "http://--x/")
			w.WriteHeader(http.StatusFound)
		default:
			fmt.Fprint(w, "body")
		}
	}))
	defer srv.Close()
	e := newEnv(t)

	// A redirect refetch cannot follow is the server's configuration:
	// final (exit 3), not retried, and the host's breaker stays closed.
	for _, path := range []string{"/to-ftp", "/to-garbage", "/to-bad-host"} {
		before := hits.get()
		r := e.run(args("--breaker-failures", "1", srv.URL+path)...)
		r.wantCode(t, 3)
		if hits.get()-before != 1 || !strings.Contains(r.stderr, "bad redirect") || strings.Contains(r.stderr, "circuit") {
			t.Errorf("%s: %d requests, stderr %s", path, hits.get()-before, r.stderr)
		}
	}
	e.run(args("--breaker-failures", "1", srv.URL)...).wantCode(t, 0)

	// -d '' sends Content-Length: 0, not a chunked empty body.
	e.run(args("-d", "", srv.URL+"/post")...).wantCode(t, 0)
	mu.Lock()
	if lastReq.ContentLength != 0 || len(lastReq.TransferEncoding) != 0 || lastReq.Header.Get("Content-Length") != "0" {
		t.Errorf("empty body sent as %v, Content-Length %q", lastReq.TransferEncoding, lastReq.Header.Get("Content-Length"))
	}
	mu.Unlock()

	// -o "" (an empty variable) is a usage error, not stdout.
	before := hits.get()
	r := e.run(args("-o", "", srv.URL)...)
	r.wantCode(t, 2)
	if r.stdout != "" || hits.get() != before {
		t.Errorf("-o '': stdout %q, %d requests", r.stdout, hits.get()-before)
	}
	// So are -i "" and --fallback-file "": the latter silently meant no
	// fallback (a tour found it).
	for _, a := range [][]string{{"-i", ""}, {"--fallback-file", "", srv.URL}} {
		r := e.run(args(a...)...)
		r.wantCode(t, 2)
		if !strings.Contains(r.stderr, "is a variable empty?") || hits.get() != before {
			t.Errorf("%q: stderr %q, %d requests", a, r.stderr, hits.get()-before)
		}
	}
	// -o naming stdout with --json would mix the body into the report.
	r = e.run(args("--json", "-o", "/proc/self/fd/1", srv.URL)...) // names stdout, as /dev/stdout does
	r.wantCode(t, 2)
	r.report(t)
	// So does a link to it: the body went to stdout before the report.
	if err := os.Symlink("/proc/self/fd/1", filepath.Join(e.dir, "to-stdout")); err != nil {
		t.Fatal(err)
	}
	r = e.run(args("--json", "-o", filepath.Join(e.dir, "to-stdout"), srv.URL)...)
	r.wantCode(t, 2)
	r.report(t)

	// check --json prints its one object for a usage error too.
	r = e.run(check("--json", "--wait", "-1s", srv.URL)...)
	r.wantCode(t, 2)
	var rep struct {
		Healthy  bool    `json:"healthy"`
		Error    *string `json:"error"`
		ExitCode int     `json:"exit_code"`
	}
	if err := json.Unmarshal([]byte(r.stdout), &rep); err != nil || rep.Healthy || rep.Error == nil || rep.ExitCode != 2 {
		t.Errorf("check --json usage report %q: %v", r.stdout, err)
	}
	// ... and its exit_code on a normal run.
	r = e.run(check("--json", srv.URL)...)
	r.wantCode(t, 0)
	if err := json.Unmarshal([]byte(r.stdout), &rep); err != nil || !rep.Healthy || rep.ExitCode != 0 {
		t.Errorf("check --json %q: %v", r.stdout, err)
	}

	// A key with a quote and control characters: the reset hint pastes as
	// one shell word, and no escape sequence reaches the terminal.
	key := "x'y\x1b[31m"
	down := downServer(t, nil)
	e.run(args("-n", "1", "--breaker-failures", "1", "--breaker-key", key, down.URL)...).wantCode(t, 4)
	r = e.run(args("--breaker-key", key, down.URL)...)
	r.wantCode(t, 5)
	if strings.Contains(r.stderr, "\x1b") || !strings.Contains(r.stderr, `reset with: refetch breaker reset 'x'\''y\x1b[31m'`) {
		t.Errorf("stderr %q", r.stderr)
	}
	if st := e.run("breaker", "status"); strings.Contains(st.stdout, "\x1b") {
		t.Errorf("breaker status prints an escape sequence: %q", st.stdout)
	}

	// A key holding a secret is shown masked; the hint does not offer a
	// command with the mask in it, which would reset nothing (a tour ran
	// it: "nothing to reset", exit 0, the circuit still open).
	secretKey := "https://u:k3y-pass@h.example/"
	e.run(args("-n", "1", "--breaker-failures", "1", "--breaker-key", secretKey, down.URL)...).wantCode(t, 4)
	r = e.run(args("--breaker-key", secretKey, down.URL)...)
	r.wantCode(t, 5)
	if strings.Contains(r.stderr, "k3y-pass") || strings.Contains(r.stderr, "breaker reset 'https://u:REDACTED") ||
		!strings.Contains(r.stderr, "breaker reset KEY (KEY: this run's breaker key, not shown: it holds a secret)") {
		t.Errorf("secret key: stderr %q", r.stderr)
	}
	e.run("breaker", "reset", secretKey).wantCode(t, 0)
	e.run(args("-n", "1", "--breaker-key", secretKey, down.URL)...).wantCode(t, 4)
}

// TestE2ENetHTTPLogNeverReachesStderr: net/http's own log lines (a server
// sending bytes past Content-Length) are not refetch's words.
func TestE2ENetHTTPLogNeverReachesStderr(t *testing.T) {
	t.Parallel()
	url := rawServer(t, func(c net.Conn) {
		io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nabcEXTRA-GARBAGE")
	})
	r := newEnv(t).run(args("-q", url)...)
	r.wantCode(t, 0)
	if r.stdout != "abc" || r.stderr != "" {
		t.Errorf("stdout %q, stderr %q", r.stdout, r.stderr)
	}
}
