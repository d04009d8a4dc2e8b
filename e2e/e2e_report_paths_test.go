package e2e

import (
	"encoding/pem"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// A report or --metrics never replaces a file the run reads or writes
// otherwise (docs/reports.md, "Checked before any request"): every pair
// is exit 2, one line naming both flags, nothing sent, nothing touched.
func TestReportPathsCollide(t *testing.T) {
	t.Parallel()
	var sent counter
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		sent.next()
		w.Write([]byte("ok"))
	}))
	t.Cleanup(srv.Close)
	tlsSrv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { sent.next() }))
	t.Cleanup(tlsSrv.Close)
	caPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: tlsSrv.Certificate().Raw})
	u := srv.URL + "/x"

	tests := []struct {
		name  string
		env   []string
		files map[string]string // made in the run's directory first
		link  [2]string         // symlink link[0] -> link[1]
		hard  [2]string         // hard link hard[0] of hard[1]
		args  []string
		want  string
	}{
		{name: "fetch -o", files: map[string]string{"out.xml": "body"},
			args: []string{"fetch", "-o", "out.xml", "--report", "junit=out.xml", u},
			want: "--report junit=out.xml would overwrite -o out.xml: give them different files"},
		{name: "fetch -o, another spelling", files: map[string]string{"out.xml": "body"},
			args: []string{"fetch", "-o", "./o/../out.xml", "--report", "tap=out.xml", u},
			want: "--report tap=out.xml would overwrite -o ./o/../out.xml"},
		{name: "fetch -o, a symlink", files: map[string]string{"out.xml": "body"}, link: [2]string{"lnk", "out.xml"},
			args: []string{"fetch", "-o", "lnk", "--report", "junit=out.xml", u},
			want: "--report junit=out.xml would overwrite -o lnk"},
		{name: "fetch -o, a hard link", files: map[string]string{"out.xml": "body"}, hard: [2]string{"hard", "out.xml"},
			args: []string{"fetch", "-o", "hard", "--report", "tap13=out.xml", u},
			want: "--report tap13=out.xml would overwrite -o hard"},
		{name: "fetch -o, not yet there", args: []string{"fetch", "-o", "new.xml", "--report", "junit=new.xml", u},
			want: "--report junit=new.xml would overwrite -o new.xml"},
		{name: "batch -i", files: map[string]string{"urls.txt": u + "\n"},
			args: []string{"fetch", "-i", "urls.txt", "-o", "o/{n}", "--report", "junit=urls.txt"},
			want: "--report junit=urls.txt would overwrite -i urls.txt"},
		{name: "batch -o template output", files: map[string]string{"urls.txt": u + "\n" + u + "?b\n", "o/keep": ""},
			args: []string{"fetch", "-i", "urls.txt", "-o", "o/{n}", "--report", "junit=o/2"},
			want: "--report junit=o/2 would overwrite -o o/{n} (line 2 writes o/2)"},
		{name: "batch -o without placeholder", files: map[string]string{"out": "body"},
			args: []string{"fetch", "-o", "out", "--report", "tap=out", u},
			want: "--report tap=out would overwrite -o out"},
		{name: "batch of arguments -o template", files: map[string]string{"o/1": "body"},
			args: []string{"fetch", "-o", "o/{n}", "--report", "junit=o/1", u, u + "?b"},
			want: "--report junit=o/1 would overwrite -o o/{n} (argument 1 writes o/1)"},
		{name: "fetch --fallback-file", files: map[string]string{"fb.txt": "fallback"},
			args: []string{"fetch", "--fallback-file", "fb.txt", "--report", "tap=fb.txt", u},
			want: "--report tap=fb.txt would overwrite --fallback-file fb.txt"},
		{name: "batch --fallback-file", files: map[string]string{"fb.txt": "fallback"},
			args: []string{"fetch", "--fallback-file", "fb.txt", "--report", "tap=fb.txt", "-o", "o{n}", u, u + "?b"},
			want: "--report tap=fb.txt would overwrite --fallback-file fb.txt"},
		{name: "fetch -d @FILE", files: map[string]string{"body.json": "{}"},
			args: []string{"fetch", "-d", "@body.json", "--report", "junit=body.json", u},
			want: "--report junit=body.json would overwrite -d @body.json"},
		{name: "fetch --data @FILE", files: map[string]string{"body.json": "{}"},
			args: []string{"fetch", "--data", "@body.json", "--report", "junit=body.json", "-o", "o{n}", u, u + "?b"},
			want: "--report junit=body.json would overwrite -d @body.json"},
		{name: "fetch --cacert", files: map[string]string{"ca.pem": string(caPEM)},
			args: []string{"fetch", "--cacert", "ca.pem", "--report", "junit=ca.pem", tlsSrv.URL},
			want: "--report junit=ca.pem would overwrite --cacert ca.pem"},
		{name: "check --cacert", files: map[string]string{"ca.pem": string(caPEM)},
			args: []string{"check", "--cacert", "ca.pem", "--report", "tap=ca.pem", tlsSrv.URL},
			want: "--report tap=ca.pem would overwrite --cacert ca.pem"},
		{name: "probe --cacert", files: map[string]string{"ca.pem": string(caPEM)},
			args: []string{"probe", "-n", "1", "--cacert", "ca.pem", "--report", "tap=ca.pem", tlsSrv.URL},
			want: "--report tap=ca.pem would overwrite --cacert ca.pem"},
		{name: "two reports", files: map[string]string{"r.xml": "old"},
			args: []string{"check", "--report", "junit=r.xml", "--report", "tap=./r.xml", u},
			want: "--report junit=r.xml would overwrite --report tap=./r.xml"},
		{name: "two reports, a symlink", files: map[string]string{"r.xml": "old"}, link: [2]string{"lnk", "r.xml"},
			args: []string{"fetch", "--report", "junit=r.xml", "--report", "tap=lnk", u},
			want: "--report junit=r.xml would overwrite --report tap=lnk"},
		{name: "probe --metrics", files: map[string]string{"m.prom": "# old"},
			args: []string{"probe", "-n", "1", "--metrics", "m.prom", "--report", "junit=m.prom", u},
			want: "--report junit=m.prom would overwrite --metrics m.prom"},
		{name: "probe --metrics over -d @FILE", files: map[string]string{"body": "x"},
			args: []string{"probe", "-n", "1", "--metrics", "body", "-d", "@body", u},
			want: "--metrics body would overwrite -d @body"},
		{name: "probe --metrics over --cacert", files: map[string]string{"ca.pem": string(caPEM)},
			args: []string{"probe", "-n", "1", "--metrics", "ca.pem", "--cacert", "ca.pem", tlsSrv.URL},
			want: "--metrics ca.pem would overwrite --cacert ca.pem"},
		{name: "check $GITHUB_STEP_SUMMARY", env: []string{"GITHUB_ACTIONS=true", "GITHUB_STEP_SUMMARY=sum.md"},
			files: map[string]string{"sum.md": "# earlier step\n"},
			args:  []string{"check", "--report", "junit=sum.md", u},
			want:  "--report junit=sum.md would overwrite $GITHUB_STEP_SUMMARY=sum.md"},
		{name: "fetch $GITHUB_STEP_SUMMARY", env: []string{"GITHUB_ACTIONS=true", "GITHUB_STEP_SUMMARY=sum.md"},
			files: map[string]string{"sum.md": "# earlier step\n"},
			args:  []string{"fetch", "--report", "tap=sum.md", u},
			want:  "--report tap=sum.md would overwrite $GITHUB_STEP_SUMMARY=sum.md"},
		{name: "the variables' names", env: []string{"REFETCH_REPORT=junit=out.xml", "REFETCH_OUTPUT=out.xml"},
			files: map[string]string{"out.xml": "body"},
			args:  []string{"fetch", u},
			want:  "REFETCH_REPORT=junit=out.xml would overwrite REFETCH_OUTPUT=out.xml"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t).with(tt.env...)
			for name, content := range tt.files {
				p := filepath.Join(e.dir, name)
				os.MkdirAll(filepath.Dir(p), 0o755)
				if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			os.MkdirAll(filepath.Join(e.dir, "o"), 0o755)
			if tt.link[0] != "" {
				if err := os.Symlink(tt.link[1], filepath.Join(e.dir, tt.link[0])); err != nil {
					t.Fatal(err)
				}
			}
			if tt.hard[0] != "" {
				if err := os.Link(filepath.Join(e.dir, tt.hard[1]), filepath.Join(e.dir, tt.hard[0])); err != nil {
					t.Fatal(err)
				}
			}
			before := sent.get()
			res := e.run(tt.args...)
			res.wantCode(t, 2)
			if !strings.Contains(res.stderr, tt.want) || strings.Count(strings.TrimSpace(res.stderr), "\n") != 0 {
				t.Errorf("stderr %q, want one line with %q", res.stderr, tt.want)
			}
			if res.stdout != "" {
				t.Errorf("stdout %q", res.stdout)
			}
			if n := sent.get() - before; n != 0 {
				t.Errorf("%d requests sent", n)
			}
			for name, content := range tt.files {
				if got := readText(t, filepath.Join(e.dir, name)); got != content {
					t.Errorf("%s was changed: %q", name, got)
				}
			}
			for _, name := range []string{"new.xml", "o/1", "o/2"} {
				if _, ok := tt.files[name]; !ok {
					if _, err := os.Stat(filepath.Join(e.dir, name)); err == nil {
						t.Errorf("%s was written", name)
					}
				}
			}
		})
	}
}

// TestReportPathsApart: files that only look alike are not refused.
func TestReportPathsApart(t *testing.T) {
	t.Parallel()
	srv := newScripted(t)
	e := newEnv(t)
	os.WriteFile(filepath.Join(e.dir, "fb.txt"), []byte("fallback"), 0o644)
	e.run("fetch", "-o", "out.xml", "--report", "junit=out.xml.report", "--fallback-file", "fb.txt", srv.URL+"/ok").wantCode(t, 0)
	if readText(t, filepath.Join(e.dir, "out.xml")) != "ok" {
		t.Error("the body is not in -o")
	}
	checkSurefire(t, filepath.Join(e.dir, "out.xml.report"))
}

// TestReportProcMessage: a report in a file system that takes no new
// files says so, not that /proc does not exist.
func TestReportProcMessage(t *testing.T) {
	t.Parallel()
	if _, err := os.Stat("/proc/self"); err != nil {
		t.Skip("no /proc")
	}
	res := newEnv(t).run("fetch", "--report", "tap=/proc/x.tap", "http://127.0.0.1:9/")
	res.wantCode(t, 2)
	if !strings.Contains(res.stderr, "cannot create a file in /proc: its file system takes no new files") {
		t.Errorf("stderr %q", res.stderr)
	}
}

// TestCheckPollFloorIsWaitInReports: with --delay under check's 100ms
// floor, the floor is the wait after each failed attempt, and each
// attempt's duration is its own request, in JUnit, TAP and -v.
func TestCheckPollFloorIsWaitInReports(t *testing.T) {
	t.Parallel()
	srv := newScripted(t)
	e := newEnv(t)
	dir := t.TempDir()
	junit, tapf := filepath.Join(dir, "r.xml"), filepath.Join(dir, "r.tap")
	res := e.run(append([]string{"check", "-v", "--attempts", "3", "--report", "junit=" + junit, "--report", "tap=" + tapf},
		append(fast, srv.URL+"/flaky/floor")...)...)
	res.wantCode(t, 0)
	if n := strings.Count(res.stderr, "retrying in 100ms"); n != 2 {
		t.Errorf("-v: %d retry lines saying 100ms, want 2:\n%s", n, res.stderr)
	}
	blocks := tapBlocks(t, tapf)
	if len(blocks) != 1 {
		t.Fatalf("%d TAP blocks", len(blocks))
	}
	attempts, _ := blocks[0]["attempts"].([]any)
	if len(attempts) != 3 {
		t.Fatalf("attempts %v", blocks[0]["attempts"])
	}
	for i, a := range attempts {
		m := a.(map[string]any)
		wait := num(m["wait_ms"])
		if i < 2 && wait != 100 {
			t.Errorf("attempt %d: wait_ms %v, want the 100ms floor", i+1, m["wait_ms"])
		}
		var phases float64
		tm, _ := m["timings_ms"].(map[string]any)
		for _, v := range tm {
			phases += num(v)
		}
		// The attempt is its request: its phases fit in it, with at
		// most the request's own overhead outside them, never a wait.
		if d := num(m["duration_ms"]); phases > d+0.002 {
			t.Errorf("attempt %d: phases %vms over its duration %vms", i+1, phases, d)
		}
	}
	root := checkSurefire(t, junit)
	ff := caseNamed(t, root, "/flaky/floor").children("flakyFailure")
	if len(ff) != 2 {
		t.Fatalf("%d flakyFailures, want 2", len(ff))
	}
	for i, f := range ff {
		trace := f.children("stackTrace")
		if len(trace) != 1 || !strings.HasSuffix(strings.TrimSpace(trace[0].Text), "; waited 100ms") {
			t.Errorf("flakyFailure %d: %+v, want its attempt line to end with waited 100ms", i+1, trace)
		}
	}
}

// num is a YAML number as a float64.
func num(v any) float64 {
	switch n := v.(type) {
	case int:
		return float64(n)
	case float64:
		return n
	}
	return 0
}

// TestCheckFlakyFailsSaysFailed: under --flaky-fails, a flaky URL that
// makes the check exit 8 is shown as failing it on stdout, in its
// annotation (an error) and in the step summary's title.
func TestCheckFlakyFailsSaysFailed(t *testing.T) {
	t.Parallel()
	srv := newScripted(t)
	dir := t.TempDir()
	summary := filepath.Join(dir, "summary.md")
	e := newEnv(t).with("GITHUB_ACTIONS=true", "GITHUB_STEP_SUMMARY="+summary)
	res := e.run(append([]string{"check", "--flaky-fails", "--attempts", "3"}, append(fast, srv.URL+"/flaky/ff", srv.URL+"/ok")...)...)
	res.wantCode(t, 8)
	lines := strings.Split(strings.TrimSpace(res.stdout), "\n")
	if len(lines) != 2 {
		t.Fatalf("stdout:\n%s", res.stdout)
	}
	for _, l := range lines {
		switch {
		case strings.Contains(l, "/flaky/ff"):
			if !strings.HasPrefix(l, "flaky ") || !strings.Contains(l, "failed under --flaky-fails: passed on attempt 3, after 2 failed attempts") {
				t.Errorf("the flaky URL's line: %q", l)
			}
		case !strings.HasPrefix(l, "healthy "):
			t.Errorf("the healthy URL's line: %q", l)
		}
	}
	if !regexp.MustCompile(`(?m)^::error title=refetch check%3A [^\n]*/flaky/ff flaky \(--flaky-fails\)::failed under --flaky-fails: passed after 2 failed attempts`).MatchString(res.stderr) ||
		strings.Contains(res.stderr, "::warning") {
		t.Errorf("annotations:\n%s", res.stderr)
	}
	if text := readText(t, summary); !strings.Contains(text, "### refetch check failed: 2 URLs, 1 passed, 1 flaky (--flaky-fails: flaky fails the run)") {
		t.Errorf("step summary:\n%s", text)
	}

	// Without --flaky-fails the same run passes, and says so.
	res = e.run(append([]string{"check", "--attempts", "3"}, append(fast, srv.URL+"/flaky/ok", srv.URL+"/ok")...)...)
	res.wantCode(t, 0)
	if strings.Count(res.stdout, "healthy ") != 2 || !strings.Contains(res.stderr, "::warning title=") || strings.Contains(res.stderr, "::error") {
		t.Errorf("without --flaky-fails: stdout %q stderr %s", res.stdout, res.stderr)
	}
	if text := readText(t, summary); !strings.Contains(text, "### refetch check: 2 URLs, 1 passed, 1 flaky\n") {
		t.Errorf("step summary:\n%s", text)
	}
}

// TestReportPathsStdStreams: a report or --metrics that is the file a
// standard stream is redirected to would be renamed over it, and what the
// run reads or writes through the stream lost (the URL list of -i - <
// list, the verdicts of check > out.txt): exit 2 before any request, the
// file as it was. A report to a link to the process's own stdout is
// written through it, after the run's lines, and the link stays a link.
func TestReportPathsStdStreams(t *testing.T) {
	t.Parallel()
	if _, err := os.Stat("/proc/self/fd"); err != nil {
		t.Skip("no /proc/self/fd")
	}
	var sent counter
	srv := bodyServer(t, &sent)
	e := newEnv(t)
	list := srv.URL + "/a\n"
	for _, tc := range []struct{ script, want string }{
		{`"$0" fetch -i - -o 'o{n}' --report junit=list < list`, "--report junit=list would overwrite standard input"},
		{`"$0" check --report tap=out.txt "$1" > out.txt`, "--report tap=out.txt would overwrite standard output"},
		{`"$0" fetch --report junit=err.txt "$1" 2> err.txt; c=$?; cat err.txt; exit $c`, "--report junit=err.txt would overwrite standard error"},
		{`"$0" probe -n 1 --metrics m.prom "$1" > m.prom`, "--metrics m.prom would overwrite standard output"},
		{`"$0" breaker status --metrics b.prom > b.prom`, "--metrics b.prom would overwrite standard output"},
	} {
		os.WriteFile(filepath.Join(e.dir, "list"), []byte(list), 0o644)
		code, out := e.sh(tc.script, srv.URL)
		if code != 2 || !strings.Contains(out, tc.want) {
			t.Errorf("%s: exit %d, output %q; want exit 2 and %q", tc.script, code, out, tc.want)
		}
		if got := readText(t, filepath.Join(e.dir, "list")); got != list {
			t.Errorf("%s: the URL list is now %q", tc.script, got)
		}
	}
	if n := sent.get(); n != 0 {
		t.Errorf("%d requests sent", n)
	}

	link := filepath.Join(e.dir, "to-stdout")
	if err := os.Symlink("/proc/self/fd/1", link); err != nil {
		t.Fatal(err)
	}
	// Where stdout carries the body or a --json report, a report there
	// would be appended to it: refused before any request (a review
	// found a body followed by JUnit, exit 0).
	for _, a := range [][]string{
		{"fetch", "--report", "junit=" + link, srv.URL},
		{"fetch", "--json", "--report", "tap=" + link, srv.URL},
		{"fetch", "--report", "tap=" + link, srv.URL, srv.URL + "/b"},
		{"check", "--json", "--report", "tap=" + link, srv.URL},
		{"probe", "-n", "1", "--json", "--metrics", link, srv.URL},
	} {
		before := sent.get()
		r := e.run(a...)
		if r.code != 2 || !strings.Contains(r.stderr, "would overwrite stdout, which carries") || sent.get() != before {
			t.Errorf("%v: exit %d, stderr %q, %d requests", a, r.code, r.stderr, sent.get()-before)
		}
	}
	for _, a := range [][]string{
		{"check", "--report", "tap=" + link, srv.URL},
		{"probe", "-n", "1", "--metrics", link, srv.URL},
		{"fetch", "-o", filepath.Join(e.dir, "body"), "--report", "tap=" + link, srv.URL},
	} {
		res := e.run(a...)
		res.wantCode(t, 0)
		if want := map[string]string{"check": "TAP version 14\nok 1 - ", "fetch": "TAP version 14\nok 1 - ", "probe": "# TYPE refetch_probe"}[a[0]]; !strings.Contains(res.stdout, want) {
			t.Errorf("%v: stdout %q does not hold %q", a, res.stdout, want)
		}
		if st, err := os.Lstat(link); err != nil || st.Mode()&os.ModeSymlink == 0 {
			t.Errorf("%v: the link was replaced (%v)", a, err)
		}
	}
}
