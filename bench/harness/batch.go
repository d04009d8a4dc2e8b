//go:build unix

package main

import (
	"bytes"
	"crypto/rand"
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"syscall"
	"time"
)

var (
	batchRuns  = flag.Int("batch-runs", 7, "runs per tool for the batch (1,000 files)")
	batchFiles = flag.Int("batch-files", 1000, "files of 1 KiB served by nginx for the batch")
	nginxBin   = flag.String("nginx-bin", "", "nginx binary for the batch (default: nginx in PATH or /usr/sbin/nginx)")
)

// batchBench fetches 1,000 files of 1 KiB from nginx on loopback with
// refetch's batch mode, curl --parallel, xargs -P 8 curl and the floor of
// the work in Go (batchFloor), alternating them round by round (the order
// rotates), and prints the medians.
func batchBench(env []string) {
	bin := *nginxBin
	if bin == "" {
		bin = "/usr/sbin/nginx"
		if p, err := exec.LookPath("nginx"); err == nil {
			bin = p
		}
	}
	if _, err := os.Stat(bin); err != nil {
		fmt.Printf("## Batch\n\nskipped: no nginx (apt-get install nginx-light)\n\n")
		return
	}
	// Its own dir, readable by nginx's worker (which drops root for an
	// unprivileged user).
	dir, err := os.MkdirTemp("", "refetch-bench-batch-*")
	check(err)
	defer os.RemoveAll(dir)
	atExit = append(atExit, func() { os.RemoveAll(dir) })
	check(os.Chmod(dir, 0o755))
	www := filepath.Join(dir, "www")
	check(os.MkdirAll(www, 0o755))
	check(os.MkdirAll(filepath.Join(dir, "tmp"), 0o755))
	port := freePort()
	stop := startNginx(bin, dir, port)
	defer stop()
	// A failure exits through check: nginx must not outlive the harness.
	atExit = append([]func(){stop}, atExit...)

	base := fmt.Sprintf("http://127.0.0.1:%d", port)
	var urls, curlConf bytes.Buffer
	body := make([]byte, 1024)
	for i := 1; i <= *batchFiles; i++ {
		rand.Read(body)
		name := fmt.Sprintf("f%d.bin", i)
		check(os.WriteFile(filepath.Join(www, name), body, 0o644))
		fmt.Fprintf(&urls, "%s/%s\n", base, name)
		fmt.Fprintf(&curlConf, "url = \"%s/%s\"\noutput = \"%s\"\n", base, name, name)
	}
	urlFile, confFile := filepath.Join(dir, "urls"), filepath.Join(dir, "curl.conf")
	self, err := os.Executable()
	check(err)
	check(os.WriteFile(urlFile, urls.Bytes(), 0o644))
	check(os.WriteFile(confFile, curlConf.Bytes(), 0o644))

	type tool struct {
		name  string
		args  []string
		stdin string // a file given as stdin
		// inRun: it writes out/{name} from the run's directory (refetch);
		// the others write into the current directory, out.
		inRun bool
		times []time.Duration
		cpu   []time.Duration
		rss   []int64
	}
	tools := []*tool{
		{name: "refetch fetch -P 8 -i urls -o 'out/{name}'", inRun: true,
			args: []string{*refetchBin, "fetch", "-q", "-P", "8", "-i", urlFile, "-o", "out/{name}"}},
		{name: "curl --parallel --parallel-max 8 -K config",
			args: []string{*curlBin, "-s", "--parallel", "--parallel-max", "8", "-K", confFile}},
		{name: "xargs -P 8 -I{} curl -s -O {}",
			args: []string{"xargs", "-P", "8", "-I{}", *curlBin, "-s", "-O", "{}"}, stdin: urlFile},
		{name: "floor: 8 goroutines, net/http, temp file + rename, one syncfs",
			args: []string{self, "-batch-floor", urlFile}},
	}
	if *beforeBin != "" {
		tools = append(tools, &tool{name: "refetch before (-before), same command", inRun: true,
			args: []string{*beforeBin, "fetch", "-q", "-P", "8", "-i", urlFile, "-o", "out/{name}"}})
	}
	// Every run writes into a directory of its own, made just before it,
	// as a download into a new directory would; they are all removed at
	// the end. (Emptying one directory between runs instead measures
	// mostly ext4 skipping the inodes freed in the last 30 seconds, which
	// every tool pays alike.)
	runs := filepath.Join(dir, "runs")
	for round := 0; round < *batchRuns; round++ {
		for k := range tools {
			i := (round + k) % len(tools)
			t := tools[i]
			run := filepath.Join(runs, fmt.Sprintf("%d-%d", round, i))
			out := filepath.Join(run, "out")
			check(os.MkdirAll(out, 0o755))
			// refetch writes out/{name} from the run's directory; curl
			// and xargs write into the current directory: out.
			cwd := out
			if t.inRun {
				cwd = run
			}
			took, cpu, rss := runIn(env, cwd, t.stdin, t.args)
			entries, err := os.ReadDir(out)
			check(err)
			if len(entries) != *batchFiles {
				check(fmt.Errorf("%s wrote %d files, want %d", t.name, len(entries), *batchFiles))
			}
			t.times, t.cpu, t.rss = append(t.times, took), append(t.cpu, cpu), append(t.rss, rss)
		}
	}
	r, c, x, fl := median(tools[0].times), median(tools[1].times), median(tools[2].times), median(tools[3].times)
	fmt.Printf("## Batch: %d files of 1 KiB from nginx on loopback (%d runs each, alternating)\n\n", *batchFiles, *batchRuns)
	fmt.Printf("| command | median | CPU, user + sys (median) | peak RSS (median) |\n|---|---|---|---|\n")
	for _, t := range tools {
		fmt.Printf("| `%s` | %s | %s | %d KiB |\n", t.name, ms(median(t.times)), ms(median(t.cpu)), medianInt(t.rss))
	}
	fmt.Printf("\nrefetch / curl --parallel: **%.2f** (target ≤ 1.0, stretch 0.5); median of the rounds' own ratios: %.2f\n",
		float64(r)/float64(c), pairedRatio(tools[0].times, tools[1].times))
	fmt.Printf("refetch / xargs + curl: **%.3f** (target ≤ 0.25); median of the rounds' own ratios: %.3f\n\n",
		float64(r)/float64(x), pairedRatio(tools[0].times, tools[2].times))
	fmt.Printf("refetch / floor: **%.2f**; floor / curl --parallel: %.2f (the floor is the work refetch promises, durable files, done by the least Go program)\n\n",
		float64(r)/float64(fl), float64(fl)/float64(c))
	if *beforeBin != "" {
		fmt.Printf("refetch / before: **%.2f**; before / curl --parallel: %.2f\n\n",
			float64(r)/float64(median(tools[4].times)), float64(median(tools[4].times))/float64(c))
	}
	fmt.Printf("all runs (ms): refetch %s; curl %s; xargs %s; floor %s\n\n", fmtDurs(tools[0].times), fmtDurs(tools[1].times), fmtDurs(tools[2].times), fmtDurs(tools[3].times))
}

// pairedRatio is the median of a[i]/b[i]: the tools of one round ran back
// to back, under the same load, so their ratio moves less than the medians.
func pairedRatio(a, b []time.Duration) float64 {
	var rs []time.Duration // ratios scaled by 1e6, to reuse median
	for i := range a {
		rs = append(rs, time.Duration(float64(a[i])/float64(b[i])*1e6))
	}
	return float64(median(rs)) / 1e6
}

// runIn runs args in dir with stdin from a file ("" for none) and returns
// the wall time, the CPU time (user and system, children included: xargs's
// curls) and the peak RSS (KiB).
func runIn(env []string, dir, stdin string, args []string) (time.Duration, time.Duration, int64) {
	cmd := exec.Command(args[0], args[1:]...)
	cmd.Env, cmd.Dir = env, dir
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if stdin != "" {
		f, err := os.Open(stdin)
		check(err)
		defer f.Close()
		cmd.Stdin = f
	}
	start := time.Now()
	err := cmd.Run()
	took := time.Since(start)
	if err != nil {
		check(fmt.Errorf("%v: %v: %s", args, err, stderr.String()))
	}
	var rss int64
	if ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage); ok {
		rss = ru.Maxrss
	}
	return took, cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime(), rss
}

func freePort() int {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	check(err)
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	return port
}

// startNginx runs nginx in the foreground with its own config, pid and
// logs under dir (no daemon, nothing outside dir), serving dir/www on
// port; the returned function stops it.
func startNginx(bin, dir string, port int) func() {
	conf := fmt.Sprintf(`worker_processes 1;
daemon off;
pid %[1]s/nginx.pid;
error_log %[1]s/error.log;
events { worker_connections 1024; }
http {
    access_log off;
    client_body_temp_path %[1]s/tmp;
    proxy_temp_path %[1]s/tmp;
    fastcgi_temp_path %[1]s/tmp;
    uwsgi_temp_path %[1]s/tmp;
    scgi_temp_path %[1]s/tmp;
    keepalive_requests 100000;
    server {
        listen 127.0.0.1:%[2]d backlog=4096;
        root %[1]s/www;
    }
}
`, dir, port)
	confFile := filepath.Join(dir, "nginx.conf")
	check(os.WriteFile(confFile, []byte(conf), 0o644))
	cmd := exec.Command(bin, "-c", confFile, "-p", dir, "-e", filepath.Join(dir, "error.log"))
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	check(cmd.Start())
	url := fmt.Sprintf("http://127.0.0.1:%d/", port)
	deadline := time.Now().Add(10 * time.Second)
	for {
		resp, err := http.Get(url)
		if err == nil {
			resp.Body.Close()
			break
		}
		if time.Now().After(deadline) {
			cmd.Process.Kill()
			cmd.Wait()
			check(fmt.Errorf("nginx did not start: %v: %s", err, stderr.String()))
		}
		time.Sleep(20 * time.Millisecond)
	}
	var once sync.Once
	return func() {
		once.Do(func() {
			cmd.Process.Signal(syscall.SIGQUIT) // graceful: the master stops its worker
			done := make(chan struct{})
			go func() { cmd.Wait(); close(done) }()
			select {
			case <-done:
			case <-time.After(5 * time.Second):
				cmd.Process.Kill()
				<-done
			}
		})
	}
}
