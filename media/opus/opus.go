// Package opus unpacks Opus carried in MPEG-TS (the ETSI "Opus in MPEG-2
// TS" draft, opus-codec.org ETSI_TS_opus-v0.1.3: stream type 0x06 with
// registration descriptor "Opus", as ffmpeg muxes it) into raw Opus
// packets, and times Opus packets from their TOC byte (RFC 6716 3.1).
//
// Hand-written: neither astits nor mp4ff parses the TS access unit framing,
// and it is a few bytes of header.
package opus

import (
	"errors"
	"fmt"
)

// SampleRate is the rate Opus timestamps count in, whatever the coded
// bandwidth.
const SampleRate = 48000

var (
	// ErrNoControlHeader reports bytes where an opus_control_header
	// (0x7FE0 prefix) should start.
	ErrNoControlHeader = errors.New("opus: no opus_control_header")
	// ErrTruncated reports an access unit cut short.
	ErrTruncated = errors.New("opus: access unit truncated")
)

// Packet is one Opus packet unpacked from a PES, with the trimming its
// control header asked for (in 48 kHz samples, to drop from the decoded
// start or end of this packet: encoder priming and end padding).
type Packet struct {
	Data               []byte // aliases the PES payload
	StartTrim, EndTrim int
}

// ParseTS splits a PES payload into Opus packets. Each access unit is an
// opus_control_header: 11 bits 0x3FF, start_trim_flag, end_trim_flag,
// control_extension_flag, 2 reserved bits; au_size as a run of 0xFF bytes
// plus a final byte, summed; the optional 16-bit trims (13 bits used); an
// optional length-prefixed extension; then au_size bytes of Opus packet.
//
// On an error the packets before the bad access unit are still returned.
func ParseTS(b []byte) ([]Packet, error) {
	if len(b) == 0 {
		return nil, fmt.Errorf("%w: empty payload", ErrNoControlHeader)
	}
	var pkts []Packet
	for off := 0; off < len(b); {
		p, n, err := parseAU(b[off:])
		if err != nil {
			return pkts, fmt.Errorf("access unit %d at byte %d: %w", len(pkts), off, err)
		}
		pkts = append(pkts, p)
		off += n
	}
	return pkts, nil
}

// parseAU parses the access unit at the start of b and returns its length.
func parseAU(b []byte) (p Packet, n int, err error) {
	if len(b) < 3 {
		return p, 0, fmt.Errorf("%w: %d bytes left", ErrTruncated, len(b))
	}
	if b[0] != 0x7f || b[1]&0xe0 != 0xe0 {
		return p, 0, fmt.Errorf("%w: got % x", ErrNoControlHeader, b[:2])
	}
	startTrim, endTrim, ext := b[1]&0x10 != 0, b[1]&0x08 != 0, b[1]&0x04 != 0
	i := 2
	size := 0
	for {
		if i >= len(b) {
			return p, 0, fmt.Errorf("%w: in au_size", ErrTruncated)
		}
		v := b[i]
		i++
		size += int(v)
		if v != 0xff {
			break
		}
	}
	trim := func() (int, error) {
		if i+2 > len(b) {
			return 0, fmt.Errorf("%w: in trim", ErrTruncated)
		}
		v := int(b[i]&0x1f)<<8 | int(b[i+1])
		i += 2
		return v, nil
	}
	if startTrim {
		if p.StartTrim, err = trim(); err != nil {
			return p, 0, err
		}
	}
	if endTrim {
		if p.EndTrim, err = trim(); err != nil {
			return p, 0, err
		}
	}
	if ext {
		if i >= len(b) {
			return p, 0, fmt.Errorf("%w: in control extension", ErrTruncated)
		}
		i += 1 + int(b[i])
	}
	if i+size > len(b) {
		return p, 0, fmt.Errorf("%w: au_size %d, %d bytes left", ErrTruncated, size, len(b)-min(i, len(b)))
	}
	p.Data = b[i : i+size : i+size]
	return p, i + size, nil
}

// PacketDuration returns how many 48 kHz samples an Opus packet decodes
// to, from its TOC byte and frame count (RFC 6716 3.1, 3.2.5). It returns
// 0 for a packet that is not valid Opus: empty, a code 3 packet without
// its frame count byte, or longer than the 120 ms the RFC allows.
func PacketDuration(pkt []byte) int {
	if len(pkt) == 0 {
		return 0
	}
	toc := pkt[0]
	config := toc >> 3
	var frame int // samples at 48 kHz
	switch {
	case config < 12: // SILK: 10, 20, 40, 60 ms
		frame = [4]int{480, 960, 1920, 2880}[config&3]
	case config < 16: // hybrid: 10, 20 ms
		frame = [2]int{480, 960}[config&1]
	default: // CELT: 2.5, 5, 10, 20 ms
		frame = [4]int{120, 240, 480, 960}[config&3]
	}
	var frames int
	switch toc & 3 {
	case 0:
		frames = 1
	case 1, 2:
		frames = 2
	case 3:
		if len(pkt) < 2 {
			return 0
		}
		frames = int(pkt[1] & 0x3f)
	}
	d := frame * frames
	if d > 5760 { // 120 ms
		return 0
	}
	return d
}

// Channels returns the channel count the TOC byte's stereo flag signals
// (1 or 2), for streams whose descriptor does not say, or 0 for an empty
// packet.
func Channels(pkt []byte) int {
	if len(pkt) == 0 {
		return 0
	}
	if pkt[0]&0x04 != 0 {
		return 2
	}
	return 1
}
