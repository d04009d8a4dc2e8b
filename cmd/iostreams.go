package cmd

import (
	"bytes"
	"errors"
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
	in := io.Reader(os.Stdin)
	if stdinClosed(os.Stdin) {
		in = closedStdin{}
	}
	return &IOStreams{
		In: in, Out: os.Stdout, ErrOut: stderrFile(),
		ErrTTY: isTerminal(os.Stderr), OutTTY: isTerminal(os.Stdout), OutClosed: closed, OutNullRW: nullRW,
	}
}

// errStdinClosed is what reading a closed stdin says.
var errStdinClosed = errors.New("stdin is closed (or is /dev/null opened read-write): there is nothing to read; give the data with < FILE, a pipe or < /dev/null")

// closedStdin is a stdin that was closed at start: reading it fails, so
// that `-d @-` or `-i -` with nothing to read is an error, not an empty
// body or an empty list.
type closedStdin struct{}

func (closedStdin) Read([]byte) (int, error) { return 0, errStdinClosed }

func isTerminal(f *os.File) bool {
	return isatty.IsTerminal(f.Fd()) || isatty.IsCygwinTerminal(f.Fd())
}

// Test returns streams backed by buffers: stdin, stdout, stderr.
func Test() (*IOStreams, *bytes.Buffer, *bytes.Buffer, *bytes.Buffer) {
	in, out, errOut := &bytes.Buffer{}, &bytes.Buffer{}, &bytes.Buffer{}
	return &IOStreams{In: in, Out: out, ErrOut: errOut}, in, out, errOut
}
