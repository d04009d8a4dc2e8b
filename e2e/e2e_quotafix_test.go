package e2e

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/refetch/refetch/internal/redistest"
)

// TestE2ERateAutoRollsTheKnownWindow: a server enforcing 3 requests per
// 2 s window, saying so (RateLimit-Policy q=3;w=2), and eight workers:
// after one learning request, --rate auto -P 8 over 12 URLs meets no 429,
// on the state dir and on Redis. Each reset starts the next window of
// the known limit in the store (3 slots spread over it), so the workers
// do not all fire at the reset and find the quota spent.
func TestE2ERateAutoRollsTheKnownWindow(t *testing.T) {
	t.Parallel()
	addr := redistest.Start(t)
	for _, storeName := range []string{"files", "redis"} {
		storeName := storeName
		t.Run(storeName, func(t *testing.T) {
			t.Parallel()
			q := &quotaServer{dialect: "ietf", quota: 3, window: 2 * time.Second, anchored: true}
			srv := newQuotaServer(t, q)
			e := newEnv(t)
			if storeName == "redis" {
				e = fleetNode(t, "node", "redis://"+addr+"?timeout=5s")
			}
			e.run(args("--rate", "auto", srv.URL+"/first")...).wantCode(t, 0)
			var lines []string
			for j := 0; j < 12; j++ {
				lines = append(lines, fmt.Sprintf("%s/%d", srv.URL, j))
			}
			list := filepath.Join(e.dir, "urls")
			if err := os.WriteFile(list, []byte(strings.Join(lines, "\n")+"\n"), 0o600); err != nil {
				t.Fatal(err)
			}
			r := e.run(args("--rate", "auto", "--max-retry-after", "30s", "-P", "8", "-i", list,
				"-o", filepath.Join(e.dir, "out-{n}"))...)
			requests, rejected, _ := q.counts()
			t.Logf("%d requests, %d refused", requests, rejected)
			r.wantCode(t, 0)
			if requests != 13 || rejected != 0 {
				t.Fatalf("%d requests, %d refused; want 13 and none\n%s", requests, rejected, r.stderr)
			}
		})
	}
}

// quotaOnce answers 200 advertising a spent quota (the headers kv), then
// counts.
func quotaOnce(t *testing.T, c *counter, status int, kv ...string) *httptest.Server {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c.next()
		for i := 0; i < len(kv); i += 2 {
			w.Header().Set(kv[i], kv[i+1])
		}
		w.WriteHeader(status)
		fmt.Fprintln(w, "ok")
	}))
	t.Cleanup(srv.Close)
	return srv
}

// hoursIn finds the hours of the first duration "NhMmSs" in s.
var hoursIn = regexp.MustCompile(`\b(\d+)h\d+m\d+s\b`)

// TestE2EQuotaResetBeyondADayIsCapped: a reset a year off (one bad
// header) holds the next run for a day at most, not a year; probe --rate
// auto, which has no --max-retry-after, ends with exit 6 and a line
// saying why instead of waiting.
func TestE2EQuotaResetBeyondADayIsCapped(t *testing.T) {
	t.Parallel()
	var c counter
	srv := quotaOnce(t, &c, 200, "X-RateLimit-Remaining", "0", "X-RateLimit-Reset", "31535990")
	e := newEnv(t)
	e.run(args(srv.URL)...).wantCode(t, 0)
	r := e.run(args(srv.URL)...)
	r.wantCode(t, 6)
	m := hoursIn.FindStringSubmatch(r.stderr)
	if m == nil || (m[1] != "23" && m[1] != "24") || c.get() != 1 {
		t.Fatalf("%d requests; stderr %s: want a hold of a day and no request", c.get(), r.stderr)
	}
	// probe --rate auto: learns the spent quota, then stops at once.
	var pc counter
	psrv := quotaOnce(t, &pc, 200, "RateLimit-Policy", `"default";q=5;w=31000000`, "RateLimit", `"default";r=0`)
	p := newEnv(t).run("probe", "--rate", "auto", "-n", "3", "--interval", "10ms", psrv.URL)
	p.wantCode(t, 6)
	if pc.get() != 1 || !strings.Contains(p.stderr, "the server's quota for this caller is spent until") ||
		!strings.Contains(p.stderr, "longer than probe waits (1m0s") {
		t.Fatalf("%d requests; stderr %s", pc.get(), p.stderr)
	}
}

// TestE2EQuotaMessages: the lines a spent quota makes say what happened:
// a hold beyond --max-time names --max-time; a 429 with only X-RateLimit
// headers claims no Retry-After; -v logs the quota.
func TestE2EQuotaMessages(t *testing.T) {
	t.Parallel()
	var c counter
	srv := quotaOnce(t, &c, 200, "RateLimit-Policy", `"default";q=100;w=60`, "RateLimit", `"default";r=0;t=50`)
	e := newEnv(t)
	first := e.run(args("-v", srv.URL)...)
	first.wantCode(t, 0)
	if !strings.Contains(first.stderr, "quota: 0 of 100 left per 1m0s, resets in 50s (RateLimit, policy \"default\")") {
		t.Errorf("-v lacks the quota line:\n%s", first.stderr)
	}
	r := e.run(args("--max-time", "10s", srv.URL)...)
	r.wantCode(t, 6)
	if !strings.Contains(r.stderr, "--max-time") || strings.Contains(r.stderr, "1m0s") || c.get() != 1 {
		t.Errorf("held past --max-time: %d requests, stderr %s", c.get(), r.stderr)
	}
	var c2 counter
	only := quotaOnce(t, &c2, 429, "X-RateLimit-Limit", "5", "X-RateLimit-Remaining", "0", "X-RateLimit-Reset", "1")
	r2 := newEnv(t).run(args("-n", "2", "--breaker-failures", "0", only.URL)...)
	if strings.Contains(r2.stderr, "Retry-After") || !strings.Contains(r2.stderr, "the server's quota for this caller resets then") {
		t.Errorf("429 with X-RateLimit only: stderr %s", r2.stderr)
	}
}

// TestE2EQuotaBeyondTheLimitEndsAtOnce: a 429 whose Retry-After is short
// and whose quota resets past --max-retry-after ends at once, exit 6,
// saying the quota (a tour saw "retrying in 2s", a wait, then exit 6);
// check, held by that quota, says it is a quota, not "the server asked
// to retry after".
func TestE2EQuotaBeyondTheLimitEndsAtOnce(t *testing.T) {
	t.Parallel()
	var c counter
	srv := quotaOnce(t, &c, 429, "Retry-After", "2", "X-RateLimit-Limit", "5", "X-RateLimit-Remaining", "0", "X-RateLimit-Reset", "300")
	e := newEnv(t)
	r := e.run(args("-n", "3", "--json", srv.URL)...)
	r.wantCode(t, 6)
	if c.get() != 1 || strings.Contains(r.stderr, "retrying in") || !strings.Contains(r.stderr, "the server's quota for this caller is spent until") {
		t.Errorf("%d requests, stderr %s", c.get(), r.stderr)
	}
	if att := r.report(t)["attempts"].([]any); len(att) != 1 || att[0].(map[string]any)["wait_ms"] != 0.0 {
		t.Errorf("attempts: %v", att)
	}
	// check with a breaker, which keeps the hold: its one answer says
	// the quota, not a Retry-After.
	r = newEnv(t).run("check", "--breaker-failures", "3", srv.URL)
	r.wantCode(t, 8)
	if c.get() != 2 || !strings.Contains(r.stdout, "the server's quota for this caller is spent for 5m0s") || strings.Contains(r.stdout, "asked to retry") {
		t.Errorf("check: %d requests, stdout %s", c.get(), r.stdout)
	}
	// Without a breaker nothing holds the retry: the Retry-After is
	// waited and the retry goes (a review caught the early end there).
	r = newEnv(t).run(args("-n", "2", "--breaker-failures", "0", srv.URL)...)
	r.wantCode(t, 4)
	if c.get() != 4 || !strings.Contains(r.stderr, "retrying in 2s") {
		t.Errorf("no breaker: %d requests, stderr %s", c.get(), r.stderr)
	}
}

// TestE2EBreakerStatusShowsTheRateAsGiven: an origin with a rate and no
// breaker record: status does not say "no breakers" above its table,
// and shows --rate 1/m as 1/m.
func TestE2EBreakerStatusShowsTheRateAsGiven(t *testing.T) {
	t.Parallel()
	var c counter
	srv := quotaOnce(t, &c, 200)
	e := newEnv(t)
	e.run(args("--breaker-failures", "0", "--rate", "1/m", srv.URL)...).wantCode(t, 0)
	r := e.run("breaker", "status")
	r.wantCode(t, 0)
	if strings.Contains(r.stdout, "no breakers in") || !strings.Contains(r.stdout, "no breaker records in ") ||
		!strings.Contains(r.stdout, "1/m burst 1") || strings.Contains(r.stdout, "0.01667") {
		t.Fatalf("breaker status:\n%s", r.stdout)
	}
	list := statusJSON(t, e)
	if rate, _ := list[0]["rate"].(map[string]any); len(list) != 1 || rate["rate"] != "1/m" {
		t.Fatalf("status --json = %v", list)
	}
}

// TestE2ERateFlagMessages: the bad values issue 23's tour found.
func TestE2ERateFlagMessages(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	for _, tc := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"--retry-budget", "%"}, 2, "--retry-budget"},
		{[]string{"--rate", "99999999999999999999/s"}, 2, "too large"},
	} {
		r := e.run(args(append(tc.args, "http://127.0.0.1:9/")...)...)
		if r.code != tc.code || !strings.Contains(r.stderr, tc.want) || strings.Count(strings.TrimSpace(r.stderr), "\n") != 0 {
			t.Errorf("%v: exit %d, stderr %q", tc.args, r.code, r.stderr)
		}
	}
	var c counter
	srv := quotaOnce(t, &c, 200)
	r := e.run(args("--rate-burst", "3", srv.URL)...)
	r.wantCode(t, 0)
	if !strings.Contains(r.stderr, "--rate-burst 3 does nothing without --rate") {
		t.Errorf("stderr %q", r.stderr)
	}
}
