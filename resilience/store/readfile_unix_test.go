//go:build unix

package store

import (
	"context"
	"errors"
	"os"
	"syscall"
	"testing"

	"github.com/refetch/refetch/internal/waittest"
)

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
	waittest.Within(t, "Update", func() {
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
