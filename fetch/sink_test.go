package fetch

import (
	"context"
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// symlink makes a symlink or skips the test where the system refuses
// (Windows without the privilege).
func symlink(t *testing.T, target, link string) {
	t.Helper()
	if err := os.Symlink(target, link); err != nil {
		t.Skipf("cannot make symlinks here: %v", err)
	}
}

// commitBody runs one Begin, write, Commit on a new FileSink for path.
func commitBody(t *testing.T, path, body string) error {
	t.Helper()
	s, err := NewFileSink(t.Context(), path)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	w, err := s.Begin()
	if err != nil {
		t.Fatal(err)
	}
	io.WriteString(w, body)
	return s.Commit()
}

func readFile(t *testing.T, path string) string {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(data)
}

func permOf(t *testing.T, path string) fs.FileMode {
	t.Helper()
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return st.Mode().Perm()
}

func wantLink(t *testing.T, link, target string) {
	t.Helper()
	st, err := os.Lstat(link)
	if err != nil || st.Mode()&fs.ModeSymlink == 0 {
		t.Fatalf("%s is no longer a symlink: %v %v", link, st, err)
	}
	if got, _ := os.Readlink(link); got != target {
		t.Errorf("%s points to %q, want %q", link, got, target)
	}
}

func wantNoTemp(t *testing.T, dirs ...string) {
	t.Helper()
	for _, dir := range dirs {
		entries, _ := os.ReadDir(dir)
		for _, e := range entries {
			if strings.Contains(e.Name(), ".refetch-") {
				t.Errorf("temp file left in %s: %s", dir, e.Name())
			}
		}
	}
}

// A chain of symlinks: the final target is replaced (keeping its mode), the
// links stay links pointing where they did, and an aborted body changes
// nothing.
func TestFileSinkSymlinkChain(t *testing.T) {
	dir, other := t.TempDir(), t.TempDir()
	target := filepath.Join(other, "data.json")
	os.WriteFile(target, []byte("old"), 0o640)
	symlink(t, target, filepath.Join(dir, "hop"))
	symlink(t, "hop", filepath.Join(dir, "out"))
	path := filepath.Join(dir, "out")

	s, err := NewFileSink(t.Context(), path)
	if err != nil {
		t.Fatal(err)
	}
	w, _ := s.Begin()
	io.WriteString(w, "partial")
	s.Close()
	if got := readFile(t, target); got != "old" {
		t.Fatalf("aborted body changed the target: %q", got)
	}
	wantNoTemp(t, dir, other)

	if err := commitBody(t, path, "new"); err != nil {
		t.Fatal(err)
	}
	if got := readFile(t, target); got != "new" {
		t.Errorf("target = %q, want the body", got)
	}
	if perm := permOf(t, target); perm != 0o640 {
		t.Errorf("target mode = %v, want 0640 kept", perm)
	}
	wantLink(t, path, "hop")
	wantLink(t, filepath.Join(dir, "hop"), target)
	wantNoTemp(t, dir, other)
}

// A relative link target is read from the link's real directory, as the
// kernel does: through a symlinked directory, "../x" is not lexical.
func TestFileSinkRelativeLinkInLinkedDir(t *testing.T) {
	base := t.TempDir()
	os.MkdirAll(filepath.Join(base, "a", "b"), 0o755)
	symlink(t, filepath.Join("a", "b"), filepath.Join(base, "lb"))
	symlink(t, filepath.Join("..", "target"), filepath.Join(base, "a", "b", "out"))
	if err := commitBody(t, filepath.Join(base, "lb", "out"), "body"); err != nil {
		t.Fatal(err)
	}
	if got := readFile(t, filepath.Join(base, "a", "target")); got != "body" {
		t.Errorf("a/target = %q", got)
	}
	if _, err := os.Lstat(filepath.Join(base, "target")); err == nil {
		t.Error("the link was resolved lexically: base/target created")
	}
	wantLink(t, filepath.Join(base, "a", "b", "out"), filepath.Join("..", "target"))
}

// A dangling symlink: its target is created with 0644; a target in a
// missing directory is an error before anything is written.
func TestFileSinkDanglingSymlink(t *testing.T) {
	dir := t.TempDir()
	symlink(t, "made.txt", filepath.Join(dir, "out"))
	if err := commitBody(t, filepath.Join(dir, "out"), "body"); err != nil {
		t.Fatal(err)
	}
	if got := readFile(t, filepath.Join(dir, "made.txt")); got != "body" {
		t.Errorf("made.txt = %q", got)
	}
	if perm := permOf(t, filepath.Join(dir, "made.txt")); perm != 0o644 {
		t.Errorf("new target mode = %v, want 0644", perm)
	}
	wantLink(t, filepath.Join(dir, "out"), "made.txt")

	symlink(t, filepath.Join("nodir", "x"), filepath.Join(dir, "bad"))
	if _, err := NewFileSink(t.Context(), filepath.Join(dir, "bad")); err == nil || !strings.Contains(err.Error(), "cannot write in") {
		t.Errorf("link into a missing directory: %v", err)
	}
}

func TestFileSinkSymlinkLoop(t *testing.T) {
	dir := t.TempDir()
	symlink(t, "b", filepath.Join(dir, "a"))
	symlink(t, "a", filepath.Join(dir, "b"))
	_, err := NewFileSink(t.Context(), filepath.Join(dir, "a"))
	if err == nil || !strings.Contains(err.Error(), "too many levels of symbolic links") {
		t.Errorf("loop: %v", err)
	}
}

func TestFileSinkDirectory(t *testing.T) {
	dir := t.TempDir()
	for _, p := range []string{dir, dir + string(filepath.Separator), filepath.Join(dir, ".")} {
		if _, err := NewFileSink(t.Context(), p); err == nil || !strings.Contains(err.Error(), "is a directory") {
			t.Errorf("-o %s: %v", p, err)
		}
	}
	sub := filepath.Join(dir, "sub")
	os.Mkdir(sub, 0o755)
	symlink(t, "sub", filepath.Join(dir, "link"))
	if _, err := NewFileSink(t.Context(), filepath.Join(dir, "link")); err == nil || !strings.Contains(err.Error(), "is a directory") {
		t.Errorf("-o link-to-directory: %v", err)
	}
}

// Only the body of the last Begin is committed (a retried attempt).
func TestFileSinkLastBeginWins(t *testing.T) {
	path := filepath.Join(t.TempDir(), "out")
	s, err := NewFileSink(t.Context(), path)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	w, _ := s.Begin()
	io.WriteString(w, "first attempt, cut short")
	w, _ = s.Begin()
	io.WriteString(w, "second")
	if err := s.Commit(); err != nil {
		t.Fatal(err)
	}
	if got := readFile(t, path); got != "second" {
		t.Errorf("file = %q", got)
	}
}

// writeInPlace keeps the inode, shrinks a longer old file to the body and
// creates a missing file with the given mode.
func TestWriteInPlace(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "f")
	os.WriteFile(path, []byte("a much longer old content"), 0o600)
	before, _ := os.Stat(path)
	if err := writeInPlace(path, strings.NewReader("new"), true, 0o644); err != nil {
		t.Fatal(err)
	}
	after, _ := os.Stat(path)
	if got := readFile(t, path); got != "new" {
		t.Errorf("file = %q", got)
	}
	if !os.SameFile(before, after) || after.Mode().Perm() != 0o600 {
		t.Errorf("in-place write replaced the file or its mode (%v)", after.Mode())
	}
	if err := writeInPlace(filepath.Join(dir, "missing"), strings.NewReader("x"), true, 0o644); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("an existing file that vanished was recreated: %v", err)
	}
}

func TestUnescapeMountinfo(t *testing.T) {
	for in, want := range map[string]string{
		`/mnt/plain`:         "/mnt/plain",
		`/mnt/a\040b`:        "/mnt/a b",
		`/mnt/tab\011nl\012`: "/mnt/tab\tnl\n",
		`/mnt/back\134slash`: `/mnt/back\slash`,
		`/mnt/short\04`:      `/mnt/short\04`,
		`/mnt/not\999`:       `/mnt/not\999`,
	} {
		if got := unescapeMountinfo(in); got != want {
			t.Errorf("unescapeMountinfo(%q) = %q, want %q", in, got, want)
		}
	}
}

// A name near the 255-byte limit still gets its temp file beside it.
func TestFileSinkLongName(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, strings.Repeat("é", 120)+".json") // 245 bytes
	if err := commitBody(t, path, "body"); err != nil {
		t.Fatal(err)
	}
	if got := readFile(t, path); got != "body" {
		t.Errorf("file = %q", got)
	}
	wantNoTemp(t, dir)
}

func TestFileSinkCommitAfterCloseFails(t *testing.T) {
	path := filepath.Join(t.TempDir(), "out")
	s, err := NewFileSink(context.Background(), path)
	if err != nil {
		t.Fatal(err)
	}
	s.Begin()
	s.Close()
	if err := s.Commit(); err == nil {
		t.Error("Commit after Close succeeded")
	}
	if _, err := os.Stat(path); err == nil {
		t.Error("Commit after Close created the file")
	}
}
