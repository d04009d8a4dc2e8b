package fetch

import (
	"compress/flate"
	"compress/gzip"
	"errors"
	"fmt"
	"strings"

	"github.com/refetch/refetch/resilience"
)

// Errors of the fetch layer. Classify makes each of them final: no retry
// can fix them.
var (
	// ErrTooManyRedirects is returned when a response redirects more often
	// than Request.MaxRedirs allows.
	ErrTooManyRedirects = errors.New("too many redirects")
	// ErrTooLarge is returned when a body exceeds Request.MaxSize.
	ErrTooLarge = errors.New("body exceeds the size limit")
	// ErrHeadersTooLarge is returned when the response headers exceed
	// MaxResponseHeaderBytes: a server that sends that much will send it
	// again.
	ErrHeadersTooLarge = errors.New("response headers exceed 1 MiB")
	// ErrBadGzip is returned when a body the transport decodes (sent with
	// Content-Encoding: gzip) is not valid gzip: the server sent what it
	// will send again; a body cut in transit is a BodyCutError instead.
	ErrBadGzip = errors.New("the body is not valid gzip (Content-Encoding: gzip)")
	// ErrPartialStream is returned when a streamed body was cut after some
	// of it had already been written to its destination: a retry would
	// duplicate data, so it is not retried.
	ErrPartialStream = errors.New("body cut short after streaming began")
	// ErrOutput wraps a failure to write locally (disk full, a closed
	// pipe, stdout unusable): the server is not at fault and a retry would
	// not help.
	ErrOutput = errors.New("writing output")
)

// errOutput is the package's short name for ErrOutput.
var errOutput = ErrOutput

// BodyCutError reports a body that ended before it was complete.
type BodyCutError struct {
	Read  int64 // bytes received
	Total int64 // the announced length, -1 if none
	// Streamed is set when some of the body had already been written to a
	// destination that shows it at once (-N): it is then not retried.
	Streamed bool
	Err      error
	// Resume is the byte the next attempt asks the server to continue
	// from (Range: bytes=Resume-, resume.go); 0 when it starts over.
	Resume int64
	// Restart says why a body partly received starts over on the next
	// attempt instead ("" when it resumes, or when resuming is off).
	Restart string
	// From is the byte the attempt's body continued a cut body from (0:
	// it started at byte 0); Read counts the bytes held before it too.
	From int64
	// StartedOver says why the attempt, which asked for the rest of a
	// cut body, got a whole body that was cut in turn ("" when it did
	// not): "the server sent a new version".
	StartedOver string
}

func (e *BodyCutError) Error() string {
	var msg string
	switch words := resilience.ClassifyTransport(e.Err).CutWords(); {
	case words != "" && e.Read == 0:
		msg = words + " before the body's first byte"
	case words != "":
		// The system's words ("read tcp 127.0.0.1:35080->…: connection
		// reset by peer") add nothing a person can act on.
		msg = words + " after " + e.progress()
	default:
		msg = "body cut short after " + e.progress() + ": " + e.Err.Error()
	}
	if e.StartedOver != "" {
		msg = "started over (" + e.StartedOver + "), then " + msg
	}
	if e.Streamed {
		msg += "; the body was partly streamed, so it is not retried"
	}
	return msg
}

// Unwrap exposes the read error and, for a streamed body, ErrPartialStream.
func (e *BodyCutError) Unwrap() []error {
	if e.Streamed {
		return []error{e.Err, ErrPartialStream}
	}
	return []error{e.Err}
}

// TimeoutDetail tells resilience.TimeoutError how far the body had come
// when the attempt's time ran out.
func (e *BodyCutError) TimeoutDetail() string {
	if e.Read == 0 {
		return ""
	}
	msg := "with " + e.progress() + " received"
	switch {
	case e.StartedOver != "":
		// A reader sees "resuming from byte N" next: say why N went
		// back (a tour read it right after an attempt had got further).
		msg += " (this attempt started over: " + e.StartedOver + ")"
	case e.From > 0:
		msg += " (this attempt resumed from byte " + groupDigits(e.From) + ")"
	}
	if e.Streamed {
		msg += "; the body was partly streamed, so it is not retried"
	}
	return msg
}

func (e *BodyCutError) progress() string {
	if e.Total > 0 {
		return BytesOf(e.Read, e.Total)
	}
	return FormatBytes(e.Read)
}

// BytesOf renders n bytes of total: "1.0 MiB of 2.9 MiB", or, when the
// two would read the same though they differ, the exact counts ("2,995,000
// of 3,000,000 bytes"): a body 5,000 bytes short must not read as whole.
func BytesOf(n, total int64) string {
	a, b := FormatBytes(n), FormatBytes(total)
	if a == b && n != total {
		return groupDigits(n) + " of " + groupDigits(total) + " bytes"
	}
	return a + " of " + b
}

// FormatBytes renders a byte count for messages: "512 B", "1.5 MiB".
func FormatBytes(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit && exp < 4; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTP"[exp])
}

// Classify is the fetch layer's resilience.ClassifyFunc: the failures only
// this layer knows (sizes, redirects, a partly streamed body, local output)
// are final and leave the breaker alone, because the server is not down;
// everything else is resilience.ClassifyPolicy's.
func Classify(method string, a resilience.Attempt, p resilience.Policy) resilience.Verdict {
	if a.Err != nil && final(a.Err) {
		return resilience.Verdict{Kind: resilience.Permanent, Breaker: resilience.Ignore, Err: a.Err}
	}
	var re *ResumeError
	if errors.As(a.Err, &re) {
		// The server answered, only not with the rest of this version:
		// the next attempt starts over; the server is not down.
		return resilience.Verdict{Kind: resilience.Retryable, Breaker: resilience.Ignore, Err: a.Err}
	}
	var (
		ue *UnaskedRangeError
		oe *OverrunError
	)
	if errors.As(a.Err, &ue) || errors.As(a.Err, &oe) {
		// The server answered with part of the body, or with more than
		// its range: the next attempt asks for all of it again, a
		// request sent again as any retry is (not for an unsafe method
		// without the caller's opt-in).
		if !p.RetryUnsafe && !resilience.Idempotent(method) {
			return resilience.Verdict{Kind: resilience.Permanent, Breaker: resilience.Ignore, Err: a.Err, UnsafeNotRetried: true}
		}
		return resilience.Verdict{Kind: resilience.Retryable, Breaker: resilience.Ignore, Err: a.Err}
	}
	return resilience.ClassifyPolicy(method, a, p)
}

// final reports the errors of this layer that no retry can fix.
func final(err error) bool {
	return errors.Is(err, ErrTooManyRedirects) || errors.Is(err, ErrBadRedirect) || errors.Is(err, ErrTooLarge) ||
		errors.Is(err, ErrHeadersTooLarge) || errors.Is(err, ErrPartialStream) || errors.Is(err, ErrOutput) ||
		errors.Is(err, ErrBadGzip)
}

// bodyReadError is the error of a failed read of a body, of which read
// bytes came: a gzip body that does not decode is ErrBadGzip, anything
// else a cut (a truncated gzip stream included: io.ErrUnexpectedEOF is
// what a cut connection looks like there too).
func bodyReadError(err error, read, total int64, streamed bool) error {
	var corrupt flate.CorruptInputError
	if errors.Is(err, gzip.ErrHeader) || errors.Is(err, gzip.ErrChecksum) || errors.As(err, &corrupt) {
		return fmt.Errorf("%w: %v", ErrBadGzip, err)
	}
	return &BodyCutError{Read: read, Total: total, Streamed: streamed, Err: err}
}

// headersTooLarge recognises net/http's error for response headers over
// Transport.MaxResponseHeaderBytes. net/http has no exported error for it,
// so this one message, which net/http has kept since Go 1.7, is the only
// place refetch looks at error text; it turns the error into the typed
// ErrHeadersTooLarge at once.
func headersTooLarge(err error) bool {
	return err != nil && strings.Contains(err.Error(), "server response headers exceeded")
}
