package fetch

import (
	"context"
	"errors"
	"io"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// pending reads what f holds right now without waiting: nil when nothing.
// f must be non-blocking (a pipe or a FIFO opened by package os).
func pending(t *testing.T, f *os.File) []byte {
	t.Helper()
	rc, err := f.SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 64<<10)
	var n int
	var rerr error
	rc.Read(func(fd uintptr) bool {
		n, rerr = syscall.Read(int(fd), buf)
		return true // no waiting: report what is there
	})
	if errors.Is(rerr, syscall.EAGAIN) || n <= 0 {
		return nil
	}
	return buf[:n]
}

func TestOwnDescriptor(t *testing.T) {
	pid := strconv.Itoa(os.Getpid())
	for path, want := range map[string]int{
		"/dev/stdin": 0, "/dev/stdout": 1, "/dev/stderr": 2, "/dev/fd/7": 7, "/dev//fd/./7": 7,
		"/proc/self/fd/12": 12, "/proc/thread-self/fd/3": 3, "/proc/" + pid + "/fd/4": 4,
		"/dev/fd/": -1, "/dev/fd/x": -1, "/dev/fd/07": -1, "/dev/fd/-1": -1, "dev/stdout": -1,
		"/proc/1/fd/4": -1, "/dev/stdout2": -1, "/tmp/dev/stdout": -1,
	} {
		n, ok := ownDescriptor(path)
		if !ok {
			n = -1
		}
		if n != want {
			t.Errorf("ownDescriptor(%q) = %d, want %d", path, n, want)
		}
	}
}

// /proc/self/fd/N goes to the process's descriptor N (not a reopened or
// replaced file), only on Commit, and Close leaves N open.
func TestFileSinkOwnDescriptor(t *testing.T) {
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	defer w.Close()
	path := "/proc/self/fd/" + strconv.Itoa(int(w.Fd()))
	// A descriptor this process opened is close-on-exec: not the caller's
	// (the Go runtime's poller, say), so not written.
	if _, err := NewFileSink(t.Context(), path); err == nil || !strings.Contains(err.Error(), "is not open") {
		t.Errorf("a close-on-exec descriptor: %v", err)
	}
	// One the caller gave survived exec: not close-on-exec.
	if _, err := unix.FcntlInt(w.Fd(), unix.F_SETFD, 0); err != nil {
		t.Fatal(err)
	}
	s, err := NewFileSink(t.Context(), path)
	if err != nil {
		t.Fatal(err)
	}
	if s.how != toDescriptor {
		t.Fatalf("mode %d, want toDescriptor", s.how)
	}
	bw, _ := s.Begin()
	io.WriteString(bw, "cut short")
	bw, _ = s.Begin()
	io.WriteString(bw, "body")
	if got := pending(t, r); got != nil {
		t.Fatalf("%q reached the descriptor before Commit", got)
	}
	if err := s.Commit(); err != nil {
		t.Fatal(err)
	}
	s.Close()
	if got := pending(t, r); string(got) != "body" {
		t.Errorf("descriptor got %q", got)
	}
	if _, err := w.Write([]byte("x")); err != nil {
		t.Errorf("Close closed the process's own descriptor: %v", err)
	}

	if _, err := unix.FcntlInt(r.Fd(), unix.F_SETFD, 0); err != nil {
		t.Fatal(err)
	}
	if _, err := NewFileSink(t.Context(), "/proc/self/fd/"+strconv.Itoa(int(r.Fd()))); err == nil || !strings.Contains(err.Error(), "open for reading only") {
		t.Errorf("a descriptor open for reading only: %v", err)
	}
	_, err = NewFileSink(t.Context(), "/proc/self/fd/987")
	if err == nil || !strings.Contains(err.Error(), "file descriptor 987 is not open") {
		t.Errorf("closed descriptor: %v", err)
	}
}

// A FIFO is written through on Commit, with only the last body; the node
// stays a FIFO.
func TestFileSinkFIFO(t *testing.T) {
	path := filepath.Join(t.TempDir(), "fifo")
	if err := syscall.Mkfifo(path, 0o600); err != nil {
		t.Fatal(err)
	}
	// O_RDWR does not wait for a writer and keeps the FIFO open for one.
	reader, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer reader.Close()
	s, err := NewFileSink(t.Context(), path)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	w, _ := s.Begin()
	io.WriteString(w, "cut short")
	w, _ = s.Begin()
	io.WriteString(w, "body")
	if got := pending(t, reader); got != nil {
		t.Fatalf("%q reached the FIFO before Commit", got)
	}
	if err := s.Commit(); err != nil {
		t.Fatal(err)
	}
	if got := pending(t, reader); string(got) != "body" {
		t.Errorf("FIFO got %q", got)
	}
	if st, err := os.Lstat(path); err != nil || st.Mode()&fs.ModeNamedPipe == 0 {
		t.Errorf("the FIFO was replaced: %v %v", st, err)
	}
}

// Waiting for a FIFO's reader ends with the run's context, with the
// context's cause (an interruption, not an output failure), and writes
// nothing.
func TestFileSinkFIFOWaitEndsWithContext(t *testing.T) {
	path := filepath.Join(t.TempDir(), "fifo")
	if err := syscall.Mkfifo(path, 0o600); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancelCause(t.Context())
	s, err := NewFileSink(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	w, _ := s.Begin()
	io.WriteString(w, "body")
	done := make(chan error, 1)
	go func() { done <- s.Commit() }()
	stop := errors.New("stopped")
	cancel(stop)
	select {
	case err = <-done:
	case <-time.After(time.Minute):
		t.Fatal("Commit still waits for a reader after the context ended")
	}
	if !errors.Is(err, stop) || errors.Is(err, errOutput) {
		t.Errorf("Commit = %v, want the context's cause and no output error", err)
	}
	reader, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer reader.Close()
	if got := pending(t, reader); got != nil {
		t.Errorf("an interrupted Commit wrote %q", got)
	}
}

func TestFileSinkSocket(t *testing.T) {
	path := filepath.Join(t.TempDir(), "sock")
	l, err := net.Listen("unix", path)
	if err != nil {
		t.Skipf("no unix sockets: %v", err)
	}
	defer l.Close()
	_, err = NewFileSink(t.Context(), path)
	if err == nil || !strings.Contains(err.Error(), "is a socket") {
		t.Errorf("socket: %v", err)
	}
}

// mknod makes a character device node with Linux's device numbers, or
// skips the test where that is not permitted.
func mknod(t *testing.T, path string, major, minor uint32) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("making device nodes needs root")
	}
	dev := int(major<<8 | minor)
	if err := syscall.Mknod(path, syscall.S_IFCHR|0o666, dev); err != nil {
		t.Skipf("mknod not permitted here: %v", err)
	}
}

// A node with the null device's numbers is not written at all; another
// device (full: every write fails with ENOSPC) is opened and written on
// Commit. Neither is replaced.
func TestFileSinkDevices(t *testing.T) {
	dir := t.TempDir()
	null, full := filepath.Join(dir, "null"), filepath.Join(dir, "full")
	mknod(t, null, 1, 3)
	mknod(t, full, 1, 7)
	s, err := NewFileSink(t.Context(), null)
	if err != nil {
		t.Fatal(err)
	}
	if s.how != discard {
		t.Errorf("null node: mode %d, want discard", s.how)
	}
	s.Close()
	err = commitBody(t, full, "body")
	if !errors.Is(err, errOutput) || !errors.Is(err, syscall.ENOSPC) {
		t.Errorf("write to the full device: %v, want an output error with ENOSPC", err)
	}
	for _, p := range []string{null, full} {
		st, err := os.Lstat(p)
		if err != nil || st.Mode()&fs.ModeCharDevice == 0 {
			t.Errorf("%s is no longer a character device: %v %v", p, st, err)
		}
	}
	wantNoTemp(t, dir)
}

func TestIsMountPoint(t *testing.T) {
	if _, err := os.Stat("/proc/self/mountinfo"); err != nil {
		t.Skip("no /proc/self/mountinfo")
	}
	if !isMountPoint("/") || !isMountPoint("/proc") {
		t.Error("/ or /proc not seen as mount points")
	}
	f := filepath.Join(t.TempDir(), "f")
	os.WriteFile(f, nil, 0o644)
	if isMountPoint(f) {
		t.Errorf("%s seen as a mount point", f)
	}
}
