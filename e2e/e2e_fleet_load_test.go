//go:build unix

package e2e

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/refetch/refetch/internal/redistest"
)

// Fleet mode under its own load, a far Redis, a hung one, a sick node and
// skewed words: issue 21's cases, each against a real redis-server.

// batchInput writes n URLs of srv (distinct paths, one host) to a file.
func batchInput(t *testing.T, srv *httptest.Server, n int) string {
	t.Helper()
	var b strings.Builder
	for i := 0; i < n; i++ {
		fmt.Fprintf(&b, "%s/item/%d\n", srv.URL, i)
	}
	path := filepath.Join(t.TempDir(), "urls.txt")
	if err := os.WriteFile(path, []byte(b.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// redisField reads one field of a key's record in Redis.
func redisField(t *testing.T, addr, key, field string) string {
	t.Helper()
	rc := redis.NewClient(&redis.Options{Addr: addr})
	defer rc.Close()
	v, _ := rc.HGet(context.Background(), redisPrefix+key, field).Result()
	return v
}

// TestE2EFleetBatchOwnWritersKeepRedis: 600 failures recorded by one
// -P 64 batch all land in Redis (no failover: contention inside one
// process is not an outage); another node's failures then meet the
// quorum, and this node's next batch fails fast without a request.
func TestE2EFleetBatchOwnWritersKeepRedis(t *testing.T) {
	t.Parallel()
	addr := redistest.Start(t)
	store := "redis://" + addr + "?timeout=10s"
	var c counter
	srv := downServer(t, &c)
	input := batchInput(t, srv, 600)
	a, b := fleetNode(t, "node-a", store), fleetNode(t, "node-b", store)
	q := []string{"-n", "1", "--breaker-quorum", "2", "-P", "64", "-q"}
	r := a.run(args(append(q, "-i", input)...)...)
	r.wantCode(t, 9)
	if strings.Contains(r.stderr, "unavailable") || len(stateFiles(t, a)) != 0 {
		t.Fatalf("the batch gave up its store:\n%s", r.stderr)
	}
	if got := redisField(t, addr, srv.URL, "n:node-a"); got != "600" {
		t.Fatalf("Redis counted %s of node-a's 600 failures", got)
	}
	// Node B reaches the threshold too: the quorum opens it.
	b.run(args("-n", "3", "--breaker-quorum", "2", srv.URL)...).wantCode(t, 4)
	if st := redisField(t, addr, srv.URL, "state"); st != "open" {
		t.Fatalf("state after the quorum = %q", st)
	}
	sent := c.get()
	r = a.run(args(append(q, "--json", "-i", input)...)...)
	r.wantCode(t, 9)
	for _, rep := range jsonLines(t, r.stdout) {
		if code(rep) != 5 {
			t.Fatalf("a URL exited %d, want 5 (circuit open): %v", code(rep), rep)
		}
	}
	if c.get() != sent {
		t.Errorf("%d requests went through the open breaker", c.get()-sent)
	}
}

// TestE2EFleetFarRedisPoolScales: with Redis 15 ms away each way, a -P 64
// batch keeps 64 steps in flight (its pool scales with -P; the pool wait
// is not the 200 ms store timeout), and nothing fails over. (How much
// faster than -P 8 is a benchmark's to say: bench/fleet.)
func TestE2EFleetFarRedisPoolScales(t *testing.T) {
	t.Parallel()
	far := redistest.NewFar(t, redistest.Start(t), 15*time.Millisecond)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { fmt.Fprint(w, "ok") }))
	defer srv.Close()
	input := batchInput(t, srv, 300)
	e := fleetNode(t, "node-a", "redis://"+far.Addr)
	r := e.run(args("-P", "64", "-q", "-o", filepath.Join(t.TempDir(), "{n}"), "-i", input)...)
	r.wantCode(t, 0)
	if strings.Contains(r.stderr, "unavailable") {
		t.Fatalf("a far Redis was given up:\n%s", r.stderr)
	}
	if far.Peak() < 33 {
		t.Errorf("at most %d connections to Redis at once: the pool does not scale with -P 64", far.Peak())
	}
}

// TestE2EFleetHungRedis: a Redis stopped with SIGSTOP accepts connections
// and answers nothing. With a store timeout longer than the run, the
// store gets a quarter of what is left of --max-time, then the run goes
// on with the local files: exit codes as without --store, one warning.
func TestE2EFleetHungRedis(t *testing.T) {
	t.Parallel()
	addr := redistest.Start(t)
	redistest.Pause(t, addr)
	store := "redis://" + addr + "?timeout=1h"
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { fmt.Fprint(w, "fine") }))
	defer srv.Close()
	e := fleetNode(t, "node-a", store)

	r := e.run("fetch", "--max-time", "4s", srv.URL)
	r.wantCode(t, 0)
	if r.stdout != "fine" || strings.Count(r.stderr, "unavailable") != 1 || !strings.Contains(r.stderr, "a quarter of the time left") {
		t.Errorf("fetch: stdout %q, stderr:\n%s", r.stdout, r.stderr)
	}
	r = e.run("fetch", "--max-time", "4s", "-P", "4", "-o", filepath.Join(t.TempDir(), "{n}"), "-i", batchInput(t, srv, 8))
	r.wantCode(t, 0)
	if strings.Count(r.stderr, "unavailable") != 1 {
		t.Errorf("batch: want one warning:\n%s", r.stderr)
	}
	r = e.run("check", "--max-time", "4s", "--breaker-failures", "3", srv.URL)
	r.wantCode(t, 0)
	// A down server behind a hung store: the same code as without one.
	down := downServer(t, nil)
	want := newEnv(t).run(args("--max-time", "4s", "-n", "2", down.URL)...)
	e.run(args("--max-time", "4s", "-n", "2", down.URL)...).wantCode(t, want.code)
}

// TestE2EFleetSickNodeCannotLockTheFleetOut: with --breaker-quorum 2, a
// node whose network is broken runs up failures; one 503 on a healthy
// node does not open the breaker. Opened by two nodes and due for a
// trial, the sick node's failed trials leave it half-open, and a healthy
// node's trial closes it.
func TestE2EFleetSickNodeCannotLockTheFleetOut(t *testing.T) {
	t.Parallel()
	addr := redistest.Start(t)
	store := "redis://" + addr
	var healthy atomic.Bool
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if healthy.Load() {
			fmt.Fprint(w, "ok")
			return
		}
		http.Error(w, "down", http.StatusServiceUnavailable)
	}))
	defer srv.Close()
	q := []string{"--breaker-quorum", "2", "--breaker-failures", "3", "--breaker-key", "api"}
	sick, good := fleetNode(t, "sick", store), fleetNode(t, "good", store)
	// The sick node cannot reach anything: connection refused.
	dead := "http://" + redistest.DeadAddr(t)
	sick.run(args(append(q, "-n", "9", dead)...)...).wantCode(t, 4)
	good.run(args(append(q, "-n", "1", srv.URL)...)...).wantCode(t, 4)
	if st := redisField(t, addr, "api", "state"); st != "closed" {
		t.Fatalf("one sick node and one 503 opened the breaker: %q", st)
	}
	// An open breaker whose trial is due, after both nodes failed.
	past := time.Now().Add(-time.Minute).UnixMilli()
	setRecord(t, addr, "api", "state", "open", "gen", 7, "failures", 12, "n:sick", 9, "n:good", 3,
		"opened_at", past, "retry_at", past, "updated_at", past)
	for i := 0; i < 3; i++ {
		r := sick.run(args(append(q, "-n", "1", dead)...)...)
		r.wantCode(t, 4)
		if st := redisField(t, addr, "api", "state"); st != "half-open" {
			t.Fatalf("the sick node's failed trial %d made it %q", i+1, st)
		}
	}
	healthy.Store(true)
	r := good.run(append(q, "fetch", srv.URL)...)
	r.wantCode(t, 0)
	if st := redisField(t, addr, "api", "state"); st != "closed" {
		t.Errorf("the healthy node's trial left it %q:\n%s", st, r.stderr)
	}
}

// TestE2EFleetHoldsPerIdentity: one node's 429 with Retry-After: 3600 for
// its own API key holds back that key everywhere (exit 6, no request) but
// not another key's runs, on any node.
func TestE2EFleetHoldsPerIdentity(t *testing.T) {
	t.Parallel()
	addr := redistest.Start(t)
	store := "redis://" + addr
	var c counter
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c.next()
		if r.Header.Get("X-Api-Key") == "k1" || r.URL.Query().Get("api_key") == "q1" {
			w.Header().Set("Retry-After", "3600")
			http.Error(w, "slow down", http.StatusTooManyRequests)
			return
		}
		fmt.Fprint(w, "ok")
	}))
	defer srv.Close()
	a, b := fleetNode(t, "node-a", store), fleetNode(t, "node-b", store)
	a.run(args("-H", "X-Api-Key: k1", srv.URL)...).wantCode(t, 6)
	sent := c.get()
	b.run(args("-H", "X-Api-Key: k1", srv.URL)...).wantCode(t, 6)
	if c.get() != sent {
		t.Error("node B sent a request under k1's hold")
	}
	r := b.run(args("-H", "X-Api-Key: k2", srv.URL)...)
	r.wantCode(t, 0)
	a.run(args(srv.URL)...).wantCode(t, 0)
	// A key in the query string is a caller too (a tour found ?api_key=q1's
	// hold holding ?api_key=q2 and callers with no key).
	a.run(args(srv.URL+"/?api_key=q1")...).wantCode(t, 6)
	b.run(args(srv.URL+"/?api_key=q1")...).wantCode(t, 6)
	b.run(args(srv.URL+"/?api_key=q2")...).wantCode(t, 0)
	b.run(args(srv.URL)...).wantCode(t, 0)
	// The hold counts from the server's clock: it ends about an hour
	// after Redis's now, whatever the node's clock said.
	rc := redis.NewClient(&redis.Options{Addr: addr})
	defer rc.Close()
	now, _ := rc.Time(context.Background()).Result()
	fields, _ := rc.HGetAll(context.Background(), redisPrefix+"http://"+strings.TrimPrefix(srv.URL, "http://")).Result()
	holds := 0
	for name, v := range fields {
		if strings.HasPrefix(name, "h:") {
			holds++
			var ms int64
			fmt.Sscan(v, &ms)
			if d := time.UnixMilli(ms).Sub(now); d > time.Hour || d < 59*time.Minute {
				t.Errorf("hold ends %v after the server's now, want about 1h", d)
			}
		}
	}
	if holds != 2 {
		t.Errorf("%d holds recorded, want k1's and q1's alone: %v", holds, fields)
	}
}

// TestE2EFleetForwardCompatibleRecord: a record a newer version wrote,
// with a field this one does not know, is listed, used and kept.
func TestE2EFleetForwardCompatibleRecord(t *testing.T) {
	t.Parallel()
	addr := redistest.Start(t)
	store := "redis://" + addr
	srv := downServer(t, nil)
	setRecord(t, addr, srv.URL, "state", "closed", "gen", 2, "failures", 2, "n:node-a", 2, "x:newer", "kept")
	e := fleetNode(t, "node-a", store)
	st := statusJSON(t, e, "--store", store)
	if len(st) != 1 || st[0]["key"] != srv.URL || st[0]["consecutive_failures"] != 2.0 {
		t.Fatalf("status = %v", st)
	}
	r := e.run(args("-n", "1", srv.URL)...)
	r.wantCode(t, 4)
	if !strings.Contains(r.stderr, "opened after 3 consecutive failures") || strings.Contains(r.stderr, "unreadable") {
		t.Errorf("stderr:\n%s", r.stderr)
	}
	if v := redisField(t, addr, srv.URL, "x:newer"); v != "kept" {
		t.Errorf("the unknown field became %q", v)
	}
}

// TestE2EFleetSwitchMidRunIsNotACircuit: a run whose Redis dies between
// two attempts, on a machine whose local state dir holds an old open
// breaker for the key, neither stops at that breaker nor blames a circuit:
// it ends as a run without the breaker would (exit 4, retries exhausted).
func TestE2EFleetSwitchMidRunIsNotACircuit(t *testing.T) {
	t.Parallel()
	addr := redistest.Start(t)
	var c counter
	var armed atomic.Bool
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if c.next() == 1 && armed.Load() {
			redistest.Kill(t, addr) // after this run's first admission
		}
		http.Error(w, "down", http.StatusServiceUnavailable)
	}))
	defer srv.Close()
	e := fleetNode(t, "node-a", "redis://"+addr)
	// The local state dir's old open breaker, from a run without --store.
	e.run(args("--store", "", "--breaker-key", "api", "-n", "3", srv.URL)...).wantCode(t, 4)
	if st := statusJSON(t, e, "--store", "", "api"); st[0]["state"] != "open" {
		t.Fatalf("local breaker %v", st)
	}
	c.n.Store(0)
	armed.Store(true)
	r := e.run(args("--breaker-key", "api", "-n", "3", srv.URL)...)
	r.wantCode(t, 4)
	if strings.Contains(r.stderr, "circuit") || c.get() != 3 || strings.Count(r.stderr, "unavailable") != 1 {
		t.Errorf("%d requests; stderr:\n%s", c.get(), r.stderr)
	}
}
