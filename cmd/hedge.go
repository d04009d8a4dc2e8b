package cmd

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/refetch/refetch/fetch"
	"github.com/refetch/refetch/resilience"
	"github.com/refetch/refetch/resilience/store"
	"github.com/spf13/pflag"
)

// Hedged requests and pinned addresses (docs/fetch.md, "Hedged requests"
// and "Addresses and failover"): --hedge DELAY|auto and --hedge-max on
// fetch; --resolve on fetch, check and probe (RequestFlags).
const (
	// hedgeQuantile is the quantile of the origin's latency summary that
	// --hedge auto waits before hedging.
	hedgeQuantile = 0.95
	// hedgeMinSamples is how many samples the summary needs before auto
	// hedges at all: fewer say little about a tail.
	hedgeMinSamples = 20
	// hedgeMedianCap bounds the delay --hedge auto takes to this many
	// times the summary's median: a tail of more than 5% of the answers
	// (every 10th slow) is its own p95, so without a bound the delay
	// would sit at the slow answers and never cut one (a tour found it
	// at 2s over 20 ms answers). Four medians leave the p95 alone for
	// a server whose latency is merely spread (a log-normal tail of
	// sigma 1 has p95 ≈ 5 medians: hedging ~8%, not 5%).
	hedgeMedianCap = 4
	// maxHedges bounds --hedge-max.
	maxHedges = 8
)

// HedgeFlags are fetch's hedging flags.
type HedgeFlags struct {
	Hedge    string
	HedgeMax int
}

func (h *HedgeFlags) register(fs *pflag.FlagSet) {
	fs.StringVar(&h.Hedge, "hedge", "", "send another copy of a GET, HEAD or OPTIONS request that has no response headers after `DELAY` (auto: this origin's p95, learned through the store; 0: off)")
	fs.IntVar(&h.HedgeMax, "hedge-max", 1, "most hedges per attempt, 1 to 8")
}

// hedgePlan is a resolved --hedge: nil when off.
type hedgePlan struct {
	delay time.Duration // fixed; 0 with auto
	auto  bool
	max   int
	// store keeps the latency summaries (auto); nil: auto hedges never.
	store store.LatencyStore
}

// hedgePlan validates --hedge and --hedge-max for a request. A request
// that is not safe to repeat (POST, PATCH, PUT, DELETE, ...) is hedged
// only with --retry-unsafe or an Idempotency-Key header; without them a
// --hedge on the command line is a usage error, and one from
// REFETCH_HEDGE (set for every run of a script) leaves hedging off.
func (o *FetchOptions) hedgePlan(req *fetch.Request, bp *breakerPlan, lp *limitsPlan) (*hedgePlan, error) {
	n := o.RetryFlags.names
	v := strings.TrimSpace(o.Hedges.Hedge)
	if o.Hedges.HedgeMax < 1 || o.Hedges.HedgeMax > maxHedges {
		return nil, n.invalid("hedge-max", o.Hedges.HedgeMax, "must be from 1 to %d", maxHedges)
	}
	hp := &hedgePlan{max: o.Hedges.HedgeMax}
	switch {
	case v == "" || v == "0":
		return nil, nil
	case strings.EqualFold(v, "auto"):
		hp.auto = true
	default:
		d, err := time.ParseDuration(v)
		switch {
		case err != nil && durationSyntax().MatchString(v) && !strings.HasPrefix(v, "-"), err == nil && d > maxFlagDuration:
			// The bound of every duration flag, named even for a value
			// too large to read.
			return nil, n.invalid("hedge", strconv.Quote(v), "must be at most %s (10 years)", shortDuration(maxFlagDuration))
		case err != nil:
			return nil, n.invalid("hedge", strconv.Quote(v), "want a duration such as 200ms, or auto (0: off)")
		case d < 0:
			return nil, n.invalid("hedge", strconv.Quote(v), "must not be negative (0: off)")
		case d == 0:
			return nil, nil
		}
		hp.delay = d
	}
	if !hedgeSafe(req, o.RetryUnsafe) {
		if n.fromEnv["hedge"] {
			return nil, nil
		}
		return nil, usageErrorf("--hedge sends a request more than once, and %s is not safe to repeat: give --retry-unsafe, or an Idempotency-Key header the server honours", req.Method)
	}
	if hp.auto {
		hp.store = latencyStore(bp, lp, o)
	}
	return hp, nil
}

// hedgeSafe reports whether req may be sent twice at once: GET, HEAD and
// OPTIONS, or any method with --retry-unsafe or an Idempotency-Key header.
func hedgeSafe(req *fetch.Request, retryUnsafe bool) bool {
	switch req.Method {
	case http.MethodGet, http.MethodHead, http.MethodOptions:
		return true
	}
	return resilience.RepeatOptIn(req.Header, retryUnsafe)
}

// latencyStore is the store auto keeps its summaries in: the breaker's,
// the limits', or the one --store (or the state dir) names.
func latencyStore(bp *breakerPlan, lp *limitsPlan, o *FetchOptions) store.LatencyStore {
	var st any
	switch {
	case bp != nil:
		st = bp.store
	case lp != nil:
		st = lp.store
	default:
		dir, err := StateDir(o.StateDir, o.Getenv)
		if err != nil {
			o.Log.Warnf("--hedge auto hedges nothing in this run: %v", err)
			return nil
		}
		s, err := openStore(o.Store, dir, o.BreakerReset, max(o.Batch.Parallel, 1), func(err error) { o.Log.Warnf("%v", err) })
		if err != nil {
			o.Log.Warnf("--hedge auto hedges nothing in this run: %v", err)
			return nil
		}
		st = s
	}
	l, _ := st.(store.LatencyStore)
	return l
}

// hedgeRun is the hedging of one run: its fetch.Hedge (nil: no hedging
// this run) and what the report says of it.
type hedgeRun struct {
	plan   *hedgePlan
	origin string
	hedge  *fetch.Hedge
	report *fetch.ReportHedge
}

// start resolves the run's delay toward u's origin: fixed, or from the
// origin's summary (one store step) with auto. Store problems are
// warnings; the run then does not hedge.
func (hp *hedgePlan) start(ctx context.Context, u *url.URL, log *Logger) *hedgeRun {
	if hp == nil {
		return nil
	}
	r := &hedgeRun{plan: hp, origin: BreakerKey(u)}
	rep := &fetch.ReportHedge{Auto: hp.auto, Max: hp.max}
	r.report = rep
	delay := hp.delay
	if hp.auto {
		if hp.store == nil {
			return r
		}
		sum, err := hp.store.Latency(ctx, r.origin, time.Now())
		if err != nil {
			if ctx.Err() == nil {
				log.Warnf("--hedge auto hedges nothing in this run: latency summary of %s unreadable: %v", r.origin, err)
			}
			return r
		}
		rep.Samples = len(sum.Samples)
		d, ok := autoDelay(sum)
		if !ok {
			return r
		}
		delay = d
	}
	ms := fetch.Millis(delay)
	rep.DelayMS = &ms
	r.hedge = &fetch.Hedge{Delay: delay, Max: hp.max}
	return r
}

// config is the run's fetch.Hedge (a copy the caller may change), nil
// when it does not hedge.
func (r *hedgeRun) config() *fetch.Hedge {
	if r == nil || r.hedge == nil {
		return nil
	}
	h := *r.hedge
	return &h
}

// finish adds the run's times to response headers to the origin's summary
// (auto), in one store step.
func (r *hedgeRun) finish(ctx context.Context, res *fetch.Result, log *Logger) {
	if r != nil && res != nil {
		res.Hedge = r.report
	}
	if r == nil || !r.plan.auto || r.plan.store == nil || res == nil || ctx.Err() != nil {
		return
	}
	samples := fetch.HeaderLatencies(res.Trace)
	if err := r.plan.store.AddLatency(ctx, r.origin, samples, time.Now()); err != nil && ctx.Err() == nil {
		log.Warnf("--hedge auto: the latency summary of %s was not updated: %v", r.origin, err)
	}
}

// parseResolve parses the --resolve values into pins: a bad one is a
// usage error naming the flag (or its variable).
func (r *RequestFlags) parseResolve() (fetch.Pins, error) {
	var pins fetch.Pins
	flag := r.names.of("resolve", "--resolve")
	for _, v := range r.Resolve {
		p, err := fetch.ParseResolve(v)
		if err != nil {
			return nil, usageErrorf("invalid %s %q: %v", flag, v, err)
		}
		pins = append(pins, p)
	}
	if err := pins.Check(); err != nil {
		return nil, usageErrorf("invalid %s: %v", flag, err)
	}
	return pins, nil
}

// Hedge logs a hedge with -v: "* [1] no response headers after 50ms from
// 127.0.0.3:8080: hedge 2 sent", or why none was.
func (l *Logger) Hedge(n int, h fetch.HedgeInfo) { l.hedge(attemptTag("", n), h) }

func (l *Logger) hedge(tag string, h fetch.HedgeInfo) {
	if !l.verbose {
		return
	}
	from := ""
	if h.Addr != "" {
		from = " from " + h.Addr
	}
	msg := "* " + tag + " no answer after " + FormatMillis(h.After) + from + ": "
	if h.Sent {
		msg += "copy " + strconv.Itoa(h.Copy) + " sent"
	} else {
		msg += "no copy " + strconv.Itoa(h.Copy) + ": " + h.Why
	}
	l.line(l.dim.Sprint(printable(fetch.Redact(msg))))
}

// The latency summaries in `breaker status` and `reset`.

// latencyOf is the latency side of a store the breaker commands opened,
// with the function that names the store in its errors.
func latencyOf(s resilience.Store) (store.LatencyStore, func(context.Context, error) error) {
	if n, ok := s.(*namedStore); ok {
		l, _ := n.Store.(store.LatencyStore)
		return l, n.wrap
	}
	l, _ := s.(store.LatencyStore)
	return l, func(_ context.Context, err error) error { return err }
}

func listLatency(ctx context.Context, s resilience.Store) ([]store.LatencySummary, error) {
	l, wrap := latencyOf(s)
	if l == nil {
		return nil, nil
	}
	out, err := l.ListLatency(ctx)
	return out, wrap(ctx, err)
}

// selectLatency keeps the summary of the first candidate key that has one.
func selectLatency(sums []store.LatencySummary, keys []string) []store.LatencySummary {
	for _, k := range keys {
		for _, s := range sums {
			if s.Origin == k {
				return []store.LatencySummary{s}
			}
		}
	}
	return nil
}

// latencyStatusJSON is an origin's latency summary in `breaker status --json`.
type latencyStatusJSON struct {
	Samples int `json:"samples"`
	// HedgeAfterMS is the delay --hedge auto uses now; null until the
	// summary has enough samples.
	HedgeAfterMS *float64 `json:"hedge_after_ms"`
}

func latencyJSON(sums []store.LatencySummary, origin string) *latencyStatusJSON {
	for _, s := range sums {
		if s.Origin == origin {
			j := &latencyStatusJSON{Samples: len(s.Samples)}
			if d, ok := autoDelay(s); ok {
				ms := fetch.Millis(d)
				j.HedgeAfterMS = &ms
			}
			return j
		}
	}
	return nil
}

// autoDelay is the delay --hedge auto takes from s, if it has enough
// samples.
func autoDelay(s store.LatencySummary) (time.Duration, bool) {
	if len(s.Samples) < hedgeMinSamples {
		return 0, false
	}
	d := min(s.Quantile(hedgeQuantile), hedgeMedianCap*s.Quantile(0.5))
	return max(d, time.Millisecond), true
}

// appendLatencyOnly adds the origins with a summary and no other record.
func appendLatencyOnly(out []breakerStatusJSON, sums []store.LatencySummary, seen map[string]bool) []breakerStatusJSON {
	for _, s := range sums {
		if !seen[s.Origin] {
			seen[s.Origin] = true
			out = append(out, breakerStatusJSON{Key: s.Origin, State: resilience.StateClosed.String(), Latency: latencyJSON(sums, s.Origin)})
		}
	}
	return out
}

// writeLimitsAndLatency prints the rates and budgets, then the latency
// summaries, below the breakers.
func writeLimitsAndLatency(o *BreakerOptions, limits []store.LimitRecord, sums []store.LatencySummary, now time.Time) error {
	if err := writeLimits(o, limits, now); err != nil || len(sums) == 0 {
		return err
	}
	fmt.Fprintln(o.IO.Out)
	tw := tabwriter.NewWriter(o.IO.Out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ORIGIN\tLATENCY SAMPLES\t--hedge auto")
	for _, s := range sums {
		auto := fmt.Sprintf("no hedging until %d samples", hedgeMinSamples)
		if d, ok := autoDelay(s); ok {
			auto = "hedge after " + FormatMillis(d)
		}
		fmt.Fprintf(tw, "%s\t%d\t%s\n", printable(shownKey(s.Origin)), len(s.Samples), auto)
	}
	return tw.Flush()
}

// resetAllLatency removes every latency summary (breaker reset --all).
func resetAllLatency(ctx context.Context, s resilience.Store, o *BreakerOptions) error {
	l, wrap := latencyOf(s)
	if l == nil {
		return nil
	}
	n, err := l.DeleteAllLatency(ctx)
	if err = wrap(ctx, err); err != nil {
		return err
	}
	if n > 0 {
		o.Log.Infof("reset %d latency summar%s", n, map[bool]string{true: "y", false: "ies"}[n == 1])
	}
	return nil
}

// resetLatency removes the latency summary of the first key that has one.
func resetLatency(ctx context.Context, s resilience.Store, o *BreakerOptions, keys []string) (bool, error) {
	l, wrap := latencyOf(s)
	if l == nil {
		return false, nil
	}
	for _, k := range keys {
		ok, err := l.DeleteLatency(ctx, k)
		if err = wrap(ctx, err); err != nil {
			return false, err
		}
		if ok {
			o.Log.Infof("reset %s: latency summary cleared", k)
			return true, nil
		}
	}
	return false, nil
}
