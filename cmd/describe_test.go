package cmd

import (
	"errors"
	"net/url"
	"path/filepath"
	"strings"
	"testing"

	"github.com/refetch/refetch/fetch"
	"github.com/refetch/refetch/resilience"
)

// TestDescribePutsInputErrorsInTheFlagsWords: the fetch layer calls an
// input by what it is; describe, the one formatter, calls it by the flag
// that set it (or the variable, when the value came from there), in every
// chain such an error travels in, and the exit code stays the error's.
func TestDescribePutsInputErrorsInTheFlagsWords(t *testing.T) {
	dir := t.TempDir()
	u, _ := url.Parse("https://api.test/x")
	validate := func(change func(*fetch.Request)) error {
		r := &fetch.Request{Method: "GET", URL: u}
		change(r)
		err := r.Validate()
		if err == nil {
			t.Fatal("Validate accepted a bad request")
		}
		return err
	}
	header := func(s string) error {
		_, _, err := fetch.ParseHeader(s)
		return err
	}
	// Each case gets errors of its own: naming an input sets it on the
	// error (see flagNames.name).
	missingCA := filepath.Join(dir, "ca.pem")
	caErr := func() error { _, err := fetch.LoadCACert(missingCA); return err }
	dirErr := func() error { _, err := fetch.NewFileSink(t.Context(), dir); return err }
	full := func() error {
		return &lazyWrap{kind: fetch.ErrOutput, err: &fetch.OutputError{Path: "out.bin", Err: errors.New("no space left on device")}}
	}
	jq, err := fetch.CompileJQ(".ok")
	if err != nil {
		t.Fatal(err)
	}
	failed := (&fetch.Expectations{Status: resilience.MustStatusSet("2xx"), JSON: jq, JSONText: ".ok"}).
		Evaluate(t.Context(), fetch.Observation{Status: 200, Body: []byte(`{"ok": false}`)})
	if len(failed) != 1 {
		t.Fatalf("failed = %v", failed)
	}
	fromEnv := flagNames{fromEnv: map[string]bool{"user-agent": true, "cacert": true, "output": true}}
	tests := []struct {
		name string
		err  error
		want string
		code int
	}{
		{"-X", &UsageError{Err: validate(func(r *fetch.Request) { r.Method = "GET X" })},
			`invalid -X "GET X": a method is one token`, ExitUsage},
		{"-H", &UsageError{Err: header("NoColon")}, `invalid -H: header "NoColon" has no colon; want 'Name: value'`, ExitUsage},
		{"-H of a line of a batch", &UsageError{Err: &batchLineError{label: "line 3", err: validate(func(r *fetch.Request) {
			r.Header = map[string][]string{"X-A": {"a\x01"}}
		})}}, `line 3: invalid -H: header "X-A" value "a\x01": it contains the control character "\x01"`, ExitUsage},
		{"-H with a secret", &UsageError{Err: header("Authorization: Bearer hunter2\x01")},
			`invalid -H: header "Authorization" value (not shown)`, ExitUsage},
		{"-A", &UsageError{Err: validate(func(r *fetch.Request) { r.UserAgent = "x\r\ny" })},
			`invalid -A "x\r\ny": it contains a line break`, ExitUsage},
		{"-u", &UsageError{Err: validate(func(r *fetch.Request) { r.User = "bob:hunter2\n" })},
			`invalid -u (value not shown): it contains a line break`, ExitUsage},
		{"--cacert", &UsageError{Err: caErr()}, `--cacert "` + missingCA + `": cannot read: no such file or directory`, ExitUsage},
		{"-o a directory", &UsageError{Err: dirErr()}, "-o " + dir + ": is a directory", ExitUsage},
		{"-o that cannot be written", full(), "writing output: -o out.bin: no space left on device", ExitInternal},
		{"-o of a fallback that cannot be written", &lazyWrap{prefix: "cannot serve the fallback", err: full(), suffix: " (the fetch had failed: boom)"},
			"cannot serve the fallback: writing output: -o out.bin: no space left on device (the fetch had failed: boom)", ExitInternal},
		{"--expect-json", failed[0], "--expect-json .ok yielded false, not true", ExitInternal},
		// A URL is an argument: its messages are the fetch layer's own.
		{"the URL", &UsageError{Err: validate(func(r *fetch.Request) { r.URL = nil })}, "no URL given", ExitUsage},
		// From a variable: the variable's name, where the value came
		// from there, and the flag's elsewhere.
		{"REFETCH_USER_AGENT", &UsageError{Err: fromEnv.name(validate(func(r *fetch.Request) { r.UserAgent = "x\x01" }))},
			`invalid REFETCH_USER_AGENT "x\x01": it contains the control character`, ExitUsage},
		{"REFETCH_CACERT", &UsageError{Err: fromEnv.name(caErr())}, `REFETCH_CACERT "` + missingCA + `": cannot read`, ExitUsage},
		{"REFETCH_OUTPUT", &UsageError{Err: fromEnv.name(dirErr())}, "REFETCH_OUTPUT " + dir + ": is a directory", ExitUsage},
		{"-X beside variables", &UsageError{Err: fromEnv.name(validate(func(r *fetch.Request) { r.Method = "GET X" }))},
			`invalid -X "GET X"`, ExitUsage},
	}
	for _, tt := range tests {
		msg := describe(tt.err)
		if !strings.HasPrefix(msg, tt.want) {
			t.Errorf("%s: describe = %q, want it to start with %q", tt.name, msg, tt.want)
		}
		if strings.Contains(msg, "hunter2") {
			t.Errorf("%s: %q shows the secret", tt.name, msg)
		}
		if code := ExitCode(tt.err); code != tt.code {
			t.Errorf("%s: exit %d, want %d", tt.name, code, tt.code)
		}
	}
	// Redaction and escaping still apply to the flag's words.
	if msg := describe(&UsageError{Err: validate(func(r *fetch.Request) { r.UserAgent = "x\x1b[31m" })}); strings.ContainsRune(msg, 0x1b) {
		t.Errorf("describe let an escape through: %q", msg)
	}
}

// TestEveryFieldHasAFlag: a field the fetch layer adds is named in
// describe's words too, or the message would call it by the layer's word.
func TestEveryFieldHasAFlag(t *testing.T) {
	for _, f := range fetch.Fields() {
		if _, ok := fieldFlags[f]; ok == (f == fetch.FieldURL) {
			t.Errorf("field %s: flag %v", f, ok)
		}
	}
}

// TestCheckFailuresInTheFlagsWords: the failed expectations of a check, on
// its lines and in its --json, name --expect-json; the others are the
// layer's words, unchanged.
func TestCheckFailuresInTheFlagsWords(t *testing.T) {
	je := &fetch.JSONExpectationError{Expr: ".ok", Yielded: "false"}
	status := errors.New("status 503 not in 2xx")
	r := fetch.CheckResult{Failed: []string{status.Error(), je.Error()}, Failures: []error{status, je}}
	checkWords{}.wordFailures(&r)
	if want := []string{"status 503 not in 2xx", "--expect-json .ok yielded false, not true"}; strings.Join(r.Failed, "|") != strings.Join(want, "|") {
		t.Errorf("failed = %q, want %q", r.Failed, want)
	}
}

// TestMessagesNameTheVariable: a bad value from a REFETCH_* variable is
// reported under the variable's name, the flag's when the flag was given
// (the command line wins, and the variable is then not read at all).
func TestMessagesNameTheVariable(t *testing.T) {
	const u = "http://api.test/"
	home := func(kv ...string) map[string]string {
		m := map[string]string{"HOME": "/home/u", "REFETCH_NODE": "n"}
		for i := 0; i+1 < len(kv); i += 2 {
			m[kv[i]] = kv[i+1]
		}
		return m
	}
	dir := t.TempDir()
	fetches := []struct {
		env   map[string]string
		args  []string
		usage string
	}{
		{home("REFETCH_TIMEOUT", "-5s"), nil, "invalid REFETCH_TIMEOUT=-5s: must not be negative"},
		{home("REFETCH_TIMEOUT", "-5s"), []string{"--timeout", "-1s"}, "invalid --timeout -1s: must not be negative"},
		{home("REFETCH_ATTEMPTS", "0"), nil, "invalid REFETCH_ATTEMPTS=0: must be at least 1"},
		{home("REFETCH_JITTER", "2"), nil, "invalid REFETCH_JITTER=2: must be between 0 and 1"},
		{home("REFETCH_BREAKER_RESET", "0s"), nil, "invalid REFETCH_BREAKER_RESET=0: a breaker must stay open"},
		{home("REFETCH_RETRY_ON", "abc"), nil, `invalid REFETCH_RETRY_ON="abc": status "abc" is not a code`},
		{home("REFETCH_STORE", "redis://u:hunter2@:x/"), nil, "invalid REFETCH_STORE redis://u:REDACTED@"},
		{home("REFETCH_MAX_REDIRS", "-1"), nil, "invalid REFETCH_MAX_REDIRS=-1: must not be negative"},
		{home("REFETCH_MAX_SIZE", "lots"), nil, "invalid REFETCH_MAX_SIZE: invalid size"},
		{home("REFETCH_METHOD", "GET X"), nil, `invalid REFETCH_METHOD="GET X": not an HTTP method token`},
		{home("REFETCH_HEADER", "NoColon"), nil, `invalid REFETCH_HEADER: header "NoColon" has no colon`},
		{home("REFETCH_HEADER", "NoColon"), []string{"-H", "Also No Colon"}, `invalid -H: header "Also No Colon" has no colon`},
		{home("REFETCH_USER_AGENT", "x\x01"), nil, `invalid REFETCH_USER_AGENT "x\x01"`},
		{home("REFETCH_USER", "bob:hunter2\x01"), nil, "invalid REFETCH_USER (value not shown)"},
		{home("REFETCH_CACERT", filepath.Join(dir, "ca.pem")), nil, `REFETCH_CACERT "` + filepath.Join(dir, "ca.pem") + `": cannot read`},
		{home("REFETCH_DATA", "@"+filepath.Join(dir, "body")), nil, "REFETCH_DATA @" + filepath.Join(dir, "body") + ": cannot read"},
		{home("REFETCH_STALE_IF_ERROR", "-1s"), nil, "invalid REFETCH_STALE_IF_ERROR=-1s: must not be negative"},
		{home("REFETCH_FALLBACK_FILE", filepath.Join(dir, "fb")), nil, "REFETCH_FALLBACK_FILE: " + filepath.Join(dir, "fb")},
	}
	for _, tt := range fetches {
		_, _, err := planFetch(t, tt.env, append(tt.args, u)...)
		wantUsage(t, err, tt.usage)
		if strings.Contains(describe(err), "hunter2") {
			t.Errorf("%q shows the secret", describe(err))
		}
	}
	checks := []struct {
		env   map[string]string
		usage string
	}{
		{home("REFETCH_WAIT", "-1s"), "invalid REFETCH_WAIT=-1s: must not be negative"},
		{home("REFETCH_MAX_LATENCY", "-1s"), "invalid REFETCH_MAX_LATENCY=-1s: must not be negative"},
		{home("REFETCH_EXPECT_JSON", ".["), `invalid REFETCH_EXPECT_JSON=".["`},
		{home("REFETCH_EXPECT_STATUS", "abc"), `invalid REFETCH_EXPECT_STATUS="abc": want a code`},
		{home("REFETCH_EXPECT_BODY", "("), "invalid REFETCH_EXPECT_BODY: "},
		{home("REFETCH_EXPECT_HEADER", "NoColon"), `invalid REFETCH_EXPECT_HEADER "NoColon"`},
	}
	for _, tt := range checks {
		_, _, err := planCheck(t, tt.env, u)
		wantUsage(t, err, tt.usage)
	}
}

// lazyWrap wraps err as the fetch layer's wrappers do: its message is
// made when asked, so a name set on err later still shows.
type lazyWrap struct {
	kind   error
	prefix string
	err    error
	suffix string
}

func (w *lazyWrap) Error() string {
	p := w.prefix
	if w.kind != nil {
		p = w.kind.Error()
	}
	return p + ": " + w.err.Error() + w.suffix
}

func (w *lazyWrap) Unwrap() []error {
	if w.kind != nil {
		return []error{w.kind, w.err}
	}
	return []error{w.err}
}

// TestNextStepSaysWhereTheRetryStarts: a retry line after a cut body says
// where the next attempt resumes, or why it starts over; through a
// timeout too.
func TestNextStepSaysWhereTheRetryStarts(t *testing.T) {
	resumes := &fetch.BodyCutError{Read: 5_900_000, Total: 16 << 20, Err: errors.New("x"), Resume: 5_900_000}
	restarts := &fetch.BodyCutError{Read: 10, Total: 20, Err: errors.New("x"), Restart: "no validator"}
	for _, tc := range []struct {
		err       error
		step, why string
	}{
		{resumes, "resuming from byte 5,900,000", ""},
		{&resilience.TimeoutError{After: 1e9, Err: resumes}, "resuming from byte 5,900,000", ""},
		{restarts, "retrying from the start", "no validator"},
		{&fetch.BodyCutError{Read: 10, Total: 20, Err: errors.New("x")}, "retrying", ""}, // --no-resume
		{&fetch.BodyCutError{Read: 0, Total: 20, Err: errors.New("x")}, "retrying", ""},
		{errors.New("503"), "retrying", ""},
	} {
		if step, why := nextStep(tc.err); step != tc.step || why != tc.why {
			t.Errorf("nextStep(%v) = %q, %q; want %q, %q", tc.err, step, why, tc.step, tc.why)
		}
	}
}
