package cmd

import (
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/refetch/refetch/fetch"
	"github.com/refetch/refetch/report"
	"github.com/spf13/pflag"
)

// ReportFlags are the flags of the reports CI systems read (--report,
// --flaky-fails) and of the trace ids that tie a run to server logs
// (--traceparent), shared by fetch, check and probe. See docs/reports.md.
type ReportFlags struct {
	Reports     []string
	FlakyFails  bool
	Traceparent bool

	// trace is the run's trace context, made once: every URL of a check
	// or a batch shares the run's trace id.
	trace *fetch.TraceContext
}

// register adds --report, --flaky-fails and --traceparent.
func (r *ReportFlags) register(fs *pflag.FlagSet, command string) {
	fs.StringArrayVar(&r.Reports, "report", nil, "also write a report to FILE (repeatable): `FORMAT=FILE`, FORMAT junit, tap or tap13; replaced atomically")
	flaky := "exit 8 when a URL passed only after failed attempts (flaky; reports show it either way)"
	switch command {
	case "fetch":
		flaky = "exit 8 (a batch: 9) when a URL was fetched only after failed attempts (flaky); the output is kept"
	case "probe":
		flaky = "exit 8 when any request failed, even if the success rate is met"
	}
	fs.BoolVar(&r.FlakyFails, "flaky-fails", false, flaky)
	fs.BoolVar(&r.Traceparent, "traceparent", false, "send a W3C traceparent header: one trace id per run, a new span id per attempt")
}

// specs parses every --report, before any request.
func (r *ReportFlags) specs(n flagNames) ([]report.Spec, error) {
	var out []report.Spec
	for _, v := range r.Reports {
		sp, err := report.ParseSpec(v)
		if err != nil {
			return nil, n.invalid("report", fmt.Sprintf("%q", v), "%v", err)
		}
		out = append(out, sp)
	}
	return out, nil
}

// traceFor sets req.Trace with --traceparent: the run's trace, started
// once, or, when -H gives a traceparent, that trace continued (its trace
// id and flags kept, a new span id per attempt). Without --traceparent a
// traceparent given with -H is sent as it is.
func (r *ReportFlags) traceFor(req *fetch.Request, n flagNames) error {
	if !r.Traceparent {
		return nil
	}
	if r.trace == nil {
		if given := req.Header.Values(http.CanonicalHeaderKey("traceparent")); len(given) > 0 {
			tc, err := fetch.ParseTraceparent(given[len(given)-1])
			if err != nil {
				return usageErrorf("%s with %s: the traceparent header given: %v", n.flag("traceparent"), n.of("header", "-H"), err)
			}
			r.trace = tc
		} else {
			tc, err := fetch.NewTraceContext()
			if err != nil {
				return fmt.Errorf("%s: %w", n.flag("traceparent"), err)
			}
			r.trace = tc
		}
	}
	req.Trace = r.trace
	return nil
}

// traceID is the run's trace id, "" without --traceparent.
func (r *ReportFlags) traceID() string {
	if r.trace == nil {
		return ""
	}
	return r.trace.TraceID
}

// open opens the run's reports before any request (a report that cannot
// be written there is a usage error) and, for check, the GitHub Actions
// output when GITHUB_ACTIONS=true. The Set is nil when nothing is asked.
func (r *ReportFlags) open(command string, n flagNames, io *IOStreams, getenv func(string) string, github bool) (*report.Set, error) {
	specs, err := r.specs(n)
	if err != nil {
		return nil, err
	}
	github = github && getenv("GITHUB_ACTIONS") == "true"
	if len(specs) == 0 && !github {
		return nil, nil
	}
	set, err := report.Open(specs, report.Run{Command: command, TraceID: r.traceID()})
	if err != nil {
		return nil, reportUsageError(n, err)
	}
	if github {
		if err := set.AddGitHub(report.GitHub{Annotations: io.ErrOut, SummaryPath: getenv("GITHUB_STEP_SUMMARY")}); err != nil {
			set.Discard()
			return nil, &UsageError{Err: err}
		}
	}
	return set, nil
}

// reportUsageError names the flag of a report that cannot be written.
func reportUsageError(n flagNames, err error) error {
	var pe *report.PathError
	if errors.As(err, &pe) && n.fromEnv["report"] {
		pe.What = EnvName("report") + " " + pe.What[len("--report "):]
	}
	return &UsageError{Err: err}
}

// closeReports writes the reports at the end of a run. A report that
// cannot be written is an output error (exit 1) that says what the run's
// own verdict was; otherwise the run's error stands.
func closeReports(set *report.Set, elapsed time.Duration, runErr error) error {
	if err := set.Close(elapsed); err != nil {
		verdict := "success"
		if runErr != nil {
			verdict = describe(runErr)
		}
		return fmt.Errorf("%w: %v (the run's verdict: %s)", fetch.ErrOutput, err, verdict)
	}
	return runErr
}

// describeOrEmpty is describe(err), "" for nil.
func describeOrEmpty(err error) string {
	if err == nil {
		return ""
	}
	return describe(err)
}

// flakyError is the error --flaky-fails makes of a URL that passed only
// after failed attempts (exit 8).
func flakyError(c report.Case) error {
	n := c.FailedAttempts()
	return fmt.Errorf("%w: flaky: passed only after %d failed attempt%s (--flaky-fails)", ErrUnhealthy, n, plural(n))
}
