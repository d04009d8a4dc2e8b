package fetch

import (
	"encoding/json"
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

func TestReportGolden(t *testing.T) {
	u, _ := url.Parse("http://user:hunter2@127.0.0.1:8080/items")
	req := &Request{Method: "GET", URL: u}
	trace := &resilience.Trace{
		RetryAfter: time.Second,
		Elapsed:    1203 * time.Millisecond,
		Attempts: []resilience.AttemptRecord{
			{N: 1, Status: 503, Err: &resilience.StatusError{Code: 503, Text: "Service Unavailable"}, Duration: 4 * time.Millisecond, Wait: time.Second},
			{N: 2, Err: &resilience.TimeoutError{After: 30 * time.Second}, Duration: 30 * time.Second, Wait: 2 * time.Second},
			{N: 3, Status: 200, Duration: 3 * time.Millisecond},
		},
		Breaker: resilience.Snapshot{Key: "http://127.0.0.1:8080", State: resilience.StateClosed, On: true},
	}
	exhausted := &resilience.RunError{Class: resilience.ErrRetriesExhausted, Attempts: 3, RetryAfter: -1,
		Last: &resilience.StatusError{Code: 503, Text: "Service Unavailable"}}
	cases := map[string]struct {
		res   *Result
		body  string
		err   error
		code  int
		class string
	}{
		"success":  {&Result{Trace: trace, Status: 200, Source: SourceNetwork}, `{"items": [1, 2]}`, nil, 0, ""},
		"failure":  {&Result{Trace: trace, Status: 503, Source: SourceNone}, "", exhausted, 4, "retries_exhausted"},
		"fallback": {&Result{Trace: trace, Status: 503, Source: SourceFallback}, "[]", exhausted, 0, "retries_exhausted"},
	}
	for name, c := range cases {
		var body io.Reader
		if c.body != "" {
			body = strings.NewReader(c.body)
		}
		rep := NewReport(req, c.res, body, c.err, c.code, c.class)
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
