package redact

import (
	"net/http"
	"strings"
	"sync"
)

// The one rule for secret headers: a header's value is secret when its
// name is a known credential header, or looks like one (a name that
// holds a word such as key, token, secret or auth: X-Api-Key,
// X-Auth-Token, api-key, X-Session-Id), or was named secret by the user
// (AddSecretHeaders, from --secret-header). Every layer asks SecretHeader:
// the -v trace, error messages about headers, reports, and the redirect
// that drops credentials on its way to another origin.

// knownSecretHeaders are the credential headers of HTTP itself.
var knownSecretHeaders = map[string]bool{
	"Authorization":       true,
	"Proxy-Authorization": true,
	"Cookie":              true,
	"Cookie2":             true,
	"Set-Cookie":          true,
	"Set-Cookie2":         true,
}

// secretWords make a header name look like a credential's. Matched in
// the lower-cased name, so "X-API-KEY", "Api-Key" and "x-apikey" all are.
var secretWords = []string{
	"auth", "token", "key", "secret", "passw", "session", "credential", "signature", "csrf", "xsrf", "cookie",
}

var (
	userMu      sync.RWMutex
	userSecrets = map[string]bool{}
)

// AddSecretHeaders names more headers whose values are secret, for the
// rest of the process (--secret-header).
func AddSecretHeaders(names ...string) {
	userMu.Lock()
	defer userMu.Unlock()
	for _, n := range names {
		userSecrets[http.CanonicalHeaderKey(strings.TrimSpace(n))] = true
	}
}

// SecretHeader reports whether the value of the header name is secret.
func SecretHeader(name string) bool {
	canon := http.CanonicalHeaderKey(name)
	if knownSecretHeaders[canon] {
		return true
	}
	lower := strings.ToLower(name)
	for _, w := range secretWords {
		if strings.Contains(lower, w) {
			return true
		}
	}
	userMu.RLock()
	defer userMu.RUnlock()
	return userSecrets[canon]
}

// secretParamNames are query parameter names that are credentials though
// no secret word is in them (lower-cased, whole names): short names a
// substring rule cannot take without catching others ("sig" is in
// "assignee"). sig: Azure SAS and other signed URLs; jwt; pass, pwd;
// sessid, phpsessid: session ids; otp; assertion: SAML. Names that are
// as often words (code, ticket, sid: a country code, a ticket number,
// a site id) are not: masking them would hide what a person debugs.
var secretParamNames = map[string]bool{
	"sig": true, "jwt": true, "pass": true, "pwd": true, "sessid": true,
	"phpsessid": true, "otp": true, "assertion": true,
}

// SecretParam reports whether the value of the URL query parameter name
// (unescaped) is secret: the header rule (SecretHeader) applied to the
// name, and the names of secretParamNames.
func SecretParam(name string) bool {
	return SecretHeader(name) || secretParamNames[strings.ToLower(name)]
}

// Header returns value, or Mask when the header name is secret.
func Header(name, value string) string {
	if SecretHeader(name) {
		return Mask
	}
	return value
}
