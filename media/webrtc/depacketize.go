package webrtc

import (
	"bytes"
	"slices"

	"github.com/pion/rtp"
	"github.com/pion/rtp/codecs"

	"github.com/onair/onair/media/annexb"
	"github.com/onair/onair/media/av"
	"github.com/onair/onair/media/h264"
	"github.com/onair/onair/media/opus"
)

// This file turns a publisher's RTP packets into av.Frames. It is pure
// (no sockets, no clock) so tests and fuzzing drive it directly:
//
//	RTP -> reorder (sequence order, gives up on a gap after a while)
//	    -> h264Frames / opusFrames (access units, loss handling)
//	    -> timestamps (unwrapped, 90 kHz, offset for A/V alignment)
//
// Hand-written assembly rather than pion's samplebuilder: onair needs to
// know that a frame lost a packet (to drop it and every frame up to the
// next keyframe, and to ask for one), which samplebuilder does not say
// for packets missing at a frame's start. The payload format itself
// (STAP-A, FU-A) is pion's codecs.H264Packet.

// reorderSlots bounds the packets a reorder buffer holds (a power of two).
const reorderSlots = 512

// reorder releases RTP packets in sequence order. A missing packet is
// waited for (a NACK retransmission may bring it) until maxLate packets
// are queued behind it or the newest queued packet is maxLateTS ahead in
// media time; then it is given up and the next packet reports the loss.
type reorder struct {
	slots     [reorderSlots]*rtp.Packet
	next      uint16 // sequence number to release next
	started   bool
	held      int
	lost      int // packets given up on before the next release
	lastTS    uint32
	maxLate   int
	maxLateTS uint32
}

func newReorder(maxLate int, maxLateTS uint32) *reorder {
	return &reorder{maxLate: min(maxLate, reorderSlots-1), maxLateTS: maxLateTS}
}

// push queues p and calls out for every packet now in order, with the
// number of packets lost just before it. out must not keep p's slot
// across calls; it may keep p itself.
func (r *reorder) push(p *rtp.Packet, out func(p *rtp.Packet, lost int)) {
	if !r.started {
		r.started, r.next, r.lastTS = true, p.SequenceNumber, p.Timestamp
	}
	d := int(int16(p.SequenceNumber - r.next))
	switch {
	case d < 0 && d > -reorderSlots:
		return // late (already released or given up) or a duplicate
	case d < 0 || d >= reorderSlots:
		// A jump the window cannot hold: a sender restart or a long
		// outage. Release what is queued and continue from p.
		r.flush(out)
		r.lost += max(d, 1)
		r.next = p.SequenceNumber
	}
	i := p.SequenceNumber % reorderSlots
	if r.slots[i] != nil {
		return // duplicate
	}
	r.slots[i] = p
	r.held++
	r.release(out)
	for r.held > 0 && (r.held > r.maxLate || tsAfter(p.Timestamp, r.lastTS) > r.maxLateTS) {
		r.skip()
		r.release(out)
	}
}

// release sends the packets that are in order.
func (r *reorder) release(out func(*rtp.Packet, int)) {
	for {
		i := r.next % reorderSlots
		p := r.slots[i]
		if p == nil {
			return
		}
		r.slots[i] = nil
		r.held--
		r.next++
		r.lastTS = p.Timestamp
		lost := r.lost
		r.lost = 0
		out(p, lost)
	}
}

// skip gives up on the missing packets before the next queued one.
func (r *reorder) skip() {
	for r.slots[r.next%reorderSlots] == nil {
		r.next++
		r.lost++
	}
}

// flush releases everything queued, giving up on any gap.
func (r *reorder) flush(out func(*rtp.Packet, int)) {
	for r.held > 0 {
		r.skip()
		r.release(out)
	}
}

// tsAfter is how far b is after a in RTP time (0 if it is not after).
func tsAfter(b, a uint32) uint32 {
	d := int32(b - a)
	if d < 0 {
		return 0
	}
	return uint32(d)
}

// clock unwraps 32-bit RTP timestamps into the 90 kHz av clock: the first
// timestamp maps to offset, later ones follow by their signed 32-bit
// difference (scaled from the codec clock), so wraps are invisible.
type clock struct {
	started bool
	last    uint32
	ext     int64 // codec clock ticks since the first timestamp
	num     int64 // 90 kHz = ext * num / den
	den     int64
	offset  int64
}

func newClock(rate uint32, offset int64) *clock {
	g := gcd(av.ClockRate, int64(rate))
	return &clock{num: av.ClockRate / g, den: int64(rate) / g, offset: offset}
}

func gcd(a, b int64) int64 {
	for b != 0 {
		a, b = b, a%b
	}
	return a
}

func (c *clock) pts(ts uint32) int64 {
	if !c.started {
		c.started, c.last = true, ts
	}
	c.ext += int64(int32(ts - c.last))
	c.last = ts
	return c.offset + floorDiv(c.ext*c.num, c.den)
}

func floorDiv(a, b int64) int64 {
	q := a / b
	if (a%b != 0) && (a < 0) != (b < 0) {
		q--
	}
	return q
}

// maxFramePackets bounds one access unit (about 1.7 MB of payload).
const maxFramePackets = 1500

// h264Frames assembles H.264 access units from ordered RTP packets
// (RFC 6184 packetization modes 0 and 1). A frame is complete when its
// packets are contiguous from a known frame start to the marker bit (or
// to a timestamp change). An incomplete frame is dropped, and so is every
// frame after it until the next keyframe, which is asked for.
type h264Frames struct {
	clock      *clock
	pkts       []*rtp.Packet
	ts         uint32
	broken     bool // the frame being assembled lost packets
	started    bool // a frame is being assembled
	seenAny    bool
	needKey    bool // drop frames until a keyframe (start, or after a loss)
	lastPTS    int64
	emitted    bool
	cfg        av.TrackConfig // parameter sets in force
	haveCfg    bool
	lostBefore int // losses reported on padding packets, for the next packet
	dropped    int // frames dropped, for stats and tests
	keyAsked   int // keyframe requests made

	frame      func(f av.Frame, cfg *av.TrackConfig)
	requestKey func()
}

func newH264Frames(offset int64, frame func(av.Frame, *av.TrackConfig), requestKey func()) *h264Frames {
	return &h264Frames{clock: newClock(90000, offset), needKey: true, frame: frame, requestKey: requestKey}
}

// push takes the next packet in sequence order; lost is how many packets
// were lost just before it.
func (a *h264Frames) push(p *rtp.Packet, lost int) {
	if len(p.Payload) == 0 {
		// Padding (browsers' bandwidth probes) carries no media and may
		// sit between frames with the previous frame's timestamp; only
		// a loss before it matters.
		a.lostBefore += lost
		return
	}
	lost += a.lostBefore
	a.lostBefore = 0
	newFrame := !a.started || p.Timestamp != a.ts
	if lost > 0 && a.started {
		a.broken = true // its tail, or the next frame's head, is missing
	}
	if a.started && newFrame {
		// The previous frame ended without its marker packet arriving
		// (or the sender omits markers): it is complete only if nothing
		// was lost in between.
		a.finish()
	}
	if newFrame {
		a.started, a.ts = true, p.Timestamp
		a.broken = lost > 0
		if !a.seenAny {
			// The very first packet may be from the middle of a frame.
			a.broken = a.broken || !(&codecs.H264Packet{}).IsPartitionHead(p.Payload)
		}
		a.seenAny = true
	}
	if len(a.pkts) >= maxFramePackets {
		a.broken = true
	} else {
		a.pkts = append(a.pkts, p)
	}
	if p.Marker {
		a.finish()
	}
}

// finish ends the frame being assembled: emit it or drop it.
func (a *h264Frames) finish() {
	pkts, broken, ts := a.pkts, a.broken, a.ts
	a.pkts, a.started, a.broken = a.pkts[:0], false, false
	var nalus [][]byte
	if !broken {
		nalus = a.depacketize(pkts)
		broken = nalus == nil
	}
	clear(pkts)
	if broken {
		a.drop()
		return
	}
	key := h264.IsKeyframe(nalus)
	var cfg *av.TrackConfig
	if c, ok := h264.Config(nalus); ok && (!a.haveCfg || !sameParams(&c, &a.cfg)) {
		a.cfg, a.haveCfg = c, true
		cfg = &c
	}
	if a.needKey && (!key || !a.haveCfg) {
		a.drop()
		return
	}
	if a.needKey && cfg == nil {
		// Resuming after a loss: the sink gets the config again with the
		// keyframe, so a consumer that restarted can start here.
		c := a.cfg
		cfg = &c
	}
	a.needKey = false
	pts := a.clock.pts(ts)
	if a.emitted && pts <= a.lastPTS {
		pts = a.lastPTS + 1 // av.Frame timestamps only grow
	}
	a.lastPTS, a.emitted = pts, true
	a.frame(av.Frame{Codec: av.H264, PTS: pts, DTS: pts, Key: key, NALUs: nalus}, cfg)
}

func (a *h264Frames) drop() {
	a.dropped++
	a.needKey = true
	a.keyAsked++
	if a.requestKey != nil {
		a.requestKey()
	}
}

// depacketize returns the NAL units of a frame's packets (nil if a
// payload is invalid). The units alias one fresh buffer per frame.
func (a *h264Frames) depacketize(pkts []*rtp.Packet) [][]byte {
	var d codecs.H264Packet // fresh: no FU-A state from a dropped frame
	n := 0
	for _, p := range pkts {
		n += len(p.Payload) + 4
	}
	buf := make([]byte, 0, n)
	for _, p := range pkts {
		if len(p.Payload) == 0 {
			continue // padding
		}
		b, err := d.Unmarshal(p.Payload)
		if err != nil {
			return nil
		}
		buf = append(buf, b...)
	}
	nalus := annexb.Split(buf)
	if len(nalus) == 0 {
		return nil
	}
	return nalus
}

func sameParams(a, b *av.TrackConfig) bool {
	return slices.EqualFunc(a.SPS, b.SPS, bytes.Equal) && slices.EqualFunc(a.PPS, b.PPS, bytes.Equal)
}

// opusFrames turns ordered Opus RTP packets into frames: one packet, one
// frame (RFC 7587). Lost packets are simply missing frames.
type opusFrames struct {
	clock    *clock
	channels int
	sentCfg  bool
	lastPTS  int64
	emitted  bool
	frame    func(f av.Frame, cfg *av.TrackConfig)
}

// newOpusFrames: stereo is the SDP's sprop-stereo; a stereo TOC upgrades it.
func newOpusFrames(offset int64, stereo bool, frame func(av.Frame, *av.TrackConfig)) *opusFrames {
	ch := 1
	if stereo {
		ch = 2
	}
	return &opusFrames{clock: newClock(opus.SampleRate, offset), channels: ch, frame: frame}
}

func (o *opusFrames) push(p *rtp.Packet, _ int) {
	if len(p.Payload) == 0 {
		return
	}
	pts := o.clock.pts(p.Timestamp)
	if o.emitted && pts <= o.lastPTS {
		return // a repeated timestamp is not a new frame
	}
	var cfg *av.TrackConfig
	if ch := opus.Channels(p.Payload); !o.sentCfg || ch > o.channels {
		o.channels = max(o.channels, ch)
		cfg = &av.TrackConfig{Codec: av.Opus, SampleRate: opus.SampleRate, Channels: o.channels}
		o.sentCfg = true
	}
	o.lastPTS, o.emitted = pts, true
	o.frame(av.Frame{Codec: av.Opus, PTS: pts, DTS: pts, Key: true, Data: bytes.Clone(p.Payload)}, cfg)
}
