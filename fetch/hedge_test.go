package fetch

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/refetch/refetch/internal/fakeclock"
	"github.com/refetch/refetch/internal/redistest"
	"github.com/refetch/refetch/resilience"
)

// hedgeSetup serves svc.test:PORT from two pinned addresses: 127.0.0.3
// accepts and never answers, 127.0.0.1 answers "ok" (counted).
func hedgeSetup(t *testing.T) (Config, *atomic.Int64, int, *redistest.Silent) {
	t.Helper()
	var served atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		served.Add(1)
		fmt.Fprint(w, "ok")
	}))
	t.Cleanup(srv.Close)
	port := srv.Listener.Addr().(*net.TCPAddr).Port
	silent, err := redistest.ListenSilent(t, net.JoinHostPort("127.0.0.3", strconv.Itoa(port)))
	if err != nil {
		t.Skipf("no 127.0.0.3: %v", err)
	}
	pin, err := ParseResolve(fmt.Sprintf("svc.test:%d:127.0.0.3,127.0.0.1", port))
	if err != nil {
		t.Fatal(err)
	}
	u := mustURL(t, fmt.Sprintf("http://svc.test:%d/", port))
	cfg := Config{
		Request: &Request{Method: http.MethodGet, URL: u, Header: http.Header{}, Pins: Pins{pin}},
		Policy:  resilience.Policy{Attempts: 1, Timeout: 300 * time.Millisecond, RetryOn: resilience.MustStatusSet("503")},
		Sink:    &BufferSink{},
		Hedge:   &Hedge{Delay: time.Hour, Max: 1},
	}
	return cfg, &served, port, silent
}

// signalTimer is a resilience.Timer that fires when fire delivers.
type signalTimer struct {
	fire <-chan struct{}
	c    chan time.Time
}

func (s *signalTimer) Start(time.Duration) {
	go func() {
		<-s.fire
		s.c <- time.Now()
	}()
}
func (s *signalTimer) Stop()               {}
func (s *signalTimer) C() <-chan time.Time { return s.c }

func TestHedgeGoesWhenTheDelayEnds(t *testing.T) {
	// The (hour-long) delay ends once the first copy waits at the silent
	// address: the hedge goes to the address not tried yet, and wins; the
	// silent copy is cancelled.
	cfg, served, port, silent := hedgeSetup(t)
	cfg.Policy.Timeout = time.Minute // a guard only
	cfg.NewTimer = func() resilience.Timer {
		return &signalTimer{fire: silent.Heard(), c: make(chan time.Time, 1)}
	}
	res, err := Run(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	at := res.Trace.Attempts[0].Detail.(*AttemptTrace)
	if len(at.Copies) != 2 {
		t.Fatalf("copies = %+v", at.Copies)
	}
	c1, c2 := at.Copies[0], at.Copies[1]
	if c1.Trace.RemoteAddr != "127.0.0.3:"+strconv.Itoa(port) || c1.Outcome != CopyCancelled {
		t.Errorf("copy 1 = %s %s, want 127.0.0.3 cancelled", c1.Trace.RemoteAddr, c1.Outcome)
	}
	if c2.Trace.RemoteAddr != "127.0.0.1:"+strconv.Itoa(port) || c2.Outcome != CopyWon || c2.Status != 200 {
		t.Errorf("copy 2 = %s %s %d, want 127.0.0.1 won 200", c2.Trace.RemoteAddr, c2.Outcome, c2.Status)
	}
	if at != c2.Trace || served.Load() != 1 {
		t.Errorf("the attempt's trace is not the winner's, or %d requests served", served.Load())
	}
	if got := HeaderLatencies(res.Trace); len(got) != 1 {
		t.Errorf("header latencies %v, want the winner's only", got)
	}
}

func TestNoHedgeBeforeTheDelay(t *testing.T) {
	// A timer that never fires: no hedge goes; the attempt times out on
	// the silent address, and its error names it.
	cfg, served, port, _ := hedgeSetup(t)
	clock := fakeclock.New(time.Now())
	cfg.NewTimer = func() resilience.Timer {
		tm := clock.NewTimer()
		tm.Hold = func() bool { return true }
		return tm
	}
	res, err := Run(context.Background(), cfg)
	if err == nil {
		t.Fatal("the run succeeded without a hedge")
	}
	at := res.Trace.Attempts[0].Detail.(*AttemptTrace)
	if len(at.Copies) != 1 || served.Load() != 0 {
		t.Fatalf("copies %+v, %d served; want the first copy alone", at.Copies, served.Load())
	}
	if want := "server address 127.0.0.3:" + strconv.Itoa(port); !strings.Contains(res.Trace.Attempts[0].Err.Error(), want) {
		t.Errorf("error %q does not name %s", res.Trace.Attempts[0].Err, want)
	}
}
