package fetch

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
)

// TraceContext is the W3C trace context (https://www.w3.org/TR/trace-context/)
// a run sends with --traceparent: every attempt carries a traceparent
// header of version 00 with the run's one trace id and a span id
// (parent-id) of its own, made fresh for each attempt, so that the server's
// logs can tell the attempts of one run apart and find them all.
type TraceContext struct {
	// TraceID is 32 lowercase hex digits, not all zero.
	TraceID string
	// Flags are the trace flags, 2 hex digits: "01" (sampled) for a trace
	// refetch starts, the caller's own for one it continues.
	Flags string
}

// NewTraceContext starts a trace: a random trace id (crypto/rand),
// sampled.
func NewTraceContext() (*TraceContext, error) {
	id, err := randomHex(16)
	if err != nil {
		return nil, err
	}
	return &TraceContext{TraceID: id, Flags: "01"}, nil
}

// ErrBadTraceparent is wrapped by ParseTraceparent's errors.
var ErrBadTraceparent = errors.New("not a W3C traceparent of version 00")

// ParseTraceparent reads a traceparent header value the caller gives
// (-H traceparent:…) to continue its trace: its trace id and flags are
// kept, its parent id is replaced by each attempt's own span id. Only
// version 00 is read: 00-<32 hex>-<16 hex>-<2 hex>, lowercase, ids not
// all zero.
func ParseTraceparent(v string) (*TraceContext, error) {
	v = strings.TrimSpace(v)
	parts := strings.Split(v, "-")
	if len(parts) != 4 || parts[0] != "00" || !lowerHex(parts[1], 32) || !lowerHex(parts[2], 16) || !lowerHex(parts[3], 2) ||
		allZero(parts[1]) || allZero(parts[2]) {
		return nil, fmt.Errorf("%w (00-<32 hex digits>-<16 hex digits>-<2 hex digits>, lowercase, ids not all zero): %q", ErrBadTraceparent, excerpt(v, 80))
	}
	return &TraceContext{TraceID: parts[1], Flags: parts[3]}, nil
}

// header is the traceparent value of the attempt with span id span.
func (tc *TraceContext) header(span string) string {
	return "00-" + tc.TraceID + "-" + span + "-" + tc.Flags
}

// newSpanID is a random span id, 16 hex digits, not all zero. A failure of
// the system's random source (which crypto/rand documents as a crash on
// current systems) leaves the attempt without one rather than failing it.
func newSpanID() string {
	id, err := randomHex(8)
	if err != nil {
		return ""
	}
	return id
}

// randomHex is n random bytes in hex, drawn again in the (2^-64 or
// less) case that they are all zero, which the standard forbids.
func randomHex(n int) (string, error) {
	b := make([]byte, n)
	for {
		if _, err := rand.Read(b); err != nil {
			return "", err
		}
		if s := hex.EncodeToString(b); !allZero(s) {
			return s, nil
		}
	}
}

func lowerHex(s string, n int) bool {
	if len(s) != n {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}

func allZero(s string) bool { return strings.Trim(s, "0") == "" }
