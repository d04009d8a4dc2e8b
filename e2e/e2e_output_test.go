//go:build linux

package e2e

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// These tests cover where -o writes when FILE is not a plain file in a
// writable directory: devices, FIFOs, sockets, symlinks, the process's own
// descriptors, bind-mounted files and directories that may not be written.
// They make their own device nodes, FIFOs and mounts (in a private mount
// namespace) and never touch the machine's /dev.

// cutServer declares 1000 bytes and sends 500 on the first cut requests,
// then serves outputBody.
func cutServer(t *testing.T, c *counter, cut int64) *httptest.Server {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if c.next() <= cut {
			w.Header().Set("Content-Length", "1000")
			w.Write(bytes.Repeat([]byte("x"), 500))
			return // the server closes the connection: the body is cut
		}
		w.Write(outputBody)
	}))
	t.Cleanup(srv.Close)
	return srv
}

// runWrapped runs refetch under a wrapper command (setpriv, unshare…):
// the wrapper's argv comes first, then the binary and its arguments.
func (e *env) runWrapped(wrapper []string, a ...string) result {
	e.t.Helper()
	cmd := e.command(a...)
	path, err := exec.LookPath(wrapper[0])
	if err != nil {
		e.t.Fatal(err)
	}
	cmd.Path = path
	cmd.Args = append(append(append([]string{}, wrapper...), binary), a...)
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err = cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		e.t.Fatalf("running refetch: %v", err)
	}
	return result{stdout: out.String(), stderr: errOut.String(), code: code}
}

func needRoot(t *testing.T, why string) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skipf("needs root: %s", why)
	}
}

// nobody is the wrapper that runs refetch as uid/gid 65534 with no
// supplementary groups. It makes the binary and dirs reachable to that
// uid, and skips the test where setpriv is missing or refused.
func nobody(t *testing.T, dirs ...string) []string {
	t.Helper()
	needRoot(t, "dropping to another uid")
	w := []string{"setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"}
	if out, err := exec.Command(w[0], append(w[1:], "true")...).CombinedOutput(); err != nil {
		t.Skipf("setpriv not usable here: %v %s", err, out)
	}
	// The binary's dir and each dir's parent (t.TempDir makes them 0700).
	for _, d := range append([]string{filepath.Dir(binary)}, dirs...) {
		for _, p := range []string{filepath.Dir(d), d} {
			st, err := os.Stat(p)
			if err != nil {
				t.Fatal(err)
			}
			if st.Mode().Perm()&0o005 != 0o005 {
				if err := os.Chmod(p, st.Mode().Perm()|0o005); err != nil {
					t.Fatal(err)
				}
			}
		}
	}
	return w
}

// mknodChar makes a character device node with mode 0666 or skips.
func mknodChar(t *testing.T, path string, major, minor uint32) {
	t.Helper()
	needRoot(t, "making device nodes")
	if err := syscall.Mknod(path, syscall.S_IFCHR|0o666, int(major<<8|minor)); err != nil {
		t.Skipf("mknod not permitted here: %v", err)
	}
	os.Chmod(path, 0o666) // past the umask
}

// node is a file's identity: type, inode, device numbers and owner.
type node struct {
	mode fs.FileMode
	ino  uint64
	rdev uint64
	uid  uint32
}

func lstatNode(t *testing.T, path string) node {
	t.Helper()
	st, err := os.Lstat(path)
	if err != nil {
		t.Fatal(err)
	}
	sys := st.Sys().(*syscall.Stat_t)
	return node{mode: st.Mode().Type(), ino: sys.Ino, rdev: sys.Rdev, uid: sys.Uid}
}

// permOf returns the permission bits of the file at path (links followed).
func permOf(t *testing.T, path string) fs.FileMode {
	t.Helper()
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return st.Mode().Perm()
}

func TestE2EOutputDeviceNodes(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	null, full := filepath.Join(e.dir, "null"), filepath.Join(e.dir, "full")
	mknodChar(t, null, 1, 3)
	mknodChar(t, full, 1, 7)
	var c counter
	srv := bodyServer(t, &c)
	nullBefore, fullBefore := lstatNode(t, null), lstatNode(t, full)

	r := e.run(args("-o", null, srv.URL)...)
	r.wantCode(t, 0)
	if r.stdout != "" {
		t.Errorf("stdout %d bytes", len(r.stdout))
	}
	// full: the write reaches the device, which refuses it: a local write
	// failure, exit 1, after which the node is still the device.
	r = e.run(args("-o", full, srv.URL)...)
	r.wantCode(t, 1)
	if !strings.Contains(r.stderr, "no space left on device") {
		t.Errorf("stderr: %s", r.stderr)
	}
	if c.get() != 2 {
		t.Errorf("requests = %d, want 2", c.get())
	}
	if got := lstatNode(t, null); got != nullBefore || got.mode != fs.ModeDevice|fs.ModeCharDevice {
		t.Errorf("null node %+v after the run, was %+v", got, nullBefore)
	}
	if got := lstatNode(t, full); got != fullBefore {
		t.Errorf("full node %+v after the run, was %+v", got, fullBefore)
	}
	assertNoTempFiles(t, e.dir)
}

// The health-check idiom `-o /dev/null` as a normal user, on a node made
// for the test: it works, and a node the user may not write is exit 2
// before any request.
func TestE2EOutputNullNodeAsNonRoot(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	null, closed := filepath.Join(e.dir, "null"), filepath.Join(e.dir, "null600")
	mknodChar(t, null, 1, 3)
	mknodChar(t, closed, 1, 3)
	os.Chmod(closed, 0o600)
	as := nobody(t, e.dir)
	var c counter
	srv := bodyServer(t, &c)
	before := lstatNode(t, null)
	r := e.runWrapped(as, args("--breaker-failures", "0", "-o", null, srv.URL)...)
	r.wantCode(t, 0)
	if got := lstatNode(t, null); got != before {
		t.Errorf("node %+v after the run, was %+v", got, before)
	}
	r = e.runWrapped(as, args("--breaker-failures", "0", "-o", closed, srv.URL)...)
	r.wantCode(t, 2)
	if c.get() != 1 || !strings.Contains(r.stderr, "not writable: permission denied") {
		t.Errorf("requests = %d (want 1), stderr: %s", c.get(), r.stderr)
	}
}

// openFIFO makes a FIFO and opens it O_RDWR: that open never waits for a
// writer, and the FIFO never reports end of file, so reads are bounded by
// a deadline instead.
func openFIFO(t *testing.T, path string) *os.File {
	t.Helper()
	if err := syscall.Mkfifo(path, 0o644); err != nil {
		t.Fatal(err)
	}
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return f
}

// pendingBytes returns what f holds now, without waiting.
func pendingBytes(t *testing.T, f *os.File) []byte {
	t.Helper()
	rc, err := f.SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 1<<20)
	var n int
	var rerr error
	rc.Read(func(fd uintptr) bool {
		n, rerr = syscall.Read(int(fd), buf)
		return true
	})
	if errors.Is(rerr, syscall.EAGAIN) || n <= 0 {
		return nil
	}
	return buf[:n]
}

// A FIFO gets exactly the body of the attempt that succeeded (the first
// was cut short), read concurrently since it is larger than a pipe holds;
// the FIFO stays a FIFO.
func TestE2EOutputFIFO(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	path := filepath.Join(e.dir, "fifo")
	reader := openFIFO(t, path)
	before := lstatNode(t, path)
	var c counter
	srv := cutServer(t, &c, 1)

	got := make(chan []byte, 1)
	go func() {
		buf := make([]byte, len(outputBody))
		n, _ := io.ReadFull(reader, buf)
		got <- buf[:n]
	}()
	r := e.run(args("-n", "2", "-o", path, srv.URL)...)
	// refetch has exited: what it wrote is read or still in the FIFO. End
	// the reader (a short body would leave it waiting) and take the rest.
	reader.SetReadDeadline(time.Now())
	data := <-got
	reader.SetReadDeadline(time.Time{})
	for rest := pendingBytes(t, reader); rest != nil; rest = pendingBytes(t, reader) {
		data = append(data, rest...)
	}
	r.wantCode(t, 0)
	if !bytes.Equal(data, outputBody) {
		t.Errorf("FIFO got %d bytes, want the %d of the second body", len(data), len(outputBody))
	}
	if c.get() != 2 {
		t.Errorf("requests = %d, want 2", c.get())
	}
	if lstatNode(t, path) != before {
		t.Error("the FIFO was replaced")
	}
	assertNoTempFiles(t, e.dir)
}

// A failed fetch writes nothing to a FIFO: not the part of a cut body, not
// an error page.
func TestE2EOutputFIFOFailedFetchWritesNothing(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	path := filepath.Join(e.dir, "fifo")
	reader := openFIFO(t, path)
	var c counter
	cut := cutServer(t, &c, 99)
	r := e.run(args("-n", "2", "-o", path, cut.URL)...)
	r.wantCode(t, 4)
	down := downServer(t, nil)
	r = e.run(args("-n", "1", "-o", path, down.URL)...)
	r.wantCode(t, 4)
	if got := pendingBytes(t, reader); got != nil {
		t.Errorf("a failed fetch wrote %d bytes to the FIFO: %q", len(got), got[:min(40, len(got))])
	}
	if lstatNode(t, path).mode&fs.ModeNamedPipe == 0 {
		t.Error("the FIFO was replaced")
	}
}

// Waiting for a FIFO's reader (the body is complete, nobody reads) ends
// at SIGINT/SIGTERM with 130/143, like every other wait.
func TestE2EOutputFIFOWaitInterrupted(t *testing.T) {
	t.Parallel()
	if !wchanVisible(t) {
		t.Skip("/proc/PID/wchan does not show where a process waits")
	}
	var c counter
	srv := bodyServer(t, &c)
	for _, tc := range []struct {
		sig  syscall.Signal
		code int
	}{{syscall.SIGINT, 130}, {syscall.SIGTERM, 143}} {
		t.Run(tc.sig.String(), func(t *testing.T) {
			e := newEnv(t)
			path := filepath.Join(e.dir, "fifo")
			if err := syscall.Mkfifo(path, 0o644); err != nil {
				t.Fatal(err)
			}
			cmd := e.command(args("-o", path, srv.URL)...)
			stderr := newLockedBuffer()
			cmd.Stderr = stderr
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			tasks := fmt.Sprintf("/proc/%d/task", cmd.Process.Pid)
			waitFor(t, "refetch to wait in open(2) for the FIFO's reader", func() bool {
				ids, _ := os.ReadDir(tasks)
				for _, id := range ids {
					w, _ := os.ReadFile(filepath.Join(tasks, id.Name(), "wchan"))
					if string(w) == "wait_for_partner" {
						return true
					}
				}
				return false
			})
			cmd.Process.Signal(tc.sig)
			done := make(chan error, 1)
			go func() { done <- cmd.Wait() }()
			var err error
			select {
			case err = <-done:
			case <-time.After(time.Minute):
				cmd.Process.Kill()
				t.Fatal("refetch still waits for a reader after the signal")
			}
			code := 0
			if ee, ok := err.(*exec.ExitError); ok {
				code = ee.ExitCode()
			}
			if code != tc.code {
				t.Errorf("exit code = %d, want %d; stderr: %s", code, tc.code, stderr)
			}
			if lstatNode(t, path).mode&fs.ModeNamedPipe == 0 {
				t.Error("the FIFO was replaced")
			}
			assertNoTempFiles(t, e.dir)
		})
	}
}

// wchanVisible reports whether /proc/PID/wchan names where a blocked
// process waits: it starts cat on a pipe nobody writes and looks.
func wchanVisible(t *testing.T) bool {
	t.Helper()
	cat := exec.Command("cat")
	in, err := cat.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cat.Start(); err != nil {
		t.Skipf("no cat: %v", err)
	}
	defer func() { in.Close(); cat.Wait() }()
	wchan := fmt.Sprintf("/proc/%d/wchan", cat.Process.Pid)
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
		if w, err := os.ReadFile(wchan); err == nil && len(w) > 0 && string(w) != "0" {
			return true
		}
	}
	return false
}

// A unix socket is not written: exit 2 before any request.
func TestE2EOutputSocketIsUsageError(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	path := filepath.Join(e.dir, "sock")
	l, err := net.Listen("unix", path)
	if err != nil {
		t.Skipf("no unix sockets: %v", err)
	}
	defer l.Close()
	var c counter
	srv := bodyServer(t, &c)
	r := e.run(args("-o", path, srv.URL)...)
	r.wantCode(t, 2)
	if c.get() != 0 || !strings.Contains(r.stderr, "is a socket") {
		t.Errorf("requests = %d, stderr: %s", c.get(), r.stderr)
	}
	if lstatNode(t, path).mode&fs.ModeSocket == 0 {
		t.Error("the socket was replaced")
	}
}

func TestE2EOutputDirectoryIsUsageError(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	var c counter
	srv := bodyServer(t, &c)
	os.Mkdir(filepath.Join(e.dir, "sub"), 0o755)
	os.Symlink("sub", filepath.Join(e.dir, "sublink"))
	for _, p := range []string{e.dir, e.dir + "/", filepath.Join(e.dir, "sublink")} {
		r := e.run(args("-o", p, srv.URL)...)
		r.wantCode(t, 2)
		if !strings.Contains(r.stderr, "is a directory") {
			t.Errorf("-o %s: %s", p, r.stderr)
		}
	}
	if c.get() != 0 {
		t.Errorf("%d requests sent before the usage error", c.get())
	}
}

// A symlink chain into another directory: the final target is replaced
// atomically (a new inode, its mode kept), the links stay links, and a
// failed fetch leaves the target as it was.
func TestE2EOutputSymlink(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	other := t.TempDir()
	target := filepath.Join(other, "data.bin")
	os.WriteFile(target, []byte("old"), 0o640)
	link, hop := filepath.Join(e.dir, "out"), filepath.Join(e.dir, "hop")
	os.Symlink(target, hop)
	os.Symlink("hop", link)
	var c counter
	cut := cutServer(t, &c, 99)
	r := e.run(args("-n", "2", "-o", link, cut.URL)...)
	r.wantCode(t, 4)
	if data, _ := os.ReadFile(target); string(data) != "old" {
		t.Errorf("a failed fetch changed the target: %q", data[:min(20, len(data))])
	}
	assertNoTempFiles(t, e.dir)
	assertNoTempFiles(t, other)

	before := lstatNode(t, target)
	srv := bodyServer(t, &c)
	r = e.run(args("-o", link, srv.URL)...)
	r.wantCode(t, 0)
	if data, _ := os.ReadFile(target); !bytes.Equal(data, outputBody) {
		t.Errorf("target has %d bytes, want the body's %d", len(data), len(outputBody))
	}
	if perm := permOf(t, target); perm != 0o640 {
		t.Errorf("target mode = %v, want 0640 kept", perm)
	}
	if lstatNode(t, target).ino == before.ino {
		t.Error("the target was written in place, not replaced by a rename")
	}
	for l, want := range map[string]string{link: "hop", hop: target} {
		if got, err := os.Readlink(l); err != nil || got != want {
			t.Errorf("%s: readlink = %q, %v; want a symlink to %q", l, got, err, want)
		}
	}
	assertNoTempFiles(t, e.dir)
	assertNoTempFiles(t, other)
}

// A dangling symlink: its target is created (0644) and the link stays; a
// link into a missing directory is exit 2 before any request.
func TestE2EOutputDanglingSymlink(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	link := filepath.Join(e.dir, "out")
	os.Mkdir(filepath.Join(e.dir, "sub"), 0o755)
	os.Symlink("sub/new.bin", link)
	var c counter
	srv := bodyServer(t, &c)
	r := e.run(args("-o", link, srv.URL)...)
	r.wantCode(t, 0)
	created := filepath.Join(e.dir, "sub", "new.bin")
	if data, _ := os.ReadFile(created); !bytes.Equal(data, outputBody) {
		t.Errorf("created target has %d bytes", len(data))
	}
	if perm := permOf(t, created); perm != 0o644 {
		t.Errorf("created target mode = %v, want 0644", perm)
	}
	if got, err := os.Readlink(link); err != nil || got != "sub/new.bin" {
		t.Errorf("link = %q, %v", got, err)
	}

	bad := filepath.Join(e.dir, "bad")
	os.Symlink("nodir/x", bad)
	r = e.run(args("-o", bad, srv.URL)...)
	r.wantCode(t, 2)
	if c.get() != 1 || !strings.Contains(r.stderr, "cannot write in") {
		t.Errorf("requests = %d (want 1), stderr: %s", c.get(), r.stderr)
	}
}

// The process's own descriptors are written through, as stdout is: an
// O_APPEND stdout keeps its content (a reopened path would start at offset
// 0, a rename would replace the file), and an inherited pipe gets the body.
// (The e2e tests name /proc/self/fd/N rather than /dev/stdout so that a
// broken build cannot replace anything in the machine's /dev; /dev/stdout
// maps to descriptor 1 the same way, see fetch's unit tests.)
func TestE2EOutputOwnDescriptor(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	var c counter
	srv := bodyServer(t, &c)
	outPath := filepath.Join(e.dir, "stdout.log")
	os.WriteFile(outPath, []byte("earlier line\n"), 0o644)
	before := lstatNode(t, outPath)
	stdout, err := os.OpenFile(outPath, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	cmd := e.command(args("-o", "/proc/self/fd/1", srv.URL)...)
	var errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = stdout, &errOut
	err = cmd.Run()
	stdout.Close()
	if err != nil {
		t.Fatalf("%v: %s", err, errOut.String())
	}
	data, _ := os.ReadFile(outPath)
	if !bytes.Equal(data, append([]byte("earlier line\n"), outputBody...)) {
		t.Errorf("stdout file has %d bytes, want the earlier line and the body appended", len(data))
	}
	if lstatNode(t, outPath) != before {
		t.Error("the stdout file was replaced")
	}

	pr, pw, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer pr.Close()
	cmd = e.command(args("-o", "/proc/self/fd/3", srv.URL)...)
	cmd.ExtraFiles = []*os.File{pw} // descriptor 3 in the child
	cmd.Stderr = &errOut
	got := make(chan []byte, 1)
	go func() { b, _ := io.ReadAll(pr); got <- b }()
	err = cmd.Run()
	pw.Close()
	if err != nil {
		t.Fatalf("%v: %s", err, errOut.String())
	}
	if b := <-got; !bytes.Equal(b, outputBody) {
		t.Errorf("descriptor 3 got %d bytes, want %d", len(b), len(outputBody))
	}

	r := e.run(args("-o", "/proc/self/fd/9", srv.URL)...)
	r.wantCode(t, 2)
	if c.get() != 2 || !strings.Contains(r.stderr, "file descriptor 9 is not open") {
		t.Errorf("requests = %d (want 2), stderr: %s", c.get(), r.stderr)
	}
}

// unshareWrapper runs script in a private mount namespace, with the mount
// source and point as $1 and $2, then refetch; it skips the test where
// that is not permitted.
func unshareWrapper(t *testing.T, script, src, dst string) []string {
	t.Helper()
	needRoot(t, "bind mounts")
	if out, err := exec.Command("unshare", "-m", "true").CombinedOutput(); err != nil {
		t.Skipf("unshare -m not permitted here: %v %s", err, out)
	}
	return []string{"unshare", "-m", "sh", "-c", script + ` && shift 2 && exec "$@"`, "sh", src, dst}
}

// A bind-mounted file (a Docker or Kubernetes file volume) cannot be
// renamed over: the complete body is written in place, through the mount,
// and a failed fetch leaves it as it was. Mounted read-only: exit 2
// before any request.
func TestE2EOutputBindMountedFile(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	src, dst := filepath.Join(e.dir, "volume-src"), filepath.Join(e.dir, "mounted")
	os.WriteFile(src, []byte("old"), 0o600)
	os.WriteFile(dst, []byte("under the mount"), 0o644)
	bind := unshareWrapper(t, `mount --bind "$1" "$2"`, src, dst)
	srcBefore := lstatNode(t, src)

	var c counter
	cut := cutServer(t, &c, 99)
	r := e.runWrapped(bind, args("-n", "2", "-o", dst, cut.URL)...)
	r.wantCode(t, 4)
	if data, _ := os.ReadFile(src); string(data) != "old" {
		t.Errorf("a failed fetch changed the mounted file: %q", data[:min(20, len(data))])
	}

	srv := bodyServer(t, &c)
	r = e.runWrapped(bind, args("-o", dst, srv.URL)...)
	r.wantCode(t, 0)
	if data, _ := os.ReadFile(src); !bytes.Equal(data, outputBody) {
		t.Errorf("mounted file has %d bytes, want the body's %d\nstderr: %s", len(data), len(outputBody), r.stderr)
	}
	if got := lstatNode(t, src); got != srcBefore {
		t.Errorf("the mounted file was replaced: %+v, was %+v", got, srcBefore)
	}
	if perm := permOf(t, src); perm != 0o600 {
		t.Errorf("mode = %v, want 0600 kept", perm)
	}
	if data, _ := os.ReadFile(dst); string(data) != "under the mount" {
		t.Errorf("the file under the mount point changed: %q", data[:min(20, len(data))])
	}
	assertNoTempFiles(t, e.dir)

	n := c.get()
	ro := unshareWrapper(t, `mount --bind "$1" "$2" && mount -o remount,bind,ro "$2"`, src, dst)
	r = e.runWrapped(ro, args("-o", dst, srv.URL)...)
	r.wantCode(t, 2)
	if c.get() != n || !strings.Contains(r.stderr, "is a mount point") || !strings.Contains(r.stderr, "read-only file system") {
		t.Errorf("requests %d (want %d), stderr: %s", c.get(), n, r.stderr)
	}
}

// As a normal user, a writable file in a directory the user may not write
// in: written in place (same inode, mode kept); a failed fetch leaves it as
// it was; a new file there, or a file the user may not write, is exit 2
// before any request.
func TestE2EOutputReadOnlyDirAsNonRoot(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	dir := filepath.Join(e.dir, "ro")
	os.Mkdir(dir, 0o755) // root's: not writable by the user
	own, rootOwned := filepath.Join(dir, "own.bin"), filepath.Join(dir, "root.bin")
	os.WriteFile(own, []byte("old"), 0o640)
	os.WriteFile(rootOwned, []byte("root's"), 0o644)
	if err := os.Chown(own, 65534, 65534); err != nil {
		t.Fatal(err)
	}
	as := nobody(t, e.dir, dir)
	before := lstatNode(t, own)
	quiet := []string{"--breaker-failures", "0"}

	var c counter
	cut := cutServer(t, &c, 99)
	r := e.runWrapped(as, args(append(quiet, "-n", "2", "-o", own, cut.URL)...)...)
	r.wantCode(t, 4)
	if data, _ := os.ReadFile(own); string(data) != "old" {
		t.Errorf("a failed fetch changed the file: %q", data[:min(20, len(data))])
	}

	srv := bodyServer(t, &c)
	r = e.runWrapped(as, args(append(quiet, "-o", own, srv.URL)...)...)
	r.wantCode(t, 0)
	if data, _ := os.ReadFile(own); !bytes.Equal(data, outputBody) {
		t.Errorf("file has %d bytes, want %d\nstderr: %s", len(data), len(outputBody), r.stderr)
	}
	if got := lstatNode(t, own); got != before {
		t.Error("the file was replaced, not written in place")
	}
	if perm := permOf(t, own); perm != 0o640 {
		t.Errorf("mode = %v, want 0640 kept", perm)
	}

	n := c.get()
	for _, p := range []string{filepath.Join(dir, "new.bin"), rootOwned} {
		r = e.runWrapped(as, args(append(quiet, "-o", p, srv.URL)...)...)
		r.wantCode(t, 2)
		if !strings.Contains(r.stderr, "cannot write in "+dir) {
			t.Errorf("-o %s: %s", p, r.stderr)
		}
	}
	if c.get() != n {
		t.Errorf("%d requests sent before the usage errors", c.get()-n)
	}
	if data, _ := os.ReadFile(rootOwned); string(data) != "root's" {
		t.Errorf("root's file changed: %q", data)
	}
	assertNoTempFiles(t, dir)
}

// In a sticky directory (like /tmp) the temp file can be made but the
// rename over another user's file is refused (EPERM) after the download:
// the finished body is then written in place, never lost.
func TestE2EOutputRenameRefusedFallsBackInPlace(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	dir := filepath.Join(e.dir, "sticky")
	os.Mkdir(dir, 0o755)
	if err := os.Chmod(dir, os.ModeSticky|0o777); err != nil {
		t.Fatal(err)
	}
	shared := filepath.Join(dir, "shared.bin")
	os.WriteFile(shared, []byte("old"), 0o666)
	os.Chmod(shared, 0o666)
	as := nobody(t, e.dir, dir)
	before := lstatNode(t, shared)
	var c counter
	srv := bodyServer(t, &c)
	r := e.runWrapped(as, args("--breaker-failures", "0", "-o", shared, srv.URL)...)
	r.wantCode(t, 0)
	if data, _ := os.ReadFile(shared); !bytes.Equal(data, outputBody) {
		t.Errorf("file has %d bytes, want %d\nstderr: %s", len(data), len(outputBody), r.stderr)
	}
	if got := lstatNode(t, shared); got != before || got.uid != 0 {
		t.Errorf("the file was replaced, not written in place: %+v, was %+v", got, before)
	}
	assertNoTempFiles(t, dir)
}

// TestE2ENewFilesFollowTheUmask: a new -o file, single or in a batch,
// gets 0666 less the umask, as the shell's, curl's and wget's do (a user
// with umask 077 gets private downloads); a file replaced keeps its own
// mode whatever the umask.
func TestE2ENewFilesFollowTheUmask(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { fmt.Fprint(w, "data") }))
	defer srv.Close()
	for _, tc := range []struct {
		umask string
		want  os.FileMode
	}{{"077", 0o600}, {"022", 0o644}, {"002", 0o664}} {
		e := newEnv(t)
		in := []string{"sh", "-c", "umask " + tc.umask + ` && exec "$0" "$@"`}
		one := filepath.Join(e.dir, "one")
		e.runWrapped(in, "fetch", "-o", one, srv.URL+"/one").wantCode(t, 0)
		out := filepath.Join(e.dir, "out")
		if err := os.Mkdir(out, 0o755); err != nil {
			t.Fatal(err)
		}
		e.runWrapped(in, "fetch", "-P", "2", "-o", filepath.Join(out, "{name}"), srv.URL+"/a", srv.URL+"/b").wantCode(t, 0)
		kept := filepath.Join(e.dir, "kept")
		if err := os.WriteFile(kept, []byte("old"), 0o640); err != nil {
			t.Fatal(err)
		}
		os.Chmod(kept, 0o640)
		e.runWrapped(in, "fetch", "-o", kept, srv.URL+"/kept").wantCode(t, 0)
		for path, want := range map[string]os.FileMode{one: tc.want, filepath.Join(out, "a"): tc.want, filepath.Join(out, "b"): tc.want, kept: 0o640} {
			st, err := os.Stat(path)
			if err != nil || st.Mode().Perm() != want {
				t.Errorf("umask %s: %s is %v (%v), want %v", tc.umask, filepath.Base(path), st.Mode().Perm(), err, want)
			}
		}
	}
}
