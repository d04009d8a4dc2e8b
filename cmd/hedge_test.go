package cmd

import (
	"testing"
	"time"

	"github.com/refetch/refetch/resilience/store"
)

// TestAutoDelay: --hedge auto waits the p95 of the summary, at most four
// medians: with a tail of 10% (its own p95) the delay lands near the fast
// answers instead of at the slow ones (a tour found "hedge after 2s" over
// 20 ms answers, which cut nothing); a plain spread keeps its p95.
func TestAutoDelay(t *testing.T) {
	ms := func(n ...int) store.LatencySummary {
		var s store.LatencySummary
		for _, v := range n {
			s.Samples = append(s.Samples, time.Duration(v)*time.Millisecond)
		}
		return s
	}
	rep := func(v, n int) []int {
		out := make([]int, n)
		for i := range out {
			out[i] = v
		}
		return out
	}
	if _, ok := autoDelay(ms(rep(20, 19)...)); ok {
		t.Error("19 samples: hedged")
	}
	tail := ms(append(rep(20, 54), rep(2000, 6)...)...)
	if d, _ := autoDelay(tail); d != 80*time.Millisecond {
		t.Errorf("10%% tail: delay %v, want 4 medians, 80ms", d)
	}
	var spread []int
	for i := 1; i <= 100; i++ {
		spread = append(spread, 10+i)
	}
	if d, _ := autoDelay(ms(spread...)); d != 105*time.Millisecond {
		t.Errorf("a spread: delay %v, want its p95, 105ms", d)
	}
}
