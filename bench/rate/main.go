//go:build unix

// Command rate measures what --rate and --retry-budget cost a refetch run
// on a Redis store: the same fetch with and without them, alternating run
// by run, medians. The rate is far above what a run sends (100000/s, and
// a quota of a million a minute for --rate auto), so no run waits for a
// slot: what is measured is the store steps. It starts its own
// redis-server and HTTP server on loopback.
//
//	go run ./bench/rate -refetch PATH [-runs 150]
package main

import (
	"flag"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"sort"
	"time"

	"github.com/refetch/refetch/bench/internal/benchredis"
)

func fatalf(f string, a ...any) { fmt.Fprintf(os.Stderr, "rate: "+f+"\n", a...); os.Exit(1) }

func main() {
	bin := flag.String("refetch", "", "the refetch binary")
	runs := flag.Int("runs", 150, "runs per mode")
	flag.Parse()
	if *bin == "" {
		fmt.Fprintln(os.Stderr, "usage: rate -refetch PATH")
		os.Exit(2)
	}
	state, err := os.MkdirTemp("", "rate-bench")
	if err != nil {
		fatalf("%v", err)
	}
	defer os.RemoveAll(state)
	addr, stop, err := benchredis.Start(state)
	if err != nil {
		fatalf("%v", err)
	}
	defer stop()
	store := "redis://" + addr
	// The server advertises a quota far above what the runs send (a
	// million a minute), so --rate auto learns and paces without a wait.
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("RateLimit-Policy", `"default";q=1000000;w=60`)
		w.Header().Set("RateLimit", `"default";r=999999;t=60`)
		w.Write([]byte("ok\n"))
	}))
	defer srv.Close()
	modes := []struct {
		name string
		args []string
	}{
		{"breaker", []string{"--store", store}},
		{"breaker, --rate", []string{"--store", store, "--rate", "100000/s"}},
		{"breaker, --rate, --retry-budget", []string{"--store", store, "--rate", "100000/s", "--retry-budget", "20%"}},
		{"breaker, --rate auto", []string{"--store", store, "--rate", "auto"}},
		{"no breaker", []string{"--store", store, "--breaker-failures", "0"}},
		{"no breaker, --rate", []string{"--store", store, "--breaker-failures", "0", "--rate", "100000/s"}},
	}
	times := make([][]time.Duration, len(modes))
	for i := 0; i < *runs; i++ {
		for m, mode := range modes {
			a := append([]string{"fetch", "-q", "-o", "/dev/null", "--state-dir", state}, mode.args...)
			t0 := time.Now()
			if out, err := exec.Command(*bin, append(a, srv.URL)...).CombinedOutput(); err != nil {
				fatalf("%s: %v\n%s", mode.name, err, out)
			}
			times[m] = append(times[m], time.Since(t0))
		}
	}
	for m, mode := range modes {
		ts := times[m]
		sort.Slice(ts, func(i, j int) bool { return ts[i] < ts[j] })
		fmt.Printf("%-34s median %.2f ms (p10 %.2f, p90 %.2f)\n", mode.name, ms(ts[len(ts)/2]), ms(ts[len(ts)/10]), ms(ts[len(ts)*9/10]))
	}
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
