// Package batch is refetch's batch engine below the fetch command: where a
// batch's URLs come from (Input: the arguments and -i, checked whole
// before any request, then read again from a copy), how each one's output
// file is named (Template, SafeName), and the Scheduler that hands jobs to
// workers, one queue per host, so that a held or slow host never stalls
// the others and memory does not grow with the input. It knows nothing of
// cobra or flags: package cmd runs the jobs, on the connection pool the
// Scheduler keeps for each host.
package batch

import (
	"errors"
	"fmt"
	"os"
)

// UsageError is a batch's input or -o template that is wrong: the caller
// reports it as a usage error (exit 2).
type UsageError struct{ Err error }

func (e *UsageError) Error() string { return e.Err.Error() }
func (e *UsageError) Unwrap() error { return e.Err }

func usageErrorf(format string, args ...any) error {
	return &UsageError{Err: fmt.Errorf(format, args...)}
}

// unwrapPath is err without os.PathError's operation: "path: reason".
func unwrapPath(err error) error {
	var pe *os.PathError
	if errors.As(err, &pe) {
		return fmt.Errorf("%s: %v", pe.Path, pe.Err)
	}
	return err
}
