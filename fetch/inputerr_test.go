package fetch

import (
	"context"
	"errors"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/refetch/refetch/resilience"
)

// flagPattern matches a command-line flag in a message: --word, or a dash
// and one letter standing alone ("-o x", "(-H)"). openssl's "-inform" and
// PEM's "-----BEGIN" are not flags.
var flagPattern = regexp.MustCompile(`(^|[\s("'\x60])(--[a-z][a-z-]*|-[A-Za-z])([^A-Za-z0-9-]|$)`)

// flagIn returns the first flag msg names, or "".
func flagIn(msg string) string {
	m := flagPattern.FindStringSubmatch(msg)
	if m == nil {
		return ""
	}
	return m[2]
}

func TestFlagIn(t *testing.T) {
	for msg, want := range map[string]string{
		`-o out: is a directory`:                      "-o",
		`writing output: -o out: no space`:            "-o",
		`invalid -H: header "X" has no colon`:         "-H",
		`--cacert "ca.pem": cannot read`:              "--cacert",
		`x (give each header its own -H)`:             "-H",
		`convert it: openssl x509 -inform der -in F`:  "",
		`want PEM (-----BEGIN CERTIFICATE-----)`:      "",
		`header "Content-Type" value "a\x01"`:         "",
		`port "-1" is not a number`:                   "",
		`output file /tmp/a-b/x-y: cannot write in /`: "",
	} {
		if got := flagIn(msg); got != want {
			t.Errorf("flagIn(%q) = %q, want %q", msg, got, want)
		}
	}
}

// TestInputErrorsNameNoFlag runs every path of this layer that reports an
// input at fault and checks the error: it is typed and carries the input
// (the field and value, the output path, the jq expression), it keeps its
// class (ErrInvalid; ErrOutput for a failed write), its message names no
// flag, and Text says the same under the name the command layer gives.
func TestInputErrorsNameNoFlag(t *testing.T) {
	dir := t.TempDir()
	empty := filepath.Join(dir, "empty.pem")
	if err := os.WriteFile(empty, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	validate := func(change func(*Request)) error {
		r := validRequest()
		change(r)
		return r.Validate()
	}
	parseHeader := func(s string) error {
		_, _, err := ParseHeader(s)
		return err
	}
	loadCA := func(path string) error {
		_, err := LoadCACert(path)
		return err
	}
	invalids := []struct {
		name  string
		err   error
		field Field
		value string
	}{
		{"method", validate(func(r *Request) { r.Method = "GET X" }), FieldMethod, "GET X"},
		{"header name", validate(func(r *Request) { r.Header["Bad Name"] = []string{"x"} }), FieldHeader, ""},
		{"header value", validate(func(r *Request) { r.Header["X-A"] = []string{"a\x01"} }), FieldHeader, ""},
		{"header line break", parseHeader("X-A: 1\nX-B: 2"), FieldHeader, ""},
		{"header without colon", parseHeader("NoColon"), FieldHeader, ""},
		{"secret header", parseHeader("Authorization: Bearer hunter2\x01"), FieldHeader, ""},
		{"user agent", validate(func(r *Request) { r.UserAgent = "x\r\ny" }), FieldUserAgent, "x\r\ny"},
		{"credentials", validate(func(r *Request) { r.User = "bob:hunter2\n" }), FieldUser, ""},
		{"CA file missing", loadCA(filepath.Join(dir, "missing.pem")), FieldCACert, filepath.Join(dir, "missing.pem")},
		{"CA file empty", loadCA(empty), FieldCACert, empty},
		{"CA file a directory", loadCA(dir), FieldCACert, dir},
	}
	for _, tt := range invalids {
		var ie *InvalidError
		if !errors.As(tt.err, &ie) || ie.Field != tt.field || ie.Value != tt.value || !errors.Is(tt.err, ErrInvalid) {
			t.Errorf("%s: %#v is not an ErrInvalid about the %s %q", tt.name, tt.err, tt.field, tt.value)
			continue
		}
		msg := tt.err.Error()
		if f := flagIn(msg); f != "" {
			t.Errorf("%s: %q names the flag %s", tt.name, msg, f)
		}
		if strings.Contains(msg, "hunter2") || strings.Contains(ie.Text("-Z"), "hunter2") {
			t.Errorf("%s: %q shows the secret", tt.name, msg)
		}
		// Text calls the input by the name given, and says the rest as
		// Error does.
		text := ie.Text("-Z")
		if !strings.Contains(text, "-Z") || !strings.Contains(text, ie.Problem) {
			t.Errorf("%s: Text(-Z) = %q", tt.name, text)
		}
	}

	// The output path: refused before the run, or a write that failed.
	file := filepath.Join(dir, "file")
	if err := os.WriteFile(file, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	newSink := func(path string) error {
		s, err := NewFileSink(t.Context(), path)
		if err == nil {
			s.Close()
		}
		return err
	}
	spill := func(path string) error {
		s := NewGroupFileSink(path)
		defer s.Close()
		w, _ := s.Begin()
		_, err := w.Write(make([]byte, 2*SmallBody))
		return err
	}
	unsealed := func(path string) error {
		c := NewCommitter(context.Background())
		var got error
		c.Submit(NewGroupFileSink(path), func(err error) { got = err })
		c.Close()
		return got
	}
	commitOver := func(path string) error {
		// The target became a directory with a file in it while the body
		// was on its way: neither rename nor writing in place can work.
		s, err := NewFileSink(t.Context(), path)
		if err != nil {
			return err
		}
		defer s.Close()
		w, _ := s.Begin()
		w.Write([]byte("body"))
		if err := os.MkdirAll(filepath.Join(path, "d"), 0o700); err != nil {
			t.Fatal(err)
		}
		return s.Commit()
	}
	outputs := []struct {
		name    string
		err     error
		path    string
		written bool // a write that failed: ErrOutput
	}{
		{"a directory", newSink(dir), dir, false},
		{"a directory by its slash", newSink(dir + "/"), dir + "/", false},
		{"a missing directory", newSink(filepath.Join(dir, "missing", "x")), filepath.Join(dir, "missing", "x"), false},
		{"a path through a file", newSink(filepath.Join(file, "x")), filepath.Join(file, "x"), false},
		{"a batch file spilled into a missing directory", spill(filepath.Join(dir, "missing", "y")), filepath.Join(dir, "missing", "y"), false},
		{"a batch file not sealed", unsealed(filepath.Join(dir, "z")), filepath.Join(dir, "z"), true},
		{"a commit that failed", commitOver(filepath.Join(dir, "late")), filepath.Join(dir, "late"), true},
	}
	if l, err := net.Listen("unix", filepath.Join(dir, "sock")); err == nil {
		defer l.Close()
		outputs = append(outputs, struct {
			name    string
			err     error
			path    string
			written bool
		}{"a socket", newSink(filepath.Join(dir, "sock")), filepath.Join(dir, "sock"), false})
	}
	for _, tt := range outputs {
		var oe *OutputError
		if !errors.As(tt.err, &oe) || oe.Path != tt.path || errors.Is(tt.err, ErrOutput) != tt.written {
			t.Errorf("%s: %#v is not an OutputError about %s (ErrOutput: %v)", tt.name, tt.err, tt.path, tt.written)
			continue
		}
		msg := tt.err.Error()
		if f := flagIn(msg); f != "" {
			t.Errorf("%s: %q names the flag %s", tt.name, msg, f)
		}
		if strings.Count(msg, tt.path) != 1 {
			t.Errorf("%s: %q does not name %s once", tt.name, msg, tt.path)
		}
		if text := oe.Text("-Z"); text != "-Z "+tt.path+": "+oe.Err.Error() {
			t.Errorf("%s: Text(-Z) = %q", tt.name, text)
		}
	}

	// A JSON expectation the body fails.
	for _, tt := range []struct {
		expr, body string
		want       string // in this layer's words
	}{
		{".ok", `{"ok": false}`, "JSON expectation .ok yielded false, not true"},
		{".ok", `not json`, "JSON expectation .ok: body is not JSON"},
		{"empty", `{}`, "JSON expectation empty yielded nothing"},
		{`error("boom")`, `{}`, `JSON expectation error("boom"): error: boom`},
	} {
		code, err := CompileJQ(tt.expr)
		if err != nil {
			t.Fatal(err)
		}
		e := &Expectations{Status: resilience.MustStatusSet("2xx"), JSON: code, JSONText: tt.expr}
		failed := e.Evaluate(t.Context(), Observation{Status: 200, Body: []byte(tt.body)})
		var je *JSONExpectationError
		if len(failed) != 1 || !errors.As(failed[0], &je) || je.Expr != tt.expr {
			t.Errorf("%s on %s: %v is not one JSONExpectationError", tt.expr, tt.body, failed)
			continue
		}
		if msg := je.Error(); msg != tt.want || flagIn(msg) != "" {
			t.Errorf("%s on %s: %q, want %q", tt.expr, tt.body, msg, tt.want)
		}
		if text, want := je.Text("-Z"), "-Z"+strings.TrimPrefix(tt.want, "JSON expectation"); text != want {
			t.Errorf("%s on %s: Text(-Z) = %q, want %q", tt.expr, tt.body, text, want)
		}
		// The attempt's error exposes it to errors.As, for the command
		// layer's words of a retry.
		var found *JSONExpectationError
		if err := (&expectationError{failed: failed}); !errors.As(err, &found) || found != je {
			t.Errorf("%s: the attempt's error hides the JSON expectation", tt.expr)
		}
	}
}
