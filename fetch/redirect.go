package fetch

import (
	"errors"
	"fmt"
	"net/http"
	"strings"
)

// ErrBadRedirect is returned when a server redirects to something refetch
// cannot follow: a Location that does not parse, another scheme than http
// or https, a host no resolver could find. Like too many redirects, it is
// the server's configuration, so it is final and leaves the breaker alone.
var ErrBadRedirect = errors.New("bad redirect")

// redirectTransport checks every redirect's Location before net/http does,
// so that a Location it cannot parse is ErrBadRedirect rather than
// net/http's untyped error (CheckRedirect sees only Locations that parsed).
type redirectTransport struct {
	*http.Transport
}

// RoundTrip sends req, then refuses a redirect response whose Location
// cannot be parsed.
func (t redirectTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := t.Transport.RoundTrip(req)
	if err != nil || !isRedirect(resp.StatusCode) {
		return resp, err
	}
	loc := resp.Header.Get("Location")
	if loc == "" {
		return resp, nil
	}
	if _, perr := req.URL.Parse(loc); perr != nil {
		resp.Body.Close()
		return nil, fmt.Errorf("%w: %d with a Location that is not a URL: %q", ErrBadRedirect, resp.StatusCode, Redact(loc))
	}
	return resp, nil
}

// checkRedirectTarget refuses a redirect to a URL refetch would refuse on
// its command line: another scheme, an impossible host or port.
func checkRedirectTarget(req *http.Request) error {
	switch strings.ToLower(req.URL.Scheme) {
	case "http", "https":
	default:
		return fmt.Errorf("%w: to %s, an unsupported scheme (%q)", ErrBadRedirect, RedactURL(req.URL), req.URL.Scheme)
	}
	if err := checkHostPort(req.URL.Host); err != nil {
		return fmt.Errorf("%w: to %s: %v", ErrBadRedirect, RedactURL(req.URL), err)
	}
	return nil
}

// isRedirect reports the statuses net/http follows.
func isRedirect(code int) bool {
	switch code {
	case http.StatusMovedPermanently, http.StatusFound, http.StatusSeeOther,
		http.StatusTemporaryRedirect, http.StatusPermanentRedirect:
		return true
	}
	return false
}

// TransportOf is the *http.Transport under a client NewClient built, nil
// for another client.
func TransportOf(c *http.Client) *http.Transport {
	switch t := c.Transport.(type) {
	case redirectTransport:
		return t.Transport
	case *http.Transport:
		return t
	}
	return nil
}
