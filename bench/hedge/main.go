// Command hedge measures what --hedge auto does to a heavy tail: a server
// that answers 95% of requests in 20 ms and 5% in 2 s (each request, hedges
// included, draws its own fate from a seeded generator), fetched by runs
// sequential refetch processes with --hedge auto and as many without,
// alternating run by run. It prints each mode's median, p99 and max, and
// the requests the hedged runs sent beyond one per run. Each repetition
// starts with an empty state dir, so the hedged runs first learn the
// origin's latency (no hedging before 20 samples), as a new cron job
// would.
//
//	go run ./bench/hedge -refetch PATH [-runs 300] [-reps 3]
package main

import (
	"flag"
	"fmt"
	"math/rand"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

func fatalf(f string, a ...any) { fmt.Fprintf(os.Stderr, "hedge: "+f+"\n", a...); os.Exit(1) }

// quantile is the nearest-rank q-quantile of sorted.
func quantile(sorted []time.Duration, q float64) time.Duration {
	i := int(float64(len(sorted))*q+0.999999) - 1
	return sorted[min(max(i, 0), len(sorted)-1)]
}

func main() {
	bin := flag.String("refetch", "", "the refetch binary")
	runs := flag.Int("runs", 300, "sequential runs per mode")
	reps := flag.Int("reps", 3, "repetitions, each from an empty state dir")
	slowShare := flag.Float64("slow", 0.05, "share of slow replies")
	logPath := flag.String("log", "", "write the --json report of every hedged run to this file")
	flag.Parse()
	if *bin == "" {
		fmt.Fprintln(os.Stderr, "usage: hedge -refetch PATH")
		os.Exit(2)
	}
	var (
		mu       sync.Mutex
		rng      = rand.New(rand.NewSource(1))
		requests [2]atomic.Int64
	)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mode := 0
		if r.URL.Query().Get("mode") == "hedge" {
			mode = 1
		}
		requests[mode].Add(1)
		mu.Lock()
		slow := rng.Float64() < *slowShare
		mu.Unlock()
		d := 20 * time.Millisecond
		if slow {
			d = 2 * time.Second
		}
		select {
		case <-time.After(d):
			w.Write([]byte("ok\n"))
		case <-r.Context().Done():
		}
	}))
	defer srv.Close()
	var log *os.File
	if *logPath != "" {
		var err error
		if log, err = os.Create(*logPath); err != nil {
			fatalf("%v", err)
		}
		defer log.Close()
	}
	names := [2]string{"without --hedge", "--hedge auto"}
	fmt.Printf("server: 20 ms, %.0f%% of replies 2 s; %d sequential runs per mode, alternating; %d repetitions\n\n", *slowShare*100, *runs, *reps)
	fmt.Println("| rep | mode | median | p99 | max | requests | extra |")
	fmt.Println("|---|---|---|---|---|---|---|")
	for rep := 1; rep <= *reps; rep++ {
		state, err := os.MkdirTemp("", "hedge-bench")
		if err != nil {
			fatalf("%v", err)
		}
		requests[0].Store(0)
		requests[1].Store(0)
		var times [2][]time.Duration
		for i := 0; i < *runs; i++ {
			for mode := 0; mode < 2; mode++ {
				args := []string{"fetch", "-q", "--state-dir", state}
				url := srv.URL + "/?mode=plain"
				if mode == 1 {
					args = append(args, "--hedge", "auto")
					url = srv.URL + "/?mode=hedge"
				}
				cmd := exec.Command(*bin, append(args, "-o", "/dev/null", url)...)
				if mode == 1 && log != nil {
					cmd = exec.Command(*bin, append(args, "--json", url)...)
					cmd.Stdout = log
				}
				cmd.Stderr = os.Stderr
				start := time.Now()
				if err := cmd.Run(); err != nil {
					fatalf("run %d (%s): %v", i, names[mode], err)
				}
				times[mode] = append(times[mode], time.Since(start))
			}
		}
		os.RemoveAll(state)
		for mode := 0; mode < 2; mode++ {
			t := times[mode]
			sort.Slice(t, func(i, j int) bool { return t[i] < t[j] })
			n := requests[mode].Load()
			fmt.Printf("| %d | %s | %s | %s | %s | %d | %.1f%% |\n", rep, names[mode], ms(quantile(t, 0.5)), ms(quantile(t, 0.99)),
				ms(t[len(t)-1]), n, 100*float64(n-int64(*runs))/float64(*runs))
		}
	}
}

func ms(d time.Duration) string {
	return strings.TrimSuffix(fmt.Sprintf("%.1f", float64(d)/float64(time.Millisecond)), ".0") + " ms"
}
