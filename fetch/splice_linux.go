package fetch

import (
	"context"
	"errors"
	"io"
	"net"
	"os"
	"sync/atomic"

	"golang.org/x/sys/unix"
)

// wrapConn gives a plain TCP connection the means to hand the rest of a
// response body to a file without passing it through user space
// (spliceConn). Any other connection is returned as it is.
func wrapConn(c net.Conn) net.Conn {
	if tc, ok := c.(*net.TCPConn); ok {
		return &spliceConn{TCPConn: tc}
	}
	return c
}

// spliceConn is a plain TCP connection that remembers where its last read
// went, so that a reader of a response body can tell when net/http's
// buffer in front of it is empty: from then on the body's bytes are on
// the socket, and splice(2) can move them to a file directly.
//
// Embedding keeps every other method of *net.TCPConn, so net/http's own
// fast paths (sendfile for a request body through ReadFrom) still apply.
type spliceConn struct {
	*net.TCPConn
	last atomic.Pointer[byte] // &p[0] of the last Read
}

// Read implements net.Conn and notes where the bytes went.
func (c *spliceConn) Read(p []byte) (int, error) {
	if len(p) > 0 {
		c.last.Store(&p[0])
	}
	return c.TCPConn.Read(p)
}

// readBody reads r, the body of a response that arrives over c, into p,
// and reports whether the read went from the socket straight into p.
// net/http reads a body through a bufio.Reader, which reads the socket
// into the caller's slice only when its own buffer is empty (and the
// slice is at least as large as that buffer): after such a read nothing
// of the body is left in net/http's hands, and the rest is on the socket.
// This holds whatever size net/http gives its buffer. Only a read made
// during this call counts: the mark is cleared first.
func (c *spliceConn) readBody(r io.Reader, p []byte) (n int, direct bool, err error) {
	c.last.Store(nil)
	n, err = r.Read(p)
	return n, len(p) > 0 && c.last.Load() == &p[0], err
}

// spliceChunk bounds one round of spliceTo: what the pipe holds once grown
// (pipeSize), and how often added is told of progress.
const spliceChunk = pipeSize

// spliceTo moves the next n bytes of the connection to dst at dst's
// offset, through a pipe: socket to pipe, then pipe to file, both with
// splice(2), so the bytes are copied once (into the file's page cache)
// instead of twice (into user space, then into the page cache). added is
// called with the bytes put into dst as they go.
//
// The caller must own the connection's reading side: nothing else may read
// it meanwhile. A failure to read (the server's: a reset, a close before n
// bytes, a cancelled ctx, which closes the connection) is returned as
// rerr, a failure to write (ours: a full disk) as werr.
//
// Where the kernel refuses splice itself (a seccomp filter that forbids
// it, a file opened for appending, a file system without it), nothing is
// lost and nothing fails: the refusal is remembered for the process
// (spliceRefused), and the bytes go the ordinary way, through buf. If the
// very first splice is refused, or no pipe can be made, started is false
// and nothing has been read: the caller reads on through net/http.
func (c *spliceConn) spliceTo(ctx context.Context, dst *os.File, n int64, buf []byte, added func(int64)) (moved int64, started bool, rerr, werr error) {
	var p [2]int
	if err := unix.Pipe2(p[:], unix.O_CLOEXEC|unix.O_NONBLOCK); err != nil {
		return 0, false, nil, nil
	}
	pr, pw := p[0], p[1]
	defer unix.Close(pr)
	defer unix.Close(pw)
	capacity := 64 << 10
	if got, err := unix.FcntlInt(uintptr(pw), unix.F_SETPIPE_SZ, spliceChunk); err == nil {
		capacity = got
	}
	src, err := c.TCPConn.SyscallConn()
	if err != nil {
		return 0, false, nil, nil
	}
	out, err := dst.SyscallConn()
	if err != nil {
		return 0, false, nil, nil
	}
	for moved < n {
		// Socket to pipe: the pipe is empty, so only the socket can make
		// this wait, and it waits in Go's poller (a cancelled request
		// closes the connection, which ends the wait).
		var inPipe int
		var serr error
		err := src.Read(func(fd uintptr) bool {
			for {
				k, err := unix.Splice(int(fd), nil, pw, nil, int(min(n-moved, int64(capacity))), unix.SPLICE_F_MOVE|unix.SPLICE_F_NONBLOCK)
				switch {
				case errors.Is(err, unix.EINTR):
					continue
				case errors.Is(err, unix.EAGAIN):
					return false
				}
				inPipe, serr = int(k), err
				return true
			}
		})
		if err == nil {
			err = serr
		}
		if err != nil && spliceRefusal(err) {
			// Nothing left the socket: read the rest the ordinary way.
			spliceRefused.Store(true)
			if moved == 0 {
				return 0, false, nil, nil
			}
			m, rerr, werr := c.copyRest(ctx, dst, n-moved, buf, added)
			return moved + m, true, rerr, werr
		}
		if err != nil {
			return moved, true, c.readError(ctx, err), nil
		}
		if inPipe == 0 {
			// The server closed the connection before the end.
			return moved, true, io.ErrUnexpectedEOF, nil
		}
		// Pipe to file: a regular file does not wait in the poller.
		var ferr error
		cerr := out.Control(func(fd uintptr) {
			for inPipe > 0 {
				k, err := unix.Splice(pr, nil, int(fd), nil, inPipe, unix.SPLICE_F_MOVE)
				switch {
				case errors.Is(err, unix.EINTR):
					continue
				case err != nil:
					ferr = err
					return
				case k == 0:
					ferr = io.ErrShortWrite
					return
				}
				inPipe -= int(k)
				moved += k
				added(k)
			}
		})
		if cerr != nil {
			return moved, true, nil, cerr
		}
		if ferr != nil {
			// The file takes no splice (EINVAL for one opened to append),
			// or the write failed (a full disk): write what the pipe holds
			// the ordinary way, where a real failure fails again and is
			// reported as the write's, and go on without splice.
			if spliceRefusal(ferr) {
				spliceRefused.Store(true)
			}
			for inPipe > 0 {
				k, err := unix.Read(pr, buf[:min(len(buf), inPipe)])
				if errors.Is(err, unix.EINTR) {
					continue
				}
				if err != nil || k <= 0 {
					return moved, true, nil, &os.PathError{Op: "write", Path: dst.Name(), Err: ferr}
				}
				if _, err := dst.Write(buf[:k]); err != nil {
					return moved, true, nil, err
				}
				inPipe -= k
				moved += int64(k)
				added(int64(k))
			}
			m, rerr, werr := c.copyRest(ctx, dst, n-moved, buf, added)
			return moved + m, true, rerr, werr
		}
	}
	return moved, true, nil, nil
}

// copyRest reads the next n bytes of the connection through buf and
// writes them to dst: the way the rest of a body goes once splice has
// been refused after the first bytes left the socket (net/http counts
// those as unread, so it cannot take over again).
func (c *spliceConn) copyRest(ctx context.Context, dst *os.File, n int64, buf []byte, added func(int64)) (moved int64, rerr, werr error) {
	for moved < n {
		k, err := c.TCPConn.Read(buf[:min(int64(len(buf)), n-moved)])
		if k > 0 {
			if _, err := dst.Write(buf[:k]); err != nil {
				return moved, nil, err
			}
			moved += int64(k)
			added(int64(k))
		}
		switch {
		case err == io.EOF:
			return moved, io.ErrUnexpectedEOF, nil
		case err != nil:
			return moved, c.readError(ctx, err), nil
		}
	}
	return moved, nil, nil
}

// readError is err, a failure to read the connection, as the caller
// should see it: the context's cause when the context ended it (net/http
// closes the connection of a cancelled request), else a *net.OpError
// naming the connection, as a plain read's would.
func (c *spliceConn) readError(ctx context.Context, err error) error {
	if ctx.Err() != nil {
		return context.Cause(ctx)
	}
	var op *net.OpError
	if errors.As(err, &op) {
		return err
	}
	return &net.OpError{Op: "read", Net: "tcp", Source: c.LocalAddr(), Addr: c.RemoteAddr(), Err: os.NewSyscallError("read", err)}
}

// spliceRefusal reports whether err is the kernel refusing splice(2)
// itself rather than a failure of the socket: not implemented, forbidden
// (a seccomp filter, as some sandboxes install), or not supported for
// these descriptors.
func spliceRefusal(err error) bool {
	for _, e := range []error{unix.ENOSYS, unix.EPERM, unix.EACCES, unix.EINVAL, unix.EOPNOTSUPP} {
		if errors.Is(err, e) {
			return true
		}
	}
	return false
}
