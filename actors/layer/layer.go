// Package layer is the behaviour that records one quality layer of a
// session (the real-time layer now; the full-quality layer arrives in the
// background later): which GOP-aligned segments exist, which are durably
// stored, which are missing.
package layer

import (
	"time"

	"github.com/onair/onair/actors"
	"github.com/onair/onair/events"
)

// Layer names.
const (
	Realtime = "realtime"
	Full     = "full"
)

// Address is the actor address of a session's layer.
func Address(stream, session, name string) string {
	return "layer/" + stream + "/" + session + "/" + name
}

// Messages.
type (
	// Segment is a closed CMAF segment of one track.
	Segment struct {
		Track         string
		MSN           uint64
		Data          []byte
		Init          []byte
		Duration      int64 // 90 kHz
		StartPTS      int64 // 90 kHz, stream media time
		PDT           time.Time
		Discontinuity bool
		Independent   bool
	}
	// Stored reports the outcome of a Store effect.
	Stored struct {
		Track string
		MSN   uint64
		Err   error
	}
	// End: no more segments will come. The layer logs stream.ended
	// (after its segments, on the same ordered queue) and stops once all
	// are stored.
	End struct {
		Reason    string
		MediaTime int64
	}
	// GetIndex asks for an Index answer.
	GetIndex struct{}
	// Index is the layer's view of its segments.
	Index struct {
		Stored, Pending, Failed int
		Duration                int64 // 90 kHz of stored media per track summed
	}
)

// Store is the effect that makes a segment durable: the host writes
// Data (and Init) to the blob store, fsyncs, then appends Event with the
// blob hashes filled in, then answers Stored.
type Store struct {
	Stream string
	Data   []byte
	Init   []byte
	Event  *events.Event // body is SegmentStored with blob fields left empty
	Reply  Stored
}

type key struct {
	track string
	msn   uint64
}

// Layer is the behaviour. Create with New.
type Layer struct {
	stream, session, name string
	pending               map[key]int64
	stored, failed        int
	duration              int64
	ended                 bool
}

// New returns the layer behaviour.
func New(stream, session, name string) *Layer {
	return &Layer{stream: stream, session: session, name: name, pending: map[key]int64{}}
}

// Receive implements actors.Behaviour.
func (l *Layer) Receive(ctx *actors.Context, msg any) []actors.Effect {
	switch m := msg.(type) {
	case Segment:
		l.pending[key{m.Track, m.MSN}] = m.Duration
		ev := actors.NewEvent(l.stream, ctx.Now, m.StartPTS)
		ev.Body = &events.Event_SegmentStored{SegmentStored: &events.SegmentStored{
			Layer: l.name, Track: m.Track, Msn: m.MSN, Size: uint64(len(m.Data)),
			DurationTicks: m.Duration, StartPts: m.StartPTS,
			ProgramDateTimeUnixNano: m.PDT.UnixNano(), Discontinuity: m.Discontinuity,
			Independent: m.Independent,
		}}
		return []actors.Effect{Store{Stream: l.stream, Data: m.Data, Init: m.Init, Event: ev,
			Reply: Stored{Track: m.Track, MSN: m.MSN}}}
	case Stored:
		d, ok := l.pending[key{m.Track, m.MSN}]
		if !ok {
			return nil
		}
		delete(l.pending, key{m.Track, m.MSN})
		var fx []actors.Effect
		if m.Err != nil {
			l.failed++
			fx = append(fx, actors.Log{Level: actors.LevelError, Msg: "segment not recorded",
				Args: []any{"stream", l.stream, "layer", l.name, "track", m.Track, "msn", m.MSN, "err", m.Err.Error()}})
		} else {
			l.stored++
			l.duration += d
		}
		return append(fx, l.maybeStop(ctx)...)
	case End:
		if l.ended {
			return nil
		}
		l.ended = true
		ev := actors.NewEvent(l.stream, ctx.Now, m.MediaTime)
		ev.Body = &events.Event_StreamEnded{StreamEnded: &events.StreamEnded{SessionId: l.session, Reason: m.Reason}}
		return append([]actors.Effect{actors.Append{Stream: l.stream, Events: []*events.Event{ev}}}, l.maybeStop(ctx)...)
	case GetIndex:
		return []actors.Effect{actors.Respond{Msg: l.index()}}
	}
	return nil
}

func (l *Layer) index() Index {
	return Index{Stored: l.stored, Pending: len(l.pending), Failed: l.failed, Duration: l.duration}
}

func (l *Layer) maybeStop(ctx *actors.Context) []actors.Effect {
	if !l.ended || len(l.pending) > 0 {
		return nil
	}
	return []actors.Effect{actors.Log{Level: actors.LevelInfo, Msg: "layer recorded",
		Args: []any{"stream", l.stream, "session", l.session, "layer", l.name, "segments", l.stored, "failed", l.failed,
			"seconds", float64(l.duration) / 90000}}, actors.Stop{Name: ctx.Self}}
}
