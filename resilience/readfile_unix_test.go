//go:build unix

package resilience

import (
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
