package store

import (
	"context"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/refetch/refetch/internal/waittest"

	"github.com/gofrs/flock"
	"github.com/refetch/refetch/internal/redistest"
)

// These tests are about the end of a wait for the store: a lock that
// another process holds, or a Redis that took a command and does not
// answer (a process that is stopped or hung does that for ever), so only
// the end of the caller's ctx (a signal, a deadline) can end the wait.

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

func TestFileStoreWaitForALockEndsWithTheCtx(t *testing.T) {
	s := &FileStore{Dir: t.TempDir()}
	if err := addFailures(context.Background(), s, "k", 1); err != nil {
		t.Fatal(err)
	}
	release := holdLock(t, s, "k")
	// A step that writes nothing takes no lock (a closed breaker's
	// admission): a stopped holder does not stall it.
	if d, err := s.Admit(context.Background(), testParams, time.Now()); err != nil || d.Admission != Admitted {
		t.Errorf("Admit of a closed key under a held lock = %+v, %v; want admitted at once", d, err)
	}
	// An admission that takes a trial writes: it waits. Key "o" is open
	// and its reset is over.
	open := testParams
	open.Key, open.Failures, open.Reset = "o", 1, time.Nanosecond
	if _, err := s.Record(context.Background(), open, Outcome{Effect: CountFailure}, time.Now()); err != nil {
		t.Fatal(err)
	}
	releaseOpen := holdLock(t, s, "o")

	for name, ctx := range map[string]func() context.Context{
		"cancelled while waiting": nil,
		"already done":            waittest.Cancelled,
	} {
		ops := map[string]func(ctx context.Context) error{
			"Admit":  func(ctx context.Context) error { _, err := s.Admit(ctx, open, time.Now()); return err },
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
				err = waittest.CancelWhileWaiting(f)
			} else {
				err = f(ctx())
			}
			// The cause itself, unwrapped: the caller maps it (to 143...).
			if err != waittest.ErrInterrupted {
				t.Errorf("%s, %s = %v, want the ctx's cause", name, op, err)
			}
		}
	}
	// Nothing was saved or removed, and nothing of the store stays taken:
	// once the holder lets go, the next step goes through.
	release()
	releaseOpen()
	if d, err := s.Admit(context.Background(), open, time.Now()); err != nil || d.Admission != AdmittedTrial {
		t.Errorf("after release: Admit = %+v, %v; want the trial", d, err)
	}
	if err := addFailures(context.Background(), s, "k", 1); err != nil {
		t.Fatal(err)
	}
	recs, err := s.List(context.Background())
	if err != nil || len(recs) != 2 {
		t.Fatalf("after release: %+v, %v; want the records of k and o", recs, err)
	}
	if recs[0].Key != "k" {
		recs[0] = recs[1]
	}
	if recs[0].ConsecutiveFailures != 2 {
		t.Errorf("after release: %+v, %v; want 2 failures", recs, err)
	}
}

// TestFileStoreDoneCtxStillTakesAFreeLock: taking a free lock needs no
// wait, so an outcome recorded as a run ends is saved.
func TestFileStoreDoneCtxStillTakesAFreeLock(t *testing.T) {
	s := &FileStore{Dir: t.TempDir()}
	if err := addFailures(waittest.Cancelled(), s, "k", 3); err != nil {
		t.Fatalf("Update with a done ctx on a free lock = %v", err)
	}
	if ok, err := s.Delete(waittest.Cancelled(), "k"); !ok || err != nil {
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
	if err := waittest.CancelWhileWaiting(func(ctx context.Context) error { return addFailures(ctx, s, "k", 100) }); err != waittest.ErrInterrupted {
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

// redisOps are the store's operations, for tests that try each one.
var redisOps = map[string]func(ctx context.Context, s Store) error{
	"Update":    func(ctx context.Context, s Store) error { return addFailures(ctx, s, "k", 1) },
	"List":      func(ctx context.Context, s Store) error { _, err := s.List(ctx); return err },
	"Delete":    func(ctx context.Context, s Store) error { _, err := s.Delete(ctx, "k"); return err },
	"DeleteAll": func(ctx context.Context, s Store) error { _, err := s.DeleteAll(ctx); return err },
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
		cancel(waittest.ErrInterrupted)
		if err := waittest.EndsSoon(t, name, done); err != waittest.ErrInterrupted {
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
		if err := op(waittest.Cancelled(), s); err != waittest.ErrInterrupted {
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
		cancel(waittest.ErrInterrupted)
		if err := waittest.EndsSoon(t, name, done); err != waittest.ErrInterrupted || s.Failed() {
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
	cancel(waittest.ErrInterrupted)
	if err := waittest.EndsSoon(t, "update", done); err != waittest.ErrInterrupted || s.Failed() {
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
