//go:build !unix

package cmd

import "os"

// stdoutClosed: only Unix runtimes replace a closed stdout with /dev/null.
func stdoutClosed(*os.File) (closed, nullRW bool) { return false, false }

// stdinClosed: only Unix runtimes replace a closed stdin with /dev/null.
func stdinClosed(*os.File) bool { return false }

// stderrFile is os.Stderr: only Unix kills a process for writing to a
// broken pipe.
func stderrFile() *os.File { return os.Stderr }

// inFlightBound is 0 (no bound): the open-file limit is a Unix one.
func inFlightBound() int { return 0 }
