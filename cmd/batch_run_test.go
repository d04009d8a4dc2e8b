package cmd

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync/atomic"
	"testing"
)

// TestBatchInProcess runs batches through Run, as main would, against one
// httptest server: JSON Lines with n and each URL's own code, -o templates
// with exact contents, -i from a file with comments, exit 9 and 0.
func TestBatchInProcess(t *testing.T) {
	var hits atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		if strings.HasPrefix(r.URL.Path, "/missing") {
			http.NotFound(w, r)
			return
		}
		fmt.Fprintf(w, "body of %s", r.URL.Path)
	}))
	defer srv.Close()
	dir := t.TempDir()
	env := map[string]string{"HOME": dir, "REFETCH_NODE": "test"}

	// JSON Lines: one line per URL, in completion order, each with n.
	f, out, errOut := testFactory(env)
	code := Run(context.Background(), f, []string{"fetch", "--json", "-P", "2", "--breaker-failures", "0",
		srv.URL + "/a", srv.URL + "/missing", srv.URL + "/b"})
	if code != ExitBatch {
		t.Fatalf("exit %d, want %d; stderr %s", code, ExitBatch, errOut)
	}
	codes := map[float64]float64{}
	sc := bufio.NewScanner(strings.NewReader(out.String()))
	for sc.Scan() {
		var rep map[string]any
		if err := json.Unmarshal(sc.Bytes(), &rep); err != nil {
			t.Fatalf("line %q: %v", sc.Text(), err)
		}
		codes[rep["n"].(float64)] = rep["exit_code"].(float64)
	}
	if len(codes) != 3 || codes[1] != 0 || codes[2] != 3 || codes[3] != 0 {
		t.Errorf("per-URL exit codes %v, want n1:0 n2:3 n3:0\n%s", codes, out)
	}
	if !strings.Contains(errOut.String(), "batch: 3 URLs") || !strings.Contains(errOut.String(), "1 failed") {
		t.Errorf("summary missing: %s", errOut)
	}

	// -i FILE with comments and blank lines, -o template: exact files.
	input := filepath.Join(dir, "urls")
	os.WriteFile(input, []byte("# a list\n\n"+srv.URL+"/x/one\n  "+srv.URL+"/y/two  \n"), 0o600)
	outDir := filepath.Join(dir, "out")
	os.Mkdir(outDir, 0o755)
	f, _, errOut = testFactory(env)
	code = Run(context.Background(), f, []string{"fetch", "-i", input, "-o", filepath.Join(outDir, "{n}-{name}"), "--breaker-failures", "0"})
	if code != 0 {
		t.Fatalf("exit %d; stderr %s", code, errOut)
	}
	entries, _ := os.ReadDir(outDir)
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	sort.Strings(names)
	if strings.Join(names, ",") != "1-one,2-two" {
		t.Errorf("files %v", names)
	}
	if data, _ := os.ReadFile(filepath.Join(outDir, "2-two")); string(data) != "body of /y/two" {
		t.Errorf("2-two = %q", data)
	}

	// A bad line: exit 2 naming it, and no request at all.
	before := hits.Load()
	os.WriteFile(input, []byte(srv.URL+"/ok\nhttp://bad host/\n"), 0o600)
	f, _, errOut = testFactory(env)
	if code := Run(context.Background(), f, []string{"fetch", "-i", input}); code != ExitUsage || !strings.Contains(errOut.String(), "line 2") {
		t.Errorf("bad line: exit %d, stderr %s", code, errOut)
	}
	if hits.Load() != before {
		t.Error("a request was sent before the bad line was found")
	}

	// Without -o and --json, each body goes to stdout whole.
	f, out, errOut = testFactory(env)
	if code := Run(context.Background(), f, []string{"fetch", "-P", "1", "-q", srv.URL + "/p", srv.URL + "/q"}); code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	if got := out.String(); got != "body of /pbody of /q" && got != "body of /qbody of /p" {
		t.Errorf("stdout %q", got)
	}
}
