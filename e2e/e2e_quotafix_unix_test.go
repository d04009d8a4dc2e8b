//go:build unix

package e2e

import (
	"encoding/json"
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

// TestE2ECutAutoWaitGivesTheSlotBack: with --rate auto, a run stopped
// while it waits for its paced slot gives the slot back: the learned
// quota keeps the request it never sent (a tour's two Ctrl-Cs turned "2
// left" into "0 left" and held every process to the reset).
func TestE2ECutAutoWaitGivesTheSlotBack(t *testing.T) {
	t.Parallel()
	var c counter
	srv := quotaOnce(t, &c, 200, "RateLimit-Policy", `"d";q=100;w=60`, "RateLimit", `"d";r=3;t=60`)
	e := newEnv(t)
	e.run(args("--rate", "auto", srv.URL)...).wantCode(t, 0) // learns: 3 left
	e.run(args("--rate", "auto", srv.URL)...).wantCode(t, 0) // takes the first slot
	if c.get() != 2 {
		t.Fatalf("%d requests, want 2", c.get())
	}
	for i := 0; i < 2; i++ {
		code, _, _ := startAndSignal(t, e, syscall.SIGINT, func(stderr string) bool {
			return strings.Contains(stderr, "for a request slot (--rate)")
		}, args("--rate", "auto", srv.URL)...)
		if code != 130 || c.get() != 2 {
			t.Fatalf("stopped run %d: exit %d, %d requests; want 130 and 2", i, code, c.get())
		}
	}
	r := e.run("breaker", "status")
	if !strings.Contains(r.stdout, "2 of 100 left") {
		t.Errorf("the stopped runs kept their slots:\n%s", r.stdout)
	}
	// status shows when the next paced slot is (a tour found "-").
	if !strings.Contains(r.stdout, "next paced slot in ") {
		t.Errorf("status does not show the next paced slot:\n%s", r.stdout)
	}
}

// TestE2ECutWaitRecordsWhatPassed: a run stopped during its wait for a
// retry records the part of the wait that passed, not the wait planned
// (a tour's SIGINT 1.5 s into a 120 s Retry-After read wait_ms 120000
// beside elapsed_ms 1499).
func TestE2ECutWaitRecordsWhatPassed(t *testing.T) {
	t.Parallel()
	var c counter
	srv := quotaOnce(t, &c, 503, "Retry-After", "50")
	e := newEnv(t)
	code, _, stdout := startAndSignal(t, e, syscall.SIGINT, func(stderr string) bool {
		return strings.Contains(stderr, "retrying in")
	}, args("--json", "-n", "2", "--breaker-failures", "0", srv.URL)...)
	if code != 130 {
		t.Fatalf("exit %d, want 130", code)
	}
	var rep struct {
		ElapsedMS float64 `json:"elapsed_ms"`
		Attempts  []struct {
			WaitMS float64 `json:"wait_ms"`
		} `json:"attempts"`
	}
	if err := json.Unmarshal([]byte(stdout), &rep); err != nil || len(rep.Attempts) != 1 {
		t.Fatalf("report %q: %v", stdout, err)
	}
	if w := rep.Attempts[0].WaitMS; w >= 50000 || w > rep.ElapsedMS {
		t.Errorf("wait_ms %v beside elapsed_ms %v: the planned wait, not what passed", w, rep.ElapsedMS)
	}
}
