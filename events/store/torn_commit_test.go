package store

import (
	"bytes"
	"context"
	"encoding/binary"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"

	bolt "go.etcd.io/bbolt"

	"github.com/onair/onair/events"
)

// newestTxid reads the higher valid txid of a bbolt file's two meta pages
// (layout: go.etcd.io/bbolt internal/common meta.go; 16-byte page header,
// then magic, version, pageSize, flags, root{pgid, seq}, freelist, pgid,
// txid, checksum, native byte order).
func newestTxid(t *testing.T, file []byte, pageSize int) (page int, txid uint64) {
	t.Helper()
	for p := range 2 {
		m := file[p*pageSize+16:]
		if binary.NativeEndian.Uint32(m) != 0xED0CDAED || int(binary.NativeEndian.Uint32(m[8:])) != pageSize {
			t.Fatalf("meta page %d: not a bbolt meta page of page size %d", p, pageSize)
		}
		if id := binary.NativeEndian.Uint64(m[48:]); id >= txid {
			page, txid = p, id
		}
	}
	return page, txid
}

// TestTornLastCommit simulates a crash anywhere inside the last commit,
// as power loss leaves it on disk: bbolt writes the commit's data pages,
// fsyncs, then writes the meta page and fsyncs again, and never touches a
// page the previous commit still uses (copy-on-write). So whatever state
// the pages that commit wrote are left in, reopening must give exactly the
// previous commit's log, and a log that takes appends again.
func TestTornLastCommit(t *testing.T) {
	ps := os.Getpagesize()
	type damage func(r *rand.Rand, before, after []byte, changed []int, metaPage int) []byte
	garbage := func(r *rand.Rand, b []byte) {
		for i := range b {
			b[i] = byte(r.Uint32())
		}
	}
	damages := map[string]damage{
		// Data pages on disk, the meta page write never happened.
		"meta not written": func(_ *rand.Rand, before, after []byte, _ []int, mp int) []byte {
			copy(after[mp*ps:(mp+1)*ps], before[mp*ps:(mp+1)*ps])
			return after
		},
		// Every page the commit wrote is garbage, the meta page too.
		"all written pages garbage": func(r *rand.Rand, _, after []byte, changed []int, _ int) []byte {
			for _, p := range changed {
				garbage(r, after[p*ps:(p+1)*ps])
			}
			return after
		},
		// Each written page torn halfway: its second half reached the disk,
		// its first half did not (the meta page's fields are in the first).
		"pages torn in half": func(r *rand.Rand, before, after []byte, changed []int, _ int) []byte {
			for _, p := range changed {
				half := after[p*ps : p*ps+ps/2]
				if (p+1)*ps <= len(before) {
					copy(half, before[p*ps:p*ps+ps/2])
				} else {
					garbage(r, half)
				}
			}
			return after
		},
		// The file grew but its new pages never reached the disk.
		"growth lost, meta torn": func(r *rand.Rand, before, after []byte, _ []int, mp int) []byte {
			garbage(r, after[mp*ps+16:mp*ps+16+64])
			return after[:len(before)]
		},
	}
	lasts := map[string]func() []*events.Event{
		"new stream": func() []*events.Event { return []*events.Event{ev(100), ev(101)} },
		"same stream": func() []*events.Event {
			return []*events.Event{ev(100), ev(101), ev(102)}
		},
		"file grows": func() []*events.Event {
			big := ev(100)
			big.GetPublisherConnected().SessionId = strings.Repeat("s", 3<<20) // overflow pages past the file's end
			return []*events.Event{big, ev(101)}
		},
	}
	seed := uint64(1)
	for lname, last := range lasts {
		for dname, dmg := range damages {
			seed++
			t.Run(lname+"/"+dname, func(t *testing.T) {
				r := rand.New(rand.NewPCG(seed, 7))
				path := filepath.Join(t.TempDir(), "events.db")
				s, err := Open(path, Options{})
				if err != nil {
					t.Fatal(err)
				}
				ctx := context.Background()
				// The previous state: two streams, several commits.
				for i := range 6 {
					if _, err := s.Append(ctx, "live/a", ev(int64(i+1)), ev(int64(i+11))); err != nil {
						t.Fatal(err)
					}
					if _, err := s.Append(ctx, "live/b", ev(int64(i+21))); err != nil {
						t.Fatal(err)
					}
				}
				wantA, wantB := readAll(t, s, "live/a", 1), readAll(t, s, "live/b", 1)
				before, err := os.ReadFile(path) // committed and fsynced: this is the disk
				if err != nil {
					t.Fatal(err)
				}
				target := "live/a"
				if lname == "new stream" {
					target = "live/new"
				}
				if _, err := s.Append(ctx, target, last()...); err != nil { // the commit to tear
					t.Fatal(err)
				}
				if err := s.Close(); err != nil {
					t.Fatal(err)
				}
				after, err := os.ReadFile(path)
				if err != nil {
					t.Fatal(err)
				}
				_, txBefore := newestTxid(t, before, ps)
				metaPage, txAfter := newestTxid(t, after, ps)
				if txAfter != txBefore+1 {
					t.Fatalf("txid %d -> %d: want exactly one commit to tear", txBefore, txAfter)
				}
				if lname == "file grows" && len(after) <= len(before) {
					t.Fatalf("file did not grow (%d -> %d bytes)", len(before), len(after))
				}
				var changed []int // the pages the last commit wrote
				for p := 0; p*ps < len(after); p++ {
					if (p+1)*ps > len(before) || !bytes.Equal(before[p*ps:(p+1)*ps], after[p*ps:(p+1)*ps]) {
						changed = append(changed, p)
					}
				}
				if len(changed) < 2 {
					t.Fatalf("the last commit changed pages %v: want its meta page and data pages", changed)
				}
				if err := os.WriteFile(path, dmg(r, before, after, changed, metaPage), 0o644); err != nil {
					t.Fatal(err)
				}

				s, err = Open(path, Options{})
				if err != nil {
					t.Fatalf("Open after tearing the last commit (%d pages): %v", len(changed), err)
				}
				if err := s.db.View(func(tx *bolt.Tx) error {
					for err := range tx.Check() {
						return err
					}
					return nil
				}); err != nil {
					t.Fatalf("bbolt consistency check after recovery: %v", err)
				}
				sameEvents(t, "live/a", readAll(t, s, "live/a", 1), wantA)
				sameEvents(t, "live/b", readAll(t, s, "live/b", 1), wantB)
				if names, _ := s.Streams(); len(names) != 2 {
					t.Fatalf("streams after recovery: %q, want live/a and live/b", names)
				}
				// Appends carry on from the previous state, and stick.
				seq, err := s.Append(ctx, target, ev(999))
				if wantSeq := map[string]uint64{"live/a": uint64(len(wantA)), "live/new": 0}[target] + 1; err != nil || seq != wantSeq {
					t.Fatalf("Append after recovery = %d, %v; want %d", seq, err, wantSeq)
				}
				if err := s.Close(); err != nil {
					t.Fatal(err)
				}
				s = openT(t, path, Options{})
				if got := readAll(t, s, target, 1); len(got) == 0 || got[len(got)-1].MediaTime != 999 || got[len(got)-1].Seq != seq {
					t.Fatalf("after reopen %s ends with %v, want the append made after recovery", target, got[len(got)-1:])
				}
			})
		}
	}
}

func sameEvents(t *testing.T, stream string, got, want []*events.Event) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s: %d events after recovery, want %d", stream, len(got), len(want))
	}
	for i := range got {
		a, _ := events.Encode(got[i])
		b, _ := events.Encode(want[i])
		if !bytes.Equal(a, b) {
			t.Fatalf("%s seq %d changed: %v, want %v", stream, i+1, got[i], want[i])
		}
	}
}
