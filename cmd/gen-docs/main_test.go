package main

import (
	"bytes"
	"compress/gzip"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/refetch/refetch/cmd"
	"github.com/spf13/cobra"
	"github.com/spf13/cobra/doc"
	"github.com/spf13/pflag"
)

// testDate is 2026-05-28, a date no clock would give by chance.
var testDate = time.Unix(1780000000, 0).UTC()

func gunzip(t *testing.T, path string) string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	r, err := gzip.NewReader(f)
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	if r.Name != "" || !r.ModTime.IsZero() {
		t.Errorf("%s: gzip header carries name %q, time %v", path, r.Name, r.ModTime)
	}
	b, err := io.ReadAll(r)
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return string(b)
}

func listDir(t *testing.T, dir string) []string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	return names
}

// TestPagesForEveryCommand checks the page names against cobra/doc's own
// GenManTree, and each page's header, sections and their order.
func TestPagesForEveryCommand(t *testing.T) {
	out := t.TempDir()
	if err := generate(out, "1.2.3", testDate); err != nil {
		t.Fatal(err)
	}
	got := listDir(t, filepath.Join(out, "man"))

	plain := t.TempDir()
	if err := doc.GenManTree(newRoot("1.2.3"), &doc.GenManHeader{Date: &testDate}, plain); err != nil {
		t.Fatal(err)
	}
	var want []string
	for _, n := range listDir(t, plain) {
		want = append(want, n+".gz")
	}
	if !slices.Equal(got, want) {
		t.Errorf("pages = %v, cobra/doc writes %v", got, want)
	}
	for _, n := range []string{"refetch.1.gz", "refetch-fetch.1.gz", "refetch-check.1.gz", "refetch-breaker.1.gz",
		"refetch-breaker-status.1.gz", "refetch-breaker-reset.1.gz", "refetch-version.1.gz", "refetch-demo.1.gz",
		"refetch-completion.1.gz"} {
		if !slices.Contains(got, n) {
			t.Errorf("no page %s", n)
		}
	}

	for _, n := range got {
		page := gunzip(t, filepath.Join(out, "man", n))
		title := strings.ToUpper(strings.TrimSuffix(n, ".1.gz"))
		if th := `.TH "` + title + `" "1" "May 2026" "refetch 1.2.3" "refetch manual"`; !strings.Contains(page, "\n"+th+"\n") {
			t.Errorf("%s: no %s line:\n%s", n, th, page)
		}
		last := -1
		for _, sec := range []string{"NAME", "SYNOPSIS", "DESCRIPTION", "OPTIONS", "EXIT STATUS", "ENVIRONMENT"} {
			i := strings.Index(page, "\n.SH "+sec+"\n")
			if i < 0 || i < last {
				t.Errorf("%s: section %s missing or out of order", n, sec)
			}
			last = i
		}
		if i := strings.Index(page, "\n.SH SEE ALSO\n"); i >= 0 && i < last {
			t.Errorf("%s: SEE ALSO before ENVIRONMENT", n)
		}
		if strings.Contains(page, "HISTORY") || strings.Contains(page, "Auto generated") {
			t.Errorf("%s: carries cobra's auto-generated tag", n)
		}
	}
}

// TestEnvironmentNamesEveryFlag walks the tree on its own and checks each
// page lists REFETCH_<FLAG> for every flag the command accepts, inherited
// ones included, and the variables every command reads.
func TestEnvironmentNamesEveryFlag(t *testing.T) {
	out := t.TempDir()
	if err := generate(out, "dev", testDate); err != nil {
		t.Fatal(err)
	}
	var walk func(c *cobra.Command)
	checked := 0
	walk = func(c *cobra.Command) {
		if !c.IsAvailableCommand() && c.HasParent() {
			return
		}
		c.InitDefaultHelpFlag()
		page := gunzip(t, filepath.Join(out, "man", strings.ReplaceAll(c.CommandPath(), " ", "-")+".1.gz"))
		env := page[strings.Index(page, "\n.SH ENVIRONMENT\n"):]
		c.Flags().AddFlagSet(c.InheritedFlags())
		c.Flags().VisitAll(func(f *pflag.Flag) {
			name := strings.ReplaceAll(cmd.EnvName(f.Name), "-", `\-`)
			if listed := strings.Contains(env, "\n\\fB"+name+"\\fR\n"); listed != cmd.FromEnv(f.Name) {
				t.Errorf("%s: ENVIRONMENT lists %s: %v; the variable is read: %v", c.CommandPath(), cmd.EnvName(f.Name), listed, cmd.FromEnv(f.Name))
			}
			checked++
		})
		for _, v := range []string{"REFETCH_STATE_DIR", "REFETCH_STORE", "REFETCH_NODE", "XDG_STATE_HOME",
			"XDG_CACHE_HOME", "HTTP_PROXY, HTTPS_PROXY, NO_PROXY", "NO_COLOR", "REFETCH_NO_TMPFILE", "TMPDIR",
			"GITHUB_ACTIONS, GITHUB_STEP_SUMMARY"} {
			if !strings.Contains(env, "\n\\fB"+v+"\\fR\n") {
				t.Errorf("%s: ENVIRONMENT lacks %s", c.CommandPath(), v)
			}
		}
		if strings.Count(env, "\\fBREFETCH_STATE_DIR\\fR") != 1 {
			t.Errorf("%s: REFETCH_STATE_DIR listed more than once", c.CommandPath())
		}
		for _, sub := range c.Commands() {
			walk(sub)
		}
	}
	walk(newRoot("dev"))
	if checked < 40 {
		t.Errorf("only %d flags checked: the walk missed commands", checked)
	}
	fetch := gunzip(t, filepath.Join(out, "man", "refetch-fetch.1.gz"))
	for _, want := range []string{"\\fBREFETCH_MAX_TIME\\fR\n\\-\\-max\\-time: ", "\\fBREFETCH_CACERT\\fR\n\\-\\-cacert: PEM file of"} {
		if !strings.Contains(fetch, want) {
			t.Errorf("refetch-fetch.1 lacks %q", want)
		}
	}
}

// TestExitStatusIsTheTable: every exit code of cmd.ExitCodes, the one
// table, is in the man page's EXIT STATUS, with its meaning.
func TestExitStatusIsTheTable(t *testing.T) {
	page, err := manPage(newRoot("dev"), "dev", testDate)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range cmd.ExitCodes {
		if !strings.Contains(string(page), "\n.TP\n\\fB"+strconv.Itoa(e.Code)+"\\fR\n"+roffText(e.PlainMeaning())+"\n") {
			t.Errorf("refetch.1 lacks exit code %d as the table says it", e.Code)
		}
	}
}

// TestExitStatusPerCommand: a command's page lists the codes that command
// exits with, as its --help does: check's has 8 and no 4 (fetch's), the
// breaker's pages none of fetch's, check's or probe's (a tour found every
// page listing all sixteen).
func TestExitStatusPerCommand(t *testing.T) {
	root := newRoot("dev")
	for _, path := range [][]string{{"check"}, {"fetch"}, {"breaker", "reset"}, {"version"}} {
		c, _, err := root.Find(path)
		if err != nil {
			t.Fatal(err)
		}
		page, err := manPage(c, "dev", testDate)
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range cmd.ExitCodes {
			listed := strings.Contains(string(page), "\n.TP\n\\fB"+strconv.Itoa(e.Code)+"\\fR\n")
			if want := e.For(path[0]); listed != want {
				t.Errorf("%v: exit code %d listed %v, want %v", path, e.Code, listed, want)
			}
		}
	}
}

// TestReproducible generates twice, the second time over a stale page
// and with REFETCH_* and NO_COLOR set, and wants identical trees.
func TestReproducible(t *testing.T) {
	a, b := t.TempDir(), t.TempDir()
	if err := run([]string{"-out", a, "-version", "v1.2.3"}, envOf("SOURCE_DATE_EPOCH=1780000000")); err != nil {
		t.Fatal(err)
	}
	os.MkdirAll(filepath.Join(b, "man"), 0o755)
	os.WriteFile(filepath.Join(b, "man", "refetch-gone.1.gz"), []byte("old"), 0o644)
	t.Setenv("NO_COLOR", "1")
	t.Setenv("REFETCH_ATTEMPTS", "9")
	t.Setenv("REFETCH_STATE_DIR", "/somewhere")
	if err := run([]string{"-out", b, "-version", "1.2.3"}, envOf("SOURCE_DATE_EPOCH=1780000000")); err != nil {
		t.Fatal(err)
	}
	for _, sub := range []string{"man", "completions"} {
		na, nb := listDir(t, filepath.Join(a, sub)), listDir(t, filepath.Join(b, sub))
		if !slices.Equal(na, nb) {
			t.Fatalf("%s: %v vs %v", sub, na, nb)
		}
		for _, n := range na {
			x, _ := os.ReadFile(filepath.Join(a, sub, n))
			y, _ := os.ReadFile(filepath.Join(b, sub, n))
			if !bytes.Equal(x, y) {
				t.Errorf("%s/%s differs between two runs", sub, n)
			}
		}
	}
	// The default --user-agent names the version given, as the binary's does.
	if p := gunzip(t, filepath.Join(a, "man", "refetch-fetch.1.gz")); !strings.Contains(p, `"refetch/1.2.3"`) {
		t.Errorf("refetch-fetch.1: user agent default is not refetch/1.2.3")
	}
}

func envOf(kv ...string) func(string) string {
	return func(k string) string {
		for _, s := range kv {
			if name, v, _ := strings.Cut(s, "="); name == k {
				return v
			}
		}
		return ""
	}
}

func TestRunUsageErrors(t *testing.T) {
	dir := t.TempDir()
	for _, c := range []struct {
		args []string
		env  string
	}{
		{nil, "SOURCE_DATE_EPOCH=1"},
		{[]string{"-bogus"}, "SOURCE_DATE_EPOCH=1"},
		{[]string{"-out", dir, "extra"}, "SOURCE_DATE_EPOCH=1"},
		{[]string{"-out", dir}, "SOURCE_DATE_EPOCH=yesterday"},
		{[]string{"-out", dir}, "SOURCE_DATE_EPOCH=-5"},
	} {
		err := run(c.args, envOf(c.env))
		if !errors.Is(err, errUsage) {
			t.Errorf("%v %s: err = %v, want a usage error", c.args, c.env, err)
		}
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 0 {
		t.Errorf("a usage error wrote %d entries", len(entries))
	}
}

// TestSourceDateFromGit: without SOURCE_DATE_EPOCH the date is HEAD's
// committer time, the same on every run.
func TestSourceDateFromGit(t *testing.T) {
	b, err := exec.Command("git", "log", "-1", "--format=%ct").Output()
	if err != nil {
		t.Skipf("not a git checkout: %v", err)
	}
	want, _ := strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64)
	got, err := sourceDate("")
	if err != nil || got.Unix() != want {
		t.Errorf("sourceDate(\"\") = %v, %v; want %d", got, err, want)
	}
}

// TestManRendersWithoutWarnings renders every page with man(1), warnings
// on, as a user's man would.
func TestManRendersWithoutWarnings(t *testing.T) {
	if _, err := exec.LookPath("man"); err != nil {
		t.Skip("man(1) is not installed")
	}
	out := t.TempDir()
	if err := generate(out, "1.2.3", testDate); err != nil {
		t.Fatal(err)
	}
	for _, n := range listDir(t, filepath.Join(out, "man")) {
		c := exec.Command("man", "--warnings", "-l", filepath.Join(out, "man", n))
		c.Env = append(os.Environ(), "MANWIDTH=80", "MANPAGER=cat", "PAGER=cat")
		var stdout, stderr bytes.Buffer
		c.Stdout, c.Stderr = &stdout, &stderr
		if err := c.Run(); err != nil || stderr.Len() > 0 {
			t.Errorf("man -l %s: %v\n%s", n, err, stderr.String())
		}
		for _, want := range []string{"EXIT STATUS", "143    interrupted by SIGTERM", "ENVIRONMENT", "REFETCH_STATE_DIR"} {
			if !strings.Contains(stdout.String(), want) {
				t.Errorf("man -l %s: output lacks %q", n, want)
			}
		}
	}
}

// TestCompletionScripts checks each script names refetch and parses in
// its shell (bash -n; zsh and fish when installed).
func TestCompletionScripts(t *testing.T) {
	out := t.TempDir()
	if err := generate(out, "dev", testDate); err != nil {
		t.Fatal(err)
	}
	for name, want := range map[string]*regexp.Regexp{
		"refetch.bash": regexp.MustCompile(`(?m)^\s*complete -o default -F __start_refetch refetch$`),
		"_refetch":     regexp.MustCompile(`(?m)^#compdef refetch$`),
		"refetch.fish": regexp.MustCompile(`(?m)^complete -c refetch `),
	} {
		path := filepath.Join(out, "completions", name)
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		if !want.Match(b) {
			t.Errorf("%s lacks %v", name, want)
		}
		shell := map[string]string{"refetch.bash": "bash", "_refetch": "zsh", "refetch.fish": "fish"}[name]
		if _, err := exec.LookPath(shell); err != nil {
			continue
		}
		if out, err := exec.Command(shell, "-n", path).CombinedOutput(); err != nil {
			t.Errorf("%s -n %s: %v\n%s", shell, name, err, out)
		}
	}
}

// TestMarkdownReferenceIsCurrent: docs/reference is what the command tree
// says (every flag and its default, from the one place defaults live);
// after a flag changes, regenerate it with
// go run ./cmd/gen-docs -markdown docs/reference.
func TestMarkdownReferenceIsCurrent(t *testing.T) {
	dir := t.TempDir()
	if err := run([]string{"-markdown", dir}, envOf()); err != nil {
		t.Fatal(err)
	}
	want, _ := filepath.Glob(filepath.Join(dir, "*.md"))
	have, _ := filepath.Glob("../../docs/reference/*.md")
	if len(want) == 0 || len(want) != len(have) {
		t.Fatalf("docs/reference has %d pages, the command tree %d: run go run ./cmd/gen-docs -markdown docs/reference", len(have), len(want))
	}
	for _, w := range want {
		gen, _ := os.ReadFile(w)
		committed, err := os.ReadFile(filepath.Join("../../docs/reference", filepath.Base(w)))
		if err != nil || !bytes.Equal(gen, committed) {
			t.Errorf("docs/reference/%s is out of date: run go run ./cmd/gen-docs -markdown docs/reference", filepath.Base(w))
		}
	}
}
