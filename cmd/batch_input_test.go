package cmd

import (
	"bufio"
	"errors"
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
	in, err := openBatchInput(nil, "-", strings.NewReader(input))
	if err != nil {
		t.Fatal(err)
	}
	defer in.close()
	in.spoolW = bufio.NewWriterSize(fullDisk{}, 16)
	err = in.checkPass(func(batchEntry) error { return nil })
	var usage *UsageError
	if !errors.Is(err, fetch.ErrOutput) || errors.As(err, &usage) || ExitCode(err) != ExitInternal {
		t.Errorf("err = %v (exit %d), want a local output failure (exit 1)", err, ExitCode(err))
	}
}
