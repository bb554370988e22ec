package mpegts

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"testing"
	"testing/iotest"

	"github.com/onair/onair/media/av"
)

var quiet = slog.New(slog.DiscardHandler)

func fixture(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile("testdata/" + name)
	if err != nil {
		t.Fatalf("%v (regenerate with testdata/gen.sh)", err)
	}
	return b
}

// demuxAll reads r to the end and returns every frame and the error that
// ended it.
func demuxAll(t testing.TB, r io.Reader, opts ...Option) ([]TrackFrame, *Demuxer, error) {
	t.Helper()
	d := NewDemuxer(context.Background(), r, append([]Option{WithLogger(quiet)}, opts...)...)
	var frames []TrackFrame
	for {
		f, err := d.ReadFrame()
		if err != nil {
			return frames, d, err
		}
		frames = append(frames, f)
	}
}

func byCodec(frames []TrackFrame, video bool) []TrackFrame {
	var out []TrackFrame
	for _, f := range frames {
		if f.Frame.Codec.IsVideo() == video {
			out = append(out, f)
		}
	}
	return out
}

type probePacket struct {
	PTS   int64  `json:"pts"`
	DTS   int64  `json:"dts"`
	Size  string `json:"size"`
	Flags string `json:"flags"`
}

// ffprobe lists the packets of the video ("v") or audio ("a") stream of a
// fixture as ffmpeg's own demuxer sees them: the reference we match.
func ffprobe(t *testing.T, name, stream string) []probePacket {
	t.Helper()
	if _, err := exec.LookPath("ffprobe"); err != nil {
		t.Fatal("ffprobe is required (task deps installs ffmpeg)")
	}
	out, err := exec.Command("ffprobe", "-v", "error", "-select_streams", stream,
		"-show_entries", "packet=pts,dts,size,flags", "-of", "json", "testdata/"+name).Output()
	if err != nil {
		t.Fatalf("ffprobe %s: %v", name, err)
	}
	var res struct{ Packets []probePacket }
	if err := json.Unmarshal(out, &res); err != nil {
		t.Fatal(err)
	}
	return res.Packets
}

func TestDemuxFFmpegFixtures(t *testing.T) {
	tests := []struct {
		file         string
		video, audio av.Codec
		audioStep    int64 // 90 kHz ticks per audio frame
		channels     int
	}{
		{"h264_aac.ts", av.H264, av.AAC, 1920, 2},
		{"h265_aac.ts", av.H265, av.AAC, 1920, 2},
		{"h264_opus.ts", av.H264, av.Opus, 1800, 2},
	}
	for _, tc := range tests {
		t.Run(tc.file, func(t *testing.T) {
			frames, d, err := demuxAll(t, bytes.NewReader(fixture(t, tc.file)))
			if err != io.EOF {
				t.Fatalf("ended with %v, want io.EOF", err)
			}
			tracks := d.Tracks()
			if len(tracks) != 2 || tracks[0].Codec != tc.video || tracks[1].Codec != tc.audio {
				t.Fatalf("tracks %+v, want %v and %v", tracks, tc.video, tc.audio)
			}
			st := d.Stats()
			if st.Dropped != 0 || st.Resyncs != 0 || st.CCErrors != 0 || st.ParseErrors != 0 || st.SkippedBytes != 0 {
				t.Fatalf("clean input, stats %+v", st)
			}
			if st.Frames != uint64(len(frames)) || st.Packets != uint64(len(fixture(t, tc.file))/188) {
				t.Fatalf("stats %+v for %d frames", st, len(frames))
			}

			video, audio := byCodec(frames, true), byCodec(frames, false)
			checkVideo(t, video, tc.video, tracks[0].PID)
			checkAudio(t, audio, tc.audio, tc.audioStep, tc.channels)

			// Frame for frame what ffmpeg's demuxer finds.
			pv := ffprobe(t, tc.file, "v")
			if len(pv) != len(video) {
				t.Fatalf("%d video frames, ffprobe has %d", len(video), len(pv))
			}
			for i, p := range pv {
				f := video[i].Frame
				if f.PTS != p.PTS || f.DTS != p.DTS || f.Key != (p.Flags[0] == 'K') {
					t.Fatalf("video %d: pts %d dts %d key %v; ffprobe %+v", i, f.PTS, f.DTS, f.Key, p)
				}
				size, _ := strconv.Atoi(p.Size)
				if n := len(f.NALUs); f.Size() < size-4*n || f.Size() > size-3*n {
					t.Fatalf("video %d: %d bytes in %d NAL units; ffprobe's Annex B access unit is %d", i, f.Size(), n, size)
				}
			}
			pa := ffprobe(t, tc.file, "a")
			if len(pa) != len(audio) {
				t.Fatalf("%d audio frames, ffprobe has %d", len(audio), len(pa))
			}
			header := 0
			if tc.audio == av.AAC {
				header = 7 // ffprobe counts the ADTS header
			}
			for i, p := range pa {
				f := audio[i].Frame
				size, _ := strconv.Atoi(p.Size)
				if f.PTS != p.PTS || f.DTS != p.PTS || len(f.Data) != size-header {
					t.Fatalf("audio %d: pts %d, %d bytes; ffprobe %+v", i, f.PTS, len(f.Data), p)
				}
			}
		})
	}
}

// checkVideo asserts what gen.sh asked ffmpeg for: 2 s at 30 fps, a
// keyframe every 30 frames, 2 B-frames.
func checkVideo(t *testing.T, video []TrackFrame, codec av.Codec, pid uint16) {
	t.Helper()
	if len(video) != 60 {
		t.Fatalf("%d video frames, want 60", len(video))
	}
	var keys []int
	reordered := false
	pts := make([]int64, len(video))
	for i, f := range video {
		if f.PID != pid || f.Frame.Codec != codec || len(f.Frame.NALUs) == 0 || f.Frame.Data != nil {
			t.Fatalf("frame %d: %+v", i, f)
		}
		if f.Frame.Key {
			keys = append(keys, i)
		}
		if f.Frame.DTS > f.Frame.PTS {
			t.Fatalf("frame %d: DTS %d after PTS %d", i, f.Frame.DTS, f.Frame.PTS)
		}
		if f.Frame.DTS < f.Frame.PTS {
			reordered = true
		}
		if i > 0 && f.Frame.DTS <= video[i-1].Frame.DTS {
			t.Fatalf("frame %d: DTS %d not after %d", i, f.Frame.DTS, video[i-1].Frame.DTS)
		}
		pts[i] = f.Frame.PTS
	}
	if !slices.Equal(keys, []int{0, 30}) {
		t.Fatalf("keyframes at %v, want [0 30]", keys)
	}
	if !reordered {
		t.Fatal("no frame with DTS < PTS: B-frames expected")
	}
	slices.Sort(pts)
	for i := 1; i < len(pts); i++ {
		if pts[i]-pts[i-1] != 3000 {
			t.Fatalf("presentation step %d at %d, want 3000", pts[i]-pts[i-1], i)
		}
	}

	// The config arrives with the first frame and, the parameter sets
	// being repeated unchanged at the second IDR, only then.
	cfg := video[0].Config
	if cfg == nil || cfg.Codec != codec || cfg.Width != 320 || cfg.Height != 240 || !cfg.Ready() {
		t.Fatalf("first frame config %+v, want %v 320x240", cfg, codec)
	}
	if codec == av.H265 && len(cfg.VPS) == 0 {
		t.Fatal("H.265 config without VPS")
	}
	for i, f := range video[1:] {
		if f.Config != nil {
			t.Fatalf("config repeated on frame %d", i+1)
		}
	}
}

func checkAudio(t *testing.T, audio []TrackFrame, codec av.Codec, step int64, channels int) {
	t.Helper()
	// 2 s at 48 kHz is 93.75 frames of 1024 or 100 of 960; encoders add
	// priming frames.
	want := map[av.Codec][2]int{av.AAC: {93, 97}, av.Opus: {100, 102}}[codec]
	if len(audio) < want[0] || len(audio) > want[1] {
		t.Fatalf("%d %v frames, want %d..%d", len(audio), codec, want[0], want[1])
	}
	for i, f := range audio {
		if !f.Frame.Key || len(f.Frame.Data) == 0 || f.Frame.Codec != codec {
			t.Fatalf("audio frame %d: %+v", i, f.Frame)
		}
		if i > 0 && f.Frame.PTS-audio[i-1].Frame.PTS != step {
			t.Fatalf("audio frame %d: step %d, want %d", i, f.Frame.PTS-audio[i-1].Frame.PTS, step)
		}
	}
	cfg := audio[0].Config
	if cfg == nil || cfg.Codec != codec || cfg.SampleRate != 48000 || cfg.Channels != channels || !cfg.Ready() {
		t.Fatalf("first audio config %+v", cfg)
	}
	for i, f := range audio[1:] {
		if f.Config != nil {
			t.Fatalf("audio config repeated on frame %d", i+1)
		}
	}
}

func TestDemuxWrap(t *testing.T) {
	frames, _, err := demuxAll(t, bytes.NewReader(fixture(t, "wrap.ts")))
	if err != io.EOF {
		t.Fatal(err)
	}
	video, audio := byCodec(frames, true), byCodec(frames, false)
	checkVideo(t, video, av.H264, video[0].PID)
	checkAudio(t, audio, av.AAC, 1920, 2)
	if first, last := video[0].Frame.DTS, video[len(video)-1].Frame.DTS; first >= wrap || last < wrap {
		t.Fatalf("video DTS %d..%d does not cross 2^33 = %d: regenerate wrap.ts", first, last, int64(wrap))
	}
	if audio[len(audio)-1].Frame.PTS < wrap {
		t.Fatal("audio did not cross the wrap")
	}
	// ffprobe unwraps its own way (negative start): compare offsets.
	for _, s := range []struct {
		name   string
		frames []TrackFrame
	}{{"v", video}, {"a", audio}} {
		p := ffprobe(t, "wrap.ts", s.name)
		for i := range p {
			got := s.frames[i].Frame.PTS - s.frames[0].Frame.PTS
			if want := p[i].PTS - p[0].PTS; got != want {
				t.Fatalf("%s frame %d: PTS offset %d, ffprobe %d", s.name, i, got, want)
			}
		}
	}
}

func TestUnwrap(t *testing.T) {
	const top = wrap - 1
	tests := []struct {
		name string
		in   []int64
		want []int64
	}{
		{"plain", []int64{100, 3100, 6100}, []int64{100, 3100, 6100}},
		{"crosses once", []int64{top - 3000, top, 2999, 9000}, []int64{top - 3000, top, wrap + 2999, wrap + 9000}},
		{"crosses twice", []int64{top - 10, 5, 1 << 32, top - 10, 5}, []int64{top - 10, wrap + 5, wrap + 1<<32, 2*wrap - 11, 2*wrap + 5}},
		{"small step back stays", []int64{5000, 4000, 6000}, []int64{5000, 4000, 6000}},
		{"back across the wrap", []int64{10, top - 10, 20}, []int64{10, -11, 20}},
		{"masks to 33 bits", []int64{wrap + 7}, []int64{7}},
	}
	for _, tc := range tests {
		var u unwrapper
		for i, raw := range tc.in {
			if got := u.unwrap(raw); got != tc.want[i] {
				t.Errorf("%s: step %d: unwrap(%d) = %d, want %d", tc.name, i, raw, got, tc.want[i])
			}
		}
	}
	// PTS is placed next to its unwrapped DTS.
	if got := nearest(100, wrap-500); got != wrap+100 {
		t.Fatalf("nearest = %d", got)
	}
	if got := nearest(wrap-500, wrap+100); got != wrap-500 {
		t.Fatalf("nearest back = %d", got)
	}
}

// slowReader hands out data in SRT-sized messages that do not line up
// with packets, through an io.Reader that cannot seek.
type slowReader struct {
	b []byte
	n int
}

func (r *slowReader) Read(p []byte) (int, error) {
	if len(r.b) == 0 {
		return 0, io.EOF
	}
	n := min(len(p), r.n, len(r.b))
	copy(p, r.b[:n])
	r.b = r.b[n:]
	return n, nil
}

func TestDemuxReadShapes(t *testing.T) {
	in := fixture(t, "h264_aac.ts")
	want, _, _ := demuxAll(t, bytes.NewReader(in))
	readers := map[string]io.Reader{
		"one byte":      iotest.OneByteReader(bytes.NewReader(in)),
		"1316 messages": &slowReader{b: in, n: 1316},
		"1000 bytes":    &slowReader{b: in, n: 1000},
		"data with EOF": iotest.DataErrReader(bytes.NewReader(in)),
	}
	for name, r := range readers {
		got, _, err := demuxAll(t, r)
		if err != io.EOF || len(got) != len(want) {
			t.Fatalf("%s: %d frames, %v; want %d, EOF", name, len(got), err, len(want))
		}
		for i := range want {
			if got[i].PID != want[i].PID || !sameFrame(got[i].Frame, want[i].Frame) {
				t.Fatalf("%s: frame %d differs", name, i)
			}
		}
	}
}

func TestDemuxReaderError(t *testing.T) {
	in := fixture(t, "h264_aac.ts")
	boom := errors.New("connection reset")
	r := io.MultiReader(bytes.NewReader(in[:188*200]), iotest.ErrReader(boom))
	frames, _, err := demuxAll(t, r)
	if !errors.Is(err, boom) {
		t.Fatalf("got %v, want the reader's error", err)
	}
	if len(frames) == 0 {
		t.Fatal("no frames before the error")
	}
}

func TestDemuxContextCancelled(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	d := NewDemuxer(ctx, bytes.NewReader(fixture(t, "h264_aac.ts")), WithLogger(quiet))
	if _, err := d.ReadFrame(); err != nil {
		t.Fatal(err)
	}
	cancel()
	for i := 0; ; i++ {
		_, err := d.ReadFrame()
		if errors.Is(err, context.Canceled) {
			break
		}
		if err != nil || i > 100 {
			t.Fatalf("after cancel: %v after %d frames", err, i)
		}
	}
}

func TestDemuxGarbage(t *testing.T) {
	rnd := make([]byte, 300_000)
	seed := uint32(1)
	for i := range rnd {
		seed = seed*1664525 + 1013904223
		rnd[i] = byte(seed >> 24)
	}
	frames, d, err := demuxAll(t, bytes.NewReader(rnd), WithMaxSyncSearch(100_000))
	if !errors.Is(err, ErrNoSync) || len(frames) != 0 {
		t.Fatalf("random bytes: %d frames, %v; want ErrNoSync", len(frames), err)
	}
	if d.Stats().SkippedBytes < 100_000 {
		t.Fatalf("stats %+v", d.Stats())
	}
	// Subsequent calls keep returning the error.
	if _, err := d.ReadFrame(); !errors.Is(err, ErrNoSync) {
		t.Fatal(err)
	}

	// Short random input ends with io.EOF, not a hang or a panic.
	if _, _, err := demuxAll(t, bytes.NewReader(rnd[:1000])); err != io.EOF {
		t.Fatalf("short junk: %v", err)
	}
	if _, _, err := demuxAll(t, bytes.NewReader(nil)); err != io.EOF {
		t.Fatalf("empty: %v", err)
	}
}

func TestDemuxResync(t *testing.T) {
	in := fixture(t, "h264_aac.ts")
	clean, _, _ := demuxAll(t, bytes.NewReader(in))

	// Junk before the first packet, 100 stray bytes mid-stream, a
	// truncated packet, and a lost run of packets: the demuxer finds its
	// way back each time.
	var b []byte
	b = append(b, []byte("SRT handshake leftovers\x47\x47")...)
	b = append(b, in[:188*100]...)
	b = append(b, bytes.Repeat([]byte{0x47, 0}, 50)...)
	b = append(b, in[188*100:188*200+77]...)
	b = append(b, in[188*201:188*300]...)
	b = append(b, in[188*320:]...)
	frames, d, err := demuxAll(t, bytes.NewReader(b))
	if err != io.EOF {
		t.Fatal(err)
	}
	st := d.Stats()
	if st.Resyncs < 3 || st.SkippedBytes == 0 || st.CCErrors == 0 {
		t.Fatalf("stats %+v: want resyncs, skipped bytes and CC errors counted", st)
	}
	// Damage costs the PES it hits (astits drops a PES with a gap: an
	// audio PES holds about 16 frames here) and never yields a corrupt
	// frame: everything returned is identical to the clean run.
	if len(frames) < len(clean)-3*(16+1) {
		t.Fatalf("%d frames after damage at 3 places, %d clean", len(frames), len(clean))
	}
	want := make(map[[2]int64]TrackFrame)
	for _, f := range clean {
		want[[2]int64{int64(f.PID), f.Frame.PTS}] = f
	}
	for i, f := range frames {
		c, ok := want[[2]int64{int64(f.PID), f.Frame.PTS}]
		if !ok || !sameFrame(c.Frame, f.Frame) {
			t.Fatalf("frame %d (pid %d pts %d) differs from the clean run", i, f.PID, f.Frame.PTS)
		}
	}
}

func sameFrame(a, b av.Frame) bool {
	if a.Codec != b.Codec || a.PTS != b.PTS || a.DTS != b.DTS || a.Key != b.Key || !bytes.Equal(a.Data, b.Data) || len(a.NALUs) != len(b.NALUs) {
		return false
	}
	for i := range a.NALUs {
		if !bytes.Equal(a.NALUs[i], b.NALUs[i]) {
			return false
		}
	}
	return true
}

func TestDemuxTruncated(t *testing.T) {
	in := fixture(t, "h264_aac.ts")
	clean, _, _ := demuxAll(t, bytes.NewReader(in))
	for _, n := range []int{0, 1, 187, 188, 189, 188*3 + 50, len(in) / 2, len(in) - 1} {
		frames, _, err := demuxAll(t, bytes.NewReader(in[:n]))
		if err != io.EOF || len(frames) > len(clean) {
			t.Fatalf("cut at %d: %d frames, %v", n, len(frames), err)
		}
	}
}

func TestDemuxUnsupportedStreamSkipped(t *testing.T) {
	if _, err := exec.LookPath("ffmpeg"); err != nil {
		t.Fatal("ffmpeg is required (task deps installs it)")
	}
	// MPEG-2 video and MP3 audio: stream types 0x02 and 0x03.
	out := t.TempDir() + "/mpeg2.ts"
	cmd := exec.Command("ffmpeg", "-hide_banner", "-loglevel", "error", "-f", "lavfi", "-i", "testsrc2=size=160x120:rate=10",
		"-f", "lavfi", "-i", "sine=sample_rate=48000", "-t", "0.5", "-c:v", "mpeg2video", "-c:a", "mp2", "-f", "mpegts", out)
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("ffmpeg: %v: %s", err, b)
	}
	var logs bytes.Buffer
	d := NewDemuxer(context.Background(), bytes.NewReader(fixtureAt(t, out)), WithLogger(slog.New(slog.NewTextHandler(&logs, nil))))
	if _, err := d.ReadFrame(); err != io.EOF {
		t.Fatalf("got %v, want io.EOF with no frames", err)
	}
	if n := bytes.Count(logs.Bytes(), []byte("skipping unsupported stream")); n != 2 {
		t.Fatalf("%d log lines for 2 unsupported streams:\n%s", n, logs.String())
	}
	if len(d.Tracks()) != 0 || d.Stats().Dropped != 0 {
		t.Fatalf("tracks %v, stats %+v", d.Tracks(), d.Stats())
	}
}

func fixtureAt(t *testing.T, path string) []byte {
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
