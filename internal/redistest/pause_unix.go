//go:build unix

package redistest

import (
	"syscall"
	"testing"
)

// Pause stops the server on addr with SIGSTOP: it keeps its port and
// accepts connections (the kernel does), but answers nothing, as a hung
// server does. The test's end kills it as usual.
func Pause(t testing.TB, addr string) {
	t.Helper()
	signalServer(t, addr, syscall.SIGSTOP)
}

// Resume continues a server stopped with Pause (SIGCONT).
func Resume(t testing.TB, addr string) {
	t.Helper()
	signalServer(t, addr, syscall.SIGCONT)
}

// signalServer sends sig to the server this package started on addr.
func signalServer(t testing.TB, addr string, sig syscall.Signal) {
	t.Helper()
	mu.Lock()
	s, ok := servers[addr]
	mu.Unlock()
	if !ok {
		t.Fatalf("redistest: no server running on %s", addr)
	}
	if err := s.cmd.Process.Signal(sig); err != nil {
		t.Fatal(err)
	}
}
