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
	"sort"
	"strings"
	"sync"
)

// Mask replaces a password.
const Mask = "REDACTED"

// RawURL returns raw with the password of its userinfo, and the values of
// query parameters whose names the secret rule calls secret (api_key,
// token, sig, …: SecretParam), replaced by Mask. Without "://", what precedes
// the last '@' is taken for userinfo: its part after a ':', or all of it
// without one, is the secret.
func RawURL(raw string) string {
	return maskQuery(rawURL(raw))
}

// maskQuery replaces the values of u's secret query parameters by Mask,
// in place (a value is replaced where it stands, never wherever its text
// occurs elsewhere in u).
func maskQuery(u string) string {
	head, q, ok := strings.Cut(u, "?")
	if !ok {
		return u
	}
	q, frag, hasFrag := strings.Cut(q, "#")
	parts := strings.Split(q, "&")
	changed := false
	for i, part := range parts {
		k, v, ok := strings.Cut(part, "=")
		if ok && v != "" && v != Mask && secretParam(k) {
			parts[i], changed = k+"="+Mask, true
		}
	}
	if !changed {
		return u
	}
	out := head + "?" + strings.Join(parts, "&")
	if hasFrag {
		out += "#" + frag
	}
	return out
}

// secretParam reports whether the query parameter named k (as written)
// is secret: the secret rule, applied to its unescaped name.
func secretParam(k string) bool {
	name, err := url.QueryUnescape(k)
	if err != nil {
		name = k
	}
	return SecretParam(name)
}

// minTextSecret is the shortest secret value scrubbed from free text
// (Secrets, Register): a shorter one ("1") would blot out every place its
// text occurs in a message. The URL itself masks every such value
// (RawURL).
const minTextSecret = 4

// minNamedTextSecret is minTextSecret for a query value secret only by
// its whole name (secretParamNames: sig, jwt, pass…): such names carry
// words too ("pass=true"), and a short word scrubbed from free text
// would blot out messages ("want REDACTED or false"). The credentials
// they name are long (a SAS signature, a JWT); the URL masks every one.
const minNamedTextSecret = 8

// querySecrets are the values, as written and unescaped, of u's secret
// query parameters of at least minTextSecret bytes, longest first (so
// that a value that holds another is replaced whole).
func querySecrets(u string) []string {
	_, q, ok := strings.Cut(u, "?")
	if !ok {
		return nil
	}
	q, _, _ = strings.Cut(q, "#")
	var out []string
	for _, part := range strings.Split(q, "&") {
		k, v, ok := strings.Cut(part, "=")
		if !ok || len(v) < minTextSecret || v == Mask || !secretParam(k) {
			continue
		}
		if name, err := url.QueryUnescape(k); (err != nil || !SecretHeader(name)) && len(v) < minNamedTextSecret {
			continue
		}
		out = append(out, v)
		if un, err := url.QueryUnescape(v); err == nil && un != v && len(un) >= minTextSecret {
			out = append(out, un)
		}
	}
	sort.Slice(out, func(i, j int) bool { return len(out[i]) > len(out[j]) })
	return out
}

// rawURL is RawURL for the userinfo's password only.
func rawURL(raw string) string {
	if strings.IndexByte(raw, '@') < 0 {
		// No userinfo without an '@' (most URLs): no parse needed. A
		// batch redacts each URL for every line it writes.
		return raw
	}
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
// userinfo, its password, the password unescaped, and its secret query
// values (see RawURL); none when it has none. For scrubbing messages that
// quote raw in pieces (a client library's parse error).
func Secrets(raw string) []string {
	return append(passwordSecrets(raw), querySecrets(raw)...)
}

func passwordSecrets(raw string) []string {
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
// a space or a quote. Compiled when first needed, not at every start.
var urlToken = sync.OnceValue(func() *regexp.Regexp {
	return regexp.MustCompile(`[A-Za-z][A-Za-z0-9+.-]*://[^\s"'<>]+`)
})

// Text returns s with every secret value this process's requests carry
// (Register) and the password and the secret query values of every URL in
// it replaced by Mask: the one function every output calls on text.
func Text(s string) string {
	s = maskValues(s)
	if !strings.Contains(s, "@") && !strings.Contains(s, "?") {
		return s
	}
	return urlToken().ReplaceAllStringFunc(s, RawURL)
}
