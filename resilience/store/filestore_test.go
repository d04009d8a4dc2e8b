package store

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"
)

func TestFileStoreModesAndHashedNames(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("POSIX modes")
	}
	store := &FileStore{Dir: filepath.Join(t.TempDir(), "state")}
	for _, k := range []string{"http://example.test:80", "../../etc/passwd"} {
		if err := addFailures(context.Background(), store, k, 1); err != nil {
			t.Fatal(err)
		}
	}
	st, err := os.Stat(store.Dir)
	if err != nil || st.Mode().Perm() != 0o700 {
		t.Fatalf("dir mode = %v, %v", st.Mode(), err)
	}
	entries, _ := os.ReadDir(filepath.Dir(store.Dir))
	if len(entries) != 1 {
		t.Fatalf("state escaped its dir: %v", entries)
	}
	files, _ := filepath.Glob(filepath.Join(store.Dir, "*.json"))
	if len(files) != 2 {
		t.Fatalf("files = %v", files)
	}
	for _, f := range files {
		st, _ := os.Stat(f)
		if st.Mode().Perm() != 0o600 {
			t.Errorf("%s mode = %v, want 0600", f, st.Mode())
		}
		if strings.Contains(filepath.Base(f), "passwd") || strings.Contains(filepath.Base(f), "example") {
			t.Errorf("file name %s derives from the key", f)
		}
	}
	recs, err := store.List(context.Background())
	if err != nil || len(recs) != 2 || recs[0].Key != "../../etc/passwd" {
		t.Fatalf("List = %+v, %v", recs, err)
	}
}

func TestFileStoreCorruptFileIsReplaced(t *testing.T) {
	var warns []error
	store := &FileStore{Dir: filepath.Join(t.TempDir(), "state"), TTL: time.Hour, Warn: func(err error) { warns = append(warns, err) }}
	c := contract{t, store, context.Background()}
	p := testParams
	p.Key, p.Failures = "http://example.test:80", 1
	c.fail(p, contractNow)
	path := store.path(p.Key) + ".json"
	for _, junk := range []string{"{not json", "", `{"key":"http://example.test:80","state":42}`, "null"} {
		if err := os.WriteFile(path, []byte(junk), 0o600); err != nil {
			t.Fatal(err)
		}
		warns = nil
		if d := c.admit(p, contractNow, Admitted); !d.Corrupt { // a fresh closed state
			t.Errorf("junk %q: the decision does not say the record was corrupt", junk)
		}
		var corrupt *CorruptStateError
		if len(warns) != 1 || !errors.As(warns[0], &corrupt) {
			t.Fatalf("junk %q: warnings = %v", junk, warns)
		}
		data, _ := os.ReadFile(path)
		var r Record
		if err := json.Unmarshal(data, &r); err != nil || r.State != StateClosed {
			t.Fatalf("junk %q not replaced: %s", junk, data)
		}
		// The replacement is dated and expires as any record: one that
		// never expired would outlive every prune.
		if !r.UpdatedAt.Equal(contractNow) || !store.expired(r, contractNow.Add(2*time.Hour)) {
			t.Errorf("junk %q replaced by %s: want it dated now and expired after the TTL", junk, data)
		}
	}
}

// BenchmarkFileStoreRecord measures one locked load and atomic save, the
// cost of every state change.
func BenchmarkFileStoreRecord(b *testing.B) {
	store := &FileStore{Dir: b.TempDir()}
	for i := 0; i < b.N; i++ {
		addFailures(context.Background(), store, "http://bench:80", 1)
	}
}

func TestFileStoreDeleteAllIncludesCorruptFiles(t *testing.T) {
	store := &FileStore{Dir: t.TempDir()}
	for _, k := range []string{"a", "b"} {
		addFailures(context.Background(), store, k, 1)
	}
	os.WriteFile(filepath.Join(store.Dir, "junk.json"), []byte("{"), 0o600)
	n, err := store.DeleteAll(context.Background())
	if err != nil || n != 3 {
		t.Fatalf("DeleteAll = %d, %v; want 3", n, err)
	}
	if left, _ := filepath.Glob(filepath.Join(store.Dir, "*.json")); len(left) != 0 {
		t.Errorf("left: %v", left)
	}
	if n, _ := store.DeleteAll(context.Background()); n != 0 {
		t.Errorf("second DeleteAll removed %d", n)
	}
}

func TestStateStringAndText(t *testing.T) {
	for _, s := range []State{StateClosed, StateOpen, StateHalfOpen} {
		b, _ := s.MarshalText()
		var back State
		if err := back.UnmarshalText(b); err != nil || back != s {
			t.Errorf("%v round trip = %v, %v", s, back, err)
		}
	}
	var s State
	if s.UnmarshalText([]byte("ajar")) == nil {
		t.Error("unknown state accepted")
	}
}
