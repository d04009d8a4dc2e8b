package resilience

import (
	"bytes"
	"os"
	"path/filepath"
	"runtime"
	"testing"
	"time"
)

func TestStaleCacheRoundTripAndAge(t *testing.T) {
	c := NewStaleCache(filepath.Join(t.TempDir(), "cache"))
	now := newFakeClock().Now()
	body := []byte("{\"a\":1}\x00\xff binary-safe")
	if err := c.Save("GET", "http://x/a", 200, "application/json", body, now); err != nil {
		t.Fatal(err)
	}
	e, age, err := c.Load("GET", "http://x/a", time.Hour, now.Add(4*time.Minute))
	if err != nil || e == nil {
		t.Fatalf("Load = %v, %v", e, err)
	}
	if !bytes.Equal(e.Body, body) || e.Status != 200 || e.ContentType != "application/json" || age != 4*time.Minute {
		t.Errorf("entry = %+v, age %v", e, age)
	}
	if e, _, _ := c.Load("GET", "http://x/a", 3*time.Minute, now.Add(4*time.Minute)); e != nil {
		t.Error("entry older than the limit was served")
	}
	if e, _, _ := c.Load("GET", "http://x/b", time.Hour, now); e != nil {
		t.Error("entry served for another URL")
	}
	if e, _, _ := c.Load("HEAD", "http://x/a", time.Hour, now); e != nil {
		t.Error("entry served for another method")
	}
}

func TestStaleCacheModes(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("POSIX modes")
	}
	dir := filepath.Join(t.TempDir(), "cache")
	c := NewStaleCache(dir)
	if err := c.Save("GET", "http://x/a", 200, "", []byte("x"), time.Now()); err != nil {
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
	c := &StaleCache{Dir: t.TempDir(), MaxBytes: 10}
	now := time.Now()
	if err := c.Save("GET", "u", 200, "", []byte("small"), now); err != nil {
		t.Fatal(err)
	}
	if err := c.Save("GET", "u", 200, "", []byte("much too large"), now); err == nil {
		t.Fatal("oversized body cached")
	}
	if e, _, _ := c.Load("GET", "u", time.Hour, now); e != nil {
		t.Error("older entry still served after a larger answer")
	}
}

func TestStaleCacheCorruptEntryIgnored(t *testing.T) {
	var warns []error
	c := &StaleCache{Dir: t.TempDir(), Warn: func(err error) { warns = append(warns, err) }}
	now := time.Now()
	c.Save("GET", "u", 200, "", []byte("hello"), now)
	path := c.path("GET", "u")
	data, _ := os.ReadFile(path)
	for _, bad := range [][]byte{data[:len(data)-1], append(bytes.Clone(data), '!'), []byte("garbage"), bytes.Replace(data, []byte("hello"), []byte("jello"), 1)} {
		os.WriteFile(path, bad, 0o600)
		warns = nil
		e, _, err := c.Load("GET", "u", time.Hour, now)
		if e != nil || err == nil || len(warns) != 1 {
			t.Errorf("corrupt %q: entry %v, err %v, warns %v", bad, e, err, warns)
		}
	}
}
