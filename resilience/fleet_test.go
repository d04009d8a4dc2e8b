package resilience

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

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

// TestBreakerKeepsToItsRunsStore: a run admitted by the primary whose
// store switches to the secondary because of another run never records
// its outcome in the secondary (its ticket means nothing there): it goes
// on without a breaker, quietly (the store warned once).
func TestBreakerKeepsToItsRunsStore(t *testing.T) {
	files := &FileStore{Dir: t.TempDir()}
	var warns []error
	s := &FailoverStore{Primary: failsOnOther{newRedis(t)}, Secondary: files, Warn: func(err error) { warns = append(warns, err) }}
	now := newFakeClock().Now()
	b := mustBreaker(t, Settings{Key: "k", Failures: 1, Store: s, Warn: func(err error) { warns = append(warns, err) }})
	tk := mustAdmit(t, b, now)
	other := mustBreaker(t, Settings{Key: "other", Failures: 1, Store: s})
	mustAdmit(t, other, now) // fails over: the store is on the files now
	b.Record(context.Background(), tk, fail, now, time.Time{})
	if recs, _ := files.List(context.Background()); len(recs) != 0 {
		t.Errorf("the run's outcome landed in the other store: %+v", recs)
	}
	if _, err := b.Admit(context.Background(), now); err != nil {
		t.Errorf("the run did not go on without a breaker: %v", err)
	}
	if len(warns) != 1 {
		t.Errorf("warnings %v, want the store's one", warns)
	}
}
