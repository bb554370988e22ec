// Package aac parses AAC in ADTS framing, as MPEG-TS carries it (stream
// type 0x0F), into raw AAC frames and the track config a container needs.
//
// The 7-byte ADTS header is decoded here rather than with mp4ff's
// aac.DecodeADTSHeader: that one hunts for the sync word through an
// io.Reader and allocates per frame, while a PES needs exact frame
// boundaries (and garbage reported, not skipped). The AudioSpecificConfig
// is encoded by mp4ff.
package aac

import (
	"bytes"
	"errors"
	"fmt"

	mp4aac "github.com/Eyevinn/mp4ff/aac"

	"github.com/onair/onair/media/av"
)

// SamplesPerFrame is the number of PCM samples per channel in one AAC
// frame (AAC-LC; 960-sample frames are not used in ADTS).
const SamplesPerFrame = 1024

// ObjectTypeLC is the MPEG-4 audio object type of AAC-LC.
const ObjectTypeLC = mp4aac.AAClc

var (
	// ErrNoSync reports bytes where an ADTS header should start.
	ErrNoSync = errors.New("aac: no ADTS sync word")
	// ErrTruncated reports an ADTS frame cut short.
	ErrTruncated = errors.New("aac: ADTS frame truncated")
	// ErrUnsupported reports a valid ADTS stream we cannot package.
	ErrUnsupported = errors.New("aac: unsupported ADTS stream")
	// ErrConfigChanged reports a frame whose format differs from the
	// first frame of the same payload.
	ErrConfigChanged = errors.New("aac: ADTS format changed within one payload")
)

// Header is a decoded ADTS header (ISO/IEC 13818-7 6.2).
type Header struct {
	ObjectType      byte // MPEG-4 audio object type: ADTS profile + 1
	SampleRateIndex byte
	ChannelConfig   byte
	SampleRate      int
	Channels        int
	HeaderLen       int // 7, or 9 with a CRC
	FrameLen        int // header and payload
}

// ParseHeader decodes the ADTS header at the start of b and checks that
// the whole frame is present.
func ParseHeader(b []byte) (Header, error) {
	var h Header
	if len(b) < 7 {
		return h, fmt.Errorf("%w: %d bytes, need 7 for a header", ErrTruncated, len(b))
	}
	if b[0] != 0xff || b[1]&0xf6 != 0xf0 { // syncword, layer 0
		return h, fmt.Errorf("%w: got % x", ErrNoSync, b[:2])
	}
	h.HeaderLen = 7
	if b[1]&1 == 0 { // protection_absent
		h.HeaderLen = 9
	}
	h.ObjectType = b[2]>>6 + 1
	h.SampleRateIndex = b[2] >> 2 & 0xf
	h.ChannelConfig = b[2]&1<<2 | b[3]>>6
	h.FrameLen = int(b[3]&3)<<11 | int(b[4])<<3 | int(b[5])>>5
	rawBlocks := b[6]&3 + 1

	rate, ok := mp4aac.FrequencyTable[h.SampleRateIndex]
	if !ok {
		return h, fmt.Errorf("%w: sampling_frequency_index %d is reserved", ErrUnsupported, h.SampleRateIndex)
	}
	h.SampleRate = rate
	switch {
	case h.ChannelConfig == 0:
		return h, fmt.Errorf("%w: channel layout in a program config element; send 1 to 8 channels with a standard layout", ErrUnsupported)
	case h.ChannelConfig == 7:
		h.Channels = 8
	default:
		h.Channels = int(h.ChannelConfig)
	}
	if rawBlocks != 1 {
		return h, fmt.Errorf("%w: %d AAC frames in one ADTS frame; configure the encoder for one", ErrUnsupported, rawBlocks)
	}
	if h.FrameLen <= h.HeaderLen {
		return h, fmt.Errorf("%w: frame_length %d with a %d-byte header", ErrNoSync, h.FrameLen, h.HeaderLen)
	}
	if len(b) < h.FrameLen {
		return h, fmt.Errorf("%w: frame_length %d, %d bytes left", ErrTruncated, h.FrameLen, len(b))
	}
	return h, nil
}

// Config returns the track config of a stream with this header.
func (h Header) Config() (av.TrackConfig, error) {
	if h.ObjectType != ObjectTypeLC {
		return av.TrackConfig{}, fmt.Errorf("%w: audio object type %d; encode AAC-LC", ErrUnsupported, h.ObjectType)
	}
	asc := mp4aac.AudioSpecificConfig{
		ObjectType:           h.ObjectType,
		ChannelConfiguration: h.ChannelConfig,
		SamplingFrequency:    h.SampleRate,
	}
	var buf bytes.Buffer
	if err := asc.Encode(&buf); err != nil {
		return av.TrackConfig{}, fmt.Errorf("aac: encoding AudioSpecificConfig: %w", err)
	}
	return av.TrackConfig{
		Codec:               av.AAC,
		SampleRate:          h.SampleRate,
		Channels:            h.Channels,
		AudioSpecificConfig: buf.Bytes(),
	}, nil
}

func sameFormat(a, b Header) bool {
	return a.ObjectType == b.ObjectType && a.SampleRateIndex == b.SampleRateIndex && a.ChannelConfig == b.ChannelConfig
}

// ParseADTS splits b, one or more whole ADTS frames as in one PES, into
// raw AAC frames (headers and CRCs removed; the slices alias b) and the
// config of the first frame.
//
// On an error it still returns the frames before the bad one, and cfg if
// the first header was good, so a caller can keep what is usable.
func ParseADTS(b []byte) (frames [][]byte, cfg av.TrackConfig, err error) {
	if len(b) == 0 {
		return nil, cfg, fmt.Errorf("%w: empty payload", ErrNoSync)
	}
	var first Header
	for off := 0; off < len(b); {
		h, err := ParseHeader(b[off:])
		if err != nil {
			return frames, cfg, fmt.Errorf("ADTS frame %d at byte %d: %w", len(frames), off, err)
		}
		if len(frames) == 0 {
			if cfg, err = h.Config(); err != nil {
				return nil, cfg, err
			}
			first = h
		} else if !sameFormat(first, h) {
			return frames, cfg, fmt.Errorf("%w: frame %d has object type %d, %d Hz, channel config %d; frame 0 had %d, %d Hz, %d",
				ErrConfigChanged, len(frames), h.ObjectType, h.SampleRate, h.ChannelConfig,
				first.ObjectType, first.SampleRate, first.ChannelConfig)
		}
		end := off + h.FrameLen
		frames = append(frames, b[off+h.HeaderLen:end:end])
		off = end
	}
	return frames, cfg, nil
}
