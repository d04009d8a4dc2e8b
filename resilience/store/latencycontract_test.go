package store

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"
)

// testLatency is the contract of the latency summaries (latency.go), run
// by TestStores against every store.
func testLatency(t *testing.T, mk func(t *testing.T) Store) {
	ctx := context.Background()
	// The file store's records expire by the caller's clock and are
	// listed by the system's: the suite writes at the system's.
	now := time.Now()
	latency := func(t *testing.T) LatencyStore {
		l, ok := mk(t).(LatencyStore)
		if !ok {
			t.Fatal("the store is not a LatencyStore")
		}
		return l
	}
	ms := func(v ...int) []time.Duration {
		out := make([]time.Duration, len(v))
		for i, x := range v {
			out[i] = time.Duration(x) * time.Millisecond
		}
		return out
	}
	get := func(t *testing.T, l LatencyStore, origin string) []time.Duration {
		t.Helper()
		s, err := l.Latency(ctx, origin, now)
		if err != nil {
			t.Fatal(err)
		}
		if s.Origin != origin {
			t.Fatalf("Latency(%q) has origin %q", origin, s.Origin)
		}
		return s.Samples
	}

	t.Run("latency: a ring of the last samples, oldest first", func(t *testing.T) {
		l := latency(t)
		if got := get(t, l, "http://a.test:80"); len(got) != 0 {
			t.Fatalf("a new origin has samples %v", got)
		}
		if err := l.AddLatency(ctx, "http://a.test:80", ms(5, 7), now); err != nil {
			t.Fatal(err)
		}
		if err := l.AddLatency(ctx, "http://a.test:80", ms(9), now); err != nil {
			t.Fatal(err)
		}
		if got := get(t, l, "http://a.test:80"); fmt.Sprint(got) != fmt.Sprint(ms(5, 7, 9)) {
			t.Fatalf("samples %v, want %v", got, ms(5, 7, 9))
		}
		var many []int
		for i := 1; i <= LatencySamples+10; i++ {
			many = append(many, i)
		}
		if err := l.AddLatency(ctx, "http://a.test:80", ms(many...), now); err != nil {
			t.Fatal(err)
		}
		got := get(t, l, "http://a.test:80")
		if want := ms(many[10:]...); fmt.Sprint(got) != fmt.Sprint(want) {
			t.Fatalf("after %d more: %v, want the last %d: %v", len(many), got, LatencySamples, want)
		}
		if other := get(t, l, "http://b.test:80"); len(other) != 0 {
			t.Fatalf("another origin sees %v", other)
		}
	})

	t.Run("latency: concurrent adds lose no sample", func(t *testing.T) {
		l := latency(t)
		var wg sync.WaitGroup
		errs := make(chan error, 16)
		for i := range 16 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				errs <- l.AddLatency(ctx, "https://c.test:443", ms(i+1, i+1), now)
			}()
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			if err != nil {
				t.Fatal(err)
			}
		}
		if got := get(t, l, "https://c.test:443"); len(got) != 32 {
			t.Fatalf("%d samples after 16 adds of 2: %v", len(got), got)
		}
	})

	t.Run("latency: list, delete one, delete all", func(t *testing.T) {
		l := latency(t)
		for _, o := range []string{"http://b.test:80", "http://a.test:80", "http://c.test:80"} {
			if err := l.AddLatency(ctx, o, ms(1, 2, 3), now); err != nil {
				t.Fatal(err)
			}
		}
		list, err := l.ListLatency(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if len(list) != 3 || list[0].Origin != "http://a.test:80" || list[2].Origin != "http://c.test:80" || len(list[1].Samples) != 3 {
			t.Fatalf("ListLatency = %+v", list)
		}
		if ok, err := l.DeleteLatency(ctx, "http://a.test:80"); err != nil || !ok {
			t.Fatalf("DeleteLatency = %v, %v; want true", ok, err)
		}
		if ok, err := l.DeleteLatency(ctx, "http://a.test:80"); err != nil || ok {
			t.Fatalf("DeleteLatency again = %v, %v; want false", ok, err)
		}
		if n, err := l.DeleteAllLatency(ctx); err != nil || n != 2 {
			t.Fatalf("DeleteAllLatency = %d, %v; want 2", n, err)
		}
		if list, err := l.ListLatency(ctx); err != nil || len(list) != 0 {
			t.Fatalf("after DeleteAll: %+v, %v", list, err)
		}
	})
}

func TestLatencyQuantile(t *testing.T) {
	s := LatencySummary{}
	if s.Quantile(0.95) != 0 {
		t.Fatal("no samples: want 0")
	}
	for i := 100; i >= 1; i-- {
		s.Samples = append(s.Samples, time.Duration(i)*time.Millisecond)
	}
	for q, want := range map[float64]time.Duration{0.95: 95 * time.Millisecond, 0.5: 50 * time.Millisecond, 1: 100 * time.Millisecond, 0.001: time.Millisecond} {
		if got := s.Quantile(q); got != want {
			t.Errorf("Quantile(%v) = %v, want %v", q, got, want)
		}
	}
	// 64 samples: p95 is the 61st smallest.
	s.Samples = s.Samples[:0]
	for i := 1; i <= 64; i++ {
		s.Samples = append(s.Samples, time.Duration(i)*time.Millisecond)
	}
	if got := s.Quantile(0.95); got != 61*time.Millisecond {
		t.Errorf("p95 of 1..64 ms = %v, want 61ms", got)
	}
}
