package store

import (
	"encoding/json"
	"fmt"
	"time"
)

// State is a circuit breaker state.
type State int

// Breaker states.
const (
	StateClosed State = iota
	StateOpen
	StateHalfOpen
	// StateUnknown is a state a newer version wrote that this one does
	// not know (Record.StateName has its name). It admits every request
	// and no outcome changes it: this version leaves it to the versions
	// that know it, rather than reset it or act on a guess.
	StateUnknown
)

func (s State) String() string {
	switch s {
	case StateClosed:
		return "closed"
	case StateOpen:
		return "open"
	case StateHalfOpen:
		return "half-open"
	case StateUnknown:
		return "unknown"
	}
	return fmt.Sprintf("state(%d)", int(s))
}

// MarshalText writes the state's name, so files and reports stay readable.
func (s State) MarshalText() ([]byte, error) { return []byte(s.String()), nil }

// UnmarshalText reads a state's name.
func (s *State) UnmarshalText(b []byte) error {
	switch string(b) {
	case "closed":
		*s = StateClosed
	case "open":
		*s = StateOpen
	case "half-open":
		*s = StateHalfOpen
	default:
		return fmt.Errorf("unknown breaker state %q", b)
	}
	return nil
}

// Record is the persisted state of one breaker key. Its times are in
// the clock of whoever reads it: a store that keeps its own clock (Redis)
// translates them.
type Record struct {
	Key                 string `json:"key"`
	State               State  `json:"state"`
	ConsecutiveFailures int    `json:"consecutive_failures"`
	// Generation grows with every state change; an outcome admitted under
	// an earlier generation is discarded.
	Generation uint64     `json:"generation"`
	OpenedAt   *time.Time `json:"opened_at"`
	RetryAt    *time.Time `json:"retry_at"`
	// TrialUntil is the lease of the one half-open trial in flight; once it
	// passes (the trial's process died), another trial may be admitted.
	TrialUntil *time.Time `json:"trial_until,omitempty"`
	LastError  string     `json:"last_error,omitempty"`
	// NodeFailures counts, per node (Settings.Node), the failures since
	// the last success anywhere, for the quorum.
	NodeFailures map[string]int `json:"node_failures,omitempty"`
	// TrialFailures are the nodes whose half-open trial failed since the
	// breaker last turned half-open.
	TrialFailures []string `json:"trial_failures,omitempty"`
	// Holds are servers' "come back later" (Retry-After on a 429 or 503)
	// per caller identity ("" for a caller that sends none): no run with
	// that identity sends a request to the key before it.
	Holds     map[string]time.Time `json:"holds,omitempty"`
	UpdatedAt time.Time            `json:"updated_at"`
	// ExpiresAt is when a FileStore may remove the record (its TTL after
	// the last write, and not before RetryAt or a hold ends); nil: never.
	// (Redis keeps the same as the key's expiry.)
	ExpiresAt *time.Time `json:"expires_at,omitempty"`

	// extra holds the fields this version does not know (a newer
	// version's), kept as they were when the record is saved again;
	// rawState is the name of a StateUnknown.
	extra    map[string]json.RawMessage
	rawState string
}

// StateName is the state's name as stored: a StateUnknown's own name.
func (r Record) StateName() string {
	if r.State == StateUnknown && r.rawState != "" {
		return r.rawState
	}
	return r.State.String()
}
