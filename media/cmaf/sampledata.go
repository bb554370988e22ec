package cmaf

import (
	"encoding/binary"

	"github.com/onair/onair/media/av"
)

// NAL unit types dropped from samples: the init segment carries the
// parameter sets (avc1/hvc1), access unit delimiters mean nothing in a
// container, and filler data is only padding for a constant bit rate.
const (
	h264SPS    = 7
	h264PPS    = 8
	h264AUD    = 9
	h264Filler = 12

	h265VPS    = 32
	h265SPS    = 33
	h265PPS    = 34
	h265AUD    = 35
	h265Filler = 38
)

// VideoSampleData converts NAL units (no start codes) into sample data with
// 4-byte big-endian length prefixes, appended to dst so callers can reuse
// buffers. It drops access unit delimiters, filler data and in-band
// parameter sets (VPS/SPS/PPS), keeps SEI and everything else, and skips
// empty NAL units. Other codecs return dst unchanged.
func VideoSampleData(dst []byte, codec av.Codec, nalus [][]byte) []byte {
	if !codec.IsVideo() {
		return dst
	}
	n := 0
	for _, u := range nalus {
		if keep(codec, u) {
			n += 4 + len(u)
		}
	}
	dst = grow(dst, n)
	for _, u := range nalus {
		if !keep(codec, u) {
			continue
		}
		dst = binary.BigEndian.AppendUint32(dst, uint32(len(u)))
		dst = append(dst, u...)
	}
	return dst
}

func keep(codec av.Codec, u []byte) bool {
	if len(u) == 0 {
		return false
	}
	if codec == av.H264 {
		switch u[0] & 0x1f {
		case h264SPS, h264PPS, h264AUD, h264Filler:
			return false
		}
		return true
	}
	switch (u[0] >> 1) & 0x3f {
	case h265VPS, h265SPS, h265PPS, h265AUD, h265Filler:
		return false
	}
	return true
}

// grow makes room for n more bytes with at most one allocation.
func grow(b []byte, n int) []byte {
	if cap(b)-len(b) >= n {
		return b
	}
	nb := make([]byte, len(b), len(b)+n)
	copy(nb, b)
	return nb
}
