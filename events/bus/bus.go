// Package bus publishes committed events to subscribers (projections,
// sockets) over watermill. In one process it is watermill's GoChannel;
// WithPubSub puts any watermill Publisher/Subscriber pair (watermill-nats
// for several nodes) in its place without changing callers.
//
// Messages carry the events.Encode record as payload, so they are
// checksummed end to end, and metadata "stream", "seq" and "type".
//
// The bus never lets a subscriber slow the log down: each subscription
// has its own queue between watermill and its channel. A subscriber that
// falls more than MaxBacklog events behind is dropped (its channel is
// closed while its ctx is still live); it resubscribes and catches up from
// the store, using the seq of the last event it saw.
package bus

import (
	"context"
	"fmt"
	"log/slog"
	"strconv"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/ThreeDotsLabs/watermill/pubsub/gochannel"

	"github.com/onair/onair/events"
)

// AllTopic carries every event of every stream.
const AllTopic = "events.all"

// Topic is the topic of one stream's events.
func Topic(stream string) string { return "events.stream." + stream }

// DefaultMaxBacklog is how many events a subscriber may fall behind.
const DefaultMaxBacklog = 10_000

// Publisher is what the store's OnCommit hook needs.
type Publisher interface {
	Publish(evs ...*events.Event) error
}

// Subscriber is what projections and sockets need.
type Subscriber interface {
	Subscribe(ctx context.Context, stream string) (<-chan *events.Event, error)
	SubscribeAll(ctx context.Context) (<-chan *events.Event, error)
}

var (
	_ Publisher  = (*Bus)(nil)
	_ Subscriber = (*Bus)(nil)
)

// Bus carries encoded event records over watermill.
type Bus struct {
	pub        message.Publisher
	sub        message.Subscriber
	log        *slog.Logger
	maxBacklog int
}

// Option configures New.
type Option func(*Bus)

// WithPubSub carries events over pub and sub (e.g. watermill-nats)
// instead of an in-process GoChannel. Close closes both. pub must keep
// each topic's messages in publish order.
func WithPubSub(pub message.Publisher, sub message.Subscriber) Option {
	return func(b *Bus) { b.pub, b.sub = pub, sub }
}

// WithMaxBacklog sets how many events a subscriber may fall behind
// before it is dropped (default DefaultMaxBacklog).
func WithMaxBacklog(n int) Option {
	return func(b *Bus) { b.maxBacklog = max(n, 1) }
}

// New returns a bus, in-process unless WithPubSub says otherwise.
func New(logger *slog.Logger, opts ...Option) *Bus {
	if logger == nil {
		logger = slog.Default()
	}
	b := &Bus{log: logger.With("component", "bus"), maxBacklog: DefaultMaxBacklog}
	for _, o := range opts {
		o(b)
	}
	if b.pub == nil {
		// watermill reports every message without subscribers at info
		// level; only its warnings and errors belong in onair's log.
		quiet := watermill.NewSlogLogger(slog.New(minLevel{b.log.Handler(), slog.LevelWarn}))
		gc := gochannel.NewGoChannel(gochannel.Config{
			// GoChannel hands each message to each subscriber on its own
			// goroutine: without waiting for the ack, seq order is lost.
			// The wait is short, as subscriptions ack on receipt.
			BlockPublishUntilSubscriberAck: true,
			OutputChannelBuffer:            16,
		}, quiet)
		b.pub, b.sub = gc, gc
	}
	return b
}

// Publish sends each event, in order, to its stream's topic and to
// AllTopic. It returns once every current subscriber has queued it.
func (b *Bus) Publish(evs ...*events.Event) error {
	for _, ev := range evs {
		rec, err := events.Encode(ev)
		if err != nil {
			return fmt.Errorf("bus: %s seq %d: %w", ev.GetStream(), ev.GetSeq(), err)
		}
		seq, typ := strconv.FormatUint(ev.Seq, 10), ev.TypeName()
		for _, topic := range [...]string{Topic(ev.Stream), AllTopic} {
			msg := message.NewMessage(watermill.NewUUID(), rec)
			msg.Metadata.Set("stream", ev.Stream)
			msg.Metadata.Set("seq", seq)
			msg.Metadata.Set("type", typ)
			if err := b.pub.Publish(topic, msg); err != nil {
				return fmt.Errorf("bus: publish %s seq %d to %s: %w", ev.Stream, ev.Seq, topic, err)
			}
		}
	}
	return nil
}

// Subscribe delivers stream's events published from now on, in seq
// order. The channel closes when ctx ends, when the bus closes, or when
// the subscriber falls behind (see the package comment).
func (b *Bus) Subscribe(ctx context.Context, stream string) (<-chan *events.Event, error) {
	return b.subscribe(ctx, Topic(stream))
}

// SubscribeAll delivers every stream's events, each stream in seq order.
func (b *Bus) SubscribeAll(ctx context.Context) (<-chan *events.Event, error) {
	return b.subscribe(ctx, AllTopic)
}

func (b *Bus) subscribe(ctx context.Context, topic string) (<-chan *events.Event, error) {
	subCtx, cancel := context.WithCancel(ctx)
	msgs, err := b.sub.Subscribe(subCtx, topic)
	if err != nil {
		cancel()
		return nil, fmt.Errorf("bus: subscribe %s: %w", topic, err)
	}
	out := make(chan *events.Event)
	go b.forward(ctx, cancel, topic, msgs, out)
	return out, nil
}

// forward acks each message on receipt and queues its event for out, so
// publishing never waits for the consumer.
func (b *Bus) forward(ctx context.Context, cancel context.CancelFunc, topic string, msgs <-chan *message.Message, out chan<- *events.Event) {
	defer close(out)
	defer func() {
		cancel()
		// Until watermill closes msgs, keep acking so nothing waits on us.
		go func() {
			for m := range msgs {
				m.Ack()
			}
		}()
	}()
	var queue []*events.Event
	for msgs != nil || len(queue) > 0 {
		var send chan<- *events.Event
		var head *events.Event
		if len(queue) > 0 {
			send, head = out, queue[0]
		}
		select {
		case msg, ok := <-msgs:
			if !ok {
				msgs = nil // bus closed: deliver what is queued, then end
				continue
			}
			ev, err := events.Decode(msg.Payload)
			msg.Ack()
			if err != nil {
				b.log.Warn("undecodable event dropped", "topic", topic, "seq", msg.Metadata.Get("seq"), "err", err)
				continue
			}
			if len(queue) >= b.maxBacklog {
				b.log.Warn("subscriber fell behind and was dropped; it must resubscribe and catch up from the store",
					"topic", topic, "backlog", len(queue), "stream", ev.Stream, "seq", ev.Seq)
				return
			}
			queue = append(queue, ev)
		case send <- head:
			queue[0] = nil
			if queue = queue[1:]; len(queue) == 0 {
				queue = nil // let the backing array go
			}
		case <-ctx.Done():
			return
		}
	}
}

// Close stops the bus; every subscription's channel closes.
func (b *Bus) Close() error {
	err := b.pub.Close()
	if any(b.sub) != any(b.pub) {
		if e := b.sub.Close(); err == nil {
			err = e
		}
	}
	return err
}

// minLevel drops records below min.
type minLevel struct {
	slog.Handler
	min slog.Level
}

func (m minLevel) Enabled(ctx context.Context, l slog.Level) bool {
	return l >= m.min && m.Handler.Enabled(ctx, l)
}

func (m minLevel) WithAttrs(a []slog.Attr) slog.Handler {
	return minLevel{m.Handler.WithAttrs(a), m.min}
}

func (m minLevel) WithGroup(g string) slog.Handler { return minLevel{m.Handler.WithGroup(g), m.min} }
