package report

import (
	"encoding/xml"
	"regexp"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"
)

// unescapedMarkup finds a Markdown character that MarkdownCell left
// without its backslash.
var unescapedMarkup = regexp.MustCompile("(^|[^\\\\])(\\\\\\\\)*[|`<>*_\\[\\]()@!&#]")

// FuzzHostileText: whatever text a server puts in a failure, the JUnit
// testcase parses as XML and keeps it, the TAP block parses as YAML and
// keeps it, an annotation stays one line whose properties cannot end
// early, and a summary cell has no live markup.
func FuzzHostileText(f *testing.F) {
	for _, s := range []string{"", "503 Service Unavailable", "a\r\n::error::x", "</failure>]]>&", "\x00\xff\u2028|`<b>`",
		"\n  ...\nnot ok 2", "key: value\n- item", "%0A%25", "\\|\\\\|"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		c := Case{Name: "http://h/" + s, Result: Failed, Message: s, Class: s, Latency: -1,
			Attempts: []Attempt{{N: 1, Failed: true, Class: s, Message: s}}}
		scrub(&c)
		run := &Run{Command: "check"}

		b, err := (&junit{}).encode(run, &c)
		if err != nil {
			t.Fatal(err)
		}
		var tc struct {
			Name    string `xml:"name,attr"`
			Failure struct {
				Message string `xml:"message,attr"`
			} `xml:"failure"`
		}
		if err := xml.Unmarshal(b, &tc); err != nil {
			t.Fatalf("testcase does not parse: %v\n%s", err, b)
		}
		if strings.ToValidUTF8(c.Message, "\uFFFD") == c.Message && xmlSafe(c.Message) && tc.Failure.Message != c.Message {
			t.Errorf("message %q came back as %q", c.Message, tc.Failure.Message)
		}

		y, err := (&tap{}).encode(run, &c)
		if err != nil {
			t.Fatal(err)
		}
		lines := strings.Split(strings.TrimSuffix(string(y), "\n"), "\n")
		if lines[0] != "  ---" || lines[len(lines)-1] != "  ..." {
			t.Fatalf("YAML block not framed:\n%s", y)
		}
		for _, l := range lines[1 : len(lines)-1] {
			if !strings.HasPrefix(l, "  ") || strings.TrimSpace(l) == "..." || strings.TrimSpace(l) == "---" {
				t.Fatalf("a line of the block could end it: %q", l)
			}
		}
		var m map[string]any
		if err := yaml.Unmarshal([]byte(strings.Join(lines[1:len(lines)-1], "\n")), &m); err != nil {
			t.Fatalf("YAML block does not parse: %v\n%s", err, y)
		}
		if m["message"] != nil && m["message"] != c.Message {
			t.Errorf("YAML message %q, want %q", m["message"], c.Message)
		}
		if strings.ContainsAny(tapDescription(c.Name), "\r\n#") && !strings.Contains(tapDescription(c.Name), `\#`) {
			t.Errorf("TAP description %q", tapDescription(c.Name))
		}

		if p := CommandProperty(c.Name); strings.ContainsAny(p, ":,\r\n") {
			t.Errorf("property %q can end early", p)
		}
		if d := CommandData(c.Message); strings.ContainsAny(d, "\r\n") {
			t.Errorf("data %q spans lines", d)
		}
		if cell := MarkdownCell(s); strings.ContainsAny(cell, "\r\n") || unescapedMarkup.MatchString(cell) {
			t.Errorf("cell %q has live markup", cell)
		}
	})
}

// xmlSafe reports text XML can carry as it is (no character XML forbids).
func xmlSafe(s string) bool {
	for _, r := range s {
		if r == 0xFFFE || r == 0xFFFF || (r >= 0xD800 && r <= 0xDFFF) {
			return false
		}
	}
	return true
}
