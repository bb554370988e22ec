package host

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/onair/onair/actors"
	"github.com/onair/onair/events"
)

// memLog is an in-memory Log that records append order.
type memLog struct {
	mu   sync.Mutex
	seqs map[string]uint64
	got  []string
}

func (m *memLog) Append(_ context.Context, stream string, evs ...*events.Event) (uint64, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, ev := range evs {
		m.seqs[stream]++
		ev.Seq = m.seqs[stream]
		m.got = append(m.got, fmt.Sprintf("%s/%d", stream, ev.MediaTime))
	}
	return m.seqs[stream], nil
}

// echo answers requests, appends on demand, panics on demand and sets timers.
type echo struct{ count int }

type (
	ping     struct{}
	boom     struct{}
	logIt    struct{ n int64 }
	arm      struct{ d time.Duration }
	fired    struct{}
	getCount struct{}
)

func (e *echo) Receive(ctx *actors.Context, msg any) []actors.Effect {
	switch m := msg.(type) {
	case ping:
		e.count++
		return []actors.Effect{actors.Respond{Msg: "pong"}}
	case boom:
		panic("behaviour bug")
	case logIt:
		ev := actors.NewEvent("live/x", ctx.Now, m.n)
		return []actors.Effect{actors.Append{Stream: "live/x", Events: []*events.Event{ev}, Reply: m.n}}
	case actors.Appended:
		e.count++
	case arm:
		return []actors.Effect{actors.SetTimer{Key: "t", After: m.d, Msg: fired{}}}
	case fired:
		e.count += 100
	case getCount:
		return []actors.Effect{actors.Respond{Msg: e.count}}
	}
	return nil
}

func newHost(t *testing.T) (*Host, *memLog) {
	l := &memLog{seqs: map[string]uint64{}}
	h := New(Config{Log: l, Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), Seed: 1})
	t.Cleanup(h.Shutdown)
	return h, l
}

func TestRequestAndPanicRecovery(t *testing.T) {
	h, _ := newHost(t)
	if err := h.Ensure("echo/1", func() actors.Behaviour { return &echo{} }); err != nil {
		t.Fatal(err)
	}
	if res, err := h.Request("echo/1", ping{}, time.Second); err != nil || res != "pong" {
		t.Fatalf("request: %v %v", res, err)
	}
	// A panicking message is dropped; the actor and its state survive.
	h.Send("echo/1", boom{})
	if res, err := h.Request("echo/1", getCount{}, time.Second); err != nil || res != 1 {
		t.Fatalf("after panic: %v %v", res, err)
	}
	if _, err := h.Request("nobody", ping{}, time.Second); err == nil {
		t.Fatal("request to a missing actor succeeded")
	}
}

func TestAppendsKeepOrderAndReply(t *testing.T) {
	h, l := newHost(t)
	h.Ensure("echo/1", func() actors.Behaviour { return &echo{} })
	for i := int64(0); i < 200; i++ {
		h.Send("echo/1", logIt{n: i})
	}
	h.StopActor("echo/1") // after its mailbox is empty
	h.Drain()
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.got) != 200 {
		t.Fatalf("%d appends, want 200", len(l.got))
	}
	for i, g := range l.got {
		if g != fmt.Sprintf("live/x/%d", i) {
			t.Fatalf("append %d is %s: order lost", i, g)
		}
	}
}

func TestTimerFires(t *testing.T) {
	h, _ := newHost(t)
	h.Ensure("echo/1", func() actors.Behaviour { return &echo{} })
	h.Send("echo/1", arm{d: time.Millisecond})
	deadline := time.Now().Add(5 * time.Second)
	for {
		res, _ := h.Request("echo/1", getCount{}, time.Second)
		if res == 100 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("timer never fired (count %v)", res)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestNamesAndStopPrefix(t *testing.T) {
	h, _ := newHost(t)
	for _, n := range []string{"a/1", "a/2", "b/1"} {
		h.Ensure(n, func() actors.Behaviour { return &echo{} })
	}
	if got := h.Names("a/"); len(got) != 2 {
		t.Fatalf("Names(a/) = %v", got)
	}
	h.StopPrefix("a/")
	deadline := time.Now().Add(5 * time.Second)
	for h.Exists("a/1") || h.Exists("a/2") {
		if time.Now().After(deadline) {
			t.Fatal("actors still registered after StopPrefix")
		}
		time.Sleep(5 * time.Millisecond)
	}
	if !h.Exists("b/1") {
		t.Fatal("StopPrefix stopped an actor outside the prefix")
	}
}
