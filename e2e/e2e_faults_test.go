package e2e

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// rawServer answers every connection with fn, for faults net/http will
// not produce (lying lengths, broken status lines, HTTP/1.0 bodies).
func rawServer(t *testing.T, fn func(conn net.Conn)) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer conn.Close()
				bufio.NewReader(conn).ReadString('\n') // the request line is enough
				fn(conn)
			}()
		}
	}()
	return "http://" + ln.Addr().String()
}

func TestE2EServerFaults(t *testing.T) {
	t.Parallel()
	e := newEnv(t).with("REFETCH_BREAKER_FAILURES=0")
	for _, tc := range []struct {
		name   string
		fn     func(conn net.Conn)
		args   []string
		code   int
		stderr string
	}{
		{"content-length longer than the body", func(c net.Conn) {
			io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nonly this")
		}, nil, 4, "the server closed the connection after 9 B of 100 B"},
		{"connection reset mid-body", func(c net.Conn) {
			io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\npartial")
			c.(*net.TCPConn).SetLinger(0) // RST instead of FIN
		}, nil, 4, "attempt 1/3"},
		{"stalled headers", func(c net.Conn) {
			io.WriteString(c, "HTTP/1.1 200 OK\r\n")
			time.Sleep(3 * time.Second)
		}, []string{"--timeout", "100ms"}, 4, "timed out"},
		{"invalid status line", func(c net.Conn) {
			io.WriteString(c, "HTTP/1.1 abc Broken\r\n\r\n")
		}, nil, 4, "malformed HTTP status code"},
		{"huge headers", func(c net.Conn) {
			io.WriteString(c, "HTTP/1.1 200 OK\r\n")
			for i := 0; i < 20000; i++ {
				fmt.Fprintf(c, "X-Filler-%d: %s\r\n", i, strings.Repeat("y", 100))
			}
			io.WriteString(c, "\r\nbody")
		}, nil, 3, "response headers exceed 1 MiB"}, // permanent: not retried, not counted
		{"HTTP/1.0 without a length", func(c net.Conn) {
			io.WriteString(c, "HTTP/1.0 200 OK\r\n\r\nread until close")
		}, nil, 0, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			url := rawServer(t, tc.fn)
			r := e.run(args(append(tc.args, url)...)...)
			r.wantCode(t, tc.code)
			if tc.code == 3 && strings.Contains(r.stderr, "attempt 1/") {
				t.Errorf("a permanent failure was retried:\n%s", r.stderr)
			}
			if !strings.Contains(r.stderr, tc.stderr) || strings.Contains(r.stderr, "panic") {
				t.Errorf("stderr lacks %q:\n%s", tc.stderr, r.stderr)
			}
			if tc.code != 0 && r.stdout != "" {
				t.Errorf("stdout = %q", r.stdout)
			}
			if tc.code == 0 && r.stdout != "read until close" {
				t.Errorf("stdout = %q", r.stdout)
			}
		})
	}
}

func TestE2EEndlessBodyAndGzipBombBounded(t *testing.T) {
	t.Parallel()
	var bomb bytes.Buffer
	zw := gzip.NewWriter(&bomb)
	zw.Write(make([]byte, 64<<20)) // 64 MiB of zeros, ~64 KiB compressed
	zw.Close()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/bomb" {
			w.Header().Set("Content-Encoding", "gzip")
			w.Write(bomb.Bytes())
			return
		}
		buf := make([]byte, 32<<10)
		for {
			if _, err := w.Write(buf); err != nil {
				return
			}
		}
	}))
	defer srv.Close()
	e := newEnv(t)
	for _, path := range []string{"/endless", "/bomb"} {
		r := e.run(args("--max-size", "1M", srv.URL+path)...)
		r.wantCode(t, 3)
		if r.stdout != "" || !strings.Contains(r.stderr, "max-size") {
			t.Errorf("%s: stdout %d bytes, stderr:\n%s", path, len(r.stdout), r.stderr)
		}
	}
}

func TestE2ERedirectToAnotherHostDropsCredentials(t *testing.T) {
	t.Parallel()
	var got http.Header
	other := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got = r.Header.Clone()
		fmt.Fprint(w, "elsewhere")
	}))
	defer other.Close()
	// Another host: 127.0.0.1 vs localhost.
	target := strings.Replace(other.URL, "127.0.0.1", "localhost", 1)
	first := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, target+"/landing", http.StatusFound)
	}))
	defer first.Close()
	r := newEnv(t).run(args("-H", "Authorization: Bearer secret-token", "-H", "Cookie: sid=secret-cookie",
		"-u", "user:secret-pass", first.URL)...)
	r.wantCode(t, 0)
	if r.stdout != "elsewhere" {
		t.Fatalf("stdout = %q", r.stdout)
	}
	for _, h := range []string{"Authorization", "Cookie"} {
		if v := got.Get(h); v != "" {
			t.Errorf("%s forwarded to another host: %q", h, v)
		}
	}
}

func TestE2EStdoutClosedEarly(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Write(bytes.Repeat([]byte("z"), 8<<20))
	}))
	defer srv.Close()
	e := newEnv(t)
	for _, extra := range [][]string{nil, {"-N"}} {
		shArgs := append([]string{"-c", `"$0" fetch "$@" | head -c1`, binary}, extra...)
		cmd := exec.Command("sh", append(shArgs, srv.URL)...)
		cmd.Env = e.vars
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		if err != nil || string(out) != "z" || stderr.Len() != 0 {
			t.Errorf("%v: out %q, err %v, stderr %q", extra, out, err, stderr.String())
		}
	}
}

func TestE2EUserAgentRemoved(t *testing.T) {
	t.Parallel()
	var ua []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { ua = r.Header.Values("User-Agent") }))
	defer srv.Close()
	newEnv(t).run(args("-H", "User-Agent:", srv.URL)...).wantCode(t, 0)
	if len(ua) != 0 {
		t.Errorf("User-Agent sent: %q", ua)
	}
}
