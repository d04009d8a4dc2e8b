package fetch

import (
	"strings"
	"testing"
)

func FuzzParseHeader(f *testing.F) {
	for _, s := range []string{"X-A: 1", "Accept:", "NoColon", ": v", "A: b\r\nC: d", "Host: example.test", "X:\x00"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		name, value, err := ParseHeader(s)
		if err != nil {
			return
		}
		if name == "" || strings.ContainsAny(name+value, "\r\n\x00") || strings.ContainsAny(name, " :") {
			t.Fatalf("%q parsed into unsafe header %q: %q", s, name, value)
		}
	})
}
