package redistest

import (
	"io"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// Far is a TCP proxy in front of a server that makes it far away: every
// chunk of bytes, either way, is delivered Delay after it was read (in
// order, without holding up the chunks behind it), so a request and its
// answer take 2×Delay more, as over a long link.
type Far struct {
	// Addr is the proxy's host:port on loopback.
	Addr string
	// Delay is added to each direction.
	Delay time.Duration

	open, peak atomic.Int64
	l          net.Listener
	mu         sync.Mutex
	conns      []net.Conn
}

// NewFar starts a proxy to upstream with delay each way, stopped when the
// test ends.
func NewFar(t testing.TB, upstream string, delay time.Duration) *Far {
	t.Helper()
	f, err := StartFar(upstream, delay)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(f.Close)
	return f
}

// StartFar starts a proxy to upstream with delay each way; Close stops it.
// (For benchmarks; tests use NewFar.)
func StartFar(upstream string, delay time.Duration) (*Far, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	f := &Far{Addr: l.Addr().String(), Delay: delay, l: l}
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			up, err := net.Dial("tcp", upstream)
			if err != nil {
				c.Close()
				continue
			}
			f.mu.Lock()
			f.conns = append(f.conns, c, up)
			f.mu.Unlock()
			n := f.open.Add(1)
			for p := f.peak.Load(); n > p && !f.peak.CompareAndSwap(p, n); p = f.peak.Load() {
			}
			var once sync.Once
			done := func() { once.Do(func() { f.open.Add(-1); c.Close(); up.Close() }) }
			go f.pipe(up, c, done)
			go f.pipe(c, up, done)
		}
	}()
	return f, nil
}

// Close stops the proxy and closes its connections.
func (f *Far) Close() {
	f.l.Close()
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, c := range f.conns {
		c.Close()
	}
}

// Peak is the most connections the proxy had open at once.
func (f *Far) Peak() int { return int(f.peak.Load()) }

type chunk struct {
	data []byte
	at   time.Time
}

// pipe copies from src to dst, each chunk Delay late.
func (f *Far) pipe(dst io.Writer, src io.Reader, done func()) {
	defer done()
	q := make(chan chunk, 1024)
	go func() {
		defer close(q)
		for {
			buf := make([]byte, 32<<10)
			n, err := src.Read(buf)
			if n > 0 {
				q <- chunk{buf[:n], time.Now().Add(f.Delay)}
			}
			if err != nil {
				return
			}
		}
	}()
	for c := range q {
		time.Sleep(time.Until(c.at))
		if _, err := dst.Write(c.data); err != nil {
			return
		}
	}
}
