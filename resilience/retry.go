package resilience

import (
	"context"
	"errors"
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
}

// RetryInfo describes a retry about to happen, for progress logs.
type RetryInfo struct {
	Attempt  int // the attempt that failed
	Attempts int // the total allowed
	Err      error
	Wait     time.Duration
	// RetryAfter is the server's Retry-After for this attempt, -1 if none.
	RetryAfter time.Duration
}

// Trace is what a run did, on success and on failure.
type Trace struct {
	Attempts []AttemptRecord
	// RetryAfter is the last Retry-After the server sent, -1 if none.
	RetryAfter time.Duration
	// Breaker is the breaker state after the run (zero if the breaker is off).
	Breaker Snapshot
	Elapsed time.Duration
}

// Executor runs the retry loop around one AttemptFunc:
// Retry(Breaker(attempt)). The fallback step is the caller's.
type Executor struct {
	Policy Policy
	// Breaker admits each attempt and records its outcome; nil turns it off.
	Breaker *Breaker
	// Clock defaults to the system clock.
	Clock Clock
	// NewTimer makes the wait timer; nil uses a real timer.
	NewTimer func() Timer
	// OnRetry, if set, is called before each wait.
	OnRetry func(RetryInfo)
	// Classify, if set, replaces Classify (the check command uses it to
	// turn failed expectations into retryable failures).
	Classify func(method string, a Attempt, p Policy) Verdict
}

// Run performs the attempts until one succeeds, a failure is permanent,
// the attempts or the time run out, the breaker rejects an attempt, or ctx
// is cancelled. A nil error means the last attempt succeeded. Otherwise the
// error is a *RunError whose Class is a sentinel, or context.Cause(ctx)
// when ctx was cancelled.
func (e *Executor) Run(ctx context.Context, method string, fn AttemptFunc) (*Trace, error) {
	clock := e.Clock
	if clock == nil {
		clock = SystemClock
	}
	p := e.Policy
	start := clock.Now()
	tr := &Trace{RetryAfter: -1}
	defer func() { tr.Elapsed = clock.Now().Sub(start) }()

	var deadline time.Time
	if p.MaxTime > 0 {
		deadline = start.Add(p.MaxTime)
		var cancel context.CancelFunc
		ctx, cancel = context.WithDeadlineCause(ctx, time.Now().Add(p.MaxTime), ErrDeadline)
		defer cancel()
	}

	stop := &stopReason{}
	ra := &retryAfterBackOff{BackOff: NewBackOff(p, clock), maxWait: p.MaxRetryAfter,
		deadline: deadline, clock: clock, stop: stop}
	attempts := max(p.Attempts, 1)
	b := backoff.WithContext(backoff.WithMaxRetries(
		&deadlineBackOff{BackOff: ra, deadline: deadline, lastChance: p.LastChance, clock: clock, stop: stop},
		uint64(attempts-1)), ctx)

	classify := e.Classify
	if classify == nil {
		classify = func(m string, a Attempt, p Policy) Verdict { return Classify(m, a, p.RetryOn, p.RetryUnsafe) }
	}

	var (
		n        int
		lastErr  error
		rejected *OpenError
		unsafe   bool
		lastKind Kind
		lastRA   time.Duration = -1
	)
	op := func() error {
		n++
		ticket, err := e.Breaker.Admit(clock.Now())
		if err != nil {
			errors.As(err, &rejected)
			return backoff.Permanent(err)
		}
		actx, cancel := ctx, context.CancelFunc(func() {})
		if p.Timeout > 0 {
			actx, cancel = context.WithTimeout(ctx, p.Timeout)
		}
		t0 := clock.Now()
		a := fn(actx, n)
		if a.Err != nil {
			switch {
			case ctx.Err() != nil:
				// The run itself ended (signal or --max-time), not the attempt.
				a.Err = context.Canceled
			case actx.Err() != nil:
				a.Err = &TimeoutError{After: p.Timeout, Err: a.Err}
			}
		}
		cancel()
		v := classify(method, a, p)
		tr.Attempts = append(tr.Attempts, AttemptRecord{N: n, Status: a.Status, Err: v.Err, Duration: clock.Now().Sub(t0)})
		e.Breaker.Record(ticket, v, clock.Now())
		lastErr, lastKind, lastRA = v.Err, v.Kind, -1
		if a.Header != nil && v.Kind == Retryable {
			if d, ok := ParseRetryAfter(a.Header.Get("Retry-After"), clock.Now()); ok {
				ra.set(d)
				tr.RetryAfter, lastRA = d, d
			}
		}
		switch v.Kind {
		case Success:
			return nil
		case Retryable:
			return v.Err
		default:
			unsafe = v.UnsafeNotRetried
			return backoff.Permanent(v.Err)
		}
	}
	notify := func(err error, wait time.Duration) {
		last := &tr.Attempts[len(tr.Attempts)-1]
		last.Wait = wait
		if e.OnRetry != nil {
			e.OnRetry(RetryInfo{Attempt: n, Attempts: attempts, Err: err, Wait: wait, RetryAfter: lastRA})
		}
	}
	var timer Timer
	if e.NewTimer != nil {
		timer = e.NewTimer()
	}
	err := backoff.RetryNotifyWithTimer(op, b, notify, timer)
	tr.Breaker = e.Breaker.snapshot()
	if err == nil {
		return tr, nil
	}
	return tr, e.runError(ctx, err, lastErr, lastKind, rejected, unsafe, stop, tr)
}

// runError maps the loop's ending to the run's error.
func (e *Executor) runError(ctx context.Context, err error, last error, lastKind Kind, rejected *OpenError,
	unsafe bool, stop *stopReason, tr *Trace) error {
	if ctx.Err() != nil {
		cause := context.Cause(ctx)
		if errors.Is(cause, ErrDeadline) {
			return &RunError{Class: ErrDeadline, Last: last, Attempts: len(tr.Attempts), RetryAfter: tr.RetryAfter,
				Detail: "--max-time " + e.Policy.MaxTime.String() + " passed"}
		}
		return cause
	}
	re := &RunError{Last: last, Attempts: len(tr.Attempts), RetryAfter: tr.RetryAfter}
	switch {
	case rejected != nil && len(tr.Attempts) == 0:
		re.Class, re.Last = ErrCircuitOpen, rejected
	case rejected != nil:
		re.Class, re.Detail = ErrRetriesExhausted, "circuit opened, retries stopped"
	case stop.class == ErrRateLimited:
		re.Class, re.RetryAfter = ErrRateLimited, stop.wait
		re.Detail = "beyond --max-retry-after or the time left"
	case stop.class == ErrDeadline:
		re.Class = ErrDeadline
		re.Detail = "next retry in " + stop.wait.Round(time.Millisecond).String() + " would pass --max-time"
	case unsafe:
		re.Class = ErrPermanent
		re.Detail = "not retried: the request may have reached the server (use --retry-unsafe)"
	case lastKind == Cancelled:
		return err
	case lastKind == Permanent:
		re.Class = ErrPermanent
	default:
		re.Class = ErrRetriesExhausted
	}
	return re
}
