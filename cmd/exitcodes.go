package cmd

import (
	"fmt"
	"strings"
)

// ExitCodeInfo is one exit code of refetch's contract.
type ExitCodeInfo struct {
	Code int
	// Class names the code in reports (--json's details.class); "" for
	// success and for codes no report carries.
	Class string
	// Short is the code in a few words, for --help; ShortFor says it
	// otherwise for some commands.
	Short    string
	ShortFor map[string]string
	// Meaning is the code in full, for the man pages and the README.
	// Markdown code spans (`-o`) mark flags and commands.
	Meaning string
	// Commands are the commands that exit with it; nil: every command.
	Commands []string
}

// ExitCodes is the one table of refetch's exit codes, which scripts
// depend on: ExitCode maps errors to them, --help, the man pages' EXIT
// STATUS and reports' failure classes are made from it, and a test holds
// the README's table to it.
var ExitCodes = []ExitCodeInfo{
	{ExitOK, "", "ok", map[string]string{"fetch": "ok (also a stale response or fallback served)", "check": "healthy",
		"probe": "the probe finished (whatever the endpoint did)"},
		"success; also when a stale response or a fallback was served (stderr says so)", nil},
	{ExitInternal, "internal", "internal error", map[string]string{"check": "internal error (stdout unusable)"},
		"unexpected internal error (including a local write failure such as a full disk)", nil},
	{ExitUsage, "usage", "usage", nil,
		"usage error: bad flag value, missing or malformed URL, unsupported scheme, unreadable `@file`, `-o` into a missing or unwritable directory", nil},
	{ExitPermanent, "permanent", "not retryable", nil,
		"failed, not retryable: permanent status/error, or an unsafe method not retried", []string{"fetch"}},
	{ExitExhausted, "retries_exhausted", "retries exhausted", nil,
		"retries exhausted: every attempt failed with a retryable failure", []string{"fetch"}},
	{ExitCircuitOpen, "circuit_open", "circuit open", nil,
		"circuit open: no request was sent", []string{"fetch"}},
	{ExitRateLimited, "rate_limited", "rate limited", nil,
		"rate limited: the server's Retry-After (or a spent quota's reset) is beyond `--max-retry-after` or the `--max-time` left; `probe --rate auto`: the server's quota asks for a longer wait than the probe takes", []string{"fetch", "probe"}},
	{ExitDeadline, "deadline", "deadline", nil,
		"deadline: `--max-time` passed (or the next wait would pass it)", []string{"fetch"}},
	{ExitUnhealthy, "unhealthy", "unhealthy", map[string]string{"probe": "success rate below --expect-success, or a request failed with --flaky-fails",
		"fetch": "flaky (--flaky-fails)"},
		"`check`: unhealthy (an expectation failed, or no healthy answer before the time ran out); `probe --expect-success`: the success rate is below the rate; with `--flaky-fails`, a URL that passed only after failed attempts (a batch of several URLs: 9)", []string{"check", "probe", "fetch"}},
	{ExitBatch, "batch", "batch: some URL failed", nil,
		"batch: at least one URL failed (each URL's own code is in its `--json` line); a batch of one URL exits with that URL's code instead", []string{"fetch"}},
	{ExitRetryBudget, "retry_budget", "retry budget spent", nil,
		"retry budget spent: a retryable failure was not retried because the origin's `--retry-budget`, shared through the store, is spent", []string{"fetch"}},
	{ExitSIGHUP, "interrupted", "SIGHUP", nil, "interrupted by SIGHUP", nil},
	{ExitSIGINT, "interrupted", "SIGINT (Ctrl-C)", nil, "interrupted by SIGINT (Ctrl-C)", nil},
	{ExitSIGQUIT, "interrupted", "SIGQUIT (Ctrl-\\)", nil, "interrupted by SIGQUIT (Ctrl-\\)", nil},
	{ExitSIGPIPE, "", "stdout's reader went away", nil,
		"stdout's reader went away (`refetch fetch URL | head -c1`): killed by SIGPIPE, quietly, as every Unix filter is; stderr's reader going away costs nothing but the lost lines", nil},
	{ExitSIGTERM, "interrupted", "SIGTERM", nil, "interrupted by SIGTERM", nil},
}

// failureClasses name the exit codes in reports (details.class).
var failureClasses = func() map[int]string {
	m := map[int]string{}
	for _, e := range ExitCodes {
		if e.Class != "" {
			m[e.Code] = e.Class
		}
	}
	return m
}()

// FailureClass names the failure class of err for reports, from ExitCode,
// so reports and exit codes cannot disagree. It is "" for nil.
func FailureClass(err error) string { return failureClasses[ExitCode(err)] }

// For reports whether e applies to command.
func (e ExitCodeInfo) For(command string) bool {
	if e.Commands == nil {
		return true
	}
	for _, c := range e.Commands {
		if c == command {
			return true
		}
	}
	return false
}

// PlainMeaning is Meaning without Markdown's code spans.
func (e ExitCodeInfo) PlainMeaning() string { return strings.ReplaceAll(e.Meaning, "`", "") }

// exitCodesHelp is the "Exit codes:" paragraph of command's --help, made
// from ExitCodes, wrapped at 78 columns.
func exitCodesHelp(command string) string {
	var parts []string
	for _, e := range ExitCodes {
		if e.For(command) {
			short := e.Short
			if s, ok := e.ShortFor[command]; ok {
				short = s
			}
			parts = append(parts, fmt.Sprintf("%d %s", e.Code, short))
		}
	}
	return wrap("Exit codes: "+strings.Join(parts, ", ")+".", 78)
}

// wrap breaks s into lines of at most width columns, at spaces.
func wrap(s string, width int) string {
	var b strings.Builder
	line := 0
	for i, w := range strings.Fields(s) {
		if i > 0 {
			if line+1+len(w) > width {
				b.WriteByte('\n')
				line = 0
			} else {
				b.WriteByte(' ')
				line++
			}
		}
		b.WriteString(w)
		line += len(w)
	}
	return b.String()
}
