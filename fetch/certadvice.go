package fetch

import (
	"crypto/x509"
	"errors"
	"strings"

	"github.com/refetch/refetch/resilience"
)

// CertificateAdvice is the advice for a certificate the run could not
// verify (resilience.IsCertificateError), by what is wrong with it, in
// parentheses after a space; "" for any other error. Trusting a CA
// (--cacert) fixes only an unknown CA; a certificate for other names, out
// of its dates, or not made for a TLS server is the server's to fix, or
// the name the URL uses. fetch's and check's messages both use it.
func CertificateAdvice(err error) string {
	var (
		host    x509.HostnameError
		invalid x509.CertificateInvalidError
	)
	if !resilience.IsCertificateError(err) {
		return ""
	}
	switch {
	case errors.As(err, &host) && host.Certificate != nil && len(host.Certificate.DNSNames) == 0 &&
		len(host.Certificate.IPAddresses) == 0 && host.Certificate.Subject.CommonName != "":
		return " (the certificate names its host only in the legacy Common Name, which TLS clients no longer read: the server needs a certificate with subject alternative names; -k skips verification)"
	case errors.As(err, &host):
		return " (the certificate is not for the URL's host: use a name it is for, with --resolve NAME:PORT:ADDR to reach this address by that name, or -k to skip verification)"
	case errors.As(err, &invalid) && invalid.Reason == x509.Expired && strings.Contains(invalid.Detail, " is before "):
		return " (the certificate is not valid yet: check this machine's clock and the certificate's dates; -k skips verification)"
	case errors.As(err, &invalid) && invalid.Reason == x509.Expired:
		return " (the certificate has expired: the server must renew it, unless this machine's clock is wrong; -k skips verification)"
	case errors.As(err, &invalid) && invalid.Reason == x509.IncompatibleUsage:
		return " (the certificate is not one for a TLS server (its extended key usage): the server needs another; -k skips verification)"
	case errors.As(err, &invalid):
		return " (the server's certificate chain is not valid: the server must send a valid one; -k skips verification)"
	}
	return " (the certificate is signed by a CA this run does not trust: --cacert FILE trusts it, -k skips verification)"
}
