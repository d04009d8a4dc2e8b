package fetch

import (
	"errors"
	"io"
	"os"
	"path/filepath"
	"syscall"

	"golang.org/x/sys/unix"
)

// createSpill makes the temporary file a large buffered body spills to, in
// os.TempDir() ($TMPDIR: a tmpfs there keeps it in memory). On Linux it is
// opened with O_TMPFILE, so it never has a name: nothing is left behind
// even if the process is killed, and no other process can open it. Where
// the filesystem does not support O_TMPFILE it is created with a name that
// is removed at once. The returned name is always "": nothing to remove.
func createSpill() (*os.File, string, error) {
	var first error
	for _, dir := range spillDirs() {
		fd, err := unix.Open(dir, unix.O_TMPFILE|unix.O_RDWR|unix.O_CLOEXEC, 0o600)
		if err == nil {
			return os.NewFile(uintptr(fd), filepath.Join(dir, "refetch-body (unnamed)")), "", nil
		}
		f, err := os.CreateTemp(dir, "refetch-body-*")
		if err == nil {
			if err = os.Remove(f.Name()); err == nil {
				return f, "", nil
			}
			f.Close()
		}
		if first == nil {
			first = err
		}
	}
	return nil, "", spillError(first)
}

// copySpill copies n bytes of src (the spill file, at its start) to dst.
// Go's io.Copy moves a file into a pipe through a 32 KiB user-space buffer
// (its sendfile covers sockets, copy_file_range files); into a pipe this
// uses sendfile(2), which hands the file's cached pages to the pipe
// without copying them, after growing the pipe (growPipe). Any other
// destination, and whatever sendfile leaves (a failure, a refusal), goes
// through io.Copy, which also reports a failure the way a plain write does
// (EPIPE on stdout ends the process with SIGPIPE, as it did before).
func copySpill(dst io.Writer, src *os.File, n int64) (int64, error) {
	out, ok := dst.(*os.File)
	if !ok || !isPipe(out) {
		return io.Copy(dst, src)
	}
	growPipe(out, n)
	written, _ := sendfile(out, src, n)
	if written == n {
		return written, nil
	}
	// Whatever sendfile did not move (an error, a refusal) goes the
	// ordinary way from the file's offset, which sendfile advanced.
	rest, err := io.Copy(dst, fileReader{src})
	return written + rest, err
}

// pipeSize is what growPipe asks for: Linux's default limit for an
// unprivileged process (/proc/sys/fs/pipe-max-size).
const pipeSize = 1 << 20

// growPipe enlarges the pipe out to pipeSize (F_SETPIPE_SZ) before n bytes
// go into it at once. With the default 64 KiB the writer and the reader
// take turns 16 times per MiB; measured on a 512 MiB body into
// `| cat > /dev/null`, this halved the time of the copy out (bench/run.sh).
// The pipe stays larger for its other users, which only lets them buffer
// more. It is a hint: a refusal (the user's pipe memory limit, a lower
// pipe-max-size) changes nothing.
func growPipe(out *os.File, n int64) {
	if n <= 64<<10 {
		return
	}
	sc, err := out.SyscallConn()
	if err != nil {
		return
	}
	sc.Control(func(fd uintptr) {
		cur, err := unix.FcntlInt(fd, unix.F_GETPIPE_SZ, 0)
		if err != nil || cur >= pipeSize {
			return
		}
		want := pipeSize
		if n < int64(want) {
			want = int(n)
		}
		_, _ = unix.FcntlInt(fd, unix.F_SETPIPE_SZ, want)
	})
}

// fileReader hides (*os.File).WriteTo, so io.Copy falls back to
// dst.ReadFrom or a plain read-write loop instead of calling back here.
type fileReader struct{ f *os.File }

func (r fileReader) Read(p []byte) (int, error) { return r.f.Read(p) }

// isPipe reports whether f is a pipe or FIFO.
func isPipe(f *os.File) bool {
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeNamedPipe != 0
}

// sendfile moves up to n bytes from src's offset into out. A non-blocking
// out waits in Go's poller (and so honours its write deadline).
func sendfile(out, src *os.File, n int64) (int64, error) {
	oc, err := out.SyscallConn()
	if err != nil {
		return 0, err
	}
	sc, err := src.SyscallConn()
	if err != nil {
		return 0, err
	}
	var written int64
	var serr error
	cerr := sc.Read(func(in uintptr) bool {
		werr := oc.Write(func(o uintptr) bool {
			for written < n {
				k, err := syscall.Sendfile(int(o), int(in), nil, int(min(n-written, 1<<30)))
				if k > 0 {
					written += int64(k)
				}
				switch {
				case errors.Is(err, syscall.EINTR):
					continue
				case errors.Is(err, syscall.EAGAIN):
					return false // wait until out is writable
				case err != nil:
					serr = err
					return true
				case k == 0:
					serr = io.ErrUnexpectedEOF
					return true
				}
			}
			return true
		})
		if serr == nil {
			serr = werr
		}
		return true
	})
	if serr == nil {
		serr = cerr
	}
	return written, serr
}

// writebackEvery is how much of a body startWritebackAt lets accumulate
// before it asks the kernel to start writing it to disk.
const writebackEvery = 8 << 20

// startWritebackAt returns a writer for f, the temporary file of -o, that
// starts the disk writes of every writebackEvery bytes as they arrive
// (sync_file_range(2), SYNC_FILE_RANGE_WRITE: it starts writeback and does
// not wait), so the disk works while the download goes on and the final
// fsync only has the tail left to write. It does not make anything
// durable: the fsync before the rename still does. Measured on a 512 MiB
// -o into ext4 on a virtual disk: about a quarter less time than
// without it (bench/run.sh, bench/BENCHMARKS.md).
//
// f holds off bytes of the body already (a resumed body, resume.go; 0 for
// a body from its start), whose writeback was started before.
func startWritebackAt(f *os.File, off int64) io.Writer {
	rc, err := f.SyscallConn()
	if err != nil {
		return f
	}
	return &writeback{f: f, rc: rc, off: off, started: off}
}

// writeback is the writer of startWritebackAt.
type writeback struct {
	f       *os.File
	rc      syscall.RawConn
	off     int64 // bytes written
	started int64 // bytes whose writeback was started
	stopped bool  // sync_file_range failed: stop asking
}

// Write writes p to the file and starts the writeback of what has
// accumulated since the last start, once that reaches writebackEvery.
func (w *writeback) Write(p []byte) (int, error) {
	n, err := w.f.Write(p)
	w.added(int64(n))
	return n, err
}

// appendFile implements appender: bytes spliced into the file are written
// back like written ones.
func (w *writeback) appendFile() (*os.File, func(int64)) { return w.f, w.added }

// added counts n more bytes in the file and starts the writeback of what
// has accumulated since the last start, once that reaches writebackEvery.
func (w *writeback) added(n int64) {
	w.off += n
	if !w.stopped && w.off-w.started >= writebackEvery {
		from, length := w.started, w.off-w.started
		w.rc.Control(func(fd uintptr) {
			if unix.SyncFileRange(int(fd), from, length, unix.SYNC_FILE_RANGE_WRITE) != nil {
				// Not supported here (some filesystems): a hint only.
				w.stopped = true
			}
		})
		w.started = w.off
	}
}
