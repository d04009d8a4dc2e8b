package fetch

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"math/big"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

// checkMessage fails t unless err is one ErrInvalid line that holds want
// and none of the secrets.
func checkMessage(t *testing.T, what string, err error, want string, secrets ...string) {
	t.Helper()
	if err == nil {
		t.Errorf("%s: accepted", what)
		return
	}
	msg := err.Error()
	if !errors.Is(err, ErrInvalid) {
		t.Errorf("%s: %q is not ErrInvalid", what, msg)
	}
	if strings.ContainsAny(msg, "\r\n") {
		t.Errorf("%s: message is not one line: %q", what, msg)
	}
	if !strings.Contains(msg, want) {
		t.Errorf("%s: message %q does not say %q", what, msg, want)
	}
	for _, s := range secrets {
		if strings.Contains(msg, s) {
			t.Errorf("%s: message %q shows the secret %q", what, msg, s)
		}
	}
}

func TestParseURLAccepts(t *testing.T) {
	for in, want := range map[string]string{
		"http://example.test/a":               "http://example.test/a",
		"HTTPS://Example.test":                "https://Example.test",
		"example.test":                        "http://example.test",
		"example.test:8080/x?q=1#f":           "http://example.test:8080/x?q=1#f",
		"localhost:8080":                      "http://localhost:8080",
		"//example.test/p":                    "http://example.test/p",
		"http://_dmarc.example.test/":         "http://_dmarc.example.test/",
		"http://a-b.c_d.example.test./":       "http://a-b.c_d.example.test./",
		"http://127.0.0.1:1/":                 "http://127.0.0.1:1/",
		"http://h:65535/":                     "http://h:65535/",
		"http://[::1]:8080/":                  "http://[::1]:8080/",
		"http://[fe80::1%25eth0]/":            "http://[fe80::1%25eth0]/",
		"http://[fe80::1%252]/":               "http://[fe80::1%252]/",
		"http://alice:pw@example.test/":       "http://alice:pw@example.test/",
		"http://b%C3%BCcher.example/":         "http://b%C3%BCcher.example/",
		"http://bücher.example/":              "http://b%C3%BCcher.example/",
		"http://☃.net/":                       "http://%E2%98%83.net/",
		"http://xn--bcher-kva.example/":       "http://xn--bcher-kva.example/",
		"http://h/a%20b?q=%22x%22":            "http://h/a%20b?q=%22x%22",
		"http://h/path/with/ünïcode":          "http://h/path/with/%C3%BCn%C3%AFcode",
		"https://h.example/x?a=1&b=2;c":       "https://h.example/x?a=1&b=2;c",
		"http://host-with-1-digit.example1a/": "http://host-with-1-digit.example1a/",
	} {
		u, err := ParseURL(in)
		if err != nil || u.String() != want {
			t.Errorf("ParseURL(%q) = %v, %v; want %s", in, u, err, want)
		}
	}
}

func TestParseURLRejects(t *testing.T) {
	tests := []struct{ in, want string }{
		{"", "empty URL"},
		{"  ", "empty URL"},
		{"-", "reads no URL from stdin"},
		{"mailto:x@y", `unsupported scheme "mailto"`},
		{"ftp://h/", `unsupported scheme "ftp"`},
		{"file:///etc/passwd", `unsupported scheme "file"`},
		{"ftp://user:hunter2@host/", `unsupported scheme "ftp"`},
		{"javascript:alert(1)", `unsupported scheme "javascript"`},
		{"alice:hunter2@host", `unsupported scheme "alice"`},
		{"http://", "no host"},
		{"http:///path", "no host"},
		{"http:h", "no host"},
		{"https:/h/x", "no host"},
		{"/just/a/path", "no host"},
		{"http://h/a b", "raw space"},
		{"http://a b/", "raw space"},
		{" http://h/", "raw space"},
		{"http://alice:hunter2@h/a b", "raw space"},
		{"http://h/\r", "line break"},
		{"http://h/\n", "line break"},
		{"http://h/\x00", `"\x00"`},
		{"http://h/\x01", `"\x01"`},
		{"http://h/\x7f", `"\x7f"`},
		{"http://h/\tx", "tab"},
		{"http://alice:hunter2@h/\x01", `"\x01"`},
		{"http://[::1", "missing ']'"},
		{"http://[::1]x/", `unexpected "x"`},
		{"http://[1.2.3.4]/", "not an IPv6 address"},
		{"http://[nothost]/", "not an IPv6 address"},
		{"http://[fe80::1%25]/", "not an IPv6 address"},
		{"http://[fe80::1%25e%2Fth]/", "zone"},
		{"http://h:0/", "port 0 is out of range"},
		{"http://h:99999/", "port 99999 is out of range"},
		{"http://h:65536/", "out of range"},
		{"http://h:999999999999999999999/", "out of range"},
		{"http://h:-1/", `port "-1" is not a number`},
		{"http://h:abc/", `port "abc" is not a number`},
		{"example.test:abc", `port "abc" is not a number`},
		{"http://alice:hunter2@h:abc/", `port "abc"`},
		{"http://h:/", "empty port"},
		{"localhost:", "empty port"},
		{"http://a..b/", "empty label"},
		{"http://--help/", "starts or ends with '-'"},
		{"http://xn--zz.com/", "not valid punycode"},
		{"http://xn--.com/", "not valid punycode"},
		{"-x", "starts or ends with '-'"},
		{"http://a-.example/", "starts or ends with '-'"},
		{"http://.a/", "empty label"},
		{"http://./", "empty label"},
		{"http://h!x/", `contains '!'`},
		{"http://h<x>/", `contains '<'`},
		{"http://h%25x/", `contains '%'`},
		{"http://" + strings.Repeat("a", 64) + ".test/", "label of 64 bytes"},
		{"http://" + strings.Repeat("abcdefgh.", 32) + "test/", "DNS allows 253"},
		{"http://256.1.1.1/", "looks like an IPv4 address"},
		{"http://127.1/", "looks like an IPv4 address"},
		{"http://1.2.3.4.5/", "looks like an IPv4 address"},
		{"http://h/%zz", "invalid URL escape"},
		{"http://a\u200d.example/", "it contains the invisible character U+200D"},
		{"http://ü-.example/", "not a valid internationalized domain name"},
		{"http://" + strings.Repeat("aü", 31) + ".example/", "label of"},
		{"http://\xffx.example/", "not valid UTF-8"},
	}
	for _, tt := range tests {
		u, err := ParseURL(tt.in)
		if err == nil {
			t.Errorf("ParseURL(%q) = %v, accepted", tt.in, u)
			continue
		}
		checkMessage(t, "ParseURL("+tt.in+")", err, tt.want, "hunter2")
	}
}

func TestParseHeaderSyntax(t *testing.T) {
	accepts := []struct{ in, name, value string }{
		{"X-Api-Key: abc", "X-Api-Key", "abc"},
		{"x-a:\t v \t", "X-A", "v"},
		{"X-Empty:", "X-Empty", ""},
		{"X-Spaces:    ", "X-Spaces", ""},
		{"X-Inner: a \t b", "X-Inner", "a \t b"},
		{"X-Obs: caf\xc3\xa9 \xff", "X-Obs", "caf\xc3\xa9 \xff"},
		{"X-Punct: !\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~", "X-Punct", "!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~"},
		{"!#$%&'*+-.^_`|~: token", "!#$%&'*+-.^_`|~", "token"},
		{"Host: example.test", "Host", "example.test"},
		{"Host: example.test:8080", "Host", "example.test:8080"},
		{"Host: [::1]:8080", "Host", "[::1]:8080"},
		{"Host: 10.0.0.1", "Host", "10.0.0.1"},
		{"Host: under_score.example", "Host", "under_score.example"},
		{"Host:", "Host", ""},
		{"Host: bücher.example", "Host", "bücher.example"},
	}
	for _, tt := range accepts {
		name, value, err := ParseHeader(tt.in)
		if err != nil || name != tt.name || value != tt.value {
			t.Errorf("ParseHeader(%q) = %q, %q, %v; want %q, %q", tt.in, name, value, err, tt.name, tt.value)
		}
	}
	rejects := []struct{ in, want string }{
		{"NoColon", "no colon"},
		{"NoColon\r\nX: y", "line break"},
		{": value", "empty name"},
		{"Bad Name: x", `contains " "`},
		{"X-A : x", `contains " "`},
		{" X-A: x", `contains " "`},
		{"X\tA: x", `contains "\t"`},
		{"X(A): x", `contains "("`},
		{"X/A: x", `contains "/"`},
		{"X\"A: x", "contains"},
		{"Ünï: x", "contains"},
		{"X\x00: x", `contains "\x00"`},
		{"X-A: 1\r\nX-B: 2", "line break"},
		{"X-A: 1\nX-B: 2", "line break"},
		{"X-A: 1\r", "line break"},
		{"X-A: nul\x00", `"\x00"`},
		{"X-A: a\x01b", `"\x01"`},
		{"X-A: a\x7fb", `"\x7f"`},
		{"X-A: a\x1bb", `"\x1b"`},
		{"X-A: \x0b", `"\v"`},
		{"Host: a b", `contains ' '`},
		{"Host: a..b", "empty label"},
		{"Host: h:99999", "out of range"},
		{"Host: h:0", "out of range"},
		{"Host: h:x", "not a number"},
		{"Host: h:", "empty port"},
		{"Host: ::1", "needs brackets"},
		{"Host: [::1", "missing ']'"},
		{"Host: u@h", `contains '@'`},
		{"Host: h/p", `contains '/'`},
		{"Host: a\u200d.example", "internationalized"},
	}
	for _, tt := range rejects {
		name, value, err := ParseHeader(tt.in)
		if err == nil {
			t.Errorf("ParseHeader(%q) = %q, %q, accepted", tt.in, name, value)
			continue
		}
		checkMessage(t, "ParseHeader("+tt.in+")", err, tt.want)
	}
	for _, in := range []string{
		"Authorization: Bearer hunter2\x01",
		"authorization: Basic hunter2\r\nX: y",
		"Cookie: sid=hunter2\x7f",
		"Proxy-Authorization: Basic hunter2\x00",
	} {
		_, _, err := ParseHeader(in)
		checkMessage(t, "ParseHeader(secret)", err, "not shown", "hunter2")
	}
}

func validRequest() *Request {
	u, _ := url.Parse("https://alice:hunter2@example.test:8443/x")
	return &Request{Method: "GET", URL: u, UserAgent: "refetch/1.0", User: "bob:hunter2",
		Header: http.Header{"Accept": {"*/*"}, "Authorization": {"Bearer hunter2"}, "Host": {"other.test"}}}
}

func TestValidate(t *testing.T) {
	if err := validRequest().Validate(); err != nil {
		t.Fatalf("valid request refused: %v", err)
	}
	mustURL := func(s string) *url.URL {
		u, err := url.Parse(s)
		if err != nil {
			t.Fatal(err)
		}
		return u
	}
	tests := []struct {
		name   string
		change func(r *Request)
		field  Field
		want   string
	}{
		{"empty method", func(r *Request) { r.Method = "" }, FieldMethod, `invalid method ""`},
		{"method with a space", func(r *Request) { r.Method = "GET " }, FieldMethod, `invalid method "GET "`},
		{"method with CRLF", func(r *Request) { r.Method = "GET\r\nX:" }, FieldMethod, `invalid method`},
		{"method with a slash", func(r *Request) { r.Method = "GE/T" }, FieldMethod, `invalid method`},
		{"no URL", func(r *Request) { r.URL = nil }, FieldURL, "no URL"},
		{"ftp URL", func(r *Request) { r.URL = mustURL("ftp://h/") }, FieldURL, `unsupported scheme "ftp"`},
		{"opaque URL", func(r *Request) { r.URL = mustURL("http:h") }, FieldURL, "no host"},
		{"no host", func(r *Request) { r.URL = mustURL("http:///p") }, FieldURL, "no host"},
		{"port 99999", func(r *Request) { r.URL = mustURL("http://h:99999/") }, FieldURL, "out of range"},
		{"host with a space", func(r *Request) { r.URL = &url.URL{Scheme: "http", Host: "a b", Path: "/"} }, FieldURL, `contains ' '`},
		{"host with CR", func(r *Request) { r.URL = &url.URL{Scheme: "http", Host: "a\rb"} }, FieldURL, `contains '\r'`},
		{"userinfo with LF", func(r *Request) {
			r.URL = &url.URL{Scheme: "http", Host: "h", User: url.UserPassword("a", "hunter2\n")}
		}, FieldURL, "credentials contain a control character"},
		{"header name", func(r *Request) { r.Header["Bad Name"] = []string{"x"} }, FieldHeader, `header name "Bad Name"`},
		{"header value", func(r *Request) { r.Header["X-A"] = []string{"a\x01"} }, FieldHeader, `header "X-A"`},
		{"secret header value", func(r *Request) { r.Header["Cookie"] = []string{"sid=hunter2\r\n"} }, FieldHeader, "not shown"},
		{"Host value", func(r *Request) { r.Header["Host"] = []string{"a b"} }, FieldHeader, `header "Host" value "a b"`},
		{"user agent CRLF", func(r *Request) { r.UserAgent = "x\r\nX-Evil: 1" }, FieldUserAgent, `invalid user agent "x\r\nX-Evil: 1"`},
		{"user agent DEL", func(r *Request) { r.UserAgent = "x\x7f" }, FieldUserAgent, `invalid user agent`},
		{"user with LF", func(r *Request) { r.User = "bob:hunter2\n" }, FieldUser, "invalid credentials (value not shown)"},
		{"user with NUL", func(r *Request) { r.User = "bob\x00:hunter2" }, FieldUser, "invalid credentials (value not shown)"},
	}
	for _, tt := range tests {
		r := validRequest()
		tt.change(r)
		err := r.Validate()
		checkMessage(t, tt.name, err, tt.want, "hunter2")
		var ie *InvalidError
		if !errors.As(err, &ie) || ie.Field != tt.field {
			t.Errorf("%s: %#v is not an InvalidError about the %s", tt.name, err, tt.field)
		}
		if f := flagIn(err.Error()); f != "" {
			t.Errorf("%s: %q names the flag %s", tt.name, err, f)
		}
	}
}

func TestSameOrigin(t *testing.T) {
	tests := []struct {
		a, b string
		same bool
	}{
		{"http://h/", "http://h/other?x", true},
		{"http://h/", "http://h:80/", true},
		{"https://h/", "https://h:443/x", true},
		{"http://h:080/", "http://h/", true},
		{"http://H.Example/", "http://h.example/", true},
		{"HTTP://h/", "http://h/", true},
		{"http://[::1]:8080/", "http://[::1]:8080/x", true},
		{"https://h/", "http://h/", false},
		{"http://h/", "https://h/", false},
		{"https://h:443/", "http://h:443/", false},
		{"http://h/", "http://h:8080/", false},
		{"http://h:8080/", "http://h:8081/", false},
		{"http://h/", "http://sub.h/", false},
		{"http://127.0.0.1/", "http://localhost/", false},
		{"http://h/", "http://h./", false},
		{"http://[::1]/", "http://127.0.0.1/", false},
	}
	for _, tt := range tests {
		a, _ := url.Parse(tt.a)
		b, _ := url.Parse(tt.b)
		if got := sameOrigin(a, b); got != tt.same {
			t.Errorf("sameOrigin(%s, %s) = %v, want %v", tt.a, tt.b, got, tt.same)
		}
	}
}

// TestCheckRedirectCredentials drives the client's redirect policy along
// chains of hops, as net/http does: each hop starts with the first
// request's headers.
func TestCheckRedirectCredentials(t *testing.T) {
	client, err := NewClient(&Request{MaxRedirs: 10})
	if err != nil {
		t.Fatal(err)
	}
	creds := http.Header{"Authorization": {"Basic x"}, "Proxy-Authorization": {"Basic y"},
		"Cookie": {"sid=z"}, "Cookie2": {"v"}, "Accept": {"a/b"}}
	tests := []struct {
		name string
		hops []string // the first URL, then each redirect's target
		kept bool
	}{
		{"same origin", []string{"http://h/a", "http://h/b"}, true},
		{"same origin, default port spelled", []string{"http://h/a", "http://h:80/b", "http://H/c"}, true},
		{"https to http, same host and port", []string{"https://h:8443/", "http://h:8443/"}, false},
		{"https to http, default ports", []string{"https://h/", "http://h/"}, false},
		{"http to https", []string{"http://h/", "https://h/"}, false},
		{"another port", []string{"http://h:8080/", "http://h:8081/"}, false},
		{"another host", []string{"http://127.0.0.1:8080/", "http://localhost:8080/"}, false},
		{"a subdomain", []string{"http://h.example/", "http://api.h.example/"}, false},
		{"away and back", []string{"http://h/", "http://other/", "http://h/back"}, false},
		{"away and back, later hop", []string{"http://h/", "http://h/1", "https://h/2", "http://h/3"}, false},
	}
	for _, tt := range tests {
		var via []*http.Request
		for i, hop := range tt.hops {
			req, _ := http.NewRequest("GET", hop, nil)
			req.Header = creds.Clone()
			if i == 0 {
				via = append(via, req)
				continue
			}
			if err := client.CheckRedirect(req, via); err != nil {
				t.Fatalf("%s: %v", tt.name, err)
			}
			via = append(via, req)
		}
		last := via[len(via)-1].Header
		for _, h := range []string{"Authorization", "Proxy-Authorization", "Cookie", "Cookie2"} {
			if got := last.Get(h) != ""; got != tt.kept {
				t.Errorf("%s: %s kept = %v, want %v", tt.name, h, got, tt.kept)
			}
		}
		if last.Get("Accept") == "" {
			t.Errorf("%s: Accept dropped", tt.name)
		}
	}
}

func TestNewHTTPRequestCredentials(t *testing.T) {
	u, _ := url.Parse("http://alice:pw@h/x")
	tests := []struct {
		name string
		r    Request
		want string // Authorization sent
	}{
		{"URL userinfo", Request{URL: u}, "Basic YWxpY2U6cHc="},
		{"-u wins over the URL", Request{URL: u, User: "bob:s"}, "Basic Ym9iOnM="},
		{"-H wins over both", Request{URL: u, User: "bob:s", Header: http.Header{"Authorization": {"Bearer t"}}}, "Bearer t"},
		{"-H removes", Request{URL: u, Header: http.Header{"Authorization": {""}}}, ""},
	}
	for _, tt := range tests {
		tt.r.Method = "GET"
		req, err := tt.r.newHTTPRequest()
		if err != nil {
			t.Fatal(err)
		}
		if got := req.Header.Get("Authorization"); got != tt.want {
			t.Errorf("%s: Authorization %q, want %q", tt.name, got, tt.want)
		}
		if req.URL.User != nil {
			t.Errorf("%s: userinfo left in the URL sent: %s", tt.name, req.URL.Redacted())
		}
	}
}

// testCertPEM returns a self-signed CA certificate and its key, in PEM.
func testCertPEM(t *testing.T) (certPEM, keyPEM, der []byte) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "test CA"},
		NotBefore: time.Unix(0, 0), NotAfter: time.Unix(1<<33, 0), IsCA: true, BasicConstraintsValid: true}
	der, err = x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER}), der
}

func TestLoadCACert(t *testing.T) {
	dir := t.TempDir()
	cert, key, der := testCertPEM(t)
	write := func(name string, data []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, data, 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	for name, data := range map[string][]byte{
		"cert.pem":      cert,
		"bundle.pem":    append(append([]byte("comment line\n"), key...), cert...),
		"with-bad.pem":  append(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: []byte("junk")}), cert...),
		"crlf.pem":      []byte(strings.ReplaceAll(string(cert), "\n", "\r\n")),
		"two-certs.pem": append(append([]byte{}, cert...), cert...),
	} {
		pool, err := LoadCACert(write(name, data))
		if err != nil || pool == nil {
			t.Errorf("%s: %v", name, err)
		}
	}
	tests := []struct {
		name string
		path string
		want string
	}{
		{"empty", write("empty.pem", nil), "the file is empty"},
		{"blank", write("blank.pem", []byte(" \n\n")), "the file is empty"},
		{"garbage", write("garbage.pem", []byte("not a certificate\n")), "no PEM certificate"},
		{"key only", write("key.pem", key), "holds EC PRIVATE KEY but no certificate"},
		{"bad cert only", write("bad.pem", pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: []byte("junk")})), "no PEM certificate"},
		{"DER", write("cert.der", der), "DER certificate"},
		{"missing", filepath.Join(dir, "missing.pem"), "cannot read: no such file or directory"},
		{"directory", dir, "cannot read: is a directory"},
	}
	for _, tt := range tests {
		pool, err := LoadCACert(tt.path)
		if pool != nil {
			t.Errorf("%s: returned a pool", tt.name)
		}
		checkMessage(t, tt.name, err, tt.want)
		var ie *InvalidError
		if !errors.As(err, &ie) || ie.Field != FieldCACert || ie.Value != tt.path {
			t.Errorf("%s: %#v is not an InvalidError about the CA file %s", tt.name, err, tt.path)
		}
		if f := flagIn(err.Error()); f != "" {
			t.Errorf("%s: %q names the flag %s", tt.name, err, f)
		}
	}
	// NewClient uses the loaded pool rather than reading the file again.
	pool, _ := LoadCACert(filepath.Join(dir, "cert.pem"))
	client, err := NewClient(&Request{RootCAs: pool, CACert: filepath.Join(dir, "empty.pem")})
	if err != nil {
		t.Fatalf("NewClient read CACert despite RootCAs: %v", err)
	}
	if TransportOf(client).TLSClientConfig.RootCAs != pool {
		t.Error("NewClient did not use RootCAs")
	}
	if _, err := NewClient(&Request{CACert: filepath.Join(dir, "garbage.pem")}); !errors.Is(err, ErrInvalid) {
		t.Errorf("NewClient with a garbage CA file: %v", err)
	}
}

// TestParseHeaderNeverShowsASecret: a malformed -H is most often a missing
// colon between a name and its credential; the error shows the first word
// only.
func TestParseHeaderNeverShowsASecret(t *testing.T) {
	for _, in := range []string{
		"Authorization Bearer s3cr3t-token",
		"Cookie session=s3cr3t-token",
		"Authorization=Bearer s3cr3t-token: x",
		"X-Api-Key s3cr3t-token",
		"Authorization: Bearer s3cr3t-token\r\n",
	} {
		_, _, err := ParseHeader(in)
		if err == nil || strings.Contains(err.Error(), "s3cr3t") {
			t.Errorf("ParseHeader(%q) = %v", in, err)
		}
	}
	// Without a credential the whole argument is shown, to act on.
	if _, _, err := ParseHeader("Accept text/html"); err == nil || !strings.Contains(err.Error(), `"Accept text/html"`) {
		t.Errorf("err = %v", err)
	}
}

// TestClientTransportKeepsTheDefaults: NewClient writes out the settings
// of http.DefaultTransport instead of cloning it; every setting it does
// not mean to change must still be the default's.
func TestClientTransportKeepsTheDefaults(t *testing.T) {
	c, err := NewClient(&Request{URL: mustParseURL(t, "http://example.test/"), MaxRedirs: 5})
	if err != nil {
		t.Fatal(err)
	}
	got := c.Transport.(redirectTransport).Transport.Clone()
	want := http.DefaultTransport.(*http.Transport).Clone()
	// What NewClient sets on purpose.
	got.DialContext, want.DialContext = nil, nil
	got.TLSClientConfig, want.TLSClientConfig = nil, nil
	got.MaxResponseHeaderBytes, want.MaxResponseHeaderBytes = 0, 0
	got.Proxy, want.Proxy = nil, nil
	if !reflect.DeepEqual(got, want) {
		t.Errorf("transport differs from the default's:\n got %+v\nwant %+v", got, want)
	}
}

// An invisible character in a URL (a byte order mark from joined files, a
// zero-width space from a document) is named, not reported as url.Parse's
// "empty port" (a tour found that).
func TestParseURLInvisibleCharacters(t *testing.T) {
	for raw, want := range map[string]string{
		"\ufeffhttp://h/x":  "it starts with the invisible character U+FEFF (a byte order mark",
		"http://h/\u200bx":  "it contains the invisible character U+200B; remove it",
		"\u200dhttps://h/x": "it starts with the invisible character U+200D",
	} {
		if _, err := ParseURL(raw); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("ParseURL(%q) = %v, want %q", raw, err, want)
		}
	}
}
