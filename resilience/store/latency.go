package store

import (
	"context"
	"encoding/json"
	"errors"
	"io/fs"
	"math"
	"os"
	"sort"
	"time"

	"github.com/refetch/refetch/internal/regularfile"
)

// The latency summary of an origin, for --hedge auto (docs/fetch.md,
// "Hedged requests"): the times to response headers of its last
// LatencySamples answers, oldest first, a bounded ring rather than a
// growing log. A run reads it in one step (Latency) before its first
// request and adds its own samples in one step (AddLatency) when it ends.
// A record expires LatencyTTL after its last write, as a breaker record
// does at the least. The file store keeps "<hash>.latency" beside the
// breaker's files, under "<hash>.latency.lock"; Redis a list at
// RedisLatencyPrefix+ORIGIN, one key per script (redisstore_latency.go).

// LatencySamples is how many samples a summary keeps.
const LatencySamples = 64

// LatencyTTL is how long a summary outlives its last write.
const LatencyTTL = 24 * time.Hour

// LatencyStore keeps per-origin latency summaries. FileStore, RedisStore
// and FailoverStore implement it; every method is bounded by ctx.
type LatencyStore interface {
	// Latency returns origin's summary (no samples when there is none).
	Latency(ctx context.Context, origin string, now time.Time) (LatencySummary, error)
	// AddLatency appends samples to origin's summary, keeping the last
	// LatencySamples, in one atomic step.
	AddLatency(ctx context.Context, origin string, samples []time.Duration, now time.Time) error
	// ListLatency returns every live summary, sorted by origin.
	ListLatency(ctx context.Context) ([]LatencySummary, error)
	// DeleteLatency removes origin's summary and reports whether there
	// was one.
	DeleteLatency(ctx context.Context, origin string) (bool, error)
	// DeleteAllLatency removes every summary and returns how many.
	DeleteAllLatency(ctx context.Context) (int, error)
}

// LatencySummary is an origin's latency samples, oldest first.
type LatencySummary struct {
	Origin  string
	Samples []time.Duration
}

// Quantile is the q-quantile (0 < q ≤ 1) of the samples by nearest rank:
// the smallest sample at least q of them do not exceed; 0 without samples.
func (s LatencySummary) Quantile(q float64) time.Duration {
	if len(s.Samples) == 0 {
		return 0
	}
	sorted := append([]time.Duration(nil), s.Samples...)
	sort.Slice(sorted, func(i, j int) bool { return sorted[i] < sorted[j] })
	rank := int(math.Ceil(q*float64(len(sorted)))) - 1
	return sorted[min(max(rank, 0), len(sorted)-1)]
}

// latencyState is a summary file; samples in microseconds.
type latencyState struct {
	Origin  string  `json:"origin"`
	Samples []int64 `json:"samples_us"`
	Expires int64   `json:"expires_us"`
}

const latencySuffix = ".latency"

// appendSamples adds samples (µs, at least 1) to ring, keeping the last
// LatencySamples.
func appendSamples(ring []int64, samples []time.Duration) []int64 {
	for _, d := range samples {
		ring = append(ring, max(int64(d/time.Microsecond), 1))
	}
	if len(ring) > LatencySamples {
		ring = append([]int64(nil), ring[len(ring)-LatencySamples:]...)
	}
	return ring
}

func durations(us []int64) []time.Duration {
	out := make([]time.Duration, 0, len(us))
	for _, v := range us {
		if v > 0 {
			out = append(out, time.Duration(v)*time.Microsecond)
		}
	}
	return out
}

// readLatency reads a summary file and reports whether it is live at now
// and belongs to the file (hash) it is in.
func (s *FileStore) readLatency(path string, now time.Time) (latencyState, bool) {
	data, err := regularfile.Read(path)
	if err != nil {
		return latencyState{}, false
	}
	var st latencyState
	if json.Unmarshal(data, &st) != nil || st.Origin == "" || st.Expires < usOf(now) || s.path(st.Origin)+latencySuffix != path {
		return latencyState{}, false
	}
	return st, true
}

// Latency implements LatencyStore: one read of the summary file (it is
// replaced whole, so no lock is needed).
func (s *FileStore) Latency(ctx context.Context, origin string, now time.Time) (LatencySummary, error) {
	st, ok := s.readLatency(s.path(origin)+latencySuffix, now)
	if !ok || st.Origin != origin {
		return LatencySummary{Origin: origin}, nil
	}
	return LatencySummary{Origin: origin, Samples: durations(st.Samples)}, nil
}

// AddLatency implements LatencyStore under the summary's file lock.
func (s *FileStore) AddLatency(ctx context.Context, origin string, samples []time.Duration, now time.Time) error {
	if len(samples) == 0 {
		return nil
	}
	return s.limitStep(ctx, origin, latencySuffix, func(data []byte) ([]byte, error) {
		var st latencyState
		if data != nil && json.Unmarshal(data, &st) != nil || st.Origin != origin || st.Expires < usOf(now) {
			st = latencyState{Origin: origin}
		}
		st.Samples = appendSamples(st.Samples, samples)
		st.Expires = usOf(now.Add(LatencyTTL))
		return json.Marshal(st)
	})
}

// latencyFiles returns the paths of Dir's summary files.
func (s *FileStore) latencyFiles() ([]string, error) { return s.filesEnding(latencySuffix) }

// ListLatency implements LatencyStore.
func (s *FileStore) ListLatency(ctx context.Context) ([]LatencySummary, error) {
	paths, err := s.latencyFiles()
	if err != nil {
		return nil, err
	}
	out := []LatencySummary{}
	now := time.Now()
	for _, p := range paths {
		if st, ok := s.readLatency(p, now); ok {
			out = append(out, LatencySummary{Origin: st.Origin, Samples: durations(st.Samples)})
		}
	}
	sortLatency(out)
	return out, nil
}

func sortLatency(out []LatencySummary) {
	sort.Slice(out, func(i, j int) bool { return out[i].Origin < out[j].Origin })
}

// DeleteLatency implements LatencyStore.
func (s *FileStore) DeleteLatency(ctx context.Context, origin string) (bool, error) {
	base := s.path(origin) + latencySuffix
	if _, err := os.Stat(base); errors.Is(err, fs.ErrNotExist) {
		return false, nil
	} else if err != nil {
		return false, s.dirError(err)
	}
	return s.removeLimit(ctx, base)
}

// DeleteAllLatency implements LatencyStore.
func (s *FileStore) DeleteAllLatency(ctx context.Context) (int, error) {
	paths, err := s.latencyFiles()
	if err != nil {
		return 0, err
	}
	return s.removeEach(ctx, paths)
}

// removeLatencyIfExpired is removeExpired's for a summary file.
func (s *FileStore) removeLatencyIfExpired(ctx context.Context, base string, now time.Time) {
	s.removeIfDead(ctx, base, func() bool {
		_, live := s.readLatency(base, now)
		return !live
	})
}

// viaLatency runs fn on the LatencyStore side of the store s uses.
func viaLatency[T any](ctx context.Context, s *FailoverStore, fn func(context.Context, LatencyStore) (T, error)) (T, error) {
	return failover(ctx, s, func(ctx context.Context, st Store) (T, error) {
		if l, ok := st.(LatencyStore); ok {
			return fn(ctx, l)
		}
		var zero T
		return zero, errNoLatency(st)
	})
}

// Latency implements LatencyStore, through the store in use.
func (s *FailoverStore) Latency(ctx context.Context, origin string, now time.Time) (LatencySummary, error) {
	return viaLatency(ctx, s, func(ctx context.Context, l LatencyStore) (LatencySummary, error) { return l.Latency(ctx, origin, now) })
}

// AddLatency implements LatencyStore, through the store in use.
func (s *FailoverStore) AddLatency(ctx context.Context, origin string, samples []time.Duration, now time.Time) error {
	_, err := viaLatency(ctx, s, func(ctx context.Context, l LatencyStore) (struct{}, error) {
		return struct{}{}, l.AddLatency(ctx, origin, samples, now)
	})
	return err
}

func (s *FailoverStore) ListLatency(ctx context.Context) ([]LatencySummary, error) {
	return viaLatency(ctx, s, func(ctx context.Context, l LatencyStore) ([]LatencySummary, error) { return l.ListLatency(ctx) })
}

func (s *FailoverStore) DeleteLatency(ctx context.Context, origin string) (bool, error) {
	return viaLatency(ctx, s, func(ctx context.Context, l LatencyStore) (bool, error) { return l.DeleteLatency(ctx, origin) })
}

func (s *FailoverStore) DeleteAllLatency(ctx context.Context) (int, error) {
	return viaLatency(ctx, s, func(ctx context.Context, l LatencyStore) (int, error) { return l.DeleteAllLatency(ctx) })
}

func errNoLatency(st Store) error {
	return errors.New("store " + storeName(st, "?") + " keeps no latency summaries")
}
