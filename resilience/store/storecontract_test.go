package store

import (
	"context"
	"fmt"
	"math/rand"
	"path/filepath"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/refetch/refetch/internal/redistest"
)

// The store contract: every Store runs the state machine of machine.go,
// atomically, whoever its writers are. testStore is the one suite every
// store passes (as testing/fstest.TestFS is for an fs.FS); TestStores
// runs it against the file store, Redis, and the failover stores, with a
// working and with a dead primary.

// contractStores makes each store under test, fresh for each subtest.
var contractStores = map[string]func(t *testing.T) Store{
	"files": func(t *testing.T) Store { return &FileStore{Dir: filepath.Join(t.TempDir(), "state"), TTL: time.Hour} },
	"redis": func(t *testing.T) Store { return newRedisStore(t, redistest.Start(t), nil) },
	"failover": func(t *testing.T) Store {
		return &FailoverStore{Primary: newRedisStore(t, redistest.Start(t), nil),
			Secondary: &FileStore{Dir: filepath.Join(t.TempDir(), "state")}}
	},
	"failover, dead primary": func(t *testing.T) Store {
		primary, err := NewRedisStore(RedisConfig{Addr: redistest.DeadAddr(t), Timeout: testTimeout, TTL: time.Hour})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { primary.Close() })
		return &FailoverStore{Primary: primary, Secondary: &FileStore{Dir: filepath.Join(t.TempDir(), "state")}}
	},
}

func TestStores(t *testing.T) {
	for name, mk := range contractStores {
		t.Run(name, func(t *testing.T) {
			testStore(t, mk)
			testLimits(t, mk)
			testQuotas(t, mk)
		})
	}
}

// contractNow is the suite's clock: a whole millisecond, as Redis keeps.
var contractNow = time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC)

// sameTime compares times to the millisecond a store keeps.
func sameTime(a, b time.Time) bool {
	d := a.Sub(b)
	return d > -time.Millisecond && d < time.Millisecond
}

type contract struct {
	t   *testing.T
	s   Store
	ctx context.Context
}

func (c contract) admit(p Params, now time.Time, want Admission) Decision {
	c.t.Helper()
	d, err := c.s.Admit(c.ctx, p, now)
	if err != nil {
		c.t.Fatalf("Admit(%s, node %s) = %v", p.Key, p.Node, err)
	}
	if d.Admission != want {
		c.t.Fatalf("Admit(%s, node %s, id %q) = %v in %+v, want %v", p.Key, p.Node, p.Identity, d.Admission, d.Record, want)
	}
	return d
}

func (c contract) record(p Params, gen uint64, e Effect, now time.Time) Decision {
	c.t.Helper()
	d, err := c.s.Record(c.ctx, p, Outcome{Generation: gen, Effect: e, Err: "503 Service Unavailable"}, now)
	if err != nil {
		c.t.Fatalf("Record = %v", err)
	}
	return d
}

// fail admits and records one failure of p.Node, returning the decision.
func (c contract) fail(p Params, now time.Time) Decision {
	c.t.Helper()
	d := c.admit(p, now, Admitted)
	return c.record(p, d.Record.Generation, CountFailure, now)
}

func testStore(t *testing.T, mk func(t *testing.T) Store) {
	now := contractNow
	params := func(key, node string, failures, quorum int) Params {
		return Params{Key: key, Failures: failures, Quorum: quorum, Node: node, Reset: time.Minute, TrialTimeout: 30 * time.Second}
	}

	t.Run("closed admits and opens at the threshold", func(t *testing.T) {
		c := contract{t, mk(t), context.Background()}
		p := params("http://a.test:80", "a", 3, 1)
		if d := c.admit(p, now, Admitted); d.Record.Generation != 0 || d.Record.State != StateClosed {
			t.Fatalf("fresh key: %+v", d.Record)
		}
		c.fail(p, now)
		d := c.fail(p, now)
		if d.Record.State != StateClosed || d.Record.ConsecutiveFailures != 2 || d.Record.NodeFailures["a"] != 2 {
			t.Fatalf("after two failures: %+v", d.Record)
		}
		d = c.fail(p, now)
		if d.From != StateClosed || d.Record.State != StateOpen || d.Record.Generation != 1 ||
			d.Record.RetryAt == nil || !sameTime(*d.Record.RetryAt, now.Add(time.Minute)) {
			t.Fatalf("after three failures: %+v", d.Record)
		}
		c.admit(p, now.Add(59*time.Second), Rejected)
	})

	t.Run("a success ends the streak", func(t *testing.T) {
		c := contract{t, mk(t), context.Background()}
		p := params("k", "a", 3, 1)
		c.fail(p, now)
		c.fail(p, now)
		d := c.admit(p, now, Admitted)
		if d = c.record(params("k", "b", 3, 1), d.Record.Generation, CountSuccess, now); d.Record.ConsecutiveFailures != 0 ||
			len(d.Record.NodeFailures) != 0 || d.Record.LastError != "" {
			t.Fatalf("after a success: %+v", d.Record)
		}
		c.fail(p, now)
		c.fail(p, now)
		if d := c.admit(p, now, Admitted); d.Record.State != StateClosed {
			t.Fatalf("the streak was not reset: %+v", d.Record)
		}
	})

	t.Run("one half-open trial, whose outcome decides", func(t *testing.T) {
		c := contract{t, mk(t), context.Background()}
		p := params("k", "a", 1, 1)
		c.fail(p, now)
		later := now.Add(time.Minute)
		trial := c.admit(p, later, AdmittedTrial)
		if trial.From != StateOpen || trial.Record.State != StateHalfOpen || trial.Record.Generation != 2 {
			t.Fatalf("trial: %+v", trial)
		}
		c.admit(p, later, Rejected)
		c.admit(params("k", "b", 1, 1), later.Add(29*time.Second), Rejected)
		// An outcome of an earlier generation changes nothing.
		if d := c.record(p, 0, CountSuccess, later); d.Record.State != StateHalfOpen {
			t.Fatalf("a stale success closed it: %+v", d.Record)
		}
		d := c.record(p, trial.Record.Generation, CountSuccess, later)
		if d.From != StateHalfOpen || d.Record.State != StateClosed || d.Record.Generation != 3 || d.Record.ConsecutiveFailures != 0 {
			t.Fatalf("after the trial's success: %+v", d.Record)
		}
	})

	t.Run("a trial whose lease ran out is given to the next caller", func(t *testing.T) {
		c := contract{t, mk(t), context.Background()}
		p := params("k", "a", 1, 1)
		c.fail(p, now)
		later := now.Add(time.Minute)
		first := c.admit(p, later, AdmittedTrial)
		second := c.admit(p, later.Add(31*time.Second), AdmittedTrial)
		if second.Record.Generation <= first.Record.Generation {
			t.Fatalf("generations %d then %d", first.Record.Generation, second.Record.Generation)
		}
		// The first trial's late outcome is discarded.
		if d := c.record(p, first.Record.Generation, CountFailure, later.Add(32*time.Second)); d.Record.State != StateHalfOpen {
			t.Fatalf("a late trial reopened it: %+v", d.Record)
		}
	})

	t.Run("a neutral outcome releases the trial", func(t *testing.T) {
		c := contract{t, mk(t), context.Background()}
		p := params("k", "a", 1, 1)
		c.fail(p, now)
		later := now.Add(time.Minute)
		trial := c.admit(p, later, AdmittedTrial)
		c.record(p, trial.Record.Generation, Ignore, later)
		c.admit(p, later, AdmittedTrial)
	})

	t.Run("quorum 1: a failed trial reopens", func(t *testing.T) {
		c := contract{t, mk(t), context.Background()}
		p := params("k", "a", 1, 1)
		c.fail(p, now)
		later := now.Add(time.Minute)
		trial := c.admit(p, later, AdmittedTrial)
		d := c.record(p, trial.Record.Generation, CountFailure, later)
		if d.Record.State != StateOpen || !sameTime(*d.Record.RetryAt, later.Add(time.Minute)) {
			t.Fatalf("after a failed trial: %+v", d.Record)
		}
	})

	t.Run("quorum: one sick node never opens it", func(t *testing.T) {
		c := contract{t, mk(t), context.Background()}
		sick, healthy := params("k", "sick", 3, 2), params("k", "healthy", 3, 2)
		for i := 0; i < 9; i++ {
			c.fail(sick, now)
		}
		c.fail(healthy, now)
		d := c.fail(healthy, now)
		if d.Record.State != StateClosed || d.Record.NodeFailures["sick"] != 9 || d.Record.NodeFailures["healthy"] != 2 {
			t.Fatalf("below the quorum: %+v", d.Record)
		}
		if d = c.fail(healthy, now); d.Record.State != StateOpen {
			t.Fatalf("two nodes at the threshold did not open it: %+v", d.Record)
		}
	})

	t.Run("quorum: one sick node's failed trials do not lock the fleet out", func(t *testing.T) {
		c := contract{t, mk(t), context.Background()}
		sick, other, third := params("k", "sick", 1, 2), params("k", "other", 1, 2), params("k", "third", 1, 2)
		c.fail(sick, now)
		c.fail(other, now)
		later := now.Add(time.Minute)
		for i := 0; i < 3; i++ {
			trial := c.admit(sick, later, AdmittedTrial)
			if d := c.record(sick, trial.Record.Generation, CountFailure, later); d.Record.State != StateHalfOpen {
				t.Fatalf("one node's failed trial %d reopened it: %+v", i+1, d.Record)
			}
		}
		// The lease was released: a healthy node gets the next trial.
		trial := c.admit(other, later, AdmittedTrial)
		if d := c.record(other, trial.Record.Generation, CountSuccess, later); d.Record.State != StateClosed {
			t.Fatalf("a healthy node's trial did not close it: %+v", d.Record)
		}
		// Trials of two distinct nodes failing reopen it.
		c.fail(sick, later)
		c.fail(third, later)
		again := later.Add(time.Minute)
		trial = c.admit(sick, again, AdmittedTrial)
		c.record(sick, trial.Record.Generation, CountFailure, again)
		trial = c.admit(third, again, AdmittedTrial)
		if d := c.record(third, trial.Record.Generation, CountFailure, again); d.Record.State != StateOpen {
			t.Fatalf("two nodes' failed trials did not reopen it: %+v", d.Record)
		}
	})

	t.Run("holds are per identity and never shortened", func(t *testing.T) {
		c := contract{t, mk(t), context.Background()}
		p := params("k", "a", 3, 1)
		p.Identity = "key-1"
		other := p
		other.Identity = "key-2"
		d := c.admit(p, now, Admitted)
		d, err := c.s.Record(c.ctx, p, Outcome{Generation: d.Record.Generation, Effect: Ignore, Hold: time.Hour}, now)
		if err != nil || !sameTime(d.Record.Holds["key-1"], now.Add(time.Hour)) {
			t.Fatalf("Record with a hold = %+v, %v", d.Record, err)
		}
		if h := c.admit(p, now.Add(time.Minute), Held); !sameTime(h.HoldUntil, now.Add(time.Hour)) {
			t.Fatalf("hold until %v", h.HoldUntil)
		}
		c.admit(other, now.Add(time.Minute), Admitted)
		// A shorter hold, even from another generation, changes nothing.
		c.s.Record(c.ctx, p, Outcome{Generation: 99, Effect: Ignore, Hold: time.Second}, now.Add(time.Minute))
		c.admit(p, now.Add(2*time.Minute), Held)
		c.admit(p, now.Add(time.Hour), Admitted)
	})

	t.Run("one process's writers lose no update", func(t *testing.T) {
		c := contract{t, mk(t), context.Background()}
		const writers, each = 64, 10
		var wg sync.WaitGroup
		errs := make(chan error, writers)
		for w := 0; w < writers; w++ {
			wg.Go(func() { errs <- addFailures(c.ctx, c.s, "shared", each) })
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			if err != nil {
				t.Fatal(err)
			}
		}
		recs, err := c.s.List(c.ctx)
		if err != nil || len(recs) != 1 || recs[0].ConsecutiveFailures != writers*each || recs[0].NodeFailures["n"] != writers*each {
			t.Fatalf("List = %+v, %v; want %d failures", recs, err, writers*each)
		}
	})

	t.Run("list, delete, delete all", func(t *testing.T) {
		c := contract{t, mk(t), context.Background()}
		for i, k := range []string{"https://b.test:443", "http://a.test:80", "custom * [key] ?"} {
			if err := addFailures(c.ctx, c.s, k, i+1); err != nil {
				t.Fatal(err)
			}
		}
		recs, err := c.s.List(c.ctx)
		var got []string
		for _, r := range recs {
			got = append(got, fmt.Sprintf("%s=%d", r.Key, r.ConsecutiveFailures))
		}
		if err != nil || fmt.Sprint(got) != "[custom * [key] ?=3 http://a.test:80=2 https://b.test:443=1]" {
			t.Fatalf("List = %v, %v", got, err)
		}
		if ok, err := c.s.Delete(c.ctx, "http://a.test:80"); !ok || err != nil {
			t.Errorf("Delete = %v, %v", ok, err)
		}
		if ok, err := c.s.Delete(c.ctx, "never seen"); ok || err != nil {
			t.Errorf("Delete(never seen) = %v, %v", ok, err)
		}
		if n, err := c.s.DeleteAll(c.ctx); n != 2 || err != nil {
			t.Errorf("DeleteAll = %d, %v", n, err)
		}
		if recs, err := c.s.List(c.ctx); len(recs) != 0 || err != nil {
			t.Errorf("List after DeleteAll = %+v, %v", recs, err)
		}
	})
}

// TestStoresAgree feeds the file store and Redis the same random steps,
// and compares every decision: the Lua scripts and machine.go are one
// state machine.
func TestStoresAgree(t *testing.T) {
	addr := redistest.Start(t)
	for seed := int64(1); seed <= 12; seed++ {
		t.Run(fmt.Sprint("seed ", seed), func(t *testing.T) {
			rng := rand.New(rand.NewSource(seed))
			files := &FileStore{Dir: filepath.Join(t.TempDir(), "state")}
			redis := newRedisStore(t, addr, nil)
			key := fmt.Sprintf("agree-%d", seed)
			failures, quorum := 1+rng.Intn(4), 1+rng.Intn(3)
			nodes := []string{"a", "b", "c", "d", "e"}
			ids := []string{"", "key-1", "key-2"}
			now := contractNow
			gens := map[string]uint64{}
			for step := 0; step < 400; step++ {
				now = now.Add(time.Duration(rng.Intn(40)) * time.Second)
				p := Params{Key: key, Failures: failures, Quorum: quorum, Node: nodes[rng.Intn(len(nodes))],
					Identity: ids[rng.Intn(len(ids))], Reset: time.Minute, TrialTimeout: 30 * time.Second}
				if rng.Intn(10) == 0 {
					// Nodes with other settings share the key: each step
					// follows its caller's.
					p.Failures, p.Quorum = 1+rng.Intn(4), 1+rng.Intn(3)
					p.TrialTimeout = time.Duration(rng.Intn(90)) * time.Second
				}
				var df, dr Decision
				var ef, er error
				if rng.Intn(2) == 0 {
					df, ef = files.Admit(context.Background(), p, now)
					dr, er = redis.Admit(context.Background(), p, now)
					gens[p.Node] = df.Record.Generation
				} else {
					o := Outcome{Generation: gens[p.Node], Effect: []Effect{CountFailure, CountSuccess, Ignore}[rng.Intn(3)],
						Err: fmt.Sprint("error ", step)}
					if rng.Intn(4) == 0 {
						o.Generation = uint64(rng.Intn(4))
					}
					if rng.Intn(6) == 0 {
						o.Hold = time.Duration(rng.Intn(120)) * time.Second
					}
					df, ef = files.Record(context.Background(), p, o, now)
					dr, er = redis.Record(context.Background(), p, o, now)
				}
				if ef != nil || er != nil {
					t.Fatalf("step %d: files %v, redis %v", step, ef, er)
				}
				if a, b := comparable(df), comparable(dr); a != b {
					t.Fatalf("step %d (%+v) differs:\nfiles %s\nredis %s", step, p, a, b)
				}
			}
		})
	}
}

// comparable renders what a decision says, to the millisecond, without
// what only one store keeps (UpdatedAt's precision, ExpiresAt).
func comparable(d Decision) string {
	r := d.Record
	ms := func(t *time.Time) string {
		if t == nil {
			return "-"
		}
		return fmt.Sprint(t.UnixMilli())
	}
	holds := map[string]int64{}
	for id, h := range r.Holds {
		holds[id] = h.UnixMilli()
	}
	nodes := map[string]int{}
	for n, c := range r.NodeFailures {
		nodes[n] = c
	}
	trials := append([]string(nil), r.TrialFailures...)
	sort.Strings(trials)
	hold := "-"
	if !d.HoldUntil.IsZero() {
		hold = fmt.Sprint(d.HoldUntil.UnixMilli())
	}
	return fmt.Sprintf("admission=%d from=%v state=%v gen=%d failures=%d opened=%s retry=%s trial=%s last=%q nodes=%v trials=%v holds=%v hold=%s",
		d.Admission, d.From, r.State, r.Generation, r.ConsecutiveFailures, ms(r.OpenedAt), ms(r.RetryAt), ms(r.TrialUntil),
		r.LastError, nodes, trials, holds, hold)
}
