package resilience

import (
	"bytes"
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
