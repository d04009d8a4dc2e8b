// Package store keeps the circuit breaker's state where it outlives a
// process, and decides every step of it: a Store runs the breaker's state
// machine (machine.go) on the current record as one atomic
// read-modify-write, so that concurrent runs, in one process or on many
// machines, lose no update and no client retries a compare-and-swap.
//
// Three stores: FileStore (one JSON file per key in a state dir, under a
// file lock), RedisStore (one hash per key, each step a Lua script, the
// twin of machine.go, deciding by the server's clock), and FailoverStore
// (a primary, Redis, that hands over to a secondary, the files, when it
// fails or is slow, so that a fetch never fails because of its store).
// One contract suite (storecontract_test.go) runs against all of them.
//
// The package knows nothing of HTTP: package resilience's Breaker asks it
// to admit attempts and record their outcomes.
package store
