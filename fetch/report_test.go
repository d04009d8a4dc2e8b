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

// TestReportGolden: each golden report has its own trace, the one a run
// that ends that way really has.
func TestReportGolden(t *testing.T) {
	u, _ := url.Parse("http://user:hunter2@127.0.0.1:8080/items")
	req := &Request{Method: "GET", URL: u}
	breaker := resilience.Snapshot{Key: "http://127.0.0.1:8080", State: resilience.StateClosed, On: true}
	unavailable := &resilience.StatusError{Code: 503, Text: "Service Unavailable"}
	refused := errors.New("dial tcp 127.0.0.1:8080: connect: connection refused")
	// Success: a 503 with Retry-After: 1, an attempt that timed out, a 200.
	success := &resilience.Trace{RetryAfter: time.Second, Elapsed: 33010 * time.Millisecond, Breaker: breaker,
		Attempts: []resilience.AttemptRecord{
			{N: 1, Status: 503, Err: unavailable, Duration: 4 * time.Millisecond, Wait: time.Second},
			{N: 2, Err: &resilience.TimeoutError{After: 30 * time.Second}, Duration: 30 * time.Second, Wait: 2 * time.Second},
			{N: 3, Status: 200, Duration: 3 * time.Millisecond},
		}}
	// Failure: three 503s; the third opens the breaker.
	open := breaker
	open.State = resilience.StateOpen
	failure := &resilience.Trace{RetryAfter: -1, Elapsed: 3015 * time.Millisecond, Breaker: open,
		Attempts: []resilience.AttemptRecord{
			{N: 1, Status: 503, Err: unavailable, Duration: 4 * time.Millisecond, Wait: time.Second},
			{N: 2, Status: 503, Err: unavailable, Duration: 5 * time.Millisecond, Wait: 2 * time.Second},
			{N: 3, Status: 503, Err: unavailable, Duration: 4 * time.Millisecond},
		}}
	exhausted := &resilience.RunError{Class: resilience.ErrRetriesExhausted, Attempts: 3, RetryAfter: -1, Last: unavailable}
	// Fallback: nothing listening, a corrupt stale copy skipped, the
	// fallback served.
	fallback := &resilience.Trace{RetryAfter: -1, Elapsed: 3004 * time.Millisecond, Breaker: open,
		Attempts: []resilience.AttemptRecord{
			{N: 1, Err: refused, Duration: time.Millisecond, Wait: time.Second},
			{N: 2, Err: refused, Duration: time.Millisecond, Wait: 2 * time.Second},
			{N: 3, Err: refused, Duration: time.Millisecond},
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
