// Package av holds the units every protocol converts to and from: coded
// frames with their timestamps, and the codec configuration a track needs
// before its first frame can be packaged.
package av

import "fmt"

// ClockRate is the media clock of every timestamp in this package (MPEG 90 kHz).
const ClockRate = 90000

// Codec identifies a coded format.
type Codec uint8

const (
	CodecUnknown Codec = iota
	H264
	H265
	AAC
	Opus
)

func (c Codec) String() string {
	switch c {
	case H264:
		return "H.264"
	case H265:
		return "H.265"
	case AAC:
		return "AAC"
	case Opus:
		return "Opus"
	}
	return fmt.Sprintf("codec(%d)", uint8(c))
}

// IsVideo reports whether the codec carries pictures.
func (c Codec) IsVideo() bool { return c == H264 || c == H265 }

// IsAudio reports whether the codec carries sound.
func (c Codec) IsAudio() bool { return c == AAC || c == Opus }

// Frame is one access unit: a picture or an audio frame.
//
// Video frames carry NAL units without start codes or length prefixes, in
// bitstream order, parameter sets and all (the packager strips what the
// container carries elsewhere). Audio frames carry one raw codec frame
// (AAC without ADTS header, one Opus packet).
type Frame struct {
	Codec Codec
	// PTS and DTS are on the 90 kHz clock, already unwrapped from 33 bits
	// so they only ever grow within one publisher session.
	PTS, DTS int64
	// Key marks a frame a decoder can start from, found in the bitstream
	// (IDR / IRAP NAL unit), not trusted from a container flag. Audio
	// frames are always Key.
	Key bool
	// NALUs is set for video frames.
	NALUs [][]byte
	// Data is set for audio frames.
	Data []byte
}

// Size is the number of payload bytes in the frame.
func (f *Frame) Size() int {
	if f.Data != nil {
		return len(f.Data)
	}
	n := 0
	for _, u := range f.NALUs {
		n += len(u)
	}
	return n
}

// TrackConfig is what a container needs to describe a track before its
// first sample: parameter sets for video, sample rate and decoder config
// for audio.
type TrackConfig struct {
	Codec Codec

	// Video.
	VPS, SPS, PPS [][]byte // H.265 uses VPS/SPS/PPS, H.264 SPS/PPS
	Width, Height int

	// Audio.
	SampleRate int
	Channels   int
	// AudioSpecificConfig is the MPEG-4 AudioSpecificConfig for AAC.
	AudioSpecificConfig []byte
}

// Ready reports whether the config holds everything a container needs.
func (c *TrackConfig) Ready() bool {
	switch c.Codec {
	case H264:
		return len(c.SPS) > 0 && len(c.PPS) > 0
	case H265:
		return len(c.VPS) > 0 && len(c.SPS) > 0 && len(c.PPS) > 0
	case AAC:
		return c.SampleRate > 0 && len(c.AudioSpecificConfig) > 0
	case Opus:
		return c.SampleRate > 0 && c.Channels > 0
	}
	return false
}
