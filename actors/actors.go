// Package actors defines the contract every onair behaviour follows so the
// same code runs under protoactor-go in production and under sim's virtual
// clock: a behaviour receives (message, now) and answers with effects. It
// never reads the wall clock, never draws global randomness and never starts
// goroutines; whatever hosts it carries the effects out.
package actors

import (
	"math/rand/v2"
	"time"

	"github.com/onair/onair/events"
)

// Context is what a behaviour may know about the world while handling one message.
type Context struct {
	// Now is the host's clock at delivery (wall clock in production, virtual in sim).
	Now time.Time
	// Self is the actor's address.
	Self string
	// Rand is the host's seeded source; behaviours draw randomness only from it.
	Rand *rand.Rand
}

// Behaviour is a deterministic state machine: for the same sequence of
// (message, Context) it produces the same effects.
type Behaviour interface {
	Receive(ctx *Context, msg any) []Effect
}

// Effect is something a behaviour wants done. Hosts carry out the generic
// effects below; domain effects (for example a packaged part) are handed to
// handlers registered with the host.
type Effect interface{}

// Send delivers Msg to the actor at address To (after the current message).
type Send struct {
	To  string
	Msg any
}

// Respond answers the request being handled (protoactor request/future).
type Respond struct{ Msg any }

// Append durably appends Events to the log of Stream. When Reply is set, the
// host delivers Appended{Reply, LastSeq, Err} back to the sender once the
// events are fsynced.
type Append struct {
	Stream string
	Events []*events.Event
	Reply  any
}

// Appended reports the outcome of an Append that asked for a reply.
type Appended struct {
	Token   any
	LastSeq uint64
	Err     error
}

// SetTimer asks for Msg to be delivered to this actor after After. A timer
// with the same Key replaces the earlier one.
type SetTimer struct {
	Key   string
	After time.Duration
	Msg   any
}

// CancelTimer drops a pending timer; unknown keys are ignored.
type CancelTimer struct{ Key string }

// Spawn starts a child actor at address Name running Behaviour.
type Spawn struct {
	Name      string
	Behaviour Behaviour
}

// Stop ends the actor at address Name after it has handled what it has queued.
type Stop struct{ Name string }

// Log records a line in the host's structured log; behaviours log through
// effects so logging stays out of their logic and sim can capture it.
type Log struct {
	Level Level
	Msg   string
	Args  []any
}

// Level mirrors log/slog levels without tying behaviours to a logger.
type Level int

// Log levels, numerically equal to slog's.
const (
	LevelDebug Level = -4
	LevelInfo  Level = 0
	LevelWarn  Level = 4
	LevelError Level = 8
)

// NewEvent fills the envelope fields every event carries.
func NewEvent(stream string, now time.Time, mediaTime int64) *events.Event {
	return &events.Event{
		Stream:           stream,
		WallTimeUnixNano: now.UnixNano(),
		MediaTime:        mediaTime,
		SchemaVersion:    events.SchemaVersion,
	}
}
