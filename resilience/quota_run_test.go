package resilience

import (
	"context"
	"errors"
	"net/http"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/refetch/refetch/resilience/store"
)

// withHeader is a at with the header kv.
func withHeader(a Attempt, kv ...string) Attempt {
	a.Header = http.Header{}
	for i := 0; i < len(kv); i += 2 {
		a.Header.Set(kv[i], kv[i+1])
	}
	return a
}

// Each dialect's exhausted quota, read against a server clock 30s off
// either way: the next run (another process on the store) holds until
// the reset, sends nothing before it, and one whose --max-retry-after is
// shorter ends rate-limited without a request.
func TestExhaustedQuotaHoldsTheNextRunUntilTheReset(t *testing.T) {
	for _, skew := range []time.Duration{0, -30 * time.Second, 30 * time.Second} {
		for name, headers := range map[string]func(now time.Time) []string{
			"ietf": func(time.Time) []string {
				return []string{"RateLimit-Policy", `"default";q=5;w=60`, "RateLimit", `"default";r=0;t=30`}
			},
			"x-ratelimit delta": func(time.Time) []string {
				return []string{"X-RateLimit-Limit", "5", "X-RateLimit-Remaining", "0", "X-RateLimit-Reset", "30"}
			},
			"x-ratelimit epoch": func(server time.Time) []string {
				return []string{"X-RateLimit-Remaining", "0", "X-RateLimit-Reset", strconv.FormatInt(server.Add(30*time.Second).Unix(), 10)}
			},
		} {
			t.Run(name+" skew "+skew.String(), func(t *testing.T) {
				st := &FileStore{Dir: filepath.Join(t.TempDir(), "state")}
				newBreaker := func() *Breaker { return mustBreaker(t, Settings{Key: "http://h:80", Failures: 5, Store: st}) }
				ex, clock, _ := newExec(fixed(1, time.Second))
				ex.Breaker = newBreaker()
				server := clock.Now().Add(skew)
				kv := append(headers(server), "Date", server.Format(http.TimeFormat))
				fn, _ := script(clock, 0, withHeader(status(200), kv...))
				if _, err := ex.Run(context.Background(), "GET", fn); err != nil {
					t.Fatal(err)
				}
				// A run whose --max-retry-after is shorter sends nothing.
				p := fixed(1, time.Second)
				p.MaxRetryAfter = 10 * time.Second
				ex2 := &Executor{Policy: p, Classify: ClassifyPolicy, Clock: clock, Breaker: newBreaker()}
				fn2, calls := script(clock, 0, status(200))
				_, err := ex2.Run(context.Background(), "GET", fn2)
				var re *RunError
				if !errors.Is(err, ErrRateLimited) || !errors.As(err, &re) || re.Reason != ReasonHeld || re.RetryAfter != 30*time.Second || *calls != 0 {
					t.Fatalf("short --max-retry-after: err %v, calls %d", err, *calls)
				}
				// One that may wait waits the whole 30s, then sends.
				ex3, _, _ := newExec(fixed(1, time.Second))
				var waits []time.Duration
				ex3.Clock, ex3.NewTimer, ex3.Breaker = clock, fakeTimerFactory(clock, &waits), newBreaker()
				tr, err := ex3.Run(context.Background(), "GET", fn2)
				if err != nil || *calls != 1 || len(waits) != 1 || waits[0] != 30*time.Second || tr.Held != 30*time.Second {
					t.Fatalf("err %v, calls %d, waits %v, held %s", err, *calls, waits, tr.Held)
				}
			})
		}
	}
}

// A quota with something left holds nothing.
func TestQuotaWithSomethingLeftHoldsNothing(t *testing.T) {
	st := &FileStore{Dir: filepath.Join(t.TempDir(), "state")}
	ex, clock, _ := newExec(fixed(1, time.Second))
	ex.Breaker = mustBreaker(t, Settings{Key: "http://h:80", Failures: 5, Store: st})
	fn, _ := script(clock, 0, withHeader(status(200), "X-RateLimit-Remaining", "1", "X-RateLimit-Reset", "30"))
	ex.Run(context.Background(), "GET", fn)
	if recs, _ := st.List(context.Background()); len(recs) != 0 && len(recs[0].Holds) != 0 {
		t.Fatalf("holds %v", recs[0].Holds)
	}
}

// A 429 with an exhausted quota and no Retry-After is retried after the
// reset, not after the backoff: the reset is the server's Retry-After.
func TestExhausted429WithoutRetryAfterWaitsForTheReset(t *testing.T) {
	ex, clock, waits := newExec(fixed(2, time.Second))
	fn, calls := script(clock, 0, withHeader(status(429), "RateLimit", `"p";r=0;t=7`), status(200))
	tr, err := ex.Run(context.Background(), "GET", fn)
	if err != nil || *calls != 2 || len(*waits) != 1 || (*waits)[0] != 7*time.Second || tr.RetryAfter != 7*time.Second {
		t.Fatalf("err %v, calls %d, waits %v", err, *calls, *waits)
	}
}

// A server's garbage (a reset in 11 years, a negative count) holds
// nothing and retries by the backoff.
func TestQuotaGarbageHoldsNothing(t *testing.T) {
	for _, kv := range [][]string{
		{"X-RateLimit-Remaining", "0", "X-RateLimit-Reset", strconv.FormatInt(time.Now().Add(11*365*24*time.Hour).Unix(), 10)},
		{"X-RateLimit-Remaining", "-3", "X-RateLimit-Reset", "30"},
		{"RateLimit", `"p";r=0;t=-5`},
		{"RateLimit", `"p";r=0`},
	} {
		st := &FileStore{Dir: filepath.Join(t.TempDir(), "state")}
		ex, clock, waits := newExec(fixed(2, time.Second))
		ex.Breaker = mustBreaker(t, Settings{Key: "http://h:80", Failures: 5, Store: st})
		fn, calls := script(clock, 0, withHeader(status(429), kv...), status(200))
		if _, err := ex.Run(context.Background(), "GET", fn); err != nil || *calls != 2 || len(*waits) != 1 || (*waits)[0] != time.Second {
			t.Fatalf("%v: err %v, calls %d, waits %v", kv, err, *calls, *waits)
		}
	}
}

// --rate auto: what the server says remains is spread over the rest of
// its window, across runs sharing the store, and an exhausted quota holds
// the run until the reset (with or without a breaker).
func TestRateAutoSpreadsTheLearnedQuota(t *testing.T) {
	st := &store.FileStore{Dir: filepath.Join(t.TempDir(), "state")}
	clock := newFakeClock()
	// The server: 3 left, resetting 3s after the first run.
	resetAt := clock.Now().Add(3 * time.Second)
	var waits []time.Duration
	run := func() *Trace {
		t.Helper()
		ex := &Executor{Policy: fixed(1, time.Second), Classify: ClassifyPolicy, Clock: clock, NewTimer: fakeTimerFactory(clock, &waits),
			Limits: &Limits{Store: st, Origin: "http://h:80", Auto: true, Identity: "id",
				Warn: func(err error) { t.Errorf("warning: %v", err) }}}
		left := strconv.Itoa(int(max(resetAt.Sub(clock.Now()), 0) / time.Second))
		fn, _ := script(clock, 0, withHeader(status(200), "RateLimit", `"w";r=3;t=`+left))
		tr, err := ex.Run(context.Background(), "GET", fn)
		if err != nil {
			t.Fatal(err)
		}
		return tr
	}
	run() // learns: 3 left over 3s
	var rateWaits, held []time.Duration
	for i := 0; i < 4; i++ {
		tr := run()
		rateWaits, held = append(rateWaits, tr.RateWait), append(held, tr.Held)
	}
	want := "[0s 1s 1s 0s] [0s 0s 0s 1s]"
	if got := fmtDurations(rateWaits) + " " + fmtDurations(held); got != want {
		t.Fatalf("rate waits, holds = %s, want %s", got, want)
	}
}

func fmtDurations(ds []time.Duration) string {
	s := "["
	for i, d := range ds {
		if i > 0 {
			s += " "
		}
		s += d.String()
	}
	return s + "]"
}
