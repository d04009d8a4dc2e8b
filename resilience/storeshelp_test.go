package resilience

import (
	"crypto/sha256"
	"encoding/hex"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/gofrs/flock"
	"github.com/refetch/refetch/internal/redistest"
	"github.com/refetch/refetch/resilience/store"
)

// The breaker's tests run on the real stores of package store.
type (
	FileStore     = store.FileStore
	FailoverStore = store.FailoverStore
	Params        = store.Params
	Outcome       = store.Outcome
)

// testTimeout is generous: these tests are about the breaker, not about
// how fast a loaded machine answers.
const testTimeout = 5 * time.Second

// newRedisStore is a Redis store on addr that decides by the caller's
// clock, so that tests can move a fake one.
func newRedisStore(t *testing.T, addr string) *store.RedisStore {
	t.Helper()
	s, err := store.NewRedisStore(store.RedisConfig{Addr: addr, Timeout: testTimeout, TTL: time.Hour, CallerClock: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// newRedis starts a redis-server for t and returns a store on it.
func newRedis(t *testing.T) *store.RedisStore { return newRedisStore(t, redistest.Start(t)) }

// holdLock takes key's state file lock in dir, as another process
// holding it would, until the returned release (or the test's end). The
// lock file is named by FileStore's rule: the first 16 bytes of the key's
// SHA-256, in hex.
func holdLock(t *testing.T, s *FileStore, key string) func() {
	t.Helper()
	sum := sha256.Sum256([]byte(key))
	if err := os.MkdirAll(s.Dir, 0o700); err != nil {
		t.Fatal(err)
	}
	lk := flock.New(filepath.Join(s.Dir, hex.EncodeToString(sum[:16])+".lock"))
	if err := lk.Lock(); err != nil {
		t.Fatal(err)
	}
	var once sync.Once
	release := func() { once.Do(func() { lk.Unlock() }) }
	t.Cleanup(release)
	return release
}
