//go:build !unix

package main_test

import "testing"

// mknodIn skips: device nodes are a Unix thing.
func mknodIn(t *testing.T, dir, name string, minor int) string {
	t.Helper()
	t.Skip("no device nodes on this system")
	return ""
}
