package resilience

import (
	"context"
	"errors"
	"net/http"
	"time"

	"github.com/cenkalti/backoff/v4"
)

// AttemptFunc performs attempt n (1-based) under ctx, which carries the
// per-attempt timeout. It must return promptly once ctx is done.
type AttemptFunc func(ctx context.Context, n int) Attempt

// AttemptRecord is the trace of one attempt, for reports.
type AttemptRecord struct {
	N        int
	Status   int // 0: no response
	Err      error
	Duration time.Duration
	// Wait is the wait that followed this attempt (0 if none).
	Wait time.Duration
	// RateWait is the wait for a rate slot before this attempt (0 if none).
	RateWait time.Duration
	// Detail is what the caller wants kept with the attempt (its
	// Attempt.Detail); resilience never looks at it.
	Detail any
}

// RetryInfo describes a retry about to happen, for progress logs.
type RetryInfo struct {
	Attempt int // the attempt that failed
	// Attempts is the total allowed; 0 when the policy sets no limit.
	Attempts int
	Err      error
	Wait     time.Duration
	// RetryAfter is the server's Retry-After for this attempt, -1 if none.
	RetryAfter time.Duration
	// QuotaReset: RetryAfter is not a Retry-After but the reset of a
	// spent quota the response advertised (it had no Retry-After).
	QuotaReset bool
}

// HoldInfo describes a wait for a key's hold, for progress logs.
type HoldInfo struct {
	Key   string
	Until time.Time
	Wait  time.Duration
	// Quota: the caller's learned quota is spent until Until (--rate
	// auto). Own: the hold is one this run recorded from a response of
	// its own (its Retry-After or spent quota), not an earlier run's.
	Quota, Own bool
}

// Trace is what a run did, on success and on failure.
type Trace struct {
	// Attempts are the records of the attempts, in order; with
	// Executor.Keep, the first and the last of them.
	Attempts []AttemptRecord
	// Omitted counts the records Executor.Keep left out: the attempts
	// after the first OmittedAfter records of Attempts.
	Omitted, OmittedAfter int
	// Held is the time spent waiting for holds (a Retry-After that an
	// earlier run, here or elsewhere, recorded on the key).
	Held time.Duration
	// RateWait is the time spent waiting for rate slots (Limits.Rate).
	RateWait time.Duration
	// RetryAfter is the last Retry-After the server sent, -1 if none.
	RetryAfter time.Duration
	// Breaker is the breaker state after the run (zero if the breaker is off).
	Breaker Snapshot
	Elapsed time.Duration
}

// Count is the number of attempts the run made, listed or not.
func (t *Trace) Count() int { return len(t.Attempts) + t.Omitted }

// add appends rec. With keep > 0 it keeps at most keep records: the
// first keep/2 and the latest; a record dropped from between them is
// counted in Omitted and handed to omit (if not nil).
func (t *Trace) add(rec AttemptRecord, keep int, omit func(AttemptRecord)) {
	if keep <= 0 || len(t.Attempts) < keep {
		t.Attempts = append(t.Attempts, rec)
		return
	}
	head := keep / 2
	if omit != nil {
		omit(t.Attempts[head])
	}
	copy(t.Attempts[head:], t.Attempts[head+1:])
	t.Attempts[len(t.Attempts)-1] = rec
	t.Omitted++
	t.OmittedAfter = head
}

// Executor runs the retry loop around one AttemptFunc:
// Retry(Breaker(attempt)). The fallback step is the caller's. An Executor
// holds no state of its own between runs; Run may be called concurrently
// only with distinct Breakers (a Breaker is single-goroutine).
type Executor struct {
	// Policy is used as given: every field is the caller's resolved value.
	Policy Policy
	// Classify turns each attempt into a verdict. Required: the caller
	// knows which failures of its own are final (see ClassifyFunc).
	Classify ClassifyFunc
	// Breaker admits each attempt and records its outcome; nil turns it off.
	Breaker *Breaker
	// Clock tells the time for waits, deadlines and durations; nil is the
	// system clock.
	Clock Clock
	// NewTimer makes the wait timer; nil uses a real timer.
	NewTimer func() Timer
	// OnRetry, if set, is called before each wait.
	OnRetry func(RetryInfo)
	// OnHold, if set, is called before a wait for a key's hold.
	OnHold func(HoldInfo)
	// NoHoldWait makes a run that finds its key held before its first
	// attempt end at once with that *HoldError, having sent nothing,
	// instead of waiting for the hold to end: a caller with other work (a
	// batch of URLs) does it meanwhile and runs this one again later.
	// Default false: the run waits. A hold beyond the policy's limits
	// still ends the run with ErrRateLimited, and a hold met between
	// attempts is waited out as usual, so one run's attempts stay one run.
	NoHoldWait bool
	// Limits, if set, is the run's rate and retry budget toward its
	// origin: every attempt takes a rate slot (after the breaker admits
	// it), every first attempt counts toward the budget, every retry asks
	// it first. With NoHoldWait, a first attempt whose slot is not free
	// ends the run with a *RateWaitError, reserving nothing.
	Limits *Limits
	// OnRateWait, if set, is called before a wait for a rate slot.
	OnRateWait func(RateWaitInfo)
	// Keep bounds the attempt records a run's Trace keeps, so that a run
	// with no attempt limit (a check's --wait) does not grow: the first
	// Keep/2 and the latest, the others counted in Trace.Omitted. Default
	// 0: every record.
	Keep int
	// OnOmit, if set, is called with each record Keep leaves out, for a
	// caller that counts what the records it drops said.
	OnOmit func(AttemptRecord)
}

// errNoClassify is returned by Run when the Executor has no ClassifyFunc.
var errNoClassify = errors.New("resilience: Executor.Classify is nil")

// Run performs the attempts until one succeeds, a failure is permanent,
// the attempts or the time run out, the breaker rejects an attempt, or ctx
// is cancelled. A nil error means the last attempt succeeded. Otherwise the
// error is a *RunError whose Class is a sentinel, context.Cause(ctx) when
// ctx was cancelled, or, with NoHoldWait, the *HoldError that stopped the
// run before its first attempt.
//
// ctx, cut by MaxTime, also bounds the breaker's waits for its store, so
// a store lock held by a stopped process does not outlast a signal or the
// deadline; no attempt is admitted once ctx is done.
func (e *Executor) Run(ctx context.Context, method string, fn AttemptFunc) (*Trace, error) {
	if e.Classify == nil {
		return &Trace{RetryAfter: -1}, errNoClassify
	}
	r := &run{e: e, method: method, fn: fn, p: e.Policy, clock: e.Clock,
		tr: &Trace{RetryAfter: -1}, lastRA: -1}
	if r.clock == nil {
		r.clock = SystemClock
	}
	start := r.clock.Now()
	defer func() { r.tr.Elapsed = r.clock.Now().Sub(start) }()

	var deadline time.Time
	if r.p.MaxTime > 0 {
		// One clock: the deadline the waits are measured against and the
		// one that cancels an attempt in flight both start at start.
		deadline = start.Add(r.p.MaxTime)
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeoutCause(ctx, r.p.MaxTime, ErrDeadline)
		defer cancel()
	}
	r.ctx = ctx
	r.deadline = deadline
	r.ra = &retryAfterBackOff{BackOff: NewBackOff(r.p, r.clock)}
	var b backoff.BackOff = &deadlineBackOff{BackOff: r.ra, deadline: deadline,
		lastChance: r.p.LastChance, clock: r.clock, stop: &r.stop}
	if !r.p.NoAttemptLimit {
		b = backoff.WithMaxRetries(b, uint64(max(r.p.Attempts, 1)-1))
	}
	var timer Timer
	if e.NewTimer != nil {
		timer = e.NewTimer()
	}
	err := backoff.RetryNotifyWithTimer(r.attempt, backoff.WithContext(b, ctx), r.notify, timer)
	if !r.waitFrom.IsZero() && len(r.tr.Attempts) > 0 {
		// Cut during the wait (a signal, MaxTime): a SIGINT 1.5 s into a
		// 120 s Retry-After waited 1.5 s, not 120.
		last := &r.tr.Attempts[len(r.tr.Attempts)-1]
		last.Wait = min(last.Wait, r.clock.Now().Sub(r.waitFrom))
	}
	r.tr.Breaker = e.Breaker.snapshot()
	if err == nil {
		return r.tr, nil
	}
	return r.tr, r.err(err)
}

// run is the state of one Executor.Run.
type run struct {
	e      *Executor
	ctx    context.Context
	method string
	fn     AttemptFunc
	p      Policy
	clock  Clock
	// deadline is start + MaxTime, zero without MaxTime.
	deadline time.Time
	ra       *retryAfterBackOff
	tr       *Trace

	n         int           // attempts started
	last      error         // the last attempt's failure
	lastDone  error         // the last failure of an attempt the run did not cut off
	lastDoneN int           // its number
	lastKind  Kind          // the last attempt's class
	lastRA    time.Duration // the last attempt's Retry-After, -1 if none
	// lastRAQuota: lastRA is a spent quota's reset, not a Retry-After.
	lastRAQuota bool
	// ownHold is the latest hold this run recorded (zero: none), and
	// ownQuota whether a spent quota (not a Retry-After) set it.
	ownHold  time.Time
	ownQuota bool
	rejected *OpenError // set when the breaker refused an attempt
	yielded  *HoldError // set when NoHoldWait ended the run at a hold
	// rateYielded is set when NoHoldWait ended the run at a busy rate.
	rateYielded *RateWaitError
	// rateWait is the wait for the slot of the attempt about to start.
	rateWait time.Duration
	// waitFrom is when the wait after the last attempt began (notify),
	// zero once the next attempt starts: a run that ends inside the wait
	// records the part of it that passed, not the wait planned.
	waitFrom time.Time
	// budgetSpent is set when the retry budget refused a retry.
	budgetSpent *BudgetSpent
	// breakerOpened is set when the breaker was seen open after a failure.
	breakerOpened bool
	unsafe        bool       // the last failure was not retried: unsafe method
	stop          stopReason // set when a wait decorator ended the retries
}

// admit asks the breaker for admission, first waiting out a hold on the
// key when the policy allows the wait.
func (r *run) admit() (Ticket, error) {
	for {
		now := r.clock.Now()
		ticket, err := r.e.Breaker.Admit(r.ctx, now)
		if err == nil {
			// An exhausted learned quota (--rate auto) is a hold too.
			err = r.takeSlot(ticket)
		}
		var hold *HoldError
		if !errors.As(err, &hold) {
			return ticket, err
		}
		wait := hold.Until.Sub(now)
		own := !r.ownHold.IsZero() && !hold.Until.After(r.ownHold)
		quota := hold.Quota || own && r.ownQuota
		if r.p.tooLong(wait, now, r.deadline) {
			r.stop = stopReason{class: ErrRateLimited, wait: wait, hold: hold,
				left: r.p.leftOf(wait, now, r.deadline), quota: quota, own: own}
			return ticket, err
		}
		if r.e.NoHoldWait && r.n == 0 {
			r.yielded = hold
			return ticket, err
		}
		if r.e.OnHold != nil {
			r.e.OnHold(HoldInfo{Key: hold.Key, Until: hold.Until, Wait: wait, Quota: quota, Own: own})
		}
		start := r.clock.Now()
		err = r.sleep(wait)
		r.tr.Held += r.clock.Now().Sub(start)
		if err != nil {
			return ticket, err
		}
	}
}

// takeSlot takes the origin's next rate slot for an admitted attempt and
// waits for it. A slot beyond the time left (or, with NoHoldWait before
// the first attempt, any wait) is not reserved: the run ends, and a
// half-open trial the breaker granted is released.
func (r *run) takeSlot(ticket Ticket) error {
	r.rateWait = 0
	if r.e.Limits == nil {
		return nil
	}
	now := r.clock.Now()
	maxWait := time.Duration(-1)
	if !r.deadline.IsZero() {
		maxWait = max(r.deadline.Sub(now), 0)
	}
	yield := r.e.NoHoldWait && r.n == 0
	if yield {
		maxWait = 0
	}
	slot, err := r.e.Limits.Take(r.ctx, now, maxWait)
	ok, wait := slot.Reserved, slot.Wait
	release := func() {
		if ticket.trial {
			r.e.Breaker.Record(r.ctx, ticket, Verdict{Kind: Cancelled, Breaker: Ignore}, r.clock.Now(), time.Time{})
		}
	}
	switch {
	case err != nil:
		release()
		return err
	case slot.Exhausted:
		release()
		return &HoldError{Key: r.e.Limits.Origin, Until: now.Add(wait), Quota: true}
	case !ok && yield && (r.deadline.IsZero() || wait <= r.deadline.Sub(now)):
		release()
		r.rateYielded = &RateWaitError{Origin: r.e.Limits.Origin, Until: now.Add(wait)}
		return r.rateYielded
	case !ok:
		release()
		r.stop = stopReason{class: ErrDeadline, wait: wait, rate: true}
		return errRateBeyondDeadline
	case wait > 0:
		if r.e.OnRateWait != nil {
			r.e.OnRateWait(RateWaitInfo{Origin: r.e.Limits.Origin, Wait: wait})
		}
		err := r.sleep(wait)
		r.rateWait = r.clock.Now().Sub(now)
		r.tr.RateWait += r.rateWait
		if err != nil {
			// Cut off before sending: the slot goes back (Limits.Refund).
			r.e.Limits.Refund(r.ctx, slot, r.clock.Now())
			release()
			return err
		}
	}
	return nil
}

// errRateBeyondDeadline ends a run whose next rate slot is beyond its
// deadline (r.stop says how far).
var errRateBeyondDeadline = errors.New("the next rate slot is beyond the time limit")

// sleep waits d on the executor's timer, or until the run ends.
func (r *run) sleep(d time.Duration) error {
	t := NewRealTimer()
	if r.e.NewTimer != nil {
		t = r.e.NewTimer()
	}
	t.Start(d)
	defer t.Stop()
	select {
	case <-t.C():
		return nil
	case <-r.ctx.Done():
		return context.Cause(r.ctx)
	}
}

// attempt is one pass of backoff's operation: admission, the attempt,
// classification and the breaker's record of it.
func (r *run) attempt() error {
	r.waitFrom = time.Time{}
	ticket, err := r.admit()
	if err != nil {
		errors.As(err, &r.rejected)
		return backoff.Permanent(err)
	}
	if r.n == 0 {
		r.e.Limits.first(r.ctx, r.clock.Now())
	}
	r.n++
	actx, cancel := r.ctx, context.CancelFunc(func() {})
	if r.p.Timeout > 0 {
		actx, cancel = context.WithTimeout(r.ctx, r.p.Timeout)
	}
	t0 := r.clock.Now()
	a := r.fn(actx, r.n)
	if a.Err != nil {
		switch {
		case r.ctx.Err() != nil:
			// The run itself ended (signal or MaxTime), not the attempt.
			a.Err = &cutError{cause: context.Cause(r.ctx), err: a.Err}
		case actx.Err() != nil:
			a.Err = &TimeoutError{After: r.p.Timeout, Err: a.Err}
		}
	}
	cancel()
	v := r.e.Classify(r.method, a, r.p)
	now := r.clock.Now()
	r.tr.add(AttemptRecord{N: r.n, Status: a.Status, Err: v.Err, Duration: now.Sub(t0), Detail: a.Detail, RateWait: r.rateWait}, r.e.Keep, r.e.OnOmit)
	ra, hasRA := time.Duration(0), false
	if v := a.Header.Get("Retry-After"); v != "" {
		// The server's Date is parsed only when there is something to
		// count from it.
		ra, hasRA = ParseRetryAfter(v, serverNow(a.Header, now))
	}
	var holdUntil time.Time
	if hasRA && ra > 0 && (a.Status == http.StatusTooManyRequests || a.Status == http.StatusServiceUnavailable) {
		// The server's "come back later" is for every run on the key.
		holdUntil = now.Add(ra)
	}
	q, hasQ := Quota{}, false
	if a.Header != nil {
		q, hasQ = ParseQuota(a.Header, now)
		// A reset beyond a day holds and paces for a day (Capped).
		q = q.Capped()
	}
	raQuota, quotaHold := false, false
	if hasQ && q.Exhausted() {
		// Nothing left until the reset, whatever the status: a hold for
		// every run of the identity, as a Retry-After is; and a refusal
		// without a Retry-After is retried after the reset.
		if reset := now.Add(q.Reset); reset.After(holdUntil) {
			holdUntil, quotaHold = reset, true
		}
		if !hasRA && v.Kind == Retryable && (a.Status == http.StatusTooManyRequests || a.Status == http.StatusServiceUnavailable) {
			ra, hasRA, raQuota = q.Reset, true, true
		}
	}
	if holdUntil.After(r.ownHold) {
		r.ownHold, r.ownQuota = holdUntil, quotaHold
	}
	r.e.Breaker.Record(r.ctx, ticket, v, now, holdUntil)
	if hasQ {
		r.e.Limits.Learn(r.ctx, q, now)
	}
	r.last, r.lastKind, r.lastRA, r.lastRAQuota = v.Err, v.Kind, -1, false
	if v.Kind != Cancelled {
		r.lastDone, r.lastDoneN = v.Err, r.tr.Count()
	}
	if quotaHold && v.Kind == Retryable && r.holdsEnforced() {
		if w := holdUntil.Sub(now); r.p.retryAfterTooLong(w, now, r.deadline) {
			// The spent quota holds the next attempt past what the policy
			// allows, whatever shorter Retry-After came beside it: the run
			// ends now, as it would before that attempt, rather than say
			// "retrying in 2s", wait, and then end. Only where something
			// holds the next attempt: without a breaker or --rate auto,
			// nothing does, and the Retry-After is waited as before.
			r.tr.RetryAfter = w
			r.stop = stopReason{class: ErrRateLimited, wait: w, left: r.p.leftOf(w, now, r.deadline), quota: true, own: true}
			return backoff.Permanent(v.Err)
		}
	}
	if hasRA && v.Kind == Retryable {
		r.ra.set(ra)
		r.tr.RetryAfter, r.lastRA, r.lastRAQuota = ra, ra, raQuota
		if r.p.retryAfterTooLong(ra, now, r.deadline) {
			// Whether or not attempts remain: the caller must learn when
			// to come back, not that retries ran out.
			r.stop = stopReason{class: ErrRateLimited, wait: ra, left: r.p.leftOf(ra, now, r.deadline), quota: raQuota, own: true}
			return backoff.Permanent(v.Err)
		}
	}
	if v.Kind == Retryable && (r.p.NoAttemptLimit || r.n < r.p.Attempts) && r.e.Breaker.refuses(now) {
		// This failure (or another process's) opened the breaker: the
		// next attempt would be refused, so neither wait nor say
		// "retrying".
		r.breakerOpened = true
		return backoff.Permanent(v.Err)
	}
	if v.Kind == Retryable && (r.p.NoAttemptLimit || r.n < r.p.Attempts) {
		if spent := r.e.Limits.retry(r.ctx, now); spent != nil {
			r.budgetSpent = spent
			return backoff.Permanent(v.Err)
		}
	}
	switch v.Kind {
	case Success:
		return nil
	case Retryable:
		return v.Err
	default:
		r.unsafe = v.UnsafeNotRetried
		return backoff.Permanent(v.Err)
	}
}

// holdsEnforced reports whether this run's next attempt would wait for
// a hold it recorded: the breaker keeps holds, and --rate auto (Limits
// with Auto and no Rate) waits for its learned quota's reset.
func (r *run) holdsEnforced() bool {
	return r.e.Breaker != nil || r.e.Limits != nil && r.e.Limits.Auto && r.e.Limits.Rate == nil
}

// notify records the wait that follows the last attempt and reports it.
func (r *run) notify(err error, wait time.Duration) {
	r.tr.Attempts[len(r.tr.Attempts)-1].Wait = wait
	r.waitFrom = r.clock.Now()
	if r.e.OnRetry == nil {
		return
	}
	limit := r.p.Attempts
	if r.p.NoAttemptLimit {
		limit = 0
	}
	r.e.OnRetry(RetryInfo{Attempt: r.n, Attempts: limit, Err: err, Wait: wait, RetryAfter: r.lastRA, QuotaReset: r.lastRAQuota})
}

// err maps the loop's ending to the run's error.
func (r *run) err(loopErr error) error {
	if r.ctx.Err() != nil {
		cause := context.Cause(r.ctx)
		if errors.Is(cause, ErrDeadline) {
			// The attempt MaxTime cut off says nothing about the server:
			// report the last one that ended on its own.
			re := &RunError{Class: ErrDeadline, Last: r.lastDone, Attempts: r.tr.Count(),
				RetryAfter: r.tr.RetryAfter, Reason: ReasonTimeUp, Limit: r.p.MaxTime}
			var cut *cutError
			if errors.As(r.last, &cut) {
				// The time ran out during an attempt: name it, and how
				// far it had got, beside the last one that ended.
				re.CutAttempt, re.CutDetail = r.tr.Count(), timeoutDetail(cut.err)
				if r.lastDone != nil {
					re.LastN = r.lastDoneN
				}
			}
			return re
		}
		return cause
	}
	if r.yielded != nil {
		return r.yielded
	}
	if r.rateYielded != nil {
		return r.rateYielded
	}
	re := &RunError{Last: r.last, Attempts: r.tr.Count(), RetryAfter: r.tr.RetryAfter}
	switch {
	case r.stop.hold != nil:
		// Held beyond what the policy allows: no request was sent for it.
		re.Class, re.RetryAfter, re.Reason, re.Limit = ErrRateLimited, r.stop.wait, ReasonHeld, r.p.MaxRetryAfter
		r.stop.explain(re, r.p)
		if r.tr.Count() == 0 {
			re.Last = r.stop.hold
		}
	case r.stop.rate:
		re.Class, re.Reason, re.Wait, re.Limit = ErrDeadline, ReasonRateWait, r.stop.wait, r.p.MaxTime
	case r.budgetSpent != nil:
		re.Class, re.Reason, re.Budget = ErrRetryBudget, ReasonBudgetSpent, r.budgetSpent
	case r.rejected != nil && r.tr.Count() == 0:
		re.Class, re.Last = ErrCircuitOpen, r.rejected
	case r.rejected != nil, r.breakerOpened:
		re.Class, re.Reason = ErrRetriesExhausted, ReasonBreakerOpened
	case r.stop.class == ErrRateLimited:
		re.Class, re.RetryAfter, re.Reason, re.Limit = ErrRateLimited, r.stop.wait, ReasonRetryAfterTooLong, r.p.MaxRetryAfter
		r.stop.explain(re, r.p)
	case r.stop.class == ErrDeadline:
		re.Class, re.Reason, re.Wait, re.Limit = ErrDeadline, ReasonWaitPastDeadline, r.stop.wait, r.p.MaxTime
	case r.unsafe:
		re.Class, re.Reason = ErrPermanent, ReasonUnsafeMethod
	case r.lastKind == Cancelled:
		return loopErr
	case r.lastKind == Permanent:
		re.Class = ErrPermanent
	default:
		re.Class = ErrRetriesExhausted
	}
	return re
}

// explain tells re which bound a refused server wait passed and what
// the wait was.
func (s stopReason) explain(re *RunError, p Policy) {
	re.Quota, re.Own = s.quota, s.own
	if s.left >= 0 {
		re.PastDeadline, re.Left, re.Limit = true, s.left, p.MaxTime
	}
}

// cutError is the failure of an attempt that the end of its run cut off
// (a signal, MaxTime): it is a cancellation, and says by what. err is what
// the attempt itself saw; it is not unwrapped, so that the cut classifies
// as a cancellation whatever it was.
type cutError struct{ cause, err error }

func (e *cutError) Error() string { return "cut off: " + e.cause.Error() }

// Is makes a cut attempt a cancellation for classification.
func (e *cutError) Is(target error) bool { return target == context.Canceled }

// NewRealTimer returns a Timer on the system clock, for callers whose
// tests inject another.
func NewRealTimer() Timer { return &realTimer{} }

// realTimer is a Timer on the system clock.
type realTimer struct{ t *time.Timer }

func (t *realTimer) Start(d time.Duration) {
	if t.t == nil {
		t.t = time.NewTimer(d)
		return
	}
	t.t.Reset(d)
}

func (t *realTimer) Stop() {
	if t.t != nil {
		t.t.Stop()
	}
}

func (t *realTimer) C() <-chan time.Time { return t.t.C }

// serverNow is the server's time of a response: its Date header when it
// has one that parses, else now. An HTTP-date Retry-After is a time on
// the server's clock, so it is counted from the server's Date: a node
// whose clock is off then waits (and holds the fleet) as long as the
// server asked, not an hour more or less.
func serverNow(h http.Header, now time.Time) time.Time {
	if t, err := http.ParseTime(h.Get("Date")); err == nil {
		return t
	}
	return now
}

// later is the later of two times.
func later(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}
