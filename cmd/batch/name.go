package batch

import (
	"crypto/sha256"
	"encoding/hex"
	"net/url"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Template is the -o of a batch: text in which {n} stands for the
// URL's 1-based position in the input and {name} for its safe name (see
// safeName). Any other {word} is a usage error, so a typo such as {nmae}
// is caught before any request instead of naming every file alike.
type Template struct {
	parts []templatePart
}

type templatePart struct {
	text string // literal text, when kind is 0
	kind byte   // 0 literal, 'n' position, 's' safe name
}

// ParseTemplate parses an -o value for a batch.
func ParseTemplate(s string) (*Template, error) {
	t := &Template{}
	for len(s) > 0 {
		i := strings.IndexByte(s, '{')
		if i < 0 {
			t.parts = append(t.parts, templatePart{text: s})
			break
		}
		j := strings.IndexByte(s[i:], '}')
		word := ""
		if j > 0 {
			word = s[i+1 : i+j]
		}
		switch {
		case j > 0 && word == "n":
			t.parts = append(t.parts, templatePart{text: s[:i]}, templatePart{kind: 'n'})
		case j > 0 && word == "name":
			t.parts = append(t.parts, templatePart{text: s[:i]}, templatePart{kind: 's'})
		case j > 0 && isPlaceholderWord(word):
			return nil, usageErrorf("invalid -o %q: unknown placeholder {%s}; a batch's -o knows {n} (position in the input) and {name} (the URL's last path segment)", s, word)
		default:
			// A brace that opens no placeholder is text.
			t.parts = append(t.parts, templatePart{text: s[:i+1]})
			s = s[i+1:]
			continue
		}
		s = s[i+j+1:]
	}
	return t, nil
}

func isPlaceholderWord(w string) bool {
	if w == "" || len(w) > 32 {
		return false
	}
	for i := 0; i < len(w); i++ {
		c := w[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}

// Expand returns the output path of the URL u at position n.
func (t *Template) Expand(n int, u *url.URL) string {
	var b strings.Builder
	for _, p := range t.parts {
		switch p.kind {
		case 'n':
			b.WriteString(strconv.Itoa(n))
		case 's':
			b.WriteString(SafeName(u))
		default:
			b.WriteString(p.text)
		}
	}
	return b.String()
}

// maxNameBytes bounds a {name}: with the temporary file's prefix and
// suffix (".NAME.refetch-123456789") it stays under the 255 bytes most
// file systems allow in one name.
const maxNameBytes = 200

// SafeName is the {name} of u: the last segment of its path (the text
// after the last "/", without the query), percent-decoded, then made safe
// to use as one file name on every system, by one rule everywhere:
//   - "/", "\", the characters Windows refuses (: * ? " < > |), bytes
//     that are not UTF-8, and every character that is invisible or
//     changes how the rest is shown (see invisible: controls, bidi
//     overrides, zero-width and format characters, line and paragraph
//     separators, spaces other than U+0020) become "_";
//   - leading dots become "_" (no hidden files; "." and ".." cannot
//     appear), and so do trailing dots and spaces (Windows drops them);
//   - Windows device names (CON, NUL, COM1, … with any extension) get a
//     leading "_";
//   - an empty segment (".../dir/" or no path) is "index";
//   - a name longer than 200 bytes keeps its first 191 bytes plus "-" and
//     8 hex digits of a hash of the whole, so long names stay distinct.
func SafeName(u *url.URL) string {
	p := u.EscapedPath()
	seg := p[strings.LastIndexByte(p, '/')+1:]
	if dec, err := url.PathUnescape(seg); err == nil {
		seg = dec
	}
	var b strings.Builder
	for i := 0; i < len(seg); {
		r, size := utf8.DecodeRuneInString(seg[i:])
		switch {
		case r == utf8.RuneError && size <= 1:
			b.WriteByte('_')
		case invisible(r) || strings.ContainsRune(`/\:*?"<>|`, r):
			b.WriteByte('_')
		default:
			b.WriteString(seg[i : i+size])
		}
		i += size
	}
	name := []byte(b.String())
	for i := 0; i < len(name) && name[i] == '.'; i++ {
		name[i] = '_'
	}
	for i := len(name) - 1; i >= 0 && (name[i] == '.' || name[i] == ' '); i-- {
		name[i] = '_'
	}
	s := string(name)
	if s == "" {
		return "index"
	}
	if windowsDevice(s) {
		s = "_" + s
	}
	if len(s) > maxNameBytes {
		sum := sha256.Sum256([]byte(s))
		cut := maxNameBytes - 9
		for cut > 0 && !utf8.RuneStart(s[cut]) {
			cut--
		}
		s = s[:cut] + "-" + hex.EncodeToString(sum[:4])
	}
	return s
}

// invisible reports whether r must not appear in a file name because a
// person cannot see it, or it changes how the characters around it are
// shown: "%E2%80%AEtxt.exe" (U+202E, right-to-left override) shows as
// "exe.txt". It is the whole class, not a list of known tricks:
//   - Cc, controls (NUL, line breaks, escape, DEL, C1);
//   - Cf, format characters: bidi embeddings, overrides and isolates,
//     zero-width space and joiners, soft hyphen, word joiner, BOM, tags;
//   - Zl and Zp, the line and paragraph separators;
//   - Zs other than the space itself: no-break, en, em, thin and
//     ideographic spaces look like a space or like nothing;
//   - the other default-ignorable code points (Hangul fillers, combining
//     grapheme joiner, …) and variation selectors, which render as
//     nothing;
//   - Co and Cs (private use, surrogates) and noncharacters, which show
//     as nothing or as boxes that look alike.
func invisible(r rune) bool {
	switch {
	case r == ' ':
		return false
	case r < 0x20 || r == 0x7f:
		return true
	case r >= 0xFDD0 && r <= 0xFDEF, r&0xFFFE == 0xFFFE:
		return true
	}
	return unicode.In(r, unicode.Cc, unicode.Cf, unicode.Zl, unicode.Zp, unicode.Zs, unicode.Co, unicode.Cs,
		unicode.Other_Default_Ignorable_Code_Point, unicode.Variation_Selector)
}

// windowsDevice reports whether a file named s would be a device on
// Windows: CON, PRN, AUX, NUL, COM0-9, LPT0-9, with or without an
// extension, in any case.
func windowsDevice(s string) bool {
	base, _, _ := strings.Cut(s, ".")
	base = strings.ToUpper(strings.TrimRight(base, " "))
	switch base {
	case "CON", "PRN", "AUX", "NUL":
		return true
	}
	return len(base) == 4 && (strings.HasPrefix(base, "COM") || strings.HasPrefix(base, "LPT")) &&
		base[3] >= '0' && base[3] <= '9'
}

// HasPlaceholder reports whether the template names files apart.
func (t *Template) HasPlaceholder() bool {
	for _, p := range t.parts {
		if p.kind != 0 {
			return true
		}
	}
	return false
}
