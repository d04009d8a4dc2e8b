package store

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"
)

// FailoverStore uses Primary while it works and, from the first error
// that comes from Primary, Secondary for the rest of its life, after one
// warning. It is how a run steps aside from a shared store (Redis) that is
// down, slow, hung or refuses its password to the local state dir: a fetch
// never fails because of its store. It is safe for concurrent use if both
// stores are.
//
// Primary may take at most a share of the time its caller has left:
// PrimaryShare of what remains until ctx's deadline, if ctx has one (a
// --max-time). A primary that has not answered by then was too slow for
// that caller: its run goes on with Secondary (or without a breaker, past
// its first step) within the time that is left, so a hung store costs a
// run a bounded share of its time, never its outcome; the next caller
// tries Primary again (a caller with little time left says nothing of the
// store). A real error of Primary's (refused, its own timeout, a wrong
// password) switches the whole store to Secondary.
//
// A run keeps to one store (Params.Route): its first step's, as
// Decision.Route says.
//
// With RetryAfter set, the switch is not for ever: RetryAfter after
// Primary failed, one new run (a first step) tries it again, and if it
// answers, new runs use it again (a long batch outlives a Sentinel
// promoting a replica); if not, the wait starts over. The warning is
// still given once.
//
// An error met once the caller's ctx is done is the end of the run, not a
// failure of Primary: the operation returns context.Cause(ctx), without
// switching or warning, and Secondary is not tried.
type FailoverStore struct {
	Primary, Secondary Store
	// Warn, if set, receives one *FailoverError when Primary fails.
	Warn func(error)
	// RetryAfter, if positive, is how long after Primary failed a new run
	// tries it again; 0 keeps to Secondary for the store's life.
	RetryAfter time.Duration
	// Now is RetryAfter's clock; nil means time.Now.
	Now func() time.Time

	failed atomic.Bool
	// failedAt is when Primary last failed or was last tried again
	// (UnixNano of Now).
	failedAt atomic.Int64
	once     sync.Once
}

// PrimaryShare is the share of its caller's time left that one operation
// may spend waiting for a FailoverStore's primary: a quarter, so that a
// run whose store hangs still has three quarters of its --max-time for
// its requests.
const PrimaryShare = 4

// FailoverError reports that a FailoverStore gave up its primary store.
type FailoverError struct {
	// Primary and Secondary name the stores (their String, if they have
	// one).
	Primary, Secondary string
	Err                error
}

func (e *FailoverError) Error() string {
	return fmt.Sprintf("breaker store %s unavailable (%v): using %s for this run", e.Primary, e.Err, e.Secondary)
}

func (e *FailoverError) Unwrap() error { return e.Err }

// SlowStoreError is the failure of a primary store that did not answer
// within its share of the time left.
type SlowStoreError struct{ Within time.Duration }

func (e *SlowStoreError) Error() string {
	return fmt.Sprintf("no answer within %s, a quarter of the time left", e.Within.Round(time.Millisecond))
}

func storeName(s Store, fallback string) string {
	if st, ok := s.(fmt.Stringer); ok {
		return st.String()
	}
	return fallback
}

// fail switches to the secondary store, warning once.
func (s *FailoverStore) fail(err error) {
	s.failedAt.Store(s.now().UnixNano())
	s.failed.Store(true)
	s.warn(err)
}

func (s *FailoverStore) now() time.Time {
	if s.Now != nil {
		return s.Now()
	}
	return time.Now()
}

// retry reports whether the caller, a new run, is the one to try the
// failed Primary again: RetryAfter has passed since it failed or was last
// tried, and no other caller took this turn.
func (s *FailoverStore) retry() bool {
	if s.RetryAfter <= 0 {
		return false
	}
	at, now := s.failedAt.Load(), s.now().UnixNano()
	if now-at < int64(s.RetryAfter) || !s.failedAt.CompareAndSwap(at, now) {
		return false
	}
	if r, ok := s.Primary.(interface{ Revive() }); ok {
		r.Revive()
	}
	return true
}

// warn gives the store's one warning: a process hears once that its
// shared store is not serving it, whether it failed or was too slow.
func (s *FailoverStore) warn(err error) {
	s.once.Do(func() {
		if s.Warn != nil {
			s.Warn(&FailoverError{Primary: storeName(s.Primary, "primary"),
				Secondary: storeName(s.Secondary, "the secondary store"), Err: err})
		}
	})
}

// Failed reports whether the store has switched to Secondary.
func (s *FailoverStore) Failed() bool { return s.failed.Load() }

// primaryCtx bounds ctx for Primary: PrimaryShare of the time left, when
// ctx has a deadline.
func primaryCtx(ctx context.Context) (context.Context, context.CancelFunc) {
	deadline, ok := ctx.Deadline()
	if !ok {
		return ctx, func() {}
	}
	within := time.Until(deadline) / PrimaryShare
	return context.WithTimeoutCause(ctx, within, &SlowStoreError{Within: within})
}

// failover runs op on Primary until Primary has failed once, then on
// Secondary. An error of Primary's switches to Secondary for the rest of
// the store's life, with the one warning, unless it was only slow for
// this caller (a SlowStoreError: the caller's time was short, Primary may
// be fine) or ctx is done (the run ended; Primary did not fail).
func failover[T any](ctx context.Context, s *FailoverStore, op func(context.Context, Store) (T, error)) (T, error) {
	v, _, err := failoverRoute(ctx, s, RouteAny, op, nil)
	return v, err
}

// failoverRoute is failover for a run's step on route: a run keeps to the
// store its first step used. A first step (RouteAny) that the primary
// cannot answer in time is done on the secondary, and the run keeps to it.
// A step for the primary once it has failed (now, or in another run) is
// done by reroute on the secondary, and the run moves there: a Redis that
// answers reads but refuses writes (out of memory, a read-only replica)
// failed every run's first write, and with the run left without a
// breaker, no failure was ever recorded anywhere (a tour found it). With
// no reroute, or when the primary was only too slow for this caller, the
// step is ErrRouteGone: the run goes on without a breaker.
func failoverRoute[T any](ctx context.Context, s *FailoverStore, route Route, op, reroute func(context.Context, Store) (T, error)) (T, Route, error) {
	var zero T
	if route == RouteSecondary {
		v, err := op(ctx, s.Secondary)
		return v, RouteSecondary, err
	}
	retried := false
	if s.failed.Load() {
		if route == RouteAny && s.retry() {
			retried = true
		} else {
			if route == RoutePrimary {
				if reroute != nil {
					v, err := reroute(ctx, s.Secondary)
					return v, RouteSecondary, err
				}
				return zero, RoutePrimary, ErrRouteGone
			}
			v, err := op(ctx, s.Secondary)
			return v, RouteSecondary, err
		}
	}
	pctx, cancel := primaryCtx(ctx)
	v, err := op(pctx, s.Primary)
	cancel()
	var slow *SlowStoreError
	switch {
	case err == nil:
		if retried {
			s.failed.Store(false) // back: new runs use Primary again
		}
		return v, RoutePrimary, nil
	case ctx.Err() != nil:
		return v, route, context.Cause(ctx)
	case errors.As(err, &slow):
		// Slow for this caller, whose time is short: only this run
		// leaves the primary; the store may serve the next one.
		s.warn(err)
		if route == RoutePrimary {
			return zero, RoutePrimary, ErrRouteGone
		}
	default:
		s.fail(err)
		if route == RoutePrimary {
			if reroute == nil {
				return zero, RoutePrimary, ErrRouteGone
			}
			v, err = reroute(ctx, s.Secondary)
			return v, RouteSecondary, err
		}
	}
	v, err = op(ctx, s.Secondary)
	return v, RouteSecondary, err
}

// Admit implements Store, keeping to p.Route (see failoverRoute).
func (s *FailoverStore) Admit(ctx context.Context, p Params, now time.Time) (Decision, error) {
	// Not rerouted: a run admitted by the primary that failed meanwhile
	// goes on without a breaker (ErrRouteGone), rather than be refused by
	// older state in the files, a circuit it never saw open.
	d, route, err := failoverRoute(ctx, s, p.Route, func(ctx context.Context, st Store) (Decision, error) { return st.Admit(ctx, p, now) }, nil)
	d.Route = route
	return d, err
}

// Record implements Store, keeping to p.Route (see failoverRoute): an
// outcome admitted by one store is never recorded in the other under
// that store's ticket (their generations mean nothing to each other).
// When the primary that admitted it has failed, the outcome is recorded
// in the secondary as an attempt the secondary admits now (rerecord).
func (s *FailoverStore) Record(ctx context.Context, p Params, o Outcome, now time.Time) (Decision, error) {
	d, route, err := failoverRoute(ctx, s, p.Route,
		func(ctx context.Context, st Store) (Decision, error) { return st.Record(ctx, p, o, now) },
		func(ctx context.Context, st Store) (Decision, error) { return rerecord(ctx, st, p, o, now) })
	d.Route = route
	return d, err
}

// rerecord records o, admitted by another store, in st: st admits the
// attempt now and the outcome is recorded under st's ticket. An attempt
// st would not have admitted (open, a trial in flight, a hold) changes
// nothing but the hold: it is recorded under holdOnly, a generation no
// record reaches. An outcome with no effect and no hold is not recorded
// at all (an admission could take a trial lease for nothing), and one
// that took st's trial is recorded even if ctx is done, within
// rerecordTrialWait, so the lease is not left held.
func rerecord(ctx context.Context, st Store, p Params, o Outcome, now time.Time) (Decision, error) {
	if o.Effect == Ignore && o.Hold <= 0 {
		return Decision{}, nil
	}
	a, err := st.Admit(ctx, p, now)
	if err != nil {
		return a, err
	}
	o.Generation = a.Record.Generation
	switch a.Admission {
	case Rejected, Held:
		o.Generation = holdOnly
	case AdmittedTrial:
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(context.WithoutCancel(ctx), rerecordTrialWait)
		defer cancel()
	}
	return st.Record(ctx, p, o, now)
}

// holdOnly is the generation of an outcome that may set a hold and change
// nothing else: no record's generation reaches it (0 would not do: a
// fresh closed record carrying a hold has generation 0).
const holdOnly = ^uint64(0)

// rerecordTrialWait bounds the recording of a trial rerecord took.
const rerecordTrialWait = 2 * time.Second

func (s *FailoverStore) List(ctx context.Context) ([]Record, error) {
	return failover(ctx, s, func(ctx context.Context, st Store) ([]Record, error) { return st.List(ctx) })
}

func (s *FailoverStore) Delete(ctx context.Context, key string) (bool, error) {
	return failover(ctx, s, func(ctx context.Context, st Store) (bool, error) { return st.Delete(ctx, key) })
}

func (s *FailoverStore) DeleteAll(ctx context.Context) (int, error) {
	return failover(ctx, s, func(ctx context.Context, st Store) (int, error) { return st.DeleteAll(ctx) })
}
