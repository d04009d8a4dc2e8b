package fetch

import (
	"context"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/refetch/refetch/resilience"
)

// fresh makes s this run's own: the registry of secrets is the process's,
// and a test run again (go test -count=2) must find its values unknown.
func fresh(s string) string { return s + "-" + strconv.FormatInt(time.Now().UnixNano(), 36) }

// Validate registers every secret the request sends, so that Redact masks
// it in whatever a server sends back. The values are this run's own: the
// registry is the process's.
func TestValidateRegistersTheRequestsSecrets(t *testing.T) {
	pw1, tok2, key3, pw5 := fresh("pw-Fetch-1"), fresh("tok-Fetch-2"), fresh("key-Fetch-3"), fresh("pw-Fetch-5")
	u, err := ParseURL("http://ann:" + pw1 + "@h/?page=2&access_token=" + tok2)
	if err != nil {
		t.Fatal(err)
	}
	req := &Request{Method: "GET", URL: u, User: "bob:" + pw5,
		Header: http.Header{"X-Api-Key": {key3}, "Accept": {"acc-Fetch-4"}}}
	secrets := []string{pw1, tok2, key3, pw5, "bob:" + pw5}
	echo := "500 echo " + strings.Join(secrets, " ") + " acc-Fetch-4"
	if Redact(echo) != echo {
		t.Fatalf("masked before the request was validated: %q", Redact(echo))
	}
	if err := req.Validate(); err != nil {
		t.Fatal(err)
	}
	got := Redact(echo)
	for _, s := range secrets {
		if strings.Contains(got, s) {
			t.Errorf("Redact(%q) = %q: %s shows", echo, got, s)
		}
	}
	if !strings.HasSuffix(got, " acc-Fetch-4") {
		t.Errorf("a header that is no secret was masked: %q", got)
	}
}

// A check's failures quote what the server sent: a header, the body, a jq
// value; none shows a secret of the request.
func TestCheckFailuresHideEchoedSecrets(t *testing.T) {
	const secret = "key-Check-6"
	u, _ := ParseURL("http://h/")
	req := &Request{Method: "GET", URL: u, Header: http.Header{"X-Api-Key": {secret}}}
	if err := req.Validate(); err != nil {
		t.Fatal(err)
	}
	jq, err := CompileJQ(".echo")
	if err != nil {
		t.Fatal(err)
	}
	e := &Expectations{Status: resilience.MustStatusSet("2xx"), StatusText: "2xx", Body: regexp.MustCompile("^nope"),
		JSON: jq, JSONText: ".echo", Headers: []HeaderExpectation{{Name: "X-Evil", Re: regexp.MustCompile("^nope$")}}}
	body := []byte(`{"echo":"` + secret + ` ::error::x"}`)
	failed := e.Evaluate(context.Background(), Observation{Status: 200,
		Header: http.Header{"X-Evil": {secret + " ::error::x"}}, Body: body})
	if len(failed) != 3 {
		t.Fatalf("failures = %v, want the header, the body and the jq value", failed)
	}
	for _, f := range failed {
		if strings.Contains(f.Error(), secret) || !strings.Contains(f.Error(), "REDACTED") {
			t.Errorf("failure %q shows the secret or masks nothing", f)
		}
	}
}

// A proxy's password from the environment is sent too (as
// Proxy-Authorization): a proxy's error page quoting it is masked.
func TestValidateRegistersTheProxyPassword(t *testing.T) {
	pw := fresh("pw-Proxy-7")
	t.Setenv("HTTPS_PROXY", "p:"+pw+"@proxy.example:3128")
	u, _ := ParseURL("https://h/")
	echo := "407 echo " + pw
	if Redact(echo) != echo {
		t.Fatalf("masked before the request was validated: %q", Redact(echo))
	}
	if err := (&Request{Method: "GET", URL: u}).Validate(); err != nil {
		t.Fatal(err)
	}
	if got := Redact(echo); got != "407 echo REDACTED" {
		t.Errorf("Redact(%q) = %q", echo, got)
	}
}
