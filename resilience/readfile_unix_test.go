//go:build unix

package resilience

import (
	"syscall"
	"testing"
	"time"

	"github.com/refetch/refetch/internal/waittest"
)

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
	waittest.Within(t, "Load", func() {
		if e, _, err := c.Load(k, 0, time.Now()); err == nil || e != nil {
			t.Errorf("Load = %v, %v; want an unreadable entry", e, err)
		}
	})
}
