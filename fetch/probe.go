package fetch

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/refetch/refetch/resilience"
)

// ErrorClass names the kind of failure of one request, for counting:
// resilience's transport classes (the one taxonomy, which the retry
// verdict uses too), and this package's own two.
type ErrorClass = resilience.FailureClass

// The error classes of a probe.
const (
	ClassRefused = resilience.FailRefused
	ClassReset   = resilience.FailReset
	ClassClosed  = resilience.FailClosed
	ClassTimeout = resilience.FailTimeout
	ClassTLS     = resilience.FailTLS
	ClassDNS     = resilience.FailDNS
	ClassOther   = resilience.FailOther
	// ClassRedirects: more redirects than --max-redirs.
	ClassRedirects ErrorClass = "redirects"
	// ClassTooLarge: the body or the headers exceeded their limit.
	ClassTooLarge ErrorClass = "too_large"
)

// ClassifyError puts a request's failure in its class: this package's
// own failures first, then resilience.ClassifyTransport.
func ClassifyError(err error) ErrorClass {
	switch {
	case errors.Is(err, ErrTooManyRedirects), errors.Is(err, ErrBadRedirect):
		return ClassRedirects
	case errors.Is(err, ErrTooLarge), errors.Is(err, ErrHeadersTooLarge):
		return ClassTooLarge
	}
	return resilience.ClassifyTransport(err)
}

// ProbeConfig is everything a probe needs.
type ProbeConfig struct {
	Request *Request
	// Client defaults to NewProbeClient(Request): keep-alives off, so that
	// every request measures DNS, connect and TLS, as a loop of curl
	// does.
	Client *http.Client
	// Count is the number of requests, at least 1.
	Count int
	// Interval is the time from the start of one request to the start of
	// the next; a request slower than that is followed at once (requests
	// never overlap).
	Interval time.Duration
	// Timeout bounds one request, headers and body; 0: no bound.
	Timeout time.Duration
	// Hooks: OnRequest, OnResponse, OnRedirect and OnTrace are used.
	Hooks Hooks
	// OnSample, if set, is called after each request with it.
	OnSample func(ProbeSample)
	// Clock and NewTimer time the waits between requests; nil: real time.
	Clock    resilience.Clock
	NewTimer func() resilience.Timer
	// Limits, if set, is the probe's --rate toward its origin: each request
	// waits for its slot (after the interval's wait), and, with Auto, a
	// learned quota with nothing left waits for its reset. Every quota a
	// response advertises is learned. Hooks.OnRateWait is told each wait.
	Limits *resilience.Limits
	// MaxQuotaWait bounds a wait the server's quota asks for (--rate
	// auto: a slot of the learned quota, or its reset when it is spent):
	// a longer one ends the probe with a *ProbeQuotaError, nothing sent
	// for it. 0: no bound. A fixed --rate's slots are the caller's own
	// choice and are not bounded.
	MaxQuotaWait time.Duration
}

// ProbeQuotaError ends a probe whose next slot of the server's quota
// (--rate auto) is further off than the probe waits (MaxQuotaWait). It is
// a rate-limited ending (resilience.ErrRateLimited).
type ProbeQuotaError struct {
	Origin string
	// Spent: the quota has nothing left until its reset, Wait away; else
	// Wait is the next paced slot.
	Spent       bool
	Wait, Limit time.Duration
}

func (e *ProbeQuotaError) Error() string {
	what := fmt.Sprintf("the next request slot of the server's quota for this caller is in %s", e.Wait.Round(time.Second))
	if e.Spent {
		what = fmt.Sprintf("the server's quota for this caller is spent until %s (in %s)",
			resilience.ClockTime(time.Now().Add(e.Wait), time.Now()), e.Wait.Round(time.Second))
	}
	return fmt.Sprintf("%s: %s, longer than probe waits (%s: its --interval, at least %s), so the probe stopped; come back after the reset",
		resilience.ErrRateLimited, what, e.Limit, DefaultProbeQuotaWait)
}

// Unwrap makes it a rate-limited ending.
func (e *ProbeQuotaError) Unwrap() error { return resilience.ErrRateLimited }

// DefaultProbeQuotaWait is the least a probe waits for the server's quota
// (MaxQuotaWait is the larger of it and --interval): fetch's default
// --max-retry-after.
const DefaultProbeQuotaWait = time.Minute

// NewProbeClient is NewClient(r) with keep-alives off: every request of a
// probe opens its own connection.
func NewProbeClient(r *Request) (*http.Client, error) {
	client, err := NewClient(r)
	if err != nil {
		return nil, err
	}
	if tr := TransportOf(client); tr != nil {
		tr.DisableKeepAlives = true
	}
	return client, nil
}

// ProbeSample is one request of a probe.
type ProbeSample struct {
	N          int
	Status     int // 0: no response
	StatusText string
	// Err is the request's failure, nil for a complete response of any
	// status; Class is its class ("" when Err is nil).
	Err   error
	Class ErrorClass
	// RetryAfter is the response's Retry-After header, "" if none.
	RetryAfter string
	// Trace is where the request's time went.
	Trace *AttemptTrace
	// RateWait is the wait for the request's slot (--rate) before it.
	RateWait time.Duration
}

// Success reports a complete 2xx response.
func (s ProbeSample) Success() bool { return s.Err == nil && s.Status >= 200 && s.Status <= 299 }

// Probe sends cfg.Count single requests, cfg.Interval apart, one at a
// time, with no retry and no breaker, and returns what each did. When ctx
// is cancelled it stops at once and returns the requests that had ended
// (the one it cut off says nothing about the server) and
// context.Cause(ctx).
func Probe(ctx context.Context, cfg ProbeConfig) ([]ProbeSample, error) {
	client := cfg.Client
	if client == nil {
		var err error
		if client, err = NewProbeClient(cfg.Request); err != nil {
			return nil, err
		}
	}
	clock := cfg.Clock
	if clock == nil {
		clock = resilience.SystemClock
	}
	var timer resilience.Timer
	if cfg.NewTimer != nil {
		timer = cfg.NewTimer()
	} else {
		timer = resilience.NewRealTimer()
	}
	defer timer.Stop()
	samples := make([]ProbeSample, 0, min(cfg.Count, 1024))
	for n := 1; n <= cfg.Count; n++ {
		if ctx.Err() != nil {
			return samples, context.Cause(ctx)
		}
		rateWait, err := probeSlot(ctx, cfg, clock, timer)
		if err != nil {
			return samples, err
		}
		start := clock.Now()
		s := probeOnce(ctx, client, cfg, n)
		s.RateWait = rateWait
		if s.Err != nil && ctx.Err() != nil {
			// Cut off by the cancellation: it says nothing about the server.
			return samples, context.Cause(ctx)
		}
		samples = append(samples, s)
		if cfg.OnSample != nil {
			cfg.OnSample(s)
		}
		if n == cfg.Count {
			break
		}
		if ctx.Err() != nil {
			return samples, context.Cause(ctx)
		}
		if wait := cfg.Interval - clock.Now().Sub(start); wait > 0 {
			timer.Start(wait)
			select {
			case <-timer.C():
			case <-ctx.Done():
				return samples, context.Cause(ctx)
			}
		}
	}
	return samples, nil
}

// probeSlot takes the next request's slot of cfg.Limits and waits for
// it; it returns the wait.
func probeSlot(ctx context.Context, cfg ProbeConfig, clock resilience.Clock, timer resilience.Timer) (time.Duration, error) {
	if cfg.Limits == nil {
		return 0, nil
	}
	start := clock.Now()
	maxWait := time.Duration(-1)
	if cfg.Limits.Auto && cfg.Limits.Rate == nil && cfg.MaxQuotaWait > 0 {
		maxWait = cfg.MaxQuotaWait
	}
	for {
		slot, err := cfg.Limits.Take(ctx, clock.Now(), maxWait)
		if err != nil {
			return clock.Now().Sub(start), err
		}
		if maxWait >= 0 && slot.Wait > maxWait {
			return clock.Now().Sub(start), &ProbeQuotaError{Origin: cfg.Limits.Origin, Spent: slot.Exhausted, Wait: slot.Wait, Limit: maxWait}
		}
		if slot.Wait <= 0 {
			return clock.Now().Sub(start), nil
		}
		if cfg.Hooks.OnRateWait != nil {
			cfg.Hooks.OnRateWait(resilience.RateWaitInfo{Origin: cfg.Limits.Origin, Wait: slot.Wait})
		}
		timer.Start(slot.Wait)
		select {
		case <-timer.C():
		case <-ctx.Done():
			// Cut off before sending: the slot goes back.
			cfg.Limits.Refund(ctx, slot, clock.Now())
			return clock.Now().Sub(start), context.Cause(ctx)
		}
		if slot.Reserved {
			return clock.Now().Sub(start), nil
		}
		// The quota's reset has come: take a slot of the next window.
	}
}

// probeOnce sends request n and reads its whole body (bounded by
// MaxSize), whatever the status.
func probeOnce(ctx context.Context, client *http.Client, cfg ProbeConfig, n int) ProbeSample {
	actx, cancel := ctx, context.CancelFunc(func() {})
	if cfg.Timeout > 0 {
		actx, cancel = context.WithTimeout(ctx, cfg.Timeout)
	}
	defer cancel()
	s := ProbeSample{N: n, Trace: new(AttemptTrace)}
	resp, err := cfg.Request.send(withTrace(actx, s.Trace), client, n, cfg.Hooks)
	if err == nil {
		s.Status, s.StatusText = resp.StatusCode, statusText(resp)
		s.RetryAfter = strings.TrimSpace(resp.Header.Get("Retry-After"))
		if q, ok := resilience.ParseQuota(resp.Header, time.Now()); ok && cfg.Limits != nil {
			now := time.Now()
			if cfg.Clock != nil {
				now = cfg.Clock.Now()
			}
			cfg.Limits.Learn(ctx, q, now)
		}
		err = drain(resp, cfg.Request.MaxSize)
		resp.Body.Close()
	}
	if err != nil {
		if actx.Err() != nil && ctx.Err() == nil {
			err = &resilience.TimeoutError{After: cfg.Timeout, Err: err}
		}
		s.Err, s.Class = err, ClassifyError(err)
	}
	return s
}

// drain reads and discards a body, enforcing max (0: none).
func drain(resp *http.Response, max int64) error {
	if max > 0 && resp.ContentLength > max {
		return fmt.Errorf("%w: Content-Length %d > %d", ErrTooLarge, resp.ContentLength, max)
	}
	var src io.Reader = resp.Body
	if max > 0 {
		src = io.LimitReader(resp.Body, max+1)
	}
	n, err := io.Copy(io.Discard, src)
	switch {
	case err != nil:
		return bodyReadError(err, n, resp.ContentLength, false)
	case max > 0 && n > max:
		return fmt.Errorf("%w (%d bytes)", ErrTooLarge, max)
	}
	return nil
}

// ProbeReport is the summary of a probe, also its --json form.
type ProbeReport struct {
	URL    string `json:"url"`
	Method string `json:"method"`
	// Planned is -n; Requests the requests that ended; Complete says all
	// planned requests ended (false when interrupted).
	Planned    int   `json:"planned"`
	Requests   int   `json:"requests"`
	Complete   bool  `json:"complete"`
	IntervalMS int64 `json:"interval_ms"`
	ElapsedMS  int64 `json:"elapsed_ms"`
	// Successes counts complete 2xx responses; SuccessRate is
	// Successes/Requests, null with no request.
	Successes   int      `json:"successes"`
	SuccessRate *float64 `json:"success_rate"`
	// Each request is counted once: in Errors by its class if it failed
	// (a body cut short included, whatever its status), else in Statuses.
	Statuses map[string]int `json:"statuses"`
	Errors   map[string]int `json:"errors"`
	// ErrorExamples holds the first message of each error class.
	ErrorExamples map[string]string `json:"error_examples"`
	LatencyMS     ProbeLatency      `json:"latency_ms"`
	// RetryAfter lists the Retry-After values seen, in order of first
	// appearance.
	RetryAfter []RetryAfterSeen `json:"retry_after"`
	// Slowest says where the slowest requests spent their time; null with
	// no request.
	Slowest  *SlowPhase `json:"slowest"`
	ExitCode int        `json:"exit_code"`
	// Class names the exit code as fetch's details.class does, omitted
	// on success.
	Class   string        `json:"class,omitempty"`
	Error   *string       `json:"error"`
	Samples []ProbeResult `json:"samples"`
	// TraceID is the probe's W3C trace id (--traceparent); each sample's
	// span id is its span_id. Left out without one.
	TraceID string `json:"trace_id,omitempty"`
}

// ProbeLatency are the latency statistics of a probe.
type ProbeLatency struct {
	// FirstByte: from the start of each request to the first byte of its
	// response (connection set-up and redirects included), over the
	// requests that got a response.
	FirstByte LatencyStats `json:"first_byte"`
	// Total: from the start to the end of each request, over all.
	Total LatencyStats `json:"total"`
}

// LatencyStats are nearest-rank percentiles in milliseconds; null with no
// sample.
type LatencyStats struct {
	Count int      `json:"count"`
	P50   *float64 `json:"p50"`
	P90   *float64 `json:"p90"`
	P99   *float64 `json:"p99"`
	Max   *float64 `json:"max"`
}

// RetryAfterSeen is one Retry-After value and how often it came.
type RetryAfterSeen struct {
	Value string `json:"value"`
	Count int    `json:"count"`
}

// SlowPhase says which phase dominates the slowest requests: those whose
// total time is at or above the p90 of all (at least one request).
type SlowPhase struct {
	ThresholdMS float64 `json:"threshold_ms"`
	Count       int     `json:"count"`
	// Phase is the phase with the largest share of their time (null when
	// no phase took any); Share is that share, 0..1.
	Phase *string `json:"phase"`
	Share float64 `json:"share"`
	// PhasesMS is each phase summed over them.
	PhasesMS ReportTimings `json:"phases_ms"`
}

// ProbeResult is one request in the --json report.
type ProbeResult struct {
	N          int     `json:"n"`
	Status     *int    `json:"status"`
	Error      *string `json:"error"`
	ErrorClass *string `json:"error_class"`
	// TTFBMS is null without a response.
	TTFBMS     *float64 `json:"ttfb_ms"`
	TotalMS    float64  `json:"total_ms"`
	RetryAfter *string  `json:"retry_after"`
	// RateWaitMS is the wait for the request's slot (--rate), 0 when
	// there was none (as fetch's).
	RateWaitMS int64 `json:"rate_wait_ms"`
	ReportTrace
}

// NewProbeReport summarizes the samples of a probe of req that planned
// planned requests interval apart and took elapsed. ExitCode and Error
// are the caller's.
func NewProbeReport(req *Request, samples []ProbeSample, planned int, interval, elapsed time.Duration) ProbeReport {
	r := ProbeReport{URL: RedactURL(req.URL), Method: req.Method, Planned: planned, Requests: len(samples),
		Complete: len(samples) == planned, IntervalMS: interval.Milliseconds(), ElapsedMS: elapsed.Milliseconds(),
		Statuses: map[string]int{}, Errors: map[string]int{}, ErrorExamples: map[string]string{},
		RetryAfter: []RetryAfterSeen{}, Samples: []ProbeResult{}}
	if req.Trace != nil {
		r.TraceID = req.Trace.TraceID
	}
	var ttfb, total []time.Duration
	for _, s := range samples {
		if s.Trace == nil {
			s.Trace = new(AttemptTrace)
		}
		if s.Success() {
			r.Successes++
		}
		if s.Err != nil {
			r.Errors[string(s.Class)]++
			if _, ok := r.ErrorExamples[string(s.Class)]; !ok {
				r.ErrorExamples[string(s.Class)] = Redact(s.Err.Error())
			}
		} else {
			r.Statuses[strconv.Itoa(s.Status)]++
		}
		if s.RetryAfter != "" {
			r.addRetryAfter(Redact(s.RetryAfter))
		}
		if s.Status != 0 {
			ttfb = append(ttfb, s.Trace.TTFB)
		}
		total = append(total, s.Trace.Total)
		r.Samples = append(r.Samples, newProbeResult(s))
	}
	if len(samples) > 0 {
		rate := float64(r.Successes) / float64(len(samples))
		r.SuccessRate = &rate
	}
	r.LatencyMS = ProbeLatency{FirstByte: NewLatencyStats(ttfb), Total: NewLatencyStats(total)}
	r.Slowest = slowest(samples)
	return r
}

func (r *ProbeReport) addRetryAfter(v string) {
	for i := range r.RetryAfter {
		if r.RetryAfter[i].Value == v {
			r.RetryAfter[i].Count++
			return
		}
	}
	r.RetryAfter = append(r.RetryAfter, RetryAfterSeen{Value: v, Count: 1})
}

// Below reports whether the success rate is below rate (0..1). A probe
// with no request is not below anything.
func (r *ProbeReport) Below(rate float64) bool {
	if r.Requests == 0 {
		return false
	}
	// Compare counts, not quotients, so 7 of 10 is not below 0.7.
	return float64(r.Successes) < rate*float64(r.Requests)-1e-9
}

func newProbeResult(s ProbeSample) ProbeResult {
	pr := ProbeResult{N: s.N, TotalMS: Millis(s.Trace.Total), RateWaitMS: s.RateWait.Milliseconds(), ReportTrace: NewReportTrace(s.Trace)}
	if s.Status != 0 {
		st, ttfb := s.Status, Millis(s.Trace.TTFB)
		pr.Status, pr.TTFBMS = &st, &ttfb
	}
	if s.Err != nil {
		msg, class := Redact(s.Err.Error()), string(s.Class)
		pr.Error, pr.ErrorClass = &msg, &class
	}
	if s.RetryAfter != "" {
		v := Redact(s.RetryAfter)
		pr.RetryAfter = &v
	}
	return pr
}

// Percentile is the nearest-rank p-th percentile (0 < p ≤ 100) of sorted
// values: the smallest value with at least p% of the values at or below
// it. It is 0 for no values.
func Percentile(sorted []time.Duration, p float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	rank := int(math.Ceil(p / 100 * float64(len(sorted))))
	return sorted[min(max(rank, 1), len(sorted))-1]
}

// NewLatencyStats computes the percentiles of ds (in any order).
func NewLatencyStats(ds []time.Duration) LatencyStats {
	st := LatencyStats{Count: len(ds)}
	if len(ds) == 0 {
		return st
	}
	sorted := slices.Clone(ds)
	slices.Sort(sorted)
	ms := func(d time.Duration) *float64 { v := Millis(d); return &v }
	st.P50, st.P90, st.P99 = ms(Percentile(sorted, 50)), ms(Percentile(sorted, 90)), ms(Percentile(sorted, 99))
	st.Max = ms(sorted[len(sorted)-1])
	return st
}

// slowest finds the phase that dominates the requests whose total time is
// at or above the p90 of all.
func slowest(samples []ProbeSample) *SlowPhase {
	if len(samples) == 0 {
		return nil
	}
	samples = slices.Clone(samples)
	totals := make([]time.Duration, len(samples))
	for i := range samples {
		if samples[i].Trace == nil {
			samples[i].Trace = new(AttemptTrace)
		}
		totals[i] = samples[i].Trace.Total
	}
	slices.Sort(totals)
	threshold := Percentile(totals, 90)
	var sum [NumPhases]time.Duration
	var happened [NumPhases]bool
	var all time.Duration
	sp := &SlowPhase{ThresholdMS: Millis(threshold)}
	for _, s := range samples {
		if s.Trace.Total < threshold {
			continue
		}
		sp.Count++
		all += s.Trace.Total
		for p := range NumPhases {
			sum[p] += s.Trace.Phases[p]
			happened[p] = happened[p] || s.Trace.Happened[p]
		}
	}
	best := Phase(-1)
	for p := range NumPhases {
		if sum[p] > 0 && (best < 0 || sum[p] > sum[best]) {
			best = p
		}
	}
	if best >= 0 {
		name := best.String()
		sp.Phase = &name
		if all > 0 {
			sp.Share = math.Round(float64(sum[best])/float64(all)*1000) / 1000
		}
	}
	t := &AttemptTrace{Phases: sum, Happened: happened}
	sp.PhasesMS = *t.reportTimings()
	return sp
}
