package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/refetch/refetch/resilience/store"

	"github.com/redis/go-redis/v9"
	"github.com/refetch/refetch/internal/redistest"
)

// Fleet mode: several machines (here: environments with their own state
// dirs and REFETCH_NODE) share breakers through one real redis-server.

// redisPrefix is where the Redis store keeps a breaker key's record.
const redisPrefix = store.RedisKeyPrefix

// fleetNode is one machine of a fleet: its own home and state dir, sharing
// the store URL.
func fleetNode(t *testing.T, name, store string) *env {
	return newEnv(t).with("REFETCH_NODE="+name, "REFETCH_STORE="+store)
}

// statusJSON runs `breaker status --json` with extra args and parses it.
func statusJSON(t *testing.T, e *env, extra ...string) []map[string]any {
	t.Helper()
	r := e.run(append([]string{"breaker", "status", "--json"}, extra...)...)
	r.wantCode(t, 0)
	var list []map[string]any
	if err := json.Unmarshal([]byte(r.stdout), &list); err != nil {
		t.Fatalf("status --json = %q: %v", r.stdout, err)
	}
	return list
}

// setRecord writes the Redis record of key as another machine would have
// left it: fields are name, value pairs of its hash.
func setRecord(t *testing.T, addr, key string, fields ...any) {
	t.Helper()
	rc := redis.NewClient(&redis.Options{Addr: addr})
	defer rc.Close()
	ctx := context.Background()
	if err := rc.HSet(ctx, redisPrefix+key, fields...).Err(); err != nil {
		t.Fatal(err)
	}
	if err := rc.PExpire(ctx, redisPrefix+key, time.Hour).Err(); err != nil {
		t.Fatal(err)
	}
}

// TestE2EFleetNoLostUpdates: 40 processes on two nodes each record one
// failure on one key in one Redis at the same moment; none is lost.
func TestE2EFleetNoLostUpdates(t *testing.T) {
	t.Parallel()
	const procs = 40
	addr := redistest.Start(t)
	// A generous timeout: this test is about atomicity, and 40 processes
	// starting at once on a loaded machine may take a while to be served.
	store := "redis://" + addr + "?timeout=10s"
	srv := downServer(t, nil)
	nodes := []*env{fleetNode(t, "node-a", store), fleetNode(t, "node-b", store)}
	start := make(chan struct{})
	var wg sync.WaitGroup
	results := make(chan result, procs)
	for i := 0; i < procs; i++ {
		cmd := nodes[i%2].command(args("-n", "1", "--breaker-failures", "1000", srv.URL)...)
		wg.Add(1)
		go func(cmd *exec.Cmd) {
			defer wg.Done()
			var out, errOut strings.Builder
			cmd.Stdout, cmd.Stderr = &out, &errOut
			<-start
			err := cmd.Run()
			code := 0
			if ee, ok := err.(*exec.ExitError); ok {
				code = ee.ExitCode()
			} else if err != nil {
				code = -1
			}
			results <- result{stdout: out.String(), stderr: errOut.String(), code: code}
		}(cmd)
	}
	close(start)
	wg.Wait()
	close(results)
	for r := range results {
		if r.code != 4 || strings.Contains(r.stderr, "warning") {
			t.Errorf("a run exited %d (want 4) with stderr:\n%s", r.code, r.stderr)
		}
	}
	list := statusJSON(t, nodes[0], "--store", store)
	if len(list) != 1 || list[0]["key"] != srv.URL || list[0]["consecutive_failures"] != float64(procs) {
		t.Fatalf("status = %v, want %s with %d consecutive failures", list, srv.URL, procs)
	}
	for _, n := range nodes {
		if files := stateFiles(t, n); len(files) != 0 {
			t.Errorf("a node wrote local state %v: the store failed over", files)
		}
	}
}

// TestE2EFleetTripOnOneNodeFailsFastOnAnother: the breaker node A opens
// stops node B, which sends no request; a reset from B frees A.
func TestE2EFleetTripOnOneNodeFailsFastOnAnother(t *testing.T) {
	t.Parallel()
	addr := redistest.Start(t)
	store := "redis://" + addr
	var c counter
	srv := downServer(t, &c)
	a, b := fleetNode(t, "node-a", store), fleetNode(t, "node-b", store)

	ra := a.run(args(srv.URL)...)
	ra.wantCode(t, 4)
	if !strings.Contains(ra.stderr, "circuit for "+srv.URL+" opened after 3 consecutive failures") {
		t.Errorf("node A stderr:\n%s", ra.stderr)
	}
	sent := c.get()
	rb := b.run(args(srv.URL + "/another/path")...)
	rb.wantCode(t, 5)
	if c.get() != sent {
		t.Errorf("node B sent a request through a breaker node A opened")
	}
	for _, want := range []string{"circuit open", srv.URL + " is open since", "3 consecutive failures",
		"reset with: refetch breaker reset --store URL '" + srv.URL + "' (URL: this run's --store)"} {
		if !strings.Contains(rb.stderr, want) {
			t.Errorf("node B stderr lacks %q:\n%s", want, rb.stderr)
		}
	}
	rep := b.run(args("--json", srv.URL)...).report(t)
	if rep["exit_code"] != 5.0 || len(rep["attempts"].([]any)) != 0 {
		t.Errorf("node B report = %v", rep)
	}
	// check on node B sees it too.
	b.run(check("--breaker-failures", "3", srv.URL)...).wantCode(t, 8)
	if c.get() != sent {
		t.Errorf("check on node B sent a request through the open breaker")
	}
	for _, n := range []*env{a, b} {
		if files := stateFiles(t, n); len(files) != 0 {
			t.Errorf("local state written: %v", files)
		}
	}
	// The record lives in Redis, under refetch:, with a TTL of
	// max(24h, 2×--breaker-reset).
	rc := redis.NewClient(&redis.Options{Addr: addr})
	defer rc.Close()
	ttl, err := rc.PTTL(context.Background(), redisPrefix+srv.URL).Result()
	if err != nil || ttl <= 23*time.Hour || ttl > 24*time.Hour {
		t.Errorf("PTTL = %v, %v; want about 24h", ttl, err)
	}
	a.run(args("-n", "1", "--breaker-reset", "36h", "--breaker-key", "long", srv.URL)...).wantCode(t, 4)
	if ttl, _ := rc.PTTL(context.Background(), redisPrefix+"long").Result(); ttl <= 71*time.Hour || ttl > 72*time.Hour {
		t.Errorf("PTTL with --breaker-reset 36h = %v; want about 72h", ttl)
	}

	st := statusJSON(t, b, srv.URL)
	if len(st) != 1 || st[0]["state"] != "open" || st[0]["consecutive_failures"] != 3.0 {
		t.Errorf("status from node B = %v", st)
	}
	if local := statusJSON(t, b, "--store", ""); len(local) != 0 {
		t.Errorf("node B's local status = %v, want none", local)
	}
	upper := strings.Replace(srv.URL, "http://", "HTTP://", 1) + "/v1/items?x=1"
	rr := b.run("breaker", "reset", upper)
	rr.wantCode(t, 0)
	if !strings.Contains(rr.stderr, "reset "+srv.URL+": closed") {
		t.Errorf("reset stderr: %q", rr.stderr)
	}
	sent = c.get()
	a.run(args("-n", "1", srv.URL)...).wantCode(t, 4)
	if c.get() != sent+1 {
		t.Errorf("after the reset node A sent %d requests, want 1", c.get()-sent)
	}
}

// storeDown is a way for the store to be unusable during a run.
type storeDown struct {
	name string
	// store returns the --store URL and the secret that must never show.
	store func(t *testing.T) (url, secret string)
	// onRequest runs at the server's first request, if set.
	onRequest func(t *testing.T)
	// op is the store step that fails: read (the first admission) or
	// write (recording the first outcome, once Redis is gone).
	op string
}

// TestE2EFleetStoreDown: with Redis not listening, refusing the password
// or killed mid-run, a run gives one warning, exits as it would without a
// store, and keeps its state in the local state dir; no password shows.
func TestE2EFleetStoreDown(t *testing.T) {
	t.Parallel()
	var killAddr string
	cases := []storeDown{
		{name: "not listening", store: func(t *testing.T) (string, string) {
			return "redis://:unused-pw-4711@" + redistest.DeadAddr(t), "unused-pw-4711"
		}, op: "read"},
		{name: "wrong password", store: func(t *testing.T) (string, string) {
			addr := redistest.StartWith(t, redistest.Options{Password: "the-right-one"})
			return "redis://fleet:Wr0ng-pw-0815@" + addr + "/3", "Wr0ng-pw-0815"
		}, op: "read"},
		// Answers reads, refuses writes: the admission is refused too
		// (its script is flagged as one that may write), so the run
		// works on the local files from its first step.
		{name: "out of memory", store: func(t *testing.T) (string, string) {
			addr := redistest.StartWith(t, redistest.Options{Password: "0om-pw-77"})
			c := redis.NewClient(&redis.Options{Addr: addr, Password: "0om-pw-77"})
			defer c.Close()
			for _, kv := range [][2]string{{"maxmemory-policy", "noeviction"}, {"maxmemory", "1"}} {
				if err := c.ConfigSet(context.Background(), kv[0], kv[1]).Err(); err != nil {
					t.Fatal(err)
				}
			}
			return "redis://:0om-pw-77@" + addr, "0om-pw-77"
		}, op: "read"},
		{name: "killed mid-run", store: func(t *testing.T) (string, string) {
			killAddr = redistest.StartWith(t, redistest.Options{Password: "Kill3d-pw-42"})
			return "redis://:Kill3d-pw-42@" + killAddr, "Kill3d-pw-42"
		}, onRequest: func(t *testing.T) { redistest.Kill(t, killAddr) }, op: "write"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			for _, flags := range [][]string{nil, {"--json"}, {"-v"}} {
				store, secret := tc.store(t)
				var once sync.Once
				srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
					if tc.onRequest != nil {
						once.Do(func() { tc.onRequest(t) })
					}
					http.Error(w, "down", http.StatusServiceUnavailable)
				}))
				defer srv.Close()
				a := append(append([]string{}, flags...), "-n", "2", srv.URL)
				// The same run without a store, against a server like srv.
				want := newEnv(t).run(args(append(append([]string{}, flags...), "-n", "2", downServer(t, nil).URL)...)...)
				e := newEnv(t)
				got := e.run(args(append([]string{"--store", store}, a...)...)...)
				got.wantCode(t, want.code)
				if n := strings.Count(got.stderr, "breaker store"); n != 1 {
					t.Errorf("%v: %d store warnings, want 1:\n%s", flags, n, got.stderr)
				}
				if !strings.Contains(got.stderr, "unavailable ("+tc.op+": ") || !strings.Contains(got.stderr, "using the local state dir") {
					t.Errorf("%v: warning:\n%s", flags, got.stderr)
				}
				if strings.Contains(got.stderr, "circuit breaker disabled") {
					t.Errorf("%v: the breaker stepped aside instead of using local files:\n%s", flags, got.stderr)
				}
				if strings.Contains(got.stderr+got.stdout, secret) {
					t.Errorf("%v: the password shows:\nstdout: %s\nstderr: %s", flags, got.stdout, got.stderr)
				}
				if flags != nil && flags[0] == "--json" {
					rep := got.report(t)
					if rep["exit_code"] != float64(want.code) {
						t.Errorf("report exit_code = %v, want %d", rep["exit_code"], want.code)
					}
				}
				local := statusJSON(t, e)
				if tc.onRequest == nil {
					if len(local) != 1 || local[0]["key"] != srv.URL || local[0]["consecutive_failures"] != 2.0 {
						t.Errorf("%v: local state = %v, want both failures of the run", flags, local)
					}
				} else if len(local) > 1 || (len(local) == 1 && (local[0]["state"] != "closed" || local[0]["consecutive_failures"].(float64) > 1)) {
					// Switched mid-run: the run went on without a
					// breaker rather than mix the two stores' states.
					t.Errorf("%v: local state = %v, want at most the one failure the switch recorded", flags, local)
				}
			}
		})
	}
}

// TestE2EFleetTLS: rediss:// speaks TLS and checks the server's
// certificate against the system roots (here SSL_CERT_FILE).
func TestE2EFleetTLS(t *testing.T) {
	t.Parallel()
	files := redistest.SelfSigned(t)
	addr := redistest.StartWith(t, redistest.Options{TLS: &files})
	store := "rediss://" + addr
	srv := downServer(t, nil)
	trusted := newEnv(t).with("SSL_CERT_FILE="+files.Cert, "SSL_CERT_DIR="+filepath.Dir(files.Cert))
	r := trusted.run(args("-n", "1", "--store", store, srv.URL)...)
	r.wantCode(t, 4)
	if strings.Contains(r.stderr, "warning") {
		t.Errorf("stderr:\n%s", r.stderr)
	}
	if st := statusJSON(t, trusted, "--store", store); len(st) != 1 || st[0]["consecutive_failures"] != 1.0 {
		t.Errorf("status over TLS = %v", st)
	}
	// Without the certificate among the roots: one warning, local state.
	untrusted := newEnv(t).with("SSL_CERT_FILE="+filepath.Join(t.TempDir(), "none.pem"), "SSL_CERT_DIR="+t.TempDir())
	r = untrusted.run(args("-n", "1", "--store", store, srv.URL)...)
	r.wantCode(t, 4)
	if strings.Count(r.stderr, "breaker store rediss://"+addr+" unavailable") != 1 || !strings.Contains(r.stderr, "certificate") {
		t.Errorf("stderr:\n%s", r.stderr)
	}
}

// TestE2EFleetBreakerCommands: status and reset on a Redis store, which
// lists keys exactly as the file store does.
func TestE2EFleetBreakerCommands(t *testing.T) {
	t.Parallel()
	addr := redistest.Start(t)
	store := "redis://" + addr
	srv := downServer(t, nil)
	e := newEnv(t)

	empty := e.run("breaker", "status", "--store", store)
	empty.wantCode(t, 0)
	if strings.TrimSpace(empty.stdout) != "no breakers in "+store {
		t.Errorf("status of an empty store: %q", empty.stdout)
	}

	// The same run against each store leaves the same status.
	local := newEnv(t)
	local.run(args("-n", "1", srv.URL)...).wantCode(t, 4)
	e.run(args("-n", "1", "--store", store, srv.URL)...).wantCode(t, 4)
	fromFiles := local.run("breaker", "status", "--json")
	fromRedis := e.run("breaker", "status", "--json", "--store", store)
	if fromFiles.stdout != fromRedis.stdout || fromRedis.code != 0 {
		t.Errorf("status --json differs:\nfiles: %s\nredis: %s", fromFiles.stdout, fromRedis.stdout)
	}
	table := e.with("REFETCH_STORE="+store).run("breaker", "status")
	if !strings.Contains(table.stdout, "KEY") || !strings.Contains(table.stdout, srv.URL) {
		t.Errorf("status table from REFETCH_STORE:\n%s", table.stdout)
	}

	rc := redis.NewClient(&redis.Options{Addr: addr})
	defer rc.Close()
	for _, key := range []string{"https://never.example/x", "never-seen", "HTTPS://NEVER.EXAMPLE"} {
		r := e.run("breaker", "reset", "--store", store, key)
		r.wantCode(t, 0)
		if !strings.Contains(r.stderr, "no breaker for "+key) || r.stdout != "" {
			t.Errorf("reset %s: stdout %q stderr %q", key, r.stdout, r.stderr)
		}
	}
	if n, _ := rc.DBSize(context.Background()).Result(); n != 1 {
		t.Errorf("Redis holds %d keys after resets of unknown keys, want 1", n)
	}
	e.run(args("-n", "1", "--store", store, "--breaker-key", "second", srv.URL)...).wantCode(t, 4)
	all := e.run("breaker", "reset", "--all", "--store", store)
	all.wantCode(t, 0)
	if !strings.Contains(all.stderr, "reset 2 breakers in "+store) {
		t.Errorf("reset --all: %q", all.stderr)
	}
	if st := statusJSON(t, e, "--store", store); len(st) != 0 {
		t.Errorf("after reset --all: %v", st)
	}

	// A store that does not answer is an error here, not local files.
	dead := "redis://:cmd-pw-77@" + redistest.DeadAddr(t)
	for _, a := range [][]string{{"status"}, {"status", "--json"}, {"reset", "--all"}, {"reset", "k"}} {
		r := e.run(append(append([]string{"breaker"}, a...), "--store", dead)...)
		r.wantCode(t, 1)
		if !strings.Contains(r.stderr, "breaker store redis://127.0.0.1:") || !strings.Contains(r.stderr, "connection refused") ||
			strings.Contains(r.stderr, "cmd-pw-77") || r.stdout != "" {
			t.Errorf("breaker %v on a dead store: stdout %q stderr %q", a, r.stdout, r.stderr)
		}
	}
}

// TestE2EStoreUsageErrors: a --store that is not a Redis URL is exit 2
// before any request, on every command, without showing its password.
func TestE2EStoreUsageErrors(t *testing.T) {
	t.Parallel()
	var c counter
	srv := downServer(t, &c)
	e := newEnv(t)
	const secret = "pw-Secret-9"
	for _, tc := range []struct {
		store string
		want  string
	}{
		{"memcache://x", `unsupported scheme "memcache"`},
		{"redis://:" + secret + "@host:notaport", "invalid port"},
		{"redis://:" + secret + "@host/zero", "invalid database"},
		{"redis://:" + secret + "@host?timeout=fast", "invalid timeout"},
		{"127.0.0.1:6379", "not a URL (want redis://host:port"},
	} {
		for _, a := range [][]string{
			args("--store", tc.store, srv.URL),
			args("--json", "--store", tc.store, srv.URL),
			args("--breaker-failures", "0", "--store", tc.store, srv.URL),
			check("--store", tc.store, srv.URL),
			{"breaker", "status", "--store", tc.store},
			{"breaker", "reset", "--all", "--store", tc.store},
		} {
			r := e.run(a...)
			r.wantCode(t, 2)
			if !strings.Contains(r.stderr, "invalid --store") || !strings.Contains(r.stderr, tc.want) {
				t.Errorf("%v: stderr %q lacks %q", a, r.stderr, tc.want)
			}
			if strings.Contains(r.stderr+r.stdout, secret) {
				t.Errorf("%v: password shows: %s%s", a, r.stdout, r.stderr)
			}
		}
		r := e.with("REFETCH_STORE=" + tc.store).run(args(srv.URL)...)
		r.wantCode(t, 2)
	}
	if c.get() != 0 {
		t.Errorf("%d requests sent with a bad --store", c.get())
	}
	if files := stateFiles(t, e); len(files) != 0 {
		t.Errorf("state written: %v", files)
	}
}

// TestE2EFleetOneHalfOpenTrial: when an open breaker's reset period has
// passed, 8 processes on two nodes race for the trial and exactly one
// request is sent.
func TestE2EFleetOneHalfOpenTrial(t *testing.T) {
	t.Parallel()
	const procs = 8
	addr := redistest.Start(t)
	store := "redis://" + addr + "?timeout=10s"
	var c counter
	srv := downServer(t, &c)
	// An open breaker whose next trial is due (written as another machine
	// would have left it), rather than a wait for a reset period to pass.
	past := time.Now().Add(-time.Minute).UnixMilli()
	setRecord(t, addr, srv.URL, "state", "open", "failures", 3, "gen", 4, "opened_at", past, "retry_at", past, "updated_at", past)
	nodes := []*env{fleetNode(t, "node-a", store), fleetNode(t, "node-b", store)}
	start := make(chan struct{})
	var wg sync.WaitGroup
	codes := make(chan int, procs)
	for i := 0; i < procs; i++ {
		cmd := nodes[i%2].command(args("-q", "-n", "1", srv.URL)...)
		wg.Add(1)
		go func(cmd *exec.Cmd) {
			defer wg.Done()
			<-start
			err := cmd.Run()
			code := 0
			if ee, ok := err.(*exec.ExitError); ok {
				code = ee.ExitCode()
			}
			codes <- code
		}(cmd)
	}
	close(start)
	wg.Wait()
	close(codes)
	count := map[int]int{}
	for code := range codes {
		count[code]++
	}
	if c.get() != 1 || count[4] != 1 || count[5] != procs-1 {
		t.Errorf("%d requests, exit codes %v; want one trial (exit 4) and %d fail-fast runs (exit 5)", c.get(), count, procs-1)
	}
	if st := statusJSON(t, nodes[1], "--store", store); len(st) != 1 || st[0]["state"] != "open" {
		t.Errorf("after the failed trial: %v", st)
	}
}

// TestE2EFleetCheckSharesOneStore: check with several URLs uses one store,
// so a Redis that is down costs one warning, not one per URL.
func TestE2EFleetCheckSharesOneStore(t *testing.T) {
	t.Parallel()
	srv, _ := healthServer(t)
	e := newEnv(t)
	r := e.run(check("--breaker-failures", "3", "--store", "redis://"+redistest.DeadAddr(t),
		srv.URL+"/health", srv.URL+"/created", srv.URL+"/slow")...)
	r.wantCode(t, 0)
	if n := strings.Count(r.stderr, "breaker store"); n != 1 {
		t.Errorf("%d store warnings, want 1:\n%s", n, r.stderr)
	}
}

// TestE2EFleetHoldOnOneNodeHoldsTheOther: a 429 with Retry-After seen by
// node A holds the key for node B too: B waits a short hold out, and
// gives up at once (exit 6, no request) on one beyond --max-retry-after.
func TestE2EFleetHoldOnOneNodeHoldsTheOther(t *testing.T) {
	t.Parallel()
	addr := redistest.Start(t)
	store := "redis://" + addr
	var hits counter
	var retryAfter atomic.Value
	retryAfter.Store("600")
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if n := hits.next(); n == 1 || n == 2 {
			w.Header().Set("Retry-After", retryAfter.Load().(string))
			http.Error(w, "slow down", http.StatusTooManyRequests)
			return
		}
		fmt.Fprint(w, "ok")
	}))
	defer srv.Close()
	a, b := fleetNode(t, "node-a", store), fleetNode(t, "node-b", store)
	a.run(args("-n", "1", srv.URL)...).wantCode(t, 6) // 600s is beyond the default 60s
	r := b.run(args("--json", srv.URL+"/other")...)
	r.wantCode(t, 6)
	if hits.get() != 1 || !strings.Contains(r.stderr, "asked for no requests until") {
		t.Errorf("node B sent %d requests; stderr %s", hits.get()-1, r.stderr)
	}
	if st := statusJSON(t, b, srv.URL); st[0]["hold_until"] == nil {
		t.Errorf("breaker status shows no hold: %v", st)
	}
	if rep := r.report(t); rep["retry_after_ms"].(float64) <= 0 || len(rep["attempts"].([]any)) != 0 {
		t.Errorf("node B report = %v", rep)
	}
	// A short hold: node B waits it out, then succeeds.
	b.run("breaker", "reset", srv.URL).wantCode(t, 0)
	retryAfter.Store("1")
	a.run(args("-n", "1", srv.URL)...).wantCode(t, 4) // the 2nd request: 429, Retry-After: 1
	r = b.run(args("--json", srv.URL)...)
	r.wantCode(t, 0)
	if rep := r.report(t); rep["held_ms"].(float64) <= 0 || !strings.Contains(r.stderr, "waiting") {
		t.Errorf("node B did not wait out the hold: %v\n%s", rep, r.stderr)
	}
}

// TestE2EFleetQuorum: with --breaker-quorum 2, failures from one node do
// not open the breaker, however many; a second node's open it once it has
// reached --breaker-failures too.
func TestE2EFleetQuorum(t *testing.T) {
	t.Parallel()
	addr := redistest.Start(t)
	store := "redis://" + addr
	var c counter
	srv := downServer(t, &c)
	a, b := fleetNode(t, "node-a", store), fleetNode(t, "node-b", store)
	q := []string{"--breaker-quorum", "2", "--breaker-failures", "3"}
	for i := 0; i < 3; i++ {
		a.run(args(append(q, srv.URL)...)...).wantCode(t, 4)
	}
	if st := statusJSON(t, a, srv.URL); st[0]["state"] != "closed" || st[0]["consecutive_failures"] != 9.0 ||
		fmt.Sprint(st[0]["failure_nodes"]) != "[node-a]" {
		t.Fatalf("one node opened it: %v", st)
	}
	// One failure of a second node is not enough (each node must reach
	// --breaker-failures); its third is.
	b.run(args(append(q, "-n", "1", srv.URL)...)...).wantCode(t, 4)
	if st := statusJSON(t, a, srv.URL); st[0]["state"] != "closed" {
		t.Fatalf("one failure of a second node opened it: %v", st)
	}
	r := b.run(args(append(q, "-n", "2", srv.URL)...)...)
	r.wantCode(t, 4)
	if !strings.Contains(r.stderr, "opened after 12 consecutive failures") {
		t.Errorf("node B stderr:\n%s", r.stderr)
	}
	sent := c.get()
	a.run(args(append(q, srv.URL)...)...).wantCode(t, 5)
	if c.get() != sent {
		t.Error("a request went through the quorum-opened breaker")
	}
	// A bad quorum is a usage error.
	a.run(args("--breaker-quorum", "0", srv.URL)...).wantCode(t, 2)
}

// TestE2EResetHintAfterFailover: when the store could not be used and the
// run fell back to the local state dir, the open breaker is there, so the
// "reset with" hint names that dir (and keeps REFETCH_STORE from sending
// the reset elsewhere); following it closes the breaker.
func TestE2EResetHintAfterFailover(t *testing.T) {
	t.Parallel()
	down := downServer(t, nil)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	store := "redis://" + l.Addr().String() + "/0" // refused: nothing listens
	l.Close()
	e := newEnv(t).with("REFETCH_STORE=" + store)
	dir := filepath.Join(e.dir, "state-here")
	e.run(args("--state-dir", dir, "--breaker-failures", "1", "-n", "1", down.URL)...).wantCode(t, 4)
	r := e.run(args("--state-dir", dir, "-n", "1", down.URL)...)
	r.wantCode(t, 5)
	hint := "reset with: REFETCH_STORE= refetch breaker reset --state-dir '" + dir + "' '" + down.URL + "'"
	if !strings.Contains(r.stderr, hint) {
		t.Fatalf("stderr does not give the local reset:\n%s\nwant %s", r.stderr, hint)
	}
	e.with("REFETCH_STORE=").run("breaker", "reset", "--state-dir", dir, down.URL).wantCode(t, 0)
	e.run(args("--state-dir", dir, "-n", "1", down.URL)...).wantCode(t, 4) // tried again: closed
}
