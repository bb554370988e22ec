package webrtc

import (
	"errors"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pion/rtcp"
	"github.com/pion/rtp"
	"github.com/pion/webrtc/v4"

	"github.com/onair/onair/media/av"
)

// Errors an Ingest or Playback returns (wrapped) to refuse a client; the
// Handler answers with the matching HTTP status and the error's text.
var (
	ErrNotFound  = errors.New("not found") // 404
	ErrConflict  = errors.New("conflict")  // 409
	ErrForbidden = errors.New("forbidden") // 403
)

// Track names given to PublishSink.WriteFrame.
const (
	TrackVideo = "video"
	TrackAudio = "audio"
)

// KeyframeInterval is the least time between two keyframe requests (PLI)
// sent to a publisher, however many viewers or losses ask.
const KeyframeInterval = 500 * time.Millisecond

// Ingest is onair's side of WHIP: it decides who may publish and where
// the frames go.
type Ingest interface {
	// StartPublish is called once the offer is parsed, before answering.
	// Return an error wrapping ErrConflict (409), ErrNotFound (404),
	// ErrForbidden (403), or any other (500) to refuse. s stays valid
	// until the sink is closed; keep it to ask for keyframes or to end
	// the session.
	StartPublish(s *PublishSession) (PublishSink, error)
}

// PublishSink receives one publisher's media.
type PublishSink interface {
	// WriteFrame receives an access unit of track TrackVideo or
	// TrackAudio. PTS and DTS are on the 90 kHz clock, unwrapped from the
	// RTP timestamps, both tracks from one origin (each track's first
	// packet arrival); PTS == DTS (WebRTC sends no B-frames). Video
	// frames are H.264 NAL units without start codes, Key from the
	// bitstream; audio frames are one Opus packet in Data. cfg is non-nil
	// on a track's first frame, when the parameter sets change, and on
	// the keyframe that resumes video after a loss. Calls never overlap
	// and the frame's memory is the sink's.
	WriteFrame(track string, f av.Frame, cfg *av.TrackConfig)
	// Close ends the stream: the publisher left (DELETE), its connection
	// failed or never came up, or the session was closed. reason is for
	// logs. No WriteFrame follows.
	Close(reason string)
}

// Playback is onair's side of WHEP: what a viewer receives.
type Playback interface {
	// StartPlay returns the tracks for a new viewer, or an error like
	// Ingest's (ErrConflict: the stream is not live yet, sent with
	// Retry-After).
	StartPlay(s *PlaySession) (PlaySource, error)
}

// PlaySource is what one viewer is sent.
type PlaySource struct {
	// Video and Audio are shared tracks (e.g. webrtc.TrackLocalStaticRTP
	// fed by a forwarder); either may be nil. They must be H.264 and Opus.
	Video, Audio webrtc.TrackLocal
	// OnKeyframeRequest is called when the viewer sends PLI or FIR.
	OnKeyframeRequest func()
	// OnClose is called once when the viewer's session ends.
	OnClose func(reason string)
}

// session is what publish and play sessions share: the peer connection
// and its lifecycle.
type session struct {
	h              *Handler
	id, path, etag string
	stream, remote string
	kind           string // "whip" or "whep"
	remoteUfrag    string
	log            *slog.Logger

	pc        *webrtc.PeerConnection
	connected atomic.Bool
	timer     *time.Timer

	mu      sync.Mutex
	closing bool
	readers sync.WaitGroup
	onClose func(reason string)
}

// setOnClose installs what close calls last. It reports false if the
// session already ended (say, its connect timeout fired during a slow
// StartPublish): the caller must then end what f would have.
func (s *session) setOnClose(f func(reason string)) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closing {
		return false
	}
	s.onClose = f
	return true
}

// goRead runs f as one of the session's readers, unless it is closing.
func (s *session) goRead(f func()) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closing {
		return
	}
	s.readers.Add(1)
	go func() {
		defer s.readers.Done()
		f()
	}()
}

func (s *session) stateChanged(st webrtc.PeerConnectionState) {
	switch st {
	case webrtc.PeerConnectionStateConnected:
		if !s.connected.Swap(true) {
			s.log.Info("connected")
		}
	case webrtc.PeerConnectionStateFailed:
		s.close("connection failed (ICE consent or DTLS)")
	case webrtc.PeerConnectionStateClosed:
		s.close("peer connection closed")
	}
}

// close ends the session once: it leaves the session map, closes the
// peer connection, waits for the readers and calls onClose. Later calls
// return at once.
func (s *session) close(reason string) {
	s.mu.Lock()
	if s.closing {
		s.mu.Unlock()
		return
	}
	s.closing = true
	onClose := s.onClose
	s.mu.Unlock()

	s.h.remove(s)
	if s.timer != nil {
		s.timer.Stop()
	}
	s.mu.Lock()
	pc := s.pc
	s.mu.Unlock()
	if pc != nil {
		if err := pc.Close(); err != nil {
			s.log.Debug("close peer connection", "err", err)
		}
	}
	s.readers.Wait()
	if onClose != nil {
		onClose(reason)
	}
	s.log.Info("closed", "reason", reason)
}

// PublishSession is one WHIP publisher.
type PublishSession struct {
	s          *session
	codecs     []av.Codec
	opusStereo bool

	sinkMu sync.Mutex
	sink   PublishSink

	videoSSRC atomic.Uint32
	limiter   limiter

	t0mu sync.Mutex
	t0   time.Time // first packet of any track
}

// ID is the session's resource id (the last segment of its Location).
func (p *PublishSession) ID() string { return p.s.id }

// Stream is the stream name from the URL (/live/<name>/whip).
func (p *PublishSession) Stream() string { return p.s.stream }

// Remote is the client's address (host:port) as the HTTP server saw it
// (http.Request.RemoteAddr: behind a proxy, the proxy's).
func (p *PublishSession) Remote() string { return p.s.remote }

// Codecs are the tracks the offer publishes: av.H264 and/or av.Opus.
func (p *PublishSession) Codecs() []av.Codec { return p.codecs }

// Close ends the session (e.g. a moderator kicks the publisher). It
// returns at once; the sink's Close(reason) follows when the peer
// connection is down. Safe to call from WriteFrame.
func (p *PublishSession) Close(reason string) { go p.s.close(reason) }

// RequestKeyframe asks the publisher for a keyframe (RTCP PLI), at most
// once per KeyframeInterval; more frequent calls are dropped. Safe to
// call from any goroutine, including WriteFrame.
func (p *PublishSession) RequestKeyframe() {
	ssrc := p.videoSSRC.Load()
	if ssrc == 0 || !p.limiter.allow(p.s.h.now()) {
		return
	}
	p.s.mu.Lock()
	pc := p.s.pc
	p.s.mu.Unlock()
	if pc == nil {
		return
	}
	if err := pc.WriteRTCP([]rtcp.Packet{&rtcp.PictureLossIndication{MediaSSRC: ssrc}}); err != nil {
		p.s.log.Debug("send PLI", "err", err)
	}
}

func (p *PublishSession) writeFrame(track string, f av.Frame, cfg *av.TrackConfig) {
	p.sinkMu.Lock()
	defer p.sinkMu.Unlock()
	p.sink.WriteFrame(track, f, cfg)
}

// offset is the 90 kHz time from the session's first packet to now: each
// track's timestamps start there, which aligns audio and video to within
// network jitter (no RTCP sender report sync yet).
func (p *PublishSession) offset() int64 {
	now := p.s.h.now()
	p.t0mu.Lock()
	defer p.t0mu.Unlock()
	if p.t0.IsZero() {
		p.t0 = now
	}
	return int64(now.Sub(p.t0)) * 9 / 100000
}

// readTrack depacketizes one remote track into the sink until the peer
// connection closes.
func (p *PublishSession) readTrack(t *webrtc.TrackRemote) {
	mime := t.Codec().MimeType
	log := p.s.log.With("track", t.Kind().String(), "codec", mime, "ssrc", uint32(t.SSRC()))
	var (
		ro    *reorder
		push  func(*rtp.Packet, int)
		video *h264Frames
	)
	for {
		pkt, _, err := t.ReadRTP()
		if err != nil {
			if video != nil {
				log.Debug("track ended", "dropped_frames", video.dropped)
			}
			return
		}
		if ro != nil {
			ro.push(pkt, push)
			continue
		}
		switch {
		case strings.EqualFold(mime, webrtc.MimeTypeH264):
			p.videoSSRC.Store(uint32(t.SSRC()))
			video = newH264Frames(p.offset(), func(f av.Frame, cfg *av.TrackConfig) {
				p.writeFrame(TrackVideo, f, cfg)
			}, p.RequestKeyframe)
			// Wait up to 0.4 s of media (or 300 packets) for a NACKed packet.
			ro, push = newReorder(300, 90000*4/10), video.push
		case strings.EqualFold(mime, webrtc.MimeTypeOpus):
			o := newOpusFrames(p.offset(), p.opusStereo, func(f av.Frame, cfg *av.TrackConfig) {
				p.writeFrame(TrackAudio, f, cfg)
			})
			// Audio is not NACKed: only absorb reordering, 60 ms.
			ro, push = newReorder(5, 48000*6/100), o.push
		default:
			log.Warn("ignoring track with a codec onair does not take")
			for {
				if _, _, err := t.ReadRTP(); err != nil {
					return
				}
			}
		}
		log.Info("track started")
		ro.push(pkt, push)
	}
}

// PlaySession is one WHEP viewer.
type PlaySession struct {
	s *session
}

// ID is the session's resource id (the last segment of its Location).
func (p *PlaySession) ID() string { return p.s.id }

// Stream is the stream name from the URL (/live/<name>/whep).
func (p *PlaySession) Stream() string { return p.s.stream }

// Remote is the client's address (host:port) as the HTTP server saw it.
func (p *PlaySession) Remote() string { return p.s.remote }

// Close ends the viewer's session. It returns at once; PlaySource.OnClose
// gets reason when the peer connection is down.
func (p *PlaySession) Close(reason string) { go p.s.close(reason) }

// readRTCP serves a sender's RTCP: the NACK responder and reports see it
// on this path, and keyframe requests go to onKey.
func readRTCP(sender *webrtc.RTPSender, onKey func()) {
	for {
		pkts, _, err := sender.ReadRTCP()
		if err != nil {
			return
		}
		for _, pkt := range pkts {
			switch pkt.(type) {
			case *rtcp.PictureLossIndication, *rtcp.FullIntraRequest:
				if onKey != nil {
					onKey()
				}
			}
		}
	}
}

// limiter lets one event through per KeyframeInterval.
type limiter struct {
	mu   sync.Mutex
	last time.Time
}

func (l *limiter) allow(now time.Time) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if !l.last.IsZero() && now.Sub(l.last) < KeyframeInterval {
		return false
	}
	l.last = now
	return true
}
