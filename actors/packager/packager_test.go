package packager

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/onair/onair/actors"
	"github.com/onair/onair/actors/layer"
	"github.com/onair/onair/media/mpegts"
)

var wall0 = time.Date(2026, 11, 21, 12, 0, 0, 0, time.UTC)

type run struct {
	inits    map[string][]byte
	parts    map[string][]PartReady
	segments map[string][]layer.Segment
	closed   bool
}

// feed plays a TS fixture through a packager the way the stream actor does.
func feed(t *testing.T, file string, cfg Config) *run {
	t.Helper()
	f, err := os.Open(filepath.Join("testdata", file))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	p := New("live/test", "s1", "layer/x", cfg)
	ctx := &actors.Context{Now: wall0, Self: "packager/live/test/s1", Rand: rand.New(rand.NewPCG(1, 2))}
	r := &run{inits: map[string][]byte{}, parts: map[string][]PartReady{}, segments: map[string][]layer.Segment{}}
	collect := func(fx []actors.Effect) {
		for _, e := range fx {
			switch e := e.(type) {
			case InitReady:
				r.inits[e.Track] = e.Init
			case PartReady:
				r.parts[e.Track] = append(r.parts[e.Track], e)
			case actors.Send:
				if s, ok := e.Msg.(layer.Segment); ok {
					r.segments[s.Track] = append(r.segments[s.Track], s)
				}
			case Closed:
				r.closed = true
			}
		}
	}
	collect(p.Receive(ctx, Start{WallAnchor: wall0}))
	d := mpegts.NewDemuxer(context.Background(), f)
	var offset int64 = -1
	for {
		tf, err := d.ReadFrame()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		track := Audio
		if tf.Frame.Codec.IsVideo() {
			track = Video
		}
		if offset < 0 {
			if track != Video || !tf.Frame.Key {
				continue
			}
			offset = tf.Frame.DTS
		}
		fr := tf.Frame
		fr.DTS -= offset
		fr.PTS -= offset
		if fr.DTS < 0 {
			continue
		}
		collect(p.Receive(ctx, Frame{Track: track, Frame: fr, Config: tf.Config}))
	}
	collect(p.Receive(ctx, End{}))
	return r
}

func TestCutsPartsAndSegmentsAtKeyframes(t *testing.T) {
	r := feed(t, "h264_aac.ts", Config{})
	if !r.closed {
		t.Fatal("no Closed effect after End")
	}
	vp := r.parts[Video]
	if len(vp) != 10 {
		t.Fatalf("video parts = %d, want 10 (2 s at 200 ms)", len(vp))
	}
	for i, p := range vp {
		if p.Duration != 200*time.Millisecond {
			t.Errorf("video part %d duration %v, want 200ms", i, p.Duration)
		}
		if want := i%5 == 0; p.Independent != want {
			t.Errorf("video part %d independent=%v, want %v", i, p.Independent, want)
		}
		if want := wall0.Add(time.Duration(i) * 200 * time.Millisecond); !p.PDT.Equal(want) {
			t.Errorf("video part %d PDT %v, want %v", i, p.PDT, want)
		}
	}
	vs := r.segments[Video]
	if len(vs) != 2 {
		t.Fatalf("video segments = %d, want 2 (GOP 30 at 30 fps, 1 s minimum)", len(vs))
	}
	for i, s := range vs {
		if s.Duration != 90000 || !s.Independent || s.MSN != uint64(i) {
			t.Errorf("segment %d: duration %d independent %v msn %d", i, s.Duration, s.Independent, s.MSN)
		}
	}
	ap := r.parts[Audio]
	if len(ap) < 8 {
		t.Fatalf("audio parts = %d, want about 10", len(ap))
	}
	for i, p := range ap {
		if p.Duration > 200*time.Millisecond {
			t.Errorf("audio part %d is %v, longer than the part target", i, p.Duration)
		}
	}
	if len(r.segments[Audio]) != 2 {
		t.Errorf("audio segments = %d, want 2 aligned with video", len(r.segments[Audio]))
	}
}

// TestOutputDecodes proves the CMAF bytes play: ffprobe reads init +
// segments and counts every frame.
func TestOutputDecodes(t *testing.T) {
	if _, err := exec.LookPath("ffprobe"); err != nil {
		t.Fatal("ffprobe is required (task deps installs it)")
	}
	for _, tc := range []struct {
		file, codec string
	}{{"h264_aac.ts", "h264"}, {"h265_aac.ts", "hevc"}} {
		t.Run(tc.file, func(t *testing.T) {
			r := feed(t, tc.file, Config{})
			for track, want := range map[string]struct {
				codec  string
				frames int
			}{Video: {tc.codec, 60}, Audio: {"aac", -1}} {
				var buf bytes.Buffer
				buf.Write(r.inits[track])
				for _, s := range r.segments[track] {
					buf.Write(s.Data)
				}
				path := filepath.Join(t.TempDir(), track+".mp4")
				if err := os.WriteFile(path, buf.Bytes(), 0o644); err != nil {
					t.Fatal(err)
				}
				out, err := exec.Command("ffprobe", "-v", "error", "-count_frames", "-show_streams", "-of", "json", path).Output()
				if err != nil {
					t.Fatalf("%s: ffprobe: %v", track, err)
				}
				var probe struct {
					Streams []struct {
						CodecName    string `json:"codec_name"`
						NbReadFrames string `json:"nb_read_frames"`
					} `json:"streams"`
				}
				if err := json.Unmarshal(out, &probe); err != nil || len(probe.Streams) != 1 {
					t.Fatalf("%s: ffprobe output %s", track, out)
				}
				s := probe.Streams[0]
				if s.CodecName != want.codec {
					t.Errorf("%s codec %q, want %q", track, s.CodecName, want.codec)
				}
				if want.frames > 0 && s.NbReadFrames != "60" {
					t.Errorf("%s decoded %s frames, want 60", track, s.NbReadFrames)
				}
			}
		})
	}
}

func BenchmarkPackagerFrame(b *testing.B) {
	data, err := os.ReadFile("testdata/h264_aac.ts")
	if err != nil {
		b.Fatal(err)
	}
	d := mpegts.NewDemuxer(context.Background(), bytes.NewReader(data))
	var frames []Frame
	for {
		tf, err := d.ReadFrame()
		if err != nil {
			break
		}
		tr := Audio
		if tf.Frame.Codec.IsVideo() {
			tr = Video
		}
		frames = append(frames, Frame{Track: tr, Frame: tf.Frame, Config: tf.Config})
	}
	ctx := &actors.Context{Now: wall0, Rand: rand.New(rand.NewPCG(1, 2))}
	b.ReportAllocs()
	b.ResetTimer()
	n := 0
	for b.Loop() {
		p := New("live/b", "s", "l", Config{})
		p.Receive(ctx, Start{WallAnchor: wall0})
		for _, f := range frames {
			p.Receive(ctx, f)
			n++
		}
	}
	b.ReportMetric(float64(n)/b.Elapsed().Seconds(), "frames/s")
}
