// Package packager is the behaviour that turns one stream session's frames
// into CMAF parts and segments: it decides where parts (~200 ms) and
// segments (at keyframes, >= 1 s) are cut, muxes them with media/cmaf, and
// hands the bytes on as effects (LL-HLS delivery) and messages (the layer
// that records them).
package packager

import (
	"bytes"
	"time"

	"github.com/onair/onair/actors"
	"github.com/onair/onair/actors/layer"
	"github.com/onair/onair/media/av"
	"github.com/onair/onair/media/cmaf"
	"github.com/onair/onair/media/opus"
)

// Config sets the cutting policy.
type Config struct {
	PartTarget time.Duration // default 200 ms
	MinSegment time.Duration // a segment is cut at the first keyframe after this much media; default 1 s
}

func (c *Config) defaults() {
	if c.PartTarget <= 0 {
		c.PartTarget = 200 * time.Millisecond
	}
	if c.MinSegment <= 0 {
		c.MinSegment = time.Second
	}
}

// Track names; each is its own LL-HLS rendition.
const (
	Video = "video"
	Audio = "audio"
)

// Messages.
type (
	// Start anchors the session's media clock to wall time (for
	// EXT-X-PROGRAM-DATE-TIME) and opens the delivery group.
	Start struct {
		WallAnchor  time.Time
		MediaAnchor int64
	}
	// Frame is a frame already on the stream's continuous timeline.
	Frame struct {
		Track  string
		Frame  av.Frame
		Config *av.TrackConfig
	}
	// End flushes the open parts and segments and closes the session.
	End struct {
		Reason    string
		MediaTime int64
	}
)

// Effects for the delivery host.
type (
	// Open creates the session's delivery group (Gen scopes its URIs).
	Open struct{ Stream, Gen string }
	// InitReady is a new initialization segment for Track.
	InitReady struct {
		Stream, Track string
		Init          []byte
		Codecs        string
		Config        av.TrackConfig
	}
	// PartReady is a finished CMAF part of Track's open segment.
	PartReady struct {
		Stream, Track string
		Data          []byte
		Duration      time.Duration
		Independent   bool
		PDT           time.Time
	}
	// SegmentReady closes Track's open segment (MSN).
	SegmentReady struct {
		Stream, Track string
		MSN           uint64
	}
	// Closed ends the delivery group: every rendition gets EXT-X-ENDLIST.
	Closed struct{ Stream, Gen string }
	// WantKeyframe asks the publisher for a keyframe because the open
	// segment is due to end (WebRTC encoders send keyframes only when
	// asked; encoders with a fixed GOP never need this).
	WantKeyframe struct{ Stream string }
)

// Address is the actor address of a session's packager.
func Address(stream, session string) string { return "packager/" + stream + "/" + session }

// boundary is a cut made on the video track that audio follows.
type boundary struct {
	at      int64 // 90 kHz
	segment bool
}

type track struct {
	name   string
	cfg    av.TrackConfig
	mux    *cmaf.Track
	scale  int64 // track timescale
	seq    uint32
	msn    uint64
	open   bool // a segment is open
	discon bool // next segment starts a discontinuity

	samples   []cmaf.Sample
	partStart int64 // 90 kHz
	segStart  int64 // 90 kHz
	segPTS    int64
	segParts  [][]byte
	segDur    int64 // 90 kHz, sum of closed parts
	partDur   int64 // 90 kHz of samples
	segIndep  bool

	// video: one frame is held back until the next tells its duration
	pending *av.Frame
	lastDur int64
	askedAt int64 // when WantKeyframe was last emitted (90 kHz)
	// audio: exact sample clock, so 90 kHz rounding never jitters
	nextTS int64 // track timescale, -1 until first frame
	queue  []queued
}

// queued is an audio frame waiting to learn which part it belongs to.
type queued struct {
	at, dur int64 // 90 kHz
	sample  cmaf.Sample
}

// Packager is the behaviour. Create with New.
type Packager struct {
	stream, gen, layer string
	cfg                Config
	partTarget         int64
	minSegment         int64
	wall0              time.Time
	media0             int64
	tracks             map[string]*track
	cuts               []boundary // video cuts not yet applied to audio
	videoPos           int64      // video has been cut up to here (90 kHz)
	ended              bool
}

// New returns a packager for one session of stream; closed segments are
// sent to the layer actor at layerAddr.
func New(stream, session, layerAddr string, cfg Config) *Packager {
	cfg.defaults()
	return &Packager{
		stream: stream, gen: session, layer: layerAddr, cfg: cfg,
		partTarget: int64(cfg.PartTarget) * av.ClockRate / int64(time.Second),
		minSegment: int64(cfg.MinSegment) * av.ClockRate / int64(time.Second),
		tracks:     map[string]*track{},
	}
}

// Receive implements actors.Behaviour.
func (p *Packager) Receive(ctx *actors.Context, msg any) []actors.Effect {
	switch m := msg.(type) {
	case Start:
		p.wall0, p.media0 = m.WallAnchor, m.MediaAnchor
		return []actors.Effect{Open{Stream: p.stream, Gen: p.gen}}
	case Frame:
		if p.ended {
			return nil
		}
		return p.frame(m)
	case End:
		if p.ended {
			return nil
		}
		p.ended = true
		var fx []actors.Effect
		fx = append(fx, p.flushVideoThenAudio()...)
		return append(fx, Closed{Stream: p.stream, Gen: p.gen},
			actors.Send{To: p.layer, Msg: layer.End{Reason: m.Reason, MediaTime: m.MediaTime}},
			actors.Stop{Name: ctx.Self})
	}
	return nil
}

func (p *Packager) frame(m Frame) []actors.Effect {
	var fx []actors.Effect
	t := p.tracks[m.Track]
	if m.Config != nil && (t == nil || !sameConfig(&t.cfg, m.Config)) {
		if t != nil {
			if m.Track == Audio {
				fx = append(fx, p.drainAudio(true)...)
			}
			fx = append(fx, p.flush(t)...)
			if m.Track == Video {
				p.cuts = append(p.cuts, boundary{at: m.Frame.DTS, segment: true})
			}
		}
		mux, err := cmaf.NewTrack(*m.Config)
		if err != nil {
			return append(fx, actors.Log{Level: actors.LevelWarn, Msg: "track not packaged",
				Args: []any{"stream", p.stream, "track", m.Track, "codec", m.Config.Codec.String(), "err", err.Error()}})
		}
		if t == nil {
			t = &track{name: m.Track, nextTS: -1}
			p.tracks[m.Track] = t
		} else {
			t.discon = true
			t.nextTS = -1
		}
		t.cfg, t.mux, t.scale = *m.Config, mux, int64(mux.Timescale())
		fx = append(fx, InitReady{Stream: p.stream, Track: m.Track, Init: mux.Init(), Codecs: mux.Codecs(), Config: *m.Config})
	}
	if t == nil || t.mux == nil {
		return fx // no config yet for this track: nothing can be packaged
	}
	if m.Track == Video {
		return append(fx, p.video(t, m.Frame)...)
	}
	return append(fx, p.audio(t, m.Frame)...)
}

func (p *Packager) video(t *track, f av.Frame) []actors.Effect {
	var fx []actors.Effect
	if t.pending != nil {
		dur := f.DTS - t.pending.DTS
		if dur <= 0 || dur > av.ClockRate {
			dur = t.lastDur
		}
		t.lastDur = dur
		p.addVideo(t, t.pending, dur)
		segCut := f.Key && f.DTS-t.segStart >= p.minSegment
		partCut := segCut || f.DTS-t.partStart+dur > p.partTarget
		if partCut {
			fx = append(fx, p.cutPart(t)...)
			if segCut {
				fx = append(fx, p.cutSegment(t)...)
			}
			// Audio follows these cuts; an audio track may still appear,
			// so a video-only stream keeps just the recent ones.
			p.cuts = append(p.cuts, boundary{at: f.DTS, segment: segCut})
			if _, ok := p.tracks[Audio]; !ok && len(p.cuts) > 64 {
				p.cuts = append(p.cuts[:0], p.cuts[len(p.cuts)-16:]...)
			}
		}
	} else if t.lastDur == 0 {
		t.lastDur = 3000
	}
	if !f.Key && t.open && f.DTS-t.segStart >= p.minSegment && f.DTS-t.askedAt >= p.minSegment/2 {
		t.askedAt = f.DTS
		fx = append(fx, WantKeyframe{Stream: p.stream})
	}
	ff := f
	t.pending = &ff
	if !t.open {
		t.open, t.segStart, t.segPTS, t.partStart = true, f.DTS, f.PTS, f.DTS
	}
	p.videoPos = f.DTS
	return append(fx, p.drainAudio(false)...)
}

func (p *Packager) addVideo(t *track, f *av.Frame, dur int64) {
	if len(t.samples) == 0 {
		t.partStart = f.DTS
	}
	t.samples = append(t.samples, cmaf.Sample{
		DTS:  uint64(f.DTS),
		Dur:  uint32(dur),
		CTO:  int32(f.PTS - f.DTS),
		Key:  f.Key,
		Data: cmaf.VideoSampleData(nil, t.cfg.Codec, f.NALUs),
	})
	t.partDur += dur
}

func (p *Packager) audio(t *track, f av.Frame) []actors.Effect {
	samples := int64(1024)
	if t.cfg.Codec == av.Opus {
		samples = int64(opus.PacketDuration(f.Data)) * t.scale / 48000
		if samples <= 0 {
			samples = 960 * t.scale / 48000
		}
	}
	expect := t.nextTS * av.ClockRate / t.scale
	if t.nextTS < 0 || abs(f.DTS-expect) > 2*samples*av.ClockRate/t.scale {
		t.nextTS = f.DTS * t.scale / av.ClockRate // first frame, or a real gap
	}
	at := t.nextTS * av.ClockRate / t.scale
	t.queue = append(t.queue, queued{at: at, dur: samples * av.ClockRate / t.scale,
		sample: cmaf.Sample{DTS: uint64(t.nextTS), Dur: uint32(samples), Key: true, Data: f.Data}})
	t.nextTS += samples
	return p.drainAudio(false)
}

// maxAudioQueue is how far audio may wait for video to reveal its cuts
// before it is packaged on its own clock (a stalled or missing video track).
const maxAudioQueue = av.ClockRate

// drainAudio packages queued audio frames whose part is known. With video,
// audio parts end exactly where video parts end, so a frame is placed only
// once video has passed it; all frames are placed when flushing.
func (p *Packager) drainAudio(flush bool) []actors.Effect {
	t := p.tracks[Audio]
	if t == nil || t.mux == nil {
		return nil
	}
	_, hasVideo := p.tracks[Video]
	var fx []actors.Effect
	for len(t.queue) > 0 {
		q := t.queue[0]
		if hasVideo && len(p.cuts) > 0 && q.at+q.dur/2 > p.cuts[0].at {
			// Audio segments end where video segments end (to the nearest
			// audio frame), so both renditions have the same segments.
			// Audio parts keep their own clock: audio frames do not divide
			// a video part, and a part must not outgrow PART-TARGET.
			if p.cuts[0].segment {
				fx = append(fx, p.cutPart(t)...)
				fx = append(fx, p.cutSegment(t)...)
			}
			p.cuts = p.cuts[1:]
			continue
		}
		known := !hasVideo || flush || q.at+q.dur <= p.videoPos ||
			t.queue[len(t.queue)-1].at-q.at > maxAudioQueue
		if !known {
			break
		}
		if t.open && t.partDur+q.dur > p.partTarget {
			seg := q.at-t.segStart >= p.minSegment
			fx = append(fx, p.cutPart(t)...)
			// Audio-only streams, or video that stopped cutting: segments
			// on audio's own clock.
			if seg && (!hasVideo || q.at-t.segStart >= 4*p.minSegment) {
				fx = append(fx, p.cutSegment(t)...)
			}
		}
		if !t.open {
			t.open, t.segStart, t.segPTS = true, q.at, q.at
		}
		if len(t.samples) == 0 {
			t.partStart = q.at
		}
		t.samples = append(t.samples, q.sample)
		t.partDur += q.dur
		t.queue = t.queue[1:]
	}
	return fx
}

// cutPart muxes the samples gathered so far into one CMAF part.
func (p *Packager) cutPart(t *track) []actors.Effect {
	if len(t.samples) == 0 {
		return nil
	}
	t.seq++
	data, err := t.mux.Fragment(t.seq, t.samples)
	indep := t.samples[0].Key
	dur := t.partDur
	start := t.partStart
	t.samples = t.samples[:0:0]
	t.partDur = 0
	if err != nil {
		return []actors.Effect{actors.Log{Level: actors.LevelError, Msg: "muxing part failed",
			Args: []any{"stream", p.stream, "track", t.name, "err", err.Error()}}}
	}
	if len(t.segParts) == 0 {
		t.segIndep = indep
	}
	t.segParts = append(t.segParts, data)
	t.segDur += dur
	return []actors.Effect{PartReady{
		Stream: p.stream, Track: t.name, Data: data,
		Duration:    time.Duration(dur) * time.Second / av.ClockRate,
		Independent: indep,
		PDT:         p.pdt(start),
	}}
}

// cutSegment closes the open segment and sends it to the layer for recording.
func (p *Packager) cutSegment(t *track) []actors.Effect {
	if len(t.segParts) == 0 {
		return nil
	}
	seg := layer.Segment{
		Track:         t.name,
		MSN:           t.msn,
		Data:          bytes.Join(t.segParts, nil),
		Init:          t.mux.Init(),
		Duration:      t.segDur,
		StartPTS:      t.segPTS,
		PDT:           p.pdt(t.segStart),
		Discontinuity: t.discon,
		Independent:   t.segIndep,
	}
	fx := []actors.Effect{
		SegmentReady{Stream: p.stream, Track: t.name, MSN: t.msn},
		actors.Send{To: p.layer, Msg: seg},
	}
	t.msn++
	t.open = false
	t.discon = false
	t.segParts = nil
	t.segDur = 0
	return fx
}

// flushVideoThenAudio closes both tracks at the end of the session.
func (p *Packager) flushVideoThenAudio() []actors.Effect {
	var fx []actors.Effect
	if v := p.tracks[Video]; v != nil {
		fx = append(fx, p.flush(v)...)
	}
	fx = append(fx, p.drainAudio(true)...)
	if a := p.tracks[Audio]; a != nil {
		fx = append(fx, p.flush(a)...)
	}
	return fx
}

// flush closes whatever is open on t (end of session or new codec config).
func (p *Packager) flush(t *track) []actors.Effect {
	if t.mux == nil {
		return nil
	}
	if t.pending != nil {
		p.addVideo(t, t.pending, t.lastDur)
		t.pending = nil
	}
	fx := p.cutPart(t)
	fx = append(fx, p.cutSegment(t)...)
	return fx
}

func (p *Packager) pdt(media int64) time.Time {
	return p.wall0.Add(time.Duration(media-p.media0) * time.Second / av.ClockRate)
}

func sameConfig(a, b *av.TrackConfig) bool {
	eq := func(x, y [][]byte) bool {
		if len(x) != len(y) {
			return false
		}
		for i := range x {
			if !bytes.Equal(x[i], y[i]) {
				return false
			}
		}
		return true
	}
	return a.Codec == b.Codec && eq(a.VPS, b.VPS) && eq(a.SPS, b.SPS) && eq(a.PPS, b.PPS) &&
		a.SampleRate == b.SampleRate && a.Channels == b.Channels &&
		bytes.Equal(a.AudioSpecificConfig, b.AudioSpecificConfig)
}

func abs(v int64) int64 {
	if v < 0 {
		return -v
	}
	return v
}
