package e2e

import (
	"crypto/sha256"
	binenc "encoding/binary"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// Resuming a cut body inside the retries (fetch/resume.go) against the
// built binary: servers that cut a body, change it, ignore Range or answer
// a range they were not asked for.

// seededBody is a body of size bytes made from a seed, any part of which
// can be made without the rest: block k is ChaCha8 keyed by (seed, k).
// A 512 MiB body is never held in memory.
type seededBody struct {
	seed uint64
	size int64
}

const seededBlock = 64 << 10

// block fills p (seededBlock bytes) with block k.
func (b seededBody) block(k int64, p []byte) {
	var key [32]byte
	binenc.LittleEndian.PutUint64(key[:], b.seed)
	binenc.LittleEndian.PutUint64(key[8:], uint64(k))
	rand.NewChaCha8(key).Read(p)
}

// writeRange writes bytes [from, to) to w, in blocks, calling wrote with
// each count written; it stops at w's first error.
func (b seededBody) writeRange(w io.Writer, from, to int64, wrote func(int)) error {
	buf := make([]byte, seededBlock)
	for off := from; off < to; {
		k := off / seededBlock
		b.block(k, buf)
		chunk := buf[off-k*seededBlock : min(seededBlock, to-k*seededBlock)]
		n, err := w.Write(chunk)
		wrote(n)
		if err != nil {
			return err
		}
		off += int64(n)
	}
	return nil
}

// sum is the sha256 of the whole body.
func (b seededBody) sum() string {
	h := sha256.New()
	b.writeRange(h, 0, b.size, func(int) {})
	return hex.EncodeToString(h.Sum(nil))
}

// fileSum is the sha256 of a file's content.
func fileSum(t *testing.T, path string) string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(h.Sum(nil))
}

// rangeServer serves one seeded body at any path, with its validators,
// honouring Range and If-Range as a careful origin does unless told to
// misbehave. It cuts the connection (a TCP reset) once at each offset in
// cuts, counts the body bytes it writes, and records each request's Range
// and If-Range.
type rangeServer struct {
	*httptest.Server
	body     seededBody
	etag     string // "" for none
	lastMod  string // "" for none
	encoding string // Content-Encoding to claim, "" for none

	mu     sync.Mutex
	cuts   []int64 // absolute offsets still to cut at, ascending
	ranges []string
	ifs    []string
	// change, if set, is called before each request is answered, with
	// the request's number (1-based): it may change the body or the
	// validators (held under mu).
	change func(s *rangeServer, n int)
	// partial, if set, answers a range request instead of the usual 206
	// (a server that misbehaves); the body is written by the server.
	partial func(w http.ResponseWriter, start int64) (from int64)
	// lastModIsDate sends a Last-Modified equal to the answer's Date: not
	// a strong validator.
	lastModIsDate bool
	// ignoreRange answers every request with 200 and the whole body;
	// ignoreIfRange serves a range whatever its If-Range says.
	ignoreRange, ignoreIfRange bool
	// reset cuts with a TCP reset (RST) instead of a close (FIN). A reset
	// may drop what the client had not read yet, so the byte where it
	// cuts is not exact.
	reset bool
	// stall, if set, is closed to release requests that stall after
	// stallAfter bytes of a range answer (a signal test).
	stall      chan struct{}
	stallAfter int64
	stalled    atomic.Int64

	sent atomic.Int64 // body bytes written
}

// newRangeServer starts a rangeServer of body that cuts at cuts; setup,
// if not nil, sets it up before it serves (its fields are read unlocked).
func newRangeServer(t *testing.T, body seededBody, setup func(*rangeServer), cuts ...int64) *rangeServer {
	s := &rangeServer{body: body, etag: `"v1"`, lastMod: "Mon, 02 Jan 2006 15:04:05 GMT", cuts: cuts}
	if setup != nil {
		setup(s)
	}
	s.Server = httptest.NewServer(http.HandlerFunc(s.serve))
	t.Cleanup(func() {
		if s.stall != nil {
			close(s.stall)
		}
		s.Close()
	})
	return s
}

func (s *rangeServer) serve(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	s.ranges = append(s.ranges, r.Header.Get("Range"))
	s.ifs = append(s.ifs, r.Header.Get("If-Range"))
	if s.change != nil {
		s.change(s, len(s.ranges))
	}
	body, etag, lastMod, encoding := s.body, s.etag, s.lastMod, s.encoding
	s.mu.Unlock()
	h := w.Header()
	h.Set("Content-Type", "application/octet-stream")
	h.Set("Accept-Ranges", "bytes")
	h.Set("Date", time.Now().UTC().Format(http.TimeFormat))
	if s.lastModIsDate {
		lastMod = h.Get("Date")
	}
	if etag != "" {
		h.Set("ETag", etag)
	}
	if lastMod != "" {
		h.Set("Last-Modified", lastMod)
	}
	if encoding != "" {
		h.Set("Content-Encoding", encoding)
	}
	start := int64(0)
	if rg := r.Header.Get("Range"); rg != "" && !s.ignoreRange && (s.ignoreIfRange || s.ifRangeHolds(r.Header.Get("If-Range"), etag, lastMod)) {
		from, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimPrefix(rg, "bytes="), "-"), 10, 64)
		switch {
		case err != nil || from >= body.size:
			h.Set("Content-Range", fmt.Sprintf("bytes */%d", body.size))
			w.WriteHeader(http.StatusRequestedRangeNotSatisfiable)
			return
		case s.partial != nil:
			start = s.partial(w, from)
		default:
			start = from
			h.Set("Content-Range", fmt.Sprintf("bytes %d-%d/%d", from, body.size-1, body.size))
			h.Set("Content-Length", strconv.FormatInt(body.size-from, 10))
			w.WriteHeader(http.StatusPartialContent)
		}
	} else {
		h.Set("Content-Length", strconv.FormatInt(body.size, 10))
	}
	if r.Method == http.MethodHead {
		return
	}
	end := body.size
	s.mu.Lock()
	cut := int64(-1)
	for len(s.cuts) > 0 && s.cuts[0] <= start {
		s.cuts = s.cuts[1:]
	}
	if len(s.cuts) > 0 {
		cut, end = s.cuts[0], s.cuts[0]
		s.cuts = s.cuts[1:]
	}
	s.mu.Unlock()
	if s.stall != nil && start > 0 {
		end = min(end, start+s.stallAfter)
	}
	if err := body.writeRange(w, start, end, func(n int) { s.sent.Add(int64(n)) }); err != nil {
		return
	}
	if s.stall != nil && start > 0 {
		http.NewResponseController(w).Flush()
		s.stalled.Add(1)
		<-s.stall
		return
	}
	if cut >= 0 {
		cutConn(w, s.reset)
	}
}

// ifRangeHolds is an origin's If-Range check: absent, or the current
// strong ETag, or the current Last-Modified.
func (s *rangeServer) ifRangeHolds(v, etag, lastMod string) bool {
	switch {
	case v == "":
		return true
	case strings.HasPrefix(v, `"`) || strings.HasPrefix(v, "W/"):
		return v == etag && !strings.HasPrefix(v, "W/")
	}
	return v == lastMod
}

// cutConn sends what was written and closes the connection, or resets it
// (RST): a cut mid-body.
func cutConn(w http.ResponseWriter, reset bool) {
	conn, buf, err := http.NewResponseController(w).Hijack()
	if err != nil {
		panic(http.ErrAbortHandler)
	}
	buf.Flush()
	if tc, ok := conn.(*net.TCPConn); ok && reset {
		tc.SetLinger(0)
	}
	conn.Close()
}

// requests returns the Range and If-Range of each request so far.
func (s *rangeServer) requests() (ranges, ifs []string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.ranges...), append([]string(nil), s.ifs...)
}

// A 512 MiB body cut at 50% and at 90% arrives byte-identical, the server
// sending at most 1.05 times its size: each retry asks for the rest.
func TestE2EResumeLargeBodyCutTwice(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("512 MiB")
	}
	body := seededBody{seed: 1, size: 512 << 20}
	srv := newRangeServer(t, body, nil, body.size/2, body.size*9/10)
	e := newEnv(t).with("REFETCH_BREAKER_FAILURES=0")
	out := filepath.Join(e.dir, "big.bin")
	r := e.run(args("-n", "3", "--json", "-o", out, srv.URL+"/big.bin")...)
	r.wantCode(t, 0)
	if got, want := fileSum(t, out), body.sum(); got != want {
		t.Fatalf("sha256 %s, want %s", got, want)
	}
	if sent := srv.sent.Load(); float64(sent) > 1.05*float64(body.size) {
		t.Errorf("the server sent %d bytes for a %d-byte body (%.2fx)", sent, body.size, float64(sent)/float64(body.size))
	}
	ranges, ifs := srv.requests()
	want := []string{"", fmt.Sprintf("bytes=%d-", body.size/2), fmt.Sprintf("bytes=%d-", body.size*9/10)}
	if fmt.Sprint(ranges) != fmt.Sprint(want) || ifs[1] != `"v1"` || ifs[2] != `"v1"` {
		t.Errorf("Range %q If-Range %q, want %q with the ETag", ranges, ifs, want)
	}
	attempts := r.report(t)["attempts"].([]any)
	if len(attempts) != 3 {
		t.Fatalf("%d attempts in the report", len(attempts))
	}
	var received float64
	for i, a := range attempts {
		a := a.(map[string]any)
		wantFrom := []any{nil, float64(body.size / 2), float64(body.size * 9 / 10)}[i]
		if a["resumed_from"] != wantFrom {
			t.Errorf("attempt %d: resumed_from %v, want %v", i+1, a["resumed_from"], wantFrom)
		}
		received += a["body_bytes"].(float64)
	}
	if received != float64(body.size) {
		t.Errorf("the attempts' body_bytes add up to %v, want %d", received, body.size)
	}
	assertNoTempFiles(t, e.dir)
}

// resumeArgs are the flags of the smaller cases: no breaker, quick retries.
func resumeEnv(t *testing.T) *env { return newEnv(t).with("REFETCH_BREAKER_FAILURES=0") }

// The retry line says what happened in words and where the next attempt
// starts; -v says which attempt resumed from which byte; stdout holds the
// body once.
func TestE2EResumeToStdoutSaysWhere(t *testing.T) {
	t.Parallel()
	body := seededBody{seed: 2, size: 6 << 20}
	srv := newRangeServer(t, body, func(s *rangeServer) { s.reset = true }, 2_000_000)
	r := resumeEnv(t).run(args("-v", srv.URL)...)
	r.wantCode(t, 0)
	if sum := sha256.Sum256([]byte(r.stdout)); hex.EncodeToString(sum[:]) != body.sum() {
		t.Fatalf("stdout has %d bytes, not the body", len(r.stdout))
	}
	// A reset may drop bytes in flight: where the retry resumes is read
	// from the line, and must be what the server was asked.
	line := regexp.MustCompile(`attempt 1/3: the server reset the connection after [0-9.]+ [KM]iB of 6\.0 MiB; resuming from byte ([0-9,]+) in 10ms`).FindStringSubmatch(r.stderr)
	if line == nil {
		t.Fatalf("no retry line in words:\n%s", r.stderr)
	}
	from := strings.ReplaceAll(line[1], ",", "")
	for _, want := range []string{
		"> Range: bytes=" + from + "-",
		`> If-Range: "v1"`,
		"< [2] HTTP/1.1 206 Partial Content",
		"resumed from byte " + line[1] + ", ",
	} {
		if !strings.Contains(r.stderr, want) {
			t.Errorf("stderr lacks %q:\n%s", want, r.stderr)
		}
	}
	if strings.Contains(r.stderr, "read tcp") {
		t.Errorf("stderr shows the system's words for the reset:\n%s", r.stderr)
	}
}

// Small bodies (held in memory) resume too, into stdout and --json.
func TestE2EResumeSmallBodyJSON(t *testing.T) {
	t.Parallel()
	body := seededBody{seed: 3, size: 100 << 10}
	srv := newRangeServer(t, body, nil, 30_000)
	r := resumeEnv(t).run(args("--json", srv.URL)...)
	r.wantCode(t, 0)
	rep := r.report(t)
	if rep["status"] != 200.0 || rep["data_base64"] == nil {
		t.Fatalf("report: status %v, data_base64 %v", rep["status"], rep["data_base64"] != nil)
	}
	attempts := rep["attempts"].([]any)
	if len(attempts) != 2 || attempts[1].(map[string]any)["resumed_from"] != 30000.0 || attempts[1].(map[string]any)["status"] != 206.0 {
		t.Errorf("attempts = %v", attempts)
	}
	if !strings.Contains(attempts[0].(map[string]any)["error"].(string), "the server closed the connection after 29.3 KiB of 100.0 KiB") {
		t.Errorf("attempt 1 error = %v", attempts[0].(map[string]any)["error"])
	}
}

// A body whose version changes between attempts, and a server that
// ignores Range: the result is one whole version, never a mix.
func TestE2EResumeNeverMixesVersions(t *testing.T) {
	t.Parallel()
	v1, v2 := seededBody{seed: 10, size: 5 << 20}, seededBody{seed: 11, size: 5 << 20}
	for _, tc := range []struct {
		name  string
		setup func(s *rangeServer)
		want  seededBody
		// restart: the retry asked for the rest but got the whole body.
		restart bool
	}{
		{"ETag changes", func(s *rangeServer) {
			s.change = func(s *rangeServer, n int) {
				if n == 2 {
					s.body, s.etag = v2, `"v2"`
				}
			}
		}, v2, true},
		{"Last-Modified changes, no ETag", func(s *rangeServer) {
			s.etag = ""
			s.change = func(s *rangeServer, n int) {
				if n == 2 {
					s.body, s.lastMod = v2, "Tue, 03 Jan 2006 15:04:05 GMT"
				}
			}
		}, v2, true},
		{"server ignores Range", func(s *rangeServer) { s.ignoreRange = true }, v1, true},
		{"server ignores If-Range: a 206 of another version", func(s *rangeServer) {
			s.change = func(s *rangeServer, n int) {
				if n == 2 {
					s.body, s.etag = v2, `"v2"`
				}
			}
			s.ignoreIfRange = true
			s.partial = func(w http.ResponseWriter, from int64) int64 {
				w.Header().Set("Content-Range", fmt.Sprintf("bytes %d-%d/%d", from, v2.size-1, v2.size))
				w.Header().Set("Content-Length", strconv.FormatInt(v2.size-from, 10))
				w.WriteHeader(http.StatusPartialContent)
				return from
			}
		}, v2, false},
		// A tour's 206 repeated the first ETag and added another's, or
		// left the ETag out, with another version's bytes: only the
		// first field had been compared, and a 206 without one had
		// been taken as the same version.
		{"a 206 with the first ETag and another", func(s *rangeServer) {
			s.change = func(s *rangeServer, n int) {
				if n == 2 {
					s.body = v2
				}
			}
			s.partial = func(w http.ResponseWriter, from int64) int64 {
				w.Header().Add("ETag", `"v2"`)
				w.Header().Set("Content-Range", fmt.Sprintf("bytes %d-%d/%d", from, v2.size-1, v2.size))
				w.Header().Set("Content-Length", strconv.FormatInt(v2.size-from, 10))
				w.WriteHeader(http.StatusPartialContent)
				return from
			}
		}, v2, false},
		{"a 206 without the ETag", func(s *rangeServer) {
			s.change = func(s *rangeServer, n int) {
				if n == 2 {
					s.body = v2
				}
			}
			s.partial = func(w http.ResponseWriter, from int64) int64 {
				w.Header().Del("ETag")
				w.Header().Set("Content-Range", fmt.Sprintf("bytes %d-%d/%d", from, v2.size-1, v2.size))
				w.Header().Set("Content-Length", strconv.FormatInt(v2.size-from, 10))
				w.WriteHeader(http.StatusPartialContent)
				return from
			}
		}, v2, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			srv := newRangeServer(t, v1, tc.setup, 2<<20)
			e := resumeEnv(t)
			out := filepath.Join(e.dir, "out.bin")
			r := e.run(args("-n", "4", "--json", "-o", out, srv.URL)...)
			r.wantCode(t, 0)
			if got := fileSum(t, out); got != tc.want.sum() {
				t.Fatalf("-o holds %s, not the whole body of one version (v1 %s, v2 %s)", got, v1.sum(), v2.sum())
			}
			ranges, _ := srv.requests()
			if len(ranges) < 2 || ranges[1] != "bytes=2097152-" {
				t.Errorf("ranges asked %q: the retry should have asked for the rest", ranges)
			}
			attempts := r.report(t)["attempts"].([]any)
			last := attempts[len(attempts)-1].(map[string]any)
			if last["resumed_from"] != nil {
				t.Errorf("the last attempt resumed: %v", last)
			}
			if second := attempts[1].(map[string]any); tc.restart && second["restart"] == nil {
				t.Errorf("attempt 2 does not say it started over: %v", second)
			}
		})
	}
}

// A resume answered with a whole new version (200) that is cut in turn:
// the retry line says it started over and why, then resumes the new one.
func TestE2EResumeStartedOverCutAgain(t *testing.T) {
	t.Parallel()
	v1, v2 := seededBody{seed: 12, size: 5 << 20}, seededBody{seed: 13, size: 5 << 20}
	srv := newRangeServer(t, v1, func(s *rangeServer) {
		s.change = func(s *rangeServer, n int) {
			if n == 2 {
				s.body, s.etag = v2, `"v2"`
			}
		}
	}, 1<<20, 2<<20)
	e := resumeEnv(t)
	out := filepath.Join(e.dir, "out.bin")
	r := e.run(args("-n", "4", "-o", out, srv.URL)...)
	r.wantCode(t, 0)
	if got := fileSum(t, out); got != v2.sum() {
		t.Fatal("-o does not hold the new version")
	}
	for _, want := range []string{
		"attempt 1/4: the server closed the connection after 1.0 MiB of 5.0 MiB; resuming from byte 1,048,576 in 10ms",
		"attempt 2/4: started over (the server sent a new version), then the server closed the connection after 2.0 MiB of 5.0 MiB; resuming from byte 2,097,152 in 10ms",
	} {
		if !strings.Contains(r.stderr, want) {
			t.Errorf("stderr lacks %q:\n%s", want, r.stderr)
		}
	}
}

// Answers that cannot continue the body make the next attempt start over;
// a server without a usable validator is never asked for a range.
func TestE2EResumeRefused(t *testing.T) {
	t.Parallel()
	body := seededBody{seed: 20, size: 3 << 20}
	for _, tc := range []struct {
		name  string
		setup func(s *rangeServer)
		// asked: whether the retry after the cut asked for a range.
		asked  bool
		stderr string
	}{
		{"mismatched Content-Range", func(s *rangeServer) {
			s.partial = func(w http.ResponseWriter, from int64) int64 {
				w.Header().Set("Content-Range", fmt.Sprintf("bytes %d-%d/%d", from-100, body.size-1, body.size))
				w.Header().Set("Content-Length", strconv.FormatInt(body.size-from+100, 10))
				w.WriteHeader(http.StatusPartialContent)
				return from - 100
			}
		}, true, "starts at byte 1,048,476"},
		{"multipart answer", func(s *rangeServer) {
			s.partial = func(w http.ResponseWriter, from int64) int64 {
				w.Header().Set("Content-Type", "multipart/byteranges; boundary=x")
				w.Header().Set("Content-Range", fmt.Sprintf("bytes %d-%d/%d", from, body.size-1, body.size))
				w.WriteHeader(http.StatusPartialContent)
				return from
			}
		}, true, "holds several ranges"},
		{"only a weak ETag", func(s *rangeServer) { s.etag, s.lastMod = `W/"v1"`, "" }, false, "only a weak ETag"},
		{"no validator", func(s *rangeServer) { s.etag, s.lastMod = "", "" }, false, "no ETag or Last-Modified"},
		{"Last-Modified as recent as Date", func(s *rangeServer) { s.etag, s.lastModIsDate = "", true }, false,
			"retrying from the start in 10ms: the server sent no ETag, and its Last-Modified is not at least a second before its Date, so it cannot prove the rest is of the same version"},
		{"Content-Encoding changes", func(s *rangeServer) {
			s.encoding = "x-custom"
			s.change = func(s *rangeServer, n int) {
				if n == 2 {
					s.encoding = "x-other"
				}
			}
		}, true, "another Content-Encoding"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			srv := newRangeServer(t, body, tc.setup, 1<<20)
			e := resumeEnv(t)
			out := filepath.Join(e.dir, "out.bin")
			r := e.run(args("-n", "4", "-o", out, srv.URL)...)
			r.wantCode(t, 0)
			if got := fileSum(t, out); got != body.sum() {
				t.Fatalf("-o does not hold the body")
			}
			ranges, _ := srv.requests()
			if tc.asked && (len(ranges) != 3 || ranges[1] != "bytes=1048576-" || ranges[2] != "") {
				t.Errorf("ranges asked %q, want one refused range request, then the whole body", ranges)
			}
			if !tc.asked && fmt.Sprint(ranges) != "[ ]" {
				t.Errorf("ranges asked %q, want two whole-body requests", ranges)
			}
			if !strings.Contains(r.stderr, tc.stderr) {
				t.Errorf("stderr lacks %q:\n%s", tc.stderr, r.stderr)
			}
		})
	}
}

// A 416 to the range request starts over too.
func TestE2EResumeRangeNotSatisfiable(t *testing.T) {
	t.Parallel()
	body := seededBody{seed: 21, size: 2 << 20}
	srv := newRangeServer(t, body, func(s *rangeServer) {
		s.change = func(s *rangeServer, n int) {
			if n == 2 {
				s.body = seededBody{seed: 21, size: 1 << 20} // shorter now: the range is past its end
			}
			if n == 3 {
				s.body = body
			}
		}
	}, 1<<20)
	e := resumeEnv(t)
	out := filepath.Join(e.dir, "out.bin")
	r := e.run(args("-n", "3", "-o", out, srv.URL)...)
	r.wantCode(t, 0)
	if got := fileSum(t, out); got != body.sum() {
		t.Fatal("-o does not hold the body")
	}
	if !strings.Contains(r.stderr, "416") || !strings.Contains(r.stderr, "the next attempt starts over") {
		t.Errorf("stderr:\n%s", r.stderr)
	}
}

// --no-resume (and its variable) asks for the whole body every time.
func TestE2ENoResume(t *testing.T) {
	t.Parallel()
	body := seededBody{seed: 30, size: 1 << 20}
	for _, how := range [][]string{{"--no-resume"}, nil} {
		srv := newRangeServer(t, body, nil, 500_000)
		e := resumeEnv(t)
		if how == nil {
			e = e.with("REFETCH_NO_RESUME=true")
		}
		r := e.run(args(append(how, srv.URL)...)...)
		r.wantCode(t, 0)
		if ranges, _ := srv.requests(); fmt.Sprint(ranges) != "[ ]" {
			t.Errorf("%v: ranges asked %q", how, ranges)
		}
		if !strings.Contains(r.stderr, "the server closed the connection after 488.3 KiB of 1.0 MiB; retrying in") {
			t.Errorf("%v: stderr:\n%s", how, r.stderr)
		}
	}
}

// POST is never resumed: without --retry-unsafe or an Idempotency-Key a
// cut POST is not retried at all; with either, the retry sends the whole
// request and takes the whole body, with no Range (RFC 9110 defines
// ranges for GET only).
func TestE2EResumeNeverForPOST(t *testing.T) {
	t.Parallel()
	body := seededBody{seed: 40, size: 1 << 20}
	srv := newRangeServer(t, body, nil, 300_000)
	e := resumeEnv(t)
	out := filepath.Join(e.dir, "out.bin")
	r := e.run(args("-X", "POST", "-d", "x", "-o", out, srv.URL)...)
	r.wantCode(t, 3)
	if _, err := os.Stat(out); err == nil {
		t.Error("-o was written by a failed POST")
	}
	if !strings.Contains(r.stderr, "(--retry-unsafe, or an Idempotency-Key header the server honours, retries it anyway)") {
		t.Errorf("stderr does not say how to retry it:\n%s", r.stderr)
	}
	for _, opt := range [][]string{{"--retry-unsafe"}, {"-H", "Idempotency-Key: k1"}} {
		srv2 := newRangeServer(t, body, nil, 300_000)
		r = e.run(args(append(append([]string{"-X", "POST", "-d", "x"}, opt...), "-o", out, srv2.URL)...)...)
		r.wantCode(t, 0)
		if got := fileSum(t, out); got != body.sum() {
			t.Fatalf("%v: -o does not hold the body", opt)
		}
		if ranges, _ := srv2.requests(); fmt.Sprint(ranges) != "[ ]" {
			t.Errorf("%v: ranges asked by POST: %q", opt, ranges)
		}
	}
}

// A 206 to a request that asked for no range is the whole body only when
// its Content-Range is the whole representation; part of the body, several
// ranges or no Content-Range fail the attempt (retried, asking for all of
// it again), and nothing partial is ever served. A Range of the user's own
// gets its 206.
func TestE2EUnaskedPartialContent(t *testing.T) {
	t.Parallel()
	body := make([]byte, 100_000)
	for i := range body {
		body[i] = byte(i * 7)
	}
	// answer answers request n (1-based) of a server: kind is "part", "cut"
	// (part, and cut before its end), "multipart", "none" (no
	// Content-Range), "whole206" or "200".
	answer := func(w http.ResponseWriter, r *http.Request, kind string) {
		h := w.Header()
		h.Set("ETag", `"v1"`)
		if rg := r.Header.Get("Range"); rg != "" {
			h.Set("Content-Range", "bytes 0-49999/100000")
			w.WriteHeader(http.StatusPartialContent)
			w.Write(body[:50_000])
			return
		}
		switch kind {
		case "part", "cut":
			h.Set("Content-Range", "bytes 0-49999/100000")
			h.Set("Content-Length", "50000")
			w.WriteHeader(http.StatusPartialContent)
			if kind == "cut" {
				w.Write(body[:20_000])
				cutConn(w, false)
				return
			}
			w.Write(body[:50_000])
		case "multipart":
			h.Set("Content-Type", "multipart/byteranges; boundary=x")
			w.WriteHeader(http.StatusPartialContent)
			w.Write(body[:50_000])
		case "none":
			w.WriteHeader(http.StatusPartialContent)
			w.Write(body[:50_000])
		case "whole206":
			h.Set("Content-Range", "bytes 0-99999/100000")
			w.WriteHeader(http.StatusPartialContent)
			w.Write(body)
		default:
			w.Write(body)
		}
	}
	for _, tc := range []struct {
		name   string
		kinds  []string // the answers in turn; the last repeats
		extra  []string
		code   int
		served int // bytes on stdout
		stderr string
	}{
		{"part then whole", []string{"part", "200"}, nil, 0, 100_000,
			"attempt 1/3: the server sent part of the body (bytes 0-49999 of 100000, 206) to a request for all of it; retrying in 10ms"},
		{"always part", []string{"part"}, nil, 4, 0, "the server sent part of the body (bytes 0-49999 of 100000, 206) to a request for all of it"},
		{"part and cut", []string{"cut"}, nil, 4, 0, "the server sent part of the body (bytes 0-49999 of 100000, 206)"},
		{"multipart", []string{"multipart"}, nil, 4, 0, "the server sent several ranges of the body (206, multipart/byteranges) to a request for all of it"},
		{"no Content-Range", []string{"none"}, nil, 4, 0, `the server sent a 206 with no usable Content-Range ("") to a request for all of it`},
		{"the whole body as a 206", []string{"whole206"}, nil, 0, 100_000, ""},
		{"the user's own Range", []string{"part"}, []string{"-H", "Range: bytes=0-49999"}, 0, 50_000, ""},
		{"POST not retried", []string{"part"}, []string{"-X", "POST", "-d", "x"}, 3, 0, "to a request for all of it (--retry-unsafe"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var n atomic.Int64
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				i := int(n.Add(1)) - 1
				answer(w, r, tc.kinds[min(i, len(tc.kinds)-1)])
			}))
			t.Cleanup(srv.Close)
			e := resumeEnv(t)
			r := e.run(args(append(tc.extra, srv.URL)...)...)
			r.wantCode(t, tc.code)
			if len(r.stdout) != tc.served {
				t.Fatalf("stdout holds %d bytes, want %d\nstderr: %s", len(r.stdout), tc.served, r.stderr)
			}
			if tc.served > 0 && r.stdout != string(body[:tc.served]) {
				t.Fatal("stdout does not hold the body")
			}
			if !strings.Contains(r.stderr, tc.stderr) {
				t.Errorf("stderr lacks %q:\n%s", tc.stderr, r.stderr)
			}
			// -o and --json say the same.
			out := filepath.Join(e.dir, "out.bin")
			n.Store(0)
			r = e.run(args(append(tc.extra, "--json", "-o", out, srv.URL)...)...)
			r.wantCode(t, tc.code)
			rep := r.report(t)
			if ok := tc.code == 0; rep["ok"] != ok {
				t.Errorf("--json ok = %v, want %v", rep["ok"], ok)
			}
			data, err := os.ReadFile(out)
			switch {
			case tc.served == 0 && err == nil:
				t.Errorf("-o was written (%d bytes)", len(data))
			case tc.served > 0 && string(data) != string(body[:tc.served]):
				t.Errorf("-o holds %d bytes, not the body", len(data))
			}
		})
	}
}

// A batch's items resume into their own files (-o template).
func TestE2EResumeBatch(t *testing.T) {
	t.Parallel()
	a, b := seededBody{seed: 50, size: 3 << 20}, seededBody{seed: 51, size: 40 << 10}
	srvA, srvB := newRangeServer(t, a, nil, 1<<20), newRangeServer(t, b, nil, 10_000)
	e := resumeEnv(t)
	r := e.run(args("--json", "-o", filepath.Join(e.dir, "{n}.bin"), srvA.URL+"/a", srvB.URL+"/b")...)
	r.wantCode(t, 0)
	if fileSum(t, filepath.Join(e.dir, "1.bin")) != a.sum() || fileSum(t, filepath.Join(e.dir, "2.bin")) != b.sum() {
		t.Fatal("a batch's files do not hold their bodies")
	}
	for _, s := range []*rangeServer{srvA, srvB} {
		if ranges, _ := s.requests(); len(ranges) != 2 || ranges[1] == "" {
			t.Errorf("ranges asked %q, want a resume", ranges)
		}
	}
	if strings.Count(r.stdout, `"resumed_from":1048576`) != 1 || strings.Count(r.stdout, `"resumed_from":10000`) != 1 {
		t.Errorf("reports do not say where each resumed:\n%s", r.stdout)
	}
	assertNoTempFiles(t, e.dir)
}

// A signal while a resumed body arrives leaves -o as it was and stdout
// empty: the partial bytes never become visible.
func TestE2EResumeSignal(t *testing.T) {
	t.Parallel()
	body := seededBody{seed: 60, size: 6 << 20}
	for _, tc := range []struct {
		sig  syscall.Signal
		code int
	}{{syscall.SIGINT, 130}, {syscall.SIGTERM, 143}} {
		for _, toFile := range []bool{true, false} {
			t.Run(fmt.Sprintf("%v/file=%v", tc.sig, toFile), func(t *testing.T) {
				t.Parallel()
				srv := newRangeServer(t, body, func(s *rangeServer) { s.stall, s.stallAfter = make(chan struct{}), 1<<20 }, 2<<20)
				e := resumeEnv(t)
				out := filepath.Join(e.dir, "out.bin")
				if err := os.WriteFile(out, []byte("old content"), 0o644); err != nil {
					t.Fatal(err)
				}
				a := args(srv.URL)
				if toFile {
					a = args("-o", out, srv.URL)
				}
				code, _, stdout := startAndSignal(t, e, tc.sig, func(string) bool { return srv.stalled.Load() > 0 }, a...)
				if code != tc.code {
					t.Errorf("exit %d, want %d", code, tc.code)
				}
				if stdout != "" {
					t.Errorf("stdout holds %d bytes", len(stdout))
				}
				if got, _ := os.ReadFile(out); string(got) != "old content" {
					t.Errorf("-o holds %d bytes, not its old content", len(got))
				}
				if ranges, _ := srv.requests(); len(ranges) != 2 || ranges[1] == "" {
					t.Errorf("ranges %q: the signal did not come mid-resume", ranges)
				}
				assertNoTempFiles(t, e.dir)
			})
		}
	}
}

// --max-time that cuts the resuming attempt says so: the final line names
// the deadline cutting attempt 2 mid-body, not attempt 1's cut alone.
func TestE2EResumeMaxTimeNamesTheCutAttempt(t *testing.T) {
	t.Parallel()
	body := seededBody{seed: 61, size: 6 << 20}
	srv := newRangeServer(t, body, func(s *rangeServer) { s.stall, s.stallAfter = make(chan struct{}), 1<<20 }, 2<<20)
	e := resumeEnv(t)
	out := filepath.Join(e.dir, "out.bin")
	r := e.run(args("--max-time", "3s", "-o", out, srv.URL)...)
	r.wantCode(t, 7)
	if ranges, _ := srv.requests(); len(ranges) != 2 || ranges[1] == "" {
		t.Fatalf("ranges %q: the deadline did not come mid-resume", ranges)
	}
	final := r.stderr[strings.LastIndex(strings.TrimSuffix(r.stderr, "\n"), "\n")+1:]
	for _, want := range []string{
		"deadline exceeded: the time limit of 3s passed during attempt 2, with 3.0 MiB of 6.0 MiB received (this attempt resumed from byte 2,097,152); " +
			"attempt 1: the server closed the connection after 2.0 MiB of 6.0 MiB (--max-time sets the limit)",
	} {
		if !strings.Contains(final, want) {
			t.Errorf("the final line lacks %q: %s", want, final)
		}
	}
	if _, err := os.Stat(out); err == nil {
		t.Error("-o was written")
	}
}

// A body that runs out of attempts mid-resume leaves stdout and -o
// untouched.
func TestE2EResumeExhaustedWritesNothing(t *testing.T) {
	t.Parallel()
	body := seededBody{seed: 70, size: 2 << 20}
	srv := newRangeServer(t, body, nil, 500_000, 1_000_000)
	e := resumeEnv(t)
	out := filepath.Join(e.dir, "out.bin")
	r := e.run(args("-n", "2", "-o", out, srv.URL)...)
	r.wantCode(t, 4)
	if _, err := os.Stat(out); err == nil {
		t.Error("-o was written")
	}
	r = e.run(args("-n", "2", newRangeServer(t, body, nil, 500_000, 1_000_000).URL)...)
	r.wantCode(t, 4)
	if r.stdout != "" {
		t.Errorf("stdout holds %d bytes", len(r.stdout))
	}
	if !strings.Contains(r.stderr, "retries exhausted after 2 attempts: the server closed the connection after 976.6 KiB of 2.0 MiB") {
		t.Errorf("stderr:\n%s", r.stderr)
	}
	// --json of a failed run: the last response's status, as for any
	// failed run (docs/fetch.md), which here is the resuming attempt's.
	r = e.run(args("-n", "3", "--json", newRangeServer(t, body, nil, 500_000, 1_000_000, 1_500_000).URL)...)
	r.wantCode(t, 4)
	rep := r.report(t)
	attempts := rep["attempts"].([]any)
	var statuses []any
	for _, a := range attempts {
		statuses = append(statuses, a.(map[string]any)["status"])
	}
	if rep["ok"] != false || rep["status"] != 206.0 || fmt.Sprint(statuses) != "[200 206 206]" || rep["data_base64"] != nil {
		t.Errorf("report: ok %v status %v attempts' statuses %v data %v", rep["ok"], rep["status"], statuses, rep["data_base64"] != nil)
	}
	assertNoTempFiles(t, e.dir)
}

// The toxiproxy case of issue 24: toxiproxy (a fault-injecting TCP proxy
// nobody here wrote) in front of nginx, limiting to 4 MB/s and resetting
// every connection 1.5 s into its answer. Each attempt gets about
// 6 MB of the 16 MiB file, so without resuming no attempt ever completes
// (refetch and curl 7.88 -C - --retry-all-errors both exit having failed);
// with it the file arrives byte-identical within -n 6.
//
// toxiproxy-server is found in $TOXIPROXY_SERVER, else on PATH (.ci/run
// installs it with go install); nginx on PATH or in /usr/sbin. The test
// skips when either is missing, and fails when CI=true.
func TestE2EResumeThroughToxiproxy(t *testing.T) {
	t.Parallel()
	toxi := requireTool(t, "toxiproxy-server", os.Getenv("TOXIPROXY_SERVER"), "GOBIN=DIR go install github.com/Shopify/toxiproxy/v2/cmd/server@v2.5.0, then set TOXIPROXY_SERVER=DIR/server")
	nginx := requireTool(t, "nginx", "/usr/sbin/nginx", "apt-get install -y nginx-light")
	root := t.TempDir()
	body := seededBody{seed: 80, size: 16 << 20}
	f, err := os.Create(filepath.Join(root, "file.bin"))
	if err != nil {
		t.Fatal(err)
	}
	if err := body.writeRange(f, 0, body.size, func(int) {}); err != nil {
		t.Fatal(err)
	}
	f.Close()
	upstream := startNginx(t, nginx, root)
	api := startToxiproxy(t, toxi)
	listen := toxiAPI(t, api, "/proxies", `{"name":"nginx","listen":"127.0.0.1:0","upstream":"`+upstream+`","enabled":true}`)["listen"].(string)
	toxiAPI(t, api, "/proxies/nginx/toxics", `{"name":"slow","type":"bandwidth","stream":"downstream","toxicity":1,"attributes":{"rate":4000}}`)
	// toxiproxy's reset_peer drops every byte it sees until it resets, so
	// it cannot cut a transfer partway by itself. limit_data closes each
	// connection after 6,000,000 bytes, 1.5 s at 4 MB/s, and a reset_peer
	// that never runs (toxicity 0) makes toxiproxy close with a reset
	// (SO_LINGER 0 on both sockets of a link that has one): every
	// connection is reset 1.5 s into its answer, after the same bytes
	// however loaded the machine is.
	toxiAPI(t, api, "/proxies/nginx/toxics", `{"name":"cut","type":"limit_data","stream":"downstream","toxicity":1,"attributes":{"bytes":6000000}}`)
	toxiAPI(t, api, "/proxies/nginx/toxics", `{"name":"reset","type":"reset_peer","stream":"downstream","toxicity":0,"attributes":{"timeout":1500}}`)

	e := resumeEnv(t)
	out := filepath.Join(e.dir, "file.bin")
	r := e.run(args("-n", "6", "--json", "-o", out, "http://"+listen+"/file.bin")...)
	r.wantCode(t, 0)
	if got := fileSum(t, out); got != body.sum() {
		t.Fatalf("sha256 %s, want %s", got, body.sum())
	}
	attempts := r.report(t)["attempts"].([]any)
	if len(attempts) < 2 {
		t.Fatalf("%d attempt(s): toxiproxy did not cut the body", len(attempts))
	}
	for i, a := range attempts[1:] {
		if a.(map[string]any)["resumed_from"] == nil {
			t.Errorf("attempt %d did not resume: %v", i+2, a)
		}
	}
	if e := attempts[0].(map[string]any)["error"].(string); !strings.HasPrefix(e, "the server reset the connection after ") {
		t.Errorf("attempt 1's error is not in words: %q", e)
	}
}

// requireTool finds a program of the machine's a test needs: path when it
// is given and exists, else name on PATH. Missing, the test skips, or
// fails when CI=true (as the Redis tests do: CI must run them).
func requireTool(t *testing.T, name, path, install string) string {
	t.Helper()
	if path != "" {
		if _, err := os.Stat(path); err == nil {
			return path
		}
	}
	if p, err := exec.LookPath(name); err == nil {
		return p
	}
	if os.Getenv("CI") == "true" {
		t.Fatalf("%s is not installed, and CI=true requires this test: %s", name, install)
	}
	t.Skipf("%s is not installed: skipping (%s)", name, install)
	return ""
}

// freePort returns a loopback port nothing listened on a moment ago.
func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// startProcess starts cmd with its output in log (a file: no pipe for
// Wait to drain), waits until addr accepts connections (a generous
// guard, not a timing), and stops it with stop when the test ends.
func startProcess(t *testing.T, cmd *exec.Cmd, addr, log string, stop os.Signal) {
	t.Helper()
	out, err := os.Create(log)
	if err != nil {
		t.Fatal(err)
	}
	defer out.Close()
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	t.Cleanup(func() {
		cmd.Process.Signal(stop)
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			cmd.Process.Kill()
			<-done
		}
	})
	deadline := time.Now().Add(20 * time.Second)
	for {
		if c, err := net.Dial("tcp", addr); err == nil {
			c.Close()
			return
		}
		select {
		case <-done:
			b, _ := os.ReadFile(log)
			t.Fatalf("%s exited: %s", filepath.Base(cmd.Path), b)
		default:
		}
		if time.Now().After(deadline) {
			b, _ := os.ReadFile(log)
			t.Fatalf("%s does not answer on %s: %s", filepath.Base(cmd.Path), addr, b)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// startNginx serves root with nginx, unprivileged, from a temp dir of its
// own (as bench/nginx.sh does), in the foreground; it returns host:port.
func startNginx(t *testing.T, nginx, root string) string {
	t.Helper()
	dir := t.TempDir()
	os.MkdirAll(filepath.Join(dir, "tmp"), 0o755)
	user := ""
	if os.Geteuid() == 0 {
		// A master started as root runs its worker as nobody, which
		// cannot read a private temp dir.
		user = "user root root;"
	}
	addr := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	conf := fmt.Sprintf(`daemon off;
%s
worker_processes 1;
pid %[2]s/nginx.pid;
error_log %[2]s/error.log warn;
events { worker_connections 64; }
http {
	access_log %[2]s/access.log;
	client_body_temp_path %[2]s/tmp/body;
	proxy_temp_path %[2]s/tmp/proxy;
	fastcgi_temp_path %[2]s/tmp/fastcgi;
	uwsgi_temp_path %[2]s/tmp/uwsgi;
	scgi_temp_path %[2]s/tmp/scgi;
	default_type application/octet-stream;
	sendfile on;
	server { listen %[3]s; root %[4]s; }
}
`, user, dir, addr, root)
	if err := os.WriteFile(filepath.Join(dir, "nginx.conf"), []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	// SIGTERM: the master stops its worker too (a killed master would
	// leave the worker serving).
	startProcess(t, exec.Command(nginx, "-e", filepath.Join(dir, "error.log"), "-c", filepath.Join(dir, "nginx.conf"), "-p", dir),
		addr, filepath.Join(dir, "out.log"), syscall.SIGTERM)
	return addr
}

// startToxiproxy runs toxiproxy-server on a free loopback port and
// returns its API's URL.
func startToxiproxy(t *testing.T, server string) string {
	t.Helper()
	port := freePort(t)
	startProcess(t, exec.Command(server, "-host", "127.0.0.1", "-port", strconv.Itoa(port)), fmt.Sprintf("127.0.0.1:%d", port),
		filepath.Join(t.TempDir(), "toxiproxy.log"), os.Kill)
	return fmt.Sprintf("http://127.0.0.1:%d", port)
}

// toxiAPI posts a JSON object to toxiproxy's HTTP API and returns its
// answer.
func toxiAPI(t *testing.T, api, path, body string) map[string]any {
	t.Helper()
	resp, err := http.Post(api+path, "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var m map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&m); err != nil || resp.StatusCode/100 != 2 {
		t.Fatalf("toxiproxy POST %s: %s, %v", path, resp.Status, err)
	}
	return m
}

// TestE2ERangeOverrun: a whole body sent as a 206 with no Content-Length
// that runs past its Content-Range is not served, not called a cut: the
// attempt says the server sent more than it said, and the next asks for
// all of it.
func TestE2ERangeOverrun(t *testing.T) {
	t.Parallel()
	var c counter
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if c.next() == 1 {
			w.Header().Set("Content-Range", "bytes 0-4/5")
			w.WriteHeader(http.StatusPartialContent)
			w.Write([]byte("he"))
			w.(http.Flusher).Flush() // no Content-Length from here on
			w.Write([]byte("llo, and more"))
			return
		}
		if r.Header.Get("Range") != "" {
			t.Errorf("attempt %d asked for %s", c.get(), r.Header.Get("Range"))
		}
		w.Write([]byte("hello"))
	}))
	defer srv.Close()
	r := newEnv(t).run(args("-v", "--delay", "1ms", srv.URL)...)
	r.wantCode(t, 0)
	if r.stdout != "hello" || !strings.Contains(r.stderr, "the body ran to 15 bytes, past the 5 its Content-Range (bytes 0-4/5) gives: the server sent more than it said") ||
		strings.Contains(r.stderr, "resuming") {
		t.Errorf("stdout %q, stderr:\n%s", r.stdout, r.stderr)
	}
}
