package redact

import (
	"maps"
	"testing"
)

// keepState restores, when t ends, the process-wide state a test changes
// (registered values, headers named secret), so that a test that runs
// again (go test -count=2) or after another starts where it expects.
func keepState(t *testing.T) {
	t.Helper()
	regMu.Lock()
	savedHas, savedList := maps.Clone(has), append([]string(nil), list...)
	regMu.Unlock()
	userMu.Lock()
	savedUser := maps.Clone(userSecrets)
	userMu.Unlock()
	t.Cleanup(func() {
		regMu.Lock()
		has, list = savedHas, savedList
		dirty.Store(true)
		regMu.Unlock()
		userMu.Lock()
		userSecrets = savedUser
		userMu.Unlock()
	})
}
