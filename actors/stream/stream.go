// Package stream is the behaviour of one live stream name (live/<name>):
// who may publish, the lifecycle events, and one continuous media timeline
// across publisher reconnects.
package stream

import (
	"errors"
	"fmt"
	"time"

	"github.com/onair/onair/actors"
	"github.com/onair/onair/actors/layer"
	"github.com/onair/onair/actors/packager"
	"github.com/onair/onair/events"
	"github.com/onair/onair/media/av"
)

// Errors a publisher may get back.
var (
	ErrConflict   = errors.New("stream already has a live publisher")
	ErrNotCurrent = errors.New("not the stream's current publisher")
	ErrEnded      = errors.New("server is shutting down")
)

// State is where a stream is in its lifecycle.
type State int

// States of a stream.
const (
	Idle  State = iota // never live, or ended
	Live               // a publisher is connected
	Grace              // the publisher dropped; waiting for it to come back
)

func (s State) String() string {
	return [...]string{"idle", "live", "grace"}[s]
}

// Messages the stream understands.
type (
	// CanPublish asks (as a request) whether a new publisher would be
	// accepted now; the answer is an error or nil. Used during protocol
	// handshakes so a conflict is refused before any media flows.
	CanPublish struct{}
	// Connect asks (as a request) to become the stream's publisher; the
	// answer is ConnectReply.
	Connect struct {
		PublisherID string
		Protocol    string // "srt", "whip"
		Remote      string
	}
	// ConnectReply answers Connect.
	ConnectReply struct {
		Err     error
		Session string
	}
	// Frame is one access unit from the publisher, track "video" or "audio".
	Frame struct {
		PublisherID string
		Track       string
		Frame       av.Frame
		Config      *av.TrackConfig
	}
	// Gone says the publisher's connection ended.
	Gone struct {
		PublisherID string
		Reason      string
	}
	// Shutdown ends the stream now (server stopping); answered with Status.
	Shutdown struct{ Reason string }
	// GetStatus asks for a Status answer.
	GetStatus struct{}
	// Status describes the stream.
	Status struct {
		Name      string
		State     State
		Session   string
		Publisher string
		Protocol  string
		MediaTime int64 // 90 kHz, end of the last frame forwarded
		Frames    uint64
		Dropped   uint64
	}
	graceOver struct{ Session string }
)

// LiveFrame is the effect that hands each frame, already on the stream's
// timeline, to real-time outputs (WHEP viewers) alongside the packager.
type LiveFrame struct {
	Stream, Track string
	Frame         av.Frame
	Config        *av.TrackConfig
}

// Config tunes a stream.
type Config struct {
	// Grace is how long a dropped publisher may take to come back and
	// continue the same session (default 10 s).
	Grace    time.Duration
	Packager packager.Config
}

// maxJump is the largest timestamp step accepted inside one publisher
// session before the timeline is re-anchored at the next keyframe.
const maxJump = 5 * av.ClockRate

// maxAudioWait is how many audio frames may arrive before any video before
// the stream is treated as audio-only.
const maxAudioWait = 100

// Stream is the behaviour. Create with New.
type Stream struct {
	name string
	cfg  Config

	state     State
	session   string
	publisher string
	protocol  string

	packager string // address of the current session's packager

	// Timeline: out = in + offset, per publisher connection.
	offset     int64
	needAnchor bool  // the next keyframe (re)anchors offset
	anchorAt   int64 // media time the current anchor starts at
	nextMedia  int64 // media time just after the last frame forwarded
	lastDTS    map[string]int64
	lastDur    map[string]int64
	sawVideo   bool
	configs    map[string]*av.TrackConfig // the publisher's latest, per track
	configSent map[string]bool            // already handed to the packager
	audioEarly int
	started    bool // packager got Start

	frames, dropped uint64
}

// New returns the behaviour for stream name (e.g. "live/demo").
func New(name string, cfg Config) *Stream {
	if cfg.Grace <= 0 {
		cfg.Grace = 10 * time.Second
	}
	return &Stream{name: name, cfg: cfg}
}

// Address is the actor address of a stream name.
func Address(name string) string { return "stream/" + name }

// Receive implements actors.Behaviour.
func (s *Stream) Receive(ctx *actors.Context, msg any) []actors.Effect {
	switch m := msg.(type) {
	case CanPublish:
		if s.state == Live {
			return []actors.Effect{actors.Respond{Msg: fmt.Errorf("%s: %w (%s from %s)", s.name, ErrConflict, s.protocol, s.publisher)}}
		}
		return []actors.Effect{actors.Respond{Msg: nil}}
	case Connect:
		return s.connect(ctx, m)
	case Frame:
		return s.frame(ctx, m)
	case Gone:
		return s.gone(ctx, m)
	case graceOver:
		if s.state != Grace || m.Session != s.session {
			return nil // stale timer
		}
		return s.end(ctx, "publisher did not return within the grace period")
	case Shutdown:
		var fx []actors.Effect
		if s.state == Live {
			fx = append(fx, s.disconnected(ctx, m.Reason)...)
		}
		if s.state != Idle {
			fx = append(fx, s.end(ctx, m.Reason)...)
		}
		return append(fx, actors.Respond{Msg: s.status()})
	case GetStatus:
		return []actors.Effect{actors.Respond{Msg: s.status()}}
	}
	return nil
}

func (s *Stream) status() Status {
	return Status{Name: s.name, State: s.state, Session: s.session, Publisher: s.publisher,
		Protocol: s.protocol, MediaTime: s.nextMedia, Frames: s.frames, Dropped: s.dropped}
}

func (s *Stream) connect(ctx *actors.Context, m Connect) []actors.Effect {
	var fx []actors.Effect
	switch s.state {
	case Live:
		return []actors.Effect{actors.Respond{Msg: ConnectReply{Err: fmt.Errorf("%s: %w (%s from %s)", s.name, ErrConflict, s.protocol, s.publisher)}}}
	case Grace:
		fx = append(fx, actors.CancelTimer{Key: "grace"},
			actors.Log{Level: actors.LevelInfo, Msg: "publisher reconnected within grace period", Args: []any{"stream", s.name, "session", s.session, "publisher", m.PublisherID}})
	case Idle:
		s.session = fmt.Sprintf("%d-%08x", ctx.Now.Unix(), ctx.Rand.Uint32())
		s.packager = packager.Address(s.name, s.session)
		s.nextMedia = 0
		s.lastDTS = map[string]int64{}
		s.lastDur = map[string]int64{}
		s.started = false
		lay := layer.Address(s.name, s.session, layer.Realtime)
		ev := actors.NewEvent(s.name, ctx.Now, 0)
		ev.Body = &events.Event_StreamAnnounced{StreamAnnounced: &events.StreamAnnounced{SessionId: s.session, Protocol: m.Protocol}}
		fx = append(fx,
			actors.Append{Stream: s.name, Events: []*events.Event{ev}},
			actors.Spawn{Name: lay, Behaviour: layer.New(s.name, s.session, layer.Realtime)},
			actors.Spawn{Name: s.packager, Behaviour: packager.New(s.name, s.session, lay, s.cfg.Packager)},
			actors.Log{Level: actors.LevelInfo, Msg: "stream live", Args: []any{"stream", s.name, "session", s.session}},
		)
	}
	s.state = Live
	s.publisher = m.PublisherID
	s.protocol = m.Protocol
	s.needAnchor = true
	s.configs = map[string]*av.TrackConfig{}
	s.configSent = map[string]bool{}
	s.sawVideo = false
	s.audioEarly = 0
	ev := actors.NewEvent(s.name, ctx.Now, s.nextMedia)
	ev.Body = &events.Event_PublisherConnected{PublisherConnected: &events.PublisherConnected{
		SessionId: s.session, Protocol: m.Protocol, RemoteAddr: m.Remote, PublisherId: m.PublisherID}}
	fx = append(fx, actors.Append{Stream: s.name, Events: []*events.Event{ev}},
		actors.Respond{Msg: ConnectReply{Session: s.session}})
	return fx
}

func (s *Stream) gone(ctx *actors.Context, m Gone) []actors.Effect {
	if s.state != Live || m.PublisherID != s.publisher {
		return nil
	}
	fx := s.disconnected(ctx, m.Reason)
	s.state = Grace
	return append(fx, actors.SetTimer{Key: "grace", After: s.cfg.Grace, Msg: graceOver{Session: s.session}},
		actors.Log{Level: actors.LevelInfo, Msg: "publisher gone; holding the stream for the grace period",
			Args: []any{"stream", s.name, "session", s.session, "reason", m.Reason, "grace", s.cfg.Grace}})
}

func (s *Stream) disconnected(ctx *actors.Context, reason string) []actors.Effect {
	ev := actors.NewEvent(s.name, ctx.Now, s.nextMedia)
	ev.Body = &events.Event_PublisherDisconnected{PublisherDisconnected: &events.PublisherDisconnected{
		SessionId: s.session, Reason: reason, PublisherId: s.publisher}}
	s.publisher = ""
	return []actors.Effect{actors.Append{Stream: s.name, Events: []*events.Event{ev}}}
}

func (s *Stream) end(ctx *actors.Context, reason string) []actors.Effect {
	// The packager flushes its open segments to the layer, and the layer
	// logs stream.ended after them, so the log reads in the order things
	// became durable.
	fx := []actors.Effect{
		actors.CancelTimer{Key: "grace"},
		actors.Send{To: s.packager, Msg: packager.End{Reason: reason, MediaTime: s.nextMedia}},
		actors.Log{Level: actors.LevelInfo, Msg: "stream ended", Args: []any{"stream", s.name, "session", s.session, "reason", reason}},
	}
	s.state = Idle
	s.publisher = ""
	return fx
}

// frame maps a publisher frame onto the stream's continuous timeline and
// hands it to the packager.
func (s *Stream) frame(ctx *actors.Context, m Frame) []actors.Effect {
	if s.state != Live || m.PublisherID != s.publisher {
		s.dropped++
		return nil
	}
	if m.Config != nil {
		// Remember it: the frame carrying it may be dropped below (before
		// the first keyframe), and the packager needs it with the first
		// frame it gets.
		s.configs[m.Track] = m.Config
		s.configSent[m.Track] = false
	}
	f := m.Frame
	video := m.Track == "video"
	if video {
		s.sawVideo = true
	}
	var fx []actors.Effect
	if s.needAnchor {
		switch {
		case video && f.Key:
		case !video && !s.sawVideo && s.audioEarly >= maxAudioWait:
			// No video after this much audio: an audio-only stream.
		default:
			if !video {
				s.audioEarly++
			}
			s.dropped++
			return nil
		}
		s.offset = s.nextMedia - f.DTS
		s.anchorAt = s.nextMedia
		s.needAnchor = false
		if !s.started {
			s.started = true
			fx = append(fx, actors.Send{To: s.packager, Msg: packager.Start{WallAnchor: ctx.Now, MediaAnchor: s.nextMedia}})
		}
	}
	dts, pts := f.DTS+s.offset, f.PTS+s.offset
	if dts < s.anchorAt {
		// Sampled before the keyframe the timeline (re)starts at, e.g.
		// audio muxed slightly ahead of video: it has no place on it.
		s.dropped++
		return fx
	}
	if last, ok := s.lastDTS[m.Track]; ok {
		step := dts - last
		if step <= 0 || step > maxJump {
			if video {
				// The publisher's clock jumped: keep our timeline continuous
				// and re-anchor on the next keyframe.
				s.needAnchor = true
				fx = append(fx, actors.Log{Level: actors.LevelWarn, Msg: "publisher timestamps jumped; re-anchoring at next keyframe",
					Args: []any{"stream", s.name, "track", m.Track, "step", step}})
				if f.Key {
					s.offset = s.nextMedia - f.DTS
					s.needAnchor = false
					dts, pts = f.DTS+s.offset, f.PTS+s.offset
				} else {
					s.dropped++
					return fx
				}
			} else if step <= 0 {
				s.dropped++ // overlapping audio after a reconnect
				return fx
			}
		}
		if d := dts - last; d > 0 && d <= maxJump {
			s.lastDur[m.Track] = d
		}
	}
	s.lastDTS[m.Track] = dts
	end := dts + s.lastDur[m.Track]
	if end > s.nextMedia {
		s.nextMedia = end
	}
	s.frames++
	f.DTS, f.PTS = dts, pts
	var cfg *av.TrackConfig
	if !s.configSent[m.Track] {
		cfg = s.configs[m.Track]
		s.configSent[m.Track] = true
	}
	return append(fx, actors.Send{To: s.packager, Msg: packager.Frame{Track: m.Track, Frame: f, Config: cfg}},
		LiveFrame{Stream: s.name, Track: m.Track, Frame: f, Config: cfg})
}
