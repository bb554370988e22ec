package mpegts

import (
	"bytes"
	"context"
	"errors"
	"io"
	"testing"
	"time"
)

func FuzzDemux(f *testing.F) {
	for _, name := range []string{"h264_aac.ts", "h265_aac.ts", "h264_opus.ts", "wrap.ts"} {
		in := fixture(f, name)
		// Small seeds: every input the fuzzer finds interesting gets
		// minimized, a full demux per try.
		f.Add(in[:188*24])                    // PAT, PMT, first PES of each track
		f.Add(in[188*40+17 : 188*52])         // out of sync, no PMT
		f.Add(in[len(in)-188*10 : len(in)-5]) // last packets, cut
	}
	f.Add([]byte{0x47})
	f.Fuzz(func(t *testing.T, b []byte) {
		d := NewDemuxer(context.Background(), bytes.NewReader(b), WithLogger(quiet), WithMaxSyncSearch(4096))
		n := 0
		for {
			fr, err := d.ReadFrame()
			if err != nil {
				if err != io.EOF && !errors.Is(err, ErrNoSync) {
					t.Fatalf("unexpected error %v", err)
				}
				break
			}
			n++
			if n > len(b) {
				t.Fatalf("%d frames from %d bytes", n, len(b))
			}
			fm := fr.Frame
			if fm.DTS > fm.PTS {
				t.Fatalf("DTS %d > PTS %d", fm.DTS, fm.PTS)
			}
			if fm.Codec.IsVideo() && (len(fm.NALUs) == 0 || fm.Data != nil) || fm.Codec.IsAudio() && (len(fm.Data) == 0 || !fm.Key) {
				t.Fatalf("malformed frame %+v", fm)
			}
			for _, u := range fm.NALUs {
				if len(u) == 0 {
					t.Fatal("empty NAL unit")
				}
			}
			if fr.Config != nil && (!fr.Config.Ready() || fr.Config.Codec != fm.Codec) {
				t.Fatalf("config %+v for a %v frame", fr.Config, fm.Codec)
			}
		}
		if st := d.Stats(); st.Frames != uint64(n) || st.Packets > uint64(len(b)/188) {
			t.Fatalf("stats %+v for %d frames, %d bytes", st, n, len(b))
		}
	})
}

func BenchmarkDemux(b *testing.B) {
	in := fixture(b, "h264_aac.ts")
	b.SetBytes(int64(len(in)))
	b.ReportAllocs()
	frames := 0
	start := time.Now()
	for b.Loop() {
		d := NewDemuxer(context.Background(), bytes.NewReader(in), WithLogger(quiet))
		for {
			if _, err := d.ReadFrame(); err != nil {
				break
			}
			frames++
		}
	}
	b.ReportMetric(float64(frames)/time.Since(start).Seconds(), "frames/s")
	b.ReportMetric(float64(frames)/float64(b.N), "frames/op")
}
