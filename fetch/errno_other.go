//go:build !windows

package fetch

import "syscall"

// refusedErrnos and resetErrnos are the system errors of a refused and of
// a reset connection, for ClassifyError.
var (
	refusedErrnos = []error{syscall.ECONNREFUSED}
	resetErrnos   = []error{syscall.ECONNRESET, syscall.ECONNABORTED, syscall.EPIPE}
)
