//go:build unix

package store

import "golang.org/x/sys/unix"

// writableDir reports why this process cannot create files in dir, nil
// when it can.
func writableDir(dir string) error { return unix.Access(dir, unix.W_OK|unix.X_OK) }
