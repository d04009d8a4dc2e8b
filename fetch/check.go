package fetch

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"regexp"
	"strings"
	"sync"
	"time"

	"github.com/itchyny/gojq"
	"github.com/refetch/refetch/resilience"
)

// Observation is what one health-check attempt saw. It holds only what
// the expectations need: the body only when a body expectation looks at
// it, and then at most the body bound, so a check's memory does not grow
// with its answers.
type Observation struct {
	Status int
	// Header is the response header as the server sent it (sentHeader).
	Header http.Header
	// Body is the decoded body, kept for body expectations only.
	Body []byte
	// BodyErr says why the body expectations cannot look at the body
	// (a *BodyLimitError); nil when they can.
	BodyErr error
	// Received is the body bytes received, before decoding.
	Received int64
	Latency  time.Duration
	// Err is set when no whole answer came: a *NoAnswerError, or a body
	// over Request.MaxSize.
	Err error
	// Trace is where the attempt's time went, and its span id.
	Trace *AttemptTrace
}

// HeaderExpectation requires a response header to match a pattern.
type HeaderExpectation struct {
	Name string
	Re   *regexp.Regexp
}

// Expectations are the conditions of a healthy answer. The zero value
// expects nothing but a response; NewExpectations fills in defaults.
type Expectations struct {
	Status     resilience.StatusSet
	StatusText string // as given, for messages
	Body       *regexp.Regexp
	JSON       *gojq.Code
	JSONText   string
	// JSONFlag is what failures call the expectation (the flag that
	// set it, --expect-json); "" for this package's own words.
	JSONFlag string
	Headers  []HeaderExpectation
	// MaxLatency bounds the time to the whole body; 0: none.
	MaxLatency time.Duration
}

// ParseHeaderExpectation parses a header expectation, 'Name: REGEX'. The
// name must be a header token (RFC 9110): no header with another name can
// ever come, so such an expectation could never pass.
func ParseHeaderExpectation(s string) (HeaderExpectation, error) {
	name, pattern, ok := strings.Cut(s, ":")
	// Blanks around the name go; a line break is no blank (a name
	// "\nContent-Type" was checked as Content-Type, silently).
	name = strings.Trim(name, " \t")
	if !ok || name == "" {
		return HeaderExpectation{}, fmt.Errorf("%q: want 'Name: REGEX'", s)
	}
	if !isToken(name) {
		return HeaderExpectation{}, fmt.Errorf("%q: the name %q is not a header name (one token of letters, digits and !#$%%&'*+-.^_`|~), so no header could match it", s, name)
	}
	re, err := regexp.Compile(strings.TrimSpace(pattern))
	if err != nil {
		return HeaderExpectation{}, fmt.Errorf("%q: %v", s, err)
	}
	return HeaderExpectation{Name: http.CanonicalHeaderKey(name), Re: re}, nil
}

// CompileJQ compiles a jq expression for Expectations.JSON.
func CompileJQ(expr string) (*gojq.Code, error) {
	q, err := gojq.Parse(expr)
	if err != nil {
		return nil, err
	}
	return gojq.Compile(q)
}

// Evaluate returns the failed expectations of o, each one error of one
// line; none means healthy. A failed JSON expectation is a
// *JSONExpectationError. No failure wraps another error: a check retries
// them all alike. Text from the server in a failure is bounded and quoted.
func (e *Expectations) Evaluate(ctx context.Context, o Observation) []error {
	var failed []error
	if o.Status != 0 && !e.Status.Contains(o.Status) {
		failed = append(failed, fmt.Errorf("status %d not in %s", o.Status, e.StatusText))
	}
	if o.Err != nil {
		// No whole answer: what came is not judged further.
		return append(failed, o.Err)
	}
	if e.MaxLatency > 0 && o.Latency > e.MaxLatency {
		failed = append(failed, fmt.Errorf("latency %s over %s", roundMS(o.Latency), e.MaxLatency))
	}
	for _, h := range e.Headers {
		values := o.Header.Values(h.Name)
		matched := false
		for _, v := range values {
			matched = matched || h.Re.MatchString(v)
		}
		switch {
		case len(values) == 0:
			failed = append(failed, fmt.Errorf("header %s missing", h.Name))
		case !matched:
			failed = append(failed, fmt.Errorf("header %s: %q does not match /%s/", h.Name, excerpt(Redact(RedactHeader(h.Name, values[0])), 80), h.Re))
		}
	}
	if (e.Body != nil || e.JSON != nil) && o.BodyErr != nil {
		return append(failed, o.BodyErr)
	}
	if e.Body != nil && !e.Body.Match(o.Body) {
		failed = append(failed, bodyMismatch(e.Body, o.Body))
	}
	if e.JSON != nil {
		if err := e.evalJSON(ctx, o.Body); err != nil {
			failed = append(failed, err)
		}
	}
	return failed
}

// bodyMismatch says that body does not match re, and what the body was:
// its start, quoted (control characters escaped), and its size. A pattern
// anchored with $ against a body that ends with a newline (a common
// "ok\n") gets the line-mode hint.
func bodyMismatch(re *regexp.Regexp, body []byte) error {
	msg := fmt.Sprintf("body does not match /%s/: the body is %q", re, excerpt(Redact(string(body)), 80))
	if len(body) > 80 {
		msg += fmt.Sprintf(" (%s in all)", FormatBytes(int64(len(body))))
	}
	pat := re.String()
	if bytes.HasSuffix(body, []byte("\n")) && strings.Contains(pat, "$") && !strings.HasPrefix(pat, "(?m)") {
		msg += fmt.Sprintf("; the body ends with a newline: /(?m)%s/ matches line by line", pat)
	}
	return errors.New(msg)
}

// evalJSON runs the jq expression on the body: every value it yields must
// be true, and it must yield at least one (halt, which stops it without a
// value, yields none). Its failure is a *JSONExpectationError, whose text
// from jq is bounded.
func (e *Expectations) evalJSON(ctx context.Context, body []byte) error {
	var v any
	if err := json.Unmarshal(body, &v); err != nil {
		problem := "body is not JSON"
		if strings.Contains(err.Error(), "exceeded max depth") {
			// Valid JSON, nested past what the decoder takes.
			problem = "body is JSON nested deeper than 10,000 levels, which check does not read"
		}
		return &JSONExpectationError{Expr: e.JSONText, Flag: e.JSONFlag, Problem: problem}
	}
	iter := e.JSON.RunWithContext(ctx, v)
	n := 0
	for {
		out, ok := iter.Next()
		if !ok {
			break
		}
		if err, isErr := out.(error); isErr {
			var halt *gojq.HaltError
			if errors.As(err, &halt) && halt.Value() == nil {
				break
			}
			problem := excerpt(Redact(err.Error()), 160)
			if ctx.Err() != nil {
				// Cut off: say by what, not Go's "context deadline
				// exceeded".
				problem = "its evaluation was cut off: the check ended"
				var slow *evalTimeoutError
				if errors.As(context.Cause(ctx), &slow) {
					problem = slow.Error()
				}
			}
			return &JSONExpectationError{Expr: e.JSONText, Flag: e.JSONFlag, Problem: problem}
		}
		n++
		if out != true {
			b, _ := gojq.Marshal(out)
			return &JSONExpectationError{Expr: e.JSONText, Flag: e.JSONFlag, Yielded: excerptJSON(Redact(string(b)), 80)}
		}
	}
	if n == 0 {
		return &JSONExpectationError{Expr: e.JSONText, Flag: e.JSONFlag}
	}
	return nil
}

// evalTimeoutError ends the evaluation of the expectations of an attempt
// that reached its time limit: an --expect-json that is slow on the body
// (a tour's 'last(range(1e10))' ran until killed, with no --wait).
type evalTimeoutError struct{ limit time.Duration }

func (e *evalTimeoutError) Error() string {
	return fmt.Sprintf("evaluating it took longer than the attempt's time left (--timeout %s)", e.limit)
}

// evalContext bounds the evaluation of an attempt's answer, which took
// took, by what is left of its time limit (0: none).
func evalContext(ctx context.Context, limit, took time.Duration) (context.Context, context.CancelFunc) {
	if limit <= 0 {
		return ctx, func() {}
	}
	return context.WithTimeoutCause(ctx, max(limit-took, time.Millisecond), &evalTimeoutError{limit: limit})
}

// CheckConfig is everything a health check needs: check is the twin of
// Run, with expectations in place of a sink and no fallback.
type CheckConfig struct {
	Requests []*Request
	// MaxInFlight bounds the attempts in flight at once, across URLs (0:
	// none): each holds a socket, and a check of more URLs than the
	// process may open files for failed them with "too many open files",
	// blaming the services (a tour found 605 of 1,500 so). An attempt
	// waits for a slot before it starts, and when the bound applies, no URL
	// keeps an idle connection between its attempts.
	MaxInFlight int
	slots       chan struct{}
	// Policy is used as given (check sets RetryUnsafe: a probe is always
	// safe to repeat), except that Timeout is applied by the check itself,
	// so that it can say which limit ended an attempt. With MaxTime, a
	// Retry-After beyond the time left is waited only until the last
	// chance (Policy.LastChance) before the end: a gate polls until its
	// own deadline, whatever the server's maintenance page says.
	Policy resilience.Policy
	Expect *Expectations
	// BodyLimit bounds the body kept for the body expectations, after
	// decoding (0: none); a longer body fails them, saying so. Without
	// body expectations the body is read and dropped, whatever its size
	// (Request.MaxSize, when set, still bounds every body).
	BodyLimit int64
	// Stable is how many healthy answers in a row make a URL healthy
	// (0 and 1: the first). A failed answer starts the count again.
	Stable int
	// HonourRetryOn makes a status that is neither expected nor in
	// Policy.RetryOn final, as in fetch; otherwise every failure is
	// retried (a service that is starting may answer anything).
	HonourRetryOn bool
	// MinInterval is the least time from the end of one attempt to the
	// start of the next, whatever the backoff says (a --delay 0 would
	// otherwise poll as fast as the server answers).
	MinInterval time.Duration
	// Breaker returns the breaker of a request, nil for none; it is called
	// once per request, and each breaker is used by one goroutine.
	Breaker func(*Request) *resilience.Breaker
	// Limits returns the rate and retry budget of a request (--rate,
	// --retry-budget), nil for none; called once per request.
	Limits func(*Request) *resilience.Limits
	// Hooks: OnRequest, OnResponse, OnRedirect and OnTrace are used.
	Hooks Hooks
	// OnRetry, if set, is called before each wait, with the URL being
	// checked (redacted). Its RetryAfter is the server's, even when the
	// wait was cut to the time left.
	OnRetry func(url string, info resilience.RetryInfo)
	// OnWaiting, if set, is called every WaitingEvery while an attempt has
	// no whole answer, with how long it has run and how far it has got.
	// It is called from another goroutine than OnRetry.
	OnWaiting    func(url string, n int, after time.Duration, stage string)
	WaitingEvery time.Duration
	Clock        resilience.Clock
	NewTimer     func() resilience.Timer
}

// CheckResult is the outcome for one URL (also its --json form).
type CheckResult struct {
	URL       string `json:"url"`
	Healthy   bool   `json:"healthy"`
	Status    *int   `json:"status"`
	LatencyMS *int64 `json:"latency_ms"`
	// Failed says in words why the URL is unhealthy: Failures' messages.
	Failed   []string `json:"failed"`
	Attempts int      `json:"attempts"`
	// ElapsedMS is the time from the start of the check to the URL's
	// verdict: time to healthy, or until the check gave up.
	ElapsedMS int64 `json:"elapsed_ms"`
	// RateWaitMS is the time spent waiting for rate slots (--rate), 0
	// when there was none (as fetch's).
	RateWaitMS int64 `json:"rate_wait_ms"`
	// Failures are the failures Failed words, in its order, as errors, for
	// a caller that words them itself (the command layer names its flags).
	Failures []error `json:"-"`
	// Err is the run's error for an unhealthy URL (nil when healthy).
	Err error `json:"-"`
	// SpanIDs are the traceparent span ids of its attempts, in order
	// (--traceparent); left out without them. Past CheckKeepAttempts
	// attempts, those of the attempts the trace lists.
	SpanIDs []string `json:"span_ids,omitempty"`
	// OmittedFailed counts the failed attempts among those the trace
	// left out (Trace.Omitted): healthy answers not yet --stable in a
	// row are not failures.
	OmittedFailed int `json:"-"`
	// Trace is every attempt of the URL, for reports (--report); each
	// attempt's Detail is its *AttemptTrace.
	Trace *resilience.Trace `json:"-"`
}

// fail adds one failure to Failed and Failures.
func (r *CheckResult) fail(err error) {
	r.Failed = append(r.Failed, err.Error())
	r.Failures = append(r.Failures, err)
}

// CheckReport is the outcome of a check (also its --json form).
type CheckReport struct {
	Healthy   bool          `json:"healthy"`
	ElapsedMS int64         `json:"elapsed_ms"`
	Results   []CheckResult `json:"results"`
	// Error says why no check ran (a usage error, an interruption).
	Error *string `json:"error,omitempty"`
	// ExitCode is the process's exit code, set by the command layer;
	// Class names it as fetch's details.class does ("unhealthy",
	// "usage", …), omitted on success.
	ExitCode int    `json:"exit_code"`
	Class    string `json:"class,omitempty"`
	// TraceID is the check's W3C trace id (--traceparent), one for every
	// URL; left out without one.
	TraceID string `json:"trace_id,omitempty"`
}

// Unhealthy counts the unhealthy results.
func (r *CheckReport) Unhealthy() int {
	n := 0
	for _, res := range r.Results {
		if !res.Healthy {
			n++
		}
	}
	return n
}

// Check checks every request concurrently, each through Retry(Breaker(
// attempt)) with failed expectations retried, and reports each. The report
// is healthy only when every URL is.
func Check(ctx context.Context, cfg CheckConfig) CheckReport {
	start := clockNow(cfg.Clock)
	if cfg.MaxInFlight > 0 && cfg.MaxInFlight < len(cfg.Requests) {
		cfg.slots = make(chan struct{}, cfg.MaxInFlight)
	}
	results := make([]CheckResult, len(cfg.Requests))
	var wg sync.WaitGroup
	for i, req := range cfg.Requests {
		wg.Add(1)
		go func() {
			defer wg.Done()
			results[i] = checkOne(ctx, cfg, req)
		}()
	}
	wg.Wait()
	rep := CheckReport{Healthy: true, ElapsedMS: clockNow(cfg.Clock).Sub(start).Milliseconds(), Results: results}
	if len(cfg.Requests) > 0 && cfg.Requests[0].Trace != nil {
		rep.TraceID = cfg.Requests[0].Trace.TraceID
	}
	rep.Healthy = rep.Unhealthy() == 0
	return rep
}

// expectationError is an attempt whose answer failed expectations (or was
// healthy but not yet Stable in a row: notStable); raw is the answer, so
// the breaker still sees what the server did.
type expectationError struct {
	failed    []error
	raw       resilience.Attempt
	notStable bool
}

func (e *expectationError) Error() string {
	msgs := make([]string, len(e.failed))
	for i, f := range e.failed {
		msgs[i] = f.Error()
	}
	return strings.Join(msgs, "; ")
}

// Unwrap exposes the failed expectations (a *JSONExpectationError) to
// errors.As; none of them wraps an error of its own (see Evaluate).
func (e *expectationError) Unwrap() []error { return e.failed }

// AttemptFailures returns the failures of one attempt of a check, as the
// error a retry reports (resilience.RetryInfo.Err) holds them; nil for any
// other error.
func AttemptFailures(err error) []error {
	var ee *expectationError
	if errors.As(err, &ee) {
		return ee.failed
	}
	return nil
}

// NotStable reports an attempt of a check (its error as the run's trace
// holds it) that was healthy but not yet --stable in a row: not a failure.
func NotStable(err error) bool {
	fs := AttemptFailures(err)
	if len(fs) == 0 {
		return false
	}
	for _, f := range fs {
		var ns *NotStableError
		if !errors.As(f, &ns) {
			return false
		}
	}
	return true
}

// CheckKeepAttempts is how many attempt records a check keeps for the
// reports of each URL: the first half and the latest, so that a long
// --wait does not grow its memory. The others are counted
// (Trace.Omitted, CheckResult.OmittedFailed).
const CheckKeepAttempts = 100

// classify is check's resilience.ClassifyFunc: every failure is retryable
// (a service that is coming up may refuse, 404 or fail TLS for a while)
// except a cancellation and, with HonourRetryOn, a status neither expected
// nor retried; the breaker effect is the one the raw answer would have
// had. A healthy answer not yet Stable in a row is retried and counts as
// the success it is.
func (cfg *CheckConfig) classify(method string, a resilience.Attempt, p resilience.Policy) resilience.Verdict {
	if errors.Is(a.Err, context.Canceled) {
		return resilience.Verdict{Kind: resilience.Cancelled, Err: a.Err}
	}
	var ee *expectationError
	if !errors.As(a.Err, &ee) {
		return resilience.Verdict{Kind: resilience.Success, Breaker: resilience.CountSuccess}
	}
	if ee.notStable {
		return resilience.Verdict{Kind: resilience.Retryable, Breaker: resilience.CountSuccess, Err: a.Err}
	}
	raw := Classify(method, ee.raw, p)
	effect := raw.Breaker
	if raw.Kind == resilience.Success {
		effect = resilience.Ignore
	}
	if s := ee.raw.Status; cfg.HonourRetryOn && s != 0 && !cfg.Expect.Status.Contains(s) && !p.RetryOn.Contains(s) {
		return resilience.Verdict{Kind: resilience.Permanent, Breaker: effect, Err: a.Err}
	}
	return resilience.Verdict{Kind: resilience.Retryable, Breaker: effect, Err: a.Err}
}

// checkAttempt is what one attempt of a check saw and what it failed.
type checkAttempt struct {
	obs    Observation
	failed []error
}

func (a checkAttempt) text() string {
	msgs := make([]string, len(a.failed))
	for i, f := range a.failed {
		msgs[i] = f.Error()
	}
	return strings.Join(msgs, "; ")
}

// cutEarly reports an attempt the end of the check cut off before it had
// even connected: it says nothing about the service.
func (a checkAttempt) cutEarly() bool {
	var na *NoAnswerError
	return errors.As(a.obs.Err, &na) && na.Limit == LimitRunEnd && !na.Connected
}

// checkOne checks one URL. What it keeps across attempts is bounded: the
// last attempt (its body dropped once judged) and a summary of the
// earlier failures, so a long --wait does not grow its memory.
func checkOne(ctx context.Context, cfg CheckConfig, req *Request) (res CheckResult) {
	start := clockNow(cfg.Clock)
	res = CheckResult{URL: RedactURL(req.URL), Failed: []string{}}
	defer func() { res.ElapsedMS = clockNow(cfg.Clock).Sub(start).Milliseconds() }()
	client, err := NewClient(req)
	if err != nil {
		res.fail(err)
		res.Err = err
		return res
	}
	if cfg.Expect.Status.HasRedirect() {
		// A redirect is what is expected: look at it, do not follow it.
		client.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	}
	var breaker *resilience.Breaker
	if cfg.Breaker != nil {
		breaker = cfg.Breaker(req)
	}
	policy := cfg.Policy
	ob := &observer{client: client, req: wireRequest(req), hooks: cfg.Hooks, clock: cfg.Clock,
		keepBody: cfg.Expect.Body != nil || cfg.Expect.JSON != nil, bodyLimit: cfg.BodyLimit,
		timeout: policy.Timeout, maxLatency: cfg.Expect.MaxLatency, every: cfg.WaitingEvery}
	if cfg.OnWaiting != nil {
		ob.onWaiting = func(n int, after time.Duration, stage string) { cfg.OnWaiting(res.URL, n, after, stage) }
	}
	// The observer bounds each attempt itself, so that it can say which
	// limit ended it.
	policy.Timeout = 0
	// book is the URL's memory of the addresses it dialed (dial.go),
	// kept across its attempts.
	book := &addrBook{}
	// The executor calls the attempt on this goroutine: no locking needed.
	var (
		sent      int
		last      *checkAttempt
		earlier   EarlierFailures
		inARow    int
		lastEnd   time.Time
		serverRA  = time.Duration(-1) // the last attempt's Retry-After, -1 if none
		lastState resilience.Attempt
		// paced is the gap pace held before each attempt: wait, not the
		// attempt's time (movePaced).
		paced pacedGaps
	)
	ex := &resilience.Executor{Policy: policy, Classify: cfg.classify, Breaker: breaker,
		Clock: cfg.Clock, NewTimer: cfg.NewTimer, OnRateWait: cfg.Hooks.OnRateWait,
		Keep: CheckKeepAttempts, OnOmit: func(rec resilience.AttemptRecord) {
			if rec.Err != nil && !NotStable(rec.Err) {
				res.OmittedFailed++
			}
		}}
	if cfg.Limits != nil {
		ex.Limits = cfg.Limits(req)
	}
	if cfg.OnRetry != nil {
		ex.OnRetry = func(info resilience.RetryInfo) {
			if serverRA >= 0 {
				info.RetryAfter = serverRA
			}
			// The wait that happens: pace holds the next attempt to
			// MinInterval after this one's end.
			info.Wait = max(info.Wait, cfg.MinInterval)
			cfg.OnRetry(res.URL, info)
		}
	}
	// prev is the last attempt's expectation error, which the run's trace
	// keeps for the reports: once classified, its raw answer's headers are
	// needed no more, and a long --wait keeps every attempt's.
	var prev *expectationError
	forget := func() {
		if prev != nil {
			prev.raw.Header = nil
		}
	}
	tr, runErr := ex.Run(ctx, req.Method, func(actx context.Context, n int) resilience.Attempt {
		forget()
		waited, err := cfg.pace(actx, lastEnd)
		paced.set(n, waited)
		if err != nil {
			return resilience.Attempt{Err: err}
		}
		if cfg.slots != nil {
			select {
			case cfg.slots <- struct{}{}:
			case <-actx.Done():
				return resilience.Attempt{Err: context.Cause(actx)}
			}
		}
		sent++
		obs := ob.observe(withAddrBook(actx, book), n)
		if cfg.slots != nil {
			// More URLs than sockets: none keeps an idle connection
			// between its polls either, or those would fill the limit.
			client.CloseIdleConnections()
			<-cfg.slots
		}
		lastEnd = clockNow(cfg.Clock)
		ectx, cancel := evalContext(actx, ob.timeout, obs.Latency)
		failed := cfg.Expect.Evaluate(ectx, obs)
		cancel()
		obs.Body = nil // judged: not kept
		if len(failed) > 0 && book.several() {
			// The next attempt goes to another of the host's addresses,
			// as fetch's retries do: a gate must not call a service
			// unhealthy that a client's retry reaches (a tour's check
			// asked a hung or 503 address every time). A kept-alive
			// connection to this one would take it back there.
			book.markAddr(obs.Trace.remoteAddr())
			client.CloseIdleConnections()
		}
		cur := &checkAttempt{obs: obs, failed: failed}
		switch {
		case cur.cutEarly() && last != nil:
			// Cut off before it connected: the attempt before says more.
		default:
			if last != nil && len(last.failed) > 0 {
				earlier.add(last.text(), last.failed)
			}
			last = cur
		}
		a := resilience.Attempt{Status: obs.Status, Header: obs.Header, Err: rawErr(obs.Err), Detail: obs.Trace}
		serverRA = -1
		if ra, ok := resilience.ParseRetryAfter(obs.Header.Get("Retry-After"), lastEnd); ok && obs.Header != nil {
			serverRA = ra
		}
		lastState = a
		if len(failed) > 0 {
			inARow = 0
			prev = &expectationError{failed: failed, raw: a}
			a.Err = prev
			return a
		}
		if inARow++; inARow < cfg.Stable {
			prev = &expectationError{failed: []error{&NotStableError{Have: inARow, Want: cfg.Stable}}, raw: a, notStable: true}
			a.Err = prev
			last.failed = prev.failed
		}
		return a
	})
	forget()
	res.Attempts = sent
	movePaced(tr, &paced, cfg.MinInterval)
	res.Trace = tr
	if tr != nil {
		res.RateWaitMS = tr.RateWait.Milliseconds()
		for _, rec := range tr.Attempts {
			if t, _ := rec.Detail.(*AttemptTrace); t != nil && t.SpanID != "" {
				res.SpanIDs = append(res.SpanIDs, t.SpanID)
			}
		}
	}
	if last != nil {
		if s := last.obs.Status; s != 0 {
			res.Status = &s
		}
		if last.obs.Status != 0 || last.obs.Err != nil {
			ms := roundMS(last.obs.Latency).Milliseconds()
			res.LatencyMS = &ms
		}
	}
	if runErr == nil {
		res.Healthy = true
		return res
	}
	res.Err = runErr
	if last != nil {
		for _, f := range last.failed {
			res.fail(f)
		}
	}
	// The earlier failures, when some differ from the last: a service
	// that refused, then hung, is not one that only hung.
	differ := earlier.Other > 0
	for i := range earlier.Kinds {
		earlier.Kinds[i].Same = last != nil && earlier.Kinds[i].Failure == last.text()
		differ = differ || !earlier.Kinds[i].Same
	}
	if differ {
		res.fail(&earlier)
	}
	if ctx.Err() != nil {
		// Stopped from outside (a signal: the CI job was cancelled), not
		// by the service: the line says so, as the exit code does.
		if cause := context.Cause(ctx); !errors.Is(cause, context.DeadlineExceeded) && !errors.Is(cause, resilience.ErrDeadline) {
			// An attempt the signal cut ("no answer: interrupted by
			// SIGTERM") says nothing of the service, and the line below
			// says it once.
			failed, failures := res.Failed[:0], res.Failures[:0]
			for i, f := range res.Failures {
				if na := (*NoAnswerError)(nil); errors.As(f, &na) && na.Err == cause {
					continue
				}
				failed, failures = append(failed, res.Failed[i]), append(failures, f)
			}
			res.Failed, res.Failures = failed, failures
			res.fail(fmt.Errorf("the check was stopped: %v", cause))
			return res
		}
	}
	end := endOf(runErr, tr, policy, lastState.Status)
	switch {
	case end != nil:
		res.fail(end)
	case errors.Is(runErr, resilience.ErrCircuitOpen), len(res.Failed) == 0:
		res.fail(runErr)
	}
	return res
}

// endOf says why a run that ended unhealthy stopped, when its last
// attempt's failures do not: the time ran out, the attempts ran out with
// time left, the breaker opened, a Retry-After too long, a status not
// retried. Nil when there is nothing more to say (a run of -n attempts
// that used them all, a signal).
func endOf(runErr error, tr *resilience.Trace, p resilience.Policy, lastStatus int) *CheckEndError {
	var re *resilience.RunError
	if !errors.As(runErr, &re) {
		return nil
	}
	e := &CheckEndError{Attempts: tr.Count(), Limit: p.MaxTime}
	if p.MaxTime > 0 && tr.Elapsed < p.MaxTime {
		e.Left = p.MaxTime - tr.Elapsed
	}
	switch {
	case re.Reason == resilience.ReasonRateWait:
		e.Reason, e.Left, e.Wait = EndRateSlot, 0, re.Wait
	case errors.Is(re.Class, resilience.ErrDeadline):
		e.Reason, e.Left = EndTimeUp, 0
		if tr.RetryAfter > 0 {
			e.RetryAfter = tr.RetryAfter
		}
	case re.Reason == resilience.ReasonBreakerOpened:
		e.Reason = EndBreakerOpened
	case re.Reason == resilience.ReasonBudgetSpent && re.Budget != nil:
		e.Reason, e.Budget = EndRetryBudget, re.Budget.String()
	case errors.Is(re.Class, resilience.ErrRateLimited):
		e.Reason, e.RetryAfter, e.MaxRetryAfter, e.Quota = EndRetryAfter, re.RetryAfter, p.MaxRetryAfter, re.Quota
	case errors.Is(re.Class, resilience.ErrPermanent) && lastStatus != 0:
		e.Reason, e.Status = EndNotRetried, lastStatus
	case errors.Is(re.Class, resilience.ErrRetriesExhausted) && e.Left > 0:
		e.Reason = EndAttempts
	default:
		return nil
	}
	return e
}

// rawErr is what the transport said of an attempt without a whole answer,
// for classifying its effect on the breaker.
func rawErr(err error) error {
	var na *NoAnswerError
	if errors.As(err, &na) && na.Err != nil && na.Limit == LimitNone {
		return na.Err
	}
	if na != nil {
		return &resilience.TimeoutError{After: na.After, Err: context.DeadlineExceeded}
	}
	return err
}

// pace waits, before an attempt, until MinInterval has passed since the
// end of the previous one (lastEnd; zero for the first), and says how
// long it waited.
func (cfg *CheckConfig) pace(ctx context.Context, lastEnd time.Time) (time.Duration, error) {
	if cfg.MinInterval <= 0 || lastEnd.IsZero() {
		return 0, nil
	}
	start := clockNow(cfg.Clock)
	gap := cfg.MinInterval - start.Sub(lastEnd)
	if gap <= 0 {
		return 0, nil
	}
	t := resilience.NewRealTimer()
	if cfg.NewTimer != nil {
		t = cfg.NewTimer()
	}
	t.Start(gap)
	defer t.Stop()
	select {
	case <-t.C():
		return clockNow(cfg.Clock).Sub(start), nil
	case <-ctx.Done():
		return clockNow(cfg.Clock).Sub(start), context.Cause(ctx)
	}
}

// movePaced moves the gap pace held before an attempt out of that
// attempt's duration (the executor times the whole attempt function) and
// into the wait after the attempt before it: the MinInterval floor
// between attempts is waiting, and an attempt's duration is its own
// request. That wait is the planned one, as every wait of a trace is, and
// as -v's retry line says it: the floor when it held the attempt back
// (a timer's lateness is in neither).
func movePaced(tr *resilience.Trace, paced *pacedGaps, floor time.Duration) {
	if tr == nil {
		return
	}
	for i := 1; i < len(tr.Attempts); i++ {
		d := min(paced.get(tr.Attempts[i].N), tr.Attempts[i].Duration)
		if d <= 0 {
			continue
		}
		tr.Attempts[i].Duration -= d
		if tr.Attempts[i].N == tr.Attempts[i-1].N+1 {
			// (Attempts not listed between them: the gap followed one
			// of those, not the attempt listed before.)
			tr.Attempts[i-1].Wait = max(tr.Attempts[i-1].Wait, floor)
		}
	}
}

// pacedGaps holds the gap pace held before each attempt the trace can
// still list (CheckKeepAttempts: the first half and the latest), in a
// fixed space however long the check runs.
type pacedGaps struct {
	gaps [CheckKeepAttempts + 1]time.Duration
}

// slot is where attempt n's gap lives: the first half by number, the
// latest in a ring over the rest.
func (p *pacedGaps) slot(n int) *time.Duration {
	const head = CheckKeepAttempts / 2
	if n <= head {
		return &p.gaps[n]
	}
	return &p.gaps[head+1+(n-head-1)%(CheckKeepAttempts-head)]
}

func (p *pacedGaps) set(n int, d time.Duration) { *p.slot(n) = d }

// get is attempt n's gap, for an attempt the trace lists.
func (p *pacedGaps) get(n int) time.Duration { return *p.slot(n) }
