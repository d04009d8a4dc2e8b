package cmd

import (
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/refetch/refetch/internal/escape"
	"github.com/refetch/refetch/resilience"
	"github.com/spf13/pflag"
)

// The documented defaults of the retry and breaker flags. They live here,
// in the one layer that resolves settings; the layers below are handed
// resolved values.
const (
	defaultAttempts      = 3
	defaultDelay         = time.Second
	defaultMultiplier    = 2.0
	defaultCap           = 10 * time.Second
	defaultJitter        = 0.5
	defaultTimeout       = 30 * time.Second
	defaultMaxRetryAfter = 60 * time.Second
	defaultBreakerReset  = 60 * time.Second
	// minBreakerFailures is the smallest default threshold: with the
	// default max(3, --attempts), one run that exhausts its retries opens
	// the breaker, while single-attempt runs need three failures in a row.
	minBreakerFailures = 3
	// maxBreakerQuorum is the largest quorum a breaker record can count.
	maxBreakerQuorum = 64
	// staleMaxBytes bounds a stale-cache entry: a stop-gap for API answers
	// and small files, not a mirror.
	staleMaxBytes = 32 << 20
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
	BreakerQuorum   int
	BreakerReset    time.Duration
	BreakerKey      string
	StateDir        string
	Store           string

	// Manners toward the server (cmd/limits.go): --rate N/s|N/m|N/h,
	// --rate-burst, --retry-budget P%.
	Rate        string
	RateBurst   int
	RetryBudget string
	// Resolved by limits().
	rate   rateSpec
	rateOn bool
	budget int

	// Resolved in RunE from the flag set: was the flag given (on the
	// command line or by its variable)?
	AttemptsGiven        bool
	BreakerFailuresGiven bool
	// names says which flags came from their variables, for messages.
	names flagNames
}

// register adds the retry and breaker flags; check gets only those that
// apply to it, with its own defaults in their help.
func (r *RetryFlags) register(fs *pflag.FlagSet, check bool) {
	fs.IntVarP(&r.Attempts, "attempts", "n", defaultAttempts, "total attempts, at least 1")
	fs.DurationVar(&r.Delay, "delay", defaultDelay, "first wait between attempts (0: retry at once)")
	fs.Float64Var(&r.Multiplier, "multiplier", defaultMultiplier, "growth of each wait, at least 1 (1: fixed delay)")
	fs.DurationVar(&r.Cap, "cap", defaultCap, "longest computed wait, a Retry-After may exceed it (0: no cap)")
	fs.Float64Var(&r.Jitter, "jitter", defaultJitter, "randomize each wait by ±this fraction, 0..1")
	fs.DurationVar(&r.MaxTime, "max-time", 0, "bound on the whole run, waits included (0: none)")
	fs.DurationVar(&r.Timeout, "timeout", defaultTimeout, "bound on one attempt, headers and body (0: none)")
	fs.StringVar(&r.RetryOn, "retry-on", defaultRetryOn, "retried statuses: codes, ranges (500-504), classes (5xx)")
	r.MaxRetryAfter = defaultMaxRetryAfter
	if check {
		fs.IntVar(&r.BreakerFailures, "breaker-failures", 0, "consecutive failed attempts that open the breaker (default 0: off for check)")
	} else {
		fs.BoolVar(&r.RetryUnsafe, "retry-unsafe", false, "retry POST and PATCH like idempotent methods (an Idempotency-Key header does too)")
		fs.DurationVar(&r.MaxRetryAfter, "max-retry-after", defaultMaxRetryAfter, "longest Retry-After honoured; longer stops with exit 6 (0: no bound)")
		fs.IntVar(&r.BreakerFailures, "breaker-failures", 0, "consecutive failed attempts that open the breaker (default max(3, attempts); 0: off)")
	}
	fs.IntVar(&r.BreakerQuorum, "breaker-quorum", 1, "distinct nodes (REFETCH_NODE) whose failures it takes to open the breaker, 1 to 64")
	fs.DurationVar(&r.BreakerReset, "breaker-reset", defaultBreakerReset, "how long the breaker stays open before one trial (more than 0)")
	fs.StringVar(&r.BreakerKey, "breaker-key", "", "breaker key (default scheme://host:port of the URL)")
	fs.StringVar(&r.StateDir, "state-dir", "", "breaker state dir (default $XDG_STATE_HOME/refetch or ~/.local/state/refetch)")
	fs.StringVar(&r.Store, "store", "", storeFlagUsage)
	fs.StringVar(&r.Rate, "rate", "", "at most `N/s`, N/m or N/h requests to the URL's origin, every attempt counted, shared through the store; auto: spread the quota the server advertises (0: no limit)")
	fs.IntVar(&r.RateBurst, "rate-burst", 1, "requests to the origin that --rate lets go at once")
	fs.StringVar(&r.RetryBudget, "retry-budget", "", "retries to the origin at most `P%` of first attempts over a minute, plus 3, shared through the store (default 0: no budget)")
}

// resolveGiven records which of the flags with computed defaults were
// given, and which came from their variables; called from RunE.
func (r *RetryFlags) resolveGiven(fs *pflag.FlagSet) {
	r.AttemptsGiven = fs.Changed("attempts")
	r.BreakerFailuresGiven = fs.Changed("breaker-failures")
	r.names = namesOf(fs)
}

// policy validates the retry flags and returns the resolved policy. The
// rule for zero (docs/fetch.md, "What zero means"): for a flag that bounds
// something, 0 means no bound; for an amount, 0 means none of it; where
// zero makes no sense, it is a usage error. A message names the flag, or
// its variable when the value came from there.
func (r *RetryFlags) policy() (resilience.Policy, error) {
	var p resilience.Policy
	n := r.names
	switch {
	case r.Attempts < 1:
		return p, n.invalid("attempts", r.Attempts, "must be at least 1")
	case r.Multiplier < 1 || math.IsNaN(r.Multiplier) || math.IsInf(r.Multiplier, 0):
		return p, n.invalid("multiplier", r.Multiplier, "must be at least 1")
	case !(r.Jitter >= 0 && r.Jitter <= 1):
		return p, n.invalid("jitter", r.Jitter, "must be between 0 and 1")
	case r.BreakerFailures < 0:
		return p, n.invalid("breaker-failures", r.BreakerFailures, "must be 0 (off) or more")
	case r.BreakerQuorum < 1 || r.BreakerQuorum > maxBreakerQuorum:
		return p, n.invalid("breaker-quorum", r.BreakerQuorum, "must be from 1 to %d", maxBreakerQuorum)
	case r.BreakerReset == 0:
		return p, n.invalid("breaker-reset", 0, "a breaker must stay open for some time (e.g. 30s)")
	}
	for _, d := range []struct {
		name string
		v    time.Duration
	}{{"delay", r.Delay}, {"cap", r.Cap}, {"max-time", r.MaxTime}, {"timeout", r.Timeout},
		{"max-retry-after", r.MaxRetryAfter}, {"breaker-reset", r.BreakerReset}} {
		if d.v < 0 {
			return p, n.invalid(d.name, d.v, "must not be negative")
		}
	}
	if err := checkStoreFlag(r.Store, n.flag("store")); err != nil {
		return p, err
	}
	if err := r.limits(); err != nil {
		return p, err
	}
	set, err := resilience.ParseStatusSet(r.RetryOn)
	if err != nil {
		return p, n.invalid("retry-on", strconv.Quote(r.RetryOn), "%v", err)
	}
	p = resilience.Policy{Attempts: r.Attempts, Delay: r.Delay, Multiplier: r.Multiplier, Cap: r.Cap,
		Jitter: r.Jitter, MaxTime: r.MaxTime, Timeout: r.Timeout, RetryOn: set, RetryUnsafe: r.RetryUnsafe,
		MaxRetryAfter: r.MaxRetryAfter}
	return p, nil
}

// breakerFailures resolves the breaker threshold: the flag when given,
// else max(3, attempts); 0 means no breaker.
func (r *RetryFlags) breakerFailures(attempts int) int {
	if r.BreakerFailuresGiven {
		return r.BreakerFailures
	}
	return max(minBreakerFailures, attempts)
}

// errNoStateDir is the error of StateDir when no state dir can be found.
var errNoStateDir = errors.New("no state dir")

// StateDir resolves the breaker state dir: --state-dir (or
// $REFETCH_STATE_DIR, its variable), $XDG_STATE_HOME/refetch when that is
// an absolute path (the XDG spec says relative ones are ignored), then
// $HOME/.local/state/refetch. Without any of them it returns an error
// wrapping errNoStateDir, and callers step aside with a warning.
func StateDir(flag string, getenv func(string) string) (string, error) {
	if flag != "" {
		return flag, nil
	}
	if x := getenv("XDG_STATE_HOME"); filepath.IsAbs(x) {
		return filepath.Join(x, "refetch"), nil
	}
	home := getenv("HOME")
	if runtime.GOOS == "windows" && home == "" {
		home, _ = os.UserHomeDir() // %USERPROFILE%
	}
	if filepath.IsAbs(home) {
		return filepath.Join(home, ".local", "state", "refetch"), nil
	}
	return "", fmt.Errorf("%w: set --state-dir or REFETCH_STATE_DIR (HOME and XDG_STATE_HOME are unset or not absolute)", errNoStateDir)
}

// CacheDir resolves the stale cache dir the same way: $XDG_CACHE_HOME
// when absolute, the system's cache dir on macOS and Windows, else
// $HOME/.cache; plus "refetch".
func CacheDir(getenv func(string) string) (string, error) {
	if x := getenv("XDG_CACHE_HOME"); filepath.IsAbs(x) {
		return filepath.Join(x, "refetch"), nil
	}
	switch runtime.GOOS {
	case "darwin", "windows", "ios", "plan9":
		dir, err := os.UserCacheDir()
		if err != nil {
			return "", fmt.Errorf("no cache dir: %w", err)
		}
		return filepath.Join(dir, "refetch"), nil
	}
	if home := getenv("HOME"); filepath.IsAbs(home) {
		return filepath.Join(home, ".cache", "refetch"), nil
	}
	return "", errors.New("no cache dir: HOME and XDG_CACHE_HOME are unset or not absolute")
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
	switch {
	case errors.Is(err, strconv.ErrRange) && !strings.HasPrefix(strings.TrimSpace(t), "-"), err == nil && v > maxSize/mult:
		return 0, fmt.Errorf("size %q: must be at most 1024T (0: no bound)", s)
	case err != nil || v < 0:
		return 0, fmt.Errorf("invalid size %q: want bytes with an optional K, M, G or T suffix", s)
	}
	return v * mult, nil
}

// maxSize bounds --max-size: 1024T (2^50 bytes), so that a count of
// bytes read past it (the bound plus one, to tell "at the bound" from
// "over it") can never overflow.
const maxSize = 1 << 50

// valueHint says in words what a flag of type typ takes, for messages
// about bad values (instead of Go's parser errors).
func valueHint(typ string) string {
	switch typ {
	case "duration":
		return "want a duration with a unit, such as 500ms, 2s or 1m30s"
	case "int":
		return "want a whole number"
	case "float64":
		return "want a number"
	case "bool":
		return "want true or false"
	}
	return "want a " + typ
}

// nodeName is this machine's name for breaker quorums: $REFETCH_NODE, else
// the hostname.
func nodeName(getenv func(string) string) string {
	if n := getenv("REFETCH_NODE"); n != "" {
		return cleanNode(n)
	}
	if h, err := os.Hostname(); err == nil && h != "" {
		return h
	}
	return "unknown"
}

// maxNodeLen bounds a node name: it is stored in every breaker record the
// node fails on and shown by breaker status.
const maxNodeLen = 128

// cleanNode makes a node name safe to store and show (a tour stored one
// with newlines and escape codes, shown raw by --json): control
// characters and invalid UTF-8 become '?', and it is cut to maxNodeLen
// bytes at a character's boundary.
func cleanNode(n string) string {
	var b strings.Builder
	for _, r := range strings.ToValidUTF8(n, "?") {
		if escape.IsControl(r) {
			r = '?'
		}
		if b.Len()+utf8.RuneLen(r) > maxNodeLen {
			break
		}
		b.WriteRune(r)
	}
	return b.String()
}

// defaultRetryOn is --retry-on's default: the statuses that say "try
// again" (RFC 9110's 408, 425 Too Early, 429, and the 5xx a proxy or an
// overloaded server sends); 501 and 505 are not among them.
const defaultRetryOn = "408,425,429,500,502,503,504"
