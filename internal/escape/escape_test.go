package escape

import "testing"

func TestControls(t *testing.T) {
	for in, want := range map[string]string{
		"plain ünïcode | `x`":           "plain ünïcode | `x`",
		"a\nb\r\x1b[31m\x00\x7f":        `a\nb\r\x1b[31m\x00\x7f`,
		"next\u0085line \xff tab\there": "next\\u0085line \uFFFD tab\\there",
	} {
		if got := Controls(in); got != want {
			t.Errorf("Controls(%q) = %q, want %q", in, got, want)
		}
	}
}
