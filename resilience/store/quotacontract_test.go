package store

import (
	"context"
	"fmt"
	"math/rand"
	"path/filepath"
	"testing"
	"time"

	"github.com/refetch/refetch/internal/redistest"
)

// testQuotas is the contract of learned quotas (quota.go), run by
// TestStores against every store.
func testQuotas(t *testing.T, mk func(t *testing.T) Store) {
	now := contractNow
	ctx := context.Background()
	const origin = "https://q.test:443"
	limiter := func(t *testing.T) Limiter {
		l, ok := mk(t).(Limiter)
		if !ok {
			t.Fatal("the store is not a Limiter")
		}
		return l
	}
	learn := func(t *testing.T, l Limiter, id string, o QuotaObservation, at time.Time) {
		t.Helper()
		if _, err := l.LearnQuota(ctx, QuotaParams{Origin: origin, Identity: id}, o, at); err != nil {
			t.Fatal(err)
		}
	}
	pace := func(t *testing.T, l Limiter, id string, maxWait time.Duration, at time.Time, want QuotaDecision) {
		t.Helper()
		d, err := l.PaceQuota(ctx, QuotaParams{Origin: origin, Identity: id, MaxWait: maxWait}, at)
		if err != nil {
			t.Fatal(err)
		}
		if d.Route, d.Slot = 0, (QuotaSlot{}); d != want {
			t.Fatalf("PaceQuota(%q, max %s) at +%s = %+v, want %+v", id, maxWait, at.Sub(now), d, want)
		}
	}
	free := QuotaDecision{Reserved: true}

	t.Run("quota: what remains is spread over the rest of the window", func(t *testing.T) {
		l := limiter(t)
		pace(t, l, "a", -1, now, free) // nothing learned: no pacing
		learn(t, l, "a", QuotaObservation{Limit: 10, Remaining: 4, Window: 10 * time.Second, Reset: 4 * time.Second}, now)
		pace(t, l, "a", -1, now, QuotaDecision{Known: true, Reserved: true, Remaining: 4})
		pace(t, l, "a", -1, now, QuotaDecision{Known: true, Reserved: true, Wait: time.Second, Remaining: 3})
		// The next slot is at +2s: beyond the caller's wait, not reserved.
		pace(t, l, "a", 500*time.Millisecond, now, QuotaDecision{Known: true, Wait: 2 * time.Second, Remaining: 2})
		pace(t, l, "a", -1, now.Add(time.Second), QuotaDecision{Known: true, Reserved: true, Wait: time.Second, Remaining: 2})
		pace(t, l, "a", -1, now.Add(time.Second), QuotaDecision{Known: true, Reserved: true, Wait: 2 * time.Second, Remaining: 1})
		// Nothing left: wait for the reset, reserving nothing.
		pace(t, l, "a", -1, now.Add(time.Second), QuotaDecision{Known: true, Wait: 3 * time.Second})
		// Another identity's quota is its own.
		pace(t, l, "b", -1, now, free)
		// After the reset the known limit (10 per 10s) starts the next
		// window: 10 left until +14s, spread from the old reset on.
		pace(t, l, "a", -1, now.Add(4*time.Second), QuotaDecision{Known: true, Reserved: true, Remaining: 10})
		pace(t, l, "a", -1, now.Add(4*time.Second), QuotaDecision{Known: true, Reserved: true, Wait: time.Second, Remaining: 9})
		// A window later with no response since, nothing is known.
		pace(t, l, "a", -1, now.Add(24*time.Second), free)
	})

	t.Run("quota: a slot given back is the next caller's, only while nothing moved", func(t *testing.T) {
		// A tour's two runs stopped while they waited for paced slots
		// turned "2 left" into "0 left", and held the fleet to the reset.
		l := limiter(t)
		p := QuotaParams{Origin: origin, Identity: "a", MaxWait: -1}
		learn(t, l, "a", QuotaObservation{Limit: 10, Remaining: 4, Window: 10 * time.Second, Reset: 4 * time.Second}, now)
		pace(t, l, "a", -1, now, QuotaDecision{Known: true, Reserved: true, Remaining: 4})
		d, err := l.PaceQuota(ctx, p, now)
		if err != nil || !d.Reserved || d.Wait != time.Second || d.Slot.TAT == 0 {
			t.Fatalf("PaceQuota = %+v, %v", d, err)
		}
		refund := func(s QuotaSlot, want bool) {
			t.Helper()
			if ok, err := l.RefundQuota(ctx, p, s, now.Add(100*time.Millisecond)); ok != want || err != nil {
				t.Fatalf("RefundQuota(%+v) = %v, %v; want %v", s, ok, err, want)
			}
		}
		refund(d.Slot, true)
		refund(d.Slot, false) // once
		// The next caller gets the same slot, with as much left.
		pace(t, l, "a", -1, now, QuotaDecision{Known: true, Reserved: true, Wait: time.Second, Remaining: 3})
		// A slot reserved before another caller's is not given back.
		d2, _ := l.PaceQuota(ctx, p, now)
		pace(t, l, "a", -1, now, QuotaDecision{Known: true, Reserved: true, Wait: 3 * time.Second, Remaining: 1})
		refund(d2.Slot, false)
		// Nor after a response said what is left.
		learn(t, l, "b", QuotaObservation{Limit: 10, Remaining: 5, Window: 10 * time.Second, Reset: 4 * time.Second}, now)
		d3, _ := l.PaceQuota(ctx, QuotaParams{Origin: origin, Identity: "b", MaxWait: -1}, now)
		learn(t, l, "b", QuotaObservation{Limit: 10, Remaining: 2, Window: 10 * time.Second, Reset: 4 * time.Second}, now)
		if ok, err := l.RefundQuota(ctx, QuotaParams{Origin: origin, Identity: "b"}, d3.Slot, now); ok || err != nil {
			t.Fatalf("RefundQuota after a learn = %v, %v; want false", ok, err)
		}
		// Nothing reserved, nothing to give back.
		refund(QuotaSlot{}, false)
		// After the reset the slot's window is over: nothing to give back
		// (a review found the twins disagreeing on an ended record).
		d4, _ := l.PaceQuota(ctx, QuotaParams{Origin: origin, Identity: "b", MaxWait: -1}, now)
		if ok, err := l.RefundQuota(ctx, QuotaParams{Origin: origin, Identity: "b"}, d4.Slot, now.Add(5*time.Second)); ok || err != nil {
			t.Fatalf("RefundQuota after the reset = %v, %v; want false", ok, err)
		}
	})

	t.Run("quota: without a known limit nothing is paced after the reset", func(t *testing.T) {
		l := limiter(t)
		// A limit with no window (X-RateLimit-*) rolls over the time to
		// the reset it saw (see the next test).
		learn(t, l, "a", QuotaObservation{Limit: 10, Remaining: 0, Reset: 4 * time.Second}, now)
		pace(t, l, "a", -1, now, QuotaDecision{Known: true, Wait: 4 * time.Second})
		pace(t, l, "a", -1, now.Add(4*time.Second), QuotaDecision{Known: true, Reserved: true, Remaining: 10})
		learn(t, l, "b", QuotaObservation{Limit: -1, Remaining: 0, Window: 10 * time.Second, Reset: 4 * time.Second}, now)
		pace(t, l, "b", -1, now.Add(4*time.Second), free)
		// A window longer than a day does not roll (its reset was capped).
		learn(t, l, "c", QuotaObservation{Limit: 5, Remaining: 0, Window: 48 * time.Hour, Reset: 4 * time.Second}, now)
		pace(t, l, "c", -1, now.Add(4*time.Second), free)
	})

	t.Run("quota: a spent quota of known limit rolls into evenly spaced slots", func(t *testing.T) {
		l := limiter(t)
		// 3 per 2s, all spent, resetting at +1s: 8 callers at the reset get
		// 3 slots spread over the new window and then wait for the next.
		learn(t, l, "", QuotaObservation{Limit: 3, Remaining: 0, Window: 2 * time.Second, Reset: time.Second}, now)
		at := now.Add(time.Second)
		pace(t, l, "", -1, at, QuotaDecision{Known: true, Reserved: true, Remaining: 3})
		pace(t, l, "", -1, at, QuotaDecision{Known: true, Reserved: true, Wait: 666666 * time.Microsecond, Remaining: 2})
		pace(t, l, "", -1, at, QuotaDecision{Known: true, Reserved: true, Wait: 1333333 * time.Microsecond, Remaining: 1})
		pace(t, l, "", -1, at, QuotaDecision{Known: true, Wait: 2 * time.Second})
	})

	t.Run("quota: a limit without a window rolls over the longest time to the reset seen", func(t *testing.T) {
		l := limiter(t)
		// X-RateLimit-*: 3 per window, no window said. The window's first
		// answer sees 2s to the reset; later ones less, which does not
		// shorten it. At the reset 3 go, spread over 2s, not every waiter
		// (a tour found 13 of 16 getting 429 at each reset).
		learn(t, l, "", QuotaObservation{Limit: 3, Remaining: 2, Reset: 2 * time.Second}, now)
		learn(t, l, "", QuotaObservation{Limit: 3, Remaining: 1, Reset: time.Second}, now.Add(time.Second))
		learn(t, l, "", QuotaObservation{Limit: 3, Remaining: 0, Reset: 500 * time.Millisecond}, now.Add(1500*time.Millisecond))
		at := now.Add(2 * time.Second)
		pace(t, l, "", -1, at, QuotaDecision{Known: true, Reserved: true, Remaining: 3})
		pace(t, l, "", -1, at, QuotaDecision{Known: true, Reserved: true, Wait: 666666 * time.Microsecond, Remaining: 2})
		pace(t, l, "", -1, at, QuotaDecision{Known: true, Reserved: true, Wait: 1333333 * time.Microsecond, Remaining: 1})
		pace(t, l, "", -1, at, QuotaDecision{Known: true, Wait: 2 * time.Second})
	})

	t.Run("quota: within a window what remains only goes down", func(t *testing.T) {
		l := limiter(t)
		learn(t, l, "", QuotaObservation{Limit: -1, Remaining: 1, Reset: 10 * time.Second}, now)
		// A slower response from before says more remains: not believed.
		learn(t, l, "", QuotaObservation{Limit: -1, Remaining: 5, Reset: 10 * time.Second}, now.Add(time.Second))
		pace(t, l, "", -1, now.Add(time.Second), QuotaDecision{Known: true, Reserved: true, Remaining: 1})
		pace(t, l, "", -1, now.Add(time.Second), QuotaDecision{Known: true, Wait: 9 * time.Second})
		// An exhausted quota with a later reset moves it later, never earlier.
		learn(t, l, "", QuotaObservation{Limit: -1, Remaining: 0, Reset: 20 * time.Second}, now.Add(time.Second))
		learn(t, l, "", QuotaObservation{Limit: -1, Remaining: 0, Reset: time.Second}, now.Add(time.Second))
		pace(t, l, "", -1, now.Add(time.Second), QuotaDecision{Known: true, Wait: 20 * time.Second})
		// A new window: the response is believed whole.
		learn(t, l, "", QuotaObservation{Limit: -1, Remaining: 7, Reset: 10 * time.Second}, now.Add(22*time.Second))
		pace(t, l, "", -1, now.Add(22*time.Second), QuotaDecision{Known: true, Reserved: true, Remaining: 7})
	})

	t.Run("quota: listed per identity and deleted with the origin", func(t *testing.T) {
		l := limiter(t)
		at := time.Now()
		learn(t, l, "id1", QuotaObservation{Limit: 100, Remaining: 0, Window: time.Minute, Reset: time.Hour, Policy: "default\n\x1b[31m"}, at)
		learn(t, l, "id2", QuotaObservation{Limit: -1, Remaining: 5, Reset: time.Hour}, at)
		list, err := l.ListLimits(ctx)
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, r := range list {
			got = append(got, fmt.Sprintf("%s %s %s %d %d %s %q", r.Origin, r.Kind, r.Identity, r.QuotaLimit, r.Remaining, r.Window, r.Policy))
			if d := r.Reset.Sub(at); d < 59*time.Minute || d > 61*time.Minute {
				t.Errorf("%s: reset in %s, want an hour", r.Identity, d)
			}
		}
		want := `[https://q.test:443 quota id1 100 0 1m0s "default[31m" https://q.test:443 quota id2 -1 5 0s ""]`
		if fmt.Sprint(got) != want {
			t.Fatalf("ListLimits = %v, want %s", got, want)
		}
		if ok, err := l.DeleteLimits(ctx, origin); !ok || err != nil {
			t.Fatalf("DeleteLimits = %v, %v", ok, err)
		}
		if list, err := l.ListLimits(ctx); len(list) != 0 || err != nil {
			t.Fatalf("after DeleteLimits: %v, %v", list, err)
		}
	})
}

// TestQuotasAgree feeds the file store and Redis the same random quota
// steps and compares every decision.
func TestQuotasAgree(t *testing.T) {
	addr := redistest.Start(t)
	for seed := int64(1); seed <= 32; seed++ {
		t.Run(fmt.Sprint("seed ", seed), func(t *testing.T) {
			rng := rand.New(rand.NewSource(seed))
			files := &FileStore{Dir: filepath.Join(t.TempDir(), "state")}
			redis := newRedisStore(t, addr, nil)
			origin := fmt.Sprintf("https://q%d.test:443", seed)
			ids := []string{"", "a", "b"}
			slots := map[string]QuotaSlot{}
			refunds := 0
			defer func() {
				if refunds == 0 {
					t.Error("no slot was given back: the refund steps test nothing")
				}
			}()
			now := contractNow
			for step := 0; step < 400; step++ {
				now = now.Add(time.Duration(rng.Intn(800)) * time.Millisecond)
				p := QuotaParams{Origin: origin, Identity: ids[rng.Intn(len(ids))],
					MaxWait: time.Duration(rng.Intn(3000)-500) * time.Millisecond}
				if rng.Intn(3) == 0 {
					o := QuotaObservation{Limit: int64(rng.Intn(20)) - 1, Remaining: int64(rng.Intn(6)),
						Window: time.Duration(rng.Intn(10)) * time.Second, Reset: time.Duration(1+rng.Intn(10000)) * time.Millisecond}
					_, ef := files.LearnQuota(context.Background(), p, o, now)
					_, er := redis.LearnQuota(context.Background(), p, o, now)
					if ef != nil || er != nil {
						t.Fatalf("step %d learn: %v, %v", step, ef, er)
					}
					continue
				}
				if s, ok := slots[p.Identity]; ok && rng.Intn(4) == 0 {
					// Give back a slot reserved earlier: both twins agree
					// whether it still can be.
					of, ef := files.RefundQuota(context.Background(), p, s, now)
					or, er := redis.RefundQuota(context.Background(), p, s, now)
					if of {
						refunds++
					}
					if ef != nil || er != nil || of != or {
						t.Fatalf("step %d refund %+v: files %v %v, redis %v %v", step, s, of, ef, or, er)
					}
					continue
				}
				df, ef := files.PaceQuota(context.Background(), p, now)
				dr, er := redis.PaceQuota(context.Background(), p, now)
				if ef != nil || er != nil || df != dr {
					t.Fatalf("step %d pace %+v: files %+v %v, redis %+v %v", step, p, df, ef, dr, er)
				}
				if df.Reserved && df.Slot.TAT != 0 {
					slots[p.Identity] = df.Slot
				}
			}
		})
	}
}

// TestRedisQuotaKeyExpires: a quota record in Redis expires at the latest
// reset it holds, like every record there, and an identity whose reset
// passed is dropped from it by the next learn step.
func TestRedisQuotaKeyExpires(t *testing.T) {
	addr := redistest.Start(t)
	s := newRedisStore(t, addr, nil)
	raw := rawClient(t, addr)
	ctx := context.Background()
	const origin = "https://e.test:443"
	now := time.Now()
	learn := func(id string, reset time.Duration, at time.Time) {
		t.Helper()
		if _, err := s.LearnQuota(ctx, QuotaParams{Origin: origin, Identity: id}, QuotaObservation{Limit: -1, Remaining: 1, Reset: reset}, at); err != nil {
			t.Fatal(err)
		}
	}
	learn("short", time.Second, now)
	learn("long", time.Minute, now)
	ttl, err := raw.PTTL(ctx, RedisQuotaPrefix+origin).Result()
	if err != nil || ttl <= 59*time.Second || ttl > 61*time.Second {
		t.Fatalf("PTTL = %v, %v; want about a minute", ttl, err)
	}
	learn("long", time.Minute, now.Add(2*time.Second))
	fields, err := raw.HKeys(ctx, RedisQuotaPrefix+origin).Result()
	if err != nil || len(fields) != 6 {
		t.Fatalf("fields %v, %v: want the long identity's 6 alone", fields, err)
	}
}

// TestQuotaIdentitiesAreBounded: past maxQuotaIDs identities, a learn
// step drops the one whose reset comes first, in both stores.
func TestQuotaIdentitiesAreBounded(t *testing.T) {
	addr := redistest.Start(t)
	ctx := context.Background()
	for name, s := range map[string]Limiter{
		"files": &FileStore{Dir: filepath.Join(t.TempDir(), "state")},
		"redis": newRedisStore(t, addr, nil),
	} {
		now := contractNow
		for i := 0; i <= maxQuotaIDs; i++ {
			o := QuotaObservation{Limit: -1, Remaining: 0, Reset: time.Hour + time.Duration(i)*time.Second}
			if _, err := s.LearnQuota(ctx, QuotaParams{Origin: "https://b.test:443", Identity: fmt.Sprint("id", i)}, o, now); err != nil {
				t.Fatal(err)
			}
		}
		// id0's reset came first: it is gone (nothing is known), id1 is kept.
		for id, known := range map[string]bool{"id0": false, "id1": true, fmt.Sprint("id", maxQuotaIDs): true} {
			d, err := s.PaceQuota(ctx, QuotaParams{Origin: "https://b.test:443", Identity: id, MaxWait: -1}, now)
			if err != nil || d.Known != known {
				t.Errorf("%s: %s known = %v (%v), want %v", name, id, d.Known, err, known)
			}
		}
	}
}
