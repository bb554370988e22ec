// Package h265 inspects H.265 access units given as NAL units without
// start codes: keyframe detection, parameter sets and the track config a
// container needs. SPS parsing is github.com/Eyevinn/mp4ff/hevc.
package h265

import (
	"bytes"
	"errors"
	"fmt"

	"github.com/Eyevinn/mp4ff/hevc"

	"github.com/onair/onair/media/annexb"
	"github.com/onair/onair/media/av"
)

// NALUType is nal_unit_type (ITU-T H.265 table 7-1).
type NALUType uint8

const (
	NALUTypeBLAWLP    NALUType = 16 // first IRAP type
	NALUTypeIDRWRADL  NALUType = 19
	NALUTypeIDRNLP    NALUType = 20
	NALUTypeCRA       NALUType = 21 // last IRAP type we treat as a keyframe
	NALUTypeVPS       NALUType = 32
	NALUTypeSPS       NALUType = 33
	NALUTypePPS       NALUType = 34
	NALUTypeAUD       NALUType = 35
	NALUTypeSEIPrefix NALUType = 39
	NALUTypeSEISuffix NALUType = 40
)

// ErrBadSPS reports an SPS that cannot be parsed.
var ErrBadSPS = errors.New("h265: bad SPS")

// Type returns the type of a NAL unit (0 if it is empty).
func Type(nalu []byte) NALUType {
	if len(nalu) == 0 {
		return 0
	}
	return NALUType(nalu[0]>>1) & 0x3f
}

// SplitAnnexB returns the NAL units of an Annex B byte stream, aliasing b.
// See annexb.Split.
func SplitAnnexB(b []byte) [][]byte { return annexb.Split(b) }

// IsIRAP reports whether t is an intra random access point picture
// (BLA, IDR or CRA; types 16..21).
func IsIRAP(t NALUType) bool { return t >= NALUTypeBLAWLP && t <= NALUTypeCRA }

// IsKeyframe reports whether the access unit holds an IRAP picture.
func IsKeyframe(nalus [][]byte) bool {
	for _, u := range nalus {
		if IsIRAP(Type(u)) {
			return true
		}
	}
	return false
}

// IsParameterSetOrAUD reports whether units of type t are VPS, SPS, PPS or
// access unit delimiters: what a packager drops when the container carries
// parameter sets out of band (SEI is kept).
func IsParameterSetOrAUD(t NALUType) bool {
	return t == NALUTypeVPS || t == NALUTypeSPS || t == NALUTypePPS || t == NALUTypeAUD
}

// StripParameterSetsAndAUD returns nalus without VPS, SPS, PPS and AUD
// units. It never modifies nalus: it returns nalus itself when there is
// nothing to strip, else a new slice.
func StripParameterSetsAndAUD(nalus [][]byte) [][]byte {
	n := 0
	for _, u := range nalus {
		if !IsParameterSetOrAUD(Type(u)) {
			n++
		}
	}
	if n == len(nalus) {
		return nalus
	}
	out := make([][]byte, 0, n)
	for _, u := range nalus {
		if !IsParameterSetOrAUD(Type(u)) {
			out = append(out, u)
		}
	}
	return out
}

// Config collects the VPS, SPS and PPS units of nalus (copied, duplicates
// dropped) and the picture size from the first SPS. ok is true when the
// config is complete: a VPS, an SPS that parses and a PPS. A partial
// config is still returned so a caller can merge parameter sets that
// arrive in different access units.
func Config(nalus [][]byte) (cfg av.TrackConfig, ok bool) {
	cfg.Codec = av.H265
	for _, u := range nalus {
		switch Type(u) {
		case NALUTypeVPS:
			cfg.VPS = appendUnique(cfg.VPS, u)
		case NALUTypeSPS:
			cfg.SPS = appendUnique(cfg.SPS, u)
		case NALUTypePPS:
			cfg.PPS = appendUnique(cfg.PPS, u)
		}
	}
	if len(cfg.SPS) == 0 {
		return cfg, false
	}
	w, h, err := PictureSize(cfg.SPS[0])
	if err != nil {
		return cfg, false
	}
	cfg.Width, cfg.Height = w, h
	return cfg, len(cfg.VPS) > 0 && len(cfg.PPS) > 0
}

// PictureSize returns the picture size an SPS declares, conformance
// window applied.
func PictureSize(sps []byte) (width, height int, err error) {
	if Type(sps) != NALUTypeSPS || len(sps) < 3 {
		return 0, 0, fmt.Errorf("%w: NAL unit type %d is not an SPS", ErrBadSPS, Type(sps))
	}
	s, err := parseSPS(sps)
	if err != nil {
		return 0, 0, fmt.Errorf("%w: %w", ErrBadSPS, err)
	}
	w, h := s.ImageSize()
	// A conformance window larger than the picture wraps the sizes.
	if w == 0 || h == 0 || w > 1<<16 || h > 1<<16 {
		return 0, 0, fmt.Errorf("%w: picture size %dx%d", ErrBadSPS, w, h)
	}
	return int(w), int(h), nil
}

// parseSPS runs mp4ff's parser, turning a panic on corrupt input into an
// error: the SPS comes from the network. (Unlike the H.264 one, mp4ff's
// H.265 parser bounds every allocation by a byte-sized count.)
func parseSPS(sps []byte) (s *hevc.SPS, err error) {
	defer func() {
		if r := recover(); r != nil {
			s, err = nil, fmt.Errorf("parser panic: %v", r)
		}
	}()
	return hevc.ParseSPSNALUnit(sps)
}

func appendUnique(list [][]byte, u []byte) [][]byte {
	for _, v := range list {
		if bytes.Equal(v, u) {
			return list
		}
	}
	return append(list, bytes.Clone(u))
}
