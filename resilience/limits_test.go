package resilience

import (
	"context"
	"errors"
	"path/filepath"
	"testing"
	"time"

	"github.com/refetch/refetch/resilience/store"
)

func newLimits(t *testing.T, s store.Limiter, rate *Rate, budget *RetryBudget) *Limits {
	return &Limits{Store: s, Origin: "http://h:80", Rate: rate, Budget: budget,
		Warn: func(err error) { t.Errorf("warning: %v", err) }}
}

// Every attempt, first or retry, takes a slot: with one request a second
// and no backoff, three attempts wait 0, 1s and 1s, and say so.
func TestRateSpacesEveryAttempt(t *testing.T) {
	s := &store.FileStore{Dir: filepath.Join(t.TempDir(), "state")}
	ex, clock, waits := newExec(fixed(3, 0))
	ex.Limits = newLimits(t, s, &Rate{Interval: time.Second, Burst: 1}, nil)
	var told []RateWaitInfo
	ex.OnRateWait = func(i RateWaitInfo) { told = append(told, i) }
	fn, calls := script(clock, 0, status(503))
	tr, err := ex.Run(context.Background(), "GET", fn)
	if !errors.Is(err, ErrRetriesExhausted) || *calls != 3 {
		t.Fatalf("err %v, calls %d", err, *calls)
	}
	if len(told) != 2 || tr.RateWait != 2*time.Second || tr.Attempts[0].RateWait != 0 ||
		tr.Attempts[1].RateWait != time.Second || tr.Attempts[2].RateWait != time.Second {
		t.Fatalf("told %v, rate wait %s, attempts %+v, waits %v", told, tr.RateWait, tr.Attempts, *waits)
	}
}

// A slot beyond --max-time is not reserved and the run ends at once with
// the deadline class, sending nothing; the slot stays for others.
func TestRateSlotBeyondTheDeadlineEndsTheRun(t *testing.T) {
	s := &store.FileStore{Dir: filepath.Join(t.TempDir(), "state")}
	clock := newFakeClock()
	hog := newLimits(t, s, &Rate{Interval: time.Minute, Burst: 1}, nil)
	if d, _ := hog.rate(context.Background(), clock.Now(), -1); !d.Reserved {
		t.Fatal("the first slot was not free")
	}
	p := fixed(3, 0)
	p.MaxTime = 10 * time.Second
	ex, clock2, _ := newExec(p)
	ex.Limits = newLimits(t, s, &Rate{Interval: time.Minute, Burst: 1}, nil)
	fn, calls := script(clock2, 0, status(200))
	_, err := ex.Run(context.Background(), "GET", fn)
	var re *RunError
	if !errors.Is(err, ErrDeadline) || !errors.As(err, &re) || re.Reason != ReasonRateWait || re.Wait != time.Minute || *calls != 0 {
		t.Fatalf("err %v, calls %d", err, *calls)
	}
	// Nothing was reserved: the next slot is still a minute away.
	if d, _ := hog.rate(context.Background(), clock.Now(), 0); d.Reserved || d.Wait != time.Minute {
		t.Fatalf("next slot: reserved %v, wait %s", d.Reserved, d.Wait)
	}
}

// With NoHoldWait (a batch), a first attempt whose slot is not free ends
// the run with a RateWaitError, reserving nothing.
func TestRateYieldsToABatch(t *testing.T) {
	s := &store.FileStore{Dir: filepath.Join(t.TempDir(), "state")}
	ex, clock, _ := newExec(fixed(1, 0))
	ex.NoHoldWait = true
	ex.Limits = newLimits(t, s, &Rate{Interval: time.Second, Burst: 1}, nil)
	fn, calls := script(clock, 0, status(200))
	if _, err := ex.Run(context.Background(), "GET", fn); err != nil {
		t.Fatal(err)
	}
	ex.Limits = newLimits(t, s, &Rate{Interval: time.Second, Burst: 1}, nil)
	_, err := ex.Run(context.Background(), "GET", fn)
	var rw *RateWaitError
	if !errors.As(err, &rw) || !rw.Until.Equal(clock.Now().Add(time.Second)) || *calls != 1 {
		t.Fatalf("err %v, calls %d", err, *calls)
	}
}

// The budget: first attempts count; a retry past min + P% is refused and
// the run ends with ErrRetryBudget, having sent no retry.
func TestRetryBudgetSpentEndsTheRun(t *testing.T) {
	s := &store.FileStore{Dir: filepath.Join(t.TempDir(), "state")}
	budget := &RetryBudget{Percent: 50, Min: 1, Window: time.Minute}
	total := 0
	var last error
	for run := 0; run < 4; run++ {
		ex, clock, _ := newExec(fixed(3, 0))
		ex.Limits = newLimits(t, s, nil, budget)
		fn, calls := script(clock, 0, status(503))
		_, last = ex.Run(context.Background(), "GET", fn)
		total += *calls
	}
	// 4 first attempts allow 1 + 2 retries: 7 requests, not 12.
	var re *RunError
	if total != 7 || !errors.Is(last, ErrRetryBudget) || !errors.As(last, &re) || re.Budget == nil || re.Reason != ReasonBudgetSpent {
		t.Fatalf("total %d, last %v", total, last)
	}
}
