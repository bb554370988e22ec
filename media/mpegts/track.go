package mpegts

import (
	"bytes"
	"slices"

	"github.com/asticode/go-astits"

	"github.com/onair/onair/media/aac"
	"github.com/onair/onair/media/annexb"
	"github.com/onair/onair/media/av"
	"github.com/onair/onair/media/h264"
	"github.com/onair/onair/media/h265"
	"github.com/onair/onair/media/opus"
)

// track is the per-PID state between PES packets.
type track struct {
	Track
	channels int // Opus: from the PMT, 0 if not given

	// Video: the access unit being assembled, held until the next PES on
	// this PID shows whether it continues it.
	pending *accessUnit
	// paramSets are the parameter set units of the last access unit that
	// had any, to skip re-parsing identical ones at every keyframe.
	paramSets [][]byte
	badSPS    bool // warned that the SPS does not parse

	cfg     av.TrackConfig  // what is known, perhaps incomplete
	emitted *av.TrackConfig // last config handed out

	// Audio: where the next frame starts, for a PES without a PTS.
	nextPTS  int64
	haveNext bool
}

type accessUnit struct {
	data     []byte
	pts, dts int64
}

func (d *Demuxer) handlePES(pid uint16, pes *astits.PESData) {
	t := d.tracks[pid]
	if t == nil {
		d.drop("mpegts: dropping PES on a PID no PMT announced", "pid", pid)
		return
	}
	var pts, dts int64
	timed := false
	if oh := pes.Header.OptionalHeader; oh != nil && oh.PTS != nil {
		timed = true
		dts = oh.PTS.Base
		if oh.DTS != nil {
			dts = oh.DTS.Base
		}
		dts = d.clock.unwrap(dts)
		pts = nearest(oh.PTS.Base, dts)
		if pts < dts { // broken muxer: a frame cannot be shown before it is decoded
			dts = pts
		}
	}
	switch t.Codec {
	case av.H264, av.H265:
		d.handleVideo(t, pes.Data, pts, dts, timed)
	case av.AAC:
		d.handleAAC(t, pes.Data, pts, timed)
	case av.Opus:
		d.handleOpus(t, pes.Data, pts, timed)
	}
}

// handleVideo assembles access units. ffmpeg and OBS send one access unit
// per PES, each with a PTS; some encoders split a large picture over
// several PES of which only the first has one. So a PES without a PTS
// continues the pending access unit, and one with a PTS starts a new one.
// astits hands over a PES only when the next one on its PID starts, and
// the sync reader has already seen whether that one carries a PTS: so the
// common case completes at once, without waiting another PES.
func (d *Demuxer) handleVideo(t *track, data []byte, pts, dts int64, timed bool) {
	switch {
	case timed:
		if t.pending != nil {
			d.finishVideo(t)
		}
		t.pending = &accessUnit{data: data, pts: pts, dts: dts}
	case t.pending == nil:
		d.drop("mpegts: dropping video PES without PTS", "pid", t.PID)
		return
	case len(t.pending.data)+len(data) > maxAccessUnit:
		t.pending = nil
		d.drop("mpegts: dropping video access unit over the size limit", "pid", t.PID, "limit", maxAccessUnit)
		return
	default:
		t.pending.data = append(t.pending.data, data...)
	}
	if d.src.eof || d.src.startsWithPTS[t.PID] {
		d.finishVideo(t)
	}
}

func (d *Demuxer) finishVideo(t *track) {
	au := t.pending
	t.pending = nil
	nalus := annexb.Split(au.data)
	if len(nalus) == 0 {
		d.drop("mpegts: dropping video PES without NAL units", "pid", t.PID)
		return
	}
	var key bool
	if t.Codec == av.H264 {
		key = h264.IsKeyframe(nalus)
	} else {
		key = h265.IsKeyframe(nalus)
	}
	d.push(TrackFrame{
		PID:    t.PID,
		Frame:  av.Frame{Codec: t.Codec, PTS: au.pts, DTS: au.dts, Key: key, NALUs: nalus},
		Config: d.videoConfig(t, nalus),
	})
}

func isParamSet(codec av.Codec, u []byte) bool {
	if codec == av.H264 {
		t := h264.Type(u)
		return t == h264.NALUTypeSPS || t == h264.NALUTypePPS
	}
	t := h265.Type(u)
	return t == h265.NALUTypeVPS || t == h265.NALUTypeSPS || t == h265.NALUTypePPS
}

// videoConfig folds the parameter sets of an access unit into the track
// config and returns it if it is complete and new. Encoders repeat
// parameter sets at every keyframe; identical ones cost one comparison.
func (d *Demuxer) videoConfig(t *track, nalus [][]byte) *av.TrackConfig {
	n, same := 0, true
	for _, u := range nalus {
		if !isParamSet(t.Codec, u) {
			continue
		}
		if n >= len(t.paramSets) || !bytes.Equal(u, t.paramSets[n]) {
			same = false
		}
		n++
	}
	if n == 0 || (same && n == len(t.paramSets)) {
		return nil
	}
	t.paramSets = t.paramSets[:0]
	for _, u := range nalus {
		if isParamSet(t.Codec, u) {
			t.paramSets = append(t.paramSets, bytes.Clone(u))
		}
	}
	var cfg av.TrackConfig
	if t.Codec == av.H264 {
		cfg, _ = h264.Config(t.paramSets)
	} else {
		cfg, _ = h265.Config(t.paramSets)
	}
	// Parameter sets missing from this access unit keep their last value.
	if len(cfg.VPS) == 0 {
		cfg.VPS = t.cfg.VPS
	}
	if len(cfg.SPS) == 0 {
		cfg.SPS, cfg.Width, cfg.Height = t.cfg.SPS, t.cfg.Width, t.cfg.Height
	} else if cfg.Width == 0 && !t.badSPS {
		t.badSPS = true
		d.log.Warn("mpegts: cannot parse the SPS; the track stays without a config until one parses", "pid", t.PID, "codec", t.Codec)
	}
	if len(cfg.PPS) == 0 {
		cfg.PPS = t.cfg.PPS
	}
	t.cfg = cfg
	if !cfg.Ready() || cfg.Width == 0 || (t.emitted != nil && sameVideoConfig(*t.emitted, cfg)) {
		return nil
	}
	return t.emit(cfg)
}

func (t *track) emit(cfg av.TrackConfig) *av.TrackConfig {
	t.emitted = &cfg
	return &cfg
}

func sameVideoConfig(a, b av.TrackConfig) bool {
	return equalUnits(a.VPS, b.VPS) && equalUnits(a.SPS, b.SPS) && equalUnits(a.PPS, b.PPS)
}

func equalUnits(a, b [][]byte) bool {
	return slices.EqualFunc(a, b, bytes.Equal)
}

// audioBase returns the PTS of the first frame of an audio PES: its own,
// or for a PES without one, where the previous PES ended.
func (d *Demuxer) audioBase(t *track, pts int64, timed bool) (int64, bool) {
	if timed {
		return pts, true
	}
	if t.haveNext {
		return t.nextPTS, true
	}
	d.drop("mpegts: dropping audio PES without PTS", "pid", t.PID)
	return 0, false
}

// handleAAC splits a PES of ADTS frames. Frame i of a PES plays at the PES
// PTS + i*1024 samples.
func (d *Demuxer) handleAAC(t *track, data []byte, pts int64, timed bool) {
	frames, cfg, err := aac.ParseADTS(data)
	if err != nil {
		d.drop("mpegts: bad ADTS payload", "pid", t.PID, "err", err, "frames_kept", len(frames))
	}
	if len(frames) == 0 {
		return
	}
	base, ok := d.audioBase(t, pts, timed)
	if !ok {
		return
	}
	var out *av.TrackConfig
	if t.emitted == nil || !sameAudioConfig(*t.emitted, cfg) {
		out = t.emit(cfg)
	}
	rate := int64(cfg.SampleRate)
	at := func(i int) int64 { return base + (int64(i)*aac.SamplesPerFrame*av.ClockRate+rate/2)/rate }
	for i, f := range frames {
		ts := at(i)
		d.push(TrackFrame{PID: t.PID, Frame: av.Frame{Codec: av.AAC, PTS: ts, DTS: ts, Key: true, Data: f}, Config: out})
		out = nil
	}
	t.nextPTS, t.haveNext = at(len(frames)), true
}

func sameAudioConfig(a, b av.TrackConfig) bool {
	return a.SampleRate == b.SampleRate && a.Channels == b.Channels && bytes.Equal(a.AudioSpecificConfig, b.AudioSpecificConfig)
}

// handleOpus splits a PES of Opus access units, timing each packet by the
// durations of the ones before it. The control headers' trim values are
// not carried on (av.Frame has no field for them): priming is a few
// milliseconds at the start of the stream.
func (d *Demuxer) handleOpus(t *track, data []byte, pts int64, timed bool) {
	pkts, err := opus.ParseTS(data)
	if err != nil {
		d.drop("mpegts: bad Opus payload", "pid", t.PID, "err", err, "packets_kept", len(pkts))
	}
	if len(pkts) == 0 {
		return
	}
	base, ok := d.audioBase(t, pts, timed)
	if !ok {
		return
	}
	var out *av.TrackConfig
	samples := int64(0)
	for _, p := range pkts {
		dur := opus.PacketDuration(p.Data)
		if dur == 0 {
			d.drop("mpegts: dropping invalid Opus packet", "pid", t.PID, "bytes", len(p.Data))
			continue
		}
		if t.emitted == nil {
			channels := t.channels
			if channels == 0 {
				channels = opus.Channels(p.Data)
			}
			out = t.emit(av.TrackConfig{Codec: av.Opus, SampleRate: opus.SampleRate, Channels: channels})
		}
		ts := base + samples*av.ClockRate/opus.SampleRate
		d.push(TrackFrame{PID: t.PID, Frame: av.Frame{Codec: av.Opus, PTS: ts, DTS: ts, Key: true, Data: p.Data}, Config: out})
		out = nil
		samples += int64(dur)
	}
	t.nextPTS, t.haveNext = base+samples*av.ClockRate/opus.SampleRate, true
}
