package cmd

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/refetch/refetch/fetch"
	"github.com/refetch/refetch/internal/escape"
	"github.com/refetch/refetch/internal/fileinput"
	"github.com/refetch/refetch/report"
	"github.com/refetch/refetch/resilience"
	"github.com/spf13/cobra"
	"golang.org/x/net/idna"
)

// FetchOptions are the options of `refetch fetch`.
type FetchOptions struct {
	IO     *IOStreams
	Getenv func(string) string
	Log    *Logger

	URL string
	// URLs are the URL arguments; more than one (or -i) makes a batch.
	URLs []string
	RetryFlags

	Fallback     string
	FallbackFile string
	StaleIfError time.Duration

	RequestFlags
	ReportFlags

	Output   string
	NoBuffer bool
	JSON     bool
	// NoResume: a retry after a cut body asks for the whole body again.
	NoResume bool

	// Batch holds the flags only a batch uses (-i, -P, ...).
	Batch BatchFlags
	// Hedges are --hedge and --hedge-max (hedge.go).
	Hedges HedgeFlags

	// Resolved in RunE: was the flag given?
	OutputGiven       bool
	FallbackGiven     bool
	FallbackFileGiven bool
	StaleIfErrorGiven bool

	// reported is set once the one --json report is written.
	reported bool

	// Clock and NewTimer are for tests; nil means real time.
	Clock    resilience.Clock
	NewTimer func() resilience.Timer
}

// NewCmdFetch returns `refetch fetch URL`. runF replaces the run in tests
// of flag handling.
func NewCmdFetch(f *Factory, runF func(context.Context, *FetchOptions) error) *cobra.Command {
	opts := &FetchOptions{IO: f.IO, Getenv: f.Getenv}
	c := &cobra.Command{
		Use:   "fetch URL...",
		Short: "Fetch a URL through retries, the circuit breaker and fallbacks",
		Long: `Fetch a URL through Fallback(Retry(Breaker(attempt))) and print the body.

stdout holds the complete body of one successful response, or nothing (or the
fallback). Every flag can also come from REFETCH_<FLAG>, e.g. REFETCH_MAX_TIME=30s.

Several URLs, or -i FILE (one URL a line, - for stdin), make a batch: every URL
is checked before the first request, -P requests run at once, each URL through
the same pipeline; -o is then a template ({n}: position, {name}: last path
segment) and --json prints one report a line. Without -o or --json, each body
goes to stdout whole, in the order the fetches end.

` + exitCodesHelp("fetch"),
		Example: `  data=$(refetch fetch https://api.example.com/items) || exit
  refetch fetch -n 5 --delay 500ms --max-time 30s -o items.json https://api.example.com/items
  refetch fetch --json --fallback '[]' https://api.example.com/items | jq .data
  refetch fetch -P 8 -i urls.txt -o 'pages/{n}-{name}'`,
		// No URL is a usage error found in RunE: -i may come from its
		// variable, which is applied after cobra checks the arguments.
		Args: cobra.ArbitraryArgs,
		RunE: func(c *cobra.Command, args []string) error {
			opts.URLs = args
			if len(args) == 0 && opts.Batch.Input == "" {
				if c.Flags().Changed("input") {
					return &UsageError{Err: errors.New("-i needs a file name (or - for stdin); is a variable empty?"), Cmd: c.CommandPath()}
				}
				return &UsageError{Err: errors.New("missing URL"), Cmd: c.CommandPath()}
			}
			if !opts.isBatch() {
				opts.URL = args[0]
			}
			opts.Log = f.Logger()
			fs := c.Flags()
			opts.RetryFlags.resolveGiven(fs)
			opts.RequestFlags.resolveGiven(fs)
			opts.OutputGiven = fs.Changed("output")
			opts.FallbackGiven = fs.Changed("fallback")
			opts.FallbackFileGiven = fs.Changed("fallback-file")
			opts.StaleIfErrorGiven = fs.Changed("stale-if-error")
			if runF != nil {
				return runF(c.Context(), opts)
			}
			if opts.isBatch() {
				return runBatch(c.Context(), opts)
			}
			return runFetch(c.Context(), opts)
		},
	}
	f.onUsageError(c, func(args []string, err error) {
		if !opts.reported && (opts.JSON || jsonRequested(args, f.Getenv)) {
			if opts.URL == "" {
				// The flags did not parse, so neither did the URL: the
				// report names it when one argument alone is one.
				opts.URL = loneURL(args)
			}
			opts.writeUsageReport(err)
		}
	})
	fs := c.Flags()
	fs.SortFlags = false
	opts.RetryFlags.register(fs, false)
	fs.StringVar(&opts.Fallback, "fallback", "", "serve `TEXT` when the fetch fails")
	fs.StringVar(&opts.FallbackFile, "fallback-file", "", "serve the content of `PATH` when the fetch fails")
	fs.DurationVar(&opts.StaleIfError, "stale-if-error", 0, "cache good GET bodies; serve one up to this old when the fetch fails (0: any age)")
	opts.RequestFlags.register(fs, false)
	opts.Hedges.register(fs)
	fs.StringVarP(&opts.Output, "output", "o", "", "write the body to `FILE` instead of stdout: complete or not at all, replaced atomically where the file allows it; in a batch, a template with {n} and {name}")
	fs.BoolVarP(&opts.NoBuffer, "no-buffer", "N", false, "stream the body to stdout as it arrives (a cut body is not retried)")
	fs.BoolVar(&opts.NoResume, "no-resume", false, "retry a GET whose body was cut from byte 0, instead of asking for the rest (Range, If-Range)")
	fs.BoolVar(&opts.JSON, "json", false, "print one JSON report on stdout instead of the body (a batch: one a line)")
	opts.Batch.register(fs)
	opts.ReportFlags.register(fs, "fetch")
	return c
}

// fetchPlan is a validated fetch.
type fetchPlan struct {
	req      *fetch.Request
	policy   resilience.Policy
	fallback fetch.Fallback
	breaker  *breakerPlan
	limits   *limitsPlan
	hedge    *hedgePlan
}

// breakerPlan is a resolved breaker: every value final.
type breakerPlan struct {
	key      string
	failures int
	quorum   int
	node     string
	reset    time.Duration
	dir      string
	store    resilience.Store
	// explicitDir: the dir came from --state-dir or its variable, so a
	// reset command must name it too; storeGiven: so did --store.
	explicitDir bool
	storeGiven  bool
}

// resetHint wraps a circuit-open error with the breaker plan, so the
// final line's "reset with" names the same state dir the run used.
type resetHint struct {
	err  error
	plan *breakerPlan
}

func (e *resetHint) Error() string { return e.err.Error() }
func (e *resetHint) Unwrap() error { return e.err }

// withResetHint adds the plan to a circuit-open error.
func withResetHint(err error, bp *breakerPlan) error {
	if bp == nil || !errors.Is(err, resilience.ErrCircuitOpen) {
		return err
	}
	return &resetHint{err: err, plan: bp}
}

// plan validates the options, reads @files and fallback files, and
// returns what to run. Every problem is a usage error, found before any
// request is sent.
func (o *FetchOptions) plan(ctx context.Context) (*fetchPlan, error) {
	u, err := fetch.ParseURL(o.URL)
	if err != nil {
		return nil, &UsageError{Err: err}
	}
	policy, err := o.policy()
	if err != nil {
		return nil, err
	}
	if err := o.batchFlagsError(); err != nil {
		return nil, err
	}
	switch {
	case o.NoBuffer && o.JSON:
		return nil, usageErrorf("%s streams the body to stdout, %s prints a report there instead: use one",
			o.RequestFlags.names.of("no-buffer", "-N"), o.RequestFlags.names.flag("json"))
	case o.NoBuffer && o.Output != "" && o.Output != "-":
		return nil, usageErrorf("%s streams to stdout, %s writes a file atomically: use one",
			o.RequestFlags.names.of("no-buffer", "-N"), o.RequestFlags.names.of("output", "-o"))
	case o.OutputGiven && o.Output == "":
		return nil, usageErrorf("-o needs a file name (or - for stdout); is a variable empty?")
	case o.StaleIfError < 0:
		return nil, o.RequestFlags.names.invalid("stale-if-error", o.StaleIfError, "must not be negative")
	case o.FallbackFileGiven && o.FallbackFile == "":
		return nil, usageErrorf("--fallback-file needs a file name; is a variable empty?")
	case o.FallbackGiven && o.FallbackFile != "":
		return nil, usageErrorf("%s and %s cannot be used together", o.RequestFlags.names.flag("fallback"), o.RequestFlags.names.flag("fallback-file"))
	}
	req, err := o.RequestFlags.build(ctx, u, o.IO.In)
	if err != nil {
		return nil, err
	}
	if err := o.ReportFlags.traceFor(req, o.RequestFlags.names); err != nil {
		return nil, err
	}
	p := &fetchPlan{req: req, policy: policy}
	if o.FallbackGiven {
		p.fallback.Data = []byte(o.Fallback)
	}
	if o.FallbackFile != "" {
		data, err := readCancellable(ctx, func() ([]byte, error) { return fileinput.Read(o.FallbackFile, fileinput.Max) })
		if ctx.Err() != nil {
			return nil, context.Cause(ctx)
		}
		if err != nil {
			return nil, usageErrorf("%s: %v", o.RequestFlags.names.flag("fallback-file"), unwrapPath(err))
		}
		p.fallback.Data = data
	}
	if o.StaleIfErrorGiven {
		// Like the breaker's store, a cache that cannot be used steps aside
		// with a warning; the fetch itself goes on.
		if dir, err := CacheDir(o.Getenv); err != nil {
			o.Log.Warnf("--stale-if-error disabled for this run: %v", err)
		} else {
			p.fallback.Stale, err = resilience.NewStaleCache(dir, staleMaxBytes)
			if err != nil {
				return nil, err
			}
			p.fallback.StaleFor = o.StaleIfError
		}
	}
	// A batch has up to -P steps of its breakers in flight at once.
	if p.breaker, err = o.RetryFlags.breakerPlan(u, policy.Attempts, o.Batch.Parallel, o.Getenv, o.Log); err != nil {
		return nil, err
	}
	if p.limits, err = o.RetryFlags.limitsBase(p.breaker, o.Batch.Parallel, o.Getenv, o.Log); err != nil {
		return nil, err
	}
	if p.hedge, err = o.hedgePlan(req, p.breaker, p.limits); err != nil {
		return nil, err
	}
	return p, nil
}

// breakerPlan resolves the breaker of a URL: nil when it is off, or when
// no state dir can be found (a warning: the breaker steps aside, the run
// goes on).
func (r *RetryFlags) breakerPlan(u *url.URL, attempts, inFlight int, getenv func(string) string, log *Logger) (*breakerPlan, error) {
	base, err := r.breakerBase(attempts, inFlight, getenv, log)
	return base.forURL(u), err
}

// breakerBase resolves everything of the breaker but its key, once for a
// run however many URLs it has: one store (one Redis client, one failover
// warning), and one warning when there is no state dir. inFlight is how
// many runs of the process may use the store at once.
func (r *RetryFlags) breakerBase(attempts, inFlight int, getenv func(string) string, log *Logger) (*breakerPlan, error) {
	failures := r.breakerFailures(attempts)
	if failures == 0 {
		return nil, nil
	}
	dir, err := StateDir(r.StateDir, getenv)
	if err != nil {
		log.Warnf("circuit breaker disabled for this run: %v", err)
		return nil, nil
	}
	store, err := openStore(r.Store, dir, r.BreakerReset, inFlight, func(err error) { log.Warnf("%v", err) })
	if err != nil {
		return nil, err
	}
	return &breakerPlan{key: r.BreakerKey, failures: failures, quorum: r.BreakerQuorum, node: nodeName(getenv),
		reset: r.BreakerReset, dir: dir, store: store, explicitDir: r.StateDir != "", storeGiven: r.Store != ""}, nil
}

// forURL is the plan for u: the same settings, keyed by --breaker-key or
// by u's scheme://host:port.
func (bp *breakerPlan) forURL(u *url.URL) *breakerPlan {
	if bp == nil {
		return nil
	}
	c := *bp
	if c.key == "" {
		c.key = BreakerKey(u)
	}
	return &c
}

// BreakerKey is the default breaker key of a URL: scheme://host:port, in
// one canonical form, so that every way of writing one origin is one
// breaker (and one set of holds):
//   - the scheme and a DNS name in lower case; a name's trailing dot (its
//     absolute form) dropped; an internationalized name in its xn-- form,
//     the one net/http looks up;
//   - an IP address in its canonical form: IPv6 compressed and in lower
//     case ([0:0:0:0:0:0:0:1] is [::1]), an IPv4-mapped IPv6 address as
//     the IPv4 address it maps ([::ffff:127.0.0.1] is 127.0.0.1); an IPv6
//     zone kept as given ([fe80::1%eth0]: interface names are
//     case-sensitive);
//   - the port always explicit (80 for http, 443 for https), in decimal
//     without leading zeros.
//
// A --breaker-key is used as given, never canonicalized.
func BreakerKey(u *url.URL) string {
	scheme := strings.ToLower(u.Scheme)
	port := u.Port()
	if n, err := strconv.ParseUint(port, 10, 16); err == nil {
		port = strconv.FormatUint(n, 10)
	}
	if port == "" {
		port = "80"
		if scheme == "https" {
			port = "443"
		}
	}
	return scheme + "://" + canonicalHost(u.Hostname()) + ":" + port
}

// canonicalHost is host (as url.URL.Hostname gives it: no brackets, a
// zone unescaped) in BreakerKey's form, bracketed when it is IPv6.
func canonicalHost(host string) string {
	if addr, err := netip.ParseAddr(host); err == nil {
		zone := addr.Zone()
		addr = addr.WithZone("").Unmap()
		if addr.Is4() {
			// A zone means nothing to an IPv4 address.
			return addr.String()
		}
		s := addr.String()
		if zone != "" {
			s += "%" + zone
		}
		return "[" + s + "]"
	}
	name := strings.TrimSuffix(strings.ToLower(host), ".")
	if strings.IndexFunc(name, func(c rune) bool { return c >= utf8.RuneSelf }) >= 0 {
		if ascii, err := idna.Lookup.ToASCII(name); err == nil {
			name = ascii
		}
	}
	return name
}

// newBreaker opens the breaker of a plan for a request whose caller is
// identity (fetch.Request.Identity: the holds it sees and records are
// that identity's); store problems are warnings.
func newBreaker(bp *breakerPlan, identity string, log *Logger) *resilience.Breaker {
	if bp == nil {
		return nil
	}
	warn := func(err error) { log.Warnf("%v", err) }
	b, err := resilience.NewBreaker(resilience.Settings{
		Key: bp.key, Failures: bp.failures, Quorum: bp.quorum, Node: bp.node, Identity: identity,
		Reset: bp.reset, TrialTimeout: bp.reset,
		Store: bp.store, Warn: warn,
		OnStateChange: log.BreakerChange,
	})
	if err != nil {
		// The plan validated every value, so this is a bug; the fetch goes on.
		log.Warnf("circuit breaker disabled for this run: %v", err)
		return nil
	}
	return b
}

// fetchFiles are the files a fetch reads besides its input: -d @FILE,
// --cacert, --fallback-file (see ReportFlags.open).
func (o *FetchOptions) fetchFiles() []namedFile {
	files := o.RequestFlags.requestFiles()
	if o.FallbackFile != "" {
		files = append(files, given(o.RequestFlags.names, "fallback-file", "--fallback-file", o.FallbackFile, false))
	}
	return files
}

func runFetch(ctx context.Context, o *FetchOptions) error {
	p, err := o.plan(ctx)
	if err != nil {
		if o.JSON {
			o.writeUsageReport(err)
		}
		return err
	}
	sink, jsonBuf, err := o.sink(ctx)
	if err != nil {
		if o.JSON {
			o.writeUsageReport(err)
		}
		return err
	}
	defer sink.Close()
	files := o.fetchFiles()
	if o.Output != "" && o.Output != "-" {
		files = append(files, given(o.RequestFlags.names, "output", "-o", o.Output, false))
	}
	switch {
	case o.JSON:
		files = append(files, stdoutCarries("the --json report"))
	case o.Output == "" || o.Output == "-":
		files = append(files, stdoutCarries("the body"))
	}
	reports, err := o.ReportFlags.open(ctx, "fetch", o.RequestFlags.names, o.IO, o.Getenv, false, files...)
	if err != nil {
		if o.JSON {
			o.writeUsageReport(err)
		}
		return err
	}
	defer reports.Discard()
	hedge := p.hedge.start(ctx, p.req.URL, o.Log)
	cfg := fetch.Config{
		Request: p.req, Policy: p.policy, Breaker: newBreaker(p.breaker, p.req.Identity(), o.Log), Sink: sink,
		Limits:   newLimits(p.limits, p.req.URL, p.req.Identity(), o.Log),
		Fallback: p.fallback, Clock: o.Clock, NewTimer: o.NewTimer, Splice: true, NoResume: o.NoResume,
		Hooks: fetch.Hooks{OnRequest: o.Log.Request, OnResponse: o.Log.Response, OnRetry: o.Log.Retry,
			OnHold: o.Log.Hold, OnRateWait: o.Log.RateWait, OnBody: o.Log.BodyProgress(), OnRedirect: o.Log.Redirect, OnTrace: o.Log.Trace,
			OnHedge: o.Log.Hedge},
		Hedge: hedge.config(),
	}
	if o.NoBuffer && o.IO.OutTTY {
		// The body streams to the same terminal: a bar would garble it.
		cfg.Hooks.OnBody = nil
	}
	res, err := fetch.Run(ctx, cfg)
	hedge.finish(ctx, res, o.Log)
	err = withResetHint(err, p.breaker)
	if res != nil {
		res.Err = withResetHint(res.Err, p.breaker)
	}
	o.Log.Close()
	if res != nil {
		o.warnServed(res)
	}
	failure := err
	if failure == nil && res != nil {
		failure = res.Err // a failure answered by stale or fallback data
	}
	c := report.FromRun(p.req, res, FailureClass(failure), describeOrEmpty(failure))
	if err == nil && o.FlakyFails && c.Result == report.Flaky {
		err = flakyError(c)
	}
	if o.JSON {
		var body io.Reader
		if jsonBuf != nil && err == nil && res != nil && res.Source != fetch.SourceNone {
			body, _ = jsonBuf.Reader()
		}
		if failure == nil {
			failure = err // --flaky-fails
		}
		rep := fetch.NewReport(p.req, res, body, fetch.Outcome{ExitCode: ExitCode(err), Err: failure,
			Message: describe(failure), Class: FailureClass(failure)})
		rep.Output = o.Output
		o.reported = true
		if werr := writeReportJSON(o.IO.Out, &rep); werr != nil && err == nil {
			return fmt.Errorf("%w: %v%s", fetch.ErrOutput, werr, fetch.SpaceHint(werr))
		}
	}
	if ctx.Err() != nil {
		return err // interrupted: no report
	}
	if !reports.Empty() {
		reports.Add(c)
		var elapsed time.Duration
		if res != nil && res.Trace != nil {
			elapsed = res.Trace.Elapsed
		}
		return closeReports(reports, elapsed, err)
	}
	return err
}

// warnServed writes the one warning of a run that served stale or fallback data.
func (o *FetchOptions) warnServed(res *fetch.Result) {
	if res.CacheErr != nil {
		o.Log.Warnf("%v", res.CacheErr)
	}
	if res.StaleSkipped != nil {
		o.Log.Warnf("stale copy not served: %v", res.StaleSkipped)
	}
	switch res.Source {
	case fetch.SourceStale:
		o.Log.Warnf("serving stale response from %s ago: %s", FormatDuration(res.StaleAge), describe(res.Err))
	case fetch.SourceFallback:
		o.Log.Warnf("serving fallback: %s", describe(res.Err))
	}
}

// sink picks where the body goes: -o FILE, stdout streamed (-N), stdout
// buffered, or (with --json) a buffer read into the report.
func (o *FetchOptions) sink(ctx context.Context) (fetch.Sink, *fetch.BufferSink, error) {
	toFile := o.Output != "" && o.Output != "-"
	stdout := !toFile || o.JSON
	if fd, ok := fetch.Descriptor(o.Output); toFile && ok && fd == 1 {
		if o.JSON {
			return nil, nil, usageErrorf("-o %s with --json would put the body and the report on stdout together: use one", o.Output)
		}
		stdout = true
	}
	if o.IO.OutClosed && stdout {
		if o.JSON {
			return nil, nil, stdoutClosedError("the report", "redirect stdout")
		}
		return nil, nil, stdoutClosedError("the body", "give -o FILE (-o /dev/null to discard it), or redirect stdout")
	}
	if toFile {
		s, err := fetch.NewFileSink(ctx, o.Output)
		if err != nil {
			return nil, nil, &UsageError{Err: o.RequestFlags.names.name(err)}
		}
		return s, nil, nil
	}
	if o.JSON {
		b := &fetch.BufferSink{}
		return b, b, nil
	}
	if fetch.IsNullDevice(o.IO.Out) {
		return fetch.DiscardSink{}, nil, nil
	}
	if o.NoBuffer {
		return &fetch.StreamSink{Dst: o.IO.Out}, nil, nil
	}
	return &fetch.BufferSink{Dst: o.IO.Out}, nil, nil
}

func (o *FetchOptions) writeUsageReport(err error) {
	o.reported = true
	method := strings.ToUpper(o.Method)
	switch {
	case method == "" && o.DataGiven:
		method = http.MethodPost
	case method == "":
		method = http.MethodGet
	}
	rep := fetch.Report{URL: fetch.RedactRawURL(o.URL), Method: method, Source: fetch.SourceNone,
		Data: json.RawMessage("null"), ExitCode: ExitCode(err), Attempts: []fetch.ReportAttempt{}}
	msg := describe(err)
	rep.Error = &msg
	rep.Details = &fetch.Details{Class: FailureClass(err)}
	_ = writeJSON(o.IO.Out, rep)
}

// loneURL is the one argument of args that starts with http:// or
// https://, "" when none or several do (a flag's value may be a URL too:
// which is the fetch's is then unknown).
func loneURL(args []string) string {
	found := ""
	for _, a := range args {
		low := strings.ToLower(a)
		if strings.HasPrefix(low, "http://") || strings.HasPrefix(low, "https://") {
			if found != "" {
				return ""
			}
			found = a
		}
	}
	return found
}

// writeJSON writes v as one line of JSON (see escapedJSON).
func writeJSON(w io.Writer, v any) error {
	return escapedJSON(w, func(j io.Writer) error {
		enc := json.NewEncoder(j)
		enc.SetEscapeHTML(false)
		return enc.Encode(v)
	})
}

// writeReportJSON writes a fetch report, whose data may stream from a
// spill file (see escapedJSON).
func writeReportJSON(w io.Writer, rep *fetch.Report) error { return escapedJSON(w, rep.WriteJSON) }

// escapedJSON runs write, which writes JSON, through escape.JSON: a
// server's words holding DEL, C1 or bidirectional controls reach no
// terminal or CI log raw from --json, and the data means the same.
func escapedJSON(w io.Writer, write func(io.Writer) error) error {
	j := escape.JSON(w)
	if err := write(j); err != nil {
		return err
	}
	return j.Flush()
}
