package fetch

import (
	"bytes"
	"errors"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"
)

// randomBody is n bytes that no bug of offsets or lengths could reproduce
// by accident.
func randomBody(n int) []byte {
	b := make([]byte, n)
	r := rand.New(rand.NewPCG(uint64(n), 7))
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}

// spillLink returns the path /proc/self/fd shows for the sink's spill file.
func spillLink(t *testing.T, s *BufferSink) string {
	t.Helper()
	if s.file == nil {
		t.Fatal("the body did not spill to a file")
	}
	link, err := os.Readlink("/proc/self/fd/" + strconv.Itoa(int(s.file.Fd())))
	if err != nil {
		t.Fatal(err)
	}
	return link
}

// The spill file never has a name in $TMPDIR: not while the body is
// written, not after Commit, not after Close; and the body comes out whole.
func TestSpillFileHasNoName(t *testing.T) {
	tmp := t.TempDir()
	t.Setenv("TMPDIR", tmp)
	body := randomBody(SpillThreshold + 12345)
	for _, expect := range []int64{-1, int64(len(body))} {
		var out bytes.Buffer
		s := &BufferSink{Dst: &out}
		w, err := s.Begin()
		if err != nil {
			t.Fatal(err)
		}
		s.Expect(expect)
		if _, err := w.Write(body[:SpillThreshold/2]); err != nil {
			t.Fatal(err)
		}
		if _, err := w.Write(body[SpillThreshold/2:]); err != nil {
			t.Fatal(err)
		}
		link := spillLink(t, s)
		if !strings.HasPrefix(link, tmp+"/") || !strings.HasSuffix(link, "(deleted)") {
			t.Errorf("Expect(%d): spill file is %q, want an unnamed file in %s", expect, link, tmp)
		}
		if entries, _ := os.ReadDir(tmp); len(entries) != 0 {
			t.Errorf("Expect(%d): names in $TMPDIR while spilling: %v", expect, entries)
		}
		if err := s.Commit(); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(out.Bytes(), body) {
			t.Errorf("Expect(%d): committed %d bytes differ from the %d-byte body", expect, out.Len(), len(body))
		}
		if err := s.Close(); err != nil {
			t.Error(err)
		}
		if entries, _ := os.ReadDir(tmp); len(entries) != 0 {
			t.Errorf("Expect(%d): names in $TMPDIR after Close: %v", expect, entries)
		}
	}
}

// A body announced as larger than the memory budget goes to the file from
// its first byte; one announced small, or not announced, stays in memory
// until it outgrows the budget.
func TestBufferSinkExpect(t *testing.T) {
	t.Setenv("TMPDIR", t.TempDir())
	for _, c := range []struct {
		expect int64
		toFile bool
	}{{-1, false}, {100, false}, {SpillThreshold, false}, {SpillThreshold + 1, true}} {
		s := &BufferSink{}
		w, _ := s.Begin()
		s.Expect(c.expect)
		io.WriteString(w, "first bytes")
		if got := s.file != nil; got != c.toFile {
			t.Errorf("Expect(%d): in a file = %v, want %v", c.expect, got, c.toFile)
		}
		// The hint is no promise: a body shorter than announced is whole.
		r, err := s.Reader()
		if err != nil {
			t.Fatal(err)
		}
		if got, _ := io.ReadAll(r); string(got) != "first bytes" {
			t.Errorf("Expect(%d): body %q", c.expect, got)
		}
		s.Close()
	}
}

// Into a pipe the spilled body goes by sendfile after the pipe is grown,
// and arrives whole; the pipe's pages stay readable after the spill file is
// closed (the reader here reads only after Close).
func TestCopySpillIntoPipe(t *testing.T) {
	t.Setenv("TMPDIR", t.TempDir())
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	defer w.Close()

	// Read after Close: a spilled body small enough to fit in the pipe.
	small := randomBody(40 << 10)
	s := &BufferSink{Dst: w}
	bw, _ := s.Begin()
	s.Expect(SpillThreshold + 1) // spill from the first byte
	bw.Write(small)
	if err := s.Commit(); err != nil {
		t.Fatal(err)
	}
	s.Close()
	got := make([]byte, len(small))
	if _, err := io.ReadFull(r, got); err != nil || !bytes.Equal(got, small) {
		t.Fatalf("read after Close: %v, equal %v", err, bytes.Equal(got, small))
	}

	// A large body while the reader reads.
	body := randomBody(SpillThreshold + 3<<20 + 77)
	done := make(chan []byte)
	go func() {
		b, _ := io.ReadAll(io.LimitReader(r, int64(len(body))))
		done <- b
	}()
	s = &BufferSink{Dst: w}
	bw, _ = s.Begin()
	bw.Write(body[:SpillThreshold])
	bw.Write(body[SpillThreshold:])
	if err := s.Commit(); err != nil {
		t.Fatal(err)
	}
	s.Close()
	if got := <-done; !bytes.Equal(got, body) {
		t.Fatalf("read %d bytes, not the %d-byte body", len(got), len(body))
	}
	sz, err := unix.FcntlInt(w.Fd(), unix.F_GETPIPE_SZ, 0)
	if err != nil || sz < pipeSize {
		t.Errorf("pipe size %d (%v), want grown to %d", sz, err, pipeSize)
	}
}

// A pipe whose reader is gone is an output error, not a hang or a silent
// success.
func TestCopySpillReaderGone(t *testing.T) {
	t.Setenv("TMPDIR", t.TempDir())
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	r.Close()
	s := &BufferSink{Dst: w}
	defer s.Close()
	bw, _ := s.Begin()
	bw.Write(randomBody(SpillThreshold + 1))
	err = s.Commit()
	if !errors.Is(err, ErrOutput) || !strings.Contains(err.Error(), syscall.EPIPE.Error()) {
		t.Errorf("Commit into a pipe without reader: %v, want an output error saying %q", err, syscall.EPIPE.Error())
	}
}

// Into a regular file (stdout redirected to a file) the body is whole
// too: that path is io.Copy's copy_file_range.
func TestCopySpillIntoFile(t *testing.T) {
	tmp := t.TempDir()
	t.Setenv("TMPDIR", tmp)
	dst, err := os.Create(filepath.Join(t.TempDir(), "out"))
	if err != nil {
		t.Fatal(err)
	}
	defer dst.Close()
	body := randomBody(SpillThreshold + 4099)
	s := &BufferSink{Dst: dst}
	defer s.Close()
	bw, _ := s.Begin()
	bw.Write(body)
	if err := s.Commit(); err != nil {
		t.Fatal(err)
	}
	got, _ := os.ReadFile(dst.Name())
	if !bytes.Equal(got, body) {
		t.Errorf("file has %d bytes, not the %d-byte body", len(got), len(body))
	}
}

// -o with writeback started along the way: a retry that starts over after
// more than one writeback interval leaves exactly the last body.
func TestFileSinkWritebackRetry(t *testing.T) {
	path := filepath.Join(t.TempDir(), "out")
	s, err := NewFileSink(t.Context(), path)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	first := randomBody(2*writebackEvery + 5)
	w, _ := s.Begin()
	for off := 0; off < len(first); off += 256 << 10 {
		w.Write(first[off:min(off+256<<10, len(first))])
	}
	body := randomBody(writebackEvery + 3)
	w, _ = s.Begin()
	for off := 0; off < len(body); off += 100 << 10 {
		w.Write(body[off:min(off+100<<10, len(body))])
	}
	if err := s.Commit(); err != nil {
		t.Fatal(err)
	}
	got, _ := os.ReadFile(path)
	if !bytes.Equal(got, body) {
		t.Errorf("file has %d bytes, want the retry's %d", len(got), len(body))
	}
}
