package fetch

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"regexp"
	"strings"
	"time"

	"github.com/itchyny/gojq"
	"github.com/refetch/refetch/resilience"
)

// DefaultCheckBodyLimit bounds the body a health check reads when
// --max-size is not given: enough for any health document.
const DefaultCheckBodyLimit = 1 << 20

// Observation is what one health-check attempt saw.
type Observation struct {
	Status  int
	Header  http.Header
	Body    []byte
	Latency time.Duration
	Err     error
}

// HeaderExpectation requires a response header to match a pattern.
type HeaderExpectation struct {
	Name string
	Re   *regexp.Regexp
}

// Expectations are the conditions of a healthy answer. The zero value
// expects nothing but a response; NewExpectations fills in defaults.
type Expectations struct {
	Status     resilience.StatusSet
	StatusText string // as given, for messages
	Body       *regexp.Regexp
	JSON       *gojq.Code
	JSONText   string
	Headers    []HeaderExpectation
	// MaxLatency bounds the time to the whole body; 0: none.
	MaxLatency time.Duration
}

// ParseHeaderExpectation parses --expect-header 'Name: REGEX'.
func ParseHeaderExpectation(s string) (HeaderExpectation, error) {
	name, pattern, ok := strings.Cut(s, ":")
	name = strings.TrimSpace(name)
	if !ok || name == "" {
		return HeaderExpectation{}, fmt.Errorf("%q: want 'Name: REGEX'", s)
	}
	re, err := regexp.Compile(strings.TrimSpace(pattern))
	if err != nil {
		return HeaderExpectation{}, fmt.Errorf("%q: %v", s, err)
	}
	return HeaderExpectation{Name: http.CanonicalHeaderKey(name), Re: re}, nil
}

// CompileJQ compiles a jq expression for --expect-json.
func CompileJQ(expr string) (*gojq.Code, error) {
	q, err := gojq.Parse(expr)
	if err != nil {
		return nil, err
	}
	return gojq.Compile(q)
}

// Evaluate returns the failed expectations of o, in words; none means healthy.
func (e *Expectations) Evaluate(ctx context.Context, o Observation) []string {
	if o.Err != nil {
		return []string{"no answer: " + Redact(o.Err.Error())}
	}
	var failed []string
	if !e.Status.Contains(o.Status) {
		failed = append(failed, fmt.Sprintf("status %d not in %s", o.Status, e.StatusText))
	}
	if e.MaxLatency > 0 && o.Latency > e.MaxLatency {
		failed = append(failed, fmt.Sprintf("latency %s over %s", o.Latency.Round(time.Millisecond), e.MaxLatency))
	}
	for _, h := range e.Headers {
		values := o.Header.Values(h.Name)
		matched := false
		for _, v := range values {
			matched = matched || h.Re.MatchString(v)
		}
		switch {
		case len(values) == 0:
			failed = append(failed, fmt.Sprintf("header %s missing", h.Name))
		case !matched:
			failed = append(failed, fmt.Sprintf("header %s: %q does not match /%s/", h.Name, RedactHeader(h.Name, values[0]), h.Re))
		}
	}
	if e.Body != nil && !e.Body.Match(o.Body) {
		failed = append(failed, fmt.Sprintf("body does not match /%s/", e.Body))
	}
	if e.JSON != nil {
		if msg := e.evalJSON(ctx, o.Body); msg != "" {
			failed = append(failed, msg)
		}
	}
	return failed
}

// evalJSON runs the jq expression on the body: every value it yields must
// be true, and it must yield at least one.
func (e *Expectations) evalJSON(ctx context.Context, body []byte) string {
	var v any
	if err := json.Unmarshal(body, &v); err != nil {
		return fmt.Sprintf("--expect-json %s: body is not JSON", e.JSONText)
	}
	iter := e.JSON.RunWithContext(ctx, v)
	n := 0
	for {
		out, ok := iter.Next()
		if !ok {
			break
		}
		n++
		if err, isErr := out.(error); isErr {
			var halt *gojq.HaltError
			if errors.As(err, &halt) && halt.Value() == nil {
				break
			}
			return fmt.Sprintf("--expect-json %s: %v", e.JSONText, err)
		}
		if out != true {
			b, _ := gojq.Marshal(out)
			return fmt.Sprintf("--expect-json %s yielded %s, not true", e.JSONText, truncate(string(b), 80))
		}
	}
	if n == 0 {
		return fmt.Sprintf("--expect-json %s yielded nothing", e.JSONText)
	}
	return ""
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}

// Probe sends one health-check request and reads the whole body (bounded),
// whatever the status, so expectations can look at it.
type Probe struct {
	Request *Request
	Client  *http.Client
	// Hooks: only OnRequest and OnResponse are used.
	Hooks Hooks
}

// Do performs attempt n.
func (p *Probe) Do(ctx context.Context, n int) Observation {
	start := time.Now()
	resp, err := p.Request.send(ctx, p.Client, n, p.Hooks)
	if err != nil {
		return Observation{Err: err, Latency: time.Since(start)}
	}
	defer resp.Body.Close()
	limit := p.Request.MaxSize
	if limit <= 0 {
		limit = DefaultCheckBodyLimit
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, limit+1))
	o := Observation{Status: resp.StatusCode, Header: resp.Header, Body: body, Latency: time.Since(start)}
	switch {
	case err != nil:
		o.Err = err
	case int64(len(body)) > limit:
		o.Err = fmt.Errorf("%w (%d bytes)", resilience.ErrTooLarge, limit)
	}
	return o
}
