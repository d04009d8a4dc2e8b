//go:build linux

package e2e

import (
	"bytes"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
)

// These tests cover the buffered body past the in-memory budget: the spill
// file in $TMPDIR, the copy into stdout, and -o's temporary file.

// spillBody is larger than the 4 MiB in-memory budget and random, so a
// misplaced or repeated chunk cannot go unnoticed. TestMain makes it
// (makeSpillBody): a package-level initializer would run in every refetch
// child too.
var spillBody []byte

func init() { fixtures = append(fixtures, func() { spillBody = makeSpillBody() }) }

func makeSpillBody() []byte {
	b := make([]byte, 12<<20+4321)
	r := rand.New(rand.NewPCG(12, 34))
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}

// spillServer serves spillBody, with Content-Length or (chunked) without.
func spillServer(t *testing.T, withLength bool) *httptest.Server {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if withLength {
			w.Header().Set("Content-Length", strconv.Itoa(len(spillBody)))
		}
		for off := 0; off < len(spillBody); off += 1 << 20 {
			if _, err := w.Write(spillBody[off:min(off+1<<20, len(spillBody))]); err != nil {
				return
			}
			if !withLength {
				w.(http.Flusher).Flush()
			}
		}
	}))
	t.Cleanup(srv.Close)
	return srv
}

// A body past the memory budget reaches stdout (a pipe) byte for byte,
// with and without Content-Length; the last bytes are read only after
// refetch has exited and its spill file is gone, so they cannot depend on
// it. Nothing is left in $TMPDIR.
func TestE2ESpilledBodyWholeOnStdout(t *testing.T) {
	t.Parallel()
	for _, withLength := range []bool{true, false} {
		srv := spillServer(t, withLength)
		e := newEnv(t)
		tmp := filepath.Join(e.dir, "tmp")
		os.Mkdir(tmp, 0o700)
		cmd := e.with("TMPDIR=" + tmp).command(args(srv.URL)...)
		r, w, err := os.Pipe()
		if err != nil {
			t.Fatal(err)
		}
		var stderr bytes.Buffer
		cmd.Stdout, cmd.Stderr = w, &stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		w.Close()
		// Hold back less than a default pipe holds, so refetch can finish.
		const tail = 32 << 10
		head := make([]byte, len(spillBody)-tail)
		if _, err := io.ReadFull(r, head); err != nil {
			t.Fatalf("Content-Length %v: reading stdout: %v (stderr %s)", withLength, err, stderr.String())
		}
		if err := cmd.Wait(); err != nil {
			t.Fatalf("Content-Length %v: %v: %s", withLength, err, stderr.String())
		}
		rest, err := io.ReadAll(r)
		r.Close()
		if err != nil {
			t.Fatal(err)
		}
		if got := append(head, rest...); !bytes.Equal(got, spillBody) {
			t.Errorf("Content-Length %v: stdout has %d bytes, not the %d-byte body", withLength, len(got), len(spillBody))
		}
		if entries, _ := os.ReadDir(tmp); len(entries) != 0 {
			t.Errorf("Content-Length %v: left in $TMPDIR: %v", withLength, entries)
		}
	}
}

// The spill file has no name while refetch runs, so even a refetch killed
// with SIGKILL mid-download leaves nothing in $TMPDIR.
func TestE2ESpillFileUnnamedEvenWhenKilled(t *testing.T) {
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", strconv.Itoa(len(spillBody)))
		w.Write(spillBody[:8<<20])
		w.(http.Flusher).Flush()
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	defer srv.Close()
	defer close(release)
	e := newEnv(t)
	tmp := filepath.Join(e.dir, "tmp")
	os.Mkdir(tmp, 0o700)
	cmd := e.with("TMPDIR=" + tmp).command(args(srv.URL)...)
	cmd.Stdout = io.Discard // a pipe: the body is buffered
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Wait()
	fdDir := "/proc/" + strconv.Itoa(cmd.Process.Pid) + "/fd"
	var spill string
	waitFor(t, "the spill file to be open", func() bool {
		entries, _ := os.ReadDir(fdDir)
		for _, d := range entries {
			if link, err := os.Readlink(filepath.Join(fdDir, d.Name())); err == nil && strings.HasPrefix(link, tmp+"/") {
				spill = link
				return true
			}
		}
		return false
	})
	if !strings.HasSuffix(spill, "(deleted)") {
		t.Errorf("spill file %q has a name", spill)
	}
	if entries, _ := os.ReadDir(tmp); len(entries) != 0 {
		t.Errorf("names in $TMPDIR while downloading: %v", entries)
	}
	cmd.Process.Signal(syscall.SIGKILL)
	cmd.Wait()
	if entries, _ := os.ReadDir(tmp); len(entries) != 0 {
		t.Errorf("left in $TMPDIR after SIGKILL: %v", entries)
	}
}

// cutLargeServer declares spillBody's length and, on the first cut
// requests, sends 8 MiB of it (past the memory budget) and hangs up; then
// it serves the whole body.
func cutLargeServer(t *testing.T, c *counter, cut int64) *httptest.Server {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", strconv.Itoa(len(spillBody)))
		if c.next() <= cut {
			w.Write(spillBody[:8<<20])
			return // the server closes the connection: the body is cut
		}
		w.Write(spillBody)
	}))
	t.Cleanup(srv.Close)
	return srv
}

// A large body cut short never reaches stdout, and after a retry stdout
// holds the whole body once.
func TestE2ELargeCutBodyNeverReachesStdout(t *testing.T) {
	t.Parallel()
	var c counter
	srv := cutLargeServer(t, &c, 1)
	r := newEnv(t).run(args("-n", "1", srv.URL)...)
	r.wantCode(t, 4)
	if r.stdout != "" {
		t.Errorf("a cut body reached stdout: %d bytes", len(r.stdout))
	}
	var c2 counter
	srv = cutLargeServer(t, &c2, 1)
	r = newEnv(t).run(args("-n", "2", srv.URL)...)
	r.wantCode(t, 0)
	if r.stdout != string(spillBody) || c2.get() != 2 {
		t.Errorf("stdout has %d bytes, want the %d-byte body once; %d requests", len(r.stdout), len(spillBody), c2.get())
	}
}

// -o of a body larger than the writeback interval, after an attempt cut
// past it: FILE holds exactly the body, and no temporary file is left.
func TestE2EOutputLargeAfterCut(t *testing.T) {
	t.Parallel()
	var c counter
	srv := cutLargeServer(t, &c, 1)
	e := newEnv(t)
	out := filepath.Join(e.dir, "out.bin")
	r := e.run(args("-n", "2", "-o", out, srv.URL)...)
	r.wantCode(t, 0)
	data, _ := os.ReadFile(out)
	if !bytes.Equal(data, spillBody) {
		t.Errorf("file has %d bytes, not the %d-byte body", len(data), len(spillBody))
	}
	assertNoTempFiles(t, e.dir)
}

// A reader that leaves early ends refetch the way it ends cat: by SIGPIPE,
// with nothing on stderr, also for a body copied out of the spill file.
func TestE2ESpilledBodyReaderGone(t *testing.T) {
	t.Parallel()
	srv := spillServer(t, true)
	e := newEnv(t)
	status := filepath.Join(e.dir, "status")
	cmd := exec.Command("sh", "-c", `("$0" fetch "$@"; echo $? > "$STATUS") | head -c1 >/dev/null`, binary, srv.URL)
	cmd.Env = append(e.vars, "STATUS="+status)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil || stderr.Len() != 0 {
		t.Errorf("err %v, stderr %q", err, stderr.String())
	}
	// 141: 128 + SIGPIPE, as the shell reports a process the signal ended.
	if got, _ := os.ReadFile(status); strings.TrimSpace(string(got)) != "141" {
		t.Errorf("refetch's exit status %q, want 141 (SIGPIPE)", got)
	}
}

// A sandbox may forbid splice(2) (a seccomp filter failing it with ENOSYS
// or EPERM). A large body, which refetch would splice from the socket to
// its spill file or -o's temporary file, then goes the ordinary way: whole,
// exit 0, and no failure blamed on the server (which would retry, and open
// the breaker for the host).
func TestE2ESpliceForbidden(t *testing.T) {
	t.Parallel()
	if runtime.GOARCH != "amd64" && runtime.GOARCH != "arm64" {
		t.Skip("testdata/nosplice knows the seccomp arch of amd64 and arm64 only")
	}
	nosplice := filepath.Join(t.TempDir(), "nosplice")
	if out, err := exec.Command("go", "build", "-o", nosplice, "./testdata/nosplice").CombinedOutput(); err != nil {
		t.Fatalf("building testdata/nosplice: %v\n%s", err, out)
	}
	srv := spillServer(t, true)
	for _, errno := range []string{"38", "1"} { // ENOSYS, EPERM
		e := newEnv(t)
		out := filepath.Join(e.dir, "out.bin")
		for _, extra := range [][]string{nil, {"-o", out}} {
			cmd := exec.Command(nosplice, append([]string{"-errno", errno, binary}, args(append(extra, srv.URL)...)...)...)
			cmd.Env, cmd.Dir = e.vars, e.dir
			var stdout, stderr bytes.Buffer
			cmd.Stdout, cmd.Stderr = &stdout, &stderr
			if err := cmd.Run(); err != nil {
				t.Fatalf("errno %s, %v: %v: %s", errno, extra, err, stderr.String())
			}
			got := stdout.Bytes()
			if extra != nil {
				got, _ = os.ReadFile(out)
			}
			if !bytes.Equal(got, spillBody) {
				t.Errorf("errno %s, %v: %d bytes served, not the %d-byte body", errno, extra, len(got), len(spillBody))
			}
		}
	}
}

// TestE2ESpillWithoutTMPDIR: a TMPDIR that is missing (a CI job's leftover
// setting) does not fail a large body after its download: the spill file
// goes to /tmp instead.
func TestE2ESpillWithoutTMPDIR(t *testing.T) {
	t.Parallel()
	srv := spillServer(t, true)
	e := newEnv(t)
	for _, extra := range [][]string{nil, {"-N"}} {
		r := e.with("TMPDIR=" + filepath.Join(e.dir, "missing")).run(args(append(extra, srv.URL)...)...)
		r.wantCode(t, 0)
		if r.stdout != string(spillBody) {
			t.Errorf("%v: %d bytes on stdout, not the %d-byte body", extra, len(r.stdout), len(spillBody))
		}
	}
}
