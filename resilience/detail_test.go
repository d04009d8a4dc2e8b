package resilience

import (
	"context"
	"testing"
	"time"
)

// TestDetailCarriedOpaquely: whatever an attempt returns as Detail comes
// back in its record, attempt by attempt, untouched, on failure and success.
func TestDetailCarriedOpaquely(t *testing.T) {
	type note struct{ s string }
	details := []any{&note{"first"}, "second", nil}
	ex, _, _ := newExec(fixed(3, time.Second))
	tr, err := ex.Run(context.Background(), "GET", func(ctx context.Context, n int) Attempt {
		a := status(503)
		if n == 3 {
			a = status(200)
		}
		a.Detail = details[n-1]
		return a
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(tr.Attempts) != 3 {
		t.Fatalf("attempts = %d", len(tr.Attempts))
	}
	for i, a := range tr.Attempts {
		if a.Detail != details[i] {
			t.Errorf("attempt %d: Detail = %v, want %v", i+1, a.Detail, details[i])
		}
	}
}
