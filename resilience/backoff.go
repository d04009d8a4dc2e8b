package resilience

import (
	"math"
	"time"

	"github.com/cenkalti/backoff/v4"
)

// Clock tells the time. The zero Executor uses the system clock; tests
// inject their own to move time without sleeping.
type Clock interface {
	Now() time.Time
}

type systemClock struct{}

func (systemClock) Now() time.Time { return time.Now() }

// SystemClock is the real clock.
var SystemClock Clock = systemClock{}

// Timer is the wait primitive of the retry loop (backoff.Timer): Start arms
// it, C fires when the wait is over, Stop disarms it.
type Timer = backoff.Timer

// Policy holds the retry settings, resolved by the caller: no field has a
// default that this package fills in. Where a zero has a meaning, it is
// the one documented on the field ("no bound" for every limit).
type Policy struct {
	// Attempts is the total number of attempts, at least 1, unless
	// NoAttemptLimit is set.
	Attempts int
	// NoAttemptLimit lets the run go on until it succeeds, fails for good
	// or runs out of MaxTime (check --wait); Attempts is then ignored.
	NoAttemptLimit bool
	// Delay is the first wait; 0 retries at once.
	Delay time.Duration
	// Multiplier grows each wait, at least 1; 1 keeps the delay fixed.
	Multiplier float64
	// Cap is the longest computed wait (a Retry-After may exceed it);
	// 0 means no cap.
	Cap time.Duration
	// Jitter randomizes each wait by ±Jitter (0..1) before the cap.
	Jitter float64
	// MaxTime bounds the whole run; 0 means no bound.
	MaxTime time.Duration
	// Timeout bounds one attempt, headers and body; 0 means no bound.
	Timeout time.Duration
	// RetryOn is the set of retried statuses.
	RetryOn StatusSet
	// RetryUnsafe retries non-idempotent methods like the others.
	RetryUnsafe bool
	// MaxRetryAfter is the longest server-requested wait honoured; a longer
	// one stops the run with ErrRateLimited. 0 means no bound (MaxTime and
	// ParseRetryAfter's one-day sanity bound still apply).
	MaxRetryAfter time.Duration
	// LastChance, when positive, shortens a wait that would end past
	// MaxTime, a server's Retry-After included, so that one more attempt
	// starts LastChance before the end (check --wait uses it: keep trying
	// until the time is up, as a maintenance page's Retry-After: 3600 may
	// be over long before its hour). Zero stops at once instead: a fetch
	// does not wait only to be cut off, and learns when to come back.
	LastChance time.Duration
}

// retryAfterTooLong is tooLong for a server's Retry-After: with
// LastChance, a wait past the deadline is not too long (the deadline cuts
// it to the last chance instead).
func (p Policy) retryAfterTooLong(d time.Duration, now, deadline time.Time) bool {
	if p.LastChance > 0 {
		return p.MaxRetryAfter > 0 && d > p.MaxRetryAfter
	}
	return p.tooLong(d, now, deadline)
}

// tooLong reports whether a server-requested wait of d, starting at now,
// is more than the policy allows: beyond MaxRetryAfter or past deadline
// (zero: none).
func (p Policy) tooLong(d time.Duration, now, deadline time.Time) bool {
	return (p.MaxRetryAfter > 0 && d > p.MaxRetryAfter) || (!deadline.IsZero() && now.Add(d).After(deadline))
}

// leftOf is what a too-long wait of d at now passed: -1 when it is beyond
// MaxRetryAfter, else the time left before deadline (the bound it passed).
func (p Policy) leftOf(d time.Duration, now, deadline time.Time) time.Duration {
	if p.MaxRetryAfter > 0 && d > p.MaxRetryAfter || deadline.IsZero() {
		return -1
	}
	return max(deadline.Sub(now), 0)
}

// NewBackOff returns the exponential schedule of p, clamped to p.Cap:
// wait n = min(cap, delay × multiplier^(n-1)) randomized by ±jitter, then
// clamped to cap again. It does not count attempts or look at deadlines.
func NewBackOff(p Policy, clock Clock) backoff.BackOff {
	capped := p.Cap
	if capped <= 0 {
		capped = math.MaxInt64 // no cap
	}
	exp := backoff.NewExponentialBackOff(
		backoff.WithInitialInterval(p.Delay),
		backoff.WithMultiplier(p.Multiplier),
		backoff.WithMaxInterval(capped),
		backoff.WithRandomizationFactor(p.Jitter),
		backoff.WithMaxElapsedTime(0),
		backoff.WithClockProvider(clock),
	)
	return &capBackOff{BackOff: exp, cap: capped}
}

// capBackOff clamps every wait of its delegate to cap, because jitter may
// push a randomized wait above the delegate's own maximum interval.
type capBackOff struct {
	backoff.BackOff
	cap time.Duration
}

func (b *capBackOff) NextBackOff() time.Duration {
	next := b.BackOff.NextBackOff()
	switch {
	case next == backoff.Stop:
		return next
	case next > b.cap, next < 0:
		// Negative: jitter on a huge interval overflowed time.Duration.
		return b.cap
	}
	return next
}

// stopReason records why a decorator ended the retries early.
type stopReason struct {
	class error         // ErrRateLimited or ErrDeadline; nil while running
	wait  time.Duration // the wait that was refused
	hold  *HoldError    // set when the refused wait was a key's hold
	rate  bool          // set when the refused wait was for a rate slot
	// left is the time left of MaxTime when it, not MaxRetryAfter, is
	// the bound the wait passed; -1 otherwise.
	left time.Duration
	// quota: the wait is a spent quota's reset (no Retry-After said it).
	quota bool
	// own: the hold is one this run recorded itself.
	own bool
}

// retryAfterBackOff honours a server's Retry-After: the next wait is
// max(Retry-After, computed wait). Whether the Retry-After is acceptable at
// all is decided when the attempt is classified (see run.attempt), so that
// a last attempt with a Retry-After beyond the limit is reported as rate
// limited too.
type retryAfterBackOff struct {
	backoff.BackOff
	pending time.Duration
	has     bool
}

// set records the Retry-After of the latest response, to be used by the
// next NextBackOff call only.
func (b *retryAfterBackOff) set(d time.Duration) { b.pending, b.has = d, true }

func (b *retryAfterBackOff) Reset() {
	b.has = false
	b.BackOff.Reset()
}

func (b *retryAfterBackOff) NextBackOff() time.Duration {
	next := b.BackOff.NextBackOff()
	if next == backoff.Stop || !b.has {
		return next
	}
	b.has = false
	return max(next, b.pending)
}

// deadlineBackOff stops the retries with ErrDeadline when the next wait
// would end after the deadline: waiting only to be cut off is pointless.
type deadlineBackOff struct {
	backoff.BackOff
	deadline   time.Time
	lastChance time.Duration
	clock      Clock
	stop       *stopReason
}

func (b *deadlineBackOff) NextBackOff() time.Duration {
	next := b.BackOff.NextBackOff()
	if next == backoff.Stop || b.deadline.IsZero() {
		return next
	}
	left := b.deadline.Sub(b.clock.Now())
	if next <= left {
		return next
	}
	if b.lastChance > 0 && left > b.lastChance {
		return left - b.lastChance
	}
	*b.stop = stopReason{class: ErrDeadline, wait: next}
	return backoff.Stop
}
