//go:build unix

package e2e

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestE2EBatchMemoryIsFlat: the input is streamed, so 20,000 URLs need no
// more than twice the memory (peak RSS, from the kernel's rusage) of 100.
func TestE2EBatchMemoryIsFlat(t *testing.T) {
	if testing.Short() {
		t.Skip("fetches 20,100 URLs")
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Write([]byte("ok"))
	}))
	defer srv.Close()
	e := newEnv(t)
	peak := func(n int) int64 {
		t.Helper()
		var list strings.Builder
		for i := 0; i < n; i++ {
			fmt.Fprintf(&list, "%s/item/%d\n", srv.URL, i)
		}
		name := fmt.Sprintf("urls-%d", n)
		writeFile(t, e.dir, name, []byte(list.String()))
		out, err := os.Create(filepath.Join(e.dir, name+".jsonl"))
		if err != nil {
			t.Fatal(err)
		}
		defer out.Close()
		cmd := e.command(args("-q", "--json", "-i", name)...)
		cmd.Stdout = out
		if err := cmd.Run(); err != nil {
			t.Fatalf("%d URLs: %v", n, err)
		}
		ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage)
		if !ok {
			t.Skip("no rusage on this system")
		}
		st, _ := out.Stat()
		if lines := strings.Count(readAll(t, out.Name()), "\n"); lines != n || st.Size() == 0 {
			t.Fatalf("%d URLs: %d report lines", n, lines)
		}
		return ru.Maxrss
	}
	small, large := peak(100), peak(20000)
	t.Logf("peak RSS: 100 URLs %d, 20,000 URLs %d (ratio %.2f)", small, large, float64(large)/float64(small))
	if large > 2*small {
		t.Errorf("peak RSS grew from %d with 100 URLs to %d with 20,000", small, large)
	}
}

func readAll(t *testing.T, path string) string {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(data)
}

// TestE2EBatchOutputLinksAndSpecialFiles: a batch's -o follows symlinks
// (the file they end at is replaced, the link stays), writes regular files
// only (a FIFO is exit 2 before any request) and sees two links to one file
// as a collision.
func TestE2EBatchOutputLinksAndSpecialFiles(t *testing.T) {
	t.Parallel()
	var c counter
	srv := pathServer(t, &c)
	e := newEnv(t)
	out := filepath.Join(e.dir, "out")
	real := filepath.Join(e.dir, "real")
	os.Mkdir(out, 0o755)
	os.Mkdir(real, 0o755)
	writeFile(t, real, "a", []byte("old a"))
	os.Symlink("../real/a", filepath.Join(out, "a"))              // to an existing file
	os.Symlink(filepath.Join(real, "b"), filepath.Join(out, "b")) // dangling: b is created
	e.run(args("-q", "-o", "out/{name}", srv.URL+"/x/a", srv.URL+"/x/b", srv.URL+"/x/c")...).wantCode(t, 0)
	for name, want := range map[string]string{"real/a": "body of /x/a", "real/b": "body of /x/b", "out/c": "body of /x/c"} {
		if got := readAll(t, filepath.Join(e.dir, name)); got != want {
			t.Errorf("%s = %q, want %q", name, got, want)
		}
	}
	for _, link := range []string{"a", "b"} {
		if st, err := os.Lstat(filepath.Join(out, link)); err != nil || st.Mode()&os.ModeSymlink == 0 {
			t.Errorf("out/%s is no longer a symlink", link)
		}
	}
	assertNoTempFiles(t, out)
	assertNoTempFiles(t, real)

	before := c.get()
	// Two links to one file.
	os.Symlink("a", filepath.Join(out, "also-a"))
	r := e.run(args("-o", "out/{name}", srv.URL+"/a", srv.URL+"/also-a")...)
	r.wantCode(t, 2)
	// The message names the file both would write, and the path each
	// URL gives: what a user can act on.
	if !strings.Contains(r.stderr, "argument 1 and argument 2: both write real/a (argument 1 as out/a, argument 2 as out/also-a, through symlinks); remove or change the symlink") {
		t.Errorf("stderr: %s", r.stderr)
	}
	// A link to a file another URL names directly.
	os.Remove(filepath.Join(out, "also-a"))
	os.Symlink("c", filepath.Join(out, "also-c"))
	r = e.run(args("-o", "out/{name}", srv.URL+"/also-c", srv.URL+"/c")...)
	r.wantCode(t, 2)
	if !strings.Contains(r.stderr, "argument 1 and argument 2: both write out/c (argument 1 as out/also-c, through symlinks); remove or change the symlink") {
		t.Errorf("stderr: %s", r.stderr)
	}
	// The same, with the link absolute, the template spelled another way,
	// or the link through a linked directory: the paths differ as text
	// (a tour found these written one over the other, exit 0).
	os.Remove(filepath.Join(out, "also-c"))
	os.Symlink(filepath.Join(out, "c"), filepath.Join(out, "also-c"))
	os.Symlink(out, filepath.Join(e.dir, "out-link"))
	for _, tmpl := range []string{"out/{name}", "./out/{name}", filepath.Join(e.dir, "out", "{name}")} {
		r = e.run(args("-o", tmpl, srv.URL+"/also-c", srv.URL+"/c")...)
		if r.code != 2 || !strings.Contains(r.stderr, "through symlinks); remove or change the symlink") {
			t.Errorf("absolute link, -o %s: exit %d, stderr: %s", tmpl, r.code, r.stderr)
		}
	}
	os.Remove(filepath.Join(out, "also-c"))
	os.Symlink("../out-link/c", filepath.Join(out, "also-c"))
	r = e.run(args("-o", "out/{name}", srv.URL+"/also-c", srv.URL+"/c")...)
	if r.code != 2 || !strings.Contains(r.stderr, "through symlinks)") {
		t.Errorf("link through a linked directory: exit %d, stderr: %s", r.code, r.stderr)
	}
	// A FIFO, and a symlink loop.
	if err := syscall.Mkfifo(filepath.Join(out, "fifo"), 0o644); err != nil {
		t.Fatal(err)
	}
	os.Symlink("loop", filepath.Join(out, "loop"))
	for name, want := range map[string]string{"fifo": "not a regular file", "loop": "symbolic links"} {
		r := e.run(args("-o", "out/{name}", srv.URL+"/ok", srv.URL+"/"+name)...)
		r.wantCode(t, 2)
		if !strings.Contains(r.stderr, "argument 2: -o out/"+name) || !strings.Contains(r.stderr, want) {
			t.Errorf("%s: stderr %s", name, r.stderr)
		}
	}
	if c.get() != before {
		t.Errorf("%d requests sent by batches refused before any", c.get()-before)
	}
}

// TestE2EBatchFullStdoutStops: when stdout cannot be written (a /dev/full
// node), a batch stops at once, exit 1: the other bodies or reports would
// be lost too.
func TestE2EBatchFullStdoutStops(t *testing.T) {
	t.Parallel()
	var c counter
	srv := pathServer(t, &c)
	e := newEnv(t)
	full, err := os.OpenFile(mknodIn(t, e.dir, "full", 7), os.O_WRONLY, 0)
	if err != nil {
		t.Skip(err)
	}
	defer full.Close()
	for _, mode := range [][]string{nil, {"--json"}} {
		before := c.get()
		cmd := e.command(args(append(append([]string{"-P", "1"}, mode...),
			srv.URL+"/1", srv.URL+"/2", srv.URL+"/3", srv.URL+"/4")...)...)
		cmd.Stdout = full
		var stderr strings.Builder
		cmd.Stderr = &stderr
		err := cmd.Run()
		code := 0
		if ee, ok := err.(interface{ ExitCode() int }); ok {
			code = ee.ExitCode()
		}
		if code != 1 || c.get()-before != 1 || !strings.Contains(stderr.String(), "no space left") {
			t.Errorf("%v: exit %d after %d requests; stderr:\n%s", mode, code, c.get()-before, stderr.String())
		}
	}
}

// TestE2EBatchSignalWhileReadingTheInput: a batch still checking an input
// that does not end (stdin left open) stops at SIGINT with 130, having
// sent nothing.
func TestE2EBatchSignalWhileReadingTheInput(t *testing.T) {
	var c counter
	srv := pathServer(t, &c)
	e := newEnv(t)
	cmd := e.command(args("-i", "-")...)
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	defer stdin.Close()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	fmt.Fprintf(stdin, "%s/a\n", srv.URL)
	// Signal once refetch is checking the input: it has made the copy of
	// stdin for the run (a temp file without a name: O_TMPFILE, or one
	// unlinked at once; /proc shows either as "(deleted)").
	fds := fmt.Sprintf("/proc/%d/fd", cmd.Process.Pid)
	if _, err := os.Stat(fds); err != nil {
		cmd.Process.Kill()
		cmd.Wait()
		t.Skip("no /proc")
	}
	waitFor(t, "refetch to read its input", func() bool {
		entries, _ := os.ReadDir(fds)
		for _, en := range entries {
			if target, _ := os.Readlink(filepath.Join(fds, en.Name())); strings.HasSuffix(target, "(deleted)") {
				return true
			}
		}
		return false
	})
	cmd.Process.Signal(syscall.SIGINT)
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err = <-done:
	case <-time.After(10 * time.Second):
		cmd.Process.Kill()
		<-done
		t.Fatal("SIGINT did not end a batch reading its input")
	}
	if ee, ok := err.(interface{ ExitCode() int }); !ok || ee.ExitCode() != 130 || c.get() != 0 {
		t.Errorf("exit %v, %d requests; want 130 and none", err, c.get())
	}
}
