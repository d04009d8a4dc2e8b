package resilience

import (
	"sync"
	"time"
)

// fakeClock is a clock that only moves when told to.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func newFakeClock() *fakeClock {
	return &fakeClock{now: time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC)}
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

// fakeTimer fires at once, advancing the fake clock by the wait and
// recording it, so a schedule is observed without sleeping.
type fakeTimer struct {
	clock *fakeClock
	waits *[]time.Duration
	c     chan time.Time
}

func (t *fakeTimer) Start(d time.Duration) {
	*t.waits = append(*t.waits, d)
	t.clock.Advance(d)
	t.c <- t.clock.Now()
}
func (t *fakeTimer) Stop()               {}
func (t *fakeTimer) C() <-chan time.Time { return t.c }

func fakeTimerFactory(clock *fakeClock, waits *[]time.Duration) func() Timer {
	return func() Timer { return &fakeTimer{clock: clock, waits: waits, c: make(chan time.Time, 1)} }
}
