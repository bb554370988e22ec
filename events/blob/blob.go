// Package blob is the content-addressed store for media bytes: a blob's
// name is the SHA-256 of its content, so writing the same segment twice
// (a retried upload, a replayed job) is a no-op and a name can never point
// at different bytes.
//
// A blob named sha256-<hex> lives at <dir>/<hex[0:2]>/<hex[2:4]>/<hex>.
// Put writes a temporary file beside it, fsyncs it, renames it into place
// and fsyncs the directory, so once Put returns the blob survives a crash
// or power loss, and a reader never sees a half-written blob. A crash
// mid-Put can leave a ".put-*" temporary file behind; it is never read.
package blob

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
)

// Prefix starts every hash this store hands out.
const Prefix = "sha256-"

const hexLen = 2 * sha256.Size

// Errors.
var (
	ErrBadHash  = errors.New("blob: malformed hash (want sha256-<64 lowercase hex digits>)")
	ErrNotFound = errors.New("blob: not found")
	ErrMismatch = errors.New("blob: content does not match its hash (the file is damaged; Put the original bytes again)")
)

// Store keeps blobs under one directory.
type Store struct{ dir string }

// Open uses dir (created if needed) as a blob store.
func Open(dir string) (*Store, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("blob: %w", err)
	}
	return &Store{dir: dir}, nil
}

// Dir is the store's directory.
func (s *Store) Dir() string { return s.dir }

// Hash is the name data is stored under.
func Hash(data []byte) string {
	sum := sha256.Sum256(data)
	return Prefix + hex.EncodeToString(sum[:])
}

// ValidHash reports whether hash is a well-formed blob name; the error
// wraps ErrBadHash. Only lowercase hex passes, so a name has exactly one
// spelling and cannot carry a path.
func ValidHash(hash string) error {
	h, ok := strings.CutPrefix(hash, Prefix)
	if !ok || len(h) != hexLen {
		return fmt.Errorf("%w: %q", ErrBadHash, hash)
	}
	for i := range len(h) {
		if c := h[i]; !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return fmt.Errorf("%w: %q", ErrBadHash, hash)
		}
	}
	return nil
}

// Path is where the blob named hash lives (whether or not it is stored).
func (s *Store) Path(hash string) (string, error) {
	if err := ValidHash(hash); err != nil {
		return "", err
	}
	h := hash[len(Prefix):]
	return filepath.Join(s.dir, h[0:2], h[2:4], h), nil
}

// Put stores data durably and returns its hash. A blob already stored
// with the right size is not rewritten; one with the wrong size (damaged)
// is replaced.
func (s *Store) Put(data []byte) (string, error) {
	hash := Hash(data)
	path, _ := s.Path(hash)
	if st, err := os.Stat(path); err == nil && st.Size() == int64(len(data)) {
		return hash, nil
	}
	dir := filepath.Dir(path)
	if err := s.mkdir(dir); err != nil {
		return "", err
	}
	tmp, err := os.CreateTemp(dir, ".put-*")
	if err != nil {
		return "", fmt.Errorf("blob: %w", err)
	}
	defer os.Remove(tmp.Name()) // fails harmlessly after the rename
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return "", fmt.Errorf("blob: write %s: %w", hash, err)
	}
	if err := s.commit(tmp, path); err != nil {
		return "", fmt.Errorf("blob: %s: %w", hash, err)
	}
	return hash, nil
}

// PutReader stores everything r yields, as Put does, without holding it
// in memory; for uploads. It returns the hash and the size.
func (s *Store) PutReader(r io.Reader) (string, int64, error) {
	// The name is known only at the end: write in the top directory, which
	// is on the same file system, and rename into place.
	tmp, err := os.CreateTemp(s.dir, ".put-*")
	if err != nil {
		return "", 0, fmt.Errorf("blob: %w", err)
	}
	defer os.Remove(tmp.Name())
	h := sha256.New()
	n, err := io.Copy(io.MultiWriter(tmp, h), r)
	if err != nil {
		tmp.Close()
		return "", 0, fmt.Errorf("blob: read upload: %w", err)
	}
	hash := Prefix + hex.EncodeToString(h.Sum(nil))
	path, _ := s.Path(hash)
	if st, err := os.Stat(path); err == nil && st.Size() == n {
		tmp.Close()
		return hash, n, nil
	}
	if err := s.mkdir(filepath.Dir(path)); err != nil {
		tmp.Close()
		return "", 0, err
	}
	if err := s.commit(tmp, path); err != nil {
		return "", 0, fmt.Errorf("blob: %s: %w", hash, err)
	}
	return hash, n, nil
}

// commit makes the written tmp durable at path: fsync the file, close it,
// rename it, fsync the directory that now names it.
func (s *Store) commit(tmp *os.File, path string) error {
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return fmt.Errorf("fsync: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return err
	}
	return syncDir(filepath.Dir(path))
}

// mkdir creates a blob's two directory levels; a new directory's entry is
// made durable by fsyncing its parent.
func (s *Store) mkdir(dir string) error {
	if _, err := os.Stat(dir); err == nil {
		return nil
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("blob: %w", err)
	}
	if err := syncDir(filepath.Dir(dir)); err != nil {
		return err
	}
	return syncDir(filepath.Dir(filepath.Dir(dir)))
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("blob: %w", err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("blob: fsync %s: %w", dir, err)
	}
	return nil
}

// Has reports whether the blob is stored; false for a malformed hash.
func (s *Store) Has(hash string) bool {
	path, err := s.Path(hash)
	if err != nil {
		return false
	}
	_, err = os.Stat(path)
	return err == nil
}

// Get reads a blob and always verifies it against its hash: SHA-256 runs
// at disk speed or better (see BenchmarkGet250KB), and a damaged segment
// must not reach a recording. Serve HTTP from Open instead.
func (s *Store) Get(hash string) ([]byte, error) {
	path, err := s.Path(hash)
	if err != nil {
		return nil, err
	}
	data, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("%w: %s", ErrNotFound, hash)
	}
	if err != nil {
		return nil, fmt.Errorf("blob: %w", err)
	}
	if Hash(data) != hash {
		return nil, fmt.Errorf("%w: %s", ErrMismatch, hash)
	}
	return data, nil
}

// Open returns a reader over a blob and its size, for serving (e.g. with
// http.ServeContent). It does not verify the content: use Verify or Get.
func (s *Store) Open(hash string) (io.ReadSeekCloser, int64, error) {
	f, err := s.open(hash)
	if err != nil {
		return nil, 0, err
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, 0, fmt.Errorf("blob: %w", err)
	}
	return f, st.Size(), nil
}

// Verify reads a stored blob through and checks it against its hash,
// without holding it in memory.
func (s *Store) Verify(hash string) error {
	f, err := s.open(hash)
	if err != nil {
		return err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return fmt.Errorf("blob: read %s: %w", hash, err)
	}
	if Prefix+hex.EncodeToString(h.Sum(nil)) != hash {
		return fmt.Errorf("%w: %s", ErrMismatch, hash)
	}
	return nil
}

func (s *Store) open(hash string) (*os.File, error) {
	path, err := s.Path(hash)
	if err != nil {
		return nil, err
	}
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("%w: %s", ErrNotFound, hash)
	}
	if err != nil {
		return nil, fmt.Errorf("blob: %w", err)
	}
	return f, nil
}
