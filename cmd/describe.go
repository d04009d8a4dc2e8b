package cmd

import (
	"errors"
	"fmt"
	"strings"

	"github.com/refetch/refetch/resilience/store"

	"github.com/refetch/refetch/fetch"
	"github.com/refetch/refetch/internal/escape"
	"github.com/refetch/refetch/resilience"
)

// describe is the one place that puts an error into words for people and
// reports: the layers below say what happened in their own terms, and
// this adds what only the command layer knows, the flag that sets the
// input at fault (flagNames.name, if it was not named where it came
// back: an output that failed during the run) and the flag that changes
// the outcome (hint). The result is redacted.
func describe(err error) string {
	if err == nil {
		return ""
	}
	return printable(fetch.Redact(flagNames{}.name(err).Error() + hint(err)))
}

// flagRef is a flag as messages write it: its name, and how it is shown
// ("-X", "--cacert").
type flagRef struct{ name, shown string }

// fieldFlags are the flags that set each input of a request that
// fetch.InvalidError reports; the URL is an argument, not a flag.
var fieldFlags = map[fetch.Field]flagRef{
	fetch.FieldMethod:    {"method", "-X"},
	fetch.FieldHeader:    {"header", "-H"},
	fetch.FieldUserAgent: {"user-agent", "-A"},
	fetch.FieldUser:      {"user", "-u"},
	fetch.FieldCACert:    {"cacert", "--cacert"},
}

// The flags of the other inputs the fetch layer reports.
var (
	outputFlag     = flagRef{"output", "-o"}
	expectJSONFlag = flagRef{"expect-json", "--expect-json"}
)

// name calls each error of the fetch layer about one input in err's tree
// (a request field, the output path, a JSON expectation) by the flag that
// sets that input, or by its REFETCH_* variable when the value came from
// there, unless it is named already, and returns err. The fetch layer
// names no flag: it says "output file x: is a directory" until told the
// input's name here, where its error comes back into the command layer
// (gh's FlagErrorf). Its wrappers compose their messages when asked, so
// the name shows wherever the error was wrapped.
func (n flagNames) name(err error) error {
	walkErrors(err, func(e error) {
		switch e := e.(type) {
		case *fetch.InvalidError:
			if f, ok := fieldFlags[e.Field]; ok && e.Flag == "" {
				e.Flag = n.of(f.name, f.shown)
			}
		case *fetch.OutputError:
			if e.Flag == "" {
				e.Flag = n.of(outputFlag.name, outputFlag.shown)
			}
		case *fetch.JSONExpectationError:
			if e.Flag == "" {
				e.Flag = n.of(expectJSONFlag.name, expectJSONFlag.shown)
			}
		}
	})
	return err
}

// walkErrors calls visit for err and every error it wraps, depth first,
// as errors.As goes.
func walkErrors(err error, visit func(error)) {
	if err == nil {
		return
	}
	visit(err)
	switch u := err.(type) {
	case interface{ Unwrap() error }:
		walkErrors(u.Unwrap(), visit)
	case interface{ Unwrap() []error }:
		for _, e := range u.Unwrap() {
			walkErrors(e, visit)
		}
	}
}

// resetKey is the breaker key k as a reset hint gives it: quoted for the
// shell, or "KEY" with a note when k holds a secret (a password, a token
// in its query), which is shown masked, and a command with the mask in
// it would reset nothing.
func resetKey(k string) (key, secretNote string) {
	if fetch.Redact(k) != k {
		return "KEY", "KEY: this run's breaker key, not shown: it holds a secret"
	}
	return shellQuote(k), ""
}

// hint returns the advice for err, naming the flag a person can use, or "".
func hint(err error) string {
	var (
		reset   *resetHint
		re      *resilience.RunError
		open    *resilience.OpenError
		timeout *resilience.TimeoutError
		cut     *fetch.BodyCutError
	)
	switch {
	case errors.As(err, &open):
		hasPlan := errors.As(err, &reset)
		if hasPlan && reset.plan.storeGiven && failedOver(reset.plan.store) {
			// The run fell back to the local state dir: that is where the
			// open breaker is, and an empty REFETCH_STORE keeps a reset
			// from going to the store from the environment.
			key, secret := resetKey(open.Record.Key)
			if secret != "" {
				secret = "; " + secret
			}
			return "; reset with: REFETCH_STORE= refetch breaker reset --state-dir " + shellQuote(reset.plan.dir) + " " +
				key + " (the local state dir: the store was unavailable" + secret + ")"
		}
		where := ""
		if hasPlan && reset.plan.explicitDir {
			where += " --state-dir " + shellQuote(reset.plan.dir)
		}
		tail := ""
		if hasPlan && reset.plan.storeGiven {
			// The same store the run used; its URL may hold a password,
			// so it is not repeated here.
			where += " --store URL"
			tail = " (URL: this run's --store)"
		}
		key, secret := resetKey(open.Record.Key)
		if secret != "" {
			tail += " (" + secret + ")"
		}
		return "; reset with: refetch breaker reset" + where + " " + key + tail
	case errors.As(err, &re) && re.Reason == resilience.ReasonTimeUp,
		errors.As(err, &re) && re.Reason == resilience.ReasonWaitPastDeadline:
		return " (--max-time sets the limit)"
	case errors.As(err, &re) && (re.Reason == resilience.ReasonRetryAfterTooLong || re.Reason == resilience.ReasonHeld) && re.PastDeadline:
		return " (--max-time sets the limit; come back after the server's time)"
	case errors.As(err, &re) && (re.Reason == resilience.ReasonRetryAfterTooLong || re.Reason == resilience.ReasonHeld):
		return " (--max-retry-after sets the longest wait; come back after the server's time)"
	case errors.As(err, &re) && re.Reason == resilience.ReasonUnsafeMethod:
		return " (--retry-unsafe, or an Idempotency-Key header the server honours, retries it anyway)"
	case resilience.IsCertificateError(err):
		return fetch.CertificateAdvice(err)
	case errors.As(err, &timeout) && errors.As(err, &cut) && cut.Read > 0:
		return " (a larger --timeout, or --timeout 0, lets big bodies finish)"
	case errors.As(err, &timeout):
		return " (--timeout sets the limit of one attempt)"
	case errors.Is(err, fetch.ErrTooLarge):
		return " (--max-size sets the limit)"
	case errors.Is(err, fetch.ErrTooManyRedirects):
		return " (--max-redirs sets the limit)"
	}
	return ""
}

// nextStep says what the retry after err does, for its line: "retrying",
// or after a body cut partway, "resuming from byte 5,900,000", or
// "retrying from the start" and why the bytes received cannot be kept.
func nextStep(err error) (step, why string) {
	var cut *fetch.BodyCutError
	switch {
	case !errors.As(err, &cut) || cut.Read == 0:
		return "retrying", ""
	case cut.Resume > 0:
		return "resuming from byte " + fetch.GroupDigits(cut.Resume), ""
	case cut.Restart != "":
		return "retrying from the start", cut.Restart
	}
	return "retrying", ""
}

// shellQuote quotes s for a POSIX shell, so a command refetch suggests can
// be pasted as it is, whatever the key or path holds.
func shellQuote(s string) string {
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// printable escapes what a terminal would act on — control characters,
// escape sequences, line breaks — in text that comes from outside (keys,
// servers' words), so that one line on stderr stays one harmless line.
func printable(s string) string { return escape.Controls(s) }

// failedOver reports whether s is a store that switched to its secondary
// (the local state dir) during the run.
func failedOver(s resilience.Store) bool {
	f, ok := s.(*store.FailoverStore)
	return ok && f.Failed()
}

// stdoutClosedError is the error of a command whose output (what) would go
// to a closed stdout, with what to do instead (remedy). A stdout that is
// /dev/null opened read-write looks closed (see stdoutClosed), and Python's
// subprocess.DEVNULL, Node's "ignore" and daemon(3) give exactly that, so
// the message names that case too: a person who meant to discard the
// output learns how to say so.
func stdoutClosedError(what, remedy string) error {
	return fmt.Errorf("%w: stdout is closed or read-only (or is /dev/null opened read-write, as Python's subprocess.DEVNULL gives it), so %s would be lost: %s",
		fetch.ErrOutput, what, remedy)
}
