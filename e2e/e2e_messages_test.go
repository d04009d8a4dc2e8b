package e2e

import (
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// badInputCase is one bad input: its flags and variables, and the one
// line refetch says about it, after "refetch: ".
type badInputCase struct {
	name string
	args []string // after fetch's own flags; the target URL is added
	env  []string
	want string
}

// runBadInput runs each case as TestE2EBadInputSendsNothing does (exit 2,
// one line, nothing sent, no secret), checks the line is exactly want
// and the --help hint, and that --json reports the same words as its error.
func runBadInput(t *testing.T, cases []badInputCase) {
	t.Helper()
	const target = "https://example.invalid:8443/"
	for _, tt := range cases {
		t.Run(tt.name, func(t *testing.T) {
			p := newCountingProxy(t)
			e := p.env(t).with(tt.env...)
			r := e.run(append(append(args("--fallback", "x"), tt.args...), target)...)
			wantRefusedOffline(t, p, e, r, "hunter2")
			if want := "refetch: " + tt.want + " (see 'refetch fetch --help')\n"; r.stderr != want {
				t.Errorf("stderr:\n%q\nwant\n%q", r.stderr, want)
			}
			r = e.run(append(append(args("--json"), tt.args...), target)...)
			r.wantCode(t, 2)
			rep := r.report(t)
			if rep["error"] != tt.want || rep["exit_code"] != float64(2) {
				t.Errorf("--json error %q, exit_code %v; want %q, 2", rep["error"], rep["exit_code"], tt.want)
			}
			if strings.Contains(r.stdout+r.stderr, "hunter2") {
				t.Errorf("--json run shows the secret: %s %s", r.stdout, r.stderr)
			}
		})
	}
}

// TestE2EInputErrorsNameTheFlag: the fetch layer reports a bad request
// field, CA file or output path in its own words; the user reads them
// under the flag they gave, exactly as before the layers were split, with
// the usage exit code.
func TestE2EInputErrorsNameTheFlag(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	empty := writeFile(t, dir, "empty.pem", nil)
	missing := filepath.Join(dir, "missing.pem")
	runBadInput(t, []badInputCase{
		{name: "a directory as -o", args: []string{"-o", dir}, want: "-o " + dir + ": is a directory"},
		{name: "-o in a missing directory", args: []string{"-o", filepath.Join(dir, "none", "out")},
			want: "-o " + filepath.Join(dir, "none", "out") + ": cannot write in " + filepath.Join(dir, "none") + ": no such file or directory"},
		{name: "bad -X", args: []string{"-X", "GET X"}, want: `invalid -X "GET X": not an HTTP method token`},
		{name: "bad -H", args: []string{"-H", "NoColon"}, want: `invalid -H: header "NoColon" has no colon; want 'Name: value'`},
		{name: "-H with a line break", args: []string{"-H", "X-A: 1\nX-B: 2"},
			want: `invalid -H: header "X-A: 1\nX-B: 2" contains a line break ("\n"): give each header separately, and strip line endings read from files`},
		{name: "-H with a secret", args: []string{"-H", "Authorization: Bearer hunter2\x01"},
			want: `invalid -H: header "Authorization" value (not shown): it contains the control character "\x01"; remove it`},
		{name: "control character in -A", args: []string{"-A", "x\x01"}, want: `invalid -A "x\x01": it contains the control character "\x01"; remove it`},
		{name: "bad -u", args: []string{"-u", "alice:hunter2\x01"}, want: `invalid -u (value not shown): it contains the control character "\x01"; remove it`},
		{name: "unreadable --cacert", args: []string{"--cacert", missing}, want: `--cacert "` + missing + `": cannot read: no such file or directory`},
		{name: "empty --cacert", args: []string{"--cacert", empty},
			want: `--cacert "` + empty + `": the file is empty; want PEM CA certificates (-----BEGIN CERTIFICATE-----)`},
	})
}

// TestE2EBadVariableNamesTheVariable: a bad value that came from a
// REFETCH_* variable is reported under the variable's name, not under a
// flag the user never typed; a flag given on the command line wins, and
// then the message names the flag.
func TestE2EBadVariableNamesTheVariable(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	empty := writeFile(t, dir, "empty.pem", nil)
	runBadInput(t, []badInputCase{
		{name: "REFETCH_TIMEOUT", env: []string{"REFETCH_TIMEOUT=-5s"}, want: "invalid REFETCH_TIMEOUT=-5s: must not be negative"},
		{name: "--timeout given over REFETCH_TIMEOUT", env: []string{"REFETCH_TIMEOUT=-5s"}, args: []string{"--timeout", "-1s"},
			want: "invalid --timeout -1s: must not be negative"},
		{name: "REFETCH_ATTEMPTS", env: []string{"REFETCH_ATTEMPTS=0"}, want: "invalid REFETCH_ATTEMPTS=0: must be at least 1"},
		{name: "REFETCH_MAX_REDIRS", env: []string{"REFETCH_MAX_REDIRS=-1"}, want: "invalid REFETCH_MAX_REDIRS=-1: must not be negative"},
		{name: "REFETCH_USER_AGENT", env: []string{"REFETCH_USER_AGENT=x\x01"},
			want: `invalid REFETCH_USER_AGENT "x\x01": it contains the control character "\x01"; remove it`},
		{name: "REFETCH_USER", env: []string{"REFETCH_USER=alice:hunter2\x01"},
			want: `invalid REFETCH_USER (value not shown): it contains the control character "\x01"; remove it`},
		{name: "REFETCH_CACERT", env: []string{"REFETCH_CACERT=" + empty},
			want: `REFETCH_CACERT "` + empty + `": the file is empty; want PEM CA certificates (-----BEGIN CERTIFICATE-----)`},
		{name: "REFETCH_OUTPUT", env: []string{"REFETCH_OUTPUT=" + dir}, want: "REFETCH_OUTPUT " + dir + ": is a directory"},
		{name: "REFETCH_STORE", env: []string{"REFETCH_STORE=redis://u:hunter2@:x/"},
			want: `invalid REFETCH_STORE redis://u:REDACTED@:x/: invalid host and port ":x" (want host:port, or [IPv6]:port)`},
	})

	// check and probe resolve their own flags the same way.
	e := newEnv(t)
	for _, tc := range []struct {
		env  string
		args []string
		want string
	}{
		{"REFETCH_WAIT=-1s", []string{"check", "http://example.invalid/"}, "refetch: invalid REFETCH_WAIT=-1s: must not be negative"},
		{"REFETCH_EXPECT_JSON=.[", []string{"check", "http://example.invalid/"}, `refetch: invalid REFETCH_EXPECT_JSON=".[": `},
		{"REFETCH_INTERVAL=1ns", []string{"probe", "http://example.invalid/"}, "refetch: invalid REFETCH_INTERVAL=1ns: must be from 10ms to 1h"},
		{"REFETCH_PARALLEL=0", []string{"fetch", "http://example.invalid/1", "http://example.invalid/2"},
			"refetch: invalid REFETCH_PARALLEL=0: must be from 1 to 1024"},
	} {
		r := e.with(tc.env).run(tc.args...)
		r.wantCode(t, 2)
		if !strings.HasPrefix(r.stderr, tc.want) {
			t.Errorf("%s %v: stderr %q, want %q", tc.env, tc.args, r.stderr, tc.want)
		}
	}

	// A batch checks its -o template for every URL the same way.
	if err := os.MkdirAll(filepath.Join(e.dir, "out", "a"), 0o755); err != nil {
		t.Fatal(err)
	}
	r := e.with("REFETCH_OUTPUT=out/{name}").run("fetch", "http://example.invalid/a", "http://example.invalid/b")
	r.wantCode(t, 2)
	if !strings.HasPrefix(r.stderr, "refetch: argument 1: REFETCH_OUTPUT out/a: is a directory") {
		t.Errorf("stderr %q", r.stderr)
	}

	// A good flag on the command line: the bad variable is not read.
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { fmt.Fprint(w, "ok") }))
	defer srv.Close()
	r = e.with("REFETCH_TIMEOUT=-5s").run("fetch", "--timeout", "5s", srv.URL)
	r.wantCode(t, 0)
	if r.stdout != "ok" {
		t.Errorf("stdout %q", r.stdout)
	}
}

// TestE2ECheckJSONExpectationNamesTheFlag: a failed --expect-json is
// worded by the fetch layer without the flag; the check's line, its retry
// line and its --json name the flag, with exit 8.
func TestE2ECheckJSONExpectationNamesTheFlag(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprint(w, `{"ok": false}`)
	}))
	defer srv.Close()
	e := newEnv(t)
	const want = "--expect-json .ok yielded false, not true"
	r := e.run(check("-n", "2", "--expect-json", ".ok", srv.URL)...)
	r.wantCode(t, 8)
	if !strings.HasSuffix(strings.TrimRight(r.stdout, "\n"), "  "+want) {
		t.Errorf("stdout %q does not end with %q", r.stdout, want)
	}
	if !strings.HasPrefix(r.stderr, "attempt 1/2: "+want+"; retrying in ") {
		t.Errorf("stderr %q", r.stderr)
	}
	r = e.run(check("-n", "1", "--json", "--expect-json", ".ok", srv.URL)...)
	r.wantCode(t, 8)
	results, _ := r.report(t)["results"].([]any)
	if len(results) != 1 {
		t.Fatalf("results %v", results)
	}
	failed, _ := results[0].(map[string]any)["failed"].([]any)
	if len(failed) != 1 || failed[0] != want {
		t.Errorf("failed %q, want [%q]", failed, want)
	}
}

// TestE2ECommandLineBeatsRivalVariable: the command line wins over the
// variable of a flag it cannot be used with (a tour's REFETCH_QUIET=1 with
// -v was "-q and -v cannot be used together", naming a flag never typed);
// two such variables are an error naming both; REFETCH_ALL never turns a
// key-less breaker reset into a reset of every key.
func TestE2ECommandLineBeatsRivalVariable(t *testing.T) {
	t.Parallel()
	var hits counter
	srv := bodyServer(t, &hits)
	e := newEnv(t)
	r := e.with("REFETCH_QUIET=1").run("fetch", "-v", srv.URL)
	r.wantCode(t, 0)
	if !strings.Contains(r.stderr, "> GET ") && !strings.Contains(r.stderr, "] GET ") {
		t.Errorf("REFETCH_QUIET=1 with -v: not verbose: %q", r.stderr)
	}
	out := filepath.Join(e.dir, "body")
	e.with("REFETCH_NO_BUFFER=1").run("fetch", "-o", out, srv.URL).wantCode(t, 0)
	if b, _ := os.ReadFile(out); string(b) != string(outputBody) {
		t.Errorf("REFETCH_NO_BUFFER=1 with -o: file %q", b)
	}
	e.with("REFETCH_NO_BUFFER=1").run("fetch", "--json", srv.URL).wantCode(t, 0)
	fb := filepath.Join(e.dir, "fb")
	os.WriteFile(fb, []byte("fallback"), 0o644)
	e.with("REFETCH_FALLBACK=x").run("fetch", "--fallback-file", fb, srv.URL).wantCode(t, 0)
	before := hits.get()
	for vars, want := range map[string]string{
		"REFETCH_QUIET=1 REFETCH_VERBOSE=1":      "refetch: REFETCH_QUIET and REFETCH_VERBOSE cannot be used together",
		"REFETCH_NO_BUFFER=1 REFETCH_OUTPUT=out": "refetch: REFETCH_NO_BUFFER streams to stdout, REFETCH_OUTPUT writes a file atomically: use one",
	} {
		r := e.with(strings.Fields(vars)...).run("fetch", srv.URL)
		r.wantCode(t, 2)
		if !strings.HasPrefix(r.stderr, want) {
			t.Errorf("%s: stderr %q, want %q", vars, r.stderr, want)
		}
	}
	if hits.get() != before {
		t.Errorf("a usage error sent a request")
	}
	// A hold on the origin, then a reset under REFETCH_ALL=true: a KEY
	// is still needed, and with one only that key is reset.
	e.run("fetch", "-n", "1", "--breaker-failures", "1", "http://127.0.0.1:9/").wantCode(t, 4)
	r = e.with("REFETCH_ALL=true").run("breaker", "reset")
	r.wantCode(t, 2)
	if !strings.Contains(r.stderr, "give a KEY or --all") {
		t.Errorf("REFETCH_ALL=true breaker reset: %q", r.stderr)
	}
	if r := e.run("breaker", "status"); !strings.Contains(r.stdout, "127.0.0.1:9") {
		t.Errorf("the breaker was reset by REFETCH_ALL: %q", r.stdout)
	}
}

// TestE2ENameWithLineBreak: a file, directory, store or key name ending
// in a CR (a script with Windows line endings) is refused before
// anything is done, given as a flag or a variable; a tour found
// "x.txt\r" written and a state dir "st\r" beside "st", exit 0.
func TestE2ENameWithLineBreak(t *testing.T) {
	t.Parallel()
	var hits counter
	srv := bodyServer(t, &hits)
	e := newEnv(t)
	for _, tc := range []struct {
		env  string
		args []string
		want string
	}{
		{"", []string{"fetch", "-o", "x.txt\r", srv.URL}, `invalid --output "x.txt\r"`},
		{"REFETCH_OUTPUT=x.txt\r", []string{"fetch", srv.URL}, `invalid REFETCH_OUTPUT="x.txt\r"`},
		{"REFETCH_STATE_DIR=st\r", []string{"fetch", srv.URL}, `invalid REFETCH_STATE_DIR="st\r"`},
		{"", []string{"fetch", "--state-dir", "st\r", srv.URL}, `invalid --state-dir "st\r"`},
		{"", []string{"fetch", "--breaker-key", "k\r", srv.URL}, `invalid --breaker-key "k\r"`},
		{"", []string{"check", "--report", "junit=r.xml\r", srv.URL}, `invalid --report "junit=r.xml\r"`},
		{"", []string{"probe", "-n", "1", "--metrics", "m.prom\r", srv.URL}, `invalid --metrics "m.prom\r"`},
		{"", []string{"breaker", "status", "--metrics", "m.prom\r"}, `invalid --metrics "m.prom\r"`},
		{"", []string{"fetch", "--store", "redis://u:s3cret-pw@127.0.0.1:1/0\r", srv.URL}, `invalid --store "redis://u:REDACTED@127.0.0.1:1/0\r"`},
	} {
		r := e.with(tc.env).run(tc.args...)
		r.wantCode(t, 2)
		if !strings.Contains(r.stderr, tc.want) || strings.Contains(r.stderr, "s3cret-pw") {
			t.Errorf("%q %q: stderr %q, want %q", tc.env, tc.args, r.stderr, tc.want)
		}
	}
	if hits.get() != 0 {
		t.Errorf("%d requests sent", hits.get())
	}
	if entries, _ := os.ReadDir(e.dir); len(entries) > 0 {
		for _, en := range entries {
			if strings.Contains(en.Name(), "\r") {
				t.Errorf("made %q", en.Name())
			}
		}
	}
}

// TestE2EMalformedProxyVariable: a proxy variable net/http cannot use is
// exit 2 before any request, its password not shown; net/http had gone
// direct (or dialled a host named "http") without a word. Only the
// variable net/http would read for the URL is checked: not for a
// loopback host, not the lower-case one beside a set upper-case one,
// not HTTP_PROXY for an https URL.
func TestE2EMalformedProxyVariable(t *testing.T) {
	t.Parallel()
	var hits counter
	srv := bodyServer(t, &hits)
	port := srv.Listener.Addr().(*net.TCPAddr).Port
	url := fmt.Sprintf("http://svc.test:%d/", port)
	pin := fmt.Sprintf("svc.test:%d:127.0.0.1", port)
	e := newEnv(t)
	for _, tc := range []struct{ env, want string }{
		{"HTTP_PROXY=http://u:PR0XY%zzpass@127.0.0.1:1", `invalid HTTP_PROXY="http://u:REDACTED@127.0.0.1:1": not a URL`},
		{"HTTP_PROXY=http://[::1", `invalid HTTP_PROXY="http://[::1": not a URL`},
		{"http_proxy=ftp://127.0.0.1:1", `invalid http_proxy="ftp://127.0.0.1:1": scheme "ftp"`},
		{"HTTP_PROXY=http://127.0.0.1:99999", `port "99999": want 1 to 65535`},
	} {
		for _, cmd := range [][]string{{"fetch"}, {"check", "-n", "1"}, {"probe", "-n", "1"}} {
			r := e.with(tc.env).run(append(cmd, "--resolve", pin, url)...)
			r.wantCode(t, 2)
			if !strings.Contains(r.stderr, tc.want) || strings.Contains(r.stderr, "PR0XY") {
				t.Errorf("%s %v: stderr %q, want %q", tc.env, cmd, r.stderr, tc.want)
			}
		}
	}
	if hits.get() != 0 {
		t.Errorf("%d requests sent", hits.get())
	}
	// Variables net/http would not read for these URLs are not judged:
	// a loopback host is never proxied, the lower-case variable is not
	// read beside the upper-case one, HTTP_PROXY is not read for https.
	bad := "http://[::1"
	e.with("HTTP_PROXY="+bad).run("fetch", srv.URL).wantCode(t, 0)
	r := e.with("HTTP_PROXY=http://127.0.0.1:1", "http_proxy="+bad).run("fetch", "-n", "1", "--resolve", pin, url)
	if r.code == 2 || strings.Contains(r.stderr, "invalid http_proxy") {
		t.Errorf("a stale http_proxy beside HTTP_PROXY: exit %d, %s", r.code, r.stderr)
	}
	r = e.with("HTTP_PROXY="+bad).run("fetch", "-n", "1", "--resolve", fmt.Sprintf("svc.test:%d:127.0.0.1", port), fmt.Sprintf("https://svc.test:%d/", port))
	if r.code == 2 || strings.Contains(r.stderr, "invalid HTTP_PROXY") {
		t.Errorf("HTTP_PROXY with an https URL: exit %d, %s", r.code, r.stderr)
	}
}

// TestE2ECheckAndProbeJSONClass: check's and probe's --json name their
// exit code's class as fetch's details.class does, from the one table
// (a tour found only exit_code there).
func TestE2ECheckAndProbeJSONClass(t *testing.T) {
	t.Parallel()
	down := downServer(t, nil)
	e := newEnv(t)
	for _, tc := range []struct {
		args  []string
		code  int
		class string
	}{
		{[]string{"check", "--json", "-n", "1", down.URL}, 8, "unhealthy"},
		{[]string{"check", "--json", "--wait", "-1s", down.URL}, 2, "usage"},
		{[]string{"probe", "--json", "-n", "1", "--expect-success", "100%", down.URL}, 8, "unhealthy"},
	} {
		r := e.run(tc.args...)
		r.wantCode(t, tc.code)
		var rep struct {
			ExitCode int    `json:"exit_code"`
			Class    string `json:"class"`
		}
		if err := json.Unmarshal([]byte(r.stdout), &rep); err != nil || rep.ExitCode != tc.code || rep.Class != tc.class {
			t.Errorf("%v: %q (%v), want class %q", tc.args, r.stdout, err, tc.class)
		}
	}
}
