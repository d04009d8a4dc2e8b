package e2e

import (
	"bufio"
	"encoding/json"
	"encoding/xml"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"

	"go.yaml.in/yaml/v3"
)

// Reports CI systems read (docs/reports.md): JUnit in Surefire's format,
// TAP, GitHub annotations and step summaries, Prometheus metrics, trace
// ids. Every report is read back by a real consumer: junitparser
// (Debian's python3-junitparser), prove, promtool; and the JUnit files are
// held to the rules of surefire-test-report-3.0.xsd (checkSurefire).

// scripted answers by path: /flaky/<name> with 503 to its first two
// requests, then 200; /down with 503; anything else with 200 "ok". It
// records every request's traceparent header.
type scripted struct {
	*httptest.Server
	mu     sync.Mutex
	counts map[string]int
	traces []string
}

func newScripted(t *testing.T) *scripted {
	s := &scripted{counts: map[string]int{}}
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		s.counts[r.URL.Path]++
		n := s.counts[r.URL.Path]
		s.traces = append(s.traces, r.Header.Get("traceparent"))
		s.mu.Unlock()
		w.Header().Set("X-Note", "fine")
		switch {
		case strings.HasPrefix(r.URL.Path, "/flaky") && n <= 2, r.URL.Path == "/down":
			http.Error(w, "busy", http.StatusServiceUnavailable)
			return
		}
		fmt.Fprint(w, "ok")
	}))
	t.Cleanup(s.Close)
	return s
}

func (s *scripted) sent() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.traces...)
}

// ---- Surefire's rules (surefire-test-report-3.0.xsd), checked by hand ----

// surefireTime is the schema's SUREFIRE_TIME pattern, anchored.
var surefireTime = regexp.MustCompile(`^(([0-9]{0,3},)*[0-9]{3}|[0-9]{0,3})*(\.[0-9]{0,3})?$`)

// occurs is one element of a sequence: its name and how often it may come.
type occurs struct {
	name     string
	min, max int // max -1: unbounded
}

// elemRule is what the schema allows of one element.
type elemRule struct {
	required, optional []string
	seq                []occurs
	textOnly           bool
}

var attempted = elemRule{required: []string{"type"}, optional: []string{"message"},
	seq: []occurs{{"stackTrace", 1, 1}, {"system-out", 0, 1}, {"system-err", 0, 1}}}

var surefireRules = map[string]elemRule{
	"testsuite": {required: []string{"name", "tests", "errors", "skipped", "failures"}, optional: []string{"version", "time", "group"},
		seq: []occurs{{"properties", 0, -1}, {"testcase", 0, -1}}},
	"properties": {seq: []occurs{{"property", 0, -1}}},
	"property":   {required: []string{"name", "value"}},
	"testcase": {required: []string{"name", "time"}, optional: []string{"classname", "group"},
		seq: []occurs{{"failure", 0, -1}, {"rerunFailure", 0, -1}, {"flakyFailure", 0, -1}, {"skipped", 0, 1}, {"error", 0, 1},
			{"rerunError", 0, -1}, {"flakyError", 0, -1}, {"system-out", 0, 1}, {"system-err", 0, 1}}},
	"failure":      {required: []string{"type"}, optional: []string{"message"}, textOnly: true},
	"error":        {required: []string{"type"}, optional: []string{"message"}, textOnly: true},
	"skipped":      {optional: []string{"message"}, textOnly: true},
	"rerunFailure": attempted, "flakyFailure": attempted, "rerunError": attempted, "flakyError": attempted,
	"stackTrace": {textOnly: true}, "system-out": {textOnly: true}, "system-err": {textOnly: true},
}

// xmlNode is an element with its attributes and children, in order.
type xmlNode struct {
	XMLName  xml.Name
	Attrs    []xml.Attr `xml:",any,attr"`
	Children []xmlNode  `xml:",any"`
	Text     string     `xml:",chardata"`
}

func (n *xmlNode) attr(name string) (string, bool) {
	for _, a := range n.Attrs {
		if a.Name.Local == name {
			return a.Value, true
		}
	}
	return "", false
}

func (n *xmlNode) children(name string) []xmlNode {
	var out []xmlNode
	for _, c := range n.Children {
		if c.XMLName.Local == name {
			out = append(out, c)
		}
	}
	return out
}

// checkSurefire parses a JUnit report and holds every element to the
// schema: known elements only, required attributes present and no others,
// children in the schema's order and counts, time attributes of
// SUREFIRE_TIME, and the counts of the testsuite integers.
func checkSurefire(t *testing.T, path string) *xmlNode {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var root xmlNode
	if err := xml.Unmarshal(b, &root); err != nil {
		t.Fatalf("%s is not XML: %v\n%s", path, err, b)
	}
	if root.XMLName.Local != "testsuite" {
		t.Fatalf("root element %q, want testsuite", root.XMLName.Local)
	}
	var walk func(n *xmlNode, where string)
	walk = func(n *xmlNode, where string) {
		name := n.XMLName.Local
		where += "/" + name
		rule, ok := surefireRules[name]
		if !ok {
			t.Errorf("%s: element not in the schema", where)
			return
		}
		allowed := map[string]bool{}
		for _, a := range append(append([]string{}, rule.required...), rule.optional...) {
			allowed[a] = true
		}
		for _, a := range n.Attrs {
			if !allowed[a.Name.Local] {
				t.Errorf("%s: attribute %q not in the schema", where, a.Name.Local)
			}
			if a.Name.Local == "time" && !surefireTime.MatchString(a.Value) {
				t.Errorf("%s: time %q is not a SUREFIRE_TIME", where, a.Value)
			}
		}
		for _, a := range rule.required {
			if _, ok := n.attr(a); !ok {
				t.Errorf("%s: required attribute %q missing", where, a)
			}
		}
		if rule.textOnly {
			if len(n.Children) > 0 {
				t.Errorf("%s: has child elements; the schema allows text only", where)
			}
			return
		}
		i, count := 0, 0
		for _, c := range n.Children {
			for i < len(rule.seq) && rule.seq[i].name != c.XMLName.Local {
				if count < rule.seq[i].min {
					t.Errorf("%s: %d %s, want at least %d", where, count, rule.seq[i].name, rule.seq[i].min)
				}
				i, count = i+1, 0
			}
			if i == len(rule.seq) {
				t.Errorf("%s: child %s out of the schema's order or not allowed", where, c.XMLName.Local)
				return
			}
			if count++; rule.seq[i].max >= 0 && count > rule.seq[i].max {
				t.Errorf("%s: more than %d %s", where, rule.seq[i].max, c.XMLName.Local)
			}
			walk(&c, where)
		}
		for ; i < len(rule.seq); i, count = i+1, 0 {
			if count < rule.seq[i].min {
				t.Errorf("%s: %d %s, want at least %d", where, count, rule.seq[i].name, rule.seq[i].min)
			}
		}
	}
	walk(&root, "")
	cases := root.children("testcase")
	failures := 0
	for _, c := range cases {
		if len(c.children("failure")) > 0 {
			failures++
		}
	}
	for attr, want := range map[string]int{"tests": len(cases), "failures": failures, "errors": 0, "skipped": 0} {
		if v, _ := root.attr(attr); v != strconv.Itoa(want) {
			t.Errorf("testsuite %s = %q, want %d", attr, v, want)
		}
	}
	return &root
}

// caseNamed is the testcase whose name ends with suffix.
func caseNamed(t *testing.T, root *xmlNode, suffix string) *xmlNode {
	t.Helper()
	for _, c := range root.children("testcase") {
		if name, _ := c.attr("name"); strings.HasSuffix(name, suffix) {
			return &c
		}
	}
	t.Fatalf("no testcase named …%s", suffix)
	return nil
}

// ---- the real consumers ----

// needTool returns the path of a tool the tests read reports with: a
// skip where it is missing, a failure under CI=true (.ci/run installs it).
func needTool(t *testing.T, name string, candidates ...string) string {
	t.Helper()
	for _, c := range candidates {
		if p, err := exec.LookPath(c); err == nil {
			return p
		}
	}
	if os.Getenv("CI") == "true" {
		t.Fatalf("%s is missing (.ci/run installs it)", name)
	}
	t.Skipf("%s is missing", name)
	return ""
}

// junitPython is a python3 that can import junitparser: Debian's
// python3-junitparser is for the system's /usr/bin/python3, which may not
// be the python3 first in PATH.
func junitPython(t *testing.T) string {
	t.Helper()
	for _, py := range []string{"/usr/bin/python3", "python3"} {
		p, err := exec.LookPath(py)
		if err != nil {
			continue
		}
		if exec.Command(p, "-c", "import junitparser").Run() == nil {
			return p
		}
	}
	if os.Getenv("CI") == "true" {
		t.Fatal("no python3 can import junitparser (.ci/run installs python3-junitparser)")
	}
	t.Skip("no python3 with junitparser")
	return ""
}

// junitRead is a JUnit report as junitparser reads it.
type junitRead struct {
	Suite struct {
		Name                             string
		Tests, Failures, Errors, Skipped int
		Time                             float64
	}
	Props map[string]string
	Cases []struct {
		Name, Classname string
		Time            float64
		Results         []struct{ Tag, Type, Message string }
		Flaky, Rerun    int
		Out             string
	}
}

const junitScript = `
import json, sys
from junitparser import JUnitXml, TestSuite
x = JUnitXml.fromfile(sys.argv[1])
suites = [x] if isinstance(x, TestSuite) else list(x)
assert len(suites) == 1, "one testsuite"
s = suites[0]
out = {"Suite": {"Name": s.name, "Tests": s.tests, "Failures": s.failures, "Errors": s.errors,
                 "Skipped": s.skipped, "Time": s.time},
       "Props": {p.name: p.value for p in s.properties()}, "Cases": []}
for c in s:
    res = c.result
    if res is None:
        res = []
    elif not isinstance(res, list):
        res = [res]
    out["Cases"].append({"Name": c.name, "Classname": c.classname, "Time": c.time,
        "Results": [{"Tag": r._tag, "Type": r.type or "", "Message": r.message or ""} for r in res],
        "Flaky": len(c._elem.findall("flakyFailure")), "Rerun": len(c._elem.findall("rerunFailure")),
        "Out": c.system_out or ""})
print(json.dumps(out))
`

// readJUnit reads a JUnit report with junitparser.
func readJUnit(t *testing.T, path string) junitRead {
	t.Helper()
	py := junitPython(t)
	out, err := exec.Command(py, "-c", junitScript, path).CombinedOutput()
	if err != nil {
		t.Fatalf("junitparser cannot read %s: %v\n%s", path, err, out)
	}
	var r junitRead
	if err := json.Unmarshal(out, &r); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	return r
}

// prove runs prove on a TAP file, as a test whose output it is. A prove
// older than TAP 14 (Test::Harness before 3.48) refuses the version line
// 14 itself; the document uses nothing TAP 13 lacks, so it reads a copy
// declared 13 (what --report tap13 writes).
func prove(t *testing.T, path string) (string, int) {
	t.Helper()
	p := needTool(t, "prove", "prove")
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if v, _ := exec.Command(p, "--version").Output(); olderThanTAP14(string(v)) && strings.HasPrefix(string(b), "TAP version 14\n") {
		cp := filepath.Join(t.TempDir(), "as13.tap")
		os.WriteFile(cp, []byte("TAP version 13\n"+strings.TrimPrefix(string(b), "TAP version 14\n")), 0o644)
		path = cp
	}
	c := exec.Command(p, "-v", "--exec", "cat", path)
	out, err := c.CombinedOutput()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(out), "Parse errors") {
		t.Errorf("prove finds parse errors in %s:\n%s\n%s", path, out, b)
	}
	return string(out), code
}

// olderThanTAP14 reports a Test::Harness older than 3.48, which knows TAP 13 only.
func olderThanTAP14(version string) bool {
	m := regexp.MustCompile(`TAP::Harness v(\d+)\.(\d+)`).FindStringSubmatch(version)
	if m == nil {
		return true
	}
	major, _ := strconv.Atoi(m[1])
	minor, _ := strconv.Atoi(m[2])
	return major < 3 || major == 3 && minor < 48
}

// tapBlocks are the YAML blocks of a TAP file, in order.
func tapBlocks(t *testing.T, path string) []map[string]any {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var blocks []map[string]any
	var cur []string
	in := false
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		switch {
		case line == "  ---":
			in, cur = true, nil
		case line == "  ...":
			in = false
			var m map[string]any
			if err := yaml.Unmarshal([]byte(strings.Join(cur, "\n")), &m); err != nil {
				t.Fatalf("a YAML block of %s does not parse: %v\n%s", path, err, strings.Join(cur, "\n"))
			}
			blocks = append(blocks, m)
		case in:
			cur = append(cur, strings.TrimPrefix(line, "  "))
		}
	}
	return blocks
}

// promtool checks a metrics file with promtool check metrics.
func promtool(t *testing.T, path string) string {
	t.Helper()
	p := needTool(t, "promtool", "promtool")
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	c := exec.Command(p, "check", "metrics")
	c.Stdin = strings.NewReader(string(b))
	out, err := c.CombinedOutput()
	if err != nil || len(strings.TrimSpace(string(out))) > 0 {
		t.Errorf("promtool check metrics: %v\n%s\n%s", err, out, b)
	}
	return string(b)
}

// noSecret fails when any of the secrets appears in text.
func noSecret(t *testing.T, what, text string, secrets ...string) {
	t.Helper()
	for _, s := range secrets {
		if strings.Contains(text, s) {
			t.Errorf("%s shows the secret %q:\n%s", what, s, text)
		}
	}
}

func readText(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// ---- the tests ----

// TestReportCheckJUnitAndTAP: a check of three URLs (503 twice then 200;
// always 503; 200) writes one testcase per URL: the flaky one passes with
// two flakyFailures, the failed one has a failure and two rerunFailures.
func TestReportCheckJUnitAndTAP(t *testing.T) {
	t.Parallel()
	srv := newScripted(t)
	e := newEnv(t)
	dir := t.TempDir()
	junit, tapf, tap13 := filepath.Join(dir, "r.xml"), filepath.Join(dir, "r.tap"), filepath.Join(dir, "r13.tap")
	urls := []string{srv.URL + "/flaky/a", srv.URL + "/down", srv.URL + "/ok"}
	res := e.run(append(append([]string{"check", "--attempts", "3", "--report", "junit=" + junit, "--report", "tap=" + tapf,
		"--report", "tap13=" + tap13}, fast...), urls...)...)
	res.wantCode(t, 8)
	if strings.Count(res.stdout, "\n") != 3 || !strings.HasPrefix(res.stdout, "healthy") && !strings.HasPrefix(res.stdout, "unhealthy") {
		t.Errorf("stdout is not the check's lines:\n%s", res.stdout)
	}

	root := checkSurefire(t, junit)
	if n := len(root.children("testcase")); n != len(urls) {
		t.Fatalf("%d testcases, want %d", n, len(urls))
	}
	flaky := caseNamed(t, root, "/flaky/a")
	if ff := flaky.children("flakyFailure"); len(ff) != 2 || len(flaky.children("failure")) != 0 {
		t.Errorf("flaky testcase: %d flakyFailure, %d failure; want 2 and 0", len(ff), len(flaky.children("failure")))
	} else {
		for i, f := range ff {
			if typ, _ := f.attr("type"); typ != "http_503" {
				t.Errorf("flakyFailure %d type %q, want http_503", i, typ)
			}
			if out := f.children("system-out"); len(out) != 1 || !strings.Contains(out[0].Text, "duration_ms: ") {
				t.Errorf("flakyFailure %d has no timings in its system-out", i)
			}
		}
	}
	down := caseNamed(t, root, "/down")
	if len(down.children("failure")) != 1 || len(down.children("rerunFailure")) != 2 {
		t.Errorf("failed testcase: %d failure, %d rerunFailure; want 1 and 2", len(down.children("failure")), len(down.children("rerunFailure")))
	}
	ok := caseNamed(t, root, "/ok")
	if len(ok.Children) != 1 || ok.Children[0].XMLName.Local != "system-out" {
		t.Errorf("passed testcase has more than its system-out: %+v", ok.Children)
	}

	// junitparser, as CI systems read it.
	jr := readJUnit(t, junit)
	if jr.Suite.Tests != 3 || jr.Suite.Failures != 1 || jr.Suite.Errors != 0 || len(jr.Cases) != 3 {
		t.Errorf("junitparser reads %+v", jr.Suite)
	}
	for _, c := range jr.Cases {
		switch {
		case strings.HasSuffix(c.Name, "/flaky/a"):
			if len(c.Results) != 0 || c.Flaky != 2 || !strings.Contains(c.Out, "result: flaky") {
				t.Errorf("junitparser: flaky case %+v", c)
			}
		case strings.HasSuffix(c.Name, "/down"):
			if len(c.Results) != 1 || c.Results[0].Tag != "failure" || c.Results[0].Type != "http_503" || c.Rerun != 2 {
				t.Errorf("junitparser: failed case %+v", c)
			}
		default:
			if len(c.Results) != 0 || c.Flaky != 0 {
				t.Errorf("junitparser: passed case %+v", c)
			}
		}
		if c.Classname != "refetch.check" {
			t.Errorf("classname %q", c.Classname)
		}
	}

	// TAP: version 14 (13), one test point per URL, read by prove.
	for _, f := range []string{tapf, tap13} {
		text := readText(t, f)
		want := "TAP version 14\n"
		if f == tap13 {
			want = "TAP version 13\n"
		}
		if !strings.HasPrefix(text, want) || !strings.HasSuffix(text, "\n1..3\n") {
			t.Errorf("%s: version line or plan missing:\n%s", f, text)
		}
		out, code := prove(t, f)
		if code == 0 || !regexp.MustCompile(`Failed 1/3 subtests`).MatchString(out) {
			t.Errorf("prove %s: exit %d, want a failure of 1 of 3:\n%s", f, code, out)
		}
		blocks := tapBlocks(t, f)
		if len(blocks) != 3 {
			t.Fatalf("%d YAML blocks, want 3", len(blocks))
		}
		for _, b := range blocks {
			attempts, _ := b["attempts"].([]any)
			switch url, _ := b["url"].(string); {
			case strings.HasSuffix(url, "/flaky/a"):
				if b["result"] != "flaky" || len(attempts) != 3 || b["failed_attempts"] != 2 {
					t.Errorf("TAP flaky block: %v", b)
				}
			case strings.HasSuffix(url, "/down"):
				if b["result"] != "failed" || b["class"] != "http_503" || len(attempts) != 3 {
					t.Errorf("TAP failed block: %v", b)
				}
			default:
				if b["result"] != "passed" || len(attempts) != 1 {
					t.Errorf("TAP passed block: %v", b)
				}
			}
		}
	}
}

// TestReportFlakyFails: flaky does not fail a run unless --flaky-fails:
// check 8, a single fetch 8, a batch 9; the reports are the same.
func TestReportFlakyFails(t *testing.T) {
	t.Parallel()
	srv := newScripted(t)
	e := newEnv(t)
	dir := t.TempDir()
	i := 0
	run := func(code int, args ...string) result {
		t.Helper()
		i++
		f := filepath.Join(dir, fmt.Sprintf("r%d.xml", i))
		if args[0] == "fetch" {
			args = append(args, "--breaker-failures", "0")
		}
		res := e.run(append(append(args, "--report", "junit="+f), fast...)...)
		res.wantCode(t, code)
		root := checkSurefire(t, f)
		if n := len(caseNamed(t, root, fmt.Sprintf("/flaky/%d", i)).children("flakyFailure")); n != 2 {
			t.Errorf("run %d: %d flakyFailures, want 2", i, n)
		}
		return res
	}
	run(0, "check", srv.URL+"/flaky/1")
	res := run(8, "check", "--flaky-fails", srv.URL+"/flaky/2")
	if !strings.Contains(res.stderr, "flaky") {
		t.Errorf("check --flaky-fails does not say flaky: %s", res.stderr)
	}
	res = run(0, "fetch", srv.URL+"/flaky/3")
	if res.stdout != "ok" {
		t.Errorf("fetch stdout %q", res.stdout)
	}
	res = run(8, "fetch", "--flaky-fails", srv.URL+"/flaky/4")
	if res.stdout != "ok" {
		t.Errorf("fetch --flaky-fails: the body is kept, stdout %q", res.stdout)
	}
	run(9, "fetch", "--flaky-fails", "-o", filepath.Join(dir, "{n}.out"), srv.URL+"/flaky/5", srv.URL+"/ok")
	run(0, "fetch", "-o", filepath.Join(dir, "b{n}.out"), srv.URL+"/flaky/6", srv.URL+"/ok")
}

// TestReportBatch: a batch writes one testcase per URL, in whatever
// order they end, and its JSON lines stay as they were.
func TestReportBatch(t *testing.T) {
	t.Parallel()
	srv := newScripted(t)
	e := newEnv(t)
	dir := t.TempDir()
	junit, tapf := filepath.Join(dir, "b.xml"), filepath.Join(dir, "b.tap")
	var input strings.Builder
	for i := range 20 {
		fmt.Fprintf(&input, "%s/flaky/%d\n%s/ok/%d\n", srv.URL, i, srv.URL, i)
	}
	input.WriteString(srv.URL + "/down\n")
	in := filepath.Join(dir, "urls")
	os.WriteFile(in, []byte(input.String()), 0o644)
	res := e.run(append([]string{"fetch", "--json", "-i", in, "-P", "4", "--breaker-failures", "0", "--report", "junit=" + junit, "--report", "tap=" + tapf}, fast...)...)
	res.wantCode(t, 9)
	if lines := strings.Count(res.stdout, "\n"); lines != 41 {
		t.Errorf("%d JSON lines, want 41", lines)
	}
	root := checkSurefire(t, junit)
	cases := root.children("testcase")
	flaky := 0
	for _, c := range cases {
		if len(c.children("flakyFailure")) == 2 {
			flaky++
		}
	}
	if len(cases) != 41 || flaky != 20 {
		t.Errorf("%d testcases (%d flaky), want 41 (20 flaky)", len(cases), flaky)
	}
	// A failed URL's failure type is its last attempt's class, as a
	// check's is (a tour found fetch's saying retries_exhausted).
	if f := caseNamed(t, root, "/down").children("failure"); len(f) != 1 {
		t.Errorf("/down: %d failures", len(f))
	} else if typ, _ := f[0].attr("type"); typ != "http_503" {
		t.Errorf("/down: failure type %q, want http_503", typ)
	}
	if jr := readJUnit(t, junit); jr.Suite.Tests != 41 || jr.Suite.Failures != 1 || jr.Props["refetch.flaky"] != "20" {
		t.Errorf("junitparser reads %+v %v", jr.Suite, jr.Props)
	}
	out, code := prove(t, tapf)
	if code == 0 || !strings.Contains(out, "Failed 1/41 subtests") {
		t.Errorf("prove: exit %d\n%s", code, out)
	}
}

// TestReportProbeAndMetrics: a probe is one testcase; its requests are its
// attempts; --metrics writes what promtool accepts, secrets left out.
func TestReportProbeAndMetrics(t *testing.T) {
	t.Parallel()
	srv := newScripted(t)
	e := newEnv(t)
	dir := t.TempDir()
	junit, metrics := filepath.Join(dir, "p.xml"), filepath.Join(dir, "p.prom")
	u := strings.Replace(srv.URL, "http://", "http://user:pr0be-pass@", 1) + "/flaky/p?api_key=pr0be-key&x=1"
	res := e.run("probe", "-n", "4", "--interval", "10ms", "--report", "junit="+junit, "--metrics", metrics, u)
	res.wantCode(t, 0)
	root := checkSurefire(t, junit)
	cases := root.children("testcase")
	if len(cases) != 1 || len(cases[0].children("flakyFailure")) != 2 {
		t.Fatalf("probe: %d testcases, want one with two flakyFailures:\n%s", len(cases), readText(t, junit))
	}
	text := promtool(t, metrics)
	for _, want := range []string{
		`refetch_probe_success{url="http://user:REDACTED@`,
		`refetch_probe_requests{`,
		`refetch_probe_failures{class="http_503",url="http://user:REDACTED@127.0.0.1`,
		`refetch_probe_phase_duration_seconds_bucket{phase="first_byte"`,
		`refetch_breaker_state{key=`,
	} {
		if !strings.Contains(text, want) {
			t.Errorf("metrics lack %s:\n%s", want, text)
		}
	}
	if !regexp.MustCompile(`(?m)^refetch_probe_failures\{class="http_503",[^}]*\} 2$`).MatchString(text) {
		t.Errorf("metrics do not count two http_503:\n%s", text)
	}
	noSecret(t, "metrics", text, "pr0be-pass", "pr0be-key")
	noSecret(t, "JUnit", readText(t, junit), "pr0be-pass", "pr0be-key")

	// --expect-success below the rate: a failed testcase, exit 8; still metrics.
	res = e.run("probe", "-n", "2", "--interval", "10ms", "--expect-success", "100%", "--report", "junit="+junit, "--metrics", metrics, srv.URL+"/down")
	res.wantCode(t, 8)
	root = checkSurefire(t, junit)
	if c := root.children("testcase")[0]; len(c.children("failure")) != 1 || len(c.children("rerunFailure")) != 1 {
		t.Errorf("probe below --expect-success: %s", readText(t, junit))
	}
	if text := promtool(t, metrics); !strings.Contains(text, "refetch_probe_success{url=") || !regexp.MustCompile(`(?m)^refetch_probe_success\{[^}]*\} 0$`).MatchString(text) {
		t.Errorf("probe_success is not 0:\n%s", text)
	}
}

// TestReportBreakerMetrics: breaker status --metrics shows every key's
// state (an open one included) as promtool accepts it.
func TestReportBreakerMetrics(t *testing.T) {
	t.Parallel()
	srv := newScripted(t)
	e := newEnv(t)
	e.run(append([]string{"fetch", "--attempts", "2", "--breaker-failures", "2"}, append(fast, srv.URL+"/down")...)...).wantCode(t, 4)
	metrics := filepath.Join(t.TempDir(), "b.prom")
	res := e.run("breaker", "status", "--metrics", metrics)
	res.wantCode(t, 0)
	text := promtool(t, metrics)
	key := strings.TrimPrefix(srv.URL, "http://")
	if !strings.Contains(text, `refetch_breaker_state{key="http://`+key+`",state="open"} 1`) ||
		!strings.Contains(text, `refetch_breaker_consecutive_failures{key="http://`+key+`"} 2`) {
		t.Errorf("breaker metrics:\n%s", text)
	}
	if !strings.Contains(res.stdout, "open") {
		t.Errorf("breaker status's table is gone: %q", res.stdout)
	}
	e.run("breaker", "status", "--metrics", filepath.Join(t.TempDir(), "missing", "b.prom")).wantCode(t, 2)
}

// hostileServer answers every request with a status line, a header and a
// body written to forge workflow commands and break Markdown tables.
func hostileServer(t *testing.T) string {
	return rawServer(t, func(c net.Conn) {
		body := "down\n::error title=forged::body|`x`\r\n::add-mask::x\n<img src=x onerror=alert(1)> | @everyone"
		fmt.Fprintf(c, "HTTP/1.1 503 ::warning::forged %%0A| `code` <b>x</b>\r\nX-Note: ::error::hdr | `y`\r\nContent-Length: %d\r\nConnection: close\r\n\r\n%s",
			len(body), body)
	})
}

// TestReportGitHub: under GITHUB_ACTIONS=true, check annotates each failed
// or flaky URL on stderr and appends a table to $GITHUB_STEP_SUMMARY, and
// nothing a server sends can forge a workflow command, break the table or
// show a secret.
func TestReportGitHub(t *testing.T) {
	t.Parallel()
	srv := newScripted(t)
	evil := hostileServer(t)
	dir := t.TempDir()
	summary := filepath.Join(dir, "summary.md")
	os.WriteFile(summary, []byte("# earlier step\n"), 0o644)
	e := newEnv(t).with("GITHUB_ACTIONS=true", "GITHUB_STEP_SUMMARY="+summary)
	secretURL := strings.Replace(srv.URL, "http://", "http://ci:gh-pass%3A1@", 1) + "/flaky/g?token=gh-token&x=%7C"
	junit, tapf := filepath.Join(dir, "r.xml"), filepath.Join(dir, "r.tap")
	res := e.run(append([]string{"check", "--attempts", "3", "-H", "Authorization: Bearer gh-bearer", "-H", "X-Api-Key: gh-apikey",
		"--report", "junit=" + junit, "--report", "tap=" + tapf,
		"--expect-body", "^ok$", "--expect-header", "X-Note: ^fine$"}, append(fast, secretURL, evil+"/x", srv.URL+"/ok")...)...)
	res.wantCode(t, 8)

	// Annotations: exactly one per failed or flaky URL, each one line of
	// ours; no other line of stderr starts a workflow command.
	var annotations []string
	for _, line := range strings.Split(res.stderr, "\n") {
		if strings.HasPrefix(line, "::") {
			annotations = append(annotations, line)
		}
	}
	ours := regexp.MustCompile(`^::(error|warning) title=refetch check%3A [^:,\r\n]+ (failed|flaky)::[^\r\n]*$`)
	if len(annotations) != 2 {
		t.Fatalf("%d workflow commands on stderr, want 2:\n%s", len(annotations), res.stderr)
	}
	for _, a := range annotations {
		if !ours.MatchString(a) {
			t.Errorf("not one of ours: %q", a)
		}
	}
	if !strings.HasPrefix(annotations[0], "::") || !strings.Contains(res.stderr, "::warning title=refetch check%3A http%3A//ci%3AREDACTED@") {
		t.Errorf("no warning for the flaky URL:\n%s", res.stderr)
	}
	if regexp.MustCompile(`(?m)^::`).MatchString(res.stdout) {
		t.Errorf("a workflow command on stdout:\n%s", res.stdout)
	}

	// The summary: appended after what was there, one title, a table of
	// five cells a row, one row per URL; no raw HTML, code or pipe from
	// the server.
	text := readText(t, summary)
	if !strings.HasPrefix(text, "# earlier step\n") {
		t.Errorf("the summary was not appended to:\n%s", text)
	}
	rows := 0
	unescapedPipe := regexp.MustCompile(`(^|[^\\])\|`)
	for _, line := range strings.Split(strings.TrimPrefix(text, "# earlier step\n"), "\n") {
		switch {
		case line == "", strings.HasPrefix(line, "### refetch check failed: 3 URLs, 1 passed, 1 flaky, 1 failed"),
			line == "| URL | result | attempts | latency | failure class |", line == "|---|---|---|---|---|":
		case strings.HasPrefix(line, "| "):
			rows++
			if n := len(unescapedPipe.FindAllStringIndex(line, -1)); n != 6 {
				t.Errorf("row with %d cell borders, want 6: %q", n, line)
			}
			if regexp.MustCompile("(^|[^\\\\])[<>`@]").MatchString(line) {
				t.Errorf("row with raw markup: %q", line)
			}
		default:
			t.Errorf("unexpected summary line %q", line)
		}
	}
	if rows != 3 {
		t.Errorf("%d rows, want 3:\n%s", rows, text)
	}
	checkSurefire(t, junit)
	prove(t, tapf)
	for what, s := range map[string]string{"stderr": res.stderr, "summary": text, "stdout": res.stdout} {
		noSecret(t, what, s, "gh-pass", "gh-bearer", "gh-apikey")
	}
	// The secret query value too, in everything refetch writes for machines.
	for what, s := range map[string]string{"summary": text, "annotations": strings.Join(annotations, "\n"),
		"JUnit": readText(t, junit), "TAP": readText(t, tapf)} {
		noSecret(t, what, s, "gh-pass", "gh-bearer", "gh-apikey", "gh-token")
	}

	// Outside GitHub Actions: no annotation, no summary.
	before := readText(t, summary)
	plain := newEnv(t).with("GITHUB_STEP_SUMMARY=" + summary).run(append([]string{"check"}, append(fast, srv.URL+"/down")...)...)
	plain.wantCode(t, 8)
	if strings.Contains(plain.stderr, "::error") || readText(t, summary) != before {
		t.Errorf("GitHub output without GITHUB_ACTIONS=true")
	}
}

// TestReportTraceparent: one trace id per run, a new span id per attempt,
// in the requests, --json, -v and the reports; a traceparent given with -H
// is continued.
func TestReportTraceparent(t *testing.T) {
	t.Parallel()
	srv := newScripted(t)
	e := newEnv(t)
	dir := t.TempDir()
	junit := filepath.Join(dir, "t.xml")
	tp := regexp.MustCompile(`^00-([0-9a-f]{32})-([0-9a-f]{16})-01$`)

	res := e.run(append([]string{"fetch", "--traceparent", "--json", "-v", "--report", "junit=" + junit}, append(fast, srv.URL+"/flaky/t")...)...)
	res.wantCode(t, 0)
	sent := srv.sent()
	if len(sent) != 3 {
		t.Fatalf("%d requests", len(sent))
	}
	rep := res.report(t)
	trace, _ := rep["trace_id"].(string)
	spans := map[string]bool{}
	attempts, _ := rep["attempts"].([]any)
	for i, h := range sent {
		m := tp.FindStringSubmatch(h)
		if m == nil {
			t.Fatalf("traceparent %q", h)
		}
		if m[1] != trace {
			t.Errorf("request %d: trace id %s, --json says %s", i, m[1], trace)
		}
		if spans[m[2]] {
			t.Errorf("span id %s sent twice", m[2])
		}
		spans[m[2]] = true
		if a, _ := attempts[i].(map[string]any); a["span_id"] != m[2] {
			t.Errorf("attempt %d: span_id %v, sent %s", i+1, a["span_id"], m[2])
		}
		if !strings.Contains(res.stderr, "traceparent: "+h) {
			t.Errorf("-v does not show %s", h)
		}
	}
	root := checkSurefire(t, junit)
	if props := root.children("properties")[0].children("property"); !strings.Contains(readText(t, junit), `name="trace_id" value="`+trace+`"`) || len(props) < 2 {
		t.Errorf("JUnit lacks the trace id:\n%s", readText(t, junit))
	}
	for s := range spans {
		if !strings.Contains(readText(t, junit), s) {
			t.Errorf("JUnit lacks span %s", s)
		}
	}

	// check: one trace for every URL of the run.
	n := len(srv.sent())
	res = e.run(append([]string{"check", "--traceparent", "--json"}, append(fast, srv.URL+"/ok/1", srv.URL+"/ok/2")...)...)
	res.wantCode(t, 0)
	crep := res.report(t)
	ids := map[string]bool{}
	for _, h := range srv.sent()[n:] {
		if m := tp.FindStringSubmatch(h); m != nil {
			ids[m[1]] = true
		}
	}
	if len(ids) != 1 || !ids[crep["trace_id"].(string)] {
		t.Errorf("check: trace ids %v, --json %v", ids, crep["trace_id"])
	}

	// probe: the trace id, and each sample's span id.
	n = len(srv.sent())
	res = e.run("probe", "-n", "2", "--interval", "10ms", "--traceparent", "--json", srv.URL+"/ok/7")
	res.wantCode(t, 0)
	prep := res.report(t)
	samples, _ := prep["samples"].([]any)
	probeSent := srv.sent()[n:]
	if len(samples) != 2 || len(probeSent) != 2 {
		t.Fatalf("probe: %d samples, %d requests", len(samples), len(probeSent))
	}
	for i, h := range probeSent {
		m := tp.FindStringSubmatch(h)
		if s, _ := samples[i].(map[string]any); m == nil || m[1] != prep["trace_id"] || s["span_id"] != m[2] {
			t.Errorf("probe request %d sent %q; --json trace_id %v, span_id %v", i+1, h, prep["trace_id"], s["span_id"])
		}
	}

	// -H traceparent: its trace id and flags are kept, span ids are new.
	given := "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-00"
	n = len(srv.sent())
	e.run("fetch", "--traceparent", "-H", "traceparent: "+given, srv.URL+"/ok/3").wantCode(t, 0)
	if got := srv.sent()[n:]; len(got) != 1 || !regexp.MustCompile(`^00-0af7651916cd43dd8448eb211c80319c-[0-9a-f]{16}-00$`).MatchString(got[0]) ||
		strings.Contains(got[0], "b7ad6b7169203331") {
		t.Errorf("continued trace sent %q", got)
	}
	// Without --traceparent, -H is sent as given.
	n = len(srv.sent())
	e.run("fetch", "-H", "traceparent: "+given, srv.URL+"/ok/4").wantCode(t, 0)
	if got := srv.sent()[n:]; len(got) != 1 || got[0] != given {
		t.Errorf("-H traceparent without --traceparent sent %q", got)
	}
	// A malformed one with --traceparent: usage, nothing sent.
	n = len(srv.sent())
	res = e.run("fetch", "--traceparent", "-H", "traceparent: 01-xyz", srv.URL+"/ok/5")
	res.wantCode(t, 2)
	if len(srv.sent()) != n || !strings.Contains(res.stderr, "traceparent") {
		t.Errorf("bad traceparent: %d requests, stderr %s", len(srv.sent())-n, res.stderr)
	}
	// Without the flag, no traceparent at all.
	n = len(srv.sent())
	e.run("fetch", srv.URL+"/ok/6").wantCode(t, 0)
	if got := srv.sent()[n:]; len(got) != 1 || got[0] != "" {
		t.Errorf("traceparent sent without --traceparent: %q", got)
	}
}

// TestReportFiles: a report into a directory that does not exist is a
// usage error before any request; one that cannot be written at the end
// is exit 1 with stdout as it was; an existing report is replaced whole.
func TestReportFiles(t *testing.T) {
	t.Parallel()
	srv := newScripted(t)
	e := newEnv(t)
	dir := t.TempDir()
	n := len(srv.sent())
	for _, bad := range [][]string{
		{"check", "--report", "junit=" + filepath.Join(dir, "missing", "r.xml"), srv.URL + "/ok"},
		{"fetch", "--report", "xml=" + filepath.Join(dir, "r.xml"), srv.URL + "/ok"},
		{"fetch", "--report", "junit", srv.URL + "/ok"},
		{"probe", "--report", "tap=" + dir, srv.URL + "/ok"},
		{"check", "--report", "junit=" + filepath.Join(dir, "a"), "--report", "tap=" + filepath.Join(dir, "a"), srv.URL + "/ok"},
		{"probe", "--metrics", filepath.Join(dir, "missing", "m.prom"), srv.URL + "/ok"},
	} {
		res := e.run(bad...)
		res.wantCode(t, 2)
		if !strings.Contains(res.stderr, "--report") && !strings.Contains(res.stderr, "--metrics") {
			t.Errorf("%v: the error does not name the flag: %s", bad, res.stderr)
		}
	}
	if len(srv.sent()) != n {
		t.Errorf("%d requests sent by runs with bad reports", len(srv.sent())-n)
	}

	// Replaced whole: a long old file leaves nothing behind.
	f := filepath.Join(dir, "r.xml")
	os.WriteFile(f, []byte(strings.Repeat("old report\n", 10000)), 0o644)
	e.run("check", "--report", "junit="+f, srv.URL+"/ok").wantCode(t, 0)
	checkSurefire(t, f)
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 {
		t.Errorf("temporary files left in the report's directory: %v", entries)
	}

	// The directory goes away during the run: exit 1, stdout kept.
	gone := filepath.Join(t.TempDir(), "gone")
	os.Mkdir(gone, 0o755)
	remover := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		os.RemoveAll(gone)
		io.WriteString(w, "ok")
	}))
	t.Cleanup(remover.Close)
	res := e.run("check", "--report", "junit="+filepath.Join(gone, "r.xml"), remover.URL)
	res.wantCode(t, 1)
	if !strings.HasPrefix(res.stdout, "healthy") || !strings.Contains(res.stderr, "--report junit=") || !strings.Contains(res.stderr, "verdict: success") {
		t.Errorf("stdout %q, stderr %s", res.stdout, res.stderr)
	}
}

// TestActionReport runs the action as TestActionRunsCheckWithInputs does,
// with the report input and the variables GitHub's runner sets: the
// reports are written, the step summary gets its table and the flaky URL
// its annotation.
func TestActionReport(t *testing.T) {
	t.Parallel()
	srv := newActionServer(t)
	dir := t.TempDir()
	summary := filepath.Join(dir, "summary.md")
	r := newActionRun(t, "REFETCH_ACTION_BINARY="+binary, "GITHUB_ACTIONS=true", "GITHUB_STEP_SUMMARY="+summary)
	r.step(0, nil).wantCode(t, 0)
	junit, tapf := filepath.Join(dir, "check.xml"), filepath.Join(dir, "check.tap")
	res := r.step(1, map[string]string{
		"urls":   srv.URL + "/flaky " + srv.URL + "/ok",
		"wait":   "30s",
		"report": "junit=" + junit + "\n tap=" + tapf,
		"args":   "--delay 10ms --jitter 0 --multiplier 1",
	})
	res.wantCode(t, 0)
	root := checkSurefire(t, junit)
	if cases := root.children("testcase"); len(cases) != 2 {
		t.Fatalf("%d testcases, want 2", len(cases))
	}
	if n := len(caseNamed(t, root, "/flaky").children("flakyFailure")); n != 4 {
		t.Errorf("%d flakyFailures, want 4 (503 four times)", n)
	}
	if jr := readJUnit(t, junit); jr.Suite.Tests != 2 || jr.Suite.Failures != 0 {
		t.Errorf("junitparser reads %+v", jr.Suite)
	}
	if out, code := prove(t, tapf); code != 0 {
		t.Errorf("prove: exit %d\n%s", code, out)
	}
	text := readText(t, summary)
	if !strings.Contains(text, "### refetch check: 2 URLs, 1 passed, 1 flaky") || strings.Count(text, "\n| http") != 2 {
		t.Errorf("step summary:\n%s", text)
	}
	if n := len(regexp.MustCompile(`(?m)^::warning title=refetch check%3A [^\n]*/flaky flaky::passed after 4 failed attempts`).FindAllString(res.stderr, -1)); n != 1 {
		t.Errorf("%d annotations for the flaky URL, want 1:\n%s", n, res.stderr)
	}
}
