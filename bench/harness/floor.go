//go:build unix

package main

import (
	"bufio"
	"fmt"
	"io"
	"net/http"
	"os"
	"path"
	"sync"
)

// batchFloor is the batch's work done by the least Go program: the URLs read from
// urlFile, fetched by 8 goroutines through one net/http Transport, each
// body written to a temporary file in the current directory and renamed
// to its URL's last segment, and one syncfs at the end (refetch's promise
// of durable files, at its cheapest: no per-group sync). No retries, no
// breaker, no checks. Run by the harness as `harness -batch-floor FILE`.
func batchFloor(urlFile string) int {
	f, err := os.Open(urlFile)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	var urls []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		urls = append(urls, sc.Text())
	}
	f.Close()
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 8}}
	jobs := make(chan string)
	errs := make(chan error, 8)
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			buf := make([]byte, 64<<10)
			for u := range jobs {
				if err := floorOne(client, u, buf); err != nil {
					select {
					case errs <- err:
					default:
					}
				}
			}
		})
	}
	for _, u := range urls {
		jobs <- u
	}
	close(jobs)
	wg.Wait()
	select {
	case err := <-errs:
		fmt.Fprintln(os.Stderr, err)
		return 1
	default:
	}
	d, err := os.Open(".")
	if err == nil {
		err = syncAll(d)
		d.Close()
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return 0
}

func floorOne(client *http.Client, u string, buf []byte) error {
	resp, err := client.Get(u)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s: %s", u, resp.Status)
	}
	tmp, err := os.CreateTemp(".", ".floor-*")
	if err != nil {
		return err
	}
	if _, err := io.CopyBuffer(tmp, resp.Body, buf); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path.Base(u))
}
