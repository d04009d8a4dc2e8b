package store

import (
	"context"
	"errors"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/refetch/refetch/internal/redistest"
)

func TestFailoverStoreUsesPrimaryWhileItWorks(t *testing.T) {
	addr := redistest.Start(t)
	var warns []error
	files := &FileStore{Dir: filepath.Join(t.TempDir(), "state")}
	s := &FailoverStore{Primary: newRedisStore(t, addr, nil), Secondary: files, Warn: func(err error) { warns = append(warns, err) }}
	if err := addFailures(context.Background(), s, "k", 2); err != nil {
		t.Fatal(err)
	}
	// A refusal is the store's answer, not its failure: no failover.
	p := testParams
	p.Failures = 2
	if d, err := s.Admit(context.Background(), p, time.Now()); err != nil || d.Admission != Admitted {
		t.Fatalf("Admit = %+v, %v", d, err)
	}
	if s.Failed() || len(warns) != 0 {
		t.Fatalf("failed over (%v)", warns)
	}
	recs, err := s.List(context.Background())
	if err != nil || len(recs) != 1 || recs[0].ConsecutiveFailures != 2 {
		t.Errorf("List = %+v, %v", recs, err)
	}
	if local, _ := files.List(context.Background()); len(local) != 0 {
		t.Errorf("the secondary was written: %+v", local)
	}
	if ok, err := s.Delete(context.Background(), "k"); !ok || err != nil {
		t.Errorf("Delete = %v, %v", ok, err)
	}
}

func TestFailoverStoreSwitchesOnceWithOneWarning(t *testing.T) {
	addr := redistest.Start(t)
	var mu sync.Mutex
	var warns []error
	primary, err := NewRedisStore(RedisConfig{Addr: addr, Password: "pw-in-url", Timeout: testTimeout, TTL: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	defer primary.Close()
	files := &FileStore{Dir: filepath.Join(t.TempDir(), "state")}
	s := &FailoverStore{Primary: primary, Secondary: files, Warn: func(err error) {
		mu.Lock()
		warns = append(warns, err)
		mu.Unlock()
	}}
	if err := addFailures(context.Background(), s, "k", 1); err != nil {
		t.Fatal(err)
	}
	redistest.Kill(t, addr)
	// Several goroutines at once (check runs URLs concurrently): one
	// warning, every update lands in the secondary.
	var wg sync.WaitGroup
	for i := 0; i < 8; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := addFailures(context.Background(), s, "k", 1); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	if !s.Failed() || len(warns) != 1 {
		t.Fatalf("warnings = %v", warns)
	}
	var fe *FailoverError
	var re *RedisError
	if !errors.As(warns[0], &fe) || !errors.As(warns[0], &re) {
		t.Errorf("warning %v is not a FailoverError wrapping a RedisError", warns[0])
	}
	msg := warns[0].Error()
	for _, want := range []string{"breaker store redis://" + addr + " unavailable (", "): using the local state dir " + files.Dir + " for this run"} {
		if !strings.Contains(msg, want) {
			t.Errorf("warning %q lacks %q", msg, want)
		}
	}
	if strings.Contains(msg, "pw-in-url") {
		t.Errorf("warning shows the password: %q", msg)
	}
	recs, err := files.List(context.Background())
	if err != nil || len(recs) != 1 || recs[0].ConsecutiveFailures != 8 {
		t.Errorf("local records = %+v, %v; want 8 failures", recs, err)
	}
	// The rest of the store's life goes to the secondary too.
	if got, err := s.List(context.Background()); err != nil || len(got) != 1 {
		t.Errorf("List after failover = %+v, %v", got, err)
	}
	if len(warns) != 1 {
		t.Errorf("more warnings: %v", warns)
	}
}

func TestFailoverStoreDeadPrimaryFromTheStart(t *testing.T) {
	var warns []error
	primary, err := NewRedisStore(RedisConfig{Addr: redistest.DeadAddr(t), Timeout: testTimeout, TTL: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	defer primary.Close()
	files := &FileStore{Dir: filepath.Join(t.TempDir(), "state")}
	s := &FailoverStore{Primary: primary, Secondary: files, Warn: func(err error) { warns = append(warns, err) }}
	c := contract{t, s, context.Background()}
	p := testParams
	p.Failures = 1
	c.fail(p, contractNow)
	c.admit(p, contractNow, Rejected) // the breaker works on the local files
	if len(warns) != 1 {
		t.Errorf("warnings = %v, want one", warns)
	}
	if recs, _ := files.List(context.Background()); len(recs) != 1 || recs[0].State != StateOpen {
		t.Errorf("local records = %+v", recs)
	}
}

// recordFails is a primary whose records fail, as a Redis that takes no
// writes (before 7.0, whose admission still answers).
type recordFails struct{ Store }

func (recordFails) Record(context.Context, Params, Outcome, time.Time) (Decision, error) {
	return Decision{}, errors.New("READONLY You can't write against a read only replica.")
}

// TestRerecordChangesOnlyTheHoldOfARefusedAttempt: an outcome rerouted
// to the files that they would not have admitted (here a hold on a fresh
// closed record, whose generation is 0) sets its hold and counts nothing
// (a review found it counted under generation 0).
func TestRerecordChangesOnlyTheHoldOfARefusedAttempt(t *testing.T) {
	ctx := context.Background()
	files := &FileStore{Dir: t.TempDir()}
	now := time.Now()
	p := Params{Key: "http://held.test:80", Failures: 1, Quorum: 1, Node: "a", Identity: "ci", Reset: time.Hour, TrialTimeout: time.Minute}
	if _, err := files.Record(ctx, p, Outcome{Effect: Ignore, Hold: time.Hour}, now); err != nil {
		t.Fatal(err)
	}
	s := &FailoverStore{Primary: recordFails{files}, Secondary: files, Warn: func(error) {}}
	p.Route = RoutePrimary
	d, err := s.Record(ctx, p, Outcome{Effect: CountFailure, Err: "503"}, now)
	if err != nil || d.Route != RouteSecondary {
		t.Fatalf("Record = %+v, %v", d, err)
	}
	recs, _ := files.List(ctx)
	if len(recs) != 1 || recs[0].State != StateClosed || recs[0].ConsecutiveFailures != 0 {
		t.Errorf("the files hold %+v: a refused attempt was counted", recs)
	}
}
