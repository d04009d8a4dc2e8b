//go:build linux

package e2e

import (
	"crypto/sha256"
	endian "encoding/binary"
	"encoding/hex"
	"errors"
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

	"github.com/refetch/refetch/internal/redistest"
)

// These tests hold what a refetch waits for (the breaker's state file
// lock, the probe lock, a Redis that does not answer) the way a stopped
// or hung process would, for ever, and check that ONE signal still ends
// the run at once with its exit code, having sent no request.

// lockName is the name of the lock file of key in a state dir (see
// resilience/store.FileStore and the probe lock): a hash of the key.
func lockName(key string) string {
	sum := sha256.Sum256([]byte(key))
	return hex.EncodeToString(sum[:16]) + ".lock"
}

// holdLock creates path (and its dir, 0700) and takes its flock from the
// test process itself, as another refetch that was stopped with Ctrl-Z
// would hold it. It is released when the test ends.
func holdLock(t *testing.T, path string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		t.Fatal(err)
	}
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDONLY, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX); err != nil {
		t.Fatal(err)
	}
}

// watchOpens counts the opens of path (inotify IN_OPEN) from now on. A
// refetch opens a lock file only to lock it, so an open while the test
// holds it means the refetch has come to the lock it cannot get.
func watchOpens(t *testing.T, path string) func() int {
	t.Helper()
	fd, err := syscall.InotifyInit1(syscall.IN_CLOEXEC | syscall.IN_NONBLOCK)
	if err != nil {
		t.Skipf("inotify: %v", err)
	}
	t.Cleanup(func() { syscall.Close(fd) })
	if _, err := syscall.InotifyAddWatch(fd, path, syscall.IN_OPEN); err != nil {
		t.Fatal(err)
	}
	opens := 0
	buf := make([]byte, 4096)
	return func() int {
		for {
			n, err := syscall.Read(fd, buf)
			if n <= 0 || err != nil {
				return opens
			}
			for off := 0; off+syscall.SizeofInotifyEvent <= n; {
				// struct inotify_event: wd, mask, cookie, len, name[len].
				mask := endian.NativeEndian.Uint32(buf[off+4:])
				if mask&syscall.IN_OPEN != 0 {
					opens++
				}
				off += syscall.SizeofInotifyEvent + int(endian.NativeEndian.Uint32(buf[off+12:]))
			}
		}
	}
}

// signalOnce starts cmd, waits until ready, sends ONE sig and returns the
// exit code and stderr. A refetch that does not end on that signal is
// killed after a minute (a generous guard, not a measure: it ends in
// milliseconds) and fails the test.
func signalOnce(t *testing.T, cmd *exec.Cmd, sig syscall.Signal, what string, ready func(stderr string) bool) (int, string, string) {
	t.Helper()
	stderr, stdout := newLockedBuffer(), newLockedBuffer()
	cmd.Stderr, cmd.Stdout = stderr, stdout
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, what, func() bool { return ready(stderr.String()) })
	cmd.Process.Signal(sig)
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	var err error
	select {
	case err = <-exited:
	case <-time.After(time.Minute):
		cmd.Process.Kill()
		<-exited
		t.Fatalf("refetch did not end on one signal %d (%v) after %s; stderr:\n%s", sig, sig, what, stderr.String())
	}
	var ee *exec.ExitError
	if err != nil && !errors.As(err, &ee) {
		t.Fatal(err)
	}
	code := 0
	if ee != nil {
		code = ee.ExitCode()
	}
	return code, stdout.String(), stderr.String()
}

var oneSignal = []struct {
	sig  syscall.Signal
	name string
	code int
}{{syscall.SIGTERM, "SIGTERM", 143}, {syscall.SIGINT, "SIGINT", 130}, {syscall.SIGHUP, "SIGHUP", 129}}

// TestE2ESignalWhileTheBreakerLockIsHeld: a fetch waiting for the state
// file's lock, which another process holds and will not release, ends on
// the first signal with its code, and sends nothing. (It waits because its
// admission takes the half-open trial, a write: a closed breaker's
// admission takes no lock, see TestE2EClosedBreakerNeedsNoLock.)
func TestE2ESignalWhileTheBreakerLockIsHeld(t *testing.T) {
	t.Parallel()
	var c counter
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c.next()
		if r.URL.Path == "/fail" {
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		w.Write([]byte("ok"))
	}))
	defer srv.Close()
	// openBreaker opens the breaker of srv's origin in dir with a reset
	// that is over at once: the next fetch's admission takes the trial.
	openBreaker := func(t *testing.T, e *env, dir string) {
		e.run("fetch", "-n", "1", "--breaker-failures", "1", "--breaker-reset", "1ns", "--state-dir", dir, srv.URL+"/fail").wantCode(t, 4)
	}
	for _, tc := range oneSignal {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			dir := filepath.Join(e.dir, "breaker-state")
			lock := filepath.Join(dir, lockName(srv.URL)) // the key of http://127.0.0.1:PORT is the URL itself
			openBreaker(t, e, dir)
			holdLock(t, lock)
			opens := watchOpens(t, lock)
			before := c.get()
			code, stdout, stderr := signalOnce(t, e.command("fetch", "--state-dir", dir, srv.URL), tc.sig,
				"refetch to wait for the breaker lock", func(string) bool { return opens() >= 1 })
			if code != tc.code || stdout != "" || c.get() != before {
				t.Errorf("exit %d, stdout %q, %d requests; want %d, nothing, none", code, stdout, c.get()-before, tc.code)
			}
			if !strings.Contains(stderr, "interrupted by "+tc.name) || strings.Contains(stderr, "warning") {
				t.Errorf("stderr:\n%s", stderr)
			}
		})
	}
	t.Run("--json", func(t *testing.T) {
		e := newEnv(t)
		dir := filepath.Join(e.dir, "breaker-state")
		lock := filepath.Join(dir, lockName(srv.URL))
		openBreaker(t, e, dir)
		holdLock(t, lock)
		opens := watchOpens(t, lock)
		before := c.get()
		code, stdout, _ := signalOnce(t, e.command("fetch", "--json", "--state-dir", dir, srv.URL), syscall.SIGTERM,
			"refetch to wait for the breaker lock", func(string) bool { return opens() >= 1 })
		m := result{stdout: stdout}.report(t)
		if code != 143 || c.get() != before || m["exit_code"] != 143.0 || m["error"] != "interrupted by SIGTERM" ||
			len(m["attempts"].([]any)) != 0 {
			t.Errorf("exit %d, %d requests, report %s", code, c.get()-before, stdout)
		}
	})
}

// TestE2ESignalWhileBreakerResetWaitsForTheLock: `breaker reset` waits for
// the lock of the state file it removes; one signal ends it, and the
// state stays.
func TestE2ESignalWhileBreakerResetWaitsForTheLock(t *testing.T) {
	t.Parallel()
	srv := downServer(t, nil)
	e := newEnv(t)
	dir := filepath.Join(e.dir, "breaker-state")
	e.run(args("-n", "1", "--state-dir", dir, srv.URL)...).wantCode(t, 4)
	lock := filepath.Join(dir, lockName(srv.URL))
	holdLock(t, lock)
	opens := watchOpens(t, lock)
	code, _, stderr := signalOnce(t, e.command("breaker", "reset", "--state-dir", dir, srv.URL), syscall.SIGTERM,
		"breaker reset to wait for the lock", func(string) bool { return opens() >= 1 })
	if code != 143 || !strings.Contains(stderr, "interrupted by SIGTERM") {
		t.Errorf("exit %d, stderr:\n%s", code, stderr)
	}
	if _, err := os.Stat(strings.TrimSuffix(lock, ".lock") + ".json"); err != nil {
		t.Errorf("the state file is gone after an interrupted reset: %v", err)
	}
}

// TestE2ESignalWhileAProbeWaitsForTheProbeLock: a second probe of a host
// waits for the first one's lock; when the first is stopped, one signal
// ends the waiting one, which sent nothing.
func TestE2ESignalWhileAProbeWaitsForTheProbeLock(t *testing.T) {
	t.Parallel()
	var c counter
	srv := failsEvery(t, 1000, &c)
	e := newEnv(t)
	dir := filepath.Join(e.dir, "probe-state")
	holdLock(t, filepath.Join(dir, "probe", lockName(srv.URL)))
	code, stdout, stderr := signalOnce(t, e.command(probeArgs("-n", "1", "--state-dir", dir, srv.URL)...), syscall.SIGTERM,
		"the probe to wait for the lock", func(s string) bool { return strings.Contains(s, "waiting for another refetch probe") })
	if code != 143 || c.get() != 0 || !strings.Contains(stdout, "interrupted by SIGTERM after 0 of 1 requests") {
		t.Errorf("exit %d, %d requests, stdout:\n%s\nstderr:\n%s", code, c.get(), stdout, stderr)
	}
}

// TestE2ESignalWhileRedisDoesNotAnswer: with --store, a Redis that took
// the command and does not answer holds a run up until the signal, not
// until the store's timeout (were the signal ignored, the run would fail
// over to the files after half a minute, warn and send its request).
func TestE2ESignalWhileRedisDoesNotAnswer(t *testing.T) {
	t.Parallel()
	var c counter
	srv := failsEvery(t, 1000, &c)
	silent := redistest.NewSilent(t)
	e := newEnv(t)
	code, stdout, stderr := signalOnce(t, e.command("fetch", "--store", "redis://"+silent.Addr+"?timeout=30s", srv.URL), syscall.SIGTERM,
		"refetch to wait for Redis", func(string) bool { return silent.Waiting() >= 1 })
	if code != 143 || stdout != "" || c.get() != 0 {
		t.Errorf("exit %d, stdout %q, %d requests; want 143, nothing, none", code, stdout, c.get())
	}
	if !strings.Contains(stderr, "interrupted by SIGTERM") || strings.Contains(stderr, "unavailable") {
		t.Errorf("stderr:\n%s", stderr)
	}
}

// TestE2ESignalWhileReadingACACertFIFO: --cacert naming a FIFO nobody
// writes to holds the run up in its open; one SIGTERM still ends it.
func TestE2ESignalWhileReadingACACertFIFO(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	fifo := filepath.Join(e.dir, "ca.fifo")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := e.command("fetch", "--cacert", fifo, "https://127.0.0.1:9/")
	var pid int
	code, _, stderr := signalOnce(t, cmd, syscall.SIGTERM, "refetch to open the FIFO", func(string) bool {
		if cmd.Process == nil {
			return false
		}
		pid = cmd.Process.Pid
		tasks, _ := filepath.Glob(filepath.Join("/proc", strconv.Itoa(pid), "task", "*", "wchan"))
		for _, task := range tasks {
			if w, err := os.ReadFile(task); err == nil && string(w) == "wait_for_partner" {
				return true // a FIFO's open waiting for a writer
			}
		}
		return false
	})
	if code != 143 || !strings.Contains(stderr, "interrupted by SIGTERM") {
		t.Errorf("exit %d, stderr %q; want 143 and the interruption", code, stderr)
	}
}

// TestE2EClosedBreakerNeedsNoLock: a step that writes nothing takes no
// lock (a closed breaker's admission, a success with no failure counted),
// so a process that holds the key's lock and never lets go (stopped,
// hung) does not hold up fetches of a healthy origin; a failure, which
// must be written, waits for the lock as before.
func TestE2EClosedBreakerNeedsNoLock(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/fail" {
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		w.Write([]byte("ok"))
	}))
	defer srv.Close()
	e := newEnv(t)
	dir := filepath.Join(e.dir, "breaker-state")
	lock := filepath.Join(dir, lockName(srv.URL))
	holdLock(t, lock)
	for range 3 {
		// --max-time: a guard, so that a fetch that waits for the lock
		// fails the test instead of hanging it.
		r := e.run("fetch", "--max-time", "60s", "--state-dir", dir, srv.URL)
		r.wantCode(t, 0)
		if r.stdout != "ok" || r.stderr != "" {
			t.Errorf("stdout %q, stderr %q", r.stdout, r.stderr)
		}
	}
	// A failure must be counted: it waits for the lock (it opens the lock
	// file, which no step of the fetches above did) until --max-time.
	opens := watchOpens(t, lock)
	r := e.run("fetch", "-n", "1", "--max-time", "5s", "--state-dir", dir, srv.URL+"/fail")
	r.wantCode(t, 7)
	if opens() == 0 {
		t.Error("the failure's run ended without coming to the lock")
	}
}

// TestE2EUnwritableStateDirWarnsAtOnce: a state dir that cannot be made
// or written in makes the breaker step aside, with its warning, at the
// first run's first step, although a closed breaker's steps write nothing
// (they read the state without the lock, see TestE2EClosedBreakerNeedsNoLock).
// As root the runs drop to nobody (root writes everywhere).
func TestE2EUnwritableStateDirWarnsAtOnce(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("ok")) }))
	defer srv.Close()
	e := newEnv(t)
	ro := filepath.Join(e.dir, "ro")
	if err := os.Mkdir(ro, 0o755); err != nil {
		t.Fatal(err)
	}
	run := e.run
	if os.Geteuid() == 0 {
		as := nobody(t, e.dir, ro)
		run = func(a ...string) result { return e.runWrapped(as, a...) }
	}
	if err := os.Chmod(ro, 0o555); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.Chmod(ro, 0o755) })
	for _, dir := range []string{filepath.Join(ro, "state"), ro} { // cannot be made; cannot be written in
		r := run("fetch", "--max-time", "60s", "--state-dir", dir, srv.URL)
		r.wantCode(t, 0)
		if r.stdout != "ok" || !strings.Contains(r.stderr, "circuit breaker disabled for this run") ||
			!strings.Contains(r.stderr, "permission denied") {
			t.Errorf("--state-dir %s: stdout %q, stderr %q; want the body and the warning", dir, r.stdout, r.stderr)
		}
	}
}
