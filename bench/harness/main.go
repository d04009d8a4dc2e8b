//go:build unix

// Command harness measures refetch against curl on this machine, against
// one loopback server it runs itself, alternating the two tools run by run
// so machine noise hits both alike. It prints Markdown for BENCHMARKS.md.
//
//	go run ./bench/harness -refetch ./refetch -curl /usr/bin/curl
package main

import (
	"bytes"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

var (
	refetchBin = flag.String("refetch", "./refetch", "refetch binary")
	curlBin    = flag.String("curl", "curl", "curl binary")
	runs       = flag.Int("runs", 60, "runs per tool for the small fetch")
	bigRuns    = flag.Int("big-runs", 5, "runs per tool for each large download")
	bigMiB     = flag.Int64("big", 512, "large download size in MiB")
	only       = flag.String("only", "", "run only these sections (comma list: small,big,rss,wait,breaker,batch)")
)

func main() {
	flag.Parse()
	srv := newServer()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	check(err)
	go http.Serve(ln, srv)
	base := "http://" + ln.Addr().String()
	work, err := os.MkdirTemp("", "refetch-bench-*")
	check(err)
	defer os.RemoveAll(work)
	env := append(os.Environ(), "XDG_STATE_HOME="+filepath.Join(work, "state"), "XDG_CACHE_HOME="+filepath.Join(work, "cache"), "NO_COLOR=1")

	want := func(s string) bool { return *only == "" || strings.Contains(*only, s) }
	fmt.Printf("refetch: %s\ncurl: %s\n\n", firstLine(*refetchBin, "version"), firstLine(*curlBin, "--version"))
	if want("small") {
		small(base, env)
	}
	if want("big") {
		big(base, env, work)
	}
	if want("rss") {
		rss(base, env, work)
	}
	if want("wait") {
		waits(base, env, srv)
	}
	if want("breaker") {
		breaker(base, env)
	}
	if want("batch") {
		batchBench(env)
	}
}

// run executes one command and returns its wall time and peak RSS (KiB).
func run(env []string, stdout io.Writer, name string, args ...string) (time.Duration, int64, error) {
	cmd := exec.Command(name, args...)
	cmd.Env = env
	cmd.Stdout = stdout
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	start := time.Now()
	err := cmd.Run()
	took := time.Since(start)
	var rss int64
	if ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage); ok {
		rss = ru.Maxrss
	}
	if err != nil {
		err = fmt.Errorf("%s %v: %v: %s", name, args, err, stderr.String())
	}
	return took, rss, err
}

func median(ds []time.Duration) time.Duration {
	s := append([]time.Duration(nil), ds...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	return s[len(s)/2]
}

func medianInt(xs []int64) int64 {
	s := append([]int64(nil), xs...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	return s[len(s)/2]
}

func ms(d time.Duration) string { return fmt.Sprintf("%.2f ms", float64(d)/float64(time.Millisecond)) }

// pair alternates two commands n times and returns their medians.
type sample struct {
	times []time.Duration
	rss   []int64
}

func alternate(n int, env []string, a, b []string, sink func() io.Writer) (sa, sb sample) {
	for i := 0; i < n; i++ {
		order := [][]string{a, b}
		if i%2 == 1 {
			order = [][]string{b, a}
		}
		for _, c := range order {
			w := sink()
			t, r, err := run(env, w, c[0], c[1:]...)
			check(err)
			if cl, ok := w.(io.Closer); ok {
				cl.Close()
			}
			if &c[0] == &a[0] {
				sa.times, sa.rss = append(sa.times, t), append(sa.rss, r)
			} else {
				sb.times, sb.rss = append(sb.times, t), append(sb.rss, r)
			}
		}
	}
	return sa, sb
}

// devnull is where stdout goes, as with "> /dev/null" in a shell: a real
// file, so no pipe or copying goroutine sits between the tool and nowhere.
func devnull() io.Writer {
	f, err := os.OpenFile(os.DevNull, os.O_WRONLY, 0)
	check(err)
	return f
}

func small(base string, env []string) {
	url := base + "/bytes/1024"
	r := []string{*refetchBin, "fetch", url}
	c := []string{*curlBin, "-sS", url}
	// Warm up the page cache and the breaker file.
	run(env, io.Discard, r[0], r[1:]...)
	run(env, io.Discard, c[0], c[1:]...)
	sr, sc := alternate(*runs, env, r, c, devnull)
	mr, mc := median(sr.times), median(sc.times)
	fmt.Printf("## 1 KiB fetch, whole process, breaker on (%d runs each, alternating)\n\n", *runs)
	fmt.Printf("| tool | median | peak RSS (median) |\n|---|---|---|\n")
	fmt.Printf("| refetch | %s | %d KiB |\n| curl | %s | %d KiB |\n\n", ms(mr), medianInt(sr.rss), ms(mc), medianInt(sc.rss))
	fmt.Printf("ratio refetch/curl: **%.2f** (target ≤ 0.75)\n\n", float64(mr)/float64(mc))
}

func big(base string, env []string, work string) {
	size := *bigMiB << 20
	url := fmt.Sprintf("%s/bytes/%d", base, size)
	out := filepath.Join(work, "big.out")
	fmt.Printf("## %d MiB download (%d runs each, alternating)\n\n", *bigMiB, *bigRuns)
	fmt.Printf("| mode | refetch | curl | ratio (time) | refetch RSS | curl RSS | ratio (RSS) |\n|---|---|---|---|---|---|---|\n")
	pipe := func() io.Writer { return io.Discard } // exec copies through a pipe
	for _, m := range []struct {
		name string
		r, c []string
		sink func() io.Writer
	}{
		{"-o FILE", []string{*refetchBin, "fetch", "-o", out, url}, []string{*curlBin, "-sS", "-o", out, url}, devnull},
		{"stdout > /dev/null, -N", []string{*refetchBin, "fetch", "-N", url}, []string{*curlBin, "-sS", url}, devnull},
		{"stdout > /dev/null, buffered", []string{*refetchBin, "fetch", url}, []string{*curlBin, "-sS", url}, devnull},
		{"stdout into a pipe, -N", []string{*refetchBin, "fetch", "-N", url}, []string{*curlBin, "-sS", url}, pipe},
		{"stdout into a pipe, buffered", []string{*refetchBin, "fetch", url}, []string{*curlBin, "-sS", url}, pipe},
	} {
		sr, sc := alternate(*bigRuns, env, m.r, m.c, m.sink)
		mr, mc := median(sr.times), median(sc.times)
		rr, rc := medianInt(sr.rss), medianInt(sc.rss)
		fmt.Printf("| %s | %s | %s | **%.2f** | %d KiB | %d KiB | **%.2f** |\n", m.name, ms(mr), ms(mc),
			float64(mr)/float64(mc), rr, rc, float64(rr)/float64(rc))
		os.Remove(out)
	}
	fmt.Println()
}

func rss(base string, env []string, work string) {
	out := filepath.Join(work, "rss.out")
	fmt.Printf("## Peak RSS against body size (median of 3)\n\n| mode | 16 MiB | %d MiB |\n|---|---|---|\n", *bigMiB)
	for _, m := range []struct {
		name string
		args func(url string) []string
	}{
		{"refetch -o", func(u string) []string { return []string{*refetchBin, "fetch", "-o", out, u} }},
		{"refetch -N", func(u string) []string { return []string{*refetchBin, "fetch", "-N", u} }},
		{"refetch buffered", func(u string) []string { return []string{*refetchBin, "fetch", u} }},
		{"curl -o", func(u string) []string { return []string{*curlBin, "-sS", "-o", out, u} }},
	} {
		var cells []string
		for _, mib := range []int64{16, *bigMiB} {
			url := fmt.Sprintf("%s/bytes/%d", base, mib<<20)
			var rs []int64
			for i := 0; i < 3; i++ {
				a := m.args(url)
				_, r, err := run(env, io.Discard, a[0], a[1:]...) // a pipe: the buffered path really buffers
				check(err)
				rs = append(rs, r)
			}
			cells = append(cells, fmt.Sprintf("%d KiB", medianInt(rs)))
		}
		fmt.Printf("| %s | %s |\n", m.name, strings.Join(cells, " | "))
	}
	fmt.Println()
}

func waits(base string, env []string, srv *server) {
	fmt.Printf("## Wait accuracy (planned against actual, measured at the server)\n\n")
	// Ten 100 ms waits: 10 failures then a success.
	srv.reset()
	_, _, err := run(env, io.Discard, *refetchBin, "fetch", "-q", "-n", "11", "--delay", "100ms", "--multiplier", "1",
		"--jitter", "0", "--breaker-failures", "0", base+"/flaky?fail=10")
	check(err)
	gaps := srv.gaps()
	var errs []time.Duration
	for _, g := range gaps {
		errs = append(errs, g-100*time.Millisecond)
	}
	fmt.Printf("ten 100 ms waits: errors (actual − planned) %s; median %s, max %s (target ≤ 10 ms)\n\n",
		fmtDurs(errs), ms(median(errs)), ms(maxDur(errs)))
	srv.reset()
	_, _, err = run(env, io.Discard, *refetchBin, "fetch", "-q", "--delay", "10ms", "--breaker-failures", "0", base+"/limited")
	check(err)
	gaps = srv.gaps()
	if len(gaps) == 1 {
		fmt.Printf("Retry-After: 1 → actual wait %s, error %s (target ≤ 10 ms)\n\n", ms(gaps[0]), ms(gaps[0]-time.Second))
	}
}

func fmtDurs(ds []time.Duration) string {
	var s []string
	for _, d := range ds {
		s = append(s, strconv.FormatFloat(float64(d)/float64(time.Millisecond), 'f', 2, 64))
	}
	return "[" + strings.Join(s, ", ") + "] ms"
}

func maxDur(ds []time.Duration) time.Duration {
	m := ds[0]
	for _, d := range ds {
		if d > m {
			m = d
		}
	}
	return m
}

func breaker(base string, env []string) {
	const procs = 50
	url := base + "/bytes/1024"
	batch := func(extra ...string) time.Duration {
		start := time.Now()
		var wg sync.WaitGroup
		for i := 0; i < procs; i++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				args := append([]string{"fetch", "--breaker-key", "bench-shared"}, extra...)
				_, _, err := run(env, io.Discard, *refetchBin, append(args, url)...)
				check(err)
			}()
		}
		wg.Wait()
		return time.Since(start)
	}
	var on, off []time.Duration
	for i := 0; i < 10; i++ {
		if i%2 == 0 {
			on, off = append(on, batch()), append(off, batch("--breaker-failures", "0"))
		} else {
			off, on = append(off, batch("--breaker-failures", "0")), append(on, batch())
		}
	}
	mOn, mOff := median(on), median(off)
	fmt.Printf("## %d concurrent runs on one breaker key (10 rounds, alternating)\n\n", procs)
	fmt.Printf("| breaker | total (median) |\n|---|---|\n| on | %s |\n| off | %s |\n\n", ms(mOn), ms(mOff))
	fmt.Printf("cost per run: (on − off) / %d = **%s** (target ≤ 1 ms)\n\n", procs, ms((mOn-mOff)/procs))
}

// server is the loopback server of the harness.
type server struct {
	mu    sync.Mutex
	hits  int
	times [][2]time.Time // request arrival, response end
	buf   []byte
}

func newServer() *server {
	s := &server{buf: make([]byte, 256<<10)}
	for i := range s.buf {
		s.buf[i] = byte(i)
	}
	return s
}

func (s *server) reset() {
	s.mu.Lock()
	s.hits, s.times = 0, nil
	s.mu.Unlock()
}

// gaps returns, for each retry, the time from the end of one response to
// the arrival of the next request: the client's actual wait.
func (s *server) gaps() []time.Duration {
	s.mu.Lock()
	defer s.mu.Unlock()
	var g []time.Duration
	for i := 1; i < len(s.times); i++ {
		g = append(g, s.times[i][0].Sub(s.times[i-1][1]))
	}
	return g
}

func (s *server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	arrived := time.Now()
	switch {
	case strings.HasPrefix(r.URL.Path, "/bytes/"):
		n, _ := strconv.ParseInt(strings.TrimPrefix(r.URL.Path, "/bytes/"), 10, 64)
		w.Header().Set("Content-Length", strconv.FormatInt(n, 10))
		for n > 0 {
			k := min(n, int64(len(s.buf)))
			if _, err := w.Write(s.buf[:k]); err != nil {
				return
			}
			n -= k
		}
		return
	case r.URL.Path == "/flaky":
		fail, _ := strconv.Atoi(r.URL.Query().Get("fail"))
		s.mu.Lock()
		s.hits++
		hit := s.hits
		s.mu.Unlock()
		if hit <= fail {
			w.WriteHeader(http.StatusServiceUnavailable)
		} else {
			io.WriteString(w, "ok")
		}
	case r.URL.Path == "/limited":
		s.mu.Lock()
		s.hits++
		hit := s.hits
		s.mu.Unlock()
		if hit == 1 {
			w.Header().Set("Retry-After", "1")
			w.WriteHeader(http.StatusTooManyRequests)
		} else {
			io.WriteString(w, "ok")
		}
	}
	if f, ok := w.(http.Flusher); ok {
		f.Flush()
	}
	s.mu.Lock()
	s.times = append(s.times, [2]time.Time{arrived, time.Now()})
	s.mu.Unlock()
}

func firstLine(name string, args ...string) string {
	out, err := exec.Command(name, args...).Output()
	if err != nil {
		return "unknown"
	}
	line, _, _ := strings.Cut(string(out), "\n")
	return line
}

// atExit is run by check before it exits, so that a failed run leaves no
// server of its own behind.
var atExit []func()

func check(err error) {
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		for _, f := range atExit {
			f()
		}
		os.Exit(1)
	}
}
