package resilience

import (
	"net/http"
	"testing"
	"time"
)

func TestParseRetryAfter(t *testing.T) {
	now := time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC)
	date := func(d time.Duration) string { return now.Add(d).Format(http.TimeFormat) }
	tests := []struct {
		in     string
		want   time.Duration
		wantOK bool
	}{
		{"0", 0, true},
		{"1", time.Second, true},
		{"120", 2 * time.Minute, true},
		{"  7 ", 7 * time.Second, true},
		{"86400", 24 * time.Hour, true},
		{"86401", 0, false},                   // huge: ignored
		{"99999999999999999999999", 0, false}, // overflows int64
		{"-5", 0, false},                      // negative
		{"1.5", 0, false},                     // fractional
		{"5s", 0, false},
		{"", 0, false},
		{"soon", 0, false},
		{date(90 * time.Second), 90 * time.Second, true},
		{date(-time.Hour), 0, true}, // a past date counts as 0
		{now.Add(30 * time.Second).Format(time.RFC850), 30 * time.Second, true},
		{now.Add(10 * time.Second).Format(time.ANSIC), 10 * time.Second, true},
		{date(48 * time.Hour), 0, false}, // too far in the future
		{"Wed, 99 Oct 2015 07:28:00 GMT", 0, false},
	}
	for _, tt := range tests {
		got, ok := ParseRetryAfter(tt.in, now)
		if got != tt.want || ok != tt.wantOK {
			t.Errorf("ParseRetryAfter(%q) = %v, %v; want %v, %v", tt.in, got, ok, tt.want, tt.wantOK)
		}
	}
}

func BenchmarkParseRetryAfter(b *testing.B) {
	now := time.Now()
	date := now.Add(time.Minute).UTC().Format(http.TimeFormat)
	for i := 0; i < b.N; i++ {
		ParseRetryAfter("120", now)
		ParseRetryAfter(date, now)
	}
}
