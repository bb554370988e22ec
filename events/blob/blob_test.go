package blob

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"testing/iotest"
)

func openT(t testing.TB) *Store {
	t.Helper()
	s, err := Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// segment is deterministic pseudo-random bytes, different per seed.
func segment(seed uint64, n int) []byte {
	r := rand.New(rand.NewPCG(seed, 0))
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}

// tempFiles lists leftover ".put-*" files under dir.
func tempFiles(t *testing.T, dir string) []string {
	t.Helper()
	var out []string
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if strings.HasPrefix(d.Name(), ".put-") {
			out = append(out, p)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func TestPutGet(t *testing.T) {
	s := openT(t)
	data := []byte("a CMAF segment")
	h, err := s.Put(data)
	if err != nil {
		t.Fatal(err)
	}
	// The known SHA-256 of the bytes, not just whatever Hash says.
	const want = "sha256-5a493ae6d5de2bdb16d76880f703470a7fcfa8c17ed606918961d565fc29f961" // sha256sum of the bytes
	if h != want || h != Hash(data) || !s.Has(h) {
		t.Fatalf("hash %s, has %v", h, s.Has(h))
	}
	hexpart := strings.TrimPrefix(h, Prefix)
	p, err := s.Path(h)
	if err != nil {
		t.Fatal(err)
	}
	if wantPath := filepath.Join(s.Dir(), hexpart[:2], hexpart[2:4], hexpart); p != wantPath {
		t.Fatalf("Path = %s, want %s", p, wantPath)
	}
	onDisk, err := os.ReadFile(p)
	if err != nil || !bytes.Equal(onDisk, data) {
		t.Fatalf("file at %s holds %q, %v", p, onDisk, err)
	}
	got, err := s.Get(h)
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("Get: %q %v", got, err)
	}
	if err := s.Verify(h); err != nil {
		t.Fatalf("Verify: %v", err)
	}
	if left := tempFiles(t, s.Dir()); len(left) != 0 {
		t.Fatalf("temporary files left behind: %v", left)
	}

	// The empty blob is a blob too.
	he, err := s.Put(nil)
	if err != nil || he != "sha256-e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855" {
		t.Fatalf("Put(nil) = %s, %v", he, err)
	}
	if got, err := s.Get(he); err != nil || len(got) != 0 {
		t.Fatalf("Get(empty) = %q, %v", got, err)
	}
}

// TestPutIdempotent: the same bytes twice are one file, written once.
func TestPutIdempotent(t *testing.T) {
	s := openT(t)
	data := segment(1, 10_000)
	h, err := s.Put(data)
	if err != nil {
		t.Fatal(err)
	}
	p, _ := s.Path(h)
	before, err := os.Stat(p)
	if err != nil {
		t.Fatal(err)
	}
	h2, err := s.Put(bytes.Clone(data))
	if err != nil || h2 != h {
		t.Fatalf("second Put = %s, %v; want %s", h2, err, h)
	}
	after, err := os.Stat(p)
	if err != nil {
		t.Fatal(err)
	}
	if !os.SameFile(before, after) {
		t.Fatal("second Put of the same bytes replaced the file")
	}
	h3, n, err := s.PutReader(bytes.NewReader(data))
	if err != nil || h3 != h || n != int64(len(data)) {
		t.Fatalf("PutReader of the same bytes = %s, %d, %v", h3, n, err)
	}
	if again, _ := os.Stat(p); !os.SameFile(before, again) {
		t.Fatal("PutReader of stored bytes replaced the file")
	}
	if left := tempFiles(t, s.Dir()); len(left) != 0 {
		t.Fatalf("temporary files left behind: %v", left)
	}
}

// TestPutRepairsDamage: a stored blob of the wrong size is rewritten by
// the next Put of its bytes.
func TestPutRepairsDamage(t *testing.T) {
	s := openT(t)
	data := segment(2, 5000)
	h, _ := s.Put(data)
	p, _ := s.Path(h)
	if err := os.Truncate(p, 100); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Get(h); !errors.Is(err, ErrMismatch) {
		t.Fatalf("Get of a truncated blob: %v, want ErrMismatch", err)
	}
	if _, err := s.Put(data); err != nil {
		t.Fatal(err)
	}
	if got, err := s.Get(h); err != nil || !bytes.Equal(got, data) {
		t.Fatalf("after repair: %d bytes, %v", len(got), err)
	}
}

func TestPutReader(t *testing.T) {
	s := openT(t)
	data := segment(3, 300_000)
	// One byte per Read: the hash must not depend on how the bytes arrive.
	h, n, err := s.PutReader(iotest.OneByteReader(bytes.NewReader(data[:1000])))
	if err != nil || h != Hash(data[:1000]) || n != 1000 {
		t.Fatalf("PutReader = %s, %d, %v", h, n, err)
	}
	h, n, err = s.PutReader(bytes.NewReader(data))
	if err != nil || h != Hash(data) || n != int64(len(data)) {
		t.Fatalf("PutReader = %s, %d, %v", h, n, err)
	}
	if got, err := s.Get(h); err != nil || !bytes.Equal(got, data) {
		t.Fatalf("Get after PutReader: %d bytes, %v", len(got), err)
	}

	// A broken upload stores nothing and leaves nothing behind.
	broken := io.MultiReader(bytes.NewReader(data[:5000]), iotest.ErrReader(io.ErrUnexpectedEOF))
	if _, _, err := s.PutReader(broken); !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Fatalf("PutReader of a broken upload: %v", err)
	}
	if s.Has(Hash(data[:5000])) {
		t.Fatal("a broken upload was stored")
	}
	if left := tempFiles(t, s.Dir()); len(left) != 0 {
		t.Fatalf("temporary files left behind: %v", left)
	}
}

func TestOpenServesRanges(t *testing.T) {
	s := openT(t)
	data := segment(4, 4096)
	h, _ := s.Put(data)
	r, n, err := s.Open(h)
	if err != nil || n != int64(len(data)) {
		t.Fatalf("Open = %d, %v", n, err)
	}
	defer r.Close()
	if _, err := r.Seek(1000, io.SeekStart); err != nil {
		t.Fatal(err)
	}
	part := make([]byte, 96)
	if _, err := io.ReadFull(r, part); err != nil || !bytes.Equal(part, data[1000:1096]) {
		t.Fatalf("range read: %v", err)
	}
	if _, _, err := s.Open(Hash([]byte("never stored"))); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Open of a missing blob: %v, want ErrNotFound", err)
	}
}

// TestConcurrentPut: many writers of the same and of different blobs.
func TestConcurrentPut(t *testing.T) {
	s := openT(t)
	same := segment(5, 20_000)
	var wg sync.WaitGroup
	errs := make(chan error, 32)
	for w := range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 4 {
				if h, err := s.Put(same); err != nil || h != Hash(same) {
					errs <- fmt.Errorf("Put same: %s %v", h, err)
				}
				own := segment(uint64(100+w*4+i), 3000)
				if h, err := s.Put(own); err != nil || h != Hash(own) {
					errs <- fmt.Errorf("Put own: %s %v", h, err)
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if _, err := s.Get(Hash(same)); err != nil {
		t.Fatal(err)
	}
	for k := range 64 {
		if err := s.Verify(Hash(segment(uint64(100+k), 3000))); err != nil {
			t.Fatal(err)
		}
	}
	if left := tempFiles(t, s.Dir()); len(left) != 0 {
		t.Fatalf("temporary files left behind: %v", left)
	}
}

func TestRejectsBadHashes(t *testing.T) {
	s := openT(t)
	// A real blob, so a traversal that resolved would find something.
	real, _ := s.Put([]byte("x"))
	hex := strings.TrimPrefix(real, Prefix)
	bad := []string{
		"", "sha256-", "sha256", Prefix + hex[:63], Prefix + hex + "0",
		"sha256-../../etc/passwd", Prefix + "../" + hex[3:],
		"md5-" + hex, "SHA256-" + hex, Prefix + strings.ToUpper(hex),
		Prefix + hex[:62] + "/x", Prefix + hex[:63] + "\x00", " " + real, real + "\n",
	}
	for _, h := range bad {
		if err := ValidHash(h); !errors.Is(err, ErrBadHash) {
			t.Errorf("ValidHash(%q) = %v, want ErrBadHash", h, err)
		}
		if _, err := s.Path(h); !errors.Is(err, ErrBadHash) {
			t.Errorf("Path(%q) = %v, want ErrBadHash", h, err)
		}
		if _, err := s.Get(h); !errors.Is(err, ErrBadHash) {
			t.Errorf("Get(%q) = %v, want ErrBadHash", h, err)
		}
		if _, _, err := s.Open(h); !errors.Is(err, ErrBadHash) {
			t.Errorf("Open(%q) = %v, want ErrBadHash", h, err)
		}
		if err := s.Verify(h); !errors.Is(err, ErrBadHash) {
			t.Errorf("Verify(%q) = %v, want ErrBadHash", h, err)
		}
		if s.Has(h) {
			t.Errorf("Has(%q) = true", h)
		}
	}
}

func TestDetectsCorruption(t *testing.T) {
	s := openT(t)
	h, _ := s.Put([]byte("original"))
	p, _ := s.Path(h)
	if err := os.WriteFile(p, []byte("tampered"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Get(h); !errors.Is(err, ErrMismatch) {
		t.Fatalf("Get: %v, want ErrMismatch", err)
	}
	if err := s.Verify(h); !errors.Is(err, ErrMismatch) {
		t.Fatalf("Verify: %v, want ErrMismatch", err)
	}
	// Same size, so Put does not notice: Get still refuses it.
	if _, err := s.Put([]byte("original")); err != nil {
		t.Fatal(err)
	}
	missing := Hash([]byte("never stored"))
	if _, err := s.Get(missing); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Get: %v, want ErrNotFound", err)
	}
	if err := s.Verify(missing); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Verify: %v, want ErrNotFound", err)
	}
}

// FuzzPath: whatever the string, Path either refuses it with ErrBadHash
// or names a file two levels below the store's directory.
func FuzzPath(f *testing.F) {
	for _, seed := range []string{Hash(nil), Hash([]byte("x")), "sha256-../../x", "", Prefix + strings.Repeat("a", 64), Prefix + strings.Repeat("/", 64)} {
		f.Add(seed)
	}
	dir := f.TempDir()
	s, err := Open(dir)
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, h string) {
		p, err := s.Path(h)
		if err != nil {
			if !errors.Is(err, ErrBadHash) {
				t.Fatalf("Path(%q): %v, want ErrBadHash", h, err)
			}
			return
		}
		rel, err := filepath.Rel(dir, p)
		if err != nil {
			t.Fatal(err)
		}
		parts := strings.Split(rel, string(filepath.Separator))
		if len(parts) != 3 || Prefix+parts[2] != h || parts[0] != parts[2][:2] || parts[1] != parts[2][2:4] {
			t.Fatalf("Path(%q) = %s: not <dir>/ab/cd/<hex>", h, p)
		}
	})
}

// BenchmarkPut250KB: one durable Put of a new 250 KB segment (two fsyncs).
func BenchmarkPut250KB(b *testing.B) {
	s := openT(b)
	data := segment(6, 250<<10)
	b.SetBytes(int64(len(data)))
	i := 0
	for b.Loop() {
		i++
		data[0], data[1], data[2] = byte(i), byte(i>>8), byte(i>>16) // a new blob each time
		if _, err := s.Put(data); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkPutExisting250KB: the idempotent path (hash and stat only).
func BenchmarkPutExisting250KB(b *testing.B) {
	s := openT(b)
	data := segment(7, 250<<10)
	if _, err := s.Put(data); err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(data)))
	for b.Loop() {
		if _, err := s.Put(data); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkGet250KB: read and verify (what the hash check costs).
func BenchmarkGet250KB(b *testing.B) {
	s := openT(b)
	data := segment(8, 250<<10)
	h, err := s.Put(data)
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(data)))
	for b.Loop() {
		if _, err := s.Get(h); err != nil {
			b.Fatal(err)
		}
	}
}
