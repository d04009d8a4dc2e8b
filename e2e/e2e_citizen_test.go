package e2e

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/refetch/refetch/internal/redistest"
)

// Manners toward the server (issue 23): --rate and --retry-budget, per
// origin, shared through the store by every process using it.

// perSecond counts a server's requests per second of the wall clock, and
// keeps their order.
type perSecond struct {
	mu    sync.Mutex
	count map[int64]int
	seq   *[]string
	tag   string
}

func (p *perSecond) handler(status int) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p.mu.Lock()
		p.count[time.Now().Unix()]++
		p.mu.Unlock()
		if p.seq != nil {
			seqMu.Lock()
			*p.seq = append(*p.seq, p.tag)
			seqMu.Unlock()
		}
		w.WriteHeader(status)
		fmt.Fprintln(w, "ok")
	})
}

var seqMu sync.Mutex

// TestE2ERateFleet: 8 processes share one Redis with --rate 20/s, each a
// batch of URLs to two origins. The saturated origin sees at most 20
// requests (+ the burst of 1, + 1 at a second's edge) in every second of
// the wall clock; the other origin is not slowed: its URLs, last in every
// input, are all fetched while the first is still being rationed.
func TestE2ERateFleet(t *testing.T) {
	const procs, busyPerProc, idlePerProc = 8, 8, 2
	addr := redistest.Start(t)
	store := "redis://" + addr + "?timeout=5s"
	var seq []string
	busy := &perSecond{count: map[int64]int{}, seq: &seq, tag: "busy"}
	idle := &perSecond{count: map[int64]int{}, seq: &seq, tag: "idle"}
	busySrv := httptest.NewServer(busy.handler(200))
	defer busySrv.Close()
	idleSrv := httptest.NewServer(idle.handler(200))
	defer idleSrv.Close()

	var wg sync.WaitGroup
	results := make([]result, procs)
	for i := 0; i < procs; i++ {
		e := fleetNode(t, fmt.Sprint("node-", i%2), store)
		var lines []string
		for j := 0; j < busyPerProc; j++ {
			lines = append(lines, fmt.Sprintf("%s/p%d/%d", busySrv.URL, i, j))
		}
		for j := 0; j < idlePerProc; j++ {
			lines = append(lines, fmt.Sprintf("%s/p%d/%d", idleSrv.URL, i, j))
		}
		list := filepath.Join(e.dir, "urls")
		if err := os.WriteFile(list, []byte(strings.Join(lines, "\n")+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		cmd := e.command(args("--rate", "20/s", "-P", "4", "-i", list)...)
		wg.Add(1)
		go func(i int, cmd *exec.Cmd) {
			defer wg.Done()
			var out, errOut strings.Builder
			cmd.Stdout, cmd.Stderr = &out, &errOut
			err := cmd.Run()
			code := 0
			if ee, ok := err.(*exec.ExitError); ok {
				code = ee.ExitCode()
			}
			results[i] = result{stdout: out.String(), stderr: errOut.String(), code: code}
		}(i, cmd)
	}
	wg.Wait()
	for i, r := range results {
		if r.code != 0 {
			t.Fatalf("process %d: exit %d\n%s", i, r.code, r.stderr)
		}
	}
	total := 0
	for sec, n := range busy.count {
		total += n
		if n > 20+1+1 {
			t.Errorf("second %d: %d requests to the rationed origin, want at most 22 (all: %v)", sec, n, busy.count)
		}
	}
	t.Logf("requests per second to the rationed origin: %v", busy.count)
	if total != procs*busyPerProc {
		t.Fatalf("%d requests to the rationed origin, want %d", total, procs*busyPerProc)
	}
	// The other origin's URLs came last in every input, yet all were
	// fetched before the rationed origin had had half of its requests.
	busyBefore := 0
	idleSeen := 0
	for _, tag := range seq {
		if tag == "busy" {
			busyBefore++
			continue
		}
		idleSeen++
		if idleSeen == procs*idlePerProc {
			break
		}
	}
	if idleSeen != procs*idlePerProc || busyBefore > procs*busyPerProc/2 {
		t.Fatalf("the idle origin's %d requests were done after %d of the busy one's: it was slowed", idleSeen, busyBefore)
	}
}

// TestE2ERetryBudgetBoundsAmplification: a server that always answers
// 503; 40 invocations, 8 at a time, with -n 4. Without a budget, each
// sends 4 requests; with --retry-budget 20% (plus the 3 a minute every
// origin may retry), the fleet sends 40 + about 11, and the invocations
// whose retry was refused say so and exit 10.
func TestE2ERetryBudgetBoundsAmplification(t *testing.T) {
	run := func(t *testing.T, invocations int, extra ...string) (requests int64, codes map[int]int, sample result) {
		addr := redistest.Start(t)
		store := "redis://" + addr + "?timeout=5s"
		var c counter
		srv := downServer(t, &c)
		codes = map[int]int{}
		var mu sync.Mutex
		sem := make(chan struct{}, 8)
		var wg sync.WaitGroup
		for i := 0; i < invocations; i++ {
			e := fleetNode(t, fmt.Sprint("node-", i%4), store)
			a := args(append([]string{"-n", "4", "--breaker-failures", "0"}, append(extra, srv.URL)...)...)
			wg.Add(1)
			sem <- struct{}{}
			go func() {
				defer wg.Done()
				defer func() { <-sem }()
				r := e.run(a...)
				mu.Lock()
				codes[r.code]++
				if r.code == 10 {
					sample = r
				}
				mu.Unlock()
			}()
		}
		wg.Wait()
		return c.get(), codes, sample
	}
	t.Run("without a budget", func(t *testing.T) {
		n, codes, _ := run(t, 8)
		if n != 32 || codes[4] != 8 {
			t.Fatalf("%d requests, exit codes %v; want 32 and 8 × exit 4", n, codes)
		}
	})
	t.Run("with 20%", func(t *testing.T) {
		const invocations = 40
		n, codes, sample := run(t, invocations, "--retry-budget", "20%")
		t.Logf("%d requests for %d invocations (%.2f each), exit codes %v", n, invocations, float64(n)/invocations, codes)
		if ratio := float64(n) / invocations; ratio > 1.5 || n < invocations {
			t.Fatalf("%d requests for %d invocations (%.2f each), want at most 1.5 each; exit codes %v", n, invocations, ratio, codes)
		}
		if codes[10] == 0 || codes[10]+codes[4] != invocations {
			t.Fatalf("exit codes %v, want 10 (budget spent) or 4", codes)
		}
		if !strings.Contains(sample.stderr, "retry budget spent") || !strings.Contains(sample.stderr, "so the failure was not retried") {
			t.Fatalf("stderr of a refused retry:\n%s", sample.stderr)
		}
	})
	t.Run("--json says why", func(t *testing.T) {
		e := newEnv(t)
		srv := downServer(t, nil)
		// min 3 a minute: the first run retries 3 times, the second not.
		e.run(args("-n", "4", "--breaker-failures", "0", "--retry-budget", "20%", srv.URL)...).wantCode(t, 4)
		r := e.run(args("--json", "-n", "4", "--breaker-failures", "0", "--retry-budget", "20%", srv.URL)...)
		r.wantCode(t, 10)
		rep := r.report(t)
		d, _ := rep["details"].(map[string]any)
		if d["class"] != "retry_budget" || !strings.Contains(fmt.Sprint(rep["error"]), "retry budget spent") || len(rep["attempts"].([]any)) != 1 {
			t.Fatalf("report: %v", rep)
		}
	})
}

// TestE2ERateRedisDown: with Redis down, the rate is kept in the local
// state dir after the one failover warning, with the breaker on or off.
func TestE2ERateRedisDown(t *testing.T) {
	for _, breaker := range [][]string{nil, {"--breaker-failures", "0"}} {
		e := newEnv(t)
		srv := downServer(t, nil)
		a := append([]string{"--json", "--store", "redis://" + redistest.DeadAddr(t), "--rate", "1/s", "-n", "2"}, breaker...)
		r := e.run(args(append(a, srv.URL)...)...)
		r.wantCode(t, 4)
		if n := strings.Count(r.stderr, "warning"); n != 1 || !strings.Contains(r.stderr, "using the local state dir") {
			t.Fatalf("%v: want one failover warning:\n%s", breaker, r.stderr)
		}
		rep := r.report(t)
		att := rep["attempts"].([]any)
		// The second attempt waited for its slot (one a second) from the
		// local files.
		if len(att) != 2 || att[1].(map[string]any)["rate_wait_ms"].(float64) <= 0 || rep["rate_wait_ms"].(float64) <= 0 {
			t.Fatalf("%v: report %v", breaker, rep)
		}
		files, _ := filepath.Glob(filepath.Join(e.dir, "state", "refetch", "*.rate"))
		if len(files) != 1 {
			t.Fatalf("%v: rate files %v", breaker, files)
		}
	}
}

// TestE2ERateSlotBeyondMaxTime: a slot further off than --max-time is not
// waited for: exit 7 at once, nothing sent, and stderr says why.
func TestE2ERateSlotBeyondMaxTime(t *testing.T) {
	e := newEnv(t)
	var c counter
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { c.next() }))
	defer srv.Close()
	e.run(args("--rate", "1/h", srv.URL)...).wantCode(t, 0)
	r := e.run(args("--rate", "1/h", "--max-time", "30s", srv.URL)...)
	r.wantCode(t, 7)
	if c.get() != 1 || !strings.Contains(r.stderr, "--rate") {
		t.Fatalf("%d requests; stderr:\n%s", c.get(), r.stderr)
	}
	// Another origin is not held back.
	other := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	defer other.Close()
	e.run(args("--rate", "1/h", "--max-time", "30s", other.URL)...).wantCode(t, 0)
	// The rate is the origin's, whatever --breaker-key says.
	e.run(args("--rate", "1/h", "--breaker-key", "custom", "--max-time", "30s", other.URL)...).wantCode(t, 7)
	// A faster caller is not held by the 1/h one (a tour's 10/s run
	// waited the hour), nor held by a 1/h run after it: each waits the
	// smaller interval, here a second at most.
	for _, rate := range []string{"10/s", "1/h", "10/s"} {
		r := e.run(args("--json", "--rate", rate, "--max-time", "30s", other.URL)...)
		r.wantCode(t, 0)
		if w := r.report(t)["rate_wait_ms"].(float64); w > 1000 {
			t.Errorf("--rate %s after a 1/h run waited %vms", rate, w)
		}
	}
	// The same on Redis.
	{
		re := e.with("REFETCH_STORE=redis://" + redistest.Start(t) + "/0")
		re.run(args("--rate", "1/h", other.URL)...).wantCode(t, 0)
		re.run(args("--rate", "1/h", "--max-time", "30s", other.URL)...).wantCode(t, 7)
		re.run(args("--rate", "10/s", "--max-time", "30s", other.URL)...).wantCode(t, 0)
	}
}

// TestE2ECitizenUsageErrors: bad values are one line, exit 2, no request.
func TestE2ECitizenUsageErrors(t *testing.T) {
	var c counter
	srv := downServer(t, &c)
	for _, a := range [][]string{
		{"--rate", "0/s"}, {"--rate", "abc"}, {"--rate", "5/d"}, {"--rate", "-1/s"}, {"--rate-burst", "0", "--rate", "1/s"},
		{"--retry-budget", "150%"}, {"--retry-budget", "x"}, {"--retry-budget", "-5%"},
	} {
		r := newEnv(t).run(args(append(a, srv.URL)...)...)
		r.wantCode(t, 2)
		if strings.Count(strings.TrimSpace(r.stderr), "\n") != 0 || !strings.Contains(r.stderr, a[0]) {
			t.Errorf("%v: stderr %q", a, r.stderr)
		}
	}
	r := newEnv(t).with("REFETCH_RATE=abc").run(args(srv.URL)...)
	r.wantCode(t, 2)
	if !strings.Contains(r.stderr, "REFETCH_RATE") {
		t.Errorf("stderr %q", r.stderr)
	}
	if c.get() != 0 {
		t.Fatalf("%d requests sent", c.get())
	}
}

// TestE2ECitizenStatusAndReset: breaker status shows an origin's rate and
// budget, in the table and in --json; breaker reset clears them, on the
// local files and on Redis.
func TestE2ECitizenStatusAndReset(t *testing.T) {
	addr := redistest.Start(t)
	for _, e := range []*env{newEnv(t), fleetNode(t, "node-a", "redis://"+addr)} {
		srv := downServer(t, nil)
		e.run(args("-n", "2", "--breaker-failures", "0", "--rate", "10/s", "--rate-burst", "2", "--retry-budget", "20%", srv.URL)...).wantCode(t, 4)
		list := statusJSON(t, e)
		if len(list) != 1 || list[0]["key"] != srv.URL || list[0]["state"] != "closed" {
			t.Fatalf("status --json = %v", list)
		}
		rate, _ := list[0]["rate"].(map[string]any)
		budget, _ := list[0]["budget"].(map[string]any)
		if rate["per_second"] != 10.0 || rate["burst"] != 2.0 || budget["percent"] != 20.0 ||
			budget["first_attempts"] != 1.0 || budget["retries"] != 1.0 {
			t.Fatalf("status --json = %v", list)
		}
		r := e.run("breaker", "status")
		r.wantCode(t, 0)
		if !strings.Contains(r.stdout, "RETRY BUDGET") || !strings.Contains(r.stdout, "10/s burst 2") {
			t.Fatalf("status:\n%s", r.stdout)
		}
		r = e.run("breaker", "reset", srv.URL+"/some/path")
		r.wantCode(t, 0)
		if !strings.Contains(r.stderr, "rate and retry budget cleared") {
			t.Fatalf("reset: %s", r.stderr)
		}
		if list := statusJSON(t, e); len(list) != 0 {
			t.Fatalf("after reset: %v", list)
		}
		e.run(args("-n", "1", "--rate", "10/s", srv.URL)...).wantCode(t, 4)
		r = e.run("breaker", "reset", "--all")
		r.wantCode(t, 0)
		if !strings.Contains(r.stderr, "reset 1 breaker and 1 rate, budget and quota record") {
			t.Fatalf("reset --all: %s", r.stderr)
		}
	}
}
