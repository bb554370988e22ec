// Package rtpfwd turns a stream's access units into RTP once and fans the
// packets out to every WebRTC viewer of that track.
//
// A Forwarder is a pion webrtc.TrackLocal: each viewer PeerConnection adds
// the same Forwarder with AddTrack, pion binds it once per viewer, and
// WriteFrame writes each packet to every binding through that binding's
// TrackLocalWriter (interceptors, then SRTP), rewriting SSRC, payload type
// and sequence number in place on one reused header.
//
// Why not pion's TrackLocalStaticRTP: it sends every packet to every binding
// from the moment it is bound, so a viewer joining mid-GOP receives P-frames
// it cannot decode, and a viewer whose DTLS handshake is still running
// silently loses the IDR it was waiting for (pion drops writes until SRTP is
// up, and returns no error). A Forwarder keeps per-viewer state instead: it
// holds video back from a viewer until SRTP is up and an IDR starts, asks
// the publisher for that IDR, and numbers each viewer's packets so its first
// packet starts a gap-free sequence. It also splits a large audience across
// the available cores for each frame.
package rtpfwd

import (
	"errors"
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pion/rtp"
	"github.com/pion/rtp/codecs"
	"github.com/pion/webrtc/v4"

	"github.com/onair/onair/media/av"
)

var (
	// ErrBFrames reports an H.264 stream whose frames arrive out of
	// presentation order. WebRTC has no decode timestamps, so such a stream
	// cannot be played over WHEP.
	ErrBFrames = errors.New("rtpfwd: the H.264 stream has B-frames, which WebRTC cannot carry; " +
		"publish without B-frames (ffmpeg/x264: -bf 0; OBS: x264 options bframes=0, or B-frames 0 in the encoder settings) to watch over WHEP")
	// ErrCodec reports a codec the forwarder does not carry.
	ErrCodec = errors.New("rtpfwd: unsupported codec")
	// ErrNoParameterSets reports an IDR frame that carries no SPS/PPS while
	// none are known yet from an earlier frame or the track config.
	ErrNoParameterSets = errors.New("rtpfwd: H.264 IDR frame without SPS/PPS and no track config to take them from")
)

const (
	// mtu is the RTP payload size; with the RTP header, extensions and the
	// SRTP tag a packet stays well under the 1280-byte IPv6 minimum MTU.
	mtu = 1200
	// keyframeInterval is the least time between two keyframe requests.
	keyframeInterval = 500 * time.Millisecond
	// minShard is the fewest bindings worth handing to another core.
	minShard = 64
)

// binding is one viewer's view of the track. ready, started, nextSeq and
// seqOff are touched only by the goroutine writing this binding's shard.
type binding struct {
	id   string
	ssrc uint32
	pt   uint8
	w    webrtc.TrackLocalWriter

	// ready: a write reached the network (pion drops writes while the
	// viewer's DTLS handshake runs). started: the viewer got an IDR, so
	// every later frame is decodable.
	ready, started bool
	// nextSeq is the sequence number the viewer expects next, before it
	// started; seqOff maps the shared sequence numbers onto the viewer's.
	nextSeq, seqOff uint16
}

// Forwarder packetizes one track of a stream and writes it to all viewers.
// It implements webrtc.TrackLocal. WriteFrame is meant for one writer
// goroutine (calls are serialized); Bind, Unbind, Viewers and
// OnKeyframeRequest are safe to call from any goroutine at any time.
type Forwarder struct {
	id, streamID string
	codec        av.Codec
	capability   webrtc.RTPCodecCapability
	video        bool

	mu       sync.Mutex                 // serializes Bind/Unbind
	bindings atomic.Pointer[[]*binding] // copy on write: WriteFrame never waits for Bind

	onKeyframe  atomic.Pointer[func()]
	nextRequest atomic.Int64 // unix nanoseconds before which requests are dropped
	now         func() time.Time
	profile     atomic.Uint32 // 1<<16 | profile_idc<<8 | constraint flags, once an SPS was seen

	// Writer state, guarded by wmu.
	wmu       sync.Mutex
	payloader codecs.H264Payloader
	payloads  [][]byte
	seq       uint16 // sequence number of the next packet, before per-viewer offsets
	tsOffset  uint32
	lastPTS   int64
	havePTS   bool
	bframes   bool
	sps, pps  [][]byte // last parameter sets seen, owned copies
	headers   []rtp.Header
	waiting   []bool
}

// NewVideo returns a forwarder for an H.264 track.
func NewVideo(id, streamID string, codec av.Codec) (*Forwarder, error) {
	if codec != av.H264 {
		return nil, fmt.Errorf("%w: %v video; WebRTC viewers get H.264 only, transcode the stream to H.264", ErrCodec, codec)
	}
	return newForwarder(id, streamID, codec, h264Capability), nil
}

// NewAudio returns a forwarder for an Opus track.
func NewAudio(id, streamID string, codec av.Codec) (*Forwarder, error) {
	if codec != av.Opus {
		return nil, fmt.Errorf("%w: %v audio; WebRTC viewers get Opus only, transcode the audio to Opus", ErrCodec, codec)
	}
	return newForwarder(id, streamID, codec, opusCapability), nil
}

func newForwarder(id, streamID string, codec av.Codec, capability webrtc.RTPCodecCapability) *Forwarder {
	f := &Forwarder{
		id:         id,
		streamID:   streamID,
		codec:      codec,
		capability: capability,
		video:      codec.IsVideo(),
		now:        time.Now,
		// RFC 3550 asks for random initial values, so that a restarted
		// forwarder is not mistaken for the old one.
		seq:      uint16(randUint32()),
		tsOffset: randUint32(),
		headers:  make([]rtp.Header, 1),
		waiting:  make([]bool, 1),
	}
	f.bindings.Store(&[]*binding{})
	return f
}

// ID is the track id (for example "video"), StreamID the MediaStream id
// shared by the stream's tracks; both appear in the SDP.
func (f *Forwarder) ID() string { return f.id }

// StreamID is the MediaStream id the viewer groups this track under.
func (f *Forwarder) StreamID() string { return f.streamID }

// RID is empty: the forwarder sends a single encoding.
func (f *Forwarder) RID() string { return "" }

// Kind is video for H.264 and audio for Opus.
func (f *Forwarder) Kind() webrtc.RTPCodecType {
	if f.video {
		return webrtc.RTPCodecTypeVideo
	}
	return webrtc.RTPCodecTypeAudio
}

// Codec is the RTP codec the forwarder sends; a MediaEngine for viewers
// must register it (RegisterDefaultCodecs does).
func (f *Forwarder) Codec() webrtc.RTPCodecCapability { return f.capability }

// Bind is called by pion once per viewer when negotiation completes. A new
// video viewer triggers a keyframe request, so it starts soon.
func (f *Forwarder) Bind(ctx webrtc.TrackLocalContext) (webrtc.RTPCodecParameters, error) {
	codec, ok := f.match(ctx.CodecParameters())
	if !ok {
		return webrtc.RTPCodecParameters{}, fmt.Errorf("%w: the viewer accepts no %s the server can send (H.264 needs packetization-mode=1)",
			webrtc.ErrUnsupportedCodec, f.capability.MimeType)
	}
	b := &binding{
		id:      ctx.ID(),
		ssrc:    uint32(ctx.SSRC()),
		pt:      uint8(codec.PayloadType),
		w:       ctx.WriteStream(),
		started: !f.video, // audio needs no keyframe
		nextSeq: uint16(randUint32()),
	}
	f.mu.Lock()
	old := *f.bindings.Load()
	next := make([]*binding, len(old), len(old)+1)
	copy(next, old)
	next = append(next, b)
	f.bindings.Store(&next)
	f.mu.Unlock()
	if f.video {
		f.requestKeyframe()
	}
	return codec, nil
}

// Unbind is called by pion when a viewer's sender stops.
func (f *Forwarder) Unbind(ctx webrtc.TrackLocalContext) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	old := *f.bindings.Load()
	for i, b := range old {
		if b.id == ctx.ID() {
			next := make([]*binding, 0, len(old)-1)
			next = append(next, old[:i]...)
			next = append(next, old[i+1:]...)
			f.bindings.Store(&next)
			return nil
		}
	}
	return webrtc.ErrUnbindFailed
}

// Viewers is the number of bound viewers, started or not.
func (f *Forwarder) Viewers() int { return len(*f.bindings.Load()) }

// OnKeyframeRequest sets fn, called when a viewer needs an IDR: a new video
// viewer, a viewer that is connected but has not started yet, or a PLI/FIR
// read by ReadRTCP. Calls are limited to one per 500 ms across all viewers.
// fn runs on pion's, the writer's or a ReadRTCP goroutine, so it must
// return quickly (send a message, do not wait for the frame).
func (f *Forwarder) OnKeyframeRequest(fn func()) {
	f.onKeyframe.Store(&fn)
}

// requestKeyframe calls the keyframe callback unless one ran in the last
// keyframeInterval.
func (f *Forwarder) requestKeyframe() {
	now := f.now().UnixNano()
	next := f.nextRequest.Load()
	if now < next || !f.nextRequest.CompareAndSwap(next, now+int64(keyframeInterval)) {
		return
	}
	if fn := f.onKeyframe.Load(); fn != nil && *fn != nil {
		(*fn)()
	}
}

// WriteFrame packetizes fr once and writes the packets to every viewer.
//
// H.264 frames are split by pion's H264Payloader (single NAL units, FU-A,
// SPS and PPS as one STAP-A), with SPS/PPS put before every IDR (from the
// frame, else from cfg, else from the last frame that had them) and the
// marker bit on the last packet. RTP timestamps are PTS on the 90 kHz
// clock for video and PTS*48000/90000 for Opus, plus a random offset, so
// they stay continuous as long as the stream's PTS is; so do sequence
// numbers, whichever publisher session the frames come from.
//
// A video viewer gets nothing until an IDR; until then WriteFrame keeps
// asking for one. A frame whose PTS is below the previous one shows the
// stream has B-frames: WriteFrame returns ErrBFrames for it and for every
// later frame, sending nothing (make a new Forwarder for a new stream).
// Write errors of single viewers are not returned: a viewer that goes away
// is unbound by pion when its sender stops.
func (f *Forwarder) WriteFrame(fr av.Frame, cfg *av.TrackConfig) error {
	if fr.Codec != f.codec {
		return fmt.Errorf("%w: %v frame written to the %v forwarder %q", ErrCodec, fr.Codec, f.codec, f.id)
	}
	f.wmu.Lock()
	defer f.wmu.Unlock()

	var ts uint32
	key := true
	if f.video {
		if f.bframes {
			return ErrBFrames
		}
		if f.havePTS && fr.PTS < f.lastPTS {
			f.bframes = true
			return fmt.Errorf("%w (PTS %d after %d, DTS %d)", ErrBFrames, fr.PTS, f.lastPTS, fr.DTS)
		}
		f.lastPTS, f.havePTS = fr.PTS, true
		var err error
		if key, err = f.packetizeH264(&fr, cfg); err != nil {
			return err
		}
		ts = uint32(fr.PTS) + f.tsOffset
	} else {
		if len(fr.Data) == 0 {
			return nil
		}
		f.payloads = append(f.payloads[:0], fr.Data)
		ts = uint32(fr.PTS*8/15) + f.tsOffset // 90 kHz to 48 kHz
	}
	if len(f.payloads) == 0 {
		return nil
	}
	f.fanOut(ts, key)
	f.seq += uint16(len(f.payloads))
	clear(f.payloads) // do not keep the frame's memory alive
	return nil
}

// fanOut writes f.payloads to all bindings, splitting them across cores
// when there are enough to pay for a goroutine per shard and frame.
func (f *Forwarder) fanOut(ts uint32, key bool) {
	all := *f.bindings.Load()
	if len(all) == 0 {
		return
	}
	shards := min(runtime.GOMAXPROCS(0), len(all)/minShard)
	if shards <= 1 {
		if f.writeShard(all, &f.headers[0], ts, key) {
			f.requestKeyframe()
		}
		return
	}
	if len(f.headers) < shards {
		f.headers = make([]rtp.Header, shards)
		f.waiting = make([]bool, shards)
	}
	per := (len(all) + shards - 1) / shards
	var wg sync.WaitGroup
	for i := 1; i < shards; i++ {
		part := all[min(i*per, len(all)):min((i+1)*per, len(all))]
		wg.Go(func() { f.waiting[i] = f.writeShard(part, &f.headers[i], ts, key) })
	}
	f.waiting[0] = f.writeShard(all[:per], &f.headers[0], ts, key)
	wg.Wait()
	for _, w := range f.waiting[:shards] {
		if w {
			f.requestKeyframe()
			break
		}
	}
}

// writeShard writes the frame to bs using hdr, and reports whether one of
// them is connected but still waits for an IDR.
func (f *Forwarder) writeShard(bs []*binding, hdr *rtp.Header, ts uint32, key bool) (waiting bool) {
	last := len(f.payloads) - 1
	for _, b := range bs {
		if !b.started {
			if !b.ready && !f.probe(b, hdr, ts) {
				continue
			}
			if !key {
				waiting = true
				continue
			}
			// The viewer's first media packet follows its probe.
			b.seqOff = b.nextSeq - f.seq
			b.started = true
		}
		hdr.Version = 2
		hdr.Timestamp = ts
		hdr.SSRC = b.ssrc
		hdr.PayloadType = b.pt
		for i, p := range f.payloads {
			// Interceptors (TWCC) add per-viewer header extensions.
			hdr.ClearExtensions()
			hdr.Marker = i == last && f.video
			hdr.SequenceNumber = f.seq + uint16(i) + b.seqOff
			_, _ = b.w.WriteRTP(hdr, p)
		}
	}
	return waiting
}

// probe sends b an empty padding packet, which receivers discard, to learn
// whether its SRTP session is up: until then pion drops writes and reports
// zero bytes written.
func (f *Forwarder) probe(b *binding, hdr *rtp.Header, ts uint32) bool {
	hdr.ClearExtensions()
	*hdr = rtp.Header{
		Version:        2,
		Padding:        true,
		PaddingSize:    1,
		PayloadType:    b.pt,
		SequenceNumber: b.nextSeq,
		Timestamp:      ts,
		SSRC:           b.ssrc,
		Extensions:     hdr.Extensions,
	}
	n, err := b.w.WriteRTP(hdr, nil)
	hdr.Padding, hdr.PaddingSize = false, 0
	if err != nil || n == 0 {
		return false
	}
	b.ready = true
	b.nextSeq++
	return true
}
