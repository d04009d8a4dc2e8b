package store

import (
	"context"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/refetch/refetch/internal/redistest"
)

// waitCalls is how many WAITs the server on addr has run (INFO
// commandstats).
func waitCalls(t *testing.T, addr string) int {
	t.Helper()
	info, err := rawClient(t, addr).Info(context.Background(), "commandstats").Result()
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(info, "\r\n") {
		if rest, ok := strings.CutPrefix(line, "cmdstat_wait:calls="); ok {
			n := 0
			for _, c := range rest {
				if c < '0' || c > '9' {
					break
				}
				n = n*10 + int(c-'0')
			}
			return n
		}
	}
	return 0
}

// TestSentinelOpenBreakerSurvivesFailover: a breaker opened and a hold
// set through a Sentinel store are on the replica when the step returns
// (the store WAITs for it after exactly those writes), so they are still
// there after the primary is killed with SIGKILL and the replica
// promoted. Meanwhile a FailoverStore steps aside to its files (one
// warning) and, RetryAfter later, comes back to the new primary without
// being made anew.
func TestSentinelOpenBreakerSurvivesFailover(t *testing.T) {
	sen := redistest.StartSentinel(t, 1)
	ctx := context.Background()
	// A generous wait: the test is about what the replica has, not speed.
	primary := newHAStore(t, RedisConfig{Kind: RedisSentinel, Addrs: sen.Sentinels, MasterName: redistest.MasterName,
		ReplicaWait: testTimeout})
	var clock atomic.Int64
	clock.Store(time.Now().UnixNano())
	now := func() time.Time { return time.Unix(0, clock.Load()) }
	var warns []error
	s := &FailoverStore{Primary: primary, Secondary: &FileStore{Dir: filepath.Join(t.TempDir(), "state")},
		Warn: func(err error) { warns = append(warns, err) }, RetryAfter: time.Second, Now: now}

	p := Params{Key: "http://api.test:80", Failures: 2, Quorum: 1, Node: "a", Identity: "ci", Reset: time.Hour, TrialTimeout: time.Minute}
	d, err := s.Admit(ctx, p, now())
	if err != nil || d.Route != RoutePrimary {
		t.Fatalf("Admit = %+v, %v", d, err)
	}
	p.Route = RoutePrimary
	d, err = s.Record(ctx, p, Outcome{Generation: d.Record.Generation, Effect: CountFailure, Err: "503"}, now())
	if err != nil || d.Record.State != StateClosed {
		t.Fatalf("first failure: %+v, %v", d.Record, err)
	}
	if n := waitCalls(t, sen.Primary); n != 0 {
		t.Fatalf("%d WAITs after a failure that opened nothing, want none", n)
	}
	d, err = s.Record(ctx, p, Outcome{Generation: d.Record.Generation, Effect: CountFailure, Err: "503"}, now())
	if err != nil || d.Record.State != StateOpen {
		t.Fatalf("second failure: %+v, %v", d.Record, err)
	}
	held := p
	held.Key, held.Route = "http://slow.test:80", RouteAny
	d, err = s.Record(ctx, held, Outcome{Effect: Ignore, Hold: time.Hour}, now())
	if err != nil || d.Route != RoutePrimary {
		t.Fatalf("hold: %+v, %v", d, err)
	}
	if n := waitCalls(t, sen.Primary); n != 2 {
		t.Fatalf("%d WAITs, want 2: one after the opening write, one after the hold", n)
	}
	// On the replica already, before any failover: what WAIT promised.
	rep := rawClient(t, sen.Replica)
	if st, err := rep.HGet(ctx, RedisKeyPrefix+p.Key, "state").Result(); err != nil || st != "open" {
		t.Fatalf("the replica's record: state %q, %v; want open", st, err)
	}
	if h, err := rep.HGet(ctx, RedisKeyPrefix+held.Key, "h:ci").Result(); err != nil || h == "" {
		t.Fatalf("the replica's hold: %q, %v", h, err)
	}

	redistest.Kill(t, sen.Primary)
	// While the sentinels promote the replica, runs step aside to the
	// files, with one warning, and decide as without a store.
	p.Route = RouteAny
	if d, err := s.Admit(ctx, p, now()); err != nil || d.Route != RouteSecondary || d.Admission != Admitted {
		t.Fatalf("Admit during the failover = %+v, %v; want the files' admission", d, err)
	}
	if len(warns) != 1 {
		t.Fatalf("warnings %v, want one", warns)
	}
	promoted := sen.WaitPromoted(t, sen.Primary)
	if promoted != sen.Replica {
		t.Fatalf("promoted %s, want %s", promoted, sen.Replica)
	}
	if d, err := s.Admit(ctx, p, now()); err != nil || d.Route != RouteSecondary {
		t.Fatalf("Admit before RetryAfter = %+v, %v; want the files", d, err)
	}
	clock.Add(int64(time.Second))
	// Every admission from here on is a new run: the first one after
	// RetryAfter tries the new primary, which answers.
	d, err = s.Admit(ctx, p, now())
	if err != nil || d.Route != RoutePrimary || d.Admission != Rejected {
		t.Fatalf("Admit after the failover = %+v, %v; want the new primary's open breaker", d, err)
	}
	if d, err := s.Admit(ctx, held, now()); err != nil || d.Route != RoutePrimary || d.Admission != Held {
		t.Fatalf("Admit of the held key = %+v, %v; want held", d, err)
	}
	if s.Failed() || len(warns) != 1 {
		t.Fatalf("Failed() = %v, warnings %v", s.Failed(), warns)
	}
}

// TestReadOnlyIsStoreDown: a demoted primary (a replica) answers a write
// with READONLY; to a FailoverStore that is its primary failing (one
// warning, the secondary answers), not an error of the step.
func TestReadOnlyIsStoreDown(t *testing.T) {
	sen := redistest.SharedSentinel(t)
	replica := newRedisStore(t, sen.Replica, nil)
	var warns []error
	s := &FailoverStore{Primary: replica, Secondary: &FileStore{Dir: filepath.Join(t.TempDir(), "state")},
		Warn: func(err error) { warns = append(warns, err) }}
	d, err := s.Record(context.Background(), testParams, Outcome{Effect: CountFailure, Err: "503"}, time.Now())
	if err != nil || d.Route != RouteSecondary || d.Record.ConsecutiveFailures != 1 {
		t.Fatalf("Record = %+v, %v; want the secondary's", d, err)
	}
	if len(warns) != 1 || !strings.Contains(warns[0].Error(), "READONLY") {
		t.Fatalf("warnings %v, want one naming READONLY", warns)
	}
}

// TestReplicaWaitSkipsPrimariesWithoutReplicas: a primary without
// replicas (INFO says so) is never waited on.
func TestReplicaWaitSkipsPrimariesWithoutReplicas(t *testing.T) {
	addr := redistest.Start(t)
	s, err := NewRedisStore(RedisConfig{Addr: addr, Timeout: testTimeout, TTL: time.Hour, ReplicaWait: 20 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	p := testParams
	p.Failures = 1
	for i, key := range []string{"a", "b", "c"} {
		p.Key = key
		if d, err := s.Record(context.Background(), p, Outcome{Effect: CountFailure}, time.Now()); err != nil || d.Record.State != StateOpen {
			t.Fatalf("Record(%s) = %+v, %v", key, d.Record, err)
		}
		if n := waitCalls(t, addr); n != 0 {
			t.Fatalf("after %d opening writes: %d WAITs, want none", i+1, n)
		}
	}
}

// countAdmits counts the admissions a store is asked for.
type countAdmits struct {
	Store
	n atomic.Int64
}

func (c *countAdmits) Admit(ctx context.Context, p Params, now time.Time) (Decision, error) {
	c.n.Add(1)
	return c.Store.Admit(ctx, p, now)
}

// TestFailoverStoreRetriesAfter: RetryAfter after its primary failed, one
// new run tries it again; still down, that run goes on with the secondary
// and the wait starts over, without a second warning. Runs that are not
// new never go back.
func TestFailoverStoreRetriesAfter(t *testing.T) {
	dead, err := NewRedisStore(RedisConfig{Addr: redistest.DeadAddr(t), Timeout: testTimeout, TTL: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	defer dead.Close()
	primary := &countAdmits{Store: dead}
	var clock atomic.Int64
	now := func() time.Time { return time.Unix(0, clock.Load()) }
	var warns []error
	s := &FailoverStore{Primary: primary, Secondary: &FileStore{Dir: filepath.Join(t.TempDir(), "state")},
		Warn: func(err error) { warns = append(warns, err) }, RetryAfter: time.Second, Now: now}
	ctx := context.Background()
	admit := func(route Route) Decision {
		t.Helper()
		p := testParams
		p.Route = route
		d, err := s.Admit(ctx, p, now())
		if route == RoutePrimary {
			// A run that had the primary goes on without a breaker.
			if err != ErrRouteGone {
				t.Fatalf("Admit on the primary's route = %v, want ErrRouteGone", err)
			}
			return d
		}
		if err != nil || d.Route != RouteSecondary {
			t.Fatalf("Admit = %+v, %v; want the secondary's", d, err)
		}
		return d
	}
	admit(RouteAny)
	if primary.n.Load() != 1 || len(warns) != 1 {
		t.Fatalf("%d tries, warnings %v", primary.n.Load(), warns)
	}
	clock.Add(int64(time.Second) - 1)
	admit(RouteAny)
	if primary.n.Load() != 1 {
		t.Fatalf("tried again before RetryAfter")
	}
	clock.Add(1)
	admit(RoutePrimary) // a run that had the primary: not a new run
	admit(RouteAny)
	admit(RouteAny)
	if primary.n.Load() != 2 || len(warns) != 1 || !s.Failed() {
		t.Fatalf("%d tries (want 2), warnings %v, Failed %v", primary.n.Load(), warns, s.Failed())
	}
}

// TestSentinelWithAPassword: sentinels that ask for a password of their
// own (requirepass in sentinel.conf) are asked with ?sentinel_password=;
// the store then works as any. Without it, the sentinels refuse and the
// step fails saying so, and the password shows in no message.
func TestSentinelWithAPassword(t *testing.T) {
	const pw = "s3ntinel-pw"
	sen := redistest.StartSentinelAuth(t, 1, pw)
	cfg, err := ParseRedisURL(sen.URL())
	if err != nil || cfg.SentinelPassword != pw {
		t.Fatalf("ParseRedisURL(%s) = %+v, %v", sen.URL(), cfg, err)
	}
	ctx := context.Background()
	p := Params{Key: "http://api.test:80", Failures: 1, Quorum: 1, Node: "a", Reset: time.Hour, TrialTimeout: time.Minute}
	s := newHAStore(t, cfg)
	d, err := s.Admit(ctx, p, time.Now())
	if err != nil || d.Admission != Admitted {
		t.Fatalf("Admit = %+v, %v", d, err)
	}
	if d, err = s.Record(ctx, p, Outcome{Effect: CountFailure, Err: "503"}, time.Now()); err != nil || d.Record.State != StateOpen {
		t.Fatalf("Record = %+v, %v", d.Record, err)
	}

	cfg.SentinelPassword = ""
	s = newHAStore(t, cfg)
	_, err = s.Admit(ctx, p, time.Now())
	if err == nil || !strings.Contains(strings.ToLower(err.Error()), "auth") {
		t.Errorf("Admit without the sentinels' password = %v, want their refusal", err)
	}
	cfg.SentinelPassword = "wrong-" + pw
	s = newHAStore(t, cfg)
	if _, err = s.Admit(ctx, p, time.Now()); err == nil || strings.Contains(err.Error(), pw) {
		t.Errorf("Admit with a wrong password = %v, want a refusal that does not show it", err)
	}
}

// TestSentinelGracefulFailover: after SENTINEL FAILOVER the old primary
// still takes writes for seconds, until the sentinels demote it, and
// those writes are lost when it resyncs from the new one. A long-lived
// store notices the new primary within a second (it asks the sentinels),
// and a pooled connection to the old one refuses its next command rather
// than write there; once revived, the store writes to the new primary (a
// tour found a batch writing every step to the old one).
func TestSentinelGracefulFailover(t *testing.T) {
	sen := redistest.StartSentinel(t, 1)
	ctx := context.Background()
	s := newHAStore(t, RedisConfig{Kind: RedisSentinel, Addrs: sen.Sentinels, MasterName: redistest.MasterName})
	p := Params{Key: "http://graceful.test:80", Failures: 5, Quorum: 1, Node: "a", Identity: "ci", Reset: time.Hour, TrialTimeout: time.Minute}
	record := func() (Decision, error) {
		return s.Record(ctx, p, Outcome{Effect: CountFailure, Err: "503"}, time.Now())
	}
	if _, err := record(); err != nil {
		t.Fatal(err)
	}
	sen.WaitReplicated(t)
	sc := rawClient(t, sen.Sentinels[0])
	if err := sc.Do(ctx, "SENTINEL", "FAILOVER", redistest.MasterName).Err(); err != nil {
		t.Fatal(err)
	}
	promoted := sen.WaitPromoted(t, sen.Primary)
	deadline := time.Now().Add(30 * time.Second) // a failure guard, not a timing
	for s.sentinels.current() != promoted {
		if time.Now().After(deadline) {
			t.Fatalf("the store still names %s as the primary, not %s", s.sentinels.current(), promoted)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if _, err := record(); err != nil {
		if !strings.Contains(err.Error(), "the sentinels named a new primary") {
			t.Fatalf("the step on the old primary's connection: %v", err)
		}
		s.Revive()
		if _, err := record(); err != nil {
			t.Fatalf("after revival: %v", err)
		}
	}
	got, err := rawClient(t, promoted).HGet(ctx, RedisKeyPrefix+p.Key, "failures").Result()
	if err != nil || got != "2" {
		t.Errorf("the new primary's record: failures %q, %v; want 2 (the write went to the old primary?)", got, err)
	}
}
