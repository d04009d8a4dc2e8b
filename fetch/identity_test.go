package fetch

import (
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"
)

func identityOf(t *testing.T, raw string, build func(*Request)) string {
	t.Helper()
	u, err := url.Parse(raw)
	if err != nil {
		t.Fatal(err)
	}
	r := &Request{Method: "GET", URL: u, Header: http.Header{}}
	if build != nil {
		build(r)
	}
	return r.Identity()
}

func withHeader(name string, values ...string) func(*Request) {
	return func(r *Request) { r.Header[name] = append(r.Header[name], values...) }
}

func TestIdentityNoneIsEmpty(t *testing.T) {
	for name, build := range map[string]func(*Request){
		"nothing":      nil,
		"anonymous":    withHeader("Accept", "application/json"),
		"user agent":   func(r *Request) { r.UserAgent = "x/1"; r.Header["User-Agent"] = []string{"y/2"} },
		"empty value":  withHeader("X-Api-Key", ""),
		"tracing":      withHeader("Traceparent", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"),
		"lower anon":   withHeader("accept-language", "de"),
		"content type": withHeader("Content-Type", "application/json"),
	} {
		if id := identityOf(t, "http://h/x", build); id != "" {
			t.Errorf("%s: identity %q, want none", name, id)
		}
	}
}

// Every header a server may key on separates callers, whatever its name
// or case; the anonymous ones do not.
func TestIdentitySeparatesCallers(t *testing.T) {
	hex64 := regexp.MustCompile(`^[0-9a-f]{64}$`)
	cases := map[string]func(*Request){
		"x-api-key a":     withHeader("X-Api-Key", "key-a"),
		"x-api-key b":     withHeader("X-Api-Key", "key-b"),
		"api-key a":       withHeader("Api-Key", "key-a"),
		"x-auth-token a":  withHeader("X-Auth-Token", "key-a"),
		"authorization":   withHeader("Authorization", "Bearer key-a"),
		"cookie":          withHeader("Cookie", "s=key-a"),
		"proxy auth":      withHeader("Proxy-Authorization", "Basic key-a"),
		"host":            withHeader("Host", "tenant-a.example"),
		"tenant":          withHeader("X-Tenant", "a"),
		"range":           withHeader("Range", "bytes=0-9"),
		"-u":              func(r *Request) { r.User = "alice:pw" },
		"-u other":        func(r *Request) { r.User = "bob:pw" },
		"two keys":        withHeader("X-Api-Key", "key-a", "key-b"),
		"key and cookie":  func(r *Request) { withHeader("X-Api-Key", "key-a")(r); withHeader("Cookie", "s=key-a")(r) },
		"value with sep":  withHeader("X-A", "1:2"),
		"split elsewhere": withHeader("X-A-1", "2"),
	}
	seen := map[string]string{}
	for name, build := range cases {
		id := identityOf(t, "http://h/x", build)
		if !hex64.MatchString(id) {
			t.Fatalf("%s: identity %q is not a hex SHA-256", name, id)
		}
		if other, dup := seen[id]; dup {
			t.Errorf("%s and %s share an identity", name, other)
		}
		seen[id] = name
	}
	// The same credentials given as -u, in the URL or as the header they
	// become are one caller: the server sees one Authorization.
	inURL := identityOf(t, "http://alice:pw@h/x", nil)
	header := identityOf(t, "http://h/x", withHeader("Authorization", "Basic YWxpY2U6cHc="))
	if inURL == "" || seen[inURL] != "-u" || header != inURL {
		t.Errorf("URL credentials: identity %q (shared with %q), as a header %q; want -u's", inURL, seen[inURL], header)
	}
	// An explicit Authorization wins over -u, as on the wire.
	if id := identityOf(t, "http://h/x", func(r *Request) { r.User = "bob:pw"; withHeader("Authorization", "Basic YWxpY2U6cHc=")(r) }); id != inURL {
		t.Errorf("-u beside an explicit Authorization: identity %q, want the header's", id)
	}
}

// Names compare case-insensitively, values of one name as a set, and an
// anonymous header changes nothing: the same caller is one identity.
func TestIdentitySameCaller(t *testing.T) {
	base := identityOf(t, "http://h/x", withHeader("X-Api-Key", "k1", "k2"))
	for name, build := range map[string]func(*Request){
		"other order":      withHeader("X-Api-Key", "k2", "k1"),
		"lower-case name":  withHeader("x-api-key", "k1", "k2"),
		"split over cases": func(r *Request) { withHeader("x-api-key", "k2")(r); withHeader("X-API-KEY", "k1")(r) },
		"plus user agent":  func(r *Request) { withHeader("X-Api-Key", "k1", "k2")(r); r.UserAgent = "other/1" },
		"plus accept":      func(r *Request) { withHeader("X-Api-Key", "k1", "k2")(r); withHeader("Accept", "text/xml")(r) },
		"plus empty":       func(r *Request) { withHeader("X-Api-Key", "k1", "k2")(r); withHeader("Cookie", "")(r) },
	} {
		if id := identityOf(t, "http://h/x", build); id != base {
			t.Errorf("%s: identity differs from the same caller's", name)
		}
	}
	// Another URL or method: the identity is the caller's, not the request's.
	if id := identityOf(t, "https://other/y", withHeader("X-Api-Key", "k1", "k2")); id != base {
		t.Errorf("another URL changes the identity")
	}
	if a, b := identityOf(t, "http://h/x", withHeader("Host", "API.example")), identityOf(t, "http://h/x", withHeader("Host", "api.example")); a != b {
		t.Errorf("Host compares case-insensitively")
	}
}

// The identity never shows a credential, and the stale key carries the
// URL without its userinfo.
func TestIdentityHidesCredentials(t *testing.T) {
	u, _ := url.Parse("http://alice:secret-pw@h/x")
	r := &Request{Method: "GET", URL: u, Header: http.Header{"X-Api-Key": {"secret-key"}}, User: "bob:secret-u"}
	k := r.staleKey()
	for _, s := range []string{"secret-pw", "secret-key", "secret-u", "alice"} {
		if strings.Contains(k.URL, s) || strings.Contains(k.Identity, s) {
			t.Errorf("stale key %+v shows %q", k, s)
		}
	}
	if k.Identity != r.Identity() || k.URL != "http://h/x" {
		t.Errorf("stale key %+v", k)
	}
	if r.URL.User == nil {
		t.Errorf("staleKey changed the request's URL")
	}
}

func TestAnonymousHeadersSorted(t *testing.T) {
	names := AnonymousHeaders()
	for i := 1; i < len(names); i++ {
		if names[i-1] >= names[i] || strings.ToLower(names[i]) != names[i] {
			t.Fatalf("AnonymousHeaders: %v", names)
		}
	}
}

// A credential in the query string tells callers apart as its header
// does: one key's 429 hold must not hold another key, nor callers with
// none (a tour found ?api_key=A holding ?api_key=B). Other parameters
// are the request's, not the caller's.
func TestIdentityQueryCredentials(t *testing.T) {
	a := identityOf(t, "http://h/i?api_key=AAAA1111&status=429", nil)
	b := identityOf(t, "http://h/i?api_key=BBBB2222", nil)
	none := identityOf(t, "http://h/i", nil)
	if a == "" || b == "" || a == b || none != "" {
		t.Errorf("?api_key=A %q, ?api_key=B %q, none %q: want two identities and none", a, b, none)
	}
	if same := identityOf(t, "http://h/other?page=2&api_key=AAAA1111", nil); same != a {
		t.Errorf("the same key on another path with other parameters is another identity")
	}
	if id := identityOf(t, "http://h/i?page=2&q=x", nil); id != "" {
		t.Errorf("ordinary parameters make identity %q, want none", id)
	}
	if tok, hdr := identityOf(t, "http://h/i?token=t1", nil), identityOf(t, "http://h/i", withHeader("Token", "t1")); tok == "" || tok == hdr {
		t.Errorf("?token= and a Token header: %q, %q; want apart", tok, hdr)
	}
}
