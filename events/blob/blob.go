// Package blob is the content-addressed store for media bytes: a blob's
// name is the SHA-256 of its content, so writing the same segment twice
// (a retried upload, a replayed job) is a no-op and a name can never point
// at different bytes.
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

// Errors.
var (
	ErrBadHash  = errors.New("blob: malformed hash (want sha256-<64 hex digits>)")
	ErrNotFound = errors.New("blob: not found")
	ErrMismatch = errors.New("blob: content does not match its hash")
)

// Store keeps blobs under dir/ab/cd/<hex>.
type Store struct{ dir string }

// Open creates dir if needed.
func Open(dir string) (*Store, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("blob: %w", err)
	}
	return &Store{dir: dir}, nil
}

// Hash is the name data would be stored under.
func Hash(data []byte) string {
	sum := sha256.Sum256(data)
	return Prefix + hex.EncodeToString(sum[:])
}

// Path is where the blob named hash lives.
func (s *Store) Path(hash string) (string, error) {
	h, ok := strings.CutPrefix(hash, Prefix)
	if !ok || len(h) != 64 {
		return "", fmt.Errorf("%w: %q", ErrBadHash, hash)
	}
	for _, c := range h {
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return "", fmt.Errorf("%w: %q", ErrBadHash, hash)
		}
	}
	return filepath.Join(s.dir, h[0:2], h[2:4], h), nil
}

// Put stores data durably (file and directory fsynced) and returns its hash.
func (s *Store) Put(data []byte) (string, error) {
	hash := Hash(data)
	path, _ := s.Path(hash)
	if _, err := os.Stat(path); err == nil {
		return hash, nil
	}
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", fmt.Errorf("blob: %w", err)
	}
	tmp, err := os.CreateTemp(dir, ".put-*")
	if err != nil {
		return "", fmt.Errorf("blob: %w", err)
	}
	defer os.Remove(tmp.Name()) // no-op after the rename
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return "", fmt.Errorf("blob: write %s: %w", hash, err)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return "", fmt.Errorf("blob: fsync %s: %w", hash, err)
	}
	if err := tmp.Close(); err != nil {
		return "", fmt.Errorf("blob: %w", err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return "", fmt.Errorf("blob: %w", err)
	}
	if err := syncDir(dir); err != nil {
		return "", err
	}
	return hash, nil
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("blob: %w", err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("blob: fsync dir: %w", err)
	}
	return nil
}

// Has reports whether the blob is stored.
func (s *Store) Has(hash string) bool {
	path, err := s.Path(hash)
	if err != nil {
		return false
	}
	_, err = os.Stat(path)
	return err == nil
}

// Get reads a blob and verifies it against its hash.
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

// Open returns a reader for serving a blob (not verified: use Get for that).
func (s *Store) Open(hash string) (io.ReadSeekCloser, int64, error) {
	path, err := s.Path(hash)
	if err != nil {
		return nil, 0, err
	}
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, 0, fmt.Errorf("%w: %s", ErrNotFound, hash)
	}
	if err != nil {
		return nil, 0, fmt.Errorf("blob: %w", err)
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, 0, fmt.Errorf("blob: %w", err)
	}
	return f, st.Size(), nil
}
