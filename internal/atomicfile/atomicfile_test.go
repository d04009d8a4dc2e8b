package atomicfile

import (
	"io"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"
)

// modes runs f with unnamed files (where the system has them) and with
// the named fallback.
func modes(t *testing.T, f func(t *testing.T, named bool)) {
	for _, named := range []bool{false, true} {
		t.Run(map[bool]string{false: "unnamed", true: "named"}[named], func(t *testing.T) {
			SetUnnamed(!named)
			t.Cleanup(func() { SetUnnamed(true) })
			f(t, named)
		})
	}
}

func entries(t *testing.T, dir string) []string {
	t.Helper()
	es, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range es {
		names = append(names, e.Name())
	}
	return names
}

func TestWriteFileReplacesAtomically(t *testing.T) {
	modes(t, func(t *testing.T, named bool) {
		dir := t.TempDir()
		path := filepath.Join(dir, "data.json")
		if err := os.WriteFile(path, []byte("old"), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := WriteFile(path, []byte("new"), 0o640, true); err != nil {
			t.Fatal(err)
		}
		got, _ := os.ReadFile(path)
		st, _ := os.Stat(path)
		if string(got) != "new" || st.Mode().Perm() != 0o640 {
			t.Errorf("content %q mode %v", got, st.Mode().Perm())
		}
		if es := entries(t, dir); len(es) != 1 {
			t.Errorf("directory holds %v", es)
		}
	})
}

// Until Commit the target is untouched; an uncommitted file leaves
// nothing once closed; with unnamed files, nothing is in the directory
// even while the file is being written.
func TestCreateLeavesNothingUntilCommit(t *testing.T) {
	modes(t, func(t *testing.T, named bool) {
		dir := t.TempDir()
		path := filepath.Join(dir, "out")
		os.WriteFile(path, []byte("old"), 0o644)
		f, err := Create(dir, "out")
		if err != nil {
			t.Fatal(err)
		}
		f.Write([]byte("partial"))
		es := entries(t, dir)
		wantNamed := named || runtime.GOOS != "linux"
		if f.Named() != wantNamed || len(es) != map[bool]int{false: 1, true: 2}[wantNamed] {
			t.Errorf("named %v, entries while writing: %v", f.Named(), es)
		}
		if wantNamed {
			for _, e := range es {
				if e != "out" && !ownName().MatchString(e) {
					t.Errorf("temporary name %q is not one Clean knows", e)
				}
			}
		}
		if err := f.Close(); err != nil {
			t.Fatal(err)
		}
		if got, _ := os.ReadFile(path); string(got) != "old" {
			t.Errorf("target changed: %q", got)
		}
		if es := entries(t, dir); len(es) != 1 {
			t.Errorf("left behind: %v", es)
		}
	})
}

// After Commit the content can still be read from the file (a caller's
// fallback when the rename is refused), and Close leaves the target.
func TestCommitKeepsFileReadable(t *testing.T) {
	modes(t, func(t *testing.T, named bool) {
		dir := t.TempDir()
		f, err := Create(dir, "x")
		if err != nil {
			t.Fatal(err)
		}
		f.Write([]byte("body"))
		if err := f.Commit(filepath.Join(dir, "x"), false); err != nil {
			t.Fatal(err)
		}
		f.Seek(0, io.SeekStart)
		if b, _ := io.ReadAll(f); string(b) != "body" {
			t.Errorf("read back %q", b)
		}
		if err := f.Close(); err != nil {
			t.Fatal(err)
		}
		if got, _ := os.ReadFile(filepath.Join(dir, "x")); string(got) != "body" {
			t.Errorf("target %q", got)
		}
		if err := f.Commit(filepath.Join(dir, "y"), false); err == nil {
			t.Errorf("a second Commit succeeded")
		}
		if es := entries(t, dir); len(es) != 1 {
			t.Errorf("left behind: %v", es)
		}
	})
}

// A refused rename (the target is a directory) leaves the target and no
// temporary file once closed.
func TestCommitRefusedLeavesNothing(t *testing.T) {
	modes(t, func(t *testing.T, named bool) {
		dir := t.TempDir()
		os.Mkdir(filepath.Join(dir, "d"), 0o755)
		os.WriteFile(filepath.Join(dir, "d", "keep"), nil, 0o644)
		f, err := Create(dir, "d")
		if err != nil {
			t.Fatal(err)
		}
		f.Write([]byte("body"))
		if err := f.Commit(filepath.Join(dir, "d"), true); err == nil {
			t.Fatal("renamed over a directory")
		}
		f.Close()
		if es := entries(t, dir); len(es) != 1 || es[0] != "d" {
			t.Errorf("entries %v", es)
		}
	})
}

// Clean removes refetch's files whose owner is gone, or that have not
// been written for MaxAge, and nothing else.
func TestCleanRemovesOnlyLeftovers(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("no process check on Windows; MaxAge is tested below")
	}
	dir := t.TempDir()
	now := time.Now()
	gone := goneProcess(t)
	me := os.Getpid()
	tok := hostToken()
	files := map[string]bool{ // name → removed
		".a.refetch-" + tok + "-" + strconv.Itoa(gone) + "-0123abcd": true,  // owner gone
		".b.refetch-" + tok + "-" + strconv.Itoa(me) + "-0123abcd":   false, // owner alive (this process)
		".c.refetch-" + tok + "-1-0123abcd":                          false, // owner alive (init)
		".d.refetch-00000000-" + strconv.Itoa(gone) + "-0123abcd":    false, // another machine's: age decides
		".e.refetch-12345": false, // an older refetch's, recent
		"f.refetch-" + tok + "-" + strconv.Itoa(gone) + "-0123abcd":  false, // not hidden: not ours
		".g.refetch-" + tok + "-" + strconv.Itoa(gone) + "-0123abcz": false, // not our pattern
		".h.txt": false,
	}
	old := map[string]bool{ // not written for more than MaxAge
		".i.refetch-00000000-" + strconv.Itoa(me) + "-0123abcd": true,
		".j.refetch-987654": true,
		".refetch-probe-42": true,
		"notes.txt":         false,
	}
	for name := range files {
		os.WriteFile(filepath.Join(dir, name), nil, 0o600)
	}
	for name, removed := range old {
		p := filepath.Join(dir, name)
		os.WriteFile(p, nil, 0o600)
		os.Chtimes(p, now.Add(-MaxAge-time.Minute), now.Add(-MaxAge-time.Minute))
		files[name] = removed
	}
	// A directory and a symlink with our names are never touched.
	os.Mkdir(filepath.Join(dir, ".k.refetch-123"), 0o755)
	os.Symlink("/nonexistent", filepath.Join(dir, ".l.refetch-"+tok+"-"+strconv.Itoa(gone)+"-0123abcd"))
	cleanDir(dir, now)
	for name, removed := range files {
		_, err := os.Lstat(filepath.Join(dir, name))
		if removed != os.IsNotExist(err) {
			t.Errorf("%s: removed %v, want %v", name, os.IsNotExist(err), removed)
		}
	}
	for _, name := range []string{".k.refetch-123", ".l.refetch-" + tok + "-" + strconv.Itoa(gone) + "-0123abcd"} {
		if _, err := os.Lstat(filepath.Join(dir, name)); err != nil {
			t.Errorf("%s removed", name)
		}
	}
}

// Create cleans a directory once per process: a leftover that appears
// later is left to the next process.
func TestCreateCleansOncePerDirectory(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("no process check on Windows")
	}
	dir := t.TempDir()
	left := func() string {
		name := filepath.Join(dir, ".x.refetch-"+hostToken()+"-"+strconv.Itoa(goneProcess(t))+"-0123abcd")
		os.WriteFile(name, []byte("partial"), 0o600)
		return name
	}
	first := left()
	if err := WriteFile(filepath.Join(dir, "x"), []byte("1"), 0o644, false); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(first); !os.IsNotExist(err) {
		t.Errorf("leftover kept: %v", err)
	}
	second := left()
	WriteFile(filepath.Join(dir, "x"), []byte("2"), 0o644, false)
	if _, err := os.Stat(second); err != nil {
		t.Errorf("cleaned twice in one process: %v", err)
	}
}

// goneProcess returns the PID of a process that has exited and been
// reaped.
func goneProcess(t *testing.T) int {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	p, err := os.StartProcess(exe, []string{exe, "-test.run=^$"}, &os.ProcAttr{})
	if err != nil {
		t.Fatal(err)
	}
	p.Wait()
	return p.Pid
}

func TestTempNameBounded(t *testing.T) {
	name := tempName(strings.Repeat("é", 200))
	if len(name) > 255 || !ownName().MatchString(name) {
		t.Errorf("tempName: %d bytes, %q", len(name), name)
	}
}
