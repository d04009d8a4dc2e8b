package cmd

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/fatih/color"
	"github.com/refetch/refetch/fetch"
	"github.com/refetch/refetch/resilience"
	"github.com/spf13/cobra"
)

// CheckOptions are the options of `refetch check`.
type CheckOptions struct {
	IO     *IOStreams
	Getenv func(string) string
	Log    *Logger
	Color  bool

	URLs []string
	RetryFlags
	RequestFlags

	ExpectStatus  string
	ExpectBody    string
	ExpectJSON    string
	ExpectHeaders []string
	MaxLatency    time.Duration
	Wait          time.Duration
	JSON          bool

	// reported is set once the one --json object is written.
	reported bool

	// MaxSizeGiven is resolved in RunE: --max-size was given.
	MaxSizeGiven bool

	Clock    resilience.Clock
	NewTimer func() resilience.Timer
}

// NewCmdCheck returns `refetch check URL...`.
func NewCmdCheck(f *Factory, runF func(context.Context, *CheckOptions) error) *cobra.Command {
	opts := &CheckOptions{IO: f.IO, Getenv: f.Getenv}
	c := &cobra.Command{
		Use:   "check URL...",
		Short: "Health-check URLs for CI: expectations, retries, --wait",
		Long: `Check that every URL answers as expected, retrying failed expectations with the
backoff flags. With --wait, keep checking until all are healthy or the time is
up (only the time limits the attempts unless --attempts is given). Several URLs
are checked concurrently; the result is healthy only if all are. The circuit
breaker is off for check unless --breaker-failures is given.

` + exitCodesHelp("check"),
		Example: `  refetch check --wait 2m http://localhost:8080/healthz
  refetch check --expect-json '.status == "ok"' --max-latency 500ms https://api.example.com/health
  refetch check --expect-status 200,204 --expect-header 'Content-Type: ^application/json' URL1 URL2`,
		Args: func(c *cobra.Command, args []string) error {
			if len(args) == 0 {
				return &UsageError{Err: errors.New("missing URL"), Cmd: c.CommandPath()}
			}
			return nil
		},
		RunE: func(c *cobra.Command, args []string) error {
			opts.URLs = args
			opts.Log = f.Logger()
			opts.Color = UseColor(f.Global.Color, f.IO.OutTTY, f.Getenv)
			fs := c.Flags()
			opts.RetryFlags.resolveGiven(fs)
			opts.RequestFlags.resolveGiven(fs)
			opts.MaxSizeGiven = fs.Changed("max-size")
			if runF != nil {
				return runF(c.Context(), opts)
			}
			return runCheck(c.Context(), opts)
		},
	}
	f.onUsageError(c, func(args []string, err error) {
		if !opts.reported && (opts.JSON || jsonRequested(args, f.Getenv)) {
			opts.writeUsageReport(err)
		}
	})
	fs := c.Flags()
	fs.SortFlags = false
	fs.StringVar(&opts.ExpectStatus, "expect-status", "2xx", "healthy statuses: 200, 200-299, 2xx, or a comma list")
	fs.StringVar(&opts.ExpectBody, "expect-body", "", "the body must match this `REGEX`")
	fs.StringVar(&opts.ExpectJSON, "expect-json", "", "this jq `EXPR` on the JSON body must yield true")
	fs.StringArrayVar(&opts.ExpectHeaders, "expect-header", nil, "response header must match: 'Name: REGEX' (repeatable)")
	fs.DurationVar(&opts.MaxLatency, "max-latency", 0, "slowest healthy answer, body included (0: any)")
	fs.DurationVar(&opts.Wait, "wait", 0, "keep checking until healthy or this much time has passed")
	fs.BoolVar(&opts.JSON, "json", false, "print one JSON object instead of lines")
	opts.RetryFlags.register(fs, true)
	opts.RequestFlags.register(fs, true)
	return c
}

// checkLastChance is how long before the end of --wait the last attempt
// starts when the backoff would otherwise overshoot it.
const checkLastChance = 100 * time.Millisecond

// checkBodyLimit bounds the body a health check reads when --max-size is
// not given: enough for any health document.
const checkBodyLimit = 1 << 20

// checkPlan is a validated check.
type checkPlan struct {
	reqs    []*fetch.Request
	policy  resilience.Policy
	expect  *fetch.Expectations
	breaker func(*fetch.Request) *breakerPlan
}

func (o *CheckOptions) plan(ctx context.Context) (*checkPlan, error) {
	policy, err := o.policy()
	if err != nil {
		return nil, err
	}
	n := o.RequestFlags.names
	if o.Wait < 0 {
		return nil, n.invalid("wait", o.Wait, "must not be negative")
	}
	if o.MaxLatency < 0 {
		return nil, n.invalid("max-latency", o.MaxLatency, "must not be negative")
	}
	if o.Wait > 0 {
		if policy.MaxTime == 0 || o.Wait < policy.MaxTime {
			policy.MaxTime = o.Wait
		}
		// Under --wait only the time limits the attempts, unless
		// --attempts is given.
		policy.NoAttemptLimit = !o.AttemptsGiven
		policy.LastChance = checkLastChance
	}
	// A check is a probe: repeating it is always safe. A Retry-After is
	// honoured within --wait (or --max-time), and up to fetch's default
	// without them.
	policy.RetryUnsafe = true
	exp := &fetch.Expectations{StatusText: o.ExpectStatus, MaxLatency: o.MaxLatency}
	if exp.Status, err = resilience.ParseStatusSet(o.ExpectStatus); err != nil {
		return nil, usageErrorf("invalid %s: %v", n.flag("expect-status"), err)
	}
	if o.ExpectBody != "" {
		if exp.Body, err = regexp.Compile(o.ExpectBody); err != nil {
			return nil, usageErrorf("invalid %s: %v", n.flag("expect-body"), err)
		}
	}
	if o.ExpectJSON != "" {
		if exp.JSON, err = fetch.CompileJQ(o.ExpectJSON); err != nil {
			return nil, n.invalid("expect-json", strconv.Quote(o.ExpectJSON), "%v", err)
		}
		exp.JSONText = o.ExpectJSON
	}
	for _, h := range o.ExpectHeaders {
		he, err := fetch.ParseHeaderExpectation(h)
		if err != nil {
			return nil, usageErrorf("invalid %s %v", n.flag("expect-header"), err)
		}
		exp.Headers = append(exp.Headers, he)
	}
	p := &checkPlan{policy: policy, expect: exp}
	for _, raw := range o.URLs {
		u, err := fetch.ParseURL(raw)
		if err != nil {
			return nil, &UsageError{Err: err}
		}
		req, err := o.RequestFlags.build(ctx, u, o.IO.In)
		if err != nil {
			return nil, err
		}
		if !o.MaxSizeGiven {
			req.MaxSize = checkBodyLimit
		}
		p.reqs = append(p.reqs, req)
	}
	// The breaker is off for check unless asked for; then it behaves as
	// fetch's does, stepping aside with a warning when it has no state dir,
	// with one store (one client, one failover warning) for every URL.
	var base *breakerPlan
	if o.BreakerFailuresGiven && o.BreakerFailures > 0 {
		if base, err = o.RetryFlags.breakerBase(policy.Attempts, len(o.URLs), o.Getenv, o.Log); err != nil {
			return nil, err
		}
	}
	p.breaker = func(req *fetch.Request) *breakerPlan { return base.forURL(req.URL) }
	return p, nil
}

func runCheck(ctx context.Context, o *CheckOptions) error {
	p, err := o.plan(ctx)
	if err != nil {
		if o.JSON {
			o.writeUsageReport(err)
		}
		return err
	}
	several := len(p.reqs) > 1
	rep := fetch.Check(ctx, fetch.CheckConfig{
		Requests: p.reqs, Policy: p.policy, Expect: p.expect,
		Breaker: func(req *fetch.Request) *resilience.Breaker { return newBreaker(p.breaker(req), req.Identity(), o.Log) },
		Hooks:   fetch.Hooks{OnRequest: o.Log.Request, OnResponse: o.Log.Response, OnRedirect: o.Log.Redirect, OnTrace: o.Log.Trace},
		OnRetry: func(url string, info resilience.RetryInfo) {
			if !several {
				url = "" // one URL: the line needs no label
			}
			o.Log.RetryFor(url, info)
		},
		Clock: o.Clock, NewTimer: o.NewTimer,
	})
	o.Log.Close()
	for i := range rep.Results {
		wordFailures(&rep.Results[i])
	}
	switch bad := rep.Unhealthy(); {
	case ctx.Err() != nil:
		err = context.Cause(ctx)
	case bad > 0:
		err = fmt.Errorf("%w: %d of %d URL%s", ErrUnhealthy, bad, len(rep.Results), plural(len(rep.Results)))
	}
	if o.JSON {
		rep.ExitCode = ExitCode(err)
		o.reported = true
		if werr := writeJSON(o.IO.Out, rep); werr != nil {
			return fmt.Errorf("%w: %v", fetch.ErrOutput, werr)
		}
	} else {
		o.printResults(rep.Results)
	}
	return err
}

// wordFailures names the flags in r's failures (flagWords: a failed JSON
// expectation is "--expect-json EXPR ..."); the rest of each failure stays
// the fetch layer's words, with no hint added.
func wordFailures(r *fetch.CheckResult) {
	if len(r.Failures) != len(r.Failed) {
		return // not one error per failure: keep the layer's words
	}
	for k, f := range r.Failures {
		r.Failed[k] = flagWords(f)
	}
}

// writeUsageReport prints check's --json object for a run that ended
// before any check: not healthy, no results, the error and its exit code.
func (o *CheckOptions) writeUsageReport(err error) {
	o.reported = true
	msg := describe(err)
	_ = writeJSON(o.IO.Out, fetch.CheckReport{Results: []fetch.CheckResult{}, Error: &msg, ExitCode: ExitCode(err)})
}

// printResults writes one line per URL: verdict, URL, status, latency and
// the failed expectations in words.
func (o *CheckOptions) printResults(results []fetch.CheckResult) {
	green, red := paint(o.Color, color.FgGreen, color.Bold), paint(o.Color, color.FgRed, color.Bold)
	tw := tabwriter.NewWriter(o.IO.Out, 0, 4, 2, ' ', 0)
	for _, r := range results {
		verdict := green.Sprint("healthy")
		if !r.Healthy {
			verdict = red.Sprint("unhealthy")
		}
		status, latency := "-", "-"
		if r.Status != nil {
			status = fmt.Sprint(*r.Status)
		}
		if r.LatencyMS != nil {
			latency = fmt.Sprintf("%dms", *r.LatencyMS)
		}
		line := fmt.Sprintf("%s\t%s\t%s\t%s\t%d attempt%s", verdict, r.URL, status, latency, r.Attempts, plural(r.Attempts))
		if len(r.Failed) > 0 {
			line += "\t" + strings.Join(r.Failed, "; ")
		}
		fmt.Fprintln(tw, line)
	}
	tw.Flush()
}
