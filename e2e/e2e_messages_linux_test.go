//go:build linux

package e2e

import (
	"path/filepath"
	"strings"
	"testing"
)

// TestE2EOutputWriteFailureNamesTheFlag: a body that cannot be written to
// -o (a full device, made for the test) is a local failure, exit 1, worded
// under -o on stderr and in --json; so is a fallback that cannot be
// written there.
func TestE2EOutputWriteFailureNamesTheFlag(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	full := filepath.Join(e.dir, "full")
	mknodChar(t, full, 1, 7)
	var c counter
	srv := bodyServer(t, &c)
	want := "writing output: -o " + full + ": no space left on device (the file system is full)"

	r := e.run(args("-o", full, srv.URL)...)
	r.wantCode(t, 1)
	if r.stderr != "refetch: "+want+"\n" {
		t.Errorf("stderr %q, want %q", r.stderr, want)
	}
	r = e.run(args("--json", "-o", full, srv.URL)...)
	r.wantCode(t, 1)
	if rep := r.report(t); rep["error"] != want || rep["exit_code"] != float64(1) {
		t.Errorf("--json error %q, exit_code %v", rep["error"], rep["exit_code"])
	}

	down := downServer(t, nil)
	r = e.run(args("-n", "1", "--breaker-failures", "0", "--fallback", "x", "-o", full, down.URL)...)
	r.wantCode(t, 1)
	if !strings.Contains(r.stderr, "refetch: cannot serve the fallback: "+want+" (the fetch had failed: ") {
		t.Errorf("stderr %q", r.stderr)
	}
}
