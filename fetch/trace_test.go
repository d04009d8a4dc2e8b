package fetch

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/refetch/refetch/resilience"
)

// runTraced fetches u through Run with n attempts and no waits, and
// returns each attempt's trace.
func runTraced(t *testing.T, req *Request, attempts int, timeout time.Duration, hooks Hooks) ([]*AttemptTrace, error) {
	t.Helper()
	policy := resilience.Policy{Attempts: attempts, Multiplier: 1, Timeout: timeout,
		RetryOn: resilience.MustStatusSet("408,425,429,500,502,503,504"), MaxRetryAfter: time.Minute}
	res, err := Run(context.Background(), Config{Request: req, Policy: policy, Sink: DiscardSink{}, Hooks: hooks})
	if res == nil {
		t.Fatalf("no result: %v", err)
	}
	var out []*AttemptTrace
	for _, a := range res.Trace.Attempts {
		at, ok := a.Detail.(*AttemptTrace)
		if !ok {
			t.Fatalf("attempt %d: Detail is %T", a.N, a.Detail)
		}
		out = append(out, at)
	}
	return out, err
}

// happened lists the phases that happened, in order.
func happened(at *AttemptTrace) string {
	var names []string
	for p := range NumPhases {
		if at.Happened[p] {
			names = append(names, p.String())
		}
	}
	return strings.Join(names, ",")
}

// checkSum: the phases never overlap, so they fit in the attempt.
func checkSum(t *testing.T, name string, at *AttemptTrace) {
	t.Helper()
	var sum time.Duration
	for p := range NumPhases {
		if at.Phases[p] < 0 || !at.Happened[p] && at.Phases[p] != 0 {
			t.Errorf("%s: phase %s = %v (happened %v)", name, p, at.Phases[p], at.Happened[p])
		}
		sum += at.Phases[p]
	}
	if sum > at.Total || at.TTFB > at.Total {
		t.Errorf("%s: phases sum to %v, TTFB %v, total %v", name, sum, at.TTFB, at.Total)
	}
}

func TestTraceNewTLSConnectionThenReused(t *testing.T) {
	var hits atomic.Int64
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if hits.Add(1) == 1 {
			http.Error(w, "busy", http.StatusServiceUnavailable)
			return
		}
		fmt.Fprint(w, "ok")
	}))
	defer srv.Close()
	u, _ := url.Parse(srv.URL)
	traces, err := runTraced(t, &Request{Method: "GET", URL: u, Insecure: true, MaxRedirs: 10}, 2, 0, Hooks{})
	if err != nil || len(traces) != 2 {
		t.Fatalf("%v, %d attempts", err, len(traces))
	}
	first, second := traces[0], traces[1]
	if got := happened(first); got != "connect,tls,first_byte,body" {
		t.Errorf("first attempt phases = %s (an IP address needs no DNS)", got)
	}
	if first.Reused || first.RemoteAddr != srv.Listener.Addr().String() || first.Proto != "HTTP/1.1" || first.TTFB <= 0 {
		t.Errorf("first attempt: reused %v, addr %q, proto %q, ttfb %v", first.Reused, first.RemoteAddr, first.Proto, first.TTFB)
	}
	if got := happened(second); got != "first_byte,body" || !second.Reused || second.RemoteAddr != first.RemoteAddr {
		t.Errorf("second attempt: phases %s, reused %v, addr %q", got, second.Reused, second.RemoteAddr)
	}
	checkSum(t, "first", first)
	checkSum(t, "second", second)
}

func TestTraceLookupOfAName(t *testing.T) {
	if _, err := net.LookupHost("localhost"); err != nil {
		t.Skipf("localhost does not resolve here: %v", err)
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { fmt.Fprint(w, "ok") }))
	defer srv.Close()
	_, port, _ := net.SplitHostPort(srv.Listener.Addr().String())
	u, _ := url.Parse("http://localhost:" + port + "/")
	traces, err := runTraced(t, &Request{Method: "GET", URL: u}, 1, 0, Hooks{})
	if err != nil {
		t.Fatal(err)
	}
	if got := happened(traces[0]); got != "dns,connect,first_byte,body" {
		t.Errorf("phases = %s", got)
	}
	checkSum(t, "localhost", traces[0])
}

func TestTraceFirstByteThatNeverCame(t *testing.T) {
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	defer srv.Close()
	defer close(release)
	u, _ := url.Parse(srv.URL)
	traces, err := runTraced(t, &Request{Method: "GET", URL: u}, 1, 50*time.Millisecond, Hooks{})
	if err == nil || len(traces) != 1 {
		t.Fatalf("%v, %d attempts", err, len(traces))
	}
	at := traces[0]
	// The wait for the first byte runs until the timeout ended the attempt.
	if got := happened(at); got != "connect,first_byte" || at.Phases[PhaseFirstByte] <= 0 || at.Proto != "" || at.TTFB != 0 {
		t.Errorf("phases %s, first byte %v, proto %q, ttfb %v", got, at.Phases[PhaseFirstByte], at.Proto, at.TTFB)
	}
	checkSum(t, "stalled", at)
}

func TestTraceRedirectHopsAndHooks(t *testing.T) {
	var base string
	mux := http.NewServeMux()
	mux.HandleFunc("/a", func(w http.ResponseWriter, r *http.Request) { http.Redirect(w, r, "/b", http.StatusMovedPermanently) })
	mux.HandleFunc("/b", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, strings.Replace(base, "http://", "http://user:s3cret@", 1)+"/c", http.StatusFound)
	})
	mux.HandleFunc("/c", func(w http.ResponseWriter, r *http.Request) { fmt.Fprint(w, "ok") })
	srv := httptest.NewServer(mux)
	defer srv.Close()
	base = srv.URL
	u, _ := url.Parse(srv.URL + "/a")
	var events []string
	hooks := Hooks{
		OnRedirect: func(n int, h Hop) {
			events = append(events, fmt.Sprintf("redirect %d %d %s %s", n, h.Status, h.StatusText, h.Location))
		},
		OnTrace: func(n int, at *AttemptTrace) { events = append(events, fmt.Sprintf("trace %d %s", n, at.Proto)) },
	}
	traces, err := runTraced(t, &Request{Method: "GET", URL: u, MaxRedirs: 10}, 1, 0, hooks)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{
		"redirect 1 301 Moved Permanently " + srv.URL + "/b",
		"redirect 1 302 Found " + strings.Replace(srv.URL, "http://", "http://user:REDACTED@", 1) + "/c",
		"trace 1 HTTP/1.1",
	}
	if strings.Join(events, "\n") != strings.Join(want, "\n") {
		t.Errorf("events:\n%s\nwant:\n%s", strings.Join(events, "\n"), strings.Join(want, "\n"))
	}
	rt := NewReportTrace(traces[0])
	if len(rt.Redirects) != 2 || rt.Redirects[0].Status != 301 || rt.Redirects[1].Status != 302 ||
		strings.Contains(rt.Redirects[1].Location, "s3cret") {
		t.Errorf("report redirects = %+v", rt.Redirects)
	}
	// Kept alive across the hops: the last one reused the connection.
	if !traces[0].Reused || rt.TimingsMS == nil || rt.TimingsMS.Connect == nil || rt.TimingsMS.TLS != nil {
		t.Errorf("reused %v, timings %+v", traces[0].Reused, rt.TimingsMS)
	}
	checkSum(t, "redirected", traces[0])
}

func TestTraceTooManyRedirectsListsTheRefusedHop(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "/loop", http.StatusFound)
	}))
	defer srv.Close()
	u, _ := url.Parse(srv.URL + "/loop")
	traces, err := runTraced(t, &Request{Method: "GET", URL: u, MaxRedirs: 2}, 1, 0, Hooks{})
	if err == nil || len(traces) != 1 {
		t.Fatalf("%v, %d attempts", err, len(traces))
	}
	if n := len(traces[0].Redirects); n != 3 {
		t.Errorf("%d hops, want 2 followed and the refused third", n)
	}
}

func TestReportTraceWithoutDetail(t *testing.T) {
	rt := NewReportTrace(nil)
	if rt.TimingsMS != nil || rt.Reused || rt.RemoteAddr != nil || rt.Proto != nil || rt.Redirects == nil || len(rt.Redirects) != 0 {
		t.Errorf("report trace of nothing = %+v", rt)
	}
}
