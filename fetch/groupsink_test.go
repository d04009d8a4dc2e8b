package fetch

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

// writeSink writes body through a fresh sink of path, as a run would, and
// seals it.
func writeSink(t *testing.T, path, body string) *GroupFileSink {
	t.Helper()
	s := NewGroupFileSink(path)
	w, err := s.Begin()
	if err != nil {
		t.Fatal(err)
	}
	fmt.Fprint(w, "a first attempt, cut short")
	if w, err = s.Begin(); err != nil {
		t.Fatal(err)
	}
	fmt.Fprint(w, body)
	if err := s.Commit(); err != nil {
		t.Fatal(err)
	}
	return s
}

func tempFiles(t *testing.T, dir string) []string {
	t.Helper()
	entries, _ := os.ReadDir(dir)
	var tmp []string
	for _, e := range entries {
		if strings.Contains(e.Name(), ".refetch-") {
			tmp = append(tmp, e.Name())
		}
	}
	return tmp
}

// TestCommitterInstallsEveryFile: files submitted from several goroutines
// end up in place with their bodies and modes, each done called once with
// nil, and nothing visible before.
func TestCommitterInstallsEveryFile(t *testing.T) {
	dir := t.TempDir()
	kept := filepath.Join(dir, "kept")
	os.WriteFile(kept, []byte("old"), 0o600)
	c := NewCommitter(context.Background())
	var (
		mu     sync.Mutex
		done   = map[string]int{}
		bodies = map[string]string{}
		wg     sync.WaitGroup
	)
	const n = 300
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			path := filepath.Join(dir, fmt.Sprintf("f%d", i))
			if i == 0 {
				path = kept
			}
			body := "body " + path
			if i%3 == 0 {
				body += strings.Repeat("x", SmallBody) // spilled to its temp file
			}
			s := writeSink(t, path, body)
			if _, err := os.Stat(path); i != 0 && err == nil {
				t.Errorf("%s visible before it was submitted", path)
			}
			c.Submit(s, func(err error) {
				if err != nil {
					t.Errorf("%s: %v", path, err)
				}
				mu.Lock()
				done[path]++
				bodies[path] = body
				mu.Unlock()
			})
			s.Close() // after Submit, Close leaves the file to the committer
		}()
	}
	wg.Wait()
	c.Close()
	if len(done) != n {
		t.Fatalf("%d done calls, want %d", len(done), n)
	}
	for path, calls := range done {
		data, err := os.ReadFile(path)
		if err != nil || string(data) != bodies[path] || calls != 1 {
			t.Errorf("%s: %d bytes %v, done called %d times", path, len(data), err, calls)
		}
	}
	if st, _ := os.Stat(kept); st.Mode().Perm() != 0o600 {
		t.Errorf("replaced file's mode %v, want 0600 kept", st.Mode().Perm())
	}
	if st, _ := os.Stat(filepath.Join(dir, "f1")); st.Mode().Perm() != 0o644 {
		t.Errorf("new file's mode %v, want 0644", st.Mode().Perm())
	}
	if tmp := tempFiles(t, dir); len(tmp) != 0 {
		t.Errorf("temp files left: %v", tmp)
	}
}

// TestGroupFileSinkCloseRemovesItsTempFile: a body that is not submitted
// (the URL failed) leaves nothing, small or spilled, and an existing file
// is untouched.
func TestGroupFileSinkCloseRemovesItsTempFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "out")
	os.WriteFile(path, []byte("old"), 0o644)
	writeSink(t, path, "new").Close()
	big := writeSink(t, path, strings.Repeat("y", 2*SmallBody))
	if big.tmp == nil {
		t.Fatal("a large body is not in its temp file")
	}
	// An unnamed temp file (Linux) is in no directory listing.
	want := 0
	if big.tmp.Named() {
		want = 1
	}
	if tmp := tempFiles(t, dir); len(tmp) != want {
		t.Errorf("temp files while writing: %v, want %d", tmp, want)
	}
	big.Close()
	NewGroupFileSink(filepath.Join(dir, "never")).Close()
	if data, _ := os.ReadFile(path); string(data) != "old" {
		t.Errorf("out = %q", data)
	}
	if tmp := tempFiles(t, dir); len(tmp) != 0 {
		t.Errorf("temp files left: %v", tmp)
	}
}

// TestCommitterReportsAMissingDirectory: the file of a body that cannot be
// written (its directory went away) is an ErrOutput error naming it,
// whether the body was small (written by the committer) or not.
func TestCommitterReportsAMissingDirectory(t *testing.T) {
	dir := t.TempDir()
	missing := filepath.Join(dir, "missing", "x")
	s := NewGroupFileSink(missing)
	w, _ := s.Begin()
	if _, err := w.Write(make([]byte, 2*SmallBody)); err == nil || !strings.Contains(err.Error(), "cannot write in") {
		t.Errorf("spilling into a missing dir: %v", err)
	}
	s.Close()
	c := NewCommitter(context.Background())
	var got error
	c.Submit(writeSink(t, missing, "small"), func(err error) { got = err })
	c.Close()
	if !errors.Is(got, ErrOutput) || !strings.Contains(got.Error(), "cannot write in") {
		t.Errorf("small body into a missing dir: %v", got)
	}
}

// TestCommitterAfterCancelRemovesInsteadOfInstalling: once its context is
// done (a signal), submitted files are removed, not installed, and done
// gets the cause.
func TestCommitterAfterCancelRemovesInsteadOfInstalling(t *testing.T) {
	dir := t.TempDir()
	ctx, cancel := context.WithCancelCause(context.Background())
	stop := errors.New("interrupted")
	cancel(stop)
	c := NewCommitter(ctx)
	var got error
	c.Submit(writeSink(t, filepath.Join(dir, "out"), "body"), func(err error) { got = err })
	c.Close()
	if !errors.Is(got, stop) {
		t.Errorf("done(%v), want the cause", got)
	}
	if _, err := os.Stat(filepath.Join(dir, "out")); err == nil {
		t.Error("file installed after cancel")
	}
	if tmp := tempFiles(t, dir); len(tmp) != 0 {
		t.Errorf("temp files left: %v", tmp)
	}
}

// TestCommitterReportsAFileThatCannotBeMadeDurable: a file whose sync
// fails is not installed, its temp file is removed and done gets an
// ErrOutput error; the other files of the group are installed.
func TestCommitterReportsAFileThatCannotBeMadeDurable(t *testing.T) {
	dir := t.TempDir()
	c := NewCommitter(context.Background())
	bad := writeSink(t, filepath.Join(dir, "bad"), strings.Repeat("x", 2*SmallBody))
	bad.tmp.Close() // its descriptor is gone: no sync can succeed
	good := writeSink(t, filepath.Join(dir, "good"), "y")
	errs := map[string]error{}
	var mu sync.Mutex
	for _, s := range []*GroupFileSink{bad, good} {
		c.Submit(s, func(err error) {
			mu.Lock()
			errs[s.Path()] = err
			mu.Unlock()
		})
	}
	c.Close()
	if err := errs[bad.Path()]; !errors.Is(err, ErrOutput) {
		t.Errorf("bad: %v, want ErrOutput", err)
	}
	if err := errs[good.Path()]; err != nil {
		t.Errorf("good: %v", err)
	}
	if _, err := os.Stat(bad.Path()); err == nil {
		t.Error("a file that was not made durable was installed")
	}
	if data, _ := os.ReadFile(good.Path()); string(data) != "y" {
		t.Errorf("good = %q", data)
	}
	if tmp := tempFiles(t, dir); len(tmp) != 0 {
		t.Errorf("temp files left: %v", tmp)
	}
}
