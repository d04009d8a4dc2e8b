package e2e

import (
	"bufio"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sort"
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
		// Credentials by whole name: an Azure SAS signature, a JWT.
		"fetch, SAS sig": {"fetch", "-v", "--json", "-n", "2", "--delay", "1ms", srv.URL + "/fail?sv=2022&sig=" + secret},
		"check, a JWT":   {"check", "-v", "--json", "--expect-status", "201", srv.URL + "/ok?jwt=" + secret + "&state=s"},
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

// echoServer answers with what the caller sent, as a careless server
// does: the values of its headers (Authorization as sent, so Basic's
// base64, and the password decoded from it), and its query values, in the
// status text (a raw response, so the reason phrase is its own), in a
// header (X-Evil) and in a JSON body ({"echo": …}). /500 answers 500,
// /429 429 with Retry-After: 60, anything else 200.
func echoServer(t *testing.T) *httptest.Server {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var said []string
		names := make([]string, 0, len(r.Header))
		for name := range r.Header {
			if name != "User-Agent" && name != "Accept-Encoding" && name != "Traceparent" {
				names = append(names, name)
			}
		}
		sort.Strings(names)
		for _, name := range names {
			said = append(said, r.Header.Values(name)...)
		}
		if _, pass, ok := r.BasicAuth(); ok {
			said = append(said, pass)
		}
		for _, vs := range r.URL.Query() {
			said = append(said, vs...)
		}
		echo := strings.Join(said, " ")
		status, extra := 200, ""
		switch {
		case strings.HasPrefix(r.URL.Path, "/500"):
			status = 500
		case strings.HasPrefix(r.URL.Path, "/429"):
			status, extra = 429, "Retry-After: 60\r\n"
		}
		body, _ := json.Marshal(map[string]string{"echo": echo})
		c, bw, err := w.(http.Hijacker).Hijack()
		if err != nil {
			return
		}
		defer c.Close()
		fmt.Fprintf(bw, "HTTP/1.1 %d echo %s ::error::x\r\nX-Evil: %s\r\n%sContent-Type: application/json\r\nContent-Length: %d\r\nConnection: close\r\n\r\n%s",
			status, echo, echo, extra, len(body), body)
		bw.Flush()
	}))
	t.Cleanup(srv.Close)
	return srv
}

// TestE2EEchoedSecretThroughEveryOutput is TestE2EOneSecretThroughEveryOutput
// for a server that sends the caller's secret back: in its status text, a
// header a check looks at and a body a check looks at. Each kind of secret
// goes alone through fetch (single and batch), check (stdout, --json,
// GitHub annotations and step summary, JUnit and TAP) and probe (--json,
// --report, --metrics); the secret shows in none of them, nor does the
// base64 of a Basic credential.
func TestE2EEchoedSecretThroughEveryOutput(t *testing.T) {
	t.Parallel()
	const secret = "s3cr3t-Zq9-wombat"
	srv := echoServer(t)
	withPass := strings.Replace(srv.URL, "http://", "http://u:"+secret+"%2Fz@", 1)
	forbidden := []string{secret,
		base64.StdEncoding.EncodeToString([]byte("u:" + secret)),
		base64.StdEncoding.EncodeToString([]byte("u:" + secret + "/z"))}
	type source struct {
		flags []string
		base  string // the URL up to its path
		query string
	}
	sources := map[string]source{
		"X-Api-Key":     {flags: []string{"-H", "X-Api-Key: " + secret}, base: srv.URL},
		"Bearer":        {flags: []string{"-H", "Authorization: Bearer " + secret}, base: srv.URL},
		"-u":            {flags: []string{"-u", "u:" + secret}, base: srv.URL},
		"URL password":  {base: withPass},
		"query api_key": {base: srv.URL, query: "?page=2&api_key=" + secret},
		"query escaped": {base: srv.URL, query: "?token=" + secret + "%2Fz"},
		"query sig":     {base: srv.URL, query: "?sr=b&sig=" + secret},
		"Cookie":        {flags: []string{"-H", "Cookie: theme=dark; sid=" + secret}, base: srv.URL},
		"secret-header": {flags: []string{"--secret-header", "X-Custom", "-H", "X-Custom: " + secret}, base: srv.URL},
	}
	e := newEnv(t)
	for name, s := range sources {
		dir := t.TempDir()
		file := func(f string) string { return filepath.Join(dir, f) }
		u := func(path string) string { return s.base + path + s.query }
		with := func(a ...string) []string { return append(a, s.flags...) }
		runs := map[string][]string{
			"fetch":      append(with("fetch", "-v", "--json", "-n", "1"), u("/500")),
			"batch":      append(with("fetch", "-v", "--json", "-n", "1"), u("/500"), u("/500/2")),
			"check":      append(with("check", "-v", "--attempts", "2", "--delay", "10ms", "--expect-header", "X-Evil: ^nope$", "--expect-body", "^nope", "--report", "junit="+file("c.xml"), "--report", "tap13="+file("c.tap")), u("/200"), u("/500")),
			"check json": append(with("check", "-v", "--json", "--attempts", "2", "--delay", "10ms", "--expect-header", "X-Evil: ^nope$", "--expect-json", ".echo"), u("/200"), u("/500")),
			"probe":      append(with("probe", "-v", "--json", "-n", "2", "--interval", "10ms", "--report", "tap="+file("p.tap"), "--report", "junit="+file("p.xml"), "--metrics", file("p.prom")), u("/500")),
		}
		for cmd, a := range runs {
			r := e.with("GITHUB_ACTIONS=true", "GITHUB_STEP_SUMMARY="+file("summary.md")).run(a...)
			if r.code == 2 || r.code == 0 && cmd != "probe" { // a probe of 500s ends well
				t.Errorf("%s, %s: exit %d, want the run's failure\nstderr: %s", name, cmd, r.code, r.stderr)
			}
			for _, f := range forbidden {
				if strings.Contains(r.stdout, f) || strings.Contains(r.stderr, f) {
					t.Errorf("%s, %s (exit %d) shows %q:\nstdout: %s\nstderr: %s", name, cmd, r.code, f, r.stdout, r.stderr)
				}
			}
		}
		for _, f := range []string{"c.xml", "c.tap", "p.tap", "p.xml", "p.prom", "summary.md"} {
			b, err := os.ReadFile(file(f))
			if err != nil {
				t.Errorf("%s: %v", name, err)
				continue
			}
			for _, s := range forbidden {
				if strings.Contains(string(b), s) {
					t.Errorf("%s: %s shows %q:\n%s", name, f, s, b)
				}
			}
		}
	}
}

// TestE2EBreakerStatusHidesKeySecrets: a --breaker-key that is a URL with
// a password and a secret query value shows neither in breaker status
// (table and --json) nor in breaker reset's words, as --metrics did; nor
// does the key a server echoed into the breaker's last error.
func TestE2EBreakerStatusHidesKeySecrets(t *testing.T) {
	t.Parallel()
	const secret = "s3cr3t-Zq9-wombat"
	srv := echoServer(t)
	key := "http://u:" + secret + "@x.example/?api_key=" + secret
	e := newEnv(t)
	// The server's words, which quote the key sent, become the breaker's
	// last error, kept in the store for processes that never saw the key.
	e.run("fetch", "-n", "1", "-H", "X-Api-Key: "+secret, "--breaker-key", key, srv.URL+"/500").wantCode(t, 4)
	metrics := filepath.Join(t.TempDir(), "m.prom")
	for _, a := range [][]string{
		{"breaker", "status"},
		{"breaker", "status", "--json"},
		{"breaker", "status", "--metrics", metrics},
		{"breaker", "status", key},
		{"breaker", "status", "--json", key},
		{"breaker", "reset", "-v", key},
	} {
		r := e.run(a...)
		if r.code != 0 || strings.Contains(r.stdout, secret) || strings.Contains(r.stderr, secret) ||
			!strings.Contains(r.stdout+r.stderr, "REDACTED") {
			t.Errorf("%v: exit %d, the key's secret shows or nothing is redacted:\nstdout: %s\nstderr: %s", a[1:], r.code, r.stdout, r.stderr)
		}
	}
	if b, err := os.ReadFile(metrics); err != nil || strings.Contains(string(b), secret) {
		t.Errorf("metrics: %v\n%s", err, b)
	}
	// A hold recorded under the key: the next run's line about waiting
	// for it names the key.
	// for it names the key. The run is ended once it has said so.
	e.run("fetch", "-n", "1", "--breaker-key", key, srv.URL+"/429").wantCode(t, 4)
	cmd := e.command("fetch", "--breaker-key", key, srv.URL+"/200")
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	line, _ := bufio.NewReader(stderr).ReadString('\n')
	cmd.Process.Kill()
	cmd.Wait()
	if !strings.Contains(line, "asked for no requests") || strings.Contains(line, secret) || !strings.Contains(line, "REDACTED") {
		t.Errorf("the wait for a hold: the key's secret shows or nothing is redacted:\n%s", line)
	}
}
