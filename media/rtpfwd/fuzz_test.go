package rtpfwd

import (
	"os"
	"testing"

	"github.com/onair/onair/media/annexb"
	"github.com/onair/onair/media/av"
	"github.com/onair/onair/media/h264"
)

// fuzzWant is what a viewer must decode from nalus: like wantNALUs, and a
// non-IDR frame's own SPS/PPS where the first of them stood.
func fuzzWant(nalus [][]byte, key bool, sps, pps [][]byte) [][]byte {
	var frameSPS, framePPS [][]byte
	for _, u := range nalus {
		switch h264.Type(u) {
		case h264.NALUTypeSPS:
			frameSPS = append(frameSPS, u)
		case h264.NALUTypePPS:
			framePPS = append(framePPS, u)
		}
	}
	if len(frameSPS) > 0 {
		sps = frameSPS
	}
	if len(framePPS) > 0 {
		pps = framePPS
	}
	var out [][]byte
	if key {
		out = append(append(out, sps...), pps...)
	}
	psDone := key
	for _, u := range nalus {
		switch h264.Type(u) {
		case h264.NALUTypeSPS, h264.NALUTypePPS:
			if !psDone {
				out = append(append(out, frameSPS...), framePPS...)
				psDone = true
			}
		case h264.NALUTypeAUD, h264.NALUTypeFiller:
		default:
			out = append(out, u)
		}
	}
	return out
}

// FuzzWriteFrame packetizes arbitrary access units and checks that pion's
// depacketizer gives back exactly the units a viewer must get, with no
// payload over the MTU.
func FuzzWriteFrame(f *testing.F) {
	clip, err := os.ReadFile("testdata/gop.h264")
	if err != nil {
		f.Fatal(err)
	}
	frames := loadH264(f, "testdata/gop.h264", 0)
	cfg, _ := h264.Config(frames[0].NALUs)
	annexB := func(units [][]byte) []byte {
		var b []byte
		for _, u := range units {
			b = append(append(b, 0, 0, 1), u...)
		}
		return b
	}
	f.Add(annexB(frames[0].NALUs))
	f.Add(annexB(frames[1].NALUs))
	f.Add(annexB(h264.StripParameterSetsAndAUD(frames[30].NALUs)))
	f.Add(annexB([][]byte{{0x09, 0xf0}, {0x41, 1, 2}, cfg.SPS[0], cfg.PPS[0]}))
	f.Add(clip[:3000])
	f.Fuzz(func(t *testing.T, b []byte) {
		units := annexb.Split(b)
		if len(units) > 64 {
			units = units[:64]
		}
		for i, u := range units {
			// Keep to what an H.264 stream holds: F bit clear, a type
			// (1..23) that is not RTP's own STAP/FU.
			u = append([]byte(nil), u...)
			u[0] &= 0x7f
			if typ := u[0] & 0x1f; typ == 0 || typ > 23 {
				u[0] = u[0]&0x60 | 1
			}
			units[i] = u
		}
		fwd, _ := NewVideo("video", "live/fuzz", av.H264)
		w := bindMem(t, fwd, "a", true)
		// An IDR first starts the viewer; then the fuzzed frame.
		if err := fwd.WriteFrame(frames[0], nil); err != nil {
			t.Fatal(err)
		}
		n := len(w.packets())
		if err := fwd.WriteFrame(av.Frame{Codec: av.H264, PTS: 1, NALUs: units}, &cfg); err != nil {
			t.Fatal(err)
		}
		pkts := media(w.packets()[n:])
		for _, p := range pkts {
			if len(p.Payload) > mtu {
				t.Fatalf("payload of %d bytes", len(p.Payload))
			}
		}
		key := h264.IsKeyframe(units)
		want := fuzzWant(units, key, cfg.SPS, cfg.PPS) // the fixture's SPS/PPS are cfg's
		got, _ := depacketize(t, pkts)
		switch {
		case len(want) == 0 && len(got) == 0:
		case len(got) != 1 || !equalUnits(got[0], want):
			t.Fatalf("sent %d units (key %v), viewer decodes %d frames", len(want), key, len(got))
		}
	})
}
