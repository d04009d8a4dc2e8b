package resilience

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// script returns an AttemptFunc that plays the given attempts in order and
// repeats the last one; it advances the clock by cost per attempt.
func script(clock *fakeClock, cost time.Duration, attempts ...Attempt) (AttemptFunc, *int) {
	calls := 0
	return func(ctx context.Context, n int) Attempt {
		calls++
		clock.Advance(cost)
		if n-1 < len(attempts) {
			return attempts[n-1]
		}
		return attempts[len(attempts)-1]
	}, &calls
}

func status(code int) Attempt { return Attempt{Status: code, StatusText: http.StatusText(code)} }

func retryAfter(code int, v string) Attempt {
	a := status(code)
	a.Header = http.Header{"Retry-After": []string{v}}
	return a
}

func newExec(p Policy) (*Executor, *fakeClock, *[]time.Duration) {
	clock := newFakeClock()
	waits := &[]time.Duration{}
	return &Executor{Policy: p, Classify: ClassifyPolicy, Clock: clock, NewTimer: fakeTimerFactory(clock, waits)}, clock, waits
}

// testPolicy is the CLI's default policy, spelled out: the package itself
// has no defaults.
func testPolicy() Policy {
	return Policy{
		Attempts: 3, Delay: time.Second, Multiplier: 2, Cap: 10 * time.Second,
		Jitter: 0.5, Timeout: 30 * time.Second, RetryOn: MustStatusSet("408,425,429,500,502,503,504"),
		MaxRetryAfter: 60 * time.Second,
	}
}

func fixed(attempts int, delay time.Duration) Policy {
	p := testPolicy()
	p.Attempts, p.Delay, p.Multiplier, p.Jitter = attempts, delay, 1, 0
	return p
}

func TestScheduleExponentialCapped(t *testing.T) {
	p := testPolicy()
	p.Attempts, p.Jitter = 8, 0
	ex, clock, waits := newExec(p)
	fn, calls := script(clock, 0, status(503))
	_, err := ex.Run(context.Background(), "GET", fn)
	if !errors.Is(err, ErrRetriesExhausted) {
		t.Fatalf("err = %v, want retries exhausted", err)
	}
	want := []time.Duration{1, 2, 4, 8, 10, 10, 10}
	if *calls != 8 || len(*waits) != len(want) {
		t.Fatalf("calls = %d, waits = %v", *calls, *waits)
	}
	for i, w := range want {
		if (*waits)[i] != w*time.Second {
			t.Errorf("wait %d = %v, want %v", i+1, (*waits)[i], w*time.Second)
		}
	}
}

func TestScheduleFixedDelay(t *testing.T) {
	ex, clock, waits := newExec(fixed(4, 250*time.Millisecond))
	fn, _ := script(clock, 0, status(502))
	ex.Run(context.Background(), "GET", fn)
	if len(*waits) != 3 {
		t.Fatalf("waits = %v", *waits)
	}
	for _, w := range *waits {
		if w != 250*time.Millisecond {
			t.Errorf("wait = %v, want 250ms", w)
		}
	}
}

func TestScheduleJitterStaysInBoundsAndUnderCap(t *testing.T) {
	p := testPolicy()
	p.Attempts, p.Delay, p.Cap, p.Jitter = 10, time.Second, 5*time.Second, 1
	for run := 0; run < 50; run++ {
		ex, clock, waits := newExec(p)
		fn, _ := script(clock, 0, status(503))
		ex.Run(context.Background(), "GET", fn)
		base := time.Second
		for i, w := range *waits {
			lo := time.Duration(0)
			if w < lo || w > p.Cap {
				t.Fatalf("wait %d = %v outside [0, cap %v]", i+1, w, p.Cap)
			}
			if hi := 2 * base; w > hi+time.Nanosecond && w != p.Cap {
				t.Fatalf("wait %d = %v above 2×%v", i+1, w, base)
			}
			base = min(2*base, p.Cap)
		}
	}
}

func TestSuccessAfterRetries(t *testing.T) {
	ex, clock, waits := newExec(fixed(3, time.Second))
	fn, calls := script(clock, 0, status(503), status(503), status(200))
	tr, err := ex.Run(context.Background(), "GET", fn)
	if err != nil || *calls != 3 || len(*waits) != 2 {
		t.Fatalf("err = %v, calls = %d, waits = %v", err, *calls, *waits)
	}
	if len(tr.Attempts) != 3 || tr.Attempts[0].Status != 503 || tr.Attempts[0].Wait != time.Second || tr.Attempts[2].Status != 200 {
		t.Errorf("trace = %+v", tr.Attempts)
	}
}

func TestPermanentStopsAtOnce(t *testing.T) {
	ex, clock, waits := newExec(fixed(5, time.Second))
	fn, calls := script(clock, 0, status(404))
	_, err := ex.Run(context.Background(), "GET", fn)
	if !errors.Is(err, ErrPermanent) || *calls != 1 || len(*waits) != 0 {
		t.Fatalf("err = %v, calls = %d, waits = %v", err, *calls, *waits)
	}
	var se *StatusError
	if !errors.As(err, &se) || se.Code != 404 {
		t.Errorf("last failure not reported: %v", err)
	}
}

func TestUnsafeMethodNotRetried(t *testing.T) {
	ex, clock, _ := newExec(fixed(5, time.Second))
	fn, calls := script(clock, 0, status(503))
	_, err := ex.Run(context.Background(), "POST", fn)
	if !errors.Is(err, ErrPermanent) || *calls != 1 {
		t.Fatalf("err = %v, calls = %d", err, *calls)
	}
	var re *RunError
	if !errors.As(err, &re) || re.Reason != ReasonUnsafeMethod || !strings.Contains(err.Error(), "may have reached the server") {
		t.Errorf("error %q does not say why it was not retried", err)
	}
}

func TestRetryAfterSecondsExtendsWait(t *testing.T) {
	ex, clock, waits := newExec(fixed(3, time.Second))
	fn, _ := script(clock, 0, retryAfter(429, "7"), status(200))
	tr, err := ex.Run(context.Background(), "GET", fn)
	if err != nil || len(*waits) != 1 || (*waits)[0] != 7*time.Second {
		t.Fatalf("err = %v, waits = %v", err, *waits)
	}
	if tr.RetryAfter != 7*time.Second {
		t.Errorf("trace RetryAfter = %v", tr.RetryAfter)
	}
}

func TestRetryAfterShorterThanBackoffIsIgnored(t *testing.T) {
	ex, clock, waits := newExec(fixed(3, 5*time.Second))
	fn, _ := script(clock, 0, retryAfter(503, "1"), status(200))
	ex.Run(context.Background(), "GET", fn)
	if len(*waits) != 1 || (*waits)[0] != 5*time.Second {
		t.Fatalf("waits = %v, want [5s]", *waits)
	}
}

func TestRetryAfterDateMayExceedCap(t *testing.T) {
	p := fixed(3, time.Second)
	p.Cap = 2 * time.Second
	ex, clock, waits := newExec(p)
	date := clock.Now().Add(30 * time.Second).Format(http.TimeFormat)
	fn, _ := script(clock, 0, retryAfter(503, date), status(200))
	if _, err := ex.Run(context.Background(), "GET", fn); err != nil {
		t.Fatal(err)
	}
	if len(*waits) != 1 || (*waits)[0] != 30*time.Second {
		t.Fatalf("waits = %v, want [30s]", *waits)
	}
}

// TestRetryAfterDateCountsFromTheServersDate: a node whose clock is an
// hour fast still waits the 30 s the server asked for, counted from the
// response's Date (the server's clock), not from its own.
func TestRetryAfterDateCountsFromTheServersDate(t *testing.T) {
	p := fixed(3, time.Second)
	ex, clock, waits := newExec(p)
	server := clock.Now().Add(-time.Hour) // this node is an hour fast
	a := retryAfter(503, server.Add(30*time.Second).Format(http.TimeFormat))
	a.Header.Set("Date", server.Format(http.TimeFormat))
	fn, _ := script(clock, 0, a, status(200))
	if _, err := ex.Run(context.Background(), "GET", fn); err != nil {
		t.Fatal(err)
	}
	if len(*waits) != 1 || (*waits)[0] != 30*time.Second {
		t.Fatalf("waits = %v, want [30s]", *waits)
	}
}

func TestRetryAfterGarbageUsesBackoff(t *testing.T) {
	ex, clock, waits := newExec(fixed(2, 2*time.Second))
	fn, _ := script(clock, 0, retryAfter(503, "tomorrow"), status(200))
	ex.Run(context.Background(), "GET", fn)
	if len(*waits) != 1 || (*waits)[0] != 2*time.Second {
		t.Fatalf("waits = %v", *waits)
	}
}

func TestRetryAfterBeyondLimitIsRateLimited(t *testing.T) {
	ex, clock, waits := newExec(fixed(5, time.Second))
	fn, calls := script(clock, 0, retryAfter(429, "3600"))
	_, err := ex.Run(context.Background(), "GET", fn)
	var re *RunError
	if !errors.Is(err, ErrRateLimited) || !errors.As(err, &re) || re.RetryAfter != time.Hour {
		t.Fatalf("err = %v, want rate limited with 1h", err)
	}
	if *calls != 1 || len(*waits) != 0 {
		t.Errorf("calls = %d, waits = %v: must stop at once", *calls, *waits)
	}
}

func TestRetryAfterBeyondMaxTimeIsRateLimited(t *testing.T) {
	p := fixed(5, time.Second)
	p.MaxTime = 10 * time.Second
	ex, clock, _ := newExec(p)
	fn, calls := script(clock, 0, retryAfter(503, "30"))
	_, err := ex.Run(context.Background(), "GET", fn)
	if !errors.Is(err, ErrRateLimited) || *calls != 1 {
		t.Fatalf("err = %v, calls = %d", err, *calls)
	}
}

func TestMaxTimeStopsBeforeAPointlessWait(t *testing.T) {
	p := fixed(10, 4*time.Second)
	p.MaxTime = 10 * time.Second
	ex, clock, waits := newExec(p)
	fn, calls := script(clock, 500*time.Millisecond, status(503))
	_, err := ex.Run(context.Background(), "GET", fn)
	if !errors.Is(err, ErrDeadline) {
		t.Fatalf("err = %v, want deadline", err)
	}
	// 0.5 + 4 + 0.5 + 4 + 0.5 = 9.5s; the next 4s wait would pass 10s.
	if *calls != 3 || len(*waits) != 2 {
		t.Errorf("calls = %d, waits = %v", *calls, *waits)
	}
}

func TestMaxTimeCutsAnAttempt(t *testing.T) {
	p := fixed(3, 0)
	p.MaxTime = 20 * time.Millisecond
	ex := &Executor{Policy: p, Classify: ClassifyPolicy}
	tr, err := ex.Run(context.Background(), "GET", func(ctx context.Context, n int) Attempt {
		if n == 1 {
			return status(503) // a real failure, then an attempt that hangs
		}
		<-ctx.Done()
		return Attempt{Err: ctx.Err()}
	})
	var re *RunError
	if !errors.Is(err, ErrDeadline) || !errors.As(err, &re) {
		t.Fatalf("err = %v, want deadline", err)
	}
	// The last failure is the server's 503, not the cancellation of the
	// attempt the deadline cut off; that attempt says what cut it.
	var se *StatusError
	if !errors.As(re.Last, &se) || se.Code != 503 || strings.Contains(err.Error(), "context canceled") {
		t.Errorf("err = %q, want the 503 as the last failure", err)
	}
	if cut := tr.Attempts[len(tr.Attempts)-1].Err; cut == nil || cut.Error() != "cut off: deadline exceeded" {
		t.Errorf("cut attempt's error = %v", cut)
	}
}

func TestAttemptTimeoutIsRetryable(t *testing.T) {
	p := fixed(2, 0)
	p.Timeout = 5 * time.Millisecond
	ex := &Executor{Policy: p, Classify: ClassifyPolicy}
	calls := 0
	_, err := ex.Run(context.Background(), "GET", func(ctx context.Context, n int) Attempt {
		calls++
		<-ctx.Done()
		return Attempt{Err: ctx.Err()}
	})
	var te *TimeoutError
	if !errors.Is(err, ErrRetriesExhausted) || !errors.As(err, &te) || calls != 2 {
		t.Fatalf("err = %v, calls = %d", err, calls)
	}
}

func TestCancelReturnsCause(t *testing.T) {
	cause := errors.New("interrupted by test")
	ctx, cancel := context.WithCancelCause(context.Background())
	p := fixed(3, time.Hour)
	ex := &Executor{Policy: p, Classify: ClassifyPolicy}
	go func() { time.Sleep(10 * time.Millisecond); cancel(cause) }()
	start := time.Now()
	_, err := ex.Run(ctx, "GET", func(ctx context.Context, n int) Attempt { return status(503) })
	if !errors.Is(err, cause) {
		t.Fatalf("err = %v, want the cancel cause", err)
	}
	if time.Since(start) > 10*time.Second {
		t.Fatalf("wait was not interrupted")
	}
}

func TestOnRetryReportsEachWait(t *testing.T) {
	ex, clock, _ := newExec(fixed(3, time.Second))
	var infos []RetryInfo
	ex.OnRetry = func(i RetryInfo) { infos = append(infos, i) }
	fn, _ := script(clock, 0, retryAfter(429, "2"), status(503))
	ex.Run(context.Background(), "GET", fn)
	if len(infos) != 2 {
		t.Fatalf("infos = %+v", infos)
	}
	if infos[0].Attempt != 1 || infos[0].Attempts != 3 || infos[0].Wait != 2*time.Second || infos[0].RetryAfter != 2*time.Second {
		t.Errorf("first = %+v", infos[0])
	}
	if infos[1].Attempt != 2 || infos[1].RetryAfter != -1 || infos[1].Wait != time.Second {
		t.Errorf("second = %+v", infos[1])
	}
}

func TestLastChanceShortensTheFinalWait(t *testing.T) {
	p := fixed(100, 4*time.Second)
	p.MaxTime = 10 * time.Second
	p.LastChance = 100 * time.Millisecond
	ex, clock, waits := newExec(p)
	fn, calls := script(clock, 0, status(503))
	_, err := ex.Run(context.Background(), "GET", fn)
	if !errors.Is(err, ErrDeadline) {
		t.Fatalf("err = %v", err)
	}
	// 4s, 4s, then 1.9s so the last attempt starts at 9.9s.
	want := []time.Duration{4 * time.Second, 4 * time.Second, 1900 * time.Millisecond}
	if *calls != 4 || len(*waits) != 3 || (*waits)[2] != want[2] {
		t.Errorf("calls = %d, waits = %v, want %v", *calls, *waits, want)
	}
}

func TestHugeDurationsDoNotOverflow(t *testing.T) {
	p := testPolicy()
	p.Attempts, p.Delay, p.Cap, p.Multiplier, p.Jitter = 6, 2000000*time.Hour, 2500000*time.Hour, 1e300, 1
	ex, clock, waits := newExec(p)
	fn, _ := script(clock, 0, status(503))
	ex.Run(context.Background(), "GET", fn)
	for _, w := range *waits {
		if w < 0 || w > p.Cap {
			t.Fatalf("wait %v outside [0, cap]", w)
		}
	}
}

func TestHugeAttemptsEndAtMaxTime(t *testing.T) {
	p := fixed(1<<31-1, time.Second)
	p.MaxTime = time.Minute
	ex, clock, _ := newExec(p)
	fn, calls := script(clock, 0, status(503))
	_, err := ex.Run(context.Background(), "GET", fn)
	if !errors.Is(err, ErrDeadline) || *calls != 61 {
		t.Fatalf("err = %v, calls = %d", err, *calls)
	}
}

func TestRunWithoutClassifyIsAnError(t *testing.T) {
	calls := 0
	_, err := (&Executor{Policy: fixed(1, 0)}).Run(context.Background(), "GET", func(context.Context, int) Attempt {
		calls++
		return status(200)
	})
	if !errors.Is(err, errNoClassify) || calls != 0 {
		t.Errorf("err = %v, calls = %d", err, calls)
	}
}

func TestRetryAfterBeyondLimitIsRateLimitedOnTheLastAttempt(t *testing.T) {
	// With one attempt there is no wait to refuse, yet the caller must
	// learn it was rate limited, not that retries ran out.
	p := fixed(1, time.Second)
	p.MaxRetryAfter = 10 * time.Second
	ex, clock, _ := newExec(p)
	fn, calls := script(clock, 0, retryAfter(429, "60"))
	_, err := ex.Run(context.Background(), "GET", fn)
	var re *RunError
	if !errors.Is(err, ErrRateLimited) || !errors.As(err, &re) || re.RetryAfter != time.Minute || *calls != 1 {
		t.Fatalf("err = %v, calls = %d", err, *calls)
	}
}

func TestZeroMaxRetryAfterMeansNoBound(t *testing.T) {
	p := fixed(2, time.Second)
	p.MaxRetryAfter = 0
	ex, clock, waits := newExec(p)
	fn, _ := script(clock, 0, retryAfter(503, "3600"), status(200))
	if _, err := ex.Run(context.Background(), "GET", fn); err != nil {
		t.Fatalf("err = %v", err)
	}
	if len(*waits) != 1 || (*waits)[0] != time.Hour {
		t.Errorf("waits = %v, want the server's hour", *waits)
	}
}

func TestZeroCapMeansNoCap(t *testing.T) {
	p := fixed(4, time.Second)
	p.Multiplier, p.Cap = 10, 0
	ex, clock, waits := newExec(p)
	fn, _ := script(clock, 0, status(503))
	ex.Run(context.Background(), "GET", fn)
	want := []time.Duration{time.Second, 10 * time.Second, 100 * time.Second}
	if len(*waits) != 3 {
		t.Fatalf("waits = %v", *waits)
	}
	for i := range want {
		if (*waits)[i] != want[i] {
			t.Errorf("waits = %v, want %v", *waits, want)
		}
	}
}

func TestNoAttemptLimitRunsUntilMaxTime(t *testing.T) {
	p := fixed(1, time.Second)
	p.NoAttemptLimit, p.MaxTime = true, time.Hour
	ex, clock, _ := newExec(p)
	var infos []RetryInfo
	ex.OnRetry = func(i RetryInfo) { infos = append(infos, i) }
	fn, calls := script(clock, 0, status(503), status(503), status(503), status(503), status(200))
	if _, err := ex.Run(context.Background(), "GET", fn); err != nil || *calls != 5 {
		t.Fatalf("err = %v, calls = %d", err, *calls)
	}
	for _, i := range infos {
		if i.Attempts != 0 {
			t.Errorf("RetryInfo.Attempts = %d, want 0 (no limit)", i.Attempts)
		}
	}
}

func TestHoldIsWaitedOutThenTheRequestGoes(t *testing.T) {
	store := &FileStore{Dir: filepath.Join(t.TempDir(), "state")}
	newBreaker := func() *Breaker {
		return mustBreaker(t, Settings{Key: "http://h:80", Failures: 5, Store: store})
	}
	// Run 1: a 429 with Retry-After: 30 records the hold (and ends: -n 1).
	ex, clock, _ := newExec(fixed(1, time.Second))
	ex.Breaker = newBreaker()
	fn, _ := script(clock, 0, retryAfter(429, "30"))
	ex.Run(context.Background(), "GET", fn)
	// Run 2, ten seconds later in another process: waits 20s, then sends.
	clock.Advance(10 * time.Second)
	ex2 := &Executor{Policy: fixed(1, time.Second), Classify: ClassifyPolicy, Clock: clock, Breaker: newBreaker()}
	var waits []time.Duration
	ex2.NewTimer = fakeTimerFactory(clock, &waits)
	var held []HoldInfo
	ex2.OnHold = func(h HoldInfo) { held = append(held, h) }
	fn2, calls := script(clock, 0, status(200))
	tr, err := ex2.Run(context.Background(), "GET", fn2)
	if err != nil || *calls != 1 || len(waits) != 1 || waits[0] != 20*time.Second || tr.Held != 20*time.Second || len(held) != 1 {
		t.Fatalf("err %v, calls %d, waits %v, held %v / %v", err, *calls, waits, tr.Held, held)
	}
}

func TestHoldBeyondTheLimitIsRateLimitedWithoutARequest(t *testing.T) {
	store := &FileStore{Dir: filepath.Join(t.TempDir(), "state")}
	br := mustBreaker(t, Settings{Key: "http://h:80", Failures: 5, Store: store})
	clock := newFakeClock()
	br.Record(context.Background(), mustAdmit(t, br, clock.Now()), Verdict{Kind: Retryable, Breaker: Ignore}, clock.Now(), clock.Now().Add(2*time.Minute))
	p := fixed(3, time.Second)
	p.MaxRetryAfter = time.Minute
	ex := &Executor{Policy: p, Classify: ClassifyPolicy, Clock: clock, Breaker: mustBreaker(t, Settings{Key: "http://h:80", Failures: 5, Store: store})}
	fn, calls := script(clock, 0, status(200))
	_, err := ex.Run(context.Background(), "GET", fn)
	var re *RunError
	if !errors.Is(err, ErrRateLimited) || !errors.As(err, &re) || re.Reason != ReasonHeld || re.RetryAfter != 2*time.Minute || *calls != 0 {
		t.Fatalf("err = %v, calls = %d", err, *calls)
	}
	// Inside --max-time the same: no point waiting to be cut off.
	p.MaxRetryAfter, p.MaxTime = 0, 30*time.Second
	ex.Policy = p
	if _, err := ex.Run(context.Background(), "GET", fn); !errors.Is(err, ErrRateLimited) || *calls != 0 {
		t.Fatalf("err = %v, calls = %d", err, *calls)
	}
}

func TestOnly429And503RecordAHold(t *testing.T) {
	for _, tc := range []struct {
		code int
		hold bool
	}{{429, true}, {503, true}, {500, false}, {408, false}} {
		store := &FileStore{Dir: filepath.Join(t.TempDir(), "state")}
		ex, clock, _ := newExec(fixed(1, time.Second))
		ex.Breaker = mustBreaker(t, Settings{Key: "http://h:80", Failures: 5, Store: store})
		fn, _ := script(clock, 0, retryAfter(tc.code, "30"))
		ex.Run(context.Background(), "GET", fn)
		recs, _ := store.List(context.Background())
		if got := len(recs) == 1 && len(recs[0].Holds) == 1; got != tc.hold {
			t.Errorf("%d: hold recorded = %v, want %v", tc.code, got, tc.hold)
		}
	}
}

func TestBreakerOpenedByTheRunStopsItWithoutARetryLine(t *testing.T) {
	store := &FileStore{Dir: filepath.Join(t.TempDir(), "state")}
	ex, clock, waits := newExec(fixed(5, time.Second))
	ex.Breaker = mustBreaker(t, Settings{Key: "http://h:80", Failures: 2, Store: store})
	var retries []RetryInfo
	ex.OnRetry = func(i RetryInfo) { retries = append(retries, i) }
	fn, calls := script(clock, 0, status(503))
	_, err := ex.Run(context.Background(), "GET", fn)
	var re *RunError
	if !errors.Is(err, ErrRetriesExhausted) || !errors.As(err, &re) || re.Reason != ReasonBreakerOpened {
		t.Fatalf("err = %v", err)
	}
	// Two failures opened it: one retry announced and waited, no second.
	if *calls != 2 || len(retries) != 1 || len(*waits) != 1 {
		t.Errorf("calls %d, retries %d, waits %v", *calls, len(retries), *waits)
	}
}

// TestLastChanceWaitsARetryAfterPastTheDeadline: with LastChance (check
// --wait), a Retry-After longer than the time left is waited until the
// last chance, and the run tries again, instead of ending rate limited;
// a fetch (no LastChance) ends at once.
func TestLastChanceWaitsARetryAfterPastTheDeadline(t *testing.T) {
	p := fixed(5, time.Second)
	p.MaxTime = 10 * time.Second
	p.MaxRetryAfter = 0 // check --wait: only its own time bounds the wait
	p.LastChance = 100 * time.Millisecond
	ex, clock, waits := newExec(p)
	fn, calls := script(clock, 0, retryAfter(503, "3600"), status(200))
	if _, err := ex.Run(context.Background(), "GET", fn); err != nil || *calls != 2 {
		t.Fatalf("err %v after %d calls; want success on the last chance", err, *calls)
	}
	if len(*waits) != 1 || (*waits)[0] != 10*time.Second-100*time.Millisecond {
		t.Errorf("waits = %v, want the time left less the last chance", *waits)
	}
	p.LastChance = 0
	ex, clock, _ = newExec(p)
	fn, calls = script(clock, 0, retryAfter(503, "3600"), status(200))
	if _, err := ex.Run(context.Background(), "GET", fn); !errors.Is(err, ErrRateLimited) || *calls != 1 {
		t.Errorf("without LastChance: err %v after %d calls; want rate limited at once", err, *calls)
	}
}

// TestKeepBoundsTheTrace: with Keep, a run keeps its first Keep/2 records
// and the latest, hands each one it drops to OnOmit, and counts every
// attempt in the trace and the run's error.
func TestKeepBoundsTheTrace(t *testing.T) {
	ex, clock, _ := newExec(fixed(10, time.Second))
	var omitted []int
	ex.Keep, ex.OnOmit = 4, func(rec AttemptRecord) { omitted = append(omitted, rec.N) }
	fn, _ := script(clock, 0, status(503))
	tr, err := ex.Run(context.Background(), "GET", fn)
	var re *RunError
	if !errors.As(err, &re) || re.Attempts != 10 {
		t.Fatalf("err = %v", err)
	}
	var listed []int
	for _, a := range tr.Attempts {
		listed = append(listed, a.N)
	}
	if fmt.Sprint(listed) != "[1 2 9 10]" || fmt.Sprint(omitted) != "[3 4 5 6 7 8]" || tr.Omitted != 6 || tr.OmittedAfter != 2 || tr.Count() != 10 {
		t.Errorf("listed %v, omitted %v (%d after %d), count %d", listed, omitted, tr.Omitted, tr.OmittedAfter, tr.Count())
	}
	if tr.Attempts[2].Wait != time.Second || tr.Attempts[3].Wait != 0 {
		t.Errorf("waits: %v, %v", tr.Attempts[2].Wait, tr.Attempts[3].Wait)
	}
}

// TestSpentQuotaBeyondTheLimitEndsAtOnce: a 429 whose Retry-After is
// short but whose advertised quota resets beyond MaxRetryAfter ends the
// run at once (a tour saw "retrying in 2s", a 2 s wait, then exit 6 with
// nothing sent): the hold would stop the next attempt anyway.
func TestSpentQuotaBeyondTheLimitEndsAtOnce(t *testing.T) {
	store := &FileStore{Dir: filepath.Join(t.TempDir(), "state")}
	ex, clock, waits := newExec(fixed(3, time.Second))
	ex.Breaker = mustBreaker(t, Settings{Key: "http://h:80", Failures: 5, Store: store})
	a := retryAfter(429, "2")
	a.Header.Set("X-RateLimit-Limit", "5")
	a.Header.Set("X-RateLimit-Remaining", "0")
	a.Header.Set("X-RateLimit-Reset", "300")
	fn, calls := script(clock, 0, a, status(200))
	tr, err := ex.Run(context.Background(), "GET", fn)
	var re *RunError
	if !errors.As(err, &re) || !errors.Is(err, ErrRateLimited) || !re.Quota || re.RetryAfter != 300*time.Second {
		t.Fatalf("err = %v (%+v)", err, re)
	}
	if *calls != 1 || len(*waits) != 0 || tr.RetryAfter != 300*time.Second {
		t.Errorf("%d calls, waits %v, trace Retry-After %v", *calls, *waits, tr.RetryAfter)
	}
	// Without a breaker (or --rate auto) nothing would hold the retry:
	// the Retry-After is waited and the retry goes (a review found a
	// check without --breaker-failures ended at once, unhealthy, by a
	// hold nothing kept).
	ex, clock, waits = newExec(fixed(3, time.Second))
	fn, calls = script(clock, 0, a, status(200))
	if _, err := ex.Run(context.Background(), "GET", fn); err != nil || *calls != 2 || len(*waits) != 1 || (*waits)[0] != 2*time.Second {
		t.Errorf("no breaker: err %v after %d calls, waits %v", err, *calls, *waits)
	}
}

// TestBudgetSpentSaysOneMoreWouldPass: 4 retries of 4.2 allowed is spent
// because a fifth would pass it; the line says so (a tour read "4 …
// of 4.2 allowed" as room left), and the allowance is not printed with
// a float's noise.
func TestBudgetSpentSaysOneMoreWouldPass(t *testing.T) {
	b := &BudgetSpent{Origin: "http://h:80", Retries: 4, Firsts: 6, Allowance: 3 + 0.2*6, Budget: RetryBudget{Percent: 20, Min: 3, Window: time.Minute}}
	if got, want := b.String(), "4 retries to http://h:80 in the last 1m0s already, and one more would pass the 4.2 allowed (3 + 20% of 6 first attempts)"; got != want {
		t.Errorf("%q\nwant %q", got, want)
	}
}
