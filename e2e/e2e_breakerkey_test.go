package e2e

import (
	"net/url"
	"strings"
	"testing"
)

// One origin is one breaker however its URL writes it: the breaker a
// dead 127.0.0.1 opened stops a URL that names it as an IPv4-mapped IPv6
// address, with an upper-case scheme and an explicit default-less port
// with a leading zero. A --breaker-key is used as given.
func TestE2EBreakerKeyIsCanonical(t *testing.T) {
	t.Parallel()
	var c counter
	srv := downServer(t, &c)
	u, _ := url.Parse(srv.URL)
	e := newEnv(t)
	e.run(args("-n", "3", srv.URL)...).wantCode(t, 4)
	before := c.get()
	for _, other := range []string{
		"HTTP://[::FFFF:127.0.0.1]:0" + u.Port() + "/x",
		"http://[0:0:0:0:0:ffff:7f00:1]:" + u.Port(),
	} {
		r := e.run(args("-n", "3", other)...)
		r.wantCode(t, 5)
		if !strings.Contains(r.stderr, "http://127.0.0.1:"+u.Port()) {
			t.Errorf("%s: stderr does not name the canonical key:\n%s", other, r.stderr)
		}
	}
	if c.get() != before {
		t.Errorf("%d requests sent through an open breaker", c.get()-before)
	}
	// A key given by hand is another breaker, even when it differs only
	// in case.
	e.run(args("-n", "1", "--breaker-key", "HTTP://127.0.0.1:"+u.Port(), srv.URL)...).wantCode(t, 4)
	if c.get() != before+1 {
		t.Errorf("--breaker-key was canonicalized: %d requests, want 1", c.get()-before)
	}
}
