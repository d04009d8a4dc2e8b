package cmd

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"sync"
	"syscall"

	"github.com/refetch/refetch/internal/atomicfile"
	"github.com/refetch/refetch/internal/redact"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

// Factory carries what every command needs from the outside world.
type Factory struct {
	IO     *IOStreams
	Getenv func(string) string
	// Global holds the root's persistent flags.
	Global *GlobalOptions

	// usageReports are the commands that print a --json report even for
	// a usage error found before their RunE (a bad flag value, a missing
	// URL): Run calls the one of the failed command.
	usageReports map[*cobra.Command]func(args []string, err error)
}

// onUsageError registers report as c's way to report a usage error that
// arose before its RunE.
func (f *Factory) onUsageError(c *cobra.Command, report func(args []string, err error)) {
	if f.usageReports == nil {
		f.usageReports = map[*cobra.Command]func([]string, error){}
	}
	f.usageReports[c] = report
}

// GlobalOptions are the flags every command has.
type GlobalOptions struct {
	Quiet   bool
	Verbose bool
	Color   string
	// SecretHeaders are more headers whose values are secret
	// (--secret-header), beside internal/redact's rule.
	SecretHeaders []string
}

// Logger returns the stderr logger for the global options.
func (f *Factory) Logger() *Logger {
	g := f.Global
	return newLogger(f.IO.ErrOut, g.Quiet, g.Verbose, UseColor(g.Color, f.IO.ErrTTY, f.Getenv), f.IO.ErrTTY)
}

// addTemplateFuncs registers refetch's template functions in cobra's
// global map, once: trees built at the same time (tests, demo) must not
// write it together.
var addTemplateFuncs sync.Once

// NewCmdRoot returns the refetch command tree.
func NewCmdRoot(f *Factory) *cobra.Command { return newCmdRoot(f, "") }

// subcommand is one of refetch's commands.
type subcommand struct {
	name string
	new  func(*Factory) *cobra.Command
}

// subcommands are refetch's commands, in the order they are added. (A
// function, not a variable: demo runs Run, which reads the list.)
func subcommands() []subcommand {
	return []subcommand{
		{"fetch", func(f *Factory) *cobra.Command { return NewCmdFetch(f, nil) }},
		{"check", func(f *Factory) *cobra.Command { return NewCmdCheck(f, nil) }},
		{"probe", func(f *Factory) *cobra.Command { return NewCmdProbe(f, nil) }},
		{"breaker", NewCmdBreaker},
		{"version", NewCmdVersion},
		{"demo", NewCmdDemo},
		{"completion", NewCmdCompletion},
	}
}

// treeFor is the one subcommand Run builds for args ("" for all of them):
// the command named by the first argument, whose run sees no other. A
// script that runs refetch fetch in a loop pays for the flags of fetch
// alone (building every command costs a run about 0.1 ms, its code read
// cold). Completion lists every command, and a first argument that is a
// flag or no command gets the whole tree (and its help and suggestions).
func treeFor(args []string) string {
	if len(args) == 0 || args[0] == "completion" {
		return ""
	}
	for _, s := range subcommands() {
		if s.name == args[0] {
			return s.name
		}
	}
	return ""
}

// newCmdRoot returns the command tree with every subcommand, or with the
// one named only.
func newCmdRoot(f *Factory, only string) *cobra.Command {
	if f.Global == nil {
		f.Global = &GlobalOptions{Color: "auto"}
	}
	root := &cobra.Command{
		Use:   "refetch",
		Short: "Fetch from flaky HTTP endpoints without letting the flakiness leak",
		Long: `refetch fetches a URL through retries with exponential backoff, honours
Retry-After, keeps a circuit breaker whose state outlives the process, and
prints either the data or a fallback, with stable exit codes per failure class.`,
		// Any non-empty Version makes cobra add --version; the template
		// reads the build info only when it is asked for (reading it
		// costs a run about 0.1 ms).
		Version:       "refetch",
		SilenceErrors: true,
		SilenceUsage:  true,
		PersistentPreRunE: func(c *cobra.Command, args []string) error {
			// REFETCH_NO_TMPFILE=1: named temporary files beside -o
			// targets even where O_TMPFILE works (docs/fetch.md, "Where -o
			// writes").
			atomicfile.SetUnnamed(!envTrue(f.Getenv("REFETCH_NO_TMPFILE")))
			if err := applyEnv(c, f.Getenv); err != nil {
				return err
			}
			if err := checkNames(c.Flags()); err != nil {
				return err
			}
			switch f.Global.Color {
			case "auto", "always", "never":
			default:
				return namesOf(c.Flags()).invalid("color", strconv.Quote(f.Global.Color), "want auto, always or never")
			}
			if f.Global.Quiet && f.Global.Verbose {
				n := namesOf(c.Flags())
				return usageErrorf("%s and %s cannot be used together", n.of("quiet", "-q"), n.of("verbose", "-v"))
			}
			for _, name := range f.Global.SecretHeaders {
				if !validHeaderName(name) {
					return namesOf(c.Flags()).invalid("secret-header", strconv.Quote(name), "want a header name such as X-Api-Key")
				}
			}
			redact.AddSecretHeaders(f.Global.SecretHeaders...)
			return nil
		},
	}
	root.SetOut(f.IO.Out)
	root.SetErr(f.IO.ErrOut)
	root.SetIn(f.IO.In)
	addTemplateFuncs.Do(func() { cobra.AddTemplateFunc("refetchVersion", versionString) })
	root.SetVersionTemplate("{{refetchVersion}}\n")
	pf := root.PersistentFlags()
	pf.BoolVarP(&f.Global.Quiet, "quiet", "q", false, "silence all stderr output but the final error line")
	pf.BoolVarP(&f.Global.Verbose, "verbose", "v", false, "log requests, responses, redirect hops and phase timings (secrets redacted)")
	pf.StringVar(&f.Global.Color, "color", "auto", "color stderr: auto, always or never (NO_COLOR disables)")
	pf.StringArrayVar(&f.Global.SecretHeaders, "secret-header", nil,
		"treat header `NAME` as a secret, like Authorization and X-Api-Key (repeatable)")
	root.SetFlagErrorFunc(func(c *cobra.Command, err error) error {
		return &UsageError{Err: suggestFlag(c, flagError(err)), Cmd: c.CommandPath()}
	})
	// Arguments the root does not know are unknown commands: a usage
	// error typed here, where it arises, like every other.
	// cobra sets this default only on a path unknown commands no longer
	// take (legacyArgs): without it, "chek" suggests nothing.
	root.SuggestionsMinimumDistance = 2
	root.Args = func(c *cobra.Command, args []string) error {
		if len(args) == 0 {
			return nil
		}
		msg := fmt.Sprintf("unknown command %q", args[0])
		if s := c.SuggestionsFor(args[0]); len(s) > 0 {
			msg += fmt.Sprintf(" (did you mean %q?)", s[0])
		} else if strings.Contains(args[0], "://") {
			// curl's habit: the URL right after the program's name.
			msg += " (to fetch a URL: refetch fetch URL)"
		}
		return &UsageError{Err: errors.New(msg), Cmd: c.CommandPath()}
	}
	// help with a topic that is no command is a usage error, as an
	// unknown command is; cobra's own help printed the root's help and
	// exited 0.
	root.SetHelpCommand(&cobra.Command{
		Use:   "help [command]",
		Short: "Help about any command",
		RunE: func(c *cobra.Command, args []string) error {
			target, rest, err := c.Root().Find(args)
			if err != nil || target == nil || len(rest) > 0 {
				topic := strings.Join(args, " ")
				msg := fmt.Sprintf("unknown help topic %q", topic)
				if len(args) > 0 && (target == nil || target == c.Root()) {
					if s := c.Root().SuggestionsFor(args[0]); len(s) > 0 {
						msg += fmt.Sprintf(" (did you mean %q?)", s[0])
					}
				}
				return &UsageError{Err: errors.New(msg), Cmd: "refetch help"}
			}
			target.InitDefaultHelpFlag()
			return target.Help()
		},
		// Completes command names, as cobra's own help command does.
		ValidArgsFunction: func(c *cobra.Command, args []string, toComplete string) ([]string, cobra.ShellCompDirective) {
			cmd, _, err := c.Root().Find(args)
			if err != nil {
				return nil, cobra.ShellCompDirectiveNoFileComp
			}
			var names []string
			for _, sub := range cmd.Commands() {
				if sub.IsAvailableCommand() && strings.HasPrefix(sub.Name(), toComplete) {
					names = append(names, sub.Name())
				}
			}
			return names, cobra.ShellCompDirectiveNoFileComp
		},
	})
	// Runnable, so that cobra validates Args instead of printing help for
	// an unknown command; with no arguments it prints the help.
	root.RunE = func(c *cobra.Command, args []string) error { return c.Help() }
	for _, s := range subcommands() {
		if only == "" || s.name == only {
			root.AddCommand(s.new(f))
		}
	}
	boundFlags(root)
	return root
}

// Main runs refetch with the process's arguments, streams and signals and
// returns the exit code.
func Main() int {
	// net/http logs protocol oddities ("Unsolicited response received on
	// idle HTTP channel…") through the standard logger: not refetch's
	// words, and not silenced by -q. refetch itself never uses it.
	log.SetOutput(io.Discard)
	f := &Factory{IO: System(), Getenv: os.Getenv}
	ctx, cancel := context.WithCancelCause(context.Background())
	defer cancel(nil)
	sigc := make(chan os.Signal, 1)
	// SIGHUP (a closing terminal or SSH session) and SIGQUIT (Ctrl-\) are
	// handled like SIGTERM: the run ends promptly and cleans up its temp
	// files. (Go's own SIGQUIT would dump goroutines and exit 2, the code
	// of a usage error, leaving -o's temp file behind.)
	signals := []os.Signal{os.Interrupt, syscall.SIGTERM, syscall.SIGHUP, syscall.SIGQUIT}
	signal.Notify(sigc, signals...)
	go func() {
		s, ok := <-sigc
		if !ok {
			return
		}
		// A second signal gets the default behaviour: immediate death.
		signal.Reset(signals...)
		cancel(&InterruptError{Signal: s})
	}()
	// No signal.Stop at the end: the process exits with the code, and each
	// signal the runtime stops relaying is a round trip to its
	// signal-mask thread (four of them cost a 1 KiB fetch about 0.1 ms).
	// A signal that arrives now cancels a run that is over.
	return Run(ctx, f, os.Args[1:])
}

// Run executes one command line and returns its exit code; the final error
// line goes to stderr. Errors are never reclassified here: a usage error is
// typed where it arises (flag parsing, argument validators, plans).
func Run(ctx context.Context, f *Factory, args []string) int {
	root := newCmdRoot(f, treeFor(args))
	if len(args) > 0 && (args[0] == cobra.ShellCompRequestCmd || args[0] == cobra.ShellCompNoDescRequestCmd) {
		// Only a shell asking for completions needs the flags' values:
		// registering them costs every other run its start-up time.
		completeFlagValues(root)
	}
	return runTree(ctx, f, root, args)
}

// runTree is Run with the command tree given.
func runTree(ctx context.Context, f *Factory, root *cobra.Command, args []string) int {
	root.SetArgs(args)
	var (
		c   *cobra.Command
		err error
	)
	if len(args) > 1 && args[0] == "--version" {
		// cobra prints the version before it looks at the arguments: an
		// argument after --version would be dropped without a word.
		c, err = root, &UsageError{Err: fmt.Errorf("--version takes no arguments, got %q", args[1]), Cmd: "refetch"}
	} else {
		c, err = root.ExecuteContextC(ctx)
	}
	if err == nil {
		return ExitOK
	}
	var usage *UsageError
	if errors.As(err, &usage) {
		if usage.Cmd == "" && c != nil {
			usage.Cmd = c.CommandPath()
		}
		if report := f.usageReports[c]; report != nil {
			report(args, err)
		}
	}
	NewLogger(f.IO.ErrOut, false, false, UseColor(f.Global.Color, f.IO.ErrTTY, f.Getenv)).Error(err)
	return ExitCode(err)
}

// flagError puts pflag's parse errors into words a person can act on: the
// flag, the value, and what it takes (not strconv's or time's messages).
func flagError(err error) error {
	var invalid *pflag.InvalidValueError
	if errors.As(err, &invalid) {
		f := invalid.GetFlag()
		var bound *boundError
		if errors.As(err, &bound) {
			return fmt.Errorf("invalid --%s %s: %s", f.Name, invalid.GetValue(), bound)
		}
		return fmt.Errorf("invalid --%s %q: %s", f.Name, invalid.GetValue(), valueHint(f.Value.Type()))
	}
	return err
}

// suggestFlag adds to pflag's "unknown flag: --NAME" the flag of c that
// NAME most likely misspells ("did you mean --attempts?"), as cobra does
// for commands: one with the name as a prefix, or within two edits.
func suggestFlag(c *cobra.Command, err error) error {
	var unknown *pflag.NotExistError
	if !errors.As(err, &unknown) || unknown.GetSpecifiedShortnames() != "" || unknown.GetSpecifiedName() == "" {
		return err // not an unknown long flag
	}
	name := unknown.GetSpecifiedName()
	best, bestDist := "", 3
	visit := func(f *pflag.Flag) {
		if f.Hidden {
			return
		}
		d := editDistance(name, f.Name)
		if strings.HasPrefix(f.Name, name) && len(name) >= 3 {
			d = min(d, 1)
		}
		if d < bestDist || d == bestDist && f.Name < best {
			best, bestDist = f.Name, d
		}
	}
	c.Flags().VisitAll(visit)
	c.InheritedFlags().VisitAll(visit)
	if best == "" {
		return err
	}
	return fmt.Errorf("%w (did you mean --%s?)", err, best)
}

// editDistance is the Levenshtein distance of a and b.
func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}

// exactArgs is cobra.ExactArgs with a usage error that names the argument.
func exactArgs(n int, what string) cobra.PositionalArgs {
	return func(c *cobra.Command, args []string) error {
		if len(args) < n {
			return &UsageError{Err: fmt.Errorf("missing %s", what), Cmd: c.CommandPath()}
		}
		if len(args) > n && n == 0 {
			return &UsageError{Err: fmt.Errorf("unexpected argument %q (%s takes none)", args[0], c.Name()), Cmd: c.CommandPath()}
		}
		if len(args) > n {
			return &UsageError{Err: fmt.Errorf("too many arguments: %q (one %s expected)", args[n:], what), Cmd: c.CommandPath()}
		}
		return nil
	}
}

// maxArgs is cobra.MaximumNArgs with a usage error that names the argument.
func maxArgs(n int, what string) cobra.PositionalArgs {
	return func(c *cobra.Command, args []string) error {
		if len(args) > n {
			return &UsageError{Err: fmt.Errorf("too many arguments: %q (at most %d %s)", args[n:], n, what), Cmd: c.CommandPath()}
		}
		return nil
	}
}

// jsonRequested reports whether --json was asked for on the command line
// (args, up to "--") or by REFETCH_JSON, for usage errors found before the
// flags were all parsed.
func jsonRequested(args []string, getenv func(string) string) bool {
	want := false
	if v, err := strconv.ParseBool(getenv(EnvName("json"))); err == nil {
		want = v
	}
	for _, a := range args {
		if a == "--" {
			break
		}
		switch {
		case a == "--json":
			want = true
		case strings.HasPrefix(a, "--json="):
			if v, err := strconv.ParseBool(strings.TrimPrefix(a, "--json=")); err == nil {
				want = v
			}
		}
	}
	return want
}

// envTrue reports whether a switch variable is set: 1, true, yes or on.
func envTrue(v string) bool {
	switch strings.ToLower(strings.TrimSpace(v)) {
	case "1", "true", "yes", "on":
		return true
	}
	return false
}

// validHeaderName reports whether name is an HTTP token (RFC 9110).
func validHeaderName(name string) bool {
	if name == "" {
		return false
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		if c <= ' ' || c >= 0x7f || strings.IndexByte(`"(),/:;<=>?@[\]{}`, c) >= 0 {
			return false
		}
	}
	return true
}
