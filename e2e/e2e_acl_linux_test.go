package e2e

import (
	"bytes"
	bin "encoding/binary"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"

	"golang.org/x/sys/unix"
)

// aclXattr is a POSIX ACL as the kernel stores it in
// system.posix_acl_access: the owner rw, user 65534 rw, the owning group
// nothing, mask rw, others nothing (what setfacl -m g::---,u:65534:rw
// gives a 0660 file).
func aclXattr() []byte {
	var b bytes.Buffer
	le := bin.LittleEndian
	bin.Write(&b, le, uint32(2)) // version
	for _, e := range []struct {
		tag, perm uint16
		id        uint32
	}{{0x01, 6, 0xffffffff}, {0x02, 6, 65534}, {0x04, 0, 0xffffffff}, {0x10, 6, 0xffffffff}, {0x20, 0, 0xffffffff}} {
		bin.Write(&b, le, e.tag)
		bin.Write(&b, le, e.perm)
		bin.Write(&b, le, e.id)
	}
	return b.Bytes()
}

// TestE2EReplacedFileKeepsACL: a file replaced by -o, or by a batch, keeps
// its POSIX ACL and user.* attributes. A rename makes a new file: without
// them, the mode's group bits (the ACL's mask, rw here) would let the
// owning group in, which the ACL refused (a tour found it).
func TestE2EReplacedFileKeepsACL(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("new")) }))
	defer srv.Close()
	e := newEnv(t)
	acl := aclXattr()
	prepare := func(path string) {
		if err := os.WriteFile(path, []byte("old"), 0o660); err != nil {
			t.Fatal(err)
		}
		if err := unix.Setxattr(path, "system.posix_acl_access", acl, 0); err != nil {
			if errors.Is(err, unix.ENOTSUP) || errors.Is(err, unix.EOPNOTSUPP) {
				t.Skipf("no ACLs in %s: %v", filepath.Dir(path), err)
			}
			t.Fatal(err)
		}
		if err := unix.Setxattr(path, "user.origin", []byte("kept"), 0); err != nil && !errors.Is(err, unix.ENOTSUP) {
			t.Fatal(err)
		}
	}
	os.Mkdir(filepath.Join(e.dir, "b"), 0o755)
	single, inBatch := filepath.Join(e.dir, "single"), filepath.Join(e.dir, "b", "x")
	prepare(single)
	prepare(inBatch)
	e.run("fetch", "-o", single, srv.URL+"/x").wantCode(t, 0)
	e.run("fetch", "-q", "-o", filepath.Join(e.dir, "b", "{name}"), srv.URL+"/x", srv.URL+"/y").wantCode(t, 0)
	for _, path := range []string{single, inBatch} {
		if got := readText(t, path); got != "new" {
			t.Errorf("%s holds %q", path, got)
		}
		buf := make([]byte, 256)
		n, err := unix.Getxattr(path, "system.posix_acl_access", buf)
		if err != nil || !bytes.Equal(buf[:n], acl) {
			t.Errorf("%s: the ACL is %x (%v), want %x", path, buf[:max(n, 0)], err, acl)
		}
		if n, err := unix.Getxattr(path, "user.origin", buf); err == nil && string(buf[:n]) != "kept" {
			t.Errorf("%s: user.origin is %q", path, buf[:n])
		} else if errors.Is(err, unix.ENODATA) {
			t.Errorf("%s: user.origin was dropped", path)
		}
		st, _ := os.Stat(path)
		if st.Mode().Perm() != 0o660 {
			t.Errorf("%s: mode %v, want 0660", path, st.Mode().Perm())
		}
	}
}
