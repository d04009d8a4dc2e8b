//go:build !linux

package fetch

import (
	"io"
	"os"
	"runtime"
)

// createSpill makes the temporary file a large buffered body spills to, in
// os.TempDir(). Where an open file may lose its name (Unix), the name is
// removed at once, so nothing is left behind even if the process is
// killed; elsewhere (Windows) the name is returned, for Close to remove.
func createSpill() (*os.File, string, error) {
	var f *os.File
	var err, first error
	for _, dir := range spillDirs() {
		if f, err = os.CreateTemp(dir, "refetch-body-*"); err == nil {
			break
		}
		if first == nil {
			first = err
		}
	}
	if f == nil {
		return nil, "", spillError(first)
	}
	if runtime.GOOS == "windows" {
		return f, f.Name(), nil
	}
	if err := os.Remove(f.Name()); err != nil {
		f.Close()
		return nil, "", err
	}
	return f, "", nil
}

// copySpill copies n bytes of src (the spill file, at its start) to dst:
// io.Copy, with whatever zero-copy path Go's runtime has here.
func copySpill(dst io.Writer, src *os.File, n int64) (int64, error) {
	return io.Copy(dst, src)
}

// startWritebackAt returns f: only Linux has sync_file_range(2).
func startWritebackAt(f *os.File, _ int64) io.Writer { return f }
