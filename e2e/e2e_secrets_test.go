package e2e

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/refetch/refetch/internal/redistest"
)

// TestE2EOneSecretThroughEveryOutput sends one secret through every path
// out of the program (errors, -v, --json, batch JSON Lines, check, probe,
// usage errors, a redirect, a failover message) and finds it in none. The
// secret rides in a credential header, headers that only look like keys,
// one named by --secret-header, a URL password, query parameters named
// like keys and a Redis password.
func TestE2EOneSecretThroughEveryOutput(t *testing.T) {
	t.Parallel()
	const secret = "s3cr3t-Zq9-wombat"
	var mu sync.Mutex
	var leakedTo []string
	other := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		for name, vals := range r.Header {
			if strings.Contains(strings.Join(vals, ","), secret) {
				mu.Lock()
				leakedTo = append(leakedTo, name)
				mu.Unlock()
			}
		}
		fmt.Fprint(w, "elsewhere")
	}))
	defer other.Close()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// The server echoes the key, as some do: -v must not show it.
		w.Header().Set("X-Api-Key", r.Header.Get("X-Api-Key"))
		w.Header().Set("Set-Cookie", "session="+secret)
		switch r.URL.Path {
		case "/fail":
			http.Error(w, "down", http.StatusServiceUnavailable)
		case "/away":
			http.Redirect(w, r, other.URL+"/", http.StatusFound)
		default:
			fmt.Fprint(w, `{"ok":true}`)
		}
	}))
	defer srv.Close()
	withPass := strings.Replace(srv.URL, "http://", "http://user:"+secret+"@", 1)
	headers := []string{"-H", "X-Api-Key: " + secret, "-H", "X-Auth-Token: " + secret, "-H", "api-key: " + secret,
		"-H", "Authorization: Bearer " + secret, "-H", "X-Custom: " + secret, "--secret-header", "X-Custom", "-u", "u:" + secret}
	e := newEnv(t)
	runs := map[string][]string{
		"fetch failing":   append(append([]string{"fetch", "-v", "--json", "-n", "2", "--delay", "1ms"}, headers...), withPass+"/fail"),
		"fetch redirect":  append(append([]string{"fetch", "-v", "--json"}, headers...), srv.URL+"/away"),
		"batch":           append(append([]string{"fetch", "-v", "--json", "-n", "1"}, headers...), srv.URL+"/ok", withPass+"/fail"),
		"check":           append(append([]string{"check", "-v", "--json", "--expect-header", "X-Api-Key: ^nope$"}, headers...), srv.URL+"/ok"),
		"probe":           append(append([]string{"probe", "-v", "--json", "-n", "2", "--interval", "1ms"}, headers...), withPass+"/fail"),
		"usage, -H":       {"fetch", "-v", "-H", "X-Api-Key " + secret, srv.URL},
		"usage, -H colon": {"fetch", "-H", "X-Api-Key=" + secret, srv.URL},
		"usage, URL":      {"fetch", "-v", "http://user:" + secret + "@exa mple.com/"},
		"failover":        append(append([]string{"fetch", "-v", "--store", "redis://:" + secret + "@" + redistest.DeadAddr(t)}, headers...), srv.URL+"/ok"),
		"status, store":   {"breaker", "status", "--store", "redis://:" + secret + "@" + redistest.DeadAddr(t)},
		// A key in the query, under a name the secret rule calls secret.
		"fetch, query key": {"fetch", "-v", "--json", "-n", "2", "--delay", "1ms", srv.URL + "/fail?api_key=" + secret + "&page=2"},
		"batch, query key": {"fetch", "-v", "--json", "-n", "1", srv.URL + "/ok?x=1&access_token=" + secret, srv.URL + "/fail?Token=" + secret},
		"check, query key": {"check", "-v", "--json", "--expect-status", "201", srv.URL + "/ok?apikey=" + secret},
		"probe, query key": {"probe", "-v", "--json", "-n", "2", "--interval", "1ms", srv.URL + "/fail?api-key=" + secret},
		"usage, query key": {"fetch", "-v", "http://exa mple.com/?api_key=" + secret},
	}
	for name, a := range runs {
		r := e.run(a...)
		if strings.Contains(r.stdout, secret) || strings.Contains(r.stderr, secret) {
			t.Errorf("%s (exit %d) shows the secret:\nstdout: %s\nstderr: %s", name, r.code, r.stdout, r.stderr)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	if len(leakedTo) != 0 {
		t.Errorf("the redirect to another origin carried the secret in %v", leakedTo)
	}
}
