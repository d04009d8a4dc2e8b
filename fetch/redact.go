package fetch

import (
	"net/http"
	"net/url"

	"github.com/refetch/refetch/internal/redact"
)

// Redacted replaces every secret refetch redacts.
const Redacted = redact.Mask

// sensitiveHeaders are the headers whose values never appear in output.
var sensitiveHeaders = map[string]bool{
	"Authorization":       true,
	"Proxy-Authorization": true,
	"Cookie":              true,
	"Set-Cookie":          true,
}

// IsSensitiveHeader reports whether a header's value must be redacted.
func IsSensitiveHeader(name string) bool {
	return sensitiveHeaders[http.CanonicalHeaderKey(name)]
}

// RedactHeader returns value, or Redacted for a sensitive header.
func RedactHeader(name, value string) string {
	if IsSensitiveHeader(name) {
		return Redacted
	}
	return value
}

// RedactURL returns u as a string with any password replaced.
func RedactURL(u *url.URL) string {
	if u == nil {
		return ""
	}
	if _, has := u.User.Password(); has {
		c := *u
		c.User = url.UserPassword(u.User.Username(), Redacted)
		return c.String()
	}
	return u.String()
}

// Redact removes URL passwords from free text such as error messages (see
// internal/redact for the rule, shared with every other layer). Go's own
// url.Error already masks them as "***"; this also covers text that did
// not come through net/http.
func Redact(s string) string { return redact.Text(s) }
