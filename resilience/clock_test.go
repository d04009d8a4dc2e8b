package resilience

import (
	"time"

	"github.com/refetch/refetch/internal/fakeclock"
)

// The tests' fake clock is internal/fakeclock's.
type fakeClock = fakeclock.Clock

func newFakeClock() *fakeClock { return fakeclock.New(fakeclock.Start) }

// fakeTimerFactory makes timers of clock that also record each wait in
// waits.
func fakeTimerFactory(clock *fakeClock, waits *[]time.Duration) func() Timer {
	return func() Timer {
		t := clock.NewTimer()
		t.OnStart = func(d time.Duration) { *waits = append(*waits, d) }
		return t
	}
}
