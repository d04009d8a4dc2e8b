package fetch

import (
	"encoding/json"
	"errors"
	"flag"
	"io"
	"math"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/refetch/refetch/resilience"
)

var update = flag.Bool("update", false, "rewrite golden files in testdata/")

const us = time.Microsecond

// phases are the phases that happened in an attempt, and their times.
type phases map[Phase]time.Duration

// traced is the trace of an ended attempt, as send records it.
func traced(reused bool, addr, proto string, ph phases, hops ...Hop) *AttemptTrace {
	t := &AttemptTrace{Reused: reused, RemoteAddr: addr, Proto: proto, Redirects: hops, ended: true}
	for p, d := range ph {
		t.Phases[p], t.Happened[p] = d, true
		t.Total += d
		if p < PhaseBody && proto != "" {
			t.TTFB += d
		}
	}
	return t
}

// TestReportGolden: each golden report has its own trace, the one a run
// that ends that way really has.
// The phases of an attempt never add up to more than its duration_ms in
// a report: every time is truncated to the microsecond, and a sum of
// truncated parts is at most the truncated sum. Rounding each would fail
// this with parts such as 0.6µs each.
func TestReportPhasesFitTheirAttempt(t *testing.T) {
	u, _ := url.Parse("http://127.0.0.1:8080/")
	for _, ns := range [][3]time.Duration{{600, 600, 600}, {1500, 1500, 1500}, {999, 1, 999}, {312600, 3104700, 254900}, {0, 0, 1}} {
		total := ns[0] + ns[1] + ns[2]
		tr := &resilience.Trace{Elapsed: total, Attempts: []resilience.AttemptRecord{{N: 1, Status: 200, Duration: total,
			Detail: traced(false, "127.0.0.1:8080", "HTTP/1.1", phases{PhaseConnect: ns[0], PhaseFirstByte: ns[1], PhaseBody: ns[2]})}}}
		rep := NewReport(&Request{Method: "GET", URL: u}, &Result{Trace: tr, Status: 200, Source: SourceNetwork}, nil, Outcome{})
		data, _ := json.Marshal(rep)
		var back struct {
			ElapsedMS float64 `json:"elapsed_ms"`
			Attempts  []struct {
				DurationMS float64             `json:"duration_ms"`
				TimingsMS  map[string]*float64 `json:"timings_ms"`
			} `json:"attempts"`
		}
		if err := json.Unmarshal(data, &back); err != nil {
			t.Fatal(err)
		}
		a := back.Attempts[0]
		// Compare in whole microseconds, as a consumer should.
		var sum int64
		for _, v := range a.TimingsMS {
			if v != nil {
				sum += int64(math.Round(*v * 1000))
			}
		}
		if d := int64(math.Round(a.DurationMS * 1000)); sum > d || d != int64(total/time.Microsecond) {
			t.Errorf("phases %v: sum %dµs, duration_ms %v (%s)", ns, sum, a.DurationMS, data)
		}
		if back.ElapsedMS != a.DurationMS {
			t.Errorf("elapsed_ms %v, duration_ms %v: one precision for both", back.ElapsedMS, a.DurationMS)
		}
	}
}

func TestReportGolden(t *testing.T) {
	u, _ := url.Parse("http://user:hunter2@127.0.0.1:8080/items")
	req := &Request{Method: "GET", URL: u}
	breaker := resilience.Snapshot{Key: "http://127.0.0.1:8080", State: resilience.StateClosed, On: true}
	unavailable := &resilience.StatusError{Code: 503, Text: "Service Unavailable"}
	refused := errors.New("dial tcp 127.0.0.1:8080: connect: connection refused")
	const addr = "127.0.0.1:8080"
	// Success: a 503 with Retry-After: 1 on a new connection; an attempt
	// on the kept-alive connection whose first byte never came before the
	// timeout; a new connection, redirected once (the password in the
	// Location must not reach the report) to the 200.
	success := &resilience.Trace{RetryAfter: time.Second, Elapsed: 33010512 * us, Breaker: breaker,
		Attempts: []resilience.AttemptRecord{
			{N: 1, Status: 503, Err: unavailable, Duration: 3912 * us, Wait: time.Second,
				Detail: traced(false, addr, "HTTP/1.1", phases{PhaseConnect: 312 * us, PhaseFirstByte: 3104 * us, PhaseBody: 254 * us})},
			{N: 2, Err: &resilience.TimeoutError{After: 30 * time.Second}, Duration: 30000204 * us, Wait: 2 * time.Second,
				Detail: traced(true, addr, "", phases{PhaseFirstByte: 30 * time.Second})},
			{N: 3, Status: 200, Duration: 3187 * us,
				Detail: traced(true, addr, "HTTP/1.1", phases{PhaseConnect: 281 * us, PhaseFirstByte: 2412 * us, PhaseBody: 350 * us},
					Hop{Status: 301, StatusText: "Moved Permanently", Location: "http://user:hunter2@127.0.0.1:8080/items/"})},
		}}
	// Failure: three 503s, the later two on the kept-alive connection;
	// the third opens the breaker.
	open := breaker
	open.State = resilience.StateOpen
	failure := &resilience.Trace{RetryAfter: -1, Elapsed: 3015331 * us, Breaker: open,
		Attempts: []resilience.AttemptRecord{
			{N: 1, Status: 503, Err: unavailable, Duration: 3871 * us, Wait: time.Second,
				Detail: traced(false, addr, "HTTP/1.1", phases{PhaseConnect: 298 * us, PhaseFirstByte: 3215 * us, PhaseBody: 187 * us})},
			{N: 2, Status: 503, Err: unavailable, Duration: 4968 * us, Wait: 2 * time.Second,
				Detail: traced(true, addr, "HTTP/1.1", phases{PhaseFirstByte: 4633 * us, PhaseBody: 201 * us})},
			{N: 3, Status: 503, Err: unavailable, Duration: 4190 * us,
				Detail: traced(true, addr, "HTTP/1.1", phases{PhaseFirstByte: 3870 * us, PhaseBody: 176 * us})},
		}}
	exhausted := &resilience.RunError{Class: resilience.ErrRetriesExhausted, Attempts: 3, RetryAfter: -1, Last: unavailable}
	// Fallback: nothing listening (each attempt only tried to connect), a
	// corrupt stale copy skipped, the fallback served.
	fallback := &resilience.Trace{RetryAfter: -1, Elapsed: 3004127 * us, Breaker: open,
		Attempts: []resilience.AttemptRecord{
			{N: 1, Err: refused, Duration: 391 * us, Wait: time.Second,
				Detail: traced(false, addr, "", phases{PhaseConnect: 203 * us})},
			{N: 2, Err: refused, Duration: 377 * us, Wait: 2 * time.Second,
				Detail: traced(false, addr, "", phases{PhaseConnect: 188 * us})},
			{N: 3, Err: refused, Duration: 402 * us,
				Detail: traced(false, addr, "", phases{PhaseConnect: 195 * us})},
		}}
	refusedExhausted := &resilience.RunError{Class: resilience.ErrRetriesExhausted, Attempts: 3, RetryAfter: -1, Last: refused}
	cases := map[string]struct {
		res  *Result
		body string
		out  Outcome
	}{
		"success": {&Result{Trace: success, Status: 200, Source: SourceNetwork}, `{"items": [1, 2]}`, Outcome{}},
		"failure": {&Result{Trace: failure, Status: 503, Source: SourceNone, Err: exhausted}, "",
			Outcome{ExitCode: 4, Err: exhausted, Message: exhausted.Error(), Class: "retries_exhausted"}},
		"fallback": {&Result{Trace: fallback, Source: SourceFallback, Err: refusedExhausted,
			StaleSkipped: errors.New("stale copy /cache/refetch/3f2a.stale is corrupt: checksum mismatch")}, "[]",
			Outcome{ExitCode: 0, Err: refusedExhausted, Message: refusedExhausted.Error(), Class: "retries_exhausted"}},
	}
	for name, c := range cases {
		var body io.Reader
		if c.body != "" {
			body = strings.NewReader(c.body)
		}
		rep := NewReport(req, c.res, body, c.out)
		got, err := json.MarshalIndent(rep, "", "  ")
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, '\n')
		if strings.Contains(string(got), "hunter2") {
			t.Errorf("%s: password in report", name)
		}
		path := filepath.Join("testdata", "report-"+name+".golden")
		if *update {
			os.WriteFile(path, got, 0o644)
			continue
		}
		want, err := os.ReadFile(path)
		if err != nil {
			t.Fatalf("%v (run go test ./fetch -update)", err)
		}
		if string(got) != string(want) {
			t.Errorf("%s report differs from %s (run go test ./fetch -update to accept):\n%s", name, path, got)
		}
	}
}
