package store

import (
	"encoding/json"
	"testing"
	"time"
)

func FuzzDecodeRecord(f *testing.F) {
	now := time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC)
	open := Record{Key: "http://h:80", State: StateOpen, ConsecutiveFailures: 3, Generation: 7, OpenedAt: &now, RetryAt: &now, UpdatedAt: now}
	seed, _ := json.Marshal(open)
	f.Add(seed)
	f.Add([]byte(`{"key":"k","state":"closed","consecutive_failures":0,"generation":0,"opened_at":null,"retry_at":null,"updated_at":"0001-01-01T00:00:00Z"}`))
	f.Add([]byte(`{"state":"ajar"}`))
	f.Add([]byte(`null`))
	f.Add([]byte(`{}{}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		r, err := DecodeRecord(data)
		if err != nil {
			return
		}
		again, err := json.Marshal(r)
		if err != nil {
			t.Fatalf("decoded record does not encode: %v", err)
		}
		r2, err := DecodeRecord(again)
		if err != nil {
			t.Fatalf("re-encoded record does not decode: %v\n%s", err, again)
		}
		if r2.Key != r.Key || r2.State != r.State || r2.ConsecutiveFailures != r.ConsecutiveFailures || r2.Generation != r.Generation {
			t.Fatalf("round trip changed the record: %+v vs %+v", r, r2)
		}
	})
}
