package cmd

import (
	"math"
	"time"

	"github.com/refetch/refetch/internal/redact"
	"github.com/refetch/refetch/resilience/store"

	"github.com/refetch/refetch/resilience"
)

// storeFlagUsage is the help of --store on every command that has it.
const storeFlagUsage = "share breaker state through `URL`: redis://[user:pass@]host:port/db, rediss://, " +
	"redis+sentinel:// or redis+cluster:// (default: files in the state dir)"

// Defaults of a Redis store (see docs/breaker.md, "Fleet").
const (
	// redisTimeout bounds connecting, and each read and write: a store
	// that does not answer costs a few hundred milliseconds, never the run.
	// ?timeout= in the URL overrides it, for a server far away.
	redisTimeout = 200 * time.Millisecond
	// minRecordTTL is the shortest life of a breaker record after its
	// last write; an open breaker lives at least twice its reset period.
	minRecordTTL = 24 * time.Hour
	// redisReplicaWait is how long a write that opens a breaker or sets a
	// hold waits for a replica to acknowledge it, on Sentinel and Cluster
	// (at most the store's timeout).
	redisReplicaWait = 50 * time.Millisecond
	// redisRetryAfter is how long after Redis failed a process (a batch)
	// tries it again for its next run: a Sentinel's promoted replica, a
	// restarted server, is used without restarting the batch.
	redisRetryAfter = time.Second
)

// recordTTL is how long a breaker record lives after its last write:
// max(24h, 2×reset), without overflow for the longest reset.
func recordTTL(reset time.Duration) time.Duration {
	if reset > math.MaxInt64/2 {
		return math.MaxInt64
	}
	return max(minRecordTTL, 2*reset)
}

// checkStoreFlag validates --store without opening anything: empty, or a
// redis:// or rediss:// URL. name is how the message calls the setting
// (--store, or REFETCH_STORE when the value came from there). The error
// never shows the URL's password.
func checkStoreFlag(raw, name string) error {
	if raw == "" {
		return nil
	}
	if _, err := store.ParseRedisURL(raw); err != nil {
		return usageErrorf("invalid %s %v", name, err)
	}
	return nil
}

// openStore returns the breaker store that --store names: the file store
// in dir when raw is empty; for a redis:// or rediss:// URL, Redis with the
// file store in dir as the failover that takes over, after one warning,
// when Redis does not answer. reset is --breaker-reset: records live
// max(24h, 2×reset) after their last write, in either store. inFlight is
// how many runs use the store at once (a batch's -P): Redis gets a
// connection for each. warn receives the store's warnings (corrupt
// records, the failover).
func openStore(raw, dir string, reset time.Duration, inFlight int, warn func(error)) (resilience.Store, error) {
	files := &store.FileStore{Dir: dir, Warn: warn, TTL: recordTTL(reset)}
	if raw == "" {
		return files, nil
	}
	// The Redis password is this process's secret as a request's are:
	// masked in every text (internal/redact), whatever quotes it.
	redact.RegisterURL(raw)
	cfg, err := store.ParseRedisURL(raw)
	if err != nil {
		return nil, usageErrorf("invalid --store %v", err)
	}
	if cfg.Timeout == 0 {
		cfg.Timeout = redisTimeout
	}
	cfg.TTL = recordTTL(reset)
	cfg.PoolSize = max(4, inFlight+1)
	cfg.Warn = warn
	if cfg.Kind != store.RedisSingle {
		cfg.ReplicaWait = min(redisReplicaWait, cfg.Timeout)
	}
	redis, err := store.NewRedisStore(cfg)
	if err != nil {
		return nil, err
	}
	return &store.FailoverStore{Primary: redis, Secondary: files, Warn: warn, RetryAfter: redisRetryAfter}, nil
}
