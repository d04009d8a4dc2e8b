package fetch

import (
	"context"
	"net/http"
	"net/netip"
	"time"

	"github.com/refetch/refetch/resilience"
)

// Hedged requests (docs/fetch.md, "Hedged requests"): an attempt whose
// first copy has no response headers after Delay sends another copy, on a
// new connection (to another address when there is one), and keeps the
// first answer.
//
//   - The winner is the first copy whose response headers arrive with an
//     answer that is not a retryable failure (gRPC's hedging rule). Its
//     body alone is then read into the sink: a body goes into one spill
//     file, -o temporary file or stream, so two cannot race to it, and
//     Delay is about the wait for the headers.
//   - A copy that fails (an error, a retryable status) while another is
//     in flight does not end the attempt; when hedges are left, the next
//     goes at once (Polly's and gRPC's rule) instead of after Delay.
//   - The losers are cancelled, which closes their connections.
//   - When every copy fails, the attempt's outcome is the last failure.
//   - Each hedge asks, before it goes, for a free slot of the run's rate
//     and retry budget (Limits.Extra) and for a batch's per-host room
//     (Hedge.Slot); refused, it is not sent.

// Hedge configures the hedged requests of a run.
type Hedge struct {
	// Delay is how long a copy may go without response headers before the
	// next is sent; more than 0.
	Delay time.Duration
	// Max is the most hedges an attempt sends beyond its first copy; at
	// least 1.
	Max int
	// Slot, if set, takes room for one hedge (a batch's per-host bound):
	// ok false when there is none now; release gives it back.
	Slot func() (release func(), ok bool)
}

// Copy is one copy of a hedged attempt.
type Copy struct {
	// N is 1 for the first copy, 2 and on for the hedges.
	N int
	// Sent is when the copy went, after the start of the attempt.
	Sent time.Duration
	// Trace is where its time went; RemoteAddr is its server address.
	Trace *AttemptTrace
	// Status is its response's status, 0 when none came.
	Status int
	// Err is its failure; nil for the winner, and for a copy cancelled
	// because another won (Outcome says so).
	Err error
	// Outcome is "won", "cancelled" (another copy won first), or
	// "failed".
	Outcome string
}

// Copy outcomes.
const (
	CopyWon       = "won"
	CopyCancelled = "cancelled"
	CopyFailed    = "failed"
)

// HedgeInfo describes a hedge, for -v: copy Copy was sent after After
// (Sent true), or could not be (Why says what refused it).
type HedgeInfo struct {
	Copy  int
	After time.Duration
	Sent  bool
	Why   string
	// Addr is the address of the copy that had not answered.
	Addr string
}

// hedgeable reports whether the run may hedge: a Hedge is set, and the
// request is safe to repeat (resilience.Idempotent's methods but PUT and
// DELETE, or the caller's opt-in, cmd's to judge).
func (f *fetcher) hedgeable() bool {
	return f.cfg.Hedge != nil && f.cfg.Hedge.Delay > 0 && f.hedgeClient != nil
}

// copyRun is one copy in flight or done.
type copyRun struct {
	Copy
	resp   *http.Response
	cancel context.CancelFunc
	done   bool
}

type copyDone struct {
	c    *copyRun
	resp *http.Response
	err  error
}

// sendHedged performs attempt n as hedged copies and returns the winner's
// response (or the last failure) and its trace, which lists every copy.
// finish, called once the response's body is closed, ends the winner's
// context.
func (f *fetcher) sendHedged(ctx context.Context, n int, mods ...func(*http.Request)) (resp *http.Response, at *AttemptTrace, finish func(), err error) {
	h := f.cfg.Hedge
	start := time.Now()
	results := make(chan copyDone, h.Max+1)
	var copies []*copyRun
	var releases []func()
	defer func() {
		for _, r := range releases {
			r()
		}
	}()
	hooks := f.cfg.Hooks
	copyHooks := Hooks{OnRequest: hooks.OnRequest, OnRedirect: hooks.OnRedirect, OnTrace: hooks.OnTrace}
	launch := func(client *http.Client) {
		cctx, cancel := context.WithCancel(ctx)
		c := &copyRun{Copy: Copy{N: len(copies) + 1, Sent: time.Since(start), Trace: &AttemptTrace{Copy: len(copies) + 1}}, cancel: cancel}
		copies = append(copies, c)
		go func() {
			resp, err := f.cfg.Request.send(withTrace(cctx, c.Trace), client, n, copyHooks, mods...)
			results <- copyDone{c, resp, err}
		}()
	}
	inFlight := func() int {
		k := 0
		for _, c := range copies {
			if !c.done {
				k++
			}
		}
		return k
	}
	// tryHedge sends the next copy unless the hedges are used up or
	// something refuses it; it reports whether one went.
	refused := false
	tryHedge := func(waiting *copyRun) bool {
		if len(copies) > h.Max || refused || ctx.Err() != nil {
			return false
		}
		info := HedgeInfo{Copy: len(copies) + 1, After: time.Since(start)}
		if waiting != nil {
			info.Addr = waiting.Trace.remoteAddr()
			// Even over a kept-alive connection another run dialed: the
			// hedge goes elsewhere when it can.
			f.book.markAddr(info.Addr)
		}
		why := ""
		if h.Slot != nil {
			release, ok := h.Slot()
			if !ok {
				why = "the batch's per-host bound (--parallel-host) is reached"
			} else {
				releases = append(releases, release)
			}
		}
		if why == "" {
			why = f.cfg.Limits.Extra(ctx, clockNow(f.cfg.Clock))
		}
		if why != "" {
			refused = true
			info.Why = why
			if hooks.OnHedge != nil {
				hooks.OnHedge(n, info)
			}
			return false
		}
		info.Sent = true
		if hooks.OnHedge != nil {
			hooks.OnHedge(n, info)
		}
		launch(f.hedgeClient)
		return true
	}

	launch(f.client)
	timer := resilience.NewRealTimer()
	if f.cfg.NewTimer != nil {
		timer = f.cfg.NewTimer()
	}
	// armed: the timer runs and its tick is still to come (a timer is
	// started again only after its tick).
	armed := true
	timer.Start(h.Delay)
	defer timer.Stop()
	rearm := func() {
		if !armed && len(copies) <= h.Max {
			armed = true
			timer.Start(h.Delay)
		}
	}
	var (
		winner *copyRun
		last   copyDone // the last failure
	)
	for winner == nil && inFlight() > 0 {
		select {
		case <-timer.C():
			armed = false
			var oldest *copyRun
			for _, c := range copies {
				if !c.done {
					oldest = c
					break
				}
			}
			if tryHedge(oldest) {
				rearm()
			}
		case d := <-results:
			d.c.done = true
			if d.err == nil && !f.retryable(d.resp) {
				winner = d.c
				d.c.resp, d.c.Status, d.c.Outcome = d.resp, d.resp.StatusCode, CopyWon
				break
			}
			// A failure: keep it as the attempt's outcome if nothing wins,
			// and let the others go on (or send the next one now).
			d.c.Outcome, d.c.Err = CopyFailed, d.err
			if d.resp != nil {
				d.c.Status = d.resp.StatusCode
				d.c.Err = nil
			}
			if last.resp != nil {
				closeLoser(last.resp)
			}
			last = d
			if inFlight() > 0 {
				continue
			}
			if !f.failedRetryably(d) {
				// A failure another copy would meet too (a TLS or DNS
				// error): no hedge goes for it.
				refused = true
				continue
			}
			if tryHedge(nil) {
				rearm()
			}
		}
	}
	// The others are cancelled; wait for them, so their traces are final.
	for _, c := range copies {
		if c != winner && !c.done {
			c.cancel()
		}
	}
	for inFlight() > 0 {
		d := <-results
		d.c.done = true
		d.c.Outcome = CopyCancelled
		if d.resp != nil {
			d.c.Status = d.resp.StatusCode
			closeLoser(d.resp)
		}
	}
	list := make([]Copy, len(copies))
	for i, c := range copies {
		list[i] = c.Copy
	}
	if winner != nil {
		for _, c := range copies {
			if c != winner {
				c.cancel()
			}
		}
		at = winner.Trace
		at.setCopies(list)
		if hooks.OnResponse != nil {
			hooks.OnResponse(n, winner.resp)
		}
		return winner.resp, at, winner.cancel, nil
	}
	for _, c := range copies {
		if c != last.c {
			c.cancel()
		}
	}
	at = last.c.Trace
	at.setCopies(list)
	if last.resp != nil && hooks.OnResponse != nil {
		hooks.OnResponse(n, last.resp)
	}
	return last.resp, at, last.c.cancel, last.err
}

// retryable reports whether resp is an answer a hedge may still beat: one
// the run would retry (a status in --retry-on).
func (f *fetcher) retryable(resp *http.Response) bool {
	v := Classify(f.cfg.Request.Method, resilience.Attempt{Status: resp.StatusCode, Header: resp.Header}, f.cfg.Policy)
	return v.Kind == resilience.Retryable
}

// failedRetryably reports whether a copy's failure is one the run would
// retry: only then may a hedge go at once in its place.
func (f *fetcher) failedRetryably(d copyDone) bool {
	if d.resp != nil {
		return true // retryable already: see retryable
	}
	return Classify(f.cfg.Request.Method, resilience.Attempt{Err: d.err}, f.cfg.Policy).Kind == resilience.Retryable
}

// closeLoser closes the response of a copy that lost, reading none of its
// body: its connection closes with it.
func closeLoser(resp *http.Response) {
	_ = resp.Body.Close()
}

// setCopies records the copies of a hedged attempt in its trace.
func (t *AttemptTrace) setCopies(c []Copy) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.Copies = c
}

func (t *AttemptTrace) remoteAddr() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.RemoteAddr
}

// newHedgeClient is client for hedges: the same settings on a transport of
// its own that keeps no connection, so every hedge dials a new one (to an
// address the run has not tried, when there is one) and an HTTP/2 hedge
// does not share the first copy's connection.
func newHedgeClient(client *http.Client) *http.Client {
	tr := TransportOf(client)
	if tr == nil {
		return nil
	}
	h := tr.Clone()
	h.DisableKeepAlives = true
	c := *client
	c.Transport = redirectTransport{h}
	return &c
}

// HeaderLatencies are the times to response headers of the run's copies
// that got an answer (each copy from its own start), for the origin's
// latency summary (--hedge auto).
func HeaderLatencies(tr *resilience.Trace) []time.Duration {
	if tr == nil {
		return nil
	}
	var out []time.Duration
	add := func(t *AttemptTrace) {
		if t != nil && t.Proto != "" && t.TTFB > 0 {
			out = append(out, t.TTFB)
		}
	}
	for _, a := range tr.Attempts {
		t, ok := a.Detail.(*AttemptTrace)
		if !ok || t == nil {
			continue
		}
		if len(t.Copies) == 0 {
			add(t)
			continue
		}
		for _, c := range t.Copies {
			add(c.Trace)
		}
	}
	return out
}

// ReportCopy is one copy of a hedged attempt in a report.
type ReportCopy struct {
	Copy   int     `json:"copy"`
	SentMS float64 `json:"sent_ms"`
	// DurationMS is from the copy's start to its end (its body closed, its
	// failure, or its cancellation).
	DurationMS float64        `json:"duration_ms"`
	RemoteAddr *string        `json:"remote_addr"`
	Status     *int           `json:"status"`
	Error      *string        `json:"error"`
	Outcome    string         `json:"outcome"`
	Winner     bool           `json:"winner"`
	TimingsMS  *ReportTimings `json:"timings_ms"`
}

// reportCopies is the report form of t's copies; nil when the attempt
// was not hedged.
func reportCopies(t *AttemptTrace) []ReportCopy {
	if len(t.Copies) == 0 {
		return nil
	}
	out := make([]ReportCopy, 0, len(t.Copies))
	for _, c := range t.Copies {
		rc := ReportCopy{Copy: c.N, SentMS: Millis(c.Sent), Outcome: c.Outcome, Winner: c.Outcome == CopyWon}
		if ct := c.Trace; ct != nil {
			rc.DurationMS = Millis(ct.Total)
			rc.TimingsMS = ct.copyTimings()
			if ct.RemoteAddr != "" {
				s := ct.RemoteAddr
				rc.RemoteAddr = &s
			}
		}
		if c.Status != 0 {
			s := c.Status
			rc.Status = &s
		}
		if c.Err != nil {
			s := Redact(c.Err.Error())
			rc.Error = &s
		}
		out = append(out, rc)
	}
	return out
}

// markAddr records a dial to addr ("ip:port"; anything else is ignored).
func (b *addrBook) markAddr(addr string) {
	if ap, err := netip.ParseAddrPort(addr); err == nil {
		b.mark(netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port()))
	}
}

// ReportHedge is a run's hedging in a report.
type ReportHedge struct {
	// Auto: the delay came from the origin's latency summary.
	Auto bool `json:"auto"`
	// DelayMS is the run's hedge delay; null when the run did not hedge
	// (auto with too few samples, or no store).
	DelayMS *float64 `json:"delay_ms"`
	// Samples is how many samples the origin's summary held (auto).
	Samples int `json:"samples"`
	Max     int `json:"max"`
}

func (t *AttemptTrace) setSeveral() {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.Several = true
}
