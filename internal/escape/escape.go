// Package escape makes text from outside (servers' words, keys, URLs)
// one harmless line: the control characters a terminal, a CI log or a
// line-based format would act on are escaped as Go writes them in a
// quoted string. One rule for stderr (cmd) and for reports (report).
package escape

import (
	"strconv"
	"strings"
	"unicode/utf8"
)

// Controls escapes the control characters of s — C0 (line breaks, ESC),
// DEL, C1 and invalid UTF-8 — as \n, \x1b, \u0085, \ufffd, leaving the
// rest as it is.
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
	return r < 0x20 || r == 0x7f || (r >= 0x80 && r < 0xa0) || r == utf8.RuneError
}
