// Package report writes what a run did in the forms CI systems and
// monitoring read: JUnit XML in Surefire's format (a URL that passed after
// failed attempts is a flaky testcase), TAP, GitHub Actions annotations
// and step summaries, and Prometheus metrics for node_exporter's textfile
// collector. It is fed the records the run already keeps (fetch's reports
// and resilience.Trace), never prints to stdout, and writes every file
// atomically. Every text it writes passes the one secret rule
// (internal/redact) first. See docs/reports.md.
package report

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/refetch/refetch/fetch"
	"github.com/refetch/refetch/internal/atomicfile"
	"github.com/refetch/refetch/internal/escape"
	"github.com/refetch/refetch/internal/redact"
)

// Format is a report's format.
type Format string

// The formats of --report.
const (
	// JUnit is Surefire's XML (surefire-test-report-3.0.xsd).
	JUnit Format = "junit"
	// TAP is TAP version 14.
	TAP Format = "tap"
	// TAP13 is the same document declared as TAP version 13, for
	// harnesses older than TAP 14 (Test::Harness before 3.48 refuses 14);
	// it uses nothing TAP 13 lacks.
	TAP13 Format = "tap13"
)

// Formats are the formats --report takes, in the order help lists them.
var Formats = []Format{JUnit, TAP, TAP13}

// Spec is one --report FORMAT=FILE.
type Spec struct {
	Format Format
	Path   string
}

func (s Spec) String() string { return string(s.Format) + "=" + s.Path }

// ParseSpec parses FORMAT=FILE.
func ParseSpec(v string) (Spec, error) {
	format, path, ok := strings.Cut(v, "=")
	format = strings.ToLower(strings.TrimSpace(format))
	names := make([]string, len(Formats))
	for i, f := range Formats {
		names[i] = string(f)
	}
	if !ok || path == "" {
		return Spec{}, fmt.Errorf("want FORMAT=FILE, FORMAT one of %s (junit=report.xml)", strings.Join(names, ", "))
	}
	if path == "-" {
		return Spec{}, fmt.Errorf("a report goes to a file, never to stdout (which holds the run's own output)")
	}
	for _, f := range Formats {
		if Format(format) == f {
			return Spec{Format: f, Path: path}, nil
		}
	}
	return Spec{}, fmt.Errorf("unknown format %q: want one of %s", format, strings.Join(names, ", "))
}

// Result is the verdict of one testcase.
type Result string

// The results of a testcase.
const (
	// Passed: the first attempt passed (or every request of a probe).
	Passed Result = "passed"
	// Flaky: it passed after failed attempts.
	Flaky Result = "flaky"
	// Failed: it did not pass.
	Failed Result = "failed"
)

// Phase is the time one phase of an attempt took (dns, connect, tls,
// first_byte, body: fetch.Phase's names).
type Phase struct {
	Name string
	D    time.Duration
}

// Attempt is one attempt of a testcase (a request of a probe).
type Attempt struct {
	N      int
	Status int // 0: no response
	// Failed says the attempt did not pass; Class and Message say why.
	Failed  bool
	Class   string
	Message string
	// Duration is the attempt's time; Wait the wait that followed it.
	Duration time.Duration
	Wait     time.Duration
	// Phases are the phases that happened, in order.
	Phases []Phase
	// SpanID is the attempt's traceparent span id, "" without one.
	SpanID string
	// Copies is how many requests a hedged attempt sent (--hedge), 0
	// when it was not hedged; Won is the copy whose answer counted, sent
	// WonAfter into the attempt. Its Phases are that copy's.
	Copies, Won int
	WonAfter    time.Duration
}

// Case is one testcase: one URL of a run (one URL checked, one URL of a
// batch, the URL a probe measured).
type Case struct {
	// Name is the URL; Add redacts it (secret.go).
	Name   string
	Result Result
	// Status is the last response's status, 0 for none.
	Status int
	// Class and Message say why a failed case failed: the class of its
	// last failed attempt (refused, http_503, …) or, with no attempt, the
	// run's failure class (circuit_open, …).
	Class   string
	Message string
	// Latency is the last attempt's time, -1 when none was made.
	Latency time.Duration
	// Time is the case's time: from its start to its verdict.
	Time     time.Duration
	Attempts []Attempt
	// Omitted counts the attempts the run did not keep (a long check
	// keeps its first and latest: fetch.CheckKeepAttempts); they came
	// after the first OmittedAfter of Attempts, and OmittedFailed of
	// them failed.
	Omitted, OmittedAfter, OmittedFailed int
}

// Count is the number of attempts, listed or not.
func (c *Case) Count() int { return len(c.Attempts) + c.Omitted }

// omittedLine says which attempts a case does not list, "" for none.
func (c *Case) omittedLine() string {
	if c.Omitted == 0 {
		return ""
	}
	first := 1
	if c.OmittedAfter > 0 && c.OmittedAfter <= len(c.Attempts) {
		first = c.Attempts[c.OmittedAfter-1].N + 1
	}
	return fmt.Sprintf("attempts %d to %d not listed: %d failed of %d", first, first+c.Omitted-1, c.OmittedFailed, c.Omitted)
}

// FailedAttempts counts the attempts that did not pass, listed or not.
func (c *Case) FailedAttempts() int {
	n := c.OmittedFailed
	for _, a := range c.Attempts {
		if a.Failed {
			n++
		}
	}
	return n
}

// lastFailed is the index of the last failed attempt, -1 for none.
func (c *Case) lastFailed() int {
	for i := len(c.Attempts) - 1; i >= 0; i-- {
		if c.Attempts[i].Failed {
			return i
		}
	}
	return -1
}

// Judge sets Result from passed and the attempts: a passed case with a
// failed attempt is flaky.
func (c *Case) Judge(passed bool) {
	switch {
	case !passed:
		c.Result = Failed
	case c.FailedAttempts() > 0:
		c.Result = Flaky
	default:
		c.Result = Passed
	}
}

// Run is what every report of a run shares.
type Run struct {
	// Command is the command: check, fetch or probe.
	Command string
	// TraceID is the run's W3C trace id (--traceparent), "" without one.
	TraceID string
}

// Summary counts the cases of a run.
type Summary struct {
	Tests, Passed, Flaky, Failed int
	// Elapsed is the run's time.
	Elapsed time.Duration
}

func (s *Summary) add(c *Case) {
	s.Tests++
	switch c.Result {
	case Passed:
		s.Passed++
	case Flaky:
		s.Flaky++
	default:
		s.Failed++
	}
}

// sink is one report being written: cases as they come, the file at the
// end. encode may run concurrently, outside the Set's lock (a batch's
// workers encode in parallel); add runs under it, in order, with what
// encode returned.
type sink interface {
	encode(run *Run, c *Case) ([]byte, error)
	add(run *Run, c *Case, enc []byte) error
	// finish writes the report; close discards what finish did not
	// commit, and is called after finish too.
	finish(run *Run, s Summary) error
	close()
}

// PathError is a report that cannot be written. Found by Open, before the
// run, it is the caller's usage error; found at the end, its output
// error.
type PathError struct {
	What string // "--report junit=FILE", "$GITHUB_STEP_SUMMARY"
	Err  error
}

func (e *PathError) Error() string { return e.What + ": " + e.Err.Error() }
func (e *PathError) Unwrap() error { return e.Err }

// Set is the reports of one run. Its methods may be called on a nil Set
// (no report asked for) and, except Close, from several goroutines.
type Set struct {
	run   Run
	mu    sync.Mutex
	sinks []sink
	names []string
	sum   Summary
	err   error
}

// Open makes a Set writing the reports of specs, each to a temporary file
// in its file's directory, so that a directory that does not exist or
// cannot be written is found before the run. Nothing is written at the
// target until Close.
func Open(ctx context.Context, specs []Spec, run Run) (*Set, error) {
	s := &Set{run: run}
	seen := map[string]string{}
	for _, sp := range specs {
		what := "--report " + sp.String()
		key := filepath.Clean(sp.Path)
		if other, dup := seen[key]; dup {
			s.Discard()
			return nil, &PathError{What: what, Err: fmt.Errorf("%s writes the same file", other)}
		}
		seen[key] = what
		var (
			k   sink
			err error
		)
		switch sp.Format {
		case JUnit:
			k, err = newJUnit(ctx, sp.Path)
		case TAP, TAP13:
			k, err = newTAP(ctx, sp.Path, sp.Format)
		default:
			err = fmt.Errorf("unknown format %q", sp.Format)
		}
		if err != nil {
			s.Discard()
			return nil, &PathError{What: what, Err: err}
		}
		s.sinks, s.names = append(s.sinks, k), append(s.names, what)
	}
	return s, nil
}

// Empty reports whether s writes nothing.
func (s *Set) Empty() bool { return s == nil || len(s.sinks) == 0 }

// add adds a sink made outside Open (GitHub's).
func (s *Set) addSink(k sink, name string) {
	s.sinks, s.names = append(s.sinks, k), append(s.names, name)
}

// Add adds one testcase to every report. Its texts are redacted first.
// An error writing it is kept for Close.
func (s *Set) Add(c Case) {
	if s.Empty() {
		return
	}
	scrub(&c)
	s.mu.Lock()
	sinks, names := s.sinks, s.names
	s.mu.Unlock()
	encs := make([][]byte, len(sinks))
	errs := make([]error, len(sinks))
	for i, k := range sinks {
		encs[i], errs[i] = k.encode(&s.run, &c)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.sinks == nil {
		return // closed or discarded meanwhile
	}
	s.sum.add(&c)
	for i, k := range sinks {
		err := errs[i]
		if err == nil {
			err = k.add(&s.run, &c, encs[i])
		}
		if err != nil && s.err == nil {
			s.err = &PathError{What: names[i], Err: err}
		}
	}
}

// Close writes every report and returns the first error: a report that
// could not be written (every other is still written).
func (s *Set) Close(elapsed time.Duration) error {
	if s.Empty() {
		return nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.sum.Elapsed = elapsed
	err := s.err
	for i, k := range s.sinks {
		if ferr := k.finish(&s.run, s.sum); ferr != nil && err == nil {
			err = &PathError{What: s.names[i], Err: ferr}
		}
		k.close()
	}
	s.sinks = nil
	return err
}

// Discard drops every report unwritten (a run that ended before its
// cases: a usage error, a signal).
func (s *Set) Discard() {
	if s == nil {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, k := range s.sinks {
		k.close()
	}
	s.sinks = nil
}

// target is a report file about to be written, the way -o writes a body
// (fetch.FileSink): a temporary file beside a regular file (or a new
// one), renamed over it at the end; a device or FIFO written through;
// /dev/stdout and /dev/fd/N written to the process's own descriptor, never
// replaced (a report to /dev/stdout once renamed a file over the /dev
// entry itself).
type target struct {
	sink *fetch.FileSink
	w    io.Writer // where the report is written before commit
}

// newTarget sets up the writing of path; ctx ends a wait for a FIFO's
// reader at commit.
func newTarget(ctx context.Context, path string) (*target, error) {
	sink, err := fetch.NewFileSink(ctx, path)
	if err != nil {
		return nil, unnamed(err)
	}
	sink.SetCreateMode(0o644) // a CI system's other users read reports
	w, err := sink.Begin()
	if err != nil {
		sink.Close()
		return nil, err
	}
	return &target{sink: sink, w: w}, nil
}

// spillDir is where a report's temporary spill goes: beside the report
// when it is a file, else the system's temporary directory.
func (t *target) spillDir() string {
	if d := t.sink.TempDir(); d != "" {
		return d
	}
	return os.TempDir()
}

// commit makes what was written the report: synced and renamed over the
// file, or written through.
func (t *target) commit() error { return unnamed(t.sink.Commit()) }

// unnamed is err without the file's name that fetch.OutputError gives
// it: the report's caller names the report ("--report junit=FILE").
func unnamed(err error) error {
	var oe *fetch.OutputError
	if errors.As(err, &oe) {
		return oe.Err
	}
	return err
}

func (t *target) close() {
	if t != nil && t.sink != nil {
		t.sink.Close()
	}
}

// spill holds encoded testcases until the report's head (which counts
// them) can be written: a temporary file, so that memory does not grow
// with a batch's URLs.
type spill struct{ f *atomicfile.File }

func newSpill(dir string) (*spill, error) {
	f, err := atomicfile.Create(dir, "report-cases")
	if err != nil {
		return nil, err
	}
	return &spill{f: f}, nil
}

// Write adds p; an error says what failed in a person's words: the
// spill is a file of refetch's own, not one they named.
func (s *spill) Write(p []byte) (int, error) {
	n, err := s.f.Write(p)
	if err != nil {
		var pe *fs.PathError
		if errors.As(err, &pe) {
			err = pe.Err
		}
		dir := filepath.Dir(s.f.Name())
		if abs, aerr := filepath.Abs(dir); aerr == nil {
			dir = abs
		}
		err = fmt.Errorf("cannot keep its testcases until the end (a temporary file in %s): %w%s", dir, err, fetch.SpaceHint(err))
	}
	return n, err
}

// copyTo writes what was spilled to w.
func (s *spill) copyTo(w io.Writer) error {
	if _, err := s.f.Seek(0, io.SeekStart); err != nil {
		return err
	}
	_, err := io.Copy(w, s.f)
	return err
}

func (s *spill) close() {
	if s != nil && s.f != nil {
		s.f.Close()
	}
}

// SafeURL is u as every report shows it: redact.RawURL's (the password
// of its userinfo and its secret query values replaced by redact.Mask).
func SafeURL(u string) string { return redact.RawURL(u) }

// scrub redacts a case's texts: its URL (SafeURL), and in every message
// URL passwords and the URL's own secret query values.
func scrub(c *Case) {
	secrets := redact.Secrets(c.Name)
	clean := func(s string) string {
		for _, v := range secrets {
			s = strings.ReplaceAll(s, v, redact.Mask)
		}
		return redact.Text(s)
	}
	c.Name = oneLine(SafeURL(c.Name))
	c.Message, c.Class = oneLine(clean(c.Message)), oneLine(c.Class)
	for i := range c.Attempts {
		a := &c.Attempts[i]
		a.Message, a.Class, a.SpanID = oneLine(clean(a.Message)), oneLine(a.Class), oneLine(a.SpanID)
	}
}

// oneLine escapes the control characters of s (CR, LF, ESC, C1…) as Go
// does in a quoted string, so that every text of a report is one line of
// printable characters: a server's words cannot end a YAML block, start a
// workflow command or drive a terminal.
func oneLine(s string) string { return escape.Controls(s) }

// seconds is d in seconds with three decimals (Surefire's time type).
func seconds(d time.Duration) string {
	if d < 0 {
		d = 0
	}
	return fmt.Sprintf("%.3f", d.Seconds())
}

// ms is d in milliseconds to the microsecond.
func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// attemptLine is one attempt in words, for a report's text output:
// "attempt 2: status 503, http_503: 503 Service Unavailable; 4.210ms
// (dns 0.1ms, connect 0.2ms, first_byte 3.9ms); waited 1s; span 00f0…".
func attemptLine(a Attempt) string {
	var b strings.Builder
	fmt.Fprintf(&b, "attempt %d:", a.N)
	if a.Status != 0 {
		fmt.Fprintf(&b, " status %d", a.Status)
	} else {
		b.WriteString(" no response")
	}
	if a.Failed {
		fmt.Fprintf(&b, ", %s", a.Class)
		if a.Message != "" {
			fmt.Fprintf(&b, ": %s", a.Message)
		}
	}
	fmt.Fprintf(&b, "; %gms", ms(a.Duration))
	if a.Copies > 1 {
		// The phases below are the winning copy's, which went later.
		fmt.Fprintf(&b, "; hedged: %d requests, copy %d's answer, sent after %gms", a.Copies, a.Won, ms(a.WonAfter))
	}
	if len(a.Phases) > 0 {
		parts := make([]string, len(a.Phases))
		for i, p := range a.Phases {
			parts[i] = fmt.Sprintf("%s %gms", p.Name, ms(p.D))
		}
		fmt.Fprintf(&b, " (%s)", strings.Join(parts, ", "))
	}
	if a.Wait > 0 {
		fmt.Fprintf(&b, "; waited %gms", ms(a.Wait))
	}
	if a.SpanID != "" {
		fmt.Fprintf(&b, "; span %s", a.SpanID)
	}
	return b.String()
}
