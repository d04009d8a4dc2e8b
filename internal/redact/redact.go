// Package redact finds the password of a URL, as a user typed it, in
// text that is about to be shown: one rule for every layer (fetch's
// messages and reports, the Redis store's URL), so that no message can
// show what another hides.
//
// A password may hold any character, and one that holds '/', '?' or '#'
// (common in generated passwords) makes the URL unparsable, or parsable
// only as something else: "http://user:pa#ss@host" has the host "user"
// and the port "pa". So a URL that does not parse is taken to end its
// userinfo at its last '@', and everything from the userinfo's first ':'
// to there is the password. A URL that parses keeps the structure
// net/url gives it, so "http://host:8080/find?mail=a@b" shows as it is.
package redact

import (
	"net/url"
	"regexp"
	"strings"
)

// Mask replaces a password.
const Mask = "REDACTED"

// RawURL returns raw with the password of its userinfo replaced by Mask.
// Without "://", what precedes the last '@' is taken for userinfo: its
// part after a ':', or all of it without one, is the secret.
func RawURL(raw string) string {
	scheme, rest, ok := strings.Cut(raw, "://")
	if !ok {
		at := strings.LastIndexByte(raw, '@')
		if at < 0 {
			return raw
		}
		if user, _, hasPass := strings.Cut(raw[:at], ":"); hasPass {
			return user + ":" + Mask + raw[at:]
		}
		return Mask + raw[at:]
	}
	info, tail, ok := userinfo(raw, rest)
	if !ok {
		return raw
	}
	user, _, hasPass := strings.Cut(info, ":")
	if !hasPass {
		return raw
	}
	return scheme + "://" + user + ":" + Mask + tail
}

// Secrets returns the texts of raw that must never be shown: its
// userinfo, its password, and the password unescaped; none when it has no
// password. For scrubbing messages that quote raw in pieces (a client
// library's parse error).
func Secrets(raw string) []string {
	_, rest, ok := strings.Cut(raw, "://")
	if !ok {
		return nil
	}
	info, _, ok := userinfo(raw, rest)
	if !ok {
		return nil
	}
	_, pass, hasPass := strings.Cut(info, ":")
	if !hasPass || pass == "" {
		return nil
	}
	out := []string{info, pass}
	if un, err := url.PathUnescape(pass); err == nil && un != pass {
		out = append(out, un)
	}
	return out
}

// userinfo splits rest, raw after its "://", into the userinfo and what
// follows it (from the '@' on). A URL that parses ends its authority at
// the first '/', '?' or '#'; one that does not ends its userinfo at its
// last '@' (see the package comment).
func userinfo(raw, rest string) (info, tail string, ok bool) {
	end := len(rest)
	if u, err := url.Parse(raw); err == nil && !Mangled(u) {
		if i := strings.IndexAny(rest, "/?#"); i >= 0 {
			end = i
		}
	}
	at := strings.LastIndexByte(rest[:end], '@')
	if at < 0 {
		return "", "", false
	}
	return rest[:at], rest[at:], true
}

// Mangled reports whether u, a URL that parsed, is most likely one whose
// password starts with digits and holds a '?' or '#': "http://user:12#pw@host/"
// parses as the host "user" on port 12, with an '@' in the fragment. No
// real URL has an '@' in its query or fragment with a port and neither
// userinfo nor a path. Such a URL is read like one that did not parse.
func Mangled(u *url.URL) bool {
	return u.User == nil && u.Port() != "" && u.Path == "" && strings.Contains(u.RawQuery+u.Fragment, "@")
}

// urlToken is a URL in free text: a scheme, "://", and what follows up to
// a space or a quote.
var urlToken = regexp.MustCompile(`[A-Za-z][A-Za-z0-9+.-]*://[^\s"'<>]+`)

// Text returns s with the password of every URL in it replaced by Mask.
func Text(s string) string {
	if !strings.Contains(s, "@") {
		return s
	}
	return urlToken.ReplaceAllStringFunc(s, RawURL)
}
