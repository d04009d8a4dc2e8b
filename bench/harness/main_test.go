package main

import (
	"flag"
	"testing"
)

// The harness's flags come from two files; a name defined twice panics
// when the program starts (as -nginx once did), and so fails this test.
func TestFlagsRegistered(t *testing.T) {
	for _, name := range []string{"refetch", "curl", "nginx", "nginx-bin", "files", "only", "batch-runs"} {
		if flag.Lookup(name) == nil {
			t.Errorf("flag -%s is not defined", name)
		}
	}
}
