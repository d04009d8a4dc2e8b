package cmd

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/gofrs/flock"
	"github.com/refetch/refetch/fetch"
	"github.com/refetch/refetch/report"
	"github.com/refetch/refetch/resilience"
	"github.com/refetch/refetch/resilience/store"
	"github.com/spf13/cobra"
)

// The bounds and defaults of a probe. The bounds keep a probe a probe: a
// few hours of requests at most, never a load test.
const (
	defaultProbeCount    = 20
	defaultProbeInterval = 200 * time.Millisecond
	minProbeCount        = 1
	maxProbeCount        = 10000
	minProbeInterval     = 10 * time.Millisecond
	maxProbeInterval     = time.Hour
	// probeLockPoll is how often a probe waiting for another one of the
	// same host tries the lock again.
	probeLockPoll = 100 * time.Millisecond
)

// ProbeOptions are the options of `refetch probe`.
type ProbeOptions struct {
	IO     *IOStreams
	Getenv func(string) string
	Log    *Logger

	URL           string
	Count         int
	Interval      time.Duration
	Timeout       time.Duration
	ExpectSuccess string
	StateDir      string
	JSON          bool
	// Metrics is --metrics: a Prometheus text file for node_exporter.
	Metrics string
	// Rate, RateBurst and Store: --rate (N/s, N/m, N/h or auto) and
	// --rate-burst, shared through the store as fetch's are.
	Rate      string
	RateBurst int
	Store     string

	RequestFlags
	ReportFlags

	// reported is set once the one --json object is written.
	reported bool

	// Clock and NewTimer time the waits between requests; nil: real time.
	Clock    resilience.Clock
	NewTimer func() resilience.Timer
}

// NewCmdProbe returns `refetch probe URL`. runF replaces the run in tests
// of flag handling.
func NewCmdProbe(f *Factory, runF func(context.Context, *ProbeOptions) error) *cobra.Command {
	opts := &ProbeOptions{IO: f.IO, Getenv: f.Getenv}
	c := &cobra.Command{
		Use:   "probe URL",
		Short: "Measure how flaky an endpoint is: N single requests and a summary",
		Long: `Send -n single requests to URL, --interval apart, one at a time, with no retry
and no circuit breaker, and print a summary: success rate (2xx), counts by
status and by error class, latency percentiles (to the first byte and in
total), the Retry-After values seen, and the phase (dns, connect, tls,
first byte, body) that dominates the slowest requests. Every request opens a
new connection. Two probes of one host never run at once: the second waits.
With --rate, the requests keep to the origin's rate that fetch and check
share through the store (--rate auto: the quota the server advertises).

Interrupted, it prints the summary of the requests done first.

` + exitCodesHelp("probe"),
		Example: `  refetch probe https://api.example.com/health
  refetch probe -n 100 --interval 1s --timeout 5s -v https://api.example.com/items
  refetch probe --expect-success 99% --json https://api.example.com/health | jq .latency_ms`,
		Args: exactArgs(1, "URL"),
		RunE: func(c *cobra.Command, args []string) error {
			opts.URL = args[0]
			opts.Log = f.Logger()
			opts.RequestFlags.resolveGiven(c.Flags())
			if runF != nil {
				return runF(c.Context(), opts)
			}
			return runProbe(c.Context(), opts)
		},
	}
	f.onUsageError(c, func(args []string, err error) {
		if !opts.reported && (opts.JSON || jsonRequested(args, f.Getenv)) {
			opts.writeUsageReport(err)
		}
	})
	fs := c.Flags()
	fs.SortFlags = false
	fs.IntVarP(&opts.Count, "count", "n", defaultProbeCount,
		fmt.Sprintf("requests to send, %d to %d", minProbeCount, maxProbeCount))
	fs.DurationVar(&opts.Interval, "interval", defaultProbeInterval,
		fmt.Sprintf("from the start of one request to the next, %s to %s", shortDuration(minProbeInterval), shortDuration(maxProbeInterval)))
	fs.DurationVar(&opts.Timeout, "timeout", defaultTimeout, "bound on one request, headers and body (0: none)")
	fs.StringVar(&opts.ExpectSuccess, "expect-success", "", "exit 8 when the success rate is below `RATE`: 0.95 or 95%")
	fs.StringVar(&opts.StateDir, "state-dir", "", "where the probe lock and --rate's records live (default $XDG_STATE_HOME/refetch or ~/.local/state/refetch)")
	fs.BoolVar(&opts.JSON, "json", false, "print the summary as one JSON object")
	fs.StringVar(&opts.Rate, "rate", "", "at most `N/s`, N/m or N/h requests to the URL's origin, shared through the store with fetch and check; auto: spread the quota the server advertises (0: no limit)")
	fs.IntVar(&opts.RateBurst, "rate-burst", 1, "requests to the origin that --rate lets go at once")
	// probe has no breaker: the store keeps --rate's request slots.
	fs.StringVar(&opts.Store, "store", "", strings.Replace(storeFlagUsage, "share breaker state", "share --rate's request slots", 1))
	opts.RequestFlags.register(fs, false)
	opts.ReportFlags.register(fs, "probe")
	fs.StringVar(&opts.Metrics, "metrics", "", "also write Prometheus metrics to `FILE` (node_exporter's textfile collector; replaced atomically)")
	return c
}

// probePlan is a validated probe.
type probePlan struct {
	req    *fetch.Request
	client *http.Client
	// expect is the --expect-success rate, 0..1; expectGiven says it was given.
	expect      float64
	expectText  string
	expectGiven bool
	key         string
	// reports are --report's (nil: none).
	reports *report.Set
	// rate is --rate (rateOn: given and not 0).
	rate   rateSpec
	rateOn bool
}

// plan validates the options and builds the request; every problem is a
// usage error, found before any request is sent.
func (o *ProbeOptions) plan(ctx context.Context) (*probePlan, error) {
	u, err := fetch.ParseURL(o.URL)
	if err != nil {
		return nil, &UsageError{Err: err}
	}
	n := o.RequestFlags.names
	switch {
	case o.Count < minProbeCount || o.Count > maxProbeCount:
		return nil, usageErrorf("invalid %s: must be from %d to %d", n.set("count", "-n/--count", o.Count), minProbeCount, maxProbeCount)
	case o.Interval < minProbeInterval || o.Interval > maxProbeInterval:
		return nil, n.invalid("interval", shortDuration(o.Interval), "must be from %s to %s", shortDuration(minProbeInterval), shortDuration(maxProbeInterval))
	case o.Timeout < 0:
		return nil, n.invalid("timeout", o.Timeout, "must not be negative (0: no bound)")
	}
	p := &probePlan{key: BreakerKey(u)}
	if p.rate, p.rateOn, err = parseRequestRate(o.Rate); err != nil {
		return nil, n.invalid("rate", strconv.Quote(o.Rate), "%v", err)
	}
	if o.RateBurst < 1 {
		return nil, n.invalid("rate-burst", o.RateBurst, "must be at least 1")
	}
	if err := checkStoreFlag(o.Store, n.flag("store")); err != nil {
		return nil, err
	}
	if o.ExpectSuccess != "" {
		if p.expect, err = parseRate(o.ExpectSuccess); err != nil {
			return nil, n.invalid("expect-success", strconv.Quote(o.ExpectSuccess), "%v", err)
		}
		p.expectText, p.expectGiven = strings.TrimSpace(o.ExpectSuccess), true
	}
	if p.req, err = o.RequestFlags.build(ctx, u, o.IO.In); err != nil {
		return nil, err
	}
	if p.client, err = fetch.NewProbeClient(p.req); err != nil {
		return nil, &UsageError{Err: n.name(err)}
	}
	if err := o.ReportFlags.traceFor(p.req, n); err != nil {
		return nil, err
	}
	if o.Metrics != "" {
		if err := report.CheckMetricsPath(ctx, o.Metrics); err != nil {
			return nil, usageErrorf("%s %s: %v", n.flag("metrics"), o.Metrics, err)
		}
	}
	// Last, so that nothing after it can fail and leave it open.
	files := o.RequestFlags.requestFiles()
	if o.Metrics != "" {
		files = append(files, given(n, "metrics", "--metrics", o.Metrics, true))
	}
	if o.JSON {
		files = append(files, stdoutCarries("the --json report"))
	}
	if p.reports, err = o.ReportFlags.open(ctx, "probe", n, o.IO, o.Getenv, false, files...); err != nil {
		return nil, err
	}
	return p, nil
}

// parseRate parses --expect-success: a fraction from 0 to 1, or a
// percentage from 0% to 100%.
func parseRate(s string) (float64, error) {
	t := strings.TrimSpace(s)
	pct := strings.HasSuffix(t, "%")
	v, err := strconv.ParseFloat(strings.TrimSpace(strings.TrimSuffix(t, "%")), 64)
	if pct {
		v /= 100
	}
	if err != nil || math.IsNaN(v) || v < 0 || v > 1 {
		return 0, errors.New("want a fraction from 0 to 1 (0.95) or a percentage (95%)")
	}
	return v, nil
}

func runProbe(ctx context.Context, o *ProbeOptions) error {
	p, err := o.plan(ctx)
	if err != nil {
		if o.JSON {
			o.writeUsageReport(err)
		}
		return err
	}
	if o.IO.OutClosed {
		p.reports.Discard()
		return stdoutClosedError("the summary", "redirect stdout")
	}
	clock := o.Clock
	if clock == nil {
		clock = resilience.SystemClock
	}
	unlock, err := o.lock(ctx, p.key)
	// The probe's time starts once it holds the lock.
	start := clock.Now()
	var samples []fetch.ProbeSample
	if err == nil {
		samples, err = o.probe(ctx, p)
		unlock()
	}
	o.Log.Close()
	elapsed := clock.Now().Sub(start)
	rep := o.report(p, samples, elapsed)
	if err == nil && p.expectGiven && rep.Below(p.expect) {
		err = fmt.Errorf("%w: success rate %s is below --expect-success %s", ErrUnhealthy, percent(*rep.SuccessRate), p.expectText)
	}
	interrupted := err != nil && !errors.Is(err, ErrUnhealthy)
	var c report.Case
	if !interrupted {
		c = probeCase(&rep, samples, err, elapsed)
		if n := c.FailedAttempts(); err == nil && o.FlakyFails && n > 0 {
			err = fmt.Errorf("%w: %d of %d request%s failed (--flaky-fails)", ErrUnhealthy, n, c.Count(), plural(c.Count()))
		}
	}
	if werr := o.write(&rep, err, true); werr != nil && err == nil {
		p.reports.Discard()
		return werr
	}
	if interrupted {
		p.reports.Discard()
		return err
	}
	if o.Metrics != "" {
		if merr := o.writeMetrics(ctx, p, samples, c.Result != report.Failed, elapsed, clock.Now()); merr != nil {
			p.reports.Discard()
			return fmt.Errorf("%w: %s %s: %v%s (the probe's verdict: %s)", fetch.ErrOutput,
				o.RequestFlags.names.flag("metrics"), o.Metrics, merr, fetch.SpaceHint(merr), verdictOf(err))
		}
	}
	p.reports.Add(c)
	return closeReports(p.reports, elapsed, err)
}

// verdictOf is a run's verdict in words.
func verdictOf(err error) string {
	if err == nil {
		return "success"
	}
	return describe(err)
}

// probeCase is the probe as one testcase: passed when a request succeeded
// and the rate met --expect-success (unhealthy is the error then); flaky
// when it passed with failed requests.
func probeCase(rep *fetch.ProbeReport, samples []fetch.ProbeSample, err error, elapsed time.Duration) report.Case {
	passed := err == nil && rep.Successes > 0
	msg := ""
	switch {
	case err != nil:
		msg = describe(err)
	case rep.Requests == 0:
		msg = "no request ended"
	case !passed:
		msg = fmt.Sprintf("no request succeeded (%d of %d failed)", rep.Requests, rep.Requests)
	}
	return report.FromProbe(rep, samples, passed, msg, elapsed)
}

// writeMetrics writes --metrics: the probe's, and the state of the
// probed origin's breaker from the store (the file store in the state
// dir, or $REFETCH_STORE's); a store that cannot be read leaves the
// breaker's series out, with a warning.
func (o *ProbeOptions) writeMetrics(ctx context.Context, p *probePlan, samples []fetch.ProbeSample, success bool, elapsed time.Duration, now time.Time) error {
	m := report.NewMetrics()
	m.AddProbe(report.Probe{URL: fetch.RedactURL(p.req.URL), Samples: samples, Success: success, Elapsed: elapsed, End: now})
	bo := &BreakerOptions{IO: o.IO, StateDir: o.StateDir, Store: o.Getenv(EnvName("store")), Log: o.Log, getenv: o.Getenv}
	if s, _, err := bo.store(); err != nil {
		o.Log.Warnf("--metrics: breaker state left out: %v", err)
	} else if recs, err := s.List(ctx); err != nil {
		o.Log.Warnf("--metrics: breaker state left out: %v", err)
	} else {
		m.AddBreakers(breakerMetrics(selectKey(recs, keyCandidates(p.key)), time.Now()))
	}
	return m.Write(ctx, o.Metrics)
}

// probe runs the requests, with a progress line on a terminal.
func (o *ProbeOptions) probe(ctx context.Context, p *probePlan) ([]fetch.ProbeSample, error) {
	prog := &probeProgress{l: o.Log, on: o.Log.tty && !o.Log.quiet, total: o.Count}
	hooks := fetch.Hooks{OnRequest: o.Log.Request, OnResponse: o.Log.Response, OnRedirect: o.Log.Redirect, OnTrace: o.Log.Trace}
	if prog.on && o.Log.verbose {
		// The -v lines of a request start on a clean line; the progress
		// line comes back once the request has ended.
		hooks.OnRequest = func(n int, req *http.Request) { prog.clear(); o.Log.Request(n, req) }
	}
	prog.draw()
	defer prog.clear()
	hooks.OnRateWait = func(i resilience.RateWaitInfo) { prog.clear(); o.Log.RateWait(i) }
	limits, err := o.limits(p)
	if err != nil {
		return nil, err
	}
	return fetch.Probe(ctx, fetch.ProbeConfig{
		Request: p.req, Client: p.client, Count: o.Count, Interval: o.Interval, Timeout: o.Timeout,
		Hooks: hooks, OnSample: prog.add, Clock: o.Clock, NewTimer: o.NewTimer, Limits: limits,
		MaxQuotaWait: max(o.Interval, fetch.DefaultProbeQuotaWait),
	})
}

// limits is the probe's --rate toward its origin, through the store fetch
// and check use (--store, or the state dir): nil without --rate. A store
// that cannot be had makes the rate step aside with a warning, as for
// fetch. A probe never retries, so it has no --retry-budget.
func (o *ProbeOptions) limits(p *probePlan) (*resilience.Limits, error) {
	if w := burstUnused(o.RateBurst, p.rate, p.rateOn, o.RequestFlags.names); w != "" {
		o.Log.Warnf("%s", w)
	}
	if !p.rateOn {
		return nil, nil
	}
	dir, err := StateDir(o.StateDir, o.Getenv)
	if err != nil {
		o.Log.Warnf("--rate disabled for this run: %v", err)
		return nil, nil
	}
	st, err := openStore(o.Store, dir, defaultBreakerReset, 1, func(err error) { o.Log.Warnf("%v", err) })
	if err != nil {
		return nil, err
	}
	l, ok := st.(store.Limiter)
	if !ok {
		return nil, nil
	}
	lim := &resilience.Limits{Store: l, Origin: p.key, Auto: p.rate.Auto, Identity: p.req.Identity(),
		Warn: func(err error) { o.Log.Warnf("%v", err) }}
	if !p.rate.Auto {
		lim.Rate = &resilience.Rate{Interval: p.rate.interval(), Burst: o.RateBurst}
	}
	return lim, nil
}

// lock takes the probe lock of key, so that two probes never run against
// one host at once: a second probe waits (interruptibly) until the first
// has finished. Without a state dir, or when the lock file cannot be used,
// the probe runs unlocked after a warning.
func (o *ProbeOptions) lock(ctx context.Context, key string) (unlock func(), err error) {
	noop := func() {}
	dir, err := StateDir(o.StateDir, o.Getenv)
	if err != nil {
		o.Log.Warnf("probe lock skipped (another probe of %s may run at the same time): %v", key, err)
		return noop, nil
	}
	dir = filepath.Join(dir, "probe")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		o.Log.Warnf("probe lock skipped (another probe of %s may run at the same time): %v", key, err)
		return noop, nil
	}
	sum := sha256.Sum256([]byte(key))
	lk := flock.New(filepath.Join(dir, hex.EncodeToString(sum[:16])+".lock"))
	ok, err := lk.TryLock()
	if err == nil && !ok {
		o.Log.Infof("waiting for another refetch probe of %s to finish (lock %s)", key, lk.Path())
		ok, err = lk.TryLockContext(ctx, probeLockPoll)
		if ctx.Err() != nil {
			return noop, context.Cause(ctx)
		}
	}
	if err != nil || !ok {
		o.Log.Warnf("probe lock skipped (another probe of %s may run at the same time): %v", key, err)
		return noop, nil
	}
	return func() { lk.Unlock() }, nil
}

// report summarizes the samples; p is nil for a usage error found before
// the plan was complete.
func (o *ProbeOptions) report(p *probePlan, samples []fetch.ProbeSample, elapsed time.Duration) fetch.ProbeReport {
	if p != nil {
		return fetch.NewProbeReport(p.req, samples, o.Count, o.Interval, elapsed)
	}
	req := &fetch.Request{Method: strings.ToUpper(o.Method)}
	if req.Method == "" {
		req.Method = http.MethodGet
		if o.DataGiven {
			req.Method = http.MethodPost
		}
	}
	rep := fetch.NewProbeReport(req, nil, o.Count, o.Interval, 0)
	rep.URL, rep.Complete = fetch.RedactRawURL(o.URL), false
	return rep
}

// writeUsageReport prints the one --json object of a usage error (also
// when the error came before --json itself was parsed).
func (o *ProbeOptions) writeUsageReport(err error) {
	rep := o.report(nil, nil, 0)
	o.JSON = true
	_ = o.write(&rep, err, false)
}

// write prints rep with the run's error: with --json the one object,
// else (when summary is set) the summary a person reads at a glance.
func (o *ProbeOptions) write(rep *fetch.ProbeReport, runErr error, summary bool) error {
	rep.ExitCode, rep.Class = ExitCode(runErr), FailureClass(runErr)
	if runErr != nil {
		msg := describe(runErr)
		rep.Error = &msg
	}
	o.reported = true
	var err error
	switch {
	case o.JSON:
		err = writeJSON(o.IO.Out, rep)
	case summary:
		err = printProbeSummary(o.IO.Out, rep, runErr)
	}
	if err != nil {
		return fmt.Errorf("%w: %v%s", fetch.ErrOutput, err, fetch.SpaceHint(err))
	}
	return nil
}

// printProbeSummary writes the summary a person reads at a glance.
func printProbeSummary(w io.Writer, r *fetch.ProbeReport, runErr error) error {
	var b strings.Builder
	took := FormatDuration(time.Duration(r.ElapsedMS) * time.Millisecond)
	every := FormatDuration(time.Duration(r.IntervalMS) * time.Millisecond)
	if r.Complete {
		fmt.Fprintf(&b, "probe of %s: %d request%s, one every %s, in %s\n", r.URL, r.Requests, plural(r.Requests), every, took)
	} else {
		var intr *InterruptError
		why := "stopped"
		if errors.As(runErr, &intr) {
			why = "interrupted by " + signalName(intr.Signal)
		}
		fmt.Fprintf(&b, "probe of %s: %s after %d of %d requests, in %s\n", r.URL, why, r.Requests, r.Planned, took)
	}
	tw := tabwriter.NewWriter(&b, 0, 4, 2, ' ', 0)
	if r.SuccessRate != nil {
		fmt.Fprintf(tw, "success\t%d of %d (%s)\n", r.Successes, r.Requests, percent(*r.SuccessRate))
	} else {
		fmt.Fprintf(tw, "success\t- (no request ended)\n")
	}
	fmt.Fprintf(tw, "statuses\t%s\n", counts(r.Statuses, func(a, b string) bool {
		x, _ := strconv.Atoi(a)
		y, _ := strconv.Atoi(b)
		return x < y
	}))
	fmt.Fprintf(tw, "errors\t%s\n", counts(r.Errors, nil))
	for _, class := range sortedKeys(r.Errors, nil) {
		fmt.Fprintf(tw, "\t  %s: %s\n", class, r.ErrorExamples[class])
	}
	fmt.Fprintf(tw, "latency\tp50\tp90\tp99\tmax\n")
	latencyRow(tw, "  first byte", r.LatencyMS.FirstByte, "response")
	latencyRow(tw, "  total", r.LatencyMS.Total, "request")
	if s := r.Slowest; s != nil {
		what := "no phase took any time"
		if s.Phase != nil {
			what = fmt.Sprintf("%s %.0f%% of their time", phaseLabel(*s.Phase), s.Share*100)
		}
		fmt.Fprintf(tw, "slowest\t%d request%s at or above p90 (%s): %s\n", s.Count, plural(s.Count),
			FormatMillis(msDuration(s.ThresholdMS)), what)
	}
	ra := "none"
	if len(r.RetryAfter) > 0 {
		parts := make([]string, len(r.RetryAfter))
		for i, v := range r.RetryAfter {
			parts[i] = fmt.Sprintf("%s ×%d", v.Value, v.Count)
		}
		ra = strings.Join(parts, "  ")
	}
	fmt.Fprintf(tw, "retry-after\t%s\n", ra)
	tw.Flush()
	_, err := io.WriteString(w, b.String())
	return err
}

func latencyRow(w io.Writer, name string, st fetch.LatencyStats, unit string) {
	cell := func(v *float64) string {
		if v == nil {
			return "-"
		}
		return FormatMillis(msDuration(*v))
	}
	fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%d %s%s\n", name, cell(st.P50), cell(st.P90), cell(st.P99), cell(st.Max),
		st.Count, unit, plural(st.Count))
}

func msDuration(ms float64) time.Duration { return time.Duration(ms * float64(time.Millisecond)) }

func phaseLabel(name string) string {
	for p := range fetch.NumPhases {
		if p.String() == name {
			return p.Label()
		}
	}
	return name
}

// counts renders "200 ×13  503 ×7" ("none" when empty), in the order of
// less, or by count (most first) when less is nil.
func counts(m map[string]int, less func(a, b string) bool) string {
	if len(m) == 0 {
		return "none"
	}
	keys := sortedKeys(m, less)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = fmt.Sprintf("%s ×%d", k, m[k])
	}
	return strings.Join(parts, "  ")
}

func sortedKeys(m map[string]int, less func(a, b string) bool) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	if less == nil {
		less = func(a, b string) bool { return m[a] > m[b] || m[a] == m[b] && a < b }
	}
	sort.Slice(keys, func(i, j int) bool { return less(keys[i], keys[j]) })
	return keys
}

// shortDuration is d without Go's trailing zero units: "1h", "1h30m", "90s".
func shortDuration(d time.Duration) string {
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = s[:len(s)-2]
	}
	if strings.HasSuffix(s, "h0m") {
		s = s[:len(s)-2]
	}
	return s
}

func percent(rate float64) string { return fmt.Sprintf("%.1f%%", rate*100) }

// probeProgress is the live "7/20 done, 2 failed" line of a probe on a
// terminal.
type probeProgress struct {
	l            *Logger
	on           bool
	total        int
	done, failed int
	shown        bool
}

func (p *probeProgress) add(s fetch.ProbeSample) {
	p.done++
	if !s.Success() {
		p.failed++
	}
	p.draw()
}

func (p *probeProgress) draw() {
	if !p.on {
		return
	}
	p.l.rewrite(p.l.dim.Sprintf("probing: %d/%d done, %d failed", p.done, p.total, p.failed))
	p.shown = true
}

func (p *probeProgress) clear() {
	if p.shown {
		p.l.rewrite("")
		p.shown = false
	}
}
