//go:build unix

package cmd

import (
	"os"

	"github.com/refetch/refetch/fetch"
	"golang.org/x/sys/unix"
)

// stdoutClosed reports whether f (stdout) was closed when refetch started
// (`refetch fetch URL >&-`). Go's runtime puts /dev/null, opened
// read-write, in place of a closed standard descriptor before main runs, so
// that is what a closed stdout looks like here; a shell's `> /dev/null`
// opens it write-only and is a deliberate discard. (A stdout that is
// /dev/null opened read-write on purpose is taken as closed too: give -o.)
// nullRW says it is that /dev/null, which check takes as a discard.
func stdoutClosed(f *os.File) (closed, nullRW bool) {
	fl, err := unix.FcntlInt(f.Fd(), unix.F_GETFL, 0)
	if err != nil {
		return true, false
	}
	if fl&unix.O_ACCMODE == unix.O_RDONLY {
		// `1<FILE`: open for reading only, so every write would fail
		// after the download. Found before it instead.
		return true, false
	}
	nullRW = fl&unix.O_ACCMODE == unix.O_RDWR && fetch.IsNullDevice(f)
	return nullRW, nullRW
}

// stdinClosed reports whether f (stdin) was closed when refetch started
// (`refetch fetch -d @- URL <&-`): Go's runtime puts /dev/null, opened
// read-write, in its place, where a shell's `< /dev/null` opens it
// read-only. Reading it would give an empty body or an empty list of
// URLs, and a PUT of nothing empties what it names.
func stdinClosed(f *os.File) bool {
	fl, err := unix.FcntlInt(f.Fd(), unix.F_GETFL, 0)
	if err != nil {
		return true
	}
	return fl&unix.O_ACCMODE == unix.O_RDWR && fetch.IsNullDevice(f)
}

// stderrFile is stderr through a duplicate of descriptor 2. Go's runtime
// kills the process with SIGPIPE when a write to descriptors 1 or 2 meets
// a broken pipe; for stdout that is the point (141: the reader is gone),
// but a reader of stderr that went away (a log pipe that closed) must not
// cost a healthy check its verdict: through another descriptor, the write
// fails with EPIPE instead, which the log ignores.
func stderrFile() *os.File {
	fd, err := unix.FcntlInt(2, unix.F_DUPFD_CLOEXEC, 3)
	if err != nil {
		return os.Stderr
	}
	return os.NewFile(uintptr(fd), "/dev/stderr")
}

// inFlightBound is how many requests may be in flight at once within the
// process's open-file limit (Go raises the soft limit to the hard one at
// start): half of it less 64 for everything else (a dial may hold two
// sockets while it races addresses), at least 8.
func inFlightBound() int {
	var lim unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_NOFILE, &lim); err != nil || lim.Cur > 1<<20 {
		return 0 // unknown, or no practical bound
	}
	return max(8, (int(lim.Cur)-64)/2)
}
