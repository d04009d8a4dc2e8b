package fetch

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/refetch/refetch/internal/atomicfile"
)

// FileSink writes the body to -o FILE. How depends on what FILE is when
// the run starts (see NewFileSink), but in every case nothing reaches FILE
// before Commit, so a failed fetch leaves it as it was, and Close leaves no
// temporary file behind.
type FileSink struct {
	ctx    context.Context
	path   string // as given, for messages
	target string // what is written: path with its symlinks followed
	how    writeMode
	// mode is the permission of a file created or replaced: an existing
	// file's own, else atomicfile.NewFileMode (0666 less the umask).
	mode   fs.FileMode
	exists bool
	fifo   bool // writeThrough to a FIFO: opening it waits for a reader

	tmp  *atomicfile.File // replaceFile: the temporary file beside target
	buf  *BufferSink      // inPlace, writeThrough, toDescriptor: the body until Commit
	desc *os.File         // toDescriptor: where the body goes
	dup  bool             // desc is our own duplicate, closed by Close
}

// writeMode is how a FileSink makes the body visible.
type writeMode int

const (
	// replaceFile: a temporary file beside target, fsynced and renamed over
	// it; atomic.
	replaceFile writeMode = iota
	// inPlace: the existing target is opened, overwritten, truncated to
	// the body's size and fsynced, because it cannot be renamed over (a
	// mount point, or a directory we may not write in).
	inPlace
	// writeThrough: a device or FIFO is opened and written, never
	// replaced.
	writeThrough
	// toDescriptor: one of the process's own descriptors (/dev/stdout,
	// /dev/fd/N), written as stdout is without -o.
	toDescriptor
	// discard: the null device; nothing to write.
	discard
)

// maxLinks bounds how many symlinks are followed, as Linux's ELOOP does.
const maxLinks = 40

// NewFileSink decides, before any request is sent, how the body will reach
// path, and fails (the caller's exit 2) if it cannot:
//
//   - a regular file, or a new one: a temporary file beside it, renamed over
//     it on Commit (atomic). If the rename is refused at Commit (a sticky
//     directory, a filesystem without rename), the body is written in place
//     instead. An existing file keeps its permissions; a new one gets 0666 less
//     the umask.
//   - a symlink (chains too): its final target is replaced as above; the
//     link stays. A dangling link's target is created.
//   - a regular file that cannot be renamed over (a mount point, as Docker
//     and Kubernetes mount single files, or a file in a directory we may not
//     write in): the body is buffered and written in place on Commit.
//   - a device or FIFO: buffered, then opened and written on Commit, never
//     replaced; the null device is not written at all.
//   - /dev/stdout, /dev/stderr, /dev/fd/N, /proc/self/fd/N: the process's
//     own descriptor, buffered and written on Commit as stdout is.
//   - a directory, a socket, a file neither writable nor in a writable
//     directory: an error.
//
// ctx is the run's: it ends a wait for a FIFO's reader at Commit.
func NewFileSink(ctx context.Context, path string) (*FileSink, error) {
	s := &FileSink{ctx: ctx, path: path, mode: atomicfile.NewFileMode()}
	if _, base := filepath.Split(path); base == "" {
		return nil, outputError(path, "is a directory")
	}
	target, fd, _, err := resolveLinks(path)
	if err != nil {
		return nil, &OutputError{Path: path, Err: err}
	}
	if fd >= 0 {
		return s.toDescriptor(fd)
	}
	s.target = target
	st, err := os.Stat(target)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return s.replace()
	case err != nil:
		return nil, &OutputError{Path: path, Err: unwrapPathError(err)}
	case st.IsDir():
		return nil, outputError(path, "is a directory")
	case st.Mode()&fs.ModeSocket != 0:
		return nil, outputError(path, "is a socket; refetch writes to files, devices and FIFOs")
	case !st.Mode().IsRegular():
		if err := writable(target); err != nil {
			return nil, outputError(path, "not writable: %w", err)
		}
		if isNullDevice(st) {
			s.how = discard
			return s, nil
		}
		s.how, s.buf = writeThrough, &BufferSink{}
		s.fifo = st.Mode()&fs.ModeNamedPipe != 0
		return s, nil
	}
	s.mode, s.exists = st.Mode().Perm(), true
	if isMountPoint(target) {
		if err := writable(target); err != nil {
			return nil, outputError(path, "is a mount point (it cannot be replaced) and not writable: %w", err)
		}
		s.how, s.buf = inPlace, &BufferSink{}
		return s, nil
	}
	return s.replace()
}

// replace sets s up to rename a temporary file over s.target, or, when no
// temporary file can be made beside an existing writable target, to write
// it in place.
func (s *FileSink) replace() (*FileSink, error) {
	dir, base := filepath.Split(s.target)
	if dir == "" {
		dir = "."
	}
	if s.exists && dirWritable(dir) {
		if err := CheckReplaceable(s.target); err != nil {
			return nil, &OutputError{Path: s.path, Err: err}
		}
	}
	tmp, err := atomicfile.Create(dir, base)
	if err == nil {
		s.how, s.tmp = replaceFile, tmp
		return s, nil
	}
	dir = filepath.Clean(dir)
	if !s.exists {
		if errors.Is(err, fs.ErrNotExist) && isDir(dir) {
			// A directory where creating says "no such file" is a file
			// system that takes no new files (/proc, /sys).
			return nil, outputError(s.path, "cannot create a file in %s: its file system takes no new files (give a file in a writable directory)", dir)
		}
		return nil, outputError(s.path, "cannot write in %s: %w", dir, unwrapPathError(err))
	}
	if werr := writable(s.target); werr != nil {
		return nil, outputError(s.path, "cannot write in %s (%v), nor to the file itself (%v)", dir, unwrapPathError(err), werr)
	}
	s.how, s.buf = inPlace, &BufferSink{}
	return s, nil
}

func isDir(path string) bool {
	st, err := os.Stat(path)
	return err == nil && st.IsDir()
}

// SetCreateMode sets the permissions of the file Commit creates when none
// was at the path (by default 0666 less the umask); an existing file keeps
// its own. Reports use 0644: a CI system's other users read them.
func (s *FileSink) SetCreateMode(mode fs.FileMode) {
	if !s.exists {
		s.mode = mode
	}
}

// TempDir is the directory of the temporary file that will replace the
// target, "" when the body is not written that way (a descriptor, a
// device, a FIFO, a file written in place).
func (s *FileSink) TempDir() string {
	if s.how != replaceFile {
		return ""
	}
	return filepath.Dir(s.target)
}

// toDescriptor sets s up to write to the process's descriptor fd.
func (s *FileSink) toDescriptor(fd int) (*FileSink, error) {
	f, dup, err := openDescriptor(fd)
	if err != nil {
		return nil, &OutputError{Path: s.path, Err: err}
	}
	if IsNullDevice(f) {
		if dup {
			f.Close()
		}
		s.how = discard
		return s, nil
	}
	s.how, s.desc, s.dup = toDescriptor, f, dup
	s.buf = &BufferSink{Dst: f}
	return s, nil
}

// resolveLinks follows symlinks at the end of path until it names something
// that is not a symlink, or nothing: a dangling link's target, to create.
// Each directory part is resolved first, so that a relative link target
// with ".." means what the kernel makes of it. fd is the descriptor number
// when a step names one of the process's own descriptors, else -1. end
// is what the walk found at target (its FileInfo nil when nothing is
// there); end is nil where the walk did not look (a descriptor, or a
// link the kernel follows itself).
func resolveLinks(path string) (target string, fd int, end *linkEnd, err error) {
	p := path
	for range maxLinks {
		if n, ok := ownDescriptor(p); ok {
			return "", n, nil, nil
		}
		dir, base := filepath.Split(p)
		if dir == "" {
			dir = "."
		}
		rdir, err := filepath.EvalSymlinks(dir)
		if err != nil {
			return "", -1, nil, fmt.Errorf("cannot write in %s: %v", filepath.Clean(dir), unwrapPathError(err))
		}
		p = filepath.Join(rdir, base)
		if n, ok := ownDescriptor(p); ok {
			return "", n, nil, nil
		}
		if kernelFollows(rdir) {
			// /proc/PID/fd/N and the like name files the kernel reaches
			// through the link; what Readlink returns is no path.
			return p, -1, nil, nil
		}
		info, err := os.Lstat(p)
		if errors.Is(err, fs.ErrNotExist) {
			return p, -1, &linkEnd{}, nil
		}
		if err != nil {
			return "", -1, nil, unwrapPathError(err)
		}
		if info.Mode()&fs.ModeSymlink == 0 {
			return p, -1, &linkEnd{info}, nil
		}
		link, err := os.Readlink(p)
		if err != nil {
			return "", -1, nil, unwrapPathError(err)
		}
		if !filepath.IsAbs(link) {
			link = filepath.Join(rdir, link)
		}
		p = link
	}
	return "", -1, nil, errors.New("too many levels of symbolic links")
}

// linkEnd is what resolveLinks found at the end of a path's links: the
// file's Lstat, which is its Stat (it is no symlink), or nil for nothing.
type linkEnd struct{ fs.FileInfo }

// isMountPoint reports whether path is itself a mount point (a bind-mounted
// file), which rename(2) cannot replace (EBUSY). It reads Linux's
// /proc/self/mountinfo; elsewhere it reports false and a refused rename is
// handled at Commit.
func isMountPoint(path string) bool {
	abs, err := filepath.Abs(path)
	if err != nil {
		return false
	}
	if dir, err := filepath.EvalSymlinks(filepath.Dir(abs)); err == nil {
		abs = filepath.Join(dir, filepath.Base(abs))
	}
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return false
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		// Fields: ID, parent ID, major:minor, root, mount point, ...
		fields := strings.Fields(sc.Text())
		if len(fields) > 4 && unescapeMountinfo(fields[4]) == abs {
			return true
		}
	}
	return false
}

// unescapeMountinfo undoes the octal escapes (\040 for a space, \011, \012,
// \134) the kernel writes into mountinfo paths.
func unescapeMountinfo(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) && isOctal(s[i+1]) && isOctal(s[i+2]) && isOctal(s[i+3]) {
			b.WriteByte((s[i+1]-'0')<<6 | (s[i+2]-'0')<<3 | (s[i+3] - '0'))
			i += 3
			continue
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

func isOctal(c byte) bool { return c >= '0' && c <= '7' }

// Begin implements Sink.
func (s *FileSink) Begin() (io.Writer, error) {
	if s.how == discard || s.how == replaceFile {
		// The temporary file emptied: a body resumed at its start.
		return s.Resume(0)
	}
	return s.buf.Begin()
}

// Resume implements resumer: the temporary file beside the target, or
// the buffer of the other modes, keeps the body's first off bytes.
func (s *FileSink) Resume(off int64) (io.Writer, error) {
	switch s.how {
	case discard:
		return io.Discard, nil
	case replaceFile:
		if s.tmp == nil {
			return nil, errors.New("file sink closed")
		}
		if err := truncateAt(s.tmp.File, off); err != nil {
			return nil, err
		}
		return startWritebackAt(s.tmp.File, off), nil
	}
	return s.buf.Resume(off)
}

// Expect passes the body's announced length to the buffer of the modes
// that have one.
func (s *FileSink) Expect(size int64) {
	if s.buf != nil {
		s.buf.Expect(size)
	}
}

// Commit implements Sink: it makes the body of the last Begin visible at
// the path, the way NewFileSink decided.
func (s *FileSink) Commit() error {
	var err error
	switch s.how {
	case discard:
		return nil
	case toDescriptor:
		// BufferSink wraps its error in errOutput already.
		return s.buf.Commit()
	case replaceFile:
		err = s.commitReplace()
	case inPlace:
		var r io.Reader
		if r, err = s.buf.Reader(); err == nil {
			err = writeInPlace(s.target, r, s.exists, s.mode)
		}
	case writeThrough:
		err = s.commitWriteThrough()
	}
	if err == nil {
		return nil
	}
	if s.ctx.Err() != nil {
		// Interrupted while waiting for a FIFO's reader: the signal's exit
		// code, not an output failure.
		return &OutputError{Path: s.path, Err: context.Cause(s.ctx)}
	}
	if dir := filepath.Dir(s.target); (s.how == replaceFile || s.how == inPlace) && !isDir(dir) {
		// Not the temporary files' names and the rename's nested
		// errors (a tour saw three): what happened.
		err = fmt.Errorf("its directory %s was removed during the run", dir)
	}
	return markAs(errOutput, &OutputError{Path: s.path, Err: err})
}

// commitReplace fsyncs the temporary file and renames it over the target.
// A refused rename falls back to writing the finished body in place: a
// complete download never fails because of the rename alone.
func (s *FileSink) commitReplace() error {
	if s.tmp == nil {
		return errors.New("file sink closed")
	}
	tmp := s.tmp
	s.tmp = nil
	defer tmp.Close()
	// The mode first, so the fsync of Commit makes it durable too.
	if err := tmp.Chmod(s.mode); err != nil {
		return err
	}
	if s.exists {
		if err := tmp.KeepAttrs(s.target); err != nil {
			return err
		}
	}
	rerr := tmp.Commit(s.target, true)
	if rerr == nil {
		return nil
	}
	if _, err := tmp.Seek(0, io.SeekStart); err != nil {
		return fmt.Errorf("%v (rename: %v)", err, unwrapLinkError(rerr))
	}
	if err := writeInPlace(s.target, tmp.File, s.exists, s.mode); err != nil {
		return fmt.Errorf("%v (rename: %v)", err, unwrapLinkError(rerr))
	}
	return nil
}

// writeInPlace overwrites the file at target with r's content: write, then
// truncate what is left of a longer old content (so a reader never sees it
// empty), then fsync. It is not atomic: a reader may see old and new bytes
// mixed meanwhile.
func writeInPlace(target string, r io.Reader, exists bool, mode fs.FileMode) error {
	flag := os.O_WRONLY
	if !exists {
		flag |= os.O_CREATE
	}
	f, err := os.OpenFile(target, flag, mode)
	if err != nil {
		return unwrapPathError(err)
	}
	n, err := io.Copy(f, r)
	if err == nil {
		var st fs.FileInfo
		if st, err = f.Stat(); err == nil && st.Size() > n {
			err = f.Truncate(n)
		}
	}
	if err == nil {
		// EINVAL: a special file (in /proc, say) that has nothing to sync.
		if serr := f.Sync(); serr != nil && !errors.Is(serr, syscall.EINVAL) {
			err = serr
		}
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return unwrapPathError(err)
}

// commitWriteThrough opens the device or FIFO and writes the buffered body.
// Opening a FIFO waits for its reader, as `cat > fifo` does; the run's
// context ends that wait and a write blocked on a reader that stopped
// reading.
func (s *FileSink) commitWriteThrough() error {
	r, err := s.buf.Reader()
	if err != nil {
		return err
	}
	f, err := openForWriting(s.ctx, s.target, s.fifo)
	if err != nil {
		return unwrapPathError(err)
	}
	stop := context.AfterFunc(s.ctx, func() {
		// Deadlines work on FIFOs (pollable); a device that does not
		// support them is not expected to block.
		_ = f.SetWriteDeadline(time.Unix(1, 0))
	})
	_, err = io.Copy(onlyWriter{f}, r)
	stop()
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return unwrapPathError(err)
}

// onlyWriter hides ReadFrom, so io.Copy writes through Write (and its
// deadline) rather than splice or sendfile into a device.
type onlyWriter struct{ w io.Writer }

func (o onlyWriter) Write(p []byte) (int, error) { return o.w.Write(p) }

// openForWriting opens target O_WRONLY without creating or truncating it.
// For a FIFO the open blocks until a reader comes; if ctx ends first, the
// wait is released by opening the FIFO's read end ourselves (nothing is
// written) and the context's cause is returned.
func openForWriting(ctx context.Context, target string, fifo bool) (*os.File, error) {
	if !fifo {
		return os.OpenFile(target, os.O_WRONLY, 0)
	}
	type opened struct {
		f   *os.File
		err error
	}
	ch := make(chan opened, 1)
	go func() {
		f, err := os.OpenFile(target, os.O_WRONLY, 0)
		ch <- opened{f, err}
	}()
	select {
	case o := <-ch:
		return o.f, o.err
	case <-ctx.Done():
	}
	release, ok := releaseFIFOWriter(target)
	if !ok {
		// Nothing can end the open: leave it to the exiting process.
		return nil, context.Cause(ctx)
	}
	o := <-ch
	if o.f != nil {
		o.f.Close()
	}
	release()
	return nil, context.Cause(ctx)
}

// Close implements Sink.
func (s *FileSink) Close() error {
	var err error
	if s.tmp != nil {
		err = s.tmp.Close()
		s.tmp = nil
	}
	if s.buf != nil {
		if berr := s.buf.Close(); err == nil {
			err = berr
		}
	}
	if s.desc != nil && s.dup {
		s.desc.Close()
	}
	s.desc = nil
	return err
}

// Streams implements Sink: every mode writes the body only on Commit.
func (s *FileSink) Streams() bool { return false }

// unwrapPathError drops the *fs.PathError's operation and path, which the
// caller's message already names.
func unwrapPathError(err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}

// unwrapLinkError does the same for the *os.LinkError of a rename.
func unwrapLinkError(err error) error {
	var le *os.LinkError
	if errors.As(err, &le) {
		return le.Err
	}
	return err
}

// CheckReplaceable refuses to replace an existing file this process may
// not write: renaming over it would bypass its permissions (curl and wget
// refuse too). Single -o and a batch's files both ask it.
func CheckReplaceable(target string) error {
	if err := writable(target); err != nil {
		return fmt.Errorf("the file is not writable (%v); make it writable or choose another file", unwrapPathError(err))
	}
	return nil
}

// dirWritable reports whether files may be created in dir.
func dirWritable(dir string) bool { return writable(dir) == nil }
