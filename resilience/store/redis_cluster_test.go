package store

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/refetch/refetch/internal/redistest"
)

// Highly available Redis: the contract suite runs against a Sentinel
// setup and a three-master Cluster too (one of each for the package,
// emptied before each store), and the cluster's own promises are shown
// here: keys spread over every master, listed and removed from all of
// them.

func TestMain(m *testing.M) {
	code := m.Run()
	redistest.CloseShared()
	os.Exit(code)
}

func init() {
	contractStores["redis sentinel"] = func(t *testing.T) Store {
		s := redistest.SharedSentinel(t)
		s.Flush(t)
		return newHAStore(t, RedisConfig{Kind: RedisSentinel, Addrs: s.Sentinels, MasterName: redistest.MasterName})
	}
	contractStores["redis cluster"] = func(t *testing.T) Store {
		c := redistest.SharedCluster(t)
		c.Flush(t)
		return newHAStore(t, RedisConfig{Kind: RedisCluster, Addrs: c.Masters})
	}
}

// newHAStore is a Sentinel or Cluster store of c that decides by the
// caller's clock and waits for replicas on the writes that open a
// breaker, as refetch's does.
func newHAStore(t *testing.T, c RedisConfig) *RedisStore {
	t.Helper()
	c.Timeout, c.TTL, c.CallerClock = testTimeout, time.Hour, true
	if c.ReplicaWait == 0 {
		c.ReplicaWait = 50 * time.Millisecond
	}
	s, err := NewRedisStore(c)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// TestRedisClusterSpreadsListsAndDeletes: 300 breakers and 300 rates land
// on all three masters; List and ListLimits see every one, Delete,
// DeleteLimits (two keys in two slots) and DeleteAll remove them on every
// master.
func TestRedisClusterSpreadsListsAndDeletes(t *testing.T) {
	c := redistest.SharedCluster(t)
	c.Flush(t)
	s := newHAStore(t, RedisConfig{Kind: RedisCluster, Addrs: c.Masters})
	ctx := context.Background()
	const n = 300
	for i := 0; i < n; i++ {
		origin := fmt.Sprintf("http://origin%d.test:80", i)
		if err := addFailures(ctx, s, origin, 1); err != nil {
			t.Fatal(err)
		}
		// An hour's interval: a rate key lives about its interval (by
		// the server's clock), and the counts below must not lose keys
		// that expired while a loaded machine ran the loop.
		if _, err := s.Rate(ctx, RateParams{Origin: origin, Interval: time.Hour, Burst: 1}, time.Now()); err != nil {
			t.Fatal(err)
		}
		if _, err := s.Budget(ctx, BudgetParams{Origin: origin, Kind: BudgetFirst, Percent: 10, Min: 1, Window: time.Minute}, time.Now()); err != nil {
			t.Fatal(err)
		}
	}
	for _, addr := range c.Masters {
		rc := redis.NewClient(&redis.Options{Addr: addr, DisableIdentity: true})
		size, err := rc.DBSize(ctx).Result()
		rc.Close()
		if err != nil || size == 0 {
			t.Fatalf("master %s holds %d keys (%v): the records do not spread", addr, size, err)
		}
	}
	recs, err := s.List(ctx)
	if err != nil || len(recs) != n {
		t.Fatalf("List = %d records, %v; want %d", len(recs), err, n)
	}
	for _, r := range recs {
		if r.ConsecutiveFailures != 1 || !strings.HasPrefix(r.Key, "http://origin") {
			t.Fatalf("record %+v", r)
		}
	}
	limits, err := s.ListLimits(ctx)
	if err != nil || len(limits) != 2*n {
		t.Fatalf("ListLimits = %d records, %v; want %d", len(limits), err, 2*n)
	}
	if ok, err := s.DeleteLimits(ctx, "http://origin7.test:80"); !ok || err != nil {
		t.Fatalf("DeleteLimits = %v, %v", ok, err)
	}
	if ok, err := s.Delete(ctx, "http://origin7.test:80"); !ok || err != nil {
		t.Fatalf("Delete = %v, %v", ok, err)
	}
	if got, err := s.DeleteAll(ctx); got != n-1 || err != nil {
		t.Fatalf("DeleteAll = %d, %v; want %d", got, err, n-1)
	}
	if got, err := s.DeleteAllLimits(ctx); got != 2*(n-1) || err != nil {
		t.Fatalf("DeleteAllLimits = %d, %v; want %d", got, err, 2*(n-1))
	}
	if recs, err := s.List(ctx); err != nil || len(recs) != 0 {
		t.Fatalf("after DeleteAll: %d records, %v", len(recs), err)
	}
}

// TestMovedIsStoreDown: a store that reaches a cluster node which does
// not hold the key's slot gets MOVED; to a FailoverStore that is its
// primary failing (one warning, the secondary answers), not an error of
// the step.
func TestMovedIsStoreDown(t *testing.T) {
	c := redistest.SharedCluster(t)
	c.Flush(t)
	ctx := context.Background()
	key := clusterKey(t, c, "moved", func(master string) bool { return master != c.Masters[0] })
	one := newRedisStore(t, c.Masters[0], nil)
	var warns []error
	s := &FailoverStore{Primary: one, Secondary: &FileStore{Dir: filepath.Join(t.TempDir(), "state")},
		Warn: func(err error) { warns = append(warns, err) }}
	p := testParams
	p.Key = key
	d, err := s.Record(ctx, p, Outcome{Effect: CountFailure, Err: "503"}, time.Now())
	if err != nil || d.Route != RouteSecondary || d.Record.ConsecutiveFailures != 1 {
		t.Fatalf("Record = %+v, %v; want the secondary's", d, err)
	}
	if len(warns) != 1 || !strings.Contains(warns[0].Error(), "MOVED") {
		t.Fatalf("warnings %v, want one naming MOVED", warns)
	}
}

func TestParseRedisHAURL(t *testing.T) {
	for _, tc := range []struct {
		raw  string
		want RedisConfig
		name string
	}{
		{"redis+sentinel://s1,s2:26380/mymaster", RedisConfig{Kind: RedisSentinel, Addrs: []string{"s1:26379", "s2:26380"}, MasterName: "mymaster"},
			"redis+sentinel://s1:26379,s2:26380/mymaster"},
		{"rediss+sentinel://u:s3cret@10.0.0.1:5000/m/3?timeout=1s", RedisConfig{Kind: RedisSentinel, Addrs: []string{"10.0.0.1:5000"},
			MasterName: "m", Username: "u", Password: "s3cret", DB: 3, TLS: true, Timeout: time.Second}, "rediss+sentinel://10.0.0.1:5000/m/3"},
		{"REDIS+CLUSTER://a:7000,b:7001,c/", RedisConfig{Kind: RedisCluster, Addrs: []string{"a:7000", "b:7001", "c:6379"}},
			"redis+cluster://a:7000,b:7001,c:6379"},
		{"redis+cluster://[::1]:7000,[::1]:7001", RedisConfig{Kind: RedisCluster, Addrs: []string{"[::1]:7000", "[::1]:7001"}},
			"redis+cluster://[::1]:7000,[::1]:7001"},
		{"rediss+cluster://:p%40ss@c", RedisConfig{Kind: RedisCluster, Addrs: []string{"c:6379"}, Password: "p@ss", TLS: true},
			"rediss+cluster://c:6379"},
	} {
		got, err := ParseRedisURL(tc.raw)
		if err != nil || fmt.Sprintf("%+v", got) != fmt.Sprintf("%+v", tc.want) {
			t.Errorf("ParseRedisURL(%q) = %+v, %v; want %+v", tc.raw, got, err, tc.want)
			continue
		}
		if got.String() != tc.name {
			t.Errorf("String() of %q = %q, want %q", tc.raw, got.String(), tc.name)
		}
	}
	for raw, want := range map[string]string{
		"redis+sentinel://:hunter2@s1,s2":              "no master name",
		"redis+sentinel://:hunter2@s1/":                "no master name",
		"redis+sentinel://:hunter2@s1/m/x":             "invalid database",
		"redis+sentinel://:hunter2@s1/m/1/2":           "invalid database",
		"redis+sentinel://:hunter2@s1,,s2/m":           "an empty host",
		"redis+sentinel://:hunter2@s1:0/m":             "invalid port",
		"redis+sentinel://:hunter2@s1:1:2,s2/m":        "invalid host and port",
		"redis+cluster://:hunter2@a,b:99999":           "invalid port",
		"redis+cluster://:hunter2@a/1":                 "a cluster has only database 0",
		"redis+cluster://:hunter2@a?pool=3":            "unknown option",
		"redis+cluster://:hunter2@a?timeout=-1s":       "invalid timeout",
		"redis+cluster://:hunter2@":                    "no host",
		"redis+memcache://:hunter2@a":                  "unsupported scheme",
		"redis://:hunter2@a:1,b:2":                     "several hosts",
		"redis+cluster://:hunt%zzer2@a,b":              "malformed URL",
		"rediss+sentinel://u:hunter2@[::1:1,[::1]:2/m": "invalid host and port",
		"redis+cluster://:hunter2@a:1,b:x":             "invalid port \"x\"",
	} {
		_, err := ParseRedisURL(raw)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("ParseRedisURL(%q) = %v, want an error saying %q", raw, err, want)
			continue
		}
		for _, secret := range []string{"hunter2", "hunt%zzer2"} {
			if strings.Contains(err.Error(), secret) {
				t.Errorf("ParseRedisURL(%q) error shows the password: %v", raw, err)
			}
		}
	}
}

// TestParseRedisHAURLPasswordDelimiters: a password holding '/', '?',
// '#' or '@' (common in generated ones) is read as internal/redact reads
// it: parsed whole when the URL allows, never shown when it does not.
func TestParseRedisHAURLPasswordDelimiters(t *testing.T) {
	for _, pass := range []string{"12?s3cret", "pa/ss", "p#ss", "p@ss", "x/?#@y"} {
		for _, raw := range []string{
			"redis+sentinel://u:" + pass + "@s1:26379,s2/mymaster",
			"rediss+cluster://u:" + pass + "@n1:7000,n2",
			"redis+cluster://:" + pass + "@n1:7000,n2?timeout=1s",
		} {
			c, err := ParseRedisURL(raw)
			if err != nil {
				if strings.Contains(err.Error(), pass) || strings.Contains(err.Error(), "s3cret") {
					t.Errorf("ParseRedisURL(%q) error shows the password: %v", raw, err)
				}
				continue
			}
			if c.Password != pass || len(c.Addrs) != 2 || strings.Contains(c.String(), pass) {
				t.Errorf("ParseRedisURL(%q) = %+v, want the password %q and two hosts", raw, c, pass)
			}
		}
	}
}

// TestClusterDownIsStoreDown: once a master is gone long enough for the
// others to call the cluster failed, a live master answers CLUSTERDOWN;
// to a FailoverStore that is its primary failing (one warning, the
// secondary answers), not an error of the step.
func TestClusterDownIsStoreDown(t *testing.T) {
	c := redistest.StartCluster(t)
	ctx := context.Background()
	key := clusterKey(t, c, "down", func(master string) bool { return master == c.Masters[0] })
	redistest.Kill(t, c.Masters[2])
	live := rawClient(t, c.Masters[0])
	deadline := time.Now().Add(time.Minute)
	for {
		info, _ := live.ClusterInfo(ctx).Result()
		if strings.Contains(info, "cluster_state:fail") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the cluster still reports %q a minute after a master died", info)
		}
		time.Sleep(20 * time.Millisecond)
	}
	var warns []error
	s := &FailoverStore{Primary: newHAStore(t, RedisConfig{Kind: RedisCluster, Addrs: c.Masters[:2]}),
		Secondary: &FileStore{Dir: filepath.Join(t.TempDir(), "state")}, Warn: func(err error) { warns = append(warns, err) }}
	p := testParams
	p.Key = key
	d, err := s.Admit(ctx, p, time.Now())
	if err != nil || d.Route != RouteSecondary || d.Admission != Admitted {
		t.Fatalf("Admit = %+v, %v; want the secondary's", d, err)
	}
	if len(warns) != 1 || !strings.Contains(warns[0].Error(), "CLUSTERDOWN") {
		t.Fatalf("warnings %v, want one naming CLUSTERDOWN", warns)
	}
}

// TestClusterFailoverIsFollowed: a master killed and replaced by its
// replica costs a FailoverStore its primary for a moment (one warning, the
// files), and a later run finds the promoted replica: the store asks the
// cluster for its slots again when it goes back. Before, its map still
// named the dead master and a batch never came back (a tour found it).
func TestClusterFailoverIsFollowed(t *testing.T) {
	c := redistest.StartCluster(t)
	replica := c.AddReplica(t, c.Masters[0])
	ctx := context.Background()
	key := clusterKey(t, c, "promoted", func(master string) bool { return master == c.Masters[0] })
	var clock atomic.Int64
	clock.Store(time.Now().UnixNano())
	now := func() time.Time { return time.Unix(0, clock.Load()) }
	var warns []error
	s := &FailoverStore{Primary: newHAStore(t, RedisConfig{Kind: RedisCluster, Addrs: c.Masters}),
		Secondary: &FileStore{Dir: filepath.Join(t.TempDir(), "state")}, Warn: func(err error) { warns = append(warns, err) },
		RetryAfter: time.Second, Now: now}
	p := testParams
	p.Key = key
	if d, err := s.Admit(ctx, p, now()); err != nil || d.Route != RoutePrimary {
		t.Fatalf("Admit = %+v, %v", d, err)
	}
	redistest.Kill(t, c.Masters[0])
	c.WaitMaster(t, replica)
	// Each admission is a new run, a second after the last: the store
	// tries the cluster again at each, and must be back on it within a
	// few (the map of slots is reloaded in the background).
	back := false
	deadline := time.Now().Add(30 * time.Second) // a failure guard, not a timing
	for !back && time.Now().Before(deadline) {
		clock.Add(int64(time.Second))
		d, err := s.Admit(ctx, p, now())
		if err != nil {
			t.Fatal(err)
		}
		back = d.Route == RoutePrimary
		if !back {
			time.Sleep(20 * time.Millisecond) // the reload's own time: a failure guard only
		}
	}
	if !back {
		t.Fatalf("the store never went back to the cluster after %s was promoted; warnings %v", replica, warns)
	}
	if len(warns) != 1 {
		t.Errorf("warnings %v, want the one", warns)
	}
}

// clusterKey is the first breaker key http://NAME0.test:80,
// http://NAME1.test:80, … whose slot's master want accepts.
func clusterKey(t *testing.T, c *redistest.Cluster, name string, want func(master string) bool) string {
	t.Helper()
	cc := redis.NewClusterClient(&redis.ClusterOptions{Addrs: c.Masters, DisableIdentity: true})
	defer cc.Close()
	for i := 0; ; i++ {
		k := fmt.Sprintf("http://%s%d.test:80", name, i)
		m, err := cc.MasterForKey(context.Background(), RedisKeyPrefix+k)
		if err != nil {
			t.Fatal(err)
		}
		if want(m.Options().Addr) {
			return k
		}
	}
}
