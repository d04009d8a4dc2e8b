package e2e

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func healthServer(t *testing.T) (*httptest.Server, *counter) {
	var c counter
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n := c.next()
		switch r.URL.Path {
		case "/health":
			w.Header().Set("Content-Type", "application/json")
			w.Header().Set("X-Version", "1.4.2")
			fmt.Fprint(w, `{"status":"ok","db":{"up":true},"checks":[1,2]}`)
		case "/slow":
			time.Sleep(50 * time.Millisecond)
			fmt.Fprint(w, "slow")
		case "/warming":
			if n <= 3 {
				http.Error(w, `{"status":"starting"}`, http.StatusServiceUnavailable)
				return
			}
			fmt.Fprint(w, `{"status":"ok"}`)
		case "/created":
			w.WriteHeader(http.StatusCreated)
		default:
			http.NotFound(w, r)
		}
	}))
	t.Cleanup(srv.Close)
	return srv, &c
}

var quick = []string{"--delay", "10ms", "--jitter", "0", "--multiplier", "1"}

func check(a ...string) []string { return append(append([]string{"check"}, quick...), a...) }

func TestE2ECheckExpectations(t *testing.T) {
	t.Parallel()
	srv, _ := healthServer(t)
	e := newEnv(t)
	h := srv.URL + "/health"
	for _, tc := range []struct {
		args   []string
		code   int
		failed string
	}{
		{[]string{h}, 0, ""},
		{[]string{"--expect-status", "200", h}, 0, ""},
		{[]string{"--expect-status", "200-204", srv.URL + "/created"}, 0, ""},
		{[]string{"--expect-status", "200", srv.URL + "/created"}, 8, "status 201 not in 200"},
		{[]string{"--expect-status", "404,410", srv.URL + "/nope"}, 0, ""},
		{[]string{srv.URL + "/nope"}, 8, "status 404 not in 2xx"},
		{[]string{"--expect-body", `"status":"ok"`, h}, 0, ""},
		{[]string{"--expect-body", `degraded`, h}, 8, "body does not match /degraded/"},
		{[]string{"--expect-json", `.status == "ok" and .db.up`, h}, 0, ""},
		{[]string{"--expect-json", `.checks | length > 5`, h}, 8, "yielded false, not true"},
		{[]string{"--expect-json", `.status`, h}, 8, `yielded "ok", not true`},
		{[]string{"--expect-json", `.x`, srv.URL + "/slow"}, 8, "body is not JSON"},
		{[]string{"--expect-header", `X-Version: ^1\.4`, "--expect-header", "content-type: json", h}, 0, ""},
		{[]string{"--expect-header", `X-Version: ^2\.`, h}, 8, `header X-Version: "1.4.2" does not match /^2\./`},
		{[]string{"--expect-header", `X-Missing: .`, h}, 8, "header X-Missing missing"},
		{[]string{"--max-latency", "1ms", srv.URL + "/slow"}, 8, "latency"},
		{[]string{"--max-latency", "10s", srv.URL + "/slow"}, 0, ""},
	} {
		r := e.run(check(append([]string{"-n", "2"}, tc.args...)...)...)
		if r.code != tc.code || !strings.Contains(r.stdout, tc.failed) {
			t.Errorf("%v: exit %d, stdout %q; want %d and %q\nstderr: %s", tc.args, r.code, r.stdout, tc.code, tc.failed, r.stderr)
		}
		want := "healthy"
		if tc.code != 0 {
			want = "unhealthy"
		}
		if !strings.HasPrefix(r.stdout, want+" ") {
			t.Errorf("%v: line %q does not start with %q", tc.args, r.stdout, want)
		}
	}
}

func TestE2ECheckUsageErrorsBeforeAnyRequest(t *testing.T) {
	t.Parallel()
	srv, c := healthServer(t)
	e := newEnv(t)
	for _, a := range [][]string{
		{"--expect-body", "(unclosed", srv.URL},
		{"--expect-json", ".a ==", srv.URL},
		{"--expect-header", "NoColon", srv.URL},
		{"--expect-header", "X: (", srv.URL},
		{"--expect-status", "abc", srv.URL},
		{"--wait", "-1s", srv.URL},
		{srv.URL, "gopher://x"},
		{},
	} {
		r := e.run(check(a...)...)
		if r.code != 2 || !strings.Contains(r.stderr, "--help") {
			t.Errorf("%v: exit %d, stderr %q", a, r.code, r.stderr)
		}
	}
	if c.get() != 0 {
		t.Errorf("%d requests sent before usage errors", c.get())
	}
}

func TestE2ECheckWaitUntilHealthy(t *testing.T) {
	t.Parallel()
	srv, c := healthServer(t)
	r := newEnv(t).run(check("--wait", "20s", "--expect-json", `.status == "ok"`, srv.URL+"/warming")...)
	r.wantCode(t, 0)
	if c.get() != 4 || !strings.Contains(r.stdout, "4 attempts") {
		t.Errorf("requests = %d, stdout %q", c.get(), r.stdout)
	}
	// Under --wait there is no attempt limit: the retry lines have no "/N".
	if !strings.Contains(r.stderr, "attempt 3: status 503 not in 2xx") {
		t.Errorf("stderr:\n%s", r.stderr)
	}
}

func TestE2ECheckWaitDeadPort(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(http.NotFoundHandler())
	url := srv.URL
	srv.Close()
	r := newEnv(t).run(check("--wait", "300ms", "--json", url)...)
	r.wantCode(t, 8)
	var rep struct {
		Healthy   bool  `json:"healthy"`
		ElapsedMS int64 `json:"elapsed_ms"`
		Results   []struct {
			URL       string   `json:"url"`
			Healthy   bool     `json:"healthy"`
			Status    *int     `json:"status"`
			LatencyMS *int64   `json:"latency_ms"`
			Failed    []string `json:"failed"`
			Attempts  int      `json:"attempts"`
		} `json:"results"`
	}
	if err := json.Unmarshal([]byte(r.stdout), &rep); err != nil {
		t.Fatalf("%v: %q", err, r.stdout)
	}
	res := rep.Results[0]
	if rep.Healthy || len(rep.Results) != 1 || res.Healthy || res.Status != nil || res.Attempts < 2 ||
		!strings.Contains(strings.Join(res.Failed, "|"), "connection refused") ||
		!strings.Contains(strings.Join(res.Failed, "|"), "time ran out") {
		t.Errorf("report = %+v", rep)
	}
	// That the waits stay inside --wait is a unit test with a fake clock
	// (resilience: TestLastChanceShortensTheFinalWait); here, on a machine
	// that may be loaded, only the outcome is checked: the attempt --wait
	// cut off does not hide the last real failure.
}

func TestE2ECheckSeveralURLs(t *testing.T) {
	t.Parallel()
	srv, _ := healthServer(t)
	e := newEnv(t)
	r := e.run(check("-n", "1", srv.URL+"/health", srv.URL+"/nope", srv.URL+"/created")...)
	r.wantCode(t, 8)
	lines := strings.Split(strings.TrimSpace(r.stdout), "\n")
	if len(lines) != 3 || !strings.HasPrefix(lines[0], "healthy") || !strings.HasPrefix(lines[1], "unhealthy") ||
		!strings.HasPrefix(lines[2], "healthy") || !strings.Contains(lines[1], "/nope") {
		t.Errorf("stdout:\n%s", r.stdout)
	}
	if !strings.Contains(r.stderr, "unhealthy: 1 of 3 URLs") {
		t.Errorf("stderr:\n%s", r.stderr)
	}
	e.run(check(srv.URL+"/health", srv.URL+"/created")...).wantCode(t, 0)
	rep := e.run(check("--json", srv.URL+"/health", srv.URL+"/created")...).report(t)
	if rep["healthy"] != true || len(rep["results"].([]any)) != 2 {
		t.Errorf("report = %v", rep)
	}
	first := rep["results"].([]any)[0].(map[string]any)
	for _, k := range []string{"url", "healthy", "status", "latency_ms", "failed", "attempts"} {
		if _, ok := first[k]; !ok {
			t.Errorf("result lacks %q: %v", k, first)
		}
	}
}

func TestE2ECheckBreakerOffUnlessAsked(t *testing.T) {
	t.Parallel()
	var c counter
	dead := downServer(t, &c)
	e := newEnv(t)
	for i := 0; i < 3; i++ {
		e.run(check("-n", "3", dead.URL)...).wantCode(t, 8)
	}
	if c.get() != 9 {
		t.Errorf("requests = %d: the breaker interfered", c.get())
	}
	e.run(check("-n", "2", "--breaker-failures", "2", dead.URL)...).wantCode(t, 8)
	r := e.run(check("-n", "2", "--breaker-failures", "2", dead.URL)...)
	r.wantCode(t, 8)
	if !strings.Contains(r.stdout, "circuit open") || c.get() != 11 {
		t.Errorf("requests = %d, stdout %q", c.get(), r.stdout)
	}
}

// TestE2ECheckOpenCircuitSaysHowToReset: a check refused by an open
// circuit (another job's failures opened it) ends with the reset command,
// as fetch's final line does (promises.md).
func TestE2ECheckOpenCircuitSaysHowToReset(t *testing.T) {
	t.Parallel()
	srv := downServer(t, nil)
	e := newEnv(t)
	state := filepath.Join(e.dir, "gate-state")
	e.run("fetch", "-q", "--state-dir", state, "--breaker-failures", "1", "-n", "1", srv.URL).wantCode(t, 4)
	r := e.run("check", "--state-dir", state, "--breaker-failures", "1", srv.URL)
	r.wantCode(t, 8)
	want := "unhealthy: 1 of 1 URL; reset with: refetch breaker reset --state-dir '" + state + "' '" + strings.TrimSuffix(srv.URL, "/") + "'"
	if !strings.Contains(r.stderr, want) {
		t.Errorf("stderr %q, want %q", r.stderr, want)
	}
}
