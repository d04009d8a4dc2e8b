package redact

import (
	"encoding/base64"
	"net/http"
	"net/url"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
)

// The secret values of this process's requests. What the rule calls
// secret (a secret header's value, -u's credentials, a URL's password, a
// secret query value) is known where a request is built, and Register
// records it there; Text then replaces each registered value wherever it
// occurs, so that text a server sends back (a status text, a header, a
// body quoting the caller's key) shows none of them either. A value
// shorter than minTextSecret is not recorded: it would blot out every
// place its text occurs (the URL itself masks it where it stands).

// valueSet is an immutable set of registered values, longest first, with
// the replacer that masks them all.
type valueSet struct {
	has  map[string]bool
	list []string
	r    *strings.Replacer
}

var (
	regMu  sync.Mutex               // serializes writers
	values atomic.Pointer[valueSet] // nil: none registered
)

// Register records secret values to be masked in every text (Text):
// each value as given and URL-unescaped. Values shorter than
// minTextSecret are skipped. Safe for concurrent use; registering a value
// already known is cheap.
func Register(vals ...string) {
	var add []string
	cur := values.Load()
	for _, v := range vals {
		for _, form := range forms(v) {
			if len(form) >= minTextSecret && form != Mask && (cur == nil || !cur.has[form]) {
				add = append(add, form)
			}
		}
	}
	if len(add) == 0 {
		return
	}
	regMu.Lock()
	defer regMu.Unlock()
	cur = values.Load()
	next := &valueSet{has: map[string]bool{}}
	if cur != nil {
		for _, v := range cur.list {
			next.has[v] = true
		}
		next.list = append(next.list, cur.list...)
	}
	for _, v := range add {
		if !next.has[v] {
			next.has[v] = true
			next.list = append(next.list, v)
		}
	}
	if cur != nil && len(next.list) == len(cur.list) {
		return
	}
	// Longest first: strings.Replacer tries its pairs in order at each
	// position, so a value that holds another is replaced whole.
	sort.SliceStable(next.list, func(i, j int) bool { return len(next.list[i]) > len(next.list[j]) })
	pairs := make([]string, 0, 2*len(next.list))
	for _, v := range next.list {
		pairs = append(pairs, v, Mask)
	}
	next.r = strings.NewReplacer(pairs...)
	values.Store(next)
}

// forms are the texts a value may be echoed as: as given, URL-unescaped
// (path and query rules) and URL-escaped.
func forms(v string) []string {
	out := []string{v}
	if un, err := url.PathUnescape(v); err == nil && un != v {
		out = append(out, un)
	}
	if un, err := url.QueryUnescape(v); err == nil && un != v {
		out = append(out, un)
	}
	if esc := url.QueryEscape(v); esc != v {
		out = append(out, esc)
	}
	return out
}

// RegisterHeader records the value of header name when the rule calls
// the header secret (SecretHeader): the whole value, and its parts a
// server may quote alone: the credentials after an Authorization
// scheme ("Bearer X": X; "Basic B": B, and the user:password B decodes to
// and its password), and each cookie's value.
func RegisterHeader(name, value string) {
	if !SecretHeader(name) || value == "" {
		return
	}
	vals := []string{value}
	canon := http.CanonicalHeaderKey(name)
	switch {
	case canon == "Cookie" || canon == "Cookie2":
		for _, c := range strings.Split(value, ";") {
			if _, v, ok := strings.Cut(c, "="); ok {
				vals = append(vals, strings.TrimSpace(v))
			}
		}
	default:
		scheme, cred, ok := strings.Cut(strings.TrimSpace(value), " ")
		if !ok {
			break
		}
		cred = strings.TrimSpace(cred)
		vals = append(vals, cred)
		if strings.EqualFold(scheme, "Basic") {
			if dec, err := base64.StdEncoding.DecodeString(cred); err == nil {
				vals = append(vals, basicSecrets(string(dec))...)
			}
		}
	}
	Register(vals...)
}

// RegisterBasic records basic-auth credentials, "user:password" (-u, or
// a URL's userinfo unescaped): the pair, the password, and the base64
// an Authorization header carries them in.
func RegisterBasic(user, pass string) {
	if pass == "" {
		return
	}
	pair := user + ":" + pass
	Register(append(basicSecrets(pair), base64.StdEncoding.EncodeToString([]byte(pair)))...)
}

// basicSecrets are "user:password" and its password; none without a
// password.
func basicSecrets(pair string) []string {
	_, pass, ok := strings.Cut(pair, ":")
	if !ok || pass == "" {
		return nil
	}
	return []string{pair, pass}
}

// RegisterURL records the secrets of a URL as a user typed it: its
// userinfo's password (and the userinfo), and its secret query values
// (Secrets).
func RegisterURL(raw string) {
	Register(Secrets(raw)...)
}

// maskValues replaces every registered value in s by Mask.
func maskValues(s string) string {
	set := values.Load()
	if set == nil {
		return s
	}
	return set.r.Replace(s)
}
