package cmd

import (
	"fmt"
	"text/tabwriter"
	"time"

	"github.com/refetch/refetch/resilience"
	"github.com/spf13/cobra"
)

// BreakerOptions are the options of `refetch breaker`.
type BreakerOptions struct {
	IO       *IOStreams
	StateDir string
	JSON     bool
	All      bool
	Key      string
	Log      *Logger
	getenv   func(string) string
}

// NewCmdBreaker returns `refetch breaker status|reset`.
func NewCmdBreaker(f *Factory) *cobra.Command {
	opts := &BreakerOptions{IO: f.IO, getenv: f.Getenv}
	c := &cobra.Command{
		Use:   "breaker",
		Short: "Show or reset persisted circuit breakers",
		Args:  exactArgs(0, "subcommand"),
		RunE: func(c *cobra.Command, args []string) error {
			return &UsageError{Err: fmt.Errorf("missing subcommand: status or reset"), Cmd: c.CommandPath()}
		},
	}
	c.PersistentFlags().StringVar(&opts.StateDir, "state-dir", "", "breaker state dir (default $XDG_STATE_HOME/refetch or ~/.local/state/refetch)")

	status := &cobra.Command{
		Use:   "status [KEY]",
		Short: "Show breaker states (a table, or --json)",
		Args:  maxArgs(1, "KEY"),
		RunE: func(c *cobra.Command, args []string) error {
			if len(args) == 1 {
				opts.Key = args[0]
			}
			opts.Log = f.Logger()
			return breakerStatus(opts, time.Now())
		},
	}
	status.Flags().BoolVar(&opts.JSON, "json", false, "print a JSON array")

	reset := &cobra.Command{
		Use:   "reset KEY|--all",
		Short: "Close a breaker (forget its failures), or all of them",
		Args:  maxArgs(1, "KEY"),
		RunE: func(c *cobra.Command, args []string) error {
			if len(args) == 1 {
				opts.Key = args[0]
			}
			if (opts.Key == "") == !opts.All {
				return &UsageError{Err: fmt.Errorf("give a KEY or --all"), Cmd: c.CommandPath()}
			}
			opts.Log = f.Logger()
			return breakerReset(opts)
		},
	}
	reset.Flags().BoolVar(&opts.All, "all", false, "reset every breaker")
	c.AddCommand(status, reset)
	return c
}

func (o *BreakerOptions) store() (*resilience.FileStore, error) {
	dir, err := StateDir(o.StateDir, o.getenv)
	if err != nil {
		return nil, &UsageError{Err: err}
	}
	return &resilience.FileStore{Dir: dir, Warn: func(err error) { o.Log.Warnf("%v", err) }}, nil
}

// breakerStatusJSON is one element of `breaker status --json`.
type breakerStatusJSON struct {
	Key                 string     `json:"key"`
	State               string     `json:"state"`
	ConsecutiveFailures int        `json:"consecutive_failures"`
	OpenedAt            *time.Time `json:"opened_at"`
	RetryAt             *time.Time `json:"retry_at"`
	LastError           string     `json:"last_error,omitempty"`
}

func breakerStatus(o *BreakerOptions, now time.Time) error {
	s, err := o.store()
	if err != nil {
		return err
	}
	recs, err := s.List()
	if err != nil {
		return err
	}
	if o.Key != "" {
		var only []resilience.Record
		for _, r := range recs {
			if r.Key == o.Key {
				only = append(only, r)
			}
		}
		if only == nil {
			only = []resilience.Record{{Key: o.Key, State: resilience.StateClosed}}
		}
		recs = only
	}
	if o.JSON {
		out := make([]breakerStatusJSON, 0, len(recs))
		for _, r := range recs {
			out = append(out, breakerStatusJSON{Key: r.Key, State: r.State.String(),
				ConsecutiveFailures: r.ConsecutiveFailures, OpenedAt: r.OpenedAt, RetryAt: r.RetryAt, LastError: r.LastError})
		}
		return writeJSON(o.IO.Out, out)
	}
	if len(recs) == 0 {
		_, err := fmt.Fprintf(o.IO.Out, "no breakers in %s\n", s.Dir)
		return err
	}
	tw := tabwriter.NewWriter(o.IO.Out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "KEY\tSTATE\tFAILURES\tOPENED\tNEXT TRIAL\tLAST ERROR")
	for _, r := range recs {
		opened, next := "-", "-"
		if r.OpenedAt != nil {
			opened = FormatDuration(now.Sub(*r.OpenedAt).Truncate(time.Second)) + " ago"
		}
		if r.RetryAt != nil && r.State == resilience.StateOpen {
			if d := r.RetryAt.Sub(now); d > 0 {
				next = "in " + FormatDuration(d.Round(time.Second))
			} else {
				next = "now"
			}
		}
		last := r.LastError
		if last == "" {
			last = "-"
		}
		fmt.Fprintf(tw, "%s\t%s\t%d\t%s\t%s\t%s\n", r.Key, r.State, r.ConsecutiveFailures, opened, next, last)
	}
	return tw.Flush()
}

func breakerReset(o *BreakerOptions) error {
	s, err := o.store()
	if err != nil {
		return err
	}
	if o.All {
		n, err := s.DeleteAll()
		if err != nil {
			return err
		}
		o.Log.Infof("reset %d breaker%s", n, map[bool]string{true: "", false: "s"}[n == 1])
		return nil
	}
	if err := s.Delete(o.Key); err != nil {
		return err
	}
	o.Log.Infof("reset %s: closed", o.Key)
	return nil
}
