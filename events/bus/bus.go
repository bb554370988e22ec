// Package bus publishes committed events to subscribers (projections,
// sockets) over watermill. In one process it is watermill's GoChannel;
// the Publisher/Subscriber seam lets watermill-nats carry the same
// messages between nodes.
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

// Bus publishes encoded event records.
type Bus struct {
	pub message.Publisher
	sub message.Subscriber
	log *slog.Logger
	gc  *gochannel.GoChannel
}

// New returns an in-process bus.
func New(logger *slog.Logger) *Bus {
	if logger == nil {
		logger = slog.Default()
	}
	// watermill reports every message without subscribers at info level;
	// only its warnings and errors belong in onair's log.
	quiet := slog.New(minLevel{logger.Handler(), slog.LevelWarn}).With("component", "bus")
	gc := gochannel.NewGoChannel(gochannel.Config{OutputChannelBuffer: 1024}, watermill.NewSlogLogger(quiet))
	return &Bus{pub: gc, sub: gc, gc: gc, log: logger}
}

// Publish sends each event to its stream's topic and to AllTopic.
func (b *Bus) Publish(evs ...*events.Event) error {
	for _, ev := range evs {
		rec, err := events.Encode(ev)
		if err != nil {
			return err
		}
		for _, topic := range []string{Topic(ev.Stream), AllTopic} {
			msg := message.NewMessage(watermill.NewUUID(), rec)
			msg.Metadata.Set("stream", ev.Stream)
			msg.Metadata.Set("seq", strconv.FormatUint(ev.Seq, 10))
			msg.Metadata.Set("type", ev.TypeName())
			if err := b.pub.Publish(topic, msg); err != nil {
				return fmt.Errorf("bus: publish %s: %w", topic, err)
			}
		}
	}
	return nil
}

// Subscribe delivers stream's events from now on, in commit order, until ctx ends.
func (b *Bus) Subscribe(ctx context.Context, stream string) (<-chan *events.Event, error) {
	return b.subscribe(ctx, Topic(stream))
}

// SubscribeAll delivers every stream's events until ctx ends.
func (b *Bus) SubscribeAll(ctx context.Context) (<-chan *events.Event, error) {
	return b.subscribe(ctx, AllTopic)
}

func (b *Bus) subscribe(ctx context.Context, topic string) (<-chan *events.Event, error) {
	msgs, err := b.sub.Subscribe(ctx, topic)
	if err != nil {
		return nil, fmt.Errorf("bus: subscribe %s: %w", topic, err)
	}
	out := make(chan *events.Event, 64)
	go func() {
		defer close(out)
		for msg := range msgs {
			ev, err := events.Decode(msg.Payload)
			msg.Ack()
			if err != nil {
				b.log.Warn("bus: undecodable event dropped", "topic", topic, "err", err)
				continue
			}
			select {
			case out <- ev:
			case <-ctx.Done():
				return
			}
		}
	}()
	return out, nil
}

// Close stops the bus; subscriptions end.
func (b *Bus) Close() error { return b.gc.Close() }

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
