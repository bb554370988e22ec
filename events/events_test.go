package events

import (
	"bytes"
	"encoding/binary"
	"errors"
	"flag"
	"fmt"
	"hash/crc32"
	"os"
	"slices"
	"testing"

	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
)

var update = flag.Bool("update", false, "rewrite testdata/golden.records (only for a deliberate format change)")

const (
	goldenPath  = "testdata/golden.records"
	goldenCount = 6
)

// sample is one of each event type, with fixed values. Add new payloads at
// the end: golden.records holds the records of the first goldenCount
// forever (freeze later ones in a new fixture file, never by -update).
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

// golden frames records as a 2-byte big-endian length and the record.
func splitGolden(t *testing.T, b []byte) [][]byte {
	t.Helper()
	var recs [][]byte
	for len(b) > 0 {
		if len(b) < 2 || len(b) < 2+int(binary.BigEndian.Uint16(b)) {
			t.Fatalf("%s: truncated frame after %d records", goldenPath, len(recs))
		}
		n := int(binary.BigEndian.Uint16(b))
		recs = append(recs, b[2:2+n])
		b = b[2+n:]
	}
	return recs
}

// TestGoldenRecords keeps old logs readable: the records committed in
// testdata when the schema was first written must decode to the same
// events forever.
func TestGoldenRecords(t *testing.T) {
	want := sample()[:goldenCount]
	var today bytes.Buffer
	for _, ev := range want {
		rec, err := Encode(ev)
		if err != nil {
			t.Fatal(err)
		}
		today.Write(binary.BigEndian.AppendUint16(nil, uint16(len(rec))))
		today.Write(rec)
	}
	if *update {
		if err := os.WriteFile(goldenPath, today.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	golden, err := os.ReadFile(goldenPath)
	if err != nil {
		t.Fatal(err)
	}
	recs := splitGolden(t, golden)
	if len(recs) != len(want) {
		t.Fatalf("%s holds %d records, want %d", goldenPath, len(recs), len(want))
	}
	for i, rec := range recs {
		ev, err := Decode(rec)
		if err != nil {
			t.Fatalf("golden record %d: %v", i, err)
		}
		if !proto.Equal(ev, want[i]) {
			t.Errorf("golden record %d decodes to %v, want %v", i, ev, want[i])
		}
		if ev.TypeName() != want[i].TypeName() {
			t.Errorf("golden record %d is a %s, want %s", i, ev.TypeName(), want[i].TypeName())
		}
	}
	// Not required for readability, but a change here means the bytes on
	// disk changed: make sure that was meant.
	if !bytes.Equal(today.Bytes(), golden) {
		t.Errorf("records written today differ from %s: if the encoding change is deliberate and old records still decode, rerun with -update", goldenPath)
	}
}

func crc(b []byte) uint32 { return crc32.Checksum(b, crc32.MakeTable(crc32.Castagnoli)) }

// reChecksum fixes a record's checksum after an edit.
func reChecksum(rec []byte) []byte {
	out := bytes.Clone(rec)
	binary.BigEndian.PutUint32(out, crc(out[4:]))
	return out
}

func TestDecodeRejects(t *testing.T) {
	rec, err := Encode(sample()[3])
	if err != nil {
		t.Fatal(err)
	}
	// Every single-bit flip anywhere is caught by the CRC.
	for i := range len(rec) * 8 {
		bad := bytes.Clone(rec)
		bad[i/8] ^= 1 << (i % 8)
		if _, err := Decode(bad); !errors.Is(err, ErrCorrupt) {
			t.Fatalf("bit %d flipped: %v, want ErrCorrupt", i, err)
		}
	}
	for n := range headerLen {
		if _, err := Decode(rec[:n]); !errors.Is(err, ErrCorrupt) {
			t.Errorf("%d bytes: %v, want ErrCorrupt", n, err)
		}
	}
	if _, err := Decode(rec[:len(rec)-1]); !errors.Is(err, ErrCorrupt) {
		t.Errorf("truncated: %v, want ErrCorrupt", err)
	}

	newer := bytes.Clone(rec)
	newer[4] = RecordFormat + 1
	_, err = Decode(reChecksum(newer))
	if !errors.Is(err, ErrFormat) || errors.Is(err, ErrCorrupt) {
		t.Errorf("format %d: %v, want ErrFormat only", RecordFormat+1, err)
	}
	t.Logf("newer format: %v", err)

	// Checksum fine, protobuf garbage: a writer bug, still ErrCorrupt.
	garbage := append([]byte{0, 0, 0, 0, RecordFormat}, 0xff, 0xff, 0xff)
	if _, err := Decode(reChecksum(garbage)); !errors.Is(err, ErrCorrupt) {
		t.Errorf("bad protobuf: %v, want ErrCorrupt", err)
	}

	// The smallest valid record: format byte, empty event.
	if ev, err := Decode(reChecksum([]byte{0, 0, 0, 0, RecordFormat})); err != nil || ev.TypeName() != "unknown" {
		t.Errorf("empty event: %v %v", ev, err)
	}
}

func TestEncodeErrors(t *testing.T) {
	if _, err := Encode(nil); !errors.Is(err, ErrNilEvent) {
		t.Errorf("Encode(nil): %v, want ErrNilEvent", err)
	}
	bad := sample()[1]
	bad.GetPublisherConnected().RemoteAddr = "\xff not UTF-8" // proto3 strings must be UTF-8
	dst := []byte("prefix")
	out, err := AppendRecord(dst, bad)
	if err == nil {
		t.Fatal("encoding invalid UTF-8 succeeded")
	}
	if string(out) != "prefix" {
		t.Errorf("AppendRecord error returned %q, want dst unchanged", out)
	}
}

// TestAppendRecordAppends: records laid end to end each decode on their own.
func TestAppendRecordAppends(t *testing.T) {
	var buf []byte
	var ends []int
	for _, ev := range sample() {
		var err error
		if buf, err = AppendRecord(buf, ev); err != nil {
			t.Fatal(err)
		}
		ends = append(ends, len(buf))
	}
	start := 0
	for i, end := range ends {
		ev, err := Decode(buf[start:end])
		if err != nil || !proto.Equal(ev, sample()[i]) {
			t.Fatalf("record %d: %v %v", i, ev, err)
		}
		start = end
	}
}

// TestNewerPayloadSurvives: a record from a newer onair with a payload this
// build does not know decodes, is "unknown", and re-encodes without losing
// the payload (a projection that copies events must not drop them).
func TestNewerPayloadSurvives(t *testing.T) {
	ev := sample()[0]
	ev.Body = nil
	wire, err := proto.Marshal(ev)
	if err != nil {
		t.Fatal(err)
	}
	// Field 31 (the room range), a message holding field 1 = "hello".
	payload := protowire.AppendString(protowire.AppendTag(nil, 1, protowire.BytesType), "hello")
	wire = protowire.AppendBytes(protowire.AppendTag(wire, 31, protowire.BytesType), payload)
	rec := reChecksum(append([]byte{0, 0, 0, 0, RecordFormat}, wire...))

	got, err := Decode(rec)
	if err != nil {
		t.Fatal(err)
	}
	if got.TypeName() != "unknown" || got.Stream != "live/demo" || got.Seq != 1 {
		t.Fatalf("decoded %v (%s)", got, got.TypeName())
	}
	again, err := Encode(got)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(again, payload) {
		t.Fatal("re-encoding dropped the unknown payload")
	}
	back, err := Decode(again)
	if err != nil || !proto.Equal(back, got) {
		t.Fatalf("re-encoded record decodes to %v, %v", back, err)
	}
}

func TestTypeNames(t *testing.T) {
	want := []string{"stream.announced", "publisher.connected", "track.configured", "segment.stored", "publisher.disconnected", "stream.ended"}
	for i, ev := range sample() {
		if got := ev.TypeName(); got != want[i] {
			t.Errorf("TypeName = %q, want %q", got, want[i])
		}
	}
	all := TypeNames()
	for _, w := range want {
		if !slices.Contains(all, w) {
			t.Errorf("TypeNames() = %q, lacks %q", all, w)
		}
	}
	seen := map[string]bool{}
	for _, n := range all {
		if seen[n] {
			t.Errorf("type name %q used twice", n)
		}
		seen[n] = true
	}
	var nilEv *Event
	if (&Event{}).TypeName() != "unknown" || nilEv.TypeName() != "unknown" {
		t.Error("an event without payload should be unknown")
	}
}

func FuzzDecode(f *testing.F) {
	for _, ev := range sample() {
		rec, _ := Encode(ev)
		f.Add(rec)
	}
	if golden, err := os.ReadFile(goldenPath); err == nil {
		f.Add(golden) // framed: not a record, a good mutation source
	}
	f.Add([]byte{})
	f.Add([]byte{0, 0, 0, 0, 1})
	f.Add(reChecksum([]byte{0, 0, 0, 0, RecordFormat, 0x0a, 0x01, 'x'}))
	f.Fuzz(func(t *testing.T, rec []byte) {
		ev, err := Decode(rec)
		if err != nil {
			if !errors.Is(err, ErrCorrupt) && !errors.Is(err, ErrFormat) {
				t.Fatalf("error %v is neither ErrCorrupt nor ErrFormat", err)
			}
			return
		}
		_ = ev.TypeName()
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
	b.SetBytes(int64(len(buf)))
}

func BenchmarkDecode(b *testing.B) {
	rec, _ := Encode(sample()[3])
	b.SetBytes(int64(len(rec)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Decode(rec); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkTypeName(b *testing.B) {
	ev := sample()[3]
	for b.Loop() {
		if ev.TypeName() == "" {
			b.Fatal(fmt.Errorf("empty"))
		}
	}
}
