package cmd

import (
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"
)

// demoRoute is one misbehaviour of the demo server.
type demoRoute struct {
	path, what string
}

var demoRoutes = []demoRoute{
	{"/ok", "200 with a small JSON body"},
	{"/flaky", "503 twice, then 200 (the cycle repeats)"},
	{"/limited", "429 with Retry-After: 1, then 200 (the cycle repeats)"},
	{"/dead", "always 503"},
	{"/drop", "drops the connection once, then 200 (the cycle repeats)"},
	{"/stall", "sends half the body, then stalls for a minute"},
	{"/redirect-loop", "redirects to itself forever"},
	{"/status/CODE", "answers with CODE, e.g. /status/404"},
	{"/bytes/N", "N bytes of binary data"},
}

// demoHandler is the misbehaving server of `refetch demo`. Cycles count per
// path, so every route can be tried again from the start of its story.
func demoHandler() http.Handler {
	var mu sync.Mutex
	hits := map[string]int{}
	next := func(path string, cycle int) int {
		mu.Lock()
		defer mu.Unlock()
		n := hits[path]%cycle + 1
		hits[path]++
		return n
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/ok", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprintln(w, `{"items":["apple","pear"],"source":"demo"}`)
	})
	mux.HandleFunc("/flaky", func(w http.ResponseWriter, r *http.Request) {
		if next("/flaky", 3) <= 2 {
			http.Error(w, "temporarily overloaded", http.StatusServiceUnavailable)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprintln(w, `{"items":["apple","pear"],"source":"flaky"}`)
	})
	mux.HandleFunc("/limited", func(w http.ResponseWriter, r *http.Request) {
		if next("/limited", 2) == 1 {
			w.Header().Set("Retry-After", "1")
			http.Error(w, "slow down", http.StatusTooManyRequests)
			return
		}
		fmt.Fprintln(w, `{"quota":"ok"}`)
	})
	mux.HandleFunc("/dead", func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "this service is down", http.StatusServiceUnavailable)
	})
	mux.HandleFunc("/drop", func(w http.ResponseWriter, r *http.Request) {
		if next("/drop", 2) == 1 {
			if conn, _, err := w.(http.Hijacker).Hijack(); err == nil {
				conn.Close()
				return
			}
		}
		fmt.Fprintln(w, "made it")
	})
	mux.HandleFunc("/stall", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", "64")
		fmt.Fprint(w, strings.Repeat("x", 32))
		w.(http.Flusher).Flush()
		select {
		case <-r.Context().Done():
		case <-time.After(time.Minute):
		}
	})
	mux.HandleFunc("/redirect-loop", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "/redirect-loop", http.StatusFound)
	})
	mux.HandleFunc("/status/", func(w http.ResponseWriter, r *http.Request) {
		code, err := strconv.Atoi(strings.TrimPrefix(r.URL.Path, "/status/"))
		if err != nil || code < 200 || code > 599 {
			http.Error(w, "want /status/200..599", http.StatusBadRequest)
			return
		}
		w.WriteHeader(code)
	})
	mux.HandleFunc("/bytes/", func(w http.ResponseWriter, r *http.Request) {
		n, err := strconv.ParseInt(strings.TrimPrefix(r.URL.Path, "/bytes/"), 10, 64)
		if err != nil || n < 0 || n > 1<<30 {
			http.Error(w, "want /bytes/0..1073741824", http.StatusBadRequest)
			return
		}
		w.Header().Set("Content-Type", "application/octet-stream")
		w.Header().Set("Content-Length", strconv.FormatInt(n, 10))
		buf := make([]byte, 64<<10)
		for i := range buf {
			buf[i] = byte(i)
		}
		for n > 0 {
			k := min(n, int64(len(buf)))
			if _, err := w.Write(buf[:k]); err != nil {
				return
			}
			n -= k
		}
	})
	return mux
}
