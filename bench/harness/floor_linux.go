package main

import (
	"os"

	"golang.org/x/sys/unix"
)

// syncAll makes the file system of d durable: syncfs(2), as refetch does.
func syncAll(d *os.File) error { return unix.Syncfs(int(d.Fd())) }
