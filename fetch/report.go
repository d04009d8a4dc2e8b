package fetch

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"unicode/utf8"

	"github.com/refetch/refetch/resilience"
)

// Report is the --json object: one per run, on success and failure alike.
type Report struct {
	// N is the URL's 1-based position in a batch's input; nil (left out)
	// for a single fetch.
	N            *int            `json:"n,omitempty"`
	OK           bool            `json:"ok"`
	URL          string          `json:"url"`
	Method       string          `json:"method"`
	Status       *int            `json:"status"`
	Source       Source          `json:"source"`
	Fallback     bool            `json:"fallback"`
	Data         json.RawMessage `json:"data"`
	DataBase64   *string         `json:"data_base64,omitempty"`
	Output       string          `json:"output,omitempty"`
	Error        *string         `json:"error"`
	Details      *Details        `json:"details"`
	ExitCode     int             `json:"exit_code"`
	RetryAfterMS *int64          `json:"retry_after_ms"`
	// ElapsedMS is the whole run, in milliseconds to the microsecond
	// (Millis), as each attempt's DurationMS and its phases are.
	ElapsedMS float64 `json:"elapsed_ms"`
	// HeldMS is the time spent waiting for a hold on the key (a
	// Retry-After an earlier run recorded) before the first request.
	HeldMS int64 `json:"held_ms"`
	// RateWaitMS is the time spent waiting for rate slots (--rate).
	RateWaitMS int64           `json:"rate_wait_ms"`
	Attempts   []ReportAttempt `json:"attempts"`
	Breaker    *ReportBreaker  `json:"breaker"`
	StaleAgeMS *int64          `json:"stale_age_ms,omitempty"`
	// StaleSkipped says why a saved stale copy was not served.
	StaleSkipped *string `json:"stale_skipped,omitempty"`
	// TraceID is the run's W3C trace id (--traceparent); left out
	// without one. Each attempt's span id is its span_id.
	TraceID string `json:"trace_id,omitempty"`

	// streamed is a large body whose data field WriteJSON writes from its
	// reader; nil when the field is in Data or DataBase64.
	streamed *streamedData
}

// Outcome is how the command layer judged a run: the process's exit code
// and, for a failure (even one answered by stale or fallback data), the
// error, its message in the command's words and its class (see Details).
type Outcome struct {
	ExitCode int
	Err      error
	Message  string
	Class    string
}

// Details classifies a failure for machines.
type Details struct {
	// Class is one of: permanent, retries_exhausted, circuit_open,
	// rate_limited, deadline, interrupted, usage, internal.
	Class string `json:"class"`
	// Last is the last attempt's failure, if any.
	Last *string `json:"last,omitempty"`
}

// ReportAttempt is one attempt in the report; ReportTrace adds where its
// time went (timings_ms, reused, remote_addr, proto, redirects).
type ReportAttempt struct {
	Attempt    int     `json:"attempt"`
	Status     *int    `json:"status"`
	Error      *string `json:"error"`
	DurationMS float64 `json:"duration_ms"` // Millis: to the microsecond, truncated
	WaitMS     int64   `json:"wait_ms"`
	// RateWaitMS is the wait for this attempt's rate slot (--rate).
	RateWaitMS int64 `json:"rate_wait_ms"`
	ReportTrace
}

// ReportBreaker is the breaker's key and state after the run.
type ReportBreaker struct {
	Key   string `json:"key"`
	State string `json:"state"`
}

// NewReport builds the report of a run. body is what was served (nil if
// nothing or if it went to a file); out is the command's verdict.
func NewReport(req *Request, res *Result, body io.Reader, out Outcome) Report {
	r := Report{
		OK: out.ExitCode == 0 && res != nil && res.Source != SourceNone && res.Source != "", URL: RedactURL(req.URL),
		Method: req.Method, Source: SourceNone, Data: json.RawMessage("null"), ExitCode: out.ExitCode,
		Attempts: []ReportAttempt{},
	}
	if req.Trace != nil {
		r.TraceID = req.Trace.TraceID
	}
	if res != nil {
		r.Source = res.Source
		r.Fallback = res.Source == SourceStale || res.Source == SourceFallback
		// status is that of the last response received, whatever was served.
		if res.Status != 0 {
			s := res.Status
			r.Status = &s
		}
		if res.Source == SourceStale {
			ms := res.StaleAge.Milliseconds()
			r.StaleAgeMS = &ms
		}
		if res.StaleSkipped != nil {
			s := Redact(res.StaleSkipped.Error())
			r.StaleSkipped = &s
		}
		if tr := res.Trace; tr != nil {
			r.ElapsedMS, r.HeldMS = Millis(tr.Elapsed), tr.Held.Milliseconds()
			r.RateWaitMS = tr.RateWait.Milliseconds()
			if tr.RetryAfter >= 0 {
				ms := tr.RetryAfter.Milliseconds()
				r.RetryAfterMS = &ms
			}
			for _, a := range tr.Attempts {
				ra := ReportAttempt{Attempt: a.N, DurationMS: Millis(a.Duration), WaitMS: a.Wait.Milliseconds(), RateWaitMS: a.RateWait.Milliseconds(),
					ReportTrace: NewReportTrace(a.Detail)}
				if a.Status != 0 {
					s := a.Status
					ra.Status = &s
				}
				if a.Err != nil {
					s := Redact(a.Err.Error())
					ra.Error = &s
				}
				r.Attempts = append(r.Attempts, ra)
			}
			if tr.Breaker.On {
				r.Breaker = &ReportBreaker{Key: Redact(tr.Breaker.Key), State: tr.Breaker.State.String()}
			}
		}
	}
	if err := out.Err; err != nil {
		s := Redact(out.Message)
		r.Error = &s
		d := &Details{Class: out.Class}
		var re *resilience.RunError
		if errors.As(err, &re) {
			if re.Last != nil {
				l := Redact(re.Last.Error())
				d.Last = &l
			}
			if re.RetryAfter >= 0 && errors.Is(err, resilience.ErrRateLimited) {
				ms := re.RetryAfter.Milliseconds()
				r.RetryAfterMS = &ms
			}
		}
		r.Details = d
	}
	if body != nil {
		r.setData(body)
	}
	return r
}

// setData stores body as parsed JSON if it is JSON, as a string if it is
// UTF-8, and as base64 otherwise.
func (r *Report) setData(body io.Reader) {
	if rs, ok := body.(io.ReadSeeker); ok {
		if size, err := rs.Seek(0, io.SeekEnd); err == nil && size >= streamDataMin {
			d, err := newStreamedData(rs, size)
			if err != nil {
				return
			}
			r.streamed = d
			if d.kind == dataBase64 {
				p := d.token
				r.DataBase64 = &p
			} else {
				r.Data = json.RawMessage(d.placeholder())
			}
			return
		}
		if _, err := rs.Seek(0, io.SeekStart); err != nil {
			return
		}
	}
	b, err := io.ReadAll(body)
	if err != nil {
		return
	}
	trimmed := bytes.TrimSpace(b)
	if len(trimmed) > 0 && utf8.Valid(trimmed) && json.Valid(trimmed) {
		// json.Valid does not look inside strings for UTF-8: a JSON body
		// with other bytes in a string goes as base64, or they are lost.
		var compact bytes.Buffer
		if json.Compact(&compact, trimmed) == nil {
			r.Data = compact.Bytes()
			return
		}
	}
	if utf8.Valid(b) {
		s, _ := json.Marshal(string(b))
		r.Data = s
		return
	}
	enc := base64.StdEncoding.EncodeToString(b)
	r.DataBase64 = &enc
}
