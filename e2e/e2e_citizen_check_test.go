package e2e

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"sort"
	"strings"
	"testing"
	"time"
)

// --rate and --retry-budget on check and probe (issue 23).

// TestE2ECheckRate: three URLs of one origin checked at once with --rate
// 2/s take the origin's slots one after another: two of them wait, and
// --json says how long; stderr says why.
func TestE2ECheckRate(t *testing.T) {
	t.Parallel()
	srv, c := healthServer(t)
	e := newEnv(t)
	r := e.run(check("--json", "--rate", "2/s", srv.URL+"/health", srv.URL+"/created", srv.URL+"/health")...)
	r.wantCode(t, 0)
	rep := r.report(t)
	var waits []float64
	for _, res := range rep["results"].([]any) {
		w, _ := res.(map[string]any)["rate_wait_ms"].(float64)
		waits = append(waits, w)
	}
	sort.Float64s(waits)
	if len(waits) != 3 || waits[0] != 0 || waits[1] <= 0 || waits[2] <= waits[1] || c.get() != 3 {
		t.Fatalf("rate waits %v, %d requests; report %v", waits, c.get(), rep)
	}
	if !strings.Contains(r.stderr, "for a request slot (--rate)") {
		t.Fatalf("stderr:\n%s", r.stderr)
	}
	// The slots are the store's: after one check with 1/h, the next slot
	// is an hour off, past --wait: the check ends unhealthy, sending
	// nothing, and says why.
	e.run(check("--rate", "1/h", srv.URL+"/health")...).wantCode(t, 0)
	r = e.run(check("--json", "--rate", "1/h", "--wait", "30s", srv.URL+"/health")...)
	r.wantCode(t, 8)
	rep = r.report(t)
	if rep["healthy"] != false || !strings.Contains(fmt.Sprint(rep), "--rate") || c.get() != 4 {
		t.Fatalf("a slot an hour off: %d requests, report %v\n%s", c.get(), rep, r.stderr)
	}
}

// TestE2ECheckRetryBudget: check against a server that always answers
// 503 with --retry-budget: the first check may retry (the 3 a minute), the
// second's retry is refused and its verdict says why.
func TestE2ECheckRetryBudget(t *testing.T) {
	t.Parallel()
	var c counter
	srv := downServer(t, &c)
	e := newEnv(t)
	a := check("--json", "-n", "4", "--breaker-failures", "0", "--retry-budget", "20%", srv.URL)
	e.run(a...).wantCode(t, 8)
	if c.get() != 4 {
		t.Fatalf("first check: %d requests, want 4", c.get())
	}
	r := e.run(a...)
	r.wantCode(t, 8)
	if c.get() != 5 {
		t.Fatalf("second check: %d requests in all, want 5", c.get())
	}
	res := r.report(t)["results"].([]any)[0].(map[string]any)
	if res["attempts"] != 1.0 || !strings.Contains(fmt.Sprint(res["failed"]), "retry budget spent (--retry-budget)") {
		t.Fatalf("result %v", res)
	}
}

// TestE2EProbeRate: a probe with --rate keeps to the origin's rate, shared
// through the store with fetch: a fetch took the origin's first slot of
// 2/s, so every request of the probe, its first too, waits for its own
// (the report says how long); bad values are usage errors.
func TestE2EProbeRate(t *testing.T) {
	t.Parallel()
	var c counter
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { c.next() }))
	t.Cleanup(srv.Close)
	e := newEnv(t)
	e.run(args("--rate", "2/s", srv.URL)...).wantCode(t, 0)
	r := e.run(probeArgs("--json", "-n", "3", "--rate", "2/s", srv.URL)...)
	r.wantCode(t, 0)
	samples := r.report(t)["samples"].([]any)
	for i, s := range samples {
		if w, _ := s.(map[string]any)["rate_wait_ms"].(float64); w <= 0 {
			t.Fatalf("sample %d waited %vms for its slot; samples %v", i+1, w, samples)
		}
	}
	if len(samples) != 3 || c.get() != 4 {
		t.Fatalf("%d samples, %d requests", len(samples), c.get())
	}
	// Bad values: one line, exit 2, no request.
	for _, a := range [][]string{{"--rate", "fast"}, {"--rate-burst", "0", "--rate", "1/s"}, {"--store", "http://x", "--rate", "1/s"}} {
		r := e.run(probeArgs(append(a, srv.URL)...)...)
		r.wantCode(t, 2)
		if strings.Count(strings.TrimSpace(r.stderr), "\n") != 0 || !strings.Contains(r.stderr, a[0]) {
			t.Errorf("%v: stderr %q", a, r.stderr)
		}
	}
	if c.get() != 4 {
		t.Fatalf("%d requests after bad values", c.get())
	}
}

// TestE2EProbeRateAuto: a probe with --rate auto learns the server's quota
// and spreads what remains: by the server's count, no request is refused
// though the probe asks for more than the window allows at its interval.
func TestE2EProbeRateAuto(t *testing.T) {
	t.Parallel()
	q := &quotaServer{dialect: "x-delta", quota: 3, window: 2 * time.Second, anchored: true}
	srv := newQuotaServer(t, q)
	e := newEnv(t)
	r := e.run(probeArgs("--json", "-n", "6", "--rate", "auto", srv.URL)...)
	r.wantCode(t, 0)
	requests, rejected, _ := q.counts()
	if requests != 6 || rejected != 0 {
		t.Fatalf("%d requests, %d refused; stderr:\n%s", requests, rejected, r.stderr)
	}
	if !strings.Contains(r.stderr, "for a request slot (--rate)") {
		t.Fatalf("stderr:\n%s", r.stderr)
	}
}

// TestE2ECheckRateAuto: check with --rate auto, four URLs of a server
// allowing 2 requests per 2-second window: only the first requests, sent
// together before any answer told the quota, can meet a 429; from then on
// every URL waits for the reset the server advertised, and all end
// healthy.
func TestE2ECheckRateAuto(t *testing.T) {
	t.Parallel()
	q := &quotaServer{dialect: "ietf", quota: 2, window: 2 * time.Second, anchored: true}
	srv := newQuotaServer(t, q)
	e := newEnv(t)
	var urls []string
	for i := 0; i < 4; i++ {
		urls = append(urls, fmt.Sprintf("%s/%d", srv.URL, i))
	}
	r := e.run(check(append([]string{"--rate", "auto", "--wait", "60s"}, urls...)...)...)
	r.wantCode(t, 0)
	requests, rejected, _ := q.counts()
	if rejected > len(urls)-q.quota || requests != len(urls)+rejected {
		t.Fatalf("%d requests, %d refused; stderr:\n%s", requests, rejected, r.stderr)
	}
}
