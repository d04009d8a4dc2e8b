//go:build unix

package main_test

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// mknodIn makes a character device like /dev/null (1,3) or /dev/full
// (1,7) inside the test's own dir; only root can.
func mknodIn(t *testing.T, dir, name string, minor int) string {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("mknod needs root")
	}
	path := filepath.Join(dir, name)
	if err := syscall.Mknod(path, syscall.S_IFCHR|0o666, 1<<8|minor); err != nil {
		t.Skipf("mknod: %v", err)
	}
	return path
}

// TestE2EFallbackThatCannotBeWrittenIsExit1: a full stdout (a /dev/full
// node) cannot take the fallback: a local failure, exit 1, not the
// fetch's own 4, and not in "failed, not retryable" words.
func TestE2EFallbackThatCannotBeWrittenIsExit1(t *testing.T) {
	e := newEnv(t).with("REFETCH_BREAKER_FAILURES=0")
	full, err := os.OpenFile(mknodIn(t, e.dir, "full", 7), os.O_WRONLY, 0)
	if err != nil {
		t.Skip(err)
	}
	defer full.Close()
	for _, a := range [][]string{{"--fallback", "[]"}, nil} {
		cmd := e.command(args(append(a, downServer(t, nil).URL)...)...)
		cmd.Stdout = full
		var stderr strings.Builder
		cmd.Stderr = &stderr
		err := cmd.Run()
		code := 0
		if ee, ok := err.(*exec.ExitError); ok {
			code = ee.ExitCode()
		}
		want := 1
		if a == nil {
			want = 4 // nothing to write: the fetch's own failure
		}
		if code != want || strings.Contains(stderr.String(), "not retryable") {
			t.Errorf("%v: exit %d, want %d; stderr:\n%s", a, code, want, stderr.String())
		}
		if want == 1 && !strings.Contains(stderr.String(), "cannot serve the fallback") {
			t.Errorf("stderr does not say what failed:\n%s", stderr.String())
		}
	}
}

// TestE2EClosedStdout: `refetch fetch URL >&-` must not exit 0 with the
// body lost; it fails before any request. With -o the body has a place.
func TestE2EClosedStdout(t *testing.T) {
	var hits counter
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.next()
		fmt.Fprint(w, "body")
	}))
	defer srv.Close()
	e := newEnv(t)
	run := func(script string, extra ...string) (int, string) {
		cmd := exec.Command("sh", append([]string{"-c", script, binary}, extra...)...)
		cmd.Env, cmd.Dir = e.vars, e.dir
		out, err := cmd.CombinedOutput()
		code := 0
		if ee, ok := err.(*exec.ExitError); ok {
			code = ee.ExitCode()
		}
		return code, string(out)
	}
	code, out := run(`"$0" fetch "$1" >&-`, srv.URL)
	if code != 1 || !strings.Contains(out, "stdout is closed") || hits.get() != 0 {
		t.Errorf("closed stdout: exit %d, %d requests, output %q", code, hits.get(), out)
	}
	code, out = run(`"$0" fetch --fallback x "$1" >&-`, srv.URL)
	if code != 1 || hits.get() != 0 {
		t.Errorf("closed stdout with a fallback: exit %d, %d requests, output %q", code, hits.get(), out)
	}
	code, out = run(`"$0" fetch -o "$2" "$1" >&-`, srv.URL, filepath.Join(e.dir, "out"))
	data, _ := os.ReadFile(filepath.Join(e.dir, "out"))
	if code != 0 || string(data) != "body" {
		t.Errorf("closed stdout with -o: exit %d, file %q, output %q", code, data, out)
	}
	if os.Geteuid() == 0 {
		// A deliberate discard (a null device opened write-only) is fine.
		null := mknodIn(t, e.dir, "null", 3)
		code, out = run(`"$0" fetch "$1" > "$2"`, srv.URL, null)
		if code != 0 {
			t.Errorf("stdout to a null device: exit %d, %q", code, out)
		}
	}
}
