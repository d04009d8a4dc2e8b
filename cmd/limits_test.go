package cmd

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/refetch/refetch/resilience"
)

func TestParseRequestRate(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want rateSpec
		on   bool
		bad  bool
	}{
		{"", rateSpec{}, false, false},
		{"0", rateSpec{}, false, false},
		{"20/s", rateSpec{N: 20, Per: time.Second}, true, false},
		{" 5/M ", rateSpec{N: 5, Per: time.Minute}, true, false},
		{"auto", rateSpec{Auto: true}, true, false},
		{"AUTO", rateSpec{Auto: true}, true, false},
		{"autox", rateSpec{}, false, true},
		{"0/s", rateSpec{}, false, true},
		{"2000000/s", rateSpec{}, false, true},
		{"5/d", rateSpec{}, false, true},
	} {
		got, on, err := parseRequestRate(tc.in)
		if got != tc.want || on != tc.on || (err != nil) != tc.bad {
			t.Errorf("%q: %+v %v %v", tc.in, got, on, err)
		}
	}
}

func TestQuotaText(t *testing.T) {
	now := time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC)
	limit := int64(100)
	q := []quotaStatusJSON{
		{Limit: &limit, Remaining: 0, WindowMS: 60000, Reset: now.Add(30 * time.Second), Policy: "default\x1b[2J"},
		{Remaining: 5, Reset: now.Add(time.Minute)},
		{Remaining: 7, Reset: now.Add(time.Minute)},
	}
	if got, want := quotaText(q, now), "0 of 100 left per 1m, resets in 30s (default\\x1b[2J); 2 more identities"; got != want {
		t.Errorf("quotaText = %q, want %q", got, want)
	}
	if got, want := quotaText(q[1:2], now), "5 left, resets in 1m0s"; got != want {
		t.Errorf("quotaText = %q, want %q", got, want)
	}
	if got := quotaText(nil, now); got != "-" {
		t.Errorf("quotaText(nil) = %q", got)
	}
}

// The messages of bad --rate and --retry-budget values say what is wrong:
// an overflowing count is too large, not too small; a bare % is no budget.
func TestRateAndBudgetMessages(t *testing.T) {
	for in, want := range map[string]string{
		"99999999999999999999/s":  "too large: at most 1000000/s",
		"2000000/s":               "too large: at most 1000000/s",
		"-99999999999999999999/s": "must be at least 1",
		"0/s":                     "must be at least 1",
	} {
		if _, _, err := parseRequestRate(in); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("--rate %s: %v, want %q", in, err, want)
		}
	}
	for _, in := range []string{"%", " % ", "%%", "x%"} {
		if _, err := parseBudget(in); err == nil {
			t.Errorf("--retry-budget %q accepted", in)
		}
	}
	for in, want := range map[string]int{"": 0, "0": 0, "20%": 20, " 5 ": 5} {
		if got, err := parseBudget(in); err != nil || got != want {
			t.Errorf("--retry-budget %q = %d, %v; want %d", in, got, err, want)
		}
	}
}

func TestRateText(t *testing.T) {
	for iv, want := range map[time.Duration]string{
		time.Minute:           "1/m",
		50 * time.Millisecond: "20/s",
		time.Hour / 7:         "7/h",
		time.Second:           "1/s",
		time.Hour:             "1/h",
		7 * time.Second:       "0.1429/s",
		time.Microsecond:      "1000000/s",
		20 * time.Second:      "3/m",
	} {
		if got := rateText(iv); got != want {
			t.Errorf("rateText(%s) = %q, want %q", iv, got, want)
		}
	}
}

func TestBurstUnused(t *testing.T) {
	var n flagNames
	if got := burstUnused(3, rateSpec{}, false, n); got != "--rate-burst 3 does nothing without --rate N/s, N/m or N/h" {
		t.Errorf("no rate: %q", got)
	}
	if got := burstUnused(3, rateSpec{Auto: true}, true, n); !strings.Contains(got, "--rate-burst 3 does nothing with --rate auto") {
		t.Errorf("auto: %q", got)
	}
	if got := burstUnused(3, rateSpec{N: 1, Per: time.Second}, true, n); got != "" {
		t.Errorf("fixed rate: %q", got)
	}
	if got := burstUnused(1, rateSpec{}, false, n); got != "" {
		t.Errorf("default burst: %q", got)
	}
}

// -v's quota line, and the retry and hold lines of quotas.
func TestQuotaWording(t *testing.T) {
	h := http.Header{}
	h.Set("X-RateLimit-Limit", "100")
	h.Set("X-RateLimit-Remaining", "0")
	h.Set("X-RateLimit-Reset", "30")
	q, _ := resilience.ParseQuota(h, time.Now())
	q.Window = time.Minute
	if got, want := quotaLine(q), "quota: 0 of 100 left per 1m0s, resets in 30s (X-RateLimit)"; got != want {
		t.Errorf("quotaLine = %q, want %q", got, want)
	}
	var b strings.Builder
	l := NewLogger(&b, false, true, false)
	l.Quota(h)
	l.Retry(resilience.RetryInfo{Attempt: 1, Attempts: 3, Err: &resilience.StatusError{Code: 429, Text: "Too Many Requests"},
		Wait: 5 * time.Second, RetryAfter: 5 * time.Second, QuotaReset: true})
	l.Hold(resilience.HoldInfo{Key: "http://h:80", Until: time.Now().Add(4 * time.Second), Wait: 4 * time.Second, Quota: true, Own: true})
	l.Hold(resilience.HoldInfo{Key: "http://h:80", Until: time.Now().Add(4 * time.Second), Wait: 4 * time.Second, Own: true})
	out := b.String()
	for _, want := range []string{
		"quota: 0 of 100 left, resets in 30s (X-RateLimit)\n",
		"retrying in 5s (the server's quota for this caller resets then)\n",
		"http://h:80: the server's quota for this caller is spent until ",
		"(its Retry-After on this run's last response); waiting 4s",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("log lacks %q:\n%s", want, out)
		}
	}
	for _, bad := range []string{"(Retry-After 5s)", "earlier run"} {
		if strings.Contains(out, bad) {
			t.Errorf("log says %q:\n%s", bad, out)
		}
	}
}

// A hold refused by --max-time names --max-time; by --max-retry-after,
// that flag.
func TestHoldHintNamesTheBound(t *testing.T) {
	deadline := &resilience.RunError{Class: resilience.ErrRateLimited, Reason: resilience.ReasonHeld, RetryAfter: 50 * time.Second,
		PastDeadline: true, Left: 10 * time.Second, Limit: 10 * time.Second}
	if got := hint(deadline); !strings.Contains(got, "--max-time") {
		t.Errorf("hint = %q", got)
	}
	longest := &resilience.RunError{Class: resilience.ErrRateLimited, Reason: resilience.ReasonHeld, RetryAfter: 2 * time.Minute, Limit: time.Minute}
	if got := hint(longest); !strings.Contains(got, "--max-retry-after") {
		t.Errorf("hint = %q", got)
	}
}
