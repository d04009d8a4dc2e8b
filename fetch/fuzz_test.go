package fetch

import (
	"bufio"
	"bytes"
	"errors"
	"net/http"
	"net/url"
	"strings"
	"testing"
)

// roundTrip writes req as HTTP/1.1 and reads it back, as a server would.
func roundTrip(t *testing.T, req *http.Request) *http.Request {
	t.Helper()
	var buf bytes.Buffer
	if err := req.Write(&buf); err != nil {
		t.Fatalf("writing the request: %v", err)
	}
	back, err := http.ReadRequest(bufio.NewReader(&buf))
	if err != nil {
		t.Fatalf("the request written does not parse: %v\n%q", err, buf.String())
	}
	return back
}

func FuzzParseHeader(f *testing.F) {
	for _, s := range []string{"X-A: 1", "Accept:", "NoColon", ": v", "A: b\r\nC: d", "Host: example.test",
		"X:\x00", "X: a\tb", "X: \x7f", "Host: [::1]:80", "Host: h:99999", "X: caf\xc3\xa9", "Bad Name: x", "Host:\u01bc"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		name, value, err := ParseHeader(s)
		if err != nil {
			if !errors.Is(err, ErrInvalid) || strings.ContainsAny(err.Error(), "\r\n") {
				t.Fatalf("%q: error %q is not one ErrInvalid line", s, err)
			}
			return
		}
		if !isToken(name) || strings.IndexFunc(value, isFieldCTL) >= 0 || value != strings.Trim(value, " \t") {
			t.Fatalf("%q parsed into unsafe header %q: %q", s, name, value)
		}
		r := &Request{Method: "GET", URL: mustParseURL(t, "http://example.test/"), Header: http.Header{name: {value}}}
		if err := r.Validate(); err != nil {
			t.Fatalf("%q parsed but does not validate: %v", s, err)
		}
		req, err := r.newHTTPRequest()
		if err != nil {
			t.Fatal(err)
		}
		back := roundTrip(t, req)
		switch {
		// net/http sends an IDN host as punycode.
		case name == "Host" && value != "" && checkHostPort(back.Host) != nil:
			t.Fatalf("%q: Host arrived as %q", s, back.Host)
		case name != "Host" && value != "" && back.Header.Get(name) != value:
			t.Fatalf("%q: %s arrived as %q, want %q", s, name, back.Header.Get(name), value)
		}
	})
}

func mustParseURL(t *testing.T, s string) *url.URL {
	t.Helper()
	u, err := ParseURL(s)
	if err != nil {
		t.Fatal(err)
	}
	return u
}

func FuzzParseURL(f *testing.F) {
	for _, s := range []string{"http://example.test/a", "example.test:8080/x", "HTTPS://h", "-", "mailto:x@y",
		"ftp://h/", "http://", "http:///p", "http://h/a b", "http://[::1", "http://[fe80::1%25eth0]:1/",
		"http://u:p@h:99999/", "http://a..b/", "http://_x.h/", "http://h/\r", "//h", "http://b%C3%BCcher/",
		"http://127.1/", "localhost:", "http://h/?q=<x>#f"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		u, err := ParseURL(s)
		if err != nil {
			if !errors.Is(err, ErrInvalid) || strings.ContainsAny(err.Error(), "\r\n") {
				t.Fatalf("%q: error %q is not one ErrInvalid line", s, err)
			}
			return
		}
		str := u.String()
		if u.Scheme != "http" && u.Scheme != "https" || u.Host == "" || strings.IndexFunc(str, func(r rune) bool { return r == ' ' || isCTL(r) }) >= 0 {
			t.Fatalf("%q accepted as %q", s, str)
		}
		if err := (&Request{Method: "GET", URL: u}).Validate(); err != nil {
			t.Fatalf("%q accepted but does not validate: %v", s, err)
		}
		again, err := ParseURL(str)
		if err != nil || again.String() != str {
			t.Fatalf("%q accepted as %q, which parses as %v, %v", s, str, again, err)
		}
		req, err := (&Request{Method: "GET", URL: u}).newHTTPRequest()
		if err != nil {
			t.Fatalf("%q: %v", s, err)
		}
		// net/http sends an IDN host as punycode and no IPv6 zone.
		if back := roundTrip(t, req); checkHostPort(back.Host) != nil {
			t.Fatalf("%q: Host %q arrived as %q", s, req.Host, back.Host)
		}
	})
}
