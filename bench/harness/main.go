//go:build unix

// Command harness measures refetch against curl on this machine,
// alternating the tools run by run so machine noise hits all alike. It
// serves the bodies itself on loopback and, given -nginx, measures the
// body-size rows against that independent server too, beside the physical
// floors: dd conv=fdatasync for -o, curl -o /dev/null (the download alone)
// plus cat FILE | cat (the pipe alone) for buffered stdout. It prints
// Markdown for bench/BENCHMARKS.md.
//
//	go run ./bench/harness -refetch ./refetch -curl /usr/bin/curl
//	go run ./bench/harness -mkfiles DIR    # write DIR/bytes/N for a static server
//	go run ./bench/harness ... -files DIR -nginx http://127.0.0.1:PORT
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

	"golang.org/x/sys/unix"
)

var (
	refetchBin = flag.String("refetch", "./refetch", "refetch binary")
	beforeBin  = flag.String("before", "", "another refetch binary (an earlier commit's) to alternate with, side by side, in the small fetch and the batch")
	curlBin    = flag.String("curl", "curl", "curl binary")
	runs       = flag.Int("runs", 60, "runs per tool for the small fetch")
	bigRuns    = flag.Int("big-runs", 5, "runs per tool for each large download")
	bigMiB     = flag.Int64("big", 512, "large download size in MiB")
	only       = flag.String("only", "", "run only these sections (comma list: small,big,rss,json,wait,breaker,batch)")
	nginxURL   = flag.String("nginx", "", "base URL of a static server serving the -files tree (bytes/N); its rows are measured too")
	filesDir   = flag.String("files", "", "directory holding bytes/N, the bodies the servers send (default: written to a temp dir)")
	mkfiles    = flag.String("mkfiles", "", "write DIR/bytes/N for the body sizes and exit")
	servers    = flag.String("servers", "", "measure against these servers only (comma list: harness,nginx; default both when -nginx is given)")
)

// sizes are the bodies the benchmark fetches: the small fetch, the RSS
// comparison and the large download.
func sizes() []int64 { return []int64{1 << 10, 16 << 20, *bigMiB << 20} }

func main() {
	if len(os.Args) > 2 && os.Args[1] == "-runner" {
		os.Exit(runner(os.Args[2:]))
	}
	if len(os.Args) == 3 && os.Args[1] == "-batch-floor" {
		os.Exit(batchFloor(os.Args[2]))
	}
	flag.Parse()
	srv := newServer()
	if *mkfiles != "" {
		check(srv.writeFiles(*mkfiles))
		return
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	check(err)
	go http.Serve(ln, srv)
	work, err := os.MkdirTemp("", "refetch-bench-*")
	check(err)
	defer os.RemoveAll(work)
	env := append(os.Environ(), "XDG_STATE_HOME="+filepath.Join(work, "state"), "XDG_CACHE_HOME="+filepath.Join(work, "cache"), "NO_COLOR=1")
	if *filesDir == "" {
		*filesDir = filepath.Join(work, "files")
		check(srv.writeFiles(*filesDir))
	}
	targets := []target{{"harness", "http://" + ln.Addr().String()}}
	if *nginxURL != "" {
		targets = append(targets, target{"nginx", strings.TrimRight(*nginxURL, "/")})
	}
	if *servers != "" {
		var keep []target
		for _, t := range targets {
			if strings.Contains(*servers, t.name) {
				keep = append(keep, t)
			}
		}
		targets = keep
	}
	base := targets[0].base
	if targets[0].name != "harness" {
		base = "http://" + ln.Addr().String()
	}

	want := func(s string) bool { return *only == "" || strings.Contains(*only, s) }
	fmt.Printf("refetch: %s\ncurl: %s\n", firstLine(*refetchBin, "version"), firstLine(*curlBin, "--version"))
	for _, t := range targets {
		fmt.Printf("server %s: %s (%s)\n", t.name, t.base, serverHeader(t.base+"/bytes/1024"))
	}
	fmt.Printf("load before: %s\n\n", loadavg())
	for _, t := range targets {
		if want("small") {
			small(t, env)
		}
		if want("big") {
			big(t, env, work)
		}
		if want("rss") {
			rss(t, env, work)
		}
	}
	if want("json") {
		jsonRSS(base, env)
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
	fmt.Printf("load after: %s\n", loadavg())
}

// target is a server the body-size rows are measured against.
type target struct{ name, base string }

func (t target) url(size int64) string { return fmt.Sprintf("%s/bytes/%d", t.base, size) }

// cmd is one measured command line: argv, where its stdout goes, and what
// to do, untimed, before each run.
type cmd struct {
	label  string
	argv   []string
	out    outKind
	before func()
}

// outKind is where a measured command's stdout goes.
type outKind int

const (
	// toDevNull: a real "> /dev/null", so no pipe sits between the tool
	// and nowhere.
	toDevNull outKind = iota
	// toCat: "| cat > /dev/null", a real reader at the other end of a
	// pipe; the time runs until both have exited.
	toCat
)

// run executes c once and returns its wall time and its own peak RSS (KiB):
// from the start of the measured process to the exit of the last process
// of the line (the reader's too, for "| cat").
//
// The measured process is started by a small runner (this program with
// -runner) rather than by the harness itself: Go starts children with
// vfork semantics, and Linux counts the peak RSS of the memory a process
// had before exec, so every child of a large process would report at
// least that process's RSS. The runner is small, and reports the child's
// own times and peak RSS.
func run(env []string, c cmd) (time.Duration, int64, error) {
	if c.before != nil {
		c.before()
	}
	null, err := os.OpenFile(os.DevNull, os.O_WRONLY, 0)
	if err != nil {
		return 0, 0, err
	}
	defer null.Close()
	self, err := os.Executable()
	if err != nil {
		return 0, 0, err
	}
	rr, rw, err := os.Pipe()
	if err != nil {
		return 0, 0, err
	}
	defer rr.Close()
	p := exec.Command(self, append([]string{"-runner"}, c.argv...)...)
	p.Env = env
	p.ExtraFiles = []*os.File{rw}
	var stderr bytes.Buffer
	p.Stderr = &stderr
	var reader *exec.Cmd
	var pr, pw *os.File
	switch c.out {
	case toDevNull:
		p.Stdout = null
	case toCat:
		if pr, pw, err = os.Pipe(); err != nil {
			return 0, 0, err
		}
		reader = exec.Command("cat")
		reader.Stdin, reader.Stdout, reader.Stderr = pr, null, &stderr
		p.Stdout = pw
	}
	if reader != nil {
		if err := reader.Start(); err != nil {
			return 0, 0, err
		}
		pr.Close()
	}
	err = p.Start()
	rw.Close()
	if pw != nil {
		pw.Close()
	}
	if err == nil {
		err = p.Wait()
	}
	end := monotonic()
	if reader != nil {
		if rerr := reader.Wait(); err == nil {
			err = rerr
		}
		end = monotonic()
	}
	var started, exited, rss int64
	if _, serr := fmt.Fscan(rr, &started, &exited, &rss); serr != nil && err == nil {
		err = fmt.Errorf("runner: %v", serr)
	}
	if err != nil {
		return 0, 0, fmt.Errorf("%v: %v: %s", c.argv, err, stderr.String())
	}
	if reader == nil {
		end = exited
	}
	return time.Duration(max(end, exited) - started), rss, nil
}

// monotonic reads CLOCK_MONOTONIC, which the runner reads too: Go's own
// monotonic clock counts from each process's start.
func monotonic() int64 {
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts); err != nil {
		panic(err)
	}
	return ts.Nano()
}

// runner runs argv with this process's stdio and environment and writes
// "started exited peak-RSS-KiB" (CLOCK_MONOTONIC ns) to descriptor 3; it
// exits as the child did.
func runner(argv []string) int {
	report := os.NewFile(3, "report")
	c := exec.Command(argv[0], argv[1:]...)
	c.Stdin, c.Stdout, c.Stderr = os.Stdin, os.Stdout, os.Stderr
	started := monotonic()
	err := c.Run()
	exited := monotonic()
	var rss int64
	if c.ProcessState != nil {
		if ru, ok := c.ProcessState.SysUsage().(*syscall.Rusage); ok {
			rss = ru.Maxrss
		}
	}
	fmt.Fprintln(report, started, exited, rss)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		if c.ProcessState != nil && c.ProcessState.ExitCode() > 0 {
			return c.ProcessState.ExitCode()
		}
		return 1
	}
	return 0
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

// sample is what the runs of one command measured.
type sample struct {
	times []time.Duration
	rss   []int64
}

func (s sample) t() time.Duration { return median(s.times) }
func (s sample) r() int64         { return medianInt(s.rss) }

// min is the fastest run: machine noise only ever adds time, so it shows
// what the machine can do when nothing else runs.
func (s sample) min() time.Duration {
	m := s.times[0]
	for _, t := range s.times {
		m = min(m, t)
	}
	return m
}

// alternate runs the commands n times each, one after the other, starting
// each round with the next command so that none is always first.
func alternate(n int, env []string, cmds ...cmd) []sample {
	out := make([]sample, len(cmds))
	for i := 0; i < n; i++ {
		for j := range cmds {
			k := (i + j) % len(cmds)
			t, r, err := run(env, cmds[k])
			check(err)
			out[k].times, out[k].rss = append(out[k].times, t), append(out[k].rss, r)
		}
	}
	return out
}

func ratio(a, b time.Duration) string { return fmt.Sprintf("%.2f", float64(a)/float64(b)) }

func small(t target, env []string) {
	url := t.url(1024)
	r := cmd{argv: []string{*refetchBin, "fetch", url}}
	c := cmd{argv: []string{*curlBin, "-sS", url}}
	cmds := []cmd{r, c}
	if *beforeBin != "" {
		cmds = append(cmds, cmd{argv: []string{*beforeBin, "fetch", url}})
	}
	// Warm up the page cache and the breaker file.
	for _, c := range cmds {
		run(env, c)
	}
	s := alternate(*runs, env, cmds...)
	fmt.Printf("## %s: 1 KiB fetch, whole process, breaker on (%d runs each, alternating)\n\n", t.name, *runs)
	fmt.Printf("| tool | median | peak RSS (median) |\n|---|---|---|\n")
	fmt.Printf("| refetch | %s | %d KiB |\n| curl | %s | %d KiB |\n", ms(s[0].t()), s[0].r(), ms(s[1].t()), s[1].r())
	if *beforeBin != "" {
		fmt.Printf("| refetch before (-before) | %s | %d KiB |\n\nrefetch / before: %s; before / curl: %s\n", ms(s[2].t()), s[2].r(), ratio(s[0].t(), s[2].t()), ratio(s[2].t(), s[1].t()))
	}
	fmt.Println()
	fmt.Printf("ratio refetch/curl: **%s** (target ≤ 0.75)\n\n", ratio(s[0].t(), s[1].t()))
}

func big(t target, env []string, work string) {
	size := *bigMiB << 20
	url := t.url(size)
	out := filepath.Join(work, "big.out")
	file := filepath.Join(*filesDir, "bytes", strconv.FormatInt(size, 10))
	warm(file)
	// Each -o run starts with no output file and nothing dirty on the disk,
	// so one run's writeback does not land in the next one's fsync.
	fresh := func() { os.Remove(out); exec.Command("sync").Run() }
	fmt.Printf("## %s: %d MiB download (%d runs each, alternating)\n\n", t.name, *bigMiB, *bigRuns)

	// -o against curl and the disk's own limit.
	dd := cmd{label: "dd", argv: []string{"dd", "if=/dev/zero", "of=" + out, "bs=1M", fmt.Sprintf("count=%d", *bigMiB), "conv=fdatasync", "status=none"}, before: fresh}
	s := alternate(*bigRuns, env,
		cmd{argv: []string{*refetchBin, "fetch", "-o", out, url}, before: fresh},
		cmd{argv: []string{*curlBin, "-sS", "-o", out, url}, before: fresh},
		dd)
	os.Remove(out)
	floor := max(s[1].t(), s[2].t())
	fmt.Printf("`-o FILE` (fsync and rename included; curl does not fsync):\n\n")
	fmt.Printf("| refetch | curl | dd conv=fdatasync | floor max(curl, dd) | refetch/curl | refetch/floor | refetch RSS | curl RSS |\n|---|---|---|---|---|---|---|---|\n")
	fmt.Printf("| %s | %s | %s | %s | %s | **%s** (target ≤ 1.1) | %d KiB | %d KiB |\n\n", ms(s[0].t()), ms(s[1].t()), ms(s[2].t()), ms(floor),
		ratio(s[0].t(), s[1].t()), ratio(s[0].t(), floor), s[0].r(), s[1].r())
	fmin := max(s[1].min(), s[2].min())
	fmt.Printf("Fastest runs (noise only adds time): refetch %s, curl %s, dd %s: refetch/floor %s\n\n",
		ms(s[0].min()), ms(s[1].min()), ms(s[2].min()), ratio(s[0].min(), fmin))

	// Buffered stdout into a pipe against curl and its floor: all-or-nothing
	// output cannot overlap the download with the reader, so the floor is the
	// download alone plus the pipe alone.
	s = alternate(*bigRuns, env,
		cmd{argv: []string{*refetchBin, "fetch", url}, out: toCat},
		cmd{argv: []string{*curlBin, "-sS", url}, out: toCat},
		cmd{argv: []string{*curlBin, "-sS", "-o", os.DevNull, url}},
		cmd{argv: []string{"cat", file}, out: toCat})
	floor = s[2].t() + s[3].t()
	fmt.Printf("Buffered stdout into a pipe (`| cat > /dev/null`):\n\n")
	fmt.Printf("| refetch | curl (streams) | download alone (curl -o /dev/null) | pipe alone (cat FILE \\| cat) | floor (sum) | refetch/curl | refetch/floor | refetch RSS | curl RSS |\n|---|---|---|---|---|---|---|---|---|\n")
	fmt.Printf("| %s | %s | %s | %s | %s | %s | **%s** (target ≤ 1.15) | %d KiB | %d KiB |\n\n", ms(s[0].t()), ms(s[1].t()), ms(s[2].t()), ms(s[3].t()), ms(floor),
		ratio(s[0].t(), s[1].t()), ratio(s[0].t(), floor), s[0].r(), s[1].r())
	fmin = s[2].min() + s[3].min()
	fmt.Printf("Fastest runs (noise only adds time): refetch %s, download alone %s, pipe alone %s: refetch/floor %s\n\n",
		ms(s[0].min()), ms(s[2].min()), ms(s[3].min()), ratio(s[0].min(), fmin))

	// The streaming modes against curl.
	fmt.Printf("| other modes | refetch | curl | ratio (time) | refetch RSS | curl RSS | ratio (RSS) |\n|---|---|---|---|---|---|---|\n")
	for _, m := range []struct {
		name string
		r, c cmd
	}{
		{"stdout into a pipe, -N", cmd{argv: []string{*refetchBin, "fetch", "-N", url}, out: toCat}, cmd{argv: []string{*curlBin, "-sS", url}, out: toCat}},
		{"stdout > /dev/null, -N", cmd{argv: []string{*refetchBin, "fetch", "-N", url}}, cmd{argv: []string{*curlBin, "-sS", url}}},
		{"stdout > /dev/null, buffered", cmd{argv: []string{*refetchBin, "fetch", url}}, cmd{argv: []string{*curlBin, "-sS", url}}},
	} {
		s := alternate(*bigRuns, env, m.r, m.c)
		fmt.Printf("| %s | %s | %s | **%s** | %d KiB | %d KiB | **%.2f** |\n", m.name, ms(s[0].t()), ms(s[1].t()),
			ratio(s[0].t(), s[1].t()), s[0].r(), s[1].r(), float64(s[0].r())/float64(s[1].r()))
	}
	fmt.Println()
}

// warm reads path once so the pipe floor measures a file in the page cache.
func warm(path string) {
	f, err := os.Open(path)
	check(err)
	defer f.Close()
	_, err = io.Copy(io.Discard, f)
	check(err)
}

func rss(t target, env []string, work string) {
	out := filepath.Join(work, "rss.out")
	fmt.Printf("## %s: peak RSS against body size (median of 3)\n\n| mode | 16 MiB | %d MiB |\n|---|---|---|\n", t.name, *bigMiB)
	for _, m := range []struct {
		name string
		c    func(url string) cmd
	}{
		{"refetch -o", func(u string) cmd { return cmd{argv: []string{*refetchBin, "fetch", "-o", out, u}} }},
		{"refetch -N (pipe)", func(u string) cmd { return cmd{argv: []string{*refetchBin, "fetch", "-N", u}, out: toCat} }},
		{"refetch buffered (pipe)", func(u string) cmd { return cmd{argv: []string{*refetchBin, "fetch", u}, out: toCat} }},
		{"curl -o", func(u string) cmd { return cmd{argv: []string{*curlBin, "-sS", "-o", out, u}} }},
		{"curl (pipe)", func(u string) cmd { return cmd{argv: []string{*curlBin, "-sS", u}, out: toCat} }},
	} {
		var cells []string
		for _, mib := range []int64{16, *bigMiB} {
			var rs []int64
			for i := 0; i < 3; i++ {
				_, r, err := run(env, m.c(t.url(mib<<20)))
				check(err)
				rs = append(rs, r)
			}
			cells = append(cells, fmt.Sprintf("%d KiB", medianInt(rs)))
		}
		fmt.Printf("| %s | %s |\n", m.name, strings.Join(cells, " | "))
	}
	os.Remove(out)
	fmt.Println()
}

// jsonRSS measures the peak RSS of --json against body size for a body of
// NUL bytes, each of which the report escapes to six bytes (issue 26's
// goal: 100 MB within 2x of 1 MB).
func jsonRSS(base string, env []string) {
	fmt.Printf("## refetch --json of NUL bytes: peak RSS and time (median of 3)\n\n| body | peak RSS | time |\n|---|---|---|\n")
	var first int64
	for _, size := range []int64{1e6, 100e6} {
		var rs []int64
		var ts []time.Duration
		for i := 0; i < 3; i++ {
			d, r, err := run(env, cmd{argv: []string{*refetchBin, "fetch", "--json", fmt.Sprintf("%s/zeros/%d", base, size)}, out: toCat})
			check(err)
			rs, ts = append(rs, r), append(ts, d)
		}
		r := medianInt(rs)
		if first == 0 {
			first = r
		}
		fmt.Printf("| %d MB | %d KiB (%.2fx of 1 MB) | %s |\n", size/1e6, r, float64(r)/float64(first), ms(median(ts)))
	}
	fmt.Println()
}

func waits(base string, env []string, srv *server) {
	fmt.Printf("## Wait accuracy (planned against actual, measured at the server)\n\n")
	// Ten 100 ms waits: 10 failures then a success.
	srv.reset()
	_, _, err := run(env, cmd{argv: []string{*refetchBin, "fetch", "-q", "-n", "11", "--delay", "100ms", "--multiplier", "1",
		"--jitter", "0", "--breaker-failures", "0", base + "/flaky?fail=10"}})
	check(err)
	gaps := srv.gaps()
	var errs []time.Duration
	for _, g := range gaps {
		errs = append(errs, g-100*time.Millisecond)
	}
	fmt.Printf("ten 100 ms waits: errors (actual − planned) %s; median %s, max %s (target ≤ 10 ms)\n\n",
		fmtDurs(errs), ms(median(errs)), ms(maxDur(errs)))
	srv.reset()
	_, _, err = run(env, cmd{argv: []string{*refetchBin, "fetch", "-q", "--delay", "10ms", "--breaker-failures", "0", base + "/limited"}})
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
				_, _, err := run(env, cmd{argv: append([]string{*refetchBin}, append(args, url)...)})
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
	case strings.HasPrefix(r.URL.Path, "/zeros/"):
		// NUL bytes: the worst case for --json, each escaped as \u0000.
		n, _ := strconv.ParseInt(strings.TrimPrefix(r.URL.Path, "/zeros/"), 10, 64)
		w.Header().Set("Content-Length", strconv.FormatInt(n, 10))
		zeros := make([]byte, 256<<10)
		for n > 0 {
			k := min(n, int64(len(zeros)))
			if _, err := w.Write(zeros[:k]); err != nil {
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

// writeFiles writes dir/bytes/N for every benchmark size, with the bytes
// the harness's own /bytes/N route sends, for a static server to serve.
func (s *server) writeFiles(dir string) error {
	if err := os.MkdirAll(filepath.Join(dir, "bytes"), 0o755); err != nil {
		return err
	}
	for _, n := range sizes() {
		path := filepath.Join(dir, "bytes", strconv.FormatInt(n, 10))
		if st, err := os.Stat(path); err == nil && st.Size() == n {
			continue
		}
		f, err := os.Create(path)
		if err != nil {
			return err
		}
		for left := n; left > 0; {
			k := min(left, int64(len(s.buf)))
			if _, err := f.Write(s.buf[:k]); err != nil {
				f.Close()
				return err
			}
			left -= k
		}
		if err := f.Close(); err != nil {
			return err
		}
	}
	return nil
}

// serverHeader is the Server header url answers with ("Go" when none).
func serverHeader(url string) string {
	resp, err := http.Get(url)
	check(err)
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if v := resp.Header.Get("Server"); v != "" {
		return v
	}
	return "Go net/http"
}

// loadavg is the machine's load (1, 5, 15 minutes) from /proc/loadavg.
func loadavg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "unknown"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "unknown"
	}
	return strings.Join(f[:3], " ")
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
