package rtpfwd

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/pion/rtp"
	"github.com/pion/webrtc/v4"

	"github.com/onair/onair/media/av"
	"github.com/onair/onair/media/h264"
)

// bindMem binds a memWriter-backed viewer to f.
func bindMem(t testing.TB, f *Forwarder, id string, ready bool) *memWriter {
	t.Helper()
	video, audio := defaultCodecs(t)
	codecs := video
	if !f.video {
		codecs = audio
	}
	w := &memWriter{ready: ready}
	if _, err := f.Bind(&fakeContext{id: id, ssrc: webrtc.SSRC(1000 + f.Viewers()), codecs: codecs, w: w}); err != nil {
		t.Fatal(err)
	}
	return w
}

// media drops padding-only probes.
func media(pkts []*rtp.Packet) []*rtp.Packet {
	var out []*rtp.Packet
	for _, p := range pkts {
		if len(p.Payload) > 0 {
			out = append(out, p)
		}
	}
	return out
}

// checkSeq fails unless the sequence numbers of pkts follow each other.
func checkSeq(t testing.TB, name string, pkts []*rtp.Packet) {
	t.Helper()
	for i := 1; i < len(pkts); i++ {
		if pkts[i].SequenceNumber != pkts[i-1].SequenceNumber+1 {
			t.Fatalf("%s: packet %d has sequence number %d after %d", name, i, pkts[i].SequenceNumber, pkts[i-1].SequenceNumber)
		}
	}
}

// checkFrames depacketizes what a viewer got and compares it with frames
// from index first on, unit for unit and timestamp step for step.
func checkFrames(t testing.TB, name string, pkts []*rtp.Packet, frames []av.Frame, first int, sps, pps [][]byte) {
	t.Helper()
	got, ts := depacketize(t, pkts)
	want := frames[first:]
	if len(got) != len(want) {
		t.Fatalf("%s: got %d frames, want %d (frames %d..%d)", name, len(got), len(want), first, len(frames)-1)
	}
	for i := range want {
		if w := wantNALUs(want[i], sps, pps); !equalUnits(got[i], w) {
			t.Fatalf("%s: frame %d: got %d NAL units, want %d, or their bytes differ", name, first+i, len(got[i]), len(w))
		}
		if d := int64(ts[i] - ts[0]); d != want[i].PTS-want[0].PTS {
			t.Fatalf("%s: frame %d: RTP timestamp advanced %d, PTS %d", name, first+i, d, want[i].PTS-want[0].PTS)
		}
	}
}

func TestPacketizeRoundTrip(t *testing.T) {
	frames := loadH264(t, "testdata/gop.h264", 0)
	if len(frames) != 90 || !frames[0].Key || !frames[30].Key || !frames[60].Key {
		t.Fatalf("fixture: %d frames, want 90 with IDRs at 0, 30, 60 (regenerate with testdata/gen.sh)", len(frames))
	}
	cfg, ok := h264.Config(frames[0].NALUs)
	if !ok {
		t.Fatal("fixture: no SPS/PPS in the first frame")
	}
	f, err := NewVideo("video", "live/test", av.H264)
	if err != nil {
		t.Fatal(err)
	}
	w := bindMem(t, f, "a", true)
	for _, fr := range frames {
		if err := f.WriteFrame(fr, &cfg); err != nil {
			t.Fatal(err)
		}
	}
	pkts := w.packets()
	if len(pkts[0].Payload) != 0 || !pkts[0].Padding {
		t.Fatalf("first packet: want the padding-only probe, got %d payload bytes", len(pkts[0].Payload))
	}
	checkSeq(t, "viewer", pkts)
	checkFrames(t, "viewer", media(pkts), frames, 0, cfg.SPS, cfg.PPS)

	fu, stap := 0, 0
	for _, p := range media(pkts) {
		if len(p.Payload) > mtu {
			t.Fatalf("payload of %d bytes exceeds the %d-byte MTU", len(p.Payload), mtu)
		}
		switch p.Payload[0] & 0x1f {
		case 28:
			fu++
		case 24:
			stap++
		}
		if p.PayloadType != 106 || p.SSRC != 1000 {
			t.Fatalf("PT %d SSRC %d, want the bound 106 and 1000", p.PayloadType, p.SSRC)
		}
	}
	if fu == 0 || stap != 3 {
		t.Fatalf("%d FU-A and %d STAP-A packets; want FU-A for IDRs and one STAP-A (SPS+PPS) per IDR", fu, stap)
	}
}

func TestParameterSetsFromConfig(t *testing.T) {
	frames := loadH264(t, "testdata/gop.h264", 0)
	cfg, _ := h264.Config(frames[0].NALUs)
	for i := range frames {
		frames[i].NALUs = h264.StripParameterSetsAndAUD(frames[i].NALUs)
	}

	f, _ := NewVideo("video", "live/test", av.H264)
	w := bindMem(t, f, "a", true)
	if err := f.WriteFrame(frames[0], nil); !errors.Is(err, ErrNoParameterSets) {
		t.Fatalf("IDR without SPS/PPS and no config: got %v, want ErrNoParameterSets", err)
	}
	if n := len(media(w.packets())); n != 0 {
		t.Fatalf("a refused frame sent %d packets", n)
	}
	for i, fr := range frames {
		c := &cfg
		if i > 0 {
			c = nil // the forwarder remembers the parameter sets
		}
		if err := f.WriteFrame(fr, c); err != nil {
			t.Fatal(err)
		}
	}
	checkFrames(t, "viewer", media(w.packets()), frames, 0, cfg.SPS, cfg.PPS)
}

func TestMultipleParameterSets(t *testing.T) {
	frames := loadH264(t, "testdata/gop.h264", 0)
	cfg, _ := h264.Config(frames[0].NALUs)
	// A second PPS (another id) disables the single STAP-A: every unit
	// must still arrive, in order.
	pps2 := append([]byte{0x68, 0xff}, cfg.PPS[0][1:]...)
	cfg.PPS = append(cfg.PPS, pps2)
	fr := frames[0]
	fr.NALUs = h264.StripParameterSetsAndAUD(fr.NALUs)

	f, _ := NewVideo("video", "live/test", av.H264)
	w := bindMem(t, f, "a", true)
	if err := f.WriteFrame(fr, &cfg); err != nil {
		t.Fatal(err)
	}
	got, _ := depacketize(t, media(w.packets()))
	if len(got) != 1 || !equalUnits(got[0], wantNALUs(fr, cfg.SPS, cfg.PPS)) {
		t.Fatalf("got %d frames; want the IDR with SPS, both PPS and its units", len(got))
	}
}

func TestViewerStartsOnIDR(t *testing.T) {
	frames := loadH264(t, "testdata/gop.h264", 0)
	var clock fakeClock
	f, _ := NewVideo("video", "live/test", av.H264)
	clock.Set(0)
	f.now = clock.Now
	requests := 0
	f.OnKeyframeRequest(func() { requests++ })

	a := bindMem(t, f, "a", true)
	if requests != 1 {
		t.Fatalf("binding a viewer made %d keyframe requests, want 1", requests)
	}
	b := bindMem(t, f, "b", false) // DTLS still running
	if requests != 1 {
		t.Fatalf("a second viewer within 500 ms made %d requests in all, want 1 (rate limit)", requests)
	}
	for i := 0; i < 45; i++ {
		clock.Set(time.Duration(i) * 40 * time.Millisecond)
		switch i {
		case 5:
			b.setReady() // SRTP up mid-GOP
		case 15:
			if got := len(b.packets()); got != 1 {
				t.Fatalf("ready viewer got %d packets before an IDR, want just the probe", got)
			}
			// Asked again at 520 ms (frame 13) and no sooner.
			if requests != 2 {
				t.Fatalf("%d keyframe requests by frame 15, want 2", requests)
			}
		}
		if err := f.WriteFrame(frames[i], nil); err != nil {
			t.Fatal(err)
		}
	}
	// Requests at 0 ms, 520 ms (frame 13), 1040 ms (frame 26); frame 30 is
	// the IDR that starts b.
	if requests != 3 {
		t.Fatalf("%d keyframe requests, want 3", requests)
	}
	cfg, _ := h264.Config(frames[0].NALUs)
	checkFrames(t, "a", media(a.packets()), frames[:45], 0, cfg.SPS, cfg.PPS)
	bp := b.packets()
	checkSeq(t, "b", bp) // the probe and the first IDR packet are adjacent
	checkFrames(t, "b", media(bp), frames[:45], 30, cfg.SPS, cfg.PPS)
}

func TestUnbind(t *testing.T) {
	frames := loadH264(t, "testdata/gop.h264", 0)
	f, _ := NewVideo("video", "live/test", av.H264)
	a := bindMem(t, f, "a", true)
	b := bindMem(t, f, "b", true)
	if f.Viewers() != 2 {
		t.Fatalf("Viewers() = %d, want 2", f.Viewers())
	}
	_ = f.WriteFrame(frames[0], nil)
	if err := f.Unbind(&fakeContext{id: "a"}); err != nil {
		t.Fatal(err)
	}
	if err := f.Unbind(&fakeContext{id: "a"}); !errors.Is(err, webrtc.ErrUnbindFailed) {
		t.Fatalf("second Unbind: %v, want ErrUnbindFailed", err)
	}
	n := len(a.packets())
	_ = f.WriteFrame(frames[1], nil)
	if len(a.packets()) != n || f.Viewers() != 1 {
		t.Fatalf("an unbound viewer still gets packets (%d viewers)", f.Viewers())
	}
	if len(depacketizeOrEmpty(t, b.packets())) != 2 {
		t.Fatal("the remaining viewer lost a frame")
	}
}

func depacketizeOrEmpty(t testing.TB, pkts []*rtp.Packet) [][][]byte {
	frames, _ := depacketize(t, media(pkts))
	return frames
}

func TestManyViewersSharded(t *testing.T) {
	frames := loadH264(t, "testdata/gop.h264", 0)
	cfg, _ := h264.Config(frames[0].NALUs)
	f, _ := NewVideo("video", "live/test", av.H264)
	ws := make([]*memWriter, 3*minShard+5)
	for i := range ws {
		// Every 7th viewer joins with its handshake still running.
		ws[i] = bindMem(t, f, fmt.Sprint(i), i%7 != 0)
	}
	for i, fr := range frames[:40] {
		if i == 10 {
			for j := 0; j < len(ws); j += 7 {
				ws[j].setReady()
			}
		}
		if err := f.WriteFrame(fr, nil); err != nil {
			t.Fatal(err)
		}
	}
	for i, w := range ws {
		first := 0
		if i%7 == 0 {
			first = 30
		}
		pkts := w.packets()
		checkSeq(t, fmt.Sprint("viewer ", i), pkts)
		checkFrames(t, fmt.Sprint("viewer ", i), media(pkts), frames[:40], first, cfg.SPS, cfg.PPS)
		if pkts[len(pkts)-1].SSRC != uint32(1000+i) {
			t.Fatalf("viewer %d got SSRC %d", i, pkts[len(pkts)-1].SSRC)
		}
	}
}

func TestBFrames(t *testing.T) {
	b := loadH264(t, "testdata/bframes.h264", 0)
	ts := csvInts(t, "testdata/bframes.csv", 2)
	if len(b) != len(ts) {
		t.Fatalf("fixture: %d access units, %d timestamps", len(b), len(ts))
	}
	f, _ := NewVideo("video", "live/test", av.H264)
	bindMem(t, f, "a", true)
	var err error
	sent := 0
	for i := range b {
		b[i].PTS, b[i].DTS = ts[i][0], ts[i][1]
		if err = f.WriteFrame(b[i], nil); err != nil {
			break
		}
		sent++
	}
	if !errors.Is(err, ErrBFrames) {
		t.Fatalf("stream with B-frames: got %v, want ErrBFrames", err)
	}
	if sent < 2 || b[sent].PTS >= b[sent-1].PTS {
		t.Fatalf("ErrBFrames at frame %d, want at the first frame whose PTS goes back", sent)
	}
	if err := f.WriteFrame(b[sent+1], nil); !errors.Is(err, ErrBFrames) {
		t.Fatalf("after B-frames were seen: %v, want ErrBFrames again", err)
	}

	// The same stream timed without reordering is fine.
	g, _ := NewVideo("video", "live/test", av.H264)
	for _, fr := range loadH264(t, "testdata/gop.h264", 0) {
		if err := g.WriteFrame(fr, nil); err != nil {
			t.Fatal(err)
		}
	}
}

func TestOpusTimestamps(t *testing.T) {
	f, err := NewAudio("audio", "live/test", av.Opus)
	if err != nil {
		t.Fatal(err)
	}
	if f.Kind() != webrtc.RTPCodecTypeAudio {
		t.Fatal("audio forwarder is not of kind audio")
	}
	w := bindMem(t, f, "a", true)
	pkts := loadOpus(t)
	pts0 := int64(123456789)
	for i, p := range pkts {
		if err := f.WriteFrame(av.Frame{Codec: av.Opus, PTS: pts0 + int64(i)*1800, DTS: pts0 + int64(i)*1800, Key: true, Data: p}, nil); err != nil {
			t.Fatal(err)
		}
	}
	got := w.packets()
	checkOpus(t, got, pkts, pts0, f.tsOffset)
}

// checkOpus wants one packet per Opus frame, in order, on the 48 kHz clock.
func checkOpus(t testing.TB, got []*rtp.Packet, want [][]byte, pts0 int64, offset uint32) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("got %d packets, want %d", len(got), len(want))
	}
	checkSeq(t, "audio", got)
	for i, p := range got {
		if string(p.Payload) != string(want[i]) {
			t.Fatalf("packet %d: payload differs", i)
		}
		if wantTS := uint32((pts0+int64(i)*1800)*8/15) + offset; p.Timestamp != wantTS {
			t.Fatalf("packet %d: timestamp %d, want %d", i, p.Timestamp, wantTS)
		}
		if d := p.Timestamp - got[0].Timestamp; d != uint32(i*960) {
			t.Fatalf("packet %d: %d ticks after the first, want %d (20 ms at 48 kHz)", i, d, i*960)
		}
		if p.Marker {
			t.Fatalf("packet %d: marker set on continuous Opus", i)
		}
	}
}

func TestCodecs(t *testing.T) {
	if _, err := NewVideo("v", "s", av.H265); !errors.Is(err, ErrCodec) {
		t.Fatalf("H.265 video: %v, want ErrCodec", err)
	}
	if _, err := NewAudio("a", "s", av.AAC); !errors.Is(err, ErrCodec) {
		t.Fatalf("AAC audio: %v, want ErrCodec", err)
	}
	f, _ := NewVideo("v", "s", av.H264)
	if err := f.WriteFrame(av.Frame{Codec: av.Opus, Data: []byte{1}}, nil); !errors.Is(err, ErrCodec) {
		t.Fatalf("Opus frame to a video forwarder: %v, want ErrCodec", err)
	}

	video, audio := defaultCodecs(t)
	// Before any SPS: constrained baseline, packetization-mode=1 only.
	c, err := f.Bind(&fakeContext{id: "1", codecs: video, w: &memWriter{}})
	if err != nil || c.PayloadType != 106 {
		t.Fatalf("bound PT %d (%v), want 106 (42e01f, mode 1)", c.PayloadType, err)
	}
	// After a High profile SPS, the High entry.
	f.profile.Store(1<<16 | 0x64<<8)
	if c, _ := f.Bind(&fakeContext{id: "2", codecs: video, w: &memWriter{}}); c.PayloadType != 112 {
		t.Fatalf("bound PT %d, want 112 (High)", c.PayloadType)
	}
	if _, err := f.Bind(&fakeContext{id: "3", codecs: video[:2], w: &memWriter{}}); !errors.Is(err, webrtc.ErrUnsupportedCodec) {
		t.Fatalf("only VP8 and H.264 mode 0 offered: %v, want ErrUnsupportedCodec", err)
	}
	a, _ := NewAudio("a", "s", av.Opus)
	if c, err := a.Bind(&fakeContext{id: "1", codecs: append(video, audio...), w: &memWriter{}}); err != nil || c.PayloadType != 111 {
		t.Fatalf("audio bound PT %d (%v), want 111", c.PayloadType, err)
	}
}
