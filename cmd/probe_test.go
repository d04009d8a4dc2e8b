package cmd

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

func TestParseRate(t *testing.T) {
	for in, want := range map[string]float64{"0.95": 0.95, "95%": 0.95, " 99.5% ": 0.995, "0": 0, "1": 1, "100%": 1, "0%": 0} {
		if got, err := parseRate(in); err != nil || got != want {
			t.Errorf("parseRate(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	for _, bad := range []string{"", "95", "1.5", "-0.1", "101%", "-5%", "NaN", "most", "%", "0.9%%"} {
		if _, err := parseRate(bad); err == nil {
			t.Errorf("parseRate(%q) accepted", bad)
		}
	}
}

// runProbeWithFakeTime runs a probe in-process with an instant timer.
func runProbeWithFakeTime(t *testing.T, f *Factory, args ...string) (int, []time.Duration) {
	t.Helper()
	ft := newFakeTime()
	err := runReplaced(f, NewCmdProbe(f, func(ctx context.Context, o *ProbeOptions) error {
		o.Clock, o.NewTimer = ft.clock, ft.newTimer
		return runProbe(ctx, o)
	}), args)
	return ExitCode(err), ft.clock.Waits()
}

func TestProbeProgressOnlyOnATerminal(t *testing.T) {
	var hits atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if hits.Add(1)%3 == 0 {
			http.Error(w, "busy", http.StatusServiceUnavailable)
			return
		}
		fmt.Fprint(w, "ok")
	}))
	defer srv.Close()
	for _, tc := range []struct {
		tty, quiet, verbose bool
		want                bool
	}{{true, false, false, true}, {true, false, true, true}, {false, false, false, false}, {false, false, true, false}, {true, true, false, false}} {
		f, out, errOut := testFactory(map[string]string{"REFETCH_STATE_DIR": t.TempDir()})
		f.IO.ErrTTY = tc.tty
		args := []string{"probe", "-n", "3", "--interval", "1h", srv.URL}
		if tc.quiet {
			args = append(args, "-q")
		}
		if tc.verbose {
			args = append(args, "-v")
		}
		code, waits := runProbeWithFakeTime(t, f, args...)
		if code != 0 || len(waits) != 2 || waits[0] != time.Hour {
			t.Fatalf("exit %d, waits %v: %s", code, waits, errOut.String())
		}
		got := errOut.String()
		if has := strings.Contains(got, "probing: 3/3 done, 1 failed"); has != tc.want {
			t.Errorf("tty=%v quiet=%v verbose=%v: progress %v, want %v:\n%q", tc.tty, tc.quiet, tc.verbose, has, tc.want, got)
		}
		if tc.want && !strings.HasSuffix(got, "\r\x1b[K") {
			t.Errorf("progress line not cleared at the end: %q", got)
		}
		if strings.Contains(got, "failed> [") || strings.Contains(got, "failed* [") {
			t.Errorf("a -v line was written onto the progress line: %q", got)
		}
		if !strings.Contains(out.String(), "success       2 of 3 (66.7%)") {
			t.Errorf("summary:\n%s", out.String())
		}
	}
}

func TestProbeFlagsFromEnv(t *testing.T) {
	f, _, _ := testFactory(map[string]string{"REFETCH_COUNT": "7", "REFETCH_INTERVAL": "2s", "REFETCH_EXPECT_SUCCESS": "90%"})
	var got *ProbeOptions
	root := NewCmdRoot(f)
	for _, c := range root.Commands() {
		if c.Name() == "probe" {
			root.RemoveCommand(c)
		}
	}
	root.AddCommand(NewCmdProbe(f, func(_ context.Context, o *ProbeOptions) error { got = o; return nil }))
	root.SetArgs([]string{"probe", "--interval", "1s", "-H", "X-A: 1", "http://x"})
	if err := root.Execute(); err != nil {
		t.Fatal(err)
	}
	if got.Count != 7 || got.Interval != time.Second || got.ExpectSuccess != "90%" || got.Timeout != defaultTimeout ||
		len(got.Headers) != 1 || got.URL != "http://x" {
		t.Errorf("options = %+v", got)
	}
}
