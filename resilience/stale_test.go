package resilience

import (
	"bytes"
	"os"
	"path/filepath"
	"runtime"
	"testing"
	"time"
)

func newCache(t *testing.T, dir string, max int64) *StaleCache {
	t.Helper()
	c, err := NewStaleCache(dir, max)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func key(method, url string) StaleKey { return StaleKey{Method: method, URL: url} }

func TestStaleCacheRoundTripAndAge(t *testing.T) {
	c := newCache(t, filepath.Join(t.TempDir(), "cache"), 1<<20)
	now := newFakeClock().Now()
	body := []byte("{\"a\":1}\x00\xff binary-safe")
	if err := c.Save(key("GET", "http://x/a"), 200, "application/json", body, now); err != nil {
		t.Fatal(err)
	}
	e, age, err := c.Load(key("GET", "http://x/a"), time.Hour, now.Add(4*time.Minute))
	if err != nil || e == nil {
		t.Fatalf("Load = %v, %v", e, err)
	}
	if !bytes.Equal(e.Body, body) || e.Status != 200 || e.ContentType != "application/json" || age != 4*time.Minute {
		t.Errorf("entry = %+v, age %v", e, age)
	}
	if e, _, _ := c.Load(key("GET", "http://x/a"), 3*time.Minute, now.Add(4*time.Minute)); e != nil {
		t.Error("entry older than the limit was served")
	}
	if e, _, _ := c.Load(key("GET", "http://x/a"), 0, now.Add(400*time.Hour)); e == nil {
		t.Error("maxAge 0 (any age) did not serve the entry")
	}
	if e, _, _ := c.Load(key("GET", "http://x/b"), time.Hour, now); e != nil {
		t.Error("entry served for another URL")
	}
	if e, _, _ := c.Load(key("HEAD", "http://x/a"), time.Hour, now); e != nil {
		t.Error("entry served for another method")
	}
	other := key("GET", "http://x/a")
	other.Identity = "bob"
	if e, _, _ := c.Load(other, time.Hour, now); e != nil {
		t.Error("entry served to another identity")
	}
}

func TestNewStaleCacheRefusesNoBound(t *testing.T) {
	for _, max := range []int64{0, -1} {
		if c, err := NewStaleCache(t.TempDir(), max); err == nil || c != nil {
			t.Errorf("NewStaleCache(%d) = %v, %v; want an error", max, c, err)
		}
	}
}

func TestStaleCacheModes(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("POSIX modes")
	}
	dir := filepath.Join(t.TempDir(), "cache")
	c := newCache(t, dir, 1<<20)
	if err := c.Save(key("GET", "http://x/a"), 200, "", []byte("x"), time.Now()); err != nil {
		t.Fatal(err)
	}
	st, _ := os.Stat(dir)
	if st.Mode().Perm() != 0o700 {
		t.Errorf("dir mode = %v", st.Mode())
	}
	files, _ := filepath.Glob(filepath.Join(dir, "*"))
	if len(files) != 1 {
		t.Fatalf("files = %v", files)
	}
	st, _ = os.Stat(files[0])
	if st.Mode().Perm() != 0o600 {
		t.Errorf("file mode = %v", st.Mode())
	}
}

func TestStaleCacheBound(t *testing.T) {
	c := newCache(t, t.TempDir(), 10)
	now := time.Now()
	if err := c.Save(key("GET", "u"), 200, "", []byte("small"), now); err != nil {
		t.Fatal(err)
	}
	if err := c.Save(key("GET", "u"), 200, "", []byte("much too large"), now); err == nil {
		t.Fatal("oversized body cached")
	}
	if e, _, _ := c.Load(key("GET", "u"), time.Hour, now); e != nil {
		t.Error("older entry still served after a larger answer")
	}
}

func TestStaleCacheCorruptEntryIsAnError(t *testing.T) {
	c := newCache(t, t.TempDir(), 1<<20)
	now := time.Now()
	c.Save(key("GET", "u"), 200, "", []byte("hello"), now)
	path := c.path(key("GET", "u"))
	data, _ := os.ReadFile(path)
	for _, bad := range [][]byte{data[:len(data)-1], append(bytes.Clone(data), '!'), []byte("garbage"), bytes.Replace(data, []byte("hello"), []byte("jello"), 1)} {
		os.WriteFile(path, bad, 0o600)
		e, _, err := c.Load(key("GET", "u"), time.Hour, now)
		if e != nil || err == nil {
			t.Errorf("corrupt %q: entry %v, err %v", bad, e, err)
		}
	}
}
