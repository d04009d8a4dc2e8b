//go:build !unix

package atomicfile

import "io/fs"

// processGone: without kill(2) no process can be shown gone; MaxAge
// alone cleans.
func processGone(int) bool { return false }

func ownedByMe(fs.FileInfo) bool { return true }

// umask: none where there is none.
func umask() fs.FileMode { return 0 }
