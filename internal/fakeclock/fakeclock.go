// Package fakeclock is the one fake clock of refetch's tests: a clock
// that moves only when told to, and timers that fire at once, moving the
// clock by the wait and recording it, so that a run that waits an hour
// takes no time and a test sees every wait it asked for. It satisfies
// resilience.Clock and resilience.Timer (structurally: it imports
// nothing of refetch, so any package's tests may use it).
package fakeclock

import (
	"sync"
	"time"
)

// Start is where New's clocks start unless told otherwise: a fixed,
// whole-second time, so that golden output and millisecond stores agree.
var Start = time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC)

// Clock is a fake clock, safe for concurrent use (a check runs one
// goroutine per URL, and test servers move it to fake latency).
type Clock struct {
	mu    sync.Mutex
	now   time.Time
	waits []time.Duration
}

// New returns a clock at start.
func New(start time.Time) *Clock { return &Clock{now: start} }

// Now is the clock's time.
func (c *Clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

// Advance moves the clock by d.
func (c *Clock) Advance(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

// Waits returns the waits its timers were started with, in order.
func (c *Clock) Waits() []time.Duration {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]time.Duration(nil), c.waits...)
}

// NewTimer returns a timer of c.
func (c *Clock) NewTimer() *Timer { return &Timer{clock: c, c: make(chan time.Time, 1)} }

// Timer fires at once when started: it records the wait (on its clock,
// and through OnStart if set), moves the clock by it and delivers the new
// time, unless Hold says to keep it from firing.
type Timer struct {
	clock *Clock
	c     chan time.Time
	// OnStart, if set, is told each wait too.
	OnStart func(time.Duration)
	// Hold, if set and true when the timer starts, keeps it from firing
	// (a wait that only the run's end may end).
	Hold func() bool
}

// Start starts a wait of d.
func (t *Timer) Start(d time.Duration) {
	t.clock.mu.Lock()
	t.clock.waits = append(t.clock.waits, d)
	t.clock.mu.Unlock()
	if t.OnStart != nil {
		t.OnStart(d)
	}
	if t.Hold != nil && t.Hold() {
		return
	}
	t.clock.Advance(d)
	t.c <- t.clock.Now()
}

// Stop stops nothing: a started timer has fired.
func (t *Timer) Stop() {}

// C delivers the time a wait ended.
func (t *Timer) C() <-chan time.Time { return t.c }
