package e2e

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Batch mode: refetch fetch URL URL... and -i FILE.

// jsonLines parses a batch's --json stdout: one object a line.
func jsonLines(t *testing.T, stdout string) []map[string]any {
	t.Helper()
	var reps []map[string]any
	sc := bufio.NewScanner(strings.NewReader(stdout))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var m map[string]any
		if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
			t.Fatalf("line %d of stdout is not a JSON object: %v\n%q", len(reps)+1, err, sc.Text())
		}
		reps = append(reps, m)
	}
	return reps
}

// byN indexes reports by their "n", checking that each n appears once.
func byN(t *testing.T, reps []map[string]any) map[int]map[string]any {
	t.Helper()
	m := map[int]map[string]any{}
	for _, r := range reps {
		n, ok := r["n"].(float64)
		if !ok {
			t.Fatalf("report without n: %v", r)
		}
		if m[int(n)] != nil {
			t.Fatalf("n %v reported twice", n)
		}
		m[int(n)] = r
	}
	return m
}

func code(r map[string]any) int { return int(r["exit_code"].(float64)) }

// pathServer answers /200/NAME with "body of NAME", /404/... with 404 and
// /503/... with 503, counting every request.
func pathServer(t *testing.T, c *counter) *httptest.Server {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c.next()
		switch {
		case strings.HasPrefix(r.URL.Path, "/404/"):
			http.NotFound(w, r)
		case strings.HasPrefix(r.URL.Path, "/503/"):
			http.Error(w, "down", http.StatusServiceUnavailable)
		default:
			fmt.Fprintf(w, "body of %s", r.URL.Path)
		}
	}))
	t.Cleanup(srv.Close)
	return srv
}

// TestE2EBatchInputs: URL arguments, -i FILE and -i - give the same
// batch; blank lines, # comments and surrounding whitespace are skipped;
// n is the position among the URLs.
func TestE2EBatchInputs(t *testing.T) {
	t.Parallel()
	var c counter
	srv := pathServer(t, &c)
	urls := []string{srv.URL + "/a", srv.URL + "/b", srv.URL + "/c"}
	list := "# three URLs\n\n  " + urls[0] + "  \n\t" + urls[1] + "\r\n   # another comment\n" + urls[2]
	e := newEnv(t)
	listFile := writeFile(t, e.dir, "urls", []byte(list))
	for _, tc := range []struct {
		name  string
		stdin string
		args  []string
	}{
		{"arguments", "", append([]string{"--json"}, urls...)},
		{"-i FILE", "", []string{"--json", "-i", listFile}},
		{"-i -", list, []string{"--json", "-i", "-"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := e.runStdin(tc.stdin, args(tc.args...)...)
			r.wantCode(t, 0)
			reps := byN(t, jsonLines(t, r.stdout))
			if len(reps) != 3 {
				t.Fatalf("%d reports, want 3:\n%s", len(reps), r.stdout)
			}
			for i, path := range []string{"/a", "/b", "/c"} {
				rep := reps[i+1]
				if rep["url"] != urls[i] || rep["data"] != "body of "+path || code(rep) != 0 || rep["ok"] != true {
					t.Errorf("report %d = %v", i+1, rep)
				}
			}
			if !strings.Contains(r.stderr, "batch: 3 URLs in ") || !strings.Contains(r.stderr, ": 3 ok, 0 stale/fallback, 0 failed, 0 skipped") {
				t.Errorf("summary missing: %s", r.stderr)
			}
		})
	}
	// -q silences the summary.
	r := e.run(args("-q", "--json", "-i", listFile)...)
	r.wantCode(t, 0)
	if r.stderr != "" {
		t.Errorf("-q: stderr %q", r.stderr)
	}
}

// TestE2EBatchBadLineSendsNothing: every line is checked before the first
// request; a bad one is exit 2 naming its line, and nothing is sent.
func TestE2EBatchBadLineSendsNothing(t *testing.T) {
	t.Parallel()
	var c counter
	srv := pathServer(t, &c)
	for _, bad := range []string{"ftp://example.com/x", "http://exa mple.com/", "http://[::1", "http://example.com:99999/"} {
		t.Run(bad, func(t *testing.T) {
			e := newEnv(t)
			list := srv.URL + "/a\n# comment\n" + bad + "\n" + srv.URL + "/b\n"
			// line 3 is the bad one, in a file and on stdin alike.
			writeFile(t, e.dir, "urls", []byte(list))
			for _, run := range []result{
				e.run(args("-i", "urls")...),
				e.runStdin(list, args("-i", "-")...),
				e.runStdin(list, args("--json", "-i", "-")...),
			} {
				run.wantCode(t, 2)
				if !strings.Contains(run.stderr, "line 3: ") {
					t.Errorf("stderr does not name line 3: %s", run.stderr)
				}
			}
			if c.get() != 0 {
				t.Fatalf("%d requests sent for a batch with a bad line", c.get())
			}
		})
	}
	// As an argument: named by its position.
	e := newEnv(t)
	r := e.run(args(srv.URL+"/a", "mailto:x@example.com")...)
	r.wantCode(t, 2)
	if !strings.Contains(r.stderr, "argument 2: ") || c.get() != 0 {
		t.Errorf("stderr %s, %d requests", r.stderr, c.get())
	}
	// --json prints the one usage report.
	r = e.runStdin(srv.URL+"/a\nftp://x/\n", args("--json", "-i", "-")...)
	r.wantCode(t, 2)
	if rep := r.report(t); code(rep) != 2 || !strings.Contains(rep["error"].(string), "line 2") {
		t.Errorf("report %v", rep)
	}
}

// TestE2EBatchUsageErrors: the batch's own flags and files, checked
// before any request.
func TestE2EBatchUsageErrors(t *testing.T) {
	t.Parallel()
	var c counter
	srv := pathServer(t, &c)
	e := newEnv(t)
	os.Mkdir(filepath.Join(e.dir, "out"), 0o755)
	os.Mkdir(filepath.Join(e.dir, "out", "a"), 0o755)
	two := []string{srv.URL + "/x/a", srv.URL + "/y/b"}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{append([]string{"-P", "0"}, two...), "--parallel 0"},
		{append([]string{"-P", "1025"}, two...), "--parallel 1025"},
		{append([]string{"--parallel-host", "-1"}, two...), "--parallel-host -1"},
		{append([]string{"-N"}, two...), "-N"},
		{append([]string{"-o", "out/{nmae}"}, two...), "{nmae}"},
		{append([]string{"-o", "missing/{n}"}, two...), "argument 1: -o missing/1: cannot write in missing"},
		{append([]string{"-o", "out/{name}"}, two...), "argument 1: -o out/a: is a directory"},
		{[]string{"-i", "nowhere"}, "-i nowhere: cannot read"},
		{[]string{"-i", "out"}, "-i out: is a directory"},
		{[]string{"-i", "-", "-d", "@-"}, "both read stdin"},
	} {
		r := e.run(args(tc.args...)...)
		r.wantCode(t, 2)
		if !strings.Contains(r.stderr, tc.want) {
			t.Errorf("%v: stderr %q, want %q", tc.args, r.stderr, tc.want)
		}
	}
	if c.get() != 0 {
		t.Errorf("%d requests sent", c.get())
	}
}

// TestE2EBatchDuplicateOutputNames: two URLs that map to one file are exit
// 2 naming both lines, before any request.
func TestE2EBatchDuplicateOutputNames(t *testing.T) {
	t.Parallel()
	var c counter
	srv := pathServer(t, &c)
	e := newEnv(t)
	out := filepath.Join(e.dir, "out")
	os.Mkdir(out, 0o755)
	list := strings.Join([]string{"# pages", srv.URL + "/x/one.txt", srv.URL + "/x/two.txt", "",
		srv.URL + "/y/three.txt", srv.URL + "/y/one.txt?v=2", srv.URL + "/z/four.txt"}, "\n")
	writeFile(t, e.dir, "urls", []byte(list))
	r := e.run(args("-i", "urls", "-o", "out/{name}")...)
	r.wantCode(t, 2)
	if !strings.Contains(r.stderr, "line 2 and line 6: both write out/one.txt") || !strings.Contains(r.stderr, "{n}") {
		t.Errorf("stderr: %s", r.stderr)
	}
	// Without a placeholder every URL names the same file.
	r = e.run(args("-i", "urls", "-o", "out/page")...)
	r.wantCode(t, 2)
	if !strings.Contains(r.stderr, "line 2 and line 3: both write out/page") {
		t.Errorf("stderr: %s", r.stderr)
	}
	entries, _ := os.ReadDir(out)
	if c.get() != 0 || len(entries) != 0 {
		t.Errorf("%d requests, files %v", c.get(), entries)
	}
	// {n} tells them apart.
	e.run(args("-q", "-i", "urls", "-o", "out/{n}-{name}")...).wantCode(t, 0)
}

// TestE2EBatchOutputTemplate: -o TEMPLATE writes each body to its file,
// atomically, with {n} and a {name} that is always one safe file name.
func TestE2EBatchOutputTemplate(t *testing.T) {
	t.Parallel()
	var c counter
	srv := pathServer(t, &c)
	e := newEnv(t)
	out := filepath.Join(e.dir, "out")
	os.Mkdir(out, 0o755)
	writeFile(t, out, "3-b.txt", []byte("old content"))
	os.Chmod(filepath.Join(out, "3-b.txt"), 0o600)
	paths := []string{
		"/dir/a.json",         // 1-a.json
		"/dir/",               // 2-index
		"/b.txt?query=1",      // 3-b.txt, replacing the old file, keeping its mode
		"/.hidden",            // 4-_hidden
		"/%2E%2E",             // 5-__
		"/x/..%2F..%2Fescape", // 6-___.._escape: no separator, no leading dot
		"",                    // 7-index
		"/a%00b%5Cc",          // 8-a_b_c
		"/" + strings.Repeat("long", 80),
	}
	var urls []string
	for _, p := range paths {
		urls = append(urls, srv.URL+p)
	}
	r := e.run(args(append([]string{"--json", "-P", "3", "-o", "out/{n}-{name}"}, urls...)...)...)
	r.wantCode(t, 0)
	long := "9-" + strings.Repeat("long", 80)[:191]
	want := map[string]string{
		"1-a.json": "/dir/a.json", "2-index": "/dir/", "3-b.txt": "/b.txt", "4-_hidden": "/.hidden",
		"5-__": "/..", "6-___.._escape": "/x/../../escape", "7-index": "/", "8-a_b_c": "/a\x00b\\c",
	}
	entries, _ := os.ReadDir(out)
	got := map[string]string{}
	for _, en := range entries {
		data, _ := os.ReadFile(filepath.Join(out, en.Name()))
		got[en.Name()] = string(data)
	}
	if len(got) != len(paths) {
		t.Fatalf("files %v, want %d", keys(got), len(paths))
	}
	for name, path := range want {
		if got[name] != "body of "+path {
			t.Errorf("%s = %q, want the body of %s (files: %v)", name, got[name], path, keys(got))
		}
	}
	var longName string
	for name := range got {
		if strings.HasPrefix(name, "9-") {
			longName = name
		}
	}
	if !strings.HasPrefix(longName, long+"-") || len(longName) != 2+200 {
		t.Errorf("long name %q (%d bytes)", longName, len(longName))
	}
	if st, _ := os.Stat(filepath.Join(out, "3-b.txt")); st.Mode().Perm() != 0o600 {
		t.Errorf("replaced file mode %v, want 0600 kept", st.Mode().Perm())
	}
	assertNoTempFiles(t, out)
	for _, rep := range jsonLines(t, r.stdout) {
		if rep["data"] != nil || !strings.HasPrefix(rep["output"].(string), "out/") {
			t.Errorf("report with -o: %v", rep)
		}
	}
}

func keys(m map[string]string) []string {
	var ks []string
	for k := range m {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return ks
}

// TestE2EBatchMixedExitCodes: good and bad URLs give exit 9, one JSON line
// per URL with its own exit code.
func TestE2EBatchMixedExitCodes(t *testing.T) {
	t.Parallel()
	var c counter
	srv := pathServer(t, &c)
	e := newEnv(t)
	list := srv.URL + "/200/a\n" + srv.URL + "/404/b\n" + srv.URL + "/200/c\n" + srv.URL + "/503/d\n"
	r := e.runStdin(list, args("--json", "--breaker-failures", "0", "-i", "-")...)
	r.wantCode(t, 9)
	reps := byN(t, jsonLines(t, r.stdout))
	want := map[int]int{1: 0, 2: 3, 3: 0, 4: 4}
	if len(reps) != len(want) {
		t.Fatalf("%d reports:\n%s", len(reps), r.stdout)
	}
	for n, wc := range want {
		if code(reps[n]) != wc {
			t.Errorf("n %d: exit_code %v, want %d", n, reps[n]["exit_code"], wc)
		}
	}
	if !strings.Contains(r.stderr, "2 ok, 0 stale/fallback, 2 failed (1 permanent, 1 retries_exhausted), 0 skipped") ||
		!strings.Contains(r.stderr, "refetch: 2 of 4 URLs failed") {
		t.Errorf("stderr: %s", r.stderr)
	}
	// A fallback served counts as success.
	r = e.runStdin(list, args("--json", "--breaker-failures", "0", "--fallback", "{}", "-i", "-")...)
	r.wantCode(t, 0)
	if !strings.Contains(r.stderr, "2 ok, 2 stale/fallback, 0 failed") {
		t.Errorf("stderr: %s", r.stderr)
	}
}

// TestE2EBatchOfOneURLExitsWithItsOwnCode: a batch whose input holds one
// URL never exits 9.
func TestE2EBatchOfOneURLExitsWithItsOwnCode(t *testing.T) {
	t.Parallel()
	var c counter
	srv := pathServer(t, &c)
	e := newEnv(t)
	r := e.runStdin("# one\n"+srv.URL+"/404/x\n", args("--json", "-i", "-")...)
	r.wantCode(t, 3)
	if reps := jsonLines(t, r.stdout); len(reps) != 1 || code(reps[0]) != 3 || reps[0]["n"] != 1.0 {
		t.Errorf("reports: %s", r.stdout)
	}
	r = e.runStdin(srv.URL+"/200/x\n", args("-i", "-")...)
	r.wantCode(t, 0)
	if r.stdout != "body of /200/x" {
		t.Errorf("stdout %q", r.stdout)
	}
	// An empty list is nothing to do.
	r = e.runStdin("# nothing\n\n", args("-i", "-")...)
	r.wantCode(t, 0)
	if !strings.Contains(r.stderr, "batch: 0 URLs") {
		t.Errorf("stderr %s", r.stderr)
	}
}

// TestE2EBatchStdoutBodiesWhole: without -o and --json each body goes to
// stdout whole, one after another.
func TestE2EBatchStdoutBodiesWhole(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		letter := r.URL.Path[1:2]
		for i := 0; i < 64; i++ {
			io.WriteString(w, strings.Repeat(letter, 4096))
			w.(http.Flusher).Flush()
		}
	}))
	defer srv.Close()
	var urls []string
	for _, l := range "abcdefgh" {
		urls = append(urls, srv.URL+"/"+string(l))
	}
	r := newEnv(t).run(args(append([]string{"-P", "8"}, urls...)...)...)
	r.wantCode(t, 0)
	if len(r.stdout) != 8*64*4096 {
		t.Fatalf("stdout holds %d bytes", len(r.stdout))
	}
	seen := map[byte]bool{}
	for i := 0; i < len(r.stdout); i += 64 * 4096 {
		body := r.stdout[i : i+64*4096]
		if strings.Count(body, body[:1]) != len(body) || seen[body[0]] {
			t.Fatalf("bodies interleaved at byte %d", i)
		}
		seen[body[0]] = true
	}
}

// TestE2EBatchDeadHostIsCutOffByItsBreaker: a host that always answers
// 503 gets at most 12 requests among 30 URLs with -P 4 (its breaker opens
// and its remaining URLs fail fast with exit 5), while the healthy host's
// URLs all succeed.
func TestE2EBatchDeadHostIsCutOffByItsBreaker(t *testing.T) {
	t.Parallel()
	var dead, good counter
	deadSrv := downServer(t, &dead)
	goodSrv := pathServer(t, &good)
	var list strings.Builder
	isDead := map[int]bool{}
	for i := 1; i <= 30; i++ {
		if i%2 == 1 {
			fmt.Fprintf(&list, "%s/d%d\n", deadSrv.URL, i)
			isDead[i] = true
		} else {
			fmt.Fprintf(&list, "%s/200/g%d\n", goodSrv.URL, i)
		}
	}
	r := newEnv(t).runStdin(list.String(), args("--json", "-P", "4", "-i", "-")...)
	r.wantCode(t, 9)
	t.Logf("dead host: %d requests", dead.get())
	if dead.get() > 12 {
		t.Errorf("the dead host received %d requests, want at most 12", dead.get())
	}
	reps := byN(t, jsonLines(t, r.stdout))
	if len(reps) != 30 {
		t.Fatalf("%d reports", len(reps))
	}
	open := 0
	for n, rep := range reps {
		switch {
		case !isDead[n] && code(rep) != 0:
			t.Errorf("healthy URL %d: %v", n, rep)
		case isDead[n] && code(rep) == 5:
			open++
			if len(rep["attempts"].([]any)) != 0 {
				t.Errorf("URL %d failed fast but sent a request: %v", n, rep)
			}
		case isDead[n] && code(rep) != 4:
			t.Errorf("dead URL %d: exit %d", n, code(rep))
		}
	}
	if open < 15-4 {
		t.Errorf("%d of the dead host's URLs failed fast, want at least 11", open)
	}
	if good.get() != 15 {
		t.Errorf("healthy host got %d requests, want 15", good.get())
	}
}

// TestE2EBatchHoldPausesOnlyItsHost: a 429 with Retry-After holds its host:
// the host's next URL goes back to its queue instead of occupying the one
// worker (-P 1), which fetches the other host's URLs first; then the held
// URLs complete.
func TestE2EBatchHoldPausesOnlyItsHost(t *testing.T) {
	t.Parallel()
	var limitedHits counter
	limited := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if limitedHits.next() == 1 {
			w.Header().Set("Retry-After", "2")
			http.Error(w, "slow down", http.StatusTooManyRequests)
			return
		}
		fmt.Fprint(w, "limited ok")
	}))
	defer limited.Close()
	var c counter
	other := pathServer(t, &c)
	list := []string{limited.URL + "/1", limited.URL + "/2", limited.URL + "/3",
		other.URL + "/4", other.URL + "/5", other.URL + "/6"}
	r := newEnv(t).run(args(append([]string{"--json", "-P", "1", "-n", "1"}, list...)...)...)
	r.wantCode(t, 9) // the first URL ran out of its one attempt
	reps := jsonLines(t, r.stdout)
	var order []int
	for _, rep := range reps {
		order = append(order, int(rep["n"].(float64)))
	}
	want := []int{1, 4, 5, 6, 2, 3}
	if fmt.Sprint(order) != fmt.Sprint(want) {
		t.Fatalf("completion order %v, want %v", order, want)
	}
	byn := byN(t, reps)
	if code(byn[1]) != 4 || code(byn[2]) != 0 || code(byn[3]) != 0 {
		t.Errorf("codes: %v %v %v", byn[1]["exit_code"], byn[2]["exit_code"], byn[3]["exit_code"])
	}
	if byn[2]["held_ms"].(float64) <= 0 || byn[4]["held_ms"].(float64) != 0 {
		t.Errorf("held_ms: held URL %v, other host's URL %v", byn[2]["held_ms"], byn[4]["held_ms"])
	}
	// URL 3 waited behind URL 2 for the same hold, and each URL's time
	// includes its wait (a tour saw held_ms 0 for the one, and held_ms
	// past elapsed_ms for the other).
	for _, n := range []int{2, 3} {
		if held, el := byn[n]["held_ms"].(float64), byn[n]["elapsed_ms"].(float64); held < 1000 || el < held {
			t.Errorf("URL %d: held_ms %v, elapsed_ms %v", n, held, el)
		}
	}
	if strings.Count(r.stderr, "no requests until") != 1 || !strings.Contains(r.stderr, "its URLs wait") {
		t.Errorf("stderr does not say the hold once:\n%s", r.stderr)
	}
	if limitedHits.get() != 3 {
		t.Errorf("limited host got %d requests, want 3 (none during the hold)", limitedHits.get())
	}
}

// TestE2EBatchFailFast: --fail-fast stops at the first failure: no new
// request, the rest counted as not fetched.
func TestE2EBatchFailFast(t *testing.T) {
	t.Parallel()
	var c counter
	srv := pathServer(t, &c)
	list := srv.URL + "/200/a\n" + srv.URL + "/404/b\n" + srv.URL + "/200/c\n" + srv.URL + "/200/d\n"
	r := newEnv(t).runStdin(list, args("--json", "--fail-fast", "-P", "1", "-i", "-")...)
	r.wantCode(t, 9)
	reps := jsonLines(t, r.stdout)
	if len(reps) != 2 || code(reps[0]) != 0 || code(reps[1]) != 3 || c.get() != 2 {
		t.Errorf("%d requests, reports:\n%s", c.get(), r.stdout)
	}
	if !strings.Contains(r.stderr, "1 ok, 0 stale/fallback, 1 failed (1 permanent), 2 skipped") ||
		!strings.Contains(r.stderr, "--fail-fast") {
		t.Errorf("stderr: %s", r.stderr)
	}
}

// TestE2EBatchSignalStopsPromptly: SIGINT (and SIGTERM) mid-batch ends the
// run with 130 (143), no temp file left, the summary of what was done.
func TestE2EBatchSignalStopsPromptly(t *testing.T) {
	var stalls counter
	stall := stallingServer(t, &stalls)
	var c counter
	good := pathServer(t, &c)
	for _, tc := range []struct {
		sig  syscall.Signal
		code int
	}{{syscall.SIGINT, 130}, {syscall.SIGTERM, 143}} {
		t.Run(tc.sig.String(), func(t *testing.T) {
			e := newEnv(t)
			out := filepath.Join(e.dir, "out")
			os.Mkdir(out, 0o755)
			var list strings.Builder
			for i := 0; i < 3; i++ {
				fmt.Fprintf(&list, "%s/200/%d\n", good.URL, i)
			}
			for i := 0; i < 20; i++ {
				fmt.Fprintf(&list, "%s/stall/%d\n", stall.URL, i)
			}
			writeFile(t, e.dir, "urls", []byte(list.String()))
			start := stalls.get()
			code, took, stdout := startAndSignal(t, e, tc.sig, func(string) bool { return stalls.get() >= start+4 },
				args("-P", "4", "-i", "urls", "-o", "out/{n}")...)
			if code != tc.code || stdout != "" {
				t.Errorf("exit %d, stdout %q; want %d", code, stdout, tc.code)
			}
			if took > 5*time.Second {
				t.Errorf("took %v to stop", took)
			}
			assertNoTempFiles(t, out)
			entries, _ := os.ReadDir(out)
			for _, en := range entries {
				if data, _ := os.ReadFile(filepath.Join(out, en.Name())); !strings.HasPrefix(string(data), "body of") {
					t.Errorf("file %s holds %q", en.Name(), data)
				}
			}
		})
	}
}

// TestE2EBatchSignalSummary: the summary says what was done before the
// signal.
func TestE2EBatchSignalSummary(t *testing.T) {
	t.Parallel()
	var stalls counter
	stall := stallingServer(t, &stalls)
	e := newEnv(t)
	cmd := e.command(args("-P", "2", stall.URL+"/1", stall.URL+"/2", stall.URL+"/3")...)
	stderr := newLockedBuffer()
	cmd.Stderr = stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "two requests", func() bool { return stalls.get() >= 2 })
	cmd.Process.Signal(syscall.SIGINT)
	err := cmd.Wait()
	if ee, ok := err.(interface{ ExitCode() int }); !ok || ee.ExitCode() != 130 {
		t.Fatalf("exit: %v", err)
	}
	if !strings.Contains(stderr.String(), "batch: 3 URLs in ") || !strings.Contains(stderr.String(), "0 failed, 3 skipped (2 cut off)") {
		t.Errorf("stderr: %s", stderr.String())
	}
}

// TestE2EBatchSharesConnections: the URLs of one host reuse its
// connections (one pool per host, keep-alive), so 40 URLs with -P 4 open
// at most 4 connections.
func TestE2EBatchSharesConnections(t *testing.T) {
	t.Parallel()
	var mu sync.Mutex
	conns := map[string]bool{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		conns[r.RemoteAddr] = true
		mu.Unlock()
		fmt.Fprint(w, "ok")
	}))
	defer srv.Close()
	var list strings.Builder
	for i := 0; i < 40; i++ {
		fmt.Fprintf(&list, "%s/%d\n", srv.URL, i)
	}
	newEnv(t).runStdin(list.String(), args("--json", "-P", "4", "-i", "-")...).wantCode(t, 0)
	mu.Lock()
	defer mu.Unlock()
	if len(conns) > 4 {
		t.Errorf("%d connections for 40 URLs with -P 4", len(conns))
	}
}

// TestE2EBatchParallelBounds: -P bounds the requests in flight in all,
// --parallel-host those to one host. Each host's server holds its first
// requests until two are in flight at once, so the bounds are reached.
func TestE2EBatchParallelBounds(t *testing.T) {
	t.Parallel()
	var (
		mu                sync.Mutex
		total, maxTotal   int
		active, maxActive = map[string]int{}, map[string]int{}
	)
	newHost := func(name string) *httptest.Server {
		gate := make(chan struct{})
		var once sync.Once
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			mu.Lock()
			total++
			active[name]++
			maxTotal, maxActive[name] = max(maxTotal, total), max(maxActive[name], active[name])
			if active[name] == 2 {
				once.Do(func() { close(gate) })
			}
			mu.Unlock()
			select {
			case <-gate:
			case <-time.After(5 * time.Second): // a broken bound shows in the counts, not as a hang
			}
			mu.Lock()
			total--
			active[name]--
			mu.Unlock()
			fmt.Fprint(w, "ok")
		}))
		t.Cleanup(srv.Close)
		return srv
	}
	a, b := newHost("a"), newHost("b")
	var list strings.Builder
	for i := 0; i < 10; i++ {
		fmt.Fprintf(&list, "%s/%d\n%s/%d\n", a.URL, i, b.URL, i)
	}
	newEnv(t).runStdin(list.String(), args("--json", "-P", "3", "--parallel-host", "2", "-i", "-")...).wantCode(t, 0)
	mu.Lock()
	defer mu.Unlock()
	if maxTotal > 3 || maxActive["a"] != 2 || maxActive["b"] != 2 {
		t.Errorf("in flight: at most %d in all (want ≤ 3), %d to a and %d to b (want 2 each)", maxTotal, maxActive["a"], maxActive["b"])
	}
}

// TestE2EBatchLongOutputNames: a batch's -o name near the 255-byte limit
// is written, as a single fetch's is: the temporary file's name is
// shortened, so it does not fail after the request was sent.
func TestE2EBatchLongOutputNames(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { fmt.Fprint(w, r.URL.Path) }))
	defer srv.Close()
	e := newEnv(t)
	long := strings.Repeat("b", 240)
	r := e.run(args("-o", long+"{n}", srv.URL+"/one", srv.URL+"/two")...)
	r.wantCode(t, 0)
	for n, want := range map[string]string{"1": "/one", "2": "/two"} {
		if got, err := os.ReadFile(filepath.Join(e.dir, long+n)); err != nil || string(got) != want {
			t.Errorf("file %d: %q, %v; want %q", len(long)+1, got, err, want)
		}
	}
}

// TestE2EBatchInputEditedDuringTheRun: what runs is what was checked, even
// when -i FILE is edited in place (same size, so the start-of-run check
// cannot see it) while the run is under way and has not yet read the
// edited line: the run reads the copy the check made.
func TestE2EBatchInputEditedDuringTheRun(t *testing.T) {
	t.Parallel()
	const lines = 1500 // past the read-ahead, so the last lines are read late
	first := make(chan struct{})
	release := make(chan struct{})
	var once sync.Once
	var mu sync.Mutex
	var paths []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		paths = append(paths, r.URL.Path)
		mu.Unlock()
		once.Do(func() { close(first); <-release })
		fmt.Fprint(w, "ok")
	}))
	defer srv.Close()
	e := newEnv(t)
	// Long lines: the file is far larger than a read buffer, so its last
	// lines are read from it only late in the run.
	pad := strings.Repeat("q", 200)
	var list strings.Builder
	for i := 1; i <= lines; i++ {
		fmt.Fprintf(&list, "%s/p/%04d?%s\n", srv.URL, i, pad)
	}
	input := filepath.Join(e.dir, "urls")
	if err := os.WriteFile(input, []byte(list.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := e.command(args("-q", "-P", "1", "--json", "-i", input)...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	<-first // the run has started; the last lines are not read yet
	edited := strings.Replace(list.String(), fmt.Sprintf("/p/%04d?", lines), fmt.Sprintf("/x/%04d?", lines), 1)
	if err := os.WriteFile(input, []byte(edited), 0o644); err != nil {
		t.Fatal(err)
	}
	close(release)
	if err := cmd.Wait(); err != nil {
		t.Fatalf("%v: %s", err, stderr.String())
	}
	mu.Lock()
	defer mu.Unlock()
	for _, p := range paths {
		if strings.HasPrefix(p, "/x/") {
			t.Fatalf("the edited line %s ran: it was never checked", p)
		}
	}
	if len(paths) != lines {
		t.Errorf("%d requests, want %d", len(paths), lines)
	}
}

// TestE2EBatchInputOnce: -i given twice is exit 2 naming both, before any
// request (it used to read the last one only, silently); the message shows
// how to read several. A REFETCH_INPUT is replaced by a -i, as every
// variable is by its flag.
func TestE2EBatchInputOnce(t *testing.T) {
	t.Parallel()
	var c counter
	srv := pathServer(t, &c)
	e := newEnv(t)
	writeFile(t, e.dir, "a.txt", []byte(srv.URL+"/a\n"))
	writeFile(t, e.dir, "b c.txt", []byte(srv.URL+"/b\n"))
	for _, tc := range []struct {
		args  []string
		stdin string
		want  string
	}{
		{[]string{"-i", "a.txt", "-i", "b c.txt"}, "", `-i given 2 times ("a.txt", "b c.txt"): a batch reads one input; to read several, join them: cat a.txt 'b c.txt' | refetch fetch -i -`},
		{[]string{"-i", "-", "--input", "a.txt", "-i", "a.txt"}, srv.URL + "/s\n", `-i given 3 times ("-", "a.txt", "a.txt")`},
		{[]string{"--json", "-i", "a.txt", "-i", "a.txt"}, "", ""},
	} {
		r := e.runStdin(tc.stdin, args(tc.args...)...)
		r.wantCode(t, 2)
		if tc.want != "" && !strings.Contains(r.stderr, tc.want) {
			t.Errorf("%v: stderr %q, want %q", tc.args, r.stderr, tc.want)
		}
		if tc.want == "" {
			if rep := r.report(t); rep["exit_code"] != 2.0 || !strings.Contains(rep["error"].(string), "-i given 2 times") {
				t.Errorf("%v: report %v", tc.args, rep)
			}
		}
	}
	if c.get() != 0 {
		t.Errorf("%d requests sent", c.get())
	}
	r := e.with("REFETCH_INPUT=a.txt").run(args("-i", "b c.txt")...)
	r.wantCode(t, 0)
	if r.stdout != "body of /b" || c.get() != 1 {
		t.Errorf("REFETCH_INPUT with -i: stdout %q, %d requests", r.stdout, c.get())
	}
}

// TestE2EBatchVerboseNamesTheURL: in a batch, where several URLs' -v lines
// interleave, each request, response and hedge line names the URL's place
// in the input (a tour could not pair them with -P 8).
func TestE2EBatchVerboseNamesTheURL(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") }))
	defer srv.Close()
	e := newEnv(t)
	r := e.run("fetch", "-v", "-P", "2", "-o", filepath.Join(e.dir, "o{n}"), srv.URL+"/a", srv.URL+"/b")
	r.wantCode(t, 0)
	for _, want := range []string{"> [argument 1 #1] GET " + srv.URL + "/a", "> [argument 2 #1] GET " + srv.URL + "/b",
		"< [argument 1 #1] HTTP/1.1 200 OK", "< [argument 2 #1] HTTP/1.1 200 OK"} {
		if !strings.Contains(r.stderr, want) {
			t.Errorf("stderr lacks %q:\n%s", want, r.stderr)
		}
	}
}
