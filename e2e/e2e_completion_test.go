package e2e

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestE2ECompletionUnknownShell: a shell refetch has no script for is a
// usage error naming the ones it has, not help text and exit 0.
func TestE2ECompletionUnknownShell(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	for _, args := range [][]string{{"completion", "tcsh"}, {"completion"}, {"completion", "bash", "zsh"}} {
		r := e.run(args...)
		r.wantCode(t, 2)
		if r.stdout != "" || strings.Count(r.stderr, "\n") != 1 {
			t.Errorf("%v: want one line on stderr and nothing on stdout; stdout %q, stderr %q", args, r.stdout, r.stderr)
		}
		if len(args) < 3 && !strings.Contains(r.stderr, "want bash, zsh, fish or powershell") {
			t.Errorf("%v: stderr does not name the shells: %q", args, r.stderr)
		}
	}
	if r := e.run("completion", "tcsh"); !strings.Contains(r.stderr, `unsupported shell "tcsh"`) {
		t.Errorf("stderr = %q", r.stderr)
	}
	// --no-descriptions is still accepted and changes the script.
	with, without := e.run("completion", "fish"), e.run("completion", "fish", "--no-descriptions")
	with.wantCode(t, 0)
	without.wantCode(t, 0)
	if with.stdout == without.stdout {
		t.Error("--no-descriptions made no difference")
	}
}

// bashCompletion is bash-completion's main script, which Cobra's bash
// completions rely on (_get_comp_words_by_ref), as every distro's do.
const bashCompletion = "/usr/share/bash-completion/bash_completion"

// TestE2EBashCompletionCompletes sources bash-completion and `refetch
// completion bash` in bash and completes command lines through the
// binary's __complete.
func TestE2EBashCompletionCompletes(t *testing.T) {
	t.Parallel()
	if _, err := exec.LookPath("bash"); err != nil {
		t.Skip("bash is not installed")
	}
	if _, err := os.Stat(bashCompletion); err != nil {
		t.Skip("bash-completion is not installed")
	}
	e := newEnv(t)
	for line, want := range map[string]string{
		"refetch fe":          "fetch",
		"refetch completion ": "bash fish powershell zsh",
		"refetch breaker r":   "reset",
	} {
		script := `source ` + bashCompletion + `
source <(refetch completion bash)
read -ra COMP_WORDS <<<"$LINE"
[[ $LINE == *" " ]] && COMP_WORDS+=("")
COMP_CWORD=$((${#COMP_WORDS[@]} - 1)); COMP_LINE=$LINE; COMP_POINT=${#LINE}
__start_refetch
printf '%s\n' "${COMPREPLY[@]}" | sort`
		c := exec.Command("bash", "--norc", "--noprofile", "-c", script)
		c.Env = append(e.with("LINE="+line).vars, "PATH="+filepath.Dir(binary)+string(os.PathListSeparator)+os.Getenv("PATH"))
		// stdout only: outside a real completion, compopt complains on stderr.
		out, err := c.Output()
		if got := strings.Join(strings.Fields(string(out)), " "); err != nil || got != want {
			t.Errorf("%q completes to %q (%v), want %q", line, got, err, want)
		}
	}
}
