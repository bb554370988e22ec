package bus

import (
	"context"
	"fmt"
	"log/slog"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/onair/onair/events"
	"github.com/onair/onair/events/store"
)

func ev(id int64) *events.Event {
	return &events.Event{
		MediaTime: id,
		Body:      &events.Event_StreamEnded{StreamEnded: &events.StreamEnded{SessionId: "s1", Reason: fmt.Sprint("r", id)}},
	}
}

// wired opens a store whose commits are published on a fresh bus, the way
// onair serve wires them.
func wired(t *testing.T) (*store.Store, *Bus) {
	t.Helper()
	b := New(slog.New(slog.DiscardHandler))
	t.Cleanup(func() { b.Close() })
	s, err := store.Open(filepath.Join(t.TempDir(), "events.db"), store.Options{
		OnCommit: func(evs []*events.Event) {
			if err := b.Publish(evs...); err != nil {
				t.Errorf("publish: %v", err)
			}
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s, b
}

// collect reads n events from ch. A missing event blocks forever, so a
// watchdog turns that into a failure; it never decides a passing run.
func collect(t *testing.T, ch <-chan *events.Event, n int) []*events.Event {
	t.Helper()
	out := make([]*events.Event, 0, n)
	watchdog := time.After(20 * time.Second)
	for len(out) < n {
		select {
		case e, ok := <-ch:
			if !ok {
				t.Fatalf("subscription ended after %d of %d events", len(out), n)
			}
			out = append(out, e)
		case <-watchdog:
			t.Fatalf("got %d of %d events, the rest never came", len(out), n)
		}
	}
	return out
}

// appendAll appends each events to every stream from one goroutine per
// stream, several events per Append, so that commits mix streams.
func appendAll(t *testing.T, s *store.Store, streams []string, each int) {
	t.Helper()
	var wg sync.WaitGroup
	for _, st := range streams {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < each; i += 3 {
				if _, err := s.Append(context.Background(), st, ev(int64(i)), ev(int64(i+1)), ev(int64(i+2))); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
}

func TestSubscribeInSeqOrder(t *testing.T) {
	s, b := wired(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	streams := []string{"live/a", "live/b", "live/c"}
	subs := map[string]<-chan *events.Event{}
	for _, st := range streams {
		ch, err := b.Subscribe(ctx, st)
		if err != nil {
			t.Fatal(err)
		}
		subs[st] = ch
	}
	const each = 300
	appendAll(t, s, streams, each)
	for _, st := range streams {
		got := collect(t, subs[st], each)
		for i, e := range got {
			if e.Stream != st || e.Seq != uint64(i+1) || e.MediaTime != int64(i) {
				t.Fatalf("%s: event %d is %s seq %d (id %d), want seq %d in order", st, i, e.Stream, e.Seq, e.MediaTime, i+1)
			}
		}
	}
	// Nothing more than what was committed.
	for _, st := range streams {
		select {
		case e := <-subs[st]:
			t.Fatalf("%s: extra event %s seq %d", st, e.Stream, e.Seq)
		default:
		}
	}
}

func TestSubscribeAll(t *testing.T) {
	s, b := wired(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	all, err := b.SubscribeAll(ctx)
	if err != nil {
		t.Fatal(err)
	}
	streams := []string{"live/a", "live/b", "live/c"}
	const each = 300
	appendAll(t, s, streams, each)
	got := collect(t, all, each*len(streams))
	last := map[string]uint64{}
	for _, e := range got {
		if e.Seq != last[e.Stream]+1 {
			t.Fatalf("%s: seq %d after %d on the all-streams topic", e.Stream, e.Seq, last[e.Stream])
		}
		last[e.Stream] = e.Seq
	}
	for _, st := range streams {
		if last[st] != each {
			t.Fatalf("%s: last seq %d on the all-streams topic, want %d", st, last[st], each)
		}
	}
}

// TestSubscriptionEndsWithContext: a subscriber that leaves gets its
// channel closed and does not hold up publishing.
func TestSubscriptionEndsWithContext(t *testing.T) {
	s, b := wired(t)
	ctx, cancel := context.WithCancel(context.Background())
	ch, err := b.Subscribe(ctx, "live/a")
	if err != nil {
		t.Fatal(err)
	}
	cancel()
	for range ch { // drains until closed; hangs (test timeout) if never closed
	}
	if _, err := s.Append(context.Background(), "live/a", ev(1)); err != nil {
		t.Fatal(err)
	}
}
