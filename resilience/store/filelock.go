package store

import (
	"context"
	"fmt"
	"os"
	"sync"
	"time"

	"github.com/gofrs/flock"
)

// The intervals at which a FileStore tries again a lock that another
// process holds. A store's own hold is a read, a decode and the atomic
// write of a small file (well under a millisecond), so the first retries
// come quickly; the cap bounds both the extra wait after a release and
// the cost of waiting on a holder that is stopped or hung (about a hundred
// tries a second, each an open, a non-blocking flock and a close).
const (
	lockPollFirst = time.Millisecond
	lockPollMax   = 10 * time.Millisecond
)

// lockFile takes the exclusive advisory lock of path (created 0600 if
// missing). It waits while ctx lasts and returns context.Cause(ctx) once
// ctx is done; a lock that is free is taken even then, since taking it
// needs no wait.
//
// The wait polls with LOCK_NB rather than blocking in flock(2): a blocked
// flock cannot be interrupted from Go, so a holder that is stopped
// (SIGSTOP, Ctrl-Z) or hung would keep the run from ending on a signal.
// flock keeps no queue of waiters, blocking or not, so no order among
// processes is lost; the capped interval keeps a process that has waited
// long trying as often as a newcomer.
func lockFile(ctx context.Context, path string) (*flock.Flock, error) {
	var t *time.Timer
	delay := lockPollFirst
	for {
		lk := flock.New(path)
		ok, err := lk.TryLock()
		if err != nil {
			return nil, fmt.Errorf("lock %s: %w", path, err)
		}
		if ok {
			if current(lk, path) {
				return lk, nil
			}
			// The lock file was removed (an expired key, see
			// FileStore.removeExpired) while this process held it open:
			// its lock guards nothing. Take the lock of the file that is
			// there now.
			lk.Close()
			continue
		}
		lk.Close()
		if ctx.Err() != nil {
			return nil, context.Cause(ctx)
		}
		if t == nil {
			t = time.NewTimer(delay)
			defer t.Stop()
		} else {
			t.Reset(delay)
		}
		select {
		case <-ctx.Done():
			return nil, context.Cause(ctx)
		case <-t.C:
		}
		delay = min(2*delay, lockPollMax)
	}
}

// current reports whether the locked file lk is still the file at path.
func current(lk *flock.Flock, path string) bool {
	held, err := lk.Stat()
	if err != nil {
		return false
	}
	there, err := os.Stat(path)
	return err == nil && os.SameFile(held, there)
}

// gates queue the goroutines of one process that want the same lock file,
// so that they wait for one another in order and hand the lock over at
// once, and only the first of them polls the file lock. (Two goroutines
// of one process that flock the same file through their own descriptors
// exclude each other as two processes do: the gate is about the wait, not
// about correctness.) The zero value is ready; it keeps one gate per lock
// file it has seen, which a process has few of: one per breaker key.
type gates struct {
	mu sync.Mutex
	m  map[string]chan struct{}
}

func (g *gates) gate(path string) chan struct{} {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.m == nil {
		g.m = map[string]chan struct{}{}
	}
	c, ok := g.m[path]
	if !ok {
		c = make(chan struct{}, 1)
		g.m[path] = c
	}
	return c
}

// lock takes the gate of path and then the file lock of path, waiting
// while ctx lasts (see lockFile), and returns the function that releases
// both.
func (g *gates) lock(ctx context.Context, path string) (unlock func(), err error) {
	c := g.gate(path)
	select {
	case c <- struct{}{}:
	default:
		// Taken by another goroutine: wait for it in line, unless ctx is
		// done (then a free gate only, as for the file lock).
		if ctx.Err() != nil {
			return nil, context.Cause(ctx)
		}
		select {
		case c <- struct{}{}:
		case <-ctx.Done():
			return nil, context.Cause(ctx)
		}
	}
	lk, err := lockFile(ctx, path)
	if err != nil {
		<-c
		return nil, err
	}
	return func() {
		lk.Unlock()
		<-c
	}, nil
}
