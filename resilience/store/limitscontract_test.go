package store

import (
	"context"
	"fmt"
	"math/rand"
	"path/filepath"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/refetch/refetch/internal/redistest"
)

// testLimits is the contract of the per-origin rate and retry budget
// (limits.go), run by TestStores against every store.
func testLimits(t *testing.T, mk func(t *testing.T) Store) {
	now := contractNow
	ctx := context.Background()
	limiter := func(t *testing.T) Limiter {
		l, ok := mk(t).(Limiter)
		if !ok {
			t.Fatal("the store is not a Limiter")
		}
		return l
	}
	rate := func(t *testing.T, l Limiter, p RateParams, at time.Time, reserved bool, wait time.Duration) {
		t.Helper()
		d, err := l.Rate(ctx, p, at)
		if err != nil {
			t.Fatal(err)
		}
		if d.Reserved != reserved || d.Wait != wait {
			t.Fatalf("Rate(%+v) at +%s = %+v, want reserved %v, wait %s", p, at.Sub(now), d, reserved, wait)
		}
	}
	budget := func(t *testing.T, l Limiter, p BudgetParams, at time.Time) bool {
		t.Helper()
		d, err := l.Budget(ctx, p, at)
		if err != nil {
			t.Fatal(err)
		}
		if p.Kind == BudgetFirst && !d.Allowed {
			t.Fatalf("a first attempt was refused: %+v", d)
		}
		return d.Allowed
	}

	t.Run("rate: GCRA spaces requests and reserves only what the caller can wait", func(t *testing.T) {
		l := limiter(t)
		p := RateParams{Origin: "https://a.test:443", Interval: 50 * time.Millisecond, Burst: 1, MaxWait: -1}
		rate(t, l, p, now, true, 0)
		rate(t, l, p, now, true, 50*time.Millisecond)
		rate(t, l, p, now.Add(10*time.Millisecond), true, 90*time.Millisecond)
		short := p
		short.MaxWait = 120 * time.Millisecond
		// The next slot is at +150ms: beyond the caller's wait, so
		// nothing is reserved, and asking again says the same.
		rate(t, l, short, now, false, 150*time.Millisecond)
		// A refund gives back the last reservation only: the next
		// caller's slot is then where the refunded one was.
		d, err := l.Rate(ctx, p, now.Add(10*time.Millisecond))
		if err != nil || !d.Reserved || d.Wait != 140*time.Millisecond || d.TAT == 0 {
			t.Fatalf("Rate = %+v, %v", d, err)
		}
		stale := p
		stale.TAT = d.TAT - int64(p.Interval/time.Microsecond)
		if ok, err := l.RefundRate(ctx, stale, now.Add(20*time.Millisecond)); ok || err != nil {
			t.Fatalf("RefundRate of a slot reserved before the last = %v, %v; want false", ok, err)
		}
		p.TAT, p.PrevTAT, p.PrevInterval = d.TAT, d.PrevTAT, d.PrevInterval
		if ok, err := l.RefundRate(ctx, p, now.Add(20*time.Millisecond)); !ok || err != nil {
			t.Fatalf("RefundRate = %v, %v; want true", ok, err)
		}
		if ok, err := l.RefundRate(ctx, p, now.Add(20*time.Millisecond)); ok || err != nil {
			t.Fatalf("RefundRate twice = %v, %v; want false", ok, err)
		}
		// The next caller takes the slot given back, and gives it back too.
		if d, err = l.Rate(ctx, p, now.Add(20*time.Millisecond)); err != nil || !d.Reserved || d.Wait != 130*time.Millisecond {
			t.Fatalf("Rate after the refund = %+v, %v; want the slot at +150ms", d, err)
		}
		if p.TAT, p.PrevTAT, p.PrevInterval = d.TAT, d.PrevTAT, d.PrevInterval; !mustRefund(t, l, p, now.Add(20*time.Millisecond)) {
			t.Fatal("the second refund failed")
		}
		p.TAT = 0
		rate(t, l, short, now, false, 150*time.Millisecond)
		rate(t, l, p, now, true, 150*time.Millisecond)
		// Another origin is not slowed.
		rate(t, l, RateParams{Origin: "https://b.test:443", Interval: 50 * time.Millisecond, Burst: 1}, now, true, 0)
		// Idle time does not bank more than the burst.
		later := now.Add(time.Minute)
		rate(t, l, p, later, true, 0)
		rate(t, l, p, later, true, 50*time.Millisecond)
	})

	t.Run("rate: a slow caller never holds a fast one, nor a fast one a slow one", func(t *testing.T) {
		// A tour's 1/h run pushed the origin's TAT an hour on, and every
		// 10/s run then waited that hour.
		l := limiter(t)
		slow := RateParams{Origin: "https://m.test:443", Interval: time.Hour, Burst: 1, MaxWait: -1}
		fast := RateParams{Origin: "https://m.test:443", Interval: 100 * time.Millisecond, Burst: 1, MaxWait: -1}
		rate(t, l, slow, now, true, 0)
		rate(t, l, fast, now, true, 100*time.Millisecond)
		rate(t, l, fast, now, true, 200*time.Millisecond)
		// The slow caller after the fast ones: the smaller interval.
		rate(t, l, slow, now, true, 300*time.Millisecond)
		// Its own next request in a row keeps its own interval.
		rate(t, l, slow, now, true, 300*time.Millisecond+time.Hour)
		// And a fast caller then waits for that slot plus its interval:
		// every request is at least the fastest interval from the last.
		rate(t, l, fast, now, true, 400*time.Millisecond+time.Hour)
	})

	t.Run("rate: a refund puts the record back as it was, interval too", func(t *testing.T) {
		// A review's 1/h run sent, a 10/s run reserved and was cut, and
		// the refund left the 10/s interval in the record: the 1/h run's
		// next request then waited 100 ms, not the hour.
		l := limiter(t)
		slow := RateParams{Origin: "https://r.test:443", Interval: time.Hour, Burst: 1, MaxWait: -1}
		fast := RateParams{Origin: "https://r.test:443", Interval: 100 * time.Millisecond, Burst: 1, MaxWait: -1}
		rate(t, l, slow, now, true, 0)
		d, err := l.Rate(ctx, fast, now)
		if err != nil || !d.Reserved {
			t.Fatalf("Rate = %+v, %v", d, err)
		}
		fast.TAT, fast.PrevTAT, fast.PrevInterval = d.TAT, d.PrevTAT, d.PrevInterval
		if !mustRefund(t, l, fast, now) {
			t.Fatal("the refund failed")
		}
		rate(t, l, slow, now, true, time.Hour)
	})

	t.Run("rate: a burst goes at once, then the interval", func(t *testing.T) {
		l := limiter(t)
		p := RateParams{Origin: "https://a.test:443", Interval: 100 * time.Millisecond, Burst: 3, MaxWait: -1}
		for i := 0; i < 3; i++ {
			rate(t, l, p, now, true, 0)
		}
		rate(t, l, p, now, true, 100*time.Millisecond)
		p.MaxWait = 0
		rate(t, l, p, now, false, 200*time.Millisecond)
	})

	t.Run("rate: concurrent callers each get their own slot", func(t *testing.T) {
		l := limiter(t)
		p := RateParams{Origin: "https://a.test:443", Interval: 10 * time.Millisecond, Burst: 1, MaxWait: -1}
		const n = 40
		var (
			mu    sync.Mutex
			waits []time.Duration
			wg    sync.WaitGroup
		)
		for i := 0; i < n; i++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				d, err := l.Rate(ctx, p, now)
				if err != nil || !d.Reserved {
					t.Errorf("Rate = %+v, %v", d, err)
				}
				mu.Lock()
				waits = append(waits, d.Wait)
				mu.Unlock()
			}()
		}
		wg.Wait()
		sort.Slice(waits, func(i, j int) bool { return waits[i] < waits[j] })
		for i, w := range waits {
			if w != time.Duration(i)*10*time.Millisecond {
				t.Fatalf("waits %v: slot %d taken twice or skipped", waits, i)
			}
		}
	})

	t.Run("budget: min plus a share of first attempts, over a sliding window", func(t *testing.T) {
		l := limiter(t)
		first := BudgetParams{Origin: "https://a.test:443", Kind: BudgetFirst, Percent: 20, Min: 3, Window: time.Minute}
		retry := first
		retry.Kind = BudgetRetry
		for i := 0; i < 10; i++ {
			budget(t, l, first, now)
		}
		// 3 + 20% of 10 = 5 retries.
		for i := 0; i < 5; i++ {
			if !budget(t, l, retry, now.Add(time.Second)) {
				t.Fatalf("retry %d refused within the budget", i+1)
			}
		}
		if budget(t, l, retry, now.Add(time.Second)) {
			t.Fatal("a sixth retry was allowed")
		}
		// Another origin has its own budget.
		other := retry
		other.Origin = "https://b.test:443"
		if !budget(t, l, other, now) {
			t.Fatal("another origin's retry was refused")
		}
		// The next bucket starts: the previous one still weighs fully.
		if budget(t, l, retry, now.Add(time.Minute)) {
			t.Fatal("a retry was allowed as the window slid by nothing")
		}
		// Half way: 5 first attempts and 2.5 retries count: 2.5+1 <= 3+1.
		if !budget(t, l, retry, now.Add(90*time.Second)) {
			t.Fatal("a retry was refused half a window later")
		}
		// Long after: the minimum alone, 3 a window.
		later := now.Add(10 * time.Minute)
		for i := 0; i < 3; i++ {
			if !budget(t, l, retry, later) {
				t.Fatalf("retry %d of the minimum refused", i+1)
			}
		}
		if budget(t, l, retry, later) {
			t.Fatal("a retry past the minimum was allowed without first attempts")
		}
	})

	t.Run("limits are listed and deleted by origin", func(t *testing.T) {
		l := limiter(t)
		at := time.Now()
		for _, o := range []string{"https://a.test:443", "https://b.test:443"} {
			// An hour's interval: a rate key lives about its interval, and
			// must not expire before the counts below on a loaded machine.
			if _, err := l.Rate(ctx, RateParams{Origin: o, Interval: time.Hour, Burst: 2, MaxWait: -1}, at); err != nil {
				t.Fatal(err)
			}
			budget(t, l, BudgetParams{Origin: o, Kind: BudgetFirst, Percent: 20, Min: 3, Window: time.Minute}, at)
		}
		list, err := l.ListLimits(ctx)
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, r := range list {
			got = append(got, fmt.Sprintf("%s %s %s %d %.0f %d", r.Origin, r.Kind, r.Interval, r.Burst, r.Firsts, r.Percent))
		}
		want := "[https://a.test:443 rate 1h0m0s 2 0 0 https://a.test:443 budget 0s 0 1 20 https://b.test:443 rate 1h0m0s 2 0 0 https://b.test:443 budget 0s 0 1 20]"
		if fmt.Sprint(got) != want {
			t.Fatalf("ListLimits = %v, want %s", got, want)
		}
		if ok, err := l.DeleteLimits(ctx, "https://a.test:443"); !ok || err != nil {
			t.Fatalf("DeleteLimits = %v, %v", ok, err)
		}
		if ok, err := l.DeleteLimits(ctx, "https://a.test:443"); ok || err != nil {
			t.Fatalf("DeleteLimits again = %v, %v", ok, err)
		}
		if n, err := l.DeleteAllLimits(ctx); n != 2 || err != nil {
			t.Fatalf("DeleteAllLimits = %d, %v", n, err)
		}
		if list, err := l.ListLimits(ctx); len(list) != 0 || err != nil {
			t.Fatalf("after DeleteAllLimits: %v, %v", list, err)
		}
	})
}

func mustRefund(t *testing.T, l Limiter, p RateParams, at time.Time) bool {
	t.Helper()
	ok, err := l.RefundRate(context.Background(), p, at)
	if err != nil {
		t.Fatal(err)
	}
	return ok
}

// TestLimitsAgree feeds the file store and Redis the same random rate and
// budget steps and compares every decision: the Lua scripts and limits.go
// are one machine.
func TestLimitsAgree(t *testing.T) {
	addr := redistest.Start(t)
	for seed := int64(1); seed <= 8; seed++ {
		t.Run(fmt.Sprint("seed ", seed), func(t *testing.T) {
			rng := rand.New(rand.NewSource(seed))
			files := &FileStore{Dir: filepath.Join(t.TempDir(), "state")}
			redis := newRedisStore(t, addr, nil)
			origins := []string{fmt.Sprintf("https://a%d.test:443", seed), fmt.Sprintf("https://b%d.test:443", seed)}
			now := contractNow
			for step := 0; step < 400; step++ {
				now = now.Add(time.Duration(rng.Intn(3000)) * time.Millisecond * time.Duration(1+rng.Intn(20)) / 10)
				origin := origins[rng.Intn(len(origins))]
				if rng.Intn(2) == 0 {
					p := RateParams{Origin: origin, Interval: time.Duration(1+rng.Intn(500)) * time.Millisecond,
						Burst: 1 + rng.Intn(4), MaxWait: time.Duration(rng.Intn(3000)-500) * time.Millisecond}
					df, ef := files.Rate(context.Background(), p, now)
					dr, er := redis.Rate(context.Background(), p, now)
					if ef != nil || er != nil || df != dr {
						t.Fatalf("step %d rate %+v: files %+v %v, redis %+v %v", step, p, df, ef, dr, er)
					}
					if df.Reserved && rng.Intn(3) == 0 {
						// A refund now or a little later, of this slot or an
						// older one.
						p.TAT = df.TAT - int64(rng.Intn(2))*p.intervalUS()
						p.PrevTAT, p.PrevInterval = df.PrevTAT, df.PrevInterval
						at := now.Add(time.Duration(rng.Intn(200)) * time.Millisecond)
						rf, ef := files.RefundRate(context.Background(), p, at)
						rr, er := redis.RefundRate(context.Background(), p, at)
						if ef != nil || er != nil || rf != rr {
							t.Fatalf("step %d refund %+v: files %v %v, redis %v %v", step, p, rf, ef, rr, er)
						}
					}
					continue
				}
				p := BudgetParams{Origin: origin, Kind: []string{BudgetFirst, BudgetRetry}[rng.Intn(2)],
					Percent: 1 + rng.Intn(100), Min: rng.Intn(4), Window: time.Duration(20+rng.Intn(3)*20) * time.Second}
				df, ef := files.Budget(context.Background(), p, now)
				dr, er := redis.Budget(context.Background(), p, now)
				if ef != nil || er != nil || df != dr {
					t.Fatalf("step %d budget %+v: files %+v %v, redis %+v %v", step, p, df, ef, dr, er)
				}
			}
		})
	}
}
