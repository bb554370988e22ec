// Package host runs onair behaviours on protoactor-go: one mailbox per
// actor, effects carried out right after each message, durable effects
// queued per stream so the log keeps their order while different streams
// share group commits.
package host

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"log/slog"
	"math/rand/v2"
	"reflect"
	"runtime/debug"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/asynkron/protoactor-go/actor"

	"github.com/onair/onair/actors"
	"github.com/onair/onair/events"
)

// ErrNoActor is returned when a message is addressed to an actor that does not exist.
var ErrNoActor = errors.New("no such actor")

// Log is where Append effects go: an append blocks until durable.
type Log interface {
	Append(ctx context.Context, stream string, evs ...*events.Event) (uint64, error)
}

// Handler carries out a domain effect emitted by the actor at address from.
type Handler func(from string, e actors.Effect)

// Config wires a host.
type Config struct {
	Log    Log
	Logger *slog.Logger
	Clock  func() time.Time // default time.Now
	Seed   uint64           // per-actor random sources derive from it
}

// Host hosts behaviours.
type Host struct {
	cfg      Config
	system   *actor.ActorSystem
	mu       sync.Mutex
	pids     map[string]*actor.PID
	timers   map[string]map[string]*time.Timer
	handlers map[reflect.Type]Handler
	queues   map[string]*queue
	jobs     sync.WaitGroup
}

// New starts an actor system.
func New(cfg Config) *Host {
	if cfg.Clock == nil {
		cfg.Clock = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	quiet := slog.New(slog.NewTextHandler(discard{}, &slog.HandlerOptions{Level: slog.LevelError + 1}))
	return &Host{
		cfg:      cfg,
		system:   actor.NewActorSystem(actor.WithLoggerFactory(func(*actor.ActorSystem) *slog.Logger { return quiet })),
		pids:     map[string]*actor.PID{},
		timers:   map[string]map[string]*time.Timer{},
		handlers: map[reflect.Type]Handler{},
		queues:   map[string]*queue{},
	}
}

type discard struct{}

func (discard) Write(p []byte) (int, error) { return len(p), nil }

// Handle registers the handler for effects of the same type as example.
func (h *Host) Handle(example actors.Effect, fn Handler) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.handlers[reflect.TypeOf(example)] = fn
}

// Ensure spawns the actor at name running make() unless it already runs.
func (h *Host) Ensure(name string, make func() actors.Behaviour) error {
	h.mu.Lock()
	_, ok := h.pids[name]
	h.mu.Unlock()
	if ok {
		return nil
	}
	return h.spawn(name, make())
}

func (h *Host) spawn(name string, b actors.Behaviour) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if _, ok := h.pids[name]; ok {
		return nil
	}
	props := actor.PropsFromProducer(func() actor.Actor { return &cell{h: h, name: name, b: b, rnd: h.rand(name)} })
	pid, err := h.system.Root.SpawnNamed(props, name)
	if err != nil {
		return fmt.Errorf("spawn %s: %w", name, err)
	}
	h.pids[name] = pid
	return nil
}

func (h *Host) rand(name string) *rand.Rand {
	f := fnv.New64a()
	f.Write([]byte(name))
	return rand.New(rand.NewPCG(h.cfg.Seed, f.Sum64()))
}

func (h *Host) pid(name string) *actor.PID {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.pids[name]
}

// Send delivers msg to the actor at name.
func (h *Host) Send(name string, msg any) error {
	pid := h.pid(name)
	if pid == nil {
		return fmt.Errorf("%w: %s", ErrNoActor, name)
	}
	h.system.Root.Send(pid, msg)
	return nil
}

// Request sends msg and waits up to timeout for the actor's Respond.
func (h *Host) Request(name string, msg any, timeout time.Duration) (any, error) {
	pid := h.pid(name)
	if pid == nil {
		return nil, fmt.Errorf("%w: %s", ErrNoActor, name)
	}
	return h.system.Root.RequestFuture(pid, msg, timeout).Result()
}

// Exists reports whether an actor runs at name.
func (h *Host) Exists(name string) bool { return h.pid(name) != nil }

// StopActor ends the actor at name after its queued messages and waits for it.
func (h *Host) StopActor(name string) {
	if pid := h.pid(name); pid != nil {
		_ = h.system.Root.PoisonFuture(pid).Wait()
	}
}

// Drain waits until every queued durable effect has been carried out.
func (h *Host) Drain() { h.jobs.Wait() }

// Shutdown stops every actor, waits for durable effects, and ends the system.
func (h *Host) Shutdown() {
	h.mu.Lock()
	var pids []*actor.PID
	for _, p := range h.pids {
		pids = append(pids, p)
	}
	h.mu.Unlock()
	for _, p := range pids {
		_ = h.system.Root.PoisonFuture(p).Wait()
	}
	h.Drain()
	h.system.Shutdown()
}

// Enqueue runs job on key's ordered queue (one goroutine per busy key).
// Durable work for one stream runs in order; streams run side by side.
func (h *Host) Enqueue(key string, job func()) {
	h.jobs.Add(1)
	h.mu.Lock()
	q := h.queues[key]
	if q == nil {
		q = &queue{}
		h.queues[key] = q
	}
	q.jobs = append(q.jobs, job)
	start := !q.running
	q.running = true
	h.mu.Unlock()
	if start {
		go h.run(key, q)
	}
}

type queue struct {
	jobs    []func()
	running bool
}

func (h *Host) run(key string, q *queue) {
	for {
		h.mu.Lock()
		if len(q.jobs) == 0 {
			q.running = false
			delete(h.queues, key)
			h.mu.Unlock()
			return
		}
		jobs := q.jobs
		q.jobs = nil
		h.mu.Unlock()
		for _, j := range jobs {
			j()
			h.jobs.Done()
		}
	}
}

// cell adapts a behaviour to protoactor.
type cell struct {
	h    *Host
	name string
	b    actors.Behaviour
	rnd  *rand.Rand
}

func (c *cell) Receive(ctx actor.Context) {
	switch ctx.Message().(type) {
	case *actor.Started, *actor.Stopping, *actor.Restarting, *actor.PoisonPill:
		return
	case *actor.Stopped:
		c.h.forget(c.name)
		return
	}
	defer func() {
		if r := recover(); r != nil {
			// A bug in one behaviour must not take the server down: drop
			// the message, keep the actor, say loudly what happened.
			c.h.cfg.Logger.Error("actor panicked; message dropped", "actor", c.name,
				"msg", fmt.Sprintf("%T", ctx.Message()), "panic", fmt.Sprint(r), "stack", string(debug.Stack()))
		}
	}()
	fx := c.b.Receive(&actors.Context{Now: c.h.cfg.Clock(), Self: c.name, Rand: c.rnd}, ctx.Message())
	for _, e := range fx {
		c.h.apply(ctx, c.name, e)
	}
}

func (h *Host) forget(name string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	delete(h.pids, name)
	for _, t := range h.timers[name] {
		t.Stop()
	}
	delete(h.timers, name)
}

func (h *Host) apply(ctx actor.Context, self string, e actors.Effect) {
	switch e := e.(type) {
	case actors.Send:
		if pid := h.pid(e.To); pid != nil {
			ctx.Send(pid, e.Msg)
		} else {
			h.cfg.Logger.Debug("message to missing actor dropped", "from", self, "to", e.To, "msg", fmt.Sprintf("%T", e.Msg))
		}
	case actors.Respond:
		if ctx.Sender() != nil {
			ctx.Respond(e.Msg)
		}
	case actors.Append:
		selfPID := ctx.Self()
		h.Enqueue(e.Stream, func() {
			seq, err := h.cfg.Log.Append(context.Background(), e.Stream, e.Events...)
			if err != nil {
				h.cfg.Logger.Error("event append failed", "stream", e.Stream, "err", err)
			}
			if e.Reply != nil {
				h.system.Root.Send(selfPID, actors.Appended{Token: e.Reply, LastSeq: seq, Err: err})
			}
		})
	case actors.SetTimer:
		h.setTimer(ctx.Self(), self, e)
	case actors.CancelTimer:
		h.mu.Lock()
		if t := h.timers[self][e.Key]; t != nil {
			t.Stop()
			delete(h.timers[self], e.Key)
		}
		h.mu.Unlock()
	case actors.Spawn:
		if err := h.spawn(e.Name, e.Behaviour); err != nil {
			h.cfg.Logger.Error("spawn failed", "from", self, "err", err)
		}
	case actors.Stop:
		if pid := h.pid(e.Name); pid != nil {
			ctx.Poison(pid)
		}
	case actors.Log:
		h.cfg.Logger.Log(context.Background(), slog.Level(e.Level), e.Msg, e.Args...)
	default:
		h.mu.Lock()
		fn := h.handlers[reflect.TypeOf(e)]
		h.mu.Unlock()
		if fn == nil {
			h.cfg.Logger.Error("no handler for effect", "from", self, "effect", fmt.Sprintf("%T", e))
			return
		}
		fn(self, e)
	}
}

func (h *Host) setTimer(pid *actor.PID, self string, e actors.SetTimer) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.timers[self] == nil {
		h.timers[self] = map[string]*time.Timer{}
	}
	if t := h.timers[self][e.Key]; t != nil {
		t.Stop()
	}
	msg := e.Msg
	h.timers[self][e.Key] = time.AfterFunc(e.After, func() { h.system.Root.Send(pid, msg) })
}

// Names lists the addresses of running actors that start with prefix.
func (h *Host) Names(prefix string) []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	var out []string
	for n := range h.pids {
		if strings.HasPrefix(n, prefix) {
			out = append(out, n)
		}
	}
	sort.Strings(out)
	return out
}

// StopPrefix stops every actor whose address starts with prefix, each after
// the messages already in its mailbox, and waits for them.
func (h *Host) StopPrefix(prefix string) {
	for _, n := range h.Names(prefix) {
		h.StopActor(n)
	}
}
