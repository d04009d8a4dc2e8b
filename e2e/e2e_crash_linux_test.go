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
)

// stallServer answers /stall with a body cut off mid-way: it announces
// 3 MiB, sends 1 MiB (several of refetch's read chunks) and then nothing
// until the test ends. Other paths
// get a short body.
func stallServer(t *testing.T) *httptest.Server {
	done := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/stall" {
			fmt.Fprint(w, "fresh")
			return
		}
		w.Header().Set("Content-Length", fmt.Sprint(3<<20))
		w.Write(make([]byte, 1<<20))
		w.(http.Flusher).Flush()
		select {
		case <-done:
		case <-r.Context().Done():
		}
	}))
	t.Cleanup(func() { close(done); srv.Close() })
	return srv
}

// openTempFiles lists the temporary files process pid holds open in dir
// that already hold some of the body: unnamed ones show as "dir/#N
// (deleted)" in /proc, named ones by their name.
func openTempFiles(pid int, dir string) []string {
	fds, _ := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	var open []string
	for _, fd := range fds {
		p := fmt.Sprintf("/proc/%d/fd/%s", pid, fd.Name())
		target, err := os.Readlink(p)
		if err != nil || filepath.Dir(target) != dir || filepath.Base(target) == "target" {
			continue
		}
		if st, err := os.Stat(p); err == nil && st.Mode().IsRegular() && st.Size() > 0 {
			open = append(open, target)
		}
	}
	return open
}

// killMidBody starts refetch -o out/target against the stalling server,
// waits until part of the body is in its temporary file, and kills it
// with SIGKILL: no chance to clean up. It returns what the process had
// open.
func killMidBody(t *testing.T, e *env, srv *httptest.Server, dir string) []string {
	t.Helper()
	cmd := e.command(args("-n", "1", "--timeout", "0", "-o", filepath.Join(dir, "target"), srv.URL+"/stall")...)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var open []string
	waitFor(t, "part of the body in the temporary file", func() bool {
		open = openTempFiles(cmd.Process.Pid, dir)
		return len(open) > 0
	})
	cmd.Process.Signal(syscall.SIGKILL)
	cmd.Wait()
	return open
}

func dirEntries(t *testing.T, dir string) []string {
	t.Helper()
	es, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range es {
		names = append(names, e.Name())
	}
	return names
}

// TestE2EKillDuringOutputLeavesNothing: refetch killed with SIGKILL while
// it streams a body into -o leaves the target as it was and no other
// file: the temporary file has no name (O_TMPFILE). Where the file system
// has no unnamed files (simulated with REFETCH_NO_TMPFILE=1), the named
// temporary file a kill leaves is removed by the next run that writes in
// that directory, since its owner is gone.
func TestE2EKillDuringOutputLeavesNothing(t *testing.T) {
	srv := stallServer(t)
	e := newEnv(t)
	dir := filepath.Join(e.dir, "out")
	os.Mkdir(dir, 0o755)
	target := filepath.Join(dir, "target")
	os.WriteFile(target, []byte("old"), 0o644)

	open := killMidBody(t, e, srv, dir)
	if !strings.HasSuffix(open[0], "(deleted)") {
		t.Errorf("the temporary file had a name: %v", open)
	}
	if got := dirEntries(t, dir); len(got) != 1 || got[0] != "target" {
		t.Errorf("after SIGKILL the directory holds %v, want only target", got)
	}
	if data, _ := os.ReadFile(target); string(data) != "old" {
		t.Errorf("target = %q, want the old content", data)
	}

	// Without unnamed files, a kill leaves a named file...
	named := e.with("REFETCH_NO_TMPFILE=1")
	open = killMidBody(t, named, srv, dir)
	left := dirEntries(t, dir)
	if len(left) != 2 || !strings.Contains(open[0], ".target.refetch-") {
		t.Fatalf("with named temp files, SIGKILL left %v (open: %v)", left, open)
	}
	// ...which the next run writing in the directory removes, with
	// unnamed files or without.
	named.run(args("-o", filepath.Join(dir, "other"), srv.URL+"/ok")...).wantCode(t, 0)
	if got := dirEntries(t, dir); len(got) != 2 || got[0] != "other" || got[1] != "target" {
		t.Errorf("after the next run the directory holds %v, want other and target", got)
	}
	if data, _ := os.ReadFile(target); string(data) != "old" {
		t.Errorf("target = %q, want the old content", data)
	}
	// A batch into the directory cleans too.
	killMidBody(t, named, srv, dir)
	e.run(args("-o", filepath.Join(dir, "{name}"), srv.URL+"/a", srv.URL+"/b")...).wantCode(t, 0)
	if got := dirEntries(t, dir); strings.Join(got, " ") != "a b other target" {
		t.Errorf("after a batch the directory holds %v", got)
	}
}
