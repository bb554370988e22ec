package webrtc

import (
	"bytes"
	"errors"
	"io"
	"os"
	"testing"

	"github.com/pion/rtp"
	"github.com/pion/rtp/codecs"
	"github.com/pion/webrtc/v4/pkg/media/oggreader"

	"github.com/onair/onair/media/annexb"
	"github.com/onair/onair/media/h264"
)

// Fixture facts (testdata/gen.sh).
const (
	fileFrames    = 90 // video access units
	fileGOP       = 30 // an IDR every 30 frames
	frameTicks    = 3000
	opusTicks     = 960  // 20 ms at 48 kHz
	opusTicks90   = 1800 // the same on the 90 kHz clock
	fileWidth     = 320
	fileHeight    = 240
	fileOpusCount = 150 // at least this many 20 ms packets in 3 s
)

// accessUnits reads testdata/video.h264 as access units of NAL units: a
// unit ends with its (single-slice) picture.
func accessUnits(t testing.TB) [][][]byte {
	t.Helper()
	b, err := os.ReadFile("testdata/video.h264")
	if err != nil {
		t.Fatalf("read fixture (run testdata/gen.sh): %v", err)
	}
	var aus [][][]byte
	var cur [][]byte
	for _, n := range annexb.Split(b) {
		switch h264.Type(n) {
		case h264.NALUTypeAUD, h264.NALUTypeFiller:
			continue // pion's payloader drops them
		}
		cur = append(cur, n)
		if ty := h264.Type(n); ty == h264.NALUTypeIDR || ty == h264.NALUTypeNonIDR {
			aus = append(aus, cur)
			cur = nil
		}
	}
	if len(aus) != fileFrames {
		t.Fatalf("fixture has %d access units, want %d", len(aus), fileFrames)
	}
	return aus
}

// annexB joins NAL units with start codes.
func annexB(nalus [][]byte) []byte {
	var b []byte
	for _, n := range nalus {
		b = append(b, 0, 0, 0, 1)
		b = append(b, n...)
	}
	return b
}

// opusPackets reads testdata/audio.ogg: one Opus packet per page.
func opusPackets(t testing.TB) [][]byte {
	t.Helper()
	f, err := os.Open("testdata/audio.ogg")
	if err != nil {
		t.Fatalf("open fixture (run testdata/gen.sh): %v", err)
	}
	defer f.Close()
	r, _, err := oggreader.NewWith(f)
	if err != nil {
		t.Fatal(err)
	}
	var pkts [][]byte
	for {
		page, hdr, err := r.ParseNextPage()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if bytes.HasPrefix(page, []byte("OpusTags")) || hdr.GranulePosition == 0 {
			continue
		}
		pkts = append(pkts, page)
	}
	if len(pkts) < fileOpusCount {
		t.Fatalf("fixture has %d Opus packets, want at least %d", len(pkts), fileOpusCount)
	}
	return pkts
}

// videoPackets packetizes the access units as a browser would (pion's
// payloader, MTU 1200), starting at the given sequence number and RTP
// timestamp so tests can put wraps where they like.
func videoPackets(aus [][][]byte, seq uint16, ts uint32) [][]*rtp.Packet {
	p := rtp.NewPacketizerWithOptions(1200, &codecs.H264Payloader{}, rtp.NewFixedSequencer(seq), 90000,
		rtp.WithPayloadType(102), rtp.WithSSRC(1234), rtp.WithTimestamp(ts))
	out := make([][]*rtp.Packet, len(aus))
	for i, au := range aus {
		out[i] = p.Packetize(annexB(au), frameTicks)
	}
	return out
}

func flatten(frames [][]*rtp.Packet) []*rtp.Packet {
	var all []*rtp.Packet
	for _, f := range frames {
		all = append(all, f...)
	}
	return all
}
