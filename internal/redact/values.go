package redact

import (
	"encoding/base64"
	"encoding/json"
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

// maxValues bounds the registry: a batch of signed URLs has a secret per
// URL, and the registry must not grow with the input without bound
// (memory stays flat). Past it, a value is still masked where it stands
// (its URL, its header) but not searched for in free text. 100,000
// values cost about 30 MB.
var maxValues = 100_000

var (
	regMu sync.Mutex
	// has and list are the registered values, in the order registered;
	// guarded by regMu.
	has  = map[string]bool{}
	list []string
	// dirty says that list holds values the replacer does not: the next
	// Text builds it anew (once, however many were registered since, so a
	// batch that registers a value per URL costs one build, not one per
	// URL).
	dirty atomic.Bool
	// replacer masks every registered value; nil: none registered.
	replacer atomic.Pointer[strings.Replacer]
)

// Register records secret values to be masked in every text (Text):
// each value as given, URL-unescaped and URL-escaped. Values shorter than
// minTextSecret are skipped. Safe for concurrent use; registering a value
// already known is cheap.
func Register(vals ...string) {
	regMu.Lock()
	defer regMu.Unlock()
	for _, v := range vals {
		for _, form := range forms(v) {
			if len(form) >= minTextSecret && form != Mask && !has[form] && len(list) < maxValues {
				has[form] = true
				list = append(list, form)
				dirty.Store(true)
			}
		}
	}
}

// currentReplacer returns the replacer of every registered value, built
// anew when values came since the last build; nil when there are none.
func currentReplacer() *strings.Replacer {
	if !dirty.Load() {
		return replacer.Load()
	}
	regMu.Lock()
	defer regMu.Unlock()
	if dirty.Load() {
		// Longest first: strings.Replacer tries its pairs in order at each
		// position, so a value that holds another is replaced whole.
		sorted := append([]string(nil), list...)
		sort.SliceStable(sorted, func(i, j int) bool { return len(sorted[i]) > len(sorted[j]) })
		pairs := make([]string, 0, 2*len(sorted))
		for _, v := range sorted {
			pairs = append(pairs, v, Mask)
		}
		replacer.Store(strings.NewReplacer(pairs...))
		dirty.Store(false)
	}
	return replacer.Load()
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
	// As a JSON string quotes it: a server's error body quoting the key
	// it got ({"error":"invalid key ab\/cd…"}), escaped the way Go's
	// encoding/json (& < > as \u0026…) or PHP's json_encode (/ as \/)
	// writes it (a tour found both shown unmasked in check's excerpts).
	for _, f := range out[:len(out):len(out)] {
		for _, j := range jsonForms(f) {
			if j != f {
				out = append(out, j)
			}
		}
	}
	return out
}

// jsonForms are v inside a JSON string, without the quotes: escaped as
// encoding/json does with and without its HTML escaping, and each with
// "/" written "\/" as PHP does.
func jsonForms(v string) []string {
	var forms []string
	for _, html := range []bool{true, false} {
		var b strings.Builder
		enc := json.NewEncoder(&b)
		enc.SetEscapeHTML(html)
		if enc.Encode(v) != nil {
			continue
		}
		q := strings.TrimSuffix(b.String(), "\n")
		q = q[1 : len(q)-1]
		forms = append(forms, q, strings.ReplaceAll(q, "/", `\/`))
	}
	return forms
}

// RegisterHeader records the value of header name when the rule calls
// the header secret (SecretHeader): the whole value, and its parts a
// server may quote alone: the credentials after an Authorization
// scheme ("Bearer X": X; "Basic B": B, and the user:password B decodes to
// and its password), the values of auth parameters with secret names
// ("Signature=S": S), and each cookie's value.
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
		// Auth parameters ("Credential=…, Signature=…") whose names the
		// rule calls secret: a server may quote one alone.
		for _, param := range strings.Split(cred, ",") {
			if k, v, ok := strings.Cut(strings.TrimSpace(param), "="); ok && SecretHeader(k) {
				vals = append(vals, strings.Trim(v, `"`))
			}
		}
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
	r := currentReplacer()
	if r == nil {
		return s
	}
	return r.Replace(s)
}
