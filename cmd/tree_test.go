package cmd

import (
	"context"
	"strings"
	"testing"
)

// TestOneCommandTreeReadsAsTheWholeTree: Run builds only the command its
// first argument names (treeFor). What that command prints, for help and
// for every kind of usage error, and its exit code, must be what the
// whole tree gives. (Every case ends before a request.)
func TestOneCommandTreeReadsAsTheWholeTree(t *testing.T) {
	for _, s := range subcommands() {
		for _, args := range [][]string{
			{s.name, "--help"},
			{s.name, "-h"},
			{s.name, "--no-such-flag"},
			{s.name, "--json", "--no-such-flag"},
			{s.name, "--retries", "many", "http://127.0.0.1:1/"},
		} {
			fOne, outOne, errOne := testFactory(nil)
			fAll, outAll, errAll := testFactory(nil)
			one := runTree(context.Background(), fOne, newCmdRoot(fOne, treeFor(args)), args)
			all := runTree(context.Background(), fAll, NewCmdRoot(fAll), args)
			if one != all || outOne.String() != outAll.String() || errOne.String() != errAll.String() {
				t.Errorf("%q: one command's tree gives %d, %q, %q; the whole tree %d, %q, %q",
					args, one, outOne, errOne, all, outAll, errAll)
			}
		}
	}
	if got := treeFor([]string{"fetch", "URL"}); got != "fetch" {
		t.Errorf("treeFor(fetch URL) = %q, want fetch alone", got)
	}
	for _, args := range [][]string{nil, {"completion", "bash"}, {"-q", "fetch"}, {"help", "fetch"}, {"fetc"}} {
		if got := treeFor(args); got != "" {
			t.Errorf("treeFor(%q) = %q, want the whole tree", args, got)
		}
	}
}

// TestTreesBuiltAtOnce: command trees built and run at the same time (as
// parallel tests or a program embedding refetch would) share nothing
// they write; go test -race fails this test otherwise.
func TestTreesBuiltAtOnce(t *testing.T) {
	done := make(chan string, 4)
	for range 4 {
		go func() {
			f, out, _ := testFactory(nil)
			Run(context.Background(), f, []string{"--version"})
			done <- out.String()
		}()
	}
	for range 4 {
		if got := <-done; !strings.HasPrefix(got, "refetch ") {
			t.Errorf("--version printed %q", got)
		}
	}
}
