package rtpfwd

import (
	"bytes"
	"fmt"

	"github.com/onair/onair/media/av"
	"github.com/onair/onair/media/h264"
)

// packetizeH264 fills f.payloads with the RTP payloads of fr and reports
// whether it holds an IDR picture (from the NAL unit types, not fr.Key: a
// viewer may only start on a real IDR).
func (f *Forwarder) packetizeH264(fr *av.Frame, cfg *av.TrackConfig) (key bool, err error) {
	f.payloads = f.payloads[:0]
	key = h264.IsKeyframe(fr.NALUs)
	var spsBuf, ppsBuf [4][]byte // no allocation for the usual one of each
	frameSPS, framePPS := spsBuf[:0], ppsBuf[:0]
	for _, u := range fr.NALUs {
		switch h264.Type(u) {
		case h264.NALUTypeSPS:
			frameSPS = append(frameSPS, u)
		case h264.NALUTypePPS:
			framePPS = append(framePPS, u)
		}
	}
	switch {
	case len(frameSPS) > 0:
		f.sps = keep(f.sps, frameSPS)
	case key && cfg != nil && len(cfg.SPS) > 0:
		f.sps = keep(f.sps, cfg.SPS)
	}
	switch {
	case len(framePPS) > 0:
		f.pps = keep(f.pps, framePPS)
	case key && cfg != nil && len(cfg.PPS) > 0:
		f.pps = keep(f.pps, cfg.PPS)
	}
	if key && (len(f.sps) == 0 || len(f.pps) == 0) {
		return false, fmt.Errorf("%w (PTS %d): pass the stream's av.TrackConfig", ErrNoParameterSets, fr.PTS)
	}
	if len(f.sps) > 0 && len(f.sps[0]) >= 4 {
		s := f.sps[0]
		f.profile.Store(1<<16 | uint32(s[1])<<8 | uint32(s[2]))
	}

	// Before an IDR, one SPS and one PPS travel as a STAP-A in front of the
	// next unit. More (the payloader's STAP-A holds only the last of each),
	// too big to share a packet, or inside a non-IDR frame (where no unit
	// may follow them) go as single NAL unit packets.
	f.payloader.DisableStapA = !key || len(f.sps) != 1 || len(f.pps) != 1 || 5+len(f.sps[0])+len(f.pps[0]) > mtu
	psSent := false
	sendPS := func(sps, pps bool) {
		// The payloader may hold on to SPS/PPS until the next unit, so it
		// gets the forwarder's copies, never the frame's memory.
		if sps {
			for _, u := range f.sps {
				f.payloads = append(f.payloads, f.payloader.Payload(mtu, u)...)
			}
		}
		if pps {
			for _, u := range f.pps {
				f.payloads = append(f.payloads, f.payloader.Payload(mtu, u)...)
			}
		}
		psSent = true
	}
	if key {
		sendPS(true, true)
	}
	for _, u := range fr.NALUs {
		switch t := h264.Type(u); {
		case t == h264.NALUTypeSPS || t == h264.NALUTypePPS:
			// A non-IDR frame may bring parameter sets its slices use.
			if !psSent {
				sendPS(len(frameSPS) > 0, len(framePPS) > 0)
			}
		case t == h264.NALUTypeAUD || t == h264.NALUTypeFiller || t == 0:
			// WebRTC receivers do not need them; the payloader drops them too.
		default:
			f.payloads = append(f.payloads, f.payloader.Payload(mtu, u)...)
		}
	}
	return key, nil
}

// keep returns owned copies of units, reusing old when nothing changed (the
// common case: the same parameter sets before every IDR).
func keep(old, units [][]byte) [][]byte {
	if len(old) == len(units) {
		same := true
		for i := range units {
			if !bytes.Equal(old[i], units[i]) {
				same = false
				break
			}
		}
		if same {
			return old
		}
	}
	// Fresh memory, never old's: the payloader may still hold old units.
	out := make([][]byte, len(units))
	for i, u := range units {
		out[i] = bytes.Clone(u)
	}
	return out
}
