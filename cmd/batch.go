package cmd

import (
	"context"
	"errors"
	"fmt"
	"hash/maphash"
	"io"
	"math"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/refetch/refetch/cmd/batch"

	"github.com/refetch/refetch/fetch"
	"github.com/refetch/refetch/internal/atomicfile"
	"github.com/refetch/refetch/report"
	"github.com/refetch/refetch/resilience"
	"github.com/spf13/pflag"
)

// Batch mode: `refetch fetch URL URL...` or `-i FILE`. Every URL goes
// through the same pipeline as a single fetch (fetch.Run), with its own
// Breaker on the shared store, so breakers and holds are per key and shared
// by the URLs of the batch and with other processes. See docs/batch.md.

const (
	defaultParallel = 8
	maxParallel     = 1024
	// batchReadAhead bounds the URLs read from the input and not yet
	// started, so memory does not grow with the input.
	batchReadAhead = 1024
	// copyBuffer is each worker's buffer for bodies, reused from URL to
	// URL (the single fetch's size into files).
	copyBuffer = 256 << 10
	// progressEvery is how often the progress line is redrawn on a TTY.
	progressEvery = 250 * time.Millisecond
	// batchPlanURL stands in for the URLs while the flags they share are
	// checked, once, by the single fetch's own plan; it is never fetched.
	batchPlanURL = "http://batch.invalid/"
)

// BatchFlags are the flags of `refetch fetch` that only a batch uses.
type BatchFlags struct {
	Input string
	// inputs are every -i given, in order; more than one is a usage
	// error (see planBatch).
	inputs       []string
	Parallel     int
	ParallelHost int
	FailFast     bool
}

// register adds the batch flags: -i (no default), -P (default 8),
// --parallel-host (default 0: as many as -P) and --fail-fast (off).
func (b *BatchFlags) register(fs *pflag.FlagSet) {
	fs.VarP(&inputFlag{b}, "input", "i", "batch: read URLs from `FILE`, one a line (- for stdin; blank lines and # comments skipped; once)")
	fs.IntVarP(&b.Parallel, "parallel", "P", defaultParallel, "batch: most requests in flight, 1 to 1024")
	fs.IntVar(&b.ParallelHost, "parallel-host", 0, "batch: most requests in flight to one host (0: as many as --parallel)")
	fs.BoolVar(&b.FailFast, "fail-fast", false, "batch: stop at the first URL that fails (no new request)")
}

// inputFlag is -i: a string flag that remembers every value given, so a
// second -i is refused instead of silently replacing the first.
type inputFlag struct{ b *BatchFlags }

func (f *inputFlag) String() string { return f.b.Input }
func (f *inputFlag) Type() string   { return "string" }
func (f *inputFlag) Set(v string) error {
	f.b.Input = v
	f.b.inputs = append(f.b.inputs, v)
	return nil
}

// BatchError is the error of a batch in which at least one URL failed
// (exit 9); each URL's own code is in its report.
type BatchError struct {
	Failed, Total, Skipped int
	FailFast               bool
}

func (e *BatchError) Error() string {
	msg := fmt.Sprintf("%d of %d URLs failed", e.Failed, e.Total)
	if e.FailFast {
		msg += fmt.Sprintf("; stopped at the first failure (--fail-fast), %d not fetched", e.Skipped)
	}
	return msg
}

// Is makes errors.Is(err, ErrBatchFailed) true.
func (e *BatchError) Is(target error) bool { return target == ErrBatchFailed }

// errFailFast and errOutputGone are the causes that stop a batch early.
var (
	errFailFast   = errors.New("stopped by --fail-fast")
	errOutputGone = errors.New("stdout cannot be written")
)

// batchLineError is a usage error about one URL of the input.
type batchLineError struct {
	label, raw string
	err        error
}

func (e *batchLineError) Error() string { return e.label + ": " + e.err.Error() }
func (e *batchLineError) Unwrap() error { return e.err }

func lineError(e batch.Entry, err error) error {
	var usage *UsageError
	if errors.As(err, &usage) {
		err = usage.Err
	}
	return &UsageError{Err: &batchLineError{label: e.Label, raw: e.Raw, err: err}}
}

// isBatch reports whether a fetch command line is a batch: -i, or more
// than one URL. One URL and no -i is the single fetch, unchanged.
func (o *FetchOptions) isBatch() bool { return o.Batch.Input != "" || len(o.URLs) > 1 }

// quotedList is "a", "b" for messages.
func quotedList(vs []string) string {
	q := make([]string, len(vs))
	for i, v := range vs {
		q[i] = fmt.Sprintf("%q", v)
	}
	return strings.Join(q, ", ")
}

// shellWords is vs as cat's arguments, "-" left as it is (cat reads stdin
// for it too) and anything unusual single-quoted.
func shellWords(vs []string) string {
	w := make([]string, len(vs))
	for i, v := range vs {
		if v != "" && strings.Trim(v, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_./") == "" {
			w[i] = v
		} else {
			w[i] = "'" + strings.ReplaceAll(v, "'", `'\''`) + "'"
		}
	}
	return strings.Join(w, " ")
}

// runBatch checks the whole input, then fetches every URL.
func runBatch(ctx context.Context, o *FetchOptions) error {
	type planned struct {
		b   *batchRun
		err error
	}
	ch := make(chan planned, 1)
	go func() {
		b, err := o.planBatch(ctx)
		ch <- planned{b, err}
	}()
	var p planned
	select {
	case p = <-ch:
	case <-ctx.Done():
		// The check may be blocked reading its input from a terminal
		// (-i -): a signal ends the run all the same. Nothing was sent.
		return context.Cause(ctx)
	}
	b, err := p.b, p.err
	if err != nil {
		if o.JSON {
			var le *batchLineError
			if errors.As(err, &le) {
				o.URL = le.raw
			}
			o.writeUsageReport(err)
		}
		return err
	}
	defer b.in.Close()
	return b.run(ctx)
}

// batchRun is a checked batch, and then its progress.
type batchRun struct {
	o        *FetchOptions
	log      *Logger
	in       *batch.Input
	plan     *fetchPlan
	tmpl     *batch.Template // nil: bodies do not go to files
	cwd      string          // the working directory, to compare output paths absolute
	parallel int
	perHost  int
	total    int
	discard  bool // stdout is the null device

	committer *fetch.Committer
	stopRun   context.CancelCauseFunc
	sched     *batch.Scheduler
	// reports are --report's (nil: none); one testcase per URL.
	reports *report.Set

	// outMu keeps bodies and JSON lines whole on stdout.
	outMu sync.Mutex

	mu       sync.Mutex // guards what follows
	ok       int
	served   int         // stale or fallback
	failed   map[int]int // by exit code
	cut      int         // skipped after their request began: cut off by a signal or --fail-fast
	only     error       // the error of the one URL of a one-URL batch
	outErr   error       // stdout could not be written
	stopping bool
	// told is the hold each key was last said to be held until, so that
	// a hold is said once, not once per URL waiting for it.
	told map[string]time.Time
}

// heldLine says, once per hold, that a key's URLs wait for it while the
// others go on (a single fetch says it as it waits; a batch requeues).
func (b *batchRun) heldLine(h *resilience.HoldError) {
	b.mu.Lock()
	if b.told == nil {
		b.told = map[string]time.Time{}
	}
	said := b.told[h.Key].Equal(h.Until)
	b.told[h.Key] = h.Until
	b.mu.Unlock()
	if said {
		return
	}
	b.log.HeldInBatch(h)
}

// batchFlagsError is the error of -P or --parallel-host out of range,
// nil if both are in it. A fetch of one URL checks them too: a bad value
// is as wrong there, and the same command line with two URLs would fail.
func (o *FetchOptions) batchFlagsError() error {
	bf := o.Batch
	switch {
	case bf.Parallel < 1 || bf.Parallel > maxParallel:
		return o.RequestFlags.names.invalid("parallel", bf.Parallel, "must be from 1 to %d", maxParallel)
	case bf.ParallelHost < 0 || bf.ParallelHost > maxParallel:
		return o.RequestFlags.names.invalid("parallel-host", bf.ParallelHost, "must be from 1 to %d (0: as many as --parallel)", maxParallel)
	}
	return nil
}

// planBatch checks the flags and every URL of the input, before any
// request: the same checks as a single fetch, plus the batch's own.
func (o *FetchOptions) planBatch(ctx context.Context) (*batchRun, error) {
	bf := o.Batch
	flagsErr := o.batchFlagsError()
	switch {
	case len(bf.inputs) > 1:
		// Reading each in turn would make "line 7" ambiguous, and mixing
		// stdin with files raises questions a concatenation answers.
		return nil, usageErrorf("-i given %d times (%s): a batch reads one input; to read several, join them: cat %s | refetch fetch -i - …",
			len(bf.inputs), quotedList(bf.inputs), shellWords(bf.inputs))
	case flagsErr != nil:
		return nil, flagsErr
	case o.NoBuffer:
		return nil, usageErrorf("-N streams one body to stdout; a batch writes each body whole: use -o TEMPLATE or --json, or leave -N out")
	case bf.Input == "-" && o.DataGiven && o.Data == "@-":
		return nil, usageErrorf("-i - and -d @- both read stdin: put the URLs or the body in a file")
	}
	toFile := o.Output != "" && o.Output != "-"
	switch {
	case o.IO.OutClosed && o.JSON:
		return nil, stdoutClosedError("the reports", "redirect stdout")
	case o.IO.OutClosed && !toFile:
		return nil, stdoutClosedError("the bodies", "give -o TEMPLATE, or redirect stdout")
	}
	b := &batchRun{o: o, log: o.Log, parallel: bf.Parallel, perHost: bf.ParallelHost, failed: map[int]int{}}
	if b.perHost == 0 || b.perHost > b.parallel {
		b.perHost = b.parallel
	}
	if toFile {
		var err error
		if b.tmpl, err = batch.ParseTemplate(o.Output); err != nil {
			return nil, fromBatch(err)
		}
	}
	// The flags every URL shares are checked once, by the single fetch's
	// own plan (which also reads -d @file and --fallback-file once).
	urlArg := o.URL
	o.URL = batchPlanURL
	p, err := o.plan(ctx)
	o.URL = urlArg
	if err != nil {
		return nil, err
	}
	b.plan = p
	b.discard = !toFile && !o.JSON && fetch.IsNullDevice(o.IO.Out)
	if b.in, err = batch.OpenInput(o.URLs, bf.Input, o.IO.In); err != nil {
		return nil, fromBatch(err)
	}
	if err := b.check(); err != nil {
		b.in.Close()
		return nil, fromBatch(err)
	}
	files := o.fetchFiles()
	if bf.Input != "" && bf.Input != "-" {
		files = append(files, given(o.RequestFlags.names, "input", "-i", bf.Input, false))
	}
	switch {
	case o.JSON:
		files = append(files, stdoutCarries("the --json lines"))
	case b.tmpl == nil:
		files = append(files, stdoutCarries("the bodies"))
	}
	if b.reports, err = o.ReportFlags.open(ctx, "fetch", o.RequestFlags.names, o.IO, o.Getenv, false, files...); err != nil {
		b.in.Close()
		return nil, err
	}
	return b, nil
}

// check is the first pass over the input: every URL is parsed and
// validated with the request flags, and every output path checked, with
// no request sent. Two URLs with one output file are found with a set of
// hashes of the paths, so memory stays small.
func (b *batchRun) check() error {
	seed := maphash.MakeSeed()
	seen := map[uint64]int32{}
	lastDir := ""
	// Targets are compared absolute: a link's target may be absolute
	// (o/1 -> /abs/o/2) while the template's paths are relative.
	b.cwd, _ = os.Getwd()
	return b.in.CheckPass(func(e batch.Entry) error {
		u, err := fetch.ParseURL(e.Raw)
		if err != nil {
			return lineError(e, err)
		}
		req := *b.plan.req
		req.URL = u
		if err := req.Validate(); err != nil {
			return lineError(e, b.o.RequestFlags.names.name(err))
		}
		b.total++
		if b.tmpl == nil {
			return nil
		}
		path := b.tmpl.Expand(e.N, u)
		target, err := checkOutputPath(e, path, b.o.RequestFlags.names.of("output", "-o"), &lastDir)
		if err != nil {
			return err
		}
		if err := b.reportClash(e, path); err != nil {
			return err
		}
		h := maphash.String(seed, fileKey(absIn(b.cwd, target)))
		first, dup := seen[h]
		if !dup {
			seen[h] = int32(e.N)
			return nil
		}
		if other, otherPath, same := b.sameOutput(int(first), path); same {
			problem, linked := sameFileProblem(b.cwd, other, otherPath, e.Label, path, target)
			hint := "in a batch -o is a template: put {n} (position) or {name} (last path segment) in it"
			switch {
			case linked:
				hint = "remove or change the symlink, or write the files elsewhere"
			case b.tmpl.HasPlaceholder():
				hint = "use {n} in -o to tell them apart"
			}
			return &UsageError{Err: &batchLineError{label: other + " and " + e.Label, raw: e.Raw,
				err: fmt.Errorf("%s; %s", problem, hint)}}
		}
		// Two paths with one hash: both are fine; the later one is not
		// tracked, which can only miss a collision with a third URL whose
		// hash is also this one.
		return nil
	})
}

// reportClash refuses an output of the -o template that is one of the
// --report files: found as each output is named in the check pass, so
// before any request, whatever the template's placeholders.
func (b *batchRun) reportClash(e batch.Entry, path string) error {
	if len(b.o.Reports) == 0 {
		return nil
	}
	n := b.o.RequestFlags.names
	specs, err := b.o.ReportFlags.specs(n)
	if err != nil {
		return nil // open says so, after the check pass
	}
	out := namedFile{flag: fmt.Sprintf("%s (%s writes %s)", n.set("output", "-o", b.o.Output), e.Label, path), path: path}
	return collide(reportFiles(specs, n), []namedFile{out})
}

// sameOutput reports whether the URL at position n writes path, and
// names it ("line 3") and its own output path.
func (b *batchRun) sameOutput(n int, path string) (label, otherPath string, same bool) {
	e, err := b.in.Lookup(n)
	if err != nil {
		return "", "", false
	}
	u, err := fetch.ParseURL(e.Raw)
	if err != nil {
		return "", "", false
	}
	otherPath = b.tmpl.Expand(n, u)
	return e.Label, otherPath, outputKey(b.cwd, otherPath) == outputKey(b.cwd, path)
}

// sameFileProblem says that the outputs of two URLs are one file, in
// words a user can act on: the file that would be written (target, with
// its symlinks followed), and, when a path is not that file itself, the
// path each URL gives, so the link to remove or the placeholder to add
// can be found. linked says a symlink made them one file; paths are
// compared absolute from cwd.
func sameFileProblem(cwd, label1, path1, label2, path2, target string) (problem string, linked bool) {
	target = filepath.Clean(target)
	var gives []string
	for _, side := range [][2]string{{label1, path1}, {label2, path2}} {
		p := filepath.Clean(side[1])
		if p == target {
			continue
		}
		gives = append(gives, side[0]+" as "+side[1])
		if fileKey(absIn(cwd, p)) != fileKey(absIn(cwd, target)) {
			linked = true
		}
	}
	if len(gives) == 0 {
		return "both write " + target, false
	}
	how := ""
	if linked {
		how = ", through symlinks"
	}
	return fmt.Sprintf("both write %s (%s%s)", target, strings.Join(gives, ", "), how), linked
}

// outputKey is what makes two output paths one file: the file their
// symlinks end at, absolute from cwd (see fileKey).
func outputKey(cwd, path string) string {
	if target, _, err := fetch.OutputTarget(path); err == nil {
		path = target
	}
	return fileKey(absIn(cwd, path))
}

// absIn is path made absolute in the directory cwd ("" when unknown:
// path as it is).
func absIn(cwd, path string) string {
	if cwd == "" || filepath.IsAbs(path) {
		return path
	}
	return filepath.Join(cwd, path)
}

// fileKey is a path cleaned, and case-folded where file systems usually
// ignore case.
func fileKey(path string) string {
	p := filepath.Clean(path)
	if runtime.GOOS == "darwin" || runtime.GOOS == "windows" {
		p = strings.ToLower(p)
	}
	return p
}

// checkOutputPath checks, before any request, what a single -o checks:
// the directory exists and is writable (once per directory in a row), and
// the path is not a directory. Symlinks are followed to the file they end
// at, which is what gets replaced. A batch writes regular files only:
// devices, FIFOs and sockets are refused. out is how messages call -o
// (or its variable).
func checkOutputPath(e batch.Entry, path, out string, lastDir *string) (string, error) {
	target, st, err := fetch.OutputTarget(path)
	if err != nil {
		return "", lineError(e, fmt.Errorf("%s %s: %v", out, path, unwrapPath(err)))
	}
	dir := filepath.Dir(target)
	if dir != *lastDir {
		dst, err := os.Stat(dir)
		switch {
		case err != nil:
			return "", lineError(e, fmt.Errorf("%s %s: cannot write in %s: %v", out, path, dir, unwrapPath(err)))
		case !dst.IsDir():
			return "", lineError(e, fmt.Errorf("%s %s: %s is not a directory", out, path, dir))
		}
		// The temporary file the run will make, made once now: unnamed
		// where it can be, so even a kill leaves nothing.
		probe, err := atomicfile.Create(dir, "probe")
		if err != nil {
			var pe *os.PathError
			if errors.As(err, &pe) {
				err = pe.Err
			}
			return "", lineError(e, fmt.Errorf("%s %s: cannot write in %s: %v", out, path, dir, err))
		}
		probe.Close()
		*lastDir = dir
	}
	switch {
	case st == nil:
	case st.IsDir():
		return "", lineError(e, fmt.Errorf("%s %s: is a directory", out, path))
	case !st.Mode().IsRegular():
		return "", lineError(e, fmt.Errorf("%s %s: not a regular file; a batch writes regular files only", out, path))
	default:
		if err := fetch.CheckReplaceable(target); err != nil {
			return "", lineError(e, fmt.Errorf("%s %s: %w", out, path, err))
		}
	}
	return target, nil
}

// run fetches every URL: a reader feeds the batch.Scheduler, P workers run the
// jobs, a committer installs the files; then the summary.
func (b *batchRun) run(ctx context.Context) error {
	start := time.Now()
	runCtx, stopRun := context.WithCancelCause(ctx)
	defer stopRun(nil)
	b.stopRun = stopRun
	b.log.dedupe()
	s := batch.NewScheduler(b.perHost, batchReadAhead)
	s.NewClient = func(string) *http.Client { return b.newClient() }
	s.DropClient = func(c *http.Client) { c.CloseIdleConnections() }
	b.sched = s
	if b.tmpl != nil {
		b.committer = fetch.NewCommitter(ctx)
	}
	progress := b.startProgress(start)

	var readErr error
	readerDone := make(chan struct{})
	go func() {
		defer close(readerDone)
		readErr = b.feed(runCtx, s)
		if readErr != nil {
			s.Stop()
			stopRun(readErr)
		}
		s.CloseInput()
	}()
	var wg sync.WaitGroup
	for i := 0; i < b.parallel; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			buf := make([]byte, copyBuffer)
			for {
				j, q, ok := s.Next(runCtx)
				if !ok {
					return
				}
				if until, held := b.runJob(runCtx, j, q, buf); held {
					s.Hold(q, j, until)
					continue
				}
				s.Finish(q)
			}
		}()
	}
	wg.Wait()
	s.Stop() // the reader may be waiting for room that will not come
	<-readerDone
	if b.committer != nil {
		b.committer.Close()
	}
	s.Drop()
	progress()
	b.summary(time.Since(start))
	err := b.result(ctx, readErr)
	if ctx.Err() != nil || readErr != nil {
		b.reports.Discard() // not the batch's results: no report
		return err
	}
	return closeReports(b.reports, time.Since(start), err)
}

// fromBatch is err of package batch as cmd says it: its usage errors
// (a bad input, a bad -o template) are cmd's UsageErrors, exit 2.
func fromBatch(err error) error {
	var ue *batch.UsageError
	if errors.As(err, &ue) {
		return &UsageError{Err: ue.Err}
	}
	return err
}

// feed is the second pass over the input: each URL becomes a job.
func (b *batchRun) feed(ctx context.Context, s *batch.Scheduler) error {
	count := 0
	err := b.in.RunPass(func(e batch.Entry) error {
		u, err := fetch.ParseURL(e.Raw)
		count++
		if err != nil || count > b.total {
			return fmt.Errorf("the input changed while the batch ran (%s)", e.Label)
		}
		j := &batch.Job{N: e.N, Label: e.Label, URL: u, Host: BreakerKey(u)}
		j.HoldKey = j.Host
		if bp := b.plan.breaker; bp != nil && b.o.BreakerKey != "" {
			j.HoldKey = bp.key
		}
		if b.tmpl != nil {
			j.Out = b.tmpl.Expand(e.N, u)
		}
		return s.Add(ctx, j)
	})
	if errors.Is(err, batch.ErrStopped) || ctx.Err() != nil {
		return nil
	}
	return fromBatch(err)
}

// newClient is the connection pool of one host, shared by its URLs.
func (b *batchRun) newClient() *http.Client {
	c, err := fetch.NewClient(b.plan.req)
	if err != nil {
		// fetch.Run builds its own client and reports the error.
		return nil
	}
	if tr := fetch.TransportOf(c); tr != nil {
		// At most one connection per job that may run against the host:
		// without the cap, a request that finds no idle connection dials
		// one even when another is about to come free, so a busy host
		// collects more connections than it has jobs.
		tr.MaxIdleConnsPerHost = b.perHost
		tr.MaxConnsPerHost = b.perHost
	}
	return c
}

// breakerPlan is the breaker of u: the batch's plan with u's key, unless
// --breaker-key names one key for every URL.
func (b *batchRun) breakerPlan(u *url.URL) *breakerPlan {
	if b.plan.breaker == nil {
		return nil
	}
	bp := *b.plan.breaker
	if b.o.BreakerKey == "" {
		bp.key = BreakerKey(u)
	}
	return &bp
}

// sink is where the body of j goes, and the buffer a JSON report reads.
func (b *batchRun) sink(j *batch.Job) (fetch.Sink, *fetch.BufferSink) {
	switch {
	case b.tmpl != nil:
		return fetch.NewGroupFileSink(j.Out), nil
	case b.o.JSON:
		s := &fetch.BufferSink{}
		return s, s
	case b.discard:
		return fetch.DiscardSink{}, nil
	}
	return &wholeSink{BufferSink: &fetch.BufferSink{Dst: b.o.IO.Out}, mu: &b.outMu}, nil
}

// wholeSink writes a buffered body to stdout in one piece: bodies of a
// batch follow one another, never interleaved.
type wholeSink struct {
	*fetch.BufferSink
	mu *sync.Mutex
}

func (s *wholeSink) Commit() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.BufferSink.Commit()
}

// runJob runs one URL through the pipeline. held is true when its key was
// held before the first attempt: nothing was sent, and the job goes back
// to its queue until until.
func (b *batchRun) runJob(ctx context.Context, j *batch.Job, q *batch.Queue, buf []byte) (until time.Time, held bool) {
	req := *b.plan.req
	req.URL = j.URL
	bp := b.breakerPlan(j.URL)
	sink, body := b.sink(j)
	target := messageURL(fetch.RedactURL(j.URL))
	hedge := b.plan.hedge.start(ctx, j.URL, b.log)
	onRequest, onResponse, onHedge := b.log.verboseFor(j.Label)
	cfg := fetch.Config{
		Request: &req, Client: q.Client(), Policy: b.plan.policy, Breaker: newBreaker(bp, req.Identity(), b.log), Sink: sink,
		Limits:   newLimits(b.plan.limits, j.URL, req.Identity(), b.log),
		Fallback: b.plan.fallback, Clock: b.o.Clock, NewTimer: b.o.NewTimer, NoHoldWait: true, Buffer: buf, NoResume: b.o.NoResume,
		Hooks: fetch.Hooks{OnRequest: onRequest, OnResponse: onResponse, OnHold: b.log.Hold, OnRateWait: b.log.RateWait,
			OnRetry: func(info resilience.RetryInfo) { b.log.RetryFor(target, info) }, OnHedge: onHedge},
	}
	if h := hedge.config(); h != nil {
		// A hedge takes a request's room of its host (--parallel-host).
		h.Slot = func() (func(), bool) { return b.sched.Extra(q) }
		cfg.Hedge = h
	}
	res, err := fetch.Run(ctx, cfg)
	hedge.finish(ctx, res, b.log)
	var (
		hold *resilience.HoldError
		re   *resilience.RunError
	)
	if errors.As(err, &hold) && !errors.As(err, &re) {
		sink.Close()
		b.heldLine(hold)
		return hold.Until, true
	}
	var busy *resilience.RateWaitError
	if errors.As(err, &busy) {
		// The origin's next rate slot is not free: nothing was sent or
		// reserved; the URL waits in its queue while other hosts go on.
		sink.Close()
		return busy.Until, true
	}
	err = withResetHint(err, bp)
	if res != nil {
		res.Err = withResetHint(res.Err, bp)
	}
	if err != nil && ctx.Err() != nil && errors.Is(err, context.Cause(ctx)) {
		// Cut off by a signal or --fail-fast: no result of this URL's.
		sink.Close()
		b.cutOff()
		return time.Time{}, false
	}
	if fs, ok := sink.(*fetch.GroupFileSink); ok && err == nil {
		// Reported once the file is in place.
		b.committer.Submit(fs, func(cerr error) {
			if cerr != nil && ctx.Err() != nil && errors.Is(cerr, context.Cause(ctx)) {
				b.cutOff()
				return
			}
			if cerr != nil {
				res.Source, res.Err = fetch.SourceNone, cerr
			}
			b.complete(j, &req, res, cerr, nil)
		})
		return time.Time{}, false
	}
	var data io.Reader
	if body != nil && err == nil && res != nil && res.Source != fetch.SourceNone {
		data, _ = body.Reader()
	}
	b.complete(j, &req, res, err, data)
	sink.Close()
	if _, ok := sink.(*wholeSink); ok && errors.Is(err, fetch.ErrOutput) {
		// stdout cannot take the bodies: the rest would be lost too.
		b.stop(errOutputGone, err)
	}
	return time.Time{}, false
}

// complete records the outcome of one URL: its report line (--json), its
// stderr lines, the counts; and stops the batch for --fail-fast.
func (b *batchRun) complete(j *batch.Job, req *fetch.Request, res *fetch.Result, err error, body io.Reader) {
	served := err
	if served == nil && res != nil {
		served = res.Err // a failure answered by stale or fallback data
	}
	// A URL's testcase is made only for a report or --flaky-fails to read
	// (it redacts and formats every attempt).
	if !b.reports.Empty() || b.o.FlakyFails {
		c := report.FromRun(req, res, FailureClass(served), describeOrEmpty(served))
		if err == nil && b.o.FlakyFails && c.Result == report.Flaky {
			err = flakyError(c)
		}
		b.reports.Add(c)
	}
	code := ExitCode(err)
	target := messageURL(fetch.RedactURL(j.URL))
	if res != nil && err == nil {
		b.warnServed(target, res)
	}
	if err != nil {
		b.log.failed(target, err)
	}
	var rep *fetch.Report
	if b.o.JSON {
		failure := err
		if failure == nil && res != nil {
			failure = res.Err // a failure answered by stale or fallback data
		}
		r := fetch.NewReport(req, res, body, fetch.Outcome{ExitCode: code, Err: failure,
			Message: describe(failure), Class: FailureClass(failure)})
		n := j.N
		r.N, r.Output = &n, j.Out
		// The wait for a hold happened before this run, in the queue: it
		// is part of the URL's whole time, as in a single fetch.
		r.HeldMS += j.Held.Milliseconds()
		r.ElapsedMS = math.Round((r.ElapsedMS+fetch.Millis(j.Held))*1000) / 1000
		rep = &r
	}
	b.mu.Lock()
	switch {
	case err != nil:
		b.failed[code]++
	case res != nil && (res.Source == fetch.SourceStale || res.Source == fetch.SourceFallback):
		b.served++
	default:
		b.ok++
	}
	if b.total == 1 {
		b.only = err
	}
	b.mu.Unlock()
	if rep != nil {
		// One line per URL, whole: a large body's data streams from its
		// spill file while the output is held.
		b.outMu.Lock()
		werr := writeReportJSON(b.o.IO.Out, rep)
		b.outMu.Unlock()
		if werr != nil {
			b.stop(errOutputGone, werr)
		}
	}
	if err != nil && b.o.Batch.FailFast {
		b.stop(errFailFast, nil)
	}
}

// stop ends the batch early: no job is started any more and the jobs in
// flight are cut off (they count as not fetched).
func (b *batchRun) stop(cause, outErr error) {
	b.mu.Lock()
	if outErr != nil && b.outErr == nil {
		b.outErr = outErr
	}
	first := !b.stopping
	b.stopping = true
	b.mu.Unlock()
	if first {
		b.sched.Stop()
		b.stopRun(cause)
	}
}

// maxMessageURL bounds a URL as a batch's lines name it: a 300 KB URL was
// a 300 KB stderr line per retry (a tour found it).
const maxMessageURL = 200

// messageURL is u as a batch's lines name it: cut past maxMessageURL
// bytes (at a character's boundary), saying how long it was.
func messageURL(u string) string {
	if len(u) <= maxMessageURL {
		return u
	}
	return fmt.Sprintf("%s (%d bytes)", fetch.Excerpt(u, maxMessageURL), len(u))
}

// warnServed says that stale or fallback data was served for target.
func (b *batchRun) warnServed(target string, res *fetch.Result) {
	if res.CacheErr != nil {
		b.log.Warnf("%s: %v", target, res.CacheErr)
	}
	if res.StaleSkipped != nil {
		b.log.Warnf("%s: stale copy not served: %v", target, res.StaleSkipped)
	}
	switch res.Source {
	case fetch.SourceStale:
		b.log.Warnf("%s: serving stale response from %s ago: %s", target, FormatDuration(res.StaleAge), describe(res.Err))
	case fetch.SourceFallback:
		b.log.Warnf("%s: serving fallback: %s", target, describe(res.Err))
	}
}

// counts returns how many URLs are done, and how many failed.
func (b *batchRun) counts() (done, failed int) {
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, n := range b.failed {
		failed += n
	}
	return b.ok + b.served + failed, failed
}

// summary writes the batch's last stderr line (-q silences it):
// "batch: 1000 URLs in 2.3s: 990 ok, 5 stale/fallback, 5 failed
// (3 retries_exhausted, 2 circuit_open), 0 skipped".
func (b *batchRun) summary(elapsed time.Duration) {
	b.mu.Lock()
	defer b.mu.Unlock()
	failed := 0
	codes := make([]int, 0, len(b.failed))
	for code, n := range b.failed {
		failed += n
		codes = append(codes, code)
	}
	sort.Ints(codes)
	var classes []string
	for _, code := range codes {
		name := failureClasses[code]
		if name == "" {
			name = fmt.Sprintf("exit %d", code)
		}
		classes = append(classes, fmt.Sprintf("%d %s", b.failed[code], name))
	}
	byClass := ""
	if len(classes) > 0 {
		byClass = " (" + strings.Join(classes, ", ") + ")"
	}
	skipped := b.total - b.ok - b.served - failed
	cut := ""
	if b.cut > 0 {
		// Of the skipped, those whose request had begun: a signal's or
		// --fail-fast's victims, as opposed to URLs never started.
		cut = fmt.Sprintf(" (%d cut off)", b.cut)
	}
	b.log.Infof("batch: %d URL%s in %s: %d ok, %d stale/fallback, %d failed%s, %d skipped%s",
		b.total, plural(b.total), FormatDuration(elapsed), b.ok, b.served, failed, byClass, skipped, cut)
}

// cutOff counts a URL whose request a signal or --fail-fast cut off.
func (b *batchRun) cutOff() {
	b.mu.Lock()
	b.cut++
	b.mu.Unlock()
}

// result is the batch's error: a signal's, a local failure's, the one
// URL's own (a batch of one URL never exits 9), or a BatchError.
func (b *batchRun) result(ctx context.Context, readErr error) error {
	if ctx.Err() != nil {
		return context.Cause(ctx)
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.outErr != nil {
		if errors.Is(b.outErr, fetch.ErrOutput) {
			return b.outErr
		}
		return fmt.Errorf("%w: stdout: %v%s", fetch.ErrOutput, b.outErr, fetch.SpaceHint(b.outErr))
	}
	if readErr != nil {
		return readErr
	}
	failed := 0
	for _, n := range b.failed {
		failed += n
	}
	if b.total == 1 {
		return b.only
	}
	if failed == 0 {
		return nil
	}
	return &BatchError{Failed: failed, Total: b.total, Skipped: b.total - b.ok - b.served - failed,
		FailFast: b.o.Batch.FailFast}
}

// startProgress draws "done/total, failures, rate" on one live line of a
// terminal's stderr until the returned function is called; it draws
// nothing off a terminal or with -q.
func (b *batchRun) startProgress(start time.Time) func() {
	if !b.log.tty || b.log.quiet {
		return func() {}
	}
	stop, stopped := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(stopped)
		tick := time.NewTicker(progressEvery)
		defer tick.Stop()
		for {
			select {
			case <-stop:
				b.log.setStatus("")
				return
			case <-tick.C:
				done, failed := b.counts()
				b.log.setStatus(progressLine(done, b.total, failed, time.Since(start)))
			}
		}
	}()
	return func() {
		close(stop)
		<-stopped
	}
}

// progressLine is the live line: "batch: 120/1000 done, 3 failed, 85.2/s".
func progressLine(done, total, failed int, elapsed time.Duration) string {
	rate := 0.0
	if elapsed > 0 {
		rate = float64(done) / elapsed.Seconds()
	}
	return fmt.Sprintf("batch: %d/%d done, %d failed, %.1f/s", done, total, failed, rate)
}

// failed logs the failure of one URL of a batch (-q silences it: the
// batch's final line says how many failed).
func (l *Logger) failed(target string, err error) {
	if l.quiet {
		return
	}
	l.line(l.red.Sprint("refetch: " + target + ": " + describe(err)))
}

// setStatus shows s on the live line below the log lines ("" clears it).
func (l *Logger) setStatus(s string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.status = s
	fmt.Fprint(l.w, "\r\x1b[K"+s)
}

// dedupe makes the logger write each distinct warning once: a batch's
// URLs share a store, and its trouble would be said once per URL.
func (l *Logger) dedupe() {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.warned == nil {
		l.warned = map[string]bool{}
	}
}
