package fetch

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/refetch/refetch/internal/fileinput"
	"github.com/refetch/refetch/internal/redact"
	"golang.org/x/net/idna"
)

// Request describes what to send on every attempt. Validate checks it
// before any attempt.
type Request struct {
	Method string
	URL    *url.URL
	Header http.Header
	// Body is sent on every attempt, the same bytes each time; nil: none.
	Body      []byte
	User      string // "user:password" for basic auth; empty: none
	UserAgent string
	Insecure  bool
	// RootCAs are the CAs trusted for TLS; nil: CACert, or the system roots.
	RootCAs *x509.CertPool
	// CACert is a PEM bundle path, read by NewClient when RootCAs is nil;
	// empty: system roots.
	CACert string
	// MaxRedirs is the most redirects followed; 0 follows none.
	MaxRedirs int
	// MaxSize bounds the body after decompression; 0: unbounded.
	MaxSize int64
	// Trace, when set, sends a W3C traceparent header with every attempt:
	// its trace id, a new span id per attempt (--traceparent).
	Trace *TraceContext
	// Pins are the --resolve entries: the addresses of host:port pairs
	// (dial.go); nil: DNS.
	Pins Pins
}

// ErrInvalid is wrapped by every error about input refetch will not send:
// a malformed URL, header, method, user agent or credentials, or a CA
// file without certificates. Such input is found before any request, so
// errors.Is(err, ErrInvalid) means nothing was sent. Each such error is an
// *InvalidError, which says which input it is about.
var ErrInvalid = errors.New("invalid request input")

// isInvisible reports a character that shows as nothing but makes a URL
// another (a byte order mark left by an editor or by cat of two files, a
// zero-width space pasted from a document): url.Parse's words for it
// ("empty port after ':'") point elsewhere.
func isInvisible(r rune) bool {
	switch r {
	case 0xfeff, 0x200b, 0x200c, 0x200d, 0x2060, 0x00ad:
		return true
	}
	return false
}

func invisibleHint(r rune) string {
	if r == 0xfeff {
		return " (a byte order mark: an editor or joined files put it there)"
	}
	return ""
}

// ParseURL checks a URL for fetching before anything is sent: it must be
// http or https, with a valid host (a DNS name or an IP literal) and port
// (1-65535), and hold no raw space or control character: a raw space in a
// script's URL is almost always a quoting bug, so it is refused rather than
// percent-encoded. A URL that starts with a host ("example.com",
// "example.com:8080/x") is taken as http, as curl does; "word:rest" has the
// scheme "word" (so "mailto:x@y" is an unsupported scheme, not host y).
// Userinfo credentials are allowed; no error shows their password.
func ParseURL(raw string) (*url.URL, error) {
	if strings.TrimSpace(raw) == "" {
		return nil, invalidf("empty URL: give an http:// or https:// URL")
	}
	if raw == "-" {
		return nil, invalidf(`invalid URL "-": refetch reads no URL from stdin; pass the URL itself as the argument`)
	}
	if i := strings.IndexFunc(raw, isCTL); i >= 0 {
		return nil, invalidf("invalid URL %q: %s", redact.RawURL(raw), ctlProblem(raw[i]))
	}
	if i := strings.IndexFunc(raw, isInvisible); i >= 0 {
		r, _ := utf8.DecodeRuneInString(raw[i:])
		where := "contains"
		if i == 0 {
			where = "starts with"
		}
		return nil, invalidf("invalid URL %q: it %s the invisible character %U%s; remove it", redact.RawURL(raw), where, r, invisibleHint(r))
	}
	if strings.ContainsRune(raw, ' ') {
		return nil, invalidf(`invalid URL %q: it contains a raw space, most often a quoting bug in the script; quote the variable ("$url") or write the space as %%20`, redact.RawURL(raw))
	}
	shown := redact.RawURL(raw)
	scheme, explicit := urlScheme(raw)
	switch {
	case scheme == "":
		if strings.HasPrefix(raw, "//") {
			raw = "http:" + raw
		} else {
			raw = "http://" + raw
		}
	case scheme != "http" && scheme != "https":
		// Only the scheme: the rest may hold a password.
		return nil, invalidf("unsupported scheme %q: refetch fetches http:// and https:// URLs only", scheme)
	case !explicit:
		return nil, invalidf("invalid URL %q: no host; want %s://host[:port]/path", shown, scheme)
	}
	u, err := url.Parse(raw)
	if err != nil && passwordHoldsDelimiter(raw) {
		// url.Parse cut the URL inside the password; its words (a "port"
		// that is the password's start) would show part of it.
		return nil, invalidf("invalid URL %q: its password holds '/', '?' or '#', which end a URL's host part; percent-encode them in the password (%%2F, %%3F, %%23)", shown)
	}
	if err != nil {
		// Our own words for the host and port when they are at fault.
		if herr := checkHostPort(rawHostPort(raw)); herr != nil {
			err = herr
		} else {
			var ue *url.Error
			if errors.As(err, &ue) {
				err = ue.Err
			}
		}
		return nil, invalidf("invalid URL %q: %v", shown, err)
	}
	if redact.Mangled(u) {
		// "http://user:12#secret@host/" parses, as the host "user" on port
		// 12: a password that starts with digits and holds '?' or '#'.
		return nil, invalidf("invalid URL %q: the part after the host holds an '@', as when a password holds '?' or '#'; percent-encode them in the password (%%3F, %%23)", shown)
	}
	if err := checkURL(u, shown); err != nil {
		return nil, err
	}
	return u, nil
}

// passwordHoldsDelimiter reports whether raw, a URL that did not parse,
// has a password (by internal/redact's reading: up to its last '@') that
// holds a '/', '?' or '#'.
func passwordHoldsDelimiter(raw string) bool {
	s := redact.Secrets(raw)
	return len(s) > 1 && strings.ContainsAny(s[1], "/?#")
}

// rawHostPort returns the host[:port] of a URL that may not parse: what
// follows "://" up to the path, without userinfo.
func rawHostPort(raw string) string {
	_, auth, _ := strings.Cut(raw, "://")
	if j := strings.IndexAny(auth, "/?#"); j >= 0 {
		auth = auth[:j]
	}
	if at := strings.LastIndexByte(auth, '@'); at >= 0 {
		auth = auth[at+1:]
	}
	// An IPv6 zone is escaped in a URL: [fe80::1%25eth0].
	return strings.ReplaceAll(auth, "%25", "%")
}

// urlScheme returns the lower-case scheme of raw, and whether "//"
// follows it. Without "//", a "word:" whose word has a dot, or that is
// followed by digits only (a port), starts a host instead: it returns "".
// http: and https: are always schemes.
func urlScheme(raw string) (scheme string, explicit bool) {
	i := strings.IndexByte(raw, ':')
	if i <= 0 || !isSchemeName(raw[:i]) {
		return "", false
	}
	scheme = strings.ToLower(raw[:i])
	rest := raw[i+1:]
	if strings.HasPrefix(rest, "//") {
		return scheme, true
	}
	if scheme == "http" || scheme == "https" {
		return scheme, false // http:/path, http:host
	}
	if strings.Contains(scheme, ".") {
		return "", false // example.com:abc — a host with a bad port
	}
	port := rest
	if j := strings.IndexAny(port, "/?#"); j >= 0 {
		port = port[:j]
	}
	if strings.Trim(port, "0123456789") == "" {
		return "", false // localhost:8080
	}
	return scheme, false
}

func isSchemeName(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z':
		case i > 0 && (c >= '0' && c <= '9' || c == '+' || c == '-' || c == '.'):
		default:
			return false
		}
	}
	return s != ""
}

// checkURL checks a parsed URL: scheme, host, port and userinfo. Messages
// show it as shown (the URL as given, password redacted).
func checkURL(u *url.URL, shown string) error {
	if u == nil {
		return invalidf("no URL given")
	}
	switch strings.ToLower(u.Scheme) {
	case "http", "https":
	case "":
		return invalidf("invalid URL %q: no scheme; want http:// or https://", shown)
	default:
		return invalidf("unsupported scheme %q: refetch fetches http:// and https:// URLs only", u.Scheme)
	}
	if u.Opaque != "" || u.Host == "" {
		return invalidf("invalid URL %q: no host; want %s://host[:port]/path", shown, strings.ToLower(u.Scheme))
	}
	if err := checkHostPort(u.Host); err != nil {
		return invalidf("invalid URL %q: %v", shown, err)
	}
	if u.User != nil {
		pass, _ := u.User.Password()
		if strings.IndexFunc(u.User.Username()+pass, isCTL) >= 0 {
			return invalidf("invalid URL %q: its credentials contain a control character", shown)
		}
	}
	return nil
}

// checkHostPort checks "host", "host:port", "[ipv6]" or "[ipv6]:port",
// the form of a URL's authority (without userinfo) and of a Host header.
// An empty port after ':' is refused: it is most often an unset variable.
func checkHostPort(hp string) error {
	host, port := hp, ""
	bracketed := strings.HasPrefix(hp, "[")
	if bracketed {
		end := strings.IndexByte(hp, ']')
		if end < 0 {
			return errors.New("missing ']' after the IPv6 address")
		}
		host, port = hp[1:end], hp[end+1:]
		if port != "" && port[0] != ':' {
			return fmt.Errorf("unexpected %q after the IPv6 address", port)
		}
		if port != "" {
			port = port[1:]
			if port == "" {
				return errors.New("empty port after ':'; give a port (1-65535) or drop the colon")
			}
		}
	} else if i := strings.LastIndexByte(hp, ':'); i >= 0 {
		if strings.IndexByte(hp[:i], ':') >= 0 {
			return fmt.Errorf("host %q: an IPv6 address needs brackets, e.g. [::1]:8080", hp)
		}
		host, port = hp[:i], hp[i+1:]
		if port == "" {
			return errors.New("empty port after ':'; give a port (1-65535) or drop the colon")
		}
	}
	if err := checkHost(host, bracketed); err != nil {
		return err
	}
	if port != "" {
		return checkPort(port)
	}
	return nil
}

// checkPort checks a port: digits only, 1 to 65535.
func checkPort(port string) error {
	if port == "" {
		return errors.New("the port is empty (want 1-65535)")
	}
	if strings.Trim(port, "0123456789") != "" {
		return fmt.Errorf("port %q is not a number (want 1-65535)", port)
	}
	if n, err := strconv.ParseUint(port, 10, 32); err != nil || n < 1 || n > 65535 {
		return fmt.Errorf("port %s is out of range (want 1-65535)", port)
	}
	return nil
}

// checkHost checks a host: inside brackets an IPv6 address (a zone is an
// interface name or number: [fe80::1%25eth0] in a URL); otherwise an IPv4
// address or a DNS name. A DNS name has labels of ASCII letters, digits,
// '-' and '_' (underscores are common in real names such as _dmarc or SRV
// targets), neither starting nor ending with '-', at most 63 bytes each and
// 253 in all, and may end in one dot.
// A name with non-ASCII letters must be a valid internationalized name
// and is checked in the xn-- form net/http sends. A name whose last label
// is numeric must be a dotted-quad IPv4 address, so "256.1.1.1" and
// "127.1" are refused rather than looked up.
func checkHost(host string, bracketed bool) error {
	if bracketed {
		addr, err := netip.ParseAddr(host)
		if err != nil || !addr.Is6() {
			return fmt.Errorf("host [%s] is not an IPv6 address", host)
		}
		if _, zone, ok := strings.Cut(host, "%"); ok {
			for _, c := range zone {
				if !(c < utf8.RuneSelf && (isAlnum(byte(c)) || strings.ContainsRune("-_.", c))) {
					return fmt.Errorf("IPv6 zone %q is not an interface name or number", zone)
				}
			}
		}
		return nil
	}
	if host == "" {
		return errors.New("no host; want host[:port]")
	}
	if addr, err := netip.ParseAddr(host); err == nil {
		if addr.Is6() {
			return fmt.Errorf("host %q: an IPv6 address needs brackets, e.g. [::1]", host)
		}
		return nil
	}
	name := strings.TrimSuffix(host, ".")
	if strings.IndexFunc(name, func(c rune) bool { return c >= utf8.RuneSelf }) >= 0 {
		if !utf8.ValidString(name) {
			return fmt.Errorf("host %q is not valid UTF-8", host)
		}
		// The conversion net/http makes before the lookup; the checks
		// below then see the name the resolver would.
		ascii, err := idna.Lookup.ToASCII(name)
		if err != nil {
			return fmt.Errorf("host %q is not a valid internationalized domain name; write its xn-- form", host)
		}
		name = ascii
	} else if strings.Contains(strings.ToLower(name), "xn--") {
		// An ASCII name with punycode labels: they must decode (an empty
		// "xn--" label decodes to nothing), or the resolver is asked for
		// a name no registry can hold.
		uni, err := idna.Punycode.ToUnicode(name)
		if err != nil || strings.Count(uni, ".") != strings.Count(name, ".") || strings.Contains("."+uni+".", "..") {
			return fmt.Errorf("host %q has an xn-- label that is not valid punycode", host)
		}
	}
	if len(name) > 253 {
		return fmt.Errorf("host name is %d bytes long (DNS allows 253)", len(name))
	}
	labels := strings.Split(name, ".")
	for _, label := range labels {
		if label == "" {
			return fmt.Errorf("host %q has an empty label (a leading dot or two dots in a row)", host)
		}
		if len(label) > 63 {
			return fmt.Errorf("host %q has a label of %d bytes (DNS allows 63)", host, len(label))
		}
		if label[0] == '-' || label[len(label)-1] == '-' {
			// RFC 1123: no label starts or ends with a hyphen; a leading
			// one is most often an option given where a URL was expected.
			return fmt.Errorf("host %q has a label that starts or ends with '-' (an option where the URL should be?)", host)
		}
		for _, c := range label {
			if !(c < utf8.RuneSelf && (isAlnum(byte(c)) || c == '-' || c == '_')) {
				return fmt.Errorf("host %q contains %q, which no host name can hold", host, c)
			}
		}
	}
	if last := labels[len(labels)-1]; strings.Trim(last, "0123456789") == "" {
		return fmt.Errorf("host %q looks like an IPv4 address but is not one (want four numbers 0-255)", host)
	}
	return nil
}

func isAlnum(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9'
}

// isCTL reports an ASCII control character (RFC 5234 CTL: 0x00-0x1f, 0x7f).
func isCTL(r rune) bool { return r < 0x20 || r == 0x7f }

// isFieldCTL reports a control character a header value cannot hold:
// every CTL but HTAB (RFC 9110 field-content).
func isFieldCTL(r rune) bool { return r != '\t' && isCTL(r) }

// ctlProblem describes a control character in a value, with what to do.
func ctlProblem(c byte) string {
	switch c {
	case '\r', '\n':
		return fmt.Sprintf("it contains a line break (%q); a value read from a file keeps its line ending (Windows files end lines in \\r): strip it", string(c))
	case '\t':
		return `it contains a tab ("\t"); remove it (in a URL, write %09)`
	}
	return fmt.Sprintf("it contains the control character %q; remove it", string(c))
}

// RedactRawURL returns a URL as the user typed it, parsed or not, with
// any password replaced (internal/redact).
func RedactRawURL(raw string) string { return redact.RawURL(raw) }

// ParseHeader parses one header argument, "Name: value" (RFC 9110 field syntax).
// The name must be a token, with nothing between it and the colon; the
// value, trimmed of spaces and tabs around it, may hold visible characters,
// spaces, tabs and bytes from 0x80 up, but no control character, so no
// header can be smuggled in. A Host value must be host[:port]. An empty
// value ("Name:") removes a header refetch would otherwise send. Errors
// never show the value of Authorization, Proxy-Authorization or Cookie.
func ParseHeader(s string) (name, value string, err error) {
	if i := strings.IndexAny(s, "\r\n"); i >= 0 {
		return "", "", headerInvalidf("header %s contains a line break (%q): give each header separately, and strip line endings read from files", shownHeader(s), string(s[i]))
	}
	name, value, ok := strings.Cut(s, ":")
	if !ok {
		return "", "", headerInvalidf("header %s has no colon; want 'Name: value'", shownHeader(s))
	}
	if err := checkHeaderName(name); err != nil {
		if mayHoldSecret(s) {
			return "", "", headerInvalidf("header %s: the name before the colon is not one token; want 'Name: value'", shownHeader(s))
		}
		return "", "", err
	}
	name = http.CanonicalHeaderKey(name)
	value = strings.Trim(value, " \t")
	if err := checkHeaderValue(name, value); err != nil {
		return "", "", err
	}
	return name, value, nil
}

// mayHoldSecret reports a header argument that may carry a credential,
// however it is broken: its first word (or any part of it) is a secret
// header's name by internal/redact's rule, or it names a scheme of one
// (Bearer, Basic).
func mayHoldSecret(s string) bool {
	l := strings.ToLower(s)
	return redact.SecretHeader(l) || strings.Contains(l, "bearer") || strings.Contains(l, "basic ")
}

// shownHeader is how a header argument that does not parse appears in an
// error: quoted, or, when it may carry a credential, only its first word
// (up to a space, '=' or ':'), since a malformed header is most often a
// missing colon between a name and its secret.
func shownHeader(s string) string {
	if !mayHoldSecret(s) {
		return fmt.Sprintf("%q", s)
	}
	first := s
	if i := strings.IndexAny(s, " \t=:"); i >= 0 {
		first = s[:i]
	}
	return fmt.Sprintf("%q… (the rest not shown)", first)
}

// checkHeaderName checks that name is an RFC 9110 token.
func checkHeaderName(name string) error {
	if name == "" {
		return headerInvalidf("header has an empty name; want 'Name: value'")
	}
	for i, r := range name {
		if r >= utf8.RuneSelf || !isTokenChar(name[i]) {
			return headerInvalidf("header name %q contains %q; a name is one token of letters, digits and !#$%%&'*+-.^_`|~, with nothing before the colon", name, string(r))
		}
	}
	return nil
}

// checkHeaderValue checks a value of header name (canonical): no control
// character but HTAB, and for Host, host[:port] or empty.
func checkHeaderValue(name, value string) error {
	shown := fmt.Sprintf("value %q", value)
	if IsSensitiveHeader(name) {
		shown = "value (not shown)"
	}
	if i := strings.IndexFunc(value, isFieldCTL); i >= 0 {
		return headerInvalidf("header %q %s: %s", name, shown, ctlProblem(value[i]))
	}
	if name == "Host" && value != "" {
		if err := checkHostPort(value); err != nil {
			return headerInvalidf("header \"Host\" value %q: %v", value, err)
		}
	}
	return nil
}

func isTokenChar(c byte) bool {
	return isAlnum(c) || strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0
}

func isToken(s string) bool {
	for i := 0; i < len(s); i++ {
		if !isTokenChar(s[i]) {
			return false
		}
	}
	return s != ""
}

// Validate checks everything r would send, so that bad input is refused
// before any request: the method (a token), the URL (as ParseURL), every
// header name and value (as ParseHeader), the user agent (a header value)
// and the credentials (no control character). Each error is an
// *InvalidError naming the field at fault; none shows a secret.
//
// Every request passes here before it is sent (fetch, each URL of a
// batch's input, check, probe), so here its secrets are registered with
// internal/redact (registerSecrets): every output then masks them, even
// where a server sends them back.
func (r *Request) Validate() error {
	r.registerSecrets()
	if !isToken(r.Method) {
		return invalid(FieldMethod, r.Method, "a method is one token of letters, digits and !#$%%&'*+-.^_`|~, e.g. GET or POST")
	}
	if err := checkURL(r.URL, RedactURL(r.URL)); err != nil {
		return err
	}
	for name, values := range r.Header {
		if err := checkHeaderName(name); err != nil {
			return err
		}
		for _, v := range values {
			if err := checkHeaderValue(http.CanonicalHeaderKey(name), v); err != nil {
				return err
			}
		}
	}
	if i := strings.IndexFunc(r.UserAgent, isFieldCTL); i >= 0 {
		return invalid(FieldUserAgent, r.UserAgent, "%s", ctlProblem(r.UserAgent[i]))
	}
	if i := strings.IndexFunc(r.User, isCTL); i >= 0 {
		// Only the kind of character: the value holds a password.
		return invalid(FieldUser, "", "%s", ctlProblem(r.User[i]))
	}
	return nil
}

// registerSecrets records with internal/redact the secret values r
// sends: the values of secret headers (the rule's), -u's credentials, the
// URL's password and secret query values, and the password of a proxy
// from the environment (sent as Proxy-Authorization), so that Text masks
// them in whatever a server or proxy sends back.
func (r *Request) registerSecrets() {
	for _, name := range proxyVars {
		if p := os.Getenv(name); p != "" {
			if !strings.Contains(p, "://") {
				p = "http://" + p // as net/http reads a proxy without a scheme
			}
			redact.RegisterURL(p)
		}
	}
	for name, values := range r.Header {
		for _, v := range values {
			redact.RegisterHeader(name, v)
		}
	}
	if user, pass, ok := strings.Cut(r.User, ":"); ok {
		redact.RegisterBasic(user, pass)
	}
	if u := r.URL; u != nil {
		if pass, ok := u.User.Password(); ok {
			redact.RegisterBasic(u.User.Username(), pass)
		}
		redact.RegisterURL(u.String())
	}
}

// proxyVars are the variables net/http takes a proxy from
// (http.ProxyFromEnvironment).
var proxyVars = []string{"HTTP_PROXY", "http_proxy", "HTTPS_PROXY", "https_proxy"}

// CheckProxyEnv checks the proxy variables net/http reads (proxyVars):
// each one set must be a proxy URL net/http can use, with a scheme of
// http, https, socks5 or socks5h (none: http), a host, and a port from 1
// to 65535 if one is given. net/http goes direct, or fails later with a
// DNS error about "http", when one is malformed: in a network where only
// the proxy may go out, a typo in its password would send the request
// around it. getenv is os.Getenv, which net/http reads too.
//
// Only the variable net/http would use for u is checked: HTTP_PROXY (else
// http_proxy) for an http URL, HTTPS_PROXY (else https_proxy) for https,
// none for a loopback host or with NO_PROXY=* (net/http proxies neither);
// a stale variable it never reads is no error of this run's.
func CheckProxyEnv(getenv func(string) string, u *url.URL) error {
	if u == nil || proxyBypassed(getenv, u.Hostname()) {
		return nil
	}
	names := []string{"HTTP_PROXY", "http_proxy"}
	if strings.EqualFold(u.Scheme, "https") {
		names = []string{"HTTPS_PROXY", "https_proxy"}
	}
	for _, name := range names {
		v := getenv(name)
		if v == "" {
			continue
		}
		u, err := url.Parse(v)
		if !strings.Contains(v, "://") && (err != nil || u.Scheme == "" || u.Host == "") {
			// net/http's own rule: a bare host:port is an http proxy.
			// (net/http prefixes a malformed http://… too, and then
			// dials a host named "http".)
			u, err = url.Parse("http://" + v)
		}
		why := ""
		switch {
		case err != nil:
			why = "not a URL"
			var ue *url.Error
			if errors.As(err, &ue) {
				why = "not a URL: " + redact.Text(ue.Err.Error())
			}
		case u.Scheme != "http" && u.Scheme != "https" && u.Scheme != "socks5" && u.Scheme != "socks5h":
			why = fmt.Sprintf("scheme %q: want http, https, socks5 or socks5h", u.Scheme)
		case u.Hostname() == "":
			why = "no host"
		case u.Port() != "":
			if p, perr := strconv.Atoi(u.Port()); perr != nil || p < 1 || p > 65535 {
				why = fmt.Sprintf("port %q: want 1 to 65535", u.Port())
			}
		}
		if why != "" {
			return fmt.Errorf("invalid %s=%q: %s (want a proxy URL such as http://host:3128)", name, redact.RawURL(v), why)
		}
		return nil // the first one set is the one net/http reads
	}
	return nil
}

// proxyBypassed reports whether net/http sends a request to host
// without a proxy whatever the variables say: localhost and loopback
// addresses, and NO_PROXY (or no_proxy) of "*".
func proxyBypassed(getenv func(string) string, host string) bool {
	if np := getenv("NO_PROXY"); np == "*" || np == "" && getenv("no_proxy") == "*" {
		return true
	}
	if strings.EqualFold(host, "localhost") || strings.HasSuffix(strings.ToLower(host), ".localhost") {
		return true
	}
	ip, err := netip.ParseAddr(host)
	return err == nil && ip.IsLoopback()
}

// LoadCACert reads the PEM bundle at path, the CA file. A file that
// cannot be read, or holds no parseable certificate (an empty file,
// garbage, a key only, a DER file), is an *InvalidError about
// FieldCACert; certificates that do not parse beside good ones are
// skipped, as x509.CertPool.AppendCertsFromPEM does.
func LoadCACert(path string) (*x509.CertPool, error) {
	data, err := fileinput.Read(path, fileinput.Max)
	if err != nil {
		var pe *fs.PathError
		if errors.As(err, &pe) {
			err = pe.Err
		}
		return nil, invalid(FieldCACert, path, "cannot read: %v", err)
	}
	pool := x509.NewCertPool()
	var (
		certs int
		other []string
	)
	for rest := data; ; {
		var block *pem.Block
		block, rest = pem.Decode(rest)
		if block == nil {
			break
		}
		if block.Type != "CERTIFICATE" {
			other = append(other, block.Type)
			continue
		}
		if cert, err := x509.ParseCertificate(block.Bytes); err == nil {
			pool.AddCert(cert)
			certs++
		}
	}
	switch {
	case certs > 0:
		return pool, nil
	case len(bytes.TrimSpace(data)) == 0:
		return nil, invalid(FieldCACert, path, "the file is empty; want PEM CA certificates (-----BEGIN CERTIFICATE-----)")
	case len(other) > 0:
		return nil, invalid(FieldCACert, path, "holds %s but no certificate; want the CA's certificate in PEM (-----BEGIN CERTIFICATE-----)", strings.Join(other, ", "))
	}
	if _, err := x509.ParseCertificate(data); err == nil {
		return nil, invalid(FieldCACert, path, "a DER certificate; convert it to PEM: openssl x509 -inform der -in FILE -out FILE.pem")
	}
	return nil, invalid(FieldCACert, path, "no PEM certificate in the file; want CA certificates (-----BEGIN CERTIFICATE-----)")
}

// sameOrigin reports whether a and b have the same scheme, host and port,
// default ports filled in: http://h/ and http://h:80/ are one origin.
// Hosts compare case-insensitively; "h" and "h." differ (the safe side).
func sameOrigin(a, b *url.URL) bool {
	return strings.EqualFold(a.Scheme, b.Scheme) && strings.EqualFold(a.Hostname(), b.Hostname()) &&
		portOf(a) == portOf(b)
}

func portOf(u *url.URL) string {
	if p := u.Port(); p != "" {
		if n, err := strconv.Atoi(p); err == nil {
			return strconv.Itoa(n) // :080 is :80
		}
		return p
	}
	if strings.EqualFold(u.Scheme, "https") {
		return "443"
	}
	return "80"
}

// NewClient builds the HTTP client of r: proxies from the environment,
// TLS settings (r.RootCAs, else the CA file r.CACert, else the
// system roots), and a redirect policy that stops after r.MaxRedirs hops
// and drops credentials once a hop leaves the first URL's origin.
//
// Credentials (Authorization, Proxy-Authorization, Cookie, and -u or URL
// userinfo, sent as Authorization) follow a redirect only while every hop
// keeps the first URL's scheme, host and port, as curl does since
// CVE-2022-27776. Go's client alone keeps them on https→http to the same
// host, on another port, and on subdomains. Once dropped they stay
// dropped, even if a later hop returns to the first origin (as Go's client
// does since CVE-2024-45336): the hop in between decided where it went.
func NewClient(r *Request) (*http.Client, error) {
	// http.DefaultTransport's settings, written out: cloning it first sets
	// up the default transport's own HTTP/2, which refetch never uses
	// (0.05 ms of every run). TestClientTransportKeepsTheDefaults holds
	// the two together.
	tr := &http.Transport{
		Proxy:                 http.ProxyFromEnvironment,
		ForceAttemptHTTP2:     true,
		MaxIdleConns:          100,
		IdleConnTimeout:       90 * time.Second,
		TLSHandshakeTimeout:   10 * time.Second,
		ExpectContinueTimeout: 1 * time.Second,
	}
	// Pinned addresses, and a run's failover between addresses (dial.go).
	dial := newDialer(r.Pins).DialContext
	tr.DialContext = func(ctx context.Context, network, addr string) (net.Conn, error) {
		c, err := dial(ctx, network, addr)
		if err != nil {
			return nil, err
		}
		// A plain TCP connection can splice a large body into its file
		// (splice_linux.go).
		return wrapConn(c), nil
	}
	// 1 MiB of response headers is plenty; net/http would allow 10 MiB.
	tr.MaxResponseHeaderBytes = 1 << 20
	tlsConf := &tls.Config{InsecureSkipVerify: r.Insecure, RootCAs: r.RootCAs} //nolint:gosec // -k asks for it
	if r.RootCAs == nil && r.CACert != "" {
		pool, err := LoadCACert(r.CACert)
		if err != nil {
			return nil, err
		}
		tlsConf.RootCAs = pool
	}
	tr.TLSClientConfig = tlsConf
	maxRedirs := r.MaxRedirs
	userReferer := r.Header.Get("Referer") != ""
	return &http.Client{
		Transport: redirectTransport{tr},
		CheckRedirect: func(req *http.Request, via []*http.Request) error {
			traceRedirect(req)
			if err := checkRedirectTarget(req); err != nil {
				return err
			}
			if len(via) > maxRedirs {
				if maxRedirs == 0 {
					return fmt.Errorf("%w (none are followed)", ErrTooManyRedirects)
				}
				return fmt.Errorf("%w (more than %d)", ErrTooManyRedirects, maxRedirs)
			}
			if !userReferer {
				// net/http sends the previous URL, query and all (a signed
				// URL's token), as the Referer of each hop; curl sends none.
				req.Header.Del("Referer")
			}
			// net/http copies the first request's headers onto every hop,
			// so the whole chain decides, not just the last step.
			for _, hop := range append(via[1:], req) {
				if !sameOrigin(via[0].URL, hop.URL) {
					// Every header internal/redact calls secret is a
					// credential for the first origin alone (-u and URL
					// userinfo become Authorization: see newHTTPRequest).
					for h := range req.Header {
						if redact.SecretHeader(h) {
							req.Header.Del(h)
						}
					}
					break
				}
			}
			return nil
		},
	}, nil
}

// newHTTPRequest builds one attempt's request. URL userinfo credentials
// are moved into an Authorization header (unless -u or -H gives one) so
// that the redirect policy treats every credential alike.
func (r *Request) newHTTPRequest() (*http.Request, error) {
	u := *r.URL
	u.User = nil
	req, err := http.NewRequest(r.Method, u.String(), nil)
	if err != nil {
		return nil, err
	}
	if r.Body != nil {
		body := r.Body
		req.ContentLength = int64(len(body))
		req.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(body)), nil }
		if len(body) == 0 {
			// http.NoBody, not an empty reader: net/http sends an empty
			// reader of length 0 chunked, with no Content-Length, which
			// servers that want a length refuse (curl -d '' sends 0).
			req.GetBody = func() (io.ReadCloser, error) { return http.NoBody, nil }
		}
		req.Body, _ = req.GetBody()
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	if r.UserAgent != "" {
		req.Header.Set("User-Agent", r.UserAgent)
	}
	switch {
	case r.User != "":
		user, pass, _ := strings.Cut(r.User, ":")
		req.SetBasicAuth(user, pass)
	case r.URL.User != nil:
		pass, _ := r.URL.User.Password()
		req.SetBasicAuth(r.URL.User.Username(), pass)
	}
	for name, values := range r.Header {
		if name == "Host" {
			if len(values) > 0 {
				req.Host = values[len(values)-1]
			}
			continue
		}
		req.Header.Del(name)
		for _, v := range values {
			if v != "" {
				req.Header.Add(name, v)
			}
		}
		if len(req.Header.Values(name)) == 0 && name == "User-Agent" {
			// net/http sends its own User-Agent unless the header is
			// present and empty.
			req.Header[name] = []string{""}
		}
	}
	return req, nil
}

// send performs attempt n of r with client under ctx, calling the request
// and response hooks around it and tracing it (trace.go: into the
// caller's AttemptTrace if ctx carries one). A transport error comes back
// without net/http's URL prefix. mods change the request before it goes
// (resume.go: the Range of a resumed body).
func (r *Request) send(ctx context.Context, client *http.Client, n int, h Hooks, mods ...func(*http.Request)) (*http.Response, error) {
	req, err := r.newHTTPRequest()
	if err != nil {
		return nil, err
	}
	for _, mod := range mods {
		mod(req)
	}
	ctx, at := startTrace(ctx, n, h)
	if r.Trace != nil {
		// One span id per attempt; the header in W3C's lowercase spelling.
		span := newSpanID()
		req.Header.Del("Traceparent")
		req.Header["traceparent"] = []string{r.Trace.header(span)}
		at.mu.Lock()
		at.SpanID = span
		at.mu.Unlock()
	}
	req = req.WithContext(ctx)
	if h.OnRequest != nil {
		h.OnRequest(n, req)
	}
	resp, err := client.Do(req)
	if err != nil {
		return nil, at.fail(redirectedError(req, err, unwrapURLError(err)))
	}
	at.respond(resp)
	if h.OnResponse != nil {
		h.OnResponse(n, resp)
	}
	return resp, nil
}

// redirectedError is err, the failure of req, naming the URL a redirect
// led to when that is where it failed: a redirect to a host that refused
// read as the checked URL refusing (a tour found it). wrapped is err
// without net/http's URL prefix; the classification sees the same.
func redirectedError(req *http.Request, err, wrapped error) error {
	var ue *url.Error
	if !errors.As(err, &ue) || ue.URL == "" || ue.URL == req.URL.String() {
		return wrapped
	}
	shown := redact.RawURL(ue.URL)
	if u, perr := url.Parse(ue.URL); perr == nil {
		shown = RedactURL(u)
	}
	return &RedirectedError{URL: shown, Err: wrapped}
}

// RedirectedError is an attempt that failed at the URL a redirect led to.
type RedirectedError struct {
	URL string // redacted
	Err error
}

func (e *RedirectedError) Error() string { return "redirected to \"" + e.URL + "\": " + e.Err.Error() }
func (e *RedirectedError) Unwrap() error { return e.Err }
