package resilience

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
)

// Store persists breaker records. Implementations must make Update atomic
// with respect to every other Update of the same key, across processes
// (and, for a shared store such as Redis, across machines), and be safe
// for concurrent use by several goroutines.
//
// Every method takes a ctx that bounds its waits: for a lock another
// process holds, for a server's answer. Once ctx is done a method returns
// context.Cause(ctx), unwrapped, instead of waiting (an Update then does
// not call fn again, though a write it had already sent may still take
// effect); what needs no wait it may still do, such as taking a lock that
// nobody holds.
type Store interface {
	// Update loads the record of key (a fresh closed Record when there is
	// none), calls fn with it and saves what fn left, unless fn returns an
	// error: then nothing is saved and Update returns that error unchanged.
	//
	// fn may be called more than once (an optimistic store calls it again
	// when another writer changed the record in between, or on the copy
	// it last saw and then on the current record); only the last call's
	// result is saved, so fn must not accumulate effects across calls.
	// fn's ErrUnchanged lets a caching store skip confirming that the
	// copy it passed was current.
	Update(ctx context.Context, key string, fn func(*Record) error) error
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

// ErrUnchanged, returned by an Update's fn, means "save nothing, and this
// decision stands even if the record I was given is a copy this process
// read or wrote earlier": a store that caches records (RedisStore) then
// returns it at once, without the round trip that confirms the copy. Any
// other error from fn is returned only after the record fn saw was
// confirmed current (fn is called again on the current one otherwise).
// The breaker returns it for outcomes that change nothing, such as a
// success on a clean closed breaker, where acting on a slightly old copy
// is harmless; admissions never use it.
var ErrUnchanged = errors.New("record unchanged")

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

	gates gates
}

// DecodeRecord parses a state file's content.
func DecodeRecord(data []byte) (Record, error) {
	var r Record
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&r); err != nil {
		return Record{}, err
	}
	if dec.More() {
		return Record{}, errors.New("trailing data after the state object")
	}
	if r.ConsecutiveFailures < 0 {
		return Record{}, errors.New("negative failure count")
	}
	if r.State == StateOpen && r.RetryAt == nil {
		return Record{}, errors.New("open state without retry_at")
	}
	return r, nil
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

func (s *FileStore) Update(ctx context.Context, key string, fn func(*Record) error) error {
	if err := s.ensureDir(); err != nil {
		return err
	}
	base := s.path(key)
	unlock, err := s.gates.lock(ctx, base+".lock")
	if err != nil {
		return err
	}
	defer unlock()
	r, err := s.load(base+".json", key)
	if err != nil {
		return err
	}
	if err := fn(&r); err != nil {
		return err
	}
	return writeRecord(base+".json", r)
}

// readRecord reads and decodes the state file at path, which must be the
// file of the key it holds.
func (s *FileStore) readRecord(path string) (Record, error) {
	data, err := readRegular(path)
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
func (s *FileStore) load(path, key string) (Record, error) {
	fresh := Record{Key: key, State: StateClosed}
	r, err := s.readRecord(path)
	switch {
	case err == nil:
		return r, nil
	case errors.Is(err, fs.ErrNotExist):
		return fresh, nil
	}
	if s.Warn != nil {
		s.Warn(&CorruptStateError{Path: path, Err: err})
	}
	// Replace it now (the caller holds the lock), so the warning is given
	// once even if this update changes nothing.
	if werr := writeRecord(path, fresh); werr != nil {
		return fresh, werr
	}
	return fresh, nil
}

func writeRecord(path string, r Record) error {
	data, err := json.Marshal(r)
	if err != nil {
		return err
	}
	return writeFileAtomic(path, append(data, '\n'))
}

// writeFileAtomic replaces path with data through a temporary file (mode
// 0600) in the same directory and a rename, so readers see the old or the
// new content, never a mix. It does not fsync.
func writeFileAtomic(path string, data []byte) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), ".tmp-*")
	if err != nil {
		return err
	}
	_, werr := tmp.Write(data)
	cerr := tmp.Close()
	if werr == nil {
		werr = cerr
	}
	if werr == nil {
		werr = os.Rename(tmp.Name(), path)
	}
	if werr != nil {
		os.Remove(tmp.Name())
	}
	return werr
}

// String names the store in messages: its state dir.
func (s *FileStore) String() string { return "the local state dir " + s.Dir }

// stateFiles returns the paths of the state files in Dir. A Dir that does
// not exist yet has none; one that is not a directory or cannot be read is
// an error.
func (s *FileStore) stateFiles() ([]string, error) {
	entries, err := os.ReadDir(s.Dir)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return nil, nil
	case err != nil:
		return nil, s.dirError(err)
	}
	var out []string
	for _, e := range entries {
		if name := e.Name(); strings.HasSuffix(name, ".json") {
			out = append(out, filepath.Join(s.Dir, name))
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
	for _, m := range paths {
		r, err := s.readRecord(m)
		if err != nil {
			if s.Warn != nil {
				s.Warn(&CorruptStateError{Path: m, Err: err, Listed: true})
			}
			continue
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
	unlock, err := s.gates.lock(ctx, base+".lock")
	if err != nil {
		return false, err
	}
	defer unlock()
	err = os.Remove(base + ".json")
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
