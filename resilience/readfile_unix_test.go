//go:build unix

package resilience

import (
	"context"
	"errors"
	"os"
	"syscall"
	"testing"
	"time"
)

// within runs f and fails the test if it has not returned within a minute:
// the reads under test used to block for ever.
func within(t *testing.T, what string, f func()) {
	t.Helper()
	done := make(chan struct{})
	go func() { f(); close(done) }()
	select {
	case <-done:
	case <-time.After(time.Minute):
		t.Fatalf("%s still blocked after a minute", what)
	}
}

// A state file that is a FIFO (or any non-regular file) is reported and
// replaced like a corrupt one; it does not block the run, holding the
// key's lock, until someone writes to it.
func TestFileStoreStateFileThatIsAFIFO(t *testing.T) {
	var warns []error
	s := &FileStore{Dir: t.TempDir(), Warn: func(err error) { warns = append(warns, err) }}
	path := s.path("k") + ".json"
	if err := syscall.Mkfifo(path, 0o600); err != nil {
		t.Fatal(err)
	}
	within(t, "Update", func() {
		if err := addFailures(context.Background(), s, "k", 1); err != nil {
			t.Errorf("Record: %v", err)
		}
	})
	var corrupt *CorruptStateError
	if len(warns) != 1 || !errors.As(warns[0], &corrupt) {
		t.Errorf("warnings %v, want one CorruptStateError", warns)
	}
	if st, err := os.Stat(path); err != nil || !st.Mode().IsRegular() {
		t.Errorf("the FIFO was not replaced by a state file: %v, %v", st, err)
	}
}

// A stale entry that is a FIFO is unreadable, not a wait.
func TestStaleEntryThatIsAFIFO(t *testing.T) {
	c, err := NewStaleCache(t.TempDir(), 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	k := StaleKey{Method: "GET", URL: "http://h/x"}
	if err := syscall.Mkfifo(c.path(k), 0o600); err != nil {
		t.Fatal(err)
	}
	within(t, "Load", func() {
		if e, _, err := c.Load(k, 0, time.Now()); err == nil || e != nil {
			t.Errorf("Load = %v, %v; want an unreadable entry", e, err)
		}
	})
}
