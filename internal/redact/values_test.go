package redact

import (
	"encoding/base64"
	"fmt"
	"strings"
	"sync"
	"testing"
)

// The registry is process-wide: each test registers values of its own.

func TestRegisteredValuesAreMaskedInText(t *testing.T) {
	keepState(t)
	RegisterHeader("X-Api-Key", "key-Alpha-1")
	RegisterHeader("Accept", "text/plain-not-secret")
	RegisterHeader("Authorization", "Bearer tok-Bravo-2")
	RegisterHeader("Authorization", "Basic "+base64.StdEncoding.EncodeToString([]byte("ann:pw-Charlie-3")))
	// Every cookie value is secret, as the whole header is: "dark" too.
	RegisterHeader("Cookie", "theme=dark; sid=sid-Delta-4")
	RegisterBasic("bob", "pw-Echo/5")
	RegisterHeader("Authorization", `AWS4-HMAC-SHA256 Credential=AKIA-Juliet/20260101, SignedHeaders=host;x-amz-date, Signature="sig-Kilo-9"`)
	RegisterURL("http://carl:pw-Fox%23trot@h/?page=2&api_key=q-Golf%2F7&id=1")
	for _, secret := range []string{
		"key-Alpha-1", "tok-Bravo-2", "pw-Charlie-3", "ann:pw-Charlie-3",
		base64.StdEncoding.EncodeToString([]byte("ann:pw-Charlie-3")), "sid-Delta-4",
		"pw-Echo/5", "pw-Echo%2F5", "bob:pw-Echo/5", base64.StdEncoding.EncodeToString([]byte("bob:pw-Echo/5")),
		"pw-Fox%23trot", "pw-Fox#trot", "q-Golf%2F7", "q-Golf/7", "AKIA-Juliet/20260101", "sig-Kilo-9",
	} {
		msg := "500 echo " + secret + " back"
		if got := Text(msg); got != "500 echo REDACTED back" {
			t.Errorf("Text(%q) = %q", msg, got)
		}
	}
	for _, plain := range []string{"text/plain-not-secret", "theme=", "bob", "page=2", "host;x-amz-date"} {
		if got := Text("echo " + plain); got != "echo "+plain {
			t.Errorf("Text masked %q, which is no secret: %q", plain, got)
		}
	}
}

func TestRegisteredValueLongestFirst(t *testing.T) {
	keepState(t)
	Register("abcd-Hotel", "abcd-Hotel-India-longer")
	if got := Text("x abcd-Hotel-India-longer y abcd-Hotel z"); got != "x REDACTED y REDACTED z" {
		t.Errorf("Text = %q", got)
	}
}

func TestShortValuesAreNotRegistered(t *testing.T) {
	keepState(t)
	Register("Jul", "", Mask)
	RegisterHeader("X-Api-Key", "kIl")
	RegisterBasic("u", "")
	if got := Text("Jul kIl REDACTED u:"); got != "Jul kIl REDACTED u:" {
		t.Errorf("a value under %d bytes was masked: %q", minTextSecret, got)
	}
	Register("Kilo")
	if got := Text("Kilo"); got != Mask {
		t.Errorf("a value of %d bytes was not masked: %q", minTextSecret, got)
	}
}

func TestRegisterConcurrently(t *testing.T) {
	keepState(t)
	var wg sync.WaitGroup
	for w := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 50 {
				v := fmt.Sprintf("conc-Lima-%d-%d", w, i)
				Register(v)
				if got := Text("say " + v); got != "say REDACTED" {
					t.Errorf("Text right after Register(%q) = %q", v, got)
					return
				}
			}
		}()
	}
	wg.Wait()
	for w := range 8 {
		for i := range 50 {
			if s := Text(fmt.Sprintf("conc-Lima-%d-%d", w, i)); s != Mask {
				t.Fatalf("a value registered concurrently was lost: %q", s)
			}
		}
	}
}

func BenchmarkTextNothingToMask(b *testing.B) {
	msg := strings.Repeat("retries exhausted after 3 attempts: 503 Service Unavailable ", 4)
	for b.Loop() {
		Text(msg)
	}
}

func TestRegistryIsBounded(t *testing.T) {
	keepState(t)
	regMu.Lock()
	saved := maxValues
	maxValues = len(list) + 1
	regMu.Unlock()
	defer func() {
		regMu.Lock()
		maxValues = saved
		regMu.Unlock()
	}()
	Register("cap-Mike-1", "cap-November-2")
	if got := Text("cap-Mike-1 cap-November-2"); got != "REDACTED cap-November-2" {
		t.Errorf("past the bound: Text = %q, want the first value only masked", got)
	}
}

// A secret a server quotes inside a JSON string is masked as JSON
// escaping wrote it: Go's encoding/json (& < > as \u0026, \u003c,
// \u003e), PHP's json_encode (/ as \/), and plain escapes of " and \.
func TestJSONEscapedSecretsMasked(t *testing.T) {
	keepState(t)
	for _, c := range []struct{ secret, body, leak string }{
		{"tok&en<SEC>99", `{"status":"ppppptok\u0026en\u003cSEC\u003e99 tail"}`, `SEC\u003e99`},
		{"ab/cdSECRET+99", `{"status":"pppppab\/cdSECRET+99 tail"}`, "cdSECRET+99"},
		{"ab/cdSECRET+99", `{"status":"pppppab/cdSECRET+99 tail"}`, "cdSECRET+99"},
		{`q"uo\te-secret`, `{"e":"q\"uo\\te-secret"}`, "te-secret"},
		{"plain-secret-1", `{"e":"plain-secret-1"}`, "plain-secret-1"},
	} {
		Register(c.secret)
		if got := Text(c.body); strings.Contains(got, c.leak) || !strings.Contains(got, Mask) {
			t.Errorf("secret %q in %s: shown as %s", c.secret, c.body, got)
		}
	}
}
