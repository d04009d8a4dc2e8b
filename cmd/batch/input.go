package batch

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"

	"github.com/refetch/refetch/fetch"
)

// maxInputLine bounds one line of -i: a URL longer than this is a mistake
// (a binary file given by error), and a line is held in memory whole.
const maxInputLine = 1 << 20

// Entry is one URL of a batch's input.
type Entry struct {
	N     int    // 1-based position among the URLs
	Label string // "line 7" (of -i) or "argument 2"
	Raw   string
}

// Input is where a batch's URLs come from: the URL arguments, then
// the lines of -i (one URL a line; blank lines and lines starting with #
// skipped; surrounding whitespace trimmed). It is read twice, streaming
// both times: once to check every URL before any request, once to run
// them. Every input (a file, stdin, a pipe, <(cmd)) is copied to a
// temporary file by the first pass, which the second pass reads instead:
// disk, not memory, and what runs is what was checked.
type Input struct {
	args []string
	name string // the -i value; "" for none

	src      io.Reader // what the first pass reads
	file     *os.File  // the opened -i file, nil for stdin
	seekable bool      // file is a regular file, read again by the second pass

	spool      *os.File      // the copy of a stream
	spoolName  string        // removed by close ("" once removed)
	spoolW     *bufio.Writer // writes the copy as the first pass reads
	spoolBytes int64
	// checked is the input file as the check pass read it.
	checked os.FileInfo
}

// OpenInput opens the input of a batch; stdin serves "-i -".
func OpenInput(args []string, name string, stdin io.Reader) (*Input, error) {
	in := &Input{args: args, name: name}
	switch name {
	case "":
		return in, nil
	case "-":
		in.src = stdin
	default:
		f, err := os.Open(name)
		if err != nil {
			return nil, usageErrorf("-i %s: cannot read: %v", name, unwrapPath(err))
		}
		st, err := f.Stat()
		if err != nil {
			f.Close()
			return nil, usageErrorf("-i %s: cannot read: %v", name, unwrapPath(err))
		}
		if st.IsDir() {
			f.Close()
			return nil, usageErrorf("-i %s: is a directory; give a file with one URL a line", name)
		}
		in.file, in.src, in.seekable = f, f, st.Mode().IsRegular()
	}
	// Every input is copied as the check pass reads it, and the run pass
	// reads the copy: what runs is what was checked, even if the file is
	// edited in place while the run goes on (a regular file is also
	// checked, at the run's start, not to have changed since).
	spool, spoolName, err := fetch.TempFile()
	if err != nil {
		in.Close()
		return nil, fmt.Errorf("%w: cannot keep a copy of the input for the run: %v", fetch.ErrOutput, err)
	}
	in.spool, in.spoolName = spool, spoolName
	in.spoolW = bufio.NewWriterSize(spool, 64<<10)
	in.src = io.TeeReader(in.src, (*spoolWriter)(in))
	return in, nil
}

// spoolWriter counts what is copied to the spool.
type spoolWriter Input

func (w *spoolWriter) Write(p []byte) (int, error) {
	n, err := w.spoolW.Write(p)
	w.spoolBytes += int64(n)
	if err != nil {
		// A local failure (a full disk), not an unreadable input: the
		// TeeReader hands it back as a read error, so mark it.
		err = fmt.Errorf("%w: cannot keep a copy of the input for the run: %v", fetch.ErrOutput, err)
	}
	return n, err
}

// Close releases the input and removes its copy.
func (in *Input) Close() {
	if in.file != nil {
		in.file.Close()
	}
	if in.spool != nil {
		in.spool.Close()
		if in.spoolName != "" {
			os.Remove(in.spoolName)
		}
	}
}

// Shown names the input in messages.
func (in *Input) Shown() string {
	if in.name == "-" {
		return "stdin"
	}
	return in.name
}

// CheckPass reads the whole input for the first time, calling fn for each
// URL; fn's error stops the pass and is returned. A read failure is a
// usage error (an unreadable input, like an unreadable @file).
func (in *Input) CheckPass(fn func(Entry) error) error {
	n, err := in.eachArg(fn)
	if err != nil || in.src == nil {
		return err
	}
	_, err = scanURLs(in.src, n, func(e Entry) error {
		if err := fn(e); err != nil {
			return &stopScan{err}
		}
		return nil
	})
	var stop *stopScan
	switch {
	case errors.As(err, &stop):
		return stop.err
	case errors.Is(err, fetch.ErrOutput):
		return err
	case err != nil:
		return usageErrorf("-i %s: %v", in.Shown(), err)
	}
	if in.seekable {
		// What was checked must be what runs: remember the file as read.
		if st, err := in.file.Stat(); err == nil {
			in.checked = st
		}
	}
	if in.spoolW != nil {
		if err := in.spoolW.Flush(); err != nil {
			return fmt.Errorf("cannot keep a copy of the input for the run: %w", err)
		}
	}
	return nil
}

// stopScan carries fn's error out of scanURLs, apart from read errors.
type stopScan struct{ err error }

func (e *stopScan) Error() string { return e.err.Error() }

// RunPass reads the input again, from its start, calling fn for each URL.
func (in *Input) RunPass(fn func(Entry) error) error {
	n, err := in.eachArg(fn)
	if err != nil || in.src == nil {
		return err
	}
	if in.seekable {
		if st, err := in.file.Stat(); err != nil || in.checked == nil ||
			st.Size() != in.checked.Size() || !st.ModTime().Equal(in.checked.ModTime()) {
			// Its lines were checked, not whatever it holds now.
			return usageErrorf("-i %s changed after it was checked; run again", in.Shown())
		}
	}
	f := in.spool
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return fmt.Errorf("cannot read the input again: %w", err)
	}
	_, err = scanURLs(bufio.NewReaderSize(f, 64<<10), n, fn)
	return err
}

// Lookup returns the entry at position n, during or after the first pass
// (to name both lines of a collision); it reads with ReadAt, so the pass
// in progress is not disturbed.
func (in *Input) Lookup(n int) (Entry, error) {
	if n <= len(in.args) {
		return Entry{N: n, Label: "argument " + strconv.Itoa(n), Raw: in.args[n-1]}, nil
	}
	var r io.Reader
	switch {
	case in.spool != nil:
		if err := in.spoolW.Flush(); err != nil {
			return Entry{}, err
		}
		r = io.NewSectionReader(in.spool, 0, in.spoolBytes)
	default:
		return Entry{}, fmt.Errorf("no URL %d", n)
	}
	var found *Entry
	errFound := errors.New("found")
	_, err := scanURLs(r, len(in.args), func(e Entry) error {
		if e.N == n {
			found = &e
			return errFound
		}
		return nil
	})
	if found != nil {
		return *found, nil
	}
	if err == nil {
		err = fmt.Errorf("no URL %d", n)
	}
	return Entry{}, err
}

// eachArg calls fn for each URL argument and returns their count.
func (in *Input) eachArg(fn func(Entry) error) (int, error) {
	for i, a := range in.args {
		if err := fn(Entry{N: i + 1, Label: "argument " + strconv.Itoa(i+1), Raw: a}); err != nil {
			return i, err
		}
	}
	return len(in.args), nil
}

// scanURLs calls fn for each URL line of r, numbering the URLs from
// after+1; it returns how many lines it read.
func scanURLs(r io.Reader, after int, fn func(Entry) error) (int, error) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64<<10), maxInputLine)
	line, n := 0, after
	for sc.Scan() {
		line++
		text := sc.Text()
		if line == 1 {
			text = strings.TrimPrefix(text, "\uFEFF") // a byte order mark
		}
		text = strings.TrimSpace(text)
		if text == "" || text[0] == '#' {
			continue
		}
		n++
		if err := fn(Entry{N: n, Label: "line " + strconv.Itoa(line), Raw: text}); err != nil {
			return line, err
		}
	}
	if err := sc.Err(); err != nil {
		if errors.Is(err, bufio.ErrTooLong) {
			return line, fmt.Errorf("line %d: longer than %d KiB; give one URL a line", line+1, maxInputLine>>10)
		}
		return line, fmt.Errorf("cannot read: %w", unwrapPath(err))
	}
	return line, nil
}
