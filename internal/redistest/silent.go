package redistest

import (
	"net"
	"sync"
	"sync/atomic"
	"testing"
)

// Silent is a Redis that hangs: it accepts connections and reads what
// clients send, but never answers.
type Silent struct {
	// Addr is its host:port on loopback.
	Addr  string
	heard chan struct{}
	n     atomic.Int64
}

// NewSilent starts a Silent server, stopped (its connections closed) when
// the test ends.
func NewSilent(t testing.TB) *Silent {
	t.Helper()
	s, err := ListenSilent(t, "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// ListenSilent starts a Silent server on addr (any server that accepts
// and never answers: an HTTP test's dead backend too), stopped when the
// test ends; the error is the listen's.
func ListenSilent(t testing.TB, addr string) (*Silent, error) {
	t.Helper()
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, err
	}
	s := &Silent{Addr: l.Addr().String(), heard: make(chan struct{}, 1024)}
	var mu sync.Mutex
	var conns []net.Conn
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
			go s.read(c)
		}
	}()
	t.Cleanup(func() {
		l.Close()
		mu.Lock()
		defer mu.Unlock()
		for _, c := range conns {
			c.Close()
		}
	})
	return s, nil
}

// read takes whatever c's client sends until it goes, noting the first
// bytes: from then on the client waits for an answer.
func (s *Silent) read(c net.Conn) {
	buf := make([]byte, 4096)
	for first := true; ; first = false {
		if _, err := c.Read(buf); err != nil {
			return
		}
		if first {
			s.n.Add(1)
			select {
			case s.heard <- struct{}{}:
			default:
			}
		}
	}
}

// Heard receives a value for each connection whose client has sent
// something and so waits for an answer (up to 1,024 not yet received).
func (s *Silent) Heard() <-chan struct{} { return s.heard }

// Waiting is how many connections' clients have sent something and so
// wait for an answer.
func (s *Silent) Waiting() int { return int(s.n.Load()) }
