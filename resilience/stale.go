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

// StaleCache keeps the last successful body per method and URL, one file
// per entry named by a hash of both, mode 0600 in a 0700 directory.
type StaleCache struct {
	Dir string
	// MaxBytes bounds a cached body; zero means DefaultStaleMaxBytes.
	MaxBytes int64
	// Warn, if set, receives problems with entries that are ignored.
	Warn func(error)
}

// NewStaleCache returns a cache in dir with the default size bound.
func NewStaleCache(dir string) *StaleCache {
	return &StaleCache{Dir: dir, MaxBytes: DefaultStaleMaxBytes}
}

func (c *StaleCache) path(method, url string) string {
	sum := sha256.Sum256([]byte(method + " " + url))
	return filepath.Join(c.Dir, hex.EncodeToString(sum[:16])+".stale")
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

// Save stores body as the latest good response of method and url. Bodies
// over MaxBytes are not cached (and an older entry is removed, so it is not
// served in place of the newer, larger answer).
func (c *StaleCache) Save(method, url string, status int, contentType string, body []byte, now time.Time) error {
	limit := c.MaxBytes
	if limit <= 0 {
		limit = DefaultStaleMaxBytes
	}
	path := c.path(method, url)
	if int64(len(body)) > limit {
		os.Remove(path)
		return fmt.Errorf("%w: %d bytes is over the stale cache bound of %d", ErrTooLarge, len(body), limit)
	}
	if err := os.MkdirAll(c.Dir, 0o700); err != nil {
		return err
	}
	data := EncodeStale(&StaleEntry{SavedAt: now.UTC(), Status: status, ContentType: contentType, Body: body})
	return writeFileAtomic(path, data)
}

// Forget removes the entry of method and url, if any.
func (c *StaleCache) Forget(method, url string) {
	os.Remove(c.path(method, url))
}

// Load returns the entry of method and url if it is younger than maxAge,
// with its age. A missing or too old entry is (nil, 0, nil); a corrupt one
// is reported through Warn and ignored.
func (c *StaleCache) Load(method, url string, maxAge time.Duration, now time.Time) (*StaleEntry, time.Duration, error) {
	path := c.path(method, url)
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, 0, nil
	}
	if err == nil {
		var e *StaleEntry
		if e, err = DecodeStale(data); err == nil {
			age := now.Sub(e.SavedAt)
			if age < 0 {
				age = 0
			}
			if age > maxAge {
				return nil, age, nil
			}
			return e, age, nil
		}
	}
	err = fmt.Errorf("stale cache entry %s ignored: %w", path, err)
	if c.Warn != nil {
		c.Warn(err)
	}
	return nil, 0, err
}
