package cmd

import (
	"strings"
	"testing"
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
