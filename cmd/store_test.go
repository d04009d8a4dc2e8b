package cmd

import (
	"io"
	"testing"
	"time"

	"github.com/refetch/refetch/fetch"
)

// The Redis password of --store is one of the process's secrets: a
// message quoting it anywhere (a server's error) is masked.
func TestOpenStoreRegistersTheRedisPassword(t *testing.T) {
	msg := "ERR echo pw-Redis-8"
	if fetch.Redact(msg) != msg {
		t.Fatalf("masked before the store was opened: %q", fetch.Redact(msg))
	}
	s, err := openStore("redis://:pw-Redis-8@127.0.0.1:1/0", t.TempDir(), time.Minute, 1, nil)
	if err != nil {
		t.Fatal(err)
	}
	if c, ok := s.(io.Closer); ok {
		defer c.Close()
	}
	if got := fetch.Redact(msg); got != "ERR echo REDACTED" {
		t.Errorf("Redact(%q) = %q", msg, got)
	}
}
