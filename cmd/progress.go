package cmd

import (
	"fmt"
	"sync"
	"time"

	"github.com/refetch/refetch/fetch"
	"github.com/refetch/refetch/resilience"
	"github.com/schollz/progressbar/v3"
)

// Progress is shown only on a terminal and never with -q: a download bar
// for bodies that take longer than barDelay, and a countdown during waits
// longer than countdownMin.
const (
	barDelay     = 300 * time.Millisecond
	countdownMin = 2 * time.Second
)

// lazyBar starts a progress bar only once a body has taken barDelay, so
// quick answers leave no trace on the terminal.
type lazyBar struct {
	l     *Logger
	total int64
	start time.Time
	seen  int64
	bar   *progressbar.ProgressBar
}

// BodyProgress returns the fetch hook that draws download bars, or nil when
// progress is not wanted.
func (l *Logger) BodyProgress() func(total int64) fetch.Progress {
	if !l.tty || l.quiet {
		return nil
	}
	return func(total int64) fetch.Progress {
		return &lazyBar{l: l, total: total, start: time.Now()}
	}
}

func (b *lazyBar) Add(n int) {
	b.seen += int64(n)
	if b.bar == nil {
		if time.Since(b.start) < barDelay {
			return
		}
		b.l.stopCountdown()
		b.bar = progressbar.NewOptions64(b.total,
			progressbar.OptionSetWriter(b.l.w),
			progressbar.OptionSetDescription("downloading"),
			progressbar.OptionShowBytes(true),
			progressbar.OptionShowTotalBytes(true),
			progressbar.OptionSetWidth(20),
			progressbar.OptionThrottle(100*time.Millisecond),
			progressbar.OptionSpinnerType(14),
			progressbar.OptionClearOnFinish(),
			progressbar.OptionSetRenderBlankState(true),
			progressbar.OptionEnableColorCodes(b.l.color),
		)
		b.bar.Add64(b.seen)
		return
	}
	b.bar.Add(n)
}

func (b *lazyBar) Done() {
	if b.bar != nil {
		b.bar.Finish()
		b.bar.Clear()
		b.bar = nil
	}
}

// countdown is a live "next attempt in 7s" line during a long wait.
type countdown struct {
	stop chan struct{}
	done sync.WaitGroup
}

// startCountdown shows the time left of a wait on one self-rewriting line
// until the wait is over or another line is logged.
func (l *Logger) startCountdown(info resilience.RetryInfo) {
	if !l.tty || l.quiet || info.Wait < countdownMin {
		return
	}
	l.stopCountdown()
	c := &countdown{stop: make(chan struct{})}
	end := time.Now().Add(info.Wait)
	c.done.Add(1)
	go func() {
		defer c.done.Done()
		tick := time.NewTicker(time.Second)
		defer tick.Stop()
		for {
			left := time.Until(end).Round(time.Second)
			if left <= 0 {
				l.rewrite("")
				return
			}
			l.rewrite(l.dim.Sprintf("  next attempt in %s…", left))
			select {
			case <-c.stop:
				l.rewrite("")
				return
			case <-tick.C:
			}
		}
	}()
	l.mu.Lock()
	l.cd = c
	l.mu.Unlock()
}

// stopCountdown ends a running countdown and clears its line.
func (l *Logger) stopCountdown() {
	l.mu.Lock()
	c := l.cd
	l.cd = nil
	l.mu.Unlock()
	if c != nil {
		close(c.stop)
		c.done.Wait()
	}
}

// rewrite replaces the current terminal line with s (empty: clears it).
func (l *Logger) rewrite(s string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	fmt.Fprint(l.w, "\r\x1b[K"+s)
}
