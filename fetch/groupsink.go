package fetch

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/refetch/refetch/internal/atomicfile"
)

// GroupFileSink is the sink of one file of a batch. It keeps FileSink's
// promise (a temporary file beside Path, made durable, then renamed over
// Path; an existing Path untouched until then) but leaves the durable part
// to a Committer, which makes many files durable at once instead of
// paying one serial fsync per file.
//
// A body of up to SmallBody bytes is held in memory, and the Committer
// writes its temporary file: the many small files of a batch are then
// created one after another by one goroutine, instead of by every worker
// at once contending for the directory. A larger body spills to its
// temporary file as it arrives. Commit only seals the body: nothing is
// visible until the sink is submitted to a Committer, which renames it
// into place. Close removes the temporary file of a sink not submitted.
type GroupFileSink struct {
	path      string
	target    string      // path with its symlinks followed: what is replaced
	mode      fs.FileMode // of the file replaced, atomicfile.NewFileMode for a new one
	replaces  bool        // a file is there: its extended attributes (ACL) are kept
	mem       *[]byte     // the body while it is small; nil once spilled
	tmp       *atomicfile.File
	sealed    bool
	submitted bool
}

// SmallBody is the largest body a GroupFileSink holds in memory.
const SmallBody = 16 << 10

// smallBodies recycles the memory of small bodies.
var smallBodies = sync.Pool{New: func() any { b := make([]byte, 0, SmallBody); return &b }}

// NewGroupFileSink returns the sink of path; the caller has checked (with
// OutputTarget) that it is a regular file or a new one in an existing
// directory. A symlink is followed: the file it ends at is replaced (the
// temporary file goes beside it) and the link stays; the mode of a file
// replaced is kept, as FileSink does.
func NewGroupFileSink(path string) *GroupFileSink {
	s := &GroupFileSink{path: path, target: path, mode: atomicfile.NewFileMode()}
	if target, st, err := OutputTarget(path); err == nil {
		s.target = target
		if st != nil && st.Mode().IsRegular() {
			s.mode, s.replaces = st.Mode().Perm(), true
		}
	}
	return s
}

// Descriptor reports which of the process's own descriptors path names,
// its symlinks followed (/dev/stdout, /proc/self/fd/1, a link to one).
func Descriptor(path string) (int, bool) {
	_, fd, _, err := resolveLinks(path)
	return fd, err == nil && fd >= 0
}

// OutputTarget follows path's symlinks (as single -o does: resolveLinks)
// to the file they end at and returns it with its FileInfo, nil when it
// does not exist yet (a new file, or the target of a dangling symlink, to
// be created). A path naming one of the process's descriptors is an error:
// a batch writes files.
func OutputTarget(path string) (string, fs.FileInfo, error) {
	target, fd, end, err := resolveLinks(path)
	if err != nil {
		return path, nil, err
	}
	if fd >= 0 {
		return path, nil, fmt.Errorf("%s: names file descriptor %d, not a file", path, fd)
	}
	if end != nil {
		// Known from the walk: no second stat (a batch asks for each
		// file twice, before any request and when it writes it).
		return target, end.FileInfo, nil
	}
	st, err := os.Stat(target)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return target, nil, nil
	case err != nil:
		return target, nil, err
	}
	return target, st, nil
}

// Path is the file the body goes to.
func (s *GroupFileSink) Path() string { return s.path }

// Begin implements Sink.
func (s *GroupFileSink) Begin() (io.Writer, error) {
	if s.submitted {
		return nil, errors.New("file sink already submitted")
	}
	if s.tmp == nil && s.mem == nil {
		s.mem = smallBodies.Get().(*[]byte)
	}
	// A body resumed at its start: the memory or temporary file emptied.
	return s.Resume(0)
}

// Resume implements resumer: the body keeps its first off bytes, in
// memory or in its temporary file.
func (s *GroupFileSink) Resume(off int64) (io.Writer, error) {
	if s.submitted {
		return nil, errors.New("file sink already submitted")
	}
	s.sealed = false
	if s.tmp != nil {
		if err := truncateAt(s.tmp.File, off); err != nil {
			return nil, err
		}
		return s.tmp.File, nil
	}
	if s.mem == nil || int64(len(*s.mem)) < off {
		held := int64(0)
		if s.mem != nil {
			held = int64(len(*s.mem))
		}
		return nil, errHeldShort(off, held)
	}
	*s.mem = (*s.mem)[:off]
	return s, nil
}

// Write holds p in memory while the body is small, then spills the body
// to its temporary file.
func (s *GroupFileSink) Write(p []byte) (int, error) {
	if s.tmp != nil {
		return s.tmp.Write(p)
	}
	if len(*s.mem)+len(p) <= SmallBody {
		*s.mem = append(*s.mem, p...)
		return len(p), nil
	}
	tmp, err := createTemp(s.path, s.target)
	if err != nil {
		return 0, err
	}
	s.tmp = tmp
	if _, err := tmp.Write(*s.mem); err != nil {
		return 0, err
	}
	s.release()
	return tmp.Write(p)
}

// release gives the body's memory back.
func (s *GroupFileSink) release() {
	if s.mem != nil {
		smallBodies.Put(s.mem)
		s.mem = nil
	}
}

// createTemp creates the temporary file of path (whose symlinks lead to
// target) in target's directory.
func createTemp(path, target string) (*atomicfile.File, error) {
	dir, base := filepath.Split(target)
	tmp, err := atomicfile.Create(dir, base)
	if err != nil {
		var pe *fs.PathError
		if errors.As(err, &pe) {
			err = pe.Err
		}
		return nil, outputError(path, "cannot write in %s: %w", dir, err)
	}
	return tmp, nil
}

// Commit implements Sink: it seals the body of the last Begin. The body
// becomes visible once a Committer has made it durable and renamed it.
func (s *GroupFileSink) Commit() error {
	if (s.tmp == nil && s.mem == nil) || s.submitted {
		return markAs(errOutput, outputError(s.path, "no body to commit"))
	}
	s.sealed = true
	return nil
}

// Close implements Sink: it removes the temporary file unless the sink
// was submitted (the Committer owns it then, and Close does nothing).
func (s *GroupFileSink) Close() error {
	if s.submitted {
		return nil
	}
	s.release()
	if s.tmp == nil {
		return nil
	}
	err := s.tmp.Close()
	s.tmp = nil
	return err
}

// Streams implements Sink.
func (s *GroupFileSink) Streams() bool { return false }

// Committer makes sealed GroupFileSinks durable in groups and renames them
// into place, in two goroutines of its own, so that writing files and
// waiting for the disk overlap. The first writes each small body to its
// temporary file and gives every temporary file its mode (0666 less the
// umask, or the mode of the file it replaces), one file after another: files created in
// one directory are serialized by the kernel anyway. The second takes what
// is ready in groups: what became ready while the previous group was being
// committed, plus what arrives within DefaultLinger of its first file, up
// to DefaultMaxGroup files. On Linux one syncfs(2) per file system makes a
// whole group durable (elsewhere the files are fsynced in parallel); then
// each file is renamed over its path.
type Committer struct {
	ctx    context.Context
	in     chan commitItem
	ready  chan commitItem
	exited chan struct{}
	linger time.Duration
	max    int
}

type commitItem struct {
	s    *GroupFileSink
	done func(error)
	err  error // why the file cannot be committed, found while preparing it
}

// Default group limits of NewCommitter: a few milliseconds or 128 files,
// whichever comes first.
const (
	DefaultLinger   = 2 * time.Millisecond
	DefaultMaxGroup = 128
)

// NewCommitter starts a committer. Once ctx is done, files submitted and
// not yet being committed are removed instead, and their done functions
// get context.Cause(ctx).
func NewCommitter(ctx context.Context) *Committer {
	c := &Committer{ctx: ctx, in: make(chan commitItem, DefaultMaxGroup), ready: make(chan commitItem, DefaultMaxGroup),
		exited: make(chan struct{}), linger: DefaultLinger, max: DefaultMaxGroup}
	go c.prepare()
	go c.loop()
	return c
}

// Submit hands a sealed sink to the committer; done is called once, from
// one of the committer's goroutines, with nil when the file is in place
// or with the error that kept it out (its temporary file is then removed).
// From then on the committer owns the sink: only Close may still be
// called. Submit blocks while the committer is a full group behind, which
// bounds the open files and the memory of small bodies. It must not be
// called after the Committer's Close.
func (c *Committer) Submit(s *GroupFileSink, done func(error)) {
	if !s.sealed || s.submitted {
		done(markAs(errOutput, outputError(s.path, "nothing sealed to commit")))
		return
	}
	s.submitted = true
	c.in <- commitItem{s: s, done: done}
}

// Close waits until every submitted file is committed or removed.
func (c *Committer) Close() {
	close(c.in)
	<-c.exited
}

// prepare writes small bodies to their temporary files and sets modes.
func (c *Committer) prepare() {
	defer close(c.ready)
	for it := range c.in {
		if c.ctx.Err() == nil {
			it.err = prepareFile(it.s)
		}
		c.ready <- it
	}
}

func (c *Committer) loop() {
	defer close(c.exited)
	group := make([]commitItem, 0, c.max)
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	for {
		first, ok := <-c.ready
		if !ok {
			return
		}
		group = append(group[:0], first)
		closed := false
		timer.Reset(c.linger)
	collect:
		for len(group) < c.max {
			select {
			case it, ok := <-c.ready:
				if !ok {
					closed = true
					break collect
				}
				group = append(group, it)
			case <-timer.C:
				break collect
			}
		}
		if !timer.Stop() {
			select {
			case <-timer.C:
			default:
			}
		}
		c.commit(group)
		clear(group)
		if closed {
			return
		}
	}
}

// commit makes one group durable, then renames each file into place.
func (c *Committer) commit(group []commitItem) {
	if c.ctx.Err() != nil {
		cause := context.Cause(c.ctx)
		for _, it := range group {
			discardGroupFile(it.s)
			it.done(cause)
		}
		return
	}
	var (
		files   []*os.File
		members []int
	)
	for i, it := range group {
		if it.err == nil {
			files = append(files, it.s.tmp.File)
			members = append(members, i)
		}
	}
	for k, err := range syncFiles(files) {
		group[members[k]].err = err
	}
	for _, it := range group {
		err := it.err
		if err == nil {
			err = install(it.s)
		} else {
			discardGroupFile(it.s)
		}
		if err != nil {
			// createTemp's error names the path already.
			var named *OutputError
			if !errors.As(err, &named) {
				err = &OutputError{Path: it.s.path, Err: err}
			}
			err = markAs(errOutput, err)
		}
		it.done(err)
	}
}

// prepareFile writes a body held in memory to its temporary file, and
// gives the temporary file the mode of the file it replaces (0666 less
// the umask if none, found when the sink was made), as FileSink does.
func prepareFile(s *GroupFileSink) error {
	if s.tmp == nil {
		tmp, err := createTemp(s.path, s.target)
		if err != nil {
			return err
		}
		s.tmp = tmp
		_, err = tmp.Write(*s.mem)
		s.release()
		if err != nil {
			return err
		}
	}
	if err := s.tmp.Chmod(s.mode); err != nil {
		return err
	}
	if s.replaces {
		return s.tmp.KeepAttrs(s.target)
	}
	return nil
}

// install closes a durable temporary file and renames it over its path;
// on failure the temporary file is removed.
func install(s *GroupFileSink) error {
	err := s.tmp.Commit(s.target, false)
	if cerr := s.tmp.Close(); err == nil {
		err = cerr
	}
	s.tmp = nil
	return err
}

func discardGroupFile(s *GroupFileSink) {
	s.release()
	if s.tmp == nil {
		return
	}
	s.tmp.Close()
	s.tmp = nil
}

// syncParallel fsyncs files with a few goroutines at once and returns
// each file's error.
func syncParallel(files []*os.File) []error {
	errs := make([]error, len(files))
	sem := make(chan struct{}, 16)
	var wg sync.WaitGroup
	for i, f := range files {
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = f.Sync()
			<-sem
		}()
	}
	wg.Wait()
	return errs
}
