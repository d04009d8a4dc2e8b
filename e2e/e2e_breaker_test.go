package e2e

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

func TestE2EBreakerOpensAcrossRuns(t *testing.T) {
	t.Parallel()
	var c counter
	srv := downServer(t, &c)
	e := newEnv(t)
	e.run(args(srv.URL)...).wantCode(t, 4) // 3 attempts: opens the breaker
	before := c.get()
	r := e.run(args(srv.URL + "/other/path")...)
	r.wantCode(t, 5)
	if c.get() != before {
		t.Errorf("a request was sent while the circuit was open")
	}
	for _, want := range []string{"circuit open", srv.URL + " is open since", "3 consecutive failures",
		"503 Service Unavailable", "next trial at", "refetch breaker reset '" + srv.URL + "'"} {
		if !strings.Contains(r.stderr, want) {
			t.Errorf("stderr lacks %q:\n%s", want, r.stderr)
		}
	}
	rep := e.run(args("--json", srv.URL)...).report(t)
	if rep["exit_code"] != 5.0 || rep["breaker"].(map[string]any)["state"] != "open" || len(rep["attempts"].([]any)) != 0 {
		t.Errorf("report = %v", rep)
	}

	st := e.run("breaker", "status", "--json")
	st.wantCode(t, 0)
	var list []map[string]any
	if err := json.Unmarshal([]byte(st.stdout), &list); err != nil || len(list) != 1 {
		t.Fatalf("status --json = %q (%v)", st.stdout, err)
	}
	for _, k := range []string{"key", "state", "consecutive_failures", "opened_at", "retry_at"} {
		if _, ok := list[0][k]; !ok {
			t.Errorf("status lacks %q: %v", k, list[0])
		}
	}
	if list[0]["key"] != srv.URL || list[0]["state"] != "open" || list[0]["consecutive_failures"] != 3.0 {
		t.Errorf("status = %v", list[0])
	}
	table := e.run("breaker", "status")
	if !strings.Contains(table.stdout, "KEY") || !strings.Contains(table.stdout, srv.URL) || !strings.Contains(table.stdout, "open") {
		t.Errorf("status table:\n%s", table.stdout)
	}

	e.run("breaker", "reset", srv.URL).wantCode(t, 0)
	e.run(args("-n", "1", srv.URL)...).wantCode(t, 4)
	if c.get() != before+1 {
		t.Errorf("after reset no request was sent")
	}
	e.run("breaker", "reset").wantCode(t, 2)
	e.run("breaker", "reset", "--all").wantCode(t, 0)
	st = e.run("breaker", "status", "--json")
	if strings.TrimSpace(st.stdout) != "[]" {
		t.Errorf("after reset --all: %q", st.stdout)
	}
}

func TestE2EBreakerTrialClosesIt(t *testing.T) {
	t.Parallel()
	var healthy bool
	var mu sync.Mutex
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		if !healthy {
			http.Error(w, "down", http.StatusServiceUnavailable)
			return
		}
		fmt.Fprint(w, "back")
	}))
	defer srv.Close()
	e := newEnv(t)
	e.run(args("--breaker-reset", "50ms", srv.URL)...).wantCode(t, 4)
	mu.Lock()
	healthy = true
	mu.Unlock()
	waitFor(t, "the reset period", func() bool {
		return e.run(args("--breaker-reset", "50ms", "-n", "1", srv.URL)...).code == 0
	})
	st := e.run("breaker", "status", srv.URL, "--json")
	if !strings.Contains(st.stdout, `"state":"closed"`) {
		t.Errorf("status after a good trial: %s", st.stdout)
	}
}

func TestE2EBreakerKeyAndOff(t *testing.T) {
	t.Parallel()
	srv := downServer(t, nil)
	e := newEnv(t)
	e.run(args("--breaker-key", "shared", "--breaker-failures", "1", "-n", "1", srv.URL)...).wantCode(t, 4)
	e.run(args("--breaker-key", "shared", srv.URL)...).wantCode(t, 5)
	e.run(args("-n", "1", srv.URL)...).wantCode(t, 4) // another key
	e.run(args("--breaker-key", "shared", "--breaker-failures", "0", "-n", "1", srv.URL)...).wantCode(t, 4)
	stateDir := filepath.Join(e.dir, "elsewhere")
	e.run(args("--state-dir", stateDir, "--breaker-failures", "1", "-n", "1", srv.URL)...).wantCode(t, 4)
	e.with("REFETCH_STATE_DIR="+stateDir).run(args(srv.URL)...).wantCode(t, 5)
	if _, err := os.Stat(stateDir); err != nil {
		t.Error(err)
	}
}

func TestE2EBreakerCorruptAndUnusableStore(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { fmt.Fprint(w, "ok") }))
	defer srv.Close()
	e := newEnv(t)
	stateDir := filepath.Join(e.dir, "state", "refetch")
	// A failure writes the state file; then corrupt it.
	e.run(args("-n", "1", "http://127.0.0.1:1/")...)
	files, _ := filepath.Glob(filepath.Join(stateDir, "*.json"))
	if len(files) == 0 {
		t.Fatal("no state file written")
	}
	for _, f := range files {
		os.WriteFile(f, []byte("{garbage"), 0o600)
	}
	// breaker status lists without changing anything, and says so.
	r := e.run("breaker", "status")
	if !strings.Contains(r.stderr, "unreadable") || !strings.Contains(r.stderr, "not listed (the next run of its key replaces it)") {
		t.Errorf("breaker status on a corrupt state file:\n%s", r.stderr)
	}
	if data, _ := os.ReadFile(files[0]); string(data) != "{garbage" {
		t.Errorf("breaker status changed the corrupt file: %q", data)
	}
	r = e.run(args("-n", "1", "http://127.0.0.1:1/")...)
	r.wantCode(t, 4)
	if !strings.Contains(r.stderr, "unreadable") || !strings.Contains(r.stderr, "replaced by a fresh closed state") {
		t.Errorf("corrupt state not reported:\n%s", r.stderr)
	}
	// A state dir that cannot be created: the breaker steps aside.
	blocker := filepath.Join(e.dir, "blocker")
	os.WriteFile(blocker, nil, 0o600)
	r = e.run(args("--state-dir", filepath.Join(blocker, "state"), srv.URL)...)
	r.wantCode(t, 0)
	if r.stdout != "ok" || !strings.Contains(r.stderr, "circuit breaker disabled") {
		t.Errorf("stdout %q, stderr:\n%s", r.stdout, r.stderr)
	}
}

// TestE2EBreakerNoLostUpdates starts 48 processes at once on one key; each
// records one failure, and the count must come out exact.
func TestE2EBreakerNoLostUpdates(t *testing.T) {
	t.Parallel()
	const procs = 48
	srv := downServer(t, nil)
	e := newEnv(t)
	start := make(chan struct{})
	var wg sync.WaitGroup
	errs := make(chan error, procs)
	for i := 0; i < procs; i++ {
		cmd := e.command(args("-q", "-n", "1", "--breaker-failures", "1000", "--breaker-key", "many", srv.URL)...)
		wg.Add(1)
		go func(cmd *exec.Cmd) {
			defer wg.Done()
			<-start
			if err := cmd.Run(); err == nil {
				errs <- fmt.Errorf("a run succeeded against a failing server")
			}
		}(cmd)
	}
	close(start)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	st := e.run("breaker", "status", "many", "--json")
	var list []map[string]any
	if err := json.Unmarshal([]byte(st.stdout), &list); err != nil || len(list) != 1 {
		t.Fatalf("status = %q", st.stdout)
	}
	if list[0]["consecutive_failures"] != float64(procs) {
		t.Errorf("consecutive_failures = %v, want %d: updates were lost", list[0]["consecutive_failures"], procs)
	}
}
