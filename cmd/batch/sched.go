package batch

import (
	"container/list"
	"context"
	"errors"
	"net/http"
	"net/url"
	"sync"
	"time"
)

// Job is one URL of a batch on its way through the scheduler.
type Job struct {
	N     int    // 1-based position among the input's URLs
	Label string // where it came from: "line 7", "argument 2"
	URL   *url.URL
	Out   string // the output file, "" when the body does not go to a file
	// Host is the URL's scheme://host:port: its queue, its connection
	// pool and its --parallel-host bound. HoldKey is its breaker key: a
	// hold (a Retry-After) on that key pauses every queue with that key.
	Host, HoldKey string
	// Held is the time the job spent waiting for a hold on its key,
	// requeued or queued behind it; HeldAt is when its current wait
	// began (zero when not held).
	Held   time.Duration
	HeldAt time.Time
	// HeldUntil is when the hold it waits for ends: time after it, in
	// the queue for a worker, is not held.
	HeldUntil time.Time
}

// holdFrom starts j's wait for a hold that ends at until (the later of
// two, when it already waits).
func (j *Job) holdFrom(now, until time.Time) {
	if j.HeldAt.IsZero() {
		j.HeldAt = now
	}
	if until.After(j.HeldUntil) {
		j.HeldUntil = until
	}
}

// ErrStopped is returned by Add once the scheduler is stopped.
var ErrStopped = errors.New("batch stopped")

// Scheduler hands the jobs of a batch to its workers. Jobs wait in one
// FIFO queue per host, fed by a reader whose read-ahead it bounds (memory
// does not grow with the input). A worker gets the job with the smallest
// position among the queues it may take from: not held, and below the
// per-host bound. A job whose key is held is requeued at the head of its
// queue and the queue pauses until the hold ends, while workers go on with
// other hosts; they sleep only when every pending job is held (until the
// earliest hold ends) or bounded (until a job finishes).
type Scheduler struct {
	perHost   int
	readAhead int
	// NewClient makes the connection pool of a host, shared by its jobs;
	// dropClient releases one whose host has been idle the longest. Both
	// may be nil (tests).
	NewClient  func(host string) *http.Client
	DropClient func(*http.Client)
	// now and after tell the time and wait; tests inject a fake clock.
	now   func() time.Time
	after func(d time.Duration) (<-chan time.Time, func())

	mu        sync.Mutex
	queues    map[string]*Queue
	nonEmpty  []*Queue   // queues with pending jobs
	idle      *list.List // queues with no job pending or running, oldest first
	holds     map[string]time.Time
	pending   int // jobs in queues
	active    int // jobs handed out and not finished
	inputDone bool
	stopped   bool
	// wake is closed (and replaced) whenever something changes that a
	// waiting worker or reader may act on.
	wake chan struct{}
}

// Queue is the queue of one host.
type Queue struct {
	host, holdKey string
	jobs          []*Job // pending jobs are jobs[head:]
	head          int
	active        int
	pos           int // index in scheduler.nonEmpty, -1 if not there
	idle          *list.Element
	client        *http.Client
}

func (q *Queue) len() int    { return len(q.jobs) - q.head }
func (q *Queue) first() *Job { return q.jobs[q.head] }

// maxHolds is how many holds the scheduler keeps before it forgets
// those that are over.
const maxHolds = 1024

// maxIdleHosts is how many hosts with nothing queued keep their connection
// pool, for URLs of theirs still to come.
const maxIdleHosts = 64

func NewScheduler(perHost, readAhead int) *Scheduler {
	return &Scheduler{perHost: perHost, readAhead: readAhead, queues: map[string]*Queue{},
		idle: list.New(), holds: map[string]time.Time{}, wake: make(chan struct{}),
		now: time.Now, after: realAfter}
}

func realAfter(d time.Duration) (<-chan time.Time, func()) {
	t := time.NewTimer(d)
	return t.C, func() { t.Stop() }
}

// broadcast wakes every waiter; s.mu must be held.
func (s *Scheduler) broadcast() {
	close(s.wake)
	s.wake = make(chan struct{})
}

// heldReadAhead bounds, as a multiple of the read-ahead, the jobs a
// reader may queue while most of them wait behind holds: reading on past a
// held host's URLs is what lets other hosts run, but memory stays bounded.
const heldReadAhead = 64

// full reports whether the reader must wait: the jobs that could run now
// fill the read-ahead (jobs behind a hold do not count, so a held host
// never keeps other hosts' URLs from being read), or all pending jobs
// reach the hard bound. s.mu must be held.
func (s *Scheduler) full() bool {
	if s.pending >= s.readAhead*heldReadAhead {
		return true
	}
	if s.pending < s.readAhead {
		return false
	}
	now, held := s.now(), 0
	for _, q := range s.nonEmpty {
		if end, ok := s.holds[q.holdKey]; ok && now.Before(end) {
			held += q.len()
		}
	}
	return s.pending-held >= s.readAhead
}

// Add queues j, waiting while the read-ahead is full (see full). It fails
// once the scheduler is stopped or ctx is done.
func (s *Scheduler) Add(ctx context.Context, j *Job) error {
	s.mu.Lock()
	for s.full() && !s.stopped {
		wake := s.wake
		s.mu.Unlock()
		select {
		case <-wake:
		case <-ctx.Done():
			return context.Cause(ctx)
		}
		s.mu.Lock()
	}
	defer s.mu.Unlock()
	if s.stopped {
		return ErrStopped
	}
	q := s.queues[j.Host]
	if q == nil {
		q = &Queue{host: j.Host, holdKey: j.HoldKey, pos: -1}
		if s.NewClient != nil {
			q.client = s.NewClient(j.Host)
		}
		s.queues[j.Host] = q
	}
	if q.idle != nil {
		s.idle.Remove(q.idle)
		q.idle = nil
	}
	if end, held := s.holds[q.holdKey]; held {
		// Queued behind a hold: its wait for it counts as held.
		if now := s.now(); now.Before(end) {
			j.holdFrom(now, end)
		}
	}
	q.jobs = append(q.jobs, j)
	s.queued(q)
	s.broadcast()
	return nil
}

// queued accounts for a job just put in q.
func (s *Scheduler) queued(q *Queue) {
	s.pending++
	if q.pos < 0 {
		q.pos = len(s.nonEmpty)
		s.nonEmpty = append(s.nonEmpty, q)
	}
}

// CloseInput says that the reader has added every job.
func (s *Scheduler) CloseInput() {
	s.mu.Lock()
	s.inputDone = true
	s.broadcast()
	s.mu.Unlock()
}

// Stop hands out no more jobs; add fails from now on.
func (s *Scheduler) Stop() {
	s.mu.Lock()
	s.stopped = true
	s.broadcast()
	s.mu.Unlock()
}

// Next returns the Next job to run and its queue, waiting as long as
// needed; ok is false once every job is done, the scheduler is stopped,
// or ctx is done.
func (s *Scheduler) Next(ctx context.Context) (j *Job, q *Queue, ok bool) {
	for {
		s.mu.Lock()
		if s.stopped || ctx.Err() != nil {
			s.mu.Unlock()
			return nil, nil, false
		}
		now := s.now()
		j, q, until := s.pick(now)
		if j != nil {
			s.mu.Unlock()
			return j, q, true
		}
		if s.inputDone && s.pending == 0 && s.active == 0 {
			s.mu.Unlock()
			return nil, nil, false
		}
		wake := s.wake
		s.mu.Unlock()
		var (
			timeout <-chan time.Time
			cancel  = func() {}
		)
		if !until.IsZero() {
			timeout, cancel = s.after(until.Sub(now))
		}
		select {
		case <-wake:
		case <-timeout:
		case <-ctx.Done():
		}
		cancel()
	}
}

// pick takes the runnable job with the smallest position, or returns the
// earliest end of a hold that keeps pending jobs back (zero if none).
// s.mu must be held.
func (s *Scheduler) pick(now time.Time) (*Job, *Queue, time.Time) {
	var (
		best  *Queue
		until time.Time
	)
	for _, q := range s.nonEmpty {
		if end, held := s.holds[q.holdKey]; held {
			if now.Before(end) {
				if until.IsZero() || end.Before(until) {
					until = end
				}
				continue
			}
			delete(s.holds, q.holdKey)
		}
		if q.active >= s.perHost {
			continue
		}
		if best == nil || q.first().N < best.first().N {
			best = q
		}
	}
	if best == nil {
		return nil, nil, until
	}
	j := best.first()
	best.jobs[best.head] = nil
	best.head++
	if best.len() == 0 {
		best.jobs, best.head = best.jobs[:0], 0
		s.removeNonEmpty(best)
	} else if best.head > 64 && best.head*2 > len(best.jobs) {
		// Reuse the front of the slice instead of growing it forever.
		n := copy(best.jobs, best.jobs[best.head:])
		clear(best.jobs[n:])
		best.jobs, best.head = best.jobs[:n], 0
	}
	s.pending--
	s.active++
	best.active++
	if !j.HeldAt.IsZero() {
		end := now
		if !j.HeldUntil.IsZero() && j.HeldUntil.Before(end) {
			end = j.HeldUntil
		}
		j.Held += max(end.Sub(j.HeldAt), 0)
		j.HeldAt, j.HeldUntil = time.Time{}, time.Time{}
	}
	// The reader may add again.
	s.broadcast()
	return j, best, time.Time{}
}

func (s *Scheduler) removeNonEmpty(q *Queue) {
	last := len(s.nonEmpty) - 1
	moved := s.nonEmpty[last]
	s.nonEmpty[q.pos] = moved
	moved.pos = q.pos
	s.nonEmpty[last] = nil
	s.nonEmpty = s.nonEmpty[:last]
	q.pos = -1
}

// Finish says that the job handed out from q is done.
func (s *Scheduler) Finish(q *Queue) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.active--
	q.active--
	if q.active == 0 && q.len() == 0 {
		s.retire(q)
	}
	s.broadcast()
}

// retire puts a queue with nothing to do on the idle list, dropping the
// queue idle the longest once there are too many.
func (s *Scheduler) retire(q *Queue) {
	q.idle = s.idle.PushBack(q)
	if s.idle.Len() <= maxIdleHosts {
		return
	}
	old := s.idle.Remove(s.idle.Front()).(*Queue)
	old.idle = nil
	delete(s.queues, old.host)
	if s.DropClient != nil && old.client != nil {
		s.DropClient(old.client)
	}
}

// Hold puts j, handed out from q, back at the head of q, and pauses every
// queue of j's key until until.
func (s *Scheduler) Hold(q *Queue, j *Job, until time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.active--
	q.active--
	if q.head > 0 {
		q.head--
		q.jobs[q.head] = j
	} else {
		q.jobs = append([]*Job{j}, q.jobs...)
	}
	s.queued(q)
	if len(s.holds) >= maxHolds {
		// Forget holds that are over, so the map stays small however
		// many hosts a long batch holds.
		now := s.now()
		for key, end := range s.holds {
			if !now.Before(end) {
				delete(s.holds, key)
			}
		}
	}
	if end, ok := s.holds[q.holdKey]; !ok || until.After(end) {
		s.holds[q.holdKey] = until
	}
	now, end := s.now(), s.holds[q.holdKey]
	j.holdFrom(now, end)
	// The jobs waiting behind it on the same key wait for the hold too.
	for _, other := range s.nonEmpty {
		if other.holdKey != q.holdKey {
			continue
		}
		for _, w := range other.jobs[other.head:] {
			if w != nil {
				w.holdFrom(now, end)
			}
		}
	}
	s.broadcast()
}

// Drop releases every connection pool; the batch is over.
func (s *Scheduler) Drop() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, q := range s.queues {
		if s.DropClient != nil && q.client != nil {
			s.DropClient(q.client)
		}
	}
}

// Client is the connection pool of the queue's host (Scheduler.NewClient's).
func (q *Queue) Client() *http.Client { return q.client }

// Extra takes room on q's host for one more request of a job running
// from q (a hedge): ok is false when the host has its per-host bound of
// requests in flight. release gives the room back; it may be called more
// than once.
func (s *Scheduler) Extra(q *Queue) (release func(), ok bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if q.active >= s.perHost {
		return nil, false
	}
	q.active++
	var once sync.Once
	return func() {
		once.Do(func() {
			s.mu.Lock()
			defer s.mu.Unlock()
			q.active--
			s.broadcast()
		})
	}, true
}
