package cmd

import (
	"io"
	"strconv"
	"testing"
	"time"

	"github.com/refetch/refetch/fetch"
)

// The Redis password of --store is one of the process's secrets: a
// message quoting it anywhere (a server's error) is masked.
func TestOpenStoreRegistersTheRedisPassword(t *testing.T) {
	// This run's own password: the registry is the process's, and a test
	// run again (go test -count=2) must find it unknown.
	pw := "pw-Redis-" + strconv.FormatInt(time.Now().UnixNano(), 36)
	msg := "ERR echo " + pw
	if fetch.Redact(msg) != msg {
		t.Fatalf("masked before the store was opened: %q", fetch.Redact(msg))
	}
	s, err := openStore("redis://:"+pw+"@127.0.0.1:1/0", t.TempDir(), time.Minute, 1, nil)
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
