package report

import (
	"errors"
	"strconv"
	"time"

	"github.com/refetch/refetch/fetch"
	"github.com/refetch/refetch/resilience"
)

// The records a run keeps (fetch's results and resilience.Trace) as
// testcases. The failure class of an attempt: the transport's class of
// the design's taxonomy (refused, reset, closed, timeout, tls, dns, other,
// and fetch's redirects and too_large), http_NNN for a response whose
// status failed, circuit_open for an attempt the breaker refused; a
// check adds expectation (a body, JSON, header or latency expectation),
// max_latency and deadline.

// phases are the phases of t that happened, in order.
func phases(t *fetch.AttemptTrace) []Phase {
	if t == nil {
		return nil
	}
	var out []Phase
	for p := fetch.Phase(0); p < fetch.NumPhases; p++ {
		if t.Happened[p] {
			out = append(out, Phase{Name: p.String(), D: t.Phases[p]})
		}
	}
	return out
}

// hedged fills in a hedged attempt's copies from its trace (the winning
// copy's, which lists them all).
func hedged(a *Attempt, t *fetch.AttemptTrace) {
	if t == nil || len(t.Copies) < 2 {
		return
	}
	a.Copies, a.Won = len(t.Copies), max(t.Copy, 1)
	for _, c := range t.Copies {
		if c.N == a.Won {
			a.WonAfter = c.Sent
		}
	}
}

func spanOf(t *fetch.AttemptTrace) string {
	if t == nil {
		return ""
	}
	return t.SpanID
}

// StatusClass is the class of a failed response: http_503.
func StatusClass(status int) string { return "http_" + strconv.Itoa(status) }

// errorClass is the class of an attempt's error.
func errorClass(err error) string {
	if errors.Is(err, resilience.ErrCircuitOpen) {
		return "circuit_open"
	}
	return string(fetch.ClassifyError(err))
}

// FromRun is the testcase of one URL fetched through fetch.Run (a single
// fetch or a URL of a batch): passed when the network served it; stale or
// fallback data served is a failure of the URL, whatever the exit code.
// class and message are the run's failure class and message in the
// command's words ("" for success).
func FromRun(req *fetch.Request, res *fetch.Result, class, message string) Case {
	c := Case{Name: fetch.RedactURL(req.URL), Latency: -1, Class: class, Message: message}
	if res != nil {
		c.Status = res.Status
		if tr := res.Trace; tr != nil {
			c.Time = tr.Elapsed
			for _, r := range tr.Attempts {
				t, _ := r.Detail.(*fetch.AttemptTrace)
				a := Attempt{N: r.N, Status: r.Status, Duration: r.Duration, Wait: r.Wait, Phases: phases(t), SpanID: spanOf(t)}
				hedged(&a, t)
				if r.Err != nil {
					a.Failed, a.Message = true, fetch.Redact(r.Err.Error())
					a.Class = errorClass(r.Err)
					if r.Status != 0 && (r.Status < 200 || r.Status > 299) {
						a.Class = StatusClass(r.Status)
					}
				}
				c.Attempts = append(c.Attempts, a)
				c.Latency = r.Duration
			}
		}
	}
	c.Judge(res != nil && res.Source == fetch.SourceNetwork && class == "")
	if n := len(c.Attempts); n > 0 && c.Attempts[n-1].Failed {
		// A failure's class is its last attempt's (http_503, refused),
		// as check's is; the run's when no attempt failed (circuit_open
		// before any request) or the last one passed and the run failed
		// after it (a full disk: internal, not an earlier 503).
		c.Class = ""
	}
	if c.Result == Failed && c.Message == "" && res != nil && res.Err != nil {
		c.Message = fetch.Redact(res.Err.Error())
	}
	return c
}

// FromCheck is the testcase of one URL of a check. word puts a failure in
// the command's words (the flags' names); statusOK says whether a status
// is an expected one.
func FromCheck(r fetch.CheckResult, word func(error) string, statusOK func(int) bool) Case {
	c := Case{Name: r.URL, Latency: -1, Time: time.Duration(r.ElapsedMS) * time.Millisecond}
	if r.Status != nil {
		c.Status = *r.Status
	}
	if r.LatencyMS != nil {
		c.Latency = time.Duration(*r.LatencyMS) * time.Millisecond
	}
	if tr := r.Trace; tr != nil {
		for _, rec := range tr.Attempts {
			t, _ := rec.Detail.(*fetch.AttemptTrace)
			a := Attempt{N: rec.N, Status: rec.Status, Duration: rec.Duration, Wait: rec.Wait, Phases: phases(t), SpanID: spanOf(t)}
			if rec.Err != nil && !fetch.NotStable(rec.Err) {
				a.Failed, a.Message, a.Class = true, word(rec.Err), checkClass(rec, statusOK)
			}
			c.Attempts = append(c.Attempts, a)
		}
		c.Omitted, c.OmittedAfter, c.OmittedFailed = tr.Omitted, tr.OmittedAfter, r.OmittedFailed
	}
	c.Judge(r.Healthy)
	if !r.Healthy {
		c.Message = joinFailed(r.Failed)
		if len(c.Attempts) == 0 || c.lastFailed() < 0 {
			c.Class = "unhealthy"
			if r.Err != nil && errors.Is(r.Err, resilience.ErrCircuitOpen) {
				c.Class = "circuit_open"
			}
		}
	}
	return c
}

func joinFailed(failed []string) string {
	s := ""
	for i, f := range failed {
		if i > 0 {
			s += "; "
		}
		s += f
	}
	return s
}

// checkClass is the class of a failed attempt of a check.
func checkClass(rec resilience.AttemptRecord, statusOK func(int) bool) string {
	fs := fetch.AttemptFailures(rec.Err)
	if fs == nil {
		fs = []error{rec.Err}
	}
	for _, f := range fs {
		var na *fetch.NoAnswerError
		if errors.As(f, &na) {
			switch na.Limit {
			case fetch.LimitNone:
				if na.Err != nil {
					return errorClass(na.Err)
				}
			case fetch.LimitMaxLatency:
				return "max_latency"
			case fetch.LimitRunEnd:
				return "deadline"
			}
			return "timeout"
		}
	}
	if rec.Status != 0 && statusOK != nil && !statusOK(rec.Status) {
		return StatusClass(rec.Status)
	}
	if errors.Is(rec.Err, resilience.ErrCircuitOpen) {
		return "circuit_open"
	}
	if errors.Is(rec.Err, fetch.ErrTooLarge) {
		return string(fetch.ClassTooLarge)
	}
	return "expectation"
}

// FromProbe is the testcase of a probe: its requests are its attempts (a
// request that is not a complete 2xx failed). passed is the probe's
// verdict (no request failed, or the success rate met
// --expect-success); message says why it did not pass.
func FromProbe(rep *fetch.ProbeReport, samples []fetch.ProbeSample, passed bool, message string, elapsed time.Duration) Case {
	c := Case{Name: rep.URL, Latency: -1, Time: elapsed}
	for _, s := range samples {
		a := Attempt{N: s.N, Status: s.Status, Phases: phases(s.Trace), SpanID: spanOf(s.Trace)}
		if s.Trace != nil {
			a.Duration = s.Trace.Total
		}
		if !s.Success() {
			a.Failed = true
			if s.Err != nil {
				a.Class, a.Message = string(s.Class), fetch.Redact(s.Err.Error())
			} else {
				a.Class, a.Message = StatusClass(s.Status), strconv.Itoa(s.Status)+" "+s.StatusText
			}
		}
		c.Attempts = append(c.Attempts, a)
		c.Status, c.Latency = s.Status, a.Duration
	}
	c.Judge(passed)
	if c.Result == Failed {
		c.Message = message
	}
	return c
}
