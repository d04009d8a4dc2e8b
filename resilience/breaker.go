package resilience

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/refetch/refetch/internal/redact"
	"github.com/refetch/refetch/resilience/store"
)

// State is a circuit breaker state (see package store).
type State = store.State

// Breaker states.
const (
	StateClosed   = store.StateClosed
	StateOpen     = store.StateOpen
	StateHalfOpen = store.StateHalfOpen
)

// Record is the persisted state of one breaker key (see package store).
type Record = store.Record

// Store keeps breaker records and decides every step (see package store).
type Store = store.Store

// Settings configure a Breaker. Every field is the caller's resolved
// value: NewBreaker fills in no defaults and refuses what makes no sense.
type Settings struct {
	// Key names the breaker, e.g. "https://api.example.com:443". Required.
	Key string
	// Failures is the number of consecutive failed attempts that opens the
	// breaker, at least 1. (A caller that wants no breaker has none: a nil
	// *Breaker admits everything.)
	Failures int
	// Quorum is how many distinct nodes the failures of the streak must
	// come from before the breaker opens, 1 to 64: one machine with a
	// broken network then cannot open the breaker for a whole fleet.
	Quorum int
	// Node names this process's machine for the quorum. Required.
	Node string
	// Identity is the caller's identity (a hash of its credentials and
	// identifying headers; "" for none): holds are kept per identity, so
	// one API key's 429 does not hold back another's.
	Identity string
	// Reset is how long the breaker stays open before one trial; positive.
	Reset time.Duration
	// TrialTimeout is how long a half-open trial may run before another
	// process may try instead; positive (callers use Reset).
	TrialTimeout time.Duration
	// Store persists the state. Required.
	Store Store
	// Warn, if set, receives problems with the store; the breaker then
	// steps aside (admits everything) rather than failing the fetch.
	Warn func(error)
	// OnStateChange, if set, is called after this process changed the
	// state, with the record as saved.
	OnStateChange func(from, to State, r Record)
}

// Breaker is a circuit breaker whose state lives in a Store, so it works
// across processes: admission and recording are separate, short atomic
// steps decided by the store (see machine.go), and no lock is held while a
// request is in flight. A nil *Breaker admits everything. A Breaker is for
// one goroutine (one run); runs that share a key each use their own
// Breaker on the shared Store, which is what keeps them consistent.
type Breaker struct {
	s    Settings
	last Record
	// down is set once the store failed; the breaker then steps aside.
	down bool
	// route is the store the run's first step was answered by (a
	// FailoverStore's primary or secondary), which its later steps keep to.
	route store.Route
}

// NewBreaker returns a breaker with settings s, or an error naming the
// first setting that makes no sense.
func NewBreaker(s Settings) (*Breaker, error) {
	switch {
	case s.Key == "":
		return nil, errors.New("breaker: empty key")
	case s.Failures < 1:
		return nil, fmt.Errorf("breaker: failures must be at least 1, not %d", s.Failures)
	case s.Quorum < 1 || s.Quorum > store.MaxQuorum:
		return nil, fmt.Errorf("breaker: quorum must be from 1 to %d, not %d", store.MaxQuorum, s.Quorum)
	case s.Node == "":
		return nil, errors.New("breaker: empty node name")
	case s.Reset <= 0:
		return nil, fmt.Errorf("breaker: reset must be positive, not %s", s.Reset)
	case s.TrialTimeout <= 0:
		return nil, fmt.Errorf("breaker: trial timeout must be positive, not %s", s.TrialTimeout)
	case s.Store == nil:
		return nil, errors.New("breaker: no store")
	}
	return &Breaker{s: s, last: Record{Key: s.Key}}, nil
}

// OpenError is returned when the breaker rejects an attempt.
type OpenError struct {
	Record Record
	Now    time.Time
}

func (e *OpenError) Error() string {
	r := e.Record
	msg := r.Key + " is " + r.State.String()
	if r.OpenedAt != nil {
		// OpenedAt is when it opened, also for a half-open record (which
		// keeps no time of its own for turning half-open).
		what := " since"
		if r.State == StateHalfOpen {
			what = ", opened"
		}
		msg += fmt.Sprintf("%s %s (%s ago)", what, ClockTime(*r.OpenedAt, e.Now), roundAgo(e.Now.Sub(*r.OpenedAt)))
	}
	if r.ConsecutiveFailures > 0 {
		msg += fmt.Sprintf(" after %d consecutive failure%s", r.ConsecutiveFailures, plural(r.ConsecutiveFailures))
	}
	if r.LastError != "" {
		msg += " (last: " + r.LastError + ")"
	}
	switch {
	case r.State == StateHalfOpen:
		msg += "; a trial request is in flight"
	case r.RetryAt != nil:
		msg += fmt.Sprintf("; next trial at %s (in %s)", ClockTime(*r.RetryAt, e.Now), roundAgo(r.RetryAt.Sub(e.Now)))
	}
	return msg
}

// Is makes errors.Is(err, ErrCircuitOpen) true for an OpenError.
func (e *OpenError) Is(target error) bool { return target == ErrCircuitOpen }

// HoldError is returned by Admit while the key is held: a server asked
// (Retry-After) that no request be sent to it before Until.
type HoldError struct {
	Key   string
	Until time.Time
	// Quota: the hold is the caller's learned quota, spent until Until
	// (--rate auto), not a hold on the key.
	Quota bool
}

func (e *HoldError) Error() string {
	return fmt.Sprintf("%s asked for no requests until %s", e.Key, ClockTime(e.Until, time.Now()))
}

// ClockTime is t as a person reads it beside now, in local time: the time of
// day when t is within a day of now, else with its date (a breaker reset
// of a week opens until a day the reader must be told).
func ClockTime(t, now time.Time) string {
	if d := t.Sub(now); d < 24*time.Hour && d > -24*time.Hour {
		return t.Local().Format("15:04:05")
	}
	return t.Local().Format("2006-01-02 15:04:05")
}

func roundAgo(d time.Duration) time.Duration {
	if d < 0 {
		return 0
	}
	return d.Round(time.Second)
}

// TrialReleaseWait is how long Record waits for the store, beyond a done
// context, to release a half-open trial cut off by a signal or a
// deadline: a healthy store answers in well under a millisecond (a Redis
// across a continent in two round trips), and a stuck one delays the
// exit by this much at most.
const TrialReleaseWait = 500 * time.Millisecond

// Ticket is an admission: its outcome is recorded against the generation
// it was admitted under.
type Ticket struct {
	Generation uint64
	bypass     bool
	trial      bool // the one half-open trial, held under a lease
}

// Snapshot is the breaker's state as last seen, for reports.
type Snapshot struct {
	Key   string
	State State
	On    bool
}

func (b *Breaker) params() store.Params {
	return store.Params{Key: b.s.Key, Failures: b.s.Failures, Quorum: b.s.Quorum, Node: b.s.Node,
		Identity: b.s.Identity, Reset: b.s.Reset, TrialTimeout: b.s.TrialTimeout, Route: b.route}
}

// report calls OnStateChange for a step that changed the state.
func (b *Breaker) report(d store.Decision) {
	if b.s.OnStateChange != nil && d.From != d.Record.State {
		b.s.OnStateChange(d.From, d.Record.State, d.Record)
	}
}

// Admit decides whether an attempt may be sent now: a key held for this
// identity rejects with a *HoldError until the hold ends; closed admits;
// open rejects until the reset period has passed, then turns half-open and
// admits exactly one trial; half-open rejects while the trial's lease runs.
// Store problems make the breaker step aside.
//
// ctx bounds the wait for the store (a lock another process holds, a
// server that does not answer): once it is done, Admit returns
// context.Cause(ctx) and admits nothing, whether it was done before the
// call or ended the wait.
func (b *Breaker) Admit(ctx context.Context, now time.Time) (Ticket, error) {
	if b == nil || b.down {
		return Ticket{bypass: true}, nil
	}
	if ctx.Err() != nil {
		return Ticket{}, context.Cause(ctx)
	}
	d, err := b.s.Store.Admit(ctx, b.params(), now)
	switch {
	case err != nil && ctx.Err() != nil:
		// The run ended while waiting for the store: not the store's
		// fault, and no reason to step aside.
		return Ticket{}, context.Cause(ctx)
	case err != nil:
		b.stepAside(err)
		return Ticket{bypass: true}, nil
	}
	b.route = d.Route
	b.last = d.Record
	b.report(d)
	switch d.Admission {
	case store.Held:
		return Ticket{}, &HoldError{Key: b.s.Key, Until: d.HoldUntil}
	case store.Rejected:
		return Ticket{}, &OpenError{Record: d.Record, Now: now}
	}
	return Ticket{Generation: d.Record.Generation, trial: d.Admission == store.AdmittedTrial}, nil
}

// Record stores the outcome of an admitted attempt, and holdUntil (zero:
// none) as the hold of this identity on the key when it is later than the
// one stored. Outcomes admitted under an earlier generation are discarded,
// so a slow request cannot undo a state change made meanwhile by another
// process; a hold is kept whatever the generation, since it is the
// server's word. The store counts the hold from its own clock: a node
// whose clock is off does not move it.
//
// ctx bounds the wait for the store. An outcome is still recorded when ctx
// is already done (the attempt was cut off by a signal or a deadline) if
// the store needs no wait for it, as with a state file whose lock nobody
// holds; otherwise, and when ctx ends the wait, the outcome is dropped
// without a warning: the run is ending. The one exception is a half-open
// trial: left to its lease, it would refuse every run on the key for up
// to TrialTimeout, so its release is waited for up to TrialReleaseWait
// beyond ctx.
func (b *Breaker) Record(ctx context.Context, t Ticket, v Verdict, now, holdUntil time.Time) {
	if b == nil || b.down || t.bypass {
		return
	}
	if t.trial && ctx.Err() != nil {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(context.WithoutCancel(ctx), TrialReleaseWait)
		defer cancel()
	}
	o := store.Outcome{Generation: t.Generation, Effect: v.Breaker, Err: errString(v.Err)}
	if holdUntil.After(now) {
		o.Hold = holdUntil.Sub(now)
	}
	d, err := b.s.Store.Record(ctx, b.params(), o, now)
	if err != nil {
		if ctx.Err() == nil {
			b.stepAside(err)
		}
		return
	}
	if b.route == store.RoutePrimary && d.Route == store.RouteSecondary {
		// The primary failed after this run's admission: the outcome is
		// counted in the local files, and the rest of the run goes on
		// without a breaker, so that older local state does not refuse
		// its retries (the run would end "circuit open" with no circuit
		// opened by it). What the outcome did there is still said (it
		// may have opened the circuit).
		b.report(d)
		b.down = true
		return
	}
	b.last = d.Record
	b.report(d)
}

func (b *Breaker) stepAside(err error) {
	b.down = true
	if errors.Is(err, store.ErrRouteGone) {
		return // the store warned: its primary is gone for this run
	}
	if b.s.Warn != nil {
		b.s.Warn(fmt.Errorf("circuit breaker disabled for this run: %w", err))
	}
}

// refuses reports whether the state last seen would refuse an attempt at
// now: open, with the next trial still to come.
func (b *Breaker) refuses(now time.Time) bool {
	return b != nil && !b.down && b.last.State == StateOpen && b.last.RetryAt != nil && now.Before(*b.last.RetryAt)
}

func (b *Breaker) snapshot() Snapshot {
	if b == nil {
		return Snapshot{}
	}
	return Snapshot{Key: b.s.Key, State: b.last.State, On: !b.down}
}

// errString is a failure as the store keeps it (LastError), shared with
// other processes that know none of this run's secrets: redacted before
// it is cut, so no cut can leave part of a secret.
func errString(err error) string {
	if err == nil {
		return ""
	}
	s := redact.Text(err.Error())
	if len(s) > 200 {
		s = s[:200] + "…"
	}
	return s
}
