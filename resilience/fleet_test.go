package resilience

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/refetch/refetch/internal/redistest"
	"github.com/refetch/refetch/resilience/store"
)

// TestBreakerStepsAsideWhenItsStoreSwitchesMidRun: a run whose store fails
// over between two steps does not mix the two stores' states (a stale
// open breaker in the local files): it goes on without a breaker.
func TestBreakerStepsAsideWhenItsStoreSwitchesMidRun(t *testing.T) {
	addr := redistest.Start(t)
	files := &FileStore{Dir: t.TempDir()}
	now := newFakeClock().Now()
	// The local files hold an open breaker from some earlier run.
	old := mustBreaker(t, Settings{Key: "k", Failures: 1, Store: files})
	old.Record(context.Background(), mustAdmit(t, old, now), fail, now, time.Time{})
	var warns []error
	s := &FailoverStore{Primary: newRedisStore(t, addr), Secondary: files, Warn: func(err error) { warns = append(warns, err) }}
	b := mustBreaker(t, Settings{Key: "k", Failures: 3, Store: s})
	tk := mustAdmit(t, b, now)
	redistest.Kill(t, addr)
	b.Record(context.Background(), tk, fail, now, time.Time{})
	if _, err := b.Admit(context.Background(), now); err != nil {
		t.Fatalf("after the switch, Admit = %v: the run mixed in the local state", err)
	}
	if len(warns) != 1 || !strings.Contains(warns[0].Error(), "unavailable") {
		t.Errorf("warnings = %v, want the one failover warning", warns)
	}
	// A run that starts after the switch uses the local state throughout.
	b2 := mustBreaker(t, Settings{Key: "k", Failures: 3, Store: s})
	if _, err := b2.Admit(context.Background(), now); !errors.Is(err, ErrCircuitOpen) {
		t.Errorf("a new run after the switch: Admit = %v, want the local open breaker", err)
	}
}

// failsOnOther is a primary store whose steps for the key "other" fail,
// as a Redis does for one run while another run's step went through.
type failsOnOther struct{ Store }

func (f failsOnOther) Admit(ctx context.Context, p Params, now time.Time) (store.Decision, error) {
	if p.Key == "other" {
		return store.Decision{}, errors.New("redis: i/o timeout")
	}
	return f.Store.Admit(ctx, p, now)
}

// TestBreakerMovesToTheSecondaryWithItsOutcome: a run admitted by the
// primary whose store switched to the secondary (because of another run,
// or its own failed write) records its outcome in the secondary as an
// attempt the secondary admits now, never under the primary's ticket,
// and goes on without a breaker, quietly (the store warned once); new
// runs use the secondary. A Redis that reads but refuses writes (out of memory, a replica)
// otherwise recorded no failure anywhere, run after run.
func TestBreakerMovesToTheSecondaryWithItsOutcome(t *testing.T) {
	files := &FileStore{Dir: t.TempDir()}
	var warns []error
	s := &FailoverStore{Primary: failsOnOther{newRedis(t)}, Secondary: files, Warn: func(err error) { warns = append(warns, err) }}
	now := newFakeClock().Now()
	b := mustBreaker(t, Settings{Key: "k", Failures: 1, Store: s, Warn: func(err error) { warns = append(warns, err) }})
	tk := mustAdmit(t, b, now)
	other := mustBreaker(t, Settings{Key: "other", Failures: 1, Store: s})
	mustAdmit(t, other, now) // fails over: the store is on the files now
	b.Record(context.Background(), tk, fail, now, time.Time{})
	recs, _ := files.List(context.Background())
	if len(recs) != 1 || recs[0].Key != "k" || recs[0].State != StateOpen || recs[0].ConsecutiveFailures != 1 {
		t.Fatalf("the files hold %+v, want k opened by the run's one failure", recs)
	}
	if _, err := b.Admit(context.Background(), now); err != nil {
		t.Errorf("the run's next step: %v, want none: the run goes on without a breaker", err)
	}
	b3 := mustBreaker(t, Settings{Key: "k", Failures: 1, Store: s})
	if _, err := b3.Admit(context.Background(), now); !errors.Is(err, ErrCircuitOpen) {
		t.Errorf("a new run: %v, want the files' open breaker", err)
	}
	if len(warns) != 1 {
		t.Errorf("warnings %v, want the store's one", warns)
	}
}

// TestBreakerOnARedisThatRefusesWrites: a Redis out of memory (maxmemory
// under noeviction) answers reads and refuses writes. Every process's
// admission is refused too (the admission script is flagged as one that
// may write), so each run goes to the local files, its failures are
// counted there, and the breaker opens at the threshold, as with a Redis
// that is down. Before, every admission went through and no failure was
// counted anywhere (a tour found it).
func TestBreakerOnARedisThatRefusesWrites(t *testing.T) {
	addr := redistest.Start(t)
	c := redis.NewClient(&redis.Options{Addr: addr})
	defer c.Close()
	ctx := context.Background()
	if err := c.ConfigSet(ctx, "maxmemory-policy", "noeviction").Err(); err != nil {
		t.Fatal(err)
	}
	if err := c.ConfigSet(ctx, "maxmemory", "1").Err(); err != nil {
		t.Fatal(err)
	}
	files := &FileStore{Dir: t.TempDir()}
	now := newFakeClock().Now()
	for run := 1; run <= 4; run++ {
		// A new process each run: a new FailoverStore on the same files.
		var warns []error
		s := &FailoverStore{Primary: newRedisStore(t, addr), Secondary: files, Warn: func(err error) { warns = append(warns, err) }}
		b := mustBreaker(t, Settings{Key: "k", Failures: 3, Store: s})
		tk, err := b.Admit(ctx, now)
		if len(warns) != 1 || !strings.Contains(warns[0].Error(), "OOM") {
			t.Errorf("run %d: warnings %v, want the store's one, saying why", run, warns)
		}
		if run <= 3 {
			if err != nil {
				t.Fatalf("run %d refused: %v", run, err)
			}
			b.Record(ctx, tk, fail, now, time.Time{})
			continue
		}
		if !errors.Is(err, ErrCircuitOpen) {
			t.Errorf("run %d: %v, want the circuit the 3 failures opened", run, err)
		}
	}
}
