package fetch

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"testing/iotest"

	"github.com/refetch/refetch/resilience"
)

func TestParseHeader(t *testing.T) {
	tests := []struct {
		in, name, value string
		wantErr         bool
	}{
		{"X-Api-Key: abc", "X-Api-Key", "abc", false},
		{"accept:application/json", "Accept", "application/json", false},
		{"X-Empty:", "X-Empty", "", false},
		{"X-Colon: a:b:c", "X-Colon", "a:b:c", false},
		{"NoColon", "", "", true},
		{": value", "", "", true},
		{"Bad Name: x", "", "", true},
		{"X-A: 1\r\nX-B: 2", "", "", true},
		{"X-A: 1\nX-B: 2", "", "", true},
		{"X-A: nul\x00", "", "", true},
	}
	for _, tt := range tests {
		name, value, err := ParseHeader(tt.in)
		if (err != nil) != tt.wantErr || name != tt.name || value != tt.value {
			t.Errorf("ParseHeader(%q) = %q, %q, %v", tt.in, name, value, err)
		}
	}
}

func TestParseURL(t *testing.T) {
	for in, want := range map[string]string{
		"http://example.test/a": "http://example.test/a",
		"example.test:8080/x":   "http://example.test:8080/x",
		"HTTPS://example.test":  "https://example.test",
	} {
		u, err := ParseURL(in)
		if err != nil || u.String() != want {
			t.Errorf("ParseURL(%q) = %v, %v", in, u, err)
		}
	}
	for _, bad := range []string{"", "ftp://x", "file:///etc/passwd", "http://", "http://[::1"} {
		if _, err := ParseURL(bad); err == nil {
			t.Errorf("ParseURL(%q) accepted", bad)
		}
	}
	_, err := ParseURL("ftp://user:hunter2@host/")
	if err == nil || strings.Contains(err.Error(), "hunter2") {
		t.Errorf("error leaks the password: %v", err)
	}
}

func TestRedact(t *testing.T) {
	u, _ := url.Parse("https://alice:hunter2@example.test/x?y=1")
	if got := RedactURL(u); strings.Contains(got, "hunter2") || !strings.Contains(got, "alice") {
		t.Errorf("RedactURL = %s", got)
	}
	for _, s := range []string{
		`Get "https://alice:hunter2@example.test/": dial tcp`,
		"see http://bob:hunter2@h:1/p and more",
	} {
		if got := Redact(s); strings.Contains(got, "hunter2") {
			t.Errorf("Redact(%q) = %q", s, got)
		}
	}
	for _, h := range []string{"Authorization", "proxy-authorization", "Cookie", "Set-Cookie"} {
		if RedactHeader(h, "secret") != Redacted {
			t.Errorf("%s not redacted", h)
		}
	}
	if RedactHeader("Accept", "x") != "x" {
		t.Error("Accept redacted")
	}
}

func TestBufferSinkSpillsAndRestarts(t *testing.T) {
	tmp := t.TempDir()
	t.Setenv("TMPDIR", tmp)
	var out bytes.Buffer
	s := &BufferSink{Dst: &out}
	defer s.Close()
	w, _ := s.Begin()
	w.Write(bytes.Repeat([]byte("a"), SpillThreshold+10)) // spills
	w, _ = s.Begin()                                      // a retry: start over
	w.Write([]byte("short"))
	if err := s.Commit(); err != nil {
		t.Fatal(err)
	}
	if out.String() != "short" {
		t.Errorf("committed %d bytes, want the retry's body", out.Len())
	}
	s.Close()
	if entries, _ := os.ReadDir(tmp); len(entries) != 0 {
		t.Errorf("spill file left in $TMPDIR: %v", entries)
	}
}

func TestFileSinkAtomic(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "out")
	os.WriteFile(path, []byte("old"), 0o600)
	s, err := NewFileSink(context.Background(), path)
	if err != nil {
		t.Fatal(err)
	}
	w, _ := s.Begin()
	io.WriteString(w, "partial")
	if data, _ := os.ReadFile(path); string(data) != "old" {
		t.Fatalf("file changed before commit: %q", data)
	}
	s.Close()
	if data, _ := os.ReadFile(path); string(data) != "old" {
		t.Fatalf("abort changed the file: %q", data)
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 1 {
		t.Fatalf("temp files left: %v", entries)
	}
	s, _ = NewFileSink(context.Background(), path)
	w, _ = s.Begin()
	io.WriteString(w, "new")
	if err := s.Commit(); err != nil {
		t.Fatal(err)
	}
	if data, _ := os.ReadFile(path); string(data) != "new" {
		t.Fatalf("file = %q", data)
	}
	if st, _ := os.Stat(path); st.Mode().Perm() != 0o600 {
		t.Errorf("mode = %v, want the old file's 0600", st.Mode())
	}
	if _, err := NewFileSink(context.Background(), filepath.Join(dir, "missing", "out")); err == nil {
		t.Error("missing dir accepted")
	}
	if _, err := NewFileSink(context.Background(), dir); err == nil {
		t.Error("a directory accepted as -o")
	}
}

func TestReportData(t *testing.T) {
	u, _ := url.Parse("http://u:pw@h/x")
	req := &Request{Method: "GET", URL: u}
	res := &Result{Source: SourceNetwork, Status: 200, Trace: &resilience.Trace{RetryAfter: -1}}
	for body, want := range map[string]string{
		` {"a": [1, 2]} `: `{"a":[1,2]}`,
		"plain":           `"plain"`,
		"":                `""`,
		"42":              `42`,
	} {
		r := NewReport(req, res, strings.NewReader(body), Outcome{})
		if string(r.Data) != want || r.DataBase64 != nil {
			t.Errorf("body %q: data %s", body, r.Data)
		}
		b, _ := json.Marshal(r)
		if strings.Contains(string(b), "pw") {
			t.Errorf("password in report: %s", b)
		}
	}
	for body, want := range map[string]string{
		"\xff\x00":         "/wA=",
		"\"\xe9\xff\"":     "Iun/Ig==", // JSON in form, not UTF-8 inside its string
		"{\"a\":\"\xff\"}": "eyJhIjoi/yJ9",
	} {
		r := NewReport(req, res, strings.NewReader(body), Outcome{})
		if string(r.Data) != "null" || r.DataBase64 == nil || *r.DataBase64 != want {
			t.Errorf("body %q: data %s base64 %v, want base64 %s", body, r.Data, r.DataBase64, want)
		}
	}
}

func TestIsNullDevice(t *testing.T) {
	null, err := os.OpenFile(os.DevNull, os.O_WRONLY, 0)
	if err != nil {
		t.Skip(err)
	}
	defer null.Close()
	regular, _ := os.Create(filepath.Join(t.TempDir(), "f"))
	defer regular.Close()
	if !IsNullDevice(null) || IsNullDevice(regular) || IsNullDevice(&bytes.Buffer{}) {
		t.Error("IsNullDevice misjudged")
	}
}

// fillChunk fills the buffer across short reads, stops at a clean end with
// io.EOF, and keeps a cut body's own error: a cut must never look like
// the end of the body.
func TestFillChunk(t *testing.T) {
	buf := make([]byte, 8)
	n, err := fillChunk(iotest.OneByteReader(strings.NewReader("0123456789")), buf)
	if n != 8 || err != nil || string(buf) != "01234567" {
		t.Errorf("full chunk: %d %v %q", n, err, buf[:n])
	}
	n, err = fillChunk(iotest.OneByteReader(strings.NewReader("abc")), buf)
	if n != 3 || err != io.EOF || string(buf[:n]) != "abc" {
		t.Errorf("clean end: %d %v %q", n, err, buf[:n])
	}
	n, err = fillChunk(io.MultiReader(strings.NewReader("abc"), iotest.ErrReader(io.ErrUnexpectedEOF)), buf)
	if n != 3 || err != io.ErrUnexpectedEOF || string(buf[:n]) != "abc" {
		t.Errorf("cut body: %d %v %q", n, err, buf[:n])
	}
}
