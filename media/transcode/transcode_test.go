package transcode

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"testing"
	"time"

	"github.com/onair/onair/media/av"
	"github.com/onair/onair/media/mpegts"
	"github.com/onair/onair/media/opus"
)

// aacFrames returns the AAC frames of the fixture and their config.
func aacFrames(tb testing.TB) ([]av.Frame, av.TrackConfig) {
	data, err := os.ReadFile("testdata/h264_aac.ts")
	if err != nil {
		tb.Fatal(err)
	}
	d := mpegts.NewDemuxer(context.Background(), bytes.NewReader(data))
	var frames []av.Frame
	var cfg av.TrackConfig
	for {
		tf, err := d.ReadFrame()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			tb.Fatal(err)
		}
		if tf.Frame.Codec == av.AAC {
			if tf.Config != nil {
				cfg = *tf.Config
			}
			frames = append(frames, tf.Frame)
		}
	}
	return frames, cfg
}

// TestAACToOpus runs the real ffmpeg: 2 s of AAC in, ~2 s of 20 ms Opus
// packets out, on the input's timeline.
func TestAACToOpus(t *testing.T) {
	frames, cfg := aacFrames(t)
	b, err := AACToOpus(context.Background(), cfg, 64000, nil)
	if err != nil {
		t.Fatal(err)
	}
	got := make(chan []av.Frame)
	go func() {
		var out []av.Frame
		for f := range b.Frames() {
			out = append(out, f)
		}
		got <- out
	}()
	for _, f := range frames {
		if err := b.Write(f); err != nil {
			t.Fatal(err)
		}
	}
	if err := b.Close(); err != nil {
		t.Fatalf("ffmpeg: %v", err)
	}
	out := <-got
	inDur := int64(len(frames)) * 1024 * av.ClockRate / int64(cfg.SampleRate)
	var outDur int64
	for i, f := range out {
		n := opus.PacketDuration(f.Data)
		if n != 960 {
			t.Fatalf("packet %d lasts %d samples, want 960 (20 ms)", i, n)
		}
		outDur += int64(n) * av.ClockRate / 48000
		if i > 0 && f.PTS <= out[i-1].PTS {
			t.Fatalf("packet %d PTS %d not after %d", i, f.PTS, out[i-1].PTS)
		}
	}
	if len(out) == 0 || out[0].PTS != frames[0].PTS {
		t.Fatalf("first Opus packet at %v, want the first AAC PTS %d", out, frames[0].PTS)
	}
	if diff := outDur - inDur; diff < -2*1800 || diff > 2*1800 {
		t.Errorf("Opus covers %d ticks, AAC %d: more than two packets apart", outDur, inDur)
	}
	t.Logf("%d AAC frames -> %d Opus packets; ffmpeg CPU %v", len(frames), len(out), b.CPU())
}

func TestRejectsWrongInput(t *testing.T) {
	if _, err := AACToOpus(context.Background(), av.TrackConfig{Codec: av.Opus}, 0, nil); !errors.Is(err, ErrInput) {
		t.Fatalf("opus config: %v", err)
	}
	_, cfg := aacFrames(t)
	b, err := AACToOpus(context.Background(), cfg, 0, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if err := b.Write(av.Frame{Codec: av.H264}); !errors.Is(err, ErrInput) {
		t.Fatalf("video frame: %v", err)
	}
}

// BenchmarkAACToOpusCPU reports the bridge's cost: ffmpeg CPU time per
// second of audio, fed as fast as ffmpeg takes it.
func BenchmarkAACToOpusCPU(b *testing.B) {
	frames, cfg := aacFrames(b)
	var cpu time.Duration
	var audio float64
	for b.Loop() {
		br, err := AACToOpus(context.Background(), cfg, 64000, nil)
		if err != nil {
			b.Fatal(err)
		}
		go func() {
			for range br.Frames() {
			}
		}()
		for loop := int64(0); loop < 10; loop++ {
			for _, f := range frames {
				f.PTS += loop * 180000
				if err := br.Write(f); err != nil {
					b.Fatal(err)
				}
			}
		}
		if err := br.Close(); err != nil {
			b.Fatal(err)
		}
		cpu += br.CPU()
		audio += float64(10*len(frames)*1024) / float64(cfg.SampleRate)
	}
	b.ReportMetric(float64(cpu.Milliseconds())/audio, "cpu-ms/audio-s")
}
