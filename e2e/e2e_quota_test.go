package e2e

import (
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/refetch/refetch/internal/redistest"
)

// Quotas the server advertises (issue 23, part 2): a server that enforces
// a quota per window and says so, in one of three dialects, on a clock
// that may be off; refetch must not meet a 429 once it has been told the
// quota is spent, across processes sharing the store.

// quotaServer enforces quota requests per window, windows of its own
// clock (the real one plus skew): aligned to the Unix epoch, or (anchored)
// starting at its first request. Past the quota it answers 429; every
// answer advertises what remains, in dialect ("ietf", "x-delta",
// "x-epoch"), with a Date of its clock.
type quotaServer struct {
	dialect  string
	skew     time.Duration
	quota    int
	window   time.Duration
	anchored bool

	mu        sync.Mutex
	start     time.Time
	used      map[int64]int
	rejected  int
	exhausted int // answers that said nothing remains
	// arrivals are the requests' times on the server's clock.
	arrivals []time.Time
}

func newQuotaServer(t *testing.T, q *quotaServer) *httptest.Server {
	q.used = map[int64]int{}
	srv := httptest.NewServer(q)
	t.Cleanup(srv.Close)
	return srv
}

// windowOf is the index of the window now falls in, and its end.
func (q *quotaServer) windowOf(now time.Time) (int64, time.Time) {
	if q.anchored {
		if q.start.IsZero() {
			q.start = now
		}
		i := int64(now.Sub(q.start) / q.window)
		return i, q.start.Add(time.Duration(i+1) * q.window)
	}
	i := now.UnixNano() / int64(q.window)
	return i, time.Unix(0, (i+1)*int64(q.window))
}

func (q *quotaServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	q.mu.Lock()
	now := time.Now().Add(q.skew)
	q.arrivals = append(q.arrivals, now)
	i, end := q.windowOf(now)
	status := http.StatusOK
	if q.used[i] >= q.quota {
		status = http.StatusTooManyRequests
		q.rejected++
	} else {
		q.used[i]++
	}
	left := q.quota - q.used[i]
	if left == 0 {
		q.exhausted++
	}
	q.mu.Unlock()
	h := w.Header()
	h.Set("Date", now.UTC().Format(http.TimeFormat))
	// Seconds left, rounded up: a server never says less than it means.
	delta := strconv.FormatInt(int64(math.Ceil(end.Sub(now).Seconds())), 10)
	switch q.dialect {
	case "ietf":
		h.Set("RateLimit-Policy", fmt.Sprintf(`"default";q=%d;w=%d`, q.quota, int(q.window/time.Second)))
		h.Set("RateLimit", fmt.Sprintf(`"default";r=%d;t=%s`, left, delta))
	case "x-delta":
		h.Set("X-RateLimit-Limit", strconv.Itoa(q.quota))
		h.Set("X-RateLimit-Remaining", strconv.Itoa(left))
		h.Set("X-RateLimit-Reset", delta)
	case "x-epoch":
		// GitHub's form, in its case: the reset as a Unix time of the
		// server's clock, rounded up.
		h["X-Ratelimit-Limit"] = []string{strconv.Itoa(q.quota)}
		h["X-Ratelimit-Remaining"] = []string{strconv.Itoa(left)}
		h["X-Ratelimit-Reset"] = []string{strconv.FormatInt(int64(math.Ceil(float64(end.UnixNano())/1e9)), 10)}
	}
	w.WriteHeader(status)
	fmt.Fprintln(w, "ok")
}

func (q *quotaServer) counts() (requests, rejected, exhausted int) {
	q.mu.Lock()
	defer q.mu.Unlock()
	return len(q.arrivals), q.rejected, q.exhausted
}

// TestE2EQuotaDialects: for each dialect, with the server's clock right,
// 30s behind and 30s ahead, on the state dir and on Redis: processes one
// after another, each a batch of three URLs or a single fetch, fetch
// eight URLs from a server allowing 2 requests per 2-second window. Every
// fetch succeeds, and the server answers no 429 at all: each process
// learns from the store that the quota is spent (a batch's second
// request already does) and waits for the reset, which it reads by the
// server's own Date, so neither skew sends early or waits past
// --max-retry-after.
func TestE2EQuotaDialects(t *testing.T) {
	t.Parallel()
	addr := redistest.Start(t)
	for _, dialect := range []string{"ietf", "x-delta", "x-epoch"} {
		for _, skew := range []time.Duration{0, -30 * time.Second, 30 * time.Second} {
			for _, storeName := range []string{"files", "redis"} {
				dialect, skew, storeName := dialect, skew, storeName
				t.Run(fmt.Sprintf("%s skew %s %s", dialect, skew, storeName), func(t *testing.T) {
					t.Parallel()
					q := &quotaServer{dialect: dialect, skew: skew, quota: 2, window: 2 * time.Second}
					srv := newQuotaServer(t, q)
					shared := newEnv(t)
					node := func(i int) *env {
						if storeName == "redis" {
							// Every process its own machine: only Redis is shared.
							return fleetNode(t, fmt.Sprint("node-", i), "redis://"+addr+"?timeout=5s")
						}
						return shared
					}
					urls := 0
					for i := 0; urls < 8; i++ {
						e := node(i)
						a := []string{"--max-retry-after", "10s", "--max-time", "60s"}
						if i%2 == 0 {
							list := filepath.Join(e.dir, fmt.Sprint("urls-", i))
							body := fmt.Sprintf("%[1]s/%[2]d/a\n%[1]s/%[2]d/b\n%[1]s/%[2]d/c\n", srv.URL, i)
							if err := os.WriteFile(list, []byte(body), 0o600); err != nil {
								t.Fatal(err)
							}
							a = append(a, "-P", "1", "-i", list, "-o", filepath.Join(e.dir, "out-{n}"))
							urls += 3
						} else {
							a = append(a, fmt.Sprintf("%s/%d", srv.URL, i))
							urls++
						}
						r := e.run(args(a...)...)
						r.wantCode(t, 0)
					}
					requests, rejected, exhausted := q.counts()
					if rejected != 0 || requests != urls {
						t.Fatalf("%d requests for %d URLs, %d answered 429", requests, urls, rejected)
					}
					if exhausted == 0 {
						t.Fatal("the quota was never spent: the test tested nothing")
					}
				})
			}
		}
	}
}

// TestE2EQuotaExhaustedBeyondMaxRetryAfter: a quota spent until a reset
// further off than --max-retry-after: the next process sends nothing and
// ends with exit 6, as for a Retry-After that long; a Date 30s ahead does
// not make a reset 20s away look like 50s.
func TestE2EQuotaExhaustedBeyondMaxRetryAfter(t *testing.T) {
	t.Parallel()
	q := &quotaServer{dialect: "x-epoch", skew: 30 * time.Second, quota: 1, window: time.Hour, anchored: true}
	srv := newQuotaServer(t, q)
	e := newEnv(t)
	e.run(args(srv.URL)...).wantCode(t, 0)
	r := e.run(args("--json", "--max-retry-after", "10s", srv.URL)...)
	r.wantCode(t, 6)
	if n, _, _ := q.counts(); n != 1 {
		t.Fatalf("%d requests, want 1", n)
	}
	rep := r.report(t)
	if !strings.Contains(fmt.Sprint(rep["error"]), "asked for no requests until") {
		t.Fatalf("report: %v", rep)
	}
}

// TestE2EQuotaBadValues: a server's nonsense (a reset in 50 years, a
// negative or huge count, an unterminated string) never holds a run for
// ever: the runs go on by their own backoff, and end.
func TestE2EQuotaBadValues(t *testing.T) {
	t.Parallel()
	for _, h := range [][]string{
		{"X-RateLimit-Remaining", "0", "X-RateLimit-Reset", strconv.FormatInt(time.Now().Add(50*365*24*time.Hour).Unix(), 10)},
		{"X-RateLimit-Remaining", "-1", "X-RateLimit-Reset", "30"},
		{"X-RateLimit-Remaining", "99999999999999999999999", "X-RateLimit-Reset", "1e9"},
		{"RateLimit", `"default;r=0;t=30`},
		{"RateLimit", `"default";r=0;t=99999999999999999999`},
	} {
		var c counter
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			c.next()
			for i := 0; i < len(h); i += 2 {
				w.Header()[h[i]] = []string{h[i+1]}
			}
			w.WriteHeader(http.StatusTooManyRequests)
		}))
		e := newEnv(t)
		r := e.run(args("-n", "3", "--rate", "auto", "--max-retry-after", "5s", srv.URL)...)
		srv.Close()
		r.wantCode(t, 4)
		if c.get() != 3 {
			t.Errorf("%v: %d requests, want 3", h, c.get())
		}
	}
}

// TestE2ERateAutoSpreadsTheQuota: --rate auto spreads what the server
// says remains over the rest of its window instead of spending it at once.
// The server allows 8 requests per 4-second window from its first request;
// one fetch learns the quota, then two processes with -P 2 and 14 URLs
// between them ask for more than it allows. By the server's count, the
// first half of the first window saw at most what an even spread allows
// (the learning request, and 7 spread over 4 seconds: at most 4 in the
// first 2), where a burst would have spent all 8; and no request was
// refused in any window. For each dialect, on Redis and on the state dir.
func TestE2ERateAutoSpreadsTheQuota(t *testing.T) {
	t.Parallel()
	addr := redistest.Start(t)
	for _, dialect := range []string{"ietf", "x-delta", "x-epoch"} {
		for _, storeName := range []string{"files", "redis"} {
			dialect, storeName := dialect, storeName
			t.Run(dialect+" "+storeName, func(t *testing.T) {
				t.Parallel()
				const quota, window = 8, 4 * time.Second
				q := &quotaServer{dialect: dialect, quota: quota, window: window, anchored: true}
				srv := newQuotaServer(t, q)
				shared := newEnv(t)
				node := func(name string) *env {
					if storeName == "redis" {
						return fleetNode(t, name, "redis://"+addr+"?timeout=5s")
					}
					return shared
				}
				node("learner").run(args("--rate", "auto", srv.URL+"/first")...).wantCode(t, 0)
				var wg sync.WaitGroup
				results := make([]result, 2)
				for i := range results {
					e := node(fmt.Sprint("node-", i))
					var lines []string
					for j := 0; j < 7; j++ {
						lines = append(lines, fmt.Sprintf("%s/%d/%d", srv.URL, i, j))
					}
					list := filepath.Join(e.dir, fmt.Sprint("urls-", i))
					if err := os.WriteFile(list, []byte(strings.Join(lines, "\n")+"\n"), 0o600); err != nil {
						t.Fatal(err)
					}
					wg.Add(1)
					go func(i int, e *env) {
						defer wg.Done()
						results[i] = e.run(args("--rate", "auto", "--max-retry-after", "30s", "-P", "2", "-i", list,
							"-o", filepath.Join(e.dir, fmt.Sprintf("out-%d-{n}", i)))...)
					}(i, e)
				}
				wg.Wait()
				for i, r := range results {
					if r.code != 0 {
						t.Fatalf("process %d: exit %d\n%s", i, r.code, r.stderr)
					}
				}
				q.mu.Lock()
				defer q.mu.Unlock()
				perHalf := map[int64]int{}
				for _, at := range q.arrivals {
					perHalf[int64(at.Sub(q.start)/(window/2))]++
				}
				t.Logf("requests per half window: %v; %d refused", perHalf, q.rejected)
				if len(q.arrivals) != 15 || q.rejected != 0 {
					t.Fatalf("%d requests, %d refused; want 15 and none", len(q.arrivals), q.rejected)
				}
				if perHalf[0] > 1+(quota-1)/2+1 {
					t.Fatalf("%d requests in the first half of the window: not spread (%v)", perHalf[0], perHalf)
				}
			})
		}
	}
}

// TestE2EQuotaStatusAndReset: a learned quota shows in breaker status (the
// table and --json, without the identity) and reset clears it, on the
// state dir and on Redis; with Redis down the state dir keeps it after
// the one failover warning.
func TestE2EQuotaStatusAndReset(t *testing.T) {
	t.Parallel()
	addr := redistest.Start(t)
	for _, e := range []*env{newEnv(t), fleetNode(t, "node-a", "redis://"+addr)} {
		q := &quotaServer{dialect: "ietf", quota: 100, window: time.Hour, anchored: true}
		srv := newQuotaServer(t, q)
		e.run(args("--rate", "auto", "-H", "Authorization: Bearer s3cret-token", srv.URL)...).wantCode(t, 0)
		list := statusJSON(t, e)
		if len(list) != 1 || list[0]["key"] != srv.URL {
			t.Fatalf("status --json = %v", list)
		}
		quotas, _ := list[0]["quotas"].([]any)
		if len(quotas) != 1 {
			t.Fatalf("status --json = %v", list)
		}
		got := quotas[0].(map[string]any)
		if got["limit"] != 100.0 || got["remaining"] != 99.0 || got["window_ms"] != 3.6e6 || got["policy"] != "default" {
			t.Fatalf("quota = %v", got)
		}
		r := e.run("breaker", "status")
		r.wantCode(t, 0)
		if !strings.Contains(r.stdout, "QUOTA") || !strings.Contains(r.stdout, "99 of 100 left per 1h") || strings.Contains(r.stdout, "s3cret") {
			t.Fatalf("status:\n%s", r.stdout)
		}
		raw, _ := json.Marshal(list)
		if strings.Contains(string(raw), "s3cret") {
			t.Fatalf("status --json shows the credential: %s", raw)
		}
		e.run("breaker", "reset", srv.URL).wantCode(t, 0)
		if list := statusJSON(t, e); len(list) != 0 {
			t.Fatalf("after reset: %v", list)
		}
	}
	t.Run("redis down", func(t *testing.T) {
		q := &quotaServer{dialect: "x-delta", quota: 100, window: time.Hour, anchored: true}
		srv := newQuotaServer(t, q)
		e := newEnv(t)
		r := e.run(args("--store", "redis://"+redistest.DeadAddr(t), "--rate", "auto", srv.URL)...)
		r.wantCode(t, 0)
		if n := strings.Count(r.stderr, "warning"); n != 1 || !strings.Contains(r.stderr, "using the local state dir") {
			t.Fatalf("want one failover warning:\n%s", r.stderr)
		}
		files, _ := filepath.Glob(filepath.Join(e.dir, "state", "refetch", "*.quota"))
		if len(files) != 1 {
			t.Fatalf("quota files %v", files)
		}
	})
}
