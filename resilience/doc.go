// Package resilience holds the fetch pipeline's policy: classification of one
// attempt, Retry-After parsing, the backoff schedule, the circuit breaker with
// its persisted store, and the stale-response cache.
//
// The composition order is Fallback(Retry(Breaker(attempt))): the breaker
// admits each attempt, the retry loop decides whether and how long to wait,
// and the caller serves a stale response or a fallback when the loop fails.
//
// The package knows HTTP statuses and headers but never prints, never reads
// flags and never exits; callers observe it through Notify callbacks.
package resilience
