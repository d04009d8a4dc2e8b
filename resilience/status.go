package resilience

import (
	"fmt"
	"strconv"
	"strings"
)

// StatusSet is a set of HTTP status codes, 100 to 599.
type StatusSet struct{ bits [10]uint64 }

// ParseStatusSet parses a comma-separated list of statuses: single codes
// ("503"), ranges ("500-504") and classes ("5xx"). Spaces around items are
// allowed; an empty list is an error.
func ParseStatusSet(s string) (StatusSet, error) {
	var set StatusSet
	if strings.TrimSpace(s) == "" {
		return set, fmt.Errorf("empty status list")
	}
	for _, item := range strings.Split(s, ",") {
		item = strings.TrimSpace(item)
		lo, hi, err := parseStatusItem(item)
		if err != nil {
			return StatusSet{}, err
		}
		for c := lo; c <= hi; c++ {
			set.Add(c)
		}
	}
	return set, nil
}

func parseStatusItem(item string) (int, int, error) {
	bad := fmt.Errorf("status %q is not a code (503), a range (500-504) or a class (5xx)", item)
	if len(item) == 3 && strings.EqualFold(item[1:], "xx") {
		d := int(item[0] - '0')
		if d < 1 || d > 5 {
			return 0, 0, bad
		}
		return d * 100, d*100 + 99, nil
	}
	if lo, hi, ok := strings.Cut(item, "-"); ok {
		l, err1 := statusCode(strings.TrimSpace(lo))
		h, err2 := statusCode(strings.TrimSpace(hi))
		if err1 != nil || err2 != nil || l > h {
			return 0, 0, bad
		}
		return l, h, nil
	}
	c, err := statusCode(item)
	if err != nil {
		return 0, 0, bad
	}
	return c, c, nil
}

func statusCode(s string) (int, error) {
	if len(s) != 3 {
		return 0, strconv.ErrSyntax
	}
	c, err := strconv.Atoi(s)
	if err != nil || c < 100 || c > 599 {
		return 0, strconv.ErrRange
	}
	return c, nil
}

// MustStatusSet is ParseStatusSet for constants; it panics on a bad list.
func MustStatusSet(s string) StatusSet {
	set, err := ParseStatusSet(s)
	if err != nil {
		panic(err)
	}
	return set
}

// Add puts code into the set; codes outside 100..599 are ignored.
func (s *StatusSet) Add(code int) {
	if code < 100 || code > 599 {
		return
	}
	i := code - 100
	s.bits[i/64] |= 1 << (i % 64)
}

// Contains reports whether code is in the set.
func (s StatusSet) Contains(code int) bool {
	if code < 100 || code > 599 {
		return false
	}
	i := code - 100
	return s.bits[i/64]&(1<<(i%64)) != 0
}

// HasRedirect reports whether the set holds any 3xx status.
func (s StatusSet) HasRedirect() bool {
	for c := 300; c <= 399; c++ {
		if s.Contains(c) {
			return true
		}
	}
	return false
}
