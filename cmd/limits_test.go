package cmd

import (
	"testing"
	"time"
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
