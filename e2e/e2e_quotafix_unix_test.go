//go:build unix

package e2e

import (
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"
)

// slotIn finds the wait of the rate's next slot in a run's error.
var slotIn = regexp.MustCompile(`slot of the rate \(--rate\) in (\S+) would pass`)

// TestE2ECutRateWaitGivesTheSlotBack: with --rate 1/m, a run waiting for
// its slot and stopped by SIGINT (exit 130, nothing sent) gives the slot
// back: the next run's slot is where it would be had the stopped run
// never been (under a minute away, not two).
func TestE2ECutRateWaitGivesTheSlotBack(t *testing.T) {
	t.Parallel()
	var c counter
	srv := downServer(t, &c)
	e := newEnv(t)
	e.run(args("-n", "1", "--rate", "1/m", srv.URL)...)
	if c.get() != 1 {
		t.Fatalf("%d requests, want 1", c.get())
	}
	for i := 0; i < 2; i++ {
		code, _, _ := startAndSignal(t, e, syscall.SIGINT, func(stderr string) bool {
			return strings.Contains(stderr, "for a request slot (--rate)")
		}, args("-n", "1", "--rate", "1/m", srv.URL)...)
		if code != 130 || c.get() != 1 {
			t.Fatalf("stopped run %d: exit %d, %d requests; want 130 and 1", i, code, c.get())
		}
	}
	r := e.run(args("-n", "1", "--rate", "1/m", "--max-time", "5s", srv.URL)...)
	r.wantCode(t, 7)
	m := slotIn.FindStringSubmatch(r.stderr)
	if m == nil {
		t.Fatalf("no slot wait in %s", r.stderr)
	}
	if d, err := time.ParseDuration(m[1]); err != nil || d > time.Minute {
		t.Fatalf("the next slot is %s away (%v); want under a minute: the stopped runs kept theirs\n%s", m[1], err, r.stderr)
	}
}
