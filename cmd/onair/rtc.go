package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/onair/onair/actors"
	"github.com/onair/onair/actors/host"
	"github.com/onair/onair/actors/stream"
	"github.com/onair/onair/actors/viewer"
	"github.com/onair/onair/media/av"
	"github.com/onair/onair/media/rtpfwd"
	"github.com/onair/onair/media/transcode"
	"github.com/onair/onair/media/webrtc"
)

// rtc bridges WebRTC to the stream actors: WHIP publishers become stream
// publishers, and each stream's frames are fanned out to its WHEP viewers
// by one forwarder per track (fed from a goroutine of its own so viewers
// never slow the stream actor down).
type rtc struct {
	host   *host.Host
	stream stream.Config
	log    *slog.Logger
	ctx    context.Context

	mu      sync.Mutex
	outs    map[string]*liveOut                     // streams with WHEP viewers
	viewers map[string]map[*webrtc.PlaySession]bool // open WHEP sessions per stream
	lastPTS map[string]int64                        // last video PTS per stream (B-frame detection)
	bframes map[string]bool                         // streams whose video has B-frames
	pubs    map[string]*webrtc.PublishSession       // current WHIP publisher per stream
	configs map[string]map[string]*av.TrackConfig   // latest config per stream and track
}

func newRTC(ctx context.Context, h *host.Host, cfg stream.Config, log *slog.Logger) *rtc {
	return &rtc{host: h, stream: cfg, log: log, ctx: ctx, outs: map[string]*liveOut{}, viewers: map[string]map[*webrtc.PlaySession]bool{},
		lastPTS: map[string]int64{}, bframes: map[string]bool{},
		pubs: map[string]*webrtc.PublishSession{}, configs: map[string]map[string]*av.TrackConfig{}}
}

// ---- WHIP ----

func (r *rtc) StartPublish(s *webrtc.PublishSession) (webrtc.PublishSink, error) {
	name := "live/" + s.Stream()
	if err := r.host.Ensure(stream.Address(name), func() actors.Behaviour { return stream.New(name, r.stream) }); err != nil {
		return nil, err
	}
	pub := "whip-" + s.ID()
	res, err := r.host.Request(stream.Address(name), stream.Connect{PublisherID: pub, Protocol: "whip", Remote: s.Remote()}, requestTimeout)
	if err != nil {
		return nil, fmt.Errorf("stream %s did not answer: %w", name, err)
	}
	if rep := res.(stream.ConnectReply); rep.Err != nil {
		if errors.Is(rep.Err, stream.ErrConflict) {
			return nil, fmt.Errorf("%w: %v", webrtc.ErrConflict, rep.Err)
		}
		return nil, rep.Err
	}
	r.mu.Lock()
	r.pubs[name] = s
	r.mu.Unlock()
	r.log.Info("publisher connected", "stream", name, "publisher", pub, "remote", s.Remote(), "protocol", "whip")
	return &whipSink{r: r, name: name, pub: pub, session: s}, nil
}

type whipSink struct {
	r       *rtc
	name    string
	pub     string
	session *webrtc.PublishSession
}

func (w *whipSink) WriteFrame(track string, f av.Frame, cfg *av.TrackConfig) {
	_ = w.r.host.Send(stream.Address(w.name), stream.Frame{PublisherID: w.pub, Track: track, Frame: f, Config: cfg})
}

func (w *whipSink) Close(reason string) {
	w.r.mu.Lock()
	if w.r.pubs[w.name] == w.session {
		delete(w.r.pubs, w.name)
	}
	w.r.mu.Unlock()
	_ = w.r.host.Send(stream.Address(w.name), stream.Gone{PublisherID: w.pub, Reason: reason})
	w.r.log.Info("publisher disconnected", "stream", w.name, "publisher", w.pub, "reason", reason)
}

// requestKeyframe asks the stream's publisher for an IDR when it can
// (WHIP); an SRT publisher's next keyframe comes with its GOP.
func (r *rtc) requestKeyframe(name string) {
	r.mu.Lock()
	s := r.pubs[name]
	r.mu.Unlock()
	if s != nil {
		s.RequestKeyframe()
	}
}

// ---- WHEP ----

// liveOut is one stream's real-time output to WHEP viewers.
type liveOut struct {
	name         string
	video, audio *rtpfwd.Forwarder
	frames       chan stream.LiveFrame
	bridge       *transcode.Bridge // AAC publishers: Opus for WebRTC
	bframes      bool
	dropped      int
	stopOnce     sync.Once
}

func (r *rtc) StartPlay(s *webrtc.PlaySession) (webrtc.PlaySource, error) {
	name := "live/" + s.Stream()
	res, err := r.host.Request(stream.Address(name), stream.GetStatus{}, requestTimeout)
	if err != nil {
		return webrtc.PlaySource{}, fmt.Errorf("%w: stream %q is not known to this server", webrtc.ErrNotFound, name)
	}
	if st := res.(stream.Status); st.State == stream.Idle {
		return webrtc.PlaySource{}, fmt.Errorf("%w: stream %q is not live", webrtc.ErrNotFound, name)
	}
	r.mu.Lock()
	vcfg := r.configs[name]["video"]
	r.mu.Unlock()
	if vcfg != nil && vcfg.Codec != av.H264 {
		return webrtc.PlaySource{}, fmt.Errorf("%w: stream %q is %s; WebRTC viewers get H.264 (publish H.264 for WHEP, or watch over LL-HLS)", webrtc.ErrForbidden, name, vcfg.Codec)
	}
	out, err := r.out(name)
	if err != nil {
		return webrtc.PlaySource{}, err
	}
	r.mu.Lock()
	bf := out.bframes || r.bframes[name]
	r.mu.Unlock()
	if bf {
		return webrtc.PlaySource{}, fmt.Errorf("%w: stream %q carries H.264 B-frames, which WebRTC cannot play; publish with B-frames off (x264: -bf 0 or -tune zerolatency) or watch over LL-HLS", webrtc.ErrForbidden, name)
	}
	// Each viewer session is an actor: its lifecycle, statistics and
	// rate-limited keyframe requests live in a deterministic behaviour.
	addr := viewer.Address(name, s.ID())
	if err := r.host.Ensure(addr, func() actors.Behaviour { return viewer.New(name, s.ID()) }); err != nil {
		return webrtc.PlaySource{}, err
	}
	_ = r.host.Send(addr, viewer.Joined{Protocol: "whep", Remote: s.Remote()})
	r.mu.Lock()
	if r.viewers[name] == nil {
		r.viewers[name] = map[*webrtc.PlaySession]bool{}
	}
	r.viewers[name][s] = true
	r.mu.Unlock()
	return webrtc.PlaySource{
		Video:             out.video,
		Audio:             out.audio,
		OnKeyframeRequest: func() { _ = r.host.Send(addr, viewer.KeyframeRequest{}) },
		OnClose: func(reason string) {
			r.mu.Lock()
			delete(r.viewers[name], s)
			r.mu.Unlock()
			_ = r.host.Send(addr, viewer.Left{Reason: reason})
		},
	}, nil
}

func (r *rtc) out(name string) (*liveOut, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if o := r.outs[name]; o != nil {
		return o, nil
	}
	v, err := rtpfwd.NewVideo("video", "onair", av.H264)
	if err != nil {
		return nil, err
	}
	a, err := rtpfwd.NewAudio("audio", "onair", av.Opus)
	if err != nil {
		return nil, err
	}
	o := &liveOut{name: name, video: v, audio: a, frames: make(chan stream.LiveFrame, 512)}
	v.OnKeyframeRequest(func() { r.requestKeyframe(name) })
	r.outs[name] = o
	go r.forward(o, r.configs[name])
	return o, nil
}

// live receives every frame of every stream on its stream actor: it must
// not block. Streams nobody watches over WebRTC cost a map lookup.
func (r *rtc) live(lf stream.LiveFrame) {
	r.mu.Lock()
	if lf.Config != nil {
		if r.configs[lf.Stream] == nil {
			r.configs[lf.Stream] = map[string]*av.TrackConfig{}
		}
		r.configs[lf.Stream][lf.Track] = lf.Config
	}
	if lf.Track == "video" {
		// Reordered presentation times mean B-frames, which WebRTC cannot
		// carry: found here, before any viewer joins, so even the first
		// one gets a clear refusal instead of a blank picture.
		if last, ok := r.lastPTS[lf.Stream]; ok && lf.Frame.PTS < last && !r.bframes[lf.Stream] {
			r.bframes[lf.Stream] = true
			r.log.Warn("stream has B-frames: WHEP viewers refused; LL-HLS unaffected", "stream", lf.Stream)
		}
		r.lastPTS[lf.Stream] = lf.Frame.PTS
	}
	o := r.outs[lf.Stream]
	r.mu.Unlock()
	if o == nil {
		return
	}
	select {
	case o.frames <- lf:
	default:
		// Viewers' writer is behind: drop rather than stall the stream;
		// the forwarder resumes viewers on the next keyframe.
		o.dropped++
	}
}

// forward runs per watched stream: packetize once, write to every viewer.
func (r *rtc) forward(o *liveOut, initial map[string]*av.TrackConfig) {
	cfgs := map[string]*av.TrackConfig{}
	for k, v := range initial {
		cfgs[k] = v
	}
	for lf := range o.frames {
		if lf.Config != nil {
			cfgs[lf.Track] = lf.Config
		}
		switch lf.Frame.Codec {
		case av.H264:
			if err := o.video.WriteFrame(lf.Frame, cfgs["video"]); errors.Is(err, rtpfwd.ErrBFrames) {
				r.mu.Lock()
				first := !o.bframes
				o.bframes = true
				r.mu.Unlock()
				if first {
					r.log.Warn("stream has B-frames: WHEP viewers refused; LL-HLS unaffected", "stream", o.name)
				}
			}
		case av.Opus:
			_ = o.audio.WriteFrame(lf.Frame, nil)
		case av.AAC:
			r.bridgeAAC(o, lf.Frame, cfgs["audio"])
		}
	}
	if o.bridge != nil {
		_ = o.bridge.Close()
	}
}

// bridgeAAC sends AAC audio through ffmpeg to Opus for WebRTC viewers.
func (r *rtc) bridgeAAC(o *liveOut, f av.Frame, cfg *av.TrackConfig) {
	if o.bridge == nil {
		if cfg == nil {
			return
		}
		b, err := transcode.AACToOpus(r.ctx, *cfg, 64000, r.log)
		if err != nil {
			r.log.Error("AAC to Opus bridge failed; WHEP viewers get no audio", "stream", o.name, "err", err)
			return
		}
		o.bridge = b
		start := time.Now()
		go func() {
			for f := range b.Frames() {
				_ = o.audio.WriteFrame(f, nil)
			}
			r.log.Info("AAC to Opus bridge stopped", "stream", o.name, "ran", time.Since(start).Round(time.Second), "ffmpeg_cpu", b.CPU())
		}()
		r.log.Info("AAC to Opus bridge started for WHEP viewers", "stream", o.name)
	}
	if err := o.bridge.Write(f); err != nil {
		r.log.Warn("AAC to Opus bridge write failed", "stream", o.name, "err", err)
		o.bridge.Close()
		o.bridge = nil
	}
}

// ended closes a stream's WHEP viewers and its output once the stream
// has ended (a reconnect within the grace period does not end it).
func (r *rtc) ended(name string) {
	r.mu.Lock()
	o := r.outs[name]
	delete(r.outs, name)
	delete(r.lastPTS, name)
	delete(r.bframes, name)
	var sessions []*webrtc.PlaySession
	for s := range r.viewers[name] {
		sessions = append(sessions, s)
	}
	r.mu.Unlock()
	for _, s := range sessions {
		s.Close("stream ended")
	}
	if o != nil {
		o.stopOnce.Do(func() { close(o.frames) })
	}
}

// close stops every output (server shutdown).
func (r *rtc) close() {
	r.mu.Lock()
	defer r.mu.Unlock()
	for name, o := range r.outs {
		o.stopOnce.Do(func() { close(o.frames) })
		delete(r.outs, name)
	}
}
