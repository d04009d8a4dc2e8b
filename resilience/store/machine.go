package store

import (
	"errors"
	"sort"
	"time"
)

// The breaker's state machine, as one function per step: admitStep and
// recordStep decide every transition of a key's Record. A store runs a
// step as one atomic read-modify-write: the FileStore calls these
// functions under the key's file lock; the RedisStore runs their twin in
// a Lua script (redisstore_lua.go), so that no client-side compare-and-swap
// loop can give up under contention. The store contract suite
// (storecontract_test.go) runs the same scenarios against both, and a
// differential test feeds them the same random steps.
//
// The rules, in one place:
//
//   - Hold: a key is held for an identity until the time a server's
//     Retry-After (on a 429 or 503) said; Admit refuses that identity
//     until then (a *HoldError), whatever the state. Holds of other
//     identities do not count. A later hold never shortens an earlier one.
//   - Closed: Admit admits without writing. A failure adds one to the
//     fleet-wide streak (ConsecutiveFailures) and to its node's count
//     (NodeFailures). With Quorum 1 the breaker opens when the streak
//     reaches Failures (the classic breaker); with Quorum N > 1 it opens
//     when N distinct nodes each have at least Failures failures. A
//     success anywhere ends the streak and every node's count.
//   - Open: Admit refuses until RetryAt, then turns half-open and admits
//     one trial under a lease of TrialTimeout.
//   - Half-open: Admit refuses while a trial's lease runs; after it, the
//     next caller gets the trial. A successful trial closes the breaker.
//     A failed trial reopens it with Quorum 1; with Quorum N > 1 it
//     reopens only once trials from N distinct nodes have failed, and
//     otherwise releases the lease at once, so one sick node cannot lock
//     the fleet out of a healthy server. Any other outcome (429, a 4xx,
//     cancelled) releases the lease.
//   - Generations: every state change bumps Generation; an outcome
//     admitted under another generation changes nothing but its hold.

// Admission is a store's answer to an admission request.
type Admission int

// Admissions.
const (
	// Admitted: the breaker is closed; send the request.
	Admitted Admission = iota
	// AdmittedTrial: the one half-open trial; send it and record its
	// outcome, which decides the state.
	AdmittedTrial
	// Rejected: the breaker is open, or a trial is in flight.
	Rejected
	// Held: the key is held for this identity (Decision.HoldUntil).
	Held
)

// Route says which of a FailoverStore's two stores a step is for: a run
// keeps to the store its first step was answered by, so that it never
// mixes two stores' states (their generations and tickets mean nothing
// to each other). Other stores ignore it.
type Route int

// Routes.
const (
	// RouteAny: a run's first step; the store chooses.
	RouteAny Route = iota
	// RoutePrimary: the run's steps go to the primary (Redis) alone.
	RoutePrimary
	// RouteSecondary: the run's steps go to the secondary (the files).
	RouteSecondary
)

// ErrRouteGone is a FailoverStore's answer to a step for its primary once
// the primary failed (or was too slow for the run): the run goes on
// without a breaker, its state being where it cannot be reached. The
// store has warned already.
var ErrRouteGone = errors.New("the run's breaker store is unavailable")

// Params are what a store needs to decide one step of a key: the
// breaker's settings and who is asking. They travel with every step
// (nothing is configured in the store), so nodes with different settings
// can share a key: each step follows the settings of its caller.
type Params struct {
	Key          string
	Failures     int
	Quorum       int
	Node         string
	Identity     string
	Reset        time.Duration
	TrialTimeout time.Duration
	// Route is the run's store (see Route); RouteAny for its first step.
	Route Route
}

// Outcome is what Record reports of an admitted attempt.
type Outcome struct {
	// Generation is the ticket's: the state the attempt was admitted under.
	Generation uint64
	// Effect is the attempt's effect on the breaker.
	Effect Effect
	// Err describes a failure, for the record's LastError.
	Err string
	// Hold is how long the server asked this identity to stay away
	// (Retry-After on a 429 or 503), counted from the store's own clock;
	// 0 for none.
	Hold time.Duration
}

// Decision is the result of one step.
type Decision struct {
	Admission Admission
	// From is the state before the step; Record.State the state after.
	From State
	// Record is the key's record after the step, its times in the
	// caller's clock.
	Record Record
	// HoldUntil is the end of the hold that refused the request (Held).
	HoldUntil time.Time
	// Corrupt is set when the stored record could not be read and was
	// replaced by a fresh one (the store also warns).
	Corrupt bool
	// Route is which of a FailoverStore's stores answered; RouteAny from
	// any other store.
	Route Route
}

// MaxQuorum bounds the nodes a record counts failures of, and so the
// quorum: a larger quorum makes no sense for a fleet, and the record
// stays small. A node past the bound still adds to the streak.
const MaxQuorum = 64

// maxHolds bounds the identities a record keeps holds for; past it, the
// hold that ends first is dropped (a request sent early, never a lockout).
const maxHolds = 256

// admitStep decides an admission at now. It reports whether r changed
// (and must be saved).
func admitStep(r *Record, p Params, now time.Time) (Decision, bool) {
	d := Decision{From: r.State}
	if until, ok := r.Holds[p.Identity]; ok && now.Before(until) {
		d.Admission, d.HoldUntil, d.Record = Held, until, *r
		return d, false
	}
	switch r.State {
	case StateOpen:
		if r.RetryAt != nil && now.Before(*r.RetryAt) {
			d.Admission, d.Record = Rejected, *r
			return d, false
		}
	case StateHalfOpen:
		if r.TrialUntil != nil && now.Before(*r.TrialUntil) {
			d.Admission, d.Record = Rejected, *r
			return d, false
		}
		// The previous trial's lease ran out: its process is gone.
	default:
		d.Admission, d.Record = Admitted, *r
		return d, false
	}
	transition(r, StateHalfOpen, p, now)
	r.UpdatedAt = now
	d.Admission, d.Record = AdmittedTrial, *r
	return d, true
}

// recordStep records o at now and reports whether r changed.
func recordStep(r *Record, p Params, o Outcome, now time.Time) (Decision, bool) {
	d := Decision{From: r.State}
	changed := false
	if o.Hold > 0 {
		until := now.Add(o.Hold)
		if cur, ok := r.Holds[p.Identity]; !ok || until.After(cur) {
			setHold(r, p.Identity, until, now)
			changed = true
		}
	}
	if r.Generation == o.Generation {
		changed = applyOutcome(r, p, o, now) || changed
	}
	if changed {
		r.UpdatedAt = now
	}
	d.Record = *r
	return d, changed
}

// applyOutcome changes r's breaker state for o, admitted under r's
// current generation, and reports whether anything changed.
func applyOutcome(r *Record, p Params, o Outcome, now time.Time) bool {
	switch {
	case r.State == StateClosed && o.Effect == CountFailure:
		r.ConsecutiveFailures++
		r.LastError = o.Err
		n, counted := r.NodeFailures[p.Node]
		if counted || len(r.NodeFailures) < MaxQuorum {
			if r.NodeFailures == nil {
				r.NodeFailures = map[string]int{}
			}
			r.NodeFailures[p.Node] = n + 1
		}
		if quorumReached(r, p) {
			transition(r, StateOpen, p, now)
		}
	case r.State == StateClosed && o.Effect == CountSuccess:
		if r.ConsecutiveFailures == 0 && r.LastError == "" && len(r.NodeFailures) == 0 {
			return false
		}
		r.ConsecutiveFailures, r.LastError, r.NodeFailures = 0, "", nil
	case r.State == StateHalfOpen && o.Effect == CountSuccess:
		transition(r, StateClosed, p, now)
	case r.State == StateHalfOpen && o.Effect == CountFailure:
		r.ConsecutiveFailures++
		r.LastError = o.Err
		if !contains(r.TrialFailures, p.Node) && len(r.TrialFailures) < MaxQuorum {
			r.TrialFailures = append(r.TrialFailures, p.Node)
		}
		if p.Quorum <= 1 || len(r.TrialFailures) >= p.Quorum {
			transition(r, StateOpen, p, now)
			break
		}
		released := now
		r.TrialUntil = &released
	case r.State == StateHalfOpen:
		// Neither success nor failure (429, 4xx, cancelled): release the
		// trial so the next caller may try at once.
		released := now
		r.TrialUntil = &released
	default:
		return false
	}
	return true
}

// quorumReached reports whether the closed breaker r must open: the
// streak reached Failures (Quorum 1), or Quorum nodes each have at least
// Failures failures since the last success.
func quorumReached(r *Record, p Params) bool {
	if p.Quorum <= 1 {
		return r.ConsecutiveFailures >= p.Failures
	}
	n := 0
	for _, c := range r.NodeFailures {
		if c >= p.Failures {
			n++
		}
	}
	return n >= p.Quorum
}

// transition is the one place where the state changes: it sets the new
// state, bumps the generation and keeps the timestamps consistent.
func transition(r *Record, to State, p Params, now time.Time) {
	if r.State != StateHalfOpen || to != StateHalfOpen {
		// A new trial of the same half-open period keeps the nodes whose
		// trials failed in it; any other change starts afresh.
		r.TrialFailures = nil
	}
	r.State = to
	r.Generation++
	r.TrialUntil = nil
	switch to {
	case StateClosed:
		r.ConsecutiveFailures, r.NodeFailures = 0, nil
		r.OpenedAt, r.RetryAt, r.LastError = nil, nil, ""
	case StateOpen:
		at, retry := now, addSat(now, p.Reset)
		r.OpenedAt, r.RetryAt = &at, &retry
	case StateHalfOpen:
		lease := addSat(now, p.TrialTimeout)
		r.TrialUntil = &lease
	}
}

// setHold records identity's hold until until, dropping the other
// holds that ended by now and, past maxHolds, the others that end first.
func setHold(r *Record, identity string, until, now time.Time) {
	if r.Holds == nil {
		r.Holds = map[string]time.Time{}
	}
	others := make([]string, 0, len(r.Holds))
	for id, u := range r.Holds {
		switch {
		case id == identity:
		case !u.After(now):
			delete(r.Holds, id)
		default:
			others = append(others, id)
		}
	}
	if extra := len(others) - (maxHolds - 1); extra > 0 {
		sort.Slice(others, func(i, j int) bool {
			a, b := r.Holds[others[i]], r.Holds[others[j]]
			if a.Equal(b) {
				return others[i] < others[j]
			}
			return a.Before(b)
		})
		for _, id := range others[:extra] {
			delete(r.Holds, id)
		}
	}
	r.Holds[identity] = until
}

// maxTime is the latest time addSat returns: far beyond any deadline, and
// representable in every store (Redis keeps milliseconds in an int64).
var maxTime = time.Unix(1<<37, 0) // year 6325

// addSat is t.Add(d) saturated at maxTime, so that no setting can make a
// time wrap around into the past.
func addSat(t time.Time, d time.Duration) time.Time {
	if d <= 0 {
		return t
	}
	if left := maxTime.Sub(t); d >= left {
		return maxTime
	}
	return t.Add(d)
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}
