package store

import (
	"context"
	"encoding/json"
	"sort"
	"time"
)

// Learned quotas (docs/breaker.md, "Quotas the server advertises"): what
// a server said is left of a caller's quota, kept per origin and identity
// (a quota belongs to a credential) until its reset, for --rate auto to
// spread over the rest of the window. As for the rate and the budget, each
// step is a pure Go function here (quotaLearnStep, quotaPaceStep) that the
// FileStore runs under the origin's quota file lock, and a Lua twin
// (redisstore_quota.go) on one Redis hash per origin; times in
// microseconds.
//
//   - Learn: a response's quota replaces the identity's record once the
//     record's reset has passed (a new window). Before it, what remains
//     only goes down (the lower of the two: a slow response from before
//     other requests must not give back what they took), and an exhausted
//     quota moves the reset later if it says so, never earlier.
//   - Pace: with r left until the reset, a request goes at the record's
//     next slot (its TAT, or now) and moves it by (reset − slot) ÷ r, and
//     r goes down by one: what remains is spread evenly over what is left
//     of the window, across every process using the store. With nothing
//     left the step says so and reserves nothing (the caller holds until
//     the reset); with no live record it paces nothing.
//   - Roll: when the reset has passed and the record knows the policy's
//     limit and window (a window of at most a day, maxRollWindow), the
//     pace step starts the next window from them (what remains is the
//     limit, the next reset one window on, the next slot at the old
//     reset) instead of pacing nothing until a response says: a fleet
//     whose quota is smaller than its workers does not burst at each
//     reset. A record lives until its reset, or one window past it when
//     it can roll (end).

// QuotaParams are one quota step's settings.
type QuotaParams struct {
	Origin string
	// Identity is the caller's (a hash of its credentials, "" for none).
	Identity string
	// MaxWait is the longest wait the caller can take for its slot: a slot
	// further off is not reserved. Negative: no bound.
	MaxWait time.Duration
	Route   Route
}

// QuotaObservation is what a response said of the quota.
type QuotaObservation struct {
	// Limit is the quota per window, -1 when not said; Window 0 when not
	// said.
	Limit     int64
	Remaining int64
	Window    time.Duration
	// Reset is the time from the response to the quota's reset; positive.
	Reset time.Duration
	// Policy names the governing policy ("" for none).
	Policy string
}

// QuotaDecision is a quota step's answer.
type QuotaDecision struct {
	// Known: the identity has a live learned quota; the rest is about it.
	Known bool
	// Reserved: the slot is the caller's; send after Wait.
	Reserved bool
	// Wait is how long until the slot, or (Remaining 0) until the reset.
	Wait time.Duration
	// Remaining is what was left before the step.
	Remaining int64
	// Slot names the reservation for RefundQuota (zero: none made).
	Slot  QuotaSlot
	Route Route
}

// QuotaSlot names one reservation of a learned quota's slot: the TAT it
// set and the one before it, the reset and the remaining count it left
// (µs, by the store's clock). RefundQuota gives the slot back only while
// the record still reads so: a step since (another caller's slot, a
// response that said what is left) makes it stay spent.
type QuotaSlot struct {
	TAT, Prev, Reset, Remaining int64
}

// quotaID is one identity's learned quota; times in µs.
type quotaID struct {
	Limit     int64  `json:"limit"`
	Remaining int64  `json:"remaining"`
	Window    int64  `json:"window_us"`
	Reset     int64  `json:"reset_us"`
	TAT       int64  `json:"tat_us"`
	Policy    string `json:"policy,omitempty"`
}

// quotaState is an origin's quota file.
type quotaState struct {
	Origin string              `json:"origin"`
	IDs    map[string]*quotaID `json:"identities"`
	// Expires is the latest reset: the record is empty after it.
	Expires int64 `json:"expires_us"`
}

// maxQuotaIDs bounds the identities an origin's record keeps; past it,
// the one whose reset comes first is dropped (a request paced less, never
// a lockout).
const maxQuotaIDs = 64

// maxPolicyLen bounds a stored policy name (the server's words).
const maxPolicyLen = 64

// maxRollWindow is the longest window a record rolls over (µs): a day,
// the bound of a hold (resilience.MaxRetryAfter).
const maxRollWindow = int64(24 * time.Hour / time.Microsecond)

// rolls reports whether q can start its next window by itself.
func (q *quotaID) rolls() bool {
	return q.Limit > 0 && q.Window > 0 && q.Window <= maxRollWindow
}

// end is when q means nothing any more: its reset, or one window later
// when it rolls.
func (q *quotaID) end() int64 {
	if q.rolls() {
		return q.Reset + q.Window
	}
	return q.Reset
}

// quotaLearnStep records o, seen at now (µs), as q's quota.
func quotaLearnStep(q *quotaID, o QuotaObservation, now int64) {
	left := max(int64(o.Reset/time.Microsecond), 1)
	reset := now + left
	window := int64(o.Window / time.Microsecond)
	if window == 0 && o.Limit > 0 {
		// A limit with no window (X-RateLimit-*): the longest time to the
		// reset seen in this window stands for it (the window's first
		// request sees nearly all of it), so the record rolls at the reset
		// and lets the limit through, not every waiter at once.
		window = left
		if q.Reset > now {
			window = max(window, q.Window)
		}
	}
	if q.Reset > now {
		q.Remaining = min(q.Remaining, o.Remaining)
		if o.Remaining == 0 && reset > q.Reset {
			q.Reset = reset
		}
	} else {
		*q = quotaID{Remaining: o.Remaining, Reset: reset}
	}
	q.Limit, q.Window, q.Policy = o.Limit, window, cleanPolicy(o.Policy)
}

// quotaPaceStep takes q's next slot at now (µs), if the caller can wait
// for it (maxWait µs). It reports whether it changed q.
func quotaPaceStep(q *quotaID, now, maxWait int64) (QuotaDecision, bool) {
	rolled := false
	if q != nil && q.Reset <= now && q.rolls() && now < q.Reset+q.Window {
		q.TAT, q.Reset, q.Remaining = q.Reset, q.Reset+q.Window, q.Limit
		rolled = true
	}
	if q == nil || q.Reset <= now {
		return QuotaDecision{Reserved: true}, false
	}
	d := QuotaDecision{Known: true, Remaining: q.Remaining}
	if q.Remaining <= 0 {
		d.Wait = time.Duration(q.Reset-now) * time.Microsecond
		return d, rolled
	}
	tat := max(q.TAT, now)
	d.Wait = time.Duration(tat-now) * time.Microsecond
	if tat-now > maxWait {
		return d, rolled
	}
	d.Reserved = true
	prev := q.TAT
	q.TAT = tat + (q.Reset-tat)/q.Remaining
	q.Remaining--
	d.Slot = QuotaSlot{TAT: q.TAT, Prev: prev, Reset: q.Reset, Remaining: q.Remaining}
	return d, true
}

// quotaRefundStep gives back the slot s of q (quotaPaceStep's): the TAT
// before it and one more remaining, only if q is still as s left it. It
// reports whether it did.
func quotaRefundStep(q *quotaID, s QuotaSlot, now int64) bool {
	// After the reset the slot's window is over: nothing to give back
	// (and the twins would read the ended record differently).
	if q == nil || s.TAT <= 0 || q.Reset <= now || q.TAT != s.TAT || q.Reset != s.Reset || q.Remaining != s.Remaining {
		return false
	}
	q.TAT, q.Remaining = s.Prev, q.Remaining+1
	return true
}

// cleanPolicy keeps a policy name printable and short: it is a server's
// word, shown by breaker status.
func cleanPolicy(s string) string {
	b := make([]byte, 0, min(len(s), maxPolicyLen))
	for i := 0; i < len(s) && len(b) < maxPolicyLen; i++ {
		if c := s[i]; c >= 0x20 && c < 0x7f {
			b = append(b, c)
		}
	}
	return string(b)
}

// prune drops the identities whose reset passed by now, then the earliest
// past maxQuotaIDs, and sets Expires.
func (st *quotaState) prune(now int64) {
	var ids []string
	for id, q := range st.IDs {
		if q.end() <= now {
			delete(st.IDs, id)
			continue
		}
		ids = append(ids, id)
	}
	sort.Slice(ids, func(i, j int) bool { return st.IDs[ids[i]].end() > st.IDs[ids[j]].end() })
	for _, id := range ids[min(len(ids), maxQuotaIDs):] {
		delete(st.IDs, id)
	}
	st.Expires = 0
	for _, q := range st.IDs {
		st.Expires = max(st.Expires, q.end())
	}
}

// quotaSuffix names an origin's quota file, beside its rate and budget.
const quotaSuffix = ".quota"

// loadQuota decodes a quota file's data for origin at now (µs): a fresh
// record when there is none, it is unreadable or another origin's, or it
// expired.
func loadQuota(data []byte, origin string, now int64) quotaState {
	var st quotaState
	if data != nil && json.Unmarshal(data, &st) != nil || st.Origin != origin || st.Expires <= now {
		st = quotaState{Origin: origin}
	}
	if st.IDs == nil {
		st.IDs = map[string]*quotaID{}
	}
	for id, q := range st.IDs {
		if q == nil {
			delete(st.IDs, id)
		}
	}
	return st
}

// LearnQuota implements Limiter under the origin's quota file lock.
func (s *FileStore) LearnQuota(ctx context.Context, p QuotaParams, o QuotaObservation, now time.Time) (QuotaDecision, error) {
	err := s.limitStep(ctx, p.Origin, quotaSuffix, func(data []byte) ([]byte, error) {
		st := loadQuota(data, p.Origin, usOf(now))
		q := st.IDs[p.Identity]
		if q == nil {
			q = &quotaID{}
			st.IDs[p.Identity] = q
		}
		quotaLearnStep(q, o, usOf(now))
		st.prune(usOf(now))
		return json.Marshal(st)
	})
	return QuotaDecision{}, err
}

// PaceQuota implements Limiter under the origin's quota file lock.
func (s *FileStore) PaceQuota(ctx context.Context, p QuotaParams, now time.Time) (QuotaDecision, error) {
	var d QuotaDecision
	err := s.limitStep(ctx, p.Origin, quotaSuffix, func(data []byte) ([]byte, error) {
		if data == nil {
			d = QuotaDecision{Reserved: true}
			return nil, nil
		}
		st := loadQuota(data, p.Origin, usOf(now))
		q := st.IDs[p.Identity]
		var changed bool
		d, changed = quotaPaceStep(q, usOf(now), usDur(p.MaxWait))
		if !changed {
			return nil, nil
		}
		st.Expires = max(st.Expires, q.end())
		return json.Marshal(st)
	})
	return d, err
}

// RefundQuota implements Limiter under the origin's quota file lock.
func (s *FileStore) RefundQuota(ctx context.Context, p QuotaParams, slot QuotaSlot, now time.Time) (bool, error) {
	refunded := false
	err := s.limitStep(ctx, p.Origin, quotaSuffix, func(data []byte) ([]byte, error) {
		if data == nil {
			return nil, nil
		}
		st := loadQuota(data, p.Origin, usOf(now))
		if refunded = quotaRefundStep(st.IDs[p.Identity], slot, usOf(now)); !refunded {
			return nil, nil
		}
		return json.Marshal(st)
	})
	return refunded, err
}

// records lists st's identities as a listing shows them; off moves its
// times to the caller's clock.
func (st quotaState) records(now int64, off time.Duration) []LimitRecord {
	var out []LimitRecord
	for id, q := range st.IDs {
		if q.Reset <= now {
			continue
		}
		r := LimitRecord{Origin: st.Origin, Kind: "quota", Identity: id, QuotaLimit: q.Limit,
			Remaining: q.Remaining, Window: time.Duration(q.Window) * time.Microsecond,
			Reset: time.UnixMicro(q.Reset).Add(off), Policy: q.Policy}
		if q.TAT > now && q.Remaining > 0 {
			// The next paced slot (--rate auto), when it is to come.
			r.NextSlot = time.UnixMicro(q.TAT).Add(off)
		}
		out = append(out, r)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Identity < out[j].Identity })
	return out
}

// LearnQuota implements Limiter, keeping to p.Route.
func (s *FailoverStore) LearnQuota(ctx context.Context, p QuotaParams, o QuotaObservation, now time.Time) (QuotaDecision, error) {
	d, route, err := limiterRoute(ctx, s, p.Route, func(ctx context.Context, l Limiter) (QuotaDecision, error) { return l.LearnQuota(ctx, p, o, now) })
	d.Route = route
	return d, err
}

// RefundQuota implements Limiter, keeping to p.Route.
func (s *FailoverStore) RefundQuota(ctx context.Context, p QuotaParams, slot QuotaSlot, now time.Time) (bool, error) {
	ok, _, err := limiterRoute(ctx, s, p.Route, func(ctx context.Context, l Limiter) (bool, error) { return l.RefundQuota(ctx, p, slot, now) })
	return ok, err
}

// PaceQuota implements Limiter, keeping to p.Route.
func (s *FailoverStore) PaceQuota(ctx context.Context, p QuotaParams, now time.Time) (QuotaDecision, error) {
	d, route, err := limiterRoute(ctx, s, p.Route, func(ctx context.Context, l Limiter) (QuotaDecision, error) { return l.PaceQuota(ctx, p, now) })
	d.Route = route
	return d, err
}
