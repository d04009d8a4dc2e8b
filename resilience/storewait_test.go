package resilience

import (
	"context"
	"errors"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/gofrs/flock"
	"github.com/refetch/refetch/internal/redistest"
)

// These tests are about the end of a wait for the store: a lock that
// another process holds, or a Redis that took a command and does not
// answer (a process that is stopped or hung does that for ever), so only
// the end of the caller's ctx (a signal, a deadline) can end the wait.

// errInterrupted stands for the cause a signal gives the run's ctx.
var errInterrupted = errors.New("interrupted by test")

// waitCtx is a context that closes waiting the first time its Done
// channel is asked for: the store asks for it only once it has found the
// lock taken and is about to wait, so a test can cancel it exactly while
// the store waits, with no sleep.
type waitCtx struct {
	context.Context
	once    sync.Once
	waiting chan struct{}
}

func newWaitCtx(parent context.Context) *waitCtx {
	return &waitCtx{Context: parent, waiting: make(chan struct{})}
}

func (c *waitCtx) Done() <-chan struct{} {
	c.once.Do(func() { close(c.waiting) })
	return c.Context.Done()
}

// holdLock takes the lock of key's state file the way another process
// does (its own open file description, outside the store) and returns
// the function that releases it.
func holdLock(t *testing.T, s *FileStore, key string) func() {
	t.Helper()
	if err := s.ensureDir(); err != nil {
		t.Fatal(err)
	}
	lk := flock.New(s.path(key) + ".lock")
	if err := lk.Lock(); err != nil {
		t.Fatal(err)
	}
	var once sync.Once
	release := func() { once.Do(func() { lk.Unlock() }) }
	t.Cleanup(release)
	return release
}

// errStuck is what cancelWhileWaiting returns for an op that is still
// waiting a minute after it began to (a generous guard, not a measure: a
// cancelled wait ends at once), or that waits without watching its ctx.
var errStuck = errors.New("still waiting a minute later: the wait does not end with its ctx")

// cancelWhileWaiting runs op under a ctx that is cancelled with
// errInterrupted once op waits for the store, and returns op's error.
func cancelWhileWaiting(op func(ctx context.Context) error) error {
	ctx, cancel := context.WithCancelCause(context.Background())
	defer cancel(nil)
	w := newWaitCtx(ctx)
	done := make(chan error, 1)
	go func() { done <- op(w) }()
	select {
	case <-w.waiting:
		cancel(errInterrupted)
	case err := <-done:
		return err // it did not wait: the caller's check says what it did
	case <-time.After(time.Minute):
		return errStuck
	}
	select {
	case err := <-done:
		return err
	case <-time.After(time.Minute):
		return errStuck
	}
}

// cancelled returns a ctx that is already done, with errInterrupted.
func cancelled() context.Context {
	ctx, cancel := context.WithCancelCause(context.Background())
	cancel(errInterrupted)
	return ctx
}

func TestFileStoreWaitForALockEndsWithTheCtx(t *testing.T) {
	s := &FileStore{Dir: t.TempDir()}
	if err := addFailures(context.Background(), s, "k", 1); err != nil {
		t.Fatal(err)
	}
	release := holdLock(t, s, "k")

	for name, ctx := range map[string]func() context.Context{
		"cancelled while waiting": nil,
		"already done":            cancelled,
	} {
		ops := map[string]func(ctx context.Context) error{
			"Admit":  func(ctx context.Context) error { _, err := s.Admit(ctx, testParams, time.Now()); return err },
			"Record": func(ctx context.Context) error { return addFailures(ctx, s, "k", 1) },
			"Delete": func(ctx context.Context) error { _, err := s.Delete(ctx, "k"); return err },
			"DeleteAll": func(ctx context.Context) error {
				n, err := s.DeleteAll(ctx)
				if n != 0 {
					t.Errorf("DeleteAll removed %d files under a held lock", n)
				}
				return err
			},
		}
		for op, f := range ops {
			var err error
			if ctx == nil {
				err = cancelWhileWaiting(f)
			} else {
				err = f(ctx())
			}
			// The cause itself, unwrapped: the caller maps it (to 143...).
			if err != errInterrupted {
				t.Errorf("%s, %s = %v, want the ctx's cause", name, op, err)
			}
		}
	}
	// Nothing was saved or removed, and nothing of the store stays taken:
	// once the holder lets go, the next step goes through.
	release()
	if err := addFailures(context.Background(), s, "k", 1); err != nil {
		t.Fatal(err)
	}
	recs, err := s.List(context.Background())
	if err != nil || len(recs) != 1 || recs[0].ConsecutiveFailures != 2 {
		t.Errorf("after release: %+v, %v; want 2 failures", recs, err)
	}
}

// TestFileStoreDoneCtxStillTakesAFreeLock: taking a free lock needs no
// wait, so an outcome recorded as a run ends is saved.
func TestFileStoreDoneCtxStillTakesAFreeLock(t *testing.T) {
	s := &FileStore{Dir: t.TempDir()}
	if err := addFailures(cancelled(), s, "k", 3); err != nil {
		t.Fatalf("Update with a done ctx on a free lock = %v", err)
	}
	if ok, err := s.Delete(cancelled(), "k"); !ok || err != nil {
		t.Errorf("Delete with a done ctx on a free lock = %v, %v", ok, err)
	}
}

// TestFileStoreGoroutinesWaitInLine: goroutines of one process that update
// one key wait for one another (and such a wait, too, ends with its ctx),
// and lose no update.
func TestFileStoreGoroutinesWaitInLine(t *testing.T) {
	s := &FileStore{Dir: t.TempDir()}
	if err := addFailures(context.Background(), s, "k", 1); err != nil {
		t.Fatal(err)
	}
	release := holdLock(t, s, "k")
	if err := cancelWhileWaiting(func(ctx context.Context) error { return addFailures(ctx, s, "k", 100) }); err != errInterrupted {
		t.Errorf("a second goroutine's Update = %v, want the ctx's cause", err)
	}
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for range 8 {
		wg.Go(func() { errs <- addFailures(context.Background(), s, "k", 1) })
	}
	release()
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	recs, _ := s.List(context.Background())
	if len(recs) != 1 || recs[0].ConsecutiveFailures != 9 {
		t.Errorf("records %+v, want 9 failures", recs)
	}
}

func TestBreakerWaitForTheStoreEndsWithTheCtx(t *testing.T) {
	b, store, warns := newTestBreaker(t, 1)
	now := newFakeClock().Now()
	admitted := mustAdmit(t, b, now)
	release := holdLock(t, store, b.s.Key)

	if _, err := b.Admit(cancelled(), now); err != errInterrupted {
		t.Errorf("Admit with a done ctx = %v, want the ctx's cause", err)
	}
	err := cancelWhileWaiting(func(ctx context.Context) error { _, err := b.Admit(ctx, now); return err })
	if err != errInterrupted {
		t.Errorf("Admit cancelled while waiting = %v, want the ctx's cause", err)
	}
	// An outcome that would have to wait is dropped, quietly.
	b.Record(cancelled(), admitted, fail, now, time.Time{})
	if b.down || len(*warns) != 0 {
		t.Fatalf("the breaker stepped aside (%v): the end of the run is not a store failure", *warns)
	}
	release()
	if recs, _ := store.List(context.Background()); len(recs) != 0 {
		t.Errorf("saved without the lock: %+v", recs)
	}
	// Free, the lock is taken even with a done ctx: the failure counts.
	b.Record(cancelled(), admitted, fail, now, time.Time{})
	mustReject(t, b, now)
	if len(*warns) != 0 {
		t.Errorf("warnings: %v", *warns)
	}
}

func TestRunEndsWhileWaitingForTheStoreLock(t *testing.T) {
	store := &FileStore{Dir: t.TempDir()}
	newBreaker := func() *Breaker { return mustBreaker(t, Settings{Key: "http://h:80", Failures: 5, Store: store}) }
	holdLock(t, store, "http://h:80")

	ex, clock, _ := newExec(fixed(3, time.Second))
	ex.Breaker = newBreaker()
	fn, calls := script(clock, 0, status(200))
	var tr *Trace
	err := cancelWhileWaiting(func(ctx context.Context) error {
		var err error
		tr, err = ex.Run(ctx, "GET", fn)
		return err
	})
	if err != errInterrupted || *calls != 0 || len(tr.Attempts) != 0 || !tr.Breaker.On {
		t.Errorf("err %v, calls %d, trace %+v; want the cause, no attempt, the breaker on", err, *calls, tr)
	}

	// MaxTime ends the wait as well, as the run's deadline.
	p := fixed(3, time.Second)
	p.MaxTime = 20 * time.Millisecond
	ex = &Executor{Policy: p, Classify: ClassifyPolicy, Breaker: newBreaker()}
	fn, calls = script(newFakeClock(), 0, status(200))
	_, err = ex.Run(context.Background(), "GET", fn)
	var re *RunError
	if !errors.Is(err, ErrDeadline) || !errors.As(err, &re) || re.Reason != ReasonTimeUp || *calls != 0 {
		t.Errorf("with MaxTime: err %v, calls %d; want the deadline, no attempt", err, *calls)
	}
}

// redisOps are the store's operations, for tests that try each one.
var redisOps = map[string]func(ctx context.Context, s Store) error{
	"Update":    func(ctx context.Context, s Store) error { return addFailures(ctx, s, "k", 1) },
	"List":      func(ctx context.Context, s Store) error { _, err := s.List(ctx); return err },
	"Delete":    func(ctx context.Context, s Store) error { _, err := s.Delete(ctx, "k"); return err },
	"DeleteAll": func(ctx context.Context, s Store) error { _, err := s.DeleteAll(ctx); return err },
}

// endsSoon returns what done delivers, failing t if it takes a minute: a
// generous guard, not a measure (a cancelled operation returns at once;
// one that ignores its ctx waits for the store's timeout, an hour).
func endsSoon(t *testing.T, what string, done <-chan error) error {
	t.Helper()
	select {
	case err := <-done:
		return err
	case <-time.After(time.Minute):
		t.Fatalf("%s still waiting for the server a minute after its ctx was cancelled", what)
		return nil
	}
}

// TestRedisStoreSilentServerEndsWithTheCtx: a Redis that does not answer
// holds an operation up until its ctx is done, not until the read
// timeout.
func TestRedisStoreSilentServerEndsWithTheCtx(t *testing.T) {
	silent := redistest.NewSilent(t)
	addr, heard := silent.Addr, silent.Heard()
	for name, op := range redisOps {
		s, err := NewRedisStore(RedisConfig{Addr: addr, Timeout: time.Hour, TTL: time.Hour})
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancelCause(context.Background())
		done := make(chan error, 1)
		go func() { done <- op(ctx, s) }()
		<-heard
		cancel(errInterrupted)
		if err := endsSoon(t, name, done); err != errInterrupted {
			t.Errorf("%s = %v, want the ctx's cause", name, err)
		}
		s.Close()
	}
}

// TestRedisStoreDoneCtxSendsNothing: once the ctx is done, no command goes
// to the server: every exchange with it would be a wait.
func TestRedisStoreDoneCtxSendsNothing(t *testing.T) {
	addr := redistest.Start(t)
	s := newRedisStore(t, addr, nil)
	counter := &countCommands{}
	s.client.AddHook(counter)
	for name, op := range redisOps {
		if err := op(cancelled(), s); err != errInterrupted {
			t.Errorf("%s with a done ctx = %v, want the ctx's cause", name, err)
		}
	}
	if counter.n != 0 {
		t.Errorf("%d commands sent with a done ctx", counter.n)
	}
}

// TestFailoverStoreEndOfCtxIsNotAFailure: a signal while Redis does not
// answer ends the operation; it is no reason to switch to the files, nor
// to warn that Redis is unavailable.
func TestFailoverStoreEndOfCtxIsNotAFailure(t *testing.T) {
	silent := redistest.NewSilent(t)
	addr, heard := silent.Addr, silent.Heard()
	var warns []error
	files := &FileStore{Dir: filepath.Join(t.TempDir(), "state")}
	for name, op := range redisOps {
		primary, err := NewRedisStore(RedisConfig{Addr: addr, Timeout: time.Hour, TTL: time.Hour})
		if err != nil {
			t.Fatal(err)
		}
		s := &FailoverStore{Primary: primary, Secondary: files, Warn: func(err error) { warns = append(warns, err) }}
		ctx, cancel := context.WithCancelCause(context.Background())
		done := make(chan error, 1)
		go func() { done <- op(ctx, s) }()
		<-heard
		cancel(errInterrupted)
		if err := endsSoon(t, name, done); err != errInterrupted || s.Failed() {
			t.Errorf("%s = %v, failed over %v; want the ctx's cause, no failover", name, err, s.Failed())
		}
		primary.Close()
	}
	if recs, _ := files.List(context.Background()); len(warns) != 0 || len(recs) != 0 {
		t.Errorf("warnings %v, local records %+v; want none", warns, recs)
	}
}

// TestFailoverAfterACallLeftBehindFails: a caller whose own deadline is
// shorter than the store's timeout (a batch URL's --max-time) gives up on
// a silent Redis first, which is no failure; but the call it left behind
// then fails at the store's timeout, and from then on the store is down:
// the next caller goes to the local files at once, with one warning.
// Without that, every caller would give up first and none would ever fail
// over.
func TestFailoverAfterACallLeftBehindFails(t *testing.T) {
	silent := redistest.NewSilent(t)
	primary, err := NewRedisStore(RedisConfig{Addr: silent.Addr, Timeout: 200 * time.Millisecond, TTL: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	defer primary.Close()
	var warns []error
	files := &FileStore{Dir: filepath.Join(t.TempDir(), "state")}
	s := &FailoverStore{Primary: primary, Secondary: files, Warn: func(err error) { warns = append(warns, err) }}
	ctx, cancel := context.WithCancelCause(context.Background())
	done := make(chan error, 1)
	go func() { done <- addFailures(ctx, s, "k", 1) }()
	<-silent.Heard()
	cancel(errInterrupted)
	if err := endsSoon(t, "update", done); err != errInterrupted || s.Failed() {
		t.Fatalf("update = %v, failed over %v; want the ctx's cause, no failover yet", err, s.Failed())
	}
	// The call left behind ends at the store's own timeout (real time:
	// it is the Redis client's read deadline).
	for start := time.Now(); primary.down.Load() == nil; time.Sleep(5 * time.Millisecond) {
		if time.Since(start) > time.Minute {
			t.Fatal("the call left behind never failed")
		}
	}
	if err := addFailures(context.Background(), s, "k", 1); err != nil {
		t.Fatalf("update after the store went down = %v, want it done on the files", err)
	}
	if !s.Failed() || len(warns) != 1 {
		t.Errorf("failed over %v, warnings %v; want a failover with one warning", s.Failed(), warns)
	}
	if recs, _ := files.List(context.Background()); len(recs) != 1 || recs[0].ConsecutiveFailures != 1 {
		t.Errorf("local records %+v, want the one update", recs)
	}
}

// TestTrialCutOffIsReleased: a half-open trial cut off by a signal or a
// deadline (its run's ctx is done when the outcome is recorded) is still
// released, on a Redis store and on the files, so the next run of the key
// may try at once instead of being refused for the trial's lease.
func TestTrialCutOffIsReleased(t *testing.T) {
	stores := map[string]func(t *testing.T) Store{
		"files": func(t *testing.T) Store { return &FileStore{Dir: filepath.Join(t.TempDir(), "state")} },
		"redis": func(t *testing.T) Store { return newRedisStore(t, redistest.Start(t), nil) },
	}
	cut := Verdict{Kind: Cancelled, Breaker: Ignore, Err: errInterrupted}
	for name, mk := range stores {
		t.Run(name, func(t *testing.T) {
			store := mk(t)
			settings := Settings{Key: "http://example.test:80", Failures: 1, Reset: time.Minute, Store: store}
			a, b := mustBreaker(t, settings), mustBreaker(t, settings)
			now := newFakeClock().Now()
			a.Record(context.Background(), mustAdmit(t, a, now), fail, now, time.Time{}) // opens
			later := now.Add(2 * time.Minute)
			trial := mustAdmit(t, a, later)
			mustReject(t, b, later) // the trial is in flight
			a.Record(cancelled(), trial, cut, later, time.Time{})
			if _, err := b.Admit(context.Background(), later); err != nil {
				t.Fatalf("after the cut-off trial, Admit = %v: the trial was not released", err)
			}
		})
	}
}
