// Package redistest starts real redis-server processes for tests: each on
// a free loopback port, with persistence off and its files in a temporary
// dir, stopped when the test ends.
//
// Without redis-server on PATH a test that asks for one is skipped, except
// when CI=true, where it fails: CI must run the Redis tests.
package redistest

import (
	"bufio"
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// Options configure a server.
type Options struct {
	// Password, if set, is required from clients (--requirepass).
	Password string
	// TLS, if set, makes the server speak TLS only (on the port returned),
	// with this certificate and key.
	TLS *TLSFiles
}

// TLSFiles are PEM files for a TLS server.
type TLSFiles struct {
	Cert, Key string
}

type server struct {
	cmd  *exec.Cmd
	done chan struct{}
}

var (
	mu      sync.Mutex
	servers = map[string]*server{}
)

// Start starts a redis-server for t and returns its address, host:port.
func Start(t testing.TB) string {
	return StartWith(t, Options{})
}

// StartWith starts a redis-server with opts for t and returns its address.
func StartWith(t testing.TB, opts Options) string {
	t.Helper()
	bin := Binary(t)
	dir := t.TempDir()
	var lastErr error
	// A free port may be taken by someone else before the server binds it:
	// try a few.
	for try := 0; try < 5; try++ {
		addr, err := start(t, bin, dir, opts)
		if err == nil {
			return addr
		}
		lastErr = err
	}
	t.Fatalf("redistest: %v", lastErr)
	return ""
}

// Binary returns the path of redis-server, skipping t when there is none
// (failing it when CI=true).
func Binary(t testing.TB) string {
	t.Helper()
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("redis-server is not on PATH, and CI=true requires the Redis tests: install it (apt-get install -y redis-server)")
		}
		t.Skip("redis-server is not on PATH: skipping a Redis test (apt-get install -y redis-server to run it)")
	}
	return bin
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

func start(t testing.TB, bin, dir string, opts Options) (string, error) {
	port, err := freePort()
	if err != nil {
		return "", err
	}
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	args := []string{"--port", strconv.Itoa(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
		"--dir", dir, "--daemonize", "no"}
	if opts.Password != "" {
		args = append(args, "--requirepass", opts.Password)
	}
	if opts.TLS != nil {
		args[1] = "0" // no plain port
		args = append(args, "--tls-port", strconv.Itoa(port), "--tls-cert-file", opts.TLS.Cert,
			"--tls-key-file", opts.TLS.Key, "--tls-auth-clients", "no")
	}
	if err := launch(bin, addr, opts.TLS != nil, args...); err != nil {
		return "", err
	}
	t.Cleanup(func() { stop(addr) })
	return addr, nil
}

// launch starts bin with args, a server that will listen on addr, waits
// until it answers PING and registers it (stop ends it).
func launch(bin, addr string, useTLS bool, args ...string) error {
	cmd := exec.Command(bin, args...)
	var log bytes.Buffer
	cmd.Stdout, cmd.Stderr = &log, &log
	if err := cmd.Start(); err != nil {
		return err
	}
	s := &server{cmd: cmd, done: make(chan struct{})}
	go func() { cmd.Wait(); close(s.done) }()
	deadline := time.Now().Add(10 * time.Second)
	for {
		select {
		case <-s.done:
			return fmt.Errorf("%s on %s exited: %s", filepath.Base(bin), addr, lastLines(log.String()))
		default:
		}
		if ping(addr, useTLS) {
			break
		}
		if time.Now().After(deadline) {
			cmd.Process.Kill()
			<-s.done
			return fmt.Errorf("%s on %s did not answer PING within 10s: %s", filepath.Base(bin), addr, lastLines(log.String()))
		}
		time.Sleep(10 * time.Millisecond)
	}
	mu.Lock()
	servers[addr] = s
	mu.Unlock()
	return nil
}

// ping reports whether a server answers PING on addr (+PONG, or -NOAUTH
// from a server that wants a password: either way it is serving).
func ping(addr string, useTLS bool) bool {
	var (
		c   net.Conn
		err error
	)
	d := &net.Dialer{Timeout: time.Second}
	if useTLS {
		// Readiness only: the test checks the certificate its own way.
		c, err = tls.DialWithDialer(d, "tcp", addr, &tls.Config{InsecureSkipVerify: true})
	} else {
		c, err = d.Dial("tcp", addr)
	}
	if err != nil {
		return false
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(time.Second))
	if _, err := c.Write([]byte("PING\r\n")); err != nil {
		return false
	}
	line, err := bufio.NewReader(c).ReadString('\n')
	return err == nil && (strings.HasPrefix(line, "+PONG") || strings.HasPrefix(line, "-NOAUTH"))
}

func lastLines(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return strings.Join(lines[max(0, len(lines)-5):], " | ")
}

func stop(addr string) {
	mu.Lock()
	s := servers[addr]
	delete(servers, addr)
	mu.Unlock()
	if s == nil {
		return
	}
	s.cmd.Process.Kill()
	<-s.done
}

// Kill stops the server on addr at once (SIGKILL) and waits until it is
// gone, so nothing answers on addr afterwards.
func Kill(t testing.TB, addr string) {
	t.Helper()
	mu.Lock()
	_, ok := servers[addr]
	mu.Unlock()
	if !ok {
		t.Fatalf("redistest: no server running on %s", addr)
	}
	stop(addr)
}

// SelfSigned writes a self-signed certificate for 127.0.0.1 and its key
// into a temp dir, for a TLS server; clients trust it through the
// certificate file itself (e.g. SSL_CERT_FILE=files.Cert).
func SelfSigned(t testing.TB) TLSFiles {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "redistest"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(24 * time.Hour),
		IPAddresses:  []net.IP{net.ParseIP("127.0.0.1")},
		KeyUsage:     x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		// Client auth too: cluster nodes present it to each other.
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	files := TLSFiles{Cert: filepath.Join(dir, "cert.pem"), Key: filepath.Join(dir, "key.pem")}
	if err := os.WriteFile(files.Cert, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(files.Key, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder}), 0o600); err != nil {
		t.Fatal(err)
	}
	return files
}

// DeadAddr returns a loopback address where nothing listens (a port that
// was free a moment ago): a server that refuses connections.
func DeadAddr(t testing.TB) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return addr
}
