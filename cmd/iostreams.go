package cmd

import (
	"bytes"
	"io"
	"os"

	"github.com/mattn/go-isatty"
)

// IOStreams are the standard streams of a command, injected so tests can
// use buffers.
type IOStreams struct {
	In     io.Reader
	Out    io.Writer
	ErrOut io.Writer
	// ErrTTY is true when ErrOut is a terminal (color, progress).
	ErrTTY bool
	// OutTTY is true when Out is a terminal.
	OutTTY bool
	// OutClosed is true when stdout was closed at start: what is written
	// there is lost, so a fetch that needs it fails before any request.
	OutClosed bool
	// OutNullRW is true when stdout is /dev/null opened read-write: a
	// closed stdout (Go's runtime puts that in its place) or a discard on
	// purpose (Python's subprocess.DEVNULL), which cannot be told apart.
	// OutClosed is true then too.
	OutNullRW bool
}

// System returns the process's streams.
func System() *IOStreams {
	closed, nullRW := stdoutClosed(os.Stdout)
	return &IOStreams{
		In: os.Stdin, Out: os.Stdout, ErrOut: stderrFile(),
		ErrTTY: isTerminal(os.Stderr), OutTTY: isTerminal(os.Stdout), OutClosed: closed, OutNullRW: nullRW,
	}
}

func isTerminal(f *os.File) bool {
	return isatty.IsTerminal(f.Fd()) || isatty.IsCygwinTerminal(f.Fd())
}

// Test returns streams backed by buffers: stdin, stdout, stderr.
func Test() (*IOStreams, *bytes.Buffer, *bytes.Buffer, *bytes.Buffer) {
	in, out, errOut := &bytes.Buffer{}, &bytes.Buffer{}, &bytes.Buffer{}
	return &IOStreams{In: in, Out: out, ErrOut: errOut}, in, out, errOut
}
