package redact

import "testing"

func TestSecretHeader(t *testing.T) {
	keepState(t)
	for name, want := range map[string]bool{
		"Authorization": true, "proxy-authorization": true, "Cookie": true, "Set-Cookie": true,
		"X-Api-Key": true, "api-key": true, "X-APIKEY": true, "X-Auth-Token": true, "X-Session-Id": true,
		"X-Amz-Security-Token": true, "X-Csrf-Token": true, "X-Hub-Signature-256": true, "Private-Token": true,
		"Accept": false, "User-Agent": false, "Content-Type": false, "Keep-Alive": false, "X-Request-Id": false,
		"Host": false, "X-Custom": false,
	} {
		if got := SecretHeader(name); got != want {
			t.Errorf("SecretHeader(%q) = %v, want %v", name, got, want)
		}
	}
	AddSecretHeaders("x-custom")
	if !SecretHeader("X-Custom") || Header("X-CUSTOM", "v") != Mask || Header("Accept", "v") != "v" {
		t.Error("a header named secret by the user is not")
	}
}
