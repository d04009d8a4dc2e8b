//go:build unix

package e2e

import (
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// maxRSS is the peak resident memory of a finished command, in bytes.
func maxRSS(cmd *exec.Cmd) int64 {
	ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage)
	if !ok {
		return 0
	}
	return int64(ru.Maxrss) << 10 // kilobytes on Linux
}

// Item 4: check's verdict must reach its reader. A stdout that cannot be
// written (open for reading only) is exit 1 before any request, as for
// fetch, probe and breaker status; a stdout that refuses the results (a
// full device) is exit 1 naming the verdict, in text mode as with --json.
// A stdout that is /dev/null opened read-write is what a closed one looks
// like in Go and what Python's subprocess.DEVNULL gives: a check's verdict
// is its exit code, so the text lines are let go there (a tour found every
// check from Python exiting 1); a --json report is not.
func TestE2ECheckStdoutUnusable(t *testing.T) {
	t.Parallel()
	srv, c := healthServer(t)
	e := newEnv(t)
	ro := filepath.Join(e.dir, "ro")
	os.WriteFile(ro, nil, 0o600)
	for _, tc := range []struct {
		script, path string
		code         int
		out          string
	}{
		{`"$0" check --json "$1" >&-`, "/health", 1, "stdout is closed"},
		{`"$0" check "$1" 1<"$2"`, "/health", 1, "stdout is closed or read-only"},
		{`"$0" check "$1" >&-`, "/health", 0, ""},
		{`"$0" check -n 1 "$1" >&-`, "/nope", 8, "unhealthy"},
	} {
		before := c.get()
		code, out := e.sh(tc.script, srv.URL+tc.path, ro)
		sent := c.get() - before
		if code != tc.code || !strings.Contains(out, tc.out) || (code == 1) != (sent == 0) {
			t.Errorf("%s %s: exit %d, %d requests, output %q; want exit %d and %q", tc.script, tc.path, code, sent, out, tc.code, tc.out)
		}
	}
	// Python's subprocess.DEVNULL: /dev/null opened read-write.
	null, err := os.OpenFile(mknodIn(t, e.dir, "null", 3), os.O_RDWR, 0)
	if err != nil {
		t.Skip(err)
	}
	defer null.Close()
	for _, tc := range []struct {
		args []string
		code int
	}{{[]string{srv.URL + "/health"}, 0}, {[]string{"-n", "1", srv.URL + "/nope"}, 8}, {[]string{"--json", srv.URL + "/health"}, 1}} {
		cmd := e.command(check(tc.args...)...)
		cmd.Stdout = null
		err := cmd.Run()
		code := 0
		if ee, ok := err.(*exec.ExitError); ok {
			code = ee.ExitCode()
		}
		if code != tc.code {
			t.Errorf("check %v with stdout a read-write /dev/null: exit %d, want %d", tc.args, code, tc.code)
		}
	}
	full, err := os.OpenFile(mknodIn(t, e.dir, "full", 7), os.O_WRONLY, 0)
	if err != nil {
		t.Skip(err)
	}
	defer full.Close()
	for _, mode := range [][]string{nil, {"--json"}} {
		for _, path := range []string{"/health", "/nope"} {
			cmd := e.command(check(append(mode, "-n", "1", srv.URL+path)...)...)
			cmd.Stdout = full
			var stderr strings.Builder
			cmd.Stderr = &stderr
			err := cmd.Run()
			code := 0
			if ee, ok := err.(*exec.ExitError); ok {
				code = ee.ExitCode()
			}
			verdict := "the check's verdict: healthy"
			if path == "/nope" {
				verdict = "the check's verdict: unhealthy: 1 of 1 URL"
			}
			if code != 1 || !strings.Contains(stderr.String(), "no space left on device") || !strings.Contains(stderr.String(), verdict) {
				t.Errorf("%v %s to a full stdout: exit %d, stderr %q", mode, path, code, stderr.String())
			}
		}
	}
}

// TestE2EStderrReaderGone: a reader of stderr that went away (a log pipe
// that closed) does not cost a healthy run its output and exit code: a
// check killed by SIGPIPE (141) on its first -v line lost its verdict (a
// tour found it). (A stdout whose reader is gone is still 141: see
// TestE2ESpilledBodyReaderGone.)
func TestE2EStderrReaderGone(t *testing.T) {
	t.Parallel()
	srv, _ := healthServer(t)
	e := newEnv(t)
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	r.Close()
	defer w.Close()
	for _, a := range [][]string{{"check", "-v", srv.URL + "/health"}, {"fetch", "-v", srv.URL + "/health"}} {
		cmd := e.command(a...)
		var out strings.Builder
		cmd.Stdout, cmd.Stderr = &out, w
		err := cmd.Run()
		if err != nil || out.Len() == 0 {
			t.Errorf("%v with stderr's reader gone: %v, stdout %q", a, err, out.String())
		}
	}
}

// TestE2ECheckWithinTheOpenFileLimit: a check of more URLs than the
// process may open sockets for keeps its attempts within the limit rather
// than fail URLs with "too many open files", blaming the services (a tour
// found 605 of 1,500 unhealthy under ulimit -n 256).
func TestE2ECheckWithinTheOpenFileLimit(t *testing.T) {
	t.Parallel()
	srv, _ := healthServer(t)
	e := newEnv(t)
	var urls []string
	for i := 0; i < 400; i++ {
		urls = append(urls, fmt.Sprintf("%s/health?i=%d", srv.URL, i))
	}
	code, out := e.sh(`ulimit -n 100 && exec "$0" check -n 2 --delay 100ms "$@"`, urls...)
	if code != 0 || strings.Count(out, "healthy ") != 400 || strings.Contains(out, "too many open files") {
		t.Errorf("exit %d; output ends %q", code, out[max(0, len(out)-400):])
	}
}

// TestE2ECheckInterruptedSaysSo: a check stopped by a signal (a CI job
// cancelled) says so on each unhealthy line and in --json's failures, not
// only in its exit code (a tour read an ordinary verdict after 1.5 s of a
// 20 s --wait).
func TestE2ECheckInterruptedSaysSo(t *testing.T) {
	t.Parallel()
	srv := downServer(t, nil)
	for _, a := range [][]string{{"check", "-v", "--wait", "1h", srv.URL}, {"check", "-v", "--json", "--wait", "1h", srv.URL}} {
		code, _, stdout := startAndSignal(t, newEnv(t), syscall.SIGTERM,
			func(stderr string) bool { return strings.Contains(stderr, "retrying in") }, a...)
		if code != 143 || !strings.Contains(stdout, "the check was stopped: interrupted by SIGTERM") {
			t.Errorf("%v: exit %d, stdout %q", a, code, stdout)
		}
	}
	// A signal that cuts an attempt in flight (a service that hangs) is
	// said once, not also as the attempt's "no answer".
	hang := rawServer(t, func(c net.Conn) { io.Copy(io.Discard, c) })
	code, _, stdout := startAndSignal(t, newEnv(t), syscall.SIGTERM,
		func(stderr string) bool { return strings.Contains(stderr, "> ") }, "check", "-v", "--wait", "1h", hang)
	if code != 143 || strings.Count(stdout, "interrupted by SIGTERM") != 1 || !strings.Contains(stdout, "the check was stopped: interrupted by SIGTERM") {
		t.Errorf("a hanging service: exit %d, stdout %q", code, stdout)
	}
}
