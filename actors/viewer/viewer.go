// Package viewer is the behaviour of one viewer session (a WHEP peer for
// now): its lifecycle, its keyframe requests (rate-limited on the
// injected clock, so a storm of PLIs from one viewer reaches the
// publisher as one request per interval), and its statistics.
package viewer

import (
	"time"

	"github.com/onair/onair/actors"
)

// KeyframeInterval is the shortest time between two keyframe requests a
// viewer passes on.
const KeyframeInterval = 500 * time.Millisecond

// Address is the actor address of a viewer session.
func Address(stream, id string) string { return "viewer/" + stream + "/" + id }

// Messages.
type (
	// Joined starts the session.
	Joined struct {
		Protocol, Remote string
	}
	// KeyframeRequest: the viewer's decoder needs an IDR (PLI/FIR).
	KeyframeRequest struct{}
	// Left ends the session.
	Left struct{ Reason string }
	// GetStats asks for a Stats answer.
	GetStats struct{}
	// Stats describes the session.
	Stats struct {
		Protocol, Remote       string
		Joined                 time.Time
		KeyframeRequests       int // received from the viewer
		KeyframeRequestsPassed int // passed on to the publisher
	}
)

// RequestKeyframe is the effect that asks the stream's publisher for an IDR.
type RequestKeyframe struct{ Stream string }

// Viewer is the behaviour. Create with New.
type Viewer struct {
	stream, id string
	stats      Stats
	lastAsk    time.Time
	left       bool
}

// New returns the behaviour for session id of stream.
func New(stream, id string) *Viewer { return &Viewer{stream: stream, id: id} }

// Receive implements actors.Behaviour.
func (v *Viewer) Receive(ctx *actors.Context, msg any) []actors.Effect {
	switch m := msg.(type) {
	case Joined:
		v.stats.Protocol, v.stats.Remote, v.stats.Joined = m.Protocol, m.Remote, ctx.Now
		return []actors.Effect{actors.Log{Level: actors.LevelInfo, Msg: "viewer joined",
			Args: []any{"stream", v.stream, "viewer", v.id, "protocol", m.Protocol, "remote", m.Remote}}}
	case KeyframeRequest:
		v.stats.KeyframeRequests++
		if v.left || (!v.lastAsk.IsZero() && ctx.Now.Sub(v.lastAsk) < KeyframeInterval) {
			return nil
		}
		v.lastAsk = ctx.Now
		v.stats.KeyframeRequestsPassed++
		return []actors.Effect{RequestKeyframe{Stream: v.stream}}
	case Left:
		if v.left {
			return nil
		}
		v.left = true
		return []actors.Effect{actors.Log{Level: actors.LevelInfo, Msg: "viewer left",
			Args: []any{"stream", v.stream, "viewer", v.id, "reason", m.Reason,
				"watched", ctx.Now.Sub(v.stats.Joined).Round(time.Second), "keyframe_requests", v.stats.KeyframeRequests}},
			actors.Stop{Name: ctx.Self}}
	case GetStats:
		return []actors.Effect{actors.Respond{Msg: v.stats}}
	}
	return nil
}
