//go:build unix

package main_test

import (
	"os"
	"path/filepath"
	"syscall"
	"testing"
)

// mknodIn makes a character device like /dev/null (1,3) or /dev/full
// (1,7) inside the test's own dir; only root can.
func mknodIn(t *testing.T, dir, name string, minor int) string {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("mknod needs root")
	}
	path := filepath.Join(dir, name)
	if err := syscall.Mknod(path, syscall.S_IFCHR|0o666, 1<<8|minor); err != nil {
		t.Skipf("mknod: %v", err)
	}
	return path
}
