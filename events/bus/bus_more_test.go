package bus

import (
	"context"
	"log/slog"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/ThreeDotsLabs/watermill/pubsub/gochannel"

	"github.com/onair/onair/events"
)

var quiet = slog.New(slog.DiscardHandler)

// numbered is stream's event seq, as the store would hand it over.
func numbered(stream string, seq uint64) *events.Event {
	e := ev(int64(seq))
	e.Stream, e.Seq, e.SchemaVersion = stream, seq, events.SchemaVersion
	return e
}

// TestSlowSubscriberIsDropped: one subscriber that never reads cannot
// hold up publishing (the store's committer) or the other subscribers;
// past its backlog its channel closes.
func TestSlowSubscriberIsDropped(t *testing.T) {
	b := New(quiet, WithMaxBacklog(10))
	defer b.Close()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	slow, err := b.Subscribe(ctx, "live/a")
	if err != nil {
		t.Fatal(err)
	}
	fast, err := b.Subscribe(ctx, "live/a")
	if err != nil {
		t.Fatal(err)
	}
	const n = 200
	got := make(chan []*events.Event)
	go func() {
		var seen []*events.Event
		for e := range fast {
			seen = append(seen, e)
			if len(seen) == n {
				break
			}
		}
		got <- seen
	}()
	for seq := uint64(1); seq <= n; seq++ {
		if err := b.Publish(numbered("live/a", seq)); err != nil {
			t.Fatal(err)
		}
	}
	for i, e := range <-got {
		if e.Seq != uint64(i+1) {
			t.Fatalf("fast subscriber: event %d has seq %d", i, e.Seq)
		}
	}
	if e, ok := <-slow; ok {
		t.Fatalf("slow subscriber still open, got seq %d; want its channel closed", e.Seq)
	}
}

// TestPublishDoesNotWaitForReaders: a subscriber that reads only after
// everything was published still gets everything, in order.
func TestPublishDoesNotWaitForReaders(t *testing.T) {
	b := New(quiet)
	defer b.Close()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ch, err := b.Subscribe(ctx, "live/a")
	if err != nil {
		t.Fatal(err)
	}
	const n = 3000
	for seq := uint64(1); seq <= n; seq += 3 {
		// Several events per call, as OnCommit hands them over.
		if err := b.Publish(numbered("live/a", seq), numbered("live/a", seq+1), numbered("live/a", seq+2)); err != nil {
			t.Fatal(err)
		}
	}
	for i, e := range collect(t, ch, n) {
		if e.Seq != uint64(i+1) || e.Stream != "live/a" {
			t.Fatalf("event %d: %s seq %d", i, e.Stream, e.Seq)
		}
	}
}

// TestMessages: what goes over watermill, seen by a raw subscriber of the
// pub/sub handed in with WithPubSub.
func TestMessages(t *testing.T) {
	gc := gochannel.NewGoChannel(gochannel.Config{BlockPublishUntilSubscriberAck: true}, watermill.NopLogger{})
	b := New(quiet, WithPubSub(gc, gc))
	defer b.Close()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	rawStream, err := gc.Subscribe(ctx, Topic("live/a"))
	if err != nil {
		t.Fatal(err)
	}
	rawAll, err := gc.Subscribe(ctx, AllTopic)
	if err != nil {
		t.Fatal(err)
	}
	want := numbered("live/a", 42)
	done := make(chan error, 1)
	go func() { done <- b.Publish(want) }()
	for _, raw := range []<-chan *message.Message{rawStream, rawAll} {
		msg := <-raw
		msg.Ack()
		if msg.Metadata.Get("stream") != "live/a" || msg.Metadata.Get("seq") != "42" || msg.Metadata.Get("type") != "stream.ended" {
			t.Fatalf("metadata %v", msg.Metadata)
		}
		got, err := events.Decode(msg.Payload)
		if err != nil || got.Seq != 42 || got.GetStreamEnded().GetReason() != want.GetStreamEnded().GetReason() {
			t.Fatalf("payload decodes to %v, %v", got, err)
		}
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

// TestUndecodableMessageSkipped: a damaged message is logged and skipped;
// the subscription goes on.
func TestUndecodableMessageSkipped(t *testing.T) {
	gc := gochannel.NewGoChannel(gochannel.Config{BlockPublishUntilSubscriberAck: true}, watermill.NopLogger{})
	b := New(quiet, WithPubSub(gc, gc))
	defer b.Close()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ch, err := b.Subscribe(ctx, "live/a")
	if err != nil {
		t.Fatal(err)
	}
	rec, _ := events.Encode(numbered("live/a", 1))
	rec[len(rec)-1] ^= 1
	if err := gc.Publish(Topic("live/a"), message.NewMessage("bad", rec)); err != nil {
		t.Fatal(err)
	}
	if err := b.Publish(numbered("live/a", 2)); err != nil {
		t.Fatal(err)
	}
	if got := collect(t, ch, 1); got[0].Seq != 2 {
		t.Fatalf("got seq %d, want 2 after the damaged message", got[0].Seq)
	}
}

func TestClose(t *testing.T) {
	b := New(quiet)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ch, err := b.Subscribe(ctx, "live/a")
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Publish(numbered("live/a", 1)); err != nil {
		t.Fatal(err)
	}
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	// What was published before Close is still delivered, then the end.
	if got := collect(t, ch, 1); got[0].Seq != 1 {
		t.Fatalf("seq %d", got[0].Seq)
	}
	if e, ok := <-ch; ok {
		t.Fatalf("after Close: seq %d, want a closed channel", e.Seq)
	}
	if err := b.Publish(numbered("live/a", 2)); err == nil {
		t.Fatal("Publish after Close succeeded")
	}
	if _, err := b.SubscribeAll(ctx); err == nil {
		t.Fatal("SubscribeAll after Close succeeded")
	}
}

// TestSubscriberMayAppend: a subscriber that appends in reaction to what
// it receives (a projection writing derived events) does not deadlock the
// store's committer, which is publishing to that very subscriber.
func TestSubscriberMayAppend(t *testing.T) {
	s, b := wired(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	in, err := b.Subscribe(ctx, "live/in")
	if err != nil {
		t.Fatal(err)
	}
	derived, err := b.Subscribe(ctx, "live/derived")
	if err != nil {
		t.Fatal(err)
	}
	const n = 200
	errc := make(chan error, 1)
	go func() {
		for e := range in {
			if _, err := s.Append(ctx, "live/derived", ev(int64(e.Seq)*10)); err != nil {
				errc <- err
				return
			}
			if e.Seq == n {
				break
			}
		}
		errc <- nil
	}()
	var wg sync.WaitGroup
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range n / 4 {
				if _, err := s.Append(ctx, "live/in", ev(0)); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	for i, e := range collect(t, derived, n) {
		if e.Seq != uint64(i+1) || e.MediaTime != int64(i+1)*10 {
			t.Fatalf("derived event %d: seq %d id %d", i, e.Seq, e.MediaTime)
		}
	}
	select {
	case err := <-errc:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(20 * time.Second): // deadlock detector only
		t.Fatal("reacting subscriber never finished")
	}
}

// BenchmarkPublish: one op is one event published to its stream topic
// and the all topic, with subs subscribers reading each.
func BenchmarkPublish(b *testing.B) {
	for _, subs := range []int{0, 1, 8} {
		b.Run("subscribers="+strconv.Itoa(subs), func(b *testing.B) {
			bus := New(quiet)
			defer bus.Close()
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			var wg sync.WaitGroup
			for i := range subs {
				var ch <-chan *events.Event
				var err error
				if i%2 == 0 {
					ch, err = bus.Subscribe(ctx, "live/a")
				} else {
					ch, err = bus.SubscribeAll(ctx)
				}
				if err != nil {
					b.Fatal(err)
				}
				wg.Add(1)
				go func() {
					defer wg.Done()
					for range ch {
					}
				}()
			}
			evs := make([]*events.Event, 16)
			for i := range evs {
				evs[i] = numbered("live/a", uint64(i+1))
			}
			b.ReportAllocs()
			n := 0
			for b.Loop() {
				if err := bus.Publish(evs[n%len(evs)]); err != nil {
					b.Fatal(err)
				}
				n++
			}
			b.ReportMetric(float64(n)/b.Elapsed().Seconds(), "events/s")
			cancel()
			wg.Wait()
		})
	}
}
