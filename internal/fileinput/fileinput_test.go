package fileinput

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestReadBounds(t *testing.T) {
	dir := t.TempDir()
	file := func(n int) string {
		p := filepath.Join(dir, fmt.Sprint("f", n))
		if err := os.WriteFile(p, []byte(strings.Repeat("x", n)), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	for _, c := range []struct {
		size, limit int
		tooLarge    bool
	}{{0, 10, false}, {10, 10, false}, {11, 10, true}, {3 << 20, 1 << 20, true}} {
		data, err := Read(file(c.size), int64(c.limit))
		var tl *TooLargeError
		if got := errors.As(err, &tl); got != c.tooLarge {
			t.Errorf("%d bytes, limit %d: err %v, want too large %v", c.size, c.limit, err, c.tooLarge)
		}
		if !c.tooLarge && (err != nil || len(data) != c.size) {
			t.Errorf("%d bytes, limit %d: read %d, %v", c.size, c.limit, len(data), err)
		}
	}
	if _, err := Read(filepath.Join(dir, "missing"), 10); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("missing file: %v", err)
	}
	if got := (&TooLargeError{Limit: Max}).Error(); got != "larger than 256 MiB, the most refetch reads into memory" {
		t.Errorf("message: %q", got)
	}
}

// TestReadFromStopsPastTheLimit: an input that never ends (a pipe, a
// device) is read one byte past the limit and no further.
func TestReadFromStopsPastTheLimit(t *testing.T) {
	var endless endlessReader
	_, err := ReadFrom(&endless, 1000)
	var tl *TooLargeError
	if !errors.As(err, &tl) || tl.Limit != 1000 {
		t.Fatalf("err %v, want a TooLargeError of 1000", err)
	}
	if endless.n > 1001+512 {
		t.Errorf("read %d bytes of an endless input for a limit of 1000", endless.n)
	}
	data, err := ReadFrom(io.LimitReader(&endless, 1000), 1000)
	if err != nil || len(data) != 1000 {
		t.Errorf("exactly the limit: %d bytes, %v", len(data), err)
	}
}

type endlessReader struct{ n int }

func (r *endlessReader) Read(p []byte) (int, error) {
	r.n += len(p)
	return len(p), nil
}
