package fetch

import (
	"encoding/json"
	"errors"
	"flag"
	"io"
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
	success := &resilience.Trace{RetryAfter: time.Second, Elapsed: 33010 * time.Millisecond, Breaker: breaker,
		Attempts: []resilience.AttemptRecord{
			{N: 1, Status: 503, Err: unavailable, Duration: 4 * time.Millisecond, Wait: time.Second,
				Detail: traced(false, addr, "HTTP/1.1", phases{PhaseConnect: 312 * us, PhaseFirstByte: 3104 * us, PhaseBody: 254 * us})},
			{N: 2, Err: &resilience.TimeoutError{After: 30 * time.Second}, Duration: 30 * time.Second, Wait: 2 * time.Second,
				Detail: traced(true, addr, "", phases{PhaseFirstByte: 30 * time.Second})},
			{N: 3, Status: 200, Duration: 3 * time.Millisecond,
				Detail: traced(true, addr, "HTTP/1.1", phases{PhaseConnect: 281 * us, PhaseFirstByte: 2412 * us, PhaseBody: 350 * us},
					Hop{Status: 301, StatusText: "Moved Permanently", Location: "http://user:hunter2@127.0.0.1:8080/items/"})},
		}}
	// Failure: three 503s, the later two on the kept-alive connection;
	// the third opens the breaker.
	open := breaker
	open.State = resilience.StateOpen
	failure := &resilience.Trace{RetryAfter: -1, Elapsed: 3015 * time.Millisecond, Breaker: open,
		Attempts: []resilience.AttemptRecord{
			{N: 1, Status: 503, Err: unavailable, Duration: 4 * time.Millisecond, Wait: time.Second,
				Detail: traced(false, addr, "HTTP/1.1", phases{PhaseConnect: 298 * us, PhaseFirstByte: 3215 * us, PhaseBody: 187 * us})},
			{N: 2, Status: 503, Err: unavailable, Duration: 5 * time.Millisecond, Wait: 2 * time.Second,
				Detail: traced(true, addr, "HTTP/1.1", phases{PhaseFirstByte: 4633 * us, PhaseBody: 201 * us})},
			{N: 3, Status: 503, Err: unavailable, Duration: 4 * time.Millisecond,
				Detail: traced(true, addr, "HTTP/1.1", phases{PhaseFirstByte: 3870 * us, PhaseBody: 176 * us})},
		}}
	exhausted := &resilience.RunError{Class: resilience.ErrRetriesExhausted, Attempts: 3, RetryAfter: -1, Last: unavailable}
	// Fallback: nothing listening (each attempt only tried to connect), a
	// corrupt stale copy skipped, the fallback served.
	fallback := &resilience.Trace{RetryAfter: -1, Elapsed: 3004 * time.Millisecond, Breaker: open,
		Attempts: []resilience.AttemptRecord{
			{N: 1, Err: refused, Duration: time.Millisecond, Wait: time.Second,
				Detail: traced(false, addr, "", phases{PhaseConnect: 203 * us})},
			{N: 2, Err: refused, Duration: time.Millisecond, Wait: 2 * time.Second,
				Detail: traced(false, addr, "", phases{PhaseConnect: 188 * us})},
			{N: 3, Err: refused, Duration: time.Millisecond,
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
		path := filepath.Join("..", "testdata", "report-"+name+".golden")
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
