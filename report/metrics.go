package report

import (
	"context"
	"sort"
	"strings"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"google.golang.org/protobuf/proto"

	"github.com/refetch/refetch/fetch"
)

// Metrics for node_exporter's textfile collector (--metrics FILE): the
// Prometheus text format, encoded by expfmt (see Metrics), written atomically with mode 0644
// (the exporter runs as another user). Label values are redacted: a URL
// shows as SafeURL shows it, a breaker key likewise.

// probeClasses are the failure classes a probe counts even at zero, so
// that an alert on one has a series to watch: the design's taxonomy and
// fetch's own two. A failed status adds its http_NNN when seen.
var probeClasses = []string{
	string(fetch.ClassRefused), string(fetch.ClassReset), string(fetch.ClassClosed), string(fetch.ClassTimeout),
	string(fetch.ClassTLS), string(fetch.ClassDNS), string(fetch.ClassOther), string(fetch.ClassRedirects),
	string(fetch.ClassTooLarge),
}

// breakerStates are the states every breaker series lists (1 for the
// current one, 0 for the others).
var breakerStates = []string{"closed", "open", "half-open"}

// Probe is what a probe's metrics say.
type Probe struct {
	URL     string
	Samples []fetch.ProbeSample
	// Success is the probe's verdict (see FromProbe).
	Success bool
	Elapsed time.Duration
	// End is when the probe ended.
	End time.Time
}

// Breaker is one breaker record's state.
type Breaker struct {
	Key                 string
	State               string
	ConsecutiveFailures int
	// Holds counts the identities held now; HoldLeft is the time until
	// the latest of those holds ends.
	Holds    int
	HoldLeft time.Duration
}

// Metrics are one run's metrics, kept as the Prometheus data model
// (client_model's MetricFamily) and written by expfmt, the encoder
// client_golang itself uses. Not client_golang's registry: importing its
// prometheus package registers the Go and process collectors at start-up,
// which cost every run of refetch 0.6-0.7 ms (14% of a 1 KiB fetch) for a
// flag few runs give.
type Metrics struct {
	fams  map[string]*dto.MetricFamily
	hists map[string]*histogram // by family name and label values
}

// NewMetrics makes an empty set of metrics.
func NewMetrics() *Metrics {
	return &Metrics{fams: map[string]*dto.MetricFamily{}, hists: map[string]*histogram{}}
}

// histogram is a classic histogram with client_golang's default buckets
// (prometheus.DefBuckets): an observation counts in the first bucket whose
// upper bound is at least its value.
type histogram struct {
	m      *dto.Metric
	counts []uint64
	sum    float64
	n      uint64
}

var defBuckets = []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10}

func (h *histogram) observe(v float64) {
	if i := sort.SearchFloat64s(defBuckets, v); i < len(defBuckets) {
		h.counts[i]++
	}
	h.sum += v
	h.n++
}

// family returns the family name, made with help and type t if new.
func (m *Metrics) family(name, help string, t dto.MetricType) *dto.MetricFamily {
	f, ok := m.fams[name]
	if !ok {
		f = &dto.MetricFamily{Name: proto.String(name), Help: proto.String(help), Type: t.Enum()}
		m.fams[name] = f
	}
	return f
}

// labelPairs makes the pairs of kv (name, value, name, value...), sorted by
// name as the data model wants them; values are made valid UTF-8.
func labelPairs(kv ...string) []*dto.LabelPair {
	var ls []*dto.LabelPair
	for i := 0; i+1 < len(kv); i += 2 {
		ls = append(ls, &dto.LabelPair{Name: proto.String(kv[i]), Value: proto.String(strings.ToValidUTF8(kv[i+1], "\uFFFD"))})
	}
	sort.Slice(ls, func(i, j int) bool { return ls[i].GetName() < ls[j].GetName() })
	return ls
}

// gauge sets the gauge name{kv} to v.
func (m *Metrics) gauge(name, help string, v float64, kv ...string) {
	f := m.family(name, help, dto.MetricType_GAUGE)
	f.Metric = append(f.Metric, &dto.Metric{Label: labelPairs(kv...), Gauge: &dto.Gauge{Value: proto.Float64(v)}})
}

// hist returns the histogram name{kv}, made if new.
func (m *Metrics) hist(name, help string, kv ...string) *histogram {
	id := name + "\x00" + strings.Join(kv, "\x00")
	h, ok := m.hists[id]
	if !ok {
		f := m.family(name, help, dto.MetricType_HISTOGRAM)
		h = &histogram{m: &dto.Metric{Label: labelPairs(kv...)}, counts: make([]uint64, len(defBuckets))}
		f.Metric = append(f.Metric, h.m)
		m.hists[id] = h
	}
	return h
}

// AddProbe adds a probe's metrics.
func (m *Metrics) AddProbe(p Probe) {
	url := SafeURL(p.URL)
	ok, successes := 0.0, 0
	if p.Success {
		ok = 1
	}
	for _, s := range p.Samples {
		if s.Success() {
			successes++
		}
	}
	m.gauge("refetch_probe_success", "1 when the probe passed: a request succeeded and the rate met --expect-success.", ok, "url", url)
	m.gauge("refetch_probe_requests", "Requests the probe sent and finished.", float64(len(p.Samples)), "url", url)
	m.gauge("refetch_probe_successes", "Requests that got a complete 2xx response.", float64(successes), "url", url)
	if len(p.Samples) > 0 {
		m.gauge("refetch_probe_success_ratio", "Successes over requests, 0 to 1.", float64(successes)/float64(len(p.Samples)), "url", url)
	}
	m.gauge("refetch_probe_duration_seconds", "The probe's time, from its first request to its end.", p.Elapsed.Seconds(), "url", url)
	m.gauge("refetch_probe_last_run_timestamp_seconds", "When the probe ended, in seconds since the epoch.", float64(p.End.UnixNano())/1e9, "url", url)

	failures := map[string]float64{}
	for _, c := range probeClasses {
		failures[c] = 0
	}
	const phaseName = "refetch_probe_phase_duration_seconds"
	const phaseHelp = "Time of each request by phase (dns, connect, tls, first_byte, body; total is the whole request)."
	for ph := fetch.Phase(0); ph < fetch.NumPhases; ph++ {
		m.hist(phaseName, phaseHelp, "phase", ph.String(), "url", url)
	}
	m.hist(phaseName, phaseHelp, "phase", "total", "url", url)
	for _, s := range p.Samples {
		if !s.Success() {
			c := string(s.Class)
			if s.Err == nil {
				c = StatusClass(s.Status)
			}
			failures[c]++
		}
		for _, ph := range phases(s.Trace) {
			m.hist(phaseName, phaseHelp, "phase", ph.Name, "url", url).observe(ph.D.Seconds())
		}
		if s.Trace != nil {
			m.hist(phaseName, phaseHelp, "phase", "total", "url", url).observe(s.Trace.Total.Seconds())
		}
	}
	for c, n := range failures {
		m.gauge("refetch_probe_failures", "Failed requests by failure class (refused, reset, closed, timeout, tls, dns, other, redirects, too_large, http_NNN).",
			n, "class", c, "url", url)
	}
}

// AddBreakers adds the state of breakers, one series set per key.
func (m *Metrics) AddBreakers(bs []Breaker) {
	for _, b := range bs {
		key := SafeURL(oneLine(b.Key))
		known := false
		for _, s := range breakerStates {
			v := 0.0
			if s == b.State {
				v, known = 1, true
			}
			m.gauge("refetch_breaker_state", "1 for the breaker's current state, 0 for the others.", v, "key", key, "state", s)
		}
		if !known {
			// A newer version's state, kept by name.
			m.gauge("refetch_breaker_state", "1 for the breaker's current state, 0 for the others.", 1, "key", key, "state", oneLine(b.State))
		}
		m.gauge("refetch_breaker_consecutive_failures", "The fleet-wide streak of failed attempts.", float64(b.ConsecutiveFailures), "key", key)
		m.gauge("refetch_breaker_holds", "Caller identities held now (a Retry-After recorded on the key).", float64(b.Holds), "key", key)
		m.gauge("refetch_breaker_hold_remaining_seconds", "Time until the latest hold in force ends, 0 for none.", max(0, b.HoldLeft.Seconds()), "key", key)
	}
}

// gather is the families sorted by name, each metric's series sorted by
// label values (as a registry's Gather sorts them), histograms filled in.
func (m *Metrics) gather() []*dto.MetricFamily {
	for _, h := range m.hists {
		var cum uint64
		hist := &dto.Histogram{SampleCount: proto.Uint64(h.n), SampleSum: proto.Float64(h.sum)}
		for i, ub := range defBuckets {
			cum += h.counts[i]
			hist.Bucket = append(hist.Bucket, &dto.Bucket{CumulativeCount: proto.Uint64(cum), UpperBound: proto.Float64(ub)})
		}
		h.m.Histogram = hist
	}
	var out []*dto.MetricFamily
	for _, f := range m.fams {
		sort.SliceStable(f.Metric, func(i, j int) bool { return labelsLess(f.Metric[i].Label, f.Metric[j].Label) })
		// One series per label set: the last value given wins.
		kept := f.Metric[:0]
		for i, mt := range f.Metric {
			if i+1 < len(f.Metric) && !labelsLess(mt.Label, f.Metric[i+1].Label) {
				continue
			}
			kept = append(kept, mt)
		}
		f.Metric = kept
		out = append(out, f)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].GetName() < out[j].GetName() })
	return out
}

// labelsLess orders label sets by their values in label-name order.
func labelsLess(a, b []*dto.LabelPair) bool {
	for i := range min(len(a), len(b)) {
		if a[i].GetValue() != b[i].GetValue() {
			return a[i].GetValue() < b[i].GetValue()
		}
	}
	return len(a) < len(b)
}

// CheckMetricsPath finds, before the run, a --metrics file that cannot be
// written (a missing or read-only directory).
func CheckMetricsPath(ctx context.Context, path string) error {
	t, err := newTarget(ctx, path)
	if err != nil {
		return err
	}
	t.close()
	return nil
}

// Write writes the metrics to path in the text format, the way a report
// is written (replaced atomically, or written through a descriptor,
// device or FIFO).
func (m *Metrics) Write(ctx context.Context, path string) error {
	t, err := newTarget(ctx, path)
	if err != nil {
		return err
	}
	defer t.close()
	enc := expfmt.NewEncoder(t.w, expfmt.NewFormat(expfmt.TypeTextPlain))
	for _, mf := range m.gather() {
		if err := enc.Encode(mf); err != nil {
			return err
		}
	}
	return t.commit()
}
