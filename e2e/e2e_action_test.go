package e2e

import (
	"archive/tar"
	"compress/gzip"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"

	"go.yaml.in/yaml/v3"
)

// The GitHub Action (action.yml) is tested by running its steps' scripts
// with bash as the runner does (bash --noprofile --norc -eo pipefail),
// each step's env evaluated from the inputs, against the binary these
// tests built and loopback servers.

type actionStep struct {
	Name  string            `yaml:"name"`
	Shell string            `yaml:"shell"`
	Run   string            `yaml:"run"`
	Env   map[string]string `yaml:"env"`
}

type actionInput struct {
	Description string `yaml:"description"`
	Required    bool   `yaml:"required"`
	Default     string `yaml:"default"`
}

type action struct {
	Name        string `yaml:"name"`
	Description string `yaml:"description"`
	Author      string `yaml:"author"`
	Branding    struct {
		Icon  string `yaml:"icon"`
		Color string `yaml:"color"`
	} `yaml:"branding"`
	Inputs map[string]actionInput `yaml:"inputs"`
	Runs   struct {
		Using string       `yaml:"using"`
		Steps []actionStep `yaml:"steps"`
	} `yaml:"runs"`
}

func loadAction(t *testing.T) action {
	t.Helper()
	b, err := os.ReadFile("../action.yml")
	if err != nil {
		t.Fatal(err)
	}
	var a action
	dec := yaml.NewDecoder(strings.NewReader(string(b)))
	dec.KnownFields(true)
	if err := dec.Decode(&a); err != nil {
		t.Fatalf("action.yml: %v", err)
	}
	return a
}

var inputExpr = regexp.MustCompile(`^\$\{\{ inputs\.([a-z-]+) \}\}$`)

// TestActionYAML checks the action's shape: a composite action with the
// documented inputs, whose scripts see inputs only through env variables.
func TestActionYAML(t *testing.T) {
	t.Parallel()
	a := loadAction(t)
	if a.Runs.Using != "composite" || len(a.Runs.Steps) != 2 {
		t.Fatalf("runs: using %q with %d steps, want composite with install and check", a.Runs.Using, len(a.Runs.Steps))
	}
	var names []string
	for n := range a.Inputs {
		names = append(names, n)
	}
	slices.Sort(names)
	if want := []string{"args", "expect-json", "expect-status", "report", "urls", "version", "wait"}; !slices.Equal(names, want) {
		t.Errorf("inputs = %v, want %v", names, want)
	}
	for n, in := range a.Inputs {
		if in.Description == "" {
			t.Errorf("input %s has no description", n)
		}
		if n == "urls" != in.Required {
			t.Errorf("input %s: required = %v", n, in.Required)
		}
		if n != "version" && n != "urls" && in.Default != "" {
			t.Errorf("input %s: default %q, want empty (flag not given)", n, in.Default)
		}
	}
	version := a.Inputs["version"].Default
	if !regexp.MustCompile(`^v\d+\.\d+\.\d+$`).MatchString(version) {
		t.Errorf("version default %q is not a pinned release tag", version)
	}
	readme, _ := os.ReadFile("../README.md")
	if !strings.Contains(string(readme), "uses: refetch/refetch@"+version+"\n") {
		t.Errorf("README.md has no workflow using refetch/refetch@%s", version)
	}
	used := map[string]int{}
	for _, s := range a.Runs.Steps {
		if s.Shell != "bash" {
			t.Errorf("step %q: shell %q, want bash", s.Name, s.Shell)
		}
		if strings.Contains(s.Run, "${{") {
			t.Errorf("step %q interpolates an expression into its script", s.Name)
		}
		for k, v := range s.Env {
			m := inputExpr.FindStringSubmatch(v)
			if m == nil {
				t.Errorf("step %q: env %s = %q, want exactly ${{ inputs.NAME }}", s.Name, k, v)
				continue
			}
			if _, ok := a.Inputs[m[1]]; !ok {
				t.Errorf("step %q: env %s names no input", s.Name, k)
			}
			used[m[1]]++
		}
	}
	for _, n := range names {
		if used[n] != 1 {
			t.Errorf("input %s reaches the steps %d times, want once", n, used[n])
		}
	}
}

// actionRun is the state one run of the action shares between its steps.
type actionRun struct {
	t          *testing.T
	e          *env
	a          action
	runnerTemp string
	githubPath string
}

func newActionRun(t *testing.T, vars ...string) *actionRun {
	r := &actionRun{t: t, a: loadAction(t), runnerTemp: t.TempDir()}
	r.githubPath = filepath.Join(t.TempDir(), "github_path")
	if err := os.WriteFile(r.githubPath, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	r.e = newEnv(t).with(append([]string{"RUNNER_TEMP=" + r.runnerTemp, "GITHUB_PATH=" + r.githubPath}, vars...)...)
	return r
}

// step runs step i with the inputs given (the rest take their defaults)
// and, as the runner does, the directories added to GITHUB_PATH by earlier
// steps first in PATH.
func (r *actionRun) step(i int, inputs map[string]string) result {
	r.t.Helper()
	s := r.a.Runs.Steps[i]
	script := filepath.Join(r.t.TempDir(), "step.sh")
	if err := os.WriteFile(script, []byte(s.Run), 0o644); err != nil {
		r.t.Fatal(err)
	}
	vars := slices.Clone(r.e.vars)
	for k, v := range s.Env {
		name := inputExpr.FindStringSubmatch(v)[1]
		val, ok := inputs[name]
		if !ok {
			val = r.a.Inputs[name].Default
		}
		vars = append(vars, k+"="+val)
	}
	b, _ := os.ReadFile(r.githubPath)
	for _, dir := range strings.Fields(string(b)) {
		for j, v := range vars {
			if p, ok := strings.CutPrefix(v, "PATH="); ok {
				vars[j] = "PATH=" + dir + string(os.PathListSeparator) + p
			}
		}
	}
	c := exec.Command("bash", "--noprofile", "--norc", "-eo", "pipefail", script)
	c.Env = vars
	c.Dir = r.e.dir
	var out, errOut strings.Builder
	c.Stdout, c.Stderr = &out, &errOut
	err := c.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		r.t.Fatalf("running step %q: %v", s.Name, err)
	}
	return result{stdout: out.String(), stderr: errOut.String(), code: code}
}

func (r *actionRun) installedDir() string {
	b, _ := os.ReadFile(r.githubPath)
	return strings.TrimSpace(string(b))
}

// actionServer answers /ok with {"status": "ok"}, /nocontent with 204,
// and /flaky with 503 to its first four requests; it records the
// X-Probe header of every request.
type actionServer struct {
	*httptest.Server
	mu     sync.Mutex
	flaky  int
	probes []string
}

func newActionServer(t *testing.T) *actionServer {
	h := &actionServer{}
	h.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h.mu.Lock()
		h.probes = append(h.probes, r.Header.Get("X-Probe"))
		h.mu.Unlock()
		switch r.URL.Path {
		case "/nocontent":
			w.WriteHeader(http.StatusNoContent)
			return
		case "/flaky":
			h.mu.Lock()
			h.flaky++
			n := h.flaky
			h.mu.Unlock()
			if n <= 4 {
				http.Error(w, "starting", http.StatusServiceUnavailable)
				return
			}
		}
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprint(w, `{"status": "ok"}`)
	}))
	t.Cleanup(h.Close)
	return h
}

func (h *actionServer) requests() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return slices.Clone(h.probes)
}

// TestActionRunsCheckWithInputs installs the binary these tests built
// (REFETCH_ACTION_BINARY) and checks that each input reaches refetch
// check as the flag it names, an empty one as no flag, and that no input
// is ever run as shell code.
func TestActionRunsCheckWithInputs(t *testing.T) {
	t.Parallel()
	srv := newActionServer(t)
	r := newActionRun(t, "REFETCH_ACTION_BINARY="+binary)
	inst := r.step(0, nil)
	inst.wantCode(t, 0)
	dir := r.installedDir()
	if !strings.HasPrefix(dir, r.runnerTemp) {
		t.Fatalf("GITHUB_PATH holds %q, want a dir under RUNNER_TEMP", dir)
	}
	if !strings.HasPrefix(inst.stdout, "refetch ") {
		t.Errorf("install step does not print the version: %q", inst.stdout)
	}
	if _, err := os.Stat(filepath.Join(dir, "refetch")); err != nil {
		t.Fatal(err)
	}
	fast := "--delay 10ms --jitter 0 --multiplier 1"

	t.Run("all inputs", func(t *testing.T) {
		res := r.step(1, map[string]string{
			"urls":          "\n  " + srv.URL + "/ok\n" + srv.URL + "/flaky  ",
			"wait":          "30s",
			"expect-status": "200",
			"expect-json":   `.status == "ok"`,
			"args":          fast + ` --json --expect-header 'Content-Type: ^application/json'`,
		})
		res.wantCode(t, 0)
		var rep struct {
			Healthy bool
			Results []struct {
				URL      string
				Healthy  bool
				Attempts int
			}
		}
		if err := json.Unmarshal([]byte(res.stdout), &rep); err != nil {
			t.Fatalf("--json from args not passed: %v\n%s", err, res.stdout)
		}
		if !rep.Healthy || len(rep.Results) != 2 {
			t.Fatalf("report: %+v", rep)
		}
		// Five attempts on /flaky: --wait lifted the default of three.
		for _, x := range rep.Results {
			if strings.HasSuffix(x.URL, "/flaky") && x.Attempts != 5 {
				t.Errorf("/flaky took %d attempts, want 5 (was --wait passed?)", x.Attempts)
			}
		}
	})

	t.Run("each expectation is passed", func(t *testing.T) {
		for _, c := range []struct {
			in   map[string]string
			code int
		}{
			{map[string]string{"expect-status": "200"}, 8},
			{map[string]string{"expect-status": "204"}, 0},
			{map[string]string{"expect-status": "200", "urls": srv.URL + "/ok", "expect-json": `.status == "down"`}, 8},
			{map[string]string{"args": "--expect-header 'Content-Type: ^text/html'"}, 8},
		} {
			in := map[string]string{"urls": srv.URL + "/nocontent", "args": "--attempts 1"}
			for k, v := range c.in {
				if k == "args" {
					v = in["args"] + " " + v
				}
				in[k] = v
			}
			r.step(1, in).wantCode(t, c.code)
		}
	})

	t.Run("empty inputs are flags not given", func(t *testing.T) {
		// --wait= or --expect-status= would be a usage error (exit 2).
		r.step(1, map[string]string{"urls": srv.URL + "/nocontent", "wait": "", "expect-status": "", "expect-json": "", "args": ""}).wantCode(t, 0)
	})

	t.Run("inputs are never shell code", func(t *testing.T) {
		before := len(srv.requests())
		res := r.step(1, map[string]string{
			"urls":        srv.URL + "/ok",
			"expect-json": `.status == "$(touch pwned1)"`,
			"args":        `--attempts 1 -H 'X-Probe: $(touch pwned2); ` + "`touch pwned3`" + ` *' --json`,
		})
		res.wantCode(t, 8)
		for _, f := range []string{"pwned1", "pwned2", "pwned3"} {
			if _, err := os.Stat(filepath.Join(r.e.dir, f)); err == nil {
				t.Errorf("an input ran as shell code: %s exists", f)
			}
		}
		probes := srv.requests()[before:]
		if want := "$(touch pwned2); `touch pwned3` *"; len(probes) != 1 || probes[0] != want {
			t.Errorf("X-Probe = %q, want [%q]", probes, want)
		}
		if !strings.Contains(res.stdout, `$(touch pwned1)`) {
			t.Errorf("the failed expectation does not quote the expression as given:\n%s", res.stdout)
		}
	})

	t.Run("a URL that looks like a flag stays a URL", func(t *testing.T) {
		// After "--", "--help" reaches refetch as a URL, not as the help
		// flag (which would print help and exit 0): refetch refuses it as
		// a host name, before any request.
		before := len(srv.requests())
		res := r.step(1, map[string]string{"urls": "--help", "args": "--attempts 1"})
		res.wantCode(t, 2)
		if !strings.Contains(res.stderr, `invalid URL "--help"`) || strings.Contains(res.stdout, "Usage:") {
			t.Errorf("stdout %q, stderr %q", res.stdout, res.stderr)
		}
		if len(srv.requests()) != before {
			t.Error("a request was sent")
		}
	})

	t.Run("CRLF line ends in urls and report", func(t *testing.T) {
		// A value written with CRLF line ends (a Windows tool's step
		// output) splits as args does: no report named "x.xml\r", no URL
		// ending in CR (a tour found the report written under that name).
		xml := filepath.Join(r.e.dir, "crlf.xml")
		res := r.step(1, map[string]string{"urls": srv.URL + "/ok\r\n" + srv.URL + "/ok?b\r\n", "report": "junit=" + xml + "\r\n"})
		res.wantCode(t, 0)
		if _, err := os.Stat(xml); err != nil {
			t.Errorf("the report is not at %s: %v", xml, err)
		}
		if _, err := os.Stat(xml + "\r"); err == nil {
			t.Errorf("the report was written as %q", xml+"\r")
		}
	})

	t.Run("an unmatched quote in args", func(t *testing.T) {
		before := len(srv.requests())
		res := r.step(1, map[string]string{"urls": srv.URL + "/ok", "args": `--expect-body 'abc`})
		res.wantCode(t, 2)
		if !strings.Contains(res.stdout, "::error::refetch: args has an unmatched quote") {
			t.Errorf("stdout = %q", res.stdout)
		}
		if n := len(srv.requests()) - before; n != 0 {
			t.Errorf("%d requests after a bad args input", n)
		}
	})
}

// releaseServer serves a release's archive and checksums.txt as GitHub's
// release downloads do, under /TAG/.
func releaseServer(t *testing.T, tag string, archive []byte, checksums string) (*httptest.Server, *counter) {
	var hits counter
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.next()
		switch r.URL.Path {
		case "/" + tag + "/refetch_" + strings.TrimPrefix(tag, "v") + "_linux_amd64.tar.gz":
			w.Write(archive)
		case "/" + tag + "/checksums.txt":
			fmt.Fprint(w, checksums)
		default:
			http.NotFound(w, r)
		}
	}))
	t.Cleanup(srv.Close)
	return srv, &hits
}

// releaseArchive is a tar.gz like goreleaser's: the binary, README.md.
func releaseArchive(t *testing.T) []byte {
	bin, err := os.ReadFile(binary)
	if err != nil {
		t.Fatal(err)
	}
	var buf strings.Builder
	// Stored, not compressed: the archive's bytes need only be a valid
	// tar.gz, and compressing the (race-enabled) binary takes seconds.
	gz, _ := gzip.NewWriterLevel(&buf, gzip.NoCompression)
	tw := tar.NewWriter(gz)
	for _, f := range []struct {
		name string
		body []byte
	}{{"README.md", []byte("# refetch\n")}, {"refetch", bin}} {
		tw.WriteHeader(&tar.Header{Name: f.name, Mode: 0o755, Size: int64(len(f.body))})
		tw.Write(f.body)
	}
	tw.Close()
	gz.Close()
	return []byte(buf.String())
}

// TestActionInstallVerifiesChecksums runs the install step's download
// path against a loopback release server (REFETCH_ACTION_DOWNLOAD_URL).
func TestActionInstallVerifiesChecksums(t *testing.T) {
	t.Parallel()
	if _, err := exec.LookPath("curl"); err != nil {
		t.Skip("curl is not installed")
	}
	archive := releaseArchive(t)
	name := "refetch_0.3.0_linux_amd64.tar.gz"
	good := fmt.Sprintf("%x  refetch_0.3.0_linux_arm64.tar.gz\n%x  %s\n", sha256.Sum256([]byte("other")), sha256.Sum256(archive), name)
	runner := []string{"RUNNER_OS=Linux", "RUNNER_ARCH=X64"}

	t.Run("verified", func(t *testing.T) {
		srv, _ := releaseServer(t, "v0.3.0", archive, good)
		r := newActionRun(t, append(runner, "REFETCH_ACTION_DOWNLOAD_URL="+srv.URL)...)
		res := r.step(0, map[string]string{"version": "v0.3.0"})
		res.wantCode(t, 0)
		if !strings.Contains(res.stdout, name+": OK\nrefetch ") {
			t.Errorf("stdout = %q", res.stdout)
		}
		out, err := exec.Command(filepath.Join(r.installedDir(), "refetch"), "version").Output()
		if err != nil || !strings.HasPrefix(string(out), "refetch ") {
			t.Errorf("installed binary: %v %q", err, out)
		}
	})

	for _, c := range []struct{ name, checksums string }{
		{"tampered", strings.Replace(good, fmt.Sprintf("%x", sha256.Sum256(archive)), fmt.Sprintf("%x", sha256.Sum256([]byte("x"))), 1)},
		{"not listed", fmt.Sprintf("%x  refetch_0.3.0_linux_arm64.tar.gz\n", sha256.Sum256(archive))},
		{"listed twice", good + good},
	} {
		t.Run(c.name, func(t *testing.T) {
			srv, _ := releaseServer(t, "v0.3.0", archive, c.checksums)
			r := newActionRun(t, append(runner, "REFETCH_ACTION_DOWNLOAD_URL="+srv.URL)...)
			res := r.step(0, map[string]string{"version": "v0.3.0"})
			if res.code == 0 {
				t.Fatalf("install succeeded: %s", res.stdout)
			}
			// Every failure is an annotation, the mismatch too (a tour
			// saw only sha256sum's own WARNING).
			if !strings.Contains(res.stdout, "::error::refetch: ") {
				t.Errorf("no ::error:: annotation: stdout %q", res.stdout)
			}
			if dir := r.installedDir(); dir != "" {
				t.Errorf("GITHUB_PATH got %q", dir)
			}
			matches, _ := filepath.Glob(filepath.Join(r.runnerTemp, "refetch-action", "bin", "*"))
			if len(matches) != 0 {
				t.Errorf("installed %v despite the bad checksum", matches)
			}
		})
	}

	for _, c := range []struct{ name, version, runnerOS string }{
		{"not a tag", "latest", "Linux"},
		{"shell in the version", "v0.3.0; touch pwned", "Linux"},
		{"no release for the runner", "v0.3.0", "macOS"},
	} {
		t.Run(c.name, func(t *testing.T) {
			srv, hits := releaseServer(t, "v0.3.0", archive, good)
			r := newActionRun(t, "RUNNER_OS="+c.runnerOS, "RUNNER_ARCH=X64", "REFETCH_ACTION_DOWNLOAD_URL="+srv.URL)
			res := r.step(0, map[string]string{"version": c.version})
			res.wantCode(t, 2)
			if !strings.HasPrefix(res.stdout, "::error::refetch: ") || hits.get() != 0 {
				t.Errorf("stdout %q, %d requests", res.stdout, hits.get())
			}
		})
	}
}

// fakeRefetch puts a refetch on the action's PATH (through GITHUB_PATH,
// as the install step does) that prints each argument it gets, NUL-ended,
// so a test sees the words the check step passes.
func fakeRefetch(t *testing.T, r *actionRun) {
	t.Helper()
	dir := t.TempDir()
	script := "#!/bin/sh\nprintf '%s\\0' \"$@\"\n"
	if err := os.WriteFile(filepath.Join(dir, "refetch"), []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(r.githubPath, []byte(dir+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
}

// argWords runs the check step with args and returns the words refetch
// got between "check" and "--".
func argWords(t *testing.T, r *actionRun, args string) ([]string, result) {
	t.Helper()
	res := r.step(1, map[string]string{"urls": "http://x.test/", "args": args})
	if res.code != 0 {
		return nil, res
	}
	words := strings.Split(strings.TrimSuffix(res.stdout, "\x00"), "\x00")
	if len(words) < 3 || words[0] != "check" || words[len(words)-2] != "--" {
		t.Fatalf("args %q: refetch got %q", args, words)
	}
	return words[1 : len(words)-2], res
}

// TestActionArgsSplitAsAShellWould: the check step's args input is split
// into the words bash itself would make of it (bash is the oracle, for
// inputs it would not expand), and hostile inputs are never run or
// expanded: $(…), backquotes, variables and globs reach refetch as typed.
func TestActionArgsSplitAsAShellWould(t *testing.T) {
	t.Parallel()
	r := newActionRun(t)
	fakeRefetch(t, r)
	for _, args := range []string{
		`--expect-body ok`,
		`-H "X-Probe: a\"b"`,
		`-H 'X-Probe: it'\''s' --x "y z"`,
		`"a\\b" "c\d" a\ b e"f"g '' ""`,
		"--expect-json '.status\n== \"ok\"' next",
		"\"joined\\\nline\" a\\\nb",
		"  lead\ttab\n\nblank  ",
		`"\` + "`" + `x\` + "`" + `" '"' "'"`,
	} {
		got, res := argWords(t, r, args)
		if got == nil {
			t.Errorf("args %q: exit %d, stdout %q", args, res.code, res.stdout)
			continue
		}
		// In an array's parentheses bash splits at newlines too.
		oracle, err := exec.Command("bash", "-c", "a=(\n"+args+"\n); printf '%s\\0' \"${a[@]}\"").Output()
		if err != nil {
			t.Fatalf("bash %q: %v", args, err)
		}
		want := strings.Split(strings.TrimSuffix(string(oracle), "\x00"), "\x00")
		if !slices.Equal(got, want) {
			t.Errorf("args %q: words %q, bash makes %q", args, got, want)
		}
	}

	// What a shell would expand stays as typed: nothing is run.
	hostile := `-H "X-Probe: $(touch pwned1) ` + "`touch pwned2`" + ` $HOME" \$(touch pwned3) $(touch pwned4) ` + "`touch pwned5`" + ` ~ * "a\$b"`
	got, res := argWords(t, r, hostile)
	want := []string{"-H", "X-Probe: $(touch pwned1) `touch pwned2` $HOME", "$(touch", "pwned3)", "$(touch", "pwned4)", "`touch", "pwned5`", "~", "*", "a$b"}
	if !slices.Equal(got, want) {
		t.Errorf("hostile args: words %q, want %q (stdout %q)", got, want, res.stdout)
	}
	for i := 1; i <= 5; i++ {
		if _, err := os.Stat(filepath.Join(r.e.dir, fmt.Sprintf("pwned%d", i))); err == nil {
			t.Errorf("args ran as shell code: pwned%d exists", i)
		}
	}

	for _, bad := range []string{`"a`, `'a`, `a\`, `"a\"`, "'two\nlines"} {
		res := r.step(1, map[string]string{"urls": "http://x.test/", "args": bad})
		if res.code != 2 || !strings.HasPrefix(res.stdout, "::error::refetch: args ") || strings.Count(res.stdout, "\n") != 1 {
			t.Errorf("args %q: exit %d, stdout %q", bad, res.code, res.stdout)
		}
	}
}

// TestActionWorkflowCommandsEscaped: an input in a workflow command is
// escaped (%, CR, LF), so a version holding a newline cannot start a
// command of its own.
func TestActionWorkflowCommandsEscaped(t *testing.T) {
	t.Parallel()
	srv, hits := releaseServer(t, "v0.3.0", nil, "")
	r := newActionRun(t, "RUNNER_OS=Linux", "RUNNER_ARCH=X64", "REFETCH_ACTION_DOWNLOAD_URL="+srv.URL)
	res := r.step(0, map[string]string{"version": "v1\n::warning::forged%0A\r::add-mask::x"})
	res.wantCode(t, 2)
	lines := strings.Split(strings.TrimRight(res.stdout, "\n"), "\n")
	if len(lines) != 1 || !strings.HasPrefix(lines[0], "::error::refetch: version must be") || strings.Contains(res.stdout, "\r") {
		t.Fatalf("stdout %q: want one ::error:: line", res.stdout)
	}
	if !strings.Contains(lines[0], `not "v1%0A::warning::forged%250A%0D::add-mask::x"`) {
		t.Errorf("the version is not escaped as the runner reads it: %q", lines[0])
	}
	if hits.get() != 0 {
		t.Errorf("%d downloads for a bad version", hits.get())
	}
	res = newActionRun(t, "RUNNER_OS=mac\n::warning::os", "RUNNER_ARCH=X64", "REFETCH_ACTION_DOWNLOAD_URL="+srv.URL).step(0, map[string]string{"version": "v0.3.0"})
	if res.code != 2 || strings.Count(res.stdout, "\n") != 1 || !strings.Contains(res.stdout, "mac%0A::warning::os") {
		t.Errorf("runner OS: exit %d, stdout %q", res.code, res.stdout)
	}
}

// TestActionArgsReachRefetch runs the real binary through the action
// with args a shell would quote: an escaped quote and dollar inside
// double quotes, and a jq expression over two lines.
func TestActionArgsReachRefetch(t *testing.T) {
	t.Parallel()
	srv := newActionServer(t)
	r := newActionRun(t, "REFETCH_ACTION_BINARY="+binary)
	r.step(0, nil).wantCode(t, 0)
	before := len(srv.requests())
	res := r.step(1, map[string]string{
		"urls": srv.URL + "/ok",
		"args": "--attempts 1 -H \"X-Probe: say \\\"hi\\\" for \\$5\" --expect-json '.status\n  == \"ok\"'",
	})
	res.wantCode(t, 0)
	if probes := srv.requests()[before:]; len(probes) != 1 || probes[0] != `say "hi" for $5` {
		t.Errorf("X-Probe = %q", probes)
	}
}
