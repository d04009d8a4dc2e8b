package cmd

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/fatih/color"
	"github.com/spf13/cobra"
)

// DemoOptions are the options of `refetch demo`.
type DemoOptions struct {
	IO    *IOStreams
	Serve string
}

// NewCmdDemo returns `refetch demo`: a misbehaving server on loopback and
// the real fetch pipeline run against it, narrated.
func NewCmdDemo(f *Factory) *cobra.Command {
	opts := &DemoOptions{IO: f.IO}
	c := &cobra.Command{
		Use:   "demo",
		Short: "Run refetch against a built-in misbehaving server",
		Long: `Start a misbehaving HTTP server on 127.0.0.1 inside this process and run the
real fetch pipeline against it: retries on 503, a 429 with Retry-After, a dead
endpoint that opens the circuit breaker, and a fallback. Breaker state goes to
a temporary directory, never yours.

With --serve ADDR the server keeps running so you can point your own scripts at it.`,
		Example: `  refetch demo
  refetch demo --serve 127.0.0.1:8080`,
		Args: exactArgs(0, "argument"),
		RunE: func(c *cobra.Command, args []string) error {
			if opts.Serve != "" {
				return serveDemo(c.Context(), opts)
			}
			return runDemo(c.Context(), f, opts)
		},
	}
	c.Flags().StringVar(&opts.Serve, "serve", "", "keep the server running on `ADDR` (e.g. 127.0.0.1:8080) and print its routes")
	return c
}

func serveDemo(ctx context.Context, o *DemoOptions) error {
	ln, err := net.Listen("tcp", o.Serve)
	if err != nil {
		return usageErrorf("--serve %s: %v", o.Serve, err)
	}
	srv := &http.Server{Handler: demoHandler(), ReadHeaderTimeout: 10 * time.Second}
	go srv.Serve(ln)
	base := "http://" + ln.Addr().String()
	fmt.Fprintf(o.IO.Out, "refetch demo server on %s (Ctrl-C to stop)\n\n", base)
	width := 0
	for _, r := range demoRoutes {
		width = max(width, len(base+r.path))
	}
	for _, r := range demoRoutes {
		// One column, however long the address or the path.
		fmt.Fprintf(o.IO.Out, "  %-*s  %s\n", width, base+r.path, r.what)
	}
	fmt.Fprintf(o.IO.Out, "\ntry: refetch fetch %s/flaky\n", base)
	<-ctx.Done()
	shutdown, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	srv.Shutdown(shutdown)
	return context.Cause(ctx)
}

// demoStep is one scene of the demo.
type demoStep struct {
	title, story string
	args         []string
	after        func(elapsed time.Duration) string
}

func runDemo(ctx context.Context, f *Factory, o *DemoOptions) error {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return fmt.Errorf("demo server: %w", err)
	}
	srv := &http.Server{Handler: demoHandler(), ReadHeaderTimeout: 10 * time.Second}
	go srv.Serve(ln)
	defer srv.Close()
	stateDir, err := os.MkdirTemp("", "refetch-demo-*")
	if err != nil {
		return err
	}
	defer os.RemoveAll(stateDir)
	base := "http://" + ln.Addr().String()
	wantColor := UseColor(f.Global.Color, o.IO.OutTTY, f.Getenv)
	title, cmdline := paint(wantColor, color.Bold, color.FgCyan), paint(wantColor, color.Bold)
	dim, good := paint(wantColor, color.Faint), paint(wantColor, color.FgGreen)

	quick := []string{"--delay", "200ms", "--jitter", "0"}
	// The steps see only the demo's own state dir, not the user's REFETCH_*
	// settings, so the story is the same on every machine.
	getenv := func(k string) string {
		switch k {
		case "REFETCH_STATE_DIR":
			return stateDir
		case "NO_COLOR", "TERM":
			return f.Getenv(k)
		}
		return ""
	}
	steps := []demoStep{
		{
			title: "A flaky endpoint", story: "It answers 503 twice, then 200. refetch retries with backoff; stdout gets only the good body.",
			args: append(append([]string{"fetch"}, quick...), base+"/flaky"),
		},
		{
			title: "Rate limited", story: "It answers 429 with Retry-After: 1. refetch waits as long as the server asks, not less.",
			args: append(append([]string{"fetch"}, quick...), base+"/limited"),
		},
		{
			title: "A dead endpoint opens the circuit", story: "Every attempt fails; after 3 failures the breaker opens, and its state is saved to disk.",
			args: append(append([]string{"fetch"}, quick...), base+"/dead"),
		},
		{
			title: "The next call fails fast", story: "The next run reads the open breaker from disk and sends no request at all (exit 5).",
			args: append(append([]string{"fetch"}, quick...), base+"/dead"),
			after: func(elapsed time.Duration) string {
				return fmt.Sprintf("failed fast in %s without touching the server", elapsed.Round(10*time.Microsecond))
			},
		},
		{
			title: "A fallback keeps the script going", story: "With --fallback the caller still gets usable data and exit 0; stderr says why.",
			args: append(append([]string{"fetch"}, quick...), "--fallback", `{"items":[]}`, base+"/dead"),
		},
	}
	fmt.Fprintf(o.IO.Out, "%s\n%s\n\n", title.Sprint("refetch demo"),
		dim.Sprintf("A misbehaving server is listening on %s; breaker state lives in a temporary dir.", base))
	for i, s := range steps {
		if ctx.Err() != nil {
			return context.Cause(ctx)
		}
		fmt.Fprintf(o.IO.Out, "%s\n%s\n", title.Sprintf("%d. %s", i+1, s.title), s.story)
		shown := make([]string, 0, len(s.args))
		for _, a := range s.args {
			if strings.Contains(a, "{") || strings.Contains(a, " ") {
				a = "'" + a + "'"
			}
			shown = append(shown, a)
		}
		fmt.Fprintf(o.IO.Out, "%s\n", cmdline.Sprint("  $ refetch "+strings.Join(shown, " ")))
		var out bytes.Buffer
		sub := &Factory{
			IO:     &IOStreams{In: strings.NewReader(""), Out: &out, ErrOut: &indenter{w: o.IO.Out, prefix: "    "}, ErrTTY: o.IO.OutTTY},
			Getenv: getenv,
			Global: &GlobalOptions{Color: f.Global.Color},
		}
		start := time.Now()
		code := Run(ctx, sub, s.args)
		elapsed := time.Since(start)
		if code == ExitSIGINT || code == ExitSIGTERM {
			return context.Cause(ctx)
		}
		body := strings.TrimSpace(out.String())
		if body != "" {
			fmt.Fprintf(o.IO.Out, "    stdout: %s\n", body)
		}
		verdict := fmt.Sprintf("exit %d", code)
		if s.after != nil {
			verdict += ": " + s.after(elapsed)
		}
		fmt.Fprintf(o.IO.Out, "  %s\n\n", good.Sprint("→ "+verdict))
	}
	fmt.Fprintf(o.IO.Out, "%s\n", dim.Sprint("Try it yourself: refetch demo --serve 127.0.0.1:8080"))
	return nil
}

// indenter prefixes every line written through it.
type indenter struct {
	w      io.Writer
	prefix string
	mid    bool
}

func (d *indenter) Write(p []byte) (int, error) {
	var b bytes.Buffer
	for _, c := range p {
		if !d.mid {
			b.WriteString(d.prefix)
			d.mid = true
		}
		b.WriteByte(c)
		if c == '\n' {
			d.mid = false
		}
	}
	if _, err := d.w.Write(b.Bytes()); err != nil {
		return 0, err
	}
	return len(p), nil
}
