package resilience

import (
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

// Policy holds the retry settings. Zero values are not defaults: callers
// build a Policy from flags (see DefaultPolicy).
type Policy struct {
	// Attempts is the total number of attempts, at least 1.
	Attempts int
	// Delay is the first wait.
	Delay time.Duration
	// Multiplier grows each wait; 1 keeps the delay fixed.
	Multiplier float64
	// Cap is the longest computed wait (a Retry-After may exceed it).
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
	// one stops the run with ErrRateLimited.
	MaxRetryAfter time.Duration
	// LastChance, when positive, shortens a computed wait that would end
	// past MaxTime so that one more attempt starts LastChance before the
	// end (check --wait uses it: keep trying until the time is up). Zero
	// stops at once instead: a fetch does not wait only to be cut off.
	LastChance time.Duration
}

// DefaultPolicy returns the documented defaults: 3 attempts, 1s delay,
// multiplier 2, cap 10s, jitter 0.5, no max time, 30s per attempt, the
// default retried statuses and a 60s Retry-After limit.
func DefaultPolicy() Policy {
	return Policy{
		Attempts: 3, Delay: time.Second, Multiplier: 2, Cap: 10 * time.Second,
		Jitter: 0.5, Timeout: 30 * time.Second, RetryOn: MustStatusSet(DefaultRetryOn),
		MaxRetryAfter: 60 * time.Second,
	}
}

// NewBackOff returns the exponential schedule of p, clamped to p.Cap:
// wait n = min(cap, delay × multiplier^(n-1)) randomized by ±jitter, then
// clamped to cap again. It does not count attempts or look at deadlines.
func NewBackOff(p Policy, clock Clock) backoff.BackOff {
	exp := backoff.NewExponentialBackOff(
		backoff.WithInitialInterval(p.Delay),
		backoff.WithMultiplier(p.Multiplier),
		backoff.WithMaxInterval(p.Cap),
		backoff.WithRandomizationFactor(p.Jitter),
		backoff.WithMaxElapsedTime(0),
		backoff.WithClockProvider(clock),
	)
	return &capBackOff{BackOff: exp, cap: p.Cap}
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
}

// retryAfterBackOff honours a server's Retry-After: the next wait is
// max(Retry-After, computed wait). A Retry-After beyond maxWait, or one that
// would end after the deadline, stops the retries with ErrRateLimited.
type retryAfterBackOff struct {
	backoff.BackOff
	maxWait  time.Duration
	deadline time.Time // zero: none
	clock    Clock
	stop     *stopReason

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
	ra := b.pending
	b.has = false
	if ra > b.maxWait || (!b.deadline.IsZero() && b.clock.Now().Add(ra).After(b.deadline)) {
		*b.stop = stopReason{class: ErrRateLimited, wait: ra}
		return backoff.Stop
	}
	return max(next, ra)
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
