package cmd

import (
	"errors"
	"fmt"
	"math"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

// The largest values flags take (docs/fetch.md, "What zero means", limits). Each
// is far beyond any real use and far below what the program's arithmetic
// can overflow with.
const (
	// maxFlagDuration bounds every duration flag: 10 years (87600h). The
	// program adds a few of them together (a breaker's reset and its
	// record's lifetime, a deadline and a hold, a hold and the store's
	// slack) and doubles some: time.Duration holds about 292 years, so
	// ten years leaves room for any such sum without overflow. A flag that
	// means "no bound" takes 0, never a huge value.
	maxFlagDuration = 10 * 365 * 24 * time.Hour
	// maxFlagCount bounds every count flag without a smaller bound of its
	// own (--attempts, --breaker-failures, --max-redirs): 2147483647, the
	// largest 32-bit int, so a count fits an int everywhere and no sum or
	// product of it with a small number overflows. "Retry until
	// --max-time" is a large -n, which this leaves room for.
	maxFlagCount = math.MaxInt32
)

// smallerCountBounds are the count flags whose whole range is checked
// where they are used, with its own words: a value past it, even one too
// large for a number, gets those words here too.
var smallerCountBounds = map[string]string{
	"parallel":       fmt.Sprintf("must be from 1 to %d", maxParallel),
	"parallel-host":  fmt.Sprintf("must be from 1 to %d (0: as many as --parallel)", maxParallel),
	"breaker-quorum": fmt.Sprintf("must be from 1 to %d", maxBreakerQuorum),
	"count":          fmt.Sprintf("must be from %d to %d", minProbeCount, maxProbeCount),
}

// durationBoundWords are what a duration flag's bound message adds: how
// to ask for no bound, where 0 means that, or the flag's own narrower
// range, checked where it is used.
var durationBoundWords = map[string]string{
	"timeout":         "; 0 means no bound",
	"max-time":        "; 0 means no bound",
	"cap":             "; 0 means no cap",
	"max-retry-after": "; 0 means no bound",
	"max-latency":     "; 0 means no bound",
	"stale-if-error":  "; 0 serves a saved copy of any age",
}

// boundError is a flag value past its documented maximum. Its message
// replaces the parser's own words, on the command line and in a variable
// alike.
type boundError struct{ why string }

func (e *boundError) Error() string { return e.why }

// durationSyntax is what time.ParseDuration accepts, so that a value it
// refuses although well formed is known to be too large for it. Compiled
// when first needed: package variables are made at every start.
var durationSyntax = sync.OnceValue(func() *regexp.Regexp {
	return regexp.MustCompile(`^[-+]?(([0-9]+(\.[0-9]*)?|\.[0-9]+)(ns|us|µs|μs|ms|s|m|h))+$`)
})

// boundedDuration is a duration flag that refuses values above
// maxFlagDuration, and values too large even to parse, with one line
// naming the bound.
type boundedDuration struct {
	pflag.Value
	why string
}

func (b boundedDuration) Set(s string) error {
	t := strings.TrimSpace(s)
	d, err := time.ParseDuration(t)
	if err != nil && durationSyntax().MatchString(t) && !strings.HasPrefix(t, "-") || err == nil && d > maxFlagDuration {
		return &boundError{b.why}
	}
	return b.Value.Set(s)
}

// boundedInt is an int flag that refuses values above its maximum, and
// values too large even to parse, with one line naming the bound.
type boundedInt struct {
	pflag.Value
	max int64
	why string
}

func (b boundedInt) Set(s string) error {
	v, err := strconv.ParseInt(strings.TrimSpace(s), 0, 64)
	if errors.Is(err, strconv.ErrRange) && !strings.HasPrefix(strings.TrimSpace(s), "-") || err == nil && v > b.max {
		return &boundError{b.why}
	}
	return b.Value.Set(s)
}

// boundFlags puts the maxima on every duration and int flag of c and its
// subcommands, so that no command can forget one and a REFETCH_* variable
// is held to the same bound as its flag.
func boundFlags(c *cobra.Command) {
	bound := func(f *pflag.Flag) {
		switch f.Value.Type() {
		case "duration":
			if _, done := f.Value.(boundedDuration); done {
				return
			}
			why := fmt.Sprintf("must be at most %s (10 years)", shortDuration(maxFlagDuration)) + durationBoundWords[f.Name]
			if f.Name == "interval" {
				why = fmt.Sprintf("must be from %s to %s", shortDuration(minProbeInterval), shortDuration(maxProbeInterval))
			}
			f.Value = boundedDuration{Value: f.Value, why: why}
			if f.DefValue == "0s" {
				// pflag's help omits a zero default only for its own
				// duration type: "0" keeps it omitted for the wrapper.
				f.DefValue = "0"
			}
		case "int":
			if _, done := f.Value.(boundedInt); done {
				return
			}
			why, ok := smallerCountBounds[f.Name]
			if !ok {
				why = fmt.Sprintf("must be at most %d", maxFlagCount)
			}
			f.Value = boundedInt{Value: f.Value, max: maxFlagCount, why: why}
		}
	}
	c.Flags().VisitAll(bound)
	c.PersistentFlags().VisitAll(bound)
	for _, sub := range c.Commands() {
		boundFlags(sub)
	}
}
