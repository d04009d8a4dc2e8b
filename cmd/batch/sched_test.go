package batch

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"testing"
	"time"
)

// schedClock is a fake clock for the scheduler: waits fire only when the
// test advances it, and each wait is announced on waits.
type schedClock struct {
	mu     sync.Mutex
	now    time.Time
	timers []schedTimer
	waits  chan time.Duration
}

type schedTimer struct {
	at time.Time
	c  chan time.Time
}

func newSchedClock() *schedClock {
	return &schedClock{now: time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC), waits: make(chan time.Duration, 100)}
}

func (c *schedClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *schedClock) after(d time.Duration) (<-chan time.Time, func()) {
	c.mu.Lock()
	ch := make(chan time.Time, 1)
	c.timers = append(c.timers, schedTimer{at: c.now.Add(d), c: ch})
	c.mu.Unlock()
	c.waits <- d
	return ch, func() {}
}

func (c *schedClock) advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
	kept := c.timers[:0]
	for _, t := range c.timers {
		if !t.at.After(c.now) {
			t.c <- c.now
		} else {
			kept = append(kept, t)
		}
	}
	c.timers = kept
}

func testScheduler(perHost, readAhead int) (*Scheduler, *schedClock) {
	s := NewScheduler(perHost, readAhead)
	clock := newSchedClock()
	s.now, s.after = clock.Now, clock.after
	return s, clock
}

// job makes the job at position n on host ("a" → http://a:80), whose
// hold key is the host's.
func job(n int, host string) *Job {
	h := "http://" + host + ":80"
	return &Job{N: n, Label: fmt.Sprintf("line %d", n), Host: h, HoldKey: h}
}

func mustAdd(t *testing.T, s *Scheduler, jobs ...*Job) {
	t.Helper()
	for _, j := range jobs {
		if err := s.Add(context.Background(), j); err != nil {
			t.Fatal(err)
		}
	}
}

// mustNext takes the next job and checks its position.
func mustNext(t *testing.T, s *Scheduler, want int) (*Job, *Queue) {
	t.Helper()
	j, q, ok := s.Next(context.Background())
	if !ok || j.N != want {
		n := -1
		if j != nil {
			n = j.N
		}
		t.Fatalf("next = %d (ok %v), want %d", n, ok, want)
	}
	return j, q
}

// runnable says, without waiting, which job next would hand out (0: none).
func runnable(s *Scheduler) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, q := range s.nonEmpty {
		if end, held := s.holds[q.holdKey]; held && s.now().Before(end) {
			continue
		}
		if q.active < s.perHost {
			return q.first().N
		}
	}
	return 0
}

func TestSchedulerTakesTheSmallestPositionAcrossHosts(t *testing.T) {
	s, _ := testScheduler(8, 100)
	mustAdd(t, s, job(1, "a"), job(2, "b"), job(3, "a"), job(4, "c"), job(5, "b"))
	for n := 1; n <= 5; n++ {
		mustNext(t, s, n)
	}
}

func TestSchedulerPerHostBound(t *testing.T) {
	s, _ := testScheduler(1, 100)
	mustAdd(t, s, job(1, "a"), job(2, "a"), job(3, "b"), job(4, "b"))
	_, qa := mustNext(t, s, 1)
	_, qb := mustNext(t, s, 3) // a is at its bound
	if n := runnable(s); n != 0 {
		t.Fatalf("job %d runnable while both hosts are at their bound", n)
	}
	s.Finish(qb)
	mustNext(t, s, 4)
	s.Finish(qa)
	mustNext(t, s, 2)
}

// A held job goes back to the head of its queue; its host (and every host
// sharing its key) pauses, the others go on; a worker with nothing but held
// jobs waits for the earliest hold to end, then gets the held job first.
func TestSchedulerHoldPausesOnlyItsKey(t *testing.T) {
	s, clock := testScheduler(8, 100)
	shared := func(j *Job) *Job { j.HoldKey = "http://a:80"; return j }
	mustAdd(t, s, job(1, "a"), job(2, "a"), job(3, "b"), shared(job(4, "c")), job(5, "b"))
	j1, qa := mustNext(t, s, 1)
	s.Hold(qa, j1, clock.Now().Add(10*time.Second))
	_, qb := mustNext(t, s, 3)
	s.Finish(qb)
	mustNext(t, s, 5) // not 4: host c shares a's key
	if n := runnable(s); n != 0 {
		t.Fatalf("job %d runnable during the hold", n)
	}
	got := make(chan *Job)
	go func() {
		j, _, _ := s.Next(context.Background())
		got <- j
	}()
	if d := <-clock.waits; d != 10*time.Second {
		t.Fatalf("waits %v, want until the hold ends (10s)", d)
	}
	clock.advance(10 * time.Second)
	j := <-got
	if j.N != 1 || j.Held != 10*time.Second {
		t.Fatalf("after the hold: job %d held %v, want job 1 held 10s", j.N, j.Held)
	}
	// Jobs 2 (behind job 1 in a's queue) and 4 (another host on a's
	// key) waited for the same hold: it counts for them too (a tour saw
	// held_ms 0 on URLs that had waited as long), and only the hold: a
	// wait for a worker after it is not held (a review saw 32 s for a
	// 2 s hold behind a 30 s job).
	clock.advance(20 * time.Second)
	if j, _ := mustNext(t, s, 2); j.Held != 10*time.Second {
		t.Errorf("job 2 held %v, want 10s", j.Held)
	}
	if j, _ := mustNext(t, s, 4); j.Held != 10*time.Second {
		t.Errorf("job 4 held %v, want 10s", j.Held)
	}
	// A job added while its key is held waits from then.
	mustAdd(t, s, job(6, "a"))
	j6, qa6 := mustNext(t, s, 6)
	s.Hold(qa6, j6, clock.Now().Add(5*time.Second))
	mustAdd(t, s, shared(job(7, "c")))
	clock.advance(12 * time.Second)
	for _, n := range []int{6, 7} {
		if j, _ := mustNext(t, s, n); j.Held != 5*time.Second {
			t.Errorf("job %d held %v, want 5s", n, j.Held)
		}
	}
}

func TestSchedulerReadAheadBoundsPending(t *testing.T) {
	s, _ := testScheduler(8, 2)
	mustAdd(t, s, job(1, "a"), job(2, "b"))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- s.Add(ctx, job(3, "c")) }()
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("add with the read-ahead full: %v, want it to wait (and end with the context)", err)
	}
	go func() { done <- s.Add(context.Background(), job(3, "c")) }()
	mustNext(t, s, 1)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	mustNext(t, s, 2)
	mustNext(t, s, 3)
}

// TestSchedulerReadsPastAHeldHost: jobs waiting behind a hold do not
// count against the read-ahead, so a held host's long run of URLs never
// keeps another host's URLs from being read and run; a hard bound (a
// multiple of the read-ahead) still caps memory.
func TestSchedulerReadsPastAHeldHost(t *testing.T) {
	s, clock := testScheduler(8, 2)
	mustAdd(t, s, job(1, "a"))
	j1, qa := mustNext(t, s, 1)
	s.Hold(qa, j1, clock.Now().Add(time.Minute))
	// Far more of a's URLs than the read-ahead: all queue behind the hold.
	for n := 2; n <= 10; n++ {
		mustAdd(t, s, job(n, "a"))
	}
	// b's URL is read and runs at once.
	mustAdd(t, s, job(11, "b"))
	mustNext(t, s, 11)
	// The hard bound: 2×64 pending in all.
	s.mu.Lock()
	for n := 12; s.pending < 2*heldReadAhead; n++ {
		q := s.queues["http://a:80"]
		q.jobs = append(q.jobs, job(n, "a"))
		s.pending++
	}
	full := s.full()
	s.mu.Unlock()
	if !full {
		t.Error("the read-ahead has no hard bound behind holds")
	}
}

func TestSchedulerEndsWhenTheInputIsDoneAndNothingRuns(t *testing.T) {
	s, _ := testScheduler(8, 100)
	mustAdd(t, s, job(1, "a"))
	s.CloseInput()
	_, q := mustNext(t, s, 1)
	ended := make(chan bool)
	go func() {
		_, _, ok := s.Next(context.Background())
		ended <- ok
	}()
	// The job in flight may still be held and come back: next waits.
	s.Finish(q)
	if ok := <-ended; ok {
		t.Fatal("next handed out a job after the last one finished")
	}
}

func TestSchedulerStop(t *testing.T) {
	s, _ := testScheduler(8, 100)
	mustAdd(t, s, job(1, "a"), job(2, "a"))
	s.Stop()
	if _, _, ok := s.Next(context.Background()); ok {
		t.Error("next after stop handed out a job")
	}
	if err := s.Add(context.Background(), job(3, "a")); !errors.Is(err, ErrStopped) {
		t.Errorf("add after stop: %v", err)
	}
}

func TestSchedulerKeepsAFewIdlePools(t *testing.T) {
	s, _ := testScheduler(8, 1000)
	made := map[*http.Client]string{}
	var dropped []string
	s.NewClient = func(host string) *http.Client {
		c := &http.Client{}
		made[c] = host
		return c
	}
	s.DropClient = func(c *http.Client) { dropped = append(dropped, made[c]) }
	for n := 1; n <= maxIdleHosts+1; n++ {
		mustAdd(t, s, job(n, fmt.Sprintf("h%d", n)))
		_, q := mustNext(t, s, n)
		s.Finish(q)
	}
	if len(dropped) != 1 || dropped[0] != "http://h1:80" {
		t.Fatalf("dropped %v, want the pool idle the longest", dropped)
	}
	// A host seen again while idle keeps its pool.
	mustAdd(t, s, job(100, fmt.Sprintf("h%d", maxIdleHosts+1)))
	if len(made) != maxIdleHosts+1 {
		t.Errorf("%d pools made, want %d", len(made), maxIdleHosts+1)
	}
}

func TestSchedulerExtraTakesHostRoom(t *testing.T) {
	// A hedge takes room under the per-host bound like a job, and gives
	// it back; a job waits for it.
	s, _ := testScheduler(2, 100)
	mustAdd(t, s, job(1, "a"), job(2, "a"), job(3, "a"))
	_, q := mustNext(t, s, 1)
	release, ok := s.Extra(q)
	if !ok {
		t.Fatal("no room for a hedge below the bound")
	}
	if n := runnable(s); n != 0 {
		t.Fatalf("job %d runnable while a job and its hedge fill the bound", n)
	}
	if _, ok := s.Extra(q); ok {
		t.Fatal("a second hedge got room past the bound")
	}
	release()
	release() // a second call changes nothing
	mustNext(t, s, 2)
	if n := runnable(s); n != 0 {
		t.Fatalf("job %d runnable at the bound after a double release", n)
	}
}
