package cmd

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/spf13/cobra"
)

// Factory carries what every command needs from the outside world.
type Factory struct {
	IO     *IOStreams
	Getenv func(string) string
	// Global holds the root's persistent flags.
	Global *GlobalOptions
}

// GlobalOptions are the flags every command has.
type GlobalOptions struct {
	Quiet   bool
	Verbose bool
	Color   string
}

// Logger returns the stderr logger for the global options.
func (f *Factory) Logger() *Logger {
	g := f.Global
	return newLogger(f.IO.ErrOut, g.Quiet, g.Verbose, UseColor(g.Color, f.IO.ErrTTY, f.Getenv), f.IO.ErrTTY)
}

// NewCmdRoot returns the refetch command tree.
func NewCmdRoot(f *Factory) *cobra.Command {
	if f.Global == nil {
		f.Global = &GlobalOptions{Color: "auto"}
	}
	root := &cobra.Command{
		Use:   "refetch",
		Short: "Fetch from flaky HTTP endpoints without letting the flakiness leak",
		Long: `refetch fetches a URL through retries with exponential backoff, honours
Retry-After, keeps a circuit breaker whose state outlives the process, and
prints either the data or a fallback, with stable exit codes per failure class.`,
		Version:       versionString(),
		SilenceErrors: true,
		SilenceUsage:  true,
		PersistentPreRunE: func(c *cobra.Command, args []string) error {
			if err := applyEnv(c, f.Getenv); err != nil {
				return err
			}
			switch f.Global.Color {
			case "auto", "always", "never":
			default:
				return usageErrorf("invalid --color %q: want auto, always or never", f.Global.Color)
			}
			if f.Global.Quiet && f.Global.Verbose {
				return usageErrorf("-q and -v cannot be used together")
			}
			return nil
		},
	}
	root.SetOut(f.IO.Out)
	root.SetErr(f.IO.ErrOut)
	root.SetIn(f.IO.In)
	root.SetVersionTemplate("{{.Version}}\n")
	pf := root.PersistentFlags()
	pf.BoolVarP(&f.Global.Quiet, "quiet", "q", false, "silence all stderr output but the final error line")
	pf.BoolVarP(&f.Global.Verbose, "verbose", "v", false, "log requests and responses (secrets redacted)")
	pf.StringVar(&f.Global.Color, "color", "auto", "color stderr: auto, always or never (NO_COLOR disables)")
	root.SetFlagErrorFunc(func(c *cobra.Command, err error) error {
		return &UsageError{Err: err, Cmd: c.CommandPath()}
	})
	root.AddCommand(NewCmdFetch(f, nil))
	root.AddCommand(NewCmdCheck(f, nil))
	root.AddCommand(NewCmdBreaker(f))
	root.AddCommand(NewCmdVersion(f))
	root.AddCommand(NewCmdDemo(f))
	root.AddCommand(NewCmdCompletion(f))
	return root
}

// Main runs refetch with the process's arguments, streams and signals and
// returns the exit code.
func Main() int {
	f := &Factory{IO: System(), Getenv: os.Getenv}
	ctx, cancel := context.WithCancelCause(context.Background())
	defer cancel(nil)
	sigc := make(chan os.Signal, 1)
	signal.Notify(sigc, os.Interrupt, syscall.SIGTERM)
	go func() {
		s, ok := <-sigc
		if !ok {
			return
		}
		// A second signal gets the default behaviour: immediate death.
		signal.Reset(os.Interrupt, syscall.SIGTERM)
		cancel(&InterruptError{Signal: s})
	}()
	code := Run(ctx, f, os.Args[1:])
	signal.Stop(sigc)
	return code
}

// Run executes one command line and returns its exit code; the final error
// line goes to stderr.
func Run(ctx context.Context, f *Factory, args []string) int {
	root := NewCmdRoot(f)
	root.SetArgs(args)
	c, err := root.ExecuteContextC(ctx)
	if err == nil {
		return ExitOK
	}
	var usage *UsageError
	if errors.As(err, &usage) && usage.Cmd == "" && c != nil {
		usage.Cmd = c.CommandPath()
	} else if !errors.As(err, &usage) && isCobraUsage(err) {
		err = &UsageError{Err: err, Cmd: commandPath(c)}
	}
	NewLogger(f.IO.ErrOut, false, false, UseColor(f.Global.Color, f.IO.ErrTTY, f.Getenv)).Error(err)
	return ExitCode(err)
}

func commandPath(c *cobra.Command) string {
	if c == nil {
		return "refetch"
	}
	return c.CommandPath()
}

// isCobraUsage recognises the argument errors Cobra returns as plain errors.
func isCobraUsage(err error) bool {
	s := err.Error()
	for _, p := range []string{"unknown command", "accepts ", "requires at least", "requires at most",
		"invalid argument", "unknown flag", "unknown shorthand", "flag needs an argument"} {
		if strings.HasPrefix(s, p) || strings.Contains(s, " "+p) {
			return true
		}
	}
	return false
}

// exactArgs is cobra.ExactArgs with a usage error that names the argument.
func exactArgs(n int, what string) cobra.PositionalArgs {
	return func(c *cobra.Command, args []string) error {
		if len(args) < n {
			return &UsageError{Err: fmt.Errorf("missing %s", what), Cmd: c.CommandPath()}
		}
		if len(args) > n {
			return &UsageError{Err: fmt.Errorf("too many arguments: %q (one %s expected)", args[n:], what), Cmd: c.CommandPath()}
		}
		return nil
	}
}
