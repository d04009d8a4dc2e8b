package store

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/refetch/refetch/internal/atomicfile"
	"github.com/refetch/refetch/internal/regularfile"
)

// Store keeps breaker records and decides every step of a key's breaker
// in one atomic read-modify-write, across processes (and, for a shared
// store such as Redis, across machines): Admit and Record run the state
// machine of machine.go on the current record, with no client-side retry
// loop that could give up under contention. A store never holds a lock
// while a request is in flight. Implementations are safe for concurrent
// use by several goroutines; the contract suite (storecontract_test.go)
// is what any store must pass.
//
// Every method takes a ctx that bounds its waits: for a lock another
// process holds, for a server's answer. Once ctx is done a method returns
// context.Cause(ctx), unwrapped, instead of waiting (a step's write may
// still take effect); what needs no wait it may still do, such as taking
// a lock that nobody holds.
//
// now is the caller's clock. A store with a clock of its own (Redis's
// TIME) decides by that clock instead, and translates the times it
// returns into the caller's, so a fleet's records never depend on one
// node's clock.
type Store interface {
	// Admit decides an admission for p.Identity on p.Key (admitStep).
	Admit(ctx context.Context, p Params, now time.Time) (Decision, error)
	// Record records the outcome of an attempt admitted on p.Key
	// (recordStep).
	Record(ctx context.Context, p Params, o Outcome, now time.Time) (Decision, error)
	// List returns every stored record, sorted by key. A store that does
	// not exist yet holds no records; one that cannot be read is an error.
	List(ctx context.Context) ([]Record, error)
	// Delete removes the record of key and reports whether there was one.
	// It creates nothing when there is none.
	Delete(ctx context.Context, key string) (bool, error)
	// DeleteAll removes every record, corrupt ones included, and returns
	// how many it removed.
	DeleteAll(ctx context.Context) (int, error)
}

// CorruptStateError reports a state file that could not be read or decoded
// and was replaced by a fresh closed state, or, when Listed, skipped by a
// listing (which changes nothing: the next run of its key replaces it).
type CorruptStateError struct {
	Path   string
	Err    error
	Listed bool
}

func (e *CorruptStateError) Error() string {
	if e.Listed {
		return fmt.Sprintf("breaker state %s is unreadable (%v); not listed (the next run of its key replaces it)", e.Path, e.Err)
	}
	return fmt.Sprintf("breaker state %s is unreadable (%v); replaced by a fresh closed state", e.Path, e.Err)
}

func (e *CorruptStateError) Unwrap() error { return e.Err }

// FileStore keeps one JSON file per key in Dir, named by a hash of the key
// so that no key can escape the directory. Dir is created with mode 0700
// and files are written 0600, atomically (temporary file and rename), under
// an advisory file lock (github.com/gofrs/flock) held only for the
// read-modify-write itself. Files are not fsynced: the state is advisory
// and a lost update on power failure only closes a breaker early.
//
// A lock another process holds is waited for while the operation's ctx
// lasts, by trying it again at short intervals (see lockFile), so that a
// holder that is stopped or hung cannot keep a run from ending on a
// signal; goroutines of one process wait for one another in order. A
// FileStore must not be copied after first use.
type FileStore struct {
	Dir string
	// Warn, if set, receives CorruptStateErrors.
	Warn func(error)
	// TTL is how long a record lives after its last write (and at least
	// until its retry_at and its holds end), as in Redis: an expired
	// record reads as a fresh one, and the first step of a process removes
	// the expired files of Dir (with their lock files, and temporary files
	// a crash left), so a state dir does not grow for ever. 0: records
	// never expire.
	TTL time.Duration

	gates gates
	prune sync.Once
	// dirOK: the dir was found usable (usable), once per process.
	dirOK atomic.Bool
}

func (s *FileStore) path(key string) string {
	sum := sha256.Sum256([]byte(key))
	return filepath.Join(s.Dir, hex.EncodeToString(sum[:16]))
}

func (s *FileStore) ensureDir() error {
	if err := os.MkdirAll(s.Dir, 0o700); err != nil {
		return fmt.Errorf("state dir: %w", err)
	}
	return nil
}

// Admit implements Store by the local clock.
func (s *FileStore) Admit(ctx context.Context, p Params, now time.Time) (Decision, error) {
	return s.step(ctx, p.Key, now, func(r *Record) (Decision, bool) { return admitStep(r, p, now) })
}

// Record implements Store by the local clock.
func (s *FileStore) Record(ctx context.Context, p Params, o Outcome, now time.Time) (Decision, error) {
	return s.step(ctx, p.Key, now, func(r *Record) (Decision, bool) { return recordStep(r, p, o, now) })
}

// step runs fn on the record of key under its lock and saves the record
// when fn changed it.
//
// A step that changes nothing (most are: a closed breaker's admission, a
// success while no failure is counted) is decided without the lock, from
// the record as it is read: every write replaces the file by a rename, so
// a read sees one whole version, the one a locked step would have seen at
// that instant, and a step that writes nothing is ordered there. Only
// when fn would change the record is the step run again under the lock,
// on the record read then. This saves a batch two lock cycles a URL
// (about 15 system calls). Not on Windows, where a file open for reading
// could make another process's rename fail.
func (s *FileStore) step(ctx context.Context, key string, now time.Time, fn func(*Record) (Decision, bool)) (Decision, error) {
	s.prune.Do(func() { s.removeExpired(now) })
	base := s.path(key)
	if err := s.usable(base + ".lock"); err != nil {
		return Decision{}, err
	}
	if runtime.GOOS != "windows" {
		if d, ok := s.stepUnlocked(base+".json", key, now, fn); ok {
			return d, nil
		}
	}
	if err := s.ensureDir(); err != nil { // removed since usable looked
		return Decision{}, err
	}
	unlock, err := s.gates.lock(ctx, base+".lock")
	if err != nil {
		return Decision{}, err
	}
	defer unlock()
	r, corrupt, err := s.load(base+".json", key, now)
	if err != nil {
		return Decision{}, err
	}
	if s.expired(r, now) {
		r = Record{Key: key, State: StateClosed}
	}
	d, changed := fn(&r)
	d.Corrupt = corrupt
	if changed {
		r.ExpiresAt = nil
		if s.TTL > 0 {
			end := expiry(r, s.TTL)
			r.ExpiresAt = &end
		}
		d.Record.ExpiresAt = r.ExpiresAt
		err = writeRecord(base+".json", r)
	}
	return d, err
}

// usable makes Dir and checks that this process can write in it, once
// per process (a failure is checked again at the next step): a step that
// writes nothing takes no lock, and a dir that cannot be written must
// still make the breaker step aside with its warning at the first step,
// not at the first failure. The error reads as the lock file's open
// would (lock is the key's lock file).
func (s *FileStore) usable(lock string) error {
	if s.dirOK.Load() {
		return nil
	}
	if err := s.ensureDir(); err != nil {
		return err
	}
	if err := writableDir(s.Dir); err != nil {
		return fmt.Errorf("lock %s: %w", lock, &os.PathError{Op: "open", Path: lock, Err: err})
	}
	s.dirOK.Store(true)
	return nil
}

// stepUnlocked runs fn on the record of key at path as read without the
// lock, and reports whether that decided the step: fn changed nothing.
// A file that cannot be read or decoded is left to the locked step, which
// reports and replaces it.
func (s *FileStore) stepUnlocked(path, key string, now time.Time, fn func(*Record) (Decision, bool)) (Decision, bool) {
	r, err := s.readRecord(path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		r = Record{Key: key, State: StateClosed}
	case err != nil:
		return Decision{}, false
	}
	if s.expired(r, now) {
		r = Record{Key: key, State: StateClosed}
	}
	// fn may change r's maps: r is this call's own decoded copy.
	d, changed := fn(&r)
	return d, !changed
}

// expired reports whether r expired by now: each write sets its
// ExpiresAt, by the TTL of the process that wrote it; a record written
// before records had one expires by this store's TTL.
func (s *FileStore) expired(r Record, now time.Time) bool {
	if r.ExpiresAt != nil {
		return now.After(*r.ExpiresAt)
	}
	return s.TTL > 0 && !r.UpdatedAt.IsZero() && now.After(expiry(r, s.TTL))
}

// expiry is when r expires under ttl: ttl after its last write, and not
// before its retry_at or the end of its last hold.
func expiry(r Record, ttl time.Duration) time.Time {
	end := addSat(r.UpdatedAt, ttl)
	if r.RetryAt != nil && r.RetryAt.After(end) {
		end = *r.RetryAt
	}
	for _, h := range r.Holds {
		if h.After(end) {
			end = h
		}
	}
	return end
}

// pruneEvery is how often the processes using one state dir look for
// expired files in it: a stamp file (.pruned) records the last look, so
// most runs pay one stat, not a read of the whole dir.
const pruneEvery = time.Hour

// removeExpired removes, from Dir, the state files that expired by now,
// with their lock files, and lock files without a state file that are
// older than TTL, at most once every pruneEvery across processes. It
// never waits: a file whose lock another process holds stays for the
// next look, so a stopped process cannot hold up the runs of other keys.
// It is best effort: what it cannot remove stays. (Temporary files a
// crash left are atomicfile's to clean.)
func (s *FileStore) removeExpired(now time.Time) {
	if s.TTL <= 0 {
		return
	}
	stamp := filepath.Join(s.Dir, ".pruned")
	if fi, err := os.Stat(stamp); err == nil && time.Since(fi.ModTime()) < pruneEvery {
		return
	}
	if f, err := os.OpenFile(stamp, os.O_CREATE|os.O_WRONLY, 0o600); err == nil {
		f.Close()
		t := time.Now()
		os.Chtimes(stamp, t, t)
	}
	entries, err := os.ReadDir(s.Dir)
	if err != nil {
		return
	}
	// A done ctx: take a lock only if it is free (see gates.lock).
	noWait, cancel := context.WithCancel(context.Background())
	cancel()
	for _, e := range entries {
		name := e.Name()
		info, err := e.Info()
		if err != nil || !info.Mode().IsRegular() {
			continue
		}
		// File times are the system's clock (now may be a test's).
		if time.Since(info.ModTime()) <= s.TTL {
			continue
		}
		switch {
		case strings.HasSuffix(name, ".json"):
			s.removeIfExpired(noWait, filepath.Join(s.Dir, strings.TrimSuffix(name, ".json")), now)
		case limitSuffix(name) != "":
			s.removeLimitIfExpired(noWait, filepath.Join(s.Dir, name), now)
		case limitSuffix(strings.TrimSuffix(name, ".lock")) != "":
			// A limit's lock goes with its file (removeLimitIfExpired), or
			// alone once the file is gone.
			base := filepath.Join(s.Dir, strings.TrimSuffix(name, ".lock"))
			if _, err := os.Lstat(base); errors.Is(err, fs.ErrNotExist) {
				s.removeLimitIfExpired(noWait, base, now)
			}
		case strings.HasSuffix(name, latencySuffix):
			s.removeLatencyIfExpired(noWait, filepath.Join(s.Dir, name), now)
		case strings.HasSuffix(name, latencySuffix+".lock"):
			base := filepath.Join(s.Dir, strings.TrimSuffix(name, ".lock"))
			if _, err := os.Lstat(base); errors.Is(err, fs.ErrNotExist) {
				s.removeLatencyIfExpired(noWait, base, now)
			}
		case strings.HasSuffix(name, ".lock"):
			base := filepath.Join(s.Dir, strings.TrimSuffix(name, ".lock"))
			if _, err := os.Lstat(base + ".json"); errors.Is(err, fs.ErrNotExist) {
				s.removeIfExpired(noWait, base, now)
			}
		}
	}
}

// removeIfExpired removes base.json, if it expired by now, and base.lock,
// under the lock: a process that opened the lock file before it was
// removed finds out when it has the lock (see lockFile) and takes the new
// one. (On Windows an open file cannot be removed: lock files stay.)
func (s *FileStore) removeIfExpired(ctx context.Context, base string, now time.Time) {
	unlock, err := s.gates.lock(ctx, base+".lock")
	if err != nil {
		return
	}
	defer unlock()
	r, err := s.readRecord(base + ".json")
	switch {
	case errors.Is(err, fs.ErrNotExist):
	case err != nil || !s.expired(r, now):
		return // a corrupt file is the next run's to report
	default:
		if os.Remove(base+".json") != nil {
			return
		}
	}
	if runtime.GOOS != "windows" {
		os.Remove(base + ".lock")
	}
}

// readRecord reads and decodes the state file at path, which must be the
// file of the key it holds.
func (s *FileStore) readRecord(path string) (Record, error) {
	data, err := regularfile.Read(path)
	if err != nil {
		return Record{}, err
	}
	r, err := DecodeRecord(data)
	if err == nil && s.path(r.Key)+".json" != path {
		err = fmt.Errorf("file holds key %q, whose file it is not", r.Key)
	}
	return r, err
}

// load reads the record of key at path. A missing file is a fresh record;
// an unreadable or corrupt one is reported and replaced by a fresh record.
func (s *FileStore) load(path, key string, now time.Time) (r Record, corrupt bool, err error) {
	fresh := Record{Key: key, State: StateClosed}
	r, err = s.readRecord(path)
	switch {
	case err == nil:
		return r, false, nil
	case errors.Is(err, fs.ErrNotExist):
		return fresh, false, nil
	}
	if s.Warn != nil {
		s.Warn(&CorruptStateError{Path: path, Err: err})
	}
	// Replace it now (the caller holds the lock), so the warning is given
	// once even if this update changes nothing. It is written as any
	// record is, dated and expiring (a record with no date never would).
	saved := fresh
	saved.UpdatedAt = now
	if s.TTL > 0 {
		end := expiry(saved, s.TTL)
		saved.ExpiresAt = &end
	}
	if werr := writeRecord(path, saved); werr != nil {
		return fresh, true, werr
	}
	return fresh, true, nil
}

func writeRecord(path string, r Record) error {
	data, err := json.Marshal(r)
	if err != nil {
		return err
	}
	return atomicfile.WriteFile(path, append(data, '\n'), 0o600, false)
}

// String names the store in messages: its state dir.
func (s *FileStore) String() string { return "the local state dir " + s.Dir }

// stateFiles returns the paths of the state files in Dir. A Dir that does
// not exist yet has none; one that is not a directory or cannot be read is
// an error.
func (s *FileStore) stateFiles() ([]string, error) { return s.filesEnding(".json") }

// filesEnding returns the paths of the files in Dir whose names end in
// one of suffixes; a Dir that does not exist yet has none.
func (s *FileStore) filesEnding(suffixes ...string) ([]string, error) {
	entries, err := os.ReadDir(s.Dir)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return nil, nil
	case err != nil:
		return nil, s.dirError(err)
	}
	var out []string
	for _, e := range entries {
		for _, suffix := range suffixes {
			if name := e.Name(); strings.HasSuffix(name, suffix) {
				out = append(out, filepath.Join(s.Dir, name))
				break
			}
		}
	}
	return out, nil
}

// dirError describes err, met while reading Dir or a file in it, as a
// problem of the state dir.
func (s *FileStore) dirError(err error) error {
	if fi, serr := os.Stat(s.Dir); serr == nil && !fi.IsDir() {
		return fmt.Errorf("state dir %s is not a directory", s.Dir)
	}
	var pe *fs.PathError
	if errors.As(err, &pe) {
		err = pe.Err
	}
	return fmt.Errorf("state dir %s: %w", s.Dir, err)
}

// List reads the state files without taking their locks: each one is
// replaced whole by a rename, so a read sees an old or a new record.
func (s *FileStore) List(ctx context.Context) ([]Record, error) {
	paths, err := s.stateFiles()
	if err != nil {
		return nil, err
	}
	out := []Record{}
	now := time.Now()
	for _, m := range paths {
		r, err := s.readRecord(m)
		if err != nil {
			if s.Warn != nil {
				s.Warn(&CorruptStateError{Path: m, Err: err, Listed: true})
			}
			continue
		}
		if s.expired(r, now) {
			continue // as Redis forgets an expired key; the next prune removes it
		}
		out = append(out, r)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Key < out[j].Key })
	return out, nil
}

// Delete removes the state file of key. It looks before it locks, so a key
// without a state file leaves no lock file behind.
func (s *FileStore) Delete(ctx context.Context, key string) (bool, error) {
	base := s.path(key)
	if _, err := os.Stat(base + ".json"); errors.Is(err, fs.ErrNotExist) {
		return false, nil
	} else if err != nil {
		return false, s.dirError(err)
	}
	return s.removeLocked(ctx, base)
}

// removeLocked removes base.json under base.lock and reports whether there
// was a file to remove.
func (s *FileStore) removeLocked(ctx context.Context, base string) (bool, error) {
	return s.removeUnder(ctx, base+".lock", base+".json")
}

// removeUnder removes path under the lock file lock and reports whether
// there was a file to remove: the one removal of breaker and limit files.
func (s *FileStore) removeUnder(ctx context.Context, lock, path string) (bool, error) {
	unlock, err := s.gates.lock(ctx, lock)
	if err != nil {
		return false, err
	}
	defer unlock()
	err = os.Remove(path)
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	return err == nil, err
}

// DeleteAll removes every state file in the store, corrupt ones included,
// and returns how many it removed.
func (s *FileStore) DeleteAll(ctx context.Context) (int, error) {
	paths, err := s.stateFiles()
	if err != nil {
		return 0, err
	}
	n := 0
	for _, m := range paths {
		removed, err := s.removeLocked(ctx, strings.TrimSuffix(m, ".json"))
		if err != nil {
			return n, err
		}
		if removed {
			n++
		}
	}
	return n, nil
}
