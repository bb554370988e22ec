package cmaf

// Minimal elementary-stream splitters for the tests only: Annex-B (H.264,
// H.265), ADTS (AAC) and Ogg (Opus). Production parsers live elsewhere.

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"

	"github.com/onair/onair/media/av"
)

// splitAnnexB returns the NAL units of an Annex-B byte stream, without
// start codes or trailing zero bytes.
func splitAnnexB(b []byte) [][]byte {
	var nalus [][]byte
	start := -1
	i := 0
	for i+2 < len(b) {
		if b[i] == 0 && b[i+1] == 0 && b[i+2] == 1 {
			if start >= 0 {
				nalus = append(nalus, bytes.TrimRight(b[start:i], "\x00"))
			}
			i += 3
			start = i
			continue
		}
		i++
	}
	if start >= 0 && start < len(b) {
		nalus = append(nalus, b[start:])
	}
	return nalus
}

func nalType(codec av.Codec, u []byte) int {
	if codec == av.H264 {
		return int(u[0] & 0x1f)
	}
	return int(u[0]>>1) & 0x3f
}

func isVCL(codec av.Codec, typ int) bool {
	if codec == av.H264 {
		return typ >= 1 && typ <= 5
	}
	return typ < 32
}

// firstSliceOfPicture reports whether a VCL NAL unit starts a new picture:
// first_mb_in_slice == 0 (ue(v) "1") for H.264,
// first_slice_segment_in_pic_flag for H.265.
func firstSliceOfPicture(codec av.Codec, u []byte) bool {
	if codec == av.H264 {
		return len(u) > 1 && u[1]&0x80 != 0
	}
	return len(u) > 2 && u[2]&0x80 != 0
}

// startsAU reports NAL units that can only begin an access unit.
func startsAU(codec av.Codec, typ int) bool {
	if codec == av.H264 {
		return typ == 9 || typ == 7 || typ == 8 || typ == 6
	}
	return typ == 35 || typ == 32 || typ == 33 || typ == 34 || typ == 39
}

// accessUnits groups NAL units into access units (ITU-T H.264 7.4.1.2.3,
// H.265 7.4.2.4.4, simplified to what encoders emit).
func accessUnits(codec av.Codec, nalus [][]byte) [][][]byte {
	var aus [][][]byte
	var cur [][]byte
	hasVCL := false
	for _, u := range nalus {
		if len(u) == 0 {
			continue
		}
		typ := nalType(codec, u)
		vcl := isVCL(codec, typ)
		if hasVCL && ((!vcl && startsAU(codec, typ)) || (vcl && firstSliceOfPicture(codec, u))) {
			aus = append(aus, cur)
			cur, hasVCL = nil, false
		}
		cur = append(cur, u)
		hasVCL = hasVCL || vcl
	}
	if len(cur) > 0 {
		aus = append(aus, cur)
	}
	return aus
}

func isKey(codec av.Codec, au [][]byte) bool {
	for _, u := range au {
		typ := nalType(codec, u)
		if codec == av.H264 && typ == 5 {
			return true
		}
		if codec == av.H265 && typ >= 16 && typ <= 23 {
			return true
		}
	}
	return false
}

// videoConfig collects the first parameter sets of the stream.
func videoConfig(codec av.Codec, nalus [][]byte) av.TrackConfig {
	cfg := av.TrackConfig{Codec: codec, Width: 320, Height: 240}
	for _, u := range nalus {
		typ := nalType(codec, u)
		switch {
		case codec == av.H264 && typ == 7 && cfg.SPS == nil,
			codec == av.H265 && typ == 33 && cfg.SPS == nil:
			cfg.SPS = [][]byte{u}
		case codec == av.H264 && typ == 8 && cfg.PPS == nil,
			codec == av.H265 && typ == 34 && cfg.PPS == nil:
			cfg.PPS = [][]byte{u}
		case codec == av.H265 && typ == 32 && cfg.VPS == nil:
			cfg.VPS = [][]byte{u}
		}
	}
	return cfg
}

// packetTimes is one line of testdata/<name>.csv (ffprobe -show_packets).
type packetTimes struct {
	pts, dts int64
	key      bool
}

func readPacketTimes(t testing.TB, path string) []packetTimes {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var out []packetTimes
	for _, line := range strings.Split(string(b), "\n") {
		if strings.TrimSpace(line) == "" {
			continue
		}
		f := strings.Split(line, ",")
		if len(f) < 3 {
			t.Fatalf("%s: bad line %q", path, line)
		}
		pts, err1 := strconv.ParseInt(f[0], 10, 64)
		dts, err2 := strconv.ParseInt(f[1], 10, 64)
		if err1 != nil || err2 != nil {
			t.Fatalf("%s: bad line %q", path, line)
		}
		out = append(out, packetTimes{pts: pts, dts: dts, key: strings.HasPrefix(f[2], "K")})
	}
	return out
}

// adtsFrame is one raw AAC frame and the header fields describing it.
type adtsFrame struct {
	profile, freqIndex, channelConfig byte
	data                              []byte
}

var adtsRates = []int{96000, 88200, 64000, 48000, 44100, 32000, 24000, 22050, 16000, 12000, 11025, 8000, 7350}

// splitADTS returns the raw AAC frames of an ADTS stream (ISO/IEC 14496-3 1.A.2).
func splitADTS(b []byte) ([]adtsFrame, error) {
	var frames []adtsFrame
	for len(b) > 0 {
		if len(b) < 7 || b[0] != 0xff || b[1]&0xf0 != 0xf0 {
			return nil, fmt.Errorf("adts: no syncword at %d bytes before end", len(b))
		}
		hdrLen := 7
		if b[1]&0x01 == 0 { // protection_absent == 0: CRC follows
			hdrLen = 9
		}
		frameLen := int(b[3]&0x03)<<11 | int(b[4])<<3 | int(b[5])>>5
		if frameLen < hdrLen || frameLen > len(b) {
			return nil, fmt.Errorf("adts: frame length %d, %d bytes left", frameLen, len(b))
		}
		if b[6]&0x03 != 0 {
			return nil, fmt.Errorf("adts: several raw blocks per frame not supported")
		}
		frames = append(frames, adtsFrame{
			profile:       b[2] >> 6,
			freqIndex:     (b[2] >> 2) & 0x0f,
			channelConfig: (b[2]&0x01)<<2 | b[3]>>6,
			data:          b[hdrLen:frameLen],
		})
		b = b[frameLen:]
	}
	return frames, nil
}

// audioSpecificConfig builds the 2-byte AAC config an ADTS header implies.
func (f adtsFrame) audioSpecificConfig() []byte {
	aot := f.profile + 1
	return []byte{aot<<3 | f.freqIndex>>1, f.freqIndex<<7 | f.channelConfig<<3}
}

// splitOgg returns the packets of the first logical stream of an Ogg file
// (RFC 3533), joining packets that span pages.
func splitOgg(b []byte) ([][]byte, error) {
	var packets [][]byte
	var cur []byte
	for len(b) > 0 {
		if len(b) < 27 || string(b[:4]) != "OggS" {
			return nil, fmt.Errorf("ogg: no capture pattern at %d bytes before end", len(b))
		}
		nseg := int(b[26])
		if len(b) < 27+nseg {
			return nil, fmt.Errorf("ogg: truncated segment table")
		}
		lacing := b[27 : 27+nseg]
		body := b[27+nseg:]
		for _, l := range lacing {
			if int(l) > len(body) {
				return nil, fmt.Errorf("ogg: truncated page")
			}
			cur = append(cur, body[:l]...)
			body = body[l:]
			if l < 255 {
				packets = append(packets, cur)
				cur = nil
			}
		}
		b = body
	}
	return packets, nil
}

// opusSamples is the number of 48 kHz samples in an Opus packet (RFC 6716 3.1).
func opusSamples(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, fmt.Errorf("opus: empty packet")
	}
	config := int(p[0] >> 3)
	var tenthsMs int
	switch {
	case config < 12: // SILK
		tenthsMs = []int{100, 200, 400, 600}[config%4]
	case config < 16: // hybrid
		tenthsMs = []int{100, 200}[config%2]
	default: // CELT
		tenthsMs = []int{25, 50, 100, 200}[config%4]
	}
	frames := 1
	switch p[0] & 0x03 {
	case 1, 2:
		frames = 2
	case 3:
		if len(p) < 2 {
			return 0, fmt.Errorf("opus: code 3 packet without frame count")
		}
		frames = int(p[1] & 0x3f)
	}
	return frames * tenthsMs * 48 / 10, nil
}

// opusHead reads channel count and input rate from an OpusHead packet (RFC 7845 5.1).
func opusHead(p []byte) (channels, rate int, err error) {
	if len(p) < 19 || string(p[:8]) != "OpusHead" {
		return 0, 0, fmt.Errorf("opus: first packet is not OpusHead")
	}
	return int(p[9]), int(binary.LittleEndian.Uint32(p[12:16])), nil
}
