package fetch

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/refetch/refetch/resilience"
)

// These tests cover the body spliced from the socket into its file
// (splice_linux.go): a plain-HTTP body of more than spliceMin bytes, going to a
// spill file or -o's temporary file.

// spliceServer serves randomBody(size) at /SIZE, with Content-Length, and
// counts the connections it accepts: a spliced body leaves its connection
// closed (net/http counts its bytes as unread), so two fetches over one
// client take two connections where ordinary reads keep one alive.
type spliceServer struct {
	*httptest.Server
	mu    sync.Mutex
	conns int
}

func newSpliceServer(t *testing.T, tlsOn bool) *spliceServer {
	s := &spliceServer{}
	s.Server = httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		size, err := strconv.Atoi(r.URL.Path[1:])
		if err != nil {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Length", strconv.Itoa(size))
		w.Write(bodyOf(size))
	}))
	s.Config.ConnState = func(_ net.Conn, st http.ConnState) {
		if st == http.StateNew {
			s.mu.Lock()
			s.conns++
			s.mu.Unlock()
		}
	}
	if tlsOn {
		s.StartTLS()
	} else {
		s.Start()
	}
	t.Cleanup(s.Close)
	return s
}

// bodies keeps randomBody's results: making them is slow under -race.
var bodies sync.Map

func bodyOf(size int) []byte {
	if b, ok := bodies.Load(size); ok {
		return b.([]byte)
	}
	b, _ := bodies.LoadOrStore(size, randomBody(size))
	return b.([]byte)
}

func (s *spliceServer) connections() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.conns
}

// spliceConfig is a run of GET url through client with one attempt, or
// more with the fake clock's waits.
func spliceConfig(t *testing.T, client *http.Client, url string, sink Sink, attempts int) Config {
	clock := newTestClock()
	return Config{
		Request: &Request{Method: http.MethodGet, URL: mustURL(t, url), Header: http.Header{}, MaxRedirs: 10},
		Client:  client,
		Policy: resilience.Policy{Attempts: attempts, Delay: time.Second, Multiplier: 2,
			RetryOn: resilience.MustStatusSet("408,425,429,500,502,503,504")},
		Sink:     sink,
		Clock:    clock,
		NewTimer: clock.NewTimer,
		Splice:   true,
	}
}

func spliceClient(t *testing.T, s *spliceServer) *http.Client {
	t.Helper()
	req := &Request{Method: http.MethodGet, URL: mustURL(t, s.URL), MaxRedirs: 10}
	if s.TLS != nil {
		req.RootCAs = s.Client().Transport.(*http.Transport).TLSClientConfig.RootCAs
	}
	c, err := NewClient(req)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// A large plain-HTTP body comes out whole through every sink that has a
// file underneath (the spill file of stdout, -o's temporary file), and it
// was spliced: each fetch left its connection closed. Smaller bodies, and
// bodies over TLS, are read the ordinary way and keep the connection.
func TestSpliceBodyWhole(t *testing.T) {
	dir := t.TempDir()
	sinks := map[string]func() (Sink, func() []byte){
		"stdout": func() (Sink, func() []byte) {
			var out bytes.Buffer
			return &BufferSink{Dst: &out}, out.Bytes
		},
		"-o": func() (Sink, func() []byte) {
			path := filepath.Join(dir, "out")
			s, err := NewFileSink(context.Background(), path)
			if err != nil {
				t.Fatal(err)
			}
			return s, func() []byte {
				b, err := os.ReadFile(path)
				if err != nil {
					t.Fatal(err)
				}
				return b
			}
		},
	}
	for _, tt := range []struct {
		name      string
		tls       bool
		size      int
		noSplice  bool // Config.Splice off, as for a batch's shared client
		wantConns int  // for two fetches
	}{
		{"large", false, 6<<20 + 4321, false, 2},
		{"just over spliceMin", false, spliceMin + 1, false, 2},
		{"spliceMin", false, spliceMin, false, 1},
		{"large over TLS", true, 6<<20 + 4321, false, 1},
		{"large, Splice off", false, 6<<20 + 4321, true, 1},
	} {
		for name, mk := range sinks {
			t.Run(tt.name+"/"+name, func(t *testing.T) {
				srv := newSpliceServer(t, tt.tls)
				client := spliceClient(t, srv)
				want := bodyOf(tt.size)
				for i := range 2 {
					sink, got := mk()
					cfg := spliceConfig(t, client, srv.URL+"/"+strconv.Itoa(tt.size), sink, 1)
					cfg.Splice = !tt.noSplice
					res, err := Run(context.Background(), cfg)
					sink.Close()
					if err != nil {
						t.Fatalf("fetch %d: %v", i, err)
					}
					if b := got(); !bytes.Equal(b, want) || res.Size != int64(tt.size) {
						t.Fatalf("fetch %d: served %d bytes (Size %d), want the %d bytes sent", i, len(b), res.Size, tt.size)
					}
				}
				if got := srv.connections(); got != tt.wantConns {
					t.Errorf("two fetches took %d connections, want %d", got, tt.wantConns)
				}
			})
		}
	}
}

// readBody tells a read that went from the socket straight into the
// caller's slice (nothing left in the buffer in front of it) from one
// served by that buffer, whatever the sizes.
func TestSpliceReadBodySeesDirectReads(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		c.Write(randomBody(20000))
	}()
	raw, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	sc := wrapConn(raw).(*spliceConn)
	br := bufio.NewReaderSize(sc, 4096)
	if _, err := br.Peek(4096); err != nil { // the buffer holds 4096 bytes
		t.Fatal(err)
	}
	p := make([]byte, 8192)
	for i, step := range []struct {
		len    int
		n      int // -1: any
		direct bool
	}{
		{2048, 2048, false}, // from the buffer
		{8192, 2048, false}, // the buffer's rest
		{8192, -1, true},    // the buffer is empty: straight from the socket
		{100, 100, false},   // smaller than the buffer: bufio fills its own
		{8192, -1, false},   // from the buffer again
	} {
		n, direct, err := sc.readBody(br, p[:step.len])
		if err != nil || direct != step.direct || step.n >= 0 && n != step.n {
			t.Fatalf("read %d of %d bytes: got %d, direct %v, %v; want %d, direct %v", i, step.len, n, direct, err, step.n, step.direct)
		}
	}
}

// cutServer answers every request with a Content-Length of size; the
// first response stops after cut bytes and hangs up, the others are whole.
func cutServer(t *testing.T, size, cut int) (*httptest.Server, []byte) {
	body := randomBody(size)
	var mu sync.Mutex
	n := 0
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		n++
		first := n == 1
		mu.Unlock()
		w.Header().Set("Content-Length", strconv.Itoa(size))
		if !first {
			w.Write(body)
			return
		}
		w.Write(body[:cut])
		w.(http.Flusher).Flush()
		conn, _, err := http.NewResponseController(w).Hijack()
		if err == nil {
			conn.Close()
		}
	}))
	t.Cleanup(srv.Close)
	return srv, body
}

// A body cut while it is spliced is the server's failure: the attempt is
// retried, and only the retry's whole body is served, to stdout and to -o.
func TestSpliceCutIsRetried(t *testing.T) {
	for _, toFile := range []bool{false, true} {
		t.Run("to file "+strconv.FormatBool(toFile), func(t *testing.T) {
			size, cut := 8<<20, 5<<20+17
			srv, body := cutServer(t, size, cut)
			var out bytes.Buffer
			var sink Sink = &BufferSink{Dst: &out}
			path := filepath.Join(t.TempDir(), "out")
			if toFile {
				fs, err := NewFileSink(context.Background(), path)
				if err != nil {
					t.Fatal(err)
				}
				sink = fs
			}
			defer sink.Close()
			res, err := Run(context.Background(), spliceConfig(t, nil, srv.URL, sink, 2))
			if err != nil {
				t.Fatal(err)
			}
			got := out.Bytes()
			if toFile {
				got, _ = os.ReadFile(path)
			}
			if !bytes.Equal(got, body) {
				t.Fatalf("served %d bytes, not the retry's %d", len(got), size)
			}
			atts := res.Trace.Attempts
			var cutErr *BodyCutError
			if len(atts) != 2 || !errors.As(atts[0].Err, &cutErr) || cutErr.Total != int64(size) ||
				cutErr.Read < int64(cut)-64<<10 || cutErr.Read > int64(cut) || !errors.Is(cutErr, io.ErrUnexpectedEOF) {
				t.Fatalf("attempts %+v: want a cut after about %d of %d bytes, then a whole body", atts, cut, size)
			}
		})
	}
}

// roAppender is a sink writer whose file refuses writes: what splice puts
// there fails on our side.
type roAppender struct{ f *os.File }

func (w roAppender) Write(p []byte) (int, error)         { return len(p), nil }
func (w roAppender) appendFile() (*os.File, func(int64)) { return w.f, func(int64) {} }

type roSink struct{ w roAppender }

func (s roSink) Begin() (io.Writer, error) { return s.w, nil }
func (s roSink) Commit() error             { return nil }
func (s roSink) Close() error              { return nil }
func (s roSink) Streams() bool             { return false }

// appendSink's writer is a file opened to append, which splice(2) refuses
// to write (EINVAL) where write(2) works.
type appendSink struct{ f *os.File }

func (s appendSink) Begin() (io.Writer, error) { return appendWriter(s), nil }
func (s appendSink) Commit() error             { return nil }
func (s appendSink) Close() error              { return nil }
func (s appendSink) Streams() bool             { return false }

type appendWriter struct{ f *os.File }

func (w appendWriter) Write(p []byte) (int, error)         { return w.f.Write(p) }
func (w appendWriter) appendFile() (*os.File, func(int64)) { return w.f, func(int64) {} }

// A file the kernel will not splice into loses nothing and fails nothing:
// the bytes already taken from the socket, and the rest, are written the
// ordinary way, and later bodies in the process do not try again.
func TestSpliceRefusedByTheFile(t *testing.T) {
	t.Cleanup(func() { spliceRefused.Store(false) })
	srv := newSpliceServer(t, false)
	client := spliceClient(t, srv)
	size := 6<<20 + 4321
	path := filepath.Join(t.TempDir(), "out")
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var want []byte
	for i := range 3 {
		if _, err := Run(context.Background(), spliceConfig(t, client, srv.URL+"/"+strconv.Itoa(size), appendSink{f}, 1)); err != nil {
			t.Fatalf("fetch %d: %v", i, err)
		}
		want = append(want, bodyOf(size)...)
	}
	got, _ := os.ReadFile(path)
	if !bytes.Equal(got, want) {
		t.Fatalf("the file holds %d bytes, want the %d of three whole bodies", len(got), len(want))
	}
	if !spliceRefused.Load() {
		t.Error("the refusal was not remembered")
	}
	// The first fetch's connection was closed (its body had left the
	// socket behind net/http's back); the second and third were read by
	// net/http, over one kept-alive connection.
	if got := srv.connections(); got != 2 {
		t.Errorf("%d connections, want 2", got)
	}
}

// A file that cannot take the spliced bytes is a local output failure,
// not the server's: ErrOutput, and no retry.
func TestSpliceWriteFailureIsOutputError(t *testing.T) {
	srv := newSpliceServer(t, false)
	path := filepath.Join(t.TempDir(), "ro")
	if err := os.WriteFile(path, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	res, err := Run(context.Background(), spliceConfig(t, nil, srv.URL+"/"+strconv.Itoa(6<<20), roSink{roAppender{f}}, 3))
	if !errors.Is(err, ErrOutput) {
		t.Fatalf("error = %v, want ErrOutput", err)
	}
	if n := len(res.Trace.Attempts); n != 1 {
		t.Errorf("%d attempts: a local write failure was retried", n)
	}
}

// A run cancelled while the body is spliced (a signal) ends at once with
// the cancellation's cause, and serves nothing.
func TestSpliceCancelled(t *testing.T) {
	errSignal := errors.New("interrupted by SIGINT")
	ctx, cancel := context.WithCancelCause(context.Background())
	defer cancel(nil)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", strconv.Itoa(16<<20))
		w.Write(randomBody(5 << 20))
		w.(http.Flusher).Flush()
		cancel(errSignal) // the body is under way: interrupt the run
		<-r.Context().Done()
	}))
	defer srv.Close()
	var out bytes.Buffer
	sink := &BufferSink{Dst: &out}
	defer sink.Close()
	_, err := Run(ctx, spliceConfig(t, nil, srv.URL, sink, 3))
	if !errors.Is(err, errSignal) {
		t.Fatalf("error = %v, want the cancellation's cause", err)
	}
	if out.Len() != 0 {
		t.Errorf("served %d bytes of a cancelled run", out.Len())
	}
}

// An attempt whose --timeout passes while its body is spliced ends then,
// as a timeout that says how far the body had come.
func TestSpliceTimeout(t *testing.T) {
	sent := 5 << 20
	body := randomBody(sent)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", strconv.Itoa(16<<20))
		w.Write(body)
		w.(http.Flusher).Flush()
		<-r.Context().Done() // then nothing more: the attempt's time runs out
	}))
	defer srv.Close()
	var out bytes.Buffer
	sink := &BufferSink{Dst: &out}
	defer sink.Close()
	cfg := spliceConfig(t, nil, srv.URL, sink, 1)
	// Long enough for 5 MiB over loopback on a loaded machine (it takes
	// milliseconds); the test waits for it whole.
	cfg.Policy.Timeout = time.Second
	_, err := Run(context.Background(), cfg)
	var te *resilience.TimeoutError
	var cut *BodyCutError
	if !errors.As(err, &te) || !errors.As(err, &cut) || cut.Read != int64(sent) || cut.Total != 16<<20 {
		t.Fatalf("error = %v (cut %+v), want a timeout after all %d bytes sent", err, cut, sent)
	}
	if !strings.Contains(err.Error(), "5.0 MiB of 16.0 MiB received") {
		t.Errorf("message %q does not say how far the body came", err)
	}
	if out.Len() != 0 {
		t.Errorf("served %d bytes of a timed-out body", out.Len())
	}
}
