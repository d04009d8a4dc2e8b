package resilience

import (
	"context"
	"errors"
	"path/filepath"
	"testing"
	"time"
)

// holdKey records a hold of d on key in store, as a run's 429 would.
func holdKey(t *testing.T, store Store, clock *fakeClock, d time.Duration) {
	t.Helper()
	br := mustBreaker(t, Settings{Key: "http://h:80", Failures: 5, Store: store})
	br.Record(context.Background(), mustAdmit(t, br, clock.Now()), Verdict{Kind: Retryable, Breaker: Ignore}, clock.Now(), clock.Now().Add(d))
}

// TestNoHoldWaitReturnsTheHoldAtOnce: with NoHoldWait, a run that finds
// its key held sends nothing, waits nothing and returns the *HoldError, so
// its caller can run other work; once the hold is over the same run goes.
func TestNoHoldWaitReturnsTheHoldAtOnce(t *testing.T) {
	store := &FileStore{Dir: filepath.Join(t.TempDir(), "state")}
	ex, clock, waits := newExec(fixed(3, time.Second))
	holdKey(t, store, clock, 20*time.Second)
	ex.Breaker = mustBreaker(t, Settings{Key: "http://h:80", Failures: 5, Store: store})
	ex.NoHoldWait = true
	ex.OnHold = func(HoldInfo) { t.Error("OnHold called: NoHoldWait does not wait") }
	fn, calls := script(clock, 0, status(200))
	tr, err := ex.Run(context.Background(), "GET", fn)
	var hold *HoldError
	if !errors.As(err, &hold) || *calls != 0 || len(*waits) != 0 || tr.Held != 0 || len(tr.Attempts) != 0 {
		t.Fatalf("err %v, calls %d, waits %v, held %v", err, *calls, *waits, tr.Held)
	}
	if want := clock.Now().Add(20 * time.Second); !hold.Until.Equal(want) || hold.Key != "http://h:80" {
		t.Errorf("hold = %+v, want until %v", hold, want)
	}
	clock.Advance(20 * time.Second)
	if _, err := ex.Run(context.Background(), "GET", fn); err != nil || *calls != 1 {
		t.Fatalf("after the hold: err %v, calls %d", err, *calls)
	}
}

// TestNoHoldWaitStillRateLimitsAHoldBeyondTheLimit: a hold longer than the
// policy allows is exit 6's error whether or not the caller would wait.
func TestNoHoldWaitStillRateLimitsAHoldBeyondTheLimit(t *testing.T) {
	store := &FileStore{Dir: filepath.Join(t.TempDir(), "state")}
	p := fixed(3, time.Second)
	p.MaxRetryAfter = time.Minute
	ex, clock, _ := newExec(p)
	holdKey(t, store, clock, 2*time.Minute)
	ex.Breaker = mustBreaker(t, Settings{Key: "http://h:80", Failures: 5, Store: store})
	ex.NoHoldWait = true
	fn, calls := script(clock, 0, status(200))
	_, err := ex.Run(context.Background(), "GET", fn)
	var re *RunError
	if !errors.Is(err, ErrRateLimited) || !errors.As(err, &re) || re.Reason != ReasonHeld || *calls != 0 {
		t.Fatalf("err = %v, calls = %d", err, *calls)
	}
}

// TestNoHoldWaitWaitsOutAHoldBetweenAttempts: once a run has sent a
// request it is not cut in two: a hold recorded meanwhile (by another run
// on the key) is waited out and the retry goes.
func TestNoHoldWaitWaitsOutAHoldBetweenAttempts(t *testing.T) {
	store := &FileStore{Dir: filepath.Join(t.TempDir(), "state")}
	ex, clock, waits := newExec(fixed(3, time.Second))
	ex.Breaker = mustBreaker(t, Settings{Key: "http://h:80", Failures: 5, Store: store})
	ex.NoHoldWait = true
	calls := 0
	fn := func(ctx context.Context, n int) Attempt {
		calls++
		if n == 1 {
			// Another run on the key hears "come back in 5s" meanwhile.
			holdKey(t, store, clock, 5*time.Second)
			return status(503)
		}
		return status(200)
	}
	tr, err := ex.Run(context.Background(), "GET", fn)
	if err != nil || calls != 2 || tr.Held != 4*time.Second || len(*waits) != 2 {
		t.Fatalf("err %v, calls %d, held %v, waits %v", err, calls, tr.Held, *waits)
	}
}
