package resilience

import (
	"context"
	"errors"
	"path/filepath"
	"testing"
	"time"

	"github.com/refetch/refetch/internal/waittest"
)

func TestBreakerWaitForTheStoreEndsWithTheCtx(t *testing.T) {
	b, store, warns := newTestBreaker(t, 1)
	now := newFakeClock().Now()
	admitted := mustAdmit(t, b, now)
	release := holdLock(t, store, b.s.Key)

	// A closed breaker's admission writes nothing, so it takes no lock: a
	// holder that is stopped or hung does not stall it.
	if _, err := b.Admit(context.Background(), now); err != nil {
		t.Errorf("Admit of a closed breaker under a held lock = %v, want admitted", err)
	}
	// An outcome that would have to wait is dropped, quietly.
	b.Record(waittest.Cancelled(), admitted, fail, now, time.Time{})
	if b.down || len(*warns) != 0 {
		t.Fatalf("the breaker stepped aside (%v): the end of the run is not a store failure", *warns)
	}
	release()
	if recs, _ := store.List(context.Background()); len(recs) != 0 {
		t.Errorf("saved without the lock: %+v", recs)
	}
	// Free, the lock is taken even with a done ctx: the failure counts.
	b.Record(waittest.Cancelled(), admitted, fail, now, time.Time{})
	mustReject(t, b, now)

	// Past the reset, an admission takes the trial, a write: it waits for
	// the lock, and the end of the ctx ends the wait.
	later := now.Add(time.Minute + time.Second)
	holdLock(t, store, b.s.Key)
	if _, err := b.Admit(waittest.Cancelled(), later); err != waittest.ErrInterrupted {
		t.Errorf("Admit of the trial with a done ctx = %v, want the ctx's cause", err)
	}
	err := waittest.CancelWhileWaiting(func(ctx context.Context) error { _, err := b.Admit(ctx, later); return err })
	if err != waittest.ErrInterrupted {
		t.Errorf("Admit of the trial cancelled while waiting = %v, want the ctx's cause", err)
	}
	if len(*warns) != 0 {
		t.Errorf("warnings: %v", *warns)
	}
}

func TestRunEndsWhileWaitingForTheStoreLock(t *testing.T) {
	store := &FileStore{Dir: t.TempDir()}
	newBreaker := func() *Breaker {
		return mustBreaker(t, Settings{Key: "http://h:80", Failures: 1, Reset: time.Nanosecond, Store: store})
	}
	// An open breaker whose reset has passed: the admission takes the
	// trial, a write, so it needs the lock.
	b := newBreaker()
	now := newFakeClock().Now().Add(-time.Second) // the runs' clocks start there
	b.Record(context.Background(), mustAdmit(t, b, now), fail, now, time.Time{})
	holdLock(t, store, "http://h:80")

	ex, clock, _ := newExec(fixed(3, time.Second))
	ex.Breaker = newBreaker()
	fn, calls := script(clock, 0, status(200))
	var tr *Trace
	err := waittest.CancelWhileWaiting(func(ctx context.Context) error {
		var err error
		tr, err = ex.Run(ctx, "GET", fn)
		return err
	})
	if err != waittest.ErrInterrupted || *calls != 0 || len(tr.Attempts) != 0 || !tr.Breaker.On {
		t.Errorf("err %v, calls %d, trace %+v; want the cause, no attempt, the breaker on", err, *calls, tr)
	}

	// MaxTime ends the wait as well, as the run's deadline.
	p := fixed(3, time.Second)
	p.MaxTime = 20 * time.Millisecond
	ex = &Executor{Policy: p, Classify: ClassifyPolicy, Breaker: newBreaker()}
	fn, calls = script(newFakeClock(), 0, status(200))
	_, err = ex.Run(context.Background(), "GET", fn)
	var re *RunError
	if !errors.Is(err, ErrDeadline) || !errors.As(err, &re) || re.Reason != ReasonTimeUp || *calls != 0 {
		t.Errorf("with MaxTime: err %v, calls %d; want the deadline, no attempt", err, *calls)
	}
}

// TestTrialCutOffIsReleased: a half-open trial cut off by a signal or a
// deadline (its run's ctx is done when the outcome is recorded) is still
// released, on a Redis store and on the files, so the next run of the key
// may try at once instead of being refused for the trial's lease.
func TestTrialCutOffIsReleased(t *testing.T) {
	stores := map[string]func(t *testing.T) Store{
		"files": func(t *testing.T) Store { return &FileStore{Dir: filepath.Join(t.TempDir(), "state")} },
		"redis": func(t *testing.T) Store { return newRedis(t) },
	}
	cut := Verdict{Kind: Cancelled, Breaker: Ignore, Err: waittest.ErrInterrupted}
	for name, mk := range stores {
		t.Run(name, func(t *testing.T) {
			store := mk(t)
			settings := Settings{Key: "http://example.test:80", Failures: 1, Reset: time.Minute, Store: store}
			a, b := mustBreaker(t, settings), mustBreaker(t, settings)
			now := newFakeClock().Now()
			a.Record(context.Background(), mustAdmit(t, a, now), fail, now, time.Time{}) // opens
			later := now.Add(2 * time.Minute)
			trial := mustAdmit(t, a, later)
			mustReject(t, b, later) // the trial is in flight
			a.Record(waittest.Cancelled(), trial, cut, later, time.Time{})
			if _, err := b.Admit(context.Background(), later); err != nil {
				t.Fatalf("after the cut-off trial, Admit = %v: the trial was not released", err)
			}
		})
	}
}
