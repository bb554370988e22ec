// Package annexb splits H.264 and H.265 Annex B byte streams (the start-code
// framing MPEG-TS carries) into NAL units.
//
// Hand-written rather than mp4ff's avc.ExtractNalusFromByteStream because
// that one copies every NAL unit; on the ingest hot path the units alias the
// PES buffer instead.
package annexb

import "bytes"

var startCode = []byte{0, 0, 1}

// Split returns the NAL units of an Annex B byte stream, without start codes.
//
// The units alias b (capped, so appending to one never overwrites the next).
// Bytes before the first start code are not a NAL unit and are ignored;
// trailing zero bytes (trailing_zero_8bits, or the first byte of a 4-byte
// start code) are trimmed; empty units are dropped. Emulation prevention
// guarantees 00 00 01 never occurs inside a unit, so no escaping is undone.
func Split(b []byte) [][]byte {
	var out [][]byte
	start := -1
	for i := 0; ; {
		j := bytes.Index(b[i:], startCode)
		if j < 0 {
			break
		}
		j += i
		if start >= 0 {
			out = appendUnit(out, b, start, j)
		}
		start = j + len(startCode)
		i = start
	}
	if start >= 0 {
		out = appendUnit(out, b, start, len(b))
	}
	return out
}

func appendUnit(out [][]byte, b []byte, start, end int) [][]byte {
	for end > start && b[end-1] == 0 {
		end--
	}
	if end == start {
		return out
	}
	if out == nil {
		// An access unit usually holds a handful of units (AUD, SEI,
		// parameter sets, slices): one allocation covers most.
		out = make([][]byte, 0, 8)
	}
	return append(out, b[start:end:end])
}
