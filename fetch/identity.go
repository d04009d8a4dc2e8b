package fetch

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"

	"github.com/refetch/refetch/internal/redact"
	"github.com/refetch/refetch/resilience"
)

// anonymousHeaders are the request headers that say nothing about who is
// asking: content negotiation, caching and connection control, tracing
// ids that change with every request. Every other header a caller sets
// is part of its identity, because a server may key its answer on any of
// them (X-Api-Key, X-Auth-Token, api-key, a tenant header, ...). The list
// is short on purpose: a header wrongly left in only makes two callers
// keep apart what they could have shared; one wrongly listed here would
// hand one caller's answer to another. Range and If-Range stay out of it
// (a partial answer is not the whole one), and so do the validators
// If-None-Match and If-Modified-Since (an ETag can be a tracking id).
// Names are lower case.
var anonymousHeaders = map[string]bool{
	"accept":                    true,
	"accept-charset":            true,
	"accept-encoding":           true,
	"accept-language":           true,
	"cache-control":             true,
	"connection":                true,
	"content-type":              true,
	"dnt":                       true,
	"keep-alive":                true,
	"pragma":                    true,
	"sec-gpc":                   true,
	"te":                        true,
	"traceparent":               true,
	"tracestate":                true,
	"upgrade-insecure-requests": true,
	"user-agent":                true,
	"x-correlation-id":          true,
	"x-request-id":              true,
}

// AnonymousHeaders returns the names (lower case, sorted) of the headers
// that are not part of a request's Identity; docs/degradation.md lists the same.
func AnonymousHeaders() []string {
	names := make([]string, 0, len(anonymousHeaders))
	for n := range anonymousHeaders {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// identityVersion starts the hashed text, so a later change of the rule
// cannot make an old identity equal a new, different one.
const identityVersion = "refetch-identity-v2"

// Identity is a hex SHA-256 of everything in r that may tell one caller
// from another, as the server will see it: every header set in r.Header
// except the anonymous ones (see anonymousHeaders), Host included, and the
// Authorization the request sends, however it was given (-u, the URL's
// userinfo, or -H, which wins, as in newHTTPRequest), so that one
// caller's credentials given three ways are one caller, and the query
// parameters the secret rule calls secret (?api_key=, ?token=). It is "" when r carries none of them, so that anonymous
// callers share. It keys the stale cache and a server's holds.
//
// Header names compare case-insensitively; the values of one name are
// taken as a set (sorted), so the order in which the same headers were
// given does not matter (whoever holds the same credentials in another
// order is the same caller). An empty value, which removes a header
// rather than sends one, counts as absent. The hashed text is
// length-prefixed, so no two different identities hash the same input;
// the credentials themselves never leave this function.
func (r *Request) Identity() string {
	type field struct {
		name   string
		values []string
	}
	var fields []field
	byName := map[string][]string{}
	if _, given := r.Header[http.CanonicalHeaderKey("Authorization")]; !given {
		// Basic auth as net/http's SetBasicAuth writes it.
		switch {
		case r.User != "":
			byName["authorization"] = []string{"Basic " + base64.StdEncoding.EncodeToString([]byte(r.User))}
		case r.URL != nil && r.URL.User != nil:
			pass, _ := r.URL.User.Password()
			byName["authorization"] = []string{"Basic " + base64.StdEncoding.EncodeToString([]byte(r.URL.User.Username()+":"+pass))}
		}
	}
	for name, values := range r.Header {
		lower := strings.ToLower(name)
		if anonymousHeaders[lower] {
			continue
		}
		for _, v := range values {
			if v == "" {
				continue
			}
			if lower == "host" {
				v = strings.ToLower(v)
			}
			byName[lower] = append(byName[lower], v)
		}
	}
	if r.URL != nil && r.URL.RawQuery != "" {
		// A credential in the query (?api_key=, ?token=: the parameters
		// the secret rule calls secret) tells callers apart as its
		// header would; "?" keeps the name apart from headers'.
		q, _ := url.ParseQuery(r.URL.RawQuery)
		for name, values := range q {
			if !redact.SecretHeader(name) { // the header rule: a signature (sig) is per URL, not per caller
				continue
			}
			for _, v := range values {
				if v != "" {
					byName["?"+name] = append(byName["?"+name], v)
				}
			}
		}
	}
	for name, values := range byName {
		sort.Strings(values)
		fields = append(fields, field{name, values})
	}
	if len(fields) == 0 {
		return ""
	}
	sort.Slice(fields, func(i, j int) bool { return fields[i].name < fields[j].name })
	var b strings.Builder
	put := func(s string) {
		b.WriteString(strconv.Itoa(len(s)))
		b.WriteByte(':')
		b.WriteString(s)
	}
	put(identityVersion)
	for _, f := range fields {
		put(f.name)
		b.WriteString(strconv.Itoa(len(f.values)))
		b.WriteByte(';')
		for _, v := range f.values {
			put(v)
		}
	}
	sum := sha256.Sum256([]byte(b.String()))
	return hex.EncodeToString(sum[:])
}

// staleKey is the stale-cache key of r: its method, its URL without
// credentials, and its Identity, so a body cached for one caller is never
// served to another. The credentials themselves never reach the cache:
// the key is hashed again into the entry's file name.
func (r *Request) staleKey() resilience.StaleKey {
	u := *r.URL
	u.User = nil
	return resilience.StaleKey{Method: r.Method, URL: u.String(), Identity: r.Identity()}
}
