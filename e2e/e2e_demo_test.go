package e2e

import (
	"bufio"
	"debug/buildinfo"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

func TestE2EDemo(t *testing.T) {
	e := newEnv(t)
	start := time.Now()
	r := e.run("demo")
	r.wantCode(t, 0)
	for _, want := range []string{
		"attempt 1/3: 503 Service Unavailable; retrying in 200ms",
		`stdout: {"items":["apple","pear"],"source":"flaky"}`,
		"(Retry-After 1s)",
		"opened after 3 consecutive failures",
		"→ exit 4",
		"→ exit 5: failed fast",
		// The hint names the demo's own state dir, so it works as shown.
		"reset with: refetch breaker reset --state-dir '",
		"serving fallback",
		`stdout: {"items":[]}`,
	} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("demo output lacks %q:\n%s", want, r.stdout)
		}
	}
	if strings.Contains(r.stdout, "\x1b[") {
		t.Error("color codes on a non-terminal")
	}
	// The demo must never touch the user's state dir.
	if _, err := os.Stat(e.dir + "/state/refetch"); err == nil {
		t.Error("demo wrote into the user's state dir")
	}
	if took := time.Since(start); took > 15*time.Second {
		t.Errorf("demo took %v, promised under 15s", took)
	}
}

func TestE2EDemoServe(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	cmd := e.command("demo", "--serve", "127.0.0.1:0")
	stdout, _ := cmd.StdoutPipe()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	sc := bufio.NewScanner(stdout)
	if !sc.Scan() {
		t.Fatal("no output from demo --serve")
	}
	base := regexp.MustCompile(`http://127\.0\.0\.1:\d+`).FindString(sc.Text())
	if base == "" {
		t.Fatalf("no address in %q", sc.Text())
	}
	go io.Copy(io.Discard, stdout)
	resp, err := http.Get(base + "/ok")
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("GET /ok: %v %v", resp, err)
	}
	resp.Body.Close()
	r := e.run(append(args(), base+"/flaky")...)
	r.wantCode(t, 0)
	if !strings.Contains(r.stdout, "flaky") {
		t.Errorf("stdout = %q", r.stdout)
	}
	cmd.Process.Signal(os.Interrupt)
	cmd.Wait()
	if code := cmd.ProcessState.ExitCode(); code != 130 {
		t.Errorf("exit code after SIGINT = %d", code)
	}
}

func TestE2EVersionAndCompletion(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	for _, a := range [][]string{{"version"}, {"--version"}} {
		r := e.run(a...)
		r.wantCode(t, 0)
		if !regexp.MustCompile(`^refetch \S+ \(commit \S+, built \S+\)\n$`).MatchString(r.stdout) {
			t.Errorf("%v: %q", a, r.stdout)
		}
	}
	for shell, want := range map[string]string{"bash": "complete -o default", "zsh": "#compdef refetch",
		"fish": "complete -c refetch", "powershell": "Register-ArgumentCompleter"} {
		r := e.run("completion", shell)
		r.wantCode(t, 0)
		if !strings.Contains(r.stdout, want) {
			t.Errorf("completion %s lacks %q", shell, want)
		}
	}
}

func TestE2EVersionFromLdflagsAndBuildInfo(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	bin := filepath.Join(dir, "refetch-ld")
	ld := "-X github.com/refetch/refetch/cmd.Version=v9.8.7 -X github.com/refetch/refetch/cmd.Commit=abc123 -X github.com/refetch/refetch/cmd.Date=2026-01-02T03:04:05Z"
	if out, err := exec.Command("go", "build", "-ldflags", ld, "-o", bin, "..").CombinedOutput(); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	out, _ := exec.Command(bin, "--version").Output()
	if string(out) != "refetch v9.8.7 (commit abc123, built 2026-01-02T03:04:05Z)\n" {
		t.Errorf("ldflags version: %q", out)
	}
	// Without ldflags, a build in a git checkout takes commit and date
	// from the build info (as go install does).
	if exec.Command("git", "rev-parse", "HEAD").Run() != nil {
		t.Skip("not a git checkout")
	}
	cmd := exec.Command("go", "build", "-buildvcs=true", "-o", bin, "..")
	cmd.Env = append(os.Environ(), "GOFLAGS=")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Skipf("no VCS stamping here: %v: %s", err, out)
	}
	// The go command stamps nothing in a git worktree (.git is a file
	// there, not a dir): nothing for refetch to read, nothing to test.
	if !stamped(t, bin) {
		t.Skip("the go command stamped no VCS revision here (a git worktree?)")
	}
	out, _ = exec.Command(bin, "version").Output()
	if !regexp.MustCompile(`^refetch \S+ \(commit [0-9a-f]{40}, built \d{4}-\d\d-\d\dT`).Match(out) {
		t.Errorf("build-info version: %q", out)
	}
}

// stamped reports whether the binary at path carries a VCS revision in
// its build info.
func stamped(t *testing.T, path string) bool {
	t.Helper()
	bi, err := buildinfo.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range bi.Settings {
		if s.Key == "vcs.revision" && s.Value != "" {
			return true
		}
	}
	return false
}
