package resilience

import (
	"math"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Quotas a server advertises (docs/breaker.md, "Quotas the server
// advertises"): ParseQuota reads them from a response's header in three
// dialects, and the Executor turns an exhausted one into a hold on the
// key (the Retry-After mechanism) and, for --rate auto, into a learned
// quota in the store that paces what remains.
//
//   - IETF (draft-ietf-httpapi-ratelimit-headers): RateLimit-Policy, a
//     structured-field list of policies ("default";q=100;w=60), and
//     RateLimit, their live counters ("default";r=0;t=30): r is what
//     remains, t the seconds until the quota resets. Several policies may
//     apply at once; the one that keeps the client out longest governs.
//     The form of earlier versions, a dictionary (limit=100, remaining=0,
//     reset=30), is read too.
//   - RateLimit-Limit, RateLimit-Remaining, RateLimit-Reset: the three
//     fields of the older drafts.
//   - X-RateLimit-Limit, X-RateLimit-Remaining, X-RateLimit-Reset in any
//     case (X-Ratelimit-*): the de-facto dialect.
//
// A reset given as a number is seconds left, unless it is larger than a
// year of seconds: then it is a Unix time, in seconds (in milliseconds
// past 10^12, as some servers send), as GitHub sends it. Every absolute
// time (an epoch, an HTTP-date) is counted from the same response's Date
// (serverNow), so a server whose clock is off is read by its own clock.

// MaxQuotaReset bounds the reset ParseQuota accepts: ten years, the
// program's bound on every duration flag. Further is garbage, ignored;
// within it, --max-retry-after and --max-time decide what a run waits.
const MaxQuotaReset = 10 * 365 * 24 * time.Hour

// epochAfter is where a reset stops being seconds left and becomes a Unix
// time: a year of seconds. No quota window is that long, and every Unix
// time since 1971 is larger.
const epochAfter = 365 * 24 * 3600

// epochMillisAfter: a Unix time larger than this is in milliseconds
// (10^12 ms is 2001; 10^12 s is 33 658 AD).
const epochMillisAfter = 1e12

// Quota is what one response says of the caller's quota.
type Quota struct {
	// Dialect is "ietf", "ratelimit" (the older drafts' three fields) or
	// "x-ratelimit".
	Dialect string
	// Policy names the governing IETF policy ("" for none).
	Policy string
	// Limit is the quota per window, -1 when not said.
	Limit int64
	// Remaining is what is left of it.
	Remaining int64
	// Window is the quota's window, 0 when not said.
	Window time.Duration
	// Reset is the time from the response to the quota's reset, -1 when
	// not said.
	Reset time.Duration
}

// Exhausted reports a quota with nothing left and a known reset in the
// future: until then the server refuses the caller.
func (q Quota) Exhausted() bool { return q.Remaining == 0 && q.Reset > 0 }

// Capped is q with a reset further than MaxRetryAfter (a day) brought
// to it: the bound a Retry-After has (docs/promises.md, "Bounded"). A
// hold or a paced slot never reaches further than a day, so one bad
// header cannot stop every caller for a year; a quota really spent for a
// month then costs one request a day, which learns it again.
func (q Quota) Capped() Quota {
	if q.Reset > MaxRetryAfter {
		q.Reset = MaxRetryAfter
	}
	return q
}

// DialectName is how a person knows q's dialect: the header it came in.
func (q Quota) DialectName() string {
	switch q.Dialect {
	case "ietf":
		return "RateLimit"
	case "ratelimit":
		return "RateLimit-Remaining"
	}
	return "X-RateLimit"
}

// spacing is how long a request should wait for the next under q: the
// reset divided by what remains (an exhausted quota: as good as for
// ever); it orders policies, the largest governs.
func (q Quota) spacing() float64 {
	if q.Reset < 0 {
		return -1
	}
	if q.Remaining == 0 {
		return math.Inf(1) // ties: tighter compares the resets
	}
	return float64(q.Reset) / float64(q.Remaining)
}

// tighter reports whether q keeps a client out longer than p.
func (q Quota) tighter(p Quota) bool {
	qs, ps := q.spacing(), p.spacing()
	if qs == ps {
		return q.Reset > p.Reset
	}
	return qs > ps
}

// ParseQuota reads the quota a response advertises (IETF first, then the
// older drafts' fields, then X-RateLimit-*), counting absolute times from
// its Date (now when it has none). ok is false when the response says
// nothing usable: no remaining count, or one that is not a whole number
// of at least 0. A reset that cannot be read, or lies beyond
// MaxQuotaReset, is not said (-1); a past one is 0.
func ParseQuota(h http.Header, now time.Time) (Quota, bool) {
	if h == nil {
		return Quota{}, false
	}
	if q, ok := parseIETF(h, now); ok {
		return q, true
	}
	for _, d := range []struct{ dialect, prefix string }{{"ratelimit", "Ratelimit-"}, {"x-ratelimit", "X-Ratelimit-"}} {
		rem, ok := quotaInt(firstMember(h.Get(d.prefix + "Remaining")))
		if !ok {
			continue
		}
		q := Quota{Dialect: d.dialect, Limit: -1, Remaining: rem, Reset: -1}
		if l, ok := quotaInt(firstMember(h.Get(d.prefix + "Limit"))); ok {
			q.Limit = l
		}
		if v := h.Get(d.prefix + "Reset"); v != "" {
			q.Reset = resetIn(v, h, now)
		}
		return q, true
	}
	return Quota{}, false
}

// firstMember is the first member of a list field ("100, 100;w=60" is
// 100): the older drafts' RateLimit-Limit may carry policies after it.
func firstMember(v string) string {
	v, _, _ = strings.Cut(v, ",")
	v, _, _ = strings.Cut(v, ";")
	return strings.TrimSpace(v)
}

// quotaInt reads a whole number of at least 0 (at most 2^53, beyond
// which it is garbage).
func quotaInt(s string) (int64, bool) {
	if s == "" || len(s) > 16 {
		return 0, false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return 0, false
		}
	}
	n, err := strconv.ParseInt(s, 10, 64)
	return n, err == nil && n <= 1<<53
}

// quotaSeconds reads a non-negative number of seconds, whole or decimal.
func quotaSeconds(s string) (float64, bool) {
	if s == "" || len(s) > 32 {
		return 0, false
	}
	dot := false
	for i := 0; i < len(s); i++ {
		switch {
		case s[i] >= '0' && s[i] <= '9':
		case s[i] == '.' && !dot && i > 0 && i < len(s)-1:
			dot = true
		default:
			return 0, false
		}
	}
	f, err := strconv.ParseFloat(s, 64)
	return f, err == nil && !math.IsInf(f, 0)
}

// resetIn reads a reset: seconds left, or (past a year of seconds) a Unix
// time, or an HTTP-date, the absolute ones counted from the response's
// Date. -1: not readable, or beyond MaxQuotaReset; 0: past.
func resetIn(v string, h http.Header, now time.Time) time.Duration {
	v = strings.TrimSpace(v)
	secs, ok := quotaSeconds(v)
	var d time.Duration
	switch {
	case !ok:
		t, err := http.ParseTime(v)
		if err != nil {
			return -1
		}
		d = t.Sub(serverNow(h, now))
	case secs <= epochAfter:
		d = secondsDuration(secs)
	default:
		if secs > epochMillisAfter {
			secs /= 1000
		}
		if secs > float64(math.MaxInt64/int64(time.Second)) {
			return -1
		}
		at := time.Unix(0, 0).Add(secondsDuration(secs))
		d = at.Sub(serverNow(h, now))
	}
	switch {
	case d < 0:
		return 0
	case d > MaxQuotaReset:
		return -1
	}
	return d
}

// secondsDuration is secs as a Duration, rounded up to the millisecond
// (a reset read early would send early); secs is at most 2^63 ns.
func secondsDuration(secs float64) time.Duration {
	ms := math.Ceil(secs * 1000)
	if ms >= float64(math.MaxInt64/int64(time.Millisecond)) {
		return math.MaxInt64
	}
	return time.Duration(ms) * time.Millisecond
}

// parseIETF reads RateLimit (with RateLimit-Policy for q and w): the
// governing policy's counters.
func parseIETF(h http.Header, now time.Time) (Quota, bool) {
	members := sfList(h.Values("Ratelimit"))
	if len(members) == 0 {
		return Quota{}, false
	}
	if q, ok := parseIETFDict(members, h, now); ok {
		return q, true
	}
	policies := map[string]sfMember{}
	for _, p := range sfList(h.Values("Ratelimit-Policy")) {
		if _, dup := policies[p.item]; !dup {
			policies[p.item] = p
		}
	}
	var best Quota
	found := false
	for _, m := range members {
		rem, ok := quotaInt(m.params["r"])
		if !ok {
			continue
		}
		q := Quota{Dialect: "ietf", Policy: m.item, Limit: -1, Remaining: rem, Reset: -1}
		if t, ok := quotaSeconds(m.params["t"]); ok {
			q.Reset = secondsDuration(t)
			if q.Reset > MaxQuotaReset {
				q.Reset = -1
			}
		}
		if p, ok := policies[m.item]; ok {
			if l, ok := quotaInt(p.params["q"]); ok {
				q.Limit = l
			}
			if w, ok := quotaSeconds(p.params["w"]); ok && secondsDuration(w) <= MaxQuotaReset {
				q.Window = secondsDuration(w)
			}
		}
		if q.Reset < 0 && q.Window > 0 {
			// No t: the quota resets within its window at the latest.
			q.Reset = q.Window
		}
		if !found || q.tighter(best) {
			best, found = q, true
		}
	}
	return best, found
}

// parseIETFDict reads the dictionary form of the drafts before the
// policies had names: RateLimit: limit=100, remaining=0, reset=30.
func parseIETFDict(members []sfMember, h http.Header, now time.Time) (Quota, bool) {
	vals := map[string]string{}
	for _, m := range members {
		if m.value != "" {
			vals[m.item] = m.value
		}
	}
	rem, ok := quotaInt(vals["remaining"])
	if !ok {
		return Quota{}, false
	}
	q := Quota{Dialect: "ietf", Limit: -1, Remaining: rem, Reset: -1}
	if l, ok := quotaInt(vals["limit"]); ok {
		q.Limit = l
	}
	if v, ok := vals["reset"]; ok {
		q.Reset = resetIn(v, h, now)
	}
	return q, true
}

// sfMember is one member of a structured-field list: its item (a string's
// content, a token or a number as written), the value after "=" when the
// member is a dictionary's (key=value), and its parameters.
type sfMember struct {
	item, value string
	params      map[string]string
}

// maxSFMembers bounds the members read from one field: a server sending
// thousands is not describing its policies.
const maxSFMembers = 64

// sfList parses the structured-field lists (RFC 8941) of a field's lines,
// tolerantly: a member it cannot read is skipped, never the whole field.
// Strings are unquoted (with \" and \\); other values kept as written.
func sfList(lines []string) []sfMember {
	var out []sfMember
	for _, line := range lines {
		s := line
		for len(s) > 0 && len(out) < maxSFMembers {
			var m sfMember
			var ok bool
			m, s, ok = sfParseMember(s)
			if ok {
				out = append(out, m)
			}
			// On to the next member, past the comma.
			i := strings.IndexByte(s, ',')
			if i < 0 {
				break
			}
			s = s[i+1:]
		}
	}
	return out
}

// sfParseMember reads one member at the start of s and returns it with
// the rest of s (at a comma, or where it gave up).
func sfParseMember(s string) (sfMember, string, bool) {
	s = strings.TrimLeft(s, " \t")
	m := sfMember{params: map[string]string{}}
	var ok bool
	if m.item, s, ok = sfValue(s); !ok || m.item == "" {
		return m, s, false
	}
	if strings.HasPrefix(s, "=") {
		if m.value, s, ok = sfValue(s[1:]); !ok {
			return m, s, false
		}
	}
	for {
		s = strings.TrimLeft(s, " \t")
		if !strings.HasPrefix(s, ";") {
			break
		}
		var k, v string
		k, s, ok = sfValue(strings.TrimLeft(s[1:], " \t"))
		if !ok || k == "" {
			return m, s, false
		}
		v = "?1" // a parameter without a value is true
		if strings.HasPrefix(s, "=") {
			if v, s, ok = sfValue(s[1:]); !ok {
				return m, s, false
			}
		}
		// RFC 8941 4.2.3.2: a key given twice takes its last value
		// ("r=5;r=0" says r=0). At most 16 keys are kept.
		if _, dup := m.params[k]; dup || len(m.params) < 16 {
			m.params[k] = v
		}
	}
	s = strings.TrimLeft(s, " \t")
	return m, s, s == "" || s[0] == ','
}

// sfValue reads a string ("..."), or a bare value up to a delimiter.
func sfValue(s string) (string, string, bool) {
	if strings.HasPrefix(s, `"`) {
		var b strings.Builder
		for i := 1; i < len(s); i++ {
			switch c := s[i]; c {
			case '\\':
				if i+1 == len(s) || (s[i+1] != '"' && s[i+1] != '\\') {
					return "", s[i:], false
				}
				i++
				b.WriteByte(s[i])
			case '"':
				return b.String(), s[i+1:], true
			default:
				if c < 0x20 || c > 0x7e {
					return "", s[i:], false
				}
				b.WriteByte(c)
			}
		}
		return "", "", false
	}
	end := strings.IndexAny(s, ",;= \t\"")
	if end < 0 {
		end = len(s)
	}
	return s[:end], s[end:], true
}
