package store

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"math"
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
// breaker key K is the hash at RedisKeyPrefix+K. (Versions before records
// became hashes kept JSON strings under refetch:breaker:, which this
// version neither reads nor touches; they expire on their own.)
const RedisKeyPrefix = "refetch:v2:breaker:"

// RedisKind is how a store reaches its Redis: one server, the primary
// that Sentinels name, or a Cluster.
type RedisKind int

const (
	// RedisSingle is one server (redis://, rediss://).
	RedisSingle RedisKind = iota
	// RedisSentinel is the primary of a master set that Sentinels watch
	// and fail over (redis+sentinel://, rediss+sentinel://).
	RedisSentinel
	// RedisCluster is a Redis Cluster (redis+cluster://,
	// rediss+cluster://).
	RedisCluster
)

// RedisConfig says how to reach a Redis server and how to keep records in
// it. ParseRedisURL fills the connection fields; the caller sets the rest.
type RedisConfig struct {
	// Kind is how the store reaches Redis.
	Kind RedisKind
	// Addr is host:port (RedisSingle).
	Addr string
	// Addrs are the sentinels' host:port (RedisSentinel) or the cluster's
	// seed nodes (RedisCluster).
	Addrs []string
	// MasterName is the name of the master set the sentinels watch
	// (RedisSentinel).
	MasterName string
	// Username and Password authenticate (AUTH) to the Redis servers
	// (not to the sentinels); both may be empty.
	Username, Password string
	// SentinelUsername and SentinelPassword authenticate to the
	// sentinels (RedisSentinel), whose password is their own
	// (requirepass in sentinel.conf); both may be empty.
	SentinelUsername, SentinelPassword string
	// DB is the database number (SELECT); always 0 in a cluster.
	DB int
	// TLS connects with TLS (rediss://), verifying the server's
	// certificate against the system's roots.
	TLS bool
	// Timeout bounds connecting and each read and write on the
	// connection. ParseRedisURL sets it from ?timeout= and leaves it 0
	// otherwise; NewRedisStore requires it to be positive.
	Timeout time.Duration
	// ReplicaWait, if positive, makes a write that opens a breaker or
	// sets a hold wait up to this long for one replica to acknowledge it
	// (WAIT 1), so that a failover right after it does not lose it. 0:
	// no wait.
	ReplicaWait time.Duration
	// TTL is how long a record lives after its last write, so abandoned
	// breakers expire. Required, positive.
	TTL time.Duration
	// PoolSize is how many connections the store may open at once: as
	// many as the process has steps in flight (a batch's -P), so that no
	// step waits for a connection behind others. 0 means 4. (Per node, in
	// a cluster.)
	PoolSize int
	// Warn, if set, receives CorruptStateErrors.
	Warn func(error)
	// CallerClock makes every step decide by the now its caller passes
	// instead of the server's TIME: for tests that move a fake clock,
	// never for a fleet, whose records must not depend on any node's
	// clock. Default false.
	CallerClock bool
}

// String is the server's address as a URL without credentials:
// redis://host:port, with /db when DB is not 0;
// redis+sentinel://host:port,…/master[/db]; redis+cluster://host:port,….
func (c RedisConfig) String() string {
	scheme := "redis"
	if c.TLS {
		scheme = "rediss"
	}
	var s string
	switch c.Kind {
	case RedisSentinel:
		s = scheme + "+sentinel://" + strings.Join(c.Addrs, ",") + "/" + c.MasterName
	case RedisCluster:
		return scheme + "+cluster://" + strings.Join(c.Addrs, ",")
	default:
		s = scheme + "://" + c.Addr
	}
	if c.DB != 0 {
		s += "/" + strconv.Itoa(c.DB)
	}
	return s
}

// redisURLForms names the URL forms in messages.
const redisURLForms = "redis://host:port, rediss://host:port, redis+sentinel://host:port[,host:port…]/master " +
	"or redis+cluster://host:port[,host:port…]"

// ParseRedisURL parses a store URL:
//
//	redis://[user:password@]host[:port][/db]
//	redis+sentinel://[user:password@]host[:port][,host[:port]…]/master[/db]
//	redis+cluster://[user:password@]host[:port][,host[:port]…]
//
// or the same with rediss (TLS). A sentinel's port defaults to 26379,
// a server's to 6379, and db to 0. Query options: timeout=DURATION (see
// RedisConfig.Timeout); for Sentinel, sentinel_username=NAME and
// sentinel_password=PASSWORD (the sentinels' own). Its errors never
// contain a password.
func ParseRedisURL(raw string) (RedisConfig, error) {
	var c RedisConfig
	shown := redact.RawURL(raw)
	if _, rest, ok := strings.Cut(raw, "://"); ok {
		// A lone userinfo ("redis://s3cr3t@host") is a user name to a URL,
		// but redis-cli and many hosting services read it as the
		// password: not shown either.
		if info, has, _, _ := splitAuthority(raw, rest); has && info != "" && !strings.Contains(info, ":") {
			shown = strings.Replace(shown, info+"@", redact.Mask+"@", 1)
		}
	}
	fail := func(format string, args ...any) (RedisConfig, error) {
		return RedisConfig{}, fmt.Errorf("%s: %s", shown, fmt.Sprintf(format, args...))
	}
	scheme, rest, ok := strings.Cut(raw, "://")
	if !ok {
		return fail("not a URL (want %s)", redisURLForms)
	}
	// A redis:// or rediss:// URL is a URL as net/url reads it. The host
	// list of a Sentinel or Cluster URL is not a URL's host to net/url: it
	// is cut out after the userinfo (which ends where internal/redact ends
	// it, so that what is hidden and what is parsed agree), and each of
	// its hosts checked on its own; the password is not parsed again.
	var (
		u        *url.URL
		hostList string
		err      error
	)
	single := !strings.Contains(scheme, "+")
	if single {
		// A password holding '#', '?' or '/' makes the URL unparsable, or
		// parsable as something else (redact.Mangled): such a URL is read
		// as internal/redact reads it, the userinfo ending at the last
		// '@', as a Sentinel or Cluster URL is.
		if u, err = url.Parse(raw); err == nil && !redact.Mangled(u) {
			hostList = u.Host
		} else if strings.Contains(rest, "@") {
			single, err = false, nil
		}
	}
	if !single {
		var info string
		var hasInfo bool
		info, hasInfo, hostList, rest = splitAuthority(raw, rest)
		if u, err = url.Parse(scheme + "://host" + rest); err == nil && hasInfo {
			name, pass, hasPass := strings.Cut(info, ":")
			name, err1 := url.PathUnescape(name)
			pass, err2 := url.PathUnescape(pass)
			if err1 != nil || err2 != nil {
				return fail("malformed URL (an invalid %%-escape in the user or password)")
			}
			u.User = url.User(name)
			if hasPass {
				u.User = url.UserPassword(name, pass)
			}
		}
	}
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return fail("malformed URL (%s)", scrub(err.Error(), redact.Secrets(raw)...))
	}
	scheme = strings.ToLower(u.Scheme)
	base, kind, _ := strings.Cut(scheme, "+")
	switch base {
	case "redis":
	case "rediss":
		c.TLS = true
	case "":
		return fail("no scheme (want %s)", redisURLForms)
	default:
		return fail("unsupported scheme %q (want %s)", u.Scheme, redisURLForms)
	}
	defaultPort := "6379"
	switch kind {
	case "":
	case "sentinel":
		c.Kind, defaultPort = RedisSentinel, "26379"
	case "cluster":
		c.Kind = RedisCluster
	default:
		return fail("unsupported scheme %q (want %s)", u.Scheme, redisURLForms)
	}
	if u.Opaque != "" || hostList == "" || (c.Kind == RedisSingle && u.Hostname() == "") {
		return fail("no host (want %s://host:port)", scheme)
	}
	hosts := strings.Split(hostList, ",")
	if c.Kind == RedisSingle && len(hosts) > 1 {
		return fail("several hosts (%s); for a Sentinel or Cluster setup use redis+sentinel:// or redis+cluster://", hostList)
	}
	for _, h := range hosts {
		addr, err := parseHostPort(h, defaultPort)
		if err != nil {
			return fail("%v", err)
		}
		c.Addrs = append(c.Addrs, addr)
	}
	if c.Kind == RedisSingle {
		c.Addr, c.Addrs = c.Addrs[0], nil
	}
	if u.User != nil {
		c.Username = u.User.Username()
		c.Password, _ = u.User.Password()
	}
	path := strings.TrimPrefix(u.Path, "/")
	switch c.Kind {
	case RedisSentinel:
		name, db, _ := strings.Cut(path, "/")
		if name == "" {
			return fail("no master name (want %s://host:port[,host:port…]/master[/db])", scheme)
		}
		c.MasterName, path = name, db
	case RedisCluster:
		if path != "" {
			return fail("a path (%q) after a cluster's nodes: a cluster has only database 0", "/"+path)
		}
	}
	switch db := path; {
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
	options := "timeout=DURATION"
	if c.Kind == RedisSentinel {
		options += ", sentinel_username=NAME, sentinel_password=PASSWORD"
	}
	for name, vals := range q {
		v := vals[len(vals)-1]
		switch {
		case name == "timeout":
			d, err := time.ParseDuration(v)
			if err != nil || d <= 0 {
				return fail("invalid timeout %q (want a positive duration such as 500ms)", v)
			}
			c.Timeout = d
		case name == "sentinel_username" && c.Kind == RedisSentinel:
			c.SentinelUsername = v
		case name == "sentinel_password" && c.Kind == RedisSentinel:
			c.SentinelPassword = v
		default:
			return fail("unknown option %q (the options are %s)", name, options)
		}
	}
	return c, nil
}

// splitAuthority splits rest, a URL raw after its "://", into its
// userinfo (and whether it has one), its host list and what follows
// (path, query, fragment). The userinfo ends as internal/redact ends it:
// in a URL that net/url parses, at the last '@' before the first '/',
// '?' or '#'; in one it does not (a host list, a password holding one of
// those), at the last '@'.
func splitAuthority(raw, rest string) (info string, hasInfo bool, hosts, tail string) {
	end := len(rest)
	if pu, err := url.Parse(raw); err == nil && !redact.Mangled(pu) {
		if i := strings.IndexAny(rest, "/?#"); i >= 0 {
			end = i
		}
	}
	at := strings.LastIndexByte(rest[:end], '@')
	if at >= 0 {
		info, hasInfo = rest[:at], true
	}
	start := at + 1
	stop := len(rest)
	if i := strings.IndexAny(rest[start:], "/?#"); i >= 0 {
		stop = start + i
	}
	return info, hasInfo, rest[start:stop], rest[stop:]
}

// parseHostPort checks one host[:port] of a URL's host list and returns
// it as host:port, with the default port when it has none.
func parseHostPort(h, defaultPort string) (string, error) {
	if h == "" {
		return "", errors.New("an empty host in the list (want host:port[,host:port…])")
	}
	bad := fmt.Errorf("invalid host and port %q (want host:port, or [IPv6]:port)", h)
	host, port := h, ""
	if strings.HasPrefix(h, "[") {
		end := strings.IndexByte(h, ']')
		if end < 0 || (end+1 < len(h) && h[end+1] != ':') {
			return "", bad
		}
		host = h[1:end]
		if end+1 < len(h) {
			port = h[end+2:]
		}
		if net.ParseIP(host) == nil {
			return "", bad
		}
	} else if i := strings.LastIndexByte(h, ':'); i >= 0 {
		host, port = h[:i], h[i+1:]
	}
	if host == "" || (strings.Contains(host, ":") && !strings.HasPrefix(h, "[")) || strings.ContainsAny(host, "[]@/?#% \t") {
		// "host:6379:1": no resolver would find "host:6379".
		return "", bad
	}
	if port == "" {
		port = defaultPort
	}
	if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
		return "", fmt.Errorf("invalid port %q", port)
	}
	return net.JoinHostPort(host, port), nil
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

// RedisStore keeps breaker records in Redis, one hash per key under
// RedisKeyPrefix, so that every machine using the server shares the
// breakers. Each step is one Lua script (redisstore_lua.go, loaded once
// and called by its SHA) that reads the record, decides by the server's
// clock and writes, atomically: no lock, no client-side retry, so any
// number of writers, in one process or many, lose no update and never
// give up. A record lives TTL after its last write, and at least until
// its retry_at and its last hold end.
//
// The hash's fields: state, gen, failures, opened_at, retry_at,
// trial_until, updated_at (ms since the epoch, server clock), last_error,
// n:NODE (a node's failures since the last success), tf:NODE (a node's
// failed half-open trial), h:IDENTITY (a hold's end). Fields it does not
// know are kept.
//
// Every exchange with the server ends when the operation's ctx is done
// (see call), so a server that accepted a command and does not answer
// holds up a signal no longer than a lock would.
//
// A RedisStore is safe for concurrent use; its connection pool has
// RedisConfig.PoolSize connections.
type RedisStore struct {
	// client is the one way to Redis for every step, script and scan:
	// a *redis.Client (one server, or the primary Sentinels name) or a
	// *redis.ClusterClient. New scripts go through it (Script.Run, which
	// loads a script where it is missing) and touch keys of one hash
	// slot (see docs/breaker.md, "Rules for new scripts").
	client redis.UniversalClient
	cfg    RedisConfig
	// down is the failure of a call its caller had left behind (see call):
	// once set, every call fails with it, until Revive.
	down atomic.Pointer[error]
	// sentinels, for RedisSentinel, find the primary for client's dials.
	sentinels *sentinels
	// replicas holds what INFO said of each primary's replicas (by
	// address: a replicaCount), so that ReplicaWait is not spent on one
	// that has none.
	replicas sync.Map
	// oldScripts is set once the server refused a script's flags (a
	// Redis before 7.0): the admission runs unflagged from then on.
	oldScripts atomic.Bool
}

// silenceRedisLog stops the client library from printing to stderr: this
// package never prints, and its messages could name the server.
var silenceRedisLog sync.Once

type discardLog struct{}

func (discardLog) Printf(context.Context, string, ...any) {}

// NewRedisStore returns a store on the Redis of c. It does not connect:
// the first command does, bounded by c.Timeout.
func NewRedisStore(c RedisConfig) (*RedisStore, error) {
	switch {
	case c.Kind == RedisSingle && c.Addr == "", c.Kind != RedisSingle && len(c.Addrs) == 0:
		return nil, errors.New("redis store: no address")
	case c.Kind == RedisSentinel && c.MasterName == "":
		return nil, errors.New("redis store: no master name")
	case c.TTL <= 0:
		return nil, fmt.Errorf("redis store: TTL must be positive, not %s", c.TTL)
	case c.Timeout <= 0:
		return nil, fmt.Errorf("redis store: timeout must be positive, not %s", c.Timeout)
	}
	silenceRedisLog.Do(func() { redis.SetLogger(discardLog{}) })
	pool := c.PoolSize
	if pool <= 0 {
		pool = 4
	}
	var tlsConfig *tls.Config
	if c.TLS {
		tlsConfig = &tls.Config{MinVersion: tls.VersionTLS12}
		if c.Kind == RedisSingle {
			host, _, _ := net.SplitHostPort(c.Addr)
			tlsConfig.ServerName = host
		}
		// Sentinel and Cluster: the client library names each server it
		// dials (crypto/tls takes the name from the address).
	}
	// A store that does not answer must cost one bounded wait, never the
	// run: one dial, no retries, short timeouts. The wait for a free
	// connection is not an exchange with the server: the operation's ctx
	// bounds it (a share of --max-time), else PoolTimeout, long enough for
	// a pool as large as the work. No CLIENT SETINFO and no
	// maintenance-notification handshake: connecting is HELLO (with AUTH)
	// and nothing more.
	poolTimeout := max(time.Second, 4*c.Timeout)
	noNotes := &maintnotifications.Config{Mode: maintnotifications.ModeDisabled}
	st := &RedisStore{cfg: c}
	var client redis.UniversalClient
	switch c.Kind {
	case RedisSentinel:
		// Not the library's FailoverClient: it asks every sentinel at
		// once, lists the sentinels and subscribes to their events before
		// its first command, about a millisecond a process. A dial asks
		// one sentinel (the one that answered last first) where the
		// primary is; a demoted primary's READONLY closes the connection
		// it came on (the client library's rule), so the next dial finds
		// the promoted one.
		sen := newSentinels(c, pool, tlsConfig)
		st.sentinels = sen
		client = redis.NewClient(&redis.Options{
			Addr: "sentinel:" + c.MasterName, Username: c.Username, Password: c.Password, DB: c.DB,
			Dialer:      sen.dial,
			DialTimeout: c.Timeout, ReadTimeout: c.Timeout, WriteTimeout: c.Timeout,
			PoolTimeout: poolTimeout, DialerRetries: 1, MaxRetries: -1,
			PoolSize: pool, PipelinePoolSize: -1, DisableIdentity: true,
			MaintNotificationsConfig: noNotes,
		})
	case RedisCluster:
		client = redis.NewClusterClient(&redis.ClusterOptions{
			Addrs: c.Addrs, Username: c.Username, Password: c.Password,
			DialTimeout: c.Timeout, ReadTimeout: c.Timeout, WriteTimeout: c.Timeout,
			PoolTimeout: poolTimeout, DialerRetries: 1, MaxRetries: -1,
			// MOVED and ASK (a slot moved, a failover) are followed, at
			// most twice; anything else is the store failing.
			MaxRedirects: 2,
			// Each command goes to its key's slot: no COMMAND (a reply of
			// hundreds of KiB) to learn routing policies first.
			DisableRoutingPolicies: true,
			PoolSize:               pool, PipelinePoolSize: -1, DisableIdentity: true, TLSConfig: tlsConfig,
			MaintNotificationsConfig: noNotes,
		})
	default:
		client = redis.NewClient(&redis.Options{
			Addr: c.Addr, Username: c.Username, Password: c.Password, DB: c.DB,
			DialTimeout: c.Timeout, ReadTimeout: c.Timeout, WriteTimeout: c.Timeout,
			PoolTimeout: poolTimeout, DialerRetries: 1, MaxRetries: -1,
			PoolSize: pool, PipelinePoolSize: -1, DisableIdentity: true, TLSConfig: tlsConfig,
			MaintNotificationsConfig: noNotes,
		})
	}
	st.client = client
	return st, nil
}

// sentinels finds a Sentinel setup's primary for the dials of a store's
// client.
type sentinels struct {
	name    string
	addrs   []string
	clients []*redis.SentinelClient
	// last is the sentinel that answered last: asked first.
	last atomic.Int32
	// named is the primary they named last.
	named   atomic.Pointer[string]
	timeout time.Duration
	tls     *tls.Config
	// watch asks the sentinels where the primary is once a second, from
	// the first dial until close (a process that lives that long: a
	// batch): a graceful failover (SENTINEL FAILOVER) promotes a replica
	// while the old primary still takes writes for seconds before it is
	// demoted, and those writes are lost with its resync (a tour found a
	// batch writing 646 steps there). Connections to a primary the
	// sentinels no longer name refuse their next command (primaryConn).
	watch     sync.Once
	stop      chan struct{}
	closeOnce sync.Once
}

// watchEvery is how often a long-lived store asks the sentinels where
// the primary is.
const watchEvery = time.Second

func newSentinels(c RedisConfig, pool int, tlsConfig *tls.Config) *sentinels {
	s := &sentinels{name: c.MasterName, addrs: c.Addrs, timeout: c.Timeout, tls: tlsConfig, stop: make(chan struct{})}
	for _, addr := range c.Addrs {
		s.clients = append(s.clients, redis.NewSentinelClient(&redis.Options{
			Addr:     addr,
			Username: c.SentinelUsername, Password: c.SentinelPassword,
			DialTimeout: c.Timeout, ReadTimeout: c.Timeout, WriteTimeout: c.Timeout,
			DialerRetries: 1, MaxRetries: -1, PoolSize: pool, PipelinePoolSize: -1,
			DisableIdentity: true, TLSConfig: tlsConfig,
			MaintNotificationsConfig: &maintnotifications.Config{Mode: maintnotifications.ModeDisabled},
		}))
	}
	return s
}

// primary asks the sentinels, one after another, where the primary is.
func (s *sentinels) primary(ctx context.Context) (string, error) {
	n, first := len(s.clients), int(s.last.Load())
	var errs []error
	for i := 0; i < n; i++ {
		j := (first + i) % n
		got, err := s.clients[j].GetMasterAddrByName(ctx, s.name).Result()
		if err == nil && len(got) == 2 {
			s.last.Store(int32(j))
			addr := net.JoinHostPort(got[0], got[1])
			s.named.Store(&addr)
			return addr, nil
		}
		if errors.Is(err, redis.Nil) || err == nil {
			err = fmt.Errorf("sentinel %s does not know a master named %q", s.addrs[j], s.name)
		}
		errs = append(errs, err)
		if ctx.Err() != nil {
			break
		}
	}
	return "", joinOneLine(errs)
}

// joinOneLine joins errs into one error whose text is one line (errors.Join
// puts each on a line of its own: a warning is one line), keeping each for
// errors.Is and errors.As.
func joinOneLine(errs []error) error {
	if len(errs) == 0 {
		return nil
	}
	texts := make([]string, len(errs))
	for i, e := range errs {
		texts[i] = e.Error()
	}
	return &joinedError{text: strings.Join(texts, "; "), errs: errs}
}

type joinedError struct {
	text string
	errs []error
}

func (e *joinedError) Error() string   { return e.text }
func (e *joinedError) Unwrap() []error { return e.errs }

// current is the primary the sentinels named last.
func (s *sentinels) current() string {
	if p := s.named.Load(); p != nil {
		return *p
	}
	return ""
}

// dial connects to the primary the sentinels name.
func (s *sentinels) dial(ctx context.Context, network, _ string) (net.Conn, error) {
	addr, err := s.primary(ctx)
	if err != nil {
		return nil, err
	}
	s.watch.Do(func() { go s.watchPrimary() })
	d := &net.Dialer{Timeout: s.timeout}
	var conn net.Conn
	if s.tls == nil {
		conn, err = d.DialContext(ctx, network, addr)
	} else {
		cfg := s.tls.Clone()
		cfg.ServerName, _, _ = net.SplitHostPort(addr)
		conn, err = (&tls.Dialer{NetDialer: d, Config: cfg}).DialContext(ctx, network, addr)
	}
	if err != nil {
		return nil, err
	}
	return &primaryConn{Conn: conn, addr: addr, s: s}, nil
}

// watchPrimary asks the sentinels where the primary is every watchEvery
// until close.
func (s *sentinels) watchPrimary() {
	t := time.NewTicker(watchEvery)
	defer t.Stop()
	for {
		select {
		case <-s.stop:
			return
		case <-t.C:
			ctx, cancel := context.WithTimeout(context.Background(), s.timeout)
			s.primary(ctx) // an error keeps the name it had
			cancel()
		}
	}
}

// primaryConn is a connection to the primary the sentinels named when it
// was dialled. Once they name another, its next write fails (and closes
// it) instead of reaching a primary about to be demoted: the step fails,
// the store steps aside to the files for a moment, and the next dial
// reaches the new primary.
type primaryConn struct {
	net.Conn
	addr string
	s    *sentinels
}

func (c *primaryConn) Write(p []byte) (int, error) {
	if now := c.s.current(); now != "" && now != c.addr {
		c.Conn.Close()
		return 0, fmt.Errorf("the sentinels named a new primary, %s (this connection is to %s)", now, c.addr)
	}
	return c.Conn.Write(p)
}

func (s *sentinels) close() {
	s.closeOnce.Do(func() {
		close(s.stop)
		for _, c := range s.clients {
			c.Close()
		}
	})
}

// String names the store in messages, without credentials.
func (s *RedisStore) String() string { return s.cfg.String() }

// Close closes the client's connections.
func (s *RedisStore) Close() error {
	if s.sentinels != nil {
		s.sentinels.close()
	}
	return s.client.Close()
}

// Revive clears the mark a failure left (see call): the next call tries
// the server again. A FailoverStore calls it when it goes back to this
// store after an outage (a Sentinel promoting a replica, a restart).
//
// A cluster's client is also asked to load its map of slots again: a
// master that died was replaced by its replica, and the old map would
// send every step to the dead address for ever (a tour found a batch
// that never came back).
func (s *RedisStore) Revive() {
	s.down.Store(nil)
	if cc, ok := s.client.(*redis.ClusterClient); ok {
		cc.ReloadState(context.Background())
	}
}

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
			switch {
			case err != nil && flagsRefused(err):
				// A server before 7.0 refused the flagged admission:
				// not down; the next admission is sent unflagged.
				s.oldScripts.Store(true)
			case err != nil && !errors.Is(err, redis.Nil):
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

// nowArg is the scripts' now: "" for the server's clock, or the caller's
// in milliseconds (CallerClock, for tests).
func (s *RedisStore) nowArg(now time.Time) string {
	if s.cfg.CallerClock {
		return strconv.FormatInt(now.UnixMilli(), 10)
	}
	return ""
}

// nowArgUS is nowArg in microseconds, for the scripts of the rate and
// the learned quotas.
func (s *RedisStore) nowArgUS(now time.Time) string {
	if s.cfg.CallerClock {
		return strconv.FormatInt(usOf(now), 10)
	}
	return ""
}

// ms is d in whole milliseconds, rounded up (a positive wait never
// becomes none), and at most maxMs: no setting makes a script's time
// arithmetic wrap around (the stores agree: see addSat).
func ms(d time.Duration) int64 {
	switch {
	case d <= 0:
		return 0
	case d >= maxTime.Sub(time.UnixMilli(0)):
		return maxMs
	}
	return min(int64((d+time.Millisecond-1)/time.Millisecond), maxMs)
}

// maxMs bounds the milliseconds a script adds to its now: about 292
// years, exact in Lua's numbers, and far below where Redis's expiries
// overflow.
const maxMs = int64(math.MaxInt64 / int64(time.Millisecond))

// Admit implements Store: redisAdmitScript(), by the server's clock.
//
// On Redis 7 and later the script is flagged as one that may write
// (redisAdmitScriptFlagged), so a server that takes no writes (out of
// memory under noeviction, a read-only replica) refuses the admission
// itself: the process moves to its local files at its first step, and
// the breaker works there. Unflagged, the read went through, every
// record failed, and no failure was counted anywhere (a tour found it).
func (s *RedisStore) Admit(ctx context.Context, p Params, now time.Time) (Decision, error) {
	args := []any{s.nowArg(now), ms(s.cfg.TTL), p.Identity, ms(p.TrialTimeout)}
	if !s.oldScripts.Load() {
		d, err := s.step(ctx, "read", p, now, nil, redisAdmitScriptFlagged(), args...)
		if err == nil || !flagsRefused(err) {
			return d, err
		}
		s.oldScripts.Store(true)
	}
	return s.step(ctx, "read", p, now, nil, redisAdmitScript(), args...)
}

// flagsRefused reports whether err is a Redis before 7.0 failing to
// compile a script's "#!lua" line.
func flagsRefused(err error) bool {
	msg := err.Error()
	return strings.Contains(msg, "compiling script") && strings.Contains(msg, "'#'")
}

// Record implements Store: redisRecordScript(), by the server's clock.
func (s *RedisStore) Record(ctx context.Context, p Params, o Outcome, now time.Time) (Decision, error) {
	effect := ""
	switch o.Effect {
	case CountFailure:
		effect = "f"
	case CountSuccess:
		effect = "s"
	}
	// Only a failure can open a breaker: a success or any other outcome
	// without a hold never waits for a replica.
	var durable func(reply any) bool
	switch {
	case o.Hold > 0:
		durable = func(any) bool { return true }
	case o.Effect == CountFailure:
		durable = opened
	}
	return s.step(ctx, "write", p, now, durable, redisRecordScript(),
		s.nowArg(now), ms(s.cfg.TTL), p.Identity, p.Node, strconv.FormatUint(o.Generation, 10), effect, o.Err,
		ms(o.Hold), p.Failures, p.Quorum, ms(p.Reset), MaxQuorum, maxHolds)
}

// step runs one of the scripts on p.Key and decodes its reply into a
// Decision whose times are in the caller's clock. op names it in errors:
// read for an admission (which writes only to start a trial), write for
// a record. durable, if set, says from the script's reply whether the
// step opened the breaker or set a hold: with a ReplicaWait, such a write
// waits for a replica (runDurable).
func (s *RedisStore) step(ctx context.Context, op string, p Params, now time.Time, durable func(reply any) bool, script *redis.Script, args ...any) (Decision, error) {
	key := RedisKeyPrefix + p.Key
	res, err := call(ctx, s, func(ctx context.Context) (any, error) {
		if durable != nil && s.cfg.ReplicaWait > 0 {
			return s.runDurable(ctx, key, script, args, durable)
		}
		return script.Run(ctx, s.client, []string{key}, args...).Result()
	})
	if err != nil {
		return Decision{}, s.wrap(ctx, op, err)
	}
	reply, ok := res.([]any)
	if !ok || len(reply) != 5 {
		return Decision{}, s.wrap(ctx, op, fmt.Errorf("unexpected script reply %T", res))
	}
	verdict, _ := reply[0].(string)
	from, _ := reply[1].(string)
	storeNow, _ := reply[2].(int64)
	corrupt, _ := reply[3].(string)
	fields, _ := reply[4].([]any)
	off := now.Sub(time.UnixMilli(storeNow))
	d := Decision{From: parseState(from), Record: recordFromHash(p.Key, fields, off)}
	switch verdict {
	case "trial":
		d.Admission = AdmittedTrial
	case "rejected":
		d.Admission = Rejected
	case "held":
		d.Admission, d.HoldUntil = Held, d.Record.Holds[p.Identity]
	}
	if corrupt != "" {
		d.Corrupt = true
		if s.cfg.Warn != nil {
			s.cfg.Warn(&CorruptStateError{Path: "redis key " + RedisKeyPrefix + p.Key, Err: errors.New(corrupt)})
		}
	}
	return d, nil
}

// opened reports whether a breaker script's reply is that of a step that
// opened the breaker: the record is open now and was not before.
func opened(reply any) bool {
	r, _ := reply.([]any)
	if len(r) != 5 {
		return false
	}
	from, _ := r[1].(string)
	fields, _ := r[4].([]any)
	for i := 0; i+1 < len(fields); i += 2 {
		if name, _ := fields[i].(string); name == "state" {
			to, _ := fields[i+1].(string)
			return to == "open" && from != "open"
		}
	}
	return false
}

// primaryFor is the client of the primary that holds key: the store's
// own, or in a cluster the master of key's slot.
func (s *RedisStore) primaryFor(ctx context.Context, key string) (*redis.Client, error) {
	if cc, ok := s.client.(*redis.ClusterClient); ok {
		return cc.MasterForKey(ctx, key)
	}
	return s.client.(*redis.Client), nil
}

// replicasFor is how long what INFO said of a node's replicas is
// believed.
const replicasFor = time.Minute

// replicaCount is what INFO said of a node's replicas, and when.
type replicaCount struct {
	has bool
	at  time.Time
}

// hasReplicas reports whether the node (by addr) that conn is on has a
// replica connected, by INFO replication once a replicasFor.
func (s *RedisStore) hasReplicas(ctx context.Context, conn *redis.Conn, addr string) bool {
	if v, ok := s.replicas.Load(addr); ok && time.Since(v.(replicaCount).at) < replicasFor {
		return v.(replicaCount).has
	}
	info, err := conn.Info(ctx, "replication").Result()
	if err != nil {
		return true // unknown: wait, within ReplicaWait
	}
	has := !strings.Contains(info, "connected_slaves:0\r\n")
	s.replicas.Store(addr, replicaCount{has: has, at: time.Now()})
	return has
}

// runDurable runs script on key over one connection to key's primary
// and, when durable says from its reply that the step opened a breaker or
// set a hold, waits up to ReplicaWait for one replica to acknowledge the
// write (WAIT 1 counts the writes of its own connection, hence the one
// connection). Replication is asynchronous: without the wait, a primary
// that dies right after answering may take the write with it, and the
// promoted replica would let the fleet in again. A replica that does not
// acknowledge in time fails nothing: the write is done on the primary.
// A primary without replicas (INFO, see hasReplicas) is not waited on.
func (s *RedisStore) runDurable(ctx context.Context, key string, script *redis.Script, args []any, durable func(any) bool) (any, error) {
	node, err := s.primaryFor(ctx, key)
	if err != nil {
		return nil, err
	}
	conn := node.Conn()
	defer conn.Close()
	res, err := script.Run(ctx, conn, []string{key}, args...).Result()
	if err != nil {
		if cc, ok := s.client.(*redis.ClusterClient); ok && isRedirect(err) {
			// The slot moved: the next step asks the cluster again.
			cc.ReloadState(ctx)
		}
		return res, err
	}
	if !durable(res) {
		return res, nil
	}
	addr := node.Options().Addr
	if s.sentinels != nil {
		addr = s.sentinels.current() // the label is the same for every primary
	}
	if s.hasReplicas(ctx, conn, addr) {
		conn.Wait(ctx, 1, s.cfg.ReplicaWait)
	}
	return res, nil
}

// isRedirect reports whether err is a cluster's MOVED or ASK.
func isRedirect(err error) bool {
	msg := err.Error()
	return strings.HasPrefix(msg, "MOVED ") || strings.HasPrefix(msg, "ASK ")
}

// parseState reads a state's name: none is closed; a name this version
// does not know (a newer version's) is StateUnknown, as the scripts
// treat it.
func parseState(name string) State {
	var st State
	switch {
	case name == "":
		return StateClosed
	case st.UnmarshalText([]byte(name)) != nil:
		return StateUnknown
	}
	return st
}

// hashInt reads a stored number as the scripts do (int0): an integer of
// at most 2^53 in size; anything else is not a number (reads as 0).
func hashInt(v string) (int64, bool) {
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil || n > 1<<53 || n < -(1<<53) {
		return 0, false
	}
	return n, true
}

// recordFromHash decodes a record's hash fields (HGETALL's flat list),
// its times moved by off into the caller's clock. Fields it does not
// know are ignored (and stay in Redis).
func recordFromHash(key string, fields []any, off time.Duration) Record {
	r := Record{Key: key, State: StateClosed}
	at := func(v string) *time.Time {
		n, ok := hashInt(v)
		if !ok {
			return nil
		}
		t := time.UnixMilli(n).Add(off)
		return &t
	}
	for i := 0; i+1 < len(fields); i += 2 {
		name, _ := fields[i].(string)
		v, _ := fields[i+1].(string)
		n, _ := hashInt(v)
		switch {
		case name == "state":
			r.State = parseState(v)
			if r.State == StateUnknown {
				r.rawState = v
			}
		case name == "gen":
			r.Generation = uint64(max(n, 0))
		case name == "failures":
			r.ConsecutiveFailures = int(max(n, 0))
		case name == "opened_at":
			r.OpenedAt = at(v)
		case name == "retry_at":
			r.RetryAt = at(v)
		case name == "trial_until":
			r.TrialUntil = at(v)
		case name == "updated_at":
			if t := at(v); t != nil {
				r.UpdatedAt = *t
			}
		case name == "last_error":
			r.LastError = v
		case strings.HasPrefix(name, "n:"):
			if r.NodeFailures == nil {
				r.NodeFailures = map[string]int{}
			}
			r.NodeFailures[name[2:]] = int(max(n, 0))
		case strings.HasPrefix(name, "tf:"):
			r.TrialFailures = append(r.TrialFailures, name[3:])
		case strings.HasPrefix(name, "h:"):
			if t := at(v); t != nil {
				if r.Holds == nil {
					r.Holds = map[string]time.Time{}
				}
				r.Holds[name[2:]] = *t
			}
		}
	}
	sort.Strings(r.TrialFailures)
	if r.State == StateOpen && r.RetryAt == nil {
		// As the scripts read it: a retry_at of 0, long past.
		t := time.UnixMilli(0).Add(off)
		r.RetryAt = &t
	}
	return r
}

// keys returns every key under RedisKeyPrefix, without the prefix.
func (s *RedisStore) keys(ctx context.Context, op string) ([]string, error) {
	out, err := s.scan(ctx, op, RedisKeyPrefix)
	for i, k := range out {
		out[i] = strings.TrimPrefix(k, RedisKeyPrefix)
	}
	return out, err
}

// scan returns the full names of every key under each of prefixes,
// sorted, on every master of a cluster (SCAN, so no server is ever
// blocked). op names it in errors.
func (s *RedisStore) scan(ctx context.Context, op string, prefixes ...string) ([]string, error) {
	out, err := call(ctx, s, func(ctx context.Context) ([]string, error) {
		var (
			mu  sync.Mutex
			out []string
		)
		each := func(ctx context.Context, c *redis.Client) error {
			for _, prefix := range prefixes {
				var keys []string
				iter := c.Scan(ctx, 0, prefix+"*", 256).Iterator()
				for iter.Next(ctx) {
					keys = append(keys, iter.Val())
				}
				if err := iter.Err(); err != nil {
					return err
				}
				mu.Lock()
				out = append(out, keys...)
				mu.Unlock()
			}
			return nil
		}
		if cc, ok := s.client.(*redis.ClusterClient); ok {
			return out, cc.ForEachMaster(ctx, each)
		}
		return out, each(ctx, s.client.(*redis.Client))
	})
	if err != nil {
		return nil, s.wrap(ctx, op, err)
	}
	sort.Strings(out)
	// SCAN may return a key twice.
	return compactStrings(out), nil
}

// del removes keys and returns how many there were: one DEL a key, in
// one pipeline (a cluster refuses a DEL of keys in several slots).
func (s *RedisStore) del(ctx context.Context, keys []string) (int64, error) {
	return call(ctx, s, func(ctx context.Context) (int64, error) {
		cmds, err := s.client.Pipelined(ctx, func(pipe redis.Pipeliner) error {
			for _, k := range keys {
				pipe.Del(ctx, k)
			}
			return nil
		})
		var n int64
		for _, c := range cmds {
			n += c.(*redis.IntCmd).Val()
		}
		return n, err
	})
}

// wrongType reports whether err is Redis refusing a command on a key of
// another type (a corrupt record), not a failure of the server.
func wrongType(err error) bool { return strings.HasPrefix(err.Error(), "WRONGTYPE") }

func compactStrings(s []string) []string {
	out := s[:0]
	for i, v := range s {
		if i == 0 || v != s[i-1] {
			out = append(out, v)
		}
	}
	return out
}

// List returns every record in the server, sorted by key, its times in
// the local clock; keys that vanish between the scan and the read are
// skipped.
func (s *RedisStore) List(ctx context.Context) ([]Record, error) {
	keys, err := s.keys(ctx, "list")
	if err != nil {
		return nil, err
	}
	out := []Record{}
	err = inBatches(keys, func(batch, full []string) error {
		cmds, err := call(ctx, s, func(ctx context.Context) ([]redis.Cmder, error) {
			return s.client.Pipelined(ctx, func(pipe redis.Pipeliner) error {
				pipe.Time(ctx)
				for _, k := range full {
					pipe.HGetAll(ctx, k)
				}
				return nil
			})
		})
		if len(cmds) != len(full)+1 {
			return s.wrap(ctx, "list", err)
		}
		// A key that is not a hash fails its own HGETALL only (WRONGTYPE);
		// any other error (a cluster node down) fails the listing.
		server, err := cmds[0].(*redis.TimeCmd).Result()
		if err != nil {
			return s.wrap(ctx, "list", err)
		}
		off := time.Since(server)
		for i, c := range cmds[1:] {
			m, err := c.(*redis.MapStringStringCmd).Result()
			if err != nil && !errors.Is(err, redis.Nil) && !wrongType(err) {
				return s.wrap(ctx, "list", err)
			}
			if err != nil || len(m) == 0 {
				// Expired or deleted since the scan, or not a hash (a
				// step replaces it): not a breaker to list.
				if err != nil && s.cfg.Warn != nil && !errors.Is(err, redis.Nil) {
					s.cfg.Warn(&CorruptStateError{Path: "redis key " + full[i], Err: err, Listed: true})
				}
				continue
			}
			fields := make([]any, 0, 2*len(m))
			for name, v := range m {
				fields = append(fields, name, v)
			}
			out = append(out, recordFromHash(batch[i], fields, off))
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
		d, err := s.del(ctx, full)
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
