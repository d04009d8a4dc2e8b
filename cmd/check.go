package cmd

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/refetch/refetch/fetch"
	"github.com/refetch/refetch/report"
	"github.com/refetch/refetch/resilience"
	"github.com/spf13/cobra"
)

// CheckOptions are the options of `refetch check`.
type CheckOptions struct {
	IO     *IOStreams
	Getenv func(string) string
	Log    *Logger

	URLs []string
	RetryFlags
	RequestFlags
	ReportFlags

	ExpectStatus  string
	ExpectBody    string
	ExpectJSON    string
	ExpectHeaders []string
	MaxLatency    time.Duration
	Wait          time.Duration
	Stable        int
	JSON          bool

	// reported is set once the one --json object is written.
	reported bool

	// MaxSizeGiven and RetryOnGiven are resolved in RunE: --max-size or
	// --retry-on was given (on the command line or by its variable).
	MaxSizeGiven bool
	RetryOnGiven bool

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
			fs := c.Flags()
			opts.RetryFlags.resolveGiven(fs)
			opts.RequestFlags.resolveGiven(fs)
			opts.MaxSizeGiven = fs.Changed("max-size")
			opts.RetryOnGiven = fs.Changed("retry-on")
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
	fs.IntVar(&opts.Stable, "stable", 1, "healthy answers in a row that make a URL healthy, at least 1")
	fs.BoolVar(&opts.JSON, "json", false, "print one JSON object instead of lines")
	opts.RetryFlags.register(fs, true)
	opts.RequestFlags.register(fs, true)
	opts.ReportFlags.register(fs, "check")
	return c
}

// checkLastChance is how long before the end of the time limit (--wait,
// --max-time) the last attempt starts when the backoff would otherwise
// overshoot it: a tenth of the limit, at least 100ms and at most a
// second. The final attempt needs time for an answer: 100ms flat was
// shorter than many services take (and than a loaded CI runner takes to
// schedule a local one), so a service back just before the end was
// judged unhealthy.
func checkLastChance(limit time.Duration) time.Duration {
	return min(max(limit/10, 100*time.Millisecond), time.Second)
}

// checkBodyLimit bounds the body a health check keeps for --expect-body
// and --expect-json when --max-size is not given: enough for any health
// document. Without body expectations the body is read and dropped,
// whatever its size, as curl -sf does.
const checkBodyLimit = 1 << 20

// checkPollFloor is the least time between the end of one attempt and the
// start of the next: a --delay 0 (or a tiny one) under --wait otherwise
// polls as fast as the service answers, loading the very service the gate
// waits for (--wait 2s --delay 0 sent 33,000 requests). Ten checks a
// second per URL still notice a service coming up at once.
const checkPollFloor = 100 * time.Millisecond

// checkWaitingEvery is how often an attempt still without an answer is
// logged; under --wait a fifth of it, at least a second, so a short wait
// on a hanging service says something too.
func checkWaitingEvery(wait time.Duration) time.Duration {
	const most, least = 10 * time.Second, time.Second
	if wait <= 0 {
		return most
	}
	return min(most, max(least, wait/5))
}

// checkPlan is a validated check.
type checkPlan struct {
	reqs      []*fetch.Request
	policy    resilience.Policy
	expect    *fetch.Expectations
	bodyLimit int64
	breaker   func(*fetch.Request) *breakerPlan
	limits    *limitsPlan
	words     checkWords
	// reports are --report's and GitHub's (nil: none).
	reports *report.Set
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
	if o.Stable < 1 {
		return nil, n.invalid("stable", o.Stable, "must be at least 1 (1: the first healthy answer)")
	}
	timeFlag := n.set("max-time", "--max-time", o.MaxTime)
	if o.Wait > 0 {
		if policy.MaxTime == 0 || o.Wait < policy.MaxTime {
			policy.MaxTime = o.Wait
			timeFlag = n.set("wait", "--wait", o.Wait)
		}
		// Under --wait only the time limits the attempts, unless
		// --attempts is given.
		policy.NoAttemptLimit = !o.AttemptsGiven
	}
	if policy.MaxTime > 0 {
		// A gate keeps checking until its own deadline: the last wait is
		// cut so that one more attempt starts before the end, and a
		// Retry-After beyond the time left is waited only that long
		// (fetch.CheckConfig.Policy), so no longest wait applies.
		policy.LastChance = checkLastChance(policy.MaxTime)
		policy.MaxRetryAfter = 0
	}
	if !policy.NoAttemptLimit && policy.Attempts < o.Stable {
		if o.AttemptsGiven {
			return nil, usageErrorf("%s needs at least %d attempts, and %s allows %d",
				n.set("stable", "--stable", o.Stable), o.Stable, n.set("attempts", "--attempts", o.Attempts), o.Attempts)
		}
		policy.Attempts = o.Stable
	}
	// A check is a probe: repeating it is always safe.
	policy.RetryUnsafe = true
	exp := &fetch.Expectations{StatusText: o.ExpectStatus, MaxLatency: o.MaxLatency}
	if exp.Status, err = resilience.ParseStatusSet(o.ExpectStatus); err != nil {
		return nil, n.invalid("expect-status", strconv.Quote(o.ExpectStatus), "want a code (200), a range (200-299), a class (2xx) or a comma list of them")
	}
	if strings.EqualFold(o.RequestFlags.Method, http.MethodHead) && (o.ExpectBody != "" || o.ExpectJSON != "") {
		// Every attempt would fail it, and be retried to the end.
		flag := n.flag("expect-body")
		if o.ExpectBody == "" {
			flag = n.flag("expect-json")
		}
		return nil, usageErrorf("%s with -X HEAD: a HEAD answer has no body to match; drop one of them", flag)
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
		// Failures during the run say it in the flag's words from the
		// start: retry lines and the summary compare their texts.
		exp.JSONFlag = n.of(expectJSONFlag.name, expectJSONFlag.shown)
	}
	for _, h := range o.ExpectHeaders {
		he, err := fetch.ParseHeaderExpectation(h)
		if err != nil {
			return nil, usageErrorf("invalid %s %v", n.flag("expect-header"), err)
		}
		exp.Headers = append(exp.Headers, he)
	}
	p := &checkPlan{policy: policy, expect: exp, bodyLimit: checkBodyLimit}
	for _, raw := range o.URLs {
		u, err := fetch.ParseURL(raw)
		if err != nil {
			return nil, &UsageError{Err: err}
		}
		req, err := o.RequestFlags.build(ctx, u, o.IO.In)
		if err != nil {
			return nil, err
		}
		if err := o.ReportFlags.traceFor(req, n); err != nil {
			return nil, err
		}
		if o.MaxSizeGiven {
			// Given, it bounds every body, and what the body
			// expectations keep (0: no bound).
			p.bodyLimit = req.MaxSize
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
	if p.limits, err = o.RetryFlags.limitsBase(base, len(o.URLs), o.Getenv, o.Log); err != nil {
		return nil, err
	}
	p.words = checkWords{
		limits: fetch.LimitWords{
			fetch.LimitTimeout:    n.flag("timeout"),
			fetch.LimitMaxLatency: n.flag("max-latency"),
			fetch.LimitRunEnd:     "the end of the check",
		},
		end: fetch.EndWords{
			Time:       timeFlag,
			Attempts:   n.set("attempts", "--attempts", o.Attempts),
			Breaker:    n.set("breaker-failures", "--breaker-failures", o.BreakerFailures),
			RetryAfter: "for it without --wait",
			RetryOn:    n.set("retry-on", "--retry-on", o.RetryOn),
		},
		stable:  n.set("stable", "--stable", o.Stable) + " wanted",
		maxSize: n.flag("max-size"),
		names:   n,
	}
	if policy.MaxTime > 0 {
		p.words.limits[fetch.LimitRunEnd] = "the end of " + timeFlag
	}
	// Last, so that nothing after it can fail and leave it open.
	files := o.RequestFlags.requestFiles()
	if o.JSON {
		files = append(files, stdoutCarries("the --json report"))
	}
	if p.reports, err = o.ReportFlags.open(ctx, "check", n, o.IO, o.Getenv, true, files...); err != nil {
		return nil, err
	}
	return p, nil
}

// checkWords are the flags' names in a check's failures.
type checkWords struct {
	limits  fetch.LimitWords
	end     fetch.EndWords
	stable  string
	maxSize string
	// names call the inputs of fetch's errors (a JSON expectation) by
	// their flags or variables (flagNames.name).
	names flagNames
}

// word puts one failure of the fetch layer into the words of the flags
// that set its limits (flagNames.name: a failed JSON expectation is
// "--expect-json EXPR ..."), adding the flag that changes a size limit.
// Every failure text of check (stdout, --json, retry lines, reports)
// comes through here: it is redacted (the server's words may quote a
// secret of the request).
func (w checkWords) word(f error) string { return fetch.Redact(w.words(f)) }

func (w checkWords) words(f error) string {
	var (
		na    *fetch.NoAnswerError
		end   *fetch.CheckEndError
		ns    *fetch.NotStableError
		bl    *fetch.BodyLimitError
		early *fetch.EarlierFailures
	)
	switch {
	case fetch.AttemptFailures(f) != nil:
		// The failures of one attempt, as a retry line shows them.
		errs := fetch.AttemptFailures(f)
		msgs := make([]string, len(errs))
		for i, e := range errs {
			msgs[i] = w.word(e)
		}
		return strings.Join(msgs, "; ")
	case errors.As(f, &early):
		return early.Text(w.word)
	case errors.As(f, &na):
		return na.Text(w.limits)
	case errors.As(f, &end):
		return end.Text(w.end)
	case errors.As(f, &ns):
		return ns.Text(w.stable)
	case errors.As(f, &bl) && bl.Limit > 0:
		return bl.Error() + " (" + w.maxSize + " sets the bound)"
	case errors.Is(f, fetch.ErrTooLarge):
		return w.names.name(f).Error() + " (" + w.maxSize + " sets the limit)"
	}
	return w.names.name(f).Error()
}

// resetAdvice is the reset command of the first URL refused by an open
// circuit, as fetch's final line gives it ("; reset with: refetch
// breaker reset …"), or "": a gate that failed with no attempt because
// another job opened the circuit is when the command is needed.
func (p *checkPlan) resetAdvice(results []fetch.CheckResult) string {
	for i, r := range results {
		if r.Err != nil && errors.Is(r.Err, resilience.ErrCircuitOpen) && i < len(p.reqs) && p.breaker != nil {
			return hint(withResetHint(r.Err, p.breaker(p.reqs[i])))
		}
	}
	return ""
}

func runCheck(ctx context.Context, o *CheckOptions) error {
	p, err := o.plan(ctx)
	if err != nil {
		if o.JSON {
			o.writeUsageReport(err)
		}
		return err
	}
	if o.IO.OutClosed && (o.JSON || !o.IO.OutNullRW) {
		p.reports.Discard()
		// As fetch, probe and breaker status: what the check prints would
		// be lost, so it is a local failure before any request. A stdout
		// that is /dev/null opened read-write may be closed or a discard
		// on purpose (Python's subprocess.DEVNULL, Node's 'ignore'): a
		// check's verdict is its exit code, so its result lines are let go
		// there; a --json report, the thing asked for, is not.
		if o.JSON {
			return stdoutClosedError("the report", "redirect stdout")
		}
		return stdoutClosedError("the results", "redirect stdout (> /dev/null to discard them)")
	}
	several := len(p.reqs) > 1
	label := func(url string) string {
		if !several {
			return "" // one URL: the line needs no label
		}
		return url
	}
	rep := fetch.Check(ctx, fetch.CheckConfig{
		Requests: p.reqs, MaxInFlight: inFlightBound(), Policy: p.policy, Expect: p.expect, BodyLimit: p.bodyLimit,
		Stable: o.Stable, HonourRetryOn: o.RetryOnGiven, MinInterval: checkPollFloor,
		Breaker: func(req *fetch.Request) *resilience.Breaker { return newBreaker(p.breaker(req), req.Identity(), o.Log) },
		Limits: func(req *fetch.Request) *resilience.Limits {
			return newLimits(p.limits, req.URL, req.Identity(), o.Log)
		},
		Hooks: fetch.Hooks{OnRequest: o.Log.Request, OnResponse: o.Log.Response, OnRedirect: o.Log.Redirect, OnTrace: o.Log.Trace,
			OnRateWait: o.Log.RateWait},
		OnRetry: func(url string, info resilience.RetryInfo) {
			// The failure in the flags' words, as the report has it.
			info.Err = errors.New(p.words.word(info.Err))
			o.Log.RetryFor(label(url), info)
		},
		OnWaiting: func(url string, n int, after time.Duration, stage string) {
			prefix := ""
			if l := label(url); l != "" {
				prefix = l + ": "
			}
			o.Log.Infof("%sattempt %d: no answer yet after %s: %s", prefix, n, FormatDuration(after), stage)
		},
		WaitingEvery: checkWaitingEvery(o.Wait),
		Clock:        o.Clock, NewTimer: o.NewTimer,
	})
	o.Log.Close()
	for i := range rep.Results {
		p.words.wordFailures(&rep.Results[i])
	}
	flaky := 0
	// flakyNotes say, on stdout, why a flaky URL failed the run under
	// --flaky-fails.
	flakyNotes := map[int]string{}
	for i, r := range rep.Results {
		c := report.FromCheck(r, p.words.word, p.expect.Status.Contains)
		if c.Result == report.Flaky {
			flaky++
			if o.FlakyFails {
				nf := c.FailedAttempts()
				flakyNotes[i] = fmt.Sprintf("failed under %s: passed on attempt %d, after %d failed attempt%s",
					o.RequestFlags.names.flag("flaky-fails"), c.Count(), nf, plural(nf))
			}
		}
		if ctx.Err() == nil {
			p.reports.Add(c)
		}
	}
	switch bad := rep.Unhealthy(); {
	case ctx.Err() != nil:
		err = context.Cause(ctx)
	case bad > 0:
		err = fmt.Errorf("%w: %d of %d URL%s%s", ErrUnhealthy, bad, len(rep.Results), plural(len(rep.Results)), p.resetAdvice(rep.Results))
	case flaky > 0 && o.FlakyFails:
		err = fmt.Errorf("%w: %d of %d URL%s flaky: healthy only after failed attempts (--flaky-fails)", ErrUnhealthy,
			flaky, len(rep.Results), plural(len(rep.Results)))
	}
	var werr error
	if o.JSON {
		rep.ExitCode, rep.Class = ExitCode(err), FailureClass(err)
		o.reported = true
		werr = writeJSON(o.IO.Out, rep)
	} else {
		werr = o.printResults(rep.Results, flakyNotes)
	}
	if werr != nil {
		// The verdict did not reach its reader: exit 1, as for --json, and
		// say what the verdict was.
		verdict := "healthy"
		if err != nil {
			verdict = describe(err)
		}
		p.reports.Discard()
		return fmt.Errorf("%w: stdout: %v%s (the check's verdict: %s)", fetch.ErrOutput, werr, fetch.SpaceHint(werr), verdict)
	}
	if ctx.Err() != nil {
		// Interrupted: the results are not the check's; no report.
		p.reports.Discard()
		return err
	}
	return closeReports(p.reports, time.Duration(rep.ElapsedMS)*time.Millisecond, err)
}

// wordFailures names the flags in r's failures (see word).
func (w checkWords) wordFailures(r *fetch.CheckResult) {
	if len(r.Failures) != len(r.Failed) {
		// Not one error per failure: keep the layer's words, redacted.
		for k := range r.Failed {
			r.Failed[k] = fetch.Redact(r.Failed[k])
		}
		return
	}
	for k, f := range r.Failures {
		r.Failed[k] = w.word(f)
	}
}

// writeUsageReport prints check's --json object for a run that ended
// before any check: not healthy, no results, the error and its exit code.
func (o *CheckOptions) writeUsageReport(err error) {
	o.reported = true
	msg := describe(err)
	_ = writeJSON(o.IO.Out, fetch.CheckReport{Results: []fetch.CheckResult{}, Error: &msg, ExitCode: ExitCode(err), Class: FailureClass(err)})
}

// printResults writes one line per URL: verdict, URL, status, latency,
// attempts, the time to the verdict and the failed expectations in words.
// stdout is for scripts and CI logs: no colour (--color is stderr's), and
// what came from outside (the server's words in a failure) escaped as on
// stderr, so a body cannot forge a workflow command or drive a terminal.
//
// flaky holds, by index, why a flaky URL failed the run (--flaky-fails):
// its verdict is "flaky", not healthy, and the note ends its line.
func (o *CheckOptions) printResults(results []fetch.CheckResult, flaky map[int]string) error {
	tw := tabwriter.NewWriter(o.IO.Out, 0, 4, 2, ' ', 0)
	for i, r := range results {
		verdict := "healthy"
		if !r.Healthy {
			verdict = "unhealthy"
		}
		if note, ok := flaky[i]; ok {
			verdict = "flaky"
			r.Failed = append(r.Failed[:len(r.Failed):len(r.Failed)], note)
		}
		status, latency := "-", "-"
		if r.Status != nil {
			status = fmt.Sprint(*r.Status)
		}
		if r.LatencyMS != nil {
			latency = fmt.Sprintf("%dms", *r.LatencyMS)
		}
		line := fmt.Sprintf("%s\t%s\t%s\t%s\t%d attempt%s\tafter %s", verdict, printable(r.URL), status, latency,
			r.Attempts, plural(r.Attempts), FormatDuration(time.Duration(r.ElapsedMS)*time.Millisecond))
		if len(r.Failed) > 0 {
			line += "\t" + printable(strings.Join(r.Failed, "; "))
		}
		fmt.Fprintln(tw, line)
	}
	return tw.Flush()
}
