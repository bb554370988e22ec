// Package h264 inspects H.264 access units given as NAL units without
// start codes: keyframe detection, parameter sets and the track config a
// container needs. SPS parsing is github.com/Eyevinn/mp4ff/avc.
package h264

import (
	"bytes"
	"errors"
	"fmt"

	"github.com/Eyevinn/mp4ff/avc"
	"github.com/Eyevinn/mp4ff/bits"

	"github.com/onair/onair/media/annexb"
	"github.com/onair/onair/media/av"
)

// NALUType is nal_unit_type (ITU-T H.264 table 7-1).
type NALUType uint8

const (
	NALUTypeNonIDR NALUType = 1
	NALUTypeIDR    NALUType = 5
	NALUTypeSEI    NALUType = 6
	NALUTypeSPS    NALUType = 7
	NALUTypePPS    NALUType = 8
	NALUTypeAUD    NALUType = 9
	NALUTypeFiller NALUType = 12
)

// ErrBadSPS reports an SPS that cannot be parsed.
var ErrBadSPS = errors.New("h264: bad SPS")

// Type returns the type of a NAL unit (0, unspecified, if it is empty).
func Type(nalu []byte) NALUType {
	if len(nalu) == 0 {
		return 0
	}
	return NALUType(nalu[0] & 0x1f)
}

// SplitAnnexB returns the NAL units of an Annex B byte stream, aliasing b.
// See annexb.Split.
func SplitAnnexB(b []byte) [][]byte { return annexb.Split(b) }

// IsKeyframe reports whether the access unit holds an IDR picture.
func IsKeyframe(nalus [][]byte) bool {
	for _, u := range nalus {
		if Type(u) == NALUTypeIDR {
			return true
		}
	}
	return false
}

// IsParameterSetOrAUD reports whether units of type t are SPS, PPS or
// access unit delimiters: what a packager drops when the container carries
// parameter sets out of band (SEI is kept: it carries captions and timing).
func IsParameterSetOrAUD(t NALUType) bool {
	return t == NALUTypeSPS || t == NALUTypePPS || t == NALUTypeAUD
}

// StripParameterSetsAndAUD returns nalus without SPS, PPS and AUD units.
// It never modifies nalus (frames may be shared): it returns nalus itself
// when there is nothing to strip, else a new slice.
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

// Config collects the SPS and PPS units of nalus (copied, duplicates
// dropped) and the picture size from the first SPS. ok is true when the
// config is complete: an SPS that parses and a PPS. A partial config is
// still returned, so a caller can merge parameter sets that arrive in
// different access units.
func Config(nalus [][]byte) (cfg av.TrackConfig, ok bool) {
	cfg.Codec = av.H264
	for _, u := range nalus {
		switch Type(u) {
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
	return cfg, len(cfg.PPS) > 0
}

// PictureSize returns the cropped picture size an SPS declares.
func PictureSize(sps []byte) (width, height int, err error) {
	if err := checkSPS(sps); err != nil {
		return 0, 0, err
	}
	s, err := parseSPS(sps)
	if err != nil {
		return 0, 0, fmt.Errorf("%w: %w", ErrBadSPS, err)
	}
	// Frame cropping larger than the picture wraps the unsigned sizes.
	if s.Width == 0 || s.Height == 0 || s.Width > 1<<16 || s.Height > 1<<16 {
		return 0, 0, fmt.Errorf("%w: picture size %dx%d", ErrBadSPS, s.Width, s.Height)
	}
	return int(s.Width), int(s.Height), nil
}

// parseSPS runs mp4ff's parser, turning a panic on corrupt input into an
// error: the SPS comes from the network.
func parseSPS(sps []byte) (s *avc.SPS, err error) {
	defer func() {
		if r := recover(); r != nil {
			s, err = nil, fmt.Errorf("parser panic: %v", r)
		}
	}()
	return avc.ParseSPSNALUnit(sps, false)
}

// maxPOCCycle is the largest num_ref_frames_in_pic_order_cnt_cycle the
// standard allows (7.4.2.1.1).
const maxPOCCycle = 255

// checkSPS reads an SPS up to num_ref_frames_in_pic_order_cnt_cycle, the
// way mp4ff does, and rejects values beyond the standard's range: mp4ff
// allocates a slice of that length, so a crafted SPS of a dozen bytes
// could make it allocate gigabytes.
func checkSPS(sps []byte) error {
	if Type(sps) != NALUTypeSPS {
		return fmt.Errorf("%w: NAL unit type %d is not an SPS", ErrBadSPS, Type(sps))
	}
	r := bits.NewEBSPReader(bytes.NewReader(sps))
	_ = r.Read(8) // NAL header
	profile := r.Read(8)
	_ = r.Read(16) // constraint flags, level
	_ = r.ReadExpGolomb()
	switch profile {
	case 100, 110, 122, 244, 44, 83, 86, 118, 128, 138, 139, 134, 135:
		chroma := byte(r.ReadExpGolomb())
		if chroma == 3 {
			_ = r.ReadFlag()
		}
		_ = r.ReadExpGolomb()
		_ = r.ReadExpGolomb()
		_ = r.ReadFlag()
		if r.ReadFlag() { // seq_scaling_matrix_present_flag
			lists := 12
			if chroma != 3 {
				lists = 8
			}
			for i := 0; i < lists && r.AccError() == nil; i++ {
				if !r.ReadFlag() {
					continue
				}
				size := 16
				if i >= 6 {
					size = 64
				}
				skipScalingList(r, size)
			}
		}
	}
	_ = r.ReadExpGolomb() // log2_max_frame_num_minus4
	if r.ReadExpGolomb() == 1 {
		_ = r.ReadFlag()
		_ = r.ReadSignedGolomb()
		_ = r.ReadSignedGolomb()
		if n := r.ReadExpGolomb(); n > maxPOCCycle {
			return fmt.Errorf("%w: num_ref_frames_in_pic_order_cnt_cycle %d > %d", ErrBadSPS, n, maxPOCCycle)
		}
	}
	if err := r.AccError(); err != nil {
		return fmt.Errorf("%w: %w", ErrBadSPS, err)
	}
	return nil
}

// skipScalingList reads scaling_list() (7.3.2.1.1.1) as mp4ff does.
func skipScalingList(r *bits.EBSPReader, size int) {
	last, next := 8, 8
	for j := 0; j < size; j++ {
		if next != 0 {
			next = (last + r.ReadSignedGolomb() + 256) % 256
		}
		if next != 0 {
			last = next
		}
	}
}

func appendUnique(list [][]byte, u []byte) [][]byte {
	for _, v := range list {
		if bytes.Equal(v, u) {
			return list
		}
	}
	return append(list, bytes.Clone(u))
}
