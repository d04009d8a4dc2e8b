package resilience

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// State is a circuit breaker state.
type State int

// Breaker states.
const (
	StateClosed State = iota
	StateOpen
	StateHalfOpen
)

func (s State) String() string {
	switch s {
	case StateClosed:
		return "closed"
	case StateOpen:
		return "open"
	case StateHalfOpen:
		return "half-open"
	}
	return fmt.Sprintf("state(%d)", int(s))
}

// MarshalText writes the state's name, so files and reports stay readable.
func (s State) MarshalText() ([]byte, error) { return []byte(s.String()), nil }

// UnmarshalText reads a state's name.
func (s *State) UnmarshalText(b []byte) error {
	switch string(b) {
	case "closed":
		*s = StateClosed
	case "open":
		*s = StateOpen
	case "half-open":
		*s = StateHalfOpen
	default:
		return fmt.Errorf("unknown breaker state %q", b)
	}
	return nil
}

// Record is the persisted state of one breaker key.
type Record struct {
	Key                 string `json:"key"`
	State               State  `json:"state"`
	ConsecutiveFailures int    `json:"consecutive_failures"`
	// Generation grows with every state change; an outcome admitted under
	// an earlier generation is discarded.
	Generation uint64     `json:"generation"`
	OpenedAt   *time.Time `json:"opened_at"`
	RetryAt    *time.Time `json:"retry_at"`
	// TrialUntil is the lease of the one half-open trial in flight; once it
	// passes (the trial's process died), another trial may be admitted.
	TrialUntil *time.Time `json:"trial_until,omitempty"`
	LastError  string     `json:"last_error,omitempty"`
	// FailureNodes are the distinct nodes (Settings.Node) whose failures
	// make up the current streak of consecutive failures, for the quorum.
	FailureNodes []string `json:"failure_nodes,omitempty"`
	// HoldUntil is a server's "come back later" (Retry-After on a 429 or
	// 503) for the whole key: no run sends a request before it.
	HoldUntil *time.Time `json:"hold_until,omitempty"`
	UpdatedAt time.Time  `json:"updated_at"`
}

// maxFailureNodes bounds Record.FailureNodes: a quorum larger than this
// makes no sense for a fleet, and the record stays small.
const maxFailureNodes = 64

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
// across processes: admission and recording are separate, short
// read-modify-write steps, and no lock is held while a request is in flight.
// A nil *Breaker admits everything. A Breaker is for one goroutine (one
// run); runs that share a key each use their own Breaker on the shared
// Store, which is what keeps them consistent.
type Breaker struct {
	s    Settings
	last Record
	// down is set once the store failed; the breaker then steps aside.
	down bool
	// pending state changes are reported after the store saved them.
	pending []stateChange
}

type stateChange struct{ from, to State }

// flush reports state changes once they are saved (or drops them if the
// update was not saved).
func (b *Breaker) flush(saved bool) {
	changes := b.pending
	b.pending = nil
	if !saved || b.s.OnStateChange == nil {
		return
	}
	for _, c := range changes {
		b.s.OnStateChange(c.from, c.to, b.last)
	}
}

// NewBreaker returns a breaker with settings s, or an error naming the
// first setting that makes no sense.
func NewBreaker(s Settings) (*Breaker, error) {
	switch {
	case s.Key == "":
		return nil, errors.New("breaker: empty key")
	case s.Failures < 1:
		return nil, fmt.Errorf("breaker: failures must be at least 1, not %d", s.Failures)
	case s.Quorum < 1 || s.Quorum > maxFailureNodes:
		return nil, fmt.Errorf("breaker: quorum must be from 1 to %d, not %d", maxFailureNodes, s.Quorum)
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
		msg += fmt.Sprintf(" since %s (%s ago)", r.OpenedAt.Local().Format("15:04:05"), roundAgo(e.Now.Sub(*r.OpenedAt)))
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
		msg += fmt.Sprintf("; next trial at %s (in %s)", r.RetryAt.Local().Format("15:04:05"), roundAgo(r.RetryAt.Sub(e.Now)))
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
}

func (e *HoldError) Error() string {
	return fmt.Sprintf("%s asked for no requests until %s", e.Key, e.Until.Local().Format("15:04:05"))
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

// errNoChange is an admission that saves nothing. Unlike ErrUnchanged it
// makes a caching store confirm the record first: admissions act on the
// current state.
var errNoChange = errors.New("no change")

// transition is the one place where the state changes: it sets the new
// state, bumps the generation and keeps the timestamps consistent.
func (b *Breaker) transition(r *Record, to State, now time.Time) {
	from := r.State
	defer func() {
		if b.s.OnStateChange != nil && from != to {
			b.pending = append(b.pending, stateChange{from, to})
		}
	}()
	r.State = to
	r.Generation++
	r.TrialUntil = nil
	switch to {
	case StateClosed:
		r.ConsecutiveFailures, r.FailureNodes = 0, nil
		r.OpenedAt, r.RetryAt, r.LastError = nil, nil, ""
	case StateOpen:
		at, retry := now, now.Add(b.s.Reset)
		r.OpenedAt, r.RetryAt = &at, &retry
	case StateHalfOpen:
		lease := now.Add(b.s.TrialTimeout)
		r.TrialUntil = &lease
	}
}

// Admit decides whether an attempt may be sent now: a held key rejects
// with a *HoldError until the hold ends; closed admits; open rejects until
// the reset period has passed, then turns half-open and admits exactly one
// trial; half-open rejects while the trial's lease runs. Store problems
// make the breaker step aside.
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
	var t Ticket
	err := b.s.Store.Update(ctx, b.s.Key, func(r *Record) error {
		b.pending = nil // a store may call fn again; only the last call counts
		if r.HoldUntil != nil && now.Before(*r.HoldUntil) {
			b.last = *r
			return &HoldError{Key: r.Key, Until: *r.HoldUntil}
		}
		switch r.State {
		case StateOpen:
			if r.RetryAt != nil && now.Before(*r.RetryAt) {
				b.last = *r
				return &OpenError{Record: *r, Now: now}
			}
			b.transition(r, StateHalfOpen, now)
		case StateHalfOpen:
			if r.TrialUntil != nil && now.Before(*r.TrialUntil) {
				b.last = *r
				return &OpenError{Record: *r, Now: now}
			}
			// The previous trial's lease ran out: its process is gone.
			b.transition(r, StateHalfOpen, now)
		default:
			// Closed: admit without writing, so the common case costs one
			// locked read and no disk write.
			t.Generation = r.Generation
			b.last = *r
			return errNoChange
		}
		r.UpdatedAt = now
		t.Generation, t.trial = r.Generation, true
		b.last = *r
		return nil
	})
	if errors.Is(err, errNoChange) {
		err = nil
	}
	b.flush(err == nil)
	var (
		open *OpenError
		hold *HoldError
	)
	switch {
	case errors.As(err, &open), errors.As(err, &hold):
		return t, err
	case err != nil && ctx.Err() != nil:
		// The run ended while waiting for the store: not the store's
		// fault, and no reason to step aside.
		return Ticket{}, context.Cause(ctx)
	case err != nil:
		b.stepAside(err)
		return Ticket{bypass: true}, nil
	}
	return t, nil
}

// Record stores the outcome of an admitted attempt, and holdUntil (zero:
// none) as the key's hold when it is later than the one stored. Outcomes
// admitted under an earlier generation are discarded, so a slow request
// cannot undo a state change made meanwhile by another process; a hold is
// kept whatever the generation, since it is the server's word.
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
	err := b.s.Store.Update(ctx, b.s.Key, func(r *Record) error {
		b.pending = nil // a store may call fn again; only the last call counts
		held := false
		if !holdUntil.IsZero() && holdUntil.After(now) && (r.HoldUntil == nil || holdUntil.After(*r.HoldUntil)) {
			h := holdUntil
			r.HoldUntil, held = &h, true
		}
		if r.Generation != t.Generation {
			b.last = *r
			if held {
				r.UpdatedAt = now
				return nil
			}
			if r.Generation > t.Generation {
				// Generations only grow: a later state is certain, so a
				// store's copy needs no confirming read.
				return ErrUnchanged
			}
			// A copy older than the ticket: confirm it first.
			return errNoChange
		}
		switch {
		case r.State == StateClosed && v.Breaker == CountFailure:
			r.ConsecutiveFailures++
			r.LastError = errString(v.Err)
			if !contains(r.FailureNodes, b.s.Node) && len(r.FailureNodes) < maxFailureNodes {
				r.FailureNodes = append(r.FailureNodes, b.s.Node)
			}
			if r.ConsecutiveFailures >= b.s.Failures && len(r.FailureNodes) >= b.s.Quorum {
				b.transition(r, StateOpen, now)
			}
		case r.State == StateClosed && v.Breaker == CountSuccess:
			if r.ConsecutiveFailures == 0 && r.LastError == "" && !held {
				// Not ErrUnchanged: on a store's cached copy this must be
				// confirmed, or a success would be lost behind failures
				// other machines recorded meanwhile.
				b.last = *r
				return errNoChange
			}
			r.ConsecutiveFailures, r.LastError, r.FailureNodes = 0, "", nil
		case r.State == StateHalfOpen && v.Breaker == CountSuccess:
			b.transition(r, StateClosed, now)
		case r.State == StateHalfOpen && v.Breaker == CountFailure:
			r.ConsecutiveFailures++
			r.LastError = errString(v.Err)
			b.transition(r, StateOpen, now)
		case r.State == StateHalfOpen:
			// Neither success nor failure (429, 4xx, cancelled): release
			// the trial so the next caller may try at once.
			released := now
			r.TrialUntil = &released
		default:
			b.last = *r
			if held {
				r.UpdatedAt = now
				return nil
			}
			return errNoChange
		}
		r.UpdatedAt = now
		b.last = *r
		return nil
	})
	b.flush(err == nil)
	if err != nil && !errors.Is(err, ErrUnchanged) && !errors.Is(err, errNoChange) && ctx.Err() == nil {
		b.stepAside(err)
	}
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func (b *Breaker) stepAside(err error) {
	b.down = true
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

func errString(err error) string {
	if err == nil {
		return ""
	}
	s := err.Error()
	if len(s) > 200 {
		s = s[:200] + "…"
	}
	return s
}
