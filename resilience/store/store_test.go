package store

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// listDir returns the names in dir ("" for a dir that does not exist).
func listDir(t *testing.T, dir string) string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if os.IsNotExist(err) {
		return ""
	}
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	return strings.Join(names, " ")
}

func TestFileStoreDeleteCreatesNothing(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "state")
	s := &FileStore{Dir: dir}
	if ok, err := s.Delete(context.Background(), "never seen"); ok || err != nil {
		t.Errorf("Delete in a missing dir = %v, %v", ok, err)
	}
	if listDir(t, dir) != "" {
		t.Errorf("Delete created %q", listDir(t, dir))
	}
	if err := addFailures(context.Background(), s, "k", 1); err != nil {
		t.Fatal(err)
	}
	before := listDir(t, dir)
	if ok, err := s.Delete(context.Background(), "never seen"); ok || err != nil {
		t.Errorf("Delete(never seen) = %v, %v", ok, err)
	}
	if after := listDir(t, dir); after != before {
		t.Errorf("Delete of a missing key changed the dir: %q -> %q", before, after)
	}
	if ok, err := s.Delete(context.Background(), "k"); !ok || err != nil {
		t.Errorf("Delete(k) = %v, %v", ok, err)
	}
	if ok, err := s.Delete(context.Background(), "k"); ok || err != nil {
		t.Errorf("second Delete(k) = %v, %v", ok, err)
	}
}

func TestFileStoreUnusableDirIsAnError(t *testing.T) {
	base := t.TempDir()
	file := filepath.Join(base, "a-file")
	if err := os.WriteFile(file, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	for name, dir := range map[string]string{"a file": file, "under a file": filepath.Join(file, "state")} {
		s := &FileStore{Dir: dir}
		if _, err := s.List(context.Background()); err == nil || !strings.Contains(err.Error(), "state dir "+dir) {
			t.Errorf("%s: List = %v, want an error naming the state dir", name, err)
		}
		if _, err := s.DeleteAll(context.Background()); err == nil {
			t.Errorf("%s: DeleteAll succeeded", name)
		}
		if _, err := s.Delete(context.Background(), "k"); err == nil {
			t.Errorf("%s: Delete succeeded", name)
		}
	}
	// A dir that does not exist yet simply holds nothing, and stays absent.
	missing := filepath.Join(base, "not-yet")
	s := &FileStore{Dir: missing}
	if recs, err := s.List(context.Background()); err != nil || len(recs) != 0 {
		t.Errorf("List of a missing dir = %v, %v", recs, err)
	}
	if n, err := s.DeleteAll(context.Background()); err != nil || n != 0 {
		t.Errorf("DeleteAll of a missing dir = %d, %v", n, err)
	}
	if _, err := os.Stat(missing); !os.IsNotExist(err) {
		t.Errorf("the missing dir was created (%v)", err)
	}
}
