package redact

import (
	"strings"
	"testing"
)

func TestRawURL(t *testing.T) {
	for in, want := range map[string]string{
		"http://user:secret@host/p":                "http://user:REDACTED@host/p",
		"http://user:se:cret@host:8080/p?q=1":      "http://user:REDACTED@host:8080/p?q=1",
		"http://user:pa#s3cret@127.0.0.1:18080/ok": "http://user:REDACTED@127.0.0.1:18080/ok",
		"http://user:pa?s3cret@127.0.0.1:18080/ok": "http://user:REDACTED@127.0.0.1:18080/ok",
		"http://user:pa/s3cret@127.0.0.1:18080/ok": "http://user:REDACTED@127.0.0.1:18080/ok",
		"redis://:pa#s3cret@127.0.0.1:1/0":         "redis://:REDACTED@127.0.0.1:1/0",
		"redis://:pa/s3cret@127.0.0.1:1/0":         "redis://:REDACTED@127.0.0.1:1/0",
		"http://user:p@ss@host/":                   "http://user:REDACTED@host/",
		"http://user:%zz@host/":                    "http://user:REDACTED@host/",
		"http://user@host/":                        "http://user@host/",
		"http://host:8080/find?mail=a@b":           "http://host:8080/find?mail=a@b",
		"http://host/p#frag@x":                     "http://host/p#frag@x",
		"http://host/":                             "http://host/",
		"user:secret@host":                         "user:REDACTED@host",
		"secret@host":                              "REDACTED@host",
		"http://a:pw@h/x@y":                        "http://a:REDACTED@h/x@y",
		"http://a:p w@h/":                          "http://a:REDACTED@h/",
		"http://h/a:b@c":                           "http://h/a:b@c",
		"http://h/?u=a:pw@h2/":                     "http://h/?u=a:pw@h2/",
		"http://user:pa#s3cret@host/ok?mail=a@b.c": "http://user:REDACTED@b.c",
	} {
		if got := RawURL(in); got != want {
			t.Errorf("RawURL(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestTextHidesEveryPassword(t *testing.T) {
	for _, pass := range []string{"s3cret", "pa#s3cret", "pa?s3cret", "pa/s3cret", "p@ss", "pa%zz"} {
		for _, msg := range []string{
			`invalid URL "http://user:` + pass + `@127.0.0.1:18080/ok": port is not a number`,
			`invalid --store redis://:` + pass + `@127.0.0.1:1/0: malformed URL`,
			`line 3: GET http://u:` + pass + `@h/ failed`,
		} {
			got := Text(msg)
			if strings.Contains(got, strings.Trim(pass, "pa")) || !strings.Contains(got, Mask) {
				t.Errorf("Text(%q) = %q: the password shows", msg, got)
			}
		}
	}
	if got := Text("GET http://host:8080/find?mail=a@b: 503"); got != "GET http://host:8080/find?mail=a@b: 503" {
		t.Errorf("a URL without a password changed: %q", got)
	}
}

func TestSecrets(t *testing.T) {
	got := Secrets("redis://:pa%23s@host/0")
	if len(got) != 3 || got[1] != "pa%23s" || got[2] != "pa#s" {
		t.Errorf("Secrets = %q", got)
	}
	if got := Secrets("redis://host/0"); got != nil {
		t.Errorf("Secrets without a password = %q", got)
	}
	if got := Secrets("redis://:pa/ss@host/0"); len(got) < 2 || got[1] != "pa/ss" {
		t.Errorf("Secrets of an unparsable URL = %q", got)
	}
}

func TestRawURLMangled(t *testing.T) {
	for in, want := range map[string]string{
		"http://user:12#s3cret@127.0.0.1:9/ok": "http://user:REDACTED@127.0.0.1:9/ok",
		"http://user:12?s3cret@127.0.0.1:9/ok": "http://user:REDACTED@127.0.0.1:9/ok",
		"redis://:12#s3cret@127.0.0.1:9/0":     "redis://:REDACTED@127.0.0.1:9/0",
		"http://host:8080/p#a@b":               "http://host:8080/p#a@b",
		"http://host/?mail=a@b":                "http://host/?mail=a@b",
	} {
		if got := RawURL(in); got != want {
			t.Errorf("RawURL(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestRawURLQueryKeys(t *testing.T) {
	for raw, want := range map[string]string{
		"https://h/x?api_key=abc&page=2":          "https://h/x?api_key=REDACTED&page=2",
		"https://h/x?page=2&Access_Token=a%2Fb#f": "https://h/x?page=2&Access_Token=REDACTED#f",
		"https://u:pw@h/?token=t1&token=t22":      "https://u:REDACTED@h/?token=REDACTED&token=REDACTED",
		"https://h/x?page=2&q=token":              "https://h/x?page=2&q=token",
		"https://h/token?token=token&k=token":     "https://h/token?token=REDACTED&k=token",
		"https://h/x?api_key=":                    "https://h/x?api_key=",
		"h/x?apikey=k":                            "h/x?apikey=REDACTED",
		// Credentials by whole name, which no secret word is in.
		"https://a.blob.core.windows.net/c/b?sv=2022-11-02&sr=b&sig=abc%2Bd%3D": "https://a.blob.core.windows.net/c/b?sv=2022-11-02&sr=b&sig=REDACTED",
		"https://h/cb?code=US&state=xyz&SID=s1&jwt=e.y.J":                       "https://h/cb?code=US&state=xyz&SID=s1&jwt=REDACTED",
		"https://h/x?pass=p&pwd=q&assignee=me&error_code=7":                     "https://h/x?pass=REDACTED&pwd=REDACTED&assignee=me&error_code=7",
	} {
		if got := RawURL(raw); got != want {
			t.Errorf("RawURL(%q) = %q, want %q", raw, got, want)
		}
	}
	// A value secret only by its whole name is scrubbed from free text
	// when it is long enough to be a credential: "pass=true" must not
	// blot out "true" everywhere (a review saw "want REDACTED or false").
	if s := Secrets("https://h/x?pass=true&sig=sv2022abcdEFGH%2B"); len(s) != 2 || s[0] != "sv2022abcdEFGH%2B" || s[1] != "sv2022abcdEFGH+" {
		t.Errorf("Secrets of whole-name parameters: %q", s)
	}
	if got := Text(`Get "https://h/x?api_key=abc": EOF`); got != `Get "https://h/x?api_key=REDACTED": EOF` {
		t.Errorf("Text: %q", got)
	}
	if s := Secrets("https://h/x?api_key=ab%2Fcd&token=k"); len(s) != 2 || s[0] != "ab%2Fcd" || s[1] != "ab/cd" {
		t.Errorf("Secrets: %q", s)
	}
}
