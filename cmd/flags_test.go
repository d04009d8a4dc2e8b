package cmd

import (
	"fmt"
	"strings"
	"testing"
	"unicode/utf8"
)

func TestCleanNode(t *testing.T) {
	for in, want := range map[string]string{
		"ci-runner-7":            "ci-runner-7",
		"a\nb\x1b[31mc":          "a?b?[31mc",
		"bad\xffutf8":            "bad?utf8",
		"é" + "\u0085":           "é?",
		strings.Repeat("é", 100): strings.Repeat("é", 64),
	} {
		if got := cleanNode(in); got != want {
			t.Errorf("cleanNode(%q) = %q, want %q", in, got, want)
		}
	}
}

// A batch's lines name a URL of 300 KB cut, saying how long it was (a
// tour found a 300 KB stderr line per retry).
func TestMessageURL(t *testing.T) {
	if got := messageURL("http://h/x"); got != "http://h/x" {
		t.Errorf("short URL: %q", got)
	}
	long := "http://h/" + strings.Repeat("é", 150_000)
	got := messageURL(long)
	if len(got) > maxMessageURL+40 || !strings.HasSuffix(got, fmt.Sprintf("… (%d bytes)", len(long))) || !utf8.ValidString(got) {
		t.Errorf("long URL: %d bytes, %q", len(got), got[len(got)-40:])
	}
}
