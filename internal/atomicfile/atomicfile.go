// Package atomicfile replaces a file atomically with a temporary file
// that a crash cannot leave behind.
//
// Create makes the temporary file in the target's directory: on Linux an
// unnamed one (O_TMPFILE), which has no name until Commit links it in, so
// a process killed at any moment before Commit leaves nothing. Where the
// file system refuses O_TMPFILE (EOPNOTSUPP, EISDIR, EINVAL), and on
// other systems, it is a named file whose name says whose it is:
//
//	.BASE.refetch-TOKEN-PID-RANDOM
//
// TOKEN is 8 hex digits naming this machine and PID namespace, PID the
// process that made it. Create also cleans the directory, once per
// process, of such files left by earlier processes (see Clean). Commit
// makes the content durable (when asked) and renames it over the target,
// so readers see the old file or the new one, never a mix, and a failed
// write leaves the target as it was.
package atomicfile

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// MaxAge is how long a refetch temporary file may go unwritten before
// Clean removes it even though its owner cannot be shown to be gone (it
// was made on another machine or in another PID namespace sharing the
// directory, by an older refetch that did not record its owner, or its
// process ID has been reused): a day, far longer than any write stalls.
const MaxAge = 24 * time.Hour

// unnamedOff turns O_TMPFILE off (SetUnnamed).
var unnamedOff atomic.Bool

// SetUnnamed says whether Create may make unnamed files (default true).
// refetch turns it off with REFETCH_NO_TMPFILE=1, for a file system whose
// O_TMPFILE misbehaves, and tests use it to reach the named files of
// systems without one.
func SetUnnamed(on bool) { unnamedOff.Store(!on) }

// NewFileMode is the mode of a new file that a download makes: 0666 less
// the process's umask (0644 under the usual 022), as the shell, curl and
// wget make theirs. Files replaced keep their own mode instead.
var NewFileMode = sync.OnceValue(func() fs.FileMode { return 0o666 &^ umask() })

// File is a temporary file that will replace a path in its directory.
// It embeds the open *os.File: write, read, seek, Sync and Chmod it as
// any file. Close must always be called, after Commit too.
type File struct {
	*os.File
	dir       string
	base      string
	name      string // the named file's path; "" while unnamed
	committed bool
}

// Create makes a temporary file in dir to replace the file named base
// there (base only names the fallback file; it may be shortened). It is
// empty, mode 0600 (Chmod it before Commit).
func Create(dir, base string) (*File, error) {
	if dir == "" {
		dir = "."
	}
	Clean(dir)
	f := &File{dir: dir, base: base}
	if !unnamedOff.Load() {
		// Any refusal (EOPNOTSUPP, EISDIR, EINVAL: no O_TMPFILE here; a
		// sandbox's EPERM) leads to the named file, whose own error, if
		// it fails too, is the one that says why.
		if file, err := createUnnamed(dir, base); err == nil {
			f.File = file
			return f, nil
		}
	}
	file, name, err := createNamed(dir, base)
	if err != nil {
		return nil, err
	}
	f.File, f.name = file, name
	return f, nil
}

// Named reports whether f has a name in its directory (the fallback of a
// system or file system without unnamed files).
func (f *File) Named() bool { return f.name != "" }

// Commit makes f's content the file at target, which must be in f's
// directory (a rename cannot cross file systems): fsync first when sync
// is set, then an atomic rename over target. f stays open (to read the
// content again, should the caller have another way to install it when
// the rename is refused); Close it afterwards.
func (f *File) Commit(target string, sync bool) error {
	if f.committed {
		return errors.New("atomicfile: already committed")
	}
	if sync {
		if err := f.Sync(); err != nil {
			return err
		}
	}
	if f.name == "" {
		// An unnamed file linked at target itself, when nothing is
		// there, is as atomic as the rename (the name appears with the
		// whole content) and saves naming it first (two system calls of
		// each file of a batch). Anything at target (EEXIST) is replaced
		// by the rename of a named link; any other refusal is link's to
		// handle (it names the file, or copies it to a named one).
		if linkUnnamed(f.File, target) == nil {
			f.committed = true
			return nil
		}
		if err := f.link(); err != nil {
			return err
		}
	}
	if err := rename(f.name, target); err != nil {
		return err
	}
	f.committed = true
	return nil
}

// link gives an unnamed f a name beside its target, to rename from. The
// name is the fallback's, so a crash between the two steps leaves a file
// that Clean recognizes.
func (f *File) link() error {
	var err error
	for range 100 {
		name := filepath.Join(f.dir, tempName(f.base))
		if err = linkUnnamed(f.File, name); err == nil {
			f.name = name
			return nil
		}
		if !errors.Is(err, fs.ErrExist) {
			break
		}
	}
	// No way to name the file (no /proc, say): copy it to a named one.
	return f.copyToNamed(err)
}

// copyToNamed replaces an unnamed f's descriptor with a named copy.
func (f *File) copyToNamed(cause error) error {
	named, name, err := createNamed(f.dir, f.base)
	if err != nil {
		return fmt.Errorf("%v (naming the temporary file: %v)", err, cause)
	}
	if _, err = f.Seek(0, io.SeekStart); err == nil {
		_, err = io.Copy(named, f.File)
	}
	if err == nil {
		err = named.Sync()
	}
	if err == nil {
		if st, serr := f.Stat(); serr == nil {
			err = named.Chmod(st.Mode().Perm())
		}
	}
	if err == nil {
		err = copyAttrsFd(int(f.Fd()), int(named.Fd())) // an ACL KeepAttrs gave
	}
	if err != nil {
		named.Close()
		os.Remove(name)
		return err
	}
	f.File.Close()
	f.File, f.name = named, name
	return nil
}

// Close closes f and removes its name unless Commit used it.
func (f *File) Close() error {
	err := f.File.Close()
	if f.name != "" && !f.committed {
		if rerr := os.Remove(f.name); rerr != nil && !errors.Is(rerr, fs.ErrNotExist) && err == nil {
			err = rerr
		}
	}
	return err
}

// WriteFile writes data to path through a temporary file in its
// directory, with permissions perm, made durable first when sync is set,
// and renamed over path: a reader sees the old content or the new, and a
// crash leaves the old one and nothing else.
func WriteFile(path string, data []byte, perm fs.FileMode, sync bool) error {
	f, err := Create(filepath.Dir(path), filepath.Base(path))
	if err != nil {
		return err
	}
	defer f.Close()
	if _, err := f.Write(data); err != nil {
		return err
	}
	if err := f.Chmod(perm); err != nil {
		return err
	}
	return f.Commit(path, sync)
}

// createNamed makes the fallback's named file, exclusively.
func createNamed(dir, base string) (*os.File, string, error) {
	var err error
	for range 100 {
		name := filepath.Join(dir, tempName(base))
		var f *os.File
		f, err = os.OpenFile(name, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600)
		if err == nil {
			return f, name, nil
		}
		if !errors.Is(err, fs.ErrExist) {
			break
		}
	}
	return nil, "", err
}

// tempName is a fresh name for a temporary file replacing base:
// ".BASE.refetch-TOKEN-PID-RANDOM", base shortened so that the name
// stays within the 255 bytes file systems allow.
func tempName(base string) string {
	if len(base) > 100 {
		base = strings.ToValidUTF8(base[:100], "")
	}
	var r [4]byte
	rand.Read(r[:])
	return "." + base + ".refetch-" + hostToken() + "-" + strconv.Itoa(pid()) + "-" + hex.EncodeToString(r[:])
}

var (
	tokenOnce sync.Once
	token     string
	// pid is this process's ID, asked once (os.Getpid is a system call
	// each time).
	pid = sync.OnceValue(os.Getpid)
)

// hostToken names the machine and PID namespace this process runs in, so
// that Clean judges a PID only where it means this process's neighbours
// (a directory may be shared with a container or over NFS).
func hostToken() string {
	tokenOnce.Do(func() {
		h := sha256.Sum256([]byte(hostIdentity()))
		token = hex.EncodeToString(h[:4])
	})
	return token
}

func hostIdentity() string {
	name, _ := os.Hostname()
	ns, _ := os.Readlink("/proc/self/ns/pid")
	boot, _ := os.ReadFile("/proc/sys/kernel/random/boot_id")
	return name + "\x00" + ns + "\x00" + strings.TrimSpace(string(boot))
}

// ownName is a temporary file of this package; older refetch versions'
// (os.CreateTemp: a decimal number, no owner) match oldName. Compiled
// when first used: a package's variables are made at every start, and
// most runs never clean a directory.
var (
	ownName = sync.OnceValue(func() *regexp.Regexp {
		return regexp.MustCompile(`^\..*\.refetch-([0-9a-f]{8})-([0-9]+)-[0-9a-f]{8}$`)
	})
	oldName = sync.OnceValue(func() *regexp.Regexp {
		return regexp.MustCompile(`^(\..*\.refetch|\.refetch-probe)-[0-9]+$`)
	})
)

var cleaned sync.Map // dir → struct{}: Clean runs once per directory

// Clean removes, once per process for each directory, the temporary
// files earlier refetch processes left in dir when they were killed
// before they could remove them (only named files can be left; Linux's
// unnamed ones never are). A file is removed when it is a regular file of
// this user whose name is one of refetch's and either its owner process
// is gone (it was made on this machine, in this PID namespace, by a
// process that no longer exists) or it has not been written for MaxAge.
// Nothing else is touched, and failures are ignored: cleaning is a
// courtesy, never a reason for a write to fail.
func Clean(dir string) {
	// The directory as given first: filepath.Abs of a relative one costs
	// two stats (os.Getwd checks "." against $PWD), and a batch asks once
	// per file. refetch never changes its working directory, so a name
	// once cleaned stays the same directory.
	if _, done := cleaned.Load(dir); done {
		return
	}
	defer cleaned.Store(dir, struct{}{})
	abs, err := filepath.Abs(dir)
	if err != nil {
		abs = dir
	}
	if _, done := cleaned.LoadOrStore(abs, struct{}{}); done {
		return
	}
	cleanDir(dir, time.Now())
}

func cleanDir(dir string, now time.Time) {
	d, err := os.Open(dir)
	if err != nil {
		return
	}
	defer d.Close()
	for {
		names, err := d.Readdirnames(1024)
		for _, n := range names {
			if stale(dir, n, now) {
				os.Remove(filepath.Join(dir, n))
			}
		}
		if err != nil {
			return
		}
	}
}

// stale reports whether the entry name of dir is a refetch temporary
// file that Clean removes.
func stale(dir, name string, now time.Time) bool {
	m := ownName().FindStringSubmatch(name)
	if m == nil && !oldName().MatchString(name) {
		return false
	}
	st, err := os.Lstat(filepath.Join(dir, name))
	if err != nil || !st.Mode().IsRegular() || !ownedByMe(st) {
		return false
	}
	if now.Sub(st.ModTime()) > MaxAge {
		return true
	}
	if m == nil || m[1] != hostToken() {
		return false
	}
	pid, err := strconv.Atoi(m[2])
	return err == nil && pid != os.Getpid() && processGone(pid)
}
