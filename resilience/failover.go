package resilience

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
)

// FailoverStore uses Primary while it works and, from the first error
// that comes from Primary itself (not one returned by an Update's fn),
// Secondary for the rest of its life, after one warning. It is how a run
// steps aside from a shared store (Redis) that is down, slow or refuses
// its password to the local state dir: a fetch never fails because of its
// store. It is safe for concurrent use if both stores are.
//
// An error met once the operation's ctx is done is the end of the run,
// not a failure of Primary: the operation returns context.Cause(ctx),
// without switching or warning, and Secondary is not tried.
type FailoverStore struct {
	Primary, Secondary Store
	// Warn, if set, receives one *FailoverError when Primary fails.
	Warn func(error)

	failed atomic.Bool
	once   sync.Once
}

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

// fnError marks an error returned by fn, so it is told apart from the
// primary store's own errors.
type fnError struct{ err error }

func (e *fnError) Error() string { return e.err.Error() }

// Unwrap lets the primary see what fn said (ErrUnchanged lets a caching
// store skip its confirming read).
func (e *fnError) Unwrap() error { return e.err }

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

// failover runs op on Primary until Primary has failed once, then on
// Secondary. An error of Primary's switches to Secondary, with the one
// warning, unless it is fn's (fnError: the caller's answer, not a
// failure) or the end of ctx (the run ended; Primary did not fail), which
// are returned as they are.
func failover[T any](ctx context.Context, s *FailoverStore, op func(Store) (T, error)) (T, error) {
	if !s.failed.Load() {
		v, err := op(s.Primary)
		var fe *fnError
		switch {
		case err == nil:
			return v, nil
		case errors.As(err, &fe):
			return v, fe.err
		case ctx.Err() != nil:
			return v, context.Cause(ctx)
		}
		s.fail(err)
	}
	v, err := op(s.Secondary)
	var fe *fnError
	if errors.As(err, &fe) {
		err = fe.err
	}
	return v, err
}

func (s *FailoverStore) Update(ctx context.Context, key string, fn func(*Record) error) error {
	marked := func(r *Record) error {
		if err := fn(r); err != nil {
			return &fnError{err}
		}
		return nil
	}
	_, err := failover(ctx, s, func(st Store) (struct{}, error) { return struct{}{}, st.Update(ctx, key, marked) })
	return err
}

func (s *FailoverStore) List(ctx context.Context) ([]Record, error) {
	return failover(ctx, s, func(st Store) ([]Record, error) { return st.List(ctx) })
}

func (s *FailoverStore) Delete(ctx context.Context, key string) (bool, error) {
	return failover(ctx, s, func(st Store) (bool, error) { return st.Delete(ctx, key) })
}

func (s *FailoverStore) DeleteAll(ctx context.Context) (int, error) {
	return failover(ctx, s, func(st Store) (int, error) { return st.DeleteAll(ctx) })
}
