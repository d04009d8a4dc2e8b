package fetch

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"syscall"
	"testing"
)

func TestParseResolve(t *testing.T) {
	good := map[string]string{
		"example.com:443:192.0.2.1":              "example.com:443:192.0.2.1",
		"Example.COM.:80:192.0.2.1,192.0.2.2":    "example.com:80:192.0.2.1,192.0.2.2",
		"+example.com:80:192.0.2.1":              "example.com:80:192.0.2.1",
		"example.com:80:[2001:db8::1],192.0.2.1": "example.com:80:[2001:db8::1],192.0.2.1",
		"example.com:80:2001:db8::1":             "example.com:80:[2001:db8::1]",
		"[2001:db8::5]:8080:127.0.0.1":           "[2001:db8::5]:8080:127.0.0.1",
		"*:8080:127.0.0.1":                       "*:8080:127.0.0.1",
		"example.com:80:::ffff:127.0.0.1":        "example.com:80:127.0.0.1",
	}
	for in, want := range good {
		p, err := ParseResolve(in)
		if err != nil {
			t.Errorf("ParseResolve(%q) = %v", in, err)
			continue
		}
		if p.String() != want {
			t.Errorf("ParseResolve(%q) = %s, want %s", in, p, want)
		}
	}
	bad := map[string]string{
		"example.com":                   "want HOST:PORT:ADDR",
		"example.com:80":                "no address",
		"example.com:80:":               "no address",
		":80:127.0.0.1":                 "empty host",
		"example.com:http:127.0.0.1":    "not a number",
		"example.com:0:127.0.0.1":       "out of range",
		"example.com::127.0.0.1":        "the port is empty",
		"example.com:80:example.org":    "not an IP address",
		"example.com:80:127.0.0.1,":     "not an IP address",
		"[2001:db8::5:80:127.0.0.1":     "missing ']'",
		"[example.com]:80:127.0.0.1":    "not an IPv6 address",
		"-example.com:80":               "removes an entry",
		"exa mple.com:80:127.0.0.1":     "which no host name can hold",
		"-bad-.com:80:127.0.0.1":        "removes an entry",
		"example.com:99999:127.0.0.1":   "out of range",
		"example.com:80:127.0.0.1:8080": "not an IP address",
	}
	for in, want := range bad {
		_, err := ParseResolve(in)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("ParseResolve(%q) = %v, want an error saying %q", in, err, want)
		}
	}
}

func TestPinsLookup(t *testing.T) {
	mk := func(s string) Pin {
		p, err := ParseResolve(s)
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	ps := Pins{mk("*:80:192.0.2.9"), mk("a.test:80:192.0.2.1,192.0.2.2"), mk("a.test:443:192.0.2.3")}
	if err := ps.Check(); err != nil {
		t.Fatal(err)
	}
	check := func(host string, port int, want string) {
		t.Helper()
		var got []string
		for _, a := range ps.lookup(host, port) {
			got = append(got, a.String())
		}
		if strings.Join(got, ",") != want {
			t.Errorf("lookup(%s, %d) = %v, want %s", host, port, got, want)
		}
	}
	check("a.test", 80, "192.0.2.1,192.0.2.2")
	check("A.Test.", 80, "192.0.2.1,192.0.2.2") // the host as pins compare it
	check("a.test", 443, "192.0.2.3")
	check("b.test", 80, "192.0.2.9") // the wildcard
	check("b.test", 443, "")
	if err := append(ps, mk("a.test:80:192.0.2.7")).Check(); err == nil || !strings.Contains(err.Error(), "two entries for a.test:80") {
		t.Errorf("Check of a repeated host:port = %v", err)
	}
}

func TestAddrBookOrder(t *testing.T) {
	ap := func(s string) netip.AddrPort { return netip.MustParseAddrPort(s) }
	a, b, c := ap("192.0.2.1:80"), ap("192.0.2.2:80"), ap("192.0.2.3:80")
	all := []netip.AddrPort{a, b, c}
	str := func(v []netip.AddrPort) string {
		var s []string
		for _, x := range v {
			s = append(s, x.Addr().String())
		}
		return strings.Join(s, " ")
	}
	var book addrBook
	steps := []struct {
		mark netip.AddrPort
		want string
	}{
		{netip.AddrPort{}, "192.0.2.1 192.0.2.2 192.0.2.3"}, // nothing tried: as given
		{a, "192.0.2.2 192.0.2.3 192.0.2.1"},                // untried first
		{c, "192.0.2.2 192.0.2.1 192.0.2.3"},                // b untried; then after c: a, c
		{b, "192.0.2.3 192.0.2.1 192.0.2.2"},                // all tried: cycle after b
		{c, "192.0.2.1 192.0.2.2 192.0.2.3"},
	}
	for i, s := range steps {
		if s.mark.IsValid() {
			book.mark(s.mark)
		}
		if got := str(book.order(all)); got != s.want {
			t.Errorf("step %d: order = %s, want %s", i, got, s.want)
		}
	}
	if !book.several() {
		t.Error("several = false after orders of three addresses")
	}
	var nilBook *addrBook
	if got := str(nilBook.order(all)); got != "192.0.2.1 192.0.2.2 192.0.2.3" {
		t.Errorf("no book: %s", got)
	}
}

func TestDialerFallsThrough(t *testing.T) {
	// 127.0.0.2 refuses, 127.0.0.1 accepts: one dial connects to the
	// second and marks both tried; the next starts at the untried... none
	// left, so after the last tried.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	port := l.Addr().(*net.TCPAddr).Port
	if c, err := net.Dial("tcp", "127.0.0.2:"+strconv.Itoa(port)); err == nil {
		c.Close()
		t.Skip("something listens on 127.0.0.2")
	}
	pin, err := ParseResolve("svc.test:" + strconv.Itoa(port) + ":127.0.0.2,127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	d := newDialer(Pins{pin})
	d.resolve = func(context.Context, string) ([]netip.Addr, error) {
		t.Fatal("a pinned host was looked up")
		return nil, nil
	}
	book := &addrBook{}
	ctx := withAddrBook(context.Background(), book)
	c, err := d.DialContext(ctx, "tcp", "svc.test:"+strconv.Itoa(port))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if got := c.RemoteAddr().String(); got != "127.0.0.1:"+strconv.Itoa(port) {
		t.Errorf("connected to %s", got)
	}
	want := netip.MustParseAddrPort("127.0.0.2:" + strconv.Itoa(port))
	if !book.tried[want] || book.last != netip.MustParseAddrPort("127.0.0.1:"+strconv.Itoa(port)) {
		t.Errorf("book = %+v, want both tried, 127.0.0.1 last", book)
	}
	// Every address refuses: the error is the first address dialed's.
	pin2, _ := ParseResolve("dead.test:" + strconv.Itoa(port) + ":127.0.0.2,127.0.0.4")
	d2 := newDialer(Pins{pin2})
	fresh := withAddrBook(context.Background(), &addrBook{})
	if _, err := d2.DialContext(fresh, "tcp", "dead.test:"+strconv.Itoa(port)); err == nil || !strings.Contains(err.Error(), "127.0.0.2") {
		t.Errorf("dial of dead addresses = %v, want the first one's refusal", err)
	}
}

// A connect refused on every address names each address's failure, not
// one address's beside another's "(server address …)" (a tour was
// misled), and classifies as a refused connection.
func TestDialerEveryAddressFailed(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := strconv.Itoa(l.Addr().(*net.TCPAddr).Port)
	l.Close() // nothing listens there now, on either address
	pin, err := ParseResolve("svc.test:" + port + ":127.0.0.2,127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	d := newDialer(Pins{pin})
	_, err = d.DialContext(withAddrBook(context.Background(), &addrBook{}), "tcp", "svc.test:"+port)
	var all *AllAddrsError
	if !errors.As(err, &all) || len(all.Errs) != 2 || !errors.Is(err, syscall.ECONNREFUSED) {
		t.Fatalf("err %v, want both addresses refused", err)
	}
	for _, a := range []string{"127.0.0.2:" + port, "127.0.0.1:" + port} {
		if !strings.Contains(err.Error(), a) {
			t.Errorf("%q does not name %s", err, a)
		}
	}
}
