package batch

import (
	"bufio"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/refetch/refetch/fetch"
)

type fullDisk struct{}

func (fullDisk) Write([]byte) (int, error) { return 0, syscall.ENOSPC }

// TestBatchSpoolThatCannotBeWrittenIsALocalFailure: the copy of "-i -"
// failing (a full disk) is exit 1, not a usage error about the input.
func TestBatchSpoolThatCannotBeWrittenIsALocalFailure(t *testing.T) {
	input := strings.Repeat("http://a.test/x\n", 1000)
	in, err := OpenInput(nil, "-", strings.NewReader(input))
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	in.spoolW = bufio.NewWriterSize(fullDisk{}, 16)
	err = in.CheckPass(func(Entry) error { return nil })
	var usage *UsageError
	if !errors.Is(err, fetch.ErrOutput) || errors.As(err, &usage) {
		t.Errorf("err = %v, want a local output failure (fetch.ErrOutput: exit 1), not a usage error", err)
	}
}

// TestBatchInputChangedBetweenPassesIsRefused: the run reads what the
// check read, or stops before any request.
func TestBatchInputChangedBetweenPassesIsRefused(t *testing.T) {
	path := filepath.Join(t.TempDir(), "urls")
	os.WriteFile(path, []byte("http://a.test/1\n"), 0o600)
	in, err := OpenInput(nil, path, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	if err := in.CheckPass(func(Entry) error { return nil }); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(path, []byte("http://a.test/1\nhttp://b.test/unchecked\n"), 0o600)
	var ran []string
	err = in.RunPass(func(e Entry) error { ran = append(ran, e.Raw); return nil })
	var usage *UsageError
	if !errors.As(err, &usage) || len(ran) != 0 {
		t.Errorf("err = %v, ran %v; want a usage error and nothing run", err, ran)
	}
}
