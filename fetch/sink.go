package fetch

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
)

// Sink receives the body of each attempt and makes only a successful one
// visible.
type Sink interface {
	// Begin starts a fresh body, dropping whatever an earlier Begin received.
	Begin() (io.Writer, error)
	// Commit makes the body of the last Begin visible.
	Commit() error
	// Close releases temporary storage. It is safe after Commit and twice.
	Close() error
	// Streams reports whether bytes become visible as they are written, so
	// a body cut short cannot be retried.
	Streams() bool
}

// expecter is a Sink told the length of the body its Begin started, from
// Content-Length (-1 when unknown), before the first byte is written; a
// hint for where to put the body, never trusted as the body's length.
type expecter interface {
	Expect(size int64)
}

// resumer is a Sink that can continue the body of its last Begin after
// the body was cut (resume.go): Resume keeps the body's first off bytes,
// drops anything after them, and returns the writer of the bytes that
// follow, in the same memory or file, so nothing already received is
// copied again. It fails when the sink holds fewer than off bytes; the
// caller then starts over with Begin. Nothing becomes visible before
// Commit, as with Begin.
type resumer interface {
	Resume(off int64) (io.Writer, error)
}

// errHeldShort is Resume's error when the sink holds less than asked.
func errHeldShort(off, held int64) error {
	return fmt.Errorf("cannot resume at byte %d: %d bytes are held", off, held)
}

// truncateAt keeps the first off bytes of f, a body's file, and puts its
// offset there, where the rest of the body goes.
func truncateAt(f *os.File, off int64) error {
	st, err := f.Stat()
	if err != nil {
		return err
	}
	if st.Size() < off {
		return errHeldShort(off, st.Size())
	}
	if err := f.Truncate(off); err != nil {
		return err
	}
	_, err = f.Seek(off, io.SeekStart)
	return err
}

// fillChunk reads from r until p is full, r ends or r fails, and returns
// what it read with r's own error (io.EOF at a clean end). For a body that
// is held back anyway (buffered, or -o without a progress bar) it makes
// every write to the file the full size of the read buffer, 256 KiB,
// where a read of a socket returns whatever has arrived: uniform writes
// cost the page cache less (larger folios, fewer of them to allocate and
// free). Measured on a 512 MiB body into a pipe: about 7% less time
// (bench/BENCHMARKS.md). A body shown as it comes (-N, a progress bar) is not
// held back for it.
func fillChunk(r io.Reader, p []byte) (n int, err error) {
	for n < len(p) && err == nil {
		var k int
		k, err = r.Read(p[n:])
		n += k
	}
	return n, err
}

// SpillThreshold is how much of a buffered body is kept in memory before
// it spills to a temporary file.
const SpillThreshold = 4 << 20

// spillDirs are where a spill file may go: os.TempDir() ($TMPDIR), then,
// on Unix, /tmp when $TMPDIR names another directory: a TMPDIR that is
// missing or not writable (a CI job's leftover setting) must not fail a
// download that curl, which needs no temporary file, would complete.
func spillDirs() []string {
	dirs := []string{os.TempDir()}
	if runtime.GOOS != "windows" && filepath.Clean(dirs[0]) != "/tmp" {
		dirs = append(dirs, "/tmp")
	}
	return dirs
}

// TempFile makes a temporary file the way a spill file is made (see
// createSpill): unnamed where the system allows it, in $TMPDIR or else
// /tmp. name is what to remove when done, "" when there is nothing to
// remove (the file has no name).
func TempFile() (f *os.File, name string, err error) { return createSpill() }

// spillError is the error of a spill file that could be made nowhere.
func spillError(err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		err = pe.Err
	}
	return fmt.Errorf("cannot make the temporary file that holds a body over %s until it is complete, in %s (TMPDIR) or /tmp: %v; set TMPDIR to a writable directory",
		FormatBytes(SpillThreshold), os.TempDir(), err)
}

// BufferSink holds the body in memory, spilling to a temporary file past
// SpillThreshold, and copies it to Dst on Commit. Dst may be nil when only
// the content is wanted (the JSON report). A body announced (Expect) as
// larger than SpillThreshold goes to the file from its first byte.
//
// The temporary file is made in os.TempDir() ($TMPDIR) and has no name
// while it is used (Linux: O_TMPFILE; other Unix systems: removed as soon
// as it is created), so it is gone when the process ends, however it ends.
// On Windows it has a name until Close removes it.
type BufferSink struct {
	Dst io.Writer

	mem    bytes.Buffer
	file   *os.File
	name   string // of file, to remove on Close: "" when it has none
	size   int64
	expect int64 // announced length of the body, -1 if unknown
}

// Begin implements Sink.
func (s *BufferSink) Begin() (io.Writer, error) {
	s.mem.Reset()
	s.size, s.expect = 0, -1
	if s.file != nil {
		if err := s.file.Truncate(0); err != nil {
			return nil, err
		}
		if _, err := s.file.Seek(0, io.SeekStart); err != nil {
			return nil, err
		}
	}
	return s, nil
}

// Expect announces the length of the body Begin started (from
// Content-Length; -1 if unknown). A body larger than the memory budget is
// written straight to the temporary file: staging its first 4 MiB in
// memory would only cost a copy and the memory.
func (s *BufferSink) Expect(size int64) { s.expect = size }

// Write buffers p, moving the body to a temporary file once it is large.
func (s *BufferSink) Write(p []byte) (int, error) {
	s.size += int64(len(p))
	if s.file == nil && s.expect <= SpillThreshold && s.mem.Len()+len(p) <= SpillThreshold {
		if s.mem.Len()+len(p) > 64<<10 && s.mem.Cap() < SpillThreshold {
			// Reserve the whole in-memory budget once instead of doubling
			// towards it: doubling leaves garbage that inflates peak RSS.
			s.mem.Grow(SpillThreshold - s.mem.Len())
		}
		return s.mem.Write(p)
	}
	if err := s.toFile(); err != nil {
		return 0, err
	}
	return s.file.Write(p)
}

// toFile moves the body to the temporary file, making the file if there
// is none yet and writing out what is held in memory.
func (s *BufferSink) toFile() error {
	if s.file == nil {
		f, name, err := createSpill()
		if err != nil {
			return err
		}
		s.file, s.name = f, name
	}
	if s.mem.Len() > 0 {
		if _, err := s.file.Write(s.mem.Bytes()); err != nil {
			return err
		}
		s.mem.Reset()
	}
	return nil
}

// appendFile implements appender: once the body goes to the temporary
// file (it was announced as larger than the memory budget), that file.
func (s *BufferSink) appendFile() (*os.File, func(int64)) {
	if s.file == nil && s.expect <= SpillThreshold {
		return nil, nil
	}
	if err := s.toFile(); err != nil {
		return nil, nil // Write meets the error again and reports it
	}
	return s.file, func(n int64) { s.size += n }
}

// Resume implements resumer: the body keeps its first off bytes, in
// memory or in the temporary file, wherever they are.
func (s *BufferSink) Resume(off int64) (io.Writer, error) {
	if off > s.size {
		return nil, errHeldShort(off, s.size)
	}
	if s.file == nil {
		s.mem.Truncate(int(off))
	} else if err := truncateAt(s.file, off); err != nil {
		// Once spilled, the whole body is in the file (toFile).
		return nil, err
	}
	s.size = off
	return s, nil
}

// Size is the length of the buffered body.
func (s *BufferSink) Size() int64 { return s.size }

// Reader returns the buffered body from its start.
func (s *BufferSink) Reader() (io.Reader, error) {
	if s.file == nil {
		return bytes.NewReader(s.mem.Bytes()), nil
	}
	if _, err := s.file.Seek(0, io.SeekStart); err != nil {
		return nil, err
	}
	// The file holds exactly this body (Begin truncates it), and a bare
	// *os.File lets io.Copy use copy_file_range or sendfile.
	return s.file, nil
}

// Commit implements Sink.
func (s *BufferSink) Commit() error {
	if s.Dst == nil {
		return nil
	}
	r, err := s.Reader()
	if err != nil {
		return err
	}
	if f, ok := r.(*os.File); ok {
		_, err = copySpill(s.Dst, f, s.size)
	} else {
		_, err = io.Copy(s.Dst, r)
	}
	if err != nil {
		return markAs(errOutput, err)
	}
	return nil
}

// Close implements Sink.
func (s *BufferSink) Close() error {
	if s.file == nil {
		return nil
	}
	s.file.Close()
	s.file = nil
	if s.name == "" {
		return nil
	}
	return os.Remove(s.name)
}

// Streams implements Sink.
func (s *BufferSink) Streams() bool { return false }

// StreamSink writes the body straight through to Dst (-N): no buffering,
// so a body cut short after the first byte is not retried.
type StreamSink struct{ Dst io.Writer }

// Begin implements Sink.
func (s *StreamSink) Begin() (io.Writer, error) { return s.Dst, nil }

// Commit implements Sink.
func (s *StreamSink) Commit() error { return nil }

// Close implements Sink.
func (s *StreamSink) Close() error { return nil }

// Streams implements Sink.
func (s *StreamSink) Streams() bool { return true }

// DiscardSink drops the body: for stdout redirected to the null device,
// where buffering a body nobody will read only costs time and disk.
type DiscardSink struct{}

// Begin implements Sink.
func (DiscardSink) Begin() (io.Writer, error) { return io.Discard, nil }

// Commit implements Sink.
func (DiscardSink) Commit() error { return nil }

// Close implements Sink.
func (DiscardSink) Close() error { return nil }

// Streams implements Sink: nothing is visible, so a cut body may be retried.
func (DiscardSink) Streams() bool { return false }

// Resume implements resumer: the rest of a cut body is dropped too, and
// only the rest is asked for.
func (DiscardSink) Resume(int64) (io.Writer, error) { return io.Discard, nil }

// IsNullDevice reports whether w is the null device (stdout > /dev/null).
func IsNullDevice(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	return err == nil && isNullDevice(st)
}
