package fetch

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"
)

// Request describes what to send on every attempt.
type Request struct {
	Method string
	URL    *url.URL
	Header http.Header
	// Body is sent on every attempt, the same bytes each time; nil: none.
	Body      []byte
	User      string // "user:password" for basic auth; empty: none
	UserAgent string
	Insecure  bool
	CACert    string // PEM bundle path; empty: system roots
	// MaxRedirs is the most redirects followed; 0 follows none.
	MaxRedirs int
	// MaxSize bounds the body after decompression; 0: unbounded.
	MaxSize int64
}

// ParseURL checks a URL for fetching: it must be absolute, http or https,
// and have a host. A missing scheme is taken as http, as curl does.
func ParseURL(raw string) (*url.URL, error) {
	if strings.TrimSpace(raw) == "" {
		return nil, errors.New("empty URL")
	}
	if !strings.Contains(raw, "://") {
		raw = "http://" + raw
	}
	u, err := url.Parse(raw)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return nil, fmt.Errorf("malformed URL %q: %v", Redact(raw), err)
	}
	switch strings.ToLower(u.Scheme) {
	case "http", "https":
	default:
		return nil, fmt.Errorf("unsupported scheme %q in %s (want http or https)", u.Scheme, RedactURL(u))
	}
	if u.Hostname() == "" {
		return nil, fmt.Errorf("URL %s has no host", RedactURL(u))
	}
	return u, nil
}

// ParseHeader parses one -H value, "Name: value". A name must be an HTTP
// token; CR or LF anywhere is rejected so no header can be smuggled in. An
// empty value ("Name:") removes a header refetch would otherwise send.
func ParseHeader(s string) (name, value string, err error) {
	if strings.ContainsAny(s, "\r\n\x00") {
		return "", "", fmt.Errorf("header %q contains a line break", s)
	}
	name, value, ok := strings.Cut(s, ":")
	if !ok {
		return "", "", fmt.Errorf("header %q has no colon (want 'Name: value')", s)
	}
	if name == "" {
		return "", "", fmt.Errorf("header %q has an empty name", s)
	}
	for i := 0; i < len(name); i++ {
		if !isTokenChar(name[i]) {
			return "", "", fmt.Errorf("header name %q contains %q", name, name[i])
		}
	}
	return http.CanonicalHeaderKey(name), strings.TrimSpace(value), nil
}

func isTokenChar(c byte) bool {
	if c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' {
		return true
	}
	return strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0
}

// NewClient builds the HTTP client of r: proxies from the environment,
// TLS settings, and a redirect policy that stops after r.MaxRedirs hops.
// Go's client already drops Authorization and Cookie headers on redirects
// to another host.
func NewClient(r *Request) (*http.Client, error) {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.Proxy = http.ProxyFromEnvironment
	// 1 MiB of response headers is plenty; net/http would allow 10 MiB.
	tr.MaxResponseHeaderBytes = 1 << 20
	tlsConf := &tls.Config{InsecureSkipVerify: r.Insecure} //nolint:gosec // -k asks for it
	if r.CACert != "" {
		pem, err := os.ReadFile(r.CACert)
		if err != nil {
			return nil, fmt.Errorf("--cacert: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("--cacert %s: no PEM certificates found", r.CACert)
		}
		tlsConf.RootCAs = pool
	}
	tr.TLSClientConfig = tlsConf
	maxRedirs := r.MaxRedirs
	return &http.Client{
		Transport: tr,
		CheckRedirect: func(req *http.Request, via []*http.Request) error {
			traceRedirect(req)
			if len(via) > maxRedirs {
				return fmt.Errorf("%w (more than %d)", ErrTooManyRedirects, maxRedirs)
			}
			return nil
		},
	}, nil
}

// newHTTPRequest builds one attempt's request.
func (r *Request) newHTTPRequest() (*http.Request, error) {
	req, err := http.NewRequest(r.Method, r.URL.String(), nil)
	if err != nil {
		return nil, err
	}
	if r.Body != nil {
		body := r.Body
		req.ContentLength = int64(len(body))
		req.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(body)), nil }
		req.Body, _ = req.GetBody()
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	if r.UserAgent != "" {
		req.Header.Set("User-Agent", r.UserAgent)
	}
	if r.User != "" {
		user, pass, _ := strings.Cut(r.User, ":")
		req.SetBasicAuth(user, pass)
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
// without net/http's URL prefix.
func (r *Request) send(ctx context.Context, client *http.Client, n int, h Hooks) (*http.Response, error) {
	req, err := r.newHTTPRequest()
	if err != nil {
		return nil, err
	}
	ctx, at := startTrace(ctx, n, h)
	req = req.WithContext(ctx)
	if h.OnRequest != nil {
		h.OnRequest(n, req)
	}
	resp, err := client.Do(req)
	if err != nil {
		return nil, at.fail(unwrapURLError(err))
	}
	at.respond(resp)
	if h.OnResponse != nil {
		h.OnResponse(n, resp)
	}
	return resp, nil
}
