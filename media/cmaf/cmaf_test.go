package cmaf

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/Eyevinn/mp4ff/mp4"

	"github.com/onair/onair/media/av"
)

// partFrames is the number of video frames per part: 200 ms at 30 fps.
const partFrames = 6

func needTools(t *testing.T) {
	t.Helper()
	for _, p := range []string{"ffmpeg", "ffprobe"} {
		if _, err := exec.LookPath(p); err != nil {
			t.Skipf("%s not installed: %v", p, err)
		}
	}
}

type probeStream struct {
	CodecName    string `json:"codec_name"`
	CodecType    string `json:"codec_type"`
	Profile      string `json:"profile"`
	Level        int    `json:"level"`
	Width        int    `json:"width"`
	Height       int    `json:"height"`
	SampleRate   string `json:"sample_rate"`
	Channels     int    `json:"channels"`
	NbReadFrames string `json:"nb_read_frames"`
}

// probe runs ffprobe with frame counting (which decodes every frame) and
// fails on anything ffprobe prints to stderr.
func probe(t *testing.T, path string) probeStream {
	t.Helper()
	var stderr bytes.Buffer
	cmd := exec.Command("ffprobe", "-v", "error", "-show_streams", "-count_frames", "-of", "json", path)
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil || stderr.Len() > 0 {
		t.Fatalf("ffprobe %s: %v\n%s", path, err, stderr.String())
	}
	var res struct {
		Streams []probeStream `json:"streams"`
	}
	if err := json.Unmarshal(out, &res); err != nil {
		t.Fatalf("ffprobe json: %v\n%s", err, out)
	}
	if len(res.Streams) != 1 {
		t.Fatalf("ffprobe: %d streams, want 1\n%s", len(res.Streams), out)
	}
	return res.Streams[0]
}

// decodeClean fully decodes path with ffmpeg and fails on any message.
func decodeClean(t *testing.T, path string) {
	t.Helper()
	var stderr bytes.Buffer
	cmd := exec.Command("ffmpeg", "-nostdin", "-v", "error", "-i", path, "-f", "null", "-")
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil || stderr.Len() > 0 {
		t.Fatalf("ffmpeg decode %s: %v\n%s", path, err, stderr.String())
	}
}

// packetPTS lists the packet PTS values ffprobe reads from path, in file order.
func packetPTS(t *testing.T, path string) []int64 {
	t.Helper()
	out, err := exec.Command("ffprobe", "-v", "error", "-show_entries", "packet=pts",
		"-of", "csv=p=0", path).Output()
	if err != nil {
		t.Fatalf("ffprobe packets %s: %v", path, err)
	}
	var pts []int64
	for _, l := range strings.Fields(string(out)) {
		v, err := strconv.ParseInt(strings.TrimSuffix(l, ","), 10, 64)
		if err != nil {
			t.Fatalf("ffprobe packets: bad pts %q", l)
		}
		pts = append(pts, v)
	}
	return pts
}

// writeFile concatenates init and fragments into one file in a temp dir.
func writeFile(t *testing.T, name string, init []byte, frags [][]byte) string {
	t.Helper()
	buf := append([]byte(nil), init...)
	for _, f := range frags {
		buf = append(buf, f...)
	}
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, buf, 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// fragments cuts samples into chunks of n and writes one fragment each,
// numbering them from seq.
func fragments(t testing.TB, tr *Track, seq uint32, samples []Sample, n int) [][]byte {
	t.Helper()
	var out [][]byte
	for len(samples) > 0 {
		k := min(n, len(samples))
		f, err := tr.Fragment(seq, samples[:k])
		if err != nil {
			t.Fatalf("fragment %d: %v", seq, err)
		}
		out = append(out, f)
		samples = samples[k:]
		seq++
	}
	return out
}

type videoFixture struct {
	name    string
	codec   av.Codec
	file    string
	profile string // as ffprobe names it
}

var videoFixtures = []videoFixture{
	{"h264_nobf", av.H264, "h264_nobf.h264", "High"},
	{"h264_bf", av.H264, "h264_bf.h264", "High"},
	{"h265_bf", av.H265, "h265_bf.h265", "Main"},
	{"h264_422p10", av.H264, "h264_422p10.h264", "High 4:2:2"},
	{"h264_444", av.H264, "h264_444.h264", "High 4:4:4 Predictive"},
}

// loadVideo reads a fixture into a track config and samples whose times
// come from the TS the fixture was cut from.
func loadVideo(t testing.TB, fx videoFixture) (av.TrackConfig, []Sample, []packetTimes) {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join("testdata", fx.file))
	if err != nil {
		t.Fatal(err)
	}
	nalus := splitAnnexB(raw)
	aus := accessUnits(fx.codec, nalus)
	times := readPacketTimes(t, filepath.Join("testdata", fx.name+".csv"))
	if len(aus) != len(times) {
		t.Fatalf("%s: %d access units, %d packets in csv", fx.name, len(aus), len(times))
	}
	samples := make([]Sample, len(aus))
	for i, au := range aus {
		if k := isKey(fx.codec, au); k != times[i].key {
			t.Fatalf("%s: access unit %d key=%v, ffprobe says %v", fx.name, i, k, times[i].key)
		}
		dur := int64(3000)
		if i+1 < len(times) {
			dur = times[i+1].dts - times[i].dts
		}
		samples[i] = Sample{
			DTS:  uint64(times[i].dts),
			Dur:  uint32(dur),
			CTO:  int32(times[i].pts - times[i].dts),
			Key:  isKey(fx.codec, au),
			Data: VideoSampleData(nil, fx.codec, au),
		}
	}
	return videoConfig(fx.codec, nalus), samples, times
}

func TestVideoDecodesWithFFmpeg(t *testing.T) {
	needTools(t)
	for _, fx := range videoFixtures {
		t.Run(fx.name, func(t *testing.T) {
			cfg, samples, times := loadVideo(t, fx)
			tr, err := NewTrack(cfg)
			if err != nil {
				t.Fatal(err)
			}
			if tr.Timescale() != 90000 {
				t.Fatalf("timescale %d, want 90000", tr.Timescale())
			}
			wantName := map[av.Codec]string{av.H264: "h264", av.H265: "hevc"}[fx.codec]
			check := func(t *testing.T, path string, frames int) probeStream {
				t.Helper()
				s := probe(t, path)
				if s.CodecName != wantName || s.Width != 320 || s.Height != 240 {
					t.Errorf("ffprobe: codec %q %dx%d, want %q 320x240", s.CodecName, s.Width, s.Height, wantName)
				}
				if s.NbReadFrames != strconv.Itoa(frames) {
					t.Errorf("ffprobe: nb_read_frames %s, want %d", s.NbReadFrames, frames)
				}
				decodeClean(t, path)
				return s
			}
			segStart := 30 // second GOP: a viewer joining mid-stream
			if !samples[segStart].Key {
				t.Fatalf("fixture: frame %d is not a key frame", segStart)
			}

			t.Run("stream", func(t *testing.T) {
				frags := fragments(t, tr, 1, samples, partFrames)
				path := writeFile(t, "stream.mp4", tr.Init(), frags)
				s := check(t, path, len(samples))
				if s.Profile != fx.profile {
					t.Errorf("ffprobe: profile %q, want %q", s.Profile, fx.profile)
				}
				checkCodecs(t, tr, cfg, s)
				// Presentation times survive exactly: tfdt + durations + CTO.
				got := packetPTS(t, path)
				if len(got) != len(times) {
					t.Fatalf("%d packets, want %d", len(got), len(times))
				}
				for i := range got {
					if got[i] != times[i].pts {
						t.Fatalf("packet %d pts %d, want %d", i, got[i], times[i].pts)
					}
				}
			})
			t.Run("one_part", func(t *testing.T) {
				frags := fragments(t, tr, 1, samples[:partFrames], partFrames)
				check(t, writeFile(t, "part.mp4", tr.Init(), frags), partFrames)
			})
			t.Run("one_segment_mid_stream", func(t *testing.T) {
				seg := samples[segStart : segStart+30]
				frags := fragments(t, tr, 6, seg, partFrames)
				if len(frags) != 5 {
					t.Fatalf("%d parts, want 5", len(frags))
				}
				check(t, writeFile(t, "segment.mp4", tr.Init(), frags), len(seg))
			})
			t.Run("negative_cto", func(t *testing.T) {
				// Shift composition so the first frame has CTO 0 and
				// reordered frames get negative offsets (version 1 trun).
				shift := samples[0].CTO
				neg := make([]Sample, len(samples))
				hasNeg := false
				for i, s := range samples {
					s.CTO -= shift
					hasNeg = hasNeg || s.CTO < 0
					neg[i] = s
				}
				if shift > 0 && !hasNeg {
					t.Fatal("fixture with B-frames should give negative offsets")
				}
				path := writeFile(t, "neg.mp4", tr.Init(), fragments(t, tr, 1, neg, partFrames))
				check(t, path, len(neg))
				// ffmpeg delays the whole timeline by the largest negative
				// offset (its dts_shift), so compare PTS relative to the first.
				got := packetPTS(t, path)
				if len(got) != len(times) {
					t.Fatalf("%d packets, want %d", len(got), len(times))
				}
				for i := range got {
					if got[i]-got[0] != times[i].pts-times[0].pts {
						t.Fatalf("packet %d pts %d (first %d), want %d (first %d)",
							i, got[i], got[0], times[i].pts, times[0].pts)
					}
				}
			})
		})
	}
}

// checkCodecs compares Codecs() with what ffprobe reads from the stream.
func checkCodecs(t *testing.T, tr *Track, cfg av.TrackConfig, s probeStream) {
	t.Helper()
	var want string
	switch cfg.Codec {
	case av.H264:
		sps := cfg.SPS[0]
		want = fmt.Sprintf("avc1.%02X%02X%02X", sps[1], sps[2], sps[3])
	case av.H265:
		// Main profile, compatible with Main and Main 10, level as ffprobe
		// reads it, then the non-zero constraint bytes of the SPS
		// profile_tier_level (ISO/IEC 14496-15 E.3).
		rbsp := bytes.ReplaceAll(cfg.SPS[0], []byte{0, 0, 3}, []byte{0, 0})
		constraints := rbsp[2+1+1+4 : 2+1+1+4+6]
		want = fmt.Sprintf("hvc1.1.6.L%d", s.Level)
		end := len(constraints)
		for end > 0 && constraints[end-1] == 0 {
			end--
		}
		for _, c := range constraints[:end] {
			want += fmt.Sprintf(".%X", c)
		}
	}
	if tr.Codecs() != want {
		t.Errorf("Codecs() = %q, want %q", tr.Codecs(), want)
	}
}

type audioFixture struct {
	name     string
	frames   [][]byte
	durs     []uint32
	cfg      av.TrackConfig
	codec    string // ffprobe codec_name
	codecs   string // RFC 6381
	perPart  int
	channels int
}

func loadAAC(t *testing.T, file string) audioFixture {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join("testdata", file))
	if err != nil {
		t.Fatal(err)
	}
	frames, err := splitADTS(raw)
	if err != nil {
		t.Fatal(err)
	}
	fx := audioFixture{name: file, codec: "aac", codecs: "mp4a.40.2", perPart: 10}
	f0 := frames[0]
	fx.channels = int(f0.channelConfig)
	fx.cfg = av.TrackConfig{
		Codec:               av.AAC,
		SampleRate:          adtsRates[f0.freqIndex],
		Channels:            fx.channels,
		AudioSpecificConfig: f0.audioSpecificConfig(),
	}
	for _, f := range frames {
		fx.frames = append(fx.frames, f.data)
		fx.durs = append(fx.durs, 1024)
	}
	return fx
}

func loadOpus(t *testing.T, file string) audioFixture {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join("testdata", file))
	if err != nil {
		t.Fatal(err)
	}
	packets, err := splitOgg(raw)
	if err != nil {
		t.Fatal(err)
	}
	ch, rate, err := opusHead(packets[0])
	if err != nil {
		t.Fatal(err)
	}
	fx := audioFixture{name: file, codec: "opus", codecs: "opus", perPart: 10, channels: ch}
	fx.cfg = av.TrackConfig{Codec: av.Opus, SampleRate: rate, Channels: ch}
	for _, p := range packets[2:] { // after OpusHead and OpusTags
		n, err := opusSamples(p)
		if err != nil {
			t.Fatal(err)
		}
		fx.frames = append(fx.frames, p)
		fx.durs = append(fx.durs, uint32(n))
	}
	return fx
}

func TestAudioDecodesWithFFmpeg(t *testing.T) {
	needTools(t)
	fixtures := []audioFixture{
		loadAAC(t, "aac_48k_stereo.adts"),
		loadAAC(t, "aac_44k_mono.adts"),
		loadOpus(t, "opus_stereo.opus"),
	}
	for _, fx := range fixtures {
		t.Run(fx.name, func(t *testing.T) {
			tr, err := NewTrack(fx.cfg)
			if err != nil {
				t.Fatal(err)
			}
			wantRate := fx.cfg.SampleRate
			if fx.cfg.Codec == av.Opus {
				wantRate = 48000
			}
			if int(tr.Timescale()) != wantRate {
				t.Fatalf("timescale %d, want %d", tr.Timescale(), wantRate)
			}
			if tr.Codecs() != fx.codecs {
				t.Errorf("Codecs() = %q, want %q", tr.Codecs(), fx.codecs)
			}
			// Start at a large decode time, as a live stream would.
			dts := uint64(1) << 33
			samples := make([]Sample, len(fx.frames))
			for i, f := range fx.frames {
				samples[i] = Sample{DTS: dts, Dur: fx.durs[i], Key: true, Data: f}
				dts += uint64(fx.durs[i])
			}
			check := func(t *testing.T, path string, frames int) {
				t.Helper()
				s := probe(t, path)
				if s.CodecName != fx.codec || s.SampleRate != strconv.Itoa(wantRate) || s.Channels != fx.channels {
					t.Errorf("ffprobe: %s %s Hz %d ch, want %s %d Hz %d ch",
						s.CodecName, s.SampleRate, s.Channels, fx.codec, wantRate, fx.channels)
				}
				if s.NbReadFrames != strconv.Itoa(frames) {
					t.Errorf("ffprobe: nb_read_frames %s, want %d", s.NbReadFrames, frames)
				}
				decodeClean(t, path)
			}
			t.Run("stream", func(t *testing.T) {
				check(t, writeFile(t, "a.mp4", tr.Init(), fragments(t, tr, 1, samples, fx.perPart)), len(samples))
			})
			t.Run("one_part", func(t *testing.T) {
				check(t, writeFile(t, "a.mp4", tr.Init(), fragments(t, tr, 1, samples[:fx.perPart], fx.perPart)), fx.perPart)
			})
			t.Run("one_segment_mid_stream", func(t *testing.T) {
				seg := samples[40:80]
				check(t, writeFile(t, "a.mp4", tr.Init(), fragments(t, tr, 5, seg, fx.perPart)), len(seg))
			})
		})
	}
}

// TestFragmentBoxes reads a fragment back with mp4ff and checks what a
// decoder cannot show: sequence number, tfdt, flags, CTO, payloads.
func TestFragmentBoxes(t *testing.T) {
	fx := videoFixtures[1] // B-frames
	cfg, samples, _ := loadVideo(t, fx)
	tr, err := NewTrack(cfg)
	if err != nil {
		t.Fatal(err)
	}
	in := samples[:partFrames]
	in[3].CTO = -1500 // negative offsets need a version 1 trun
	frag, err := tr.Fragment(42, in)
	if err != nil {
		t.Fatal(err)
	}
	file, err := mp4.DecodeFile(bytes.NewReader(append(append([]byte(nil), tr.Init()...), frag...)))
	if err != nil {
		t.Fatal(err)
	}
	if got := file.Init.Ftyp.CompatibleBrands(); !contains(got, "cmfc") || !contains(got, "iso6") {
		t.Errorf("ftyp brands %v, want cmfc and iso6", got)
	}
	if file.Init.Moov.Mvex == nil || file.Init.Moov.Mvex.Trex == nil {
		t.Fatal("init has no mvex/trex")
	}
	if n := len(file.Init.Moov.Traks); n != 1 {
		t.Fatalf("%d traks, want 1", n)
	}
	if len(file.Segments) != 1 || len(file.Segments[0].Fragments) != 1 {
		t.Fatal("want exactly one fragment")
	}
	f := file.Segments[0].Fragments[0]
	if seq := f.Moof.Mfhd.SequenceNumber; seq != 42 {
		t.Errorf("sequence number %d, want 42", seq)
	}
	if v := f.Moof.Traf.Trun.Version; v != 1 {
		t.Errorf("trun version %d, want 1", v)
	}
	got, err := f.GetFullSamples(file.Init.Moov.Mvex.Trex)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != len(in) {
		t.Fatalf("%d samples, want %d", len(got), len(in))
	}
	for i, s := range got {
		w := in[i]
		if s.DecodeTime != w.DTS || s.Dur != w.Dur || s.CompositionTimeOffset != w.CTO || !bytes.Equal(s.Data, w.Data) {
			t.Errorf("sample %d: dts %d dur %d cto %d, want %d %d %d (data equal %v)",
				i, s.DecodeTime, s.Dur, s.CompositionTimeOffset, w.DTS, w.Dur, w.CTO, bytes.Equal(s.Data, w.Data))
		}
		flags := mp4.DecodeSampleFlags(s.Flags)
		if w.Key {
			if !s.IsSync() {
				t.Errorf("sample %d: key frame flags %v, want sync", i, flags)
			}
		} else if !flags.SampleIsNonSync || flags.SampleDependsOn != 1 {
			t.Errorf("sample %d: flags %v, want non-sync depends_on=1", i, flags)
		}
	}
}

// TestAVCConfigTrailer checks the avcC fields a High 4:2:2 10-bit stream
// needs (ISO/IEC 14496-15 5.3.3.1.2), which mp4ff alone sets to 8-bit 4:2:0.
func TestAVCConfigTrailer(t *testing.T) {
	cfg, _, _ := loadVideo(t, videoFixtures[3])
	tr, err := NewTrack(cfg)
	if err != nil {
		t.Fatal(err)
	}
	file, err := mp4.DecodeFile(bytes.NewReader(tr.Init()))
	if err != nil {
		t.Fatal(err)
	}
	avcC := file.Init.Moov.Trak.Mdia.Minf.Stbl.Stsd.AvcX.AvcC
	if avcC.AVCProfileIndication != 122 || avcC.ChromaFormat != 2 || avcC.BitDepthLumaMinus1 != 2 || avcC.BitDepthChromaMinus1 != 2 {
		t.Errorf("avcC profile %d chroma_format %d bit depth luma-8 %d chroma-8 %d, want 122 2 2 2",
			avcC.AVCProfileIndication, avcC.ChromaFormat, avcC.BitDepthLumaMinus1, avcC.BitDepthChromaMinus1)
	}
}

func contains(ss []string, s string) bool {
	for _, x := range ss {
		if x == s {
			return true
		}
	}
	return false
}

func TestFragmentErrors(t *testing.T) {
	tr, err := NewTrack(av.TrackConfig{Codec: av.Opus, SampleRate: 48000, Channels: 2})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tr.Fragment(1, nil); !errors.Is(err, ErrNoSamples) {
		t.Errorf("no samples: %v, want ErrNoSamples", err)
	}
	gap := []Sample{{DTS: 0, Dur: 960, Data: []byte{1}}, {DTS: 1000, Dur: 960, Data: []byte{2}}}
	if _, err := tr.Fragment(1, gap); !errors.Is(err, ErrTimeline) {
		t.Errorf("gap: %v, want ErrTimeline", err)
	}
}

func TestNewTrackErrors(t *testing.T) {
	cfg, _, _ := loadVideo(t, videoFixtures[0])
	cases := []struct {
		name string
		cfg  av.TrackConfig
		want error
	}{
		{"unknown codec", av.TrackConfig{Codec: av.CodecUnknown}, ErrIncompleteConfig},
		{"h264 without pps", av.TrackConfig{Codec: av.H264, SPS: cfg.SPS}, ErrIncompleteConfig},
		{"h265 without vps", av.TrackConfig{Codec: av.H265, SPS: cfg.SPS, PPS: cfg.PPS}, ErrIncompleteConfig},
		{"aac without config", av.TrackConfig{Codec: av.AAC, SampleRate: 48000}, ErrIncompleteConfig},
		{"h264 garbage sps", av.TrackConfig{Codec: av.H264, SPS: [][]byte{{0x67}}, PPS: cfg.PPS}, ErrBadConfig},
		{"h265 garbage sps", av.TrackConfig{Codec: av.H265, VPS: [][]byte{{0x40, 1}}, SPS: [][]byte{{0x42, 1, 0xff}}, PPS: [][]byte{{0x44, 1}}}, ErrBadConfig},
		{"aac main profile", av.TrackConfig{Codec: av.AAC, SampleRate: 48000, Channels: 2, AudioSpecificConfig: []byte{0x09, 0x90}}, ErrUnsupportedCodec},
		{"opus 5.1", av.TrackConfig{Codec: av.Opus, SampleRate: 48000, Channels: 6}, ErrUnsupportedCodec},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if _, err := NewTrack(c.cfg); !errors.Is(err, c.want) {
				t.Errorf("NewTrack: %v, want %v", err, c.want)
			}
		})
	}
}

func TestVideoSampleData(t *testing.T) {
	h264 := [][]byte{{0x09, 0xf0}, {0x67, 1, 2}, {0x68, 3}, {0x06, 5, 0x80}, {}, {0x65, 0x88, 1}, {0x0c, 0xff}}
	want := []byte{0xaa, 0, 0, 0, 3, 0x06, 5, 0x80, 0, 0, 0, 3, 0x65, 0x88, 1}
	if got := VideoSampleData([]byte{0xaa}, av.H264, h264); !bytes.Equal(got, want) {
		t.Errorf("H.264: % x, want % x", got, want)
	}
	h265 := [][]byte{{0x46, 1, 0x50}, {0x40, 1}, {0x42, 1}, {0x44, 1}, {0x4e, 1, 5}, {0x26, 1, 0xaf}, {0x50, 1, 0xaa}, {0x4c, 1}}
	want = []byte{0, 0, 0, 3, 0x4e, 1, 5, 0, 0, 0, 3, 0x26, 1, 0xaf, 0, 0, 0, 3, 0x50, 1, 0xaa}
	if got := VideoSampleData(nil, av.H265, h265); !bytes.Equal(got, want) {
		t.Errorf("H.265: % x, want % x", got, want)
	}
	if got := VideoSampleData([]byte{1}, av.AAC, h264); !bytes.Equal(got, []byte{1}) {
		t.Errorf("AAC: % x, want dst unchanged", got)
	}
	buf := make([]byte, 0, 64)
	if got := VideoSampleData(buf, av.H264, h264[5:6]); &got[0] != &buf[:1][0] {
		t.Error("did not reuse dst capacity")
	}
}
