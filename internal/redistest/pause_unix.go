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
	mu.Lock()
	s, ok := servers[addr]
	mu.Unlock()
	if !ok {
		t.Fatalf("redistest: no server running on %s", addr)
	}
	if err := s.cmd.Process.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
}

// Resume continues a server stopped with Pause (SIGCONT).
func Resume(t testing.TB, addr string) {
	t.Helper()
	mu.Lock()
	s, ok := servers[addr]
	mu.Unlock()
	if !ok {
		t.Fatalf("redistest: no server running on %s", addr)
	}
	if err := s.cmd.Process.Signal(syscall.SIGCONT); err != nil {
		t.Fatal(err)
	}
}
