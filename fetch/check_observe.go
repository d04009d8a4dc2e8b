package fetch

import (
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/refetch/refetch/resilience"
)

// observer sends one health-check request and reads its answer, keeping
// only what the expectations need.
type observer struct {
	client *http.Client
	// req is the request as sent: the caller's, with Accept-Encoding set
	// (wireRequest).
	req   *Request
	hooks Hooks
	clock resilience.Clock
	// keepBody: a body expectation looks at the body, so it is kept, up
	// to bodyLimit bytes after decoding (0: no bound).
	keepBody  bool
	bodyLimit int64
	// timeout and maxLatency end an attempt (0: none): the earlier wins.
	timeout, maxLatency time.Duration
	// every is how often onWaiting is told of an attempt still without
	// an answer (0: never).
	every     time.Duration
	onWaiting func(n int, after time.Duration, stage string)
}

// attemptLimit is the cause of an attempt's context ended by its limit.
type attemptLimit struct{ limit CheckLimit }

func (e attemptLimit) Error() string { return "attempt limit" }

// wireRequest is req as a check sends it: asking for gzip itself, so that
// net/http leaves the answer as the server sent it (Content-Encoding and
// Content-Length kept, as curl -I shows them) instead of decompressing it
// out of sight; a body expectation then decodes the body here. A caller's
// own Accept-Encoding (-H) is sent as given.
func wireRequest(req *Request) *Request {
	if _, given := req.Header["Accept-Encoding"]; given {
		return req
	}
	r := *req
	r.Header = req.Header.Clone()
	if r.Header == nil {
		r.Header = http.Header{}
	}
	r.Header.Set("Accept-Encoding", "gzip")
	return &r
}

// progress is what an attempt in flight has got so far, for onWaiting.
type progress struct {
	status   atomic.Int64
	received atomic.Int64
}

// countingReader counts the bytes read through it into n.
type countingReader struct {
	r io.Reader
	n *atomic.Int64
}

func (c countingReader) Read(p []byte) (int, error) {
	k, err := c.r.Read(p)
	c.n.Add(int64(k))
	return k, err
}

// observe performs attempt n under ctx (the run's: its end is LimitRunEnd).
func (o *observer) observe(ctx context.Context, n int) Observation {
	actx, cancel := ctx, context.CancelFunc(func() {})
	bound, limit := o.timeout, LimitTimeout
	if o.maxLatency > 0 && (bound == 0 || o.maxLatency <= bound) {
		// An answer later than --max-latency cannot be healthy: waiting
		// for it only spends the time of the next attempt.
		bound, limit = o.maxLatency, LimitMaxLatency
	}
	if bound > 0 {
		actx, cancel = context.WithTimeoutCause(ctx, bound, attemptLimit{limit})
	}
	defer cancel()
	at := new(AttemptTrace)
	var prog progress
	stop := o.heartbeat(n, at, &prog)
	defer stop()
	start := clockNow(o.clock)
	since := func() time.Duration { return clockNow(o.clock).Sub(start) }
	// noAnswer words an attempt that got no whole answer, saying what
	// ended it: the run, the attempt's own limit, or the transport.
	noAnswer := func(err error) *NoAnswerError {
		e := &NoAnswerError{After: since(), Err: err, Status: int(prog.status.Load()), Received: prog.received.Load()}
		e.Addr, e.Connected = at.reached()
		switch {
		case ctx.Err() != nil && errors.Is(context.Cause(ctx), resilience.ErrDeadline):
			e.Limit = LimitRunEnd
		case ctx.Err() != nil:
			// A signal: the run's error says so; the attempt was cut.
			e.Err = context.Cause(ctx)
		case actx.Err() != nil:
			var al attemptLimit
			if errors.As(context.Cause(actx), &al) {
				e.Limit, e.Bound = al.limit, bound
			}
		}
		return e
	}
	resp, err := o.req.send(withTrace(actx, at), o.client, n, o.hooks)
	if err != nil {
		return Observation{Err: noAnswer(err), Latency: since(), Trace: at}
	}
	defer resp.Body.Close()
	prog.status.Store(int64(resp.StatusCode))
	obs := Observation{Status: resp.StatusCode, Header: sentHeader(resp), Trace: at}
	raw := io.Reader(countingReader{r: resp.Body, n: &prog.received})
	max := o.req.MaxSize
	if max > 0 && resp.ContentLength > max {
		obs.Err = fmt.Errorf("%w: Content-Length %d > %d", ErrTooLarge, resp.ContentLength, max)
		obs.Latency = since()
		return obs
	}
	if max > 0 {
		raw = io.LimitReader(raw, max+1)
	}
	decodedOver := false
	switch {
	case o.keepBody:
		obs.Body, obs.BodyErr, err = o.readBody(raw, resp.Header.Get("Content-Encoding"))
	case max > 0:
		// --max-size bounds the body as fetch does, after decoding: a
		// small gzip of a big body is a big body.
		decodedOver, err = decodedOverLimit(raw, resp.Header.Get("Content-Encoding"), max)
	}
	if err == nil {
		// Read (the rest of) the body and drop it: the answer is whole
		// only once its body is, and --max-latency counts the body.
		_, err = io.Copy(io.Discard, raw)
	}
	obs.Received = prog.received.Load()
	obs.Latency = since()
	switch {
	case err != nil:
		obs.Err = noAnswer(&BodyCutError{Read: obs.Received, Total: resp.ContentLength, Err: err})
	case max > 0 && (obs.Received > max || decodedOver):
		obs.Err = fmt.Errorf("%w (%d bytes)", ErrTooLarge, max)
	case resp.StatusCode == http.StatusPartialContent && o.req.Header.Get("Range") == "":
		// Part of the body to a request for all of it is no whole answer,
		// as fetch judges it (wholeRange); a Range of the caller's own
		// asked for a part.
		whole, werr := wholeRange(resp)
		switch {
		case werr != nil:
			obs.Err = werr
		case obs.Received > whole:
			obs.Err = &OverrunError{Sent: obs.Received, Said: whole, ContentRange: resp.Header.Get("Content-Range")}
		case obs.Received < whole:
			obs.Err = noAnswer(&BodyCutError{Read: obs.Received, Total: whole, Err: io.ErrUnexpectedEOF})
		}
	}
	return obs
}

// readBody reads the body a body expectation looks at, decoding gzip, up
// to the bound. Past the bound, or in an encoding it cannot decode, it
// keeps nothing and says so (bodyErr); err is a failure to read.
func (o *observer) readBody(raw io.Reader, encoding string) (body []byte, bodyErr, err error) {
	src := raw
	switch enc := strings.ToLower(strings.TrimSpace(encoding)); enc {
	case "", "identity":
	case "gzip", "x-gzip":
		zr, zerr := gzip.NewReader(raw)
		if zerr != nil {
			if errors.Is(zerr, io.EOF) || errors.Is(zerr, gzip.ErrHeader) {
				return nil, &BodyLimitError{Encoding: "gzip", BadGzip: true}, nil
			}
			return nil, nil, zerr
		}
		defer zr.Close()
		src = zr
	default:
		return nil, &BodyLimitError{Encoding: enc}, nil
	}
	if o.bodyLimit > 0 {
		src = io.LimitReader(src, o.bodyLimit+1)
	}
	body, err = io.ReadAll(src)
	if err != nil {
		if errors.Is(err, gzip.ErrChecksum) || errors.Is(err, gzip.ErrHeader) {
			return nil, &BodyLimitError{Encoding: "gzip", BadGzip: true}, nil
		}
		return nil, nil, err
	}
	if o.bodyLimit > 0 && int64(len(body)) > o.bodyLimit {
		// Only the bound is held; the rest of the body is read and
		// dropped by the caller.
		return nil, &BodyLimitError{Limit: o.bodyLimit}, nil
	}
	return body, nil, nil
}

// decodedOverLimit reads a gzip body from raw (a body in no encoding it
// does not touch) and reports whether it decodes to more than max bytes,
// reading no further once it does; the caller drains the rest. A body
// that is not valid gzip is not judged here: with no body expectation,
// check does not look at its bytes. err is a failure to read raw.
func decodedOverLimit(raw io.Reader, encoding string, max int64) (over bool, err error) {
	if enc := strings.ToLower(strings.TrimSpace(encoding)); enc != "gzip" && enc != "x-gzip" {
		return false, nil
	}
	src := &errReader{r: raw}
	zr, zerr := gzip.NewReader(src)
	if zerr != nil {
		return false, src.err
	}
	defer zr.Close()
	if n, _ := io.Copy(io.Discard, io.LimitReader(zr, max+1)); n > max {
		return true, nil
	}
	return false, src.err
}

// errReader remembers the error other than io.EOF its reader returned:
// a decoder's own errors (not gzip) are told from the transport's.
type errReader struct {
	r   io.Reader
	err error
}

func (e *errReader) Read(p []byte) (int, error) {
	n, err := e.r.Read(p)
	if err != nil && err != io.EOF {
		e.err = err
	}
	return n, err
}

// sentHeader is the response header as the server sent it: net/http
// moves Transfer-Encoding and Trailer out of the header; they are put
// back, so that --expect-header sees what curl -I shows.
func sentHeader(resp *http.Response) http.Header {
	h := resp.Header.Clone()
	if h == nil {
		h = http.Header{}
	}
	if len(resp.TransferEncoding) > 0 && h.Get("Transfer-Encoding") == "" {
		h.Set("Transfer-Encoding", strings.Join(resp.TransferEncoding, ", "))
	}
	if len(resp.Trailer) > 0 && h.Get("Trailer") == "" {
		names := make([]string, 0, len(resp.Trailer))
		for k := range resp.Trailer {
			names = append(names, k)
		}
		slices.Sort(names)
		h.Set("Trailer", strings.Join(names, ", "))
	}
	return h
}

// reached says which address the attempt reached or tried, and whether a
// connection was had; safe while the attempt is in flight.
func (t *AttemptTrace) reached() (addr string, connected bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.RemoteAddr, t.last != nil || t.Happened[PhaseFirstByte]
}

// heartbeat tells onWaiting, every o.every, how far attempt n has got
// while it has no whole answer, so a long wait on a server that accepts
// and says nothing is not silent. It runs on real time: it only reports.
// The returned func stops it.
func (o *observer) heartbeat(n int, at *AttemptTrace, prog *progress) func() {
	if o.every <= 0 || o.onWaiting == nil {
		return func() {}
	}
	done := make(chan struct{})
	stopped := make(chan struct{})
	start := time.Now()
	go func() {
		defer close(stopped)
		t := time.NewTicker(o.every)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case now := <-t.C:
				addr, connected := at.reached()
				e := NoAnswerError{Addr: addr, Connected: connected, Status: int(prog.status.Load()), Received: prog.received.Load()}
				stage := e.stage()
				if e.Status != 0 {
					stage = fmt.Sprintf("status %d came, %s of the body so far", e.Status, FormatBytes(e.Received))
				}
				o.onWaiting(n, now.Sub(start), stage)
			}
		}
	}()
	return func() {
		close(done)
		<-stopped
	}
}
