package resilience

import (
	"net/http"
	"strconv"
	"testing"
	"time"
)

func TestParseQuota(t *testing.T) {
	now := time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC)
	epoch := func(d time.Duration) string { return strconv.FormatInt(now.Add(d).Unix(), 10) }
	hdr := func(kv ...string) http.Header {
		h := http.Header{}
		for i := 0; i < len(kv); i += 2 {
			h.Add(kv[i], kv[i+1])
		}
		return h
	}
	tests := []struct {
		name string
		h    http.Header
		want Quota
		ok   bool
	}{
		{"ietf", hdr("RateLimit-Policy", `"default";q=100;w=60`, "RateLimit", `"default";r=0;t=30`),
			Quota{Dialect: "ietf", Policy: "default", Limit: 100, Remaining: 0, Window: time.Minute, Reset: 30 * time.Second}, true},
		{"ietf tightest exhausted governs", hdr("RateLimit-Policy", `"burst";q=10;w=1, "day";q=1000;w=86400`,
			"RateLimit", `"burst";r=0;t=1, "day";r=0;t=5000`),
			Quota{Dialect: "ietf", Policy: "day", Limit: 1000, Remaining: 0, Window: 24 * time.Hour, Reset: 5000 * time.Second}, true},
		{"ietf slowest pace governs", hdr("RateLimit", `"a";r=50;t=10`, "RateLimit", `"b";r=5;t=10`),
			Quota{Dialect: "ietf", Policy: "b", Limit: -1, Remaining: 5, Reset: 10 * time.Second}, true},
		{"ietf exhausted beats any pace", hdr("RateLimit", `"a";r=1;t=50, "b";r=0;t=2`),
			Quota{Dialect: "ietf", Policy: "b", Limit: -1, Remaining: 0, Reset: 2 * time.Second}, true},
		{"ietf no t: the window", hdr("RateLimit-Policy", `"p";q=5;w=60`, "RateLimit", `"p";r=0`),
			Quota{Dialect: "ietf", Policy: "p", Limit: 5, Remaining: 0, Window: time.Minute, Reset: time.Minute}, true},
		{"ietf a parameter given twice: the last wins (RFC 8941)", hdr("RateLimit-Policy", `"default";q=100;w=60`, "RateLimit", `"default";r=5;r=0;t=30`),
			Quota{Dialect: "ietf", Policy: "default", Limit: 100, Remaining: 0, Window: time.Minute, Reset: 30 * time.Second}, true},
		{"ietf an unreadable t: the window", hdr("RateLimit-Policy", `"p";q=5;w=60`, "RateLimit", `"p";r=0;t=-5`),
			Quota{Dialect: "ietf", Policy: "p", Limit: 5, Remaining: 0, Window: time.Minute, Reset: time.Minute}, true},
		{"ietf token name and spaces", hdr("RateLimit", ` default ; r=3 ; t=4 `),
			Quota{Dialect: "ietf", Policy: "default", Limit: -1, Remaining: 3, Reset: 4 * time.Second}, true},
		{"ietf bad member skipped", hdr("RateLimit", `"x";r=-1, a b, "ok";r=2;t=3`),
			Quota{Dialect: "ietf", Policy: "ok", Limit: -1, Remaining: 2, Reset: 3 * time.Second}, true},
		{"ietf dictionary form", hdr("RateLimit", `limit=100, remaining=0, reset=30`),
			Quota{Dialect: "ietf", Limit: 100, Remaining: 0, Reset: 30 * time.Second}, true},
		{"older draft", hdr("RateLimit-Limit", "100, 100;w=60", "RateLimit-Remaining", "0", "RateLimit-Reset", "7"),
			Quota{Dialect: "ratelimit", Limit: 100, Remaining: 0, Reset: 7 * time.Second}, true},
		{"x delta", hdr("X-RateLimit-Limit", "60", "X-RateLimit-Remaining", "0", "X-RateLimit-Reset", "42"),
			Quota{Dialect: "x-ratelimit", Limit: 60, Remaining: 0, Reset: 42 * time.Second}, true},
		{"x case variant", hdr("x-ratelimit-remaining", "3", "X-Ratelimit-Reset", "1.5"),
			Quota{Dialect: "x-ratelimit", Limit: -1, Remaining: 3, Reset: 1500 * time.Millisecond}, true},
		{"x epoch by the local clock without Date", hdr("X-RateLimit-Remaining", "0", "X-RateLimit-Reset", epoch(90*time.Second)),
			Quota{Dialect: "x-ratelimit", Limit: -1, Remaining: 0, Reset: 90 * time.Second}, true},
		{"x epoch by the server's Date, 30s behind", hdr("Date", now.Add(-30*time.Second).Format(http.TimeFormat),
			"X-RateLimit-Remaining", "0", "X-RateLimit-Reset", epoch(-20*time.Second)),
			Quota{Dialect: "x-ratelimit", Limit: -1, Remaining: 0, Reset: 10 * time.Second}, true},
		{"x epoch by the server's Date, 30s ahead", hdr("Date", now.Add(30*time.Second).Format(http.TimeFormat),
			"X-RateLimit-Remaining", "0", "X-RateLimit-Reset", epoch(40*time.Second)),
			Quota{Dialect: "x-ratelimit", Limit: -1, Remaining: 0, Reset: 10 * time.Second}, true},
		{"x epoch in milliseconds", hdr("X-RateLimit-Remaining", "0", "X-RateLimit-Reset", strconv.FormatInt(now.Add(5*time.Second).UnixMilli(), 10)),
			Quota{Dialect: "x-ratelimit", Limit: -1, Remaining: 0, Reset: 5 * time.Second}, true},
		{"x HTTP-date", hdr("Date", now.Add(-time.Hour).Format(http.TimeFormat), "X-RateLimit-Remaining", "0",
			"X-RateLimit-Reset", now.Add(-time.Hour+time.Minute).Format(http.TimeFormat)),
			Quota{Dialect: "x-ratelimit", Limit: -1, Remaining: 0, Reset: time.Minute}, true},
		{"x past epoch", hdr("X-RateLimit-Remaining", "0", "X-RateLimit-Reset", epoch(-time.Hour)),
			Quota{Dialect: "x-ratelimit", Limit: -1, Remaining: 0, Reset: 0}, true},
		{"x year of seconds is a delta", hdr("X-RateLimit-Remaining", "1", "X-RateLimit-Reset", "31536000"),
			Quota{Dialect: "x-ratelimit", Limit: -1, Remaining: 1, Reset: 365 * 24 * time.Hour}, true},
		{"x epoch past ten years: not said", hdr("X-RateLimit-Remaining", "0", "X-RateLimit-Reset", epoch(11*365*24*time.Hour)),
			Quota{Dialect: "x-ratelimit", Limit: -1, Remaining: 0, Reset: -1}, true},
		{"x garbage reset", hdr("X-RateLimit-Remaining", "0", "X-RateLimit-Reset", "soon"),
			Quota{Dialect: "x-ratelimit", Limit: -1, Remaining: 0, Reset: -1}, true},
		{"x huge reset", hdr("X-RateLimit-Remaining", "0", "X-RateLimit-Reset", "9999999999999999999999999999"),
			Quota{Dialect: "x-ratelimit", Limit: -1, Remaining: 0, Reset: -1}, true},
		{"negative remaining", hdr("X-RateLimit-Remaining", "-1", "X-RateLimit-Reset", "5"), Quota{}, false},
		{"no remaining", hdr("X-RateLimit-Limit", "5"), Quota{}, false},
		{"nothing", hdr(), Quota{}, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, ok := ParseQuota(tc.h, now)
			if ok != tc.ok || got != tc.want {
				t.Fatalf("got %+v %v, want %+v %v", got, ok, tc.want, tc.ok)
			}
		})
	}
}

func TestQuotaExhausted(t *testing.T) {
	for _, tc := range []struct {
		q    Quota
		want bool
	}{
		{Quota{Remaining: 0, Reset: time.Second}, true},
		{Quota{Remaining: 0, Reset: 0}, false},  // already reset
		{Quota{Remaining: 0, Reset: -1}, false}, // no reset: no hold for ever
		{Quota{Remaining: 1, Reset: time.Second}, false},
	} {
		if got := tc.q.Exhausted(); got != tc.want {
			t.Errorf("%+v: %v", tc.q, got)
		}
	}
}
