package store

// Effect is what an attempt's outcome does to the circuit breaker.
type Effect int

// Breaker effects.
const (
	// Ignore: neither success nor failure (a 429, a permanent 4xx, a
	// cancelled attempt); a half-open trial is released.
	Ignore Effect = iota
	// CountSuccess ends the failure streak; a half-open trial's closes
	// the breaker.
	CountSuccess
	// CountFailure adds to the streak; a half-open trial's may reopen it.
	CountFailure
)
