package cmd

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/refetch/refetch/fetch"
	"github.com/refetch/refetch/resilience"
)

// TestExitCodeIsInTheTable: every code ExitCode gives, for every kind of
// error the layers return, is a row of ExitCodes, and every row but
// success and SIGPIPE (the kernel's) is given for some error.
func TestExitCodeIsInTheTable(t *testing.T) {
	errs := []error{
		nil, errors.New("bug"), &UsageError{Err: errors.New("bad")}, ErrUnhealthy,
		fmt.Errorf("%w", ErrBatchFailed), fmt.Errorf("%w", fetch.ErrOutput), context.Canceled,
		resilience.ErrCircuitOpen, resilience.ErrRateLimited, resilience.ErrDeadline,
		resilience.ErrRetriesExhausted, resilience.ErrPermanent, resilience.ErrRetryBudget,
	}
	for _, s := range []os.Signal{syscall.SIGHUP, syscall.SIGINT, syscall.SIGQUIT, syscall.SIGTERM} {
		errs = append(errs, &InterruptError{Signal: s})
	}
	table := map[int]ExitCodeInfo{}
	for i, e := range ExitCodes {
		if i > 0 && e.Code <= ExitCodes[i-1].Code {
			t.Errorf("exit code %d out of order", e.Code)
		}
		table[e.Code] = e
	}
	given := map[int]bool{ExitSIGPIPE: true}
	for _, err := range errs {
		code := ExitCode(err)
		given[code] = true
		e, ok := table[code]
		if !ok {
			t.Errorf("ExitCode(%v) = %d: not in ExitCodes", err, code)
		}
		if err != nil && FailureClass(err) != e.Class {
			t.Errorf("FailureClass(%v) = %q, the table says %q", err, FailureClass(err), e.Class)
		}
	}
	for code := range table {
		if !given[code] {
			t.Errorf("exit code %d is in the table, but no error gives it", code)
		}
	}
}

// TestREADMEExitCodesAreTheTable: the README's table is ExitCodes, row for
// row, meaning for meaning.
func TestREADMEExitCodesAreTheTable(t *testing.T) {
	data, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	_, section, ok := strings.Cut(string(data), "\n## Exit codes\n")
	if !ok {
		t.Fatal("README.md has no \"## Exit codes\" section")
	}
	_, section, _ = strings.Cut(section, "|---|---|\n")
	section, _, _ = strings.Cut(section, "\n\n")
	var got, want []string
	for _, line := range strings.Split(section, "\n") {
		got = append(got, line)
	}
	for _, e := range ExitCodes {
		want = append(want, "| "+strconv.Itoa(e.Code)+" | "+strings.ReplaceAll(e.Meaning, "|", `\|`)+" |")
	}
	sort.Strings(got)
	sort.Strings(want)
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("README.md's exit codes differ from ExitCodes:\n got:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}
