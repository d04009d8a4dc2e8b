package report

import (
	"bufio"
	"bytes"
	"context"
	"encoding/xml"
	"fmt"
	"io"
	"strings"
)

// junit writes Surefire's XML report (surefire-test-report-3.0.xsd): one
// <testsuite> named after the command, with the run's properties, and one
// <testcase> per URL. The testcase of a flaky URL carries one
// <flakyFailure> per failed attempt; that of a failed URL one <failure>
// (its last failed attempt) and one <rerunFailure> per earlier failed
// attempt. Each of those holds the attempt in words in <stackTrace> (which
// the schema requires) and its timings and span id in <system-out>.
// Testcases are spilled to a temporary file as they come, since the
// <testsuite> head counts them.
type junit struct {
	t     *target
	spill *spill
	w     *bufio.Writer
}

func newJUnit(ctx context.Context, path string) (*junit, error) {
	t, err := newTarget(ctx, path)
	if err != nil {
		return nil, err
	}
	sp, err := newSpill(t.spillDir())
	if err != nil {
		t.close()
		return nil, err
	}
	return &junit{t: t, spill: sp, w: bufio.NewWriter(sp)}, nil
}

// xmlText escapes s for XML text and attribute values; characters XML
// cannot hold (most control characters, invalid UTF-8) become U+FFFD.
func xmlText(s string) string {
	var b strings.Builder
	_ = xml.EscapeText(&b, []byte(s))
	return b.String()
}

func (j *junit) add(run *Run, c *Case, enc []byte) error {
	_, err := j.w.Write(enc)
	return err
}

// encode is the testcase's XML.
func (j *junit) encode(run *Run, c *Case) ([]byte, error) {
	var w bytes.Buffer
	fmt.Fprintf(&w, "  <testcase name=\"%s\" classname=\"refetch.%s\" time=\"%s\">\n",
		xmlText(c.Name), xmlText(run.Command), seconds(c.Time))
	last := c.lastFailed()
	elem := func(name string, a Attempt) {
		fmt.Fprintf(&w, "    <%s message=\"%s\" type=\"%s\">\n", name, xmlText(a.Message), xmlText(a.Class))
		fmt.Fprintf(&w, "      <stackTrace>%s</stackTrace>\n", xmlText(attemptLine(a)))
		fmt.Fprintf(&w, "      <system-out>%s</system-out>\n", xmlText(attemptOut(a)))
		fmt.Fprintf(&w, "    </%s>\n", name)
	}
	switch c.Result {
	case Failed:
		// The schema's order: failure, rerunFailure…, then system-out.
		class, msg, text := c.Class, c.Message, c.Message
		if last >= 0 {
			a := c.Attempts[last]
			if class == "" {
				class = a.Class
			}
			text = msg + "\n" + attemptLine(a)
		}
		if class == "" {
			class = "failed"
		}
		fmt.Fprintf(&w, "    <failure message=\"%s\" type=\"%s\">%s</failure>\n", xmlText(msg), xmlText(class), xmlText(text))
		for i, a := range c.Attempts {
			if a.Failed && i != last {
				elem("rerunFailure", a)
			}
		}
	case Flaky:
		for _, a := range c.Attempts {
			if a.Failed {
				elem("flakyFailure", a)
			}
		}
	}
	fmt.Fprintf(&w, "    <system-out>%s</system-out>\n", xmlText(caseOut(run, c)))
	w.WriteString("  </testcase>\n")
	return w.Bytes(), nil
}

// attemptOut is an attempt's <system-out>: its timings and span id, one
// "name: value" a line.
func attemptOut(a Attempt) string {
	var b strings.Builder
	fmt.Fprintf(&b, "attempt: %d\n", a.N)
	if a.Status != 0 {
		fmt.Fprintf(&b, "status: %d\n", a.Status)
	}
	fmt.Fprintf(&b, "duration_ms: %g\n", ms(a.Duration))
	if a.Copies > 1 {
		fmt.Fprintf(&b, "copies: %d\nwon: %d\nwon_sent_ms: %g\n", a.Copies, a.Won, ms(a.WonAfter))
	}
	for _, p := range a.Phases {
		fmt.Fprintf(&b, "%s_ms: %g\n", p.Name, ms(p.D))
	}
	if a.Wait > 0 {
		fmt.Fprintf(&b, "wait_ms: %g\n", ms(a.Wait))
	}
	if a.SpanID != "" {
		fmt.Fprintf(&b, "span_id: %s\n", a.SpanID)
	}
	return b.String()
}

// caseOut is a testcase's <system-out>: its verdict and every attempt.
func caseOut(run *Run, c *Case) string {
	var b strings.Builder
	fmt.Fprintf(&b, "result: %s\nattempts: %d\n", c.Result, c.Count())
	if c.Status != 0 {
		fmt.Fprintf(&b, "status: %d\n", c.Status)
	}
	if run.TraceID != "" {
		fmt.Fprintf(&b, "trace_id: %s\n", run.TraceID)
	}
	for i, a := range c.Attempts {
		if i == c.OmittedAfter && c.Omitted > 0 {
			b.WriteString(c.omittedLine() + "\n")
		}
		b.WriteString(attemptLine(a) + "\n")
	}
	return b.String()
}

func (j *junit) finish(run *Run, s Summary) error {
	if err := j.w.Flush(); err != nil {
		return err
	}
	w := bufio.NewWriter(j.t.w)
	io.WriteString(w, `<?xml version="1.0" encoding="UTF-8"?>`+"\n")
	// A flaky testcase passed: Surefire counts it in tests only.
	fmt.Fprintf(w, "<testsuite name=\"refetch %s\" time=\"%s\" tests=\"%d\" errors=\"0\" skipped=\"0\" failures=\"%d\">\n",
		xmlText(run.Command), seconds(s.Elapsed), s.Tests, s.Failed)
	io.WriteString(w, "  <properties>\n")
	prop := func(name, value string) {
		fmt.Fprintf(w, "    <property name=\"%s\" value=\"%s\"/>\n", xmlText(name), xmlText(value))
	}
	prop("refetch.command", run.Command)
	prop("refetch.flaky", fmt.Sprint(s.Flaky))
	if run.TraceID != "" {
		prop("trace_id", run.TraceID)
	}
	io.WriteString(w, "  </properties>\n")
	if err := w.Flush(); err != nil {
		return err
	}
	if err := j.spill.copyTo(j.t.w); err != nil {
		return err
	}
	if _, err := io.WriteString(j.t.w, "</testsuite>\n"); err != nil {
		return err
	}
	return j.t.commit()
}

func (j *junit) close() {
	j.spill.close()
	j.t.close()
}
