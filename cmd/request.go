package cmd

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"

	"github.com/refetch/refetch/fetch"
	"github.com/refetch/refetch/internal/fileinput"
	"github.com/spf13/pflag"
)

// RequestFlags are the request flags shared by fetch and check.
type RequestFlags struct {
	Method    string
	Headers   []string
	Data      string
	User      string
	UserAgent string
	Insecure  bool
	CACert    string
	MaxRedirs int
	MaxSize   string
	// Resolve are the --resolve entries (hedge.go parses them).
	Resolve []string

	// DataGiven and MethodGiven are resolved in RunE: -d or -X was given
	// (even as "").
	DataGiven   bool
	MethodGiven bool
	// names says which flags came from their variables, for messages.
	names flagNames
}

// register adds the request flags; check sends no body and keeps at most
// 1 MiB of it for its body expectations unless --max-size says otherwise.
func (r *RequestFlags) register(fs *pflag.FlagSet, check bool) {
	if check {
		fs.StringVarP(&r.Method, "method", "X", "", "request method (default GET)")
	} else {
		fs.StringVarP(&r.Method, "method", "X", "", "request method (default GET, or POST with -d)")
	}
	fs.StringArrayVarP(&r.Headers, "header", "H", nil, "request `header` 'Name: value' (repeatable; 'Name:' removes)")
	if !check {
		fs.StringVarP(&r.Data, "data", "d", "", "request body: text, @file, or @- for stdin")
	}
	fs.StringVarP(&r.User, "user", "u", "", "basic auth 'user:password'")
	fs.StringVarP(&r.UserAgent, "user-agent", "A", "refetch/"+Version, "User-Agent header")
	fs.BoolVarP(&r.Insecure, "insecure", "k", false, "skip TLS certificate verification")
	fs.StringVar(&r.CACert, "cacert", "", "PEM `file` of CA certificates to trust")
	fs.IntVar(&r.MaxRedirs, "max-redirs", 10, "most redirects followed")
	fs.StringArrayVar(&r.Resolve, "resolve", nil, "connect to these addresses (`HOST:PORT:ADDR`[,ADDR...]) for HOST:PORT (curl's syntax; * for any host; repeatable)")
	if check {
		fs.StringVar(&r.MaxSize, "max-size", "", "largest body accepted, e.g. 10M, and the most kept for --expect-body and --expect-json (default: any body, 1M kept; 0: no bound)")
	} else {
		fs.StringVar(&r.MaxSize, "max-size", "", "largest body accepted, e.g. 10M (default and 0: no bound)")
	}
}

// resolveGiven records which request flags were given, and which flags
// came from their variables; called from RunE.
func (r *RequestFlags) resolveGiven(fs *pflag.FlagSet) {
	r.DataGiven = fs.Changed("data")
	r.MethodGiven = fs.Changed("method")
	r.names = namesOf(fs)
}

// build validates the request flags and returns the request for u. Every
// problem is a usage error, found before any request is sent, naming the
// flag at fault, or its variable when the value came from there. The
// fetch layer's errors (a header, the CA file, ...) are put into the
// flag's words by describe.
func (r *RequestFlags) build(ctx context.Context, u *url.URL, stdin io.Reader) (*fetch.Request, error) {
	req := &fetch.Request{URL: u, Header: http.Header{}, User: r.User, UserAgent: r.UserAgent,
		Insecure: r.Insecure, CACert: r.CACert, MaxRedirs: r.MaxRedirs}
	n := r.names
	var err error
	if err = fetch.CheckProxyEnv(os.Getenv, u); err != nil {
		return nil, &UsageError{Err: err}
	}
	if req.Pins, err = r.parseResolve(); err != nil {
		return nil, err
	}
	if r.MaxRedirs < 0 {
		return nil, n.invalid("max-redirs", r.MaxRedirs, "must not be negative")
	}
	if r.MaxSize != "" {
		var err error
		if req.MaxSize, err = parseSize(r.MaxSize); err != nil {
			return nil, usageErrorf("invalid %s: %v", n.flag("max-size"), err)
		}
	}
	for _, h := range r.Headers {
		name, value, err := fetch.ParseHeader(h)
		if err != nil {
			return nil, &UsageError{Err: n.name(err)}
		}
		req.Header[name] = append(req.Header[name], value)
	}
	if r.DataGiven {
		var err error
		if req.Body, err = readArg(ctx, r.Data, stdin, n.of("data", "-d")); err != nil {
			return nil, err
		}
	}
	req.Method = strings.ToUpper(r.Method)
	switch {
	case req.Method == "" && r.MethodGiven:
		// Only a command line gives -X "": an empty variable is no value.
		return nil, usageErrorf(`invalid -X "": give a method such as GET or POST, or leave -X out`)
	case req.Method == "" && req.Body != nil:
		req.Method = http.MethodPost
	case req.Method == "":
		req.Method = http.MethodGet
	}
	if !validMethod(req.Method) {
		return nil, usageErrorf("invalid %s: not an HTTP method token", n.set("method", "-X", strconv.Quote(r.Method)))
	}
	if r.CACert != "" {
		// Read where a signal can end the wait: the file may be a FIFO, or
		// on a hung network mount.
		pool, err := readCancellable(ctx, func() (*x509.CertPool, error) { return fetch.LoadCACert(r.CACert) })
		if err != nil && ctx.Err() != nil {
			return nil, err
		}
		if err != nil {
			return nil, &UsageError{Err: n.name(err)}
		}
		req.RootCAs = pool
	}
	if err := req.Validate(); err != nil {
		return nil, &UsageError{Err: n.name(err)}
	}
	return req, nil
}

func validMethod(m string) bool {
	if m == "" {
		return false
	}
	for i := 0; i < len(m); i++ {
		c := m[i]
		if c <= ' ' || c >= 0x7f || strings.IndexByte(`()<>@,;:\"/[]?={}`, c) >= 0 {
			return false
		}
	}
	return true
}

// readArg reads a curl-style argument: text, @file, or @- for stdin. The
// read ends when ctx does (a signal): a FIFO or a pipe with no writer
// would otherwise hold the process past SIGTERM.
func readArg(ctx context.Context, v string, stdin io.Reader, flag string) ([]byte, error) {
	if !strings.HasPrefix(v, "@") {
		return []byte(v), nil
	}
	name := v[1:]
	data, err := readCancellable(ctx, func() ([]byte, error) {
		if name == "-" {
			return fileinput.ReadFrom(stdin, fileinput.Max)
		}
		return fileinput.Read(name, fileinput.Max)
	})
	if ctx.Err() != nil {
		return nil, context.Cause(ctx)
	}
	if err != nil {
		return nil, usageErrorf("%s %s: cannot read: %v", flag, v, unwrapPath(err))
	}
	return data, nil
}

// readCancellable runs read (of a file, a FIFO, stdin, a CA bundle),
// returning early when ctx ends; the read is left to finish (or block) on
// its own, as the process is about to exit.
func readCancellable[T any](ctx context.Context, read func() (T, error)) (T, error) {
	type result struct {
		data T
		err  error
	}
	done := make(chan result, 1)
	go func() {
		data, err := read()
		done <- result{data, err}
	}()
	select {
	case r := <-done:
		return r.data, r.err
	case <-ctx.Done():
		var zero T
		return zero, context.Cause(ctx)
	}
}

func unwrapPath(err error) error {
	var pe *os.PathError
	if errors.As(err, &pe) {
		return fmt.Errorf("%s: %v", pe.Path, pe.Err)
	}
	return err
}
