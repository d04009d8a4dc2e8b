package report

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"strings"
)

// GitHub Actions: an annotation (a workflow command on stderr, which the
// runner reads as it reads stdout) per failed or flaky URL, and a
// Markdown table appended to $GITHUB_STEP_SUMMARY. Every text in them
// came through scrub (redacted, one line) and is escaped for where it
// goes, so that no server can forge a workflow command or break the table.

// Annotations of each kind that GitHub shows per step; more are listed in
// the log only, so after this many a notice says how many more there are.
const maxAnnotations = 10

// maxSummaryRows bounds the step summary's table (GitHub takes at most
// 1 MiB per step); a line after it counts the URLs it leaves out.
const maxSummaryRows = 1000

// maxCell bounds the text of one table cell, in runes.
const maxCell = 200

// GitHub says where the GitHub Actions output goes.
type GitHub struct {
	// Annotations receives the workflow commands: stderr (stdout holds
	// the run's data).
	Annotations io.Writer
	// SummaryPath is $GITHUB_STEP_SUMMARY, "" for none.
	SummaryPath string
	// FlakyFails is --flaky-fails: a flaky URL fails the run, so its
	// annotation is an error and the summary says the run failed.
	FlakyFails bool
}

// github is the sink of annotations and the step summary. Annotations are
// written at the end, after the run's own lines; the summary's rows are
// spilled until then.
type github struct {
	cfg         GitHub
	rows        *spill
	rw          *bufio.Writer
	nrows       int
	left        Summary // cases past maxSummaryRows
	annotations []string
	errors      int
	warnings    int
}

// AddGitHub adds the GitHub Actions output to s. The summary's file is
// checked now (it must be a file that can be appended to), so that a bad
// $GITHUB_STEP_SUMMARY is found before the run.
func (s *Set) AddGitHub(g GitHub) error {
	k := &github{cfg: g}
	if g.SummaryPath != "" {
		f, err := os.OpenFile(g.SummaryPath, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
		if err != nil {
			return &PathError{What: "$GITHUB_STEP_SUMMARY", Err: err}
		}
		f.Close()
		dir := os.TempDir()
		if k.rows, err = newSpill(dir); err != nil {
			return &PathError{What: "$GITHUB_STEP_SUMMARY", Err: err}
		}
		k.rw = bufio.NewWriter(k.rows)
	}
	s.addSink(k, "$GITHUB_STEP_SUMMARY")
	return nil
}

// CommandData escapes the data of a workflow command (after "::"): %, CR
// and LF (GitHub's workflow command docs).
func CommandData(s string) string {
	s = strings.ReplaceAll(s, "%", "%25")
	s = strings.ReplaceAll(s, "\r", "%0D")
	return strings.ReplaceAll(s, "\n", "%0A")
}

// CommandProperty escapes a workflow command's property value: as data,
// and ":" and "," too, which end a property.
func CommandProperty(s string) string {
	s = CommandData(s)
	s = strings.ReplaceAll(s, ":", "%3A")
	return strings.ReplaceAll(s, ",", "%2C")
}

// MarkdownCell makes s safe in a cell of a GitHub Markdown table: every
// ASCII punctuation character backslash-escaped (CommonMark renders it
// as itself, so |, `, *, <, &, [ and @ neither end the cell nor make code,
// emphasis, HTML, links or mentions), line breaks and other controls
// escaped, long texts cut.
func MarkdownCell(s string) string {
	s = oneLine(s)
	if r := []rune(s); len(r) > maxCell {
		s = string(r[:maxCell]) + "…"
	}
	var b strings.Builder
	for _, r := range s {
		if r < 0x80 && strings.ContainsRune("!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~", r) {
			b.WriteByte('\\')
		}
		b.WriteRune(r)
	}
	return b.String()
}

func (g *github) encode(*Run, *Case) ([]byte, error) { return nil, nil }

func (g *github) add(run *Run, c *Case, _ []byte) error {
	if c.Result != Passed {
		g.annotate(run, c)
	}
	if g.rw == nil {
		return nil
	}
	if g.nrows >= maxSummaryRows {
		g.left.add(c)
		return nil
	}
	g.nrows++
	latency := "–"
	if c.Latency >= 0 && len(c.Attempts) > 0 {
		latency = fmt.Sprintf("%gms", ms(c.Latency))
	}
	class := ""
	switch c.Result {
	case Failed:
		class = failClass(c)
	case Flaky:
		// The classes of the failed attempts before the pass.
		seen := map[string]bool{}
		var classes []string
		for _, a := range c.Attempts {
			if a.Failed && !seen[a.Class] {
				seen[a.Class] = true
				classes = append(classes, a.Class)
			}
		}
		class = strings.Join(classes, ", ")
	}
	result := map[Result]string{Passed: "✅ passed", Flaky: "⚠️ flaky", Failed: "❌ failed"}[c.Result]
	row := fmt.Sprintf("| %s | %s | %d | %s | %s |", MarkdownCell(c.Name), result, c.Count(), latency, MarkdownCell(class))
	if run.TraceID != "" {
		spans := make([]string, 0, len(c.Attempts))
		for _, a := range c.Attempts {
			if a.SpanID != "" {
				spans = append(spans, a.SpanID)
			}
		}
		row += fmt.Sprintf(" %s |", MarkdownCell(strings.Join(spans, " ")))
	}
	_, err := io.WriteString(g.rw, row+"\n")
	return err
}

// failClass is the class a failed case shows: its own, or its last failed
// attempt's.
func failClass(c *Case) string {
	if c.Class != "" {
		return c.Class
	}
	if i := c.lastFailed(); i >= 0 {
		return c.Attempts[i].Class
	}
	return "failed"
}

// annotate keeps the annotation of a failed or flaky case.
func (g *github) annotate(run *Run, c *Case) {
	var kind, title, msg string
	switch {
	case c.Result == Failed:
		if g.errors++; g.errors > maxAnnotations {
			return
		}
		kind = "error"
		title = fmt.Sprintf("refetch %s: %s failed", run.Command, c.Name)
		msg = fmt.Sprintf("%s after %d attempt%s (%s)", c.Message, c.Count(), plural(c.Count()), failClass(c))
	case g.cfg.FlakyFails:
		// Flaky fails the run: an error, as the exit code says.
		if g.errors++; g.errors > maxAnnotations {
			return
		}
		kind = "error"
		title = fmt.Sprintf("refetch %s: %s flaky (--flaky-fails)", run.Command, c.Name)
	default:
		if g.warnings++; g.warnings > maxAnnotations {
			return
		}
		kind = "warning"
		title = fmt.Sprintf("refetch %s: %s flaky", run.Command, c.Name)
	}
	if c.Result != Failed {
		var fails []string
		for _, a := range c.Attempts {
			if a.Failed {
				s := fmt.Sprintf("attempt %d: %s", a.N, a.Class)
				if a.Message != "" {
					s += " (" + a.Message + ")"
				}
				fails = append(fails, s)
			}
		}
		if c.OmittedFailed > 0 {
			fails = append(fails, fmt.Sprintf("%d more not listed", c.OmittedFailed))
		}
		nf := c.FailedAttempts()
		msg = fmt.Sprintf("passed after %d failed attempt%s: %s", nf, plural(nf), strings.Join(fails, "; "))
		if g.cfg.FlakyFails {
			msg = "failed under --flaky-fails: " + msg
		}
	}
	if run.TraceID != "" {
		msg += "; trace " + run.TraceID
	}
	g.annotations = append(g.annotations, fmt.Sprintf("::%s title=%s::%s\n", kind, CommandProperty(title), CommandData(msg)))
}

func plural(n int) string {
	if n == 1 {
		return ""
	}
	return "s"
}

func (g *github) finish(run *Run, s Summary) error {
	var firstErr error
	if w := g.cfg.Annotations; w != nil {
		var b strings.Builder
		for _, a := range g.annotations {
			b.WriteString(a)
		}
		if more := max(0, g.errors-maxAnnotations) + max(0, g.warnings-maxAnnotations); more > 0 {
			fmt.Fprintf(&b, "::notice title=%s::%s\n", CommandProperty("refetch "+run.Command),
				CommandData(fmt.Sprintf("%d more failed or flaky URLs are not annotated: see the step summary or the report", more)))
		}
		if _, err := io.WriteString(w, b.String()); err != nil {
			firstErr = err
		}
	}
	if g.rw == nil {
		return firstErr
	}
	if err := g.rw.Flush(); err != nil {
		return err
	}
	f, err := os.OpenFile(g.cfg.SummaryPath, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
	if err != nil {
		return err
	}
	w := bufio.NewWriter(f)
	verdict := fmt.Sprintf("%d passed", s.Passed)
	if s.Flaky > 0 {
		verdict += fmt.Sprintf(", %d flaky", s.Flaky)
	}
	if s.Failed > 0 {
		verdict += fmt.Sprintf(", %d failed", s.Failed)
	}
	// The title says when the run failed: a URL failed, or, under
	// --flaky-fails, one was flaky.
	outcome := ""
	switch {
	case s.Failed > 0:
		outcome = " failed"
	case s.Flaky > 0 && g.cfg.FlakyFails:
		outcome = " failed"
		verdict += " (--flaky-fails: flaky fails the run)"
	}
	fmt.Fprintf(w, "\n### refetch %s%s: %d URL%s, %s\n\n", run.Command, outcome, s.Tests, plural(s.Tests), verdict)
	if run.TraceID != "" {
		fmt.Fprintf(w, "Trace id: %s\n\n", MarkdownCell(run.TraceID))
	}
	head, rule := "| URL | result | attempts | latency | failure class |", "|---|---|---|---|---|"
	if run.TraceID != "" {
		head, rule = head+" span ids |", rule+"---|"
	}
	fmt.Fprintf(w, "%s\n%s\n", head, rule)
	if err := w.Flush(); err != nil {
		f.Close()
		return err
	}
	if err := g.rows.copyTo(f); err != nil {
		f.Close()
		return err
	}
	if g.left.Tests > 0 {
		fmt.Fprintf(w, "\n%d more URL%s not listed: %d passed, %d flaky, %d failed.\n",
			g.left.Tests, plural(g.left.Tests), g.left.Passed, g.left.Flaky, g.left.Failed)
	}
	if err := w.Flush(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return firstErr
}

func (g *github) close() { g.rows.close() }
