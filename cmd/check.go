package cmd

import (
	"context"
	"errors"
	"fmt"
	"math"
	"regexp"
	"strings"
	"sync"
	"text/tabwriter"
	"time"

	"github.com/fatih/color"
	"github.com/refetch/refetch/fetch"
	"github.com/refetch/refetch/resilience"
	"github.com/spf13/cobra"
)

// CheckOptions are the options of `refetch check`.
type CheckOptions struct {
	IO      *IOStreams
	Getenv  func(string) string
	Log     *Logger
	Changed func(name string) bool
	Color   bool

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

Exit codes: 0 healthy, 8 unhealthy, 2 usage, 130/143 interrupted.`,
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
			opts.Changed = func(name string) bool { return c.Flags().Changed(name) }
			if runF != nil {
				return runF(c.Context(), opts)
			}
			return runCheck(c.Context(), opts)
		},
	}
	fs := c.Flags()
	fs.SortFlags = false
	fs.StringVar(&opts.ExpectStatus, "expect-status", "2xx", "healthy statuses: 200, 200-299, 2xx, or a comma list")
	fs.StringVar(&opts.ExpectBody, "expect-body", "", "the body must match this `REGEX`")
	fs.StringVar(&opts.ExpectJSON, "expect-json", "", "this jq `EXPR` on the JSON body must yield true")
	fs.StringArrayVar(&opts.ExpectHeaders, "expect-header", nil, "response header must match: 'Name: REGEX' (repeatable)")
	fs.DurationVar(&opts.MaxLatency, "max-latency", 0, "slowest healthy answer, body included (0: any)")
	fs.DurationVar(&opts.Wait, "wait", 0, "keep checking until healthy or this much time has passed")
	fs.BoolVar(&opts.JSON, "json", false, "print one JSON object instead of lines")
	opts.RetryFlags.register(fs)
	opts.RequestFlags.register(fs, false)
	return c
}

// checkLastChance is how long before the end of --wait the last attempt
// starts when the backoff would otherwise overshoot it.
const checkLastChance = 100 * time.Millisecond

// checkPlan is a validated check.
type checkPlan struct {
	reqs    []*fetch.Request
	policy  resilience.Policy
	expect  *fetch.Expectations
	breaker func(key string) *breakerPlan
}

func (o *CheckOptions) plan() (*checkPlan, error) {
	policy, err := o.policy()
	if err != nil {
		return nil, err
	}
	if o.Wait < 0 || o.MaxLatency < 0 {
		return nil, usageErrorf("--wait and --max-latency must not be negative")
	}
	if o.Wait > 0 {
		if policy.MaxTime == 0 || o.Wait < policy.MaxTime {
			policy.MaxTime = o.Wait
		}
		if !o.Changed("attempts") {
			policy.Attempts = math.MaxInt32
		}
		policy.LastChance = checkLastChance
	}
	// A check is a probe: repeating it is always safe.
	policy.RetryUnsafe = true
	exp := &fetch.Expectations{StatusText: o.ExpectStatus, MaxLatency: o.MaxLatency}
	if exp.Status, err = resilience.ParseStatusSet(o.ExpectStatus); err != nil {
		return nil, usageErrorf("invalid --expect-status: %v", err)
	}
	if o.ExpectBody != "" {
		if exp.Body, err = regexp.Compile(o.ExpectBody); err != nil {
			return nil, usageErrorf("invalid --expect-body: %v", err)
		}
	}
	if o.ExpectJSON != "" {
		if exp.JSON, err = fetch.CompileJQ(o.ExpectJSON); err != nil {
			return nil, usageErrorf("invalid --expect-json %q: %v", o.ExpectJSON, err)
		}
		exp.JSONText = o.ExpectJSON
	}
	for _, h := range o.ExpectHeaders {
		he, err := fetch.ParseHeaderExpectation(h)
		if err != nil {
			return nil, usageErrorf("invalid --expect-header %v", err)
		}
		exp.Headers = append(exp.Headers, he)
	}
	p := &checkPlan{policy: policy, expect: exp, breaker: func(string) *breakerPlan { return nil }}
	for _, raw := range o.URLs {
		u, err := fetch.ParseURL(raw)
		if err != nil {
			return nil, &UsageError{Err: err}
		}
		req, err := o.RequestFlags.build(u, o.IO.In, o.Changed)
		if err != nil {
			return nil, err
		}
		p.reqs = append(p.reqs, req)
	}
	// The breaker is off for check unless asked for.
	if o.Changed("breaker-failures") && o.BreakerFailures > 0 {
		dir, err := StateDir(o.StateDir, o.Getenv)
		if err != nil {
			return nil, &UsageError{Err: err}
		}
		// One store for every URL: one client, one failover warning.
		store, err := openStore(o.Store, dir, o.BreakerReset, func(err error) { o.Log.Warnf("%v", err) })
		if err != nil {
			return nil, err
		}
		p.breaker = func(key string) *breakerPlan {
			if o.BreakerKey != "" {
				key = o.BreakerKey
			}
			return &breakerPlan{key: key, failures: o.BreakerFailures, reset: o.BreakerReset, dir: dir, store: store}
		}
	}
	return p, nil
}

// CheckResult is the outcome for one URL (also its --json form).
type CheckResult struct {
	URL       string   `json:"url"`
	Healthy   bool     `json:"healthy"`
	Status    *int     `json:"status"`
	LatencyMS *int64   `json:"latency_ms"`
	Failed    []string `json:"failed"`
	Attempts  int      `json:"attempts"`
}

// CheckReport is the --json output of check.
type CheckReport struct {
	Healthy   bool          `json:"healthy"`
	ElapsedMS int64         `json:"elapsed_ms"`
	Results   []CheckResult `json:"results"`
}

// expectationError is an attempt whose answer failed expectations; raw is
// the answer, so the breaker still sees what the server did.
type expectationError struct {
	failed []string
	raw    resilience.Attempt
}

func (e *expectationError) Error() string { return strings.Join(e.failed, "; ") }

// classifyCheck makes every failure retryable (a service that is coming up
// may refuse, 404 or fail TLS for a while) except a cancellation; the
// breaker effect is the one the raw answer would have had.
func classifyCheck(method string, a resilience.Attempt, p resilience.Policy) resilience.Verdict {
	if errors.Is(a.Err, context.Canceled) {
		return resilience.Verdict{Kind: resilience.Cancelled, Err: a.Err}
	}
	var ee *expectationError
	if !errors.As(a.Err, &ee) {
		return resilience.Verdict{Kind: resilience.Success, Breaker: resilience.CountSuccess}
	}
	raw := resilience.Classify(method, ee.raw, p.RetryOn, true)
	effect := raw.Breaker
	if raw.Kind == resilience.Success {
		effect = resilience.Ignore
	}
	return resilience.Verdict{Kind: resilience.Retryable, Breaker: effect, Err: a.Err}
}

func runCheck(ctx context.Context, o *CheckOptions) error {
	p, err := o.plan()
	if err != nil {
		return err
	}
	start := time.Now()
	results := make([]CheckResult, len(p.reqs))
	var wg sync.WaitGroup
	for i, req := range p.reqs {
		wg.Add(1)
		go func(i int, req *fetch.Request) {
			defer wg.Done()
			results[i] = o.checkOne(ctx, p, req, len(p.reqs) > 1)
		}(i, req)
	}
	wg.Wait()
	o.Log.Close()
	rep := CheckReport{Healthy: true, ElapsedMS: time.Since(start).Milliseconds(), Results: results}
	bad := 0
	for _, r := range results {
		if !r.Healthy {
			rep.Healthy = false
			bad++
		}
	}
	if o.JSON {
		if err := writeJSON(o.IO.Out, rep); err != nil {
			return fmt.Errorf("%w: %v", resilience.ErrOutput, err)
		}
	} else {
		o.printResults(results)
	}
	if ctx.Err() != nil {
		return context.Cause(ctx)
	}
	if bad > 0 {
		return fmt.Errorf("%w: %d of %d URL%s", ErrUnhealthy, bad, len(results), plural(len(results)))
	}
	return nil
}

func (o *CheckOptions) checkOne(ctx context.Context, p *checkPlan, req *fetch.Request, several bool) CheckResult {
	res := CheckResult{URL: fetch.RedactURL(req.URL), Failed: []string{}}
	client, err := fetch.NewClient(req)
	if err != nil {
		res.Failed = append(res.Failed, err.Error())
		return res
	}
	probe := &fetch.Probe{Request: req, Client: client,
		Hooks: fetch.Hooks{OnRequest: o.Log.Request, OnResponse: o.Log.Response}}
	// The executor calls the attempt on this goroutine: no locking needed.
	var (
		last   fetch.Observation
		failed []string
	)
	label := ""
	if several {
		label = res.URL
	}
	ex := &resilience.Executor{
		Policy: p.policy, Clock: o.Clock, NewTimer: o.NewTimer, Classify: classifyCheck,
		Breaker: newBreaker(p.breaker(BreakerKey(req.URL)), o.Log),
		OnRetry: func(info resilience.RetryInfo) { o.Log.RetryFor(label, info) },
	}
	tr, runErr := ex.Run(ctx, req.Method, func(actx context.Context, n int) resilience.Attempt {
		obs := probe.Do(actx, n)
		f := p.expect.Evaluate(actx, obs)
		last, failed = obs, f
		a := resilience.Attempt{Status: obs.Status, Header: obs.Header, Err: obs.Err}
		if len(f) > 0 {
			a.Err = &expectationError{failed: f, raw: a}
		}
		return a
	})
	res.Attempts = len(tr.Attempts)
	if runErr == nil {
		res.Healthy = true
	} else {
		res.Failed = append(res.Failed, failed...)
		switch {
		case errors.Is(runErr, resilience.ErrDeadline):
			res.Failed = append(res.Failed, "not healthy before the time ran out")
		case errors.Is(runErr, resilience.ErrCircuitOpen), errors.Is(runErr, resilience.ErrRateLimited):
			res.Failed = append(res.Failed, runErr.Error())
		}
		if len(res.Failed) == 0 {
			res.Failed = append(res.Failed, runErr.Error())
		}
	}
	if last.Status != 0 {
		s := last.Status
		res.Status = &s
	}
	if last.Status != 0 || last.Err != nil {
		ms := last.Latency.Milliseconds()
		res.LatencyMS = &ms
	}
	return res
}

// printResults writes one line per URL: verdict, URL, status, latency and
// the failed expectations in words.
func (o *CheckOptions) printResults(results []CheckResult) {
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
