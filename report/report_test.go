package report

import (
	"context"
	"encoding/xml"
	"errors"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/refetch/refetch/fetch"
	"github.com/refetch/refetch/resilience"
)

func TestParseSpec(t *testing.T) {
	for in, want := range map[string]Spec{
		"junit=r.xml":     {JUnit, "r.xml"},
		"TAP=out/r.tap":   {TAP, "out/r.tap"},
		"tap13=a=b.tap":   {TAP13, "a=b.tap"},
		" junit =x y.xml": {JUnit, "x y.xml"},
	} {
		got, err := ParseSpec(in)
		if err != nil || got != want {
			t.Errorf("ParseSpec(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	for _, bad := range []string{"junit", "junit=", "xml=r.xml", "=r.xml", "", "tap=-"} {
		if _, err := ParseSpec(bad); err == nil {
			t.Errorf("ParseSpec(%q) accepted", bad)
		}
	}
}

func TestWorkflowCommandEscaping(t *testing.T) {
	if got, want := CommandData("50% done\r\n::error::x, y: z"), "50%25 done%0D%0A::error::x, y: z"; got != want {
		t.Errorf("CommandData = %q, want %q", got, want)
	}
	if got, want := CommandProperty("http://h:8080/a,b%\n"), "http%3A//h%3A8080/a%2Cb%25%0A"; got != want {
		t.Errorf("CommandProperty = %q, want %q", got, want)
	}
}

func TestMarkdownCell(t *testing.T) {
	got := MarkdownCell("a|b `c` <img src=x> @team **x** [l](u) \\| \n::error::\r\x1b[31m")
	if strings.ContainsAny(got, "\n\r\x1b") {
		t.Errorf("control characters left: %q", got)
	}
	if m := regexp.MustCompile("(^|[^\\\\])(\\\\\\\\)*[|`<>@*\\[\\]()]").FindString(got); m != "" {
		t.Errorf("unescaped markup %q in %q", m, got)
	}
	long := MarkdownCell(strings.Repeat("x", 1000))
	if n := len([]rune(long)); n > maxCell+1 {
		t.Errorf("a cell of %d runes", n)
	}
}

func TestSafeURL(t *testing.T) {
	for in, want := range map[string]string{
		"http://u:p4ss@h/x?api_key=K3y&page=2&access_token=T%20X#f": "http://u:REDACTED@h/x?api_key=REDACTED&page=2&access_token=REDACTED#f",
		"https://h/x?key=1&keyboard=2":                              "https://h/x?key=REDACTED&keyboard=REDACTED",
		"https://h/x?q=token":                                       "https://h/x?q=token",
		"https://h/":                                                "https://h/",
	} {
		if got := SafeURL(in); got != want {
			t.Errorf("SafeURL(%q) = %q, want %q", in, got, want)
		}
	}
	c := Case{Name: "http://u:p4ss@h/x?token=T0k%2Fen", Message: "GET http://u:p4ss@h/x?token=T0k%2Fen: T0k/en refused",
		Attempts: []Attempt{{Failed: true, Message: "token T0k%2Fen"}}}
	scrub(&c)
	for _, s := range []string{c.Name, c.Message, c.Attempts[0].Message} {
		if strings.Contains(s, "p4ss") || strings.Contains(s, "T0k") {
			t.Errorf("a secret is left: %q", s)
		}
	}
}

// TestHostileTexts: whatever a server's words hold (control characters,
// invalid UTF-8, XML, YAML and TAP syntax), the reports stay well formed:
// JUnit parses, TAP has one test point a URL and whole YAML blocks.
func TestHostileTexts(t *testing.T) {
	dir := t.TempDir()
	junit, tap := filepath.Join(dir, "r.xml"), filepath.Join(dir, "r.tap")
	s, err := Open(context.Background(), []Spec{{JUnit, junit}, {TAP, tap}}, Run{Command: "check"})
	if err != nil {
		t.Fatal(err)
	}
	evil := "bad\x00\x1b]0;x\x07 \xff\xfe </failure><x> ]]> & \"'\n  ...\nnot ok 99 - forged\n---\n# comment"
	for _, r := range []Result{Failed, Flaky} {
		s.Add(Case{Name: "http://h/a#frag\\x", Result: r, Message: evil, Class: evil,
			Attempts: []Attempt{{N: 1, Failed: true, Class: evil, Message: evil, Duration: time.Millisecond}, {N: 2, Status: 200}}})
	}
	if err := s.Close(time.Second); err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(junit)
	var v struct {
		Cases []struct {
			Name string `xml:"name,attr"`
		} `xml:"testcase"`
	}
	if err := xml.Unmarshal(b, &v); err != nil || len(v.Cases) != 2 {
		t.Fatalf("JUnit with hostile texts: %v, %d cases\n%s", err, len(v.Cases), b)
	}
	tb, _ := os.ReadFile(tap)
	points := regexp.MustCompile(`(?m)^(not )?ok `).FindAllString(string(tb), -1)
	if len(points) != 2 || !strings.Contains(string(tb), `ok 1 - http://h/a\#frag\\x`) {
		t.Errorf("TAP with hostile texts:\n%s", tb)
	}
	if n := strings.Count(string(tb), "\n  ...\n"); n != 2 {
		t.Errorf("%d ends of YAML blocks, want 2:\n%s", n, tb)
	}
}

// TestNothingWrittenUntilClose: a report's file is untouched during the
// run and after Discard, and no temporary file is left.
func TestNothingWrittenUntilClose(t *testing.T) {
	dir := t.TempDir()
	f := filepath.Join(dir, "r.xml")
	os.WriteFile(f, []byte("old"), 0o644)
	s, err := Open(context.Background(), []Spec{{JUnit, f}}, Run{Command: "fetch"})
	if err != nil {
		t.Fatal(err)
	}
	s.Add(Case{Name: "http://h/", Result: Passed})
	if b, _ := os.ReadFile(f); string(b) != "old" {
		t.Errorf("written before Close: %q", b)
	}
	s.Discard()
	if b, _ := os.ReadFile(f); string(b) != "old" {
		t.Errorf("written by Discard: %q", b)
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 1 {
		t.Errorf("left behind: %v", entries)
	}
	if _, err := Open(context.Background(), []Spec{{JUnit, filepath.Join(dir, "none", "r.xml")}}, Run{}); err == nil {
		t.Error("a report in a missing directory was opened")
	}
}

// TestOmittedAttempts: a case whose run kept only its first and latest
// attempts (a long check) counts every attempt and says which are not
// listed, where they would be, in every report.
func TestOmittedAttempts(t *testing.T) {
	dir := t.TempDir()
	junit, tap, summary := filepath.Join(dir, "r.xml"), filepath.Join(dir, "r.tap"), filepath.Join(dir, "s.md")
	s, err := Open(context.Background(), []Spec{{JUnit, junit}, {TAP, tap}}, Run{Command: "check"})
	if err != nil {
		t.Fatal(err)
	}
	var annotations strings.Builder
	if err := s.AddGitHub(GitHub{Annotations: &annotations, SummaryPath: summary}); err != nil {
		t.Fatal(err)
	}
	c := Case{Name: "http://h/", Result: Failed, Message: "503", Latency: time.Millisecond, Omitted: 996, OmittedAfter: 2, OmittedFailed: 990}
	for _, n := range []int{1, 2, 999, 1000} {
		c.Attempts = append(c.Attempts, Attempt{N: n, Status: 503, Failed: true, Class: "http_503", Message: "503"})
	}
	s.Add(c)
	if err := s.Close(time.Second); err != nil {
		t.Fatal(err)
	}
	const line = "attempts 3 to 998 not listed: 990 failed of 996"
	b, _ := os.ReadFile(junit)
	if !strings.Contains(string(b), "attempts: 1000&#xA;") || !strings.Contains(string(b), "0ms&#xA;"+line+"&#xA;attempt 999:") {
		t.Errorf("JUnit:\n%s", b)
	}
	b, _ = os.ReadFile(tap)
	if !strings.Contains(string(b), "failed_attempts: 994\n") || !strings.Contains(string(b), "attempts_not_listed: '"+line+"'") &&
		!strings.Contains(string(b), "attempts_not_listed: "+line+"\n") {
		t.Errorf("TAP:\n%s", b)
	}
	b, _ = os.ReadFile(summary)
	if !strings.Contains(string(b), "| 1000 |") || !strings.Contains(annotations.String(), "after 1000 attempts") {
		t.Errorf("summary:\n%s\nannotations:\n%s", b, annotations.String())
	}
}

// TestFromRunFailureClass: a failed URL's class is its last attempt's
// when that attempt failed, else the run's: a body written to a full
// disk after a 503 and a 200 is "internal", not the recovered 503 (a
// review caught it so).
func TestFromRunFailureClass(t *testing.T) {
	u, _ := url.Parse("http://h/x")
	req := &fetch.Request{URL: u}
	res := func(statuses ...int) *fetch.Result {
		tr := &resilience.Trace{}
		for i, s := range statuses {
			rec := resilience.AttemptRecord{N: i + 1, Status: s}
			if s >= 500 {
				rec.Err = errors.New("503 Service Unavailable")
			}
			tr.Attempts = append(tr.Attempts, rec)
		}
		return &fetch.Result{Trace: tr, Source: fetch.SourceNone}
	}
	if c := FromRun(req, res(503, 200), "internal", "writing output: no space"); c.Class != "internal" || c.Result != Failed {
		t.Errorf("a write failure after a 200: class %q, result %v", c.Class, c.Result)
	}
	if c := FromRun(req, res(200, 503), "retries_exhausted", "503"); c.Class != "" || c.Attempts[1].Class != "http_503" {
		t.Errorf("a last attempt that failed: class %q (want its own), attempt class %q", c.Class, c.Attempts[1].Class)
	}
}
