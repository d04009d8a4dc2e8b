//go:build unix

// Command fleet measures what a Redis breaker store costs a refetch run
// against the file store and against no breaker (alternating run by run,
// medians), and checks the fleet's two promises at scale: N concurrent
// processes recording on one key lose no update, and N racing for one
// half-open trial send exactly one request. It starts its own
// redis-server and HTTP server on loopback.
//
// Last, it runs a 300-URL batch against a Redis made far away by a
// latency proxy, at -P 8 and -P 64.
//
//	go run ./bench/fleet -refetch PATH [-runs 200] [-procs 50] [-far 15ms] [-far-runs 5]
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/refetch/refetch/bench/internal/benchredis"
	"github.com/refetch/refetch/internal/redistest"
)

func main() {
	bin := flag.String("refetch", "", "the refetch binary to measure")
	runs := flag.Int("runs", 200, "runs per mode")
	procs := flag.Int("procs", 50, "concurrent processes for the atomicity checks")
	far := flag.Duration("far", 15*time.Millisecond, "the far Redis's delay each way, for the batch measure")
	farRuns := flag.Int("far-runs", 5, "runs per mode of the far-Redis batch")
	flag.Parse()
	if *bin == "" {
		fmt.Fprintln(os.Stderr, "fleet: -refetch is required")
		os.Exit(2)
	}
	dir, err := os.MkdirTemp("", "refetch-fleet-bench-*")
	check(err)
	defer os.RemoveAll(dir)
	addr, stop, err := benchredis.Start(dir)
	check(err)
	defer stop()
	var hits atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		if r.URL.Path == "/dead" {
			http.Error(w, "down", http.StatusServiceUnavailable)
			return
		}
		fmt.Fprint(w, `{"ok":true}`)
	}))
	defer srv.Close()
	env := append(os.Environ(), "HOME="+dir, "XDG_STATE_HOME="+filepath.Join(dir, "state"), "REFETCH_NODE=bench")
	redisURL := "redis://" + addr

	modes := []struct {
		name string
		args []string
	}{
		{"no breaker", []string{"--breaker-failures", "0"}},
		{"file store", nil},
		{"redis store", []string{"--store", redisURL}},
	}
	times := make([][]time.Duration, len(modes))
	for i := 0; i < *runs; i++ {
		for m, mode := range modes {
			cmd := exec.Command(*bin, append(append([]string{"fetch", "-q"}, mode.args...), srv.URL+"/ok")...)
			cmd.Env = env
			start := time.Now()
			check(cmd.Run())
			times[m] = append(times[m], time.Since(start))
		}
	}
	base := median(times[0])
	fmt.Printf("1 KiB-class fetch, whole process, %d runs per mode, alternating (median):\n", *runs)
	for m, mode := range modes {
		med := median(times[m])
		fmt.Printf("  %-12s %8.3f ms   (+%.3f ms over no breaker)\n", mode.name, ms(med), ms(med-base))
	}

	// N processes record one failure each on one key at the same moment.
	key := fmt.Sprintf("bench-%d", time.Now().UnixNano())
	runAll(*procs, func(int) *exec.Cmd {
		cmd := exec.Command(*bin, "fetch", "-q", "-n", "1", "--breaker-failures", "100000", "--breaker-key", key,
			"--store", redisURL+"?timeout=10s", srv.URL+"/dead")
		cmd.Env = env
		return cmd
	})
	out, err := statusOf(*bin, env, redisURL, key)
	check(err)
	fmt.Printf("%d concurrent processes, one failure each on one key: consecutive_failures = %d (want %d)\n",
		*procs, out, *procs)

	// Open a breaker, let its reset pass, then N processes race for the trial.
	trialKey := key + "-trial"
	cmd := exec.Command(*bin, "fetch", "-q", "-n", "1", "--breaker-failures", "1", "--breaker-reset", "1s",
		"--breaker-key", trialKey, "--store", redisURL, srv.URL+"/dead")
	cmd.Env = env
	cmd.Run() // exit 4: it opened the breaker
	time.Sleep(1100 * time.Millisecond)
	before := hits.Load()
	runAll(*procs, func(int) *exec.Cmd {
		cmd := exec.Command(*bin, "fetch", "-q", "-n", "1", "--breaker-failures", "1", "--breaker-reset", "1h",
			"--breaker-key", trialKey, "--store", redisURL+"?timeout=10s", srv.URL+"/dead")
		cmd.Env = env
		return cmd
	})
	fmt.Printf("%d concurrent processes racing for one half-open trial: %d request(s) sent (want 1)\n",
		*procs, hits.Load()-before)

	farBatch(*bin, env, addr, srv.URL, *far, *farRuns)
}

// farBatch measures a batch of 300 URLs through a Redis *far away each
// way (a proxy that delays every chunk), at -P 8 and -P 64, alternating,
// against the same batch without a breaker: each URL costs two store
// round trips, so -P is what hides the distance.
func farBatch(bin string, env []string, redisAddr, base string, far time.Duration, runs int) {
	proxy, err := redistest.StartFar(redisAddr, far)
	check(err)
	defer proxy.Close()
	dir, err := os.MkdirTemp("", "refetch-far-*")
	check(err)
	defer os.RemoveAll(dir)
	var b strings.Builder
	for i := 0; i < 300; i++ {
		fmt.Fprintf(&b, "%s/ok?%d\n", base, i)
	}
	input := filepath.Join(dir, "urls")
	check(os.WriteFile(input, []byte(b.String()), 0o600))
	modes := []struct {
		name string
		args []string
	}{
		{"-P 8, no breaker", []string{"-P", "8", "--breaker-failures", "0"}},
		{"-P 8, far redis", []string{"-P", "8", "--store", "redis://" + proxy.Addr + "?timeout=5s"}},
		{"-P 64, far redis", []string{"-P", "64", "--store", "redis://" + proxy.Addr + "?timeout=5s"}},
	}
	times := make([][]time.Duration, len(modes))
	for i := 0; i < runs; i++ {
		for m, mode := range modes {
			args := append(append([]string{"fetch", "-q", "-o", filepath.Join(dir, "out-{n}")}, mode.args...), "-i", input)
			cmd := exec.Command(bin, args...)
			cmd.Env = env
			start := time.Now()
			out, err := cmd.CombinedOutput()
			if err != nil || strings.Contains(string(out), "unavailable") {
				check(fmt.Errorf("%s: %v: %s", mode.name, err, out))
			}
			times[m] = append(times[m], time.Since(start))
		}
	}
	fmt.Printf("300 URLs, one host, Redis %s away each way, %d runs per mode, alternating (median, min-max):\n", far, runs)
	for m, mode := range modes {
		s := append([]time.Duration(nil), times[m]...)
		sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
		fmt.Printf("  %-18s %8.1f ms  (%.1f-%.1f)\n", mode.name, ms(median(s)), ms(s[0]), ms(s[len(s)-1]))
	}
	fmt.Printf("  -P 8 / -P 64 with the far Redis: %.1fx\n", float64(median(times[1]))/float64(median(times[2])))
}

func runAll(n int, mk func(int) *exec.Cmd) {
	var wg sync.WaitGroup
	for i := 0; i < n; i++ {
		cmd := mk(i)
		wg.Add(1)
		go func() { defer wg.Done(); cmd.Run() }()
	}
	wg.Wait()
}

func statusOf(bin string, env []string, store, key string) (int, error) {
	cmd := exec.Command(bin, "breaker", "status", "--json", "--store", store, key)
	cmd.Env = env
	out, err := cmd.Output()
	if err != nil {
		return 0, err
	}
	var list []struct {
		Failures int `json:"consecutive_failures"`
	}
	if err := json.Unmarshal(out, &list); err != nil || len(list) != 1 {
		return 0, fmt.Errorf("status %q: %v", out, err)
	}
	return list[0].Failures, nil
}

func median(d []time.Duration) time.Duration {
	s := append([]time.Duration(nil), d...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	return s[len(s)/2]
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

func check(err error) {
	if err != nil {
		fmt.Fprintln(os.Stderr, "fleet:", err)
		os.Exit(1)
	}
}
