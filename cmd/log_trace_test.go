package cmd

import (
	"testing"
	"time"
)

// FormatMillis truncates at the precision it shows, as the reports'
// milliseconds do: never a digit more than --json has.
func TestFormatMillisTruncates(t *testing.T) {
	for d, want := range map[time.Duration]string{
		259 * time.Microsecond:  "0.25ms",
		9 * time.Microsecond:    "0.00ms",
		999999:                  "0.99ms",
		time.Millisecond:        "1.0ms",
		3999 * time.Microsecond: "3.9ms",
		9999999:                 "9.9ms",
		10 * time.Millisecond:   "10ms",
		999999999:               "999ms",
	} {
		if got := FormatMillis(d); got != want {
			t.Errorf("FormatMillis(%v) = %q, want %q", d, got, want)
		}
	}
}
