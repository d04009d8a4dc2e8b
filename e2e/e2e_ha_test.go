//go:build unix

package e2e

import (
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/refetch/refetch/internal/redistest"
)

// Fleet mode on highly available Redis (issue 27): a Sentinel setup that
// loses its primary to SIGKILL, and a three-master Cluster holding the
// breakers of 500 origins, one master killed mid-run. Real processes on
// loopback, the built binary.

// origins serves h on n loopback ports, n distinct origins (breaker
// keys), and returns their base URLs, stopped when the test ends.
func origins(t *testing.T, n int, h http.Handler) []string {
	t.Helper()
	srv := &http.Server{Handler: h}
	urls := make([]string, n)
	for i := range urls {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		go srv.Serve(l)
		urls[i] = "http://" + l.Addr().String()
	}
	t.Cleanup(func() { srv.Close() })
	return urls
}

// inputFile writes urls, one a line, to a file for -i.
func inputFile(t *testing.T, urls []string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "urls.txt")
	if err := os.WriteFile(path, []byte(strings.Join(urls, "\n")+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// byKey indexes `breaker status --json` by key.
func byKey(list []map[string]any) map[string]map[string]any {
	m := map[string]map[string]any{}
	for _, r := range list {
		m[r["key"].(string)] = r
	}
	return m
}

// exitCodes is each URL's exit code in a batch's --json lines.
func exitCodes(t *testing.T, stdout string) map[string]int {
	t.Helper()
	m := map[string]int{}
	for _, rep := range jsonLines(t, stdout) {
		m[fmt.Sprint(rep["url"])] = code(rep)
	}
	return m
}

// TestE2EHAStoreURLs: Sentinel and Cluster URLs follow the rules of
// redis:// ones: a bad one is exit 2 before any request, with one line
// that names the problem and never the password.
func TestE2EHAStoreURLs(t *testing.T) {
	t.Parallel()
	var c counter
	srv := downServer(t, &c)
	e := newEnv(t)
	const secret = "pw-Secret-27"
	for store, want := range map[string]string{
		"redis+sentinel://:" + secret + "@s1:26379,s2:26379":    "no master name",
		"redis+sentinel://:" + secret + "@s1,,s2/mymaster":      "an empty host",
		"rediss+sentinel://:" + secret + "@s1:x/mymaster":       "invalid port",
		"redis+cluster://:" + secret + "@n1:7000,n2:7001/2":     "a cluster has only database 0",
		"redis+cluster://:" + secret + "@n1:7000?timeout=never": "invalid timeout",
		"redis+ring://:" + secret + "@n1:7000":                  `unsupported scheme "redis+ring"`,
		"redis://:" + secret + "@n1:7000,n2:7001":               "use redis+sentinel:// or redis+cluster://",
	} {
		for _, a := range [][]string{
			args("--store", store, srv.URL),
			{"breaker", "status", "--store", store},
			{"breaker", "reset", "--all", "--store", store},
		} {
			r := e.run(a...)
			r.wantCode(t, 2)
			lines := strings.Split(strings.TrimSpace(r.stderr), "\n")
			if len(lines) != 1 || !strings.Contains(r.stderr, "invalid --store") || !strings.Contains(r.stderr, want) {
				t.Errorf("%v: stderr %q, want one line saying %q", a, r.stderr, want)
			}
			if strings.Contains(r.stderr+r.stdout, secret) {
				t.Errorf("%v: password shows: %s%s", a, r.stdout, r.stderr)
			}
		}
	}
	if c.get() != 0 {
		t.Errorf("%d requests sent with a bad --store", c.get())
	}
}

// TestE2EHASentinelFailover: a breaker opened through a Sentinel store
// is still open after its primary is killed (SIGKILL) and the replica
// promoted; fetches while no primary answers exit as they would without
// --store; after the promotion, new processes use the new primary, and a
// batch that spans the failover comes back to it without a restart.
func TestE2EHASentinelFailover(t *testing.T) {
	t.Parallel()
	sen := redistest.StartSentinel(t, 1)
	var hits counter
	down := downServer(t, &hits)
	ok := origins(t, 1, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { fmt.Fprint(w, "fine") }))[0]
	a := fleetNode(t, "node-a", sen.URL())

	a.run(args("-n", "1", "--breaker-failures", "1", down.URL)...).wantCode(t, 4)
	if st := byKey(statusJSON(t, a))[down.URL]; st == nil || st["state"] != "open" {
		t.Fatalf("status after the opening run: %v", statusJSON(t, a))
	}

	// The opening write waited (WAIT 1) for the replica up to 50 ms; on a
	// loaded machine the replica may take longer, which the docs count as
	// what a failover can lose. This test is about what a promotion
	// keeps: make sure the replica has it.
	sen.WaitReplicated(t)
	// The primary dies; the sentinel is held (SIGSTOP) so that no
	// promotion can happen yet: these runs are "during the failover".
	redistest.Pause(t, sen.Sentinels[0])
	redistest.Kill(t, sen.Primary)
	fresh := newEnv(t)
	for _, tc := range [][]string{
		args("-n", "1", "--breaker-failures", "1", down.URL),
		args(ok),
		check("--breaker-failures", "1", ok),
	} {
		want := fresh.run(tc...)
		r := a.run(tc...)
		if r.code != want.code || strings.Count(r.stderr, "unavailable") != 1 {
			t.Errorf("%v during the failover: exit %d (want %d, as without --store), stderr:\n%s", tc, r.code, want.code, r.stderr)
		}
	}
	redistest.Resume(t, sen.Sentinels[0])
	if got := sen.WaitPromoted(t, sen.Primary); got != sen.Replica {
		t.Fatalf("promoted %s, want the replica %s", got, sen.Replica)
	}

	// A new process finds the breaker open on the new primary: no request.
	b := fleetNode(t, "node-b", sen.URL())
	sent := hits.get()
	r := b.run(args("-n", "1", "--breaker-failures", "1", down.URL)...)
	r.wantCode(t, 5)
	if hits.get() != sent || strings.Contains(r.stderr, "unavailable") {
		t.Fatalf("after the promotion: %d requests, stderr:\n%s", hits.get()-sent, r.stderr)
	}

}

// TestE2EHASentinelPassword: sentinels with a password of their own are
// reached with ?sentinel_password=: the breaker opened by one node is
// open for another. Without the password the store is unavailable (one
// warning, the run goes on as without --store); no output shows it.
func TestE2EHASentinelPassword(t *testing.T) {
	t.Parallel()
	const pw = "Sentinel-Secret-27"
	sen := redistest.StartSentinelAuth(t, 1, pw)
	var hits counter
	down := downServer(t, &hits)
	a := fleetNode(t, "node-a", sen.URL())
	r := a.run(args("-v", "-n", "1", "--breaker-failures", "1", down.URL)...)
	r.wantCode(t, 4)
	if strings.Contains(r.stderr, "unavailable") || strings.Contains(r.stdout+r.stderr, pw) {
		t.Fatalf("the opening run, stderr:\n%s", r.stderr)
	}
	b := fleetNode(t, "node-b", sen.URL())
	sent := hits.get()
	b.run(args("-n", "1", "--breaker-failures", "1", down.URL)...).wantCode(t, 5)
	if hits.get() != sent {
		t.Errorf("node-b sent %d requests to an origin node-a opened", hits.get()-sent)
	}
	noPass := fleetNode(t, "node-c", strings.Split(sen.URL(), "?")[0])
	r = noPass.run(args("-n", "1", "--breaker-failures", "1", down.URL)...)
	if r.code != 4 || strings.Count(r.stderr, "unavailable") != 1 {
		t.Errorf("without the sentinels' password: exit %d, stderr:\n%s", r.code, r.stderr)
	}
	wrong := fleetNode(t, "node-d", strings.Replace(sen.URL(), "Secret", "Wrong", 1))
	r = wrong.run(args("-v", "-n", "1", "--breaker-failures", "1", down.URL)...)
	if r.code != 4 || strings.Contains(r.stdout+r.stderr, "Wrong-27") {
		t.Errorf("a wrong password: exit %d, stderr:\n%s", r.code, r.stderr)
	}
}

// TestE2EHASentinelBatchSpansFailover: a -P 1 batch of 8 origins, each
// opening its breaker; while
// item 3 is being fetched its primary is killed (SIGKILL); item 4 runs on
// the local files (the one warning) and is held until the sentinel has
// promoted the replica and a second (RetryAfter) has passed; items 5 to
// 7 then write to the new primary, as status shows, without the batch
// being restarted. Exit codes are those of the same batch without
// --store.
func TestE2EHASentinelBatchSpansFailover(t *testing.T) {
	t.Parallel()
	sen := redistest.StartSentinel(t, 1)
	var (
		mu    sync.Mutex
		seen  = map[string]bool{}
		armed atomic.Bool
	)
	bases := origins(t, 8, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		n, first := len(seen), !seen[r.Host]
		seen[r.Host] = true
		mu.Unlock()
		if armed.Load() && first {
			switch n {
			case 3:
				// Items 0-2's opening writes waited for the replica up
				// to 50 ms; under load it may lag longer (what a
				// failover can lose, docs/breaker.md): make sure it has
				// them, the test is about what the promotion keeps.
				sen.WaitReplicated(t)
				redistest.Kill(t, sen.Primary)
			case 4:
				sen.WaitPromoted(t, sen.Primary)
				// RetryAfter (1s) from the failure, which came before this
				// request: the next item is the batch's first retry.
				time.Sleep(1200 * time.Millisecond)
			}
		}
		http.Error(w, "down", http.StatusServiceUnavailable)
	}))
	input := inputFile(t, bases)
	// Each failure opens its origin's breaker: a write the store WAITs
	// for, so items 0-2 are on the replica before item 3 kills the primary.
	batch := []string{"-n", "1", "--breaker-failures", "1", "-P", "1", "--json", "-i", input}
	want := newEnv(t).run(args(batch...)...)
	mu.Lock()
	seen = map[string]bool{}
	mu.Unlock()
	armed.Store(true)
	e := fleetNode(t, "node-c", sen.URL())
	r := e.run(args(batch...)...)
	if r.code != want.code || fmt.Sprint(exitCodes(t, r.stdout)) != fmt.Sprint(exitCodes(t, want.stdout)) {
		t.Fatalf("exit %d, codes %v; without --store: exit %d, codes %v", r.code, exitCodes(t, r.stdout), want.code, exitCodes(t, want.stdout))
	}
	if strings.Count(r.stderr, "unavailable") != 1 {
		t.Fatalf("want one warning, stderr:\n%s", r.stderr)
	}
	status := byKey(statusJSON(t, e))
	var inRedis []int
	for i, base := range bases {
		if st := status[base]; st != nil && st["state"] == "open" {
			inRedis = append(inRedis, i)
		}
	}
	// Items 0-2 opened theirs before the kill (and the replica had them),
	// item 3 lost its store mid-run (no breaker for it), item 4 ran on the
	// files; 5 to 7 opened theirs on the new primary.
	if fmt.Sprint(inRedis) != "[0 1 2 5 6 7]" {
		t.Fatalf("items with a record in Redis: %v, want [0 1 2 5 6 7]\nstderr:\n%s", inRedis, r.stderr)
	}
}

// TestE2EHAClusterFiveHundredOrigins: one batch through 500 origins on a
// three-master cluster: every breaker and every hold lands, `breaker
// status` lists all 500, a second batch is refused by all of them without
// a request, the quorum counts nodes as on a single Redis, and a master
// killed mid-run costs a warning, never an exit code.
func TestE2EHAClusterFiveHundredOrigins(t *testing.T) {
	t.Parallel()
	const n = 500
	cl := redistest.StartCluster(t)
	var hits counter
	bases := origins(t, n, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.next()
		switch r.URL.Path {
		case "/hold":
			w.Header().Set("Retry-After", "600")
			http.Error(w, "slow down", http.StatusTooManyRequests)
		case "/ok":
			fmt.Fprint(w, "fine")
		default:
			http.Error(w, "down", http.StatusServiceUnavailable)
		}
	}))
	var urls []string
	for i, base := range bases {
		if i%2 == 0 {
			urls = append(urls, base+"/down")
		} else {
			urls = append(urls, base+"/hold")
		}
	}
	input := inputFile(t, urls)
	a := fleetNode(t, "node-a", cl.URL()+"?timeout=10s")
	batch := []string{"-n", "1", "--breaker-failures", "1", "-P", "16", "--json", "-i", input}
	want := newEnv(t).run(args(batch...)...)
	r := a.run(args(batch...)...)
	if r.code != want.code || fmt.Sprint(exitCodes(t, r.stdout)) != fmt.Sprint(exitCodes(t, want.stdout)) {
		t.Fatalf("exit %d; without --store %d\nstderr:\n%s", r.code, want.code, r.stderr)
	}
	if strings.Contains(r.stderr, "unavailable") || len(stateFiles(t, a)) != 0 {
		t.Fatalf("the batch gave up the cluster:\n%s", r.stderr)
	}
	status := statusJSON(t, a)
	if len(status) != n {
		t.Fatalf("breaker status lists %d breakers, want %d", len(status), n)
	}
	keys := byKey(status)
	for i, base := range bases {
		st := keys[base]
		switch {
		case st == nil:
			t.Fatalf("no breaker for %s", base)
		case i%2 == 0 && st["state"] != "open":
			t.Fatalf("%s: %v, want open", base, st)
		case i%2 == 1 && st["hold_until"] == nil:
			t.Fatalf("%s: %v, want a hold", base, st)
		}
	}
	sent := hits.get()
	r = a.run(args(batch...)...)
	for url, c := range exitCodes(t, r.stdout) {
		if (strings.HasSuffix(url, "/down") && c != 5) || (strings.HasSuffix(url, "/hold") && c != 6) {
			t.Fatalf("%s exited %d in the second batch", url, c)
		}
	}
	if hits.get() != sent {
		t.Fatalf("%d requests went through open breakers and holds", hits.get()-sent)
	}

	// The quorum, as on a single Redis: node A's failures alone open none
	// of 20 fresh origins; node B's, added, open all; holds hold both.
	a.run("breaker", "reset", "--all").wantCode(t, 0)
	if left := statusJSON(t, a); len(left) != 0 {
		t.Fatalf("reset --all left %d breakers", len(left))
	}
	quorum := inputFile(t, urls[:40])
	q := []string{"-n", "1", "--breaker-failures", "1", "--breaker-quorum", "2", "-P", "8", "--json", "-i", quorum}
	index := map[string]int{}
	for i, base := range bases {
		index[base] = i
	}
	// summary is what a store made of the two nodes' batches: each run's
	// exit codes, then each breaker's index, state and whether it holds.
	summary := func(store string) (string, int) {
		na, nb := fleetNode(t, "node-a", store), fleetNode(t, "node-b", store)
		var out []string
		opened := 0
		for _, node := range []*env{na, nb} {
			r := node.run(args(q...)...)
			out = append(out, fmt.Sprint(exitCodes(t, r.stdout)))
			var recs []string
			for _, st := range statusJSON(t, na) {
				recs = append(recs, fmt.Sprintf("%d:%v:%v", index[st["key"].(string)], st["state"], st["hold_until"] != nil))
				if node == na && st["state"] == "open" {
					opened++
				}
			}
			sort.Strings(recs)
			out = append(out, strings.Join(recs, " "))
		}
		return strings.Join(out, "\n"), opened
	}
	onCluster, openedByOne := summary(cl.URL())
	onSingle, _ := summary("redis://" + redistest.Start(t))
	if onCluster != onSingle || openedByOne != 0 || strings.Count(onCluster, ":open:") != 20 || strings.Count(onCluster, ":true") != 40 {
		t.Fatalf("the quorum on the cluster:\n%s\n\non a single Redis:\n%s", onCluster, onSingle)
	}

	// A master killed mid-run: warnings, the exit code of a run without
	// --store.
	var served atomic.Int64
	var once sync.Once
	okBases := origins(t, n, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if served.Add(1) == 100 {
			once.Do(func() { redistest.Kill(t, cl.Masters[1]) })
		}
		fmt.Fprint(w, "fine")
	}))
	var okURLs []string
	for _, base := range okBases {
		okURLs = append(okURLs, base+"/ok")
	}
	r = a.run(args("-n", "1", "-P", "8", "-o", filepath.Join(t.TempDir(), "{n}"), "-i", inputFile(t, okURLs))...)
	r.wantCode(t, 0)
	if served.Load() != n || !strings.Contains(r.stderr, "unavailable") {
		t.Fatalf("%d of %d served; stderr:\n%s", served.Load(), n, r.stderr)
	}
}

// TestE2EHATLS: rediss+sentinel:// and rediss+cluster:// speak TLS to
// every sentinel and server and check their certificates: trusted
// (SSL_CERT_FILE), the store works; not trusted, one warning naming the
// certificate and the run's exit code as without --store.
func TestE2EHATLS(t *testing.T) {
	t.Parallel()
	files := redistest.SelfSigned(t)
	srv := downServer(t, nil)
	for _, store := range []string{
		redistest.StartSentinelTLS(t, 1, &files).URL(),
		redistest.StartClusterTLS(t, &files).URL(),
	} {
		trusted := newEnv(t).with("SSL_CERT_FILE="+files.Cert, "SSL_CERT_DIR="+filepath.Dir(files.Cert), "REFETCH_STORE="+store)
		r := trusted.run(args("-n", "1", srv.URL)...)
		r.wantCode(t, 4)
		if strings.Contains(r.stderr, "warning") {
			t.Errorf("%s: stderr:\n%s", store, r.stderr)
		}
		if st := statusJSON(t, trusted); len(st) != 1 || st[0]["consecutive_failures"] != 1.0 {
			t.Errorf("%s: status over TLS = %v", store, st)
		}
		untrusted := newEnv(t).with("SSL_CERT_FILE="+filepath.Join(t.TempDir(), "none.pem"), "SSL_CERT_DIR="+t.TempDir(),
			"REFETCH_STORE="+store)
		r = untrusted.run(args("-n", "1", srv.URL)...)
		r.wantCode(t, 4)
		if strings.Count(r.stderr, "unavailable") != 1 || !strings.Contains(r.stderr, "certificate") {
			t.Errorf("%s untrusted: stderr:\n%s", store, r.stderr)
		}
	}
}
