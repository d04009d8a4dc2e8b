package fetch

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/refetch/refetch/resilience"
)

// Addresses: which server address each connection goes to (docs/fetch.md,
// "Addresses and failover").
//
//   - --resolve HOST:PORT:ADDR[,ADDR…] pins the addresses of HOST:PORT
//     (curl's syntax; HOST may be "*" for every host on PORT), so no DNS
//     lookup happens for it. TLS SNI and the Host header stay the URL's.
//   - A name that resolves (or is pinned) to several addresses is dialed
//     in their order, those this run has not tried first (Envoy's
//     previous_hosts): a retry or a hedge after a connect failure or a
//     timeout goes to an address not yet tried; once every address was
//     tried, the next dial starts after the one tried last, in order.
//   - Within one dial the addresses are raced as Happy Eyeballs does
//     (RFC 8305): the next starts when the one before fails, or after
//     dialStagger without an answer; the first connection wins.
//   - A single address, an IP literal, or a dial outside a run (probe,
//     check) dials as net.Dialer does.

// dialStagger is how long a dial waits for an address to connect before
// it also tries the next one (RFC 8305's Connection Attempt Delay).
const dialStagger = 300 * time.Millisecond

// Pin is one --resolve entry: the addresses of Host:Port.
type Pin struct {
	// Host is a lower-case name without a trailing dot or an IP literal
	// without brackets; "*" matches every host.
	Host  string
	Port  int
	Addrs []netip.Addr
}

// String is the pin in --resolve's syntax.
func (p Pin) String() string {
	addrs := make([]string, len(p.Addrs))
	for i, a := range p.Addrs {
		addrs[i] = a.String()
		if a.Is6() {
			addrs[i] = "[" + addrs[i] + "]"
		}
	}
	host := p.Host
	if strings.Contains(host, ":") {
		host = "[" + host + "]"
	}
	return host + ":" + strconv.Itoa(p.Port) + ":" + strings.Join(addrs, ",")
}

// ParseResolve parses a --resolve value, HOST:PORT:ADDR[,ADDR…]: curl's
// syntax. HOST is a name, an IP address ([brackets] for IPv6) or "*" (any
// host); PORT a number from 1 to 65535; each ADDR an IPv4 or IPv6 address,
// IPv6 with or without brackets. A leading '+' (curl's "time out this
// entry") is accepted and means nothing here; curl's "-HOST:PORT"
// (forget an entry) is refused: refetch keeps no entries to forget.
func ParseResolve(s string) (Pin, error) {
	bad := func(format string, args ...any) (Pin, error) {
		return Pin{}, fmt.Errorf(format, args...)
	}
	if strings.HasPrefix(s, "-") {
		return bad("curl's -HOST:PORT removes an entry; refetch has none to remove: leave it out")
	}
	s = strings.TrimPrefix(s, "+")
	var host string
	if strings.HasPrefix(s, "[") {
		end := strings.IndexByte(s, ']')
		if end < 0 {
			return bad("missing ']' after the IPv6 host")
		}
		host, s = s[1:end], s[end+1:]
		if a, err := netip.ParseAddr(host); err != nil || !a.Is6() {
			return bad("[%s] is not an IPv6 address", host)
		}
		if !strings.HasPrefix(s, ":") {
			return bad("want HOST:PORT:ADDR[,ADDR...], e.g. example.com:443:192.0.2.1")
		}
		s = s[1:]
	} else {
		var ok bool
		if host, s, ok = strings.Cut(s, ":"); !ok {
			return bad("want HOST:PORT:ADDR[,ADDR...], e.g. example.com:443:192.0.2.1")
		}
	}
	port, rest, ok := strings.Cut(s, ":")
	if !ok || rest == "" {
		return bad("no address after HOST:PORT; want HOST:PORT:ADDR[,ADDR...]")
	}
	if host == "" {
		return bad("empty host; give a name, an address or * for every host")
	}
	if host != "*" {
		if err := checkHostPort(bracketed(host)); err != nil {
			return bad("%v", err)
		}
	}
	if err := checkPort(port); err != nil {
		return bad("%v", err)
	}
	p := Pin{Host: normHost(host)}
	p.Port, _ = strconv.Atoi(port)
	for _, a := range strings.Split(rest, ",") {
		a = strings.TrimSpace(a)
		if strings.HasPrefix(a, "[") && strings.HasSuffix(a, "]") {
			a = a[1 : len(a)-1]
		}
		addr, err := netip.ParseAddr(a)
		if err != nil {
			return bad("%q is not an IP address (--resolve takes addresses, not names)", a)
		}
		p.Addrs = append(p.Addrs, addr.Unmap())
	}
	return p, nil
}

// bracketed puts an IPv6 host in brackets, as checkHostPort wants it.
func bracketed(host string) string {
	if strings.Contains(host, ":") {
		return "[" + host + "]"
	}
	return host
}

// normHost is host as pins and dials compare it: lower case, no trailing
// dot, an IP address in its canonical form.
func normHost(host string) string {
	if a, err := netip.ParseAddr(host); err == nil {
		return a.Unmap().String()
	}
	return strings.TrimSuffix(strings.ToLower(host), ".")
}

// Pins are the --resolve entries of a request, by host and port.
type Pins []Pin

// Check refuses two entries for one HOST:PORT.
func (ps Pins) Check() error {
	seen := map[string]bool{}
	for _, p := range ps {
		k := p.Host + ":" + strconv.Itoa(p.Port)
		if seen[k] {
			return fmt.Errorf("two entries for %s:%d; give all its addresses in one, separated by commas", bracketed(p.Host), p.Port)
		}
		seen[k] = true
	}
	return nil
}

// lookup returns the pinned addresses of host:port, nil if none.
func (ps Pins) lookup(host string, port int) []netip.Addr {
	host = normHost(host)
	var wild []netip.Addr
	for _, p := range ps {
		if p.Port != port {
			continue
		}
		if p.Host == host {
			return p.Addrs
		}
		if p.Host == "*" {
			wild = p.Addrs
		}
	}
	return wild
}

// addrBook is the addresses one run has dialed, so that its next dial
// prefers one it has not tried. It travels in the context (withAddrBook).
type addrBook struct {
	mu    sync.Mutex
	tried map[netip.AddrPort]bool
	last  netip.AddrPort
	// multi is set once a dial had more than one address to choose from:
	// then reports name the address of each attempt's failure.
	multi bool
}

type addrBookKey struct{}

func withAddrBook(ctx context.Context, b *addrBook) context.Context {
	return context.WithValue(ctx, addrBookKey{}, b)
}

func addrBookFrom(ctx context.Context) *addrBook {
	b, _ := ctx.Value(addrBookKey{}).(*addrBook)
	return b
}

// order returns cands in the order to dial them: those not tried yet
// first, in the order given; then the tried ones, starting after the one
// tried last.
func (b *addrBook) order(cands []netip.AddrPort) []netip.AddrPort {
	if b == nil {
		return cands
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if len(cands) > 1 {
		b.multi = true
	}
	out := make([]netip.AddrPort, 0, len(cands))
	start := 0
	for i, c := range cands {
		if !b.tried[c] {
			out = append(out, c)
		}
		if c == b.last {
			start = i + 1
		}
	}
	for i := range cands {
		if c := cands[(start+i)%len(cands)]; b.tried[c] {
			out = append(out, c)
		}
	}
	return out
}

// mark records a dial to a.
func (b *addrBook) mark(a netip.AddrPort) {
	if b == nil {
		return
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.tried == nil {
		b.tried = map[netip.AddrPort]bool{}
	}
	b.tried[a] = true
	b.last = a
}

func (b *addrBook) several() bool {
	if b == nil {
		return false
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.multi
}

// dialer dials the connections of a client: pinned addresses, several
// addresses in the run's order (see the top of this file).
type dialer struct {
	pins Pins
	net  *net.Dialer
	// resolve looks a name up; net.DefaultResolver's LookupNetIP.
	resolve func(ctx context.Context, host string) ([]netip.Addr, error)
}

func newDialer(pins Pins) *dialer {
	d := &net.Dialer{Timeout: 30 * time.Second, KeepAlive: 30 * time.Second}
	return &dialer{pins: pins, net: d, resolve: func(ctx context.Context, host string) ([]netip.Addr, error) {
		return net.DefaultResolver.LookupNetIP(ctx, "ip", host)
	}}
}

// DialContext dials addr ("host:port") on network (tcp, tcp4, tcp6).
func (d *dialer) DialContext(ctx context.Context, network, addr string) (net.Conn, error) {
	host, portStr, err := net.SplitHostPort(addr)
	if err != nil {
		return d.net.DialContext(ctx, network, addr)
	}
	port, err := strconv.Atoi(portStr)
	if err != nil {
		return d.net.DialContext(ctx, network, addr)
	}
	book := addrBookFrom(ctx)
	ips := d.pins.lookup(host, port)
	if ips == nil {
		if ip, err := netip.ParseAddr(host); err == nil {
			ips = []netip.Addr{ip}
		} else if book == nil {
			// Outside a run: net.Dialer's own lookup and Happy Eyeballs.
			return d.net.DialContext(ctx, network, addr)
		} else if ips, err = d.resolve(ctx, host); err != nil {
			// As net.Dialer says it: "dial tcp: lookup host: …".
			return nil, &net.OpError{Op: "dial", Net: network, Err: err}
		}
	}
	var cands []netip.AddrPort
	for _, ip := range ips {
		ip = ip.Unmap()
		if network == "tcp4" && !ip.Is4() || network == "tcp6" && !ip.Is6() {
			continue
		}
		cands = append(cands, netip.AddrPortFrom(ip, uint16(port)))
	}
	if len(cands) == 0 {
		return nil, &net.OpError{Op: "dial", Net: network, Err: &net.AddrError{Err: "no suitable address", Addr: host}}
	}
	return d.race(ctx, network, book.order(cands), book)
}

// race dials addrs in order, starting the next when the one before has
// failed or dialStagger has passed, and returns the first connection
// (closing any later one). Every address it starts is marked in book.
// The error, when all fail, is the first address's.
func (d *dialer) race(ctx context.Context, network string, addrs []netip.AddrPort, book *addrBook) (net.Conn, error) {
	if len(addrs) == 1 {
		book.mark(addrs[0])
		return d.net.DialContext(ctx, network, addrs[0].String())
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	type result struct {
		i    int
		conn net.Conn
		err  error
	}
	results := make(chan result, len(addrs))
	start := func(i int) {
		book.mark(addrs[i])
		go func() {
			c, err := d.net.DialContext(ctx, network, addrs[i].String())
			results <- result{i, c, err}
		}()
	}
	next, running := 1, 1
	start(0)
	errs := make([]error, len(addrs))
	stagger := time.NewTimer(dialStagger)
	defer stagger.Stop()
	for running > 0 {
		select {
		case r := <-results:
			running--
			if r.err == nil {
				// Later winners are closed as they arrive.
				go func(left int) {
					for ; left > 0; left-- {
						if l := <-results; l.conn != nil {
							l.conn.Close()
						}
					}
				}(running)
				return r.conn, nil
			}
			errs[r.i] = r.err
			if next < len(addrs) && ctx.Err() == nil {
				start(next)
				next++
				running++
				stagger.Reset(dialStagger)
			}
		case <-stagger.C:
			if next < len(addrs) {
				start(next)
				next++
				running++
				stagger.Reset(dialStagger)
			}
		}
	}
	var failed []error
	for _, err := range errs {
		if err != nil {
			failed = append(failed, err)
		}
	}
	switch len(failed) {
	case 0:
		return nil, errors.New("no address to dial")
	case 1:
		return nil, failed[0]
	}
	return nil, &AllAddrsError{Errs: failed}
}

// AllAddrsError is a connect that failed on every address it tried: each
// address's own failure (one of them named beside another address's
// "(server address …)" misled a tour). Classification sees each.
type AllAddrsError struct{ Errs []error }

func (e *AllAddrsError) Error() string {
	texts := make([]string, len(e.Errs))
	for i, err := range e.Errs {
		texts[i] = err.Error()
	}
	return "every address failed: " + strings.Join(texts, "; ")
}

func (e *AllAddrsError) Unwrap() []error { return e.Errs }

// AddrError is an attempt's failure on a host with several addresses: it
// names the address the attempt went to. Classification sees Err.
type AddrError struct {
	Addr string
	Err  error
}

func (e *AddrError) Error() string { return fmt.Sprintf("%v (server address %s)", e.Err, e.Addr) }
func (e *AddrError) Unwrap() error { return e.Err }

// Dial is one connect of an attempt: the address and its failure (nil:
// connected).
type Dial struct {
	Addr string
	Err  error
}

// ReportDial is a Dial in a report.
type ReportDial struct {
	Addr  string  `json:"addr"`
	Error *string `json:"error"`
}

// reportDials is the report form of the connects of t and of its copies,
// when its host has several addresses; nil otherwise.
func reportDials(t *AttemptTrace) []ReportDial {
	if !t.Several {
		return nil
	}
	var out []ReportDial
	add := func(ds []Dial) {
		for _, d := range ds {
			rd := ReportDial{Addr: d.Addr}
			if d.Err != nil {
				s := Redact(d.Err.Error())
				rd.Error = &s
			}
			out = append(out, rd)
		}
	}
	if len(t.Copies) == 0 {
		add(t.Dials)
	}
	for _, c := range t.Copies {
		if c.Trace != nil {
			add(c.Trace.Dials)
		}
	}
	if out == nil {
		out = []ReportDial{}
	}
	return out
}

// TimeoutDetail names the address in resilience.TimeoutError's message,
// after what the error it wraps says of the timeout.
func (e *AddrError) TimeoutDetail() string {
	var d resilience.TimeoutDetailer
	if errors.As(e.Err, &d) {
		if s := d.TimeoutDetail(); s != "" {
			return s + " (server address " + e.Addr + ")"
		}
	}
	return "(server address " + e.Addr + ")"
}
