package cmd

import (
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/refetch/refetch/resilience"
	"github.com/refetch/refetch/resilience/store"
)

// Manners toward a server (docs/breaker.md, "Rate and retry budget"):
// --rate, --rate-burst and --retry-budget, per origin, shared through the
// breaker's store.
const (
	// budgetWindow is the retry budget's sliding window.
	budgetWindow = time.Minute
	// budgetMin is how many retries an origin's budget allows per window
	// whatever the first attempts: a script run once an hour still
	// retries.
	budgetMin = 3
	// maxRatePerSecond bounds --rate: one request a microsecond, the
	// store's unit.
	maxRatePerSecond = 1_000_000
)

// rateSpec is a parsed --rate: N requests per Per, or Auto.
type rateSpec struct {
	N   int
	Per time.Duration
	// Auto paces by the quota the server advertises (--rate auto).
	Auto bool
}

func (r rateSpec) interval() time.Duration { return r.Per / time.Duration(r.N) }

func (r rateSpec) String() string {
	if r.Auto {
		return "auto"
	}
	unit := map[time.Duration]string{time.Second: "s", time.Minute: "m", time.Hour: "h"}[r.Per]
	return fmt.Sprintf("%d/%s", r.N, unit)
}

// parseRequestRate parses --rate: N/s, N/m or N/h with N a whole number of at
// least 1, or auto; "" or "0" is no rate (the zero table: 0 means no bound).
func parseRequestRate(s string) (rateSpec, bool, error) {
	t := strings.TrimSpace(s)
	if t == "" || t == "0" {
		return rateSpec{}, false, nil
	}
	if strings.EqualFold(t, "auto") {
		return rateSpec{Auto: true}, true, nil
	}
	num, unit, ok := strings.Cut(t, "/")
	per := map[string]time.Duration{"s": time.Second, "m": time.Minute, "h": time.Hour}[strings.ToLower(unit)]
	n, err := strconv.Atoi(num)
	tooLarge := err != nil && errors.Is(err, strconv.ErrRange) && !strings.HasPrefix(strings.TrimSpace(num), "-")
	switch {
	case !ok || per == 0 || err != nil && !errors.Is(err, strconv.ErrRange):
		return rateSpec{}, false, fmt.Errorf("want N/s, N/m or N/h, such as 20/s, or auto (0: no limit)")
	case tooLarge:
		return rateSpec{}, false, fmt.Errorf("too large: at most %d/s", maxRatePerSecond)
	case err != nil || n < 1:
		return rateSpec{}, false, fmt.Errorf("must be at least 1 request per period (0 alone: no limit)")
	case per == time.Second && n > maxRatePerSecond || per/time.Duration(n) < time.Microsecond:
		return rateSpec{}, false, fmt.Errorf("too large: at most %d/s", maxRatePerSecond)
	}
	return rateSpec{N: n, Per: per}, true, nil
}

// parseBudget parses --retry-budget: P% (or P) with P a whole number from
// 0 to 100; 0 is no budget.
func parseBudget(s string) (int, error) {
	t := strings.TrimSpace(s)
	if t == "" {
		return 0, nil
	}
	t = strings.TrimSuffix(t, "%")
	n, err := strconv.Atoi(t)
	if err != nil || n < 0 || n > 100 {
		return 0, fmt.Errorf("want a percentage from 0 to 100, such as 20%% (0: no budget)")
	}
	return n, nil
}

// limits validates --rate, --rate-burst and --retry-budget; it is part of
// policy's checks, so bad values are usage errors before any request.
func (r *RetryFlags) limits() error {
	n := r.names
	rate, on, err := parseRequestRate(r.Rate)
	if err != nil {
		return n.invalid("rate", strconv.Quote(r.Rate), "%v", err)
	}
	if r.RateBurst < 1 {
		return n.invalid("rate-burst", r.RateBurst, "must be at least 1")
	}
	pct, err := parseBudget(r.RetryBudget)
	if err != nil {
		return n.invalid("retry-budget", strconv.Quote(r.RetryBudget), "%v", err)
	}
	r.rate, r.rateOn, r.budget = rate, on, pct
	return nil
}

// burstUnused is the warning for a --rate-burst that does nothing: without
// a fixed --rate (none, or auto, which paces by the server's quota). A
// warning, not a usage error: REFETCH_RATE_BURST may be set for a whole
// fleet whose commands do not all take a fixed rate.
func burstUnused(burst int, rate rateSpec, on bool, n flagNames) string {
	switch {
	case burst == 1:
		return ""
	case !on:
		return fmt.Sprintf("%s does nothing without %s N/s, N/m or N/h", n.set("rate-burst", "--rate-burst", burst), n.flag("rate"))
	case rate.Auto:
		return fmt.Sprintf("%s does nothing with %s: auto paces by the quota the server advertises", n.set("rate-burst", "--rate-burst", burst), n.set("rate", "--rate", "auto"))
	}
	return ""
}

// limitsPlan is the resolved --rate and --retry-budget of a run: nil when
// both are off or no store can be had.
type limitsPlan struct {
	rate   *resilience.Rate
	spec   rateSpec
	budget *resilience.RetryBudget
	// auto: --rate auto, pacing by the learned quota.
	auto  bool
	store store.Limiter
}

// limitsBase resolves the limits once for a run: the breaker's store when
// it has one, else the same store opened for the limits alone.
func (r *RetryFlags) limitsBase(bp *breakerPlan, inFlight int, getenv func(string) string, log *Logger) (*limitsPlan, error) {
	if w := burstUnused(r.RateBurst, r.rate, r.rateOn, r.names); w != "" {
		log.Warnf("%s", w)
	}
	if !r.rateOn && r.budget == 0 {
		return nil, nil
	}
	lp := &limitsPlan{spec: r.rate, auto: r.rate.Auto}
	if r.rateOn && !r.rate.Auto {
		lp.rate = &resilience.Rate{Interval: r.rate.interval(), Burst: r.RateBurst}
	}
	if r.budget > 0 {
		lp.budget = &resilience.RetryBudget{Percent: r.budget, Min: budgetMin, Window: budgetWindow}
	}
	var st resilience.Store
	if bp != nil {
		st = bp.store
	} else {
		dir, err := StateDir(r.StateDir, getenv)
		if err != nil {
			log.Warnf("--rate and --retry-budget disabled for this run: %v", err)
			return nil, nil
		}
		if st, err = openStore(r.Store, dir, r.BreakerReset, inFlight, func(err error) { log.Warnf("%v", err) }); err != nil {
			return nil, err
		}
	}
	l, ok := st.(store.Limiter)
	if !ok {
		return nil, nil
	}
	lp.store = l
	return lp, nil
}

// newLimits is the run's Limits toward u's origin (scheme://host:port as
// BreakerKey derives it, never --breaker-key), for the caller identity
// (fetch.Request.Identity: the quotas it learns and paces by are that
// identity's).
func newLimits(lp *limitsPlan, u *url.URL, identity string, log *Logger) *resilience.Limits {
	if lp == nil {
		return nil
	}
	return &resilience.Limits{Store: lp.store, Origin: BreakerKey(u), Rate: lp.rate, Budget: lp.budget,
		Auto: lp.auto, Identity: identity, Warn: func(err error) { log.Warnf("%v", err) }}
}
