package fetch

import (
	"fmt"
	"mime"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Resuming a cut body inside the retries.
//
// When an attempt's body is cut after some bytes (a reset, a timeout, a
// server that closed early, a body shorter than its Content-Length), the
// bytes received stay in the sink: the memory or temporary file the
// attempt wrote, never anything visible. The next attempt, under the
// retry loop's rules as any other, asks for the rest: Range: bytes=N-
// with If-Range naming the version it started with. Only an answer that
// provably continues that version is appended:
//
//   - 206 with one range (not multipart/byteranges) whose Content-Range
//     is bytes N-END/TOTAL, with END the last byte and TOTAL the length
//     of the first answer when that was known;
//   - the same Content-Encoding as the first answer, and no transparent
//     decompression (byte offsets count the bytes on the wire);
//   - no ETag or Last-Modified other than the first answer's: one the
//     first answer did not send at all counts as other, weak or strong
//     (a 206 may leave them out).
//
// A 200 (a server that ignores Range, or a changed version under
// If-Range) is taken as a new body from byte 0: the partial bytes are
// dropped. A 206 that does not match and a 416 fail the attempt with a
// *ResumeError, retried as any cut body is, and the next attempt starts
// over. Any other status leaves the partial body for a later attempt.
//
// The version is named by the first answer's strong ETag, else by its
// Last-Modified when that is a strong validator (RFC 9110 8.8.2.2: at
// least a second before the answer's Date). A weak ETag cannot be used
// in If-Range; with neither, a cut body starts over. Only GET resumes
// (RFC 9110 14.2: range requests are defined for GET alone; a server
// must ignore Range on other methods, so a POST retried with
// --retry-unsafe or an Idempotency-Key starts over), and only when the
// caller sent no Range or If-Range of its own and the sink can continue
// a body (not -N, whose bytes are already out).

// ResumeError is the failure of an attempt that asked for the rest of a
// cut body and got an answer that does not continue it: a 206 for another
// range or version, or a 416. The next attempt starts over.
type ResumeError struct {
	From   int64  // the byte asked from
	Status int    // the answer's status
	Why    string // what did not match
}

func (e *ResumeError) Error() string {
	return fmt.Sprintf("the server's %d to the request for the rest of the body from byte %s %s; the next attempt starts over",
		e.Status, groupDigits(e.From), e.Why)
}

// UnaskedRangeError is the failure of an attempt that asked for the whole
// body (no Range of refetch's or the caller's) and got a 206 that is not
// the whole representation: part of the body, several ranges, or no
// usable Content-Range. Serving it would serve part of a body as the
// whole, so the attempt fails and is retried, and the next attempt asks
// for the whole body again.
type UnaskedRangeError struct {
	ContentRange string // the answer's Content-Range, "" if none
	Why          string // what the server sent, in words
}

func (e *UnaskedRangeError) Error() string {
	return "the server sent " + e.Why + " to a request for all of it"
}

// OverrunError is the failure of an attempt whose 206 (a resumed rest,
// or a whole body sent as a range) ran past the length its Content-Range
// gave: with no Content-Length to stop it, the server sent more than it
// said. Nothing of the body is kept; the next attempt asks for all of it.
type OverrunError struct {
	Sent, Said   int64 // the body's length with the bytes held before; its length by Content-Range
	ContentRange string
}

func (e *OverrunError) Error() string {
	return fmt.Sprintf("the body ran to %s bytes, past the %s its Content-Range (%s) gives: the server sent more than it said, so none of it is kept",
		groupDigits(e.Sent), groupDigits(e.Said), e.ContentRange)
}

// wholeRange judges resp, a 206 to a request that asked for no range: it
// returns the body's length when its one range is the whole body
// (bytes 0-(N-1)/N), else the error that fails the attempt.
func wholeRange(resp *http.Response) (int64, error) {
	h := resp.Header
	cr := h.Get("Content-Range")
	fail := func(why string) (int64, error) { return 0, &UnaskedRangeError{ContentRange: cr, Why: why} }
	if mt, _, _ := mime.ParseMediaType(h.Get("Content-Type")); strings.HasPrefix(mt, "multipart/") {
		return fail("several ranges of the body (206, " + mt + ")")
	}
	start, end, total, err := parseContentRange(cr)
	switch {
	case err != nil:
		return fail(fmt.Sprintf("a 206 with no usable Content-Range (%q)", cr))
	case total < 0:
		return fail(fmt.Sprintf("part of a body of unknown length (bytes %d-%d, 206)", start, end))
	case start != 0 || end != total-1:
		return fail(fmt.Sprintf("part of the body (bytes %d-%d of %d, 206)", start, end, total))
	case resp.ContentLength >= 0 && resp.ContentLength != total:
		return fail(fmt.Sprintf("a 206 of the whole body (Content-Range: %s) with a Content-Length of %d", cr, resp.ContentLength))
	}
	return total, nil
}

// resumeState is what a run knows of the body its sink holds: the answer
// that started it, and how much of it arrived.
type resumeState struct {
	on bool // resuming is possible for this run at all (canResume)

	held    int64 // bytes of the body in the sink, from byte 0
	total   int64 // the whole body's length, -1 unknown
	status  int   // the status of the answer that started the body
	header  http.Header
	etag    string // its strong ETag, "" if none
	lastMod string // its Last-Modified, when a strong validator
	// lastModLater: with a strong ETag, lastMod is judged when first read
	// (lastModified), not for every answer (two dates parsed).
	lastModLater bool
	encoding     string // its Content-Encoding
	// why says why the held bytes cannot be resumed ("" when they can).
	why string
}

// canResume reports whether a run may resume cut bodies: resuming not
// turned off, a GET, a sink that can continue a body, and no Range or
// If-Range the caller set (their own partial request is theirs).
func (f *fetcher) canResume() bool {
	r := f.cfg.Request
	if f.cfg.NoResume || r.Method != http.MethodGet || r.Header.Get("Range") != "" || r.Header.Get("If-Range") != "" {
		return false
	}
	_, ok := f.cfg.Sink.(resumer)
	return ok && !f.cfg.Sink.Streams()
}

// pending is the byte the next attempt asks from, 0 for none.
func (s *resumeState) pending() int64 {
	if s.on && s.why == "" {
		return s.held
	}
	return 0
}

// start records the answer resp, which starts a body from byte 0.
func (s *resumeState) start(resp *http.Response) {
	s.held, s.total, s.status, s.header = 0, resp.ContentLength, resp.StatusCode, resp.Header
	s.etag, s.lastMod, s.encoding, s.why = "", "", resp.Header.Get("Content-Encoding"), ""
	if et := resp.Header.Get("ETag"); et != "" && !strings.HasPrefix(et, "W/") {
		s.etag = et
	}
	s.lastModLater = s.etag != ""
	if lm := resp.Header.Get("Last-Modified"); !s.lastModLater && lm != "" && strongDate(lm, resp.Header.Get("Date")) {
		s.lastMod = lm
	}
	switch {
	case resp.Uncompressed:
		s.why = "the body came compressed and was decompressed on the way, so its byte offsets are not the server's"
	case s.etag == "" && s.lastMod == "" && resp.Header.Get("ETag") != "":
		s.why = "the server sent only a weak ETag, which cannot make sure the rest is of the same version"
	case s.etag == "" && s.lastMod == "" && resp.Header.Get("Last-Modified") != "" && resp.Header.Get("Date") == "":
		s.why = "the server sent no ETag, and no Date to check its Last-Modified against, so it cannot prove the rest is of the same version"
	case s.etag == "" && s.lastMod == "" && resp.Header.Get("Last-Modified") != "":
		s.why = "the server sent no ETag, and its Last-Modified is not at least a second before its Date, so it cannot prove the rest is of the same version"
	case s.etag == "" && s.lastMod == "":
		s.why = "the server sent no ETag or Last-Modified to make sure the rest is of the same version"
	case strings.EqualFold(resp.Header.Get("Accept-Ranges"), "none"):
		s.why = "the server does not serve ranges (Accept-Ranges: none)"
	}
}

// lastModified is the held body's Last-Modified when it is a strong
// validator, "" when not.
func (s *resumeState) lastModified() string {
	if s.lastModLater {
		s.lastModLater = false
		if lm := s.header.Get("Last-Modified"); lm != "" && strongDate(lm, s.header.Get("Date")) {
			s.lastMod = lm
		}
	}
	return s.lastMod
}

// strongDate reports whether a Last-Modified value is a strong validator:
// it and Date parse and Date is at least a second later (RFC 9110
// 8.8.2.2), so no second change can hide in the same second.
func strongDate(lastMod, date string) bool {
	lm, err := http.ParseTime(lastMod)
	if err != nil {
		return false
	}
	d, err := http.ParseTime(date)
	return err == nil && d.Sub(lm) >= time.Second
}

// cut records that the body ended early with held bytes in the sink, and
// tells the cut what the next attempt will do.
func (s *resumeState) cut(held int64, c *BodyCutError) {
	s.held = held
	c.Read = held
	if s.total >= 0 {
		c.Total = s.total
	}
	if !s.on || held == 0 {
		return
	}
	c.Resume, c.Restart = s.pending(), s.why
}

// newVersion reports whether resp, a whole body sent instead of the rest,
// names another version than the held body's.
func (s *resumeState) newVersion(resp *http.Response) bool {
	if s.etag != "" {
		return resp.Header.Get("ETag") != s.etag
	}
	return s.lastModified() != "" && resp.Header.Get("Last-Modified") != s.lastModified()
}

// drop forgets the held bytes: the next attempt starts over.
func (s *resumeState) drop() { s.held, s.why = 0, "" }

// ask makes req ask for the rest of the body from byte s.held of the same
// version.
func (s *resumeState) ask(req *http.Request) {
	req.Header.Set("Range", "bytes="+strconv.FormatInt(s.held, 10)+"-")
	if s.etag != "" {
		req.Header.Set("If-Range", s.etag)
	} else {
		req.Header.Set("If-Range", s.lastModified())
	}
	if s.encoding == "" && req.Header.Get("Accept-Encoding") == "" {
		// The first answer came as it is: ask for the rest the same way,
		// not gzipped (net/http would offer gzip and undo it, and the
		// offsets would count other bytes).
		req.Header.Set("Accept-Encoding", "identity")
	}
}

// match checks that resp, the 206 answer to ask, continues the held body;
// it returns what does not match, "" when it does.
func (s *resumeState) match(resp *http.Response) string {
	h := resp.Header
	if mt, _, _ := mime.ParseMediaType(h.Get("Content-Type")); strings.HasPrefix(mt, "multipart/") {
		return "holds several ranges (" + mt + ")"
	}
	start, end, total, err := parseContentRange(h.Get("Content-Range"))
	switch {
	case err != nil:
		return err.Error()
	case start != s.held:
		return fmt.Sprintf("starts at byte %s (Content-Range: %s)", groupDigits(start), h.Get("Content-Range"))
	case s.total >= 0 && total != s.total:
		if total < 0 {
			return fmt.Sprintf("does not say the body's length, which was %s bytes (Content-Range: %s)", groupDigits(s.total), h.Get("Content-Range"))
		}
		return fmt.Sprintf("is of a body of %s bytes, not %s (Content-Range: %s)", groupDigits(total), groupDigits(s.total), h.Get("Content-Range"))
	case total >= 0 && end != total-1:
		return fmt.Sprintf("ends before the body does (Content-Range: %s)", h.Get("Content-Range"))
	case resp.ContentLength >= 0 && resp.ContentLength != end-start+1:
		return fmt.Sprintf("has a Content-Length of %d for a range of %d bytes", resp.ContentLength, end-start+1)
	case resp.Uncompressed || h.Get("Content-Encoding") != s.encoding:
		return fmt.Sprintf("has another Content-Encoding (%q, first %q)", h.Get("Content-Encoding"), s.encoding)
	case len(h.Values("ETag")) > 1 || len(h.Values("Last-Modified")) > 1:
		// Two validators name two versions at most one of which is the
		// held body's (a tour's 206 repeated the first ETag and added
		// another: only the first field had been compared).
		return fmt.Sprintf("names more than one version (%d ETag and %d Last-Modified fields)", len(h.Values("ETag")), len(h.Values("Last-Modified")))
	case h.Get("ETag") == "" && s.etag != "":
		// RFC 9110 15.3.7: a 206 carries the ETag a 200 would. One
		// without it says nothing of its version, and a server that
		// ignored If-Range sends another version's bytes exactly so.
		return fmt.Sprintf("does not carry the first answer's ETag %s, so nothing says it is of the same version", s.etag)
	case h.Get("ETag") != "" && h.Get("ETag") != s.header.Get("ETag"):
		// Any validator the first answer did not have, weak or strong,
		// names another version: If-Range matched only the one it named.
		return fmt.Sprintf("is of another version (ETag %s, first %s)", h.Get("ETag"), orNone(s.header.Get("ETag")))
	case h.Get("Last-Modified") != "" && h.Get("Last-Modified") != s.header.Get("Last-Modified"):
		return fmt.Sprintf("is of another version (Last-Modified %s, first %s)", h.Get("Last-Modified"), orNone(s.header.Get("Last-Modified")))
	case s.total < 0 && total < 0:
		return "does not say the body's length (Content-Range: " + h.Get("Content-Range") + ")"
	}
	if s.total < 0 {
		s.total = total
	}
	return ""
}

// orNone is v, or "none" when the header was not sent.
func orNone(v string) string {
	if v == "" {
		return "none"
	}
	return v
}

// parseContentRange parses a Content-Range of one byte range,
// "bytes START-END/TOTAL", TOTAL -1 for "*".
func parseContentRange(v string) (start, end, total int64, err error) {
	bad := func() (int64, int64, int64, error) {
		return 0, 0, 0, fmt.Errorf("has no usable Content-Range (%q)", v)
	}
	unit, rest, ok := strings.Cut(strings.TrimSpace(v), " ")
	if !ok || !strings.EqualFold(unit, "bytes") {
		return bad()
	}
	rng, size, ok := strings.Cut(strings.TrimSpace(rest), "/")
	if !ok {
		return bad()
	}
	first, last, ok := strings.Cut(rng, "-")
	if !ok {
		return bad()
	}
	if start, err = strconv.ParseInt(first, 10, 64); err != nil || start < 0 {
		return bad()
	}
	if end, err = strconv.ParseInt(last, 10, 64); err != nil || end < start {
		return bad()
	}
	total = -1
	if size != "*" {
		if total, err = strconv.ParseInt(size, 10, 64); err != nil || total <= end {
			return bad()
		}
	}
	return start, end, total, nil
}

// groupDigits writes n with thousands separators: 5,900,000.
func groupDigits(n int64) string {
	s := strconv.FormatInt(n, 10)
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	var b strings.Builder
	if neg {
		b.WriteByte('-')
	}
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	return b.String()
}

// GroupDigits is groupDigits for the command layer's messages.
func GroupDigits(n int64) string { return groupDigits(n) }
