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
	"sync"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
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
	// ErrNilEvent: Encode was handed a nil *Event.
	ErrNilEvent = errors.New("events: nil event")
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// Encode returns ev as a checksummed record.
func Encode(ev *Event) ([]byte, error) {
	return AppendRecord(nil, ev)
}

// AppendRecord appends ev's record to dst. On error dst is returned
// unchanged.
func AppendRecord(dst []byte, ev *Event) ([]byte, error) {
	if ev == nil {
		return dst, ErrNilEvent
	}
	start := len(dst)
	out, err := proto.MarshalOptions{Deterministic: true}.MarshalAppend(append(dst, 0, 0, 0, 0, RecordFormat), ev)
	if err != nil {
		return dst, fmt.Errorf("events: encode %s: %w", ev.TypeName(), err)
	}
	binary.BigEndian.PutUint32(out[start:], crc32.Checksum(out[start+4:], castagnoli))
	return out, nil
}

// Decode parses a record written by Encode. It fails with ErrCorrupt when
// the checksum does not match and with ErrFormat for a record format from
// a newer onair. Events of a newer schema version decode: fields and
// payloads this build does not know are kept (TypeName "unknown") and
// survive a re-encode.
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

// TypeName names the event's payload: the body field's name with its
// first '_' turned into '.', e.g. "segment.stored" (events.proto says
// how to name new payloads). An event without a payload, or with one
// this build does not know (written by a newer onair), is "unknown".
func (x *Event) TypeName() string {
	if x == nil || x.Body == nil {
		return "unknown"
	}
	fd := x.ProtoReflect().WhichOneof(body().oneof)
	if fd == nil {
		return "unknown"
	}
	return body().names[fd.Number()]
}

// TypeNames lists every payload type this build knows, in field order.
func TypeNames() []string {
	fields := body().oneof.Fields()
	out := make([]string, 0, fields.Len())
	for i := range fields.Len() {
		out = append(out, body().names[fields.Get(i).Number()])
	}
	return out
}

// body describes the payload oneof. Lazy: package variables are set before
// events.pb.go's init registers the descriptors.
var body = sync.OnceValue(func() (b struct {
	oneof protoreflect.OneofDescriptor
	names map[protoreflect.FieldNumber]string
}) {
	b.oneof = (&Event{}).ProtoReflect().Descriptor().Oneofs().ByName("body")
	b.names = map[protoreflect.FieldNumber]string{}
	fields := b.oneof.Fields()
	for i := range fields.Len() {
		f := fields.Get(i)
		b.names[f.Number()] = strings.Replace(string(f.Name()), "_", ".", 1)
	}
	return b
})
