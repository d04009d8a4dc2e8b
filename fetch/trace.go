package fetch

import (
	"context"
	"crypto/tls"
	"io"
	"net"
	"net/http"
	"net/http/httptrace"
	"sync"
	"time"
)

// Phase is one phase of an attempt, in the order they happen.
type Phase int

// The phases of an attempt. They do not overlap, so their sum is the time
// the attempt spent on the network; refetch's own work between them (a
// few microseconds) belongs to none.
const (
	// PhaseDNS is the name lookup (absent for an IP address or a reused
	// connection).
	PhaseDNS Phase = iota
	// PhaseConnect is the TCP connect, failed attempts included (absent
	// for a reused connection).
	PhaseConnect
	// PhaseTLS is the TLS handshake (absent for http:// and for a reused
	// connection).
	PhaseTLS
	// PhaseFirstByte runs from the moment the connection is ready to the
	// first byte of the response: sending the request and the server's
	// think time, one round trip included.
	PhaseFirstByte
	// PhaseBody runs from the first byte of the response until its body
	// has been read and closed.
	PhaseBody
	// NumPhases is the number of phases.
	NumPhases
)

var phaseNames = [NumPhases]string{"dns", "connect", "tls", "first_byte", "body"}
var phaseLabels = [NumPhases]string{"dns", "connect", "tls", "first byte", "body"}

// String is the phase's name in --json: dns, connect, tls, first_byte, body.
func (p Phase) String() string {
	if p < 0 || p >= NumPhases {
		return "unknown"
	}
	return phaseNames[p]
}

// Label is the phase's name for people: "first byte" rather than "first_byte".
func (p Phase) Label() string {
	if p < 0 || p >= NumPhases {
		return "unknown"
	}
	return phaseLabels[p]
}

// Hop is one redirect of an attempt: the redirect response's status and
// where it pointed.
type Hop struct {
	Status     int
	StatusText string
	// Location is the URL redirected to, resolved against the request's
	// URL, with any password redacted.
	Location string
}

// AttemptTrace is where the time of one attempt went, recorded through
// net/http/httptrace. fetch keeps it as the attempt's
// resilience.Attempt.Detail. Its exported fields are final once the
// attempt has ended (its body closed, or its error returned); the OnTrace
// hook is called then.
//
// With redirects, each phase is summed over the hops; RemoteAddr, Proto
// and Reused are those of the last hop.
type AttemptTrace struct {
	// Phases is the time spent in each phase; Happened says which phases
	// happened at all. A phase still running when the attempt ended (a
	// server that never sent its first byte) counts until that end.
	Phases   [NumPhases]time.Duration
	Happened [NumPhases]bool
	// TTFB is the time from the start of the attempt to the first byte of
	// its final response, redirects included; 0 when no response came.
	TTFB time.Duration
	// Total is the time from the start of the attempt to its end.
	Total time.Duration
	// Reused is set when the request went over a kept-alive connection.
	Reused bool
	// RemoteAddr is the server's address (host:port); for a connection
	// that failed, the last address tried; "" when none was tried.
	RemoteAddr string
	// Proto is the response's protocol ("HTTP/1.1", "HTTP/2.0"); "" when
	// no response came.
	Proto string
	// Redirects are the redirects of the attempt, in order, including one
	// refused for exceeding the limit.
	Redirects []Hop
	// SpanID is the span id the attempt's traceparent header carried
	// (Request.Trace); "" without one.
	SpanID string
	// Copies are the copies of a hedged attempt (hedge.go), this one
	// among them; nil when the attempt was not hedged.
	Copies []Copy
	// Dials are the connects the attempt made, in the order they ended
	// (dial.go); Several is set when its host had more than one address.
	Dials   []Dial
	Several bool
	// Copy is the copy of a hedged attempt this trace is of (1 the first,
	// 2 and on the hedges); 0 when the attempt was not hedged.
	Copy int
	// Resumed is set when the attempt's body continued a cut body from
	// byte ResumedFrom (resume.go); BodyBytes is what the attempt itself
	// received of the body. Restart says why the attempt started the body
	// over although it asked for the rest ("" if it did not).
	Resumed     bool
	ResumedFrom int64
	BodyBytes   int64
	Restart     string

	mu      sync.Mutex
	n       int
	hooks   Hooks
	start   time.Time
	running [NumPhases]time.Time // zero: not running
	dials   int                  // connects in flight (Happy Eyeballs runs several)
	firstAt time.Time            // the last first byte seen
	ended   bool
	// answered is set once the final response's headers came (respond).
	answered bool
	last     net.Conn // the connection of the last hop
}

type traceKey struct{}

// withTrace makes send record attempt into at, so the caller can keep it.
func withTrace(ctx context.Context, at *AttemptTrace) context.Context {
	return context.WithValue(ctx, traceKey{}, at)
}

func traceFrom(ctx context.Context) *AttemptTrace {
	at, _ := ctx.Value(traceKey{}).(*AttemptTrace)
	return at
}

// startTrace begins the trace of attempt n: the caller's (withTrace) or a
// new one. The returned context carries it and its httptrace hooks.
func startTrace(ctx context.Context, n int, h Hooks) (context.Context, *AttemptTrace) {
	at := traceFrom(ctx)
	if at == nil {
		at = new(AttemptTrace)
		ctx = withTrace(ctx, at)
	}
	at.mu.Lock()
	at.n, at.hooks, at.start = n, h, time.Now()
	at.mu.Unlock()
	return httptrace.WithClientTrace(ctx, &httptrace.ClientTrace{
		DNSStart:             func(httptrace.DNSStartInfo) { at.phase(PhaseDNS, true) },
		DNSDone:              func(httptrace.DNSDoneInfo) { at.phase(PhaseDNS, false) },
		ConnectStart:         func(_, addr string) { at.connectStart(addr) },
		ConnectDone:          func(_, addr string, err error) { at.connectDone(addr, err) },
		TLSHandshakeStart:    func() { at.phase(PhaseTLS, true) },
		TLSHandshakeDone:     func(tls.ConnectionState, error) { at.phase(PhaseTLS, false) },
		GotConn:              at.gotConn,
		GotFirstResponseByte: at.firstByte,
	}), at
}

// phase starts or ends phase p now; the caller holds no lock.
func (t *AttemptTrace) phase(p Phase, start bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if start {
		t.begin(p, time.Now())
	} else {
		t.stop(p, time.Now())
	}
}

// begin and stop run under t.mu; events after the end are ignored (a
// connect abandoned by Happy Eyeballs may report late).
func (t *AttemptTrace) begin(p Phase, now time.Time) {
	if !t.ended && t.running[p].IsZero() {
		t.running[p] = now
		t.Happened[p] = true
	}
}

func (t *AttemptTrace) stop(p Phase, now time.Time) {
	if !t.ended && !t.running[p].IsZero() {
		t.Phases[p] += now.Sub(t.running[p])
		t.running[p] = time.Time{}
	}
}

func (t *AttemptTrace) connectStart(addr string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.ended {
		return
	}
	if t.dials == 0 {
		t.begin(PhaseConnect, time.Now())
	}
	t.dials++
	t.RemoteAddr = addr
}

// connectDone ends the connect phase at the first success, or when the
// last dial in flight has failed.
func (t *AttemptTrace) connectDone(addr string, err error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.ended {
		return
	}
	t.dials--
	t.Dials = append(t.Dials, Dial{Addr: addr, Err: err})
	if err == nil || t.dials <= 0 {
		t.dials = 0
		t.stop(PhaseConnect, time.Now())
	}
	if err == nil {
		t.RemoteAddr = addr
	}
}

func (t *AttemptTrace) gotConn(info httptrace.GotConnInfo) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.ended {
		return
	}
	now := time.Now()
	t.stop(PhaseConnect, now)
	t.dials = 0
	t.Reused = info.Reused
	t.firstAt = time.Time{}
	if info.Conn != nil {
		t.RemoteAddr = info.Conn.RemoteAddr().String()
	}
	t.last = info.Conn
	t.begin(PhaseFirstByte, now)
}

// conn is the connection the attempt's final response came over (nil if
// none was had).
func (t *AttemptTrace) conn() net.Conn {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.last
}

func (t *AttemptTrace) firstByte() {
	t.mu.Lock()
	defer t.mu.Unlock()
	now := time.Now()
	t.stop(PhaseFirstByte, now)
	if !t.ended {
		t.firstAt = now
	}
}

// redirect records a redirect response (req.Response) about to be
// followed to req.URL. NewClient's CheckRedirect calls it for every hop.
func traceRedirect(req *http.Request) {
	at := traceFrom(req.Context())
	if at == nil || req.Response == nil {
		return
	}
	hop := Hop{Status: req.Response.StatusCode, StatusText: statusText(req.Response), Location: RedactURL(req.URL)}
	at.mu.Lock()
	if at.ended {
		at.mu.Unlock()
		return
	}
	at.Redirects = append(at.Redirects, hop)
	n, h := at.n, at.hooks
	at.mu.Unlock()
	if h.OnRedirect != nil {
		h.OnRedirect(n, hop)
	}
}

// respond records the final response of the attempt and makes closing its
// body the end of the attempt.
func (t *AttemptTrace) respond(resp *http.Response) {
	t.mu.Lock()
	now := time.Now()
	// A RoundTripper that does not trace leaves no first byte: the
	// headers' arrival stands in for it.
	t.stop(PhaseFirstByte, now)
	first := t.firstAt
	if first.IsZero() {
		first = now
	}
	t.Proto = resp.Proto
	t.TTFB = first.Sub(t.start)
	t.answered = true
	if !t.ended {
		t.running[PhaseBody] = first
		t.Happened[PhaseBody] = true
	}
	t.mu.Unlock()
	resp.Body = &tracedBody{ReadCloser: resp.Body, at: t}
}

// fail ends the attempt with err, which it returns.
func (t *AttemptTrace) fail(err error) error {
	t.end()
	return err
}

// end closes every phase still running, fixes the totals and calls the
// OnTrace hook, once.
func (t *AttemptTrace) end() {
	t.mu.Lock()
	if t.ended {
		t.mu.Unlock()
		return
	}
	now := time.Now()
	for p := range NumPhases {
		t.stop(p, now)
	}
	t.Total = now.Sub(t.start)
	t.ended = true
	n, h := t.n, t.hooks
	// Nothing after the end needs them, and a long check keeps every
	// attempt's trace for its reports: not its connection or hooks.
	t.hooks, t.last = Hooks{}, nil
	t.mu.Unlock()
	if h.OnTrace != nil {
		h.OnTrace(n, t)
	}
}

// tracedBody ends the attempt's trace when the body is closed.
type tracedBody struct {
	io.ReadCloser
	at *AttemptTrace
}

func (b *tracedBody) Close() error {
	err := b.ReadCloser.Close()
	b.at.end()
	return err
}

// ReportTrace is the --json form of an AttemptTrace, part of each attempt
// of a report.
type ReportTrace struct {
	// TimingsMS holds each phase in milliseconds (to the microsecond),
	// null for a phase that did not happen; the object is null when the
	// attempt was not traced.
	TimingsMS  *ReportTimings `json:"timings_ms"`
	Reused     bool           `json:"reused"`
	RemoteAddr *string        `json:"remote_addr"`
	Proto      *string        `json:"proto"`
	Redirects  []ReportHop    `json:"redirects"`
	// SpanID is the attempt's traceparent span id (--traceparent); left
	// out without one.
	SpanID *string `json:"span_id,omitempty"`
	// Copies are the copies of a hedged attempt; left out when it was
	// not hedged.
	Copies []ReportCopy `json:"copies,omitempty"`
	// Addresses are the addresses the attempt's connects tried, when its
	// host has several; left out otherwise.
	Addresses []ReportDial `json:"addresses,omitempty"`
	// ResumedFrom is the byte the attempt's body continued a cut body
	// from, null when it started at byte 0; BodyBytes is what the attempt
	// received of the body; Restart says why it started over although it
	// asked for the rest.
	ResumedFrom *int64  `json:"resumed_from"`
	BodyBytes   int64   `json:"body_bytes"`
	Restart     *string `json:"restart,omitempty"`
}

// ReportTimings are the phases of an attempt in milliseconds; nil: the
// phase did not happen.
type ReportTimings struct {
	DNS       *float64 `json:"dns"`
	Connect   *float64 `json:"connect"`
	TLS       *float64 `json:"tls"`
	FirstByte *float64 `json:"first_byte"`
	Body      *float64 `json:"body"`
}

// ReportHop is one redirect in a report.
type ReportHop struct {
	Status   int    `json:"status"`
	Location string `json:"location"`
}

// NewReportTrace is the report form of an attempt's detail: an
// *AttemptTrace, or anything else (nil) for an attempt without one.
func NewReportTrace(detail any) ReportTrace {
	rt := ReportTrace{Redirects: []ReportHop{}}
	t, ok := detail.(*AttemptTrace)
	if !ok || t == nil {
		return rt
	}
	rt.TimingsMS = t.reportTimings()
	rt.Reused = t.Reused
	if t.RemoteAddr != "" {
		s := t.RemoteAddr
		rt.RemoteAddr = &s
	}
	if t.Proto != "" {
		s := t.Proto
		rt.Proto = &s
	}
	for _, h := range t.Redirects {
		rt.Redirects = append(rt.Redirects, ReportHop{Status: h.Status, Location: Redact(h.Location)})
	}
	if t.SpanID != "" {
		s := t.SpanID
		rt.SpanID = &s
	}
	rt.Copies = reportCopies(t)
	rt.Addresses = reportDials(t)
	if t.Resumed {
		from := t.ResumedFrom
		rt.ResumedFrom = &from
	}
	rt.BodyBytes = t.BodyBytes
	if t.Restart != "" {
		why := t.Restart
		rt.Restart = &why
	}
	return rt
}

// CopyShows reports whether phase p is shown for the trace as a copy of a
// hedged attempt (copies[].timings_ms, -v's copy lines): a phase that
// happened, but not the first byte of a copy that got no response
// headers (cancelled because another copy won, or failed): it waited, and
// no first byte came; its wait is in its duration. An attempt's own
// timings keep such a wait as its first byte (docs/debugging.md).
func (t *AttemptTrace) CopyShows(p Phase) bool {
	return t.Happened[p] && (p != PhaseFirstByte || t.Copy == 0 || t.answered)
}

func (t *AttemptTrace) reportTimings() *ReportTimings { return t.timings(t.Happened[:]) }

// copyTimings are the timings of a hedged attempt's copy (CopyShows).
func (t *AttemptTrace) copyTimings() *ReportTimings {
	var shown [NumPhases]bool
	for p := range NumPhases {
		shown[p] = t.CopyShows(p)
	}
	return t.timings(shown[:])
}

// timings are the report form of the phases shown.
func (t *AttemptTrace) timings(shown []bool) *ReportTimings {
	ms := func(p Phase) *float64 {
		if !shown[p] {
			return nil
		}
		v := Millis(t.Phases[p])
		return &v
	}
	return &ReportTimings{DNS: ms(PhaseDNS), Connect: ms(PhaseConnect), TLS: ms(PhaseTLS),
		FirstByte: ms(PhaseFirstByte), Body: ms(PhaseBody)}
}

// Millis is d in milliseconds to the microsecond, the one form of every
// time in a report (an attempt's duration_ms, the run's elapsed_ms, each
// phase). It truncates rather than rounds: the sum of truncated parts is
// never more than their truncated total, so phases that fit in an attempt
// still add up to no more than its duration_ms (rounding each could push
// the sum of five phases past the total by a few microseconds).
func Millis(d time.Duration) float64 {
	return float64(d/time.Microsecond) / 1000
}
