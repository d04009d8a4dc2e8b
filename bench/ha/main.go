//go:build unix

// Command ha measures what a refetch run costs on highly available Redis
// against a single server: the same fetch (a closed breaker: one
// admission, one outcome) with --store on a single redis-server, on a
// Sentinel setup (a primary, a replica, three sentinels) and on a
// three-master Cluster, alternating run by run, medians and quartiles;
// then a run whose failure opens a breaker (the write that waits for a
// replica). It starts every server itself, on loopback.
//
//	go run ./bench/ha -refetch PATH [-runs 200]
package main

import (
	"flag"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"time"

	"github.com/refetch/refetch/internal/redistest"
)

func main() {
	bin := flag.String("refetch", "", "the refetch binary to measure")
	runs := flag.Int("runs", 200, "runs per mode")
	flag.Parse()
	if *bin == "" {
		fmt.Fprintln(os.Stderr, "ha: -refetch is required")
		os.Exit(2)
	}
	dir, err := os.MkdirTemp("", "refetch-ha-bench-*")
	check(err)
	defer os.RemoveAll(dir)
	server, err := exec.LookPath("redis-server")
	check(err)
	sentinelBin, err := exec.LookPath("redis-sentinel")
	check(err)
	cli, err := exec.LookPath("redis-cli")
	check(err)

	sub := func(name string) string {
		d := filepath.Join(dir, name)
		check(os.MkdirAll(d, 0o700))
		return d
	}
	single, stop, err := redistest.NewServer(server, sub("single"))
	check(err)
	defer stop()
	sen, err := redistest.NewSentinel(server, sentinelBin, sub("sentinel"), 3, nil)
	check(err)
	defer sen.Close()
	cl, err := redistest.NewCluster(server, cli, sub("cluster"), nil)
	check(err)
	defer cl.Close()

	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/dead" {
			http.Error(w, "down", http.StatusServiceUnavailable)
			return
		}
		fmt.Fprint(w, `{"ok":true}`)
	}))
	defer srv.Close()
	env := append(os.Environ(), "HOME="+dir, "XDG_STATE_HOME="+filepath.Join(dir, "state"), "REFETCH_NODE=bench")

	modes := []struct{ name, store string }{
		{"single", "redis://" + single},
		{"sentinel", sen.URL()},
		{"cluster", cl.URL()},
	}
	times := make([][]time.Duration, len(modes))
	for i := 0; i < *runs; i++ {
		for m, mode := range modes {
			cmd := exec.Command(*bin, "fetch", "-q", "--store", mode.store, srv.URL+"/ok")
			cmd.Env = env
			start := time.Now()
			out, err := cmd.CombinedOutput()
			if err != nil || len(out) != len(`{"ok":true}`) {
				check(fmt.Errorf("%s: %v: %s", mode.name, err, out))
			}
			times[m] = append(times[m], time.Since(start))
		}
	}
	report(fmt.Sprintf("fetch with --store, a closed breaker, whole process, %d runs per mode, alternating", *runs), modes, times)

	// A run whose failure opens a fresh breaker: on Sentinel, the write
	// that opens it waits for the replica (WAIT 1); the cluster's masters
	// have no replica (INFO says so: no wait).
	times = make([][]time.Duration, len(modes))
	for i := 0; i < *runs; i++ {
		for m, mode := range modes {
			cmd := exec.Command(*bin, "fetch", "-q", "-n", "1", "--breaker-failures", "1",
				"--breaker-key", fmt.Sprintf("open-%s-%d", mode.name, i), "--store", mode.store, srv.URL+"/dead")
			cmd.Env = env
			start := time.Now()
			err := cmd.Run()
			if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 4 {
				check(fmt.Errorf("%s: opening run: %v", mode.name, err))
			}
			times[m] = append(times[m], time.Since(start))
		}
	}
	report(fmt.Sprintf("fetch whose 503 opens a fresh breaker, %d runs per mode, alternating", *runs), modes, times)
}

func report(title string, modes []struct{ name, store string }, times [][]time.Duration) {
	fmt.Printf("%s (median, p25-p75):\n", title)
	base := median(times[0])
	for m, mode := range modes {
		s := sorted(times[m])
		fmt.Printf("  %-9s %8.3f ms  (%.3f-%.3f)  %+.3f ms over single\n", mode.name, ms(median(s)),
			ms(s[len(s)/4]), ms(s[3*len(s)/4]), ms(median(s)-base))
	}
}

func sorted(d []time.Duration) []time.Duration {
	s := append([]time.Duration(nil), d...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	return s
}

func median(d []time.Duration) time.Duration { return sorted(d)[len(d)/2] }

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

func check(err error) {
	if err != nil {
		fmt.Fprintln(os.Stderr, "ha:", err)
		os.Exit(1)
	}
}
