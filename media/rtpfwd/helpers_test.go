package rtpfwd

import (
	"bytes"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pion/interceptor"
	"github.com/pion/rtp"
	"github.com/pion/rtp/codecs"
	"github.com/pion/webrtc/v4"

	"github.com/onair/onair/media/annexb"
	"github.com/onair/onair/media/av"
	"github.com/onair/onair/media/h264"
)

// frameDuration is one frame at 30 fps on the 90 kHz clock.
const frameDuration = 3000

// loadH264 reads an Annex B file and returns its access units as frames
// timed at 30 fps from pts0, with PTS = DTS (the file has no B-frames).
func loadH264(t testing.TB, path string, pts0 int64) []av.Frame {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	aus := accessUnits(annexb.Split(b))
	frames := make([]av.Frame, len(aus))
	for i, au := range aus {
		pts := pts0 + int64(i)*frameDuration
		frames[i] = av.Frame{Codec: av.H264, PTS: pts, DTS: pts, Key: h264.IsKeyframe(au), NALUs: au}
	}
	return frames
}

// accessUnits groups NAL units into access units: a new one starts at a
// non-VCL unit that follows a slice, or at a slice whose first_mb_in_slice
// is 0 (its first bit is 1 in ue(v)) that follows a slice.
func accessUnits(nalus [][]byte) [][][]byte {
	var out [][][]byte
	var cur [][]byte
	sawSlice := false
	for _, u := range nalus {
		t := h264.Type(u)
		vcl := t >= 1 && t <= 5
		firstSlice := vcl && len(u) > 1 && u[1]&0x80 != 0
		if sawSlice && (!vcl || firstSlice) {
			out = append(out, cur)
			cur, sawSlice = nil, false
		}
		cur = append(cur, u)
		sawSlice = sawSlice || vcl
	}
	if len(cur) > 0 {
		out = append(out, cur)
	}
	return out
}

// csvInts reads the first comma-separated fields of each non-empty line.
func csvInts(t testing.TB, path string, fields int) [][]int64 {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var out [][]int64
	for line := range strings.Lines(string(b)) {
		line = strings.TrimSpace(line)
		if line == "" {
			continue
		}
		parts := strings.Split(line, ",")
		row := make([]int64, fields)
		for i := range fields {
			v, err := strconv.ParseInt(parts[i], 10, 64)
			if err != nil {
				t.Fatalf("%s: %q: %v", path, line, err)
			}
			row[i] = v
		}
		out = append(out, row)
	}
	return out
}

// wantNALUs is what a viewer must decode from fr: SPS and PPS first on an
// IDR (taken from sps/pps), then the frame's units without parameter sets,
// AUD and filler.
func wantNALUs(fr av.Frame, sps, pps [][]byte) [][]byte {
	var out [][]byte
	if fr.Key {
		out = append(out, sps...)
		out = append(out, pps...)
	}
	for _, u := range fr.NALUs {
		switch h264.Type(u) {
		case h264.NALUTypeSPS, h264.NALUTypePPS, h264.NALUTypeAUD, h264.NALUTypeFiller:
			continue
		}
		out = append(out, u)
	}
	return out
}

// depacketize turns the packets of frames (in order, padding dropped) back
// into NAL units per frame, splitting at marker bits, with pion's H.264
// depacketizer.
func depacketize(t testing.TB, pkts []*rtp.Packet) (frames [][][]byte, timestamps []uint32) {
	t.Helper()
	var d codecs.H264Packet
	var au []byte
	for _, p := range pkts {
		if len(p.Payload) == 0 {
			continue
		}
		out, err := d.Unmarshal(p.Payload)
		if err != nil {
			t.Fatalf("depacketize seq %d: %v", p.SequenceNumber, err)
		}
		au = append(au, out...)
		if p.Marker {
			frames = append(frames, annexb.Split(au))
			timestamps = append(timestamps, p.Timestamp)
			au = nil
		}
	}
	return frames, timestamps
}

func equalUnits(a, b [][]byte) bool {
	return slices.EqualFunc(a, b, bytes.Equal)
}

// fakeContext is the TrackLocalContext pion passes to Bind, for tests
// without a PeerConnection.
type fakeContext struct {
	id     string
	ssrc   webrtc.SSRC
	codecs []webrtc.RTPCodecParameters
	w      webrtc.TrackLocalWriter
}

func (c *fakeContext) CodecParameters() []webrtc.RTPCodecParameters { return c.codecs }
func (c *fakeContext) HeaderExtensions() []webrtc.RTPHeaderExtensionParameter {
	return nil
}
func (c *fakeContext) SSRC() webrtc.SSRC                       { return c.ssrc }
func (c *fakeContext) SSRCRetransmission() webrtc.SSRC         { return 0 }
func (c *fakeContext) SSRCForwardErrorCorrection() webrtc.SSRC { return 0 }
func (c *fakeContext) WriteStream() webrtc.TrackLocalWriter    { return c.w }
func (c *fakeContext) ID() string                              { return c.id }
func (c *fakeContext) RTCPReader() interceptor.RTCPReader      { return nil }
func defaultCodecs(t testing.TB) (video, audio []webrtc.RTPCodecParameters) {
	t.Helper()
	video = []webrtc.RTPCodecParameters{
		{RTPCodecCapability: webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeVP8, ClockRate: 90000}, PayloadType: 96},
		{RTPCodecCapability: webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeH264, ClockRate: 90000,
			SDPFmtpLine: "level-asymmetry-allowed=1;packetization-mode=0;profile-level-id=42e01f"}, PayloadType: 104},
		{RTPCodecCapability: webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeH264, ClockRate: 90000,
			SDPFmtpLine: "level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=640032"}, PayloadType: 112},
		{RTPCodecCapability: webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeH264, ClockRate: 90000,
			SDPFmtpLine: "level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42e01f"}, PayloadType: 106},
	}
	audio = []webrtc.RTPCodecParameters{
		{RTPCodecCapability: webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeOpus, ClockRate: 48000, Channels: 2,
			SDPFmtpLine: "minptime=10;useinbandfec=1"}, PayloadType: 111},
	}
	return video, audio
}

// memWriter records what a binding is sent. Until ready it behaves like
// pion before SRTP is up: the write is dropped and reports 0 bytes.
type memWriter struct {
	mu    sync.Mutex
	ready bool
	pkts  []*rtp.Packet
}

func (w *memWriter) WriteRTP(h *rtp.Header, payload []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.ready {
		return 0, nil
	}
	buf := make([]byte, rtp.PacketMarshalSize(h, payload)) //nolint:staticcheck // pion's own writers use it
	n, err := rtp.MarshalPacketTo(buf, h, payload)         //nolint:staticcheck
	if err != nil {
		return 0, err
	}
	p := &rtp.Packet{}
	if err := p.Unmarshal(buf[:n]); err != nil {
		return 0, err
	}
	w.pkts = append(w.pkts, p)
	return n, nil
}

func (w *memWriter) Write(b []byte) (int, error) {
	p := &rtp.Packet{}
	if err := p.Unmarshal(b); err != nil {
		return 0, err
	}
	return w.WriteRTP(&p.Header, p.Payload)
}

func (w *memWriter) setReady() {
	w.mu.Lock()
	w.ready = true
	w.mu.Unlock()
}

func (w *memWriter) packets() []*rtp.Packet {
	w.mu.Lock()
	defer w.mu.Unlock()
	return slices.Clone(w.pkts)
}

// fakeClock drives the keyframe rate limit in tests.
type fakeClock struct {
	mu  sync.Mutex
	now int64
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return time.Unix(0, c.now)
}

func (c *fakeClock) Set(d time.Duration) {
	c.mu.Lock()
	c.now = int64(time.Hour + d) // away from zero, like a real clock
	c.mu.Unlock()
}

// probeAll sends the SRTP probe to every video binding that is not ready
// yet and returns how many are ready, so tests can wait for viewers'
// DTLS handshakes without writing frames.
func (f *Forwarder) probeAll() (ready int) {
	f.wmu.Lock()
	defer f.wmu.Unlock()
	for _, b := range *f.bindings.Load() {
		if !b.ready && !b.started {
			f.probe(b, &f.headers[0], f.tsOffset)
		}
		if b.ready || b.started {
			ready++
		}
	}
	return ready
}

// loadOpus returns the fixture's Opus packets (20 ms each).
func loadOpus(t testing.TB) [][]byte {
	t.Helper()
	raw, err := os.ReadFile("testdata/opus.raw")
	if err != nil {
		t.Fatal(err)
	}
	var out [][]byte
	for _, row := range csvInts(t, "testdata/opus.csv", 1) {
		n := int(row[0])
		if n > len(raw) {
			t.Fatal("fixture: opus.csv sizes exceed opus.raw")
		}
		out, raw = append(out, raw[:n:n]), raw[n:]
	}
	if len(raw) != 0 || len(out) < 50 {
		t.Fatalf("fixture: %d packets and %d bytes left over", len(out), len(raw))
	}
	return out
}
