package redistest

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// Highly available Redis for tests: a Sentinel setup (a primary, a
// replica, sentinels that promote the replica when the primary dies) and
// a Redis Cluster of three masters, all real processes on loopback ports.
// StartSentinel and StartCluster give a test its own (stopped at its end);
// SharedSentinel and SharedCluster give every test of a package one setup
// (a package's TestMain calls CloseShared), which a test empties with
// Flush and must not kill.

// MasterName is the name under which the sentinels monitor the primary.
const MasterName = "refetch"

// waitLimit bounds every wait for a setup to become ready: a failure
// guard for a loaded machine, not a speed claim.
const waitLimit = 60 * time.Second

// Sentinel is a primary with one replica, watched by sentinels that
// promote the replica about a second after the primary stops answering.
type Sentinel struct {
	// Primary and Replica are the servers' addresses as started (after a
	// failover, Replica is the primary).
	Primary, Replica string
	// Sentinels are the sentinels' addresses.
	Sentinels []string
	// SentinelPassword is the password the sentinels ask for ("" none);
	// the servers ask for none.
	SentinelPassword string
	addrs            []string
	tls              *TLSFiles
}

// URL is the store URL of the setup: redis+sentinel://S1,S2/MasterName.
// (rediss+sentinel:// for a TLS setup; ?sentinel_password=… when the
// sentinels ask for one).
func (s *Sentinel) URL() string {
	u := scheme(s.tls) + "+sentinel://" + strings.Join(s.Sentinels, ",") + "/" + MasterName
	if s.SentinelPassword != "" {
		u += "?sentinel_password=" + url.QueryEscape(s.SentinelPassword)
	}
	return u
}

func scheme(tls *TLSFiles) string {
	if tls != nil {
		return "rediss"
	}
	return "redis"
}

// Close stops every process of the setup.
func (s *Sentinel) Close() {
	for _, a := range s.addrs {
		stop(a)
	}
}

// Cluster is a Redis Cluster of three masters (no replicas), its 16384
// slots split evenly.
type Cluster struct {
	// Masters are the masters' addresses.
	Masters []string
	// Replicas are replicas added with AddReplica.
	Replicas []string
	tls      *TLSFiles
	server   string // the redis-server binary
	cli      string // the redis-cli binary
	dir      string
}

// URL is the store URL of the cluster: redis+cluster://M1,M2,M3
// (rediss+cluster:// for a TLS cluster).
func (c *Cluster) URL() string { return scheme(c.tls) + "+cluster://" + strings.Join(c.Masters, ",") }

// Close stops every node.
func (c *Cluster) Close() {
	for _, a := range append(c.Masters, c.Replicas...) {
		stop(a)
	}
}

// AddReplica starts a node and makes it a replica of the master at
// master, returning once the replica has synced; a master killed later
// (Kill) is replaced by it within the cluster's node timeout (1s).
func (c *Cluster) AddReplica(t testing.TB, master string) string {
	t.Helper()
	ndir := filepath.Join(c.dir, "replica"+strconv.Itoa(len(c.Replicas)))
	if err := os.MkdirAll(ndir, 0o700); err != nil {
		t.Fatal(err)
	}
	addr, err := launchClusterNode(c.server, ndir, c.tls)
	if err != nil {
		t.Fatalf("redistest: %v", err)
	}
	c.Replicas = append(c.Replicas, addr)
	ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
	defer cancel()
	mc := client(master, c.tls)
	defer mc.Close()
	id, err := mc.Do(ctx, "CLUSTER", "MYID").Text()
	if err != nil {
		t.Fatalf("redistest: CLUSTER MYID on %s: %v", master, err)
	}
	out, err := exec.CommandContext(ctx, c.cli, "--cluster", "add-node", addr, master, "--cluster-slave", "--cluster-master-id", id).CombinedOutput()
	if err != nil {
		t.Fatalf("redistest: redis-cli --cluster add-node: %v: %s", err, lastLines(string(out)))
	}
	rc := client(addr, c.tls)
	defer rc.Close()
	if err := poll("replica "+addr+" to sync with "+master, func() bool {
		info, err := rc.Info(ctx, "replication").Result()
		return err == nil && strings.Contains(info, "role:slave") && strings.Contains(info, "master_link_status:up")
	}); err != nil {
		t.Fatalf("redistest: %v", err)
	}
	return addr
}

// WaitMaster waits until the node at addr is a master with slots that
// every live node agrees on (cluster_state:ok): a replica promoted after
// its master died.
func (c *Cluster) WaitMaster(t testing.TB, addr string) {
	t.Helper()
	ctx := context.Background()
	nc := client(addr, c.tls)
	defer nc.Close()
	if err := poll(addr+" to be a master of a healthy cluster", func() bool {
		info, err := nc.Info(ctx, "replication").Result()
		if err != nil || !strings.Contains(info, "role:master") {
			return false
		}
		ci, err := nc.ClusterInfo(ctx).Result()
		return err == nil && strings.Contains(ci, "cluster_state:ok")
	}); err != nil {
		t.Fatalf("redistest: %v", err)
	}
}

// HABinaries returns redis-server, redis-sentinel and redis-cli, skipping
// t when one is missing (failing it when CI=true).
func HABinaries(t testing.TB) (server, sentinel, cli string) {
	t.Helper()
	server = Binary(t)
	for _, name := range []string{"redis-sentinel", "redis-cli"} {
		bin, err := exec.LookPath(name)
		if err != nil {
			if os.Getenv("CI") == "true" {
				t.Fatalf("%s is not on PATH, and CI=true requires the Redis tests: install it (apt-get install -y redis-server redis-sentinel)", name)
			}
			t.Skipf("%s is not on PATH: skipping a Redis test (apt-get install -y redis-server redis-sentinel to run it)", name)
		}
		if name == "redis-sentinel" {
			sentinel = bin
		} else {
			cli = bin
		}
	}
	return server, sentinel, cli
}

// StartSentinel starts a primary, a replica and n sentinels for t, and
// waits until the sentinels know the replica (so that they can promote
// it). Everything stops when t ends.
func StartSentinel(t testing.TB, n int) *Sentinel {
	t.Helper()
	return StartSentinelTLS(t, n, nil)
}

// StartSentinelTLS is StartSentinel with every server and sentinel
// speaking TLS only, with files (nil: plain).
func StartSentinelTLS(t testing.TB, n int, files *TLSFiles) *Sentinel {
	t.Helper()
	return startSentinel(t, n, files, "")
}

// StartSentinelAuth is StartSentinel with sentinels that ask for
// password (requirepass; they authenticate to one another with it too).
func StartSentinelAuth(t testing.TB, n int, password string) *Sentinel {
	t.Helper()
	return startSentinel(t, n, nil, password)
}

func startSentinel(t testing.TB, n int, files *TLSFiles, password string) *Sentinel {
	t.Helper()
	server, sentinel, _ := HABinaries(t)
	s, err := newSentinel(server, sentinel, t.TempDir(), n, files, password)
	if err != nil {
		t.Fatalf("redistest: %v", err)
	}
	t.Cleanup(s.Close)
	return s
}

// StartCluster starts a three-master cluster for t, stopped when t ends.
func StartCluster(t testing.TB) *Cluster {
	t.Helper()
	return StartClusterTLS(t, nil)
}

// StartClusterTLS is StartCluster with every node speaking TLS only (the
// cluster bus too), with files (nil: plain).
func StartClusterTLS(t testing.TB, files *TLSFiles) *Cluster {
	t.Helper()
	server, _, cli := HABinaries(t)
	c, err := NewCluster(server, cli, t.TempDir(), files)
	if err != nil {
		t.Fatalf("redistest: %v", err)
	}
	t.Cleanup(c.Close)
	return c
}

var (
	sharedMu       sync.Mutex
	sharedSentinel *Sentinel
	sharedCluster  *Cluster
	sharedDir      string
)

func sharedTemp() (string, error) {
	if sharedDir == "" {
		d, err := os.MkdirTemp("", "redistest-*")
		if err != nil {
			return "", err
		}
		sharedDir = d
	}
	return os.MkdirTemp(sharedDir, "")
}

// SharedSentinel is the package's one Sentinel setup (three sentinels),
// started by the first test that asks; CloseShared stops it.
func SharedSentinel(t testing.TB) *Sentinel {
	t.Helper()
	server, sentinel, _ := HABinaries(t)
	sharedMu.Lock()
	defer sharedMu.Unlock()
	if sharedSentinel == nil {
		dir, err := sharedTemp()
		if err == nil {
			sharedSentinel, err = NewSentinel(server, sentinel, dir, 3, nil)
		}
		if err != nil {
			t.Fatalf("redistest: %v", err)
		}
	}
	return sharedSentinel
}

// SharedCluster is the package's one cluster, started by the first test
// that asks; CloseShared stops it.
func SharedCluster(t testing.TB) *Cluster {
	t.Helper()
	server, _, cli := HABinaries(t)
	sharedMu.Lock()
	defer sharedMu.Unlock()
	if sharedCluster == nil {
		dir, err := sharedTemp()
		if err == nil {
			sharedCluster, err = NewCluster(server, cli, dir, nil)
		}
		if err != nil {
			t.Fatalf("redistest: %v", err)
		}
	}
	return sharedCluster
}

// CloseShared stops the shared setups and removes their files: call it
// from TestMain after m.Run.
func CloseShared() {
	sharedMu.Lock()
	defer sharedMu.Unlock()
	if sharedSentinel != nil {
		sharedSentinel.Close()
		sharedSentinel = nil
	}
	if sharedCluster != nil {
		sharedCluster.Close()
		sharedCluster = nil
	}
	if sharedDir != "" {
		os.RemoveAll(sharedDir)
		sharedDir = ""
	}
}

// freeAddr is a free loopback address and its port.
func freeAddr() (string, int, error) {
	port, err := freePort()
	if err != nil {
		return "", 0, err
	}
	return net.JoinHostPort("127.0.0.1", strconv.Itoa(port)), port, nil
}

// launchRetry starts a server on a free port (args from its port), trying
// a few ports: one may be taken between the check and the bind.
func launchRetry(bin string, tls *TLSFiles, args func(port int) ([]string, error)) (string, error) {
	var last error
	for try := 0; try < 5; try++ {
		addr, port, err := freeAddr()
		if err != nil {
			return "", err
		}
		a, err := args(port)
		if err != nil {
			return "", err
		}
		if last = launch(bin, addr, tls != nil, a...); last == nil {
			return addr, nil
		}
	}
	return "", last
}

// serverArgs are a server's arguments, its files in dir; with tls, it
// speaks TLS only, to clients and to its primary or cluster.
func serverArgs(port int, dir string, tls *TLSFiles, extra ...string) []string {
	args := []string{"--port", strconv.Itoa(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
		"--dir", dir, "--daemonize", "no"}
	if tls != nil {
		args[1] = "0"
		args = append(args, "--tls-port", strconv.Itoa(port), "--tls-cert-file", tls.Cert, "--tls-key-file", tls.Key,
			"--tls-ca-cert-file", tls.Cert, "--tls-auth-clients", "no", "--tls-replication", "yes")
	}
	return append(args, extra...)
}

// options are a helper client's options for addr.
func options(addr string, files *TLSFiles) *redis.Options {
	o := &redis.Options{Addr: addr, DisableIdentity: true, MaxRetries: -1}
	if files != nil {
		// Readiness only: the tests check certificates their own way.
		o.TLSConfig = &tls.Config{InsecureSkipVerify: true}
	}
	return o
}

func client(addr string, files *TLSFiles) *redis.Client { return redis.NewClient(options(addr, files)) }

// poll calls cond until it is true, or fails after waitLimit with what.
func poll(what string, cond func() bool) error {
	deadline := time.Now().Add(waitLimit)
	for !cond() {
		if time.Now().After(deadline) {
			return fmt.Errorf("%s: not within %s", what, waitLimit)
		}
		time.Sleep(20 * time.Millisecond)
	}
	return nil
}

// NewSentinel starts a primary, a replica of it and n sentinels (quorum:
// a majority of them), their files in dir, and returns once the replica
// is in sync and every sentinel knows it. A sentinel calls the primary
// down after 500ms without an answer and gives a failover 2s. Close stops
// it all. (For benchmarks and shared setups; tests use StartSentinel.)
func NewSentinel(serverBin, sentinelBin, dir string, n int, files *TLSFiles) (*Sentinel, error) {
	return newSentinel(serverBin, sentinelBin, dir, n, files, "")
}

func newSentinel(serverBin, sentinelBin, dir string, n int, files *TLSFiles, password string) (*Sentinel, error) {
	s := &Sentinel{tls: files, SentinelPassword: password}
	fail := func(err error) (*Sentinel, error) { s.Close(); return nil, err }
	mkdir := func(name string) (string, error) {
		d := filepath.Join(dir, name)
		return d, os.MkdirAll(d, 0o700)
	}
	pdir, err := mkdir("primary")
	if err != nil {
		return nil, err
	}
	if s.Primary, err = launchRetry(serverBin, files, func(port int) ([]string, error) {
		// The replica's first sync starts at once, not after 5s.
		return serverArgs(port, pdir, files, "--repl-diskless-sync-delay", "0"), nil
	}); err != nil {
		return nil, err
	}
	s.addrs = append(s.addrs, s.Primary)
	rdir, err := mkdir("replica")
	if err != nil {
		return fail(err)
	}
	phost, pport, _ := net.SplitHostPort(s.Primary)
	s.Replica, err = launchRetry(serverBin, files, func(port int) ([]string, error) {
		return serverArgs(port, rdir, files, "--replicaof", phost, pport, "--repl-diskless-sync-delay", "0"), nil
	})
	if err != nil {
		return fail(err)
	}
	s.addrs = append(s.addrs, s.Replica)
	ctx := context.Background()
	rc := client(s.Replica, files)
	defer rc.Close()
	if err := poll("the replica's link to the primary", func() bool {
		info, err := rc.Info(ctx, "replication").Result()
		return err == nil && strings.Contains(info, "master_link_status:up")
	}); err != nil {
		return fail(err)
	}
	quorum := n/2 + 1
	for i := 0; i < n; i++ {
		sdir, err := mkdir("sentinel" + strconv.Itoa(i))
		if err != nil {
			return fail(err)
		}
		addr, err := launchRetry(sentinelBin, files, func(port int) ([]string, error) {
			// A sentinel rewrites its configuration file: it must be its own
			// and writable.
			conf := filepath.Join(sdir, "sentinel.conf")
			text := fmt.Sprintf("port %d\nbind 127.0.0.1\ndaemonize no\ndir %s\n"+
				"sentinel monitor %s %s %s %d\n"+
				"sentinel down-after-milliseconds %[3]s 500\n"+
				"sentinel failover-timeout %[3]s 2000\n"+
				"sentinel parallel-syncs %[3]s 1\n", port, sdir, MasterName, phost, pport, quorum)
			if password != "" {
				// Asked of clients, and of one sentinel by another.
				text += fmt.Sprintf("requirepass %s\nsentinel sentinel-pass %[1]s\n", password)
			}
			if files != nil {
				text = strings.Replace(text, fmt.Sprintf("port %d\n", port), fmt.Sprintf("port 0\ntls-port %d\n"+
					"tls-cert-file %s\ntls-key-file %s\ntls-ca-cert-file %[2]s\ntls-auth-clients no\ntls-replication yes\n",
					port, files.Cert, files.Key), 1)
			}
			return []string{conf}, os.WriteFile(conf, []byte(text), 0o600)
		})
		if err != nil {
			return fail(err)
		}
		s.Sentinels = append(s.Sentinels, addr)
		s.addrs = append(s.addrs, addr)
	}
	for _, addr := range s.Sentinels {
		sc := redis.NewSentinelClient(s.sentinelOptions(addr))
		err := poll("sentinel "+addr+" to know the replica and the other sentinels", func() bool {
			replicas, err := sc.Replicas(ctx, MasterName).Result()
			if err != nil || len(replicas) != 1 || strings.Contains(replicas[0]["flags"], "down") ||
				strings.Contains(replicas[0]["flags"], "disconnected") {
				return false
			}
			others, err := sc.Sentinels(ctx, MasterName).Result()
			return err == nil && len(others) == n-1
		})
		sc.Close()
		if err != nil {
			return fail(err)
		}
	}
	return s, nil
}

// sentinelOptions are the options of a client of the sentinel at addr.
func (s *Sentinel) sentinelOptions(addr string) *redis.Options {
	o := options(addr, s.tls)
	o.Password = s.SentinelPassword
	return o
}

// MasterAddr is the primary's address as the sentinels report it.
func (s *Sentinel) MasterAddr() (string, error) {
	var last error
	for _, addr := range s.Sentinels {
		sc := redis.NewSentinelClient(s.sentinelOptions(addr))
		got, err := sc.GetMasterAddrByName(context.Background(), MasterName).Result()
		sc.Close()
		if err == nil && len(got) == 2 {
			return net.JoinHostPort(got[0], got[1]), nil
		}
		last = err
	}
	return "", fmt.Errorf("no sentinel names the primary: %v", last)
}

// WaitPromoted waits until the sentinels name a primary other than old
// and it answers as a primary (role master, writable), and returns its
// address.
func (s *Sentinel) WaitPromoted(t testing.TB, old string) string {
	t.Helper()
	var addr string
	err := poll("the sentinels to promote a replica of "+old, func() bool {
		a, err := s.MasterAddr()
		if err != nil || a == old {
			return false
		}
		c := client(a, s.tls)
		defer c.Close()
		info, err := c.Info(context.Background(), "replication").Result()
		if err != nil || !strings.Contains(info, "role:master") {
			return false
		}
		addr = a
		return true
	})
	if err != nil {
		t.Fatalf("redistest: %v", err)
	}
	return addr
}

// WaitReplicated returns once the replica has every write the primary
// took so far: a write of its own and WAIT 1 0 on the same connection
// (replication is one ordered stream, so the replica's acknowledgement
// of that write covers every earlier one, whoever made it). For tests
// about what a promotion keeps, which must not depend on how fast the
// replica was under load.
func (s *Sentinel) WaitReplicated(t testing.TB) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
	defer cancel()
	c := client(s.Primary, s.tls)
	defer c.Close()
	conn := c.Conn()
	defer conn.Close()
	if err := conn.Set(ctx, "redistest:replicated", time.Now().UnixNano(), 0).Err(); err != nil {
		t.Fatalf("redistest: write to the primary: %v", err)
	}
	n, err := conn.Do(ctx, "WAIT", 1, 0).Int()
	if err != nil || n < 1 {
		t.Fatalf("redistest: the replica did not acknowledge (WAIT: %d, %v)", n, err)
	}
}

// Flush empties the current primary (and so its replica).
func (s *Sentinel) Flush(t testing.TB) {
	t.Helper()
	addr, err := s.MasterAddr()
	if err != nil {
		t.Fatalf("redistest: %v", err)
	}
	c := client(addr, s.tls)
	defer c.Close()
	if err := c.FlushAll(context.Background()).Err(); err != nil {
		t.Fatalf("redistest: FLUSHALL on %s: %v", addr, err)
	}
}

// NewCluster starts three masters with cluster-enabled yes (a node
// timeout of 1s), joins them with redis-cli --cluster create and returns
// once every node reports cluster_state:ok and the same slots. Its files
// are in dir; Close stops it. (For benchmarks and shared setups; tests
// use StartCluster.)
func NewCluster(serverBin, cliBin, dir string, files *TLSFiles) (*Cluster, error) {
	c := &Cluster{tls: files, server: serverBin, cli: cliBin, dir: dir}
	fail := func(err error) (*Cluster, error) { c.Close(); return nil, err }
	for i := 0; i < 3; i++ {
		ndir := filepath.Join(dir, "node"+strconv.Itoa(i))
		if err := os.MkdirAll(ndir, 0o700); err != nil {
			return fail(err)
		}
		addr, err := launchClusterNode(serverBin, ndir, files)
		if err != nil {
			return fail(err)
		}
		c.Masters = append(c.Masters, addr)
	}
	args := append(append([]string{"--cluster", "create"}, c.Masters...), "--cluster-yes")
	if files != nil {
		args = append([]string{"--tls", "--cacert", files.Cert}, args...)
	}
	ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
	defer cancel()
	if out, err := exec.CommandContext(ctx, cliBin, args...).CombinedOutput(); err != nil {
		return fail(fmt.Errorf("redis-cli --cluster create: %v: %s", err, lastLines(string(out))))
	}
	for _, addr := range c.Masters {
		nc := client(addr, files)
		err := poll("node "+addr+" to report cluster_state:ok and every slot", func() bool {
			info, err := nc.ClusterInfo(ctx).Result()
			if err != nil || !strings.Contains(info, "cluster_state:ok") || !strings.Contains(info, "cluster_known_nodes:3") {
				return false
			}
			slots, err := nc.ClusterSlots(ctx).Result()
			return err == nil && len(slots) == 3
		})
		nc.Close()
		if err != nil {
			return fail(err)
		}
	}
	return c, nil
}

// launchClusterNode starts a cluster-enabled redis-server with its files
// in ndir (a node timeout of 1s), for a new cluster or a replica added to
// one, and returns its address.
func launchClusterNode(serverBin, ndir string, files *TLSFiles) (string, error) {
	return launchRetry(serverBin, files, func(port int) ([]string, error) {
		// The cluster bus needs a port of its own (by default port +
		// 10000, which may be taken or out of range).
		bus, err := freePort()
		extra := []string{}
		if files != nil {
			extra = append(extra, "--tls-cluster", "yes")
		}
		return serverArgs(port, ndir, files, append(extra, "--cluster-enabled", "yes", "--cluster-port", strconv.Itoa(bus),
			"--cluster-config-file", filepath.Join(ndir, "nodes.conf"), "--cluster-node-timeout", "1000")...), err
	})
}

// Flush empties every master.
func (c *Cluster) Flush(t testing.TB) {
	t.Helper()
	for _, addr := range c.Masters {
		nc := client(addr, c.tls)
		err := nc.FlushAll(context.Background()).Err()
		nc.Close()
		if err != nil {
			t.Fatalf("redistest: FLUSHALL on %s: %v", addr, err)
		}
	}
}

// NewServer starts a plain redis-server, its files in dir, and returns its
// address and a function that stops it. (For benchmarks; tests use
// Start.)
func NewServer(serverBin, dir string) (string, func(), error) {
	addr, err := launchRetry(serverBin, nil, func(port int) ([]string, error) { return serverArgs(port, dir, nil), nil })
	if err != nil {
		return "", nil, err
	}
	return addr, func() { stop(addr) }, nil
}
