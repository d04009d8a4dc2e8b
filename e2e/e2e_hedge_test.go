package e2e

import (
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/refetch/refetch/internal/redistest"
)

// Hedged requests and address failover (docs/fetch.md, "Hedged requests",
// "Addresses and failover"). Every server here decides by request count
// or blocks until the client goes away, never by time: a first copy that
// hangs until it is cancelled makes the hedge win whatever the machine's
// load, and the tests assert what happened, not how fast.

// tailServer answers each request by its 1-based number: those in hang
// wait until the client goes away (counted in gone), the others answer
// body at once.
type tailServer struct {
	*httptest.Server
	n, gone atomic.Int64
	mu      sync.Mutex
	hang    map[int64]bool
	body    string
	methods []string
}

func newTailServer(t *testing.T, body string, hang ...int64) *tailServer {
	s := &tailServer{hang: map[int64]bool{}, body: body}
	for _, h := range hang {
		s.hang[h] = true
	}
	release := make(chan struct{})
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// The server notices a client gone only once the body is read.
		_, _ = io.Copy(io.Discard, r.Body)
		k := s.n.Add(1)
		s.mu.Lock()
		hang := s.hang[k]
		s.methods = append(s.methods, r.Method)
		s.mu.Unlock()
		if hang {
			select {
			case <-r.Context().Done():
				s.gone.Add(1)
			case <-release:
			}
			return
		}
		fmt.Fprint(w, s.body)
	}))
	t.Cleanup(s.Close)
	t.Cleanup(func() { close(release) }) // runs first: no handler outlives the test
	return s
}

func (s *tailServer) setHang(k int64) {
	s.mu.Lock()
	s.hang[k] = true
	s.mu.Unlock()
}

// attempts returns a report's attempts.
func attemptsOf(t *testing.T, rep map[string]any) []map[string]any {
	t.Helper()
	raw, _ := rep["attempts"].([]any)
	out := make([]map[string]any, len(raw))
	for i, a := range raw {
		out[i] = a.(map[string]any)
	}
	return out
}

// copiesOf returns an attempt's copies (nil when it was not hedged).
func copiesOf(a map[string]any) []map[string]any {
	raw, _ := a["copies"].([]any)
	var out []map[string]any
	for _, c := range raw {
		out = append(out, c.(map[string]any))
	}
	return out
}

func TestHedgeFirstAnswerWins(t *testing.T) {
	srv := newTailServer(t, "fast answer", 1)
	e := newEnv(t)
	r := e.run(args("--json", "--hedge", "50ms", srv.URL)...)
	r.wantCode(t, 0)
	rep := r.report(t)
	if rep["data"] != "fast answer" {
		t.Fatalf("data = %v", rep["data"])
	}
	atts := attemptsOf(t, rep)
	if len(atts) != 1 {
		t.Fatalf("%d attempts, want 1: %s", len(atts), r.stdout)
	}
	copies := copiesOf(atts[0])
	if len(copies) != 2 {
		t.Fatalf("copies = %v, want 2", atts[0]["copies"])
	}
	if copies[0]["outcome"] != "cancelled" || copies[0]["winner"] != false || copies[0]["status"] != nil {
		t.Errorf("copy 1 = %v, want cancelled without a status", copies[0])
	}
	if copies[1]["outcome"] != "won" || copies[1]["winner"] != true || copies[1]["status"] != float64(200) {
		t.Errorf("copy 2 = %v, want the winner with 200", copies[1])
	}
	// A copy that got no response headers had no first byte; the winner did.
	if tm, _ := copies[0]["timings_ms"].(map[string]any); tm == nil || tm["first_byte"] != nil || tm["connect"] == nil {
		t.Errorf("copy 1's timings_ms = %v, want a connect and no first_byte", copies[0]["timings_ms"])
	}
	if tm, _ := copies[1]["timings_ms"].(map[string]any); tm == nil || tm["first_byte"] == nil {
		t.Errorf("copy 2's timings_ms = %v, want its first_byte", copies[1]["timings_ms"])
	}
	if sent, _ := copies[1]["sent_ms"].(float64); sent < 50 {
		t.Errorf("copy 2 sent at %vms, before the 50ms delay", sent)
	}
	if h, _ := rep["hedge"].(map[string]any); h == nil || h["delay_ms"] != float64(50) || h["auto"] != false {
		t.Errorf("hedge = %v", rep["hedge"])
	}
	if n := srv.n.Load(); n != 2 {
		t.Errorf("the server saw %d requests, want 2 (the first and one hedge)", n)
	}
	// The losing copy was cancelled: its connection closed, and the
	// server's handler saw the client go.
	waitFor(t, "the losing copy's connection to close", func() bool { return srv.gone.Load() == 1 })

	// -v: the cancelled copy's line shows no first byte.
	srv2 := newTailServer(t, "fast answer", 1)
	r = e.run(args("-v", "--hedge", "50ms", srv2.URL)...)
	r.wantCode(t, 0)
	var copy1 string
	for _, line := range strings.Split(r.stderr, "\n") {
		if strings.HasPrefix(line, "* [1] copy 1: ") {
			copy1 = line
		}
	}
	if !strings.Contains(copy1, "no response, new connection:") || !strings.Contains(copy1, " first byte - body -") {
		t.Errorf("copy 1's line = %q, want no first byte:\n%s", copy1, r.stderr)
	}

	// Reports say a hedged attempt sent two requests, and whose answer
	// counted (a tour found "attempts: 1 … 102ms" with the winner's
	// phases and no word of the hedge).
	srv3 := newTailServer(t, "fast answer", 1)
	tapf := filepath.Join(e.dir, "h.tap")
	e.run(args("--hedge", "50ms", "--report", "tap="+tapf, srv3.URL)...).wantCode(t, 0)
	if b, _ := os.ReadFile(tapf); !strings.Contains(string(b), "copies: 2") || !strings.Contains(string(b), "won: 2") {
		t.Errorf("TAP of a hedged run:\n%s", b)
	}
}

func TestHedgeNotNeeded(t *testing.T) {
	// A fast answer: no hedge goes, the report has no copies.
	srv := newTailServer(t, "ok")
	r := newEnv(t).run(args("--json", "--hedge", "30s", srv.URL)...)
	r.wantCode(t, 0)
	atts := attemptsOf(t, r.report(t))
	if len(atts) != 1 || len(copiesOf(atts[0])) != 1 || srv.n.Load() != 1 {
		t.Fatalf("attempts %v, %d requests; want one copy, one request", atts, srv.n.Load())
	}
}

func TestHedgeOutputWhole(t *testing.T) {
	// -o and stdout get the winner's body, complete, and nothing of the
	// loser's.
	body := strings.Repeat("winner-body ", 50000)
	for _, out := range []string{"file", "stdout"} {
		t.Run(out, func(t *testing.T) {
			srv := newTailServer(t, body, 1)
			e := newEnv(t)
			if out == "stdout" {
				r := e.run(args("--hedge", "20ms", srv.URL)...)
				r.wantCode(t, 0)
				if r.stdout != body {
					t.Fatalf("stdout has %d bytes, want the winner's %d", len(r.stdout), len(body))
				}
				return
			}
			path := filepath.Join(e.dir, "out")
			r := e.run(args("--hedge", "20ms", "-o", path, srv.URL)...)
			r.wantCode(t, 0)
			got, err := os.ReadFile(path)
			if err != nil || string(got) != body {
				t.Fatalf("-o file: %d bytes, %v; want the winner's %d", len(got), err, len(body))
			}
		})
	}
}

func TestHedgeUnsafeMethods(t *testing.T) {
	t.Run("POST with --hedge is a usage error, nothing sent", func(t *testing.T) {
		srv := newTailServer(t, "ok")
		r := newEnv(t).run(args("-d", "x", "--hedge", "50ms", srv.URL)...)
		r.wantCode(t, 2)
		if !strings.Contains(r.stderr, "--hedge") || !strings.Contains(r.stderr, "--retry-unsafe") || strings.Count(strings.TrimSpace(r.stderr), "\n") != 0 {
			t.Errorf("stderr = %q, want one line naming --hedge and the opt-in", r.stderr)
		}
		if srv.n.Load() != 0 {
			t.Errorf("%d requests sent", srv.n.Load())
		}
	})
	t.Run("POST with REFETCH_HEDGE is not hedged", func(t *testing.T) {
		// The first (and only) request hangs until the attempt times out:
		// a hedge of 1ms would have gone long before.
		srv := newTailServer(t, "ok", 1)
		r := newEnv(t).with("REFETCH_HEDGE=1ms").run(args("--json", "-n", "1", "--timeout", "300ms", "-d", "x", srv.URL)...)
		r.wantCode(t, 3) // a POST that timed out is not retried
		atts := attemptsOf(t, r.report(t))
		if len(atts) != 1 || atts[0]["copies"] != nil || r.report(t)["hedge"] != nil {
			t.Errorf("attempts = %v, hedge = %v; want one unhedged attempt", atts, r.report(t)["hedge"])
		}
		if n := srv.n.Load(); n != 1 {
			t.Errorf("%d requests, want 1", n)
		}
	})
	for _, optIn := range [][]string{{"--retry-unsafe"}, {"-H", "Idempotency-Key: k-1"}} {
		t.Run("POST with "+optIn[0]+" is hedged", func(t *testing.T) {
			srv := newTailServer(t, "posted", 1)
			a := append([]string{"--json", "-d", "x", "--hedge", "20ms"}, optIn...)
			r := newEnv(t).run(args(append(a, srv.URL)...)...)
			r.wantCode(t, 0)
			atts := attemptsOf(t, r.report(t))
			if len(atts) != 1 || len(copiesOf(atts[0])) != 2 {
				t.Fatalf("attempts = %v, want one hedged attempt", atts)
			}
			srv.mu.Lock()
			defer srv.mu.Unlock()
			if fmt.Sprint(srv.methods) != "[POST POST]" {
				t.Errorf("methods = %v", srv.methods)
			}
		})
	}
}

func TestHedgeAutoLearnsAcrossProcesses(t *testing.T) {
	for _, st := range []string{"files", "redis"} {
		t.Run(st, func(t *testing.T) {
			srv := newTailServer(t, "ok")
			e := newEnv(t)
			if st == "redis" {
				e = e.with("REFETCH_STORE=redis://" + redistest.Start(t) + "/0")
			}
			// Too few samples: no hedging; each run adds its one.
			for i := 0; i < 20; i++ {
				r := e.run(args("--json", "--hedge", "auto", srv.URL)...)
				r.wantCode(t, 0)
				h, _ := r.report(t)["hedge"].(map[string]any)
				if h == nil || h["auto"] != true || h["samples"] != float64(i) || h["delay_ms"] != nil {
					t.Fatalf("run %d: hedge = %v, want auto with %d samples and no delay yet", i+1, h, i)
				}
			}
			// A new process: the summary has 20 samples, and its first
			// request, which hangs, is hedged.
			srv.setHang(21)
			r := e.run(args("--json", "--hedge", "auto", srv.URL)...)
			r.wantCode(t, 0)
			rep := r.report(t)
			h, _ := rep["hedge"].(map[string]any)
			if h == nil || h["samples"] != float64(20) || h["delay_ms"] == nil {
				t.Fatalf("hedge = %v, want a learned delay from 20 samples", h)
			}
			// The 21st request to reach the server hangs. Which copy that
			// is depends on the server's scheduling (on a loaded machine
			// the hedge can be handled first): either way one attempt, two
			// copies, the other one winning, and the hanging one abandoned.
			atts := attemptsOf(t, rep)
			copies := copiesOf(atts[0])
			if len(atts) != 1 || len(copies) != 2 || (copies[0]["winner"] == true) == (copies[1]["winner"] == true) {
				t.Fatalf("attempts = %v, want the first attempt hedged and one copy winning", atts)
			}
			waitFor(t, "the hanging copy's connection to close", func() bool { return srv.gone.Load() == 1 })
			// breaker status shows the learned delay; reset clears it.
			status := e.run("breaker", "status")
			status.wantCode(t, 0)
			if !strings.Contains(status.stdout, "hedge after") {
				t.Errorf("breaker status does not show the learned delay:\n%s", status.stdout)
			}
			e.run("breaker", "reset", "--all").wantCode(t, 0)
			r = e.run(args("--json", "--hedge", "auto", srv.URL)...)
			if h, _ := r.report(t)["hedge"].(map[string]any); h == nil || h["samples"] != float64(0) {
				t.Errorf("after reset: hedge = %v, want an empty summary", h)
			}
		})
	}
}

// listenOn listens on ip at port, or skips when the machine has no such
// loopback address.
func listenOn(t *testing.T, ip string, port int) net.Listener {
	t.Helper()
	l, err := net.Listen("tcp", net.JoinHostPort(ip, strconv.Itoa(port)))
	if err != nil {
		t.Skipf("cannot listen on %s:%d: %v", ip, port, err)
	}
	t.Cleanup(func() { l.Close() })
	return l
}

// failoverSetup is the case: one name, three addresses on one
// port: nothing listens on 127.0.0.2, 127.0.0.3 accepts and never
// answers, 127.0.0.1 works.
func failoverSetup(t *testing.T) (url, resolve string, port int, silent *redistest.Silent, good *atomic.Int64) {
	good = new(atomic.Int64)
	l := listenOn(t, "127.0.0.1", 0)
	port = l.Addr().(*net.TCPAddr).Port
	srv := &httptest.Server{Listener: l, Config: &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		good.Add(1)
		fmt.Fprint(w, "from the good address")
	})}}
	srv.Start()
	t.Cleanup(srv.Close)
	silent, err := redistest.ListenSilent(t, net.JoinHostPort("127.0.0.3", strconv.Itoa(port)))
	if err != nil {
		t.Skipf("cannot listen on 127.0.0.3: %v", err)
	}
	if c, err := net.Dial("tcp", net.JoinHostPort("127.0.0.2", strconv.Itoa(port))); err == nil {
		c.Close()
		t.Skipf("something listens on 127.0.0.2:%d", port)
	}
	return fmt.Sprintf("http://svc.test:%d/", port), fmt.Sprintf("svc.test:%d:127.0.0.2,127.0.0.3,127.0.0.1", port), port, silent, good
}

func TestResolveFailoverWithHedge(t *testing.T) {
	url, resolve, port, silent, good := failoverSetup(t)
	r := newEnv(t).run(args("--json", "-n", "1", "--timeout", "60s", "--hedge", "100ms", "--resolve", resolve, url)...)
	r.wantCode(t, 0)
	rep := r.report(t)
	if rep["data"] != "from the good address" {
		t.Fatalf("data = %v", rep["data"])
	}
	atts := attemptsOf(t, rep)
	if len(atts) != 1 {
		t.Fatalf("%d attempts, want 1 (the hedge answers within the first)", len(atts))
	}
	copies := copiesOf(atts[0])
	addr := func(ip string) string { return fmt.Sprintf("%s:%d", ip, port) }
	if len(copies) != 2 || copies[0]["remote_addr"] != addr("127.0.0.3") || copies[1]["remote_addr"] != addr("127.0.0.1") || copies[1]["winner"] != true {
		t.Fatalf("copies = %v; want 127.0.0.3 silent, 127.0.0.1 winning", copies)
	}
	// Every address tried is named: the refused one too.
	tried := fmt.Sprint(atts[0]["addresses"])
	for _, ip := range []string{"127.0.0.2", "127.0.0.3", "127.0.0.1"} {
		if !strings.Contains(tried, addr(ip)) {
			t.Errorf("addresses %s do not name %s", tried, ip)
		}
	}
	if !strings.Contains(tried, "refused") {
		t.Errorf("addresses %s do not say 127.0.0.2 refused", tried)
	}
	if silent.Waiting() != 1 || good.Load() != 1 {
		t.Errorf("silent address got %d requests, good one %d; want 1 and 1", silent.Waiting(), good.Load())
	}
}

// TestCheckFailsOverBetweenAddresses: check's next attempt after a
// failed one goes to an address not tried yet, as fetch's retry does: a
// gate must not call unhealthy a service a client's retry reaches (a
// tour's check asked a hung, then a 503, address every time).
func TestCheckFailsOverBetweenAddresses(t *testing.T) {
	url, resolve, port, _, good := failoverSetup(t)
	r := newEnv(t).run("check", "--timeout", "500ms", "-n", "3", "--delay", "10ms", "--resolve", resolve, url)
	r.wantCode(t, 0)
	if good.Load() != 1 || !strings.Contains(r.stdout, "healthy ") {
		t.Errorf("the good address got %d requests; stdout %q", good.Load(), r.stdout)
	}
	// An address that answers 503 on a kept-alive connection: the next
	// attempt dials another.
	l := listenOn(t, "127.0.0.2", port)
	bad := &httptest.Server{Listener: l, Config: &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "busy", http.StatusServiceUnavailable)
	})}}
	bad.Start()
	t.Cleanup(bad.Close)
	r = newEnv(t).run("check", "-n", "3", "--delay", "10ms", "--resolve", fmt.Sprintf("svc.test:%d:127.0.0.2,127.0.0.1", port), url)
	r.wantCode(t, 0)
	if good.Load() != 2 {
		t.Errorf("after a 503 from 127.0.0.2 the good address got %d requests in all, want 2; stdout %q", good.Load(), r.stdout)
	}
}

func TestResolveFailoverRetry(t *testing.T) {
	// No hedge: the first attempt times out on the silent address; the
	// retry goes to the one not tried yet.
	url, resolve, port, _, good := failoverSetup(t)
	r := newEnv(t).run(args("--json", "-v", "-n", "3", "--timeout", "500ms", "--resolve", resolve, url)...)
	r.wantCode(t, 0)
	atts := attemptsOf(t, r.report(t))
	if len(atts) != 2 {
		t.Fatalf("%d attempts, want 2: %s", len(atts), r.stdout)
	}
	silent, working := fmt.Sprintf("127.0.0.3:%d", port), fmt.Sprintf("127.0.0.1:%d", port)
	if atts[0]["remote_addr"] != silent || !strings.Contains(fmt.Sprint(atts[0]["error"]), silent) {
		t.Errorf("attempt 1 = %v, want the silent address named in its error", atts[0])
	}
	if atts[1]["remote_addr"] != working || atts[1]["status"] != float64(200) {
		t.Errorf("attempt 2 = %v, want 200 from %s", atts[1], working)
	}
	// The retry line names the address the attempt failed on; -v the
	// address of each.
	if !strings.Contains(r.stderr, "attempt 1/3: attempt timed out after 500ms (server address "+silent+")") {
		t.Errorf("stderr does not name the failed attempt's address:\n%s", r.stderr)
	}
	if good.Load() != 1 {
		t.Errorf("good address: %d requests", good.Load())
	}
}

func TestResolveUsage(t *testing.T) {
	srv := newTailServer(t, "ok")
	for _, bad := range []string{"svc.test:80", "svc.test:80:", "svc.test:x:127.0.0.1", "svc.test:80:not-an-ip", "[::1:80:127.0.0.1", "-svc.test:80", "svc.test:0:127.0.0.1"} {
		r := newEnv(t).run(args("--resolve", bad, srv.URL)...)
		r.wantCode(t, 2)
		if !strings.Contains(r.stderr, "--resolve") || strings.Count(strings.TrimSpace(r.stderr), "\n") != 0 {
			t.Errorf("--resolve %q: stderr = %q, want one line naming --resolve", bad, r.stderr)
		}
	}
	r := newEnv(t).with("REFETCH_RESOLVE=bad").run(args(srv.URL)...)
	r.wantCode(t, 2)
	if !strings.Contains(r.stderr, "REFETCH_RESOLVE") {
		t.Errorf("stderr = %q, want the variable named", r.stderr)
	}
	if srv.n.Load() != 0 {
		t.Errorf("%d requests sent on bad input", srv.n.Load())
	}
	// Pins work for check and probe too, and keep the URL's host name in
	// the Host header.
	var host atomic.Value
	l := listenOn(t, "127.0.0.1", 0)
	port := l.Addr().(*net.TCPAddr).Port
	named := &httptest.Server{Listener: l, Config: &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		host.Store(r.Host)
	})}}
	named.Start()
	t.Cleanup(named.Close)
	u := fmt.Sprintf("http://pinned.test:%d/", port)
	pin := fmt.Sprintf("pinned.test:%d:127.0.0.1", port)
	newEnv(t).run("check", "--resolve", pin, u).wantCode(t, 0)
	newEnv(t).run("probe", "-n", "1", "--resolve", pin, u).wantCode(t, 0)
	newEnv(t).run(args("--resolve", fmt.Sprintf("*:%d:127.0.0.1", port), u)...).wantCode(t, 0)
	if host.Load() != fmt.Sprintf("pinned.test:%d", port) {
		t.Errorf("Host = %v", host.Load())
	}
}

func TestHedgeBatchPerHostBound(t *testing.T) {
	// A hedge takes a request's room of its host: with --parallel-host 1
	// the running job holds it, so no hedge goes and the attempt runs to
	// its timeout; with room for two, the hedge goes and wins.
	for _, perHost := range []string{"1", "2"} {
		t.Run("parallel-host "+perHost, func(t *testing.T) {
			srv, other := newTailServer(t, "ok", 1), newTailServer(t, "ok")
			r := newEnv(t).run(args("--json", "-v", "-P", "2", "--parallel-host", perHost, "--hedge", "20ms",
				"--timeout", "500ms", "-n", "2", srv.URL+"/a", other.URL+"/b")...)
			r.wantCode(t, 0)
			first := map[string]any{}
			for _, line := range strings.Split(strings.TrimSpace(r.stdout), "\n") {
				var rep map[string]any
				if err := json.Unmarshal([]byte(line), &rep); err != nil {
					t.Fatalf("bad line %q: %v", line, err)
				}
				if rep["n"] == float64(1) {
					first = rep
				}
			}
			atts := attemptsOf(t, first)
			if perHost == "1" {
				if len(atts) != 2 || len(copiesOf(atts[0])) != 1 || !strings.Contains(r.stderr, "no copy 2: the batch's per-host bound") {
					t.Fatalf("attempts %v; stderr:\n%s\nwant no hedge and a retry", atts, r.stderr)
				}
				return
			}
			if len(atts) != 1 || len(copiesOf(atts[0])) != 2 {
				t.Fatalf("attempts %v, want one attempt won by its hedge", atts)
			}
		})
	}
}

func TestHedgeAfterFailureGoesAtOnce(t *testing.T) {
	// The first copy answers 503 while hedges are left: the next copy
	// goes at once, not after the (long) delay, and wins in the same
	// attempt.
	var n atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if n.Add(1) == 1 {
			http.Error(w, "busy", http.StatusServiceUnavailable)
			return
		}
		fmt.Fprint(w, "second copy")
	}))
	t.Cleanup(srv.Close)
	r := newEnv(t).run(args("--json", "-n", "1", "--hedge", "1h", srv.URL)...)
	r.wantCode(t, 0)
	atts := attemptsOf(t, r.report(t))
	copies := copiesOf(atts[0])
	if len(atts) != 1 || len(copies) != 2 || copies[0]["status"] != float64(503) || copies[0]["outcome"] != "failed" || copies[1]["winner"] != true {
		t.Fatalf("attempts = %v", atts)
	}
}

func TestHedgeUsage(t *testing.T) {
	srv := newTailServer(t, "ok")
	for _, bad := range [][]string{{"--hedge", "soon"}, {"--hedge", "-1s"}, {"--hedge", "1s", "--hedge-max", "0"}, {"--hedge", "1s", "--hedge-max", "9"}} {
		r := newEnv(t).run(args(append(bad, srv.URL)...)...)
		r.wantCode(t, 2)
		if !strings.Contains(r.stderr, bad[len(bad)-2]) || strings.Count(strings.TrimSpace(r.stderr), "\n") != 0 {
			t.Errorf("%v: stderr = %q, want one line naming %s", bad, r.stderr, bad[len(bad)-2])
		}
	}
	if srv.n.Load() != 0 {
		t.Errorf("%d requests sent on bad input", srv.n.Load())
	}
}

func TestHedgeCountsAgainstTheRetryBudget(t *testing.T) {
	// --retry-budget allows 3 retries a minute at the least: three runs
	// whose first copy hangs hedge and win; the fourth finds the budget
	// spent, sends no hedge and times out.
	srv := newTailServer(t, "ok", 1, 3, 5, 7)
	e := newEnv(t)
	for i := 1; i <= 4; i++ {
		r := e.run(args("--json", "-v", "-n", "1", "--timeout", "1s", "--retry-budget", "1%", "--hedge", "20ms", srv.URL)...)
		atts := attemptsOf(t, r.report(t))
		if i < 4 {
			r.wantCode(t, 0)
			if len(copiesOf(atts[0])) != 2 {
				t.Fatalf("run %d: attempts %v, want a hedge", i, atts)
			}
			continue
		}
		r.wantCode(t, 4)
		if len(copiesOf(atts[0])) != 1 || !strings.Contains(r.stderr, "no copy 2: the retry budget is spent") {
			t.Fatalf("run 4: attempts %v, stderr:\n%s\nwant no hedge, the budget named", atts, r.stderr)
		}
	}
	if n := srv.n.Load(); n != 7 {
		t.Errorf("%d requests, want 7 (3 runs × 2, 1)", n)
	}
}

func TestResolveKeepsTheNameForTLS(t *testing.T) {
	// httptest's certificate is for example.com: pinned to 127.0.0.1, the
	// name still checks against it (SNI and verification use the URL's
	// host), and the Host header is the name.
	var host atomic.Value
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		host.Store(r.Host)
		fmt.Fprint(w, "tls ok")
	}))
	t.Cleanup(srv.Close)
	e := newEnv(t)
	ca := filepath.Join(e.dir, "ca.pem")
	if err := os.WriteFile(ca, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw}), 0o600); err != nil {
		t.Fatal(err)
	}
	port := srv.Listener.Addr().(*net.TCPAddr).Port
	r := e.run(args("--cacert", ca, "--resolve", fmt.Sprintf("example.com:%d:127.0.0.1", port), fmt.Sprintf("https://example.com:%d/", port))...)
	r.wantCode(t, 0)
	if r.stdout != "tls ok" || host.Load() != fmt.Sprintf("example.com:%d", port) {
		t.Fatalf("stdout %q, Host %v", r.stdout, host.Load())
	}
	// Another name is checked as that name: the certificate does not hold it.
	r = e.run(args("-n", "1", "--cacert", ca, "--resolve", fmt.Sprintf("other.test:%d:127.0.0.1", port), fmt.Sprintf("https://other.test:%d/", port))...)
	r.wantCode(t, 3)
	// Its CA is trusted: the advice is about the name, not about --cacert.
	if !strings.Contains(r.stderr, "not for the URL's host") || strings.Contains(r.stderr, "--cacert FILE") {
		t.Errorf("stderr:\n%s", r.stderr)
	}
}

// TestHedgeTakesAQuotaSlotUnderRateAuto: under --rate auto, a hedge is a
// request the server's quota counts: it goes only with a paced slot free
// now (a tour's copy 2 went out past "1 left").
func TestHedgeTakesAQuotaSlotUnderRateAuto(t *testing.T) {
	t.Parallel()
	var hits atomic.Int64
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		w.Header().Set("RateLimit-Policy", `"d";q=100;w=60`)
		w.Header().Set("RateLimit", `"d";r=1;t=60`)
		if r.URL.Path == "/slow" {
			// Answers once the run has said what it did about the hedge
			// (no timing race on a loaded machine).
			select {
			case <-release:
			case <-time.After(30 * time.Second):
			}
		}
		io.WriteString(w, "ok")
	}))
	defer srv.Close()
	e := newEnv(t)
	// The server says one request is left in this minute.
	e.run(args("--rate", "auto", srv.URL+"/learn")...).wantCode(t, 0)
	cmd := e.command(args("-v", "--rate", "auto", "--hedge", "50ms", "--max-time", "20s", srv.URL+"/slow")...)
	stderr := newLockedBuffer()
	cmd.Stderr = stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the hedge to be refused", func() bool { return strings.Contains(stderr.String(), "no copy 2") })
	close(release)
	if err := cmd.Wait(); err != nil {
		t.Fatalf("%v\n%s", err, stderr.String())
	}
	if n := hits.Load(); n != 2 || !strings.Contains(stderr.String(), "no copy 2: no free slot of the server's quota now (--rate auto)") {
		t.Errorf("%d requests (want 2: no hedge); stderr:\n%s", n, stderr.String())
	}
}
