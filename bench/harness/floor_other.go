//go:build unix && !linux

package main

import (
	"os"

	"golang.org/x/sys/unix"
)

// syncAll makes every file system durable: sync(2), where there is no
// syncfs.
func syncAll(*os.File) error {
	unix.Sync()
	return nil
}
