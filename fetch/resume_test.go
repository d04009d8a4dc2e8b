package fetch

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/refetch/refetch/resilience"
)

func TestParseContentRange(t *testing.T) {
	for _, tc := range []struct {
		in                string
		start, end, total int64
		ok                bool
	}{
		{"bytes 5-9/10", 5, 9, 10, true},
		{"bytes 0-0/1", 0, 0, 1, true},
		{"BYTES 5-9/*", 5, 9, -1, true},
		{" bytes  5-9/10 ", 5, 9, 10, true},
		{"bytes 5-9/9", 0, 0, 0, false}, // total not past the end
		{"bytes 9-5/10", 0, 0, 0, false},
		{"bytes */10", 0, 0, 0, false},
		{"bytes -5-9/10", 0, 0, 0, false},
		{"items 5-9/10", 0, 0, 0, false},
		{"bytes 5-9", 0, 0, 0, false},
		{"", 0, 0, 0, false},
		{"bytes 5-x/10", 0, 0, 0, false},
	} {
		start, end, total, err := parseContentRange(tc.in)
		if (err == nil) != tc.ok || tc.ok && (start != tc.start || end != tc.end || total != tc.total) {
			t.Errorf("parseContentRange(%q) = %d %d %d %v", tc.in, start, end, total, err)
		}
	}
}

func TestStrongDate(t *testing.T) {
	lm := "Mon, 02 Jan 2006 15:04:05 GMT"
	for date, want := range map[string]bool{
		"Mon, 02 Jan 2006 15:04:06 GMT": true,
		"Tue, 03 Jan 2006 15:04:05 GMT": true,
		"Mon, 02 Jan 2006 15:04:05 GMT": false, // the same second: a change may hide in it
		"Mon, 02 Jan 2006 15:04:04 GMT": false,
		"":                              false,
		"yesterday":                     false,
	} {
		if got := strongDate(lm, date); got != want {
			t.Errorf("strongDate(%q, %q) = %v", lm, date, got)
		}
	}
	if strongDate("garbage", "Tue, 03 Jan 2006 15:04:05 GMT") {
		t.Error("an unparsable Last-Modified taken as strong")
	}
}

func TestGroupDigits(t *testing.T) {
	for n, want := range map[int64]string{0: "0", 999: "999", 1000: "1,000", 5900000: "5,900,000", -1234: "-1,234", 123456789: "123,456,789"} {
		if got := groupDigits(n); got != want {
			t.Errorf("groupDigits(%d) = %q, want %q", n, got, want)
		}
	}
}

// validators are the headers of a resumable first answer.
var validators = []string{"ETag", `"v1"`, "Accept-Ranges", "bytes"}

// partial replies 206 with body as the range of a total-byte body that
// starts at start, with header pairs kv. Unless kv gives an ETag (or
// "ETag", "" for none), it carries the ETag the request's If-Range
// named, as RFC 9110 asks and nginx does.
func partial(body string, start, total int64, kv ...string) reply {
	return func(req *http.Request) (*http.Response, error) {
		kv := append([]string{"Content-Range", "bytes " + itoa(start) + "-" + itoa(start+int64(len(body))-1) + "/" + itoa(total)}, kv...)
		if ir := req.Header.Get("If-Range"); strings.HasPrefix(ir, `"`) && !slices.Contains(kv, "ETag") {
			kv = append(kv, "ETag", ir)
		}
		return response(req, http.StatusPartialContent, strings.NewReader(body), int64(len(body)), kv...), nil
	}
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }

// cutWith replies 200 announcing total bytes with header pairs kv, sends
// sent, then fails.
func cutWith(sent string, total int64, kv ...string) reply {
	return func(req *http.Request) (*http.Response, error) {
		return response(req, 200, &cutReader{data: []byte(sent), err: io.ErrUnexpectedEOF}, total, kv...), nil
	}
}

func TestRunResumesCutBody(t *testing.T) {
	e := newRunEnv(t, 1<<20)
	cfg := e.config()
	cfg.Fallback = Fallback{Stale: e.cache}
	res, err := e.run(context.Background(), cfg,
		cutWith("hello", 10, validators...),
		partial("world", 5, 10, "ETag", `"v1"`))
	if err != nil {
		t.Fatal(err)
	}
	if e.out.String() != "helloworld" || res.Status != 200 || res.Size != 10 {
		t.Fatalf("served %q, status %d, size %d", e.out.String(), res.Status, res.Size)
	}
	req := e.script.reqs[1]
	if req.Header.Get("Range") != "bytes=5-" || req.Header.Get("If-Range") != `"v1"` || req.Header.Get("Accept-Encoding") != "identity" {
		t.Errorf("second request: Range %q If-Range %q Accept-Encoding %q", req.Header.Get("Range"), req.Header.Get("If-Range"), req.Header.Get("Accept-Encoding"))
	}
	if e.script.reqs[0].Header.Get("Range") != "" {
		t.Error("the first request asked for a range")
	}
	a1, a2 := res.Trace.Attempts[0].Detail.(*AttemptTrace), res.Trace.Attempts[1].Detail.(*AttemptTrace)
	if a1.Resumed || a1.BodyBytes != 5 || !a2.Resumed || a2.ResumedFrom != 5 || a2.BodyBytes != 5 {
		t.Errorf("traces: %+v / %+v", a1, a2)
	}
	var cut *BodyCutError
	if !errors.As(res.Trace.Attempts[0].Err, &cut) || cut.Resume != 5 || cut.Read != 5 || cut.Total != 10 || cut.Restart != "" {
		t.Errorf("attempt 1's error = %#v", res.Trace.Attempts[0].Err)
	}
	entry, _, _ := e.cache.Load(cfg.Request.staleKey(), 0, e.clock.Now())
	if entry == nil || string(entry.Body) != "helloworld" {
		t.Errorf("the stale cache holds %v", entry)
	}
	rt := NewReportTrace(a2)
	if rt.ResumedFrom == nil || *rt.ResumedFrom != 5 || rt.BodyBytes != 5 {
		t.Errorf("report trace = %+v", rt)
	}
}

// A last modification date a second before the answer's Date names the
// version when there is no strong ETag; a weak ETag is not used.
func TestRunResumesWithLastModified(t *testing.T) {
	e := newRunEnv(t, 1<<20)
	lm, date := "Mon, 02 Jan 2006 15:04:05 GMT", "Mon, 02 Jan 2006 16:00:00 GMT"
	_, err := e.run(context.Background(), e.config(),
		cutWith("hello", 10, "ETag", `W/"weak"`, "Last-Modified", lm, "Date", date),
		partial("world", 5, 10, "Last-Modified", lm))
	if err != nil || e.out.String() != "helloworld" {
		t.Fatalf("err %v, served %q", err, e.out.String())
	}
	if got := e.script.reqs[1].Header.Get("If-Range"); got != lm {
		t.Errorf("If-Range %q, want the Last-Modified", got)
	}
}

// A chunked first answer (no length) resumes too; the 206 tells the
// length.
func TestRunResumesUnsizedBody(t *testing.T) {
	e := newRunEnv(t, 1<<20)
	_, err := e.run(context.Background(), e.config(),
		cutWith("hello", -1, validators...),
		partial("world", 5, 10))
	if err != nil || e.out.String() != "helloworld" {
		t.Fatalf("err %v, served %q", err, e.out.String())
	}
}

// Every answer that does not continue the body makes the next attempt ask
// for the whole body: what is served is one whole answer, never a mix.
func TestRunResumeRefusedStartsOver(t *testing.T) {
	full := answer(200, "HELLOWORLD", validators...)
	for _, tc := range []struct {
		name   string
		second reply
		// restarts: the second answer is a whole body served as it is.
		restarts bool
		want     string
	}{
		{"a 200", answer(200, "HELLOWORLD", "ETag", `"v2"`), true, "another"},
		{"another start", partial("oworld", 4, 10), false, "starts at byte 4"},
		{"another total", partial("world", 5, 11), false, "body of 11 bytes"},
		{"no total", func(req *http.Request) (*http.Response, error) {
			return response(req, http.StatusPartialContent, strings.NewReader("world"), 5, "Content-Range", "bytes 5-9/*"), nil
		}, false, "does not say the body's length, which was 10 bytes"},
		{"ends early", partial("wor", 5, 10), false, "ends before the body does"},
		{"another ETag", partial("world", 5, 10, "ETag", `"v2"`), false, "another version"},
		{"another encoding", partial("world", 5, 10, "Content-Encoding", "br"), false, "another Content-Encoding"},
		{"multipart", partial("world", 5, 10, "Content-Type", "multipart/byteranges; boundary=x"), false, "several ranges"},
		{"no Content-Range", answer(206, "world"), false, "no usable Content-Range"},
		{"416", answer(416, "", "Content-Range", "bytes */4"), false, "cannot be served"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newRunEnv(t, 1<<20)
			replies := []reply{cutWith("hello", 10, validators...), tc.second}
			if !tc.restarts {
				replies = append(replies, full)
			}
			res, err := e.run(context.Background(), e.config(), replies...)
			if err != nil || e.out.String() != "HELLOWORLD" {
				t.Fatalf("err %v, served %q", err, e.out.String())
			}
			if !tc.restarts {
				var re *ResumeError
				if !errors.As(res.Trace.Attempts[1].Err, &re) || !strings.Contains(re.Error(), tc.want) {
					t.Errorf("attempt 2's error = %v, want one with %q", res.Trace.Attempts[1].Err, tc.want)
				}
				if got := e.script.reqs[2].Header.Get("Range"); got != "" {
					t.Errorf("attempt 3 asked for %q", got)
				}
				// The server answered: the breaker is not told it failed.
				a := res.Trace.Attempts[1]
				v := Classify("GET", resilience.Attempt{Status: a.Status, Err: a.Err}, e.config().Policy)
				if v.Breaker != resilience.Ignore || v.Kind != resilience.Retryable {
					t.Errorf("verdict of a refused resume = %+v", v)
				}
			} else if d := res.Trace.Attempts[1].Detail.(*AttemptTrace); d.Restart == "" || d.Resumed {
				t.Errorf("attempt 2's trace = %+v", d)
			}
		})
	}
}

// A range answer the sink cannot continue (the held bytes are gone) is
// refused like a mismatched one.
func TestRunResumeHeldShort(t *testing.T) {
	s := &BufferSink{}
	w, _ := s.Begin()
	w.Write([]byte("abc"))
	if _, err := s.Resume(4); err == nil {
		t.Error("Resume past the bytes held succeeded")
	}
}

// No range is asked for when resuming cannot be right or was not wanted.
func TestRunResumeNotAsked(t *testing.T) {
	for _, tc := range []struct {
		name  string
		first reply
		cfg   func(*Config)
		why   string
	}{
		{"no validator", cutWith("hello", 10), nil, "no ETag or Last-Modified"},
		{"weak ETag only", cutWith("hello", 10, "ETag", `W/"v1"`), nil, "only a weak ETag"},
		{"Last-Modified in the answer's second", cutWith("hello", 10, "Last-Modified", "Mon, 02 Jan 2006 15:04:05 GMT", "Date", "Mon, 02 Jan 2006 15:04:05 GMT"), nil, "its Last-Modified is not at least a second before its Date"},
		{"Last-Modified without a Date", cutWith("hello", 10, "Last-Modified", "Mon, 02 Jan 2006 15:04:05 GMT"), nil, "no Date to check its Last-Modified against"},
		{"Accept-Ranges: none", cutWith("hello", 10, "ETag", `"v1"`, "Accept-Ranges", "none"), nil, "Accept-Ranges: none"},
		{"decompressed", func(req *http.Request) (*http.Response, error) {
			r, _ := cutWith("hello", 10, validators...)(req)
			r.Uncompressed = true
			return r, nil
		}, nil, "decompressed"},
		{"--no-resume", cutWith("hello", 10, validators...), func(c *Config) { c.NoResume = true }, ""},
		{"POST", cutWith("hello", 10, validators...), func(c *Config) {
			c.Request.Method = http.MethodPost
			c.Request.Body = []byte("x")
			c.Policy.RetryUnsafe = true
		}, ""},
		{"the caller's own Range", cutWith("hello", 10, validators...), func(c *Config) { c.Request.Header.Set("Range", "bytes=0-") }, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newRunEnv(t, 1<<20)
			cfg := e.config()
			if tc.cfg != nil {
				tc.cfg(&cfg)
			}
			res, err := e.run(context.Background(), cfg, tc.first, answer(200, "HELLOWORLD"))
			if err != nil || e.out.String() != "HELLOWORLD" {
				t.Fatalf("err %v, served %q", err, e.out.String())
			}
			if got := e.script.reqs[1].Header.Get("Range"); got != "" && tc.name != "the caller's own Range" {
				t.Errorf("attempt 2 asked for %q", got)
			}
			if got := e.script.reqs[1].Header.Get("Range"); tc.name == "the caller's own Range" && got != "bytes=0-" {
				t.Errorf("attempt 2 sent Range %q, not the caller's", got)
			}
			var cut *BodyCutError
			if !errors.As(res.Trace.Attempts[0].Err, &cut) || cut.Resume != 0 || cut.Restart != tc.why && !strings.Contains(cut.Restart, tc.why) {
				t.Errorf("attempt 1's error = %#v", res.Trace.Attempts[0].Err)
			}
			if tc.why == "" && cut != nil && cut.Restart != "" {
				t.Errorf("a restart reason where resuming is off: %q", cut.Restart)
			}
		})
	}
}

// A streamed body (-N) is never resumed: its bytes are out already.
func TestRunResumeNotForStreams(t *testing.T) {
	e := newRunEnv(t, 1<<20)
	cfg := e.config()
	cfg.Sink = &StreamSink{Dst: &e.out}
	_, err := e.run(context.Background(), cfg, cutWith("hello", 10, validators...), answer(200, "HELLOWORLD"))
	if !errors.Is(err, ErrPartialStream) || e.script.calls() != 1 {
		t.Errorf("err %v after %d requests", err, e.script.calls())
	}
}

// --max-size bounds the whole body, across the attempts that brought it.
func TestRunResumeMaxSizeCountsTheWholeBody(t *testing.T) {
	e := newRunEnv(t, 1<<20)
	cfg := e.config()
	cfg.Request.MaxSize = 8
	_, err := e.run(context.Background(), cfg, cutWith("hello", -1, validators...), func(req *http.Request) (*http.Response, error) {
		return response(req, 206, strings.NewReader("world"), -1, "Content-Range", "bytes 5-9/10", "ETag", `"v1"`), nil
	})
	if !errors.Is(err, ErrTooLarge) || e.out.Len() != 0 {
		t.Errorf("err %v, served %q", err, e.out.String())
	}
	e = newRunEnv(t, 1<<20)
	cfg = e.config()
	cfg.Request.MaxSize = 8
	_, err = e.run(context.Background(), cfg, cutWith("hello", -1, validators...), partial("world", 5, 10))
	if !errors.Is(err, ErrTooLarge) {
		t.Errorf("announced: err %v", err)
	}
}

// Each sink continues a body in place: the bytes held stay, what followed
// them goes, and only Commit shows the body.
func TestSinksResume(t *testing.T) {
	big := bytes.Repeat([]byte("x"), SpillThreshold+10)
	for _, tc := range []struct {
		name string
		make func(t *testing.T, dir string) (Sink, func() []byte)
		body []byte
	}{
		{"buffer in memory", func(t *testing.T, dir string) (Sink, func() []byte) {
			var out bytes.Buffer
			return &BufferSink{Dst: &out}, out.Bytes
		}, []byte("hello world")},
		{"buffer spilled", func(t *testing.T, dir string) (Sink, func() []byte) {
			var out bytes.Buffer
			return &BufferSink{Dst: &out}, out.Bytes
		}, big},
		{"-o file", func(t *testing.T, dir string) (Sink, func() []byte) {
			path := filepath.Join(dir, "out")
			s, err := NewFileSink(context.Background(), path)
			if err != nil {
				t.Fatal(err)
			}
			return s, func() []byte { b, _ := os.ReadFile(path); return b }
		}, big},
		{"batch file, small", func(t *testing.T, dir string) (Sink, func() []byte) {
			path := filepath.Join(dir, "out")
			return NewGroupFileSink(path), func() []byte { return nil }
		}, []byte("hello world")},
		{"batch file, spilled", func(t *testing.T, dir string) (Sink, func() []byte) {
			path := filepath.Join(dir, "out")
			return NewGroupFileSink(path), func() []byte { return nil }
		}, big},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			s, shown := tc.make(t, dir)
			defer s.Close()
			w, err := s.Begin()
			if err != nil {
				t.Fatal(err)
			}
			cut := int64(len(tc.body)) - 7
			// Bytes past the point resumed from are dropped.
			w.Write(tc.body[:cut])
			w.Write([]byte("garbage"))
			r := s.(resumer)
			if _, err := r.Resume(int64(len(tc.body)) + 100); err == nil {
				t.Error("Resume past what is held succeeded")
			}
			w, err = r.Resume(cut)
			if err != nil {
				t.Fatal(err)
			}
			if len(shown()) != 0 {
				t.Fatal("the body showed before Commit")
			}
			w.Write(tc.body[cut:])
			if err := s.Commit(); err != nil {
				t.Fatal(err)
			}
			got := shown()
			if g, ok := s.(*GroupFileSink); ok {
				c := NewCommitter(context.Background())
				done := make(chan error, 1)
				c.Submit(g, func(err error) { done <- err })
				c.Close()
				if err := <-done; err != nil {
					t.Fatal(err)
				}
				got, _ = os.ReadFile(filepath.Join(dir, "out"))
			}
			if !bytes.Equal(got, tc.body) {
				t.Errorf("committed %d bytes, want the %d-byte body", len(got), len(tc.body))
			}
		})
	}
}

// A 206 to a request that asked for no range: the whole body is served;
// part of it fails the attempt, and the next one asks for all of it again.
func TestRunUnaskedPartialContent(t *testing.T) {
	e := newRunEnv(t, 1<<20)
	res, err := e.run(context.Background(), e.config(),
		partial("hello", 0, 10, validators...),
		answer(200, "helloworld"))
	if err != nil || e.out.String() != "helloworld" || res.Status != 200 {
		t.Fatalf("err %v, served %q, status %d", err, e.out.String(), res.Status)
	}
	var ue *UnaskedRangeError
	if !errors.As(res.Trace.Attempts[0].Err, &ue) || ue.Error() != "the server sent part of the body (bytes 0-4 of 10, 206) to a request for all of it" {
		t.Errorf("attempt 1's error = %v", res.Trace.Attempts[0].Err)
	}
	if e.script.reqs[1].Header.Get("Range") != "" {
		t.Error("the retry asked for a range")
	}

	// The whole body as a 206 is served; one that arrives short (no
	// Content-Length) is a cut body, resumed.
	e = newRunEnv(t, 1<<20)
	res, err = e.run(context.Background(), e.config(),
		func(req *http.Request) (*http.Response, error) {
			return response(req, http.StatusPartialContent, strings.NewReader("hello"), -1,
				append([]string{"Content-Range", "bytes 0-9/10"}, validators...)...), nil
		},
		partial("world", 5, 10, validators...))
	if err != nil || e.out.String() != "helloworld" {
		t.Fatalf("err %v, served %q", err, e.out.String())
	}
	var cut *BodyCutError
	if !errors.As(res.Trace.Attempts[0].Err, &cut) || cut.Resume != 5 || cut.Total != 10 {
		t.Errorf("attempt 1's error = %#v", res.Trace.Attempts[0].Err)
	}
}

func TestWholeRange(t *testing.T) {
	for _, tc := range []struct {
		cr, ctype string
		length    int64
		whole     int64
		err       string
	}{
		{"bytes 0-9/10", "", 10, 10, ""},
		{"bytes 0-9/10", "", -1, 10, ""},
		{"bytes 0-9/10", "", 5, 0, "with a Content-Length of 5"},
		{"bytes 0-4/10", "", 5, 0, "part of the body (bytes 0-4 of 10, 206)"},
		{"bytes 5-9/10", "", 5, 0, "part of the body (bytes 5-9 of 10, 206)"},
		{"bytes 0-9/*", "", 10, 0, "part of a body of unknown length"},
		{"", "", 10, 0, `no usable Content-Range ("")`},
		{"bytes 0-9/10", "multipart/byteranges; boundary=x", -1, 0, "several ranges of the body (206, multipart/byteranges)"},
	} {
		h := http.Header{}
		if tc.cr != "" {
			h.Set("Content-Range", tc.cr)
		}
		if tc.ctype != "" {
			h.Set("Content-Type", tc.ctype)
		}
		whole, err := wholeRange(&http.Response{StatusCode: 206, Header: h, ContentLength: tc.length})
		if whole != tc.whole || (err == nil) != (tc.err == "") || err != nil && !strings.Contains(err.Error(), tc.err) {
			t.Errorf("%q %q %d: %d %v, want %d %q", tc.cr, tc.ctype, tc.length, whole, err, tc.whole, tc.err)
		}
	}
}

// A HEAD answered 206 has no body to be part of: it is served as it is.
func TestRunUnaskedPartialContentHead(t *testing.T) {
	e := newRunEnv(t, 1<<20)
	cfg := e.config()
	cfg.Request.Method = http.MethodHead
	res, err := e.run(context.Background(), cfg, func(req *http.Request) (*http.Response, error) {
		return response(req, http.StatusPartialContent, strings.NewReader(""), 5, "Content-Range", "bytes 0-4/10"), nil
	})
	if err != nil || res.Status != http.StatusPartialContent {
		t.Fatalf("err %v, status %d", err, res.Status)
	}
}

// TestResumeMatchValidators: the rest is of the first answer's version
// only when it carries no ETag or Last-Modified other than the first
// answer's. A validator the first answer did not send counts as other
// (a tour found a Last-Modified-only body completed by a 206 with a new
// ETag and another version's bytes), and so does another Last-Modified
// beside a matching strong ETag, even one too close to its Date to be a
// validator itself. A 206 may leave both out.
func TestResumeMatchValidators(t *testing.T) {
	const (
		lm1  = "Tue, 01 Dec 2026 10:00:00 GMT"
		lm2  = "Tue, 01 Dec 2026 11:00:00 GMT"
		date = "Tue, 01 Dec 2026 12:00:00 GMT"
	)
	h := func(kv ...string) http.Header {
		out := http.Header{}
		for i := 0; i < len(kv); i += 2 {
			out.Set(kv[i], kv[i+1])
		}
		return out
	}
	for _, tc := range []struct {
		name        string
		first, rest http.Header
		want        string // "" when the rest continues the body
	}{
		{"same ETag", h("ETag", `"v1"`, "Date", date), h("ETag", `"v1"`), ""},
		{"ETag left out", h("ETag", `"v1"`, "Date", date), h(), `does not carry the first answer's ETag "v1"`},
		{"weak ETag left out", h("ETag", `W/"v1"`, "Last-Modified", lm1, "Date", date), h("Last-Modified", lm1), ""},
		{"ETag repeated, then another", h("ETag", `"v1"`, "Date", date), http.Header{"Etag": {`"v1"`, `"v2"`}}, "names more than one version (2 ETag"},
		{"Last-Modified repeated, then another", h("Last-Modified", lm1, "Date", date), http.Header{"Last-Modified": {lm1, lm2}}, "names more than one version (0 ETag and 2 Last-Modified"},
		{"another ETag", h("ETag", `"v1"`, "Date", date), h("ETag", `"v2"`), "another version (ETag"},
		{"same Last-Modified", h("Last-Modified", lm1, "Date", date), h("Last-Modified", lm1), ""},
		{"a new ETag", h("Last-Modified", lm1, "Date", date), h("Last-Modified", lm1, "ETag", `"new"`), `another version (ETag "new", first none)`},
		{"a new weak ETag", h("Last-Modified", lm1, "Date", date), h("Last-Modified", lm1, "ETag", `W/"new"`), "another version (ETag"},
		{"another Last-Modified beside the ETag", h("ETag", `"v1"`, "Last-Modified", lm1, "Date", date), h("ETag", `"v1"`, "Last-Modified", lm2), "another version (Last-Modified"},
		{"a new Last-Modified", h("ETag", `"v1"`, "Date", date), h("ETag", `"v1"`, "Last-Modified", lm2), "first none"},
		{"another weak Last-Modified", h("ETag", `"v1"`, "Last-Modified", date, "Date", date), h("ETag", `"v1"`, "Last-Modified", lm2), "another version (Last-Modified"},
		{"same weak Last-Modified", h("ETag", `"v1"`, "Last-Modified", date, "Date", date), h("ETag", `"v1"`, "Last-Modified", date), ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var s resumeState
			s.start(&http.Response{StatusCode: 200, Header: tc.first, ContentLength: 10})
			if s.why != "" {
				t.Fatalf("the first answer cannot be resumed: %s", s.why)
			}
			s.held = 5
			tc.rest.Set("Content-Range", "bytes 5-9/10")
			got := s.match(&http.Response{StatusCode: 206, Header: tc.rest, ContentLength: -1})
			if (tc.want == "") != (got == "") || !strings.Contains(got, tc.want) {
				t.Errorf("match = %q, want %q", got, tc.want)
			}
		})
	}
}

// TestRunRangeOverrun: a whole body sent as a 206, or a resumed rest,
// that runs past its Content-Range (no Content-Length bounds it) is no
// cut: nothing of it is kept, the error says the server sent more than it
// said, and the next attempt asks for all of it.
func TestRunRangeOverrun(t *testing.T) {
	long := func(req *http.Request) (*http.Response, error) {
		return response(req, http.StatusPartialContent, strings.NewReader("helloworld!!"), -1,
			append([]string{"Content-Range", "bytes 0-9/10"}, validators...)...), nil
	}
	e := newRunEnv(t, 1<<20)
	res, err := e.run(context.Background(), e.config(), long, answer(200, "helloworld"))
	if err != nil || e.out.String() != "helloworld" {
		t.Fatalf("err %v, served %q", err, e.out.String())
	}
	var oe *OverrunError
	if !errors.As(res.Trace.Attempts[0].Err, &oe) ||
		oe.Error() != "the body ran to 12 bytes, past the 10 its Content-Range (bytes 0-9/10) gives: the server sent more than it said, so none of it is kept" {
		t.Errorf("attempt 1's error = %v", res.Trace.Attempts[0].Err)
	}
	if e.script.reqs[1].Header.Get("Range") != "" {
		t.Error("the retry asked for a range, after a body that cannot be trusted")
	}

	// A resumed rest that runs long: the same, and the next attempt starts
	// over from byte 0.
	e = newRunEnv(t, 1<<20)
	res, err = e.run(context.Background(), e.config(),
		cutWith("hello", 10, validators...),
		func(req *http.Request) (*http.Response, error) {
			return response(req, http.StatusPartialContent, strings.NewReader("world and more"), -1,
				append([]string{"Content-Range", "bytes 5-9/10"}, validators...)...), nil
		},
		answer(200, "helloworld"))
	if err != nil || e.out.String() != "helloworld" {
		t.Fatalf("err %v, served %q", err, e.out.String())
	}
	if !errors.As(res.Trace.Attempts[1].Err, &oe) || oe.Sent != 19 || oe.Said != 10 {
		t.Errorf("attempt 2's error = %v", res.Trace.Attempts[1].Err)
	}
	if e.script.reqs[2].Header.Get("Range") != "" {
		t.Error("attempt 3 resumed after a rest that cannot be trusted")
	}
}
