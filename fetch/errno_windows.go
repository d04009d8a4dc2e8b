//go:build windows

package fetch

import "syscall"

// wsaeconnrefused is Winsock's WSAECONNREFUSED, which package syscall does
// not name (golang.org/x/sys/windows does, with this value).
const wsaeconnrefused = syscall.Errno(10061)

// refusedErrnos and resetErrnos are the system errors of a refused and of
// a reset connection, for ClassifyError: Winsock reports its own numbers,
// not the POSIX ones package syscall invents for Windows.
var (
	refusedErrnos = []error{syscall.ECONNREFUSED, wsaeconnrefused}
	resetErrnos   = []error{syscall.ECONNRESET, syscall.ECONNABORTED, syscall.EPIPE,
		syscall.WSAECONNRESET, syscall.WSAECONNABORTED}
)
