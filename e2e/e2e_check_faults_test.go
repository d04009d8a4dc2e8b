//go:build unix

package e2e

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode/utf8"
)

// These tests run refetch check against servers that misbehave the way
// real ones do (go-httpbin, nginx, a process that accepts and says
// nothing), one test per finding of issue 28.

// holdServer listens on loopback and hands each connection to serve,
// which may keep it for ever: the connections are closed at cleanup.
func holdServer(t *testing.T, serve func(c net.Conn)) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	return "http://" + rawServe(t, l, serve)
}

func rawServe(t *testing.T, l net.Listener, serve func(c net.Conn)) string {
	var mu sync.Mutex
	var conns []net.Conn
	t.Cleanup(func() {
		l.Close()
		mu.Lock()
		defer mu.Unlock()
		for _, c := range conns {
			c.Close()
		}
	})
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
			go serve(c)
		}
	}()
	return l.Addr().String()
}

// readRequest reads a request's head from c, so an answer (or the
// silence) comes after the whole request, as from a real server.
func readRequest(c net.Conn) {
	br := bufio.NewReader(c)
	for {
		line, err := br.ReadString('\n')
		if err != nil || line == "\r\n" {
			return
		}
	}
}

// hang accepts, reads the request and never answers.
func hang(c net.Conn) {
	readRequest(c)
	io.Copy(io.Discard, c)
}

// stallAfterHeaders sends a 200 with a 100-byte Content-Length and 5
// bytes of it, then nothing.
func stallAfterHeaders(c net.Conn) {
	readRequest(c)
	io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nhello")
	io.Copy(io.Discard, c)
}

// checkLines is stdout of a text-mode check, which must be one line per
// URL with no control character (server text is escaped).
func checkLines(t *testing.T, r result, n int) []string {
	t.Helper()
	lines := strings.Split(strings.TrimSuffix(r.stdout, "\n"), "\n")
	if len(lines) != n {
		t.Fatalf("stdout has %d lines, want %d: %q", len(lines), n, r.stdout)
	}
	for _, l := range lines {
		if strings.IndexFunc(l, func(r rune) bool { return r < 0x20 || r == 0x7f }) >= 0 {
			t.Errorf("a result line holds a control character: %q", l)
		}
	}
	return lines
}

type checkReport struct {
	Healthy bool `json:"healthy"`
	Results []struct {
		URL       string   `json:"url"`
		Healthy   bool     `json:"healthy"`
		Status    *int     `json:"status"`
		LatencyMS *int64   `json:"latency_ms"`
		Failed    []string `json:"failed"`
		Attempts  int      `json:"attempts"`
		ElapsedMS *int64   `json:"elapsed_ms"`
	} `json:"results"`
	ExitCode int `json:"exit_code"`
}

func parseCheck(t *testing.T, r result) checkReport {
	t.Helper()
	var rep checkReport
	if err := json.Unmarshal([]byte(r.stdout), &rep); err != nil || len(rep.Results) == 0 {
		t.Fatalf("stdout is no check report (%v): %q", err, r.stdout)
	}
	return rep
}

// Item 1: a 503 with Retry-After: 3600 (a maintenance page) does not end
// the wait: check waits at most the time left and checks again.
func TestE2ECheckRetryAfterBeyondTheWait(t *testing.T) {
	t.Parallel()
	var c counter
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if c.next() == 1 {
			w.Header().Set("Retry-After", "3600")
			http.Error(w, "maintenance", http.StatusServiceUnavailable)
			return
		}
		fmt.Fprint(w, "ok")
	}))
	defer srv.Close()
	r := newEnv(t).run(check("--wait", "4s", srv.URL)...)
	r.wantCode(t, 0)
	if c.get() != 2 || !strings.Contains(r.stdout, "2 attempts") {
		t.Errorf("%d requests, stdout %q", c.get(), r.stdout)
	}
	if !strings.Contains(r.stderr, "(Retry-After 1h0m0s)") || strings.Contains(r.stderr+r.stdout, "longest wait allowed") {
		t.Errorf("stderr %q", r.stderr)
	}
	// Without --wait, check waits for no hour: it says why it stopped,
	// naming no flag check lacks.
	c.n.Store(0)
	r = newEnv(t).run(check(srv.URL)...)
	r.wantCode(t, 8)
	if !strings.Contains(r.stdout, "the server asked to retry after 1h0m0s, longer than check waits for it without --wait (1m0s)") ||
		strings.Contains(r.stdout, "max-retry-after") || c.get() != 1 {
		t.Errorf("%d requests, stdout %q", c.get(), r.stdout)
	}
}

// Item 2: a body over 1 MiB fails no gate without a body expectation; with
// one, past the bound, it fails saying so, and --max-size raises it.
func TestE2ECheckLargeBody(t *testing.T) {
	t.Parallel()
	big := strings.Repeat("metric_total 1\n", (3<<20)/15)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, big+"# end ok\n")
	}))
	defer srv.Close()
	e := newEnv(t)
	e.run(check("-n", "1", srv.URL)...).wantCode(t, 0)
	r := e.run(check("-n", "1", "--expect-body", "end ok", srv.URL)...)
	r.wantCode(t, 8)
	if !strings.Contains(r.stdout, "body over 1.0 MiB, the most check keeps for the body expectations") || !strings.Contains(r.stdout, "--max-size sets the bound") {
		t.Errorf("stdout %q", r.stdout)
	}
	e.run(check("-n", "1", "--max-size", "4M", "--expect-body", "end ok", srv.URL)...).wantCode(t, 0)
	// A --max-size given bounds every body.
	r = e.run(check("-n", "1", "--max-size", "1M", srv.URL)...)
	r.wantCode(t, 8)
	if !strings.Contains(r.stdout, "body exceeds the size limit") {
		t.Errorf("stdout %q", r.stdout)
	}
}

// Item 3: headers are checked as the server sent them: a gzip answer
// has its Content-Encoding, a chunked one its Transfer-Encoding, and the
// body expectations see the decoded body.
func TestE2ECheckHeadersAsSent(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !strings.Contains(r.Header.Get("Accept-Encoding"), "gzip") {
			io.WriteString(w, `{"status": "plain"}`)
			return
		}
		w.Header().Set("Content-Encoding", "gzip")
		w.Header().Set("Content-Type", "application/json")
		zw := gzip.NewWriter(w)
		io.WriteString(zw, `{"status": "ok"}`)
		zw.Flush()
		w.(http.Flusher).Flush() // headers out before the end: chunked
		zw.Close()
	}))
	defer srv.Close()
	e := newEnv(t)
	r := e.run(check("-n", "1", "--expect-header", "Content-Encoding: ^gzip$", "--expect-header", "Transfer-Encoding: chunked",
		"--expect-json", `.status == "ok"`, "--expect-body", `"ok"`, srv.URL)...)
	r.wantCode(t, 0)
	r = e.run(check("-n", "1", "--expect-header", "Content-Encoding: br", srv.URL)...)
	r.wantCode(t, 8)
	if !strings.Contains(r.stdout, `header Content-Encoding: "gzip" does not match /br/`) {
		t.Errorf("stdout %q", r.stdout)
	}
}

// Item 5: halt yields nothing, like empty: it is not a pass.
func TestE2ECheckHaltIsNotAPass(t *testing.T) {
	t.Parallel()
	srv, _ := healthServer(t)
	for _, expr := range []string{"halt", "empty", "true, halt"} {
		r := newEnv(t).run(check("-n", "1", "--expect-json", expr, srv.URL+"/health")...)
		want := 8
		if expr == "true, halt" {
			want = 0 // it yielded true, then stopped
		}
		if r.code != want || (want == 8 && !strings.Contains(r.stdout, "yielded nothing")) {
			t.Errorf("%s: exit %d, stdout %q", expr, r.code, r.stdout)
		}
	}
}

// Item 6: --max-latency ends the attempt at the bound, even with a huge
// --timeout, against a server that never answers.
func TestE2ECheckMaxLatencyEndsTheAttempt(t *testing.T) {
	t.Parallel()
	url := holdServer(t, hang)
	cmd := newEnv(t).command(check("-n", "1", "--timeout", "1h", "--max-latency", "300ms", url)...)
	r := runBounded(t, cmd, time.Minute)
	r.wantCode(t, 8)
	if !strings.Contains(r.stdout, "latency over 300ms (--max-latency), so the attempt was ended: connected to 127.0.0.1:") ||
		!strings.Contains(r.stdout, "no response headers") {
		t.Errorf("stdout %q", r.stdout)
	}
}

// runBounded runs cmd, killing it after limit (a generous bound: the
// run must end long before; this only keeps a broken build from hanging
// the suite for the hour of its --timeout).
func runBounded(t *testing.T, cmd *exec.Cmd, limit time.Duration) result {
	t.Helper()
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	timer := time.AfterFunc(limit, func() { cmd.Process.Kill() })
	defer timer.Stop()
	err := cmd.Wait()
	if !timer.Stop() {
		t.Fatalf("still running after %s: stderr %q", limit, errOut.String())
	}
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	}
	return result{stdout: out.String(), stderr: errOut.String(), code: code}
}

// Item 7: a service that refuses, then accepts and never answers: the
// wait logs while the attempt hangs, and the report says how far the last
// attempt got and what the earlier ones saw, not the stale refusal alone.
func TestE2ECheckHangAfterRefusals(t *testing.T) {
	t.Parallel()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close() // refused, until the service "comes up" below
	cmd := newEnv(t).command(check("--wait", "6s", "--delay", "200ms", "--json", "http://"+addr+"/")...)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	cmd.Stdout = &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var log strings.Builder
	sc := bufio.NewScanner(stderr)
	up := false
	for sc.Scan() {
		log.WriteString(sc.Text() + "\n")
		if !up && strings.Contains(sc.Text(), "connection refused") {
			// The service comes up: it accepts, and says nothing.
			l, err := net.Listen("tcp", addr)
			if err != nil {
				cmd.Process.Kill()
				t.Skipf("the port was taken meanwhile: %v", err)
			}
			rawServe(t, l, hang)
			up = true
		}
	}
	cmd.Wait()
	r := result{stdout: out.String(), stderr: log.String(), code: cmd.ProcessState.ExitCode()}
	r.wantCode(t, 8)
	rep := parseCheck(t, r)
	failed := strings.Join(rep.Results[0].Failed, " | ")
	for _, want := range []string{
		"cut off by the end of --wait 6s", "connected to " + addr + ", no response headers",
		"earlier: no answer: ", "connection refused (", "not healthy before the time ran out (--wait 6s)",
	} {
		if !strings.Contains(failed, want) {
			t.Errorf("failed %q lacks %q", failed, want)
		}
	}
	if !regexp.MustCompile(`attempt \d+: no answer yet after [0-9.]+s: connected to ` + regexp.QuoteMeta(addr) + `, no response headers`).MatchString(r.stderr) {
		t.Errorf("nothing logged while the attempt hung:\n%s", r.stderr)
	}
}

// Item 8: timeouts say which limit ended the attempt and how far it got:
// no response headers, or a body that stalled after them.
func TestE2ECheckTimeoutsSayWhatHappened(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		serve func(net.Conn)
		want  string
	}{
		{hang, "no answer within --timeout (300ms): connected to 127.0.0.1:"},
		{stallAfterHeaders, "no answer within --timeout (300ms): status 200 came, then the body stalled after 5 B"},
	} {
		url := holdServer(t, tc.serve)
		for _, mode := range [][]string{nil, {"--json"}} {
			r := newEnv(t).run(check(append(mode, "-n", "2", "--timeout", "300ms", url)...)...)
			r.wantCode(t, 8)
			if !strings.Contains(r.stdout, tc.want) || strings.Contains(r.stdout+r.stderr, "context deadline exceeded") {
				t.Errorf("%v: stdout %q", mode, r.stdout)
			}
			if !strings.Contains(r.stderr, "attempt 1/2: "+tc.want) {
				t.Errorf("%v: the retry line differs from the report: %q", mode, r.stderr)
			}
		}
	}
}

// Item 9: a wait that ends early says why and how much was left: a
// breaker that opened, an attempt limit from the environment.
func TestE2ECheckEarlyEndExplained(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(http.NotFoundHandler())
	url := srv.URL
	srv.Close()
	e := newEnv(t)
	r := e.run(check("--wait", "1m", "--breaker-failures", "3", url)...)
	r.wantCode(t, 8)
	if !regexp.MustCompile(`the circuit opened \(--breaker-failures 3\), so the checks stopped, with [0-9.]+s of --wait 1m0s left`).MatchString(r.stdout) {
		t.Errorf("breaker: stdout %q", r.stdout)
	}
	r = e.with("REFETCH_ATTEMPTS=3").run(check("--wait", "1m", url)...)
	r.wantCode(t, 8)
	if !regexp.MustCompile(`gave up after 3 attempts \(REFETCH_ATTEMPTS=3\), with [0-9.]+s of --wait 1m0s left`).MatchString(r.stdout) {
		t.Errorf("REFETCH_ATTEMPTS: stdout %q", r.stdout)
	}
}

// Items 10 and 11: server text in a failure is bounded, cut at a
// character boundary, and escaped on every output: stdout's line, stderr,
// --json.
func TestE2ECheckServerTextBoundedAndEscaped(t *testing.T) {
	t.Parallel()
	hostile := "line1\n::warning::forged\x1b[31mred\rCR\u0085"
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		switch r.URL.Path {
		case "/huge":
			json.NewEncoder(w).Encode(map[string]string{"msg": strings.Repeat("x", 900_000)})
		case "/utf8":
			json.NewEncoder(w).Encode(map[string]string{"msg": strings.Repeat("é", 100)})
		default:
			json.NewEncoder(w).Encode(map[string]string{"msg": hostile})
		}
	}))
	defer srv.Close()
	e := newEnv(t)
	r := e.run(check("-n", "2", "--expect-json", "error(.msg)", srv.URL+"/huge")...)
	r.wantCode(t, 8)
	if len(r.stdout) > 1000 || len(r.stderr) > 2000 {
		t.Errorf("jq's message is not bounded: stdout %d bytes, stderr %d bytes", len(r.stdout), len(r.stderr))
	}
	r = e.run(check("-n", "1", "--expect-json", ".msg", srv.URL+"/utf8")...)
	r.wantCode(t, 8)
	if !utf8.ValidString(r.stdout) || !strings.Contains(r.stdout, "yielded \"éé") || !strings.Contains(r.stdout, "…") {
		t.Errorf("yielded value cut inside a character: %q", r.stdout)
	}
	for _, mode := range [][]string{nil, {"--json"}} {
		r := e.run(check(append(mode, "-n", "2", "--expect-json", "error(.msg)", srv.URL+"/h")...)...)
		r.wantCode(t, 8)
		out := r.stdout + r.stderr
		for _, bad := range []string{"\x1b", "\r", "\u0085", "\n::"} {
			if strings.Contains(out, bad) {
				t.Errorf("%v: server text reached the output raw (%q): %q", mode, bad, out)
			}
		}
		if mode == nil {
			checkLines(t, r, 1)
			if !strings.Contains(r.stdout, `line1\n::warning::forged\x1b[31mred\rCR`) {
				t.Errorf("the escaped text is not shown: %q", r.stdout)
			}
		} else {
			parseCheck(t, r)
		}
	}
}

// Item 14: a long wait keeps no body beyond its evaluation: 60 attempts
// of a 4 MiB error page (240 MiB in all) peak about as high as 10 (40
// MiB); kept bodies would add 200 MiB. (A race-enabled binary's baseline
// is higher, so the growth is compared, not the peak.)
func TestE2ECheckMemoryIsFlat(t *testing.T) {
	t.Parallel()
	page := strings.Repeat("<p>error</p>\n", (4<<20)/13)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusInternalServerError)
		io.WriteString(w, page)
	}))
	defer srv.Close()
	peak := func(n int) int64 {
		cmd := newEnv(t).command(check("-n", strconv.Itoa(n), "--delay", "0", "--max-size", "5M", "--expect-body", "never", srv.URL)...)
		r := runBounded(t, cmd, 5*time.Minute)
		r.wantCode(t, 8)
		if !strings.Contains(r.stdout, fmt.Sprintf("%d attempts", n)) {
			t.Fatalf("stdout %q", r.stdout)
		}
		return maxRSS(cmd)
	}
	few, many := peak(10), peak(60)
	t.Logf("peak RSS: 10 attempts %d MiB, 60 attempts %d MiB", few>>20, many>>20)
	if many-few > 80<<20 {
		t.Errorf("50 more attempts of 4 MiB grew the peak by %d MiB: bodies are kept", (many-few)>>20)
	}
}

// The smaller findings.

func TestE2ECheckResultLinesPlain(t *testing.T) {
	t.Parallel()
	srv, _ := healthServer(t)
	r := newEnv(t).run(check("--color", "always", "-n", "1", srv.URL+"/health", srv.URL+"/nope")...)
	r.wantCode(t, 8)
	if strings.Contains(r.stdout, "\x1b[") {
		t.Errorf("--color always coloured stdout: %q", r.stdout)
	}
	if !strings.Contains(r.stderr, "\x1b[") {
		t.Errorf("--color always did not colour stderr: %q", r.stderr)
	}
}

func TestE2ECheckExpectBodyShowsWhatCame(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok\n") }))
	defer srv.Close()
	e := newEnv(t)
	r := e.run(check("-n", "1", "--expect-body", "^ok$", srv.URL)...)
	r.wantCode(t, 8)
	if !strings.Contains(r.stdout, `body does not match /^ok$/: the body is "ok\n"; the body ends with a newline: /(?m)^ok$/ matches line by line`) {
		t.Errorf("stdout %q", r.stdout)
	}
	e.run(check("-n", "1", "--expect-body", "(?m)^ok$", srv.URL)...).wantCode(t, 0)
}

func TestE2ECheckRetryOnHonoured(t *testing.T) {
	t.Parallel()
	var c counter
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c.next()
		http.NotFound(w, r)
	}))
	defer srv.Close()
	e := newEnv(t)
	r := e.run(check("-n", "3", "--retry-on", "503", srv.URL)...)
	r.wantCode(t, 8)
	if c.get() != 1 || !strings.Contains(r.stdout, "status 404 is not retried (--retry-on 503)") {
		t.Errorf("%d requests, stdout %q", c.get(), r.stdout)
	}
	c.n.Store(0)
	e.run(check("-n", "3", "--retry-on", "404,503", srv.URL)...).wantCode(t, 8)
	if c.get() != 3 {
		t.Errorf("--retry-on 404: %d requests, want 3", c.get())
	}
	c.n.Store(0)
	e.run(check("-n", "3", srv.URL)...).wantCode(t, 8)
	if c.get() != 3 {
		t.Errorf("no --retry-on: %d requests, want 3 (check retries everything)", c.get())
	}
}

func TestE2ECheckUsageErrorsWorded(t *testing.T) {
	t.Parallel()
	srv, c := healthServer(t)
	e := newEnv(t)
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--expect-header", "X Bad: .", srv.URL}, `the name "X Bad" is not a header name`},
		{[]string{"--expect-header", "X(y): .", srv.URL}, "is not a header name"},
		{[]string{"--expect-status", "abc", srv.URL}, `invalid --expect-status "abc": want a code (200)`},
		{[]string{"--expect-header", "\nContent-Type: .", srv.URL}, `the name "\nContent-Type" is not a header name`},
		{[]string{"-X", "HEAD", "--expect-body", "ok", srv.URL}, "--expect-body with -X HEAD: a HEAD answer has no body to match"},
		{[]string{"-X", "head", "--expect-json", "true", srv.URL}, "--expect-json with -X HEAD"},
		{[]string{"--stable", "0", srv.URL}, "invalid --stable 0: must be at least 1"},
		{[]string{"--stable", "5", "-n", "3", srv.URL}, "--stable 5 needs at least 5 attempts, and --attempts 3 allows 3"},
	} {
		r := e.run(check(tc.args...)...)
		if r.code != 2 || !strings.Contains(r.stderr, tc.want) || strings.Contains(r.stderr, "invalid status") || strings.Count(r.stderr, "\n") != 1 {
			t.Errorf("%v: exit %d, stderr %q", tc.args, r.code, r.stderr)
		}
	}
	if c.get() != 0 {
		t.Errorf("%d requests sent before usage errors", c.get())
	}
}

// --max-latency against a slow answer: the column and the message agree
// (one rounding; the fake-clock unit test checks an exact value).
func TestE2ECheckLatencyRoundedAlike(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		time.Sleep(200 * time.Millisecond)
		io.WriteString(w, "slow")
	}))
	defer srv.Close()
	r := newEnv(t).run(check("-n", "1", "--max-latency", "20ms", srv.URL)...)
	r.wantCode(t, 8)
	m := regexp.MustCompile(`  (\d+)ms  1 attempt .*latency over 20ms \(--max-latency\)`).FindStringSubmatch(r.stdout)
	if m == nil {
		t.Fatalf("stdout %q", r.stdout)
	}
	if ms, _ := strconv.Atoi(m[1]); ms < 20 || ms > 1000 {
		t.Errorf("latency column %sms for an attempt ended at 20ms", m[1])
	}
}

func TestE2ECheckTimeToHealthy(t *testing.T) {
	t.Parallel()
	srv, _ := healthServer(t)
	e := newEnv(t)
	r := e.run(check("--wait", "20s", srv.URL+"/warming")...)
	r.wantCode(t, 0)
	if !regexp.MustCompile(`^healthy  \S+/warming  200  \d+ms  4 attempts  after [0-9.]+m?s\n$`).MatchString(r.stdout) {
		t.Errorf("stdout %q", r.stdout)
	}
	rep := parseCheck(t, e.run(check("--json", srv.URL+"/health")...))
	if rep.Results[0].ElapsedMS == nil {
		t.Errorf("no elapsed_ms in %+v", rep.Results[0])
	}
}

// The poll floor: --delay 0 does not poll as fast as the server answers.
// The bound holds on any machine: load only makes fewer requests.
func TestE2ECheckPollFloor(t *testing.T) {
	t.Parallel()
	var c counter
	srv := downServer(t, &c)
	newEnv(t).run("check", "--wait", "1s", "--delay", "0", "--multiplier", "1", "--jitter", "0", srv.URL).wantCode(t, 8)
	if n := c.get(); n > 11 || n < 2 {
		t.Errorf("%d requests in a 1s wait with --delay 0; the 100ms floor allows at most 11", n)
	}
}

// --stable N: a flapping service is not healthy on its first 200.
func TestE2ECheckStable(t *testing.T) {
	t.Parallel()
	var c counter
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n := c.next()
		switch {
		case r.URL.Path == "/flap" && n%2 == 0:
			http.Error(w, "down", http.StatusInternalServerError)
		case r.URL.Path == "/warm" && n <= 2:
			http.Error(w, "starting", http.StatusServiceUnavailable)
		default:
			io.WriteString(w, "ok")
		}
	}))
	defer srv.Close()
	e := newEnv(t)
	r := e.run(check("-n", "6", "--stable", "2", srv.URL+"/flap")...)
	r.wantCode(t, 8)
	if !strings.Contains(r.stdout, "6 attempts") || !strings.Contains(r.stderr, "healthy 1 time in a row, not yet stable (--stable 2 wanted)") {
		t.Errorf("stdout %q\nstderr %q", r.stdout, r.stderr)
	}
	c.n.Store(0)
	r = e.run(check("--wait", "20s", "--stable", "3", srv.URL+"/warm")...)
	r.wantCode(t, 0)
	if c.get() != 5 || !strings.Contains(r.stdout, "5 attempts") {
		t.Errorf("%d requests, stdout %q", c.get(), r.stdout)
	}
	// The first healthy answer alone is enough without --stable.
	c.n.Store(0)
	e.run(check("-n", "2", srv.URL+"/flap")...).wantCode(t, 0)
	if c.get() != 1 {
		t.Errorf("%d requests without --stable", c.get())
	}
}
