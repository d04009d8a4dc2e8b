package report

import (
	"bytes"
	"path/filepath"
	"sort"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/common/expfmt"

	"github.com/refetch/refetch/fetch"
	"github.com/refetch/refetch/internal/atomicfile"
)

// Metrics for node_exporter's textfile collector (--metrics FILE): the
// Prometheus text format, made by client_golang from a registry of the
// run's own (no process or Go metrics), written atomically with mode 0644
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

// Metrics is a registry of one run's metrics.
type Metrics struct {
	reg *prometheus.Registry
}

// NewMetrics makes an empty registry.
func NewMetrics() *Metrics { return &Metrics{reg: prometheus.NewRegistry()} }

// AddProbe adds a probe's metrics.
func (m *Metrics) AddProbe(p Probe) {
	url := SafeURL(p.URL)
	labels := prometheus.Labels{"url": url}
	gauge := func(name, help string, v float64) {
		g := prometheus.NewGauge(prometheus.GaugeOpts{Name: name, Help: help, ConstLabels: labels})
		g.Set(v)
		m.reg.MustRegister(g)
	}
	ok, successes := 0.0, 0
	if p.Success {
		ok = 1
	}
	for _, s := range p.Samples {
		if s.Success() {
			successes++
		}
	}
	gauge("refetch_probe_success", "1 when the probe passed: a request succeeded and the rate met --expect-success.", ok)
	gauge("refetch_probe_requests", "Requests the probe sent and finished.", float64(len(p.Samples)))
	gauge("refetch_probe_successes", "Requests that got a complete 2xx response.", float64(successes))
	if len(p.Samples) > 0 {
		gauge("refetch_probe_success_ratio", "Successes over requests, 0 to 1.", float64(successes)/float64(len(p.Samples)))
	}
	gauge("refetch_probe_duration_seconds", "The probe's time, from its first request to its end.", p.Elapsed.Seconds())
	gauge("refetch_probe_last_run_timestamp_seconds", "When the probe ended, in seconds since the epoch.", float64(p.End.UnixNano())/1e9)

	failures := prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "refetch_probe_failures",
		Help: "Failed requests by failure class (refused, reset, closed, timeout, tls, dns, other, redirects, too_large, http_NNN).", ConstLabels: labels},
		[]string{"class"})
	for _, c := range probeClasses {
		failures.WithLabelValues(c)
	}
	phase := prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "refetch_probe_phase_duration_seconds",
		Help:    "Time of each request by phase (dns, connect, tls, first_byte, body; total is the whole request).",
		Buckets: prometheus.DefBuckets, ConstLabels: labels}, []string{"phase"})
	for p := fetch.Phase(0); p < fetch.NumPhases; p++ {
		phase.WithLabelValues(p.String())
	}
	phase.WithLabelValues("total")
	for _, s := range p.Samples {
		if !s.Success() {
			c := string(s.Class)
			if s.Err == nil {
				c = StatusClass(s.Status)
			}
			failures.WithLabelValues(c).Inc()
		}
		for _, ph := range phases(s.Trace) {
			phase.WithLabelValues(ph.Name).Observe(ph.D.Seconds())
		}
		if s.Trace != nil {
			phase.WithLabelValues("total").Observe(s.Trace.Total.Seconds())
		}
	}
	m.reg.MustRegister(failures, phase)
}

// AddBreakers adds the state of breakers, one series set per key.
func (m *Metrics) AddBreakers(bs []Breaker) {
	state := prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "refetch_breaker_state",
		Help: "1 for the breaker's current state, 0 for the others."}, []string{"key", "state"})
	fails := prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "refetch_breaker_consecutive_failures",
		Help: "The fleet-wide streak of failed attempts."}, []string{"key"})
	holds := prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "refetch_breaker_holds",
		Help: "Caller identities held now (a Retry-After recorded on the key)."}, []string{"key"})
	holdLeft := prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "refetch_breaker_hold_remaining_seconds",
		Help: "Time until the latest hold in force ends, 0 for none."}, []string{"key"})
	sort.Slice(bs, func(i, j int) bool { return bs[i].Key < bs[j].Key })
	for _, b := range bs {
		key := SafeURL(oneLine(b.Key))
		known := false
		for _, s := range breakerStates {
			v := 0.0
			if s == b.State {
				v, known = 1, true
			}
			state.WithLabelValues(key, s).Set(v)
		}
		if !known {
			// A newer version's state, kept by name.
			state.WithLabelValues(key, oneLine(b.State)).Set(1)
		}
		fails.WithLabelValues(key).Set(float64(b.ConsecutiveFailures))
		holds.WithLabelValues(key).Set(float64(b.Holds))
		holdLeft.WithLabelValues(key).Set(max(0, b.HoldLeft.Seconds()))
	}
	m.reg.MustRegister(state, fails, holds, holdLeft)
}

// CheckMetricsPath finds, before the run, a --metrics file that cannot be
// written (a missing or read-only directory).
func CheckMetricsPath(path string) error {
	t, err := newTarget(path)
	if err != nil {
		return err
	}
	t.close()
	return nil
}

// Write writes the metrics to path atomically, in the text format.
func (m *Metrics) Write(path string) error {
	mfs, err := m.reg.Gather()
	if err != nil {
		return err
	}
	var buf bytes.Buffer
	enc := expfmt.NewEncoder(&buf, expfmt.NewFormat(expfmt.TypeTextPlain))
	for _, mf := range mfs {
		if err := enc.Encode(mf); err != nil {
			return err
		}
	}
	real := path
	if r, err := filepath.EvalSymlinks(path); err == nil {
		real = r
	}
	return atomicfile.WriteFile(real, buf.Bytes(), 0o644, true)
}
