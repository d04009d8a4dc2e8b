package batch

import (
	"errors"
	"net/url"
	"strings"
	"testing"
	"unicode"
	"unicode/utf8"
)

// Every character of the invisible classes is replaced, whichever it is:
// a walk over all of Unicode, not a list of known tricks.
func TestSafeNameDropsEveryInvisible(t *testing.T) {
	for r := rune(0); r <= unicode.MaxRune; r++ {
		if !utf8.ValidRune(r) || !invisible(r) {
			continue
		}
		u := &url.URL{Scheme: "http", Host: "h", Path: "/a" + string(r) + "b"}
		if got := SafeName(u); got != "a_b" {
			t.Fatalf("U+%04X: safeName = %q, want a_b", r, got)
		}
	}
	for _, tab := range []*unicode.RangeTable{unicode.Cc, unicode.Cf, unicode.Zl, unicode.Zp, unicode.Co} {
		for r := rune(0); r <= unicode.MaxRune; r++ {
			if unicode.Is(tab, r) && !invisible(r) {
				t.Fatalf("U+%04X is not taken as invisible", r)
			}
		}
	}
	for _, r := range "aZ09 .-_éß日本☕" {
		if invisible(r) {
			t.Errorf("%q taken as invisible", r)
		}
	}
}

func TestSafeName(t *testing.T) {
	long := strings.Repeat("é", 150) // 300 bytes
	for _, tc := range []struct{ url, want string }{
		{"http://h/dir/report.pdf", "report.pdf"},
		{"http://h/dir/report.pdf?version=2#top", "report.pdf"},
		{"http://h/dir/", "index"},
		{"http://h", "index"},
		{"http://h/", "index"},
		{"http://h/a%20b", "a b"},
		{"http://h/.bashrc", "_bashrc"},
		{"http://h/..", "__"},
		{"http://h/%2E%2E", "__"},
		{"http://h/x/..%2F..%2Fetc%2Fpasswd", "___.._etc_passwd"},
		{"http://h/a%5Cb", "a_b"},
		{"http://h/a%00b%0Ac", "a_b_c"},
		{"http://h/a:b*c%3F%22d%3C%3E%7C", "a_b_c__d___"},
		{"http://h/%FF%FEx", "__x"},
		{"http://h/name.", "name_"},
		{"http://h/name%20", "name_"},
		{"http://h/CON", "_CON"},
		{"http://h/nul.txt", "_nul.txt"},
		{"http://h/com1.log", "_com1.log"},
		{"http://h/console", "console"},
		{"http://h/日本語.txt", "日本語.txt"},
		{"http://h/%E2%80%AEtxt.exe", "_txt.exe"},               // right-to-left override
		{"http://h/a%E2%80%8Bb%E2%80%8Db%EF%BB%BFc", "a_b_b_c"}, // zero-width space, joiner, BOM
		{"http://h/x%E2%81%A6y%E2%81%A9z%E2%80%AAw", "x_y_z_w"}, // isolates, embedding
		{"http://h/a%E2%80%A8b%E2%80%A9c", "a_b_c"},             // line and paragraph separators
		{"http://h/a%C2%A0b%E3%80%80c", "a_b_c"},                // no-break, ideographic space
		{"http://h/a%C2%ADb", "a_b"},                            // soft hyphen
		{"http://h/a%C2%85b%C2%9Bc", "a_b_c"},                   // C1 controls
		{"http://h/%E3%85%A4x%EF%B8%8F", "_x_"},                 // Hangul filler, variation selector
		{"http://h/a%EE%80%80b%EF%BF%BE", "a_b_"},               // private use, noncharacter
		{"http://h/%F3%A0%80%81tag", "_tag"},                    // tag character
		{"http://h/caf%C3%A9%20%E2%98%95.txt", "café ☕.txt"},    // visible stays
	} {
		u, err := url.Parse(tc.url)
		if err != nil {
			t.Fatal(err)
		}
		if got := SafeName(u); got != tc.want {
			t.Errorf("safeName(%s) = %q, want %q", tc.url, got, tc.want)
		}
	}
	u, _ := url.Parse("http://h/" + long)
	got := SafeName(u)
	if len(got) > maxNameBytes || !utf8.ValidString(got) || !strings.HasPrefix(got, strings.Repeat("é", 95)) {
		t.Errorf("long name: %q (%d bytes)", got, len(got))
	}
	u2, _ := url.Parse("http://h/" + long + "x")
	if SafeName(u2) == got {
		t.Errorf("two long names that differ only past the cut are one name")
	}
}

func TestOutputTemplate(t *testing.T) {
	u, _ := url.Parse("http://h/a/file.json")
	for _, tc := range []struct{ tmpl, want string }{
		{"out/{n}-{name}", "out/7-file.json"},
		{"{name}", "file.json"},
		{"out/{n}/{n}.json", "out/7/7.json"},
		{"plain", "plain"},
		{"odd{", "odd{"},
		{"{}x{", "{}x{"},
		{"a {b c}", "a {b c}"},
	} {
		tp, err := ParseTemplate(tc.tmpl)
		if err != nil {
			t.Fatalf("%s: %v", tc.tmpl, err)
		}
		if got := tp.Expand(7, u); got != tc.want {
			t.Errorf("%s → %q, want %q", tc.tmpl, got, tc.want)
		}
	}
	for _, bad := range []string{"{url}", "out/{N}", "{nmae}.txt"} {
		var usage *UsageError
		if _, err := ParseTemplate(bad); !errors.As(err, &usage) {
			t.Errorf("%s: %v, want a usage error", bad, err)
		}
	}
	if tp, _ := ParseTemplate("out/x"); tp.HasPlaceholder() {
		t.Error("a template without placeholder has one")
	}
}
