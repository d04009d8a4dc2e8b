package cmd

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/refetch/refetch/fetch"
	"github.com/refetch/refetch/resilience"
	"github.com/spf13/cobra"
)

// FetchOptions are the options of `refetch fetch`.
type FetchOptions struct {
	IO     *IOStreams
	Getenv func(string) string
	Log    *Logger
	// Changed reports whether a flag was set (on the command line or by
	// its variable).
	Changed func(name string) bool

	URL string
	RetryFlags

	Fallback     string
	FallbackFile string
	StaleIfError time.Duration

	RequestFlags

	Output   string
	NoBuffer bool
	JSON     bool

	// Clock and NewTimer are for tests; nil means real time.
	Clock    resilience.Clock
	NewTimer func() resilience.Timer
}

// NewCmdFetch returns `refetch fetch URL`. runF replaces the run in tests
// of flag handling.
func NewCmdFetch(f *Factory, runF func(context.Context, *FetchOptions) error) *cobra.Command {
	opts := &FetchOptions{IO: f.IO, Getenv: f.Getenv}
	c := &cobra.Command{
		Use:   "fetch URL",
		Short: "Fetch a URL through retries, the circuit breaker and fallbacks",
		Long: `Fetch a URL through Fallback(Retry(Breaker(attempt))) and print the body.

stdout holds the complete body of one successful response, or nothing (or the
fallback). Every flag can also come from REFETCH_<FLAG>, e.g. REFETCH_MAX_TIME=30s.

Exit codes: 0 ok (also stale/fallback served), 1 internal, 2 usage,
3 not retryable, 4 retries exhausted, 5 circuit open, 6 rate limited,
7 deadline, 130/143 interrupted.`,
		Example: `  data=$(refetch fetch https://api.example.com/items) || exit
  refetch fetch -n 5 --delay 500ms --max-time 30s -o items.json https://api.example.com/items
  refetch fetch --json --fallback '[]' https://api.example.com/items | jq .data`,
		Args: exactArgs(1, "URL"),
		RunE: func(c *cobra.Command, args []string) error {
			opts.URL = args[0]
			opts.Log = f.Logger()
			opts.Changed = func(name string) bool { return c.Flags().Changed(name) }
			if runF != nil {
				return runF(c.Context(), opts)
			}
			return runFetch(c.Context(), opts)
		},
	}
	fs := c.Flags()
	fs.SortFlags = false
	opts.RetryFlags.register(fs)
	fs.StringVar(&opts.Fallback, "fallback", "", "serve `TEXT` when the fetch fails")
	fs.StringVar(&opts.FallbackFile, "fallback-file", "", "serve the content of `PATH` when the fetch fails")
	fs.DurationVar(&opts.StaleIfError, "stale-if-error", 0, "cache good GET bodies; serve one younger than this when the fetch fails")
	opts.RequestFlags.register(fs, true)
	fs.StringVarP(&opts.Output, "output", "o", "", "write the body to `FILE` (atomically) instead of stdout")
	fs.BoolVarP(&opts.NoBuffer, "no-buffer", "N", false, "stream the body to stdout as it arrives (a cut body is not retried)")
	fs.BoolVar(&opts.JSON, "json", false, "print one JSON report on stdout instead of the body")
	return c
}

// fetchPlan is a validated fetch.
type fetchPlan struct {
	req      *fetch.Request
	policy   resilience.Policy
	fallback fetch.Fallback
	breaker  *breakerPlan
}

type breakerPlan struct {
	key      string
	failures int
	reset    time.Duration
	dir      string
	store    resilience.Store
}

// plan validates the options, reads @files and fallback files, and
// returns what to run. Every problem is a usage error, found before any
// request is sent.
func (o *FetchOptions) plan() (*fetchPlan, error) {
	u, err := fetch.ParseURL(o.URL)
	if err != nil {
		return nil, &UsageError{Err: err}
	}
	policy, err := o.policy()
	if err != nil {
		return nil, err
	}
	req, err := o.RequestFlags.build(u, o.IO.In, o.Changed)
	if err != nil {
		return nil, err
	}
	p := &fetchPlan{req: req, policy: policy}
	if o.Changed("fallback") {
		p.fallback.Data = []byte(o.Fallback)
	}
	if o.FallbackFile != "" {
		if o.Changed("fallback") {
			return nil, usageErrorf("--fallback and --fallback-file cannot be used together")
		}
		data, err := os.ReadFile(o.FallbackFile)
		if err != nil {
			return nil, usageErrorf("--fallback-file: %v", unwrapPath(err))
		}
		p.fallback.Data = data
	}
	if o.StaleIfError < 0 {
		return nil, usageErrorf("invalid --stale-if-error %s: must not be negative", o.StaleIfError)
	}
	if o.StaleIfError > 0 {
		// Like the breaker's store, a cache that cannot be used steps aside
		// with a warning; the fetch itself goes on.
		if dir, err := os.UserCacheDir(); err != nil {
			o.Log.Warnf("--stale-if-error disabled for this run: no cache dir: %v", err)
		} else {
			p.fallback.Stale = resilience.NewStaleCache(filepath.Join(dir, "refetch"))
			p.fallback.Stale.Warn = func(err error) { o.Log.Warnf("%v", err) }
			p.fallback.StaleFor = o.StaleIfError
		}
	}
	failures := o.BreakerFailures
	if !o.Changed("breaker-failures") {
		failures = max(3, policy.Attempts)
	}
	if failures > 0 {
		dir, err := StateDir(o.StateDir, o.Getenv)
		if err != nil {
			o.Log.Warnf("circuit breaker disabled for this run: %v", err)
		} else {
			key := o.BreakerKey
			if key == "" {
				key = BreakerKey(u)
			}
			store, err := openStore(o.Store, dir, o.BreakerReset, func(err error) { o.Log.Warnf("%v", err) })
			if err != nil {
				return nil, err
			}
			p.breaker = &breakerPlan{key: key, failures: failures, reset: o.BreakerReset, dir: dir, store: store}
		}
	}
	return p, nil
}

// BreakerKey is the default breaker key of a URL: scheme://host:port.
func BreakerKey(u *url.URL) string {
	port := u.Port()
	scheme := strings.ToLower(u.Scheme)
	if port == "" {
		port = "80"
		if scheme == "https" {
			port = "443"
		}
	}
	host := strings.ToLower(u.Hostname())
	if strings.Contains(host, ":") {
		host = "[" + host + "]"
	}
	return scheme + "://" + host + ":" + port
}

// newBreaker opens the breaker of a plan; store problems are warnings.
func newBreaker(bp *breakerPlan, log *Logger) *resilience.Breaker {
	if bp == nil {
		return nil
	}
	warn := func(err error) { log.Warnf("%v", err) }
	return resilience.NewBreaker(resilience.Settings{
		Key: bp.key, Failures: bp.failures, Reset: bp.reset,
		Store: bp.store, Warn: warn,
		OnStateChange: log.BreakerChange,
	})
}

func runFetch(ctx context.Context, o *FetchOptions) error {
	p, err := o.plan()
	if err != nil {
		if o.JSON {
			o.writeUsageReport(err)
		}
		return err
	}
	sink, jsonBuf, err := o.sink()
	if err != nil {
		if o.JSON {
			o.writeUsageReport(err)
		}
		return err
	}
	defer sink.Close()
	cfg := fetch.Config{
		Request: p.req, Policy: p.policy, Breaker: newBreaker(p.breaker, o.Log), Sink: sink,
		Fallback: p.fallback, Clock: o.Clock, NewTimer: o.NewTimer,
		Hooks: fetch.Hooks{OnRequest: o.Log.Request, OnResponse: o.Log.Response, OnRetry: o.Log.Retry,
			OnBody: o.Log.BodyProgress()},
	}
	if o.NoBuffer && o.Output == "" && o.IO.OutTTY {
		// The body streams to the same terminal: a bar would garble it.
		cfg.Hooks.OnBody = nil
	}
	res, err := fetch.Run(ctx, cfg)
	o.Log.Close()
	if res != nil {
		o.warnServed(res)
	}
	if o.JSON {
		var body io.Reader
		if jsonBuf != nil && res != nil && res.Source != fetch.SourceNone {
			body, _ = jsonBuf.Reader()
		}
		reportErr := err
		if res != nil && res.Err != nil {
			reportErr = res.Err
		}
		rep := fetch.NewReport(p.req, res, body, reportErr, ExitCode(err), FailureClass(reportErr))
		rep.Output = o.Output
		if werr := writeJSON(o.IO.Out, rep); werr != nil && err == nil {
			return fmt.Errorf("%w: %v", resilience.ErrOutput, werr)
		}
	}
	return err
}

// warnServed writes the one warning of a run that served stale or fallback data.
func (o *FetchOptions) warnServed(res *fetch.Result) {
	switch res.Source {
	case fetch.SourceStale:
		o.Log.Warnf("serving stale response from %s ago: %v", FormatDuration(res.StaleAge), res.Err)
	case fetch.SourceFallback:
		o.Log.Warnf("serving fallback: %v", res.Err)
	}
}

// sink picks where the body goes: -o FILE, stdout streamed (-N), stdout
// buffered, or (with --json) a buffer read into the report.
func (o *FetchOptions) sink() (fetch.Sink, *fetch.BufferSink, error) {
	if o.Output != "" && o.Output != "-" {
		s, err := fetch.NewFileSink(o.Output)
		if err != nil {
			return nil, nil, &UsageError{Err: err}
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
	method := strings.ToUpper(o.Method)
	switch {
	case method == "" && o.Changed("data"):
		method = http.MethodPost
	case method == "":
		method = http.MethodGet
	}
	rep := fetch.Report{URL: fetch.Redact(o.URL), Method: method, Source: fetch.SourceNone,
		Data: json.RawMessage("null"), ExitCode: ExitCode(err), Attempts: []fetch.ReportAttempt{}}
	msg := fetch.Redact(err.Error())
	rep.Error = &msg
	rep.Details = &fetch.Details{Class: FailureClass(err)}
	_ = writeJSON(o.IO.Out, rep)
}

func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	return enc.Encode(v)
}
