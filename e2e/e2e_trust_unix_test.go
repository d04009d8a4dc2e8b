//go:build unix

package e2e

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
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

// TestE2EEndlessInputFileIsRefused: a file named as input and read into
// memory (-d @file, --fallback-file, --cacert) that never ends, here a
// /dev/zero node, is refused with one line and exit 2 before any request,
// instead of growing the process until the system kills it.
func TestE2EEndlessInputFileIsRefused(t *testing.T) {
	t.Parallel()
	var hits counter
	srv := bodyServer(t, &hits)
	e := newEnv(t)
	zero := mknodIn(t, e.dir, "zero", 5)
	for _, a := range [][]string{
		{"fetch", "--fallback-file", zero},
		{"fetch", "-d", "@" + zero},
		{"fetch", "--cacert", zero},
		{"check", "--cacert", zero},
		{"probe", "--cacert", zero},
	} {
		r := e.run(append(a, srv.URL)...)
		lines := strings.Split(strings.TrimSpace(r.stderr), "\n")
		if r.code != 2 || len(lines) != 1 || !strings.Contains(r.stderr, "larger than 256 MiB, the most refetch reads into memory") {
			t.Errorf("%v: exit %d, want 2 and one line saying the bound; stderr:\n%s", a, r.code, r.stderr)
		}
	}
	if n := hits.get(); n != 0 {
		t.Errorf("the server saw %d requests; bad input must send none", n)
	}
}

// TestE2EFallbackThatCannotBeWrittenIsExit1: a full stdout (a /dev/full
// node) cannot take the fallback: a local failure, exit 1, not the
// fetch's own 4, and not in "failed, not retryable" words.
func TestE2EFallbackThatCannotBeWrittenIsExit1(t *testing.T) {
	t.Parallel()
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
	// A body, a --json report, a check's verdict: each write that runs
	// out of room says what that means, as -o's does (a tour found only
	// -o's saying it), and --json's is not "reading the body".
	var hits counter
	srv := bodyServer(t, &hits)
	for _, a := range [][]string{{"fetch", srv.URL}, {"fetch", "--json", srv.URL}, {"check", "--json", srv.URL}, {"fetch", srv.URL, srv.URL}} {
		cmd := e.command(a...)
		cmd.Stdout = full
		var stderr strings.Builder
		cmd.Stderr = &stderr
		err := cmd.Run()
		if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 1 || !strings.Contains(stderr.String(), "no space left on device (the file system is full)") ||
			strings.Contains(stderr.String(), "reading the body") {
			t.Errorf("%v to a full device: %v; stderr:\n%s", a, err, stderr.String())
		}
	}
}

// TestE2EClosedStdout: `refetch fetch URL >&-` must not exit 0 with the
// body lost; it fails before any request. With -o the body has a place.
func TestE2EClosedStdout(t *testing.T) {
	t.Parallel()
	var hits counter
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.next()
		fmt.Fprint(w, "body")
	}))
	defer srv.Close()
	e := newEnv(t)
	run := e.sh
	code, out := run(`"$0" fetch "$1" >&-`, srv.URL)
	if code != 1 || !strings.Contains(out, "stdout is closed") || hits.get() != 0 {
		t.Errorf("closed stdout: exit %d, %d requests, output %q", code, hits.get(), out)
	}
	// It looks like a read-write /dev/null (Python's subprocess.DEVNULL),
	// so the message says how to discard the body on purpose.
	if !strings.Contains(out, "subprocess.DEVNULL") || !strings.Contains(out, "-o /dev/null to discard it") {
		t.Errorf("closed stdout: the message does not say how to discard the body on purpose: %q", out)
	}
	for _, o := range []string{"/dev/stdout", "/dev/fd/1", "/proc/self/fd/1"} {
		code, out = run(`"$0" fetch -o "$2" "$1" >&-`, srv.URL, o)
		if code != 1 || hits.get() != 0 {
			t.Errorf("-o %s with stdout closed: exit %d, %d requests, output %q", o, code, hits.get(), out)
		}
	}
	// With --json it is the report that would be lost, whatever -o says.
	code, out = run(`"$0" fetch --json -o "$2" "$1" >&-`, srv.URL, filepath.Join(e.dir, "json-out"))
	if code != 1 || hits.get() != 0 || !strings.Contains(out, "so the report would be lost: redirect stdout") {
		t.Errorf("closed stdout with --json -o: exit %d, %d requests, output %q", code, hits.get(), out)
	}
	// Open for reading only (`1<FILE`): every write would fail after the
	// download; found before the request instead.
	os.WriteFile(filepath.Join(e.dir, "ro"), nil, 0o600)
	code, out = run(`"$0" fetch "$1" 1<"$2"`, srv.URL, filepath.Join(e.dir, "ro"))
	if code != 1 || hits.get() != 0 || !strings.Contains(out, "read-only") {
		t.Errorf("read-only stdout: exit %d, %d requests, output %q", code, hits.get(), out)
	}
	code, out = run(`"$0" breaker status >&-`)
	if code != 1 || !strings.Contains(out, "so the status would be lost") {
		t.Errorf("breaker status with stdout closed: exit %d, output %q", code, out)
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

// TestE2EClosedStdin: a closed stdin is not an empty one. `-d @- <&-`
// sent a PUT with an empty body (emptying what it names) and exited 0;
// `-i - <&-` was an empty list. Both are now usage errors, nothing sent.
// A deliberate `< /dev/null` (read-only) is still an empty body or list.
func TestE2EClosedStdin(t *testing.T) {
	t.Parallel()
	var hits counter
	srv := bodyServer(t, &hits)
	e := newEnv(t)
	for _, args := range [][]string{{"-X", "PUT", "-d", "@-"}, {"-X", "POST", "-d", "@-", "-o", "out"}, {"-i", "-"}} {
		code, out := e.sh(`u=$1; shift; "$0" fetch "$@" "$u" <&-`, append([]string{srv.URL}, args...)...)
		if code != 2 || hits.get() != 0 || !strings.Contains(out, "stdin is closed") || strings.Count(strings.TrimSpace(out), "\n") != 0 {
			t.Errorf("%v with stdin closed: exit %d, %d requests, output %q", args, code, hits.get(), out)
		}
	}
	code, out := e.sh(`"$0" fetch -X PUT -d @- "$1" < /dev/null`, srv.URL)
	if code != 0 || hits.get() != 1 {
		t.Errorf("-d @- < /dev/null: exit %d, %d requests, output %q", code, hits.get(), out)
	}
}

// TestE2ESignalWhileReadingDataArgument: -d @FIFO with no writer yet
// still ends at once on SIGTERM (143), sending nothing.
func TestE2ESignalWhileReadingDataArgument(t *testing.T) {
	t.Parallel()
	var hits counter
	srv := downServer(t, &hits)
	e := newEnv(t)
	fifo := filepath.Join(e.dir, "body")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Skip(err)
	}
	for _, a := range [][]string{{"-d", "@" + fifo}, {"--fallback-file", fifo}} {
		cmd := e.command(args(append(a, srv.URL)...)...)
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		// Wait until one of its threads is blocked opening the FIFO
		// (the kernel's wait state for a FIFO without a partner).
		blocked := false
		for deadline := time.Now().Add(10 * time.Second); !blocked && time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
			tasks, _ := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/wchan", cmd.Process.Pid))
			for _, w := range tasks {
				data, _ := os.ReadFile(w)
				blocked = blocked || strings.Contains(string(data), "wait_for_partner")
			}
		}
		if !blocked {
			cmd.Process.Kill()
			cmd.Wait()
			t.Skip("this kernel does not show a FIFO open's wait state")
		}
		cmd.Process.Signal(syscall.SIGTERM)
		err := cmd.Wait()
		code := 0
		if ee, ok := err.(*exec.ExitError); ok {
			code = ee.ExitCode()
		}
		if code != 143 || hits.get() != 0 {
			t.Errorf("%v: exit %d, %d requests", a, code, hits.get())
		}
	}
}

// TestE2EOutputToDescriptorNotGiven: -o /dev/fd/N names a descriptor the
// caller gave; one it did not give may be open in refetch itself (the Go
// runtime's poller and its files), and writing the body there lost it
// with exit 0 (a tour found it). Every such N is exit 2 before any
// request; a descriptor given with N>FILE gets the body.
func TestE2EOutputToDescriptorNotGiven(t *testing.T) {
	t.Parallel()
	var hits counter
	srv := bodyServer(t, &hits)
	e := newEnv(t)
	for fd := 3; fd <= 12; fd++ {
		code, out := e.sh(`"$0" fetch -o "/dev/fd/$2" "$1"`, srv.URL, strconv.Itoa(fd))
		// (One inherited from the test harness may be open for reading.)
		if code != 2 || !strings.Contains(out, "is not open") && !strings.Contains(out, "open for reading only") {
			t.Errorf("-o /dev/fd/%d: exit %d, output %q", fd, code, out)
		}
	}
	code, out := e.sh(`"$0" fetch -o /dev/fd/0 "$1" < /dev/null`, srv.URL)
	if code != 2 || !strings.Contains(out, "open for reading only") {
		t.Errorf("-o /dev/fd/0: exit %d, output %q", code, out)
	}
	if n := hits.get(); n != 0 {
		t.Errorf("%d requests sent", n)
	}
	code, out = e.sh(`"$0" fetch -o /dev/fd/9 "$1" 9>given`, srv.URL)
	if code != 0 || readText(t, filepath.Join(e.dir, "given")) != string(outputBody) {
		t.Errorf("-o /dev/fd/9 with 9>given: exit %d, output %q", code, out)
	}
}

// TestE2EFileSizeLimitNamesTheFile: a write refused for room (a
// file-size limit here; a full disk alike) names -o's file and what the
// error means, not the temporary file's name (a tour saw "write
// .refetch-unnamed: file too large").
func TestE2EFileSizeLimitNamesTheFile(t *testing.T) {
	t.Parallel()
	big := strings.Repeat("x", 256<<10)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, big) }))
	defer srv.Close()
	e := newEnv(t)
	for script, want := range map[string]int{
		`ulimit -f 64 && exec "$0" fetch -o out "$1"`:         1,
		`ulimit -f 64 && exec "$0" fetch -o 'b{n}' "$1" "$1"`: 9, // a batch: URLs failed
	} {
		code, out := e.sh(script, srv.URL)
		if code != want || !strings.Contains(out, ": cannot write the body: file too large (over the file-size limit, ulimit -f") || strings.Contains(out, ".refetch") {
			t.Errorf("%s: exit %d, output %q", script, code, out)
		}
	}
	// Files of refetch's own (a report's testcases kept until the end,
	// the breaker's state) are named for what they are, not as
	// ".refetch-unnamed" (a tour saw both).
	for script, want := range map[string]string{
		`ulimit -f 0 && exec "$0" check -n 1 --report junit=x.xml "$1"`:        "--report junit=x.xml: cannot keep its testcases until the end (a temporary file in " + e.dir + "): file too large (over the file-size limit",
		`ulimit -f 0 && exec "$0" fetch -n 1 -o /dev/null http://127.0.0.1:9/`: "circuit breaker disabled for this run: write " + filepath.Join(e.dir, "state") + "/",
	} {
		code, out := e.sh(script, srv.URL)
		if code == 0 || !strings.Contains(out, want) || strings.Contains(out, ".refetch") {
			t.Errorf("%s: exit %d, output %q, want %q", script, code, out, want)
		}
	}
}

// TestE2EOutputDirRemovedMidRun: -o's directory removed while the body
// comes says that, not the temporary files' names in three nested errors
// (a tour found them), exit 1.
func TestE2EOutputDirRemovedMidRun(t *testing.T) {
	t.Parallel()
	started, release := make(chan struct{}), make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", "10")
		io.WriteString(w, "01234")
		w.(http.Flusher).Flush()
		close(started)
		<-release
		io.WriteString(w, "56789")
	}))
	defer srv.Close()
	e := newEnv(t)
	dir := filepath.Join(e.dir, "out")
	os.Mkdir(dir, 0o755)
	go func() {
		<-started
		os.RemoveAll(dir)
		close(release)
	}()
	r := e.run("fetch", "-o", filepath.Join(dir, "x"), srv.URL)
	r.wantCode(t, 1)
	if !strings.Contains(r.stderr, "its directory "+dir+" was removed during the run") || strings.Contains(r.stderr, ".refetch") {
		t.Errorf("stderr %q", r.stderr)
	}
}
