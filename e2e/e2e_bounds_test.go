package e2e

import (
	"strings"
	"testing"
)

// TestE2EFlagBounds: every duration flag has one maximum, 10 years, and
// every count flag one too, so no arithmetic in the program can overflow
// (a --breaker-reset of 200 years used to overflow the record's
// lifetime). A value past it, or too large even to parse, is exit 2 with
// one line naming the flag (or its variable) and the bound, before any
// request. The bound itself is taken.
func TestE2EFlagBounds(t *testing.T) {
	t.Parallel()
	var c counter
	srv := downServer(t, &c)
	e := newEnv(t)
	const tenYears = "must be at most 87600h (10 years)"
	for _, tc := range []struct {
		cmd  string
		args []string
		env  string
		want string
	}{
		{"fetch", []string{"--breaker-reset", "1500000h"}, "", "invalid --breaker-reset 1500000h: " + tenYears},
		{"fetch", []string{"--breaker-reset", "87601h"}, "", "invalid --breaker-reset 87601h: " + tenYears},
		{"fetch", []string{"--breaker-reset", "99999999999999999h"}, "", "invalid --breaker-reset 99999999999999999h: " + tenYears},
		{"fetch", nil, "REFETCH_BREAKER_RESET=200000h", `invalid REFETCH_BREAKER_RESET="200000h": ` + tenYears},
		{"fetch", []string{"--max-time", "3000000h"}, "", "invalid --max-time 3000000h: " + tenYears + "; 0 means no bound"},
		{"fetch", []string{"--timeout", "100000h"}, "", "invalid --timeout 100000h: " + tenYears},
		{"fetch", []string{"--delay", "100000h"}, "", "invalid --delay 100000h: " + tenYears},
		{"fetch", []string{"--cap", "100000h"}, "", "invalid --cap 100000h: " + tenYears},
		{"fetch", []string{"--max-retry-after", "100000h"}, "", "invalid --max-retry-after 100000h: " + tenYears},
		{"fetch", []string{"--stale-if-error", "100000h"}, "", "invalid --stale-if-error 100000h: " + tenYears + "; 0 serves"},
		{"fetch", nil, "REFETCH_STALE_IF_ERROR=9999999999999h", `invalid REFETCH_STALE_IF_ERROR="9999999999999h": ` + tenYears},
		{"check", []string{"--wait", "100000h"}, "", "invalid --wait 100000h: " + tenYears},
		{"check", []string{"--max-latency", "100000h"}, "", "invalid --max-latency 100000h: " + tenYears},
		{"probe", []string{"--timeout", "100000h"}, "", "invalid --timeout 100000h: " + tenYears},
		{"probe", []string{"--interval", "100000h"}, "", "invalid --interval 100000h: must be from 10ms to 1h"},
		{"fetch", []string{"-n", "99999999999999999999"}, "", "invalid --attempts 99999999999999999999: must be at most 2147483647"},
		{"fetch", []string{"-n", "2147483648"}, "", "invalid --attempts 2147483648: must be at most 2147483647"},
		{"fetch", nil, "REFETCH_ATTEMPTS=99999999999999999999", `invalid REFETCH_ATTEMPTS="99999999999999999999": must be at most 2147483647`},
		{"fetch", []string{"--breaker-failures", "2147483648"}, "", "invalid --breaker-failures 2147483648: must be at most 2147483647"},
		{"fetch", []string{"--max-redirs", "99999999999999999999"}, "", "invalid --max-redirs 99999999999999999999: must be at most 2147483647"},
		{"fetch", nil, "REFETCH_MAX_REDIRS=2147483648", `invalid REFETCH_MAX_REDIRS="2147483648": must be at most 2147483647`},
		{"fetch", []string{"-P", "99999999999999999999", srv.URL + "/b"}, "", "invalid --parallel 99999999999999999999: must be from 1 to 1024"},
		// With one URL too (a tour found them accepted, where the same
		// command line with two URLs failed).
		{"fetch", []string{"-P", "0"}, "", "invalid --parallel 0: must be from 1 to 1024"},
		{"fetch", []string{"-P", "2000"}, "", "invalid --parallel 2000: must be from 1 to 1024"},
		{"fetch", []string{"--parallel-host", "-1"}, "", "invalid --parallel-host -1: must be from 1 to 1024"},
		{"fetch", nil, "REFETCH_PARALLEL=0", "invalid REFETCH_PARALLEL=0: must be from 1 to 1024"},
		{"fetch", []string{"--hedge", "87601h"}, "", `invalid --hedge "87601h": must be at most 87600h (10 years)`},
		{"fetch", []string{"--hedge", "99999999999h"}, "", `invalid --hedge "99999999999h": must be at most 87600h (10 years)`},
		{"fetch", []string{"--max-size", "1025T"}, "", `invalid --max-size: size "1025T": must be at most 1024T`},
		{"fetch", []string{"--max-size", "9223372036854775807"}, "", `must be at most 1024T`},
		{"fetch", nil, "REFETCH_MAX_SIZE=99999999999999999999", `REFETCH_MAX_SIZE`},
		{"probe", []string{"-n", "99999999999999999999"}, "", "must be from 1 to 10000"},
	} {
		before := c.get()
		r := e.with(tc.env).run(append(append([]string{tc.cmd}, tc.args...), srv.URL)...)
		r.wantCode(t, 2)
		if !strings.Contains(r.stderr, tc.want) || strings.Count(strings.TrimSpace(r.stderr), "\n") != 0 {
			t.Errorf("%s %v %s: stderr %q, want one line with %q", tc.cmd, tc.args, tc.env, r.stderr, tc.want)
		}
		if c.get() != before {
			t.Errorf("%s %v %s: a request was sent", tc.cmd, tc.args, tc.env)
		}
	}
	// At the bound: a breaker that stays open for ten years works.
	e.run(args("-n", "1", "--breaker-failures", "1", "--breaker-reset", "87600h", srv.URL)...).wantCode(t, 4)
	r := e.run(args("-n", "1", "--breaker-failures", "1", "--breaker-reset", "87600h", srv.URL)...)
	r.wantCode(t, 5)
	if !strings.Contains(r.stderr, "in 87600h") {
		t.Errorf("stderr: %s", r.stderr)
	}
	e.run(args("-n", "2147483647", "--max-time", "87600h", "--max-size", "1024T", "--max-redirs", "2147483647",
		"--breaker-failures", "0", "--timeout", "87600h", "--stale-if-error", "87600h", "--max-retry-after", "87600h", "--cap", "87600h",
		srv.URL+"/x", "--delay", "0", "--retry-on", "500")...).wantCode(t, 3)
}
