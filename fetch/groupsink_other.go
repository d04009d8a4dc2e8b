//go:build !linux

package fetch

import "os"

// syncFiles makes files durable with fsync, several at once (there is no
// portable syncfs), and returns each file's error.
func syncFiles(files []*os.File) []error { return syncParallel(files) }
