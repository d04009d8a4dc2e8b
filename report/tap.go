package report

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"strings"

	"go.yaml.in/yaml/v3"
)

// tap writes TAP version 14 (or 13, TAP13): a test point per URL as it
// ends, "ok" for a passed or flaky URL and "not ok" for a failed one, each
// followed by a YAML diagnostic block (result, class, attempts with their
// timings and span ids), and the plan at the end, as TAP allows, since
// the number of URLs of a batch read from a file is known only then.
type tap struct {
	t *target
	w *bufio.Writer
	n int
}

func newTAP(ctx context.Context, path string, f Format) (*tap, error) {
	t, err := newTarget(ctx, path)
	if err != nil {
		return nil, err
	}
	version := "14"
	if f == TAP13 {
		version = "13"
	}
	w := bufio.NewWriter(t.w)
	fmt.Fprintf(w, "TAP version %s\n", version)
	return &tap{t: t, w: w}, nil
}

// tapDescription escapes a test point's description: "#" would start a
// directive and "\" escapes, so both are escaped (TAP 14).
func tapDescription(s string) string {
	s = strings.ReplaceAll(s, `\`, `\\`)
	s = strings.ReplaceAll(s, "#", `\#`)
	return strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f {
			return ' '
		}
		return r
	}, s)
}

// tapAttempt and tapCase are the YAML block.
type tapAttempt struct {
	N          int                `yaml:"n"`
	Status     int                `yaml:"status,omitempty"`
	Class      string             `yaml:"class,omitempty"`
	Error      string             `yaml:"error,omitempty"`
	DurationMS float64            `yaml:"duration_ms"`
	TimingsMS  map[string]float64 `yaml:"timings_ms,omitempty"`
	WaitMS     float64            `yaml:"wait_ms,omitempty"`
	SpanID     string             `yaml:"span_id,omitempty"`
	// Copies, Won: a hedged attempt's requests and the one that counted.
	Copies int `yaml:"copies,omitempty"`
	Won    int `yaml:"won,omitempty"`
}

type tapCase struct {
	URL      string       `yaml:"url"`
	Result   Result       `yaml:"result"`
	Class    string       `yaml:"class,omitempty"`
	Message  string       `yaml:"message,omitempty"`
	Status   int          `yaml:"status,omitempty"`
	TimeS    float64      `yaml:"time_s"`
	Failed   int          `yaml:"failed_attempts"`
	Attempts []tapAttempt `yaml:"attempts"`
	// NotListed says which attempts Attempts leaves out (a long check).
	NotListed string `yaml:"attempts_not_listed,omitempty"`
	TraceID   string `yaml:"trace_id,omitempty"`
}

func (t *tap) add(run *Run, c *Case, enc []byte) error {
	t.n++
	ok := "ok"
	if c.Result == Failed {
		ok = "not ok"
	}
	fmt.Fprintf(t.w, "%s %d - %s\n", ok, t.n, tapDescription(c.Name))
	_, err := t.w.Write(enc)
	return err
}

// encode is the test point's YAML block, indented.
func (t *tap) encode(run *Run, c *Case) ([]byte, error) {
	tc := tapCase{URL: c.Name, Result: c.Result, Status: c.Status, TimeS: float64(c.Time.Milliseconds()) / 1000,
		Failed: c.FailedAttempts(), Attempts: []tapAttempt{}, NotListed: c.omittedLine(), TraceID: run.TraceID}
	if c.Result == Failed {
		tc.Class, tc.Message = c.Class, c.Message
		if tc.Class == "" {
			if i := c.lastFailed(); i >= 0 {
				tc.Class = c.Attempts[i].Class
			}
		}
	}
	for _, a := range c.Attempts {
		ta := tapAttempt{N: a.N, Status: a.Status, DurationMS: ms(a.Duration), WaitMS: ms(a.Wait), SpanID: a.SpanID}
		if a.Copies > 1 {
			ta.Copies, ta.Won = a.Copies, a.Won
		}
		if a.Failed {
			ta.Class, ta.Error = a.Class, a.Message
		}
		if len(a.Phases) > 0 {
			ta.TimingsMS = map[string]float64{}
			for _, p := range a.Phases {
				ta.TimingsMS[p.Name] = ms(p.D)
			}
		}
		tc.Attempts = append(tc.Attempts, ta)
	}
	b, err := yaml.Marshal(tc)
	if err != nil {
		return nil, err
	}
	var w bytes.Buffer
	w.WriteString("  ---\n")
	for _, line := range strings.SplitAfter(strings.TrimSuffix(string(b), "\n"), "\n") {
		w.WriteString("  " + line)
	}
	w.WriteString("\n  ...\n")
	return w.Bytes(), nil
}

func (t *tap) finish(run *Run, s Summary) error {
	fmt.Fprintf(t.w, "1..%d\n", t.n)
	if err := t.w.Flush(); err != nil {
		return err
	}
	return t.t.commit()
}

func (t *tap) close() { t.t.close() }
