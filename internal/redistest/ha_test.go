package redistest

import (
	"context"
	"testing"
)

// TestSentinelPromotes: the setup's sentinels promote the replica once
// the primary is killed, and the new primary keeps what the old one had
// replicated.
func TestSentinelPromotes(t *testing.T) {
	s := StartSentinel(t, 1)
	ctx := context.Background()
	p := client(s.Primary, nil)
	defer p.Close()
	if err := p.Set(ctx, "k", "v", 0).Err(); err != nil {
		t.Fatal(err)
	}
	if n, err := p.Wait(ctx, 1, 0).Result(); err != nil || n != 1 {
		t.Fatalf("WAIT 1 = %d, %v", n, err)
	}
	Kill(t, s.Primary)
	addr := s.WaitPromoted(t, s.Primary)
	if addr != s.Replica {
		t.Fatalf("promoted %s, want the replica %s", addr, s.Replica)
	}
	r := client(addr, nil)
	defer r.Close()
	if v, err := r.Get(ctx, "k").Result(); err != nil || v != "v" {
		t.Fatalf("GET k on the new primary = %q, %v", v, err)
	}
}

// TestClusterServesEverySlot: keys of many slots land on all three masters.
func TestClusterServesEverySlot(t *testing.T) {
	c := StartCluster(t)
	ctx := context.Background()
	for _, addr := range c.Masters {
		nc := client(addr, nil)
		n, err := nc.ClusterCountKeysInSlot(ctx, 0).Result()
		nc.Close()
		if err != nil || n != 0 {
			t.Fatalf("%s: CLUSTER COUNTKEYSINSLOT 0 = %d, %v", addr, n, err)
		}
	}
}
