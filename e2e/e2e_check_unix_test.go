//go:build unix

package e2e

import (
	"os"
	"os/exec"
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

// Item 4: check's verdict must reach its reader. A closed stdout is exit 1
// before any request, as for fetch, probe and breaker status; a stdout
// that refuses the results (a full device) is exit 1 naming the verdict,
// in text mode as with --json.
func TestE2ECheckStdoutUnusable(t *testing.T) {
	t.Parallel()
	srv, c := healthServer(t)
	e := newEnv(t)
	for _, mode := range []string{"", "--json"} {
		script := `"$0" check $2 "$1" >&-`
		cmd := exec.Command("sh", "-c", script, binary, srv.URL+"/health", mode)
		cmd.Env, cmd.Dir = e.vars, e.dir
		out, err := cmd.CombinedOutput()
		code := 0
		if ee, ok := err.(*exec.ExitError); ok {
			code = ee.ExitCode()
		}
		if code != 1 || !strings.Contains(string(out), "stdout is closed") || c.get() != 0 {
			t.Errorf("closed stdout %q: exit %d, %d requests, output %q", mode, code, c.get(), out)
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
