package fetch

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"regexp"
	"strings"
	"sync"
	"time"

	"github.com/itchyny/gojq"
	"github.com/refetch/refetch/resilience"
)

// Observation is what one health-check attempt saw.
type Observation struct {
	Status  int
	Header  http.Header
	Body    []byte
	Latency time.Duration
	Err     error
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
	Headers    []HeaderExpectation
	// MaxLatency bounds the time to the whole body; 0: none.
	MaxLatency time.Duration
}

// ParseHeaderExpectation parses a header expectation, 'Name: REGEX'.
func ParseHeaderExpectation(s string) (HeaderExpectation, error) {
	name, pattern, ok := strings.Cut(s, ":")
	name = strings.TrimSpace(name)
	if !ok || name == "" {
		return HeaderExpectation{}, fmt.Errorf("%q: want 'Name: REGEX'", s)
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
// them all alike.
func (e *Expectations) Evaluate(ctx context.Context, o Observation) []error {
	if o.Err != nil {
		return []error{errors.New("no answer: " + Redact(o.Err.Error()))}
	}
	var failed []error
	if !e.Status.Contains(o.Status) {
		failed = append(failed, fmt.Errorf("status %d not in %s", o.Status, e.StatusText))
	}
	if e.MaxLatency > 0 && o.Latency > e.MaxLatency {
		failed = append(failed, fmt.Errorf("latency %s over %s", o.Latency.Round(time.Millisecond), e.MaxLatency))
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
			failed = append(failed, fmt.Errorf("header %s: %q does not match /%s/", h.Name, RedactHeader(h.Name, values[0]), h.Re))
		}
	}
	if e.Body != nil && !e.Body.Match(o.Body) {
		failed = append(failed, fmt.Errorf("body does not match /%s/", e.Body))
	}
	if e.JSON != nil {
		if err := e.evalJSON(ctx, o.Body); err != nil {
			failed = append(failed, err)
		}
	}
	return failed
}

// evalJSON runs the jq expression on the body: every value it yields must
// be true, and it must yield at least one. Its failure is a
// *JSONExpectationError.
func (e *Expectations) evalJSON(ctx context.Context, body []byte) error {
	var v any
	if err := json.Unmarshal(body, &v); err != nil {
		return &JSONExpectationError{Expr: e.JSONText, Problem: "body is not JSON"}
	}
	iter := e.JSON.RunWithContext(ctx, v)
	n := 0
	for {
		out, ok := iter.Next()
		if !ok {
			break
		}
		n++
		if err, isErr := out.(error); isErr {
			var halt *gojq.HaltError
			if errors.As(err, &halt) && halt.Value() == nil {
				break
			}
			return &JSONExpectationError{Expr: e.JSONText, Problem: err.Error()}
		}
		if out != true {
			b, _ := gojq.Marshal(out)
			return &JSONExpectationError{Expr: e.JSONText, Yielded: truncate(string(b), 80)}
		}
	}
	if n == 0 {
		return &JSONExpectationError{Expr: e.JSONText}
	}
	return nil
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}

// CheckConfig is everything a health check needs: check is the twin of
// Run, with expectations in place of a sink and no fallback.
type CheckConfig struct {
	Requests []*Request
	// Policy is used as given (check sets RetryUnsafe: a probe is always
	// safe to repeat).
	Policy resilience.Policy
	Expect *Expectations
	// Breaker returns the breaker of a request, nil for none; it is called
	// once per request, and each breaker is used by one goroutine.
	Breaker func(*Request) *resilience.Breaker
	// Hooks: OnRequest, OnResponse, OnRedirect and OnTrace are used.
	Hooks Hooks
	// OnRetry, if set, is called before each wait, with the URL being
	// checked (redacted).
	OnRetry  func(url string, info resilience.RetryInfo)
	Clock    resilience.Clock
	NewTimer func() resilience.Timer
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
	// Failures are the failures Failed words, in its order, as errors, for
	// a caller that words them itself (the command layer names its flags).
	Failures []error `json:"-"`
	// Err is the run's error for an unhealthy URL (nil when healthy).
	Err error `json:"-"`
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
	// ExitCode is the process's exit code, set by the command layer.
	ExitCode int `json:"exit_code"`
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
	rep.Healthy = rep.Unhealthy() == 0
	return rep
}

// expectationError is an attempt whose answer failed expectations; raw is
// the answer, so the breaker still sees what the server did.
type expectationError struct {
	failed []error
	raw    resilience.Attempt
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

// classifyCheck is check's resilience.ClassifyFunc: every failure is
// retryable (a service that is coming up may refuse, 404 or fail TLS for a
// while) except a cancellation; the breaker effect is the one the raw
// answer would have had.
func classifyCheck(method string, a resilience.Attempt, p resilience.Policy) resilience.Verdict {
	if errors.Is(a.Err, context.Canceled) {
		return resilience.Verdict{Kind: resilience.Cancelled, Err: a.Err}
	}
	var ee *expectationError
	if !errors.As(a.Err, &ee) {
		return resilience.Verdict{Kind: resilience.Success, Breaker: resilience.CountSuccess}
	}
	raw := Classify(method, ee.raw, p)
	effect := raw.Breaker
	if raw.Kind == resilience.Success {
		effect = resilience.Ignore
	}
	return resilience.Verdict{Kind: resilience.Retryable, Breaker: effect, Err: a.Err}
}

// checkAttempt is what one attempt of a check saw and what it failed.
type checkAttempt struct {
	obs    Observation
	failed []error
}

// errNotHealthyInTime is the failure of a check whose time ran out.
var errNotHealthyInTime = errors.New("not healthy before the time ran out")

func checkOne(ctx context.Context, cfg CheckConfig, req *Request) CheckResult {
	res := CheckResult{URL: RedactURL(req.URL), Failed: []string{}}
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
	// The executor calls the attempt on this goroutine: no locking needed.
	var seen []checkAttempt
	ex := &resilience.Executor{Policy: cfg.Policy, Classify: classifyCheck, Breaker: breaker,
		Clock: cfg.Clock, NewTimer: cfg.NewTimer}
	if cfg.OnRetry != nil {
		ex.OnRetry = func(info resilience.RetryInfo) { cfg.OnRetry(res.URL, info) }
	}
	tr, runErr := ex.Run(ctx, req.Method, func(actx context.Context, n int) resilience.Attempt {
		obs := observe(actx, client, req, n, cfg.Hooks, cfg.Clock)
		failed := cfg.Expect.Evaluate(actx, obs)
		seen = append(seen, checkAttempt{obs: obs, failed: failed})
		a := resilience.Attempt{Status: obs.Status, Header: obs.Header, Err: obs.Err}
		if len(failed) > 0 {
			a.Err = &expectationError{failed: failed, raw: a}
		}
		return a
	})
	res.Attempts = len(tr.Attempts)
	// Report the last attempt the run did not cut off: an attempt ended by
	// --wait or a signal says nothing about the service.
	var last checkAttempt
	for i := len(tr.Attempts) - 1; i >= 0 && i < len(seen); i-- {
		if !errors.Is(tr.Attempts[i].Err, context.Canceled) {
			last = seen[i]
			break
		}
	}
	if runErr == nil {
		res.Healthy = true
	} else {
		res.Err = runErr
		for _, f := range last.failed {
			res.fail(f)
		}
		switch {
		case errors.Is(runErr, resilience.ErrDeadline):
			res.fail(errNotHealthyInTime)
		case errors.Is(runErr, resilience.ErrCircuitOpen), errors.Is(runErr, resilience.ErrRateLimited):
			res.fail(runErr)
		}
		if len(res.Failed) == 0 {
			res.fail(runErr)
		}
	}
	if last.obs.Status != 0 {
		s := last.obs.Status
		res.Status = &s
	}
	if last.obs.Status != 0 || last.obs.Err != nil {
		ms := last.obs.Latency.Milliseconds()
		res.LatencyMS = &ms
	}
	return res
}

// observe sends one health-check request and reads the whole body
// (bounded), whatever the status, so expectations can look at it.
func observe(ctx context.Context, client *http.Client, req *Request, n int, hooks Hooks, clock resilience.Clock) Observation {
	start := clockNow(clock)
	resp, err := req.send(ctx, client, n, hooks)
	if err != nil {
		return Observation{Err: err, Latency: clockNow(clock).Sub(start)}
	}
	defer resp.Body.Close()
	var src io.Reader = resp.Body
	if req.MaxSize > 0 {
		src = io.LimitReader(resp.Body, req.MaxSize+1)
	}
	body, err := io.ReadAll(src)
	o := Observation{Status: resp.StatusCode, Header: resp.Header, Body: body, Latency: clockNow(clock).Sub(start)}
	switch {
	case err != nil:
		o.Err = err
	case req.MaxSize > 0 && int64(len(body)) > req.MaxSize:
		o.Err = fmt.Errorf("%w (%d bytes)", ErrTooLarge, req.MaxSize)
	}
	return o
}
