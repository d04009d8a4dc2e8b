package store

import (
	"context"
	"time"
)

// testParams are settings under which failures never open the breaker:
// a store's record then only counts them.
var testParams = Params{Key: "k", Failures: 1 << 30, Quorum: 1, Node: "n", Reset: time.Minute, TrialTimeout: time.Minute}

// addFailures records n failures of node "n" on key, admitted under
// generation 0 (the generation of a fresh key, which they never change).
func addFailures(ctx context.Context, s Store, key string, n int) error {
	p := testParams
	p.Key = key
	for i := 0; i < n; i++ {
		if _, err := s.Record(ctx, p, Outcome{Effect: CountFailure, Err: "503 Service Unavailable"}, time.Now()); err != nil {
			return err
		}
	}
	return nil
}
