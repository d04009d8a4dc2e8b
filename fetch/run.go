package fetch

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/refetch/refetch/resilience"
)

// Source says where served data came from.
type Source string

// Sources of served data.
const (
	SourceNetwork  Source = "network"
	SourceStale    Source = "stale"
	SourceFallback Source = "fallback"
	SourceNone     Source = "none"
)

// Hooks observe a run; nil fields are skipped. They are how the command
// layer logs: this package never prints.
type Hooks struct {
	OnRequest  func(n int, req *http.Request)
	OnResponse func(n int, resp *http.Response)
	OnRetry    func(resilience.RetryInfo)
	// OnHold is called before waiting out a hold on the key.
	OnHold func(resilience.HoldInfo)
	// OnRateWait is called before waiting for a rate slot (--rate).
	OnRateWait func(resilience.RateWaitInfo)
	// OnBody, if set, is called when a successful body starts, with its
	// length (-1 if unknown); the Progress it returns sees every chunk.
	OnBody func(total int64) Progress
	// OnRedirect is called for each redirect of attempt n (trace.go).
	OnRedirect func(n int, hop Hop)
	// OnTrace is called when attempt n has ended, with where its time went.
	OnTrace func(n int, t *AttemptTrace)
	// OnHedge is called when attempt n sends a hedge, or cannot (hedge.go).
	OnHedge func(n int, h HedgeInfo)
}

// Progress observes a body as it is copied.
type Progress interface {
	Add(n int)
	// Done ends the display, whether the body was complete or not.
	Done()
}

// Fallback configures what is served when the fetch fails.
type Fallback struct {
	// Stale, if set, saves successful GET bodies and serves one no older
	// than StaleFor (0: any age) when the fetch fails.
	Stale    *resilience.StaleCache
	StaleFor time.Duration
	// Data is served when nothing fresher can be; nil means no fallback.
	Data []byte
}

// Config is everything one run needs.
type Config struct {
	Request *Request
	// Client defaults to NewClient(Request).
	Client  *http.Client
	Policy  resilience.Policy
	Breaker *resilience.Breaker
	// Limits are the run's rate and retry budget; nil for none.
	Limits   *resilience.Limits
	Sink     Sink
	Fallback Fallback
	Hooks    Hooks
	Clock    resilience.Clock
	NewTimer func() resilience.Timer
	// NoHoldWait: a key found held before the first attempt ends the run
	// at once with the *resilience.HoldError (see
	// resilience.Executor.NoHoldWait) instead of waiting; default false.
	NoHoldWait bool
	// Buffer, if not empty, is the buffer bodies are copied through, so
	// that a caller running many fetches (a batch's workers) reuses one;
	// empty: each run allocates its own (256 KiB, 64 KiB into a stream).
	Buffer []byte
	// Splice lets a large plain-HTTP body move from its socket to its file
	// with splice(2) (Linux; see splicer), which leaves that connection
	// closed instead of kept alive. Default false: set it when nothing
	// else will use the client's connections (a single fetch), not for a
	// batch's shared client, whose next request to the host would pay a
	// new connection.
	Splice bool
	// Hedge, if set, hedges each attempt (hedge.go); the caller decides
	// that the request is safe to repeat.
	Hedge *Hedge
	// NoResume turns off resuming a cut body (resume.go): every retry
	// asks for the whole body again.
	NoResume bool
}

// Result is what a run did. When stale or fallback data was served, Err
// still says why the fetch failed.
type Result struct {
	Trace  *resilience.Trace
	Status int // status of the last response, 0 if none
	Header http.Header
	Source Source
	Err    error
	// StaleAge is the age of served stale data.
	StaleAge time.Duration
	// StaleSkipped says why a saved stale copy was not served (unreadable,
	// corrupt, or it could not be written), nil if none was skipped.
	StaleSkipped error
	// CacheErr is a failure to save a good body to the stale cache; the
	// fetch itself succeeded.
	CacheErr error
	// Size is the number of bytes served.
	Size int64
	// Hedge is what the report says of the run's hedging, set by the
	// caller that configured it; nil without.
	Hedge *ReportHedge
}

// Run fetches cfg.Request through Fallback(Retry(Breaker(attempt))) and
// commits what it serves to cfg.Sink. The error is nil when anything was
// served (fresh, stale or fallback); otherwise it is the run's error, or an
// ErrOutput error when what was to be served could not be written (then
// Result.Err still holds the run's own error, if any).
func Run(ctx context.Context, cfg Config) (*Result, error) {
	client := cfg.Client
	if client == nil {
		var err error
		if client, err = NewClient(cfg.Request); err != nil {
			return nil, err
		}
	}
	// Large reads suit files; a stream into a pipe flows best in chunks near
	// the pipe's own 64 KiB (measured: bench/run.sh).
	bufSize := 256 << 10
	if cfg.Sink.Streams() {
		bufSize = 64 << 10
	}
	// Without a buffer of the caller's, copyBody makes one to the size of
	// the body it copies, up to bufSize: 256 KiB is most of what a run of
	// a small answer would allocate and fault in.
	buf := cfg.Buffer
	// An unsafe method with an Idempotency-Key is retried, and its hedges
	// judged, like --retry-unsafe's (resilience.RepeatOptIn, --hedge's
	// rule too).
	cfg.Policy.RetryUnsafe = resilience.RepeatOptIn(cfg.Request.Header, cfg.Policy.RetryUnsafe)
	f := &fetcher{cfg: cfg, client: client, buf: buf, bufSize: bufSize, book: &addrBook{}}
	f.rs.on = f.canResume()
	ctx = withAddrBook(ctx, f.book)
	if cfg.Hedge != nil {
		f.hedgeClient = newHedgeClient(client)
		defer f.hedgeClient.CloseIdleConnections()
	}
	stale := cfg.Fallback.Stale
	cacheable := stale != nil && cfg.Request.Method == http.MethodGet
	if cacheable {
		f.capture = &captureWriter{limit: stale.MaxBytes()}
	}
	key := cfg.Request.staleKey()
	ex := &resilience.Executor{Policy: cfg.Policy, Classify: Classify, Breaker: cfg.Breaker, Clock: cfg.Clock,
		NewTimer: cfg.NewTimer, OnRetry: cfg.Hooks.OnRetry, OnHold: cfg.Hooks.OnHold, NoHoldWait: cfg.NoHoldWait,
		Limits: cfg.Limits, OnRateWait: cfg.Hooks.OnRateWait}
	tr, err := ex.Run(ctx, cfg.Request.Method, f.attempt)
	var re *resilience.RunError
	if errors.Is(err, ErrOutput) && errors.As(err, &re) && re.Last != nil {
		// A local write failure is not the server's: say what failed, not
		// that a request "failed, not retryable".
		err = re.Last
	}
	res := &Result{Trace: tr, Status: f.status, Header: f.header, Source: SourceNone, Err: err}
	if err == nil {
		if err := cfg.Sink.Commit(); err != nil {
			res.Err = err
			return res, err
		}
		res.Source, res.Size = SourceNetwork, f.size
		switch {
		case cacheable && f.capture.ok():
			// A cache that cannot be written must not fail a good fetch.
			if err := stale.Save(key, f.status, f.header.Get("Content-Type"), f.capture.buf.Bytes(), clockNow(cfg.Clock)); err != nil {
				res.CacheErr = fmt.Errorf("stale cache not saved: %w", err)
			}
		case cacheable:
			// Too large to keep: drop an older copy so it is never served
			// in place of this newer answer.
			stale.Forget(key)
		}
		return res, nil
	}
	if !fallbackApplies(err) {
		return res, err
	}
	if stale != nil {
		entry, age, lerr := stale.Load(key, cfg.Fallback.StaleFor, clockNow(cfg.Clock))
		switch {
		case lerr != nil:
			res.StaleSkipped = lerr
		case entry != nil:
			if serr := serve(cfg.Sink, entry.Body); serr != nil {
				return res, serveError("the stale copy", serr, err)
			}
			res.Source, res.StaleAge, res.Size = SourceStale, age, int64(len(entry.Body))
			return res, nil
		}
	}
	if cfg.Fallback.Data != nil {
		if serr := serve(cfg.Sink, cfg.Fallback.Data); serr != nil {
			return res, serveError("the fallback", serr, err)
		}
		res.Source, res.Size = SourceFallback, int64(len(cfg.Fallback.Data))
		return res, nil
	}
	return res, err
}

// serveError is the error of a run whose stale copy or fallback could not
// be written: a local failure (exit 1), which also says why the fetch
// needed it.
func serveError(what string, serr, runErr error) error {
	if !errors.Is(serr, ErrOutput) {
		serr = markAs(ErrOutput, serr)
	}
	return &serveFailure{what: what, err: serr, runErr: runErr}
}

// serveFailure is serveError's error, said when asked (see markAs).
type serveFailure struct {
	what        string
	err, runErr error
}

func (e *serveFailure) Error() string {
	return "cannot serve " + e.what + ": " + e.err.Error() + " (the fetch had failed: " + e.runErr.Error() + ")"
}
func (e *serveFailure) Unwrap() error { return e.err }

// fallbackApplies reports whether a failure may be answered by stale or
// fallback data: every failure class of the run does, but not
// interruptions, local output failures, or a body already partly streamed
// (-N), which a fallback appended to would only corrupt further.
func fallbackApplies(err error) bool {
	var re *resilience.RunError
	return errors.As(err, &re) && !errors.Is(err, ErrOutput) && !errors.Is(err, ErrPartialStream)
}

func serve(s Sink, data []byte) error {
	w, err := s.Begin()
	if err != nil {
		return markAs(ErrOutput, err)
	}
	if _, err := w.Write(data); err != nil {
		return markAs(ErrOutput, err)
	}
	return s.Commit()
}

func clockNow(c resilience.Clock) time.Time {
	if c == nil {
		return time.Now()
	}
	return c.Now()
}

type fetcher struct {
	cfg    Config
	client *http.Client
	// buf is the copy buffer: the caller's, or made by copyBody up to
	// bufSize.
	buf     []byte
	bufSize int
	capture *captureWriter
	// book is the addresses the run has dialed (dial.go); hedgeClient
	// sends hedges on new connections (hedge.go).
	book        *addrBook
	hedgeClient *http.Client

	status int
	header http.Header
	size   int64

	rs   resumeState // the body the sink holds, for resuming it
	from int64       // where the body of the current attempt starts
	// startedOver says why the current attempt, which asked for the rest,
	// got a whole body instead ("" when it did not).
	startedOver string
}

// attempt sends the request once and, on a 2xx, streams the body into the
// sink. Other bodies are drained (bounded) so the connection can be reused.
// After a cut body it asks for the rest instead (resume.go).
func (f *fetcher) attempt(ctx context.Context, n int) resilience.Attempt {
	from := f.rs.pending()
	f.startedOver = ""
	var mods []func(*http.Request)
	if from > 0 {
		mods = append(mods, f.rs.ask)
	}
	resp, at, finish, err := f.send(ctx, n, mods...)
	defer finish()
	if f.book.several() {
		at.setSeveral()
	}
	if err != nil {
		return resilience.Attempt{Err: f.addrError(at, err), Detail: at}
	}
	defer resp.Body.Close()
	f.status, f.header = resp.StatusCode, resp.Header
	a := resilience.Attempt{Status: resp.StatusCode, StatusText: statusText(resp), Header: resp.Header, Detail: at}
	resumed := false
	if from > 0 {
		var why string
		resumed, why = f.resumeAnswer(resp, at, from)
		if why != "" {
			_, _ = io.CopyN(io.Discard, resp.Body, 64<<10)
			a.Err = &ResumeError{From: from, Status: resp.StatusCode, Why: why}
			return a
		}
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		_, _ = io.CopyN(io.Discard, resp.Body, 64<<10)
		return a
	}
	// whole is the length a 206 that refetch did not ask for says the
	// whole body has (-1: not such an answer). A HEAD has no body to
	// hold part of.
	whole := int64(-1)
	if !resumed && resp.StatusCode == http.StatusPartialContent && f.cfg.Request.Header.Get("Range") == "" &&
		f.cfg.Request.Method != http.MethodHead {
		if whole, err = wholeRange(resp); err != nil {
			_, _ = io.CopyN(io.Discard, resp.Body, 64<<10)
			a.Err = err
			return a
		}
	}
	if !resumed {
		from = 0
	}
	max := f.cfg.Request.MaxSize
	if max > 0 && from+resp.ContentLength > max {
		a.Err = fmt.Errorf("%w: Content-Length %d > %d", ErrTooLarge, from+resp.ContentLength, max)
		return a
	}
	var w io.Writer
	if resumed {
		if w, err = f.cfg.Sink.(resumer).Resume(from); err != nil {
			f.rs.drop()
			a.Err = &ResumeError{From: from, Status: resp.StatusCode, Why: "could not be added to the bytes held: " + err.Error()}
			return a
		}
		at.Resumed, at.ResumedFrom = true, from
	} else {
		if w, err = f.cfg.Sink.Begin(); err != nil {
			a.Err = markAs(errOutput, err)
			return a
		}
		if e, ok := f.cfg.Sink.(expecter); ok {
			e.Expect(resp.ContentLength)
		}
		f.rs.start(resp)
		if whole >= 0 {
			f.rs.total = whole
		}
	}
	f.from = from
	total := resp.ContentLength
	if resumed || whole >= 0 {
		total = f.rs.total
	}
	if f.capture != nil {
		if resumed {
			f.capture.keep(from)
		} else {
			f.capture.reset()
		}
		if from+resp.ContentLength > f.capture.limit {
			// Too large for the stale cache whatever comes: the body need
			// not pass through it (and may be spliced).
			f.capture.overflow = true
		} else {
			w = io.MultiWriter(w, f.capture)
		}
	}
	var progress Progress
	if h := f.cfg.Hooks.OnBody; h != nil {
		progress = h(total)
		defer progress.Done()
		for held := from; held > 0; held -= min(held, 1<<30) {
			progress.Add(int(min(held, 1<<30))) // an int may be 32 bits
		}
	}
	var sp splicer
	if f.cfg.Splice && resp.ContentLength > spliceMin && resp.ProtoMajor == 1 && !resp.Uncompressed && !spliceRefused.Load() {
		sp, _ = at.conn().(splicer)
	}
	var k int64
	k, a.Err = f.copyBody(ctx, w, resp.Body, max, resp.ContentLength, progress, sp)
	f.size, at.BodyBytes = from+k, k
	if a.Err == nil && (resumed || whole >= 0) && total >= 0 && f.size > total {
		// A resumed body, or a whole 206, that ran past its Content-Range
		// (no Content-Length bounded it): none of it can be trusted.
		f.rs.drop()
		a.Err = &OverrunError{Sent: f.size, Said: total, ContentRange: resp.Header.Get("Content-Range")}
		return a
	}
	if a.Err == nil && (resumed || whole >= 0) && total >= 0 && f.size != total {
		// A resumed body, or a whole 206, that ended cleanly short of its
		// Content-Range.
		a.Err = &BodyCutError{Read: k, Total: total, Err: io.ErrUnexpectedEOF}
	}
	var cut *BodyCutError
	if errors.As(a.Err, &cut) && !cut.Streamed {
		f.rs.cut(f.size, cut)
		cut.From, cut.StartedOver = from, f.startedOver
	}
	if a.Err == nil && resumed {
		// The body served is the whole of the first answer's.
		f.status, f.header = f.rs.status, f.rs.header
	}
	return a
}

// send sends attempt n: hedged when the run hedges, else once. finish
// ends what the attempt holds once its body is closed.
func (f *fetcher) send(ctx context.Context, n int, mods ...func(*http.Request)) (*http.Response, *AttemptTrace, func(), error) {
	if f.hedgeable() {
		resp, at, finish, err := f.sendHedged(ctx, n, mods...)
		if err != nil && resp != nil {
			// Every copy failed, the last with a response: the attempt's
			// outcome is that response.
			err = nil
		}
		return resp, at, finish, err
	}
	at := new(AttemptTrace)
	resp, err := f.cfg.Request.send(withTrace(ctx, at), f.client, n, f.cfg.Hooks, mods...)
	return resp, at, func() {}, err
}

// addrError names the server address of a failed attempt when the host
// has several (AddrError), and makes the run's next dial avoid it.
func (f *fetcher) addrError(at *AttemptTrace, err error) error {
	addr := at.remoteAddr()
	if addr == "" {
		return err
	}
	f.book.markAddr(addr)
	var all *AllAddrsError
	if !f.book.several() || errors.As(err, &all) {
		return err // one address, or every one named already
	}
	return &AddrError{Addr: addr, Err: err}
}

// resumeAnswer judges resp, the answer to a request for the rest of the
// body from byte from: resumed when it is a 206 that continues the held
// body; why (the attempt fails, the next one starts over) for a 206 that
// does not, or a 416. Another 2xx is a whole body that starts over (its
// reason goes into at); any other status leaves the held bytes for a
// later attempt.
func (f *fetcher) resumeAnswer(resp *http.Response, at *AttemptTrace, from int64) (resumed bool, why string) {
	switch {
	case resp.StatusCode == http.StatusPartialContent:
		if why = f.rs.match(resp); why != "" {
			f.rs.drop()
			return false, why
		}
		return true, ""
	case resp.StatusCode == http.StatusRequestedRangeNotSatisfiable:
		f.rs.drop()
		return false, "says the range cannot be served"
	case resp.StatusCode >= 200 && resp.StatusCode <= 299:
		f.startedOver = "the server sent the whole body again instead of the rest"
		if f.rs.newVersion(resp) {
			f.startedOver = "the server sent a new version"
		}
		f.rs.drop()
		at.Restart = fmt.Sprintf("the server sent the whole body (%d) instead of the rest from byte %s: the resource changed, or the server ignores Range; starting over",
			resp.StatusCode, groupDigits(from))
	}
	return false, ""
}

// copyBody copies src to dst, telling read failures (the server's) from
// write failures (ours) and enforcing max (0: none). With sp (the body's
// connection, when it can splice) and a dst that is a file underneath
// (appender), it reads only until net/http's buffer is empty and moves
// the rest of the body, total bytes in all, from the socket to the file
// (spliceRest).
func (f *fetcher) copyBody(ctx context.Context, dst io.Writer, src io.Reader, max, total int64, progress Progress, sp splicer) (int64, error) {
	want := f.bufSize
	if total >= 0 && total < int64(want) {
		want = int(total) + 1 // room to see the end in one read
	}
	if len(f.buf) < want {
		f.buf = make([]byte, want)
	}
	var n int64
	app, _ := dst.(appender)
	if app == nil {
		sp = nil
	}
	read := src.Read
	if sp == nil && !f.cfg.Sink.Streams() && progress == nil {
		// Nothing shows the body before it is complete: full chunks (see
		// fillChunk).
		read = func(p []byte) (int, error) { return fillChunk(src, p) }
	}
	for {
		var k int
		var rerr error
		direct := false
		if sp != nil {
			k, direct, rerr = sp.readBody(src, f.buf)
		} else {
			k, rerr = read(f.buf)
		}
		if k > 0 {
			if max > 0 && f.from+n+int64(k) > max {
				return n, fmt.Errorf("%w (%d bytes)", ErrTooLarge, max)
			}
			if _, werr := dst.Write(f.buf[:k]); werr != nil {
				return n, markAs(errOutput, f.writeError(werr))
			}
			n += int64(k)
			if progress != nil {
				progress.Add(k)
			}
		}
		if rerr == io.EOF {
			return n, nil
		}
		if rerr != nil {
			return n, bodyReadError(rerr, n, total, f.cfg.Sink.Streams() && n > 0)
		}
		if direct && n < total {
			// Nothing of the body is left in net/http's buffer: the rest
			// goes from the socket to the file.
			m, handled, err := f.spliceRest(ctx, sp, app, n, total, progress)
			if handled {
				return n + m, err
			}
			sp = nil // no pipe to be had: read on the ordinary way
		}
	}
}

// StatusText is resp's status text, cut to maxStatusText bytes.
func StatusText(resp *http.Response) string { return statusText(resp) }

func statusText(resp *http.Response) string {
	return excerpt(strings.TrimSpace(strings.TrimPrefix(resp.Status, strconv.Itoa(resp.StatusCode))), maxStatusText)
}

// maxStatusText bounds a status text as refetch quotes it: a server's
// 200 KB status line was one 200 KB stderr line, and three copies in
// --json (a tour found it).
const maxStatusText = 200

// unwrapURLError drops net/http's "Get \"URL\": " prefix: the URL is
// already known, and messages stay short.
func unwrapURLError(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		err = ue.Err
	}
	if headersTooLarge(err) {
		return ErrHeadersTooLarge
	}
	if err == io.EOF || err == io.ErrUnexpectedEOF {
		// net/http's bare "EOF" means the server hung up before answering.
		return fmt.Errorf("server closed the connection without a response (%w)", err)
	}
	if c := resilience.ClassifyTransport(err); c == resilience.FailReset {
		// "read tcp 127.0.0.1:35080->127.0.0.1:18500: read: connection
		// reset by peer" says nothing a person can act on.
		return &wordedError{words: c.CutWords() + " before its response", err: err}
	}
	return err
}

// wordedError says err in words of its own; its class is err's.
type wordedError struct {
	words string
	err   error
}

func (e *wordedError) Error() string { return e.words }
func (e *wordedError) Unwrap() error { return e.err }

// captureWriter keeps a copy of the body for the stale cache, up to limit.
type captureWriter struct {
	limit    int64
	buf      bytes.Buffer
	overflow bool
}

func (c *captureWriter) reset() { c.buf.Reset(); c.overflow = false }

// keep drops what follows the first n bytes: a resumed body continues
// there.
func (c *captureWriter) keep(n int64) {
	if !c.overflow && int64(c.buf.Len()) >= n {
		c.buf.Truncate(int(n))
	} else {
		c.overflow = true
		c.buf.Reset()
	}
}

func (c *captureWriter) Write(p []byte) (int, error) {
	if !c.overflow && int64(c.buf.Len()+len(p)) <= c.limit {
		c.buf.Write(p)
	} else {
		c.overflow = true
		c.buf.Reset()
	}
	return len(p), nil
}

func (c *captureWriter) ok() bool { return !c.overflow }

// writeError says what a failed write of the body was writing, in the
// user's words: the -o file, or the body's copy in $TMPDIR, not a
// temporary file's name (".refetch-unnamed: file too large"). What a full
// disk or a file-size limit means is added where it is marked ErrOutput
// (kindError), as for every local write.
func (f *fetcher) writeError(err error) error {
	cause := unwrapPathError(err)
	path := ""
	switch s := f.cfg.Sink.(type) {
	case *FileSink:
		path = s.path
	case *GroupFileSink:
		path = s.path
	case *BufferSink:
		return fmt.Errorf("cannot keep the body until it is complete (in memory, then in $TMPDIR): %w", cause)
	default:
		return err
	}
	return &OutputError{Path: path, Err: fmt.Errorf("cannot write the body: %w", cause)}
}

// SpaceHint says what an error of a write that ran out of room means
// (" (the file system is full)"), "" for any other error.
func SpaceHint(err error) string { return spaceHint(err) }

// spaceHint says what an error of a write that ran out of room means.
func spaceHint(err error) string {
	switch {
	case errors.Is(err, syscall.ENOSPC):
		return " (the file system is full)"
	case errors.Is(err, syscall.EFBIG):
		return " (over the file-size limit, ulimit -f, or the file system's largest file)"
	case isQuota(err):
		return " (a disk quota is reached)"
	}
	return ""
}
