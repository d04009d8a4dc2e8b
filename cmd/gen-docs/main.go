// Command gen-docs writes refetch's man pages and shell completions for
// release archives and .deb/.rpm packages:
//
//	go run ./cmd/gen-docs -out DIR [-version VERSION]
//
// DIR/man holds one gzipped page per command (refetch.1.gz,
// refetch-fetch.1.gz, refetch-breaker-status.1.gz, ...), generated from the
// Cobra tree by spf13/cobra/doc, with EXIT STATUS and ENVIRONMENT sections
// added; DIR/completions holds refetch.bash, _refetch (zsh) and
// refetch.fish. The output is reproducible: the page date comes from
// SOURCE_DATE_EPOCH, or else the time of the checkout's last commit, never
// from the clock; gzip headers carry no name or time; the command tree is
// built with an empty environment, so no default depends on the builder.
package main

import (
	"bytes"
	"compress/gzip"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/refetch/refetch/cmd"
	"github.com/spf13/cobra"
	"github.com/spf13/cobra/doc"
	"github.com/spf13/pflag"
)

// errUsage marks a bad command line: exit 2.
var errUsage = errors.New("usage")

func main() {
	if err := run(os.Args[1:], os.Getenv); err != nil {
		fmt.Fprintln(os.Stderr, "gendocs:", err)
		if errors.Is(err, errUsage) {
			os.Exit(2)
		}
		os.Exit(1)
	}
}

func run(args []string, getenv func(string) string) error {
	fs := flag.NewFlagSet("gendocs", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	out := fs.String("out", "", "output directory of man pages and completions")
	markdown := fs.String("markdown", "", "output directory of the Markdown flag reference (docs/reference)")
	version := fs.String("version", cmd.Version, "version shown in the pages' footer and the --user-agent default")
	if err := fs.Parse(args); err != nil {
		return fmt.Errorf("%w: %v (usage: gen-docs -out DIR | -markdown DIR [-version VERSION])", errUsage, err)
	}
	if (*out == "") == (*markdown == "") || fs.NArg() > 0 {
		return fmt.Errorf("%w: usage: gen-docs -out DIR | -markdown DIR [-version VERSION]", errUsage)
	}
	if *markdown != "" {
		return generateMarkdown(*markdown)
	}
	date, err := sourceDate(getenv("SOURCE_DATE_EPOCH"))
	if err != nil {
		return err
	}
	return generate(*out, strings.TrimPrefix(*version, "v"), date)
}

// sourceDate is the page date: SOURCE_DATE_EPOCH (reproducible-builds.org)
// when set, else the committer time of HEAD, so two builds of one commit
// produce identical pages.
func sourceDate(epoch string) (time.Time, error) {
	if epoch == "" {
		b, err := exec.Command("git", "log", "-1", "--format=%ct").Output()
		if err != nil {
			return time.Time{}, fmt.Errorf("%w: SOURCE_DATE_EPOCH is not set and the last commit's time is unknown (git log: %v); set SOURCE_DATE_EPOCH", errUsage, err)
		}
		epoch = strings.TrimSpace(string(b))
	}
	sec, err := strconv.ParseInt(epoch, 10, 64)
	if err != nil || sec < 0 {
		return time.Time{}, fmt.Errorf("%w: invalid SOURCE_DATE_EPOCH %q: want seconds since 1970", errUsage, epoch)
	}
	return time.Unix(sec, 0).UTC(), nil
}

// newRoot builds the command tree the binary has. The environment it sees
// is empty: no default may depend on who builds the release.
func newRoot(version string) *cobra.Command {
	// --user-agent's default names the version; the release binary gets
	// the same value through -ldflags.
	cmd.Version = version
	return cmd.NewCmdRoot(&cmd.Factory{IO: cmd.System(), Getenv: func(string) string { return "" }})
}

func generate(out, version string, date time.Time) error {
	root := newRoot(version)
	manDir, compDir := filepath.Join(out, "man"), filepath.Join(out, "completions")
	for _, d := range []string{manDir, compDir} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return err
		}
	}
	// Pages of commands that no longer exist must not be packaged.
	stale, _ := filepath.Glob(filepath.Join(manDir, "refetch*.1.gz"))
	for _, p := range stale {
		if err := os.Remove(p); err != nil {
			return err
		}
	}
	for _, c := range commands(root) {
		page, err := manPage(c, version, date)
		if err != nil {
			return fmt.Errorf("%s: %w", c.CommandPath(), err)
		}
		name := strings.ReplaceAll(c.CommandPath(), " ", "-") + ".1.gz"
		if err := writeFile(filepath.Join(manDir, name), gzipped(page)); err != nil {
			return err
		}
	}
	for name, gen := range map[string]func(io.Writer) error{
		"refetch.bash": func(w io.Writer) error { return root.GenBashCompletionV2(w, true) },
		"_refetch":     root.GenZshCompletion,
		"refetch.fish": func(w io.Writer) error { return root.GenFishCompletion(w, true) },
	} {
		var b bytes.Buffer
		if err := gen(&b); err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
		if err := writeFile(filepath.Join(compDir, name), b.Bytes()); err != nil {
			return err
		}
	}
	return nil
}

// referenceVersion is the version the Markdown reference shows (the
// --user-agent default names it): fixed, so the committed reference does
// not change with every release.
const referenceVersion = "VERSION"

// generateMarkdown writes the flag reference, one page per command, from
// the command tree (cobra/doc): every flag with its default, from the one
// place defaults live (cmd's flag definitions). The manual links to it
// instead of copying defaults by hand; a test holds docs/reference to it.
func generateMarkdown(dir string) error {
	root := newRoot(referenceVersion)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	stale, _ := filepath.Glob(filepath.Join(dir, "refetch*.md"))
	for _, p := range stale {
		if err := os.Remove(p); err != nil {
			return err
		}
	}
	for _, c := range commands(root) {
		c.DisableAutoGenTag = true
		var b bytes.Buffer
		if err := doc.GenMarkdownCustom(c, &b, func(name string) string { return name }); err != nil {
			return fmt.Errorf("%s: %w", c.CommandPath(), err)
		}
		name := strings.ReplaceAll(c.CommandPath(), " ", "_") + ".md"
		if err := writeFile(filepath.Join(dir, name), b.Bytes()); err != nil {
			return err
		}
	}
	return nil
}

// commands is root and every command below it that cobra/doc's
// GenManTree would give a page (help topics and hidden commands get none).
func commands(root *cobra.Command) []*cobra.Command {
	list := []*cobra.Command{root}
	for _, c := range root.Commands() {
		if !c.IsAvailableCommand() || c.IsAdditionalHelpTopicCommand() {
			continue
		}
		list = append(list, commands(c)...)
	}
	return list
}

// manPage renders c's page with cobra/doc and adds the sections cobra/doc
// knows nothing of before SEE ALSO, where man-pages(7) puts them.
func manPage(c *cobra.Command, version string, date time.Time) ([]byte, error) {
	// The HISTORY section cobra/doc would add says only "Auto generated".
	c.DisableAutoGenTag = true
	var b bytes.Buffer
	header := &doc.GenManHeader{Section: "1", Date: &date, Source: "refetch " + version, Manual: "refetch manual"}
	if err := doc.GenMan(c, header, &b); err != nil {
		return nil, err
	}
	page := b.String()
	extra := exitStatusSection(topCommand(c)) + environmentSection(c)
	if i := strings.Index(page, "\n.SH SEE ALSO\n"); i >= 0 {
		return []byte(page[:i+1] + extra + page[i+1:]), nil
	}
	return []byte(page + extra), nil
}

// topCommand is the command under the root that c is or belongs to
// ("breaker" for "refetch breaker reset"), "" for the root itself.
func topCommand(c *cobra.Command) string {
	for ; c.HasParent(); c = c.Parent() {
		if !c.Parent().HasParent() {
			return c.Name()
		}
	}
	return ""
}

// exitStatusSection is EXIT STATUS, from cmd.ExitCodes: the codes command
// exits with (as its --help lists them), every code on the root's page
// (command "").
func exitStatusSection(command string) string {
	var b strings.Builder
	b.WriteString(".SH EXIT STATUS\n.PP\n" + roffText("Stable: scripts depend on them.") + "\n")
	for _, e := range cmd.ExitCodes {
		if command == "" || e.For(command) {
			fmt.Fprintf(&b, ".TP\n\\fB%d\\fR\n%s\n", e.Code, roffText(e.PlainMeaning()))
		}
	}
	return b.String()
}

// envVar is one variable of the ENVIRONMENT section.
type envVar struct{ name, meaning string }

// environment is what every command reads besides its flags' variables.
var environment = []envVar{
	{"REFETCH_STATE_DIR", "the breaker state directory when --state-dir is not given; before $XDG_STATE_HOME/refetch and ~/.local/state/refetch"},
	{"REFETCH_STORE", "where breaker state and holds live, as --store: empty for the files in the state directory, redis://[user:pass@]host:port/db or rediss:// to share them through Redis, redis+sentinel:// or redis+cluster:// for Sentinel or Cluster"},
	{"REFETCH_NO_TMPFILE", "when 1 or true, temporary files beside -o targets are named even where O_TMPFILE works (a file system or sandbox that mishandles it)"},
	{"REFETCH_NODE", "this machine's node id for --breaker-quorum (default: the hostname; control characters become ?, at most 128 bytes)"},
	{"XDG_STATE_HOME", "the breaker state directory is $XDG_STATE_HOME/refetch unless --state-dir or REFETCH_STATE_DIR says otherwise (default ~/.local/state)"},
	{"XDG_CACHE_HOME", "the --stale-if-error cache is $XDG_CACHE_HOME/refetch (default ~/.cache/refetch)"},
	{"HTTP_PROXY, HTTPS_PROXY, NO_PROXY", "proxies for http and https URLs and the hosts that bypass them (lower-case names too)"},
	{"NO_COLOR", "when set and not empty, no color on stderr or stdout, even with --color always"},
	{"TMPDIR", "where bodies held back until complete spill past 4 MiB, and reports are prepared (default /tmp)"},
	{"GITHUB_ACTIONS, GITHUB_STEP_SUMMARY", "under GitHub Actions (GITHUB_ACTIONS=true), failed and flaky URLs are annotated and a table is appended to $GITHUB_STEP_SUMMARY"},
}

// environmentSection lists REFETCH_<FLAG> for each of c's flags, inherited
// ones included (the root applies them to every command), then the
// variables every command reads.
func environmentSection(c *cobra.Command) string {
	general := map[string]bool{}
	for _, v := range environment {
		general[v.name] = true
	}
	var flags []*pflag.Flag
	seen := map[string]bool{}
	add := func(f *pflag.Flag) {
		if f.Hidden || f.Deprecated != "" || !cmd.FromEnv(f.Name) || seen[f.Name] || general[cmd.EnvName(f.Name)] {
			return
		}
		seen[f.Name] = true
		flags = append(flags, f)
	}
	c.NonInheritedFlags().VisitAll(add)
	c.InheritedFlags().VisitAll(add)
	sort.Slice(flags, func(i, j int) bool { return flags[i].Name < flags[j].Name })

	var b strings.Builder
	b.WriteString(".SH ENVIRONMENT\n.PP\n" + roffText("Every flag can also come from REFETCH_<FLAG>: upper case, dashes as underscores. "+
		"The command line wins, also over the variable of a flag it cannot be used with; an empty variable counts as not set. For a repeatable flag, put one value per line. breaker reset --all is never read from a variable.") + "\n")
	for _, f := range flags {
		_, usage := pflag.UnquoteUsage(f) // drops the backquotes around a value name
		fmt.Fprintf(&b, ".TP\n\\fB%s\\fR\n%s\n", roffText(cmd.EnvName(f.Name)), roffText("--"+f.Name+": "+usage))
	}
	for _, v := range environment {
		fmt.Fprintf(&b, ".TP\n\\fB%s\\fR\n%s\n", roffText(v.name), roffText(v.meaning))
	}
	return b.String()
}

// roffText escapes one line of text for roff: backslashes print as
// backslashes, dashes as dashes (not hyphens), and a leading dot or quote
// does not start a request.
func roffText(s string) string {
	s = strings.ReplaceAll(s, `\`, `\e`)
	s = strings.ReplaceAll(s, "-", `\-`)
	if strings.HasPrefix(s, ".") || strings.HasPrefix(s, "'") {
		s = `\&` + s
	}
	return s
}

// gzipped compresses b as gzip -9n does: no file name, no time.
func gzipped(b []byte) []byte {
	var out bytes.Buffer
	w, _ := gzip.NewWriterLevel(&out, gzip.BestCompression) // a valid level: no error
	w.Write(b)
	w.Close()
	return out.Bytes()
}

// writeFile writes b to path, mode 0644 (before the umask).
func writeFile(path string, b []byte) error { return os.WriteFile(path, b, 0o644) }
