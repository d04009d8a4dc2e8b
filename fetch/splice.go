package fetch

import (
	"context"
	"io"
	"os"
	"sync/atomic"
)

// spliceMin is what a body must be announced to be larger than to be
// moved from the socket to its file with splice(2) (Linux): the memory
// budget of a buffered body, past which it goes to a file anyway. Below
// it, the pipe and the closed connection (see splicer) would cost more
// than the copy they save.
const spliceMin = SpillThreshold

// splicer is a connection (Linux: spliceConn, a plain TCP connection)
// that can move the rest of a response body into a file without the bytes
// passing through user space. Once a body has been spliced, net/http
// still counts its bytes as unread, so closing the body closes the
// connection instead of keeping it alive: one new connection per large
// body, against a copy of every byte saved.
type splicer interface {
	readBody(r io.Reader, p []byte) (n int, direct bool, err error)
	spliceTo(ctx context.Context, dst *os.File, n int64, buf []byte, added func(int64)) (moved int64, started bool, rerr, werr error)
}

// spliceRefused is set once the kernel has refused splice(2) in this
// process (see spliceConn.spliceTo): later bodies are read the ordinary
// way at once.
var spliceRefused atomic.Bool

// appender is a sink's writer with a file underneath, positioned where the
// body's next byte goes, so that the rest of a body can be spliced into
// it.
type appender interface {
	// appendFile returns that file and a function to call with the number
	// of bytes put into it behind the writer's back; a nil file when the
	// body does not go to a file.
	appendFile() (*os.File, func(int64))
}

// spliceRest moves the rest of a body, total-n bytes, from sp's socket to
// app's file, reporting progress. handled is false when nothing was moved
// and the caller should go on reading the ordinary way.
func (f *fetcher) spliceRest(ctx context.Context, sp splicer, app appender, n, total int64, progress Progress) (moved int64, handled bool, err error) {
	file, added := app.appendFile()
	if file == nil {
		return 0, false, nil
	}
	moved, started, rerr, werr := sp.spliceTo(ctx, file, total-n, f.buf, func(k int64) {
		added(k)
		if progress != nil {
			progress.Add(int(k))
		}
	})
	switch {
	case !started:
		return 0, false, nil
	case werr != nil:
		return moved, true, markAs(errOutput, werr)
	case rerr != nil:
		return moved, true, &BodyCutError{Read: n + moved, Total: total, Streamed: f.cfg.Sink.Streams() && n+moved > 0, Err: rerr}
	}
	return moved, true, nil
}
