package store

import (
	"context"
	"strconv"
	"strings"
	"time"
)

// The latency summaries in Redis (latency.go): a list at
// RedisLatencyPrefix+ORIGIN of samples in microseconds, oldest first. A
// run adds its samples with one script call touching that one key (push,
// trim to LatencySamples, expire LatencyTTL later) and reads them with one
// LRANGE.

// RedisLatencyPrefix is the prefix of the latency summaries in Redis.
const RedisLatencyPrefix = "refetch:v2:latency:"

// redisAddLatencyScript appends ARGV[2:] (µs) to the list KEYS[1], keeps
// the last ARGV[1] and sets its expiry to LatencyTTL. A key of another
// type is replaced.
var redisAddLatencyScript = lazyScript(`
local k = KEYS[1]
local typ = redis.call('TYPE', k)['ok']
if typ ~= 'list' and typ ~= 'none' then redis.call('DEL', k) end
for i = 2, #ARGV do redis.call('RPUSH', k, ARGV[i]) end
redis.call('LTRIM', k, -tonumber(ARGV[1]), -1)
redis.call('PEXPIRE', k, ` + strconv.FormatInt(LatencyTTL.Milliseconds(), 10) + `)
return redis.call('LLEN', k)
`)

// Latency implements LatencyStore: one LRANGE.
func (s *RedisStore) Latency(ctx context.Context, origin string, now time.Time) (LatencySummary, error) {
	vals, err := call(ctx, s, func(ctx context.Context) ([]string, error) {
		return s.client.LRange(ctx, RedisLatencyPrefix+origin, 0, -1).Result()
	})
	if err != nil && !isWrongType(err) {
		return LatencySummary{}, s.wrap(ctx, "read", err)
	}
	return LatencySummary{Origin: origin, Samples: parseSamples(vals)}, nil
}

// isWrongType reports Redis's WRONGTYPE reply: a key that is not a list
// holds no summary (the next AddLatency replaces it).
func isWrongType(err error) bool {
	return err != nil && strings.HasPrefix(err.Error(), "WRONGTYPE")
}

func parseSamples(vals []string) []time.Duration {
	us := make([]int64, 0, len(vals))
	for _, v := range vals {
		if n, err := strconv.ParseInt(v, 10, 64); err == nil {
			us = append(us, n)
		}
	}
	return durations(us)
}

// AddLatency implements LatencyStore: redisAddLatencyScript.
func (s *RedisStore) AddLatency(ctx context.Context, origin string, samples []time.Duration, now time.Time) error {
	if len(samples) == 0 {
		return nil
	}
	us := appendSamples(nil, samples)
	args := make([]any, 0, len(us)+1)
	args = append(args, LatencySamples)
	for _, v := range us {
		args = append(args, v)
	}
	_, err := call(ctx, s, func(ctx context.Context) (int64, error) {
		return redisAddLatencyScript().Run(ctx, s.client, []string{RedisLatencyPrefix + origin}, args...).Int64()
	})
	if err != nil {
		return s.wrap(ctx, "write", err)
	}
	return nil
}

// latencyKeys returns the full names of every summary (SCAN, on every
// master of a cluster).
func (s *RedisStore) latencyKeys(ctx context.Context, op string) ([]string, error) {
	return s.scan(ctx, op, RedisLatencyPrefix)
}

// ListLatency implements LatencyStore.
func (s *RedisStore) ListLatency(ctx context.Context) ([]LatencySummary, error) {
	keys, err := s.latencyKeys(ctx, "list")
	if err != nil {
		return nil, err
	}
	out := []LatencySummary{}
	for _, k := range keys {
		sum, err := s.Latency(ctx, strings.TrimPrefix(k, RedisLatencyPrefix), time.Now())
		if err != nil {
			return nil, err
		}
		if len(sum.Samples) > 0 {
			out = append(out, sum)
		}
	}
	sortLatency(out)
	return out, nil
}

// DeleteLatency implements LatencyStore.
func (s *RedisStore) DeleteLatency(ctx context.Context, origin string) (bool, error) {
	n, err := call(ctx, s, func(ctx context.Context) (int64, error) {
		return s.client.Del(ctx, RedisLatencyPrefix+origin).Result()
	})
	if err != nil {
		return false, s.wrap(ctx, "delete", err)
	}
	return n > 0, nil
}

// DeleteAllLatency implements LatencyStore, one key a command (each may
// live on its own node of a cluster).
func (s *RedisStore) DeleteAllLatency(ctx context.Context) (int, error) {
	keys, err := s.latencyKeys(ctx, "delete")
	if err != nil {
		return 0, err
	}
	n, err := s.del(ctx, keys)
	if err != nil {
		return int(n), s.wrap(ctx, "delete", err)
	}
	return int(n), nil
}
