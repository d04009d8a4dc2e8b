package resilience

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/redis/go-redis/v9/maintnotifications"
	"github.com/refetch/refetch/internal/redact"
)

// RedisKeyPrefix namespaces the breaker records in Redis: the record of
// breaker key K lives at RedisKeyPrefix+K.
const RedisKeyPrefix = "refetch:breaker:"

// redisUpdateTries bounds Update's optimistic retries: each lost race
// means another writer's update went through, so 64 losses in a row only
// happen under a storm of writers on one key.
const redisUpdateTries = 64

// RedisConfig says how to reach a Redis server and how to keep records in
// it. ParseRedisURL fills the connection fields; the caller sets the rest.
type RedisConfig struct {
	// Addr is host:port.
	Addr string
	// Username and Password authenticate (AUTH); both may be empty.
	Username, Password string
	// DB is the database number (SELECT).
	DB int
	// TLS connects with TLS (rediss://), verifying the server's
	// certificate against the system's roots.
	TLS bool
	// Timeout bounds connecting and each read and write on the
	// connection. ParseRedisURL sets it from ?timeout= and leaves it 0
	// otherwise; NewRedisStore requires it to be positive.
	Timeout time.Duration
	// TTL is how long a record lives after its last write, so abandoned
	// breakers expire. Required, positive.
	TTL time.Duration
	// Warn, if set, receives CorruptStateErrors.
	Warn func(error)
}

// String is the server's address as a URL without credentials:
// redis://host:port, with /db when DB is not 0.
func (c RedisConfig) String() string {
	scheme := "redis"
	if c.TLS {
		scheme = "rediss"
	}
	s := scheme + "://" + c.Addr
	if c.DB != 0 {
		s += "/" + strconv.Itoa(c.DB)
	}
	return s
}

// ParseRedisURL parses redis://[user:password@]host[:port][/db] or the
// same with rediss:// (TLS). The port defaults to 6379 and db to 0; the
// one query option is timeout=DURATION (see RedisConfig.Timeout). Its
// errors never contain the password.
func ParseRedisURL(raw string) (RedisConfig, error) {
	var c RedisConfig
	shown := redact.RawURL(raw)
	fail := func(format string, args ...any) (RedisConfig, error) {
		return RedisConfig{}, fmt.Errorf("%s: %s", shown, fmt.Sprintf(format, args...))
	}
	if !strings.Contains(raw, "://") {
		return fail("not a URL (want redis://host:port or rediss://host:port)")
	}
	u, err := url.Parse(raw)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return fail("malformed URL (%s)", scrub(err.Error(), redact.Secrets(raw)...))
	}
	switch strings.ToLower(u.Scheme) {
	case "redis":
	case "rediss":
		c.TLS = true
	case "":
		return fail("no scheme (want redis:// or rediss://)")
	default:
		return fail("unsupported scheme %q (want redis:// or rediss://)", u.Scheme)
	}
	if u.Opaque != "" || u.Hostname() == "" {
		return fail("no host (want %s://host:port)", strings.ToLower(u.Scheme))
	}
	if strings.Contains(u.Hostname(), ":") && !strings.HasPrefix(u.Host, "[") {
		// "host:6379:1": url.Parse takes the last number as the port and
		// the rest as the host, which no resolver would find.
		return fail("invalid host and port %q (want host:port, or [IPv6]:port)", u.Host)
	}
	port := u.Port()
	if port == "" {
		port = "6379"
	}
	if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
		return fail("invalid port %q", port)
	}
	c.Addr = net.JoinHostPort(u.Hostname(), port)
	if u.User != nil {
		c.Username = u.User.Username()
		c.Password, _ = u.User.Password()
	}
	switch db := strings.TrimPrefix(u.Path, "/"); {
	case db == "":
	case strings.Contains(db, "/"):
		return fail("invalid database %q (want /NUMBER)", db)
	default:
		n, err := strconv.Atoi(db)
		if err != nil || n < 0 {
			return fail("invalid database %q (want /NUMBER)", db)
		}
		c.DB = n
	}
	if u.Fragment != "" {
		return fail("unexpected #fragment")
	}
	q, err := url.ParseQuery(u.RawQuery)
	if err != nil {
		return fail("malformed query")
	}
	for name, vals := range q {
		if name != "timeout" {
			return fail("unknown option %q (the one option is timeout=DURATION)", name)
		}
		d, err := time.ParseDuration(vals[len(vals)-1])
		if err != nil || d <= 0 {
			return fail("invalid timeout %q (want a positive duration such as 500ms)", vals[len(vals)-1])
		}
		c.Timeout = d
	}
	return c, nil
}

// scrub replaces every non-empty secret in s.
func scrub(s string, secrets ...string) string {
	// Longest first, so a secret that contains another is replaced whole.
	sort.Slice(secrets, func(i, j int) bool { return len(secrets[i]) > len(secrets[j]) })
	for _, sec := range secrets {
		if sec != "" {
			s = strings.ReplaceAll(s, sec, "REDACTED")
		}
	}
	return s
}

// RedisError is a failure to use the Redis server. Its message never
// contains the password, whatever the client library put into its own.
type RedisError struct {
	// Op is what the store was doing: read, write, list or delete.
	Op  string
	Err error
	msg string
}

func (e *RedisError) Error() string { return e.Op + ": " + e.msg }

// Unwrap returns the client library's error, for errors.Is and As (a
// timeout is a net.Error); print the RedisError, never that error.
func (e *RedisError) Unwrap() error { return e.Err }

// RedisStore keeps breaker records in Redis, one JSON string per key under
// RedisKeyPrefix, each write with a TTL, so that every machine using the
// server shares the breakers. It holds no lock at any time: Update is an
// optimistic compare-and-set in a Lua script (loaded once, called by its
// SHA), and the store remembers per key the value it last read or wrote,
// so the common Update costs one round trip: fn runs on the remembered
// copy, and the script saves fn's result only if the key still holds that
// copy, else returns what it holds, on which fn runs again.
//
// Every exchange with the server ends when the operation's ctx is done
// (see call), so a server that accepted a command and does not answer
// holds up a signal no longer than a lock would.
//
// A RedisStore is safe for concurrent use; each one is one client with a
// small pool, as one process would have.
type RedisStore struct {
	client *redis.Client
	cfg    RedisConfig
	mu     sync.Mutex
	// seen holds, per key, the raw value last read or written ("" for a
	// key that was absent).
	seen map[string]string
	// down is the failure of a call its caller had left behind (see call):
	// once set, every call fails with it.
	down atomic.Pointer[error]
}

// casScript saves ARGV[2] with a TTL of ARGV[3] ms if the key holds
// ARGV[1] ("" meaning absent) and returns 1; otherwise it returns what the
// key holds ("" when absent).
var casScript = redis.NewScript(`
local cur = redis.call('GET', KEYS[1])
if cur == false then cur = '' end
if cur == ARGV[1] then
  redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
  return 1
end
return cur
`)

// silenceRedisLog stops the client library from printing to stderr: this
// package never prints, and its messages could name the server.
var silenceRedisLog sync.Once

type discardLog struct{}

func (discardLog) Printf(context.Context, string, ...any) {}

// NewRedisStore returns a store on the server of c. It does not connect:
// the first command does, bounded by c.Timeout.
func NewRedisStore(c RedisConfig) (*RedisStore, error) {
	switch {
	case c.Addr == "":
		return nil, errors.New("redis store: no address")
	case c.TTL <= 0:
		return nil, fmt.Errorf("redis store: TTL must be positive, not %s", c.TTL)
	case c.Timeout <= 0:
		return nil, fmt.Errorf("redis store: timeout must be positive, not %s", c.Timeout)
	}
	silenceRedisLog.Do(func() { redis.SetLogger(discardLog{}) })
	opt := &redis.Options{
		Addr: c.Addr, Username: c.Username, Password: c.Password, DB: c.DB,
		// A store that does not answer must cost one bounded wait, never
		// the run: one dial, no retries, short timeouts.
		DialTimeout: c.Timeout, ReadTimeout: c.Timeout, WriteTimeout: c.Timeout, PoolTimeout: c.Timeout,
		DialerRetries: 1, MaxRetries: -1,
		PoolSize: 4, PipelinePoolSize: -1,
		// No CLIENT SETINFO and no maintenance-notification handshake:
		// connecting is HELLO (with AUTH) and nothing more.
		DisableIdentity:          true,
		MaintNotificationsConfig: &maintnotifications.Config{Mode: maintnotifications.ModeDisabled},
	}
	if c.TLS {
		host, _, _ := net.SplitHostPort(c.Addr)
		opt.TLSConfig = &tls.Config{ServerName: host, MinVersion: tls.VersionTLS12}
	}
	return &RedisStore{client: redis.NewClient(opt), cfg: c, seen: map[string]string{}}, nil
}

// String names the store in messages, without credentials.
func (s *RedisStore) String() string { return s.cfg.String() }

// Close closes the client's connections.
func (s *RedisStore) Close() error { return s.client.Close() }

// wrap makes err, met while doing op under ctx, the store's error:
// context.Cause(ctx), unwrapped, once ctx is done (the run ended; the
// server did not fail), else a RedisError without the password.
func (s *RedisStore) wrap(ctx context.Context, op string, err error) error {
	if ctx.Err() != nil {
		return context.Cause(ctx)
	}
	secrets := []string{s.cfg.Password}
	if esc := url.QueryEscape(s.cfg.Password); esc != s.cfg.Password {
		secrets = append(secrets, esc)
	}
	return &RedisError{Op: op, Err: err, msg: scrub(err.Error(), secrets...)}
}

func (s *RedisStore) remembered(key string) (string, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	v, ok := s.seen[key]
	return v, ok
}

func (s *RedisStore) remember(key, raw string) {
	s.mu.Lock()
	s.seen[key] = raw
	s.mu.Unlock()
}

func (s *RedisStore) forget(key string) {
	s.mu.Lock()
	delete(s.seen, key)
	s.mu.Unlock()
}

// call runs f, one exchange with s's server, for a caller whose wait ctx
// bounds, and returns its result, or context.Cause(ctx) as soon as ctx is
// done. The client library gives up waiting for a connection or a dial
// when ctx is done, but not a read from a server that took the command and
// does not answer. So f runs in a goroutine of its own, on ctx without its
// cancellation or deadline: the store's own timeout bounds it, and the
// caller leaves it behind when ctx is done.
//
// A call left behind that then fails (the server did not answer within
// the store's timeout, or the connection broke) marks the store down for
// the rest of the process: every later call fails at once with that error,
// so a FailoverStore switches to its secondary. Without this, callers
// whose own deadlines (--max-time) are shorter than the store's timeout
// would each give up first, never see the store fail, and never fail over.
func call[T any](ctx context.Context, s *RedisStore, f func(context.Context) (T, error)) (T, error) {
	var zero T
	if ctx.Err() != nil {
		return zero, context.Cause(ctx)
	}
	if err := s.down.Load(); err != nil {
		return zero, *err
	}
	if ctx.Done() == nil {
		return f(ctx) // never cancelled: no goroutine needed
	}
	type result struct {
		v   T
		err error
	}
	done := make(chan result, 1)
	left := make(chan struct{})
	go func() {
		v, err := f(context.WithoutCancel(ctx))
		done <- result{v, err}
		select {
		case <-left:
			if err != nil && !errors.Is(err, redis.Nil) {
				s.down.CompareAndSwap(nil, &err)
			}
		default:
		}
	}()
	select {
	case r := <-done:
		return r.v, r.err
	case <-ctx.Done():
		close(left)
		return zero, context.Cause(ctx)
	}
}

// get reads the raw value of key, "" when absent.
func (s *RedisStore) get(ctx context.Context, key string) (string, error) {
	v, err := call(ctx, s, func(ctx context.Context) (string, error) {
		return s.client.Get(ctx, RedisKeyPrefix+key).Result()
	})
	if errors.Is(err, redis.Nil) {
		return "", nil
	}
	if err != nil {
		return "", s.wrap(ctx, "read", err)
	}
	return v, nil
}

// cas saves next if key holds old; otherwise it returns what key holds.
func (s *RedisStore) cas(ctx context.Context, key, old, next string) (saved bool, current string, err error) {
	res, err := call(ctx, s, func(ctx context.Context) (any, error) {
		return casScript.Run(ctx, s.client, []string{RedisKeyPrefix + key}, old, next, s.cfg.TTL.Milliseconds()).Result()
	})
	if err != nil {
		return false, "", s.wrap(ctx, "write", err)
	}
	switch v := res.(type) {
	case int64:
		return true, next, nil
	case string:
		return false, v, nil
	}
	return false, "", s.wrap(ctx, "write", fmt.Errorf("unexpected script reply %T", res))
}

// decode parses raw as the record of key; "" is a fresh closed record.
func decodeRedis(key, raw string) (Record, error) {
	if raw == "" {
		return Record{Key: key, State: StateClosed}, nil
	}
	r, err := DecodeRecord([]byte(raw))
	if err == nil && r.Key != key {
		err = fmt.Errorf("value holds key %q", r.Key)
	}
	return r, err
}

func (s *RedisStore) Update(ctx context.Context, key string, fn func(*Record) error) error {
	raw, copied := s.remembered(key)
	if !copied {
		v, err := s.get(ctx, key)
		if err != nil {
			return err
		}
		raw = v
		s.remember(key, raw)
	}
	for try := 0; try < redisUpdateTries; try++ {
		r, err := decodeRedis(key, raw)
		if err != nil {
			// Replace the corrupt value now, so it is reported once.
			if s.cfg.Warn != nil {
				s.cfg.Warn(&CorruptStateError{Path: "redis key " + RedisKeyPrefix + key, Err: err})
			}
			fresh, _ := json.Marshal(Record{Key: key, State: StateClosed})
			_, cur, err := s.cas(ctx, key, raw, string(fresh))
			if err != nil {
				return err
			}
			raw, copied = cur, false
			s.remember(key, raw)
			continue
		}
		if err := fn(&r); err != nil {
			if !copied || errors.Is(err, ErrUnchanged) {
				return err
			}
			// fn decided on a copy: confirm it is current, or decide again.
			cur, gerr := s.get(ctx, key)
			if gerr != nil {
				return gerr
			}
			s.remember(key, cur)
			if cur == raw {
				return err
			}
			raw, copied = cur, false
			continue
		}
		next, err := json.Marshal(r)
		if err != nil {
			return err
		}
		saved, cur, err := s.cas(ctx, key, raw, string(next))
		if err != nil {
			// The write may or may not have happened (or may still, if
			// ctx cut the exchange short): forget the copy.
			s.forget(key)
			return err
		}
		s.remember(key, cur)
		if saved {
			return nil
		}
		raw, copied = cur, false
	}
	return &RedisError{Op: "write", Err: errTooManyWriters, msg: errTooManyWriters.Error()}
}

var errTooManyWriters = fmt.Errorf("gave up after %d tries: the record kept changing under other writers", redisUpdateTries)

// keys returns every key under RedisKeyPrefix (SCAN, so the server is
// never blocked), without the prefix.
func (s *RedisStore) keys(ctx context.Context, op string) ([]string, error) {
	out, err := call(ctx, s, func(ctx context.Context) ([]string, error) {
		var out []string
		iter := s.client.Scan(ctx, 0, RedisKeyPrefix+"*", 256).Iterator()
		for iter.Next(ctx) {
			out = append(out, strings.TrimPrefix(iter.Val(), RedisKeyPrefix))
		}
		return out, iter.Err()
	})
	if err != nil {
		return nil, s.wrap(ctx, op, err)
	}
	sort.Strings(out)
	// SCAN may return a key twice.
	return compactStrings(out), nil
}

func compactStrings(s []string) []string {
	out := s[:0]
	for i, v := range s {
		if i == 0 || v != s[i-1] {
			out = append(out, v)
		}
	}
	return out
}

// List returns every record in the server, sorted by key; keys that
// vanish between the scan and the read are skipped, corrupt values are
// reported through Warn and skipped.
func (s *RedisStore) List(ctx context.Context) ([]Record, error) {
	keys, err := s.keys(ctx, "list")
	if err != nil {
		return nil, err
	}
	out := []Record{}
	err = inBatches(keys, func(batch, full []string) error {
		vals, err := call(ctx, s, func(ctx context.Context) ([]any, error) {
			return s.client.MGet(ctx, full...).Result()
		})
		if err != nil {
			return s.wrap(ctx, "list", err)
		}
		for i, v := range vals {
			raw, ok := v.(string)
			if !ok {
				continue // expired or deleted since the scan
			}
			r, err := decodeRedis(batch[i], raw)
			if err != nil {
				if s.cfg.Warn != nil {
					s.cfg.Warn(&CorruptStateError{Path: "redis key " + full[i], Err: err, Listed: true})
				}
				continue
			}
			out = append(out, r)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// Delete removes the record of key and reports whether there was one.
func (s *RedisStore) Delete(ctx context.Context, key string) (bool, error) {
	n, err := call(ctx, s, func(ctx context.Context) (int64, error) {
		return s.client.Del(ctx, RedisKeyPrefix+key).Result()
	})
	if err != nil {
		return false, s.wrap(ctx, "delete", err)
	}
	s.forget(key)
	return n > 0, nil
}

// DeleteAll removes every record, corrupt ones included.
func (s *RedisStore) DeleteAll(ctx context.Context) (int, error) {
	keys, err := s.keys(ctx, "delete")
	if err != nil {
		return 0, err
	}
	n := 0
	err = inBatches(keys, func(batch, full []string) error {
		for _, k := range batch {
			s.forget(k)
		}
		d, err := call(ctx, s, func(ctx context.Context) (int64, error) {
			return s.client.Del(ctx, full...).Result()
		})
		n += int(d)
		if err != nil {
			return s.wrap(ctx, "delete", err)
		}
		return nil
	})
	return n, err
}

// inBatches calls fn with the keys 256 at a time (one command each, not
// one round trip a key, and no command of unbounded size), as given and
// with RedisKeyPrefix; it stops at fn's first error.
func inBatches(keys []string, fn func(batch, full []string) error) error {
	for len(keys) > 0 {
		batch := keys[:min(len(keys), 256)]
		keys = keys[len(batch):]
		full := make([]string, len(batch))
		for i, k := range batch {
			full[i] = RedisKeyPrefix + k
		}
		if err := fn(batch, full); err != nil {
			return err
		}
	}
	return nil
}
