package store

import (
	"context"
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
// --max-time). A primary that has not answered by then has failed, and the
// operation is done on Secondary within the time that is left, so a hung
// store costs a run a bounded share of its time, never its outcome.
//
// An error met once the caller's ctx is done is the end of the run, not a
// failure of Primary: the operation returns context.Cause(ctx), without
// switching or warning, and Secondary is not tried.
type FailoverStore struct {
	Primary, Secondary Store
	// Warn, if set, receives one *FailoverError when Primary fails.
	Warn func(error)

	failed atomic.Bool
	once   sync.Once
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
	s.failed.Store(true)
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
// Secondary. An error of Primary's switches to Secondary, with the one
// warning, unless ctx is done (the run ended; Primary did not fail).
func failover[T any](ctx context.Context, s *FailoverStore, op func(context.Context, Store) (T, error)) (T, error) {
	if !s.failed.Load() {
		pctx, cancel := primaryCtx(ctx)
		v, err := op(pctx, s.Primary)
		cancel()
		switch {
		case err == nil:
			return v, nil
		case ctx.Err() != nil:
			return v, context.Cause(ctx)
		}
		s.fail(err)
	}
	return op(ctx, s.Secondary)
}

func (s *FailoverStore) Admit(ctx context.Context, p Params, now time.Time) (Decision, error) {
	return failover(ctx, s, func(ctx context.Context, st Store) (Decision, error) { return st.Admit(ctx, p, now) })
}

func (s *FailoverStore) Record(ctx context.Context, p Params, o Outcome, now time.Time) (Decision, error) {
	return failover(ctx, s, func(ctx context.Context, st Store) (Decision, error) { return st.Record(ctx, p, o, now) })
}

func (s *FailoverStore) List(ctx context.Context) ([]Record, error) {
	return failover(ctx, s, func(ctx context.Context, st Store) ([]Record, error) { return st.List(ctx) })
}

func (s *FailoverStore) Delete(ctx context.Context, key string) (bool, error) {
	return failover(ctx, s, func(ctx context.Context, st Store) (bool, error) { return st.Delete(ctx, key) })
}

func (s *FailoverStore) DeleteAll(ctx context.Context) (int, error) {
	return failover(ctx, s, func(ctx context.Context, st Store) (int, error) { return st.DeleteAll(ctx) })
}
