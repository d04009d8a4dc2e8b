package cmd

import (
	"context"
	"fmt"
	"math"
	"sort"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/refetch/refetch/resilience/store"

	"github.com/refetch/refetch/fetch"
	"github.com/refetch/refetch/report"
	"github.com/refetch/refetch/resilience"
	"github.com/spf13/cobra"
)

// BreakerOptions are the options of `refetch breaker`.
type BreakerOptions struct {
	IO       *IOStreams
	StateDir string
	Store    string
	JSON     bool
	All      bool
	Key      string
	Log      *Logger
	getenv   func(string) string
	// names says which flags came from their variables, for messages.
	names flagNames

	// Metrics is status's --metrics: a Prometheus text file.
	Metrics string
}

// breakerKeyHelp explains KEY in the help of status and reset.
const breakerKeyHelp = `KEY is a breaker key as fetch derives it from a URL, scheme://host:port
with the default port filled in (e.g. https://api.example.com:443), or a
custom --breaker-key. KEY is looked up exactly as given first; if no breaker
has it, a URL or host is normalized the way fetch derives keys, so
https://API.example.com/v1/items?x=1 names https://api.example.com:443 and
api.example.com names http://api.example.com:80.`

// NewCmdBreaker returns `refetch breaker status|reset`.
func NewCmdBreaker(f *Factory) *cobra.Command {
	opts := &BreakerOptions{IO: f.IO, getenv: f.Getenv}
	c := &cobra.Command{
		Use:   "breaker",
		Short: "Show or reset persisted circuit breakers",
		Args: func(c *cobra.Command, args []string) error {
			if len(args) > 0 {
				return &UsageError{Err: fmt.Errorf("unknown subcommand %q: want status or reset", args[0]), Cmd: c.CommandPath()}
			}
			return nil
		},
		RunE: func(c *cobra.Command, args []string) error {
			return &UsageError{Err: fmt.Errorf("missing subcommand: status or reset"), Cmd: c.CommandPath()}
		},
	}
	c.PersistentFlags().StringVar(&opts.StateDir, "state-dir", "", "breaker state dir (default $XDG_STATE_HOME/refetch or ~/.local/state/refetch)")
	c.PersistentFlags().StringVar(&opts.Store, "store", "", storeFlagUsage)

	status := &cobra.Command{
		Use:   "status [KEY]",
		Short: "Show breaker states (a table, or --json)",
		Long: `Show the state of every breaker, or of the one KEY names (closed if it
has no record).

` + breakerKeyHelp,
		Example: `  refetch breaker status
  refetch breaker status https://api.example.com:443 --json`,
		Args: maxArgs(1, "KEY"),
		RunE: func(c *cobra.Command, args []string) error {
			if len(args) == 1 {
				opts.Key = args[0]
			}
			opts.Log = f.Logger()
			opts.names = namesOf(c.Flags())
			return breakerStatus(c.Context(), opts, time.Now())
		},
	}
	status.Flags().BoolVar(&opts.JSON, "json", false, "print a JSON array")
	status.Flags().StringVar(&opts.Metrics, "metrics", "", "also write the states as Prometheus metrics to `FILE` (node_exporter's textfile collector; replaced atomically)")

	reset := &cobra.Command{
		Use:   "reset KEY|--all",
		Short: "Close a breaker (forget its failures), or all of them",
		Long: `Close the breaker KEY names by forgetting its record, or every breaker
with --all. Resetting a key that has no breaker changes nothing, says so on
stderr and exits 0, so scripts can reset unconditionally.

` + breakerKeyHelp,
		Example: `  refetch breaker reset https://api.example.com:443
  refetch breaker reset --all`,
		Args: maxArgs(1, "KEY"),
		RunE: func(c *cobra.Command, args []string) error {
			if len(args) == 1 {
				opts.Key = args[0]
			}
			if (opts.Key == "") == !opts.All {
				return &UsageError{Err: fmt.Errorf("give a KEY or --all (one of them)"), Cmd: c.CommandPath()}
			}
			opts.Log = f.Logger()
			opts.names = namesOf(c.Flags())
			return breakerReset(c.Context(), opts)
		},
	}
	reset.Flags().BoolVar(&opts.All, "all", false, "reset every breaker")
	c.AddCommand(status, reset)
	return c
}

// store opens the store the breaker commands work on and names it for
// messages. With --store it is the Redis store alone, without the failover
// fetch uses: these commands are about that store, and a Redis that does
// not answer is an error here, not a reason to show or reset local files.
func (o *BreakerOptions) store() (resilience.Store, string, error) {
	warn := func(err error) { o.Log.Warnf("%v", err) }
	if err := checkStoreFlag(o.Store, o.names.flag("store")); err != nil {
		return nil, "", err
	}
	dir := ""
	if o.Store == "" {
		d, err := StateDir(o.StateDir, o.getenv)
		if err != nil {
			return nil, "", &UsageError{Err: err}
		}
		dir = d
	}
	s, err := openStore(o.Store, dir, 0, 1, warn)
	if err != nil {
		return nil, "", err
	}
	if fo, ok := s.(*store.FailoverStore); ok {
		s = fo.Primary
		name := fmt.Sprint(s)
		return &namedStore{Store: s, name: name}, name, nil
	}
	return s, dir, nil
}

// namedStore prefixes the errors of a shared store with its name, so
// "connection refused" says which server refused. The end of ctx (a
// signal) is the command's, not the store's: it stays as it is.
type namedStore struct {
	resilience.Store
	name string
}

func (n *namedStore) wrap(ctx context.Context, err error) error {
	if err == nil || ctx.Err() != nil {
		return err
	}
	return fmt.Errorf("breaker store %s: %w", n.name, err)
}

func (n *namedStore) List(ctx context.Context) ([]resilience.Record, error) {
	r, err := n.Store.List(ctx)
	return r, n.wrap(ctx, err)
}

func (n *namedStore) Delete(ctx context.Context, key string) (bool, error) {
	ok, err := n.Store.Delete(ctx, key)
	return ok, n.wrap(ctx, err)
}

func (n *namedStore) DeleteAll(ctx context.Context) (int, error) {
	c, err := n.Store.DeleteAll(ctx)
	return c, n.wrap(ctx, err)
}

// keyCandidates returns the keys KEY may name, in the order they are
// tried: KEY as given (a custom --breaker-key is any string), then, if it
// parses as fetch parses URLs, the key fetch derives from it.
func keyCandidates(arg string) []string {
	keys := []string{arg}
	if u, err := fetch.ParseURL(arg); err == nil {
		if k := BreakerKey(u); k != arg {
			keys = append(keys, k)
		}
	}
	return keys
}

// breakerStatusJSON is one element of `breaker status --json`.
type breakerStatusJSON struct {
	Key                 string     `json:"key"`
	State               string     `json:"state"`
	ConsecutiveFailures int        `json:"consecutive_failures"`
	OpenedAt            *time.Time `json:"opened_at"`
	RetryAt             *time.Time `json:"retry_at"`
	LastError           string     `json:"last_error,omitempty"`
	// HoldUntil is the latest end of a server's Retry-After on the key
	// still in force, for any caller identity; Holds counts those
	// identities (never shown themselves: they are hashes of credentials).
	HoldUntil *time.Time `json:"hold_until,omitempty"`
	Holds     int        `json:"holds,omitempty"`
	// FailureNodes are the nodes with failures since the last success,
	// and NodeFailures their counts (the quorum's figures).
	FailureNodes []string       `json:"failure_nodes,omitempty"`
	NodeFailures map[string]int `json:"node_failures,omitempty"`
	// Rate and Budget are the origin's --rate and --retry-budget records,
	// when it has any.
	Rate   *rateStatusJSON   `json:"rate,omitempty"`
	Budget *budgetStatusJSON `json:"budget,omitempty"`
	// Quotas are the quotas the origin advertised, one per caller
	// identity (never shown itself), as learned by runs with --rate or
	// --retry-budget.
	Quotas []quotaStatusJSON `json:"quotas,omitempty"`
	// Latency is the origin's latency summary (--hedge auto), when it
	// has one.
	Latency *latencyStatusJSON `json:"latency,omitempty"`
}

// holdInForce returns the latest hold of r still in force at now (nil if
// none) and how many identities are held.
func holdInForce(r resilience.Record, now time.Time) (*time.Time, int) {
	var latest *time.Time
	n := 0
	for _, until := range r.Holds {
		if until.After(now) {
			n++
			if latest == nil || until.After(*latest) {
				u := until
				latest = &u
			}
		}
	}
	return latest, n
}

// breakerMetrics are the records as --metrics shows them.
func breakerMetrics(recs []resilience.Record, now time.Time) []report.Breaker {
	out := make([]report.Breaker, 0, len(recs))
	for _, r := range recs {
		b := report.Breaker{Key: r.Key, State: r.StateName(), ConsecutiveFailures: r.ConsecutiveFailures}
		var until *time.Time
		until, b.Holds = holdInForce(r, now)
		if until != nil {
			b.HoldLeft = until.Sub(now)
		}
		out = append(out, b)
	}
	return out
}

// failureNodes lists the nodes of r's failure counts, sorted.
func failureNodes(r resilience.Record) []string {
	var out []string
	for node, n := range r.NodeFailures {
		if n > 0 {
			out = append(out, node)
		}
	}
	sort.Strings(out)
	return out
}

func breakerStatus(ctx context.Context, o *BreakerOptions, now time.Time) error {
	if o.IO.OutClosed {
		return stdoutClosedError("the status", "redirect stdout")
	}
	if o.Metrics != "" {
		if err := report.CheckMetricsPath(ctx, o.Metrics); err != nil {
			return usageErrorf("%s %s: %v", o.names.flag("metrics"), o.Metrics, err)
		}
		if err := collide([]namedFile{given(o.names, "metrics", "--metrics", o.Metrics, true)}, stdStreams(o.IO)); err != nil {
			return err
		}
	}
	s, where, err := o.store()
	if err != nil {
		return err
	}
	recs, err := s.List(ctx)
	if err != nil {
		return err
	}
	limits, err := listLimits(ctx, s)
	if err != nil {
		return err
	}
	lat, err := listLatency(ctx, s)
	if err != nil {
		return err
	}
	if o.Key != "" {
		keys := keyCandidates(o.Key)
		recs = selectKey(recs, keys)
		limits = selectLimits(limits, keys)
		lat = selectLatency(lat, keys)
	}
	if o.Metrics != "" {
		m := report.NewMetrics()
		m.AddBreakers(breakerMetrics(recs, now))
		if err := m.Write(ctx, o.Metrics); err != nil {
			return fmt.Errorf("%w: %s %s: %v%s", fetch.ErrOutput, o.names.flag("metrics"), o.Metrics, err, fetch.SpaceHint(err))
		}
	}
	if o.JSON {
		out := make([]breakerStatusJSON, 0, len(recs))
		seen := map[string]bool{}
		for _, r := range recs {
			j := breakerStatusJSON{Key: r.Key, State: r.StateName(), ConsecutiveFailures: r.ConsecutiveFailures,
				OpenedAt: r.OpenedAt, RetryAt: r.RetryAt, LastError: r.LastError,
				FailureNodes: failureNodes(r), NodeFailures: r.NodeFailures}
			j.HoldUntil, j.Holds = holdInForce(r, now)
			j.Rate, j.Budget, j.Quotas = limitsJSON(limits, r.Key, now)
			j.Latency = latencyJSON(lat, r.Key)
			seen[r.Key] = true
			out = append(out, j)
		}
		for _, l := range limits {
			if !seen[l.Origin] {
				// An origin with a rate, a budget or a quota and no
				// breaker record.
				seen[l.Origin] = true
				j := breakerStatusJSON{Key: l.Origin, State: resilience.StateClosed.String()}
				j.Rate, j.Budget, j.Quotas = limitsJSON(limits, l.Origin, now)
				j.Latency = latencyJSON(lat, l.Origin)
				out = append(out, j)
			}
		}
		out = appendLatencyOnly(out, lat, seen)
		for i := range out {
			out[i].Key, out[i].LastError = shownKey(out[i].Key), fetch.Redact(out[i].LastError)
		}
		return writeJSON(o.IO.Out, out)
	}
	if len(recs) == 0 {
		// "no breakers" alone only when there is nothing at all: above a
		// table of rates, quotas or latencies it would read as "nothing".
		msg := "no breakers in %s\n"
		if len(limits) > 0 || len(lat) > 0 {
			msg = "no breaker records in %s; rates, budgets, quotas and latencies it keeps:\n"
		}
		if _, err := fmt.Fprintf(o.IO.Out, msg, where); err != nil {
			return err
		}
		return writeLimitsAndLatency(o, limits, lat, now)
	}
	tw := tabwriter.NewWriter(o.IO.Out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "KEY\tSTATE\tFAILURES\tOPENED\tNEXT TRIAL\tHOLD\tLAST ERROR")
	for _, r := range recs {
		opened, next, hold := "-", "-", "-"
		if until, _ := holdInForce(r, now); until != nil {
			// A server's Retry-After: every run of its identity waits for
			// it or ends with 6.
			hold = "for " + FormatDuration(until.Sub(now).Round(time.Second))
		}
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
		// Keys and errors come from outside (other machines, servers):
		// no control character reaches the terminal or shifts a column.
		fmt.Fprintf(tw, "%s\t%s\t%d\t%s\t%s\t%s\t%s\n", printable(shownKey(r.Key)), printable(r.StateName()), r.ConsecutiveFailures, opened, next, hold,
			printable(fetch.Redact(last)))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	return writeLimitsAndLatency(o, limits, lat, now)
}

// shownKey is a breaker key as status shows it: a custom --breaker-key
// may be a URL with a password or a secret query value, masked as
// --metrics masks it (redact.RawURL), and as every text is (Text).
func shownKey(key string) string { return fetch.Redact(fetch.RedactRawURL(key)) }

// selectKey returns the record of the first candidate key that has one,
// or a closed record under the last candidate (the key fetch would use).
func selectKey(recs []resilience.Record, keys []string) []resilience.Record {
	for _, k := range keys {
		for _, r := range recs {
			if r.Key == k {
				return []resilience.Record{r}
			}
		}
	}
	return []resilience.Record{{Key: keys[len(keys)-1], State: resilience.StateClosed}}
}

func breakerReset(ctx context.Context, o *BreakerOptions) error {
	s, where, err := o.store()
	if err != nil {
		return err
	}
	if o.All {
		n, err := s.DeleteAll(ctx)
		if err != nil {
			return err
		}
		m := 0
		if l, wrap := limiterOf(s); l != nil {
			m, err = l.DeleteAllLimits(ctx)
			if err = wrap(ctx, err); err != nil {
				return err
			}
		}
		if err := resetAllLatency(ctx, s, o); err != nil {
			return err
		}
		if m > 0 {
			o.Log.Infof("reset %d breaker%s and %d rate, budget and quota record%s in %s", n, plural(n), m, plural(m), where)
			return nil
		}
		o.Log.Infof("reset %d breaker%s in %s", n, plural(n), where)
		return nil
	}
	keys := keyCandidates(o.Key)
	// The rate and budget of the origin go with its breaker, and so does
	// its latency summary.
	cleared, err := resetLatency(ctx, s, o, keys)
	if err != nil {
		return err
	}
	if l, wrap := limiterOf(s); l != nil {
		for _, k := range keys {
			ok, err := l.DeleteLimits(ctx, k)
			if err = wrap(ctx, err); err != nil {
				return err
			}
			if ok {
				cleared = true
				o.Log.Infof("reset %s: rate and retry budget cleared (and learned quotas)", k)
				break
			}
		}
	}
	for _, k := range keys {
		removed, err := s.Delete(ctx, k)
		if err != nil {
			return err
		}
		if removed {
			o.Log.Infof("reset %s: closed", k)
			return nil
		}
	}
	if cleared {
		return nil
	}
	o.Log.Infof("no breaker for %s: nothing to reset", strings.Join(keys, " or "))
	return nil
}

// limiterOf is the rate and budget side of a store the breaker commands
// opened, with the function that names the store in its errors.
func limiterOf(s resilience.Store) (store.Limiter, func(context.Context, error) error) {
	if n, ok := s.(*namedStore); ok {
		l, _ := n.Store.(store.Limiter)
		return l, n.wrap
	}
	l, _ := s.(store.Limiter)
	return l, func(_ context.Context, err error) error { return err }
}

func listLimits(ctx context.Context, s resilience.Store) ([]store.LimitRecord, error) {
	l, wrap := limiterOf(s)
	if l == nil {
		return nil, nil
	}
	out, err := l.ListLimits(ctx)
	return out, wrap(ctx, err)
}

// selectLimits keeps the records of the first candidate key that has any.
func selectLimits(limits []store.LimitRecord, keys []string) []store.LimitRecord {
	for _, k := range keys {
		var out []store.LimitRecord
		for _, l := range limits {
			if l.Origin == k {
				out = append(out, l)
			}
		}
		if len(out) > 0 {
			return out
		}
	}
	return nil
}

// rateStatusJSON is an origin's rate in `breaker status --json`.
type rateStatusJSON struct {
	// PerSecond is the last writer's --rate; Rate the same as --rate
	// takes it ("1/m"); Burst its --rate-burst.
	PerSecond float64 `json:"per_second"`
	Rate      string  `json:"rate"`
	Burst     int     `json:"burst"`
	// NextSlot is when the next request may go; omitted when it is free.
	NextSlot *time.Time `json:"next_slot,omitempty"`
}

// budgetStatusJSON is an origin's retry budget in `breaker status --json`.
type budgetStatusJSON struct {
	Percent  int     `json:"percent"`
	Min      int     `json:"min"`
	WindowMS int64   `json:"window_ms"`
	Firsts   float64 `json:"first_attempts"`
	Retries  float64 `json:"retries"`
}

// quotaStatusJSON is a learned quota in `breaker status --json`.
type quotaStatusJSON struct {
	// Limit is the quota per window, null when the server did not say.
	Limit     *int64 `json:"limit"`
	Remaining int64  `json:"remaining"`
	// WindowMS is the quota's window, omitted when not said.
	WindowMS int64     `json:"window_ms,omitempty"`
	Reset    time.Time `json:"reset"`
	Policy   string    `json:"policy,omitempty"`
	// NextSlot is the next paced slot of --rate auto, omitted when it is
	// now.
	NextSlot *time.Time `json:"next_slot,omitempty"`
}

func limitsJSON(limits []store.LimitRecord, origin string, now time.Time) (*rateStatusJSON, *budgetStatusJSON, []quotaStatusJSON) {
	var (
		r *rateStatusJSON
		b *budgetStatusJSON
		q []quotaStatusJSON
	)
	for _, l := range limits {
		switch {
		case l.Origin != origin:
		case l.Kind == "rate":
			r = &rateStatusJSON{PerSecond: float64(time.Second) / float64(l.Interval), Rate: rateText(l.Interval), Burst: l.Burst}
			if next := l.NextSlot; next.After(now) {
				r.NextSlot = &next
			}
		case l.Kind == "budget":
			b = &budgetStatusJSON{Percent: l.Percent, Min: l.Min, WindowMS: l.Window.Milliseconds(),
				Firsts: math.Round(l.Firsts*10) / 10, Retries: math.Round(l.Retries*10) / 10}
		case l.Kind == "quota" && l.Reset.After(now):
			j := quotaStatusJSON{Remaining: l.Remaining, WindowMS: l.Window.Milliseconds(), Reset: l.Reset, Policy: l.Policy}
			if l.NextSlot.After(now) {
				next := l.NextSlot
				j.NextSlot = &next
			}
			if l.QuotaLimit >= 0 {
				limit := l.QuotaLimit
				j.Limit = &limit
			}
			q = append(q, j)
		}
	}
	// The tightest first: the fewest left, then the latest reset.
	sort.SliceStable(q, func(i, j int) bool {
		if q[i].Remaining != q[j].Remaining {
			return q[i].Remaining < q[j].Remaining
		}
		return q[i].Reset.After(q[j].Reset)
	})
	return r, b, q
}

// quotaText is an origin's learned quotas in breaker status: the
// tightest, and how many other identities have one.
func quotaText(q []quotaStatusJSON, now time.Time) string {
	if len(q) == 0 {
		return "-"
	}
	t := q[0]
	s := fmt.Sprintf("%d left", t.Remaining)
	if t.Limit != nil {
		s = fmt.Sprintf("%d of %d left", t.Remaining, *t.Limit)
	}
	if t.WindowMS > 0 {
		s += " per " + shortDuration(time.Duration(t.WindowMS)*time.Millisecond)
	}
	s += ", resets in " + FormatDuration(t.Reset.Sub(now).Round(time.Second))
	if t.NextSlot != nil {
		s += ", next paced slot in " + FormatDuration(t.NextSlot.Sub(now).Round(time.Second))
	}
	if t.Policy != "" {
		s += " (" + printable(fetch.Redact(t.Policy)) + ")"
	}
	if len(q) > 1 {
		s += fmt.Sprintf("; %d more identit%s", len(q)-1, map[bool]string{true: "y", false: "ies"}[len(q) == 2])
	}
	return s
}

// rateText is a rate of one request per interval as --rate takes it,
// "1/m" rather than "0.01667/s": per second, minute or hour, the first
// in which it is a whole number (to the microsecond the store keeps the
// interval in); else per second, in decimals.
func rateText(interval time.Duration) string {
	if interval <= 0 {
		return "-"
	}
	for _, u := range []struct {
		per  time.Duration
		unit string
	}{{time.Second, "s"}, {time.Minute, "m"}, {time.Hour, "h"}} {
		n := (u.per + interval/2) / interval
		if d := u.per/max(n, 1) - interval; n >= 1 && d < time.Microsecond && d > -time.Microsecond {
			return fmt.Sprintf("%d/%s", n, u.unit)
		}
	}
	return fmt.Sprintf("%.4g/s", float64(time.Second)/float64(interval))
}

// writeLimits prints the origins' rates and budgets below the breakers.
func writeLimits(o *BreakerOptions, limits []store.LimitRecord, now time.Time) error {
	if len(limits) == 0 {
		return nil
	}
	fmt.Fprintln(o.IO.Out)
	tw := tabwriter.NewWriter(o.IO.Out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ORIGIN\tRATE\tNEXT SLOT\tRETRY BUDGET\tQUOTA")
	origins := []string{}
	seen := map[string]bool{}
	for _, l := range limits {
		if !seen[l.Origin] {
			seen[l.Origin] = true
			origins = append(origins, l.Origin)
		}
	}
	for _, origin := range origins {
		r, b, q := limitsJSON(limits, origin, now)
		rate, next, budget := "-", "-", "-"
		if r != nil {
			rate = fmt.Sprintf("%s burst %d", r.Rate, r.Burst)
			next = "now"
			if r.NextSlot != nil {
				next = "in " + FormatDuration(r.NextSlot.Sub(now).Round(time.Millisecond))
			}
		}
		if b != nil {
			// Weighted counts of a sliding window: whole when they are.
			tenth := func(x float64) string { return strconv.FormatFloat(math.Round(x*10)/10, 'f', -1, 64) }
			budget = fmt.Sprintf("%s retries, %s first attempts in %s (%d + %d%%)", tenth(b.Retries), tenth(b.Firsts),
				FormatDuration(time.Duration(b.WindowMS)*time.Millisecond), b.Min, b.Percent)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", printable(shownKey(origin)), rate, next, budget, quotaText(q, now))
	}
	return tw.Flush()
}
