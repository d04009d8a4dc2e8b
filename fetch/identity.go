package fetch

import (
	"crypto/sha256"
	"encoding/hex"
	"net/http"
	"sort"
	"strings"

	"github.com/refetch/refetch/resilience"
)

// identityHeaders are the request headers that say who is asking: a body
// fetched with one of them may differ from the body another caller gets.
var identityHeaders = []string{"Authorization", "Cookie", "Proxy-Authorization", "Host"}

// staleKey is the stale-cache key of r: its method, its URL without
// credentials, and a hash of everything that identifies the caller (basic
// auth from -u or the URL, Authorization, Cookie, Proxy-Authorization, an
// explicit Host), so a body cached for one identity is never served to
// another. The credentials themselves never reach the cache: the key is
// hashed again into the entry's file name.
func (r *Request) staleKey() resilience.StaleKey {
	u := *r.URL
	var parts []string
	if u.User != nil {
		parts = append(parts, "userinfo="+u.User.String())
		u.User = nil
	}
	if r.User != "" {
		parts = append(parts, "user="+r.User)
	}
	for _, name := range identityHeaders {
		values := append([]string(nil), r.Header[http.CanonicalHeaderKey(name)]...)
		sort.Strings(values)
		for _, v := range values {
			parts = append(parts, name+"="+v)
		}
	}
	k := resilience.StaleKey{Method: r.Method, URL: u.String()}
	if len(parts) > 0 {
		sum := sha256.Sum256([]byte(strings.Join(parts, "\x00")))
		k.Identity = hex.EncodeToString(sum[:])
	}
	return k
}
