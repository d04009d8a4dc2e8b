package e2e

import (
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
)

// A stale copy saved for one API key is never served to a caller with
// another key, or with none, whatever the header's name or case; a
// header that names no one (User-Agent) does not keep the same caller
// from its own copy.
func TestE2EStaleNeverCrossesAPIKeys(t *testing.T) {
	t.Parallel()
	var down atomic.Bool
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if down.Load() {
			http.Error(w, "down", http.StatusServiceUnavailable)
			return
		}
		// The body depends on the key, as an API's would, without
		// repeating it (so the cache can be searched for keys).
		names := map[string]string{"key-a": "alpha", "key-x": "xray"}
		w.Write([]byte("body for " + names[r.Header.Get("X-Api-Key")] + names[r.Header.Get("Api-Key")]))
	}))
	defer srv.Close()
	e := newEnv(t).with("REFETCH_BREAKER_FAILURES=0")
	stale := func(extra ...string) result {
		return e.run(args(append([]string{"-n", "1", "--stale-if-error", "1h"}, append(extra, srv.URL)...)...)...)
	}
	stale("-H", "X-Api-Key: key-a", "-A", "agent/1").wantCode(t, 0)
	stale("-H", "api-key: key-x").wantCode(t, 0)
	down.Store(true)

	for _, other := range [][]string{
		{"-H", "X-Api-Key: key-b"},
		{"-H", "x-api-key: KEY-A"}, // values are compared exactly
		{},                         // no key at all
		{"-H", "X-Auth-Token: key-a"},
		{"-H", "Api-Key: key-y"},
	} {
		r := stale(other...)
		if r.code != 4 || r.stdout != "" {
			t.Errorf("%v: exit %d, stdout %q: another caller got a stale body", other, r.code, r.stdout)
		}
	}
	for _, same := range [][]string{
		{"-H", "X-Api-Key: key-a", "-A", "agent/2"},
		{"-H", "x-api-key: key-a", "-H", "User-Agent: other", "-H", "Accept: text/plain"},
	} {
		r := stale(same...)
		r.wantCode(t, 0)
		if r.stdout != "body for alpha" {
			t.Errorf("%v: stdout %q, want key-a's stale body", same, r.stdout)
		}
	}
	r := stale("-H", "API-KEY: key-x")
	r.wantCode(t, 0)
	if r.stdout != "body for xray" {
		t.Errorf("stdout %q, want key-x's stale body", r.stdout)
	}
	// No key reaches the cache.
	files, _ := filepath.Glob(filepath.Join(e.dir, "cache", "refetch", "*"))
	if len(files) != 2 {
		t.Errorf("cache files: %v", files)
	}
	for _, f := range files {
		data, _ := os.ReadFile(f)
		if strings.Contains(string(data), "key-") || strings.Contains(f, "key-") {
			t.Errorf("%s holds a key: %q", f, data)
		}
	}
}
