package resilience

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"github.com/refetch/refetch/internal/atomicfile"
	"github.com/refetch/refetch/internal/regularfile"
)

// DefaultStaleMaxBytes is the largest body the stale cache keeps (32 MiB):
// a stale copy is a stop-gap for API answers and small files, not a mirror.
const DefaultStaleMaxBytes = 32 << 20

// staleMagic starts every cache entry, so a foreign file is never served.
const staleMagic = "refetch-stale 1\n"

// StaleEntry is one cached response.
type StaleEntry struct {
	SavedAt     time.Time `json:"saved_at"`
	Status      int       `json:"status"`
	ContentType string    `json:"content_type"`
	Size        int       `json:"size"`
	SHA256      string    `json:"sha256"`
	Body        []byte    `json:"-"`
}

// StaleCache keeps the last successful body per StaleKey, one file per
// entry named by a hash of the key, mode 0600 in a 0700 directory.
type StaleCache struct {
	dir      string
	maxBytes int64
}

// StaleKey names a cached response. Identity separates callers that may
// see different answers for the same URL (credentials, cookies): it is
// part of the hashed file name and never stored, so a body cached for one
// identity is never served to another.
type StaleKey struct {
	Method   string
	URL      string
	Identity string
}

// NewStaleCache returns a cache in dir that keeps bodies of up to
// maxBytes, which must be positive.
func NewStaleCache(dir string, maxBytes int64) (*StaleCache, error) {
	if maxBytes <= 0 {
		return nil, fmt.Errorf("stale cache bound must be positive, not %d", maxBytes)
	}
	return &StaleCache{dir: dir, maxBytes: maxBytes}, nil
}

// MaxBytes is the largest body the cache keeps.
func (c *StaleCache) MaxBytes() int64 { return c.maxBytes }

func (c *StaleCache) path(k StaleKey) string {
	h := sha256.New()
	// NUL separators: no two different keys hash the same input.
	fmt.Fprintf(h, "%s\x00%s\x00%s", k.Method, k.URL, k.Identity)
	return filepath.Join(c.dir, hex.EncodeToString(h.Sum(nil)[:16])+".stale")
}

// EncodeStale serializes an entry: a magic line, a JSON header line, then
// the raw body.
func EncodeStale(e *StaleEntry) []byte {
	sum := sha256.Sum256(e.Body)
	h := *e
	h.Size, h.SHA256 = len(e.Body), hex.EncodeToString(sum[:])
	meta, _ := json.Marshal(h)
	out := make([]byte, 0, len(staleMagic)+len(meta)+1+len(e.Body))
	out = append(out, staleMagic...)
	out = append(out, meta...)
	out = append(out, '\n')
	return append(out, e.Body...)
}

// DecodeStale parses what EncodeStale wrote, checking size and checksum.
func DecodeStale(data []byte) (*StaleEntry, error) {
	rest, ok := bytes.CutPrefix(data, []byte(staleMagic))
	if !ok {
		return nil, errors.New("not a refetch stale entry")
	}
	meta, body, ok := bytes.Cut(rest, []byte{'\n'})
	if !ok {
		return nil, errors.New("truncated header")
	}
	var e StaleEntry
	if err := json.Unmarshal(meta, &e); err != nil {
		return nil, fmt.Errorf("header: %v", err)
	}
	if e.Size != len(body) {
		return nil, fmt.Errorf("body is %d bytes, header says %d", len(body), e.Size)
	}
	sum := sha256.Sum256(body)
	if hex.EncodeToString(sum[:]) != e.SHA256 {
		return nil, errors.New("checksum mismatch")
	}
	if e.SavedAt.IsZero() {
		return nil, errors.New("no saved_at")
	}
	e.Body = body
	return &e, nil
}

// Save stores body as the latest good response of k. Bodies over
// MaxBytes are not cached, and an older entry is removed, so it is not
// served in place of the newer, larger answer.
func (c *StaleCache) Save(k StaleKey, status int, contentType string, body []byte, now time.Time) error {
	path := c.path(k)
	if int64(len(body)) > c.maxBytes {
		os.Remove(path)
		return fmt.Errorf("%d bytes is over the stale cache bound of %d", len(body), c.maxBytes)
	}
	if err := os.MkdirAll(c.dir, 0o700); err != nil {
		return err
	}
	data := EncodeStale(&StaleEntry{SavedAt: now.UTC(), Status: status, ContentType: contentType, Body: body})
	return atomicfile.WriteFile(path, data, 0o600, false)
}

// Forget removes the entry of k, if any.
func (c *StaleCache) Forget(k StaleKey) {
	os.Remove(c.path(k))
}

// Load returns the entry of k if it is no older than maxAge (0: any age),
// with its age. A missing or too old entry is (nil, age, nil); an entry
// that cannot be read or is corrupt is an error, and is not served.
func (c *StaleCache) Load(k StaleKey, maxAge time.Duration, now time.Time) (*StaleEntry, time.Duration, error) {
	path := c.path(k)
	data, err := regularfile.Read(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, 0, nil
	}
	if err != nil {
		return nil, 0, fmt.Errorf("stale copy unreadable: %w", err)
	}
	e, err := DecodeStale(data)
	if err != nil {
		return nil, 0, fmt.Errorf("stale copy %s is corrupt: %w", path, err)
	}
	age := max(now.Sub(e.SavedAt), 0)
	if maxAge > 0 && age > maxAge {
		return nil, age, nil
	}
	return e, age, nil
}
