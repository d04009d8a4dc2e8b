package fetch

import (
	"net/url"

	"github.com/refetch/refetch/internal/redact"
)

// Redacted replaces every secret refetch redacts.
const Redacted = redact.Mask

// IsSensitiveHeader reports whether a header's value must be redacted:
// internal/redact's one rule (credential headers, names that look like
// keys or tokens, and those --secret-header names).
func IsSensitiveHeader(name string) bool { return redact.SecretHeader(name) }

// RedactHeader returns value, or Redacted for a sensitive header.
func RedactHeader(name, value string) string { return redact.Header(name, value) }

// RedactURL returns u as a string with any password replaced.
func RedactURL(u *url.URL) string {
	if u == nil {
		return ""
	}
	if _, has := u.User.Password(); has {
		c := *u
		c.User = url.UserPassword(u.User.Username(), Redacted)
		return redact.RawURL(c.String())
	}
	return redact.RawURL(u.String())
}

// Redact removes URL passwords from free text such as error messages (see
// internal/redact for the rule, shared with every other layer). Go's own
// url.Error already masks them as "***"; this also covers text that did
// not come through net/http.
func Redact(s string) string { return redact.Text(s) }
