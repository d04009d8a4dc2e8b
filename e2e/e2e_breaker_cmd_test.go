package e2e

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// dirListing returns every name under dir, recursively, for comparing a
// dir before and after a command.
func dirListing(t *testing.T, dir string) string {
	t.Helper()
	var names []string
	err := filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		names = append(names, strings.TrimPrefix(p, dir))
		return nil
	})
	if os.IsNotExist(err) {
		return "(none)"
	}
	if err != nil {
		t.Fatal(err)
	}
	return strings.Join(names, " ")
}

// TestE2EBreakerResetNormalizesKeys: reset and status take KEY as given
// first, then normalized the way fetch derives keys; an unknown key
// changes nothing, creates no file and says so, with exit 0.
func TestE2EBreakerResetNormalizesKeys(t *testing.T) {
	t.Parallel()
	srv := downServer(t, nil)
	e := newEnv(t)
	stateDir := filepath.Join(e.dir, "state", "refetch")
	e.run(args("-n", "1", "--breaker-failures", "1", srv.URL)...).wantCode(t, 4)
	// A custom key that would normalize to something else.
	e.run(args("-n", "1", "--breaker-failures", "1", "--breaker-key", "HTTPS://Custom/Key", srv.URL)...).wantCode(t, 4)
	before := dirListing(t, stateDir)
	host := strings.TrimPrefix(srv.URL, "http://")

	for _, key := range []string{
		"https://" + host + "/a/path", // another scheme: another key
		"HTTPS://NEVER.example/x?y=1",
		"never.example",
		"a key never seen",
		"https://custom:443", // what HTTPS://Custom/Key would normalize to
	} {
		r := e.run("breaker", "reset", key)
		r.wantCode(t, 0)
		if !strings.Contains(r.stderr, "no breaker for "+key) || r.stdout != "" {
			t.Errorf("reset %q: stdout %q, stderr %q", key, r.stdout, r.stderr)
		}
		if strings.Contains(r.stderr, "closed") {
			t.Errorf("reset %q claims it closed something: %q", key, r.stderr)
		}
	}
	if after := dirListing(t, stateDir); after != before {
		t.Errorf("resets of unknown keys changed the state dir:\nbefore %s\nafter  %s", before, after)
	}

	// status normalizes the same way.
	for _, key := range []string{srv.URL, "HTTP://" + host + "/v1/items?x=1", host} {
		st := statusJSON(t, e, key)
		if len(st) != 1 || st[0]["key"] != srv.URL || st[0]["state"] != "open" {
			t.Errorf("status %q = %v", key, st)
		}
	}
	if st := statusJSON(t, e, "HTTPS://Custom/Key"); len(st) != 1 || st[0]["state"] != "open" {
		t.Errorf("status of the custom key = %v", st)
	}
	if st := statusJSON(t, e, "https://API.example.com/v1"); len(st) != 1 || st[0]["key"] != "https://api.example.com:443" || st[0]["state"] != "closed" {
		t.Errorf("status of an unknown URL = %v", st)
	}

	r := e.run("breaker", "reset", "HTTP://"+strings.ToUpper(host)+"/v1/items?x=1")
	r.wantCode(t, 0)
	if strings.TrimSpace(r.stderr) != "reset "+srv.URL+": closed" {
		t.Errorf("reset stderr = %q", r.stderr)
	}
	r = e.run("breaker", "reset", "HTTPS://Custom/Key")
	r.wantCode(t, 0)
	if strings.TrimSpace(r.stderr) != "reset HTTPS://Custom/Key: closed" {
		t.Errorf("reset of the custom key: %q", r.stderr)
	}
	if st := statusJSON(t, e); len(st) != 0 {
		t.Errorf("after both resets: %v", st)
	}
	// Resetting again is fine for scripts: exit 0.
	e.run("breaker", "reset", srv.URL).wantCode(t, 0)
	e.run("-q", "breaker", "reset", srv.URL).wantCode(t, 0)
}

func TestE2EBreakerHelpShowsKeyFormat(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	for _, sub := range []string{"reset", "status"} {
		r := e.run("breaker", sub, "--help")
		r.wantCode(t, 0)
		for _, want := range []string{"scheme://host:port", "https://api.example.com:443", "--breaker-key"} {
			if !strings.Contains(r.stdout, want) {
				t.Errorf("breaker %s --help lacks %q", sub, want)
			}
		}
	}
}

// TestE2EBreakerCommandsOnUnusableStateDir: status and reset on a state
// dir that is a file, lies under a file, or cannot be read say so and exit
// 1; a state dir that does not exist yet simply holds no breakers.
func TestE2EBreakerCommandsOnUnusableStateDir(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	file := filepath.Join(e.dir, "a-file")
	if err := os.WriteFile(file, []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, dir := range []string{file, filepath.Join(file, "state")} {
		for _, a := range [][]string{{"status"}, {"status", "--json"}, {"status", "k"}, {"reset", "--all"}, {"reset", "k"}} {
			r := e.run(append(append([]string{"breaker"}, a...), "--state-dir", dir)...)
			r.wantCode(t, 1)
			if !strings.Contains(r.stderr, "state dir "+dir) || !strings.Contains(r.stderr, "not a directory") || r.stdout != "" {
				t.Errorf("%v on %s: stdout %q stderr %q", a, dir, r.stdout, r.stderr)
			}
		}
	}
	missing := filepath.Join(e.dir, "not-yet")
	r := e.run("breaker", "status", "--state-dir", missing)
	r.wantCode(t, 0)
	if strings.TrimSpace(r.stdout) != "no breakers in "+missing {
		t.Errorf("status of a missing dir: %q", r.stdout)
	}
	r = e.with("REFETCH_STATE_DIR="+missing).run("breaker", "reset", "--all")
	r.wantCode(t, 0)
	if !strings.Contains(r.stderr, "reset 0 breakers") {
		t.Errorf("reset --all of a missing dir: %q", r.stderr)
	}
	e.run("breaker", "reset", "k", "--state-dir", missing).wantCode(t, 0)
	if _, err := os.Stat(missing); !os.IsNotExist(err) {
		t.Errorf("the commands created the missing state dir (%v)", err)
	}

	// Unreadable: as an unprivileged user (root reads everything, so drop
	// to nobody with setpriv when running as root).
	unreadable := filepath.Join(e.dir, "unreadable")
	if err := os.Mkdir(unreadable, 0o700); err != nil {
		t.Fatal(err)
	}
	run := func(a ...string) result { return e.run(a...) }
	if os.Getuid() == 0 {
		setpriv, err := exec.LookPath("setpriv")
		if err != nil {
			t.Skip("running as root without setpriv: cannot test an unreadable state dir")
		}
		// nobody must reach the binary and the dir's parent.
		pub, err := os.MkdirTemp("", "refetch-pub-*")
		if err != nil {
			t.Fatal(err)
		}
		defer os.RemoveAll(pub)
		os.Chmod(pub, 0o755)
		bin := filepath.Join(pub, "refetch")
		data, err := os.ReadFile(binary)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(bin, data, 0o755); err != nil {
			t.Fatal(err)
		}
		// Only the state dir itself is closed to nobody.
		os.Chmod(filepath.Dir(e.dir), 0o755)
		os.Chmod(e.dir, 0o755)
		run = func(a ...string) result {
			cmd := exec.Command(setpriv, append([]string{"--reuid", "65534", "--regid", "65534", "--clear-groups", bin}, a...)...)
			cmd.Env = e.vars
			cmd.Dir = pub
			var out, errOut strings.Builder
			cmd.Stdout, cmd.Stderr = &out, &errOut
			err := cmd.Run()
			code := 0
			if ee, ok := err.(*exec.ExitError); ok {
				code = ee.ExitCode()
			} else if err != nil {
				t.Fatal(err)
			}
			return result{stdout: out.String(), stderr: errOut.String(), code: code}
		}
	} else {
		os.Chmod(unreadable, 0)
		defer os.Chmod(unreadable, 0o700)
	}
	for _, a := range [][]string{{"status"}, {"reset", "--all"}, {"reset", "k"}} {
		r := run(append(append([]string{"breaker"}, a...), "--state-dir", unreadable)...)
		r.wantCode(t, 1)
		if !strings.Contains(r.stderr, "state dir "+unreadable) || !strings.Contains(r.stderr, "permission denied") {
			t.Errorf("%v on an unreadable dir: stdout %q stderr %q", a, r.stdout, r.stderr)
		}
	}
}
