//go:build unix

// Command budget shows what --retry-budget does to retry amplification at
// the scale of issue 23: 200 separate refetch invocations, 8 at a time,
// each with -n 4, launched like cron jobs (one launch slot every -every),
// against a loopback HTTP server that counts every request.
//
//  1. Outage: the server answers 503 for the first -outage after the
//     scenario starts, then 200. Reported: requests ÷ invocations, overall
//     and during the outage, exit codes, successes.
//  2. Random 503s: the server answers 503 to a fraction -fail of requests
//     (a seeded RNG, the same seed for both modes of a run), no outage.
//     Reported: the success rate and requests ÷ invocations, each run and
//     the median.
//
// Each mode (no budget, --retry-budget P) gets its own redis-server and
// its own HTTP server, so the modes share no budget state; the two modes
// of one configuration run at the same time, so both see the same load on
// the machine.
//
//	go run ./bench/budget -refetch PATH [-invocations 200] [-parallel 8]
//	    [-outage 60s] [-budget 20%] [-attempts 4] [-runs 3] [-fail 0.1]
//	    [-delays default,200ms] [-breaker off,on] [-only outage|random]
package main

import (
	"context"
	"errors"
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

	"github.com/refetch/refetch/bench/internal/benchredis"
)

func fatalf(f string, a ...any) { fmt.Fprintf(os.Stderr, "budget: "+f+"\n", a...); os.Exit(1) }

// params are the flags every scenario shares.
type params struct {
	bin         string
	invocations int
	parallel    int
	every       time.Duration
	attempts    int
}

// result is what one mode of one scenario saw.
type result struct {
	requests    int64 // every request the server answered
	failed      int64 // requests answered 503
	invocations int
	inOutage    int // invocations started before the outage ended
	codes       map[int]int
	warnings    int // invocations that wrote a warning (e.g. a store failover)
	firstWarn   string
	wall        time.Duration
}

// server answers each request with fail(now since the scenario started)
// deciding between 503 and 200, and counts them. The clock starts with
// start().
type server struct {
	*httptest.Server
	t0       atomic.Int64
	requests atomic.Int64
	failed   atomic.Int64
}

func newServer(fail func(since time.Duration) bool) *server {
	s := &server{}
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.requests.Add(1)
		if fail(time.Duration(time.Now().UnixNano() - s.t0.Load())) {
			s.failed.Add(1)
			http.Error(w, "down", http.StatusServiceUnavailable)
			return
		}
		w.Write([]byte("ok\n"))
	}))
	return s
}

// run launches p.invocations refetch processes against srv, one launch
// slot every p.every, at most p.parallel at a time (a launch whose slot
// has come waits for a free one), each with a fresh Redis shared by this
// mode only.
func run(p params, srv *server, outage time.Duration, extra []string) result {
	dir, err := os.MkdirTemp("", "budget-bench")
	if err != nil {
		fatalf("%v", err)
	}
	defer os.RemoveAll(dir)
	addr, stop, err := benchredis.Start(dir)
	if err != nil {
		fatalf("%v", err)
	}
	defer stop()
	// A generous Redis timeout: on a loaded machine a slow reply must not
	// fail the store over to the state dir, which would split the budget.
	args := []string{"fetch", "-q", "-o", "/dev/null", "--state-dir", dir,
		"--store", "redis://" + addr + "?timeout=5s", "-n", fmt.Sprint(p.attempts)}
	args = append(append(args, extra...), srv.URL)

	res := result{invocations: p.invocations, codes: map[int]int{}}
	var mu sync.Mutex
	var wg sync.WaitGroup
	sem := make(chan struct{}, p.parallel)
	t0 := time.Now()
	srv.t0.Store(t0.UnixNano())
	for i := 0; i < p.invocations; i++ {
		time.Sleep(time.Until(t0.Add(time.Duration(i) * p.every)))
		sem <- struct{}{}
		if time.Since(t0) < outage {
			res.inOutage++
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute) // a failure guard
			defer cancel()
			var stderr strings.Builder
			cmd := exec.CommandContext(ctx, p.bin, args...)
			cmd.Stderr = &stderr
			err := cmd.Run()
			code := 0
			var ee *exec.ExitError
			if errors.As(err, &ee) {
				code = ee.ExitCode()
			} else if err != nil {
				fatalf("%v", err)
			}
			mu.Lock()
			defer mu.Unlock()
			res.codes[code]++
			if strings.Contains(stderr.String(), "warning") {
				res.warnings++
				if res.firstWarn == "" {
					res.firstWarn = stderr.String()
				}
			}
		}()
	}
	wg.Wait()
	res.wall = time.Since(t0)
	res.requests, res.failed = srv.requests.Load(), srv.failed.Load()
	return res
}

// pair runs the two modes (no budget, the budget) at the same time, each
// against its own server made by mk.
func pair(p params, mk func() *server, outage time.Duration, common []string, budget string) (without, with result) {
	var wg sync.WaitGroup
	wg.Add(2)
	go func() {
		defer wg.Done()
		s := mk()
		defer s.Close()
		without = run(p, s, outage, common)
	}()
	go func() {
		defer wg.Done()
		s := mk()
		defer s.Close()
		with = run(p, s, outage, append(append([]string(nil), common...), "--retry-budget", budget))
	}()
	wg.Wait()
	for _, r := range []result{without, with} {
		if r.warnings > 0 {
			fmt.Fprintf(os.Stderr, "budget: %d invocations warned; the first:\n%s", r.warnings, r.firstWarn)
		}
	}
	return without, with
}

func codes(m map[int]int) string {
	var ks []int
	for k := range m {
		ks = append(ks, k)
	}
	sort.Ints(ks)
	var s []string
	for _, k := range ks {
		s = append(s, fmt.Sprintf("%d×%d", m[k], k))
	}
	return strings.Join(s, ", ")
}

func ratio(a int64, b int) string {
	if b == 0 {
		return "–"
	}
	return fmt.Sprintf("%.2f", float64(a)/float64(b))
}

func main() {
	var p params
	flag.StringVar(&p.bin, "refetch", "", "the refetch binary")
	flag.IntVar(&p.invocations, "invocations", 200, "invocations per mode")
	flag.IntVar(&p.parallel, "parallel", 8, "invocations at a time")
	flag.IntVar(&p.attempts, "attempts", 4, "-n of each invocation")
	outage := flag.Duration("outage", 60*time.Second, "how long the server answers 503 in the outage scenario")
	every := flag.Duration("every", 0, "one launch slot every this (default outage/150)")
	budget := flag.String("budget", "20%", "--retry-budget of the budget mode")
	runs := flag.Int("runs", 3, "runs of the random-503 scenario")
	fail := flag.Float64("fail", 0.10, "fraction of requests answered 503 in the random scenario")
	seed := flag.Int64("seed", 23, "seed of the first random run (run i: seed+i)")
	delays := flag.String("delays", "default,200ms", "--delay of each outage configuration (default: refetch's own)")
	breakers := flag.String("breaker", "off,on", "breaker of each outage configuration: off (--breaker-failures 0), on (the default)")
	only := flag.String("only", "", "run only this scenario: outage or random")
	flag.Parse()
	if p.bin == "" || flag.NArg() > 0 {
		fmt.Fprintln(os.Stderr, "usage: budget -refetch PATH [flags]")
		os.Exit(2)
	}
	p.every = *every
	if p.every == 0 {
		p.every = *outage / 150
	}

	if *only != "random" {
		fmt.Printf("### Outage: 503 for the first %v, then 200; %d invocations, %d at a time, `-n %d`, one launch slot every %v\n\n",
			*outage, p.invocations, p.parallel, p.attempts, p.every)
		fmt.Println("| `--delay` | breaker | `--retry-budget` | started in the outage | requests | requests ÷ invocations | 503s ÷ invocations started in the outage | successes | exit codes | wall |")
		fmt.Println("|---|---|---|---|---|---|---|---|---|---|")
		for _, d := range strings.Split(*delays, ",") {
			for _, b := range strings.Split(*breakers, ",") {
				var common []string
				if d != "default" {
					common = append(common, "--delay", d)
				}
				switch b {
				case "off":
					common = append(common, "--breaker-failures", "0")
				case "on":
				default:
					fatalf("-breaker: %q is neither off nor on", b)
				}
				mk := func() *server { return newServer(func(since time.Duration) bool { return since < *outage }) }
				without, with := pair(p, mk, *outage, common, *budget)
				for _, m := range []struct {
					name string
					r    result
				}{{"0 (off)", without}, {*budget, with}} {
					r := m.r
					fmt.Printf("| %s | %s | %s | %d | %d | **%s** | %s | %d | %s | %.0f s |\n",
						d, b, m.name, r.inOutage, r.requests, ratio(r.requests, r.invocations),
						ratio(r.failed, r.inOutage), r.codes[0], codes(r.codes), r.wall.Seconds())
				}
			}
		}
		fmt.Println()
	}

	if *only != "outage" {
		fmt.Printf("### Random 503s: %.0f%% of requests, no outage; %d invocations, %d at a time, `-n %d`, `--breaker-failures 0`, one launch slot every %v\n\n",
			*fail*100, p.invocations, p.parallel, p.attempts, p.every)
		fmt.Println("| run (seed) | `--retry-budget` | requests | requests ÷ invocations | 503s | successes | success rate | exit codes | wall |")
		fmt.Println("|---|---|---|---|---|---|---|---|---|")
		rates := [2][]float64{}
		per := [2][]float64{}
		for i := 0; i < *runs; i++ {
			s := *seed + int64(i)
			mk := func() *server {
				rng := rand.New(rand.NewSource(s))
				var mu sync.Mutex
				return newServer(func(time.Duration) bool {
					mu.Lock()
					defer mu.Unlock()
					return rng.Float64() < *fail
				})
			}
			without, with := pair(p, mk, 0, []string{"--breaker-failures", "0"}, *budget)
			for k, m := range []struct {
				name string
				r    result
			}{{"0 (off)", without}, {*budget, with}} {
				r := m.r
				rate := 100 * float64(r.codes[0]) / float64(r.invocations)
				rates[k] = append(rates[k], rate)
				per[k] = append(per[k], float64(r.requests)/float64(r.invocations))
				fmt.Printf("| %d (%d) | %s | %d | %s | %d | %d | %.1f%% | %s | %.0f s |\n",
					i+1, s, m.name, r.requests, ratio(r.requests, r.invocations), r.failed, r.codes[0], rate, codes(r.codes), r.wall.Seconds())
			}
		}
		for k, name := range []string{"0 (off)", *budget} {
			fmt.Printf("| median | %s | | %.2f | | | **%.1f%%** | | |\n", name, median(per[k]), median(rates[k]))
		}
		fmt.Println()
	}
}

func median(v []float64) float64 {
	s := append([]float64(nil), v...)
	sort.Float64s(s)
	if len(s)%2 == 0 {
		return (s[len(s)/2-1] + s[len(s)/2]) / 2
	}
	return s[len(s)/2]
}
