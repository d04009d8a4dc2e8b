// Package escape makes text from outside (servers' words, keys, URLs)
// one harmless line: the control characters a terminal, a CI log or a
// line-based format would act on are escaped as Go writes them in a
// quoted string. One rule for stderr (cmd) and for reports (report).
package escape

import (
	"io"
	"strconv"
	"strings"
	"unicode/utf8"
)

// Controls escapes the control characters of s — C0 (line breaks, ESC),
// DEL, C1, invalid UTF-8 and the bidirectional controls that reorder a
// line as shown (U+202E and its kin: Trojan Source, CVE-2021-42574) — as
// \n, \x1b, \u0085, \ufffd, \u202e, leaving the rest as it is.
func Controls(s string) string {
	if strings.IndexFunc(s, IsControl) < 0 {
		return s
	}
	var b strings.Builder
	for _, r := range s {
		if IsControl(r) {
			q := strconv.QuoteRune(r)
			b.WriteString(q[1 : len(q)-1])
			continue
		}
		b.WriteRune(r)
	}
	return b.String()
}

// IsControl reports a rune Controls escapes.
func IsControl(r rune) bool {
	return r < 0x20 || r == 0x7f || (r >= 0x80 && r < 0xa0) || r == utf8.RuneError || isBidi(r)
}

// isBidi reports the bidirectional formatting characters: ALM, LRM, RLM,
// the embeddings and overrides, and the isolates.
func isBidi(r rune) bool {
	return r == 0x061c || r == 0x200e || r == 0x200f || (r >= 0x202a && r <= 0x202e) || (r >= 0x2066 && r <= 0x2069)
}

// JSON wraps w, which receives JSON text, so that the characters Controls
// escapes and encoding/json leaves raw (DEL, C1, the bidirectional
// controls) are written as \u escapes. In JSON they can occur only inside
// strings, where the escape means the same character: the data is
// unchanged, and a terminal or CI log showing the JSON does not act on
// them. Call Flush after the last Write: a character cut between two
// writes is held until its rest comes.
func JSON(w io.Writer) *JSONWriter { return &JSONWriter{w: w} }

// JSONWriter is JSON's writer.
type JSONWriter struct {
	w    io.Writer
	held []byte // the start of a character cut at the end of a write
	out  []byte
}

// Write implements io.Writer.
func (j *JSONWriter) Write(p []byte) (int, error) {
	n := len(p)
	if len(j.held) > 0 {
		p = append(j.held, p...)
		j.held = nil
	}
	j.out = j.out[:0]
	start := 0
	for i := 0; i < len(p); {
		c := p[i]
		if c < 0x7f {
			i++
			continue
		}
		if c >= 0x80 && !utf8.FullRune(p[i:]) {
			j.held = append([]byte(nil), p[i:]...)
			p = p[:i]
			break
		}
		r, size := utf8.DecodeRune(p[i:])
		if r == 0x7f || (r >= 0x80 && r < 0xa0) || isBidi(r) {
			const hex = "0123456789abcdef"
			j.out = append(j.out, p[start:i]...)
			j.out = append(j.out, '\\', 'u', hex[r>>12&0xf], hex[r>>8&0xf], hex[r>>4&0xf], hex[r&0xf])
			start = i + size
		}
		i += size
	}
	if start == 0 && len(j.out) == 0 {
		_, err := j.w.Write(p)
		return n, err
	}
	j.out = append(j.out, p[start:]...)
	_, err := j.w.Write(j.out)
	if cap(j.out) > 1<<20 {
		j.out = nil // not kept past a large write
	}
	return n, err
}

// Flush writes a held partial character as it is.
func (j *JSONWriter) Flush() error {
	if len(j.held) == 0 {
		return nil
	}
	_, err := j.w.Write(j.held)
	j.held = nil
	return err
}
