package layer

import (
	"errors"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/onair/onair/actors"
)

func ctx() *actors.Context {
	return &actors.Context{Now: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC), Self: "layer/x", Rand: rand.New(rand.NewPCG(1, 1))}
}

func only[T any](t *testing.T, fx []actors.Effect) T {
	t.Helper()
	var out []T
	for _, e := range fx {
		if v, ok := e.(T); ok {
			out = append(out, v)
		}
	}
	if len(out) != 1 {
		t.Fatalf("want one %T in %v", *new(T), fx)
	}
	return out[0]
}

func TestRecordsSegmentsThenEnds(t *testing.T) {
	l := New("live/a", "s1", Realtime)
	c := ctx()
	st := only[Store](t, l.Receive(c, Segment{Track: "video", MSN: 0, Data: []byte{1}, Init: []byte{2}, Duration: 90000, StartPTS: 0}))
	ss := st.Event.GetSegmentStored()
	if ss == nil || ss.Layer != Realtime || ss.Track != "video" || ss.DurationTicks != 90000 || ss.Size != 1 {
		t.Fatalf("store event %v", st.Event)
	}
	only[Store](t, l.Receive(c, Segment{Track: "audio", MSN: 0, Data: []byte{3}, Duration: 90000}))

	// End while segments are pending: stream.ended is logged (after the
	// stores, on the same queue) but the layer waits for its stores.
	fx := l.Receive(c, End{Reason: "bye", MediaTime: 90000})
	if ap := only[actors.Append](t, fx); ap.Events[0].TypeName() != "stream.ended" {
		t.Fatalf("end appended %v", ap.Events[0])
	}
	for _, e := range fx {
		if _, ok := e.(actors.Stop); ok {
			t.Fatal("stopped with segments pending")
		}
	}
	l.Receive(c, st.Reply)
	fx = l.Receive(c, Stored{Track: "audio", MSN: 0, Err: errors.New("disk full")})
	only[actors.Stop](t, fx)
	if idx := l.index(); idx.Stored != 1 || idx.Failed != 1 || idx.Pending != 0 || idx.Duration != 90000 {
		t.Fatalf("index %+v", idx)
	}
	// A second End or a stray ack changes nothing.
	if fx := l.Receive(c, End{}); len(fx) != 0 {
		t.Fatalf("second End: %v", fx)
	}
	if fx := l.Receive(c, Stored{Track: "video", MSN: 9}); len(fx) != 0 {
		t.Fatalf("stray ack: %v", fx)
	}
}
