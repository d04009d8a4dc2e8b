package cmd

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net/http"
	"os"
	"strings"
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
	fs.StringArrayVar(&r.Reports, "report", nil, "also write a report: `FORMAT=FILE` with FORMAT junit, tap or tap13 (repeatable); replaced atomically")
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
//
// files are the other files the run reads or writes (-o, -i, -d @FILE,
// --fallback-file, --cacert, --metrics): a report that would overwrite
// one of them, or another report, is a usage error too (collide).
func (r *ReportFlags) open(ctx context.Context, command string, n flagNames, io *IOStreams, getenv func(string) string, github bool, files ...namedFile) (*report.Set, error) {
	specs, err := r.specs(n)
	if err != nil {
		return nil, err
	}
	if getenv("GITHUB_ACTIONS") == "true" && getenv("GITHUB_STEP_SUMMARY") != "" {
		files = append(files, namedFile{flag: "$GITHUB_STEP_SUMMARY=" + getenv("GITHUB_STEP_SUMMARY"), path: getenv("GITHUB_STEP_SUMMARY")})
	}
	if len(specs) > 0 || hasWriter(files) {
		// Three fstats, only when there is a report to compare.
		files = append(files, stdStreams(io)...)
	}
	if err := collide(reportFiles(specs, n), files); err != nil {
		return nil, err
	}
	github = github && getenv("GITHUB_ACTIONS") == "true"
	if len(specs) == 0 && !github {
		return nil, nil
	}
	set, err := report.Open(ctx, specs, report.Run{Command: command, TraceID: r.traceID()})
	if err != nil {
		return nil, reportUsageError(n, err)
	}
	if github {
		if err := set.AddGitHub(report.GitHub{Annotations: io.ErrOut, SummaryPath: getenv("GITHUB_STEP_SUMMARY"), FlakyFails: r.FlakyFails}); err != nil {
			set.Discard()
			return nil, &UsageError{Err: err}
		}
	}
	return set, nil
}

// namedFile is a file a run reads or writes: how messages show it
// ("-o out.xml", "$GITHUB_STEP_SUMMARY") and its path.
type namedFile struct {
	flag, path string
	// writes: the run replaces it (--report, --metrics), so it must not
	// be any other file the run uses.
	writes bool
	// info identifies a file that has no path here: a standard stream
	// redirected to a file (< list, > out.txt, 2> err.txt).
	info fs.FileInfo
	// stdout marks the process's stdout when it carries data a report
	// written there would be mixed into (a body, a --json report).
	stdout bool
}

// stdoutCarries is the process's stdout as a file of the run, when it
// carries what (the body, the --json report): a report or --metrics
// written to /dev/stdout would be appended to it, and stdout would hold
// neither whole (a review found a body followed by JUnit, exit 0).
func stdoutCarries(what string) namedFile {
	return namedFile{flag: "stdout, which carries " + what, stdout: true}
}

// hasWriter reports whether files hold one the run replaces (--metrics).
func hasWriter(files []namedFile) bool {
	for _, f := range files {
		if f.writes {
			return true
		}
	}
	return false
}

// stdStreams are the run's standard streams that are regular files (a
// shell's redirections): a report renamed over one would take the place
// of the file the run reads or writes through it, which is then lost
// (-i - < list, check > verdicts.txt).
func stdStreams(io *IOStreams) []namedFile {
	var out []namedFile
	for _, s := range []struct {
		name string
		f    any
	}{{"standard input", io.In}, {"standard output", io.Out}, {"standard error", io.ErrOut}} {
		f, ok := s.f.(*os.File)
		if !ok {
			continue
		}
		if st, err := f.Stat(); err == nil && st.Mode().IsRegular() {
			out = append(out, namedFile{flag: s.name + " (a redirection to that file)", info: st})
		}
	}
	return out
}

// given is the namedFile of a flag given as shown with value path,
// "REFETCH_NAME=path" when it came from its variable.
func given(n flagNames, name, shown, path string, writes bool) namedFile {
	return namedFile{flag: n.set(name, shown, path), path: path, writes: writes}
}

// reportFiles are the files of --report, in order.
func reportFiles(specs []report.Spec, n flagNames) []namedFile {
	out := make([]namedFile, len(specs))
	for i, sp := range specs {
		out[i] = given(n, "report", "--report", sp.String(), true)
		out[i].path = sp.Path
	}
	return out
}

// requestFiles are the files the request flags read: -d @FILE and
// --cacert.
func (r *RequestFlags) requestFiles() []namedFile {
	var out []namedFile
	if r.DataGiven && strings.HasPrefix(r.Data, "@") && r.Data != "@-" {
		out = append(out, namedFile{flag: r.names.set("data", "-d", r.Data), path: r.Data[1:]})
	}
	if r.CACert != "" {
		out = append(out, given(r.names, "cacert", "--cacert", r.CACert, false))
	}
	return out
}

// collide refuses, before any request, a file written at the end of the
// run (a report, --metrics) that is one of the run's other files: the
// reports first, each against every file after it, then the other
// writers against the rest. See docs/reports.md.
func collide(reports, files []namedFile) error {
	all := append(append([]namedFile(nil), reports...), files...)
	for i, w := range all {
		if !w.writes {
			continue
		}
		for j, f := range all {
			if j == i || (f.writes && j < i) {
				continue // a pair of writers is told once, the first first
			}
			if f.stdout {
				if fd, ok := fetch.Descriptor(w.path); ok && fd == 1 {
					return clashError(w, f)
				}
				continue
			}
			if f.info != nil {
				if sameAs(w.path, f.info) {
					return clashError(w, f)
				}
				continue
			}
			if sameFile(w.path, f.path) {
				return clashError(w, f)
			}
		}
	}
	return nil
}

// clashError is the usage error of a report (or --metrics) w that would
// replace f.
func clashError(w, f namedFile) error {
	return usageErrorf("%s would overwrite %s: give them different files", w.flag, f.flag)
}

// sameFile reports whether paths a and b name one file: one path once
// made absolute, cleaned and its symlinks followed (to the file -o and
// the reports replace), or, both existing, one file by os.SameFile (hard
// links).
func sameFile(a, b string) bool {
	cwd, _ := os.Getwd()
	if outputKey(cwd, a) == outputKey(cwd, b) {
		return true
	}
	sa, err := os.Stat(a)
	if err != nil {
		return false
	}
	sb, err := os.Stat(b)
	return err == nil && os.SameFile(sa, sb)
}

// sameAs reports whether path, its symlinks followed, names the file info
// describes. A path that names one of the process's descriptors
// (/dev/stdout, /dev/fd/1, a link to one) does not: a report is written
// through the descriptor, after what the run wrote there.
func sameAs(path string, info fs.FileInfo) bool {
	_, st, err := fetch.OutputTarget(path)
	return err == nil && st != nil && os.SameFile(st, info)
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
