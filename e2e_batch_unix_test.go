//go:build unix

package main_test

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// TestE2EBatchMemoryIsFlat: the input is streamed, so 20,000 URLs need no
// more than twice the memory (peak RSS, from the kernel's rusage) of 100.
func TestE2EBatchMemoryIsFlat(t *testing.T) {
	if testing.Short() {
		t.Skip("fetches 20,100 URLs")
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Write([]byte("ok"))
	}))
	defer srv.Close()
	e := newEnv(t)
	peak := func(n int) int64 {
		t.Helper()
		var list strings.Builder
		for i := 0; i < n; i++ {
			fmt.Fprintf(&list, "%s/item/%d\n", srv.URL, i)
		}
		name := fmt.Sprintf("urls-%d", n)
		writeFile(t, e.dir, name, []byte(list.String()))
		out, err := os.Create(filepath.Join(e.dir, name+".jsonl"))
		if err != nil {
			t.Fatal(err)
		}
		defer out.Close()
		cmd := e.command(args("-q", "--json", "-i", name)...)
		cmd.Stdout = out
		if err := cmd.Run(); err != nil {
			t.Fatalf("%d URLs: %v", n, err)
		}
		ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage)
		if !ok {
			t.Skip("no rusage on this system")
		}
		st, _ := out.Stat()
		if lines := strings.Count(readAll(t, out.Name()), "\n"); lines != n || st.Size() == 0 {
			t.Fatalf("%d URLs: %d report lines", n, lines)
		}
		return ru.Maxrss
	}
	small, large := peak(100), peak(20000)
	t.Logf("peak RSS: 100 URLs %d, 20,000 URLs %d (ratio %.2f)", small, large, float64(large)/float64(small))
	if large > 2*small {
		t.Errorf("peak RSS grew from %d with 100 URLs to %d with 20,000", small, large)
	}
}

func readAll(t *testing.T, path string) string {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(data)
}
