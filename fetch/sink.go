package fetch

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
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

// SpillThreshold is how much of a buffered body is kept in memory before
// it spills to a temporary file.
const SpillThreshold = 4 << 20

// BufferSink holds the body in memory, spilling to a temporary file past
// SpillThreshold, and copies it to Dst on Commit. Dst may be nil when only
// the content is wanted (the JSON report).
type BufferSink struct {
	Dst io.Writer

	mem  bytes.Buffer
	file *os.File
	size int64
}

// Begin implements Sink.
func (s *BufferSink) Begin() (io.Writer, error) {
	s.mem.Reset()
	s.size = 0
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

// Write buffers p, moving the body to a temporary file once it is large.
func (s *BufferSink) Write(p []byte) (int, error) {
	s.size += int64(len(p))
	if s.file == nil && s.mem.Len()+len(p) <= SpillThreshold {
		if s.mem.Len()+len(p) > 64<<10 && s.mem.Cap() < SpillThreshold {
			// Reserve the whole in-memory budget once instead of doubling
			// towards it: doubling leaves garbage that inflates peak RSS.
			s.mem.Grow(SpillThreshold - s.mem.Len())
		}
		return s.mem.Write(p)
	}
	if s.file == nil {
		f, err := os.CreateTemp("", "refetch-body-*")
		if err != nil {
			return 0, err
		}
		s.file = f
	}
	if s.mem.Len() > 0 {
		if _, err := s.file.Write(s.mem.Bytes()); err != nil {
			return 0, err
		}
		s.mem.Reset()
	}
	return s.file.Write(p)
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
	// *os.File lets io.Copy use copy_file_range or sendfile to stdout.
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
	if _, err := io.Copy(s.Dst, r); err != nil {
		return fmt.Errorf("%w: %v", errOutput, err)
	}
	return nil
}

// Close implements Sink.
func (s *BufferSink) Close() error {
	if s.file == nil {
		return nil
	}
	name := s.file.Name()
	s.file.Close()
	s.file = nil
	return os.Remove(name)
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

// FileSink writes the body to a temporary file beside Path and, on Commit,
// fsyncs it and renames it over Path. Until then an existing Path is left
// as it was; Close removes the temporary file.
type FileSink struct {
	path string
	mode fs.FileMode
	tmp  *os.File
}

// NewFileSink checks that Path's directory exists and is writable by
// creating the temporary file now, before any request is sent.
func NewFileSink(path string) (*FileSink, error) {
	dir, base := filepath.Split(path)
	if base == "" {
		return nil, fmt.Errorf("-o %s: is a directory", path)
	}
	if dir == "" {
		dir = "."
	}
	mode := fs.FileMode(0o644)
	if st, err := os.Stat(path); err == nil {
		if st.IsDir() {
			return nil, fmt.Errorf("-o %s: is a directory", path)
		}
		mode = st.Mode().Perm()
	}
	tmp, err := os.CreateTemp(dir, "."+base+".refetch-*")
	if err != nil {
		var pe *fs.PathError
		if errors.As(err, &pe) {
			err = pe.Err
		}
		return nil, fmt.Errorf("-o %s: cannot write in %s: %v", path, dir, err)
	}
	return &FileSink{path: path, mode: mode, tmp: tmp}, nil
}

// Begin implements Sink.
func (s *FileSink) Begin() (io.Writer, error) {
	if s.tmp == nil {
		return nil, errors.New("file sink closed")
	}
	if err := s.tmp.Truncate(0); err != nil {
		return nil, err
	}
	if _, err := s.tmp.Seek(0, io.SeekStart); err != nil {
		return nil, err
	}
	return s.tmp, nil
}

// Commit implements Sink.
func (s *FileSink) Commit() error {
	if s.tmp == nil {
		return errors.New("file sink closed")
	}
	name := s.tmp.Name()
	err := s.tmp.Sync()
	if cerr := s.tmp.Close(); err == nil {
		err = cerr
	}
	s.tmp = nil
	if err == nil {
		err = os.Chmod(name, s.mode)
	}
	if err == nil {
		err = os.Rename(name, s.path)
	}
	if err != nil {
		os.Remove(name)
		return fmt.Errorf("%w: -o %s: %v", errOutput, s.path, err)
	}
	return nil
}

// Close implements Sink.
func (s *FileSink) Close() error {
	if s.tmp == nil {
		return nil
	}
	name := s.tmp.Name()
	s.tmp.Close()
	s.tmp = nil
	return os.Remove(name)
}

// Streams implements Sink.
func (s *FileSink) Streams() bool { return false }

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

// IsNullDevice reports whether w is the null device (stdout > /dev/null).
func IsNullDevice(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	if err != nil || st.Mode()&fs.ModeCharDevice == 0 {
		return false
	}
	null, err := os.Stat(os.DevNull)
	return err == nil && os.SameFile(st, null)
}
