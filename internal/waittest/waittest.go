// Package waittest helps tests end a wait exactly while it waits: for a
// lock another process holds, or a server that took a command and does
// not answer. Only the end of the caller's ctx (a signal, a deadline) can
// end such a wait, and these helpers cancel it at the right moment with
// no sleep.
package waittest

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"
)

// ErrInterrupted stands for the cause a signal gives a run's ctx.
var ErrInterrupted = errors.New("interrupted by test")

// ErrStuck is what CancelWhileWaiting returns for an op that is still
// waiting a minute after it began to (a generous guard, not a measure: a
// cancelled wait ends at once), or that waits without watching its ctx.
var ErrStuck = errors.New("still waiting a minute later: the wait does not end with its ctx")

// waitCtx is a context that closes waiting the first time its Done
// channel is asked for: a waiter asks for it only once it has found the
// lock taken and is about to wait.
type waitCtx struct {
	context.Context
	once    sync.Once
	waiting chan struct{}
}

func (c *waitCtx) Done() <-chan struct{} {
	c.once.Do(func() { close(c.waiting) })
	return c.Context.Done()
}

// CancelWhileWaiting runs op under a ctx that is cancelled with
// ErrInterrupted once op waits (asks for ctx.Done()), and returns op's
// error.
func CancelWhileWaiting(op func(ctx context.Context) error) error {
	ctx, cancel := context.WithCancelCause(context.Background())
	defer cancel(nil)
	w := &waitCtx{Context: ctx, waiting: make(chan struct{})}
	done := make(chan error, 1)
	go func() { done <- op(w) }()
	select {
	case <-w.waiting:
		cancel(ErrInterrupted)
	case err := <-done:
		return err // it did not wait: the caller's check says what it did
	case <-time.After(time.Minute):
		return ErrStuck
	}
	select {
	case err := <-done:
		return err
	case <-time.After(time.Minute):
		return ErrStuck
	}
}

// Cancelled returns a ctx that is already done, with ErrInterrupted.
func Cancelled() context.Context {
	ctx, cancel := context.WithCancelCause(context.Background())
	cancel(ErrInterrupted)
	return ctx
}

// EndsSoon returns what done delivers, failing t if nothing comes within
// a minute (a generous guard, not a measure).
func EndsSoon(t testing.TB, what string, done <-chan error) error {
	t.Helper()
	select {
	case err := <-done:
		return err
	case <-time.After(time.Minute):
		t.Fatalf("%s still waiting a minute after its ctx was cancelled", what)
		return nil
	}
}

// Within fails t if f has not returned a minute after it began (a
// generous guard against a call that blocks for ever, not a measure).
func Within(t testing.TB, what string, f func()) {
	t.Helper()
	done := make(chan struct{})
	go func() { f(); close(done) }()
	select {
	case <-done:
	case <-time.After(time.Minute):
		t.Fatalf("%s still blocked after a minute", what)
	}
}
