package webrtc

import (
	"bytes"
	"math"
	"slices"
	"testing"

	"github.com/pion/rtp"

	"github.com/onair/onair/media/av"
	"github.com/onair/onair/media/opus"
)

// videoRun collects what an h264Frames pipeline emits.
type videoRun struct {
	frames   []av.Frame
	cfgs     map[int]*av.TrackConfig // frame index in frames -> cfg
	keyAsked int
	ro       *reorder
	a        *h264Frames
}

func newVideoRun() *videoRun {
	r := &videoRun{cfgs: map[int]*av.TrackConfig{}}
	r.a = newH264Frames(0, func(f av.Frame, cfg *av.TrackConfig) {
		if cfg != nil {
			r.cfgs[len(r.frames)] = cfg
		}
		r.frames = append(r.frames, f)
	}, func() { r.keyAsked++ })
	r.ro = newReorder(300, 90000*4/10)
	return r
}

func (r *videoRun) push(pkts ...*rtp.Packet) {
	for _, p := range pkts {
		r.ro.push(p, r.a.push)
	}
}

// index is the file frame a received frame is, from its PTS.
func index(f av.Frame, first int64) int { return int((f.PTS - first) / frameTicks) }

// checkFrames verifies that frames are the file's access units at the
// indices want, with keyframes and configs where the file has them.
func checkFrames(t *testing.T, aus [][][]byte, r *videoRun, want []int, firstIdx int) {
	t.Helper()
	if len(r.frames) != len(want) {
		t.Fatalf("got %d frames, want %d", len(r.frames), len(want))
	}
	first := r.frames[0].PTS - int64(firstIdx*frameTicks)
	for i, f := range r.frames {
		idx := index(f, first)
		if idx != want[i] {
			t.Fatalf("frame %d is file frame %d, want %d", i, idx, want[i])
		}
		if f.PTS != f.DTS || f.Codec != av.H264 {
			t.Fatalf("frame %d: PTS %d DTS %d codec %v", i, f.PTS, f.DTS, f.Codec)
		}
		if f.Key != (idx%fileGOP == 0) {
			t.Fatalf("frame %d (file %d): Key %v", i, idx, f.Key)
		}
		if !slices.EqualFunc(f.NALUs, aus[idx], bytes.Equal) {
			t.Fatalf("frame %d (file %d): NAL units differ from the file", i, idx)
		}
		if i > 0 && f.PTS <= r.frames[i-1].PTS {
			t.Fatalf("frame %d: PTS %d not after %d", i, f.PTS, r.frames[i-1].PTS)
		}
	}
	cfg := r.cfgs[0]
	if cfg == nil || !cfg.Ready() || cfg.Width != fileWidth || cfg.Height != fileHeight {
		t.Fatalf("first frame config %+v: want ready %dx%d", cfg, fileWidth, fileHeight)
	}
}

func seq(from, to int) []int {
	var s []int
	for i := from; i < to; i++ {
		s = append(s, i)
	}
	return s
}

func TestH264FramesInOrder(t *testing.T) {
	aus := accessUnits(t)
	// Sequence numbers and timestamps both wrap inside the file.
	r := newVideoRun()
	r.push(flatten(videoPackets(aus, 65500, math.MaxUint32-40*frameTicks))...)
	// The last frame ends with its marker; nothing is held back.
	checkFrames(t, aus, r, seq(0, fileFrames), 0)
	if r.a.dropped != 0 {
		t.Fatalf("dropped %d frames", r.a.dropped)
	}
	if len(r.cfgs) != 1 {
		t.Fatalf("configs on frames %v, want only the first (parameter sets never change)", r.cfgs)
	}
}

func TestH264FramesReordered(t *testing.T) {
	aus := accessUnits(t)
	all := flatten(videoPackets(aus, 100, 1000))
	// Swap neighbours and deliver some packets twice (retransmissions).
	// The first packet stays first: it sets where the stream starts.
	for i := 1; i+1 < len(all); i += 3 {
		all[i], all[i+1] = all[i+1], all[i]
	}
	var withDup []*rtp.Packet
	for i, p := range all {
		withDup = append(withDup, p)
		if i%7 == 0 {
			withDup = append(withDup, p)
		}
	}
	r := newVideoRun()
	r.push(withDup...)
	checkFrames(t, aus, r, seq(0, fileFrames), 0)
}

func TestH264FramesLossDropsToNextKeyframe(t *testing.T) {
	aus := accessUnits(t)
	frames := videoPackets(aus, 0, 0)
	// Lose a middle packet of frame 40 (a multi-packet P frame?) or, if it
	// fits one packet, the whole frame.
	lostFrame := 40
	f := frames[lostFrame]
	frames[lostFrame] = append(slices.Clone(f[:len(f)/2]), f[len(f)/2+1:]...)
	r := newVideoRun()
	r.push(flatten(frames)...)
	// Nothing is released until the gap is given up (300 packets or
	// 0.4 s later); by the end of the file it is.
	want := append(seq(0, lostFrame), seq(60, fileFrames)...)
	checkFrames(t, aus, r, want, 0)
	if r.keyAsked == 0 {
		t.Fatal("no keyframe requested after a loss")
	}
	if r.cfgs[lostFrame] == nil {
		t.Fatal("the keyframe that resumes video after a loss carries no config")
	}
}

func TestH264FramesRetransmissionRecovers(t *testing.T) {
	aus := accessUnits(t)
	all := flatten(videoPackets(aus, 0, 0))
	// Packet 50 arrives 8 packets late (a NACK retransmission), within
	// the 0.4 s the reorder buffer waits.
	late := all[50]
	all = append(all[:50:50], all[51:]...)
	all = slices.Insert(all, 58, late)
	r := newVideoRun()
	r.push(all...)
	checkFrames(t, aus, r, seq(0, fileFrames), 0)
	if r.keyAsked != 0 {
		t.Fatalf("asked for %d keyframes, want none", r.keyAsked)
	}
}

func TestH264FramesLostMarker(t *testing.T) {
	aus := accessUnits(t)
	frames := videoPackets(aus, 0, 0)
	// Frame 10 loses its last packet (the marker): it and what follows up
	// to the next IDR are dropped; frame 11 cannot be trusted either.
	frames[10] = frames[10][:len(frames[10])-1]
	r := newVideoRun()
	r.push(flatten(frames)...)
	checkFrames(t, aus, r, append(seq(0, 10), seq(30, fileFrames)...), 0)
}

func TestH264FramesStartMidStream(t *testing.T) {
	aus := accessUnits(t)
	frames := videoPackets(aus, 0, 0)
	// The first packets seen are the tail of frame 5: everything before
	// the IDR at 30 is dropped, and a keyframe is asked for.
	start := frames[5][len(frames[5])-1:]
	r := newVideoRun()
	r.push(start...)
	r.push(flatten(frames[6:])...)
	checkFrames(t, aus, r, seq(30, fileFrames), 30)
	if r.keyAsked == 0 {
		t.Fatal("no keyframe requested while waiting for the first one")
	}
}

// Browsers probe bandwidth with padding-only packets on the video SSRC,
// carrying the last frame's timestamp: they are not frames.
func TestH264FramesPadding(t *testing.T) {
	aus := accessUnits(t)
	frames := videoPackets(aus, 0, 0)
	var all []*rtp.Packet
	sn := uint16(0)
	for i, f := range frames {
		for _, p := range f {
			p.SequenceNumber = sn
			sn++
			all = append(all, p)
		}
		for range i % 3 {
			pad := &rtp.Packet{Header: rtp.Header{SequenceNumber: sn, Timestamp: f[0].Timestamp, Padding: true, PaddingSize: 200}}
			sn++
			all = append(all, pad)
		}
	}
	// A loss reported on a padding packet still counts: frame 41 loses its
	// last packet, and what follows the gap is padding (41 % 3 = 2).
	// Without carrying the loss over, frame 41 would be emitted cut short.
	last41 := frames[41][len(frames[41])-1]
	lostAt := slices.Index(all, last41)
	if all[lostAt+1].Payload != nil {
		t.Fatal("test setup: no padding after frame 41")
	}
	r := newVideoRun()
	r.push(all[:lostAt]...)
	r.push(all[lostAt+1:]...)
	checkFrames(t, aus, r, append(seq(0, 41), seq(60, fileFrames)...), 0)

	r = newVideoRun()
	r.push(all...)
	checkFrames(t, aus, r, seq(0, fileFrames), 0)
}

func TestH264FramesSequenceJump(t *testing.T) {
	aus := accessUnits(t)
	a := flatten(videoPackets(aus[:30], 1000, 0))
	// The sender restarts its sequence numbers far away; timestamps go
	// on. Whether packets were lost at the jump is unknowable, so the
	// frame after it is not trusted: video resumes at the next IDR.
	b := flatten(videoPackets(aus[30:], 40000, 30*frameTicks))
	r := newVideoRun()
	r.push(a...)
	r.push(b...)
	checkFrames(t, aus, r, append(seq(0, 30), seq(60, fileFrames)...), 0)
}

func TestH264FramesBadPayloadDropped(t *testing.T) {
	aus := accessUnits(t)
	frames := videoPackets(aus, 0, 0)
	// A STAP-A whose length field runs past the packet.
	bad := frames[3][0].Clone()
	bad.Payload = []byte{24, 0xff, 0xff, 0x65}
	frames[3] = append([]*rtp.Packet{bad}, frames[3][1:]...)
	r := newVideoRun()
	r.push(flatten(frames)...)
	checkFrames(t, aus, r, append(seq(0, 3), seq(30, fileFrames)...), 0)
}

func TestOpusFrames(t *testing.T) {
	pkts := opusPackets(t)
	var got []av.Frame
	var cfgs []*av.TrackConfig
	o := newOpusFrames(500, false, func(f av.Frame, cfg *av.TrackConfig) {
		got = append(got, f)
		if cfg != nil {
			cfgs = append(cfgs, cfg)
		}
	})
	ro := newReorder(5, 48000*6/100)
	ts := uint32(math.MaxUint32 - 10*opusTicks) // wraps after 10 packets
	for i, p := range pkts {
		if d := opus.PacketDuration(p); d != opusTicks {
			t.Fatalf("fixture packet %d lasts %d samples, want %d (one packet per page)", i, d, opusTicks)
		}
		if i == 20 {
			continue // lost
		}
		ro.push(&rtp.Packet{Header: rtp.Header{SequenceNumber: uint16(i), Timestamp: ts + uint32(i*opusTicks)}, Payload: p}, o.push)
	}
	ro.flush(o.push)
	if len(got) != len(pkts)-1 {
		t.Fatalf("got %d frames, want %d", len(got), len(pkts)-1)
	}
	for i, f := range got {
		idx := i
		if i >= 20 {
			idx++
		}
		if f.PTS != 500+int64(idx*opusTicks90) || f.DTS != f.PTS || !f.Key || f.Codec != av.Opus {
			t.Fatalf("frame %d: %+v, want PTS %d", i, f, 500+idx*opusTicks90)
		}
		if !bytes.Equal(f.Data, pkts[idx]) {
			t.Fatalf("frame %d: data differs from packet %d", i, idx)
		}
	}
	if len(cfgs) != 1 || cfgs[0].SampleRate != 48000 || cfgs[0].Channels != 1 || !cfgs[0].Ready() {
		t.Fatalf("configs %+v: want one, 48 kHz mono", cfgs)
	}
}

func TestOpusStereoUpgrade(t *testing.T) {
	var cfgs []*av.TrackConfig
	o := newOpusFrames(0, false, func(_ av.Frame, cfg *av.TrackConfig) {
		if cfg != nil {
			cfgs = append(cfgs, cfg)
		}
	})
	mono, stereo := []byte{0xf8, 1}, []byte{0xfc, 1}
	o.push(&rtp.Packet{Header: rtp.Header{Timestamp: 0}, Payload: mono}, 0)
	o.push(&rtp.Packet{Header: rtp.Header{Timestamp: 960}, Payload: stereo}, 0)
	o.push(&rtp.Packet{Header: rtp.Header{Timestamp: 1920}, Payload: mono}, 0)
	if len(cfgs) != 2 || cfgs[0].Channels != 1 || cfgs[1].Channels != 2 {
		t.Fatalf("configs %+v: want mono then stereo once", cfgs)
	}
}

func TestClock(t *testing.T) {
	c := newClock(48000, 0)
	for i, tc := range []struct {
		ts   uint32
		want int64
	}{
		{math.MaxUint32 - 959, 0},
		{0, 1800}, // 960 ticks later, across the wrap
		{1, 1801}, // 961 * 15/8 = 1801.875, floored
		{math.MaxUint32 - 959, 0},
		{math.MaxUint32 - 1919, -1800}, // earlier than the first: negative, floored
	} {
		if got := c.pts(tc.ts); got != tc.want {
			t.Fatalf("step %d: pts(%d) = %d, want %d", i, tc.ts, got, tc.want)
		}
	}
}

func BenchmarkH264Frames(b *testing.B) {
	aus := accessUnits(b)
	all := flatten(videoPackets(aus, 0, 0))
	var bytesPerFile int
	for _, p := range all {
		bytesPerFile += len(p.Payload)
	}
	b.SetBytes(int64(bytesPerFile))
	b.ReportAllocs()
	for b.Loop() {
		n := 0
		a := newH264Frames(0, func(av.Frame, *av.TrackConfig) { n++ }, nil)
		ro := newReorder(300, 36000)
		for _, p := range all {
			ro.push(p, a.push)
		}
		if n != fileFrames {
			b.Fatalf("%d frames", n)
		}
	}
}
