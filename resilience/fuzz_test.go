package resilience

import (
	"bytes"
	"net/http"
	"testing"
	"time"
)

func FuzzParseRetryAfter(f *testing.F) {
	for _, s := range []string{"0", "120", "-1", "1.5", "", "Wed, 21 Oct 2015 07:28:00 GMT",
		"Sunday, 06-Nov-94 08:49:37 GMT", "Sun Nov  6 08:49:37 1994", "99999999999999999999", " 3 "} {
		f.Add(s)
	}
	now := time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC)
	f.Fuzz(func(t *testing.T, s string) {
		d, ok := ParseRetryAfter(s, now)
		if !ok && d != 0 {
			t.Fatalf("%q: not ok but %v", s, d)
		}
		if ok && (d < 0 || d > MaxRetryAfter) {
			t.Fatalf("%q: %v out of range", s, d)
		}
	})
}

func FuzzParseStatusSet(f *testing.F) {
	for _, s := range []string{"408,425,429,500,502,503,504", "2xx", "200-299", "5XX,404", "", ",", "1-9", "599-100"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		set, err := ParseStatusSet(s)
		if err != nil {
			if set != (StatusSet{}) {
				t.Fatalf("%q: error with a non-empty set", s)
			}
			return
		}
		for _, c := range []int{-1, 0, 99, 600, 1000} {
			if set.Contains(c) {
				t.Fatalf("%q contains %d", s, c)
			}
		}
	})
}

func FuzzDecodeStale(f *testing.F) {
	f.Add(EncodeStale(&StaleEntry{SavedAt: time.Unix(1, 0).UTC(), Status: 200, ContentType: "text/plain", Body: []byte("hello")}))
	f.Add(EncodeStale(&StaleEntry{SavedAt: time.Unix(1, 0).UTC(), Status: 200, Body: []byte{0, '\n', 0xff}}))
	f.Add([]byte(staleMagic + "{}\n"))
	f.Add([]byte("garbage"))
	f.Fuzz(func(t *testing.T, data []byte) {
		e, err := DecodeStale(data)
		if err != nil {
			return
		}
		back, err := DecodeStale(EncodeStale(e))
		if err != nil || !bytes.Equal(back.Body, e.Body) || back.Status != e.Status {
			t.Fatalf("round trip failed: %v", err)
		}
	})
}

func FuzzParseQuota(f *testing.F) {
	for _, s := range [][2]string{
		{`"default";r=0;t=30`, `"default";q=100;w=60`},
		{`"a";r=1;t=50, "b";r=0;t=2`, `"a";q=5, "b";q=9;w=1`},
		{`limit=100, remaining=0, reset=30`, ``},
		{`"x\"y";r=1`, `"\\"`},
		{`0`, `1764000000`}, {`3`, `1.5`}, {`0`, `Wed, 21 Oct 2015 07:28:00 GMT`},
		{`0`, `99999999999999999999999999`}, {`-1`, ``},
	} {
		f.Add(s[0], s[1])
	}
	now := time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC)
	f.Fuzz(func(t *testing.T, a, b string) {
		for _, h := range []http.Header{
			{"Ratelimit": {a}, "Ratelimit-Policy": {b}},
			{"X-Ratelimit-Remaining": {a}, "X-Ratelimit-Reset": {b}, "X-Ratelimit-Limit": {b}},
			{"Ratelimit-Remaining": {a}, "Ratelimit-Reset": {b}, "Date": {b}},
		} {
			q, ok := ParseQuota(h, now)
			if !ok {
				if q != (Quota{}) {
					t.Fatalf("%v: not ok but %+v", h, q)
				}
				continue
			}
			if q.Remaining < 0 || q.Reset < -1 || q.Reset > MaxQuotaReset || q.Window < 0 || q.Window > MaxQuotaReset || q.Limit < -1 {
				t.Fatalf("%v: %+v out of range", h, q)
			}
		}
	})
}
