package resilience

import (
	"context"
	"errors"
	"fmt"
	"math"
	"strconv"
	"time"

	"github.com/refetch/refetch/resilience/store"
)

// ErrRetryBudget: a retryable failure was not retried because the
// origin's retry budget (shared through the store) is spent.
var ErrRetryBudget = errors.New("retry budget spent")

// Rate is a request rate toward an origin: one request per Interval, with
// Burst at once.
type Rate struct {
	Interval time.Duration
	Burst    int
}

// RetryBudget bounds retries toward an origin: at most Min per Window
// plus Percent of the first attempts over the Window.
type RetryBudget struct {
	Percent int
	Min     int
	Window  time.Duration
}

// Limits are a run's manners toward its origin: a rate every attempt
// waits for, a retry budget every retry asks. The records live in Store,
// shared by every process using it. A Limits is for one run (one
// goroutine), like a Breaker; a nil *Limits limits nothing. Store
// problems make it step aside, with a warning, as the breaker does.
type Limits struct {
	Store  store.Limiter
	Origin string
	// Rate and Budget: nil for none.
	Rate   *Rate
	Budget *RetryBudget
	// Auto paces by the quota the server advertises (--rate auto): with
	// no Rate, every attempt takes a slot of the identity's learned quota
	// (store.Limiter.PaceQuota), and waits for its reset when nothing is
	// left.
	Auto bool
	// Identity is the caller's (fetch.Request.Identity): learned quotas
	// are per identity, as a server's quota is per credential.
	Identity string
	// Warn, if set, receives problems with the store.
	Warn func(error)

	route store.Route
	down  bool
}

// RateWaitInfo describes a wait for a rate slot, for progress logs.
type RateWaitInfo struct {
	Origin string
	Wait   time.Duration
}

// RateWaitError ends a run whose Executor has NoHoldWait before its first
// attempt when the origin's next rate slot is Until: nothing was sent or
// reserved, and the caller (a batch) runs it again then.
type RateWaitError struct {
	Origin string
	Until  time.Time
}

func (e *RateWaitError) Error() string {
	return fmt.Sprintf("%s has no free rate slot until %s", e.Origin, ClockTime(e.Until, time.Now()))
}

// BudgetSpent says why a retry was refused, for the run's error.
type BudgetSpent struct {
	Origin string
	// Retries and Firsts are the weighted counts over Window; Allowance
	// the retries it allows.
	Retries, Firsts, Allowance float64
	Budget                     RetryBudget
}

func (b *BudgetSpent) String() string {
	// "4 retries … of 4.2 allowed" read as if there were room: one more
	// is what would pass the allowance.
	return fmt.Sprintf("%.0f retries to %s in the last %s already, and one more would pass the %s allowed (%d + %d%% of %.0f first attempts)",
		b.Retries, b.Origin, b.Budget.Window, strconv.FormatFloat(math.Round(b.Allowance*10)/10, 'f', -1, 64), b.Budget.Min, b.Budget.Percent, b.Firsts)
}

// stepAside turns the limits off for the rest of the run.
func (l *Limits) stepAside(err error) {
	l.down = true
	if errors.Is(err, store.ErrRouteGone) {
		return
	}
	if l.Warn != nil {
		l.Warn(fmt.Errorf("--rate and --retry-budget disabled for this run: %w", err))
	}
}

// Slot is an attempt's turn: Reserved, send after Wait; not Reserved,
// the wait it would take (nothing was reserved). Exhausted: the learned
// quota has nothing left until Wait is over (Auto).
type Slot struct {
	Reserved  bool
	Wait      time.Duration
	Exhausted bool
	// tat is the rate record's TAT the reservation set (0: none), and
	// quota the learned quota's slot (Auto), for Refund.
	tat, prevTAT, prevInterval int64
	quota                      store.QuotaSlot
}

// Take takes a slot at now, waiting at most maxWait (negative: no bound):
// of the Rate, or with Auto of the learned quota. With neither, or when
// the limits stepped aside, every slot is free at once.
func (l *Limits) Take(ctx context.Context, now time.Time, maxWait time.Duration) (Slot, error) {
	if l == nil || l.down || l.Rate == nil && !l.Auto {
		return Slot{Reserved: true}, nil
	}
	if l.Rate == nil {
		d, err := l.Store.PaceQuota(ctx, store.QuotaParams{Origin: l.Origin, Identity: l.Identity, MaxWait: maxWait, Route: l.route}, now)
		switch {
		case err != nil && ctx.Err() != nil:
			return Slot{}, context.Cause(ctx)
		case err != nil:
			l.stepAside(err)
			return Slot{Reserved: true}, nil
		}
		l.route = d.Route
		return Slot{Reserved: d.Reserved, Wait: d.Wait, Exhausted: d.Known && d.Remaining <= 0, quota: d.Slot}, nil
	}
	d, err := l.rate(ctx, now, maxWait)
	return Slot{Reserved: d.Reserved, Wait: d.Wait, tat: d.TAT, prevTAT: d.PrevTAT, prevInterval: d.PrevInterval}, err
}

// Refund gives back a reserved slot of the Rate (or, with Auto, of the
// learned quota) that the run will not use
// (cut off by a signal or its deadline while it waited, nothing sent), so
// that an interrupted run does not push every other caller back an
// interval: the store moves the TAT back if no one reserved after it
// (store.Limiter.RefundRate). ctx may be done: the refund gets
// TrialReleaseWait of its own.
func (l *Limits) Refund(ctx context.Context, s Slot, now time.Time) {
	if l == nil || l.down || !s.Reserved || s.tat == 0 && s.quota.TAT == 0 {
		return
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), TrialReleaseWait)
	defer cancel()
	if l.Rate == nil {
		// A slot of the learned quota (Auto): it counted one of the
		// server's remaining requests, which the run never sent (a tour's
		// two Ctrl-Cs turned "2 left" into "0 left" and held the fleet
		// until the reset).
		l.Store.RefundQuota(ctx, store.QuotaParams{Origin: l.Origin, Identity: l.Identity, Route: l.route}, s.quota, now)
		return
	}
	l.Store.RefundRate(ctx, store.RateParams{Origin: l.Origin, Interval: l.Rate.Interval, TAT: s.tat,
		PrevTAT: s.prevTAT, PrevInterval: s.prevInterval, Route: l.route}, now)
}

// Learn keeps the quota a response advertised (one with a reset to come)
// in the store, for Auto and for breaker status.
func (l *Limits) Learn(ctx context.Context, q Quota, now time.Time) {
	if l == nil || l.down || q.Reset <= 0 {
		return
	}
	q = q.Capped()
	d, err := l.Store.LearnQuota(ctx, store.QuotaParams{Origin: l.Origin, Identity: l.Identity, Route: l.route},
		store.QuotaObservation{Limit: q.Limit, Remaining: q.Remaining, Window: q.Window, Reset: q.Reset, Policy: q.Policy}, now)
	if err != nil {
		if ctx.Err() == nil {
			l.stepAside(err)
		}
		return
	}
	l.route = d.Route
}

// rate takes a slot of the Rate at now, waiting at most maxWait
// (negative: no bound). Not Reserved: the store had no slot within
// maxWait and reserved nothing; Wait is then the wait it would take.
func (l *Limits) rate(ctx context.Context, now time.Time, maxWait time.Duration) (store.RateDecision, error) {
	d, err := l.Store.Rate(ctx, store.RateParams{Origin: l.Origin, Interval: l.Rate.Interval, Burst: l.Rate.Burst,
		MaxWait: maxWait, Route: l.route}, now)
	switch {
	case err != nil && ctx.Err() != nil:
		return store.RateDecision{}, context.Cause(ctx)
	case err != nil:
		l.stepAside(err)
		return store.RateDecision{Reserved: true}, nil
	}
	l.route = d.Route
	return d, nil
}

// first counts a first attempt toward the budget.
func (l *Limits) first(ctx context.Context, now time.Time) {
	if l == nil || l.down || l.Budget == nil {
		return
	}
	l.budget(ctx, store.BudgetFirst, now)
}

// retry asks the budget for a retry: nil when allowed (and counted).
func (l *Limits) retry(ctx context.Context, now time.Time) *BudgetSpent {
	if l == nil || l.down || l.Budget == nil {
		return nil
	}
	d, ok := l.budget(ctx, store.BudgetRetry, now)
	if !ok || d.Allowed {
		return nil
	}
	return &BudgetSpent{Origin: l.Origin, Retries: d.Retries, Firsts: d.Firsts, Allowance: d.Allowance, Budget: *l.Budget}
}

func (l *Limits) budget(ctx context.Context, kind string, now time.Time) (store.BudgetDecision, bool) {
	d, err := l.Store.Budget(ctx, store.BudgetParams{Origin: l.Origin, Kind: kind, Percent: l.Budget.Percent,
		Min: l.Budget.Min, Window: l.Budget.Window, Route: l.route}, now)
	if err != nil {
		if ctx.Err() == nil {
			l.stepAside(err)
		}
		return d, false
	}
	l.route = d.Route
	return d, true
}

// Extra asks for one more request than the attempt itself, a hedge (fetch
// sends them): a slot of the rate (or, with Auto, of the learned quota)
// free now (it waits for none) and a retry within the budget, both
// counted when granted. It returns "" when the request
// may go, else why not.
func (l *Limits) Extra(ctx context.Context, now time.Time) string {
	if l == nil || l.down {
		return ""
	}
	// A hedge is a request the rate, or the server's quota under Auto,
	// counts too: it takes a slot free now, or is not sent (a tour's copy
	// went out past "1 left", and 100 ms after a 17.5 s paced wait).
	s, err := l.Take(ctx, now, 0)
	switch {
	case (err != nil || !s.Reserved) && l.Rate != nil:
		return "no free slot of --rate now"
	case err != nil || !s.Reserved:
		return "no free slot of the server's quota now (--rate auto)"
	}
	if spent := l.retry(ctx, now); spent != nil {
		// Not sent after all: the slot goes back.
		l.Refund(ctx, s, now)
		return "the retry budget is spent: " + spent.String()
	}
	return ""
}
