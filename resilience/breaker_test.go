package resilience

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

var (
	fail    = Verdict{Kind: Retryable, Breaker: CountFailure, Err: &StatusError{Code: 503, Text: "Service Unavailable"}}
	succeed = Verdict{Kind: Success, Breaker: CountSuccess}
	paced   = Verdict{Kind: Retryable, Breaker: Ignore, Err: &StatusError{Code: 429}}
)

// mustBreaker is NewBreaker for settings a test knows are valid; a zero
// Reset or TrialTimeout becomes a minute here, in the test, not in the
// package.
func mustBreaker(t testing.TB, s Settings) *Breaker {
	t.Helper()
	if s.Reset == 0 {
		s.Reset = time.Minute
	}
	if s.TrialTimeout == 0 {
		s.TrialTimeout = s.Reset
	}
	if s.Quorum == 0 {
		s.Quorum = 1
	}
	if s.Node == "" {
		s.Node = "node-a"
	}
	b, err := NewBreaker(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestNewBreakerRefusesSettingsThatMakeNoSense(t *testing.T) {
	store := &FileStore{Dir: t.TempDir()}
	good := Settings{Key: "k", Failures: 1, Quorum: 1, Node: "n", Reset: time.Second, TrialTimeout: time.Second, Store: store}
	for name, mod := range map[string]func(*Settings){
		"empty key":      func(s *Settings) { s.Key = "" },
		"zero failures":  func(s *Settings) { s.Failures = 0 },
		"zero reset":     func(s *Settings) { s.Reset = 0 },
		"negative reset": func(s *Settings) { s.Reset = -time.Second },
		"zero trial":     func(s *Settings) { s.TrialTimeout = 0 },
		"no store":       func(s *Settings) { s.Store = nil },
		"zero quorum":    func(s *Settings) { s.Quorum = 0 },
		"huge quorum":    func(s *Settings) { s.Quorum = 65 },
		"no node":        func(s *Settings) { s.Node = "" },
	} {
		s := good
		mod(&s)
		if b, err := NewBreaker(s); err == nil || b != nil {
			t.Errorf("%s: NewBreaker = %v, %v; want an error", name, b, err)
		}
	}
	if _, err := NewBreaker(good); err != nil {
		t.Errorf("valid settings refused: %v", err)
	}
}

func newTestBreaker(t *testing.T, failures int) (*Breaker, *FileStore, *[]error) {
	t.Helper()
	var warns []error
	store := &FileStore{Dir: filepath.Join(t.TempDir(), "state"), Warn: func(err error) { warns = append(warns, err) }}
	b := mustBreaker(t, Settings{Key: "http://example.test:80", Failures: failures, Quorum: 1, Node: "a", Reset: time.Minute,
		Store: store, Warn: func(err error) { warns = append(warns, err) }})
	return b, store, &warns
}

func mustAdmit(t *testing.T, b *Breaker, now time.Time) Ticket {
	t.Helper()
	tk, err := b.Admit(context.Background(), now)
	if err != nil {
		t.Fatalf("Admit at %v: %v", now, err)
	}
	return tk
}

func mustReject(t *testing.T, b *Breaker, now time.Time) *OpenError {
	t.Helper()
	_, err := b.Admit(context.Background(), now)
	var open *OpenError
	if !errors.As(err, &open) || !errors.Is(err, ErrCircuitOpen) {
		t.Fatalf("Admit at %v = %v, want OpenError", now, err)
	}
	return open
}

func TestBreakerOpensAfterConsecutiveFailures(t *testing.T) {
	b, _, _ := newTestBreaker(t, 3)
	now := newFakeClock().Now()
	for i := 0; i < 2; i++ {
		b.Record(context.Background(), mustAdmit(t, b, now), fail, now, time.Time{})
	}
	b.Record(context.Background(), mustAdmit(t, b, now), succeed, now, time.Time{}) // a success resets the count
	for i := 0; i < 2; i++ {
		b.Record(context.Background(), mustAdmit(t, b, now), fail, now, time.Time{})
	}
	if s := b.snapshot(); s.State != StateClosed {
		t.Fatalf("state = %v after 2 failures, want closed", s.State)
	}
	b.Record(context.Background(), mustAdmit(t, b, now), fail, now, time.Time{})
	open := mustReject(t, b, now.Add(59*time.Second))
	if open.Record.ConsecutiveFailures != 3 || !strings.Contains(open.Error(), "503 Service Unavailable") {
		t.Errorf("open error = %v", open)
	}
	if !strings.Contains(open.Error(), "next trial at") {
		t.Errorf("open error does not say when: %v", open)
	}
}

func TestBreakerIgnoresPacingAndPermanent(t *testing.T) {
	b, _, _ := newTestBreaker(t, 2)
	now := newFakeClock().Now()
	b.Record(context.Background(), mustAdmit(t, b, now), fail, now, time.Time{})
	for i := 0; i < 5; i++ {
		b.Record(context.Background(), mustAdmit(t, b, now), paced, now, time.Time{})
		b.Record(context.Background(), mustAdmit(t, b, now), Verdict{Kind: Permanent, Breaker: Ignore}, now, time.Time{})
		b.Record(context.Background(), mustAdmit(t, b, now), Verdict{Kind: Cancelled, Breaker: Ignore}, now, time.Time{})
	}
	mustAdmit(t, b, now)
	if s := b.snapshot(); s.State != StateClosed {
		t.Fatalf("state = %v, want closed", s.State)
	}
}

func TestBreakerHalfOpenAdmitsOneTrial(t *testing.T) {
	b, _, _ := newTestBreaker(t, 1)
	clock := newFakeClock()
	b.Record(context.Background(), mustAdmit(t, b, clock.Now()), fail, clock.Now(), time.Time{})
	mustReject(t, b, clock.Now())
	clock.Advance(time.Minute)
	trial := mustAdmit(t, b, clock.Now())
	if s := b.snapshot(); s.State != StateHalfOpen {
		t.Fatalf("state = %v, want half-open", s.State)
	}
	other := mustReject(t, b, clock.Now()) // a second caller while the trial runs
	if !strings.Contains(other.Error(), "trial") {
		t.Errorf("half-open rejection = %v", other)
	}
	b.Record(context.Background(), trial, succeed, clock.Now(), time.Time{})
	if s := b.snapshot(); s.State != StateClosed {
		t.Fatalf("state after good trial = %v, want closed", s.State)
	}
	mustAdmit(t, b, clock.Now())
}

func TestBreakerFailedTrialReopens(t *testing.T) {
	b, _, _ := newTestBreaker(t, 1)
	clock := newFakeClock()
	b.Record(context.Background(), mustAdmit(t, b, clock.Now()), fail, clock.Now(), time.Time{})
	clock.Advance(time.Minute)
	b.Record(context.Background(), mustAdmit(t, b, clock.Now()), fail, clock.Now(), time.Time{})
	open := mustReject(t, b, clock.Now().Add(59*time.Second))
	if open.Record.State != StateOpen || !open.Record.RetryAt.Equal(clock.Now().Add(time.Minute)) {
		t.Errorf("reopened record = %+v", open.Record)
	}
	mustAdmit(t, b, clock.Now().Add(time.Minute))
}

func TestBreakerTrialLeaseExpires(t *testing.T) {
	b, _, _ := newTestBreaker(t, 1)
	clock := newFakeClock()
	b.Record(context.Background(), mustAdmit(t, b, clock.Now()), fail, clock.Now(), time.Time{})
	clock.Advance(time.Minute)
	lost := mustAdmit(t, b, clock.Now()) // this trial's process dies
	clock.Advance(time.Minute)
	trial := mustAdmit(t, b, clock.Now())
	b.Record(context.Background(), lost, fail, clock.Now(), time.Time{}) // a late outcome of an old generation
	if s := b.snapshot(); s.State != StateHalfOpen {
		t.Fatalf("stale outcome changed the state to %v", s.State)
	}
	b.Record(context.Background(), trial, succeed, clock.Now(), time.Time{})
	if s := b.snapshot(); s.State != StateClosed {
		t.Fatalf("state = %v, want closed", s.State)
	}
}

func TestBreakerHalfOpenReleasesTrialOnNeutralOutcome(t *testing.T) {
	b, _, _ := newTestBreaker(t, 1)
	clock := newFakeClock()
	b.Record(context.Background(), mustAdmit(t, b, clock.Now()), fail, clock.Now(), time.Time{})
	clock.Advance(time.Minute)
	b.Record(context.Background(), mustAdmit(t, b, clock.Now()), paced, clock.Now(), time.Time{})
	mustAdmit(t, b, clock.Now()) // next caller may try at once
}

func TestBreakerGenerationDiscardsOldOutcomes(t *testing.T) {
	b, _, _ := newTestBreaker(t, 2)
	now := newFakeClock().Now()
	slow := mustAdmit(t, b, now) // admitted while closed, generation 0
	b.Record(context.Background(), mustAdmit(t, b, now), fail, now, time.Time{})
	b.Record(context.Background(), mustAdmit(t, b, now), fail, now, time.Time{}) // opens: generation 1
	b.Record(context.Background(), slow, succeed, now, time.Time{})              // must not close it
	mustReject(t, b, now)
}

func TestBreakerStateSharedThroughStore(t *testing.T) {
	b1, store, _ := newTestBreaker(t, 2)
	b2 := mustBreaker(t, Settings{Key: b1.s.Key, Failures: 2, Reset: time.Minute, Store: store})
	now := newFakeClock().Now()
	b1.Record(context.Background(), mustAdmit(t, b1, now), fail, now, time.Time{})
	b2.Record(context.Background(), mustAdmit(t, b2, now), fail, now, time.Time{})
	mustReject(t, b1, now)
	mustReject(t, b2, now)
}

func TestBreakerStepsAsideWhenStoreUnusable(t *testing.T) {
	dir := t.TempDir()
	blocker := filepath.Join(dir, "file")
	os.WriteFile(blocker, []byte("x"), 0o600)
	var warns []error
	b := mustBreaker(t, Settings{Key: "k", Failures: 1, Store: &FileStore{Dir: filepath.Join(blocker, "state")},
		Warn: func(err error) { warns = append(warns, err) }})
	now := newFakeClock().Now()
	for i := 0; i < 3; i++ {
		b.Record(context.Background(), mustAdmit(t, b, now), fail, now, time.Time{})
	}
	if len(warns) != 1 || !strings.Contains(warns[0].Error(), "disabled") {
		t.Fatalf("warnings = %v, want exactly one", warns)
	}
}

func TestNilBreakerAdmitsEverything(t *testing.T) {
	var b *Breaker
	tk, err := b.Admit(context.Background(), time.Now())
	if err != nil {
		t.Fatal(err)
	}
	b.Record(context.Background(), tk, fail, time.Now(), time.Time{})
}

func BenchmarkBreakerAdmitRecord(b *testing.B) {
	store := &FileStore{Dir: b.TempDir()}
	br := mustBreaker(b, Settings{Key: "http://bench:80", Failures: 1 << 30, Store: store})
	now := time.Now()
	for i := 0; i < b.N; i++ {
		tk, _ := br.Admit(context.Background(), now)
		br.Record(context.Background(), tk, succeed, now, time.Time{})
	}
}

func TestBreakerReportsStateChangesOnce(t *testing.T) {
	b, _, _ := newTestBreaker(t, 2)
	var changes []string
	b.s.OnStateChange = func(from, to State, r Record) { changes = append(changes, from.String()+">"+to.String()) }
	clock := newFakeClock()
	b.Record(context.Background(), mustAdmit(t, b, clock.Now()), fail, clock.Now(), time.Time{})
	b.Record(context.Background(), mustAdmit(t, b, clock.Now()), fail, clock.Now(), time.Time{})
	mustReject(t, b, clock.Now())
	clock.Advance(time.Minute)
	b.Record(context.Background(), mustAdmit(t, b, clock.Now()), succeed, clock.Now(), time.Time{})
	got := strings.Join(changes, " ")
	if got != "closed>open open>half-open half-open>closed" {
		t.Errorf("changes = %s", got)
	}
}

func TestBreakerQuorumNeedsDistinctNodes(t *testing.T) {
	store := &FileStore{Dir: filepath.Join(t.TempDir(), "state")}
	now := newFakeClock().Now()
	node := func(name string) *Breaker {
		return mustBreaker(t, Settings{Key: "http://q:80", Failures: 3, Quorum: 2, Node: name, Store: store})
	}
	a, b := node("a"), node("b")
	// Six failures from one node: the threshold is passed, the quorum not.
	for i := 0; i < 6; i++ {
		a.Record(context.Background(), mustAdmit(t, a, now), fail, now, time.Time{})
	}
	if s := a.snapshot(); s.State != StateClosed {
		t.Fatalf("one sick node opened the breaker: %v", s.State)
	}
	// A second node's failures, below the threshold, do not make it.
	for i := 0; i < 2; i++ {
		b.Record(context.Background(), mustAdmit(t, b, now), fail, now, time.Time{})
	}
	mustAdmit(t, a, now)
	// Its third does: two nodes have each reached the threshold.
	b.Record(context.Background(), mustAdmit(t, b, now), fail, now, time.Time{})
	mustReject(t, a, now)
	mustReject(t, b, now)
	recs, _ := store.List(context.Background())
	if len(recs) != 1 || len(recs[0].NodeFailures) != 2 || recs[0].NodeFailures["a"] != 6 || recs[0].NodeFailures["b"] != 3 {
		t.Errorf("records = %+v", recs)
	}
	// A success anywhere ends the streak and forgets its nodes.
	c := mustBreaker(t, Settings{Key: "http://q2:80", Failures: 2, Quorum: 2, Node: "a", Store: store})
	c.Record(context.Background(), mustAdmit(t, c, now), fail, now, time.Time{})
	c.Record(context.Background(), mustAdmit(t, c, now), succeed, now, time.Time{})
	recs, _ = store.List(context.Background())
	for _, r := range recs {
		if r.Key == "http://q2:80" && (r.ConsecutiveFailures != 0 || r.NodeFailures != nil) {
			t.Errorf("streak not reset: %+v", r)
		}
	}
}

func TestBreakerHoldRejectsUntilItEnds(t *testing.T) {
	b, store, _ := newTestBreaker(t, 3)
	clock := newFakeClock()
	now := clock.Now()
	until := now.Add(30 * time.Second)
	b.Record(context.Background(), mustAdmit(t, b, now), paced, now, until)
	other := mustBreaker(t, Settings{Key: b.s.Key, Failures: 3, Store: store})
	_, err := other.Admit(context.Background(), now.Add(10*time.Second))
	var hold *HoldError
	if !errors.As(err, &hold) || !hold.Until.Equal(until) || errors.Is(err, ErrCircuitOpen) {
		t.Fatalf("Admit during the hold = %v", err)
	}
	// An earlier hold never shortens a later one.
	other.Record(context.Background(), Ticket{Generation: 99}, paced, now, now.Add(5*time.Second))
	if _, err := other.Admit(context.Background(), now.Add(10*time.Second)); !errors.As(err, &hold) {
		t.Fatalf("a shorter hold replaced the longer one: %v", err)
	}
	mustAdmit(t, other, until)
}

func TestClockTimeShowsTheDateBeyondADay(t *testing.T) {
	now := time.Date(2026, 12, 3, 10, 0, 0, 0, time.Local)
	for _, tc := range []struct {
		t    time.Time
		want string
	}{
		{now.Add(90 * time.Minute), "11:30:00"},
		{now.Add(-23 * time.Hour), "11:00:00"},
		{now.Add(48 * time.Hour), "2026-12-05 10:00:00"},
		{now.Add(-25 * time.Hour), "2026-12-02 09:00:00"},
	} {
		if got := ClockTime(tc.t, now); got != tc.want {
			t.Errorf("ClockTime(%v) = %q, want %q", tc.t, got, tc.want)
		}
	}
}

// TestOpenErrorSaysWhenItOpened: a half-open record keeps only when it
// opened; the message says so rather than "half-open since" that time (a
// tour read it as when the trial began).
func TestOpenErrorSaysWhenItOpened(t *testing.T) {
	now := time.Date(2026, 12, 3, 12, 0, 10, 0, time.UTC)
	opened := now.Add(-10 * time.Second)
	half := (&OpenError{Record: Record{Key: "k", State: StateHalfOpen, OpenedAt: &opened}, Now: now}).Error()
	if !strings.Contains(half, "k is half-open, opened ") || strings.Contains(half, "since") {
		t.Errorf("half-open: %q", half)
	}
	open := (&OpenError{Record: Record{Key: "k", State: StateOpen, OpenedAt: &opened}, Now: now}).Error()
	if !strings.Contains(open, "k is open since ") {
		t.Errorf("open: %q", open)
	}
}
