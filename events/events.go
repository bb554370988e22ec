// Package events is onair's event schema (events.proto, generated code in
// events.pb.go) and the record format every event is stored and sent in.
//
// A record is:
//
//	[0:4]  CRC-32C (Castagnoli) of bytes [4:], big-endian
//	[4]    record format, currently 1
//	[5:]   the Event in protobuf wire format
//
// The checksum catches torn or bit-rotten records; the format byte lets a
// future encoding sit beside this one while old logs stay readable.
package events

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"strings"

	"google.golang.org/protobuf/proto"
)

// SchemaVersion is the schema version new events are written with.
const SchemaVersion = 1

// RecordFormat is the record layout Encode writes.
const RecordFormat = 1

const headerLen = 5

// Errors from Decode.
var (
	// ErrCorrupt: the record's checksum does not match or it is too short.
	ErrCorrupt = errors.New("events: corrupt record")
	// ErrFormat: a record format this build does not know (written by a newer onair).
	ErrFormat = errors.New("events: unknown record format")
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// Encode returns ev as a checksummed record.
func Encode(ev *Event) ([]byte, error) {
	return AppendRecord(nil, ev)
}

// AppendRecord appends ev's record to dst.
func AppendRecord(dst []byte, ev *Event) ([]byte, error) {
	start := len(dst)
	dst = append(dst, 0, 0, 0, 0, RecordFormat)
	dst, err := proto.MarshalOptions{Deterministic: true}.MarshalAppend(dst, ev)
	if err != nil {
		return nil, fmt.Errorf("events: encode %s: %w", ev.TypeName(), err)
	}
	binary.BigEndian.PutUint32(dst[start:], crc32.Checksum(dst[start+4:], castagnoli))
	return dst, nil
}

// Decode parses a record written by Encode.
func Decode(rec []byte) (*Event, error) {
	if len(rec) < headerLen {
		return nil, fmt.Errorf("%w: %d bytes, need at least %d", ErrCorrupt, len(rec), headerLen)
	}
	if got, want := crc32.Checksum(rec[4:], castagnoli), binary.BigEndian.Uint32(rec); got != want {
		return nil, fmt.Errorf("%w: checksum %08x, record says %08x", ErrCorrupt, got, want)
	}
	if rec[4] != RecordFormat {
		return nil, fmt.Errorf("%w %d (this onair reads format %d; upgrade onair)", ErrFormat, rec[4], RecordFormat)
	}
	ev := &Event{}
	if err := proto.Unmarshal(rec[headerLen:], ev); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrCorrupt, err)
	}
	return ev, nil
}

// TypeName names the event's payload, e.g. "stream.announced"; "unknown"
// for a payload this build does not know (a newer writer).
func (x *Event) TypeName() string {
	if x == nil || x.Body == nil {
		return "unknown"
	}
	switch x.Body.(type) {
	case *Event_StreamAnnounced:
		return "stream.announced"
	case *Event_PublisherConnected:
		return "publisher.connected"
	case *Event_PublisherDisconnected:
		return "publisher.disconnected"
	case *Event_TrackConfigured:
		return "track.configured"
	case *Event_SegmentStored:
		return "segment.stored"
	case *Event_StreamEnded:
		return "stream.ended"
	}
	// Fall back to the oneof wrapper's name so new payloads get a name
	// without touching this switch.
	n := fmt.Sprintf("%T", x.Body)
	n = strings.TrimPrefix(n, "*events.Event_")
	return strings.ToLower(n)
}
