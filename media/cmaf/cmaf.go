// Package cmaf writes single-track CMAF (fragmented MP4) tracks: one init
// segment per track and one moof+mdat per chunk, the units an LL-HLS
// rendition serves as its map, parts and segments.
//
// Boxes are built with github.com/Eyevinn/mp4ff; this package only decides
// what goes into them (brands, timescales, sample entries, sample flags).
package cmaf

import (
	"bytes"
	"errors"
	"fmt"
	"strconv"

	"github.com/Eyevinn/mp4ff/aac"
	"github.com/Eyevinn/mp4ff/avc"
	"github.com/Eyevinn/mp4ff/bits"
	"github.com/Eyevinn/mp4ff/hevc"
	"github.com/Eyevinn/mp4ff/mp4"

	"github.com/onair/onair/media/av"
)

var (
	// ErrUnsupportedCodec is returned for codecs or codec variants that
	// cannot be carried in a CMAF track here.
	ErrUnsupportedCodec = errors.New("cmaf: unsupported codec")
	// ErrIncompleteConfig is returned when a track config lacks what the
	// init segment needs (parameter sets, sample rate, decoder config).
	ErrIncompleteConfig = errors.New("cmaf: incomplete track config")
	// ErrBadConfig is returned when parameter sets or the
	// AudioSpecificConfig cannot be parsed.
	ErrBadConfig = errors.New("cmaf: invalid codec configuration")
	// ErrNoSamples is returned for a fragment without samples.
	ErrNoSamples = errors.New("cmaf: fragment needs at least one sample")
	// ErrTimeline is returned when samples of one fragment do not follow
	// each other (DTS[i+1] != DTS[i]+Dur[i]); trun only stores durations.
	ErrTimeline = errors.New("cmaf: samples are not contiguous in decode time")
)

// trackID is the same for every track: each track is its own rendition
// with its own init segment.
const trackID = 1

// videoTimescale is the MPEG 90 kHz clock, so av timestamps map 1:1.
const videoTimescale = av.ClockRate

// opusTimescale is fixed by the Opus-in-ISOBMFF mapping.
const opusTimescale = 48000

// Track is one CMAF track: its init segment and how to write its chunks.
// A Track is immutable after NewTrack and safe for concurrent use.
type Track struct {
	codec     av.Codec
	timescale uint32
	init      []byte
	codecs    string
}

// NewTrack builds a single-track CMAF track for cfg.
//
// Video (H.264 as avc1, H.265 as hvc1) uses timescale 90000 and carries its
// parameter sets in the init segment only, so a change of parameter sets
// needs a new Track (and a discontinuity in the playlist). Audio (AAC,
// Opus) uses the sample rate as timescale (always 48000 for Opus).
func NewTrack(cfg av.TrackConfig) (*Track, error) {
	if !cfg.Ready() {
		return nil, fmt.Errorf("%w: %s needs %s", ErrIncompleteConfig, cfg.Codec, needs(cfg.Codec))
	}
	t := &Track{codec: cfg.Codec}
	init := mp4.CreateEmptyInit()
	brands := []string{"iso6", "cmfc", "isom"}
	var err error
	switch cfg.Codec {
	case av.H264:
		t.timescale = videoTimescale
		init.AddEmptyTrack(t.timescale, "video", "und")
		t.codecs, err = setAVC(init.Moov.Trak, cfg)
	case av.H265:
		t.timescale = videoTimescale
		init.AddEmptyTrack(t.timescale, "video", "und")
		t.codecs, err = setHEVC(init.Moov.Trak, cfg)
	case av.AAC:
		t.timescale = uint32(cfg.SampleRate)
		init.AddEmptyTrack(t.timescale, "audio", "und")
		t.codecs, err = setAAC(init.Moov.Trak, cfg)
	case av.Opus:
		t.timescale = opusTimescale
		init.AddEmptyTrack(t.timescale, "audio", "und")
		t.codecs, err = setOpus(init.Moov.Trak, cfg)
		brands = append(brands, "Opus")
	default:
		return nil, fmt.Errorf("%w: %s", ErrUnsupportedCodec, cfg.Codec)
	}
	if err != nil {
		return nil, err
	}
	// mp4ff's default ftyp names "dash"; this track is served over HLS, so
	// name only the ISOBMFF and CMAF brands it conforms to.
	init.Children[0] = mp4.NewFtyp("iso6", 0, brands)
	init.Ftyp = init.Children[0].(*mp4.FtypBox)
	init.Moov.Mvhd.Timescale = t.timescale

	size := int(init.Size())
	sw := bits.NewFixedSliceWriter(size)
	if err := init.EncodeSW(sw); err != nil {
		return nil, fmt.Errorf("cmaf: encode init segment for %s: %w", cfg.Codec, err)
	}
	if sw.Len() != size {
		// A box whose Size and encoding disagree would corrupt the file.
		return nil, fmt.Errorf("%w: %s init segment encodes to %d bytes, boxes say %d",
			ErrBadConfig, cfg.Codec, sw.Len(), size)
	}
	t.init = sw.Bytes()
	return t, nil
}

func needs(c av.Codec) string {
	switch c {
	case av.H264:
		return "SPS and PPS"
	case av.H265:
		return "VPS, SPS and PPS"
	case av.AAC:
		return "a sample rate and an AudioSpecificConfig"
	case av.Opus:
		return "a sample rate and a channel count"
	}
	return "a supported codec (H.264, H.265, AAC, Opus)"
}

// Timescale is the number of ticks per second of Sample.DTS, Dur and CTO.
func (t *Track) Timescale() uint32 { return t.timescale }

// Codec is the codec the track was built for.
func (t *Track) Codec() av.Codec { return t.codec }

// Init is the init segment (ftyp + moov with mvex/trex). The same slice is
// returned on every call; callers must not modify it.
func (t *Track) Init() []byte { return t.init }

// Codecs is the RFC 6381 codecs parameter for the track, as used in
// EXT-X-STREAM-INF CODECS.
func (t *Track) Codecs() string { return t.codecs }

func setAVC(trak *mp4.TrakBox, cfg av.TrackConfig) (string, error) {
	sps, err := parseAVCSPS(cfg.SPS[0])
	if err != nil {
		return "", err
	}
	avcC, err := mp4.CreateAvcC(cfg.SPS, cfg.PPS, true)
	if err != nil {
		return "", fmt.Errorf("%w: H.264 avcC: %v", ErrBadConfig, err)
	}
	// mp4ff assumes 8-bit 4:2:0; the High profile fields must match the SPS.
	avcC.ChromaFormat = sps.ChromaFormatIDC
	avcC.BitDepthLumaMinus1 = byte(sps.BitDepthLumaMinus8)
	avcC.BitDepthChromaMinus1 = byte(sps.BitDepthChromaMinus8)
	switch avcC.AVCProfileIndication {
	case 66, 77, 88, 100, 110, 122, 144:
	default:
		// mp4ff v0.50.0 sizes the chroma/bit-depth trailer for these
		// profiles (e.g. 244, High 4:4:4 Predictive) but never writes it;
		// leave it out so the box stays consistent. Decoders read the
		// same values from the SPS.
		avcC.NoTrailingInfo = true
	}
	w, h := dims(cfg, int(sps.Width), int(sps.Height))
	setVisual(trak, mp4.CreateVisualSampleEntryBox("avc1", w, h, avcC), w, h)
	return avc.CodecString("avc1", sps), nil
}

// parseAVCSPS guards mp4ff's SPS parser, which indexes by values read from
// the bitstream and can panic on corrupt input.
func parseAVCSPS(nalu []byte) (sps *avc.SPS, err error) {
	defer func() {
		if r := recover(); r != nil {
			sps, err = nil, fmt.Errorf("%w: H.264 SPS: %v", ErrBadConfig, r)
		}
	}()
	sps, err = avc.ParseSPSNALUnit(nalu, false)
	if err != nil {
		return nil, fmt.Errorf("%w: H.264 SPS: %v", ErrBadConfig, err)
	}
	return sps, nil
}

func setHEVC(trak *mp4.TrakBox, cfg av.TrackConfig) (string, error) {
	sps, err := parseHEVCSPS(cfg.SPS[0])
	if err != nil {
		return "", err
	}
	hvcC, err := createHvcC(cfg)
	if err != nil {
		return "", err
	}
	// mp4ff leaves these "unknown"; the SPS knows them.
	hvcC.NumTemporalLayers = sps.MaxSubLayersMinus1 + 1
	if sps.TemporalIDNestingFlag {
		hvcC.TemporalIDNested = 1
	}
	sw, sh := sps.ImageSize()
	w, h := dims(cfg, int(sw), int(sh))
	setVisual(trak, mp4.CreateVisualSampleEntryBox("hvc1", w, h, hvcC), w, h)
	return hevc.CodecString("hvc1", sps), nil
}

func parseHEVCSPS(nalu []byte) (sps *hevc.SPS, err error) {
	defer func() {
		if r := recover(); r != nil {
			sps, err = nil, fmt.Errorf("%w: H.265 SPS: %v", ErrBadConfig, r)
		}
	}()
	sps, err = hevc.ParseSPSNALUnit(nalu)
	if err != nil {
		return nil, fmt.Errorf("%w: H.265 SPS: %v", ErrBadConfig, err)
	}
	return sps, nil
}

func createHvcC(cfg av.TrackConfig) (box *mp4.HvcCBox, err error) {
	defer func() {
		if r := recover(); r != nil {
			box, err = nil, fmt.Errorf("%w: H.265 hvcC: %v", ErrBadConfig, r)
		}
	}()
	// hvc1: all parameter sets are in hvcC and none in band.
	box, err = mp4.CreateHvcC(cfg.VPS, cfg.SPS, cfg.PPS, true, true, true, true)
	if err != nil {
		return nil, fmt.Errorf("%w: H.265 hvcC: %v", ErrBadConfig, err)
	}
	return box, nil
}

// dims prefers the configured picture size and falls back to the SPS.
func dims(cfg av.TrackConfig, spsW, spsH int) (uint16, uint16) {
	w, h := cfg.Width, cfg.Height
	if w <= 0 || h <= 0 {
		w, h = spsW, spsH
	}
	return uint16(min(max(w, 0), 0xffff)), uint16(min(max(h, 0), 0xffff))
}

func setVisual(trak *mp4.TrakBox, entry *mp4.VisualSampleEntryBox, w, h uint16) {
	entry.CompressorName = ""
	trak.Tkhd.Width = mp4.Fixed32(uint32(w) << 16)
	trak.Tkhd.Height = mp4.Fixed32(uint32(h) << 16)
	trak.Mdia.Minf.Stbl.Stsd.AddChild(entry)
}

// maxASC bounds the AudioSpecificConfig: mp4ff v0.50.0 writes esds
// descriptor sizes in one byte (up to 127), and real configs, even with a
// program config element, are far smaller.
const maxASC = 64

func setAAC(trak *mp4.TrakBox, cfg av.TrackConfig) (string, error) {
	if len(cfg.AudioSpecificConfig) > maxASC {
		return "", fmt.Errorf("%w: AAC AudioSpecificConfig of %d bytes (at most %d supported)",
			ErrBadConfig, len(cfg.AudioSpecificConfig), maxASC)
	}
	asc, err := aac.DecodeAudioSpecificConfig(bytes.NewReader(cfg.AudioSpecificConfig))
	if err != nil {
		return "", fmt.Errorf("%w: AAC AudioSpecificConfig % x: %v (AAC-LC, HE-AAC and HE-AACv2 are supported)",
			ErrUnsupportedCodec, cfg.AudioSpecificConfig, err)
	}
	channels := cfg.Channels
	if channels <= 0 {
		channels = int(asc.ChannelConfiguration)
	}
	if channels <= 0 {
		return "", fmt.Errorf("%w: AAC channel count unknown (set TrackConfig.Channels)", ErrIncompleteConfig)
	}
	// The esds carries the config exactly as the encoder wrote it.
	esds := mp4.CreateEsdsBox(cfg.AudioSpecificConfig)
	entry := mp4.CreateAudioSampleEntryBox("mp4a", uint16(channels), 16, entryRate(cfg.SampleRate), esds)
	trak.Mdia.Minf.Stbl.Stsd.AddChild(entry)
	return "mp4a.40." + strconv.Itoa(int(asc.ObjectType)), nil
}

// opusPreSkip is 0: onair's Opus comes from WebRTC, which has no encoder
// delay to signal. A decoder then plays the first few ms of warm-up.
const opusPreSkip = 0

func setOpus(trak *mp4.TrakBox, cfg av.TrackConfig) (string, error) {
	if cfg.Channels > 2 {
		// Channel mapping family 1 needs stream counts and a mapping table
		// that av.TrackConfig does not carry.
		return "", fmt.Errorf("%w: opus in CMAF with %d channels (at most 2 supported)", ErrUnsupportedCodec, cfg.Channels)
	}
	dops := &mp4.DopsBox{
		Version:              0,
		OutputChannelCount:   byte(cfg.Channels),
		PreSkip:              opusPreSkip,
		InputSampleRate:      uint32(cfg.SampleRate),
		ChannelMappingFamily: 0,
	}
	entry := mp4.CreateAudioSampleEntryBox("Opus", uint16(cfg.Channels), 16, opusTimescale, dops)
	trak.Mdia.Minf.Stbl.Stsd.AddChild(entry)
	return "opus", nil
}

// entryRate is the sample entry's 16-bit integer rate; rates above 65535
// cannot be written there and are left to the decoder config.
func entryRate(rate int) uint16 {
	if rate > 0xffff {
		return 0
	}
	return uint16(rate)
}
