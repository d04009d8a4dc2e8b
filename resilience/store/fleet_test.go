package store

import (
	"context"
	"encoding/json"
	"errors"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/refetch/refetch/internal/redistest"
)

// TestRedisStoreUsesTheServersClock: a node whose clock is an hour fast
// records a 10 s hold that ends 10 s after the server's now, and a node
// with the right clock sees it end then, in its own clock.
func TestRedisStoreUsesTheServersClock(t *testing.T) {
	addr := redistest.Start(t)
	mk := func() *RedisStore {
		s, err := NewRedisStore(RedisConfig{Addr: addr, Timeout: testTimeout, TTL: time.Hour})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		return s
	}
	fast, right := mk(), mk()
	p := testParams
	p.Identity = "id"
	skew := time.Hour
	if _, err := fast.Record(context.Background(), p, Outcome{Effect: Ignore, Hold: 10 * time.Second}, time.Now().Add(skew)); err != nil {
		t.Fatal(err)
	}
	c := rawClient(t, addr)
	server, err := c.Time(context.Background()).Result()
	if err != nil {
		t.Fatal(err)
	}
	raw, err := c.HGet(context.Background(), RedisKeyPrefix+"k", "h:id").Int64()
	if err != nil {
		t.Fatal(err)
	}
	if end := time.UnixMilli(raw); end.Sub(server) > 10*time.Second || end.Sub(server) < 0 {
		t.Errorf("hold ends %v after the server's now, want within 10s (the fast node's clock leaked in)", end.Sub(server))
	}
	now := time.Now()
	d, err := right.Admit(context.Background(), p, now)
	if err != nil || d.Admission != Held {
		t.Fatalf("Admit = %+v, %v", d, err)
	}
	if left := d.HoldUntil.Sub(now); left > 10*time.Second || left <= 0 {
		t.Errorf("the node with the right clock is held for %v, want up to 10s", left)
	}
	// The fast node, in its own clock, sees the same end: its now + ~10s.
	fastNow := time.Now().Add(skew)
	d, _ = fast.Admit(context.Background(), p, fastNow)
	if left := d.HoldUntil.Sub(fastNow); d.Admission != Held || left > 10*time.Second || left <= 0 {
		t.Errorf("the fast node is held for %v (%v), want up to 10s", left, d.Admission)
	}
}

// TestRecordsAreForwardCompatible: a field this version does not know (a
// newer version's, in a rolling upgrade) is kept, and the record is read,
// written and listed as usual, in both stores.
func TestRecordsAreForwardCompatible(t *testing.T) {
	p := testParams
	p.Failures = 3
	t.Run("redis", func(t *testing.T) {
		addr := redistest.Start(t)
		c := rawClient(t, addr)
		ctx := context.Background()
		c.HSet(ctx, RedisKeyPrefix+"k", "state", "closed", "gen", "4", "failures", "2", "n:a", "2", "x:future", `{"v":2}`)
		var warns []error
		s := newRedisStore(t, addr, func(err error) { warns = append(warns, err) })
		d, err := s.Record(ctx, p, Outcome{Generation: 4, Effect: CountFailure}, contractNow)
		if err != nil || d.Corrupt || d.Record.State != StateOpen || d.Record.ConsecutiveFailures != 3 {
			t.Fatalf("Record = %+v, %v; want the third failure to open it", d, err)
		}
		if v, _ := c.HGet(ctx, RedisKeyPrefix+"k", "x:future").Result(); v != `{"v":2}` {
			t.Errorf("the unknown field became %q", v)
		}
		if recs, err := s.List(ctx); err != nil || len(recs) != 1 || recs[0].State != StateOpen || len(warns) != 0 {
			t.Errorf("List = %+v, %v, warnings %v", recs, err, warns)
		}
		// A state this version does not know admits, and is left alone.
		c.HSet(ctx, RedisKeyPrefix+"k", "state", "forced-open")
		if d, err := s.Admit(ctx, p, contractNow); err != nil || d.Admission != Admitted {
			t.Errorf("Admit in an unknown state = %+v, %v", d, err)
		}
		if v, _ := c.HGet(ctx, RedisKeyPrefix+"k", "state").Result(); v != "forced-open" {
			t.Errorf("the unknown state became %q", v)
		}
		// Nor does an outcome change it; a hold is still kept.
		d, err = s.Record(ctx, p, Outcome{Generation: 5, Effect: CountFailure, Hold: time.Minute}, contractNow)
		if err != nil || d.Record.State != StateUnknown || d.Record.StateName() != "forced-open" || len(d.Record.Holds) != 1 {
			t.Errorf("Record in an unknown state = %+v, %v", d.Record, err)
		}
		if v, _ := c.HGet(ctx, RedisKeyPrefix+"k", "state").Result(); v != "forced-open" {
			t.Errorf("an outcome changed the unknown state to %q", v)
		}
	})
	t.Run("files", func(t *testing.T) {
		var warns []error
		s := &FileStore{Dir: t.TempDir(), Warn: func(err error) { warns = append(warns, err) }}
		path := s.path("k") + ".json"
		rec := `{"key":"k","state":"closed","consecutive_failures":2,"generation":4,"opened_at":null,"retry_at":null,` +
			`"node_failures":{"a":2},"updated_at":"2026-11-27T12:00:00Z","x_future":{"v":[1,2]},"y":"z"}`
		if err := os.WriteFile(path, []byte(rec), 0o600); err != nil {
			t.Fatal(err)
		}
		d, err := s.Record(context.Background(), p, Outcome{Generation: 4, Effect: CountFailure}, contractNow)
		if err != nil || d.Corrupt || d.Record.State != StateOpen || d.Record.ConsecutiveFailures != 3 || len(warns) != 0 {
			t.Fatalf("Record = %+v, %v, warnings %v", d, err, warns)
		}
		data, _ := os.ReadFile(path)
		var m map[string]json.RawMessage
		if err := json.Unmarshal(data, &m); err != nil || string(m["x_future"]) != `{"v":[1,2]}` || string(m["y"]) != `"z"` {
			t.Errorf("saved %s: unknown fields lost", data)
		}
		if recs, err := s.List(context.Background()); err != nil || len(recs) != 1 {
			t.Errorf("List = %+v, %v", recs, err)
		}
		// A state this version does not know: admitted, kept by name,
		// changed by no outcome; a hold is still kept.
		os.WriteFile(path, []byte(`{"key":"k","state":"forced-open","consecutive_failures":0,"generation":9,"opened_at":null,"retry_at":null,"updated_at":"2026-11-27T12:00:00Z","z":1}`), 0o600)
		if d, err := s.Admit(context.Background(), p, contractNow); err != nil || d.Corrupt || d.Admission != Admitted || d.Record.StateName() != "forced-open" {
			t.Fatalf("Admit in an unknown state = %+v, %v, warnings %v", d, err, warns)
		}
		d, err = s.Record(context.Background(), p, Outcome{Generation: 9, Effect: CountFailure, Hold: time.Minute}, contractNow)
		if err != nil || d.Record.State != StateUnknown || len(d.Record.Holds) != 1 {
			t.Errorf("Record in an unknown state = %+v, %v", d.Record, err)
		}
		data, _ = os.ReadFile(path)
		m = nil
		if err := json.Unmarshal(data, &m); err != nil || string(m["state"]) != `"forced-open"` || string(m["z"]) != "1" {
			t.Errorf("saved %s: the unknown state or field was lost", data)
		}
	})
}

// TestFileStoreExpires: a record past its expiry reads as fresh and is not
// listed, and the first step of a process removes expired state files and
// their lock files, but nothing alive, and at most once an hour.
func TestFileStoreExpires(t *testing.T) {
	dir := t.TempDir()
	old := &FileStore{Dir: dir, TTL: time.Hour}
	ctx := context.Background()
	p := testParams
	for _, k := range []string{"gone", "kept"} {
		p.Key = k
		if _, err := old.Record(ctx, p, Outcome{Effect: CountFailure}, contractNow); err != nil {
			t.Fatal(err)
		}
	}
	// Age every file, as if written two hours ago.
	past := time.Now().Add(-2 * time.Hour)
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		os.Chtimes(filepath.Join(dir, e.Name()), past, past)
	}
	// "kept" was written again since (by its content) and lives on.
	later := contractNow.Add(2 * time.Hour)
	p.Key = "kept"
	rec, _ := old.readRecord(old.path("kept") + ".json")
	rec.ExpiresAt = nil
	rec.UpdatedAt = later
	end := later.Add(time.Hour)
	rec.ExpiresAt = &end
	writeRecord(old.path("kept")+".json", rec)
	os.Chtimes(old.path("kept")+".json", past, past)

	fresh := &FileStore{Dir: dir, TTL: time.Hour}
	p.Key = "other"
	if _, err := fresh.Admit(ctx, p, later); err != nil {
		t.Fatal(err)
	}
	for name, want := range map[string]bool{
		old.path("gone") + ".json": false, old.path("gone") + ".lock": false,
		old.path("kept") + ".json": true,
	} {
		if _, err := os.Stat(name); (err == nil) != want {
			t.Errorf("%s exists = %v, want %v", filepath.Base(name), err == nil, want)
		}
	}
	// Within the hour, the next process does not look again.
	p.Key = "gone2"
	old.Record(ctx, p, Outcome{Effect: CountFailure}, contractNow)
	os.Chtimes(old.path("gone2")+".json", past, past)
	(&FileStore{Dir: dir, TTL: time.Hour}).Admit(ctx, p, later)
	if _, err := os.Stat(old.path("gone2") + ".json"); err != nil {
		t.Errorf("a second process looked within the hour: %v", err)
	}
	// An expired record reads as fresh, even before anything removed it.
	s := &FileStore{Dir: t.TempDir(), TTL: time.Hour}
	p.Key = "k"
	s.Record(ctx, p, Outcome{Effect: CountFailure}, contractNow)
	d, err := s.Admit(ctx, p, contractNow.Add(61*time.Minute))
	if err != nil || d.Record.ConsecutiveFailures != 0 {
		t.Errorf("after its TTL: %+v, %v", d.Record, err)
	}
	if recs, _ := s.List(ctx); len(recs) != 0 {
		t.Errorf("List shows an expired record: %+v", recs)
	}
}

// TestLockFileRemovedWhileWaitedFor: a process that opened a lock file
// that another then removed (an expired key) does not take the removed
// file's lock for the key's: it locks the file that is there.
func TestLockFileRemovedWhileWaitedFor(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "k.lock")
	first, err := lockFile(context.Background(), path)
	if err != nil {
		t.Fatal(err)
	}
	os.Remove(path) // as removeIfExpired does, holding the lock
	second, err := lockFile(context.Background(), path)
	if err != nil {
		t.Fatal(err)
	}
	defer second.Unlock()
	first.Unlock()
	if !current(second, path) {
		t.Error("the lock taken is not the lock file's")
	}
}

// TestFailoverGivesThePrimaryAShareOfTheTimeLeft: a primary that does not
// answer costs an operation a quarter of what is left of its deadline,
// then the operation is done on the secondary while the caller's time
// lasts, with a warning that says why.
func TestFailoverGivesThePrimaryAShareOfTheTimeLeft(t *testing.T) {
	silent := redistest.NewSilent(t)
	primary, err := NewRedisStore(RedisConfig{Addr: silent.Addr, Timeout: time.Hour, TTL: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	defer primary.Close()
	var warns []error
	s := &FailoverStore{Primary: primary, Secondary: &FileStore{Dir: t.TempDir()}, Warn: func(err error) { warns = append(warns, err) }}
	// Four seconds left: the primary gets one, the files the rest.
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Second)
	defer cancel()
	d, err := s.Admit(ctx, testParams, time.Now())
	if err != nil || d.Admission != Admitted || d.Route != RouteSecondary || ctx.Err() != nil {
		t.Fatalf("Admit = %+v, %v (caller's time over: %v); want an admission from the files in time", d, err, ctx.Err())
	}
	var slow *SlowStoreError
	if len(warns) != 1 || !errors.As(warns[0], &slow) || !strings.Contains(warns[0].Error(), "a quarter of the time left") {
		t.Errorf("warnings %v", warns)
	}
	// Slow for one caller is not down for all: the store keeps its
	// primary, and the run keeps to the files it started on.
	if s.Failed() {
		t.Error("a caller's short time switched the whole store")
	}
	p := testParams
	p.Route = RouteSecondary
	if d, err := s.Record(ctx, p, Outcome{Effect: CountFailure}, time.Now()); err != nil || d.Route != RouteSecondary {
		t.Errorf("the run's Record = %+v, %v; want it on the files", d, err)
	}
	// A run on the primary that finds it too slow goes on without one.
	ctx2, cancel2 := context.WithTimeout(context.Background(), 400*time.Millisecond)
	defer cancel2()
	p.Route = RoutePrimary
	if _, err := s.Record(ctx2, p, Outcome{Effect: CountFailure}, time.Now()); !errors.Is(err, ErrRouteGone) {
		t.Errorf("a primary run's Record on a slow primary = %v, want ErrRouteGone", err)
	}
}

// TestFailoverKeepsAHealthyFarPrimary: a caller with little time left
// that a far Redis cannot answer in its share does not make the store
// give Redis up: the next caller, with time, is served by Redis.
func TestFailoverKeepsAHealthyFarPrimary(t *testing.T) {
	far := redistest.NewFar(t, redistest.Start(t), 20*time.Millisecond)
	s := &FailoverStore{Primary: newRedisStore(t, far.Addr, nil), Secondary: &FileStore{Dir: t.TempDir()}}
	if d, err := s.Admit(context.Background(), testParams, time.Now()); err != nil || d.Route != RoutePrimary {
		t.Fatalf("warm-up Admit = %+v, %v", d, err)
	}
	short, cancel := context.WithTimeout(context.Background(), 40*time.Millisecond) // a 10ms share
	defer cancel()
	s.Admit(short, testParams, time.Now())
	if s.Failed() {
		t.Fatal("a healthy Redis 40ms away was given up because one caller was short of time")
	}
	if d, err := s.Admit(context.Background(), testParams, time.Now()); err != nil || d.Route != RoutePrimary {
		t.Errorf("the next caller: %+v, %v; want Redis", d, err)
	}
}

// TestHugeDurationsAgree: the largest durations a library caller can
// give (the CLI bounds its flags at 10 years) neither wrap around in
// Redis (a negative expiry would delete the record at once) nor make the
// stores disagree.
func TestHugeDurationsAgree(t *testing.T) {
	addr := redistest.Start(t)
	rs, err := NewRedisStore(RedisConfig{Addr: addr, Timeout: testTimeout, TTL: math.MaxInt64, CallerClock: true})
	if err != nil {
		t.Fatal(err)
	}
	defer rs.Close()
	files := &FileStore{Dir: t.TempDir(), TTL: math.MaxInt64}
	p := Params{Key: "huge", Failures: 1, Quorum: 1, Node: "n", Reset: math.MaxInt64, TrialTimeout: math.MaxInt64}
	for name, s := range map[string]Store{"redis": rs, "files": files} {
		c := contract{t, s, context.Background()}
		c.fail(p, contractNow)
		c.admit(p, contractNow.Add(100*365*24*time.Hour), Rejected)
		if recs, err := s.List(context.Background()); err != nil || len(recs) != 1 {
			t.Errorf("%s: the record did not survive: %+v, %v", name, recs, err)
		}
	}
}

// TestRedisNumbersOutOfRangeReadAsZero: a stored time that is not an
// integer Go can read ("1e400", "inf", a fraction) does not hold the key
// for ever: both the scripts and Go read it as 0 (long past).
func TestRedisNumbersOutOfRangeReadAsZero(t *testing.T) {
	addr := redistest.Start(t)
	c := rawClient(t, addr)
	s := newRedisStore(t, addr, nil)
	p := testParams
	for _, bad := range []string{"1e400", "inf", "nan", "1.5e12", "99999999999999999999"} {
		c.Del(context.Background(), RedisKeyPrefix+"k")
		c.HSet(context.Background(), RedisKeyPrefix+"k", "state", "open", "retry_at", bad, "gen", "3")
		d, err := s.Admit(context.Background(), p, contractNow)
		if err != nil || d.Admission != AdmittedTrial {
			t.Errorf("retry_at %s: Admit = %v, %v; want the trial a past time gives", bad, d.Admission, err)
		}
		c.HSet(context.Background(), RedisKeyPrefix+"k", "state", "half-open", "trial_until", bad)
		if d, err := s.Admit(context.Background(), p, contractNow); err != nil || d.Admission != AdmittedTrial {
			t.Errorf("trial_until %s: Admit = %v, %v; want a trial", bad, d.Admission, err)
		}
	}
}
