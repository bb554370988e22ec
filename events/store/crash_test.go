package store

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"hash/fnv"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"

	bolt "go.etcd.io/bbolt"
	bolterrors "go.etcd.io/bbolt/errors"

	"github.com/onair/onair/events"
)

const crashDirEnv = "ONAIR_STORE_CRASH_DIR"

// TestCrashChild is the process TestCrashKill kills: it appends forever
// from several goroutines and prints "ack <seq> <id>" once each Append
// has returned, i.e. once the event is acknowledged as durable.
func TestCrashChild(t *testing.T) {
	dir := os.Getenv(crashDirEnv)
	if dir == "" {
		t.Skip("run by TestCrashKill")
	}
	s, err := Open(filepath.Join(dir, "events.db"), Options{})
	if err != nil {
		fmt.Fprintln(os.Stderr, "child:", err)
		os.Exit(2)
	}
	base, err := s.LastSeq("live/crash")
	if err != nil {
		fmt.Fprintln(os.Stderr, "child:", err)
		os.Exit(2)
	}
	var mu sync.Mutex
	out := bufio.NewWriter(os.Stdout)
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := int64(0); i < 1_000_000; i++ {
				id := int64(base)*1000 + int64(w)*1_000_000_000 + i // unique across runs
				seq, err := s.Append(context.Background(), "live/crash", ev(id))
				if err != nil {
					fmt.Fprintln(os.Stderr, "child:", err)
					os.Exit(2)
				}
				mu.Lock()
				fmt.Fprintf(out, "ack %d %d\n", seq, id)
				err = out.Flush() // the ack leaves the process before the next append
				mu.Unlock()
				if err != nil {
					os.Exit(3) // parent gone
				}
			}
		}()
	}
	wg.Wait()
	os.Exit(4) // never reached when the parent kills us
}

// TestCrashKill SIGKILLs a process in the middle of group commits, three
// times over the same file: every acknowledged event survives, the log
// stays gap-free, and appending carries on at last+1.
func TestCrashKill(t *testing.T) {
	if os.Getenv(crashDirEnv) != "" {
		t.Skip("inside the child")
	}
	dir := t.TempDir()
	path := filepath.Join(dir, "events.db")
	acked := map[uint64]int64{}
	for round := range 3 {
		n := crashOnce(t, dir, acked, 300)
		s, err := Open(path, Options{})
		if err != nil {
			t.Fatalf("round %d: reopen after SIGKILL: %v", round, err)
		}
		got := map[uint64]int64{}
		var last uint64
		err = s.Read("live/crash", 1, func(e *events.Event) error {
			if e.Seq != last+1 {
				return fmt.Errorf("seq %d follows %d: gap", e.Seq, last)
			}
			last = e.Seq
			got[e.Seq] = e.MediaTime
			return nil
		})
		if err != nil {
			t.Fatalf("round %d: replay after SIGKILL: %v", round, err)
		}
		for seq, id := range acked {
			if g, ok := got[seq]; !ok || g != id {
				t.Fatalf("round %d: acknowledged seq %d (event %d) lost: log has %d, %v", round, seq, id, g, ok)
			}
		}
		// Commits that were durable but not yet printed are allowed, no more.
		t.Logf("round %d: %d acks read, log holds %d events (%d committed but unacknowledged)", round, n, last, int(last)-len(acked))
		seq, err := s.Append(context.Background(), "live/crash", ev(-int64(round)-1))
		if err != nil || seq != last+1 {
			t.Fatalf("round %d: Append after crash = %d, %v; want %d", round, seq, err, last+1)
		}
		acked[seq] = -int64(round) - 1
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
	}
	checkBolt(t, path)
}

// crashOnce runs TestCrashChild on dir, SIGKILLs it after want acks and
// adds every ack it printed to acked. It returns how many acks it read.
func crashOnce(t *testing.T, dir string, acked map[uint64]int64, want int) int {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestCrashChild$", "-test.count=1")
	cmd.Env = append(os.Environ(), crashDirEnv+"="+dir)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	killed := false
	defer func() {
		if !killed {
			cmd.Process.Kill()
			cmd.Wait()
		}
	}()
	n := 0
	sc := bufio.NewScanner(stdout)
	for sc.Scan() {
		var seq uint64
		var id int64
		if _, err := fmt.Sscanf(sc.Text(), "ack %d %d", &seq, &id); err != nil {
			continue // test framework chatter
		}
		if prev, dup := acked[seq]; dup {
			t.Fatalf("seq %d acknowledged twice (events %d and %d)", seq, prev, id)
		}
		acked[seq] = id
		n++
		if n == want && !killed {
			// Acks still in the pipe after the kill were printed after
			// their Append returned: they count too.
			if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
				t.Fatal(err)
			}
			killed = true
		}
	}
	err = cmd.Wait()
	if !killed {
		t.Fatalf("child ended after %d acks, before the kill: %v\n%s", n, err, stderr.String())
	}
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
		t.Fatalf("child did not die by SIGKILL: %v\n%s", err, stderr.String())
	}
	return n
}

// checkBolt runs bbolt's own consistency check over the file.
func checkBolt(t *testing.T, path string) {
	t.Helper()
	db, err := bolt.Open(path, 0o644, &bolt.Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	err = db.View(func(tx *bolt.Tx) error {
		for err := range tx.Check() {
			return err
		}
		return nil
	})
	if err != nil {
		t.Fatalf("bbolt consistency check: %v", err)
	}
}

// bbolt's on-disk meta page (go.etcd.io/bbolt internal/common, page.go
// and meta.go): a 16-byte page header (id u64, flags u16, count u16,
// overflow u32), then the meta in native byte order: magic u32, version
// u32, pageSize u32, flags u32, root bucket {pgid u64, sequence u64},
// freelist u64, pgid u64, txid u64, checksum u64 (FNV-1a 64 of the meta
// up to the checksum).
const (
	pageHeaderLen  = 16
	metaMagic      = 0xED0CDAED
	metaPageSizeAt = 8
	metaTxidAt     = 48
	metaSumAt      = 56
)

type metaPage struct {
	page int
	txid uint64
}

// readMetas parses both meta pages of a closed bbolt file.
func readMetas(t *testing.T, file []byte, pageSize int) [2]metaPage {
	t.Helper()
	var out [2]metaPage
	for p := range 2 {
		m := file[p*pageSize+pageHeaderLen:]
		if magic := binary.NativeEndian.Uint32(m); magic != metaMagic {
			t.Fatalf("meta page %d: magic %08x, want %08x: not a bbolt file?", p, magic, metaMagic)
		}
		if ps := binary.NativeEndian.Uint32(m[metaPageSizeAt:]); int(ps) != pageSize {
			t.Fatalf("meta page %d: page size %d, os.Getpagesize() %d", p, ps, pageSize)
		}
		h := fnv.New64a()
		h.Write(m[:metaSumAt])
		if sum := binary.NativeEndian.Uint64(m[metaSumAt:]); sum != h.Sum64() {
			t.Fatalf("meta page %d: checksum %016x, computed %016x: layout misread", p, sum, h.Sum64())
		}
		out[p] = metaPage{page: p, txid: binary.NativeEndian.Uint64(m[metaTxidAt:])}
	}
	return out
}

// TestTornMetaPage: the last thing a bbolt commit writes is its meta page.
// A crash that tears that write must cost exactly that commit: Open falls
// back to the other meta page, which still describes the previous one.
func TestTornMetaPage(t *testing.T) {
	pageSize := os.Getpagesize()
	tears := map[string]func(page []byte){
		"flipped byte": func(page []byte) { page[pageHeaderLen+metaTxidAt-3] ^= 0x40 }, // inside the freelist/pgid fields
		"zeroed page":  func(page []byte) { clear(page) },
		"half written": func(page []byte) { clear(page[pageHeaderLen+metaTxidAt:]) }, // txid and checksum never made it
	}
	pagesTorn := map[int]bool{}
	for _, commits := range []int{5, 6} { // the newest meta lands on each of the two pages
		for name, tear := range tears {
			t.Run(fmt.Sprintf("%d commits/%s", commits, name), func(t *testing.T) {
				path := filepath.Join(t.TempDir(), "events.db")
				s, err := Open(path, Options{})
				if err != nil {
					t.Fatal(err)
				}
				for c := range commits {
					// One Append at a time: one commit each.
					batch := []*events.Event{ev(int64(c*10 + 1)), ev(int64(c*10 + 2)), ev(int64(c*10 + 3))}
					if _, err := s.Append(context.Background(), "live/a", batch...); err != nil {
						t.Fatal(err)
					}
				}
				if err := s.Close(); err != nil {
					t.Fatal(err)
				}

				file, err := os.ReadFile(path)
				if err != nil {
					t.Fatal(err)
				}
				metas := readMetas(t, file, pageSize)
				newest, older := metas[0], metas[1]
				if older.txid > newest.txid {
					newest, older = older, newest
				}
				if newest.txid != older.txid+1 {
					t.Fatalf("meta txids %d and %d: want consecutive", older.txid, newest.txid)
				}
				pagesTorn[newest.page] = true
				tear(file[newest.page*pageSize : (newest.page+1)*pageSize])
				if err := os.WriteFile(path, file, 0o644); err != nil {
					t.Fatal(err)
				}

				s, err = Open(path, Options{})
				if err != nil {
					t.Fatalf("Open after a torn meta page %d: %v", newest.page, err)
				}
				got := readAll(t, s, "live/a", 1)
				want := 3 * (commits - 1) // the torn commit is gone, all before it intact
				if len(got) != want {
					t.Fatalf("after tearing meta page %d (txid %d): %d events, want %d", newest.page, newest.txid, len(got), want)
				}
				checkSeqs(t, "live/a", got, 1)
				for i, e := range got {
					if wantID := int64(i/3*10 + i%3 + 1); e.MediaTime != wantID {
						t.Fatalf("seq %d holds event %d, want %d", e.Seq, e.MediaTime, wantID)
					}
				}
				// The file is writable again and the lost seqs are reused.
				if seq, err := s.Append(context.Background(), "live/a", ev(999)); err != nil || seq != uint64(want+1) {
					t.Fatalf("Append after recovery = %d, %v; want %d", seq, err, want+1)
				}
				if err := s.Close(); err != nil {
					t.Fatal(err)
				}
				checkBolt(t, path)
				s = openT(t, path, Options{})
				if got := readAll(t, s, "live/a", 1); len(got) != want+1 || got[want].MediaTime != 999 {
					t.Fatalf("after recovery and reopen: %d events, want %d ending in 999", len(got), want+1)
				}
			})
		}
	}
	if !pagesTorn[0] || !pagesTorn[1] {
		t.Errorf("tore meta pages %v: want both 0 and 1 covered", pagesTorn)
	}
}

// TestBothMetaPagesTorn: with no valid meta page left, Open fails with
// an error rather than a panic or an empty log.
func TestBothMetaPagesTorn(t *testing.T) {
	path := filepath.Join(t.TempDir(), "events.db")
	s := openT(t, path, Options{})
	if _, err := s.Append(context.Background(), "live/a", ev(1)); err != nil {
		t.Fatal(err)
	}
	s.Close()
	file, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	ps := os.Getpagesize()
	file[pageHeaderLen+metaTxidAt] ^= 1
	file[ps+pageHeaderLen+metaTxidAt] ^= 1
	if err := os.WriteFile(path, file, 0o644); err != nil {
		t.Fatal(err)
	}
	s2, err := Open(path, Options{})
	if err == nil {
		s2.Close()
		t.Fatal("Open with both meta pages torn succeeded")
	}
	if !errors.Is(err, bolterrors.ErrChecksum) || !strings.Contains(err.Error(), path) {
		t.Fatalf("Open with both meta pages torn: %v, want a checksum error naming the file", err)
	}
	t.Logf("both meta pages torn: %v", err)
}

// putRaw overwrites the stored value of stream's seq in a closed log.
func putRaw(t *testing.T, path, stream string, seq uint64, edit func(v []byte) []byte) {
	t.Helper()
	db, err := bolt.Open(path, 0o644, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	err = db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket([]byte(stream))
		v := b.Get(seqKey(seq))
		if v == nil {
			return fmt.Errorf("no %s seq %d", stream, seq)
		}
		return b.Put(seqKey(seq), edit(append([]byte(nil), v...)))
	})
	if err != nil {
		t.Fatal(err)
	}
}

// TestCorruptRecord: a damaged record is reported with its stream and
// seq, wrapping events.ErrCorrupt (or ErrFormat), and never panics.
func TestCorruptRecord(t *testing.T) {
	edits := map[string]struct {
		edit func([]byte) []byte
		want error
	}{
		"flipped payload byte": {func(v []byte) []byte { v[len(v)/2] ^= 0x10; return v }, events.ErrCorrupt},
		"flipped crc byte":     {func(v []byte) []byte { v[1] ^= 0x01; return v }, events.ErrCorrupt},
		"truncated":            {func(v []byte) []byte { return v[:len(v)-4] }, events.ErrCorrupt},
		"too short":            {func(v []byte) []byte { return v[:3] }, events.ErrCorrupt},
		"empty":                {func(v []byte) []byte { return v[:0] }, events.ErrCorrupt},
		"unknown format": {func(v []byte) []byte {
			v[4] = 9
			binary.BigEndian.PutUint32(v, crc32c(v[4:]))
			return v
		}, events.ErrFormat},
	}
	for name, tc := range edits {
		t.Run(name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "events.db")
			s, err := Open(path, Options{})
			if err != nil {
				t.Fatal(err)
			}
			for i := range 5 {
				if _, err := s.Append(context.Background(), "live/a", ev(int64(i+1))); err != nil {
					t.Fatal(err)
				}
			}
			if _, err := s.Append(context.Background(), "live/b", ev(1), ev(2), ev(3)); err != nil {
				t.Fatal(err)
			}
			s.Close()

			// In the middle of a stream: Open is fine, Read stops there.
			putRaw(t, path, "live/a", 3, tc.edit)
			s, err = Open(path, Options{})
			if err != nil {
				t.Fatalf("Open with a damaged middle record: %v", err)
			}
			var seqs []uint64
			err = s.Read("live/a", 1, func(e *events.Event) error { seqs = append(seqs, e.Seq); return nil })
			if !errors.Is(err, tc.want) || !strings.Contains(err.Error(), "live/a") || !strings.Contains(err.Error(), "seq 3") {
				t.Fatalf("Read over damaged seq 3: %v, want %v naming live/a seq 3", err, tc.want)
			}
			if fmt.Sprint(seqs) != "[1 2]" {
				t.Fatalf("Read delivered %v before the damage, want [1 2]", seqs)
			}
			if got := readAll(t, s, "live/a", 4); len(got) != 2 {
				t.Fatalf("Read past the damage: %d events, want 2", len(got))
			}
			if got := readAll(t, s, "live/b", 1); len(got) != 3 {
				t.Fatalf("other stream: %d events, want 3", len(got))
			}
			s.Close()

			// The newest record of a stream: Open refuses the log.
			putRaw(t, path, "live/b", 3, tc.edit)
			s, err = Open(path, Options{})
			if err == nil {
				s.Close()
				t.Fatal("Open with a damaged newest record succeeded")
			}
			if !errors.Is(err, tc.want) || !strings.Contains(err.Error(), "live/b") || !strings.Contains(err.Error(), "seq 3") {
				t.Fatalf("Open: %v, want %v naming live/b seq 3", err, tc.want)
			}
		})
	}
}

// FuzzStoredRecord: whatever bytes sit under a key, Read returns events
// or an error wrapping events.ErrCorrupt/ErrFormat; it never panics.
func FuzzStoredRecord(f *testing.F) {
	good, err := events.Encode(ev(7))
	if err != nil {
		f.Fatal(err)
	}
	f.Add(good)
	f.Add(good[:len(good)-1])
	f.Add([]byte{})
	f.Add([]byte{0, 0, 0, 0, 1})
	f.Add([]byte{0xde, 0xad, 0xbe, 0xef, 1, 0xff, 0xff, 0xff})
	s, err := Open(filepath.Join(f.TempDir(), "events.db"), Options{})
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { s.Close() })
	s.db.NoSync = true // durability is not under test here; speed is
	f.Fuzz(func(t *testing.T, rec []byte) {
		err := s.db.Update(func(tx *bolt.Tx) error {
			b, err := tx.CreateBucketIfNotExists([]byte("live/f"))
			if err != nil {
				return err
			}
			return b.Put(seqKey(1), rec)
		})
		if err != nil {
			t.Fatal(err)
		}
		err = s.Read("live/f", 1, func(e *events.Event) error {
			if _, err := events.Encode(e); err != nil {
				return fmt.Errorf("decoded event does not re-encode: %w", err)
			}
			return nil
		})
		if err != nil && !errors.Is(err, events.ErrCorrupt) && !errors.Is(err, events.ErrFormat) {
			t.Fatalf("Read of %x: %v, want nil, ErrCorrupt or ErrFormat", rec, err)
		}
		if err != nil && !strings.Contains(err.Error(), "live/f seq 1") {
			t.Fatalf("error does not name the record: %v", err)
		}
	})
}

func crc32c(b []byte) uint32 { return crc32.Checksum(b, crc32.MakeTable(crc32.Castagnoli)) }
