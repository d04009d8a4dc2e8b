package store

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/refetch/refetch/internal/redistest"
)

// These tests run against a real redis-server (internal/redistest); they
// skip without one, and fail without one when CI=true.

// testTimeout is generous: these tests are about atomicity and costs, not
// about how fast a loaded machine answers.
const testTimeout = 5 * time.Second

// newRedisStore is a store on addr that decides by the caller's clock,
// so that tests can move a fake one (TestRedisStoreUsesTheServersClock
// shows the server's clock deciding).
func newRedisStore(t *testing.T, addr string, warn func(error)) *RedisStore {
	t.Helper()
	s, err := NewRedisStore(RedisConfig{Addr: addr, Timeout: testTimeout, TTL: time.Hour, Warn: warn, CallerClock: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// rawClient is a plain client for looking at the server behind the store.
func rawClient(t *testing.T, addr string) *redis.Client {
	c := redis.NewClient(&redis.Options{Addr: addr, DisableIdentity: true})
	t.Cleanup(func() { c.Close() })
	return c
}

// countCommands counts the commands a store's client sends (each one a
// round trip: the store never pipelines).
type countCommands struct{ n int }

func (c *countCommands) DialHook(next redis.DialHook) redis.DialHook { return next }
func (c *countCommands) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		c.n++
		return next(ctx, cmd)
	}
}
func (c *countCommands) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		c.n += len(cmds)
		return next(ctx, cmds)
	}
}

func TestNewRedisStoreRequiresTTLAndTimeout(t *testing.T) {
	for _, c := range []RedisConfig{
		{Addr: "127.0.0.1:6379", Timeout: time.Second},
		{Addr: "127.0.0.1:6379", TTL: time.Hour},
		{Timeout: time.Second, TTL: time.Hour},
	} {
		if _, err := NewRedisStore(c); err == nil {
			t.Errorf("NewRedisStore(%+v) = nil error", c)
		}
	}
}

func TestRedisStoreUpdateListDelete(t *testing.T) {
	addr := redistest.Start(t)
	s := newRedisStore(t, addr, nil)
	c := rawClient(t, addr)
	ctx := context.Background()

	keys := []string{"https://b.example:443", "http://a.example:80", "custom key * with [glob] chars ?", "ключ"}
	for i, k := range keys {
		if err := addFailures(context.Background(), s, k, i+1); err != nil {
			t.Fatalf("Record(%q): %v", k, err)
		}
	}
	if err := addFailures(context.Background(), s, keys[0], 10); err != nil {
		t.Fatal(err)
	}
	for _, k := range keys {
		ttl, err := c.PTTL(ctx, RedisKeyPrefix+k).Result()
		if err != nil || ttl <= 0 || ttl > time.Hour {
			t.Errorf("PTTL(%q) = %v, %v; want in (0, 1h]", k, ttl, err)
		}
	}
	recs, err := s.List(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]int{}
	var order []string
	for _, r := range recs {
		got[r.Key] = r.ConsecutiveFailures
		order = append(order, r.Key)
	}
	want := map[string]int{keys[0]: 11, keys[1]: 2, keys[2]: 3, keys[3]: 4}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("List = %v, want %v", got, want)
	}
	for i := 1; i < len(order); i++ {
		if order[i-1] >= order[i] {
			t.Errorf("List not sorted by key: %q", order)
		}
	}
	// Keys that are not breaker records are not listed.
	c.Set(ctx, "refetch:other", "x", 0)
	c.Set(ctx, "unrelated", "x", 0)
	if recs, _ := s.List(context.Background()); len(recs) != len(keys) {
		t.Errorf("List returned %d records, want %d", len(recs), len(keys))
	}

	if ok, err := s.Delete(context.Background(), keys[1]); !ok || err != nil {
		t.Errorf("Delete(existing) = %v, %v", ok, err)
	}
	if ok, err := s.Delete(context.Background(), keys[1]); ok || err != nil {
		t.Errorf("Delete(deleted) = %v, %v", ok, err)
	}
	if ok, err := s.Delete(context.Background(), "never seen"); ok || err != nil {
		t.Errorf("Delete(never seen) = %v, %v", ok, err)
	}
	if n, _ := c.Exists(ctx, RedisKeyPrefix+"never seen").Result(); n != 0 {
		t.Error("Delete created a key")
	}
	if err := addFailures(context.Background(), s, keys[1], 1); err != nil {
		t.Fatal(err)
	}
	if recs, err = s.List(context.Background()); len(recs) != 4 {
		t.Fatalf("List after re-create = %v, %v", recs, err)
	}
	for _, r := range recs {
		if r.Key == keys[1] && r.ConsecutiveFailures != 1 {
			t.Errorf("re-created record has %d failures, want 1", r.ConsecutiveFailures)
		}
	}

	n, err := s.DeleteAll(context.Background())
	if n != 4 || err != nil {
		t.Errorf("DeleteAll = %d, %v; want 4", n, err)
	}
	if recs, err := s.List(context.Background()); len(recs) != 0 || err != nil {
		t.Errorf("List after DeleteAll = %v, %v", recs, err)
	}
	if v, _ := c.Get(ctx, "unrelated").Result(); v != "x" {
		t.Error("DeleteAll removed a key that is not a breaker record")
	}
}

func TestRedisStoreListSkipsVanishedAndCorrupt(t *testing.T) {
	addr := redistest.Start(t)
	var warns []error
	s := newRedisStore(t, addr, func(err error) { warns = append(warns, err) })
	c := rawClient(t, addr)
	ctx := context.Background()
	if err := addFailures(context.Background(), s, "good", 1); err != nil {
		t.Fatal(err)
	}
	c.Set(ctx, RedisKeyPrefix+"bad", "{garbage", 0) // not a hash
	recs, err := s.List(context.Background())
	if err != nil || len(recs) != 1 || recs[0].Key != "good" {
		t.Errorf("List = %v, %v", recs, err)
	}
	var corrupt *CorruptStateError
	if len(warns) != 1 || !errors.As(warns[0], &corrupt) || !strings.Contains(warns[0].Error(), RedisKeyPrefix+"bad") {
		t.Errorf("warnings = %v", warns)
	}
	// A corrupt record still counts for DeleteAll.
	if n, err := s.DeleteAll(context.Background()); n != 2 || err != nil {
		t.Errorf("DeleteAll = %d, %v; want 2", n, err)
	}
}

func TestRedisStoreCorruptValueReplaced(t *testing.T) {
	addr := redistest.Start(t)
	c := rawClient(t, addr)
	ctx := context.Background()
	// A value of another type under the prefix (an older version's JSON
	// string, a list) is replaced by a fresh record at the next step,
	// with one warning.
	for name, set := range map[string]func() error{
		"string": func() error { return c.Set(ctx, RedisKeyPrefix+"k", "{garbage", 0).Err() },
		"list":   func() error { return c.RPush(ctx, RedisKeyPrefix+"k", "x").Err() },
	} {
		t.Run(name, func(t *testing.T) {
			c.Del(ctx, RedisKeyPrefix+"k")
			if err := set(); err != nil {
				t.Fatal(err)
			}
			var warns []error
			s := newRedisStore(t, addr, func(err error) { warns = append(warns, err) })
			d, err := s.Admit(ctx, testParams, time.Now())
			if err != nil || d.Admission != Admitted || !d.Corrupt || d.Record.State != StateClosed {
				t.Fatalf("Admit = %+v, %v; want a fresh closed record, marked corrupt", d, err)
			}
			var corrupt *CorruptStateError
			if len(warns) != 1 || !errors.As(warns[0], &corrupt) {
				t.Fatalf("warnings = %v", warns)
			}
			if typ, _ := c.Type(ctx, RedisKeyPrefix+"k").Result(); typ != "none" {
				t.Errorf("the corrupt value is still there: a %s", typ)
			}
			var warns2 []error
			s2 := newRedisStore(t, addr, func(err error) { warns2 = append(warns2, err) })
			if err := addFailures(ctx, s2, "k", 1); err != nil || len(warns2) != 0 {
				t.Errorf("second store: %v, warnings %v", err, warns2)
			}
			if ttl, _ := c.PTTL(ctx, RedisKeyPrefix+"k").Result(); ttl <= 0 {
				t.Errorf("record has PTTL %v", ttl)
			}
		})
	}
}

// TestRedisStoreRoundTrips counts the commands the server sees for the
// breaker's steps: every step is one script call, whatever the state.
func TestRedisStoreRoundTrips(t *testing.T) {
	addr := redistest.Start(t)
	warm := newRedisStore(t, addr, nil)
	warm.Admit(context.Background(), testParams, time.Now()) // loads the scripts
	if err := addFailures(context.Background(), warm, "warm-up", 1); err != nil {
		t.Fatal(err)
	}
	s := newRedisStore(t, addr, nil)
	p := testParams
	p.Key = "http://rt.test:80"
	now := time.Now()
	admit := func() uint64 {
		d, err := s.Admit(context.Background(), p, now)
		if err != nil || d.Admission != Admitted {
			t.Fatalf("Admit = %+v, %v", d, err)
		}
		return d.Record.Generation
	}
	record := func(gen uint64, e Effect) {
		if _, err := s.Record(context.Background(), p, Outcome{Generation: gen, Effect: e}, now); err != nil {
			t.Fatal(err)
		}
	}
	// Connect outside the count: the handshake is not a store round trip.
	if err := s.client.Ping(context.Background()).Err(); err != nil {
		t.Fatal(err)
	}
	counter := &countCommands{}
	s.client.AddHook(counter)
	step := func(name string, want int, f func()) {
		t.Helper()
		before := counter.n
		f()
		if got := counter.n - before; got != want {
			t.Errorf("%s: %d round trips, want %d", name, got, want)
		}
	}
	var gen uint64
	step("admit (closed)", 1, func() { gen = admit() })
	step("record success (clean closed)", 1, func() { record(gen, CountSuccess) })
	step("admit (closed, again)", 1, func() { gen = admit() })
	step("record failure", 1, func() { record(gen, CountFailure) })
	step("admit after own write", 1, func() { gen = admit() })
	step("record success after a failure", 1, func() { record(gen, CountSuccess) })
}

// TestRedisStoreAdmitSeesOtherWriters: an admission acts on the current
// record, so a breaker another process opened stops this one at its next
// attempt.
func TestRedisStoreAdmitSeesOtherWriters(t *testing.T) {
	addr := redistest.Start(t)
	now := time.Now()
	c1 := contract{t, newRedisStore(t, addr, nil), context.Background()}
	c2 := contract{t, newRedisStore(t, addr, nil), context.Background()}
	p := testParams
	p.Failures = 1
	d := c1.admit(p, now, Admitted)
	c1.record(p, d.Record.Generation, CountSuccess, now)
	c2.fail(p, now) // opens it
	c1.admit(p, now, Rejected)
}

// TestRedisStoreNoLostUpdates: 40 writers, each with its own store and
// client as 40 processes would have, add one failure each to one key.
func TestRedisStoreNoLostUpdates(t *testing.T) {
	const writers = 40
	addr := redistest.Start(t)
	stores := make([]*RedisStore, writers)
	for i := range stores {
		stores[i] = newRedisStore(t, addr, nil)
	}
	start := make(chan struct{})
	var wg sync.WaitGroup
	errs := make(chan error, writers)
	for _, s := range stores {
		wg.Add(1)
		go func(s *RedisStore) {
			defer wg.Done()
			<-start
			errs <- addFailures(context.Background(), s, "shared", 1)
		}(s)
	}
	close(start)
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Error(err)
		}
	}
	recs, err := stores[0].List(context.Background())
	if err != nil || len(recs) != 1 || recs[0].ConsecutiveFailures != writers {
		t.Fatalf("records = %+v, %v; want %d failures", recs, err, writers)
	}
}

func TestRedisStoreWrongPasswordNeverShown(t *testing.T) {
	const password = "correct-horse-battery"
	const wrong = "Tr0ub4dor&3-wrong"
	addr := redistest.StartWith(t, redistest.Options{Password: password})
	for _, tc := range []struct{ user, pass string }{{"", wrong}, {"default", wrong}, {"", ""}} {
		s, err := NewRedisStore(RedisConfig{Addr: addr, Username: tc.user, Password: tc.pass, Timeout: testTimeout, TTL: time.Hour})
		if err != nil {
			t.Fatal(err)
		}
		err = addFailures(context.Background(), s, "k", 1)
		var re *RedisError
		if !errors.As(err, &re) {
			t.Fatalf("Update with password %q = %v, want a RedisError", tc.pass, err)
		}
		if tc.pass != "" && strings.Contains(err.Error(), tc.pass) {
			t.Errorf("error shows the password: %v", err)
		}
		s.Close()
	}
	good, _ := NewRedisStore(RedisConfig{Addr: addr, Password: password, Timeout: testTimeout, TTL: time.Hour})
	defer good.Close()
	if err := addFailures(context.Background(), good, "k", 1); err != nil {
		t.Errorf("with the right password: %v", err)
	}
}

// TestRedisErrorScrubsPassword: whatever the client library says, the
// password does not get through.
func TestRedisErrorScrubsPassword(t *testing.T) {
	s, err := NewRedisStore(RedisConfig{Addr: "127.0.0.1:1", Password: "p@ss/w rd", Timeout: time.Second, TTL: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	err = s.wrap(context.Background(), "read", fmt.Errorf("AUTH p@ss/w rd failed; escaped p%%40ss%%2Fw+rd"))
	if strings.Contains(err.Error(), "p@ss/w rd") || strings.Contains(err.Error(), "p%40ss%2Fw+rd") {
		t.Errorf("password in %q", err)
	}
}

// TestRedisStoreDownIsBounded: a server that is not there, or that
// accepts and never answers, costs a bounded wait and an error.
func TestRedisStoreDownIsBounded(t *testing.T) {
	silent := redistest.NewSilent(t)
	closed, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closedAddr := closed.Addr().String()
	closed.Close()

	for name, addr := range map[string]string{"silent": silent.Addr, "refused": closedAddr} {
		s, err := NewRedisStore(RedisConfig{Addr: addr, Timeout: 100 * time.Millisecond, TTL: time.Hour})
		if err != nil {
			t.Fatal(err)
		}
		done := make(chan error, 1)
		go func() { done <- addFailures(context.Background(), s, "k", 1) }()
		select {
		case err := <-done:
			var re *RedisError
			if !errors.As(err, &re) {
				t.Errorf("%s: Update = %v, want a RedisError", name, err)
			}
		case <-time.After(30 * time.Second):
			t.Fatalf("%s: Update still waiting after 30s with a 100ms timeout", name)
		}
		s.Close()
	}
}

// TestRedisStoreTLS: a rediss store speaks TLS and checks the server's
// certificate against the system roots, which do not hold the test's
// self-signed one. (That it then works is shown end to end, with
// SSL_CERT_FILE, in a fresh process: the roots are loaded once per process.)
func TestRedisStoreTLS(t *testing.T) {
	files := redistest.SelfSigned(t)
	addr := redistest.StartWith(t, redistest.Options{TLS: &files})
	s, err := NewRedisStore(RedisConfig{Addr: addr, TLS: true, Timeout: testTimeout, TTL: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	err = addFailures(context.Background(), s, "k", 1)
	if err == nil || !strings.Contains(err.Error(), "certificate") {
		t.Errorf("TLS to an untrusted server: %v, want a certificate error", err)
	}
	plain := newRedisStore(t, addr, nil)
	if err := addFailures(context.Background(), plain, "k", 1); err == nil || strings.Contains(err.Error(), "certificate") {
		t.Errorf("a plain connection to a TLS-only server: %v, want a failure without TLS", err)
	}
}

func TestParseRedisURL(t *testing.T) {
	for _, tc := range []struct {
		raw  string
		want RedisConfig
		name string
	}{
		{"redis://127.0.0.1", RedisConfig{Addr: "127.0.0.1:6379"}, "redis://127.0.0.1:6379"},
		{"redis://cache.internal:6380/2", RedisConfig{Addr: "cache.internal:6380", DB: 2}, "redis://cache.internal:6380/2"},
		{"REDIS://Host:1/", RedisConfig{Addr: "Host:1"}, "redis://Host:1"},
		{"rediss://:s3cret@h:6390/0", RedisConfig{Addr: "h:6390", Password: "s3cret", TLS: true}, "rediss://h:6390"},
		{"redis://ci:p%40ss@h", RedisConfig{Addr: "h:6379", Username: "ci", Password: "p@ss"}, "redis://h:6379"},
		{"redis://[::1]:7000?timeout=1s", RedisConfig{Addr: "[::1]:7000", Timeout: time.Second}, "redis://[::1]:7000"},
		// A password with a raw '#', '?' or '/' is read as internal/redact
		// reads it (the userinfo ends at the last '@'), not as net/url.
		{"redis://:s3cr3t#x@127.0.0.1:16379", RedisConfig{Addr: "127.0.0.1:16379", Password: "s3cr3t#x"}, "redis://127.0.0.1:16379"},
		{"rediss://u:s3cr3t?x@h/1", RedisConfig{Addr: "h:6379", Username: "u", Password: "s3cr3t?x", TLS: true, DB: 1}, "rediss://h:6379/1"},
		{"redis://:s3/cr3t@h:7?timeout=2s", RedisConfig{Addr: "h:7", Password: "s3/cr3t", Timeout: 2 * time.Second}, "redis://h:7"},
		{"redis://:12#pw@h", RedisConfig{Addr: "h:6379", Password: "12#pw"}, "redis://h:6379"},
		// The sentinels' own credentials, in the query.
		{"redis+sentinel://:srv@s1,s2:26380/mymaster?sentinel_password=s%26p&sentinel_username=watch",
			RedisConfig{Kind: RedisSentinel, Addrs: []string{"s1:26379", "s2:26380"}, MasterName: "mymaster", Password: "srv",
				SentinelUsername: "watch", SentinelPassword: "s&p"}, "redis+sentinel://s1:26379,s2:26380/mymaster"},
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
	for _, raw := range []string{
		"", "memcache://:hunter2@x", "127.0.0.1:6379", "redis://", "redis:///0", "redis:hunter2@h", "hunter2@h",
		"redis://:hunter2@h:0", "redis://:hunter2@h:99999", "redis://:hunter2@h:x", "redis://:hunter2@127.0.0.1:16379:1/0",
		"redis://:hunter2@h/db", "redis://:hunter2@h/-1", "redis://:hunter2@h/1/2",
		"redis://:hunter2@h?timeout=0", "redis://:hunter2@h?timeout=soon", "redis://:hunter2@h?pool=3",
		"redis://:hunter2@h#frag", "redis://:hunt%zzer2@h", "redis://u:hunt er2@h:x", "redis://:hun@ter2@h:x",
		"redis://:hunter2#x@h:99999", "redis://:hunter2?x@h:x", "redis://:hunter2/x@h/db", "rediss://u:hunter2#x@h:0",
		"redis://:hunter2/x@", "redis://:hunter2#x@h:1:2", "redis://hunter2@h:99999", "redis+cluster://hunter2@h:0",
		// Sentinel options belong to Sentinel URLs; an unknown option
		// beside a sentinel password does not show it.
		"redis://h?sentinel_password=hunter2", "redis+cluster://h?sentinel_password=hunter2",
		"redis+sentinel://h/m?sentinel_password=hunter2&pool=3",
	} {
		_, err := ParseRedisURL(raw)
		if err == nil {
			t.Errorf("ParseRedisURL(%q) accepted it", raw)
			continue
		}
		for _, secret := range []string{"hunter2", "hunt%zzer2", "hunt er2", "ter2"} {
			if strings.Contains(err.Error(), secret) {
				t.Errorf("ParseRedisURL(%q) error shows the password: %v", raw, err)
			}
		}
	}
}

func TestJoinOneLine(t *testing.T) {
	a, b := errors.New("dial tcp 127.0.0.1:1: connect: connection refused"), context.DeadlineExceeded
	err := joinOneLine([]error{a, b})
	if strings.Contains(err.Error(), "\n") || !strings.Contains(err.Error(), "; ") {
		t.Errorf("joinOneLine: %q", err)
	}
	if !errors.Is(err, a) || !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("joinOneLine lost an error: %v", err)
	}
	if joinOneLine(nil) != nil {
		t.Error("joinOneLine(nil) is not nil")
	}
}
