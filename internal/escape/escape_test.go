package escape

import (
	"strings"
	"testing"
)

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

// JSON escapes DEL, C1 and the bidi controls, also when a character is
// cut between writes, and leaves everything else byte for byte.
func TestJSONWriter(t *testing.T) {
	in := "{\"s\":\"a\u202eb\u0085c\x7fd é€😀 \u2066x\u2069\"}\n"
	want := `{"s":"a\u202eb\u0085c\u007fd é€😀 \u2066x\u2069"}` + "\n"
	for split := 0; split <= len(in); split++ {
		var b strings.Builder
		j := JSON(&b)
		j.Write([]byte(in[:split]))
		j.Write([]byte(in[split:]))
		j.Flush()
		if b.String() != want {
			t.Fatalf("split at %d: %q", split, b.String())
		}
	}
	var b strings.Builder
	j := JSON(&b)
	j.Write([]byte("plain \xe2\x82"))
	j.Flush()
	if b.String() != "plain \xe2\x82" {
		t.Errorf("a cut character at the end: %q", b.String())
	}
}
