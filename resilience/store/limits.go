package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"runtime"
	"sort"
	"strings"
	"time"

	"github.com/refetch/refetch/internal/atomicfile"
	"github.com/refetch/refetch/internal/regularfile"
)

// Manners toward a server, per origin (scheme://host:port), shared like
// the breaker through the store: a request rate (GCRA) and a retry budget.
// As for the breaker, each step is a pure Go function here (rateStep,
// budgetStep) that the FileStore runs under a file lock, and a Lua twin
// (redisstore_limits.go) that Redis runs as one script: one atomic
// read-modify-write, one round trip. The contract suite runs the same
// scenarios against every store and TestLimitsAgree feeds Go and Lua the
// same random steps.
//
// Times are integers, so that Go and Lua agree to the unit: a rate's in
// microseconds (a rate of up to a million a second is exact), a budget's
// in milliseconds.
//
//   - Rate (GCRA): a record keeps the theoretical arrival time TAT of the
//     origin's next request. With the interval T = period/N and a burst
//     B, a request at now may go at max(TAT, now) - (B-1)·T (callers with
//     other intervals: see rateStep); the step
//     reserves that slot (TAT = max(TAT, now) + T) and returns the wait
//     until it, unless the wait is longer than the caller can wait
//     (MaxWait): then it reserves nothing and returns the wait.
//   - Retry budget: first attempts and retries are counted in buckets of
//     Window, the current and the previous one; the previous weighs by how
//     much of it the sliding window still covers. A retry is allowed (and
//     counted) when, with it, retries stay within Min + Percent% of first
//     attempts (Finagle's RetryBudget: a minimum per window so that a
//     rarely-run script still retries, plus a share of the traffic).

// Limiter keeps the per-origin rate and retry budget records. FileStore,
// RedisStore and FailoverStore implement it; every method is bounded by
// ctx as Store's are.
type Limiter interface {
	// Rate takes a slot of p.Origin's rate (rateStep).
	Rate(ctx context.Context, p RateParams, now time.Time) (RateDecision, error)
	// Budget counts a first attempt or asks for a retry (budgetStep).
	Budget(ctx context.Context, p BudgetParams, now time.Time) (BudgetDecision, error)
	// ListLimits returns every live limit record, sorted by origin and kind.
	ListLimits(ctx context.Context) ([]LimitRecord, error)
	// DeleteLimits removes origin's records and reports whether there was one.
	DeleteLimits(ctx context.Context, origin string) (bool, error)
	// DeleteAllLimits removes every limit record and returns how many.
	DeleteAllLimits(ctx context.Context) (int, error)
	// LearnQuota records the quota a response advertised to p.Identity
	// (quotaLearnStep, quota.go).
	LearnQuota(ctx context.Context, p QuotaParams, o QuotaObservation, now time.Time) (QuotaDecision, error)
	// PaceQuota takes p.Identity's next slot of its learned quota
	// (quotaPaceStep).
	PaceQuota(ctx context.Context, p QuotaParams, now time.Time) (QuotaDecision, error)
	// RefundQuota gives back p.Identity's learned-quota slot s
	// (quotaRefundStep): a run cut off before it sent anything. It
	// reports whether the slot went back.
	RefundQuota(ctx context.Context, p QuotaParams, s QuotaSlot, now time.Time) (bool, error)
	// RefundRate gives back the slot of p.Origin's rate whose reservation
	// set the TAT to p.TAT (rateRefundStep): a run cut off before it sent
	// anything. It reports whether the slot went back.
	RefundRate(ctx context.Context, p RateParams, now time.Time) (bool, error)
}

// RateParams are one rate step's settings: they travel with the step, so
// nodes with other settings can share an origin (each step follows its
// caller's).
type RateParams struct {
	Origin string
	// Interval is the period divided by the rate: the time between two
	// requests (at least a microsecond).
	Interval time.Duration
	// Burst is how many requests may go at once, at least 1.
	Burst int
	// MaxWait is the longest wait the caller can take: a slot further off
	// is not reserved. Negative: no bound.
	MaxWait time.Duration
	// TAT is, for RefundRate, the TAT the reserving step set
	// (RateDecision.TAT); PrevTAT and PrevInterval the record's before
	// it (RateDecision's), which the refund puts back.
	TAT, PrevTAT, PrevInterval int64
	Route                      Route
}

// RateDecision is a rate step's answer.
type RateDecision struct {
	// Reserved: the slot is the caller's; send after Wait.
	Reserved bool
	// Wait is how long until the slot (0: now), reserved or not.
	Wait time.Duration
	// TAT is the record's TAT the reservation set (µs, by the store's
	// clock; 0 when nothing was reserved): what RefundRate checks.
	// PrevTAT and PrevInterval are the record's before it: what a
	// refund puts back (the interval too, since callers with other
	// intervals share the record: see rateStep).
	TAT, PrevTAT, PrevInterval int64
	Route                      Route
}

// Budget step kinds.
const (
	BudgetFirst = "first"
	BudgetRetry = "retry"
)

// BudgetParams are one budget step's settings.
type BudgetParams struct {
	Origin string
	// Kind is BudgetFirst (count a first attempt) or BudgetRetry (ask).
	Kind string
	// Percent of first attempts that retries may add, 1 to 100.
	Percent int
	// Min retries allowed per Window whatever the first attempts.
	Min int
	// Window is the sliding window (whole milliseconds, at least 1 ms).
	Window time.Duration
	Route  Route
}

// BudgetDecision is a budget step's answer.
type BudgetDecision struct {
	// Allowed: a first attempt (always), or a retry within the budget.
	Allowed bool
	// Firsts and Retries are the weighted counts over the window before
	// the step; Allowance is how many retries the window allows.
	Firsts, Retries, Allowance float64
	Route                      Route
}

// LimitRecord is one origin's stored rate, budget or learned quota (one
// per identity), for listings.
type LimitRecord struct {
	Origin string
	// Kind is "rate", "budget" or "quota".
	Kind string
	// Rate: the next free slot (TAT less the burst), in the caller's clock,
	// and the last writer's interval and burst. Quota: the next paced slot
	// of --rate auto, zero when it is now.
	NextSlot time.Time
	Interval time.Duration
	Burst    int
	// Budget: the weighted counts over the window at listing time, and
	// the last writer's settings.
	Firsts, Retries float64
	Percent, Min    int
	// Window is the budget's window, or the quota's (0: not said).
	Window time.Duration
	// Quota: whose it is (an identity hash, "" for none), its limit (-1:
	// not said), what remains, when it resets (in the caller's clock), and
	// the policy the server named.
	Identity   string
	QuotaLimit int64
	Remaining  int64
	Reset      time.Time
	Policy     string
}

// rateState is a rate record; its times in microseconds since the epoch.
type rateState struct {
	Origin   string `json:"origin"`
	TAT      int64  `json:"tat_us"`
	Interval int64  `json:"interval_us"`
	Burst    int64  `json:"burst"`
	// Expires is when the record reads as fresh (a past TAT is none).
	Expires int64 `json:"expires_us"`
}

// rateLinger is how long a rate record outlives its TAT.
const rateLinger = int64(time.Second / time.Microsecond)

// noMaxWait stands for "no bound" in a step's MaxWait: exact in Lua.
const noMaxWait = int64(1) << 52

// rateStep is GCRA at now (µs). It reports whether the slot was reserved
// and the wait until it (µs), and changes st only when it reserved.
//
// Callers with other intervals share the record: its TAT is the last
// slot plus the interval of the caller that took it (st.Interval), and
// this caller's next arrival is that slot plus the smaller of the two
// intervals. So a slow caller (1/h) never holds a fast one (10/s) for its
// hour, nor a fast one the slow one; a caller's own requests in a row
// keep its own interval; and every request is spaced from the one before
// it by at least the fastest interval any caller gives: the origin gets
// at most the fastest rate. With one interval it is plain GCRA.
func rateStep(st *rateState, now, interval, burst, maxWait int64) (bool, int64) {
	interval, burst = max(interval, 1), max(burst, 1)
	prev := st.Interval
	if prev <= 0 {
		prev = interval
	}
	tat := max(st.TAT-prev+min(prev, interval), now)
	wait := max(tat-(burst-1)*interval-now, 0)
	if wait > maxWait {
		return false, wait
	}
	st.TAT, st.Interval, st.Burst = tat+interval, interval, burst
	st.Expires = st.TAT + rateLinger
	return true, wait
}

// rateRefundStep gives back the slot whose reservation set st's TAT to
// tat: the record is as it was before it (prevTAT, prevInterval), only
// if its TAT is still tat. A later reservation (another caller's) moved
// it on: then the slot is not given back, since moving the TAT back
// would hand out a slot that caller holds (the cut run's slot is lost,
// as before; never one too many). The interval goes back too: a cut
// 10/s run must not leave a 1/h caller's next slot 100 ms away.
func rateRefundStep(st *rateState, tat, prevTAT, prevInterval int64) bool {
	if tat <= 0 || st.TAT != tat {
		return false
	}
	st.TAT, st.Interval = prevTAT, prevInterval
	st.Expires = st.TAT + rateLinger
	return true
}

// budgetState is a budget record; its times in milliseconds.
type budgetState struct {
	Origin string `json:"origin"`
	// Win is the start of the current bucket (a multiple of Window).
	Win int64 `json:"win_ms"`
	// F and R count first attempts and retries in it; PF and PR in the one
	// before.
	F, R, PF, PR int64
	Percent      int64 `json:"percent"`
	Min          int64 `json:"min"`
	Window       int64 `json:"window_ms"`
	Expires      int64 `json:"expires_ms"`
}

// roll moves the buckets to the one now falls in.
func (st *budgetState) roll(now, window int64) {
	bucket := now - now%window
	if st.Win == bucket {
		return
	}
	if st.Win+window == bucket {
		st.PF, st.PR = st.F, st.R
	} else {
		st.PF, st.PR = 0, 0
	}
	st.F, st.R, st.Win = 0, 0, bucket
}

// weighted returns, times window, the first attempts and retries over the
// sliding window ending at now (st rolled to now).
func (st *budgetState) weighted(now, window int64) (firstsW, retriesW int64) {
	weight := window - (now - st.Win)
	return st.F*window + st.PF*weight, st.R*window + st.PR*weight
}

// budgetStep counts a first attempt, or allows and counts a retry when
// retries stay within min + percent% of first attempts over the window,
// at now (ms). It always changes st (the buckets roll).
func budgetStep(st *budgetState, now int64, retry bool, percent, minimum, window int64) BudgetDecision {
	window = max(window, 1)
	if st.Window != window {
		// A caller with another window: the buckets mean nothing to it.
		st.Win, st.F, st.R, st.PF, st.PR = 0, 0, 0, 0, 0
	}
	st.roll(now, window)
	firstsW, retriesW := st.weighted(now, window)
	d := BudgetDecision{Firsts: float64(firstsW) / float64(window), Retries: float64(retriesW) / float64(window),
		Allowance: float64(minimum) + float64(percent*firstsW)/float64(100*window)}
	if !retry {
		st.F++
		d.Allowed = true
	} else if (retriesW+window)*100 <= minimum*window*100+percent*firstsW {
		st.R++
		d.Allowed = true
	}
	st.Percent, st.Min, st.Window = percent, minimum, window
	st.Expires = st.Win + 2*window
	return d
}

func usOf(t time.Time) int64 { return t.UnixMicro() }

func usDur(d time.Duration) int64 {
	if d < 0 {
		return noMaxWait
	}
	return min(int64(d/time.Microsecond), noMaxWait)
}

// maxWaitUS is p's MaxWait in µs (noMaxWait for none).
func (p RateParams) maxWaitUS() int64 { return usDur(p.MaxWait) }

// intervalUS is p's Interval in µs, at least 1.
func (p RateParams) intervalUS() int64 { return max(int64(p.Interval/time.Microsecond), 1) }

func (p BudgetParams) windowMS() int64 { return max(int64(p.Window/time.Millisecond), 1) }

// Limit file names: beside the breaker's "<hash>.json", with suffixes no
// breaker file has, so that breaker listings never see them.
const (
	rateSuffix   = ".rate"
	budgetSuffix = ".budget"
)

// limitSuffixes are the suffixes of every limit file (quotaSuffix in
// quota.go).
var limitSuffixes = []string{rateSuffix, budgetSuffix, quotaSuffix}

// limitSuffix is the limit suffix name ends with, "" for none.
func limitSuffix(name string) string {
	for _, suffix := range limitSuffixes {
		if strings.HasSuffix(name, suffix) {
			return suffix
		}
	}
	return ""
}

// Rate implements Limiter under the origin's rate file lock.
func (s *FileStore) Rate(ctx context.Context, p RateParams, now time.Time) (RateDecision, error) {
	var d RateDecision
	err := s.limitStep(ctx, p.Origin, rateSuffix, func(data []byte) ([]byte, error) {
		var st rateState
		if data != nil && json.Unmarshal(data, &st) != nil || st.Origin != p.Origin || st.Expires < usOf(now) {
			st = rateState{Origin: p.Origin}
		}
		prevTAT, prevInterval := st.TAT, st.Interval
		ok, wait := rateStep(&st, usOf(now), p.intervalUS(), int64(p.Burst), p.maxWaitUS())
		d = RateDecision{Reserved: ok, Wait: time.Duration(wait) * time.Microsecond}
		if !ok {
			return nil, nil
		}
		d.TAT, d.PrevTAT, d.PrevInterval = st.TAT, prevTAT, prevInterval
		return json.Marshal(st)
	})
	return d, err
}

// RefundRate implements Limiter under the origin's rate file lock.
func (s *FileStore) RefundRate(ctx context.Context, p RateParams, now time.Time) (bool, error) {
	refunded := false
	err := s.limitStep(ctx, p.Origin, rateSuffix, func(data []byte) ([]byte, error) {
		var st rateState
		if data == nil || json.Unmarshal(data, &st) != nil || st.Origin != p.Origin || st.Expires < usOf(now) {
			return nil, nil
		}
		if refunded = rateRefundStep(&st, p.TAT, p.PrevTAT, p.PrevInterval); !refunded {
			return nil, nil
		}
		return json.Marshal(st)
	})
	return refunded, err
}

// Budget implements Limiter under the origin's budget file lock.
func (s *FileStore) Budget(ctx context.Context, p BudgetParams, now time.Time) (BudgetDecision, error) {
	var d BudgetDecision
	err := s.limitStep(ctx, p.Origin, budgetSuffix, func(data []byte) ([]byte, error) {
		var st budgetState
		if data != nil && json.Unmarshal(data, &st) != nil || st.Origin != p.Origin || st.Expires < now.UnixMilli() {
			st = budgetState{Origin: p.Origin, Window: p.windowMS()}
		}
		d = budgetStep(&st, now.UnixMilli(), p.Kind == BudgetRetry, int64(p.Percent), int64(p.Min), p.windowMS())
		return json.Marshal(st)
	})
	return d, err
}

// limitStep runs fn on the content of origin's limit file (nil for none)
// under its lock, and writes what fn returns (nothing for nil).
func (s *FileStore) limitStep(ctx context.Context, origin, suffix string, fn func([]byte) ([]byte, error)) error {
	if err := s.ensureDir(); err != nil {
		return err
	}
	s.prune.Do(func() { s.removeExpired(time.Now()) })
	base := s.path(origin) + suffix
	unlock, err := s.gates.lock(ctx, base+".lock")
	if err != nil {
		return err
	}
	defer unlock()
	data, err := regularfile.Read(base)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		data = nil // unreadable: a fresh record replaces it
	}
	out, err := fn(data)
	if err != nil || out == nil {
		return err
	}
	return atomicfile.WriteFile(base, append(out, '\n'), 0o600, false)
}

// limitFiles returns the paths of Dir's limit files.
func (s *FileStore) limitFiles() ([]string, error) { return s.filesEnding(limitSuffixes...) }

// readLimits reads a limit file and reports its records, and whether it
// expired by now (or cannot be read).
func readLimits(path string, now time.Time) ([]LimitRecord, bool) {
	data, err := regularfile.Read(path)
	if err != nil {
		return nil, true
	}
	switch limitSuffix(path) {
	case rateSuffix:
		var st rateState
		if json.Unmarshal(data, &st) != nil || st.Origin == "" || st.Expires < usOf(now) {
			return nil, true
		}
		return []LimitRecord{st.record(0)}, false
	case quotaSuffix:
		var st quotaState
		if json.Unmarshal(data, &st) != nil || st.Origin == "" || st.Expires <= usOf(now) {
			return nil, true
		}
		st = loadQuota(data, st.Origin, usOf(now))
		return st.records(usOf(now), 0), false
	}
	var st budgetState
	if json.Unmarshal(data, &st) != nil || st.Origin == "" || st.Expires < now.UnixMilli() {
		return nil, true
	}
	return []LimitRecord{st.record(now.UnixMilli())}, false
}

// record is st as a listing shows it; off moves its times to the
// caller's clock.
func (st rateState) record(off time.Duration) LimitRecord {
	return LimitRecord{Origin: st.Origin, Kind: "rate", Interval: time.Duration(st.Interval) * time.Microsecond,
		Burst: int(st.Burst), NextSlot: time.UnixMicro(st.TAT - (st.Burst-1)*st.Interval).Add(off)}
}

func (st budgetState) record(now int64) LimitRecord {
	w := max(st.Window, 1)
	st.roll(now, w)
	f, r := st.weighted(now, w)
	return LimitRecord{Origin: st.Origin, Kind: "budget", Firsts: float64(f) / float64(w), Retries: float64(r) / float64(w),
		Percent: int(st.Percent), Min: int(st.Min), Window: time.Duration(w) * time.Millisecond}
}

// ListLimits implements Limiter: the live records of Dir, read without
// their locks (each file is replaced whole).
func (s *FileStore) ListLimits(ctx context.Context) ([]LimitRecord, error) {
	paths, err := s.limitFiles()
	if err != nil {
		return nil, err
	}
	out := []LimitRecord{}
	now := time.Now()
	for _, p := range paths {
		if rs, expired := readLimits(p, now); !expired && len(rs) > 0 && s.path(rs[0].Origin)+limitSuffix(p) == p {
			out = append(out, rs...)
		}
	}
	sortLimits(out)
	return out, nil
}

// kindOrder is the order of an origin's records in a listing.
var kindOrder = map[string]int{"rate": 0, "budget": 1, "quota": 2}

func sortLimits(out []LimitRecord) {
	sort.Slice(out, func(i, j int) bool {
		if out[i].Origin != out[j].Origin {
			return out[i].Origin < out[j].Origin
		}
		if out[i].Kind != out[j].Kind {
			return kindOrder[out[i].Kind] < kindOrder[out[j].Kind]
		}
		return out[i].Identity < out[j].Identity
	})
}

// DeleteLimits implements Limiter.
func (s *FileStore) DeleteLimits(ctx context.Context, origin string) (bool, error) {
	found := false
	for _, suffix := range limitSuffixes {
		base := s.path(origin) + suffix
		if _, err := os.Stat(base); errors.Is(err, fs.ErrNotExist) {
			continue
		} else if err != nil {
			return found, s.dirError(err)
		}
		ok, err := s.removeLimit(ctx, base)
		if err != nil {
			return found, err
		}
		found = found || ok
	}
	return found, nil
}

// removeLimit removes the limit file base under its lock.
func (s *FileStore) removeLimit(ctx context.Context, base string) (bool, error) {
	return s.removeUnder(ctx, base+".lock", base)
}

// DeleteAllLimits implements Limiter.
func (s *FileStore) DeleteAllLimits(ctx context.Context) (int, error) {
	paths, err := s.limitFiles()
	if err != nil {
		return 0, err
	}
	return s.removeEach(ctx, paths)
}

// removeEach removes each file of paths under its lock (removeLimit) and
// returns how many there were.
func (s *FileStore) removeEach(ctx context.Context, paths []string) (int, error) {
	n := 0
	for _, p := range paths {
		ok, err := s.removeLimit(ctx, p)
		if err != nil {
			return n, err
		}
		if ok {
			n++
		}
	}
	return n, nil
}

// removeLimitIfExpired is removeExpired's for a limit file: removed, with
// its lock file, if it expired by now and its lock is free.
func (s *FileStore) removeLimitIfExpired(ctx context.Context, base string, now time.Time) {
	s.removeIfDead(ctx, base, func() bool {
		_, expired := readLimits(base, now)
		return expired
	})
}

// removeIfDead removes base and its lock file if dead says so under the
// lock, taken only if it is free (ctx done: see gates.lock).
func (s *FileStore) removeIfDead(ctx context.Context, base string, dead func() bool) {
	unlock, err := s.gates.lock(ctx, base+".lock")
	if err != nil {
		return
	}
	defer unlock()
	if !dead() {
		return
	}
	if err := os.Remove(base); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return
	}
	if runtime.GOOS != "windows" {
		os.Remove(base + ".lock")
	}
}

// limiterRoute is failoverRoute for a Limiter step: op runs on the
// Limiter of the store the run keeps to (an error if that store has none).
func limiterRoute[T any](ctx context.Context, s *FailoverStore, route Route, op func(context.Context, Limiter) (T, error)) (T, Route, error) {
	return failoverRoute(ctx, s, route, func(ctx context.Context, st Store) (T, error) {
		l, ok := st.(Limiter)
		if !ok {
			var zero T
			return zero, errNoLimiter(st)
		}
		return op(ctx, l)
	}, nil)
}

// Rate implements Limiter, keeping to p.Route (see failoverRoute).
func (s *FailoverStore) Rate(ctx context.Context, p RateParams, now time.Time) (RateDecision, error) {
	d, route, err := limiterRoute(ctx, s, p.Route, func(ctx context.Context, l Limiter) (RateDecision, error) { return l.Rate(ctx, p, now) })
	d.Route = route
	return d, err
}

// RefundRate implements Limiter, keeping to p.Route.
func (s *FailoverStore) RefundRate(ctx context.Context, p RateParams, now time.Time) (bool, error) {
	ok, _, err := limiterRoute(ctx, s, p.Route, func(ctx context.Context, l Limiter) (bool, error) { return l.RefundRate(ctx, p, now) })
	return ok, err
}

// Budget implements Limiter, keeping to p.Route.
func (s *FailoverStore) Budget(ctx context.Context, p BudgetParams, now time.Time) (BudgetDecision, error) {
	d, route, err := limiterRoute(ctx, s, p.Route, func(ctx context.Context, l Limiter) (BudgetDecision, error) { return l.Budget(ctx, p, now) })
	d.Route = route
	return d, err
}

func (s *FailoverStore) ListLimits(ctx context.Context) ([]LimitRecord, error) {
	return failover(ctx, s, func(ctx context.Context, st Store) ([]LimitRecord, error) {
		if l, ok := st.(Limiter); ok {
			return l.ListLimits(ctx)
		}
		return nil, errNoLimiter(st)
	})
}

func (s *FailoverStore) DeleteLimits(ctx context.Context, origin string) (bool, error) {
	return failover(ctx, s, func(ctx context.Context, st Store) (bool, error) {
		if l, ok := st.(Limiter); ok {
			return l.DeleteLimits(ctx, origin)
		}
		return false, errNoLimiter(st)
	})
}

func (s *FailoverStore) DeleteAllLimits(ctx context.Context) (int, error) {
	return failover(ctx, s, func(ctx context.Context, st Store) (int, error) {
		if l, ok := st.(Limiter); ok {
			return l.DeleteAllLimits(ctx)
		}
		return 0, errNoLimiter(st)
	})
}

func errNoLimiter(st Store) error {
	return fmt.Errorf("store %s keeps no rates or budgets", storeName(st, "?"))
}

var (
	_ Limiter = (*FileStore)(nil)
	_ Limiter = (*RedisStore)(nil)
	_ Limiter = (*FailoverStore)(nil)
)
