package e2e

import (
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"
)

// Debugging a flaky endpoint: phase timings and redirect hops in fetch,
// and `refetch probe`.

// failsEvery answers 503 to every k-th request and 200 to the others.
func failsEvery(t *testing.T, k int64, c *counter) *httptest.Server {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if c.next()%k == 0 {
			http.Error(w, "busy", http.StatusServiceUnavailable)
			return
		}
		fmt.Fprint(w, "ok")
	}))
	t.Cleanup(srv.Close)
	return srv
}

// probeArgs are the arguments of a quick probe.
func probeArgs(extra ...string) []string {
	return append([]string{"probe", "--interval", "10ms"}, extra...)
}

func TestE2EProbeCountsKOfN(t *testing.T) {
	t.Parallel()
	var c counter
	srv := failsEvery(t, 4, &c)
	e := newEnv(t)

	r := e.run(probeArgs("-n", "12", srv.URL)...)
	r.wantCode(t, 0)
	for _, want := range []string{
		`probe of ` + regexp.QuoteMeta(srv.URL) + `: 12 requests, one every 10ms`,
		`(?m)^success\s+9 of 12 \(75\.0%\)$`,
		`(?m)^statuses\s+200 ×9  503 ×3$`,
		`(?m)^errors\s+none$`,
		`(?m)^  first byte(\s+\S+){4}\s+12 responses$`,
		`(?m)^  total(\s+\S+){4}\s+12 requests$`,
		`(?m)^retry-after\s+none$`,
	} {
		if !regexp.MustCompile(want).MatchString(r.stdout) {
			t.Errorf("summary lacks /%s/:\n%s", want, r.stdout)
		}
	}
	if c.get() != 12 {
		t.Errorf("requests = %d", c.get())
	}

	r = e.run(probeArgs("-n", "12", "--json", srv.URL)...)
	r.wantCode(t, 0)
	m := r.report(t)
	if fmt.Sprint(m["statuses"]) != "map[200:9 503:3]" || fmt.Sprint(m["errors"]) != "map[]" ||
		m["successes"] != 9.0 || m["success_rate"] != 0.75 || m["requests"] != 12.0 || m["planned"] != 12.0 ||
		m["complete"] != true || m["exit_code"] != 0.0 || m["error"] != nil {
		t.Errorf("report: %s", r.stdout)
	}
	samples := m["samples"].([]any)
	if len(samples) != 12 {
		t.Fatalf("%d samples", len(samples))
	}
	for i, s := range samples {
		s := s.(map[string]any)
		want := 200.0
		if (i+1)%4 == 0 {
			want = 503
		}
		if s["n"] != float64(i+1) || s["status"] != want || s["error"] != nil || s["reused"] != false {
			t.Errorf("sample %d: %v", i+1, s)
		}
	}
	lat := m["latency_ms"].(map[string]any)
	for _, k := range []string{"first_byte", "total"} {
		st := lat[k].(map[string]any)
		p50, p90, p99, mx := st["p50"].(float64), st["p90"].(float64), st["p99"].(float64), st["max"].(float64)
		if st["count"] != 12.0 || !(p50 <= p90 && p90 <= p99 && p99 <= mx) {
			t.Errorf("%s latency: %v", k, st)
		}
	}
}

func TestE2EProbeStalledFirstByte(t *testing.T) {
	const stall = 300 * time.Millisecond
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		time.Sleep(stall) // the server thinks before its first byte
		fmt.Fprint(w, "late")
	}))
	defer srv.Close()
	e := newEnv(t)

	r := e.run(probeArgs("-n", "3", "--json", srv.URL)...)
	r.wantCode(t, 0)
	m := r.report(t)
	for _, s := range m["samples"].([]any) {
		s := s.(map[string]any)
		tm := s["timings_ms"].(map[string]any)
		// An IP address needs no lookup, http no TLS; the server's own
		// wait is a lower bound of the first-byte phase.
		if tm["dns"] != nil || tm["tls"] != nil || tm["connect"] == nil || tm["body"] == nil ||
			tm["first_byte"] == nil || tm["first_byte"].(float64) < float64(stall.Milliseconds()) {
			t.Errorf("sample %v timings: %v", s["n"], tm)
		}
		if s["remote_addr"] != srv.Listener.Addr().String() || s["proto"] != "HTTP/1.1" || s["ttfb_ms"].(float64) > s["total_ms"].(float64) {
			t.Errorf("sample %v: %v", s["n"], s)
		}
	}
	slow := m["slowest"].(map[string]any)
	if slow["phase"] != "first_byte" || slow["count"].(float64) < 1 {
		t.Errorf("slowest: %v", slow)
	}

	// The human summary names it, and -v shows each request's phases in
	// their order, the first byte's at least the server's wait.
	r = e.run(probeArgs("-n", "2", "-v", srv.URL)...)
	r.wantCode(t, 0)
	if !regexp.MustCompile(`(?m)^slowest\s+\d+ requests? at or above p90 \(\S+\): first byte \d+% of their time$`).MatchString(r.stdout) {
		t.Errorf("summary:\n%s", r.stdout)
	}
	line := regexp.MustCompile(`(?m)^\* \[(\d)\] (\S+) HTTP/1\.1 new connection: dns - connect (\S+)ms tls - first byte (\S+) body (\S+)$`)
	found := line.FindAllStringSubmatch(r.stderr, -1)
	if len(found) != 2 || found[0][1] != "1" || found[1][1] != "2" || found[0][2] != srv.Listener.Addr().String() {
		t.Fatalf("trace lines %q in:\n%s", found, r.stderr)
	}
	for _, f := range found {
		if d, err := time.ParseDuration(f[4]); err != nil || d < stall {
			t.Errorf("first byte %q in %q", f[4], f[0])
		}
	}

	// fetch --json carries the same fields in each attempt.
	r = e.run("fetch", "--json", srv.URL)
	r.wantCode(t, 0)
	a := r.report(t)["attempts"].([]any)[0].(map[string]any)
	tm := a["timings_ms"].(map[string]any)
	if tm["first_byte"] == nil || tm["first_byte"].(float64) < float64(stall.Milliseconds()) || tm["body"] == nil ||
		a["reused"] != false || a["remote_addr"] != srv.Listener.Addr().String() || a["proto"] != "HTTP/1.1" ||
		fmt.Sprint(a["redirects"]) != "[]" {
		t.Errorf("attempt: %v", a)
	}
}

// redirectChain is /a → 301 → /b → 302 → /c (with a password in its
// Location) → 200.
func redirectChain(t *testing.T) *httptest.Server {
	mux := http.NewServeMux()
	mux.HandleFunc("/a", func(w http.ResponseWriter, r *http.Request) { http.Redirect(w, r, "/b", http.StatusMovedPermanently) })
	mux.HandleFunc("/b", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "http://deploy:s3cret@"+r.Host+"/c", http.StatusFound)
	})
	mux.HandleFunc("/c", func(w http.ResponseWriter, r *http.Request) { fmt.Fprint(w, "arrived") })
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return srv
}

func TestE2ERedirectHops(t *testing.T) {
	t.Parallel()
	srv := redirectChain(t)
	redacted := strings.Replace(srv.URL, "http://", "http://deploy:REDACTED@", 1) + "/c"
	wantHops := fmt.Sprintf("[map[location:%s/b status:301] map[location:%s status:302]]", srv.URL, redacted)
	e := newEnv(t)

	r := e.run("fetch", "-v", "--json", srv.URL+"/a")
	r.wantCode(t, 0)
	a := r.report(t)["attempts"].([]any)[0].(map[string]any)
	if fmt.Sprint(a["redirects"]) != wantHops {
		t.Errorf("redirects = %v, want %s", a["redirects"], wantHops)
	}
	// -v: every hop in order, then the final response.
	hop1 := "< [1] 301 Moved Permanently → " + srv.URL + "/b"
	hop2 := "< [1] 302 Found → " + redacted
	final := "< [1] HTTP/1.1 200 OK"
	i1, i2, i3 := strings.Index(r.stderr, hop1), strings.Index(r.stderr, hop2), strings.Index(r.stderr, final)
	if i1 < 0 || i2 < i1 || i3 < i2 {
		t.Errorf("stderr lacks the hops in order (%d %d %d):\n%s", i1, i2, i3, r.stderr)
	}
	if strings.Contains(r.stdout+r.stderr, "s3cret") {
		t.Errorf("password printed:\n%s\n%s", r.stdout, r.stderr)
	}

	// A probe lists them per request too.
	r = e.run(probeArgs("-n", "2", "-v", "--json", srv.URL+"/a")...)
	r.wantCode(t, 0)
	for _, s := range r.report(t)["samples"].([]any) {
		if got := fmt.Sprint(s.(map[string]any)["redirects"]); got != wantHops {
			t.Errorf("sample redirects = %s", got)
		}
	}
	if strings.Count(r.stderr, "302 Found → "+redacted) != 2 || strings.Contains(r.stdout+r.stderr, "s3cret") {
		t.Errorf("stderr:\n%s", r.stderr)
	}
}

func TestE2EProbeRefused(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	url := "http://" + ln.Addr().String() + "/"
	ln.Close()
	e := newEnv(t)
	r := e.run(probeArgs("-n", "3", url)...)
	r.wantCode(t, 0)
	for _, want := range []string{`(?m)^success\s+0 of 3 \(0\.0%\)$`, `(?m)^statuses\s+none$`,
		`(?m)^errors\s+refused ×3$`, `(?m)^\s+refused: dial tcp .*connection refused$`, `(?m)^  first byte\s+-\s+-\s+-\s+-\s+0 responses$`} {
		if !regexp.MustCompile(want).MatchString(r.stdout) {
			t.Errorf("summary lacks /%s/:\n%s", want, r.stdout)
		}
	}
	r = e.run(probeArgs("-n", "3", "--json", url)...)
	r.wantCode(t, 0)
	m := r.report(t)
	if fmt.Sprint(m["errors"]) != "map[refused:3]" || m["success_rate"] != 0.0 || fmt.Sprint(m["statuses"]) != "map[]" {
		t.Errorf("report: %s", r.stdout)
	}
	s := m["samples"].([]any)[0].(map[string]any)
	tm := s["timings_ms"].(map[string]any)
	if s["error_class"] != "refused" || s["status"] != nil || s["proto"] != nil || tm["connect"] == nil || tm["first_byte"] != nil {
		t.Errorf("sample: %v", s)
	}
}

func TestE2EProbeExpectSuccess(t *testing.T) {
	t.Parallel()
	var c counter
	srv := failsEvery(t, 4, &c) // 6 of 8 succeed: 75%
	e := newEnv(t)
	for _, tc := range []struct {
		rate string
		code int
	}{{"0.75", 0}, {"75%", 0}, {"0", 0}, {"0.5", 0}, {"0.8", 8}, {"90%", 8}, {"1", 8}, {"100%", 8}} {
		r := e.run(probeArgs("-n", "8", "--expect-success", tc.rate, srv.URL)...)
		if r.code != tc.code {
			t.Errorf("--expect-success %s: exit %d, want %d\n%s", tc.rate, r.code, tc.code, r.stderr)
		}
		if !strings.Contains(r.stdout, "success") {
			t.Errorf("--expect-success %s: no summary:\n%s", tc.rate, r.stdout)
		}
		below := "refetch: unhealthy: success rate 75.0% is below --expect-success " + tc.rate
		if strings.Contains(r.stderr, below) != (tc.code == 8) {
			t.Errorf("--expect-success %s: stderr:\n%s", tc.rate, r.stderr)
		}
	}
	r := e.run(probeArgs("-n", "8", "--json", "--expect-success", "99%", srv.URL)...)
	r.wantCode(t, 8)
	if m := r.report(t); m["exit_code"] != 8.0 || !strings.Contains(fmt.Sprint(m["error"]), "below --expect-success 99%") {
		t.Errorf("report: %s", r.stdout)
	}
	if c.get() != 9*8 {
		t.Errorf("requests = %d", c.get())
	}
}

func TestE2EProbeBadInputNoRequest(t *testing.T) {
	t.Parallel()
	var c counter
	srv := failsEvery(t, 1000, &c)
	e := newEnv(t)
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"-n", "0"}, "invalid -n/--count 0: must be from 1 to 10000"},
		{[]string{"-n", "10001"}, "invalid -n/--count 10001: must be from 1 to 10000"},
		{[]string{"-n", "-3"}, "must be from 1 to 10000"},
		{[]string{"-n", "x"}, `invalid --count "x": want a whole number`},
		{[]string{"--interval", "5ms"}, "invalid --interval 5ms: must be from 10ms to 1h"},
		{[]string{"--interval", "0"}, "invalid --interval 0s: must be from 10ms to 1h"},
		{[]string{"--interval", "61m"}, "invalid --interval 1h1m: must be from 10ms to 1h"},
		{[]string{"--interval", "-1s"}, "must be from 10ms to 1h"},
		{[]string{"--timeout", "-1s"}, "invalid --timeout -1s: must not be negative"},
		{[]string{"--expect-success", "1.5"}, `invalid --expect-success "1.5": want a fraction from 0 to 1 (0.95) or a percentage (95%)`},
		{[]string{"--expect-success", "95"}, "want a fraction from 0 to 1"},
		{[]string{"--expect-success", "101%"}, "want a fraction from 0 to 1"},
		{[]string{"--expect-success", "most"}, "want a fraction from 0 to 1"},
		{[]string{"-H", "Bad Name: x"}, "invalid -H"},
	} {
		r := e.run(append(probeArgs(tc.args...), srv.URL)...)
		if r.code != 2 || !strings.Contains(r.stderr, tc.want) || r.stdout != "" {
			t.Errorf("%v: exit %d, stdout %q, stderr %s", tc.args, r.code, r.stdout, r.stderr)
		}
		// --json: the one object, with the same exit code.
		r = e.run(append(probeArgs(append(tc.args, "--json")...), srv.URL)...)
		if m := r.report(t); r.code != 2 || m["exit_code"] != 2.0 || !strings.Contains(fmt.Sprint(m["error"]), tc.want) {
			t.Errorf("%v --json: exit %d, %s", tc.args, r.code, r.stdout)
		}
	}
	for _, a := range [][]string{{"probe"}, {"probe", srv.URL, srv.URL}, {"probe", "ftp://x/"}} {
		newEnv(t).run(a...).wantCode(t, 2)
	}
	if c.get() != 0 {
		t.Errorf("%d requests sent by bad invocations", c.get())
	}
}

func TestE2EProbeInterrupted(t *testing.T) {
	t.Run("SIGINT while waiting for the next request", func(t *testing.T) {
		var c counter
		srv := failsEvery(t, 1000, &c)
		code, took, stdout := startAndSignal(t, newEnv(t), syscall.SIGINT,
			func(stderr string) bool { return strings.Contains(stderr, "* [1]") },
			"probe", "-v", "-n", "5", "--interval", "1h", srv.URL)
		if code != 130 || took > 5*time.Second {
			t.Errorf("exit %d after %v", code, took)
		}
		for _, want := range []string{"interrupted by SIGINT after 1 of 5 requests", "success       1 of 1 (100.0%)"} {
			if !strings.Contains(stdout, want) {
				t.Errorf("summary lacks %q:\n%s", want, stdout)
			}
		}
	})
	t.Run("SIGTERM during a stalled request, --json", func(t *testing.T) {
		var c counter
		release := make(chan struct{})
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if c.next() == 2 {
				select {
				case <-release:
				case <-r.Context().Done():
				}
				return
			}
			fmt.Fprint(w, "ok")
		}))
		defer srv.Close()
		defer close(release)
		code, took, stdout := startAndSignal(t, newEnv(t), syscall.SIGTERM,
			func(string) bool { return c.get() >= 2 },
			"probe", "--json", "-n", "3", "--interval", "10ms", srv.URL)
		if code != 143 || took > 5*time.Second {
			t.Errorf("exit %d after %v", code, took)
		}
		m := result{stdout: stdout}.report(t)
		// The request cut off by the signal is not counted.
		if m["requests"] != 1.0 || m["complete"] != false || m["exit_code"] != 143.0 || m["error"] != "interrupted by SIGTERM" ||
			fmt.Sprint(m["statuses"]) != "map[200:1]" {
			t.Errorf("report: %s", stdout)
		}
	})
}

// TestE2EProbeOneAtATimePerHost: a second probe of the same host waits
// for the first to finish; a probe of another host does not.
func TestE2EProbeOneAtATimePerHost(t *testing.T) {
	t.Parallel()
	var c, other counter
	srv := failsEvery(t, 1000, &c)
	elsewhere := failsEvery(t, 1000, &other)
	e := newEnv(t)

	first := e.command("probe", "-v", "-n", "2", "--interval", "1h", srv.URL)
	firstErr := newLockedBuffer()
	first.Stderr = firstErr
	if err := first.Start(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the first probe's first request", func() bool { return strings.Contains(firstErr.String(), "* [1]") })

	// Another host: not held up.
	e.run(probeArgs("-n", "1", elsewhere.URL)...).wantCode(t, 0)

	second := e.command(probeArgs("-n", "1", srv.URL)...)
	secondErr, secondOut := newLockedBuffer(), newLockedBuffer()
	second.Stderr, second.Stdout = secondErr, secondOut
	if err := second.Start(); err != nil {
		t.Fatal(err)
	}
	host := strings.TrimPrefix(srv.URL, "http://")
	waitFor(t, "the second probe to wait", func() bool {
		return strings.Contains(secondErr.String(), "waiting for another refetch probe of http://"+host+" to finish")
	})
	if c.get() != 1 {
		t.Errorf("requests while the first probe runs = %d, want 1", c.get())
	}
	first.Process.Signal(syscall.SIGINT)
	first.Wait()
	if err := second.Wait(); err != nil {
		t.Fatalf("second probe: %v\n%s", err, secondErr.String())
	}
	if c.get() != 2 || !strings.Contains(secondOut.String(), "success       1 of 1") {
		t.Errorf("requests = %d, second summary:\n%s", c.get(), secondOut.String())
	}
}

func TestE2EProbeWithoutStateDirWarnsAndRuns(t *testing.T) {
	t.Parallel()
	var c counter
	srv := failsEvery(t, 1000, &c)
	e := newEnv(t)
	var vars []string
	for _, v := range e.vars {
		if !strings.HasPrefix(v, "HOME=") && !strings.HasPrefix(v, "XDG_STATE_HOME=") {
			vars = append(vars, v)
		}
	}
	e.vars = vars
	r := e.run(probeArgs("-n", "2", srv.URL)...)
	r.wantCode(t, 0)
	if !strings.Contains(r.stderr, "refetch: warning: probe lock skipped") || c.get() != 2 {
		t.Errorf("requests %d, stderr:\n%s", c.get(), r.stderr)
	}
	// -q silences the warning, not the summary.
	r = e.run(probeArgs("-q", "-n", "1", srv.URL)...)
	r.wantCode(t, 0)
	if r.stderr != "" || !strings.Contains(r.stdout, "success") {
		t.Errorf("-q: stderr %q, stdout %q", r.stderr, r.stdout)
	}
}
