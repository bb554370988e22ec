package blob

import (
	"bytes"
	"errors"
	"os"
	"testing"
)

func TestPutGet(t *testing.T) {
	s, err := Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	data := []byte("a CMAF segment")
	h, err := s.Put(data)
	if err != nil {
		t.Fatal(err)
	}
	if h != Hash(data) || !s.Has(h) {
		t.Fatalf("hash %s, has %v", h, s.Has(h))
	}
	h2, err := s.Put(data)
	if err != nil || h2 != h {
		t.Fatalf("second put: %s %v", h2, err)
	}
	got, err := s.Get(h)
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("get: %q %v", got, err)
	}
	r, n, err := s.Open(h)
	if err != nil || n != int64(len(data)) {
		t.Fatalf("open: %d %v", n, err)
	}
	r.Close()
}

func TestRejectsBadHashes(t *testing.T) {
	s, _ := Open(t.TempDir())
	for _, h := range []string{"", "sha256-", "sha256-../../etc/passwd", "md5-" + string(bytes.Repeat([]byte("a"), 64)),
		"sha256-" + string(bytes.Repeat([]byte("A"), 64)), "sha256-" + string(bytes.Repeat([]byte("a"), 63)) + "/"} {
		if _, err := s.Get(h); !errors.Is(err, ErrBadHash) {
			t.Errorf("Get(%q) = %v, want ErrBadHash", h, err)
		}
	}
}

func TestDetectsCorruption(t *testing.T) {
	s, _ := Open(t.TempDir())
	h, _ := s.Put([]byte("original"))
	p, _ := s.Path(h)
	if err := os.WriteFile(p, []byte("tampered"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Get(h); !errors.Is(err, ErrMismatch) {
		t.Fatalf("got %v, want ErrMismatch", err)
	}
	if _, err := s.Get(Hash([]byte("never stored"))); !errors.Is(err, ErrNotFound) {
		t.Fatalf("got %v, want ErrNotFound", err)
	}
}

func BenchmarkPut250KB(b *testing.B) {
	s, _ := Open(b.TempDir())
	data := make([]byte, 250<<10)
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
