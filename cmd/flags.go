package cmd

import (
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/refetch/refetch/resilience"
	"github.com/spf13/pflag"
)

// RetryFlags are the retry and breaker flags shared by fetch and check.
type RetryFlags struct {
	Attempts      int
	Delay         time.Duration
	Multiplier    float64
	Cap           time.Duration
	Jitter        float64
	MaxTime       time.Duration
	Timeout       time.Duration
	RetryOn       string
	RetryUnsafe   bool
	MaxRetryAfter time.Duration

	BreakerFailures int
	BreakerReset    time.Duration
	BreakerKey      string
	StateDir        string
	Store           string
}

func (r *RetryFlags) register(fs *pflag.FlagSet) {
	d := resilience.DefaultPolicy()
	fs.IntVarP(&r.Attempts, "attempts", "n", d.Attempts, "total attempts, at least 1")
	fs.DurationVar(&r.Delay, "delay", d.Delay, "first wait between attempts")
	fs.Float64Var(&r.Multiplier, "multiplier", d.Multiplier, "growth of each wait, at least 1 (1: fixed delay)")
	fs.DurationVar(&r.Cap, "cap", d.Cap, "longest computed wait (a Retry-After may exceed it)")
	fs.Float64Var(&r.Jitter, "jitter", d.Jitter, "randomize each wait by ±this fraction, 0..1")
	fs.DurationVar(&r.MaxTime, "max-time", 0, "bound on the whole run, waits included (0: none)")
	fs.DurationVar(&r.Timeout, "timeout", d.Timeout, "bound on one attempt, headers and body (0: none)")
	fs.StringVar(&r.RetryOn, "retry-on", resilience.DefaultRetryOn, "retried statuses: codes, ranges (500-504), classes (5xx)")
	fs.BoolVar(&r.RetryUnsafe, "retry-unsafe", false, "retry POST and PATCH like idempotent methods")
	fs.DurationVar(&r.MaxRetryAfter, "max-retry-after", d.MaxRetryAfter, "longest Retry-After honoured; longer stops with exit 6")
	fs.IntVar(&r.BreakerFailures, "breaker-failures", 0, "consecutive failed attempts that open the breaker (default max(3, attempts); 0: off)")
	fs.DurationVar(&r.BreakerReset, "breaker-reset", 60*time.Second, "how long the breaker stays open before one trial")
	fs.StringVar(&r.BreakerKey, "breaker-key", "", "breaker key (default scheme://host:port of the URL)")
	fs.StringVar(&r.StateDir, "state-dir", "", "breaker state dir (default $XDG_STATE_HOME/refetch or ~/.local/state/refetch)")
	fs.StringVar(&r.Store, "store", "", storeFlagUsage)
}

// policy validates the retry flags and returns the policy.
func (r *RetryFlags) policy() (resilience.Policy, error) {
	p := resilience.DefaultPolicy()
	switch {
	case r.Attempts < 1:
		return p, usageErrorf("invalid --attempts %d: must be at least 1", r.Attempts)
	case r.Multiplier < 1 || math.IsNaN(r.Multiplier) || math.IsInf(r.Multiplier, 0):
		return p, usageErrorf("invalid --multiplier %v: must be at least 1", r.Multiplier)
	case !(r.Jitter >= 0 && r.Jitter <= 1):
		return p, usageErrorf("invalid --jitter %v: must be between 0 and 1", r.Jitter)
	case r.BreakerFailures < 0:
		return p, usageErrorf("invalid --breaker-failures %d: must be 0 (off) or more", r.BreakerFailures)
	}
	for name, d := range map[string]time.Duration{"delay": r.Delay, "cap": r.Cap, "max-time": r.MaxTime,
		"timeout": r.Timeout, "max-retry-after": r.MaxRetryAfter, "breaker-reset": r.BreakerReset} {
		if d < 0 {
			return p, usageErrorf("invalid --%s %s: must not be negative", name, d)
		}
	}
	if err := checkStoreFlag(r.Store); err != nil {
		return p, err
	}
	set, err := resilience.ParseStatusSet(r.RetryOn)
	if err != nil {
		return p, usageErrorf("invalid --retry-on: %v", err)
	}
	p.Attempts, p.Delay, p.Multiplier, p.Cap, p.Jitter = r.Attempts, r.Delay, r.Multiplier, r.Cap, r.Jitter
	p.MaxTime, p.Timeout, p.RetryOn, p.RetryUnsafe, p.MaxRetryAfter = r.MaxTime, r.Timeout, set, r.RetryUnsafe, r.MaxRetryAfter
	return p, nil
}

// StateDir resolves the breaker state dir: --state-dir (or
// $REFETCH_STATE_DIR, its variable), $XDG_STATE_HOME/refetch, then
// ~/.local/state/refetch.
func StateDir(flag string, getenv func(string) string) (string, error) {
	if flag != "" {
		return flag, nil
	}
	if x := getenv("XDG_STATE_HOME"); x != "" {
		return filepath.Join(x, "refetch"), nil
	}
	home, err := os.UserHomeDir()
	if err != nil {
		return "", fmt.Errorf("no state dir: set --state-dir or REFETCH_STATE_DIR (%v)", err)
	}
	return filepath.Join(home, ".local", "state", "refetch"), nil
}

// parseSize parses a byte count with an optional K, M, G or T suffix
// (powers of 1024; a trailing B or iB is allowed).
func parseSize(s string) (int64, error) {
	t := strings.ToUpper(strings.TrimSpace(s))
	t = strings.TrimSuffix(strings.TrimSuffix(t, "B"), "I")
	mult := int64(1)
	if n := len(t); n > 0 {
		switch t[n-1] {
		case 'K':
			mult = 1 << 10
		case 'M':
			mult = 1 << 20
		case 'G':
			mult = 1 << 30
		case 'T':
			mult = 1 << 40
		}
		if mult > 1 {
			t = t[:n-1]
		}
	}
	v, err := strconv.ParseInt(strings.TrimSpace(t), 10, 64)
	if err != nil || v < 0 || v > math.MaxInt64/mult {
		return 0, fmt.Errorf("invalid size %q: want bytes with an optional K, M, G or T suffix", s)
	}
	return v * mult, nil
}
