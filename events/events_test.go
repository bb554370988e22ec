package events

import (
	"bytes"
	"errors"
	"flag"
	"os"
	"testing"

	"google.golang.org/protobuf/proto"
)

var update = flag.Bool("update", false, "rewrite testdata/golden.records")

// sample is one of each event type, with fixed values.
func sample() []*Event {
	base := func(seq uint64) *Event {
		return &Event{Stream: "live/demo", Seq: seq, WallTimeUnixNano: 1_795_000_000_000_000_000 + int64(seq), MediaTime: int64(seq) * 3000, SchemaVersion: SchemaVersion}
	}
	evs := []*Event{base(1), base(2), base(3), base(4), base(5), base(6)}
	evs[0].Body = &Event_StreamAnnounced{StreamAnnounced: &StreamAnnounced{SessionId: "s1", Protocol: "srt"}}
	evs[1].Body = &Event_PublisherConnected{PublisherConnected: &PublisherConnected{SessionId: "s1", Protocol: "srt", RemoteAddr: "127.0.0.1:5000", PublisherId: "p1"}}
	evs[2].Body = &Event_TrackConfigured{TrackConfigured: &TrackConfigured{Track: "video", Codec: "H.264", CodecsString: "avc1.64001f", Width: 1280, Height: 720, InitBlob: "sha256-aa", Layer: "realtime"}}
	evs[3].Body = &Event_SegmentStored{SegmentStored: &SegmentStored{Layer: "realtime", Track: "video", Msn: 7, Blob: "sha256-bb", Size: 123456, DurationTicks: 90000, StartPts: 630000, ProgramDateTimeUnixNano: 1_795_000_007_000_000_000, InitBlob: "sha256-aa", Independent: true}}
	evs[4].Body = &Event_PublisherDisconnected{PublisherDisconnected: &PublisherDisconnected{SessionId: "s1", Reason: "peer gone", PublisherId: "p1"}}
	evs[5].Body = &Event_StreamEnded{StreamEnded: &StreamEnded{SessionId: "s1", Reason: "grace period over"}}
	return evs
}

func TestRoundTrip(t *testing.T) {
	for _, ev := range sample() {
		rec, err := Encode(ev)
		if err != nil {
			t.Fatal(err)
		}
		got, err := Decode(rec)
		if err != nil {
			t.Fatalf("%s: %v", ev.TypeName(), err)
		}
		if !proto.Equal(got, ev) {
			t.Errorf("%s: round trip changed the event:\n got %v\nwant %v", ev.TypeName(), got, ev)
		}
	}
}

// TestGoldenRecords keeps old logs readable: records written by an earlier
// build must decode to the same events forever.
func TestGoldenRecords(t *testing.T) {
	var buf bytes.Buffer
	for _, ev := range sample() {
		rec, err := Encode(ev)
		if err != nil {
			t.Fatal(err)
		}
		var n [2]byte
		n[0], n[1] = byte(len(rec)>>8), byte(len(rec))
		buf.Write(n[:])
		buf.Write(rec)
	}
	if *update {
		if err := os.WriteFile("testdata/golden.records", buf.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	golden, err := os.ReadFile("testdata/golden.records")
	if err != nil {
		t.Fatal(err)
	}
	want := sample()
	for i := 0; len(golden) > 0; i++ {
		n := int(golden[0])<<8 | int(golden[1])
		ev, err := Decode(golden[2 : 2+n])
		if err != nil {
			t.Fatalf("golden record %d: %v", i, err)
		}
		if !proto.Equal(ev, want[i]) {
			t.Errorf("golden record %d decodes to %v, want %v", i, ev, want[i])
		}
		golden = golden[2+n:]
	}
	if !bytes.Equal(buf.Bytes(), mustRead(t)) {
		t.Error("encoding changed: records written today differ from the golden file (run with -update only if that is intended and old records still decode)")
	}
}

func mustRead(t *testing.T) []byte {
	b, err := os.ReadFile("testdata/golden.records")
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestDecodeRejects(t *testing.T) {
	rec, _ := Encode(sample()[0])
	flip := bytes.Clone(rec)
	flip[len(flip)-1] ^= 1
	if _, err := Decode(flip); !errors.Is(err, ErrCorrupt) {
		t.Errorf("flipped bit: %v, want ErrCorrupt", err)
	}
	if _, err := Decode(rec[:3]); !errors.Is(err, ErrCorrupt) {
		t.Errorf("short: %v, want ErrCorrupt", err)
	}
	newer := bytes.Clone(rec)
	newer[4] = 9
	// re-checksum so only the format is wrong
	fixed, _ := AppendRecord(nil, sample()[0])
	copy(newer[:4], fixed[:4])
	newer = append([]byte(nil), newer...)
	if _, err := Decode(reChecksum(newer)); !errors.Is(err, ErrFormat) {
		t.Errorf("format 9: %v, want ErrFormat", err)
	}
}

func reChecksum(rec []byte) []byte {
	out := bytes.Clone(rec)
	c := crc(out[4:])
	out[0], out[1], out[2], out[3] = byte(c>>24), byte(c>>16), byte(c>>8), byte(c)
	return out
}

func TestTypeNames(t *testing.T) {
	want := []string{"stream.announced", "publisher.connected", "track.configured", "segment.stored", "publisher.disconnected", "stream.ended"}
	for i, ev := range sample() {
		if got := ev.TypeName(); got != want[i] {
			t.Errorf("TypeName = %q, want %q", got, want[i])
		}
	}
	if (&Event{}).TypeName() != "unknown" {
		t.Error("empty body should be unknown")
	}
}

func FuzzDecode(f *testing.F) {
	for _, ev := range sample() {
		rec, _ := Encode(ev)
		f.Add(rec)
	}
	f.Add([]byte{})
	f.Add([]byte{0, 0, 0, 0, 1})
	f.Fuzz(func(t *testing.T, rec []byte) {
		ev, err := Decode(rec)
		if err != nil {
			return
		}
		// Whatever decodes must encode and decode to the same event.
		again, err := Encode(ev)
		if err != nil {
			t.Fatal(err)
		}
		ev2, err := Decode(again)
		if err != nil || !proto.Equal(ev, ev2) {
			t.Fatalf("re-encode mismatch: %v", err)
		}
	})
}

func BenchmarkEncode(b *testing.B) {
	ev := sample()[3]
	b.ReportAllocs()
	var buf []byte
	for b.Loop() {
		buf, _ = AppendRecord(buf[:0], ev)
	}
}
