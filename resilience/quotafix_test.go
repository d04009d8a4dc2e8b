package resilience

import (
	"context"
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/refetch/refetch/resilience/store"
)

// A quota reset further than a day (a bad header, or a monthly quota)
// holds for a day, the bound a Retry-After has, not for a year.
func TestQuotaResetBeyondADayHoldsForADay(t *testing.T) {
	for name, kv := range map[string][]string{
		"x-ratelimit": {"X-RateLimit-Remaining", "0", "X-RateLimit-Reset", "31535990"},
		"ietf":        {"RateLimit-Policy", `"default";q=5;w=31000000`, "RateLimit", `"default";r=0`},
	} {
		t.Run(name, func(t *testing.T) {
			st := &FileStore{Dir: filepath.Join(t.TempDir(), "state")}
			ex, clock, _ := newExec(fixed(1, time.Second))
			ex.Breaker = mustBreaker(t, Settings{Key: "http://h:80", Failures: 5, Store: st})
			fn, _ := script(clock, 0, withHeader(status(200), kv...))
			if _, err := ex.Run(context.Background(), "GET", fn); err != nil {
				t.Fatal(err)
			}
			p := fixed(1, time.Second)
			p.MaxRetryAfter = 0 // no bound: the run waits what the hold says
			var waits []time.Duration
			ex2 := &Executor{Policy: p, Classify: ClassifyPolicy, Clock: clock, NewTimer: fakeTimerFactory(clock, &waits),
				Breaker: mustBreaker(t, Settings{Key: "http://h:80", Failures: 5, Store: st})}
			fn2, calls := script(clock, 0, status(200))
			if _, err := ex2.Run(context.Background(), "GET", fn2); err != nil || *calls != 1 || len(waits) != 1 || waits[0] != MaxRetryAfter {
				t.Fatalf("err %v, calls %d, waits %v; want one wait of %s", err, *calls, waits, MaxRetryAfter)
			}
		})
	}
}

// A hold refused because of MaxTime says so, with the time left, and not
// the longest wait allowed (which it is within).
func TestHoldPastTheDeadlineSaysTheTimeLeft(t *testing.T) {
	st := &FileStore{Dir: filepath.Join(t.TempDir(), "state")}
	ex, clock, _ := newExec(fixed(1, time.Second))
	ex.Breaker = mustBreaker(t, Settings{Key: "http://h:80", Failures: 5, Store: st})
	fn, _ := script(clock, 0, withHeader(status(200), "RateLimit", `"p";r=0;t=50`))
	if _, err := ex.Run(context.Background(), "GET", fn); err != nil {
		t.Fatal(err)
	}
	p := fixed(1, time.Second)
	p.MaxTime = 10 * time.Second
	ex2 := &Executor{Policy: p, Classify: ClassifyPolicy, Clock: clock,
		Breaker: mustBreaker(t, Settings{Key: "http://h:80", Failures: 5, Store: st})}
	fn2, calls := script(clock, 0, status(200))
	_, err := ex2.Run(context.Background(), "GET", fn2)
	var re *RunError
	if !errors.As(err, &re) || re.Reason != ReasonHeld || !re.PastDeadline || re.Left != 10*time.Second || *calls != 0 {
		t.Fatalf("err %v (%+v), calls %d", err, re, *calls)
	}
	msg := err.Error()
	if !strings.Contains(msg, "beyond the time left (10s of the time limit of 10s)") || strings.Contains(msg, "1m0s") ||
		!strings.Contains(msg, "server asked to retry after 50s (a Retry-After or a spent quota an earlier run recorded)") {
		t.Fatalf("message %q", msg)
	}
}

// A 429 whose only word is a spent quota (no Retry-After) is told as a
// quota: the retry says the quota resets then, and a reset beyond the
// longest wait ends the run saying the quota is spent.
func TestSpentQuotaWithoutRetryAfterIsWordedAsAQuota(t *testing.T) {
	ex, clock, _ := newExec(fixed(2, time.Second))
	var infos []RetryInfo
	ex.OnRetry = func(i RetryInfo) { infos = append(infos, i) }
	fn, _ := script(clock, 0, withHeader(status(429), "X-RateLimit-Remaining", "0", "X-RateLimit-Reset", "5"), status(200))
	if _, err := ex.Run(context.Background(), "GET", fn); err != nil {
		t.Fatal(err)
	}
	if len(infos) != 1 || !infos[0].QuotaReset || infos[0].RetryAfter != 5*time.Second {
		t.Fatalf("retries %+v: want one told as a quota reset of 5s", infos)
	}
	p := fixed(2, time.Second)
	p.MaxRetryAfter = 2 * time.Second
	ex2 := &Executor{Policy: p, Classify: ClassifyPolicy, Clock: clock}
	fn2, _ := script(clock, 0, withHeader(status(429), "X-RateLimit-Remaining", "0", "X-RateLimit-Reset", "5"))
	_, err := ex2.Run(context.Background(), "GET", fn2)
	var re *RunError
	if !errors.As(err, &re) || !re.Quota || re.PastDeadline || re.Limit != 2*time.Second {
		t.Fatalf("err %v (%+v)", err, re)
	}
	if msg := err.Error(); !strings.Contains(msg, "the server's quota for this caller is spent until") || strings.Contains(msg, "asked to retry") ||
		!strings.Contains(msg, "beyond the longest wait allowed (2s)") {
		t.Fatalf("message %q", msg)
	}
}

// A hold the run recorded itself (Retry-After 1s, quota reset 5s) is
// waited out as this run's, not as an earlier run's.
func TestOwnHoldIsTheRunsOwn(t *testing.T) {
	st := &FileStore{Dir: filepath.Join(t.TempDir(), "state")}
	ex, clock, _ := newExec(fixed(2, time.Second))
	ex.Breaker = mustBreaker(t, Settings{Key: "http://h:80", Failures: 5, Store: st})
	var holds []HoldInfo
	ex.OnHold = func(h HoldInfo) { holds = append(holds, h) }
	fn, _ := script(clock, 0, withHeader(status(429), "Retry-After", "1", "X-RateLimit-Remaining", "0", "X-RateLimit-Reset", "5"), status(200))
	if _, err := ex.Run(context.Background(), "GET", fn); err != nil {
		t.Fatal(err)
	}
	if len(holds) != 1 || !holds[0].Own || !holds[0].Quota {
		t.Fatalf("holds %+v: want one, the run's own spent quota", holds)
	}
	// The next run's hold is an earlier run's.
	ex2, _, _ := newExec(fixed(1, time.Second))
	var waits []time.Duration
	ex2.Clock, ex2.NewTimer = clock, fakeTimerFactory(clock, &waits)
	ex2.Breaker = mustBreaker(t, Settings{Key: "http://h:80", Failures: 5, Store: st})
	holds = nil
	ex2.OnHold = func(h HoldInfo) { holds = append(holds, h) }
	fn2, _ := script(clock, 0, withHeader(status(429), "X-RateLimit-Remaining", "0", "X-RateLimit-Reset", "60"))
	ex2.Run(context.Background(), "GET", fn2)
	ex3 := &Executor{Policy: fixed(1, time.Second), Classify: ClassifyPolicy, Clock: clock, NewTimer: fakeTimerFactory(clock, &waits),
		Breaker: mustBreaker(t, Settings{Key: "http://h:80", Failures: 5, Store: st})}
	holds = nil
	ex3.OnHold = func(h HoldInfo) { holds = append(holds, h) }
	fn3, _ := script(clock, 0, status(200))
	if _, err := ex3.Run(context.Background(), "GET", fn3); err != nil || len(holds) != 1 || holds[0].Own {
		t.Fatalf("err %v, holds %+v: want one hold, an earlier run's", err, holds)
	}
}

// stuckTimer never fires: a wait on it ends only with the run.
type stuckTimer struct{ c chan time.Time }

func (t *stuckTimer) Start(time.Duration) {}
func (t *stuckTimer) Stop()               {}
func (t *stuckTimer) C() <-chan time.Time { return t.c }

// A run cut off while it waits for its rate slot gives the slot back:
// the next caller's slot is where it would be had the run never been.
func TestCutRateWaitGivesTheSlotBack(t *testing.T) {
	for name, mk := range map[string]func(t *testing.T) store.Limiter{
		"files": func(t *testing.T) store.Limiter { return &store.FileStore{Dir: filepath.Join(t.TempDir(), "state")} },
		"redis": func(t *testing.T) store.Limiter { return newRedis(t) },
	} {
		t.Run(name, func(t *testing.T) {
			s := mk(t)
			clock := newFakeClock()
			rate := &Rate{Interval: time.Minute, Burst: 1}
			hog := newLimits(t, s, rate, nil)
			if d, _ := hog.rate(context.Background(), clock.Now(), -1); !d.Reserved {
				t.Fatal("the first slot was not free")
			}
			ctx, cancel := context.WithCancelCause(context.Background())
			defer cancel(nil)
			ex := &Executor{Policy: fixed(1, 0), Classify: ClassifyPolicy, Clock: clock,
				NewTimer: func() Timer { return &stuckTimer{c: make(chan time.Time)} }, Limits: newLimits(t, s, rate, nil)}
			ex.OnRateWait = func(RateWaitInfo) { cancel(errors.New("SIGINT")) }
			fn, calls := script(clock, 0, status(200))
			if _, err := ex.Run(ctx, "GET", fn); err == nil || *calls != 0 {
				t.Fatalf("err %v, calls %d: want cut off before sending", err, *calls)
			}
			// The cut run's slot (+1m) is free again: the next one is a
			// minute away, not two.
			if d, _ := hog.rate(context.Background(), clock.Now(), 0); d.Reserved || d.Wait != time.Minute {
				t.Fatalf("next slot: reserved %v, wait %s; want a minute", d.Reserved, d.Wait)
			}
		})
	}
}
