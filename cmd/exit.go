package cmd

import (
	"context"
	"errors"
	"fmt"
	"os"
	"syscall"

	"github.com/refetch/refetch/fetch"
	"github.com/refetch/refetch/resilience"
)

// Exit codes. They are part of refetch's contract: scripts depend on them.
const (
	ExitOK          = 0
	ExitInternal    = 1
	ExitUsage       = 2
	ExitPermanent   = 3
	ExitExhausted   = 4
	ExitCircuitOpen = 5
	ExitRateLimited = 6
	ExitDeadline    = 7
	ExitUnhealthy   = 8
	ExitBatch       = 9
	ExitRetryBudget = 10
	ExitSIGHUP      = 129
	ExitSIGINT      = 130
	ExitSIGQUIT     = 131
	ExitSIGPIPE     = 141 // the kernel's, not ExitCode's: stdout's reader went away
	ExitSIGTERM     = 143
)

// UsageError is a bad flag value, a missing or malformed URL, an unreadable
// @file and the like: exit 2, one line, and a hint to --help.
type UsageError struct {
	Err error
	// Cmd is the command path for the --help hint, e.g. "refetch fetch".
	Cmd string
}

func (e *UsageError) Error() string { return e.Err.Error() }
func (e *UsageError) Unwrap() error { return e.Err }

func usageErrorf(format string, args ...any) error {
	return &UsageError{Err: fmt.Errorf(format, args...)}
}

// InterruptError is the cancellation cause set when a signal arrives.
type InterruptError struct{ Signal os.Signal }

func (e *InterruptError) Error() string { return "interrupted by " + signalName(e.Signal) }

func signalName(s os.Signal) string {
	switch s {
	case syscall.SIGINT:
		return "SIGINT"
	case syscall.SIGTERM:
		return "SIGTERM"
	case syscall.SIGHUP:
		return "SIGHUP"
	case syscall.SIGQUIT:
		return "SIGQUIT"
	}
	return s.String()
}

// ErrUnhealthy is the error of a failed `check`.
var ErrUnhealthy = errors.New("unhealthy")

// ErrBatchFailed is wrapped by the error of a batch in which at least one
// URL failed (see BatchError).
var ErrBatchFailed = errors.New("some URLs of the batch failed")

// ExitCode is the one mapping from an error to refetch's exit codes.
func ExitCode(err error) int {
	var (
		usage *UsageError
		intr  *InterruptError
	)
	switch {
	case err == nil:
		return ExitOK
	case errors.As(err, &intr):
		switch intr.Signal {
		case syscall.SIGTERM:
			return ExitSIGTERM
		case syscall.SIGHUP:
			return ExitSIGHUP
		case syscall.SIGQUIT:
			return ExitSIGQUIT
		}
		return ExitSIGINT
	case errors.As(err, &usage):
		return ExitUsage
	case errors.Is(err, ErrUnhealthy):
		return ExitUnhealthy
	case errors.Is(err, ErrBatchFailed):
		return ExitBatch
	case errors.Is(err, fetch.ErrOutput):
		return ExitInternal
	case errors.Is(err, resilience.ErrCircuitOpen):
		return ExitCircuitOpen
	case errors.Is(err, resilience.ErrRateLimited):
		return ExitRateLimited
	case errors.Is(err, resilience.ErrDeadline):
		return ExitDeadline
	case errors.Is(err, resilience.ErrRetryBudget):
		return ExitRetryBudget
	case errors.Is(err, resilience.ErrRetriesExhausted):
		return ExitExhausted
	case errors.Is(err, resilience.ErrPermanent):
		return ExitPermanent
	case errors.Is(err, context.Canceled):
		return ExitSIGINT
	}
	return ExitInternal
}
