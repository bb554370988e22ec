package rtpfwd

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"

	"github.com/pion/rtp"
	"github.com/pion/rtp/codecs"
	"github.com/pion/webrtc/v4"

	"github.com/onair/onair/media/av"
	"github.com/onair/onair/media/h264"
)

var (
	clipOnce  sync.Once
	clipPath  string
	clipError error
)

// benchClip encodes (once per run) 4 s of 1280x720 at 30 fps and about
// 2 Mbit/s, no B-frames, an IDR every 2 s: the load of a typical WHEP
// stream, which the small test fixture is not.
func benchClip(b *testing.B) []av.Frame {
	b.Helper()
	clipOnce.Do(func() {
		dir, err := os.MkdirTemp("", "rtpfwd-bench-*")
		if err != nil {
			clipError = err
			return
		}
		benchDirs = append(benchDirs, dir)
		clipPath = filepath.Join(dir, "2mbit.h264")
		out, err := exec.Command("ffmpeg", "-hide_banner", "-loglevel", "error", "-y",
			"-f", "lavfi", "-i", "testsrc2=size=1280x720:rate=30", "-t", "4",
			"-c:v", "libx264", "-preset", "ultrafast", "-tune", "zerolatency", "-pix_fmt", "yuv420p",
			"-bf", "0", "-g", "60", "-b:v", "2M", "-maxrate", "2M", "-bufsize", "1M",
			"-f", "h264", clipPath).CombinedOutput()
		if err != nil {
			clipError = fmt.Errorf("ffmpeg: %v: %s", err, out)
		}
	})
	if clipError != nil {
		b.Skip(clipError)
	}
	return loadH264(b, clipPath, 0)
}

// countWriter stands in for a viewer's SRTP writer without the network:
// it marshals each packet into its own buffer, as pion's SRTP session does
// before encrypting, and counts.
type countWriter struct {
	buf  [1500]byte
	pkts int
}

func (w *countWriter) WriteRTP(h *rtp.Header, payload []byte) (int, error) {
	w.pkts++
	return rtp.MarshalPacketTo(w.buf[:], h, payload) //nolint:staticcheck // what pion's SRTP writer does
}

func (w *countWriter) Write(b []byte) (int, error) { w.pkts++; return len(b), nil }

var bindingCounts = []int{1, 100, 500, 1000}

// BenchmarkWriteFrame: one op is one frame of the 2 Mbit/s clip written to
// every binding.
func BenchmarkWriteFrame(b *testing.B) {
	frames := benchClip(b)
	cfg, _ := h264.Config(frames[0].NALUs)
	video, _ := defaultCodecs(b)
	for _, n := range bindingCounts {
		b.Run(fmt.Sprint("bindings=", n), func(b *testing.B) {
			f, _ := NewVideo("video", "live/bench", av.H264)
			ws := make([]*countWriter, n)
			for i := range ws {
				ws[i] = &countWriter{}
				if _, err := f.Bind(&fakeContext{id: fmt.Sprint(i), ssrc: webrtc.SSRC(i), codecs: video, w: ws[i]}); err != nil {
					b.Fatal(err)
				}
			}
			f.probeAll()
			pts := int64(0)
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				fr := frames[i%len(frames)]
				fr.PTS, fr.DTS = pts, pts
				pts += frameDuration
				if err := f.WriteFrame(fr, &cfg); err != nil {
					b.Fatal(err)
				}
			}
			b.StopTimer()
			reportPackets(b, ws)
		})
	}
}

// BenchmarkStaticRTP is the same fan-out through pion's
// TrackLocalStaticRTP (packetized once with pion's Packetizer), for
// comparison.
func BenchmarkStaticRTP(b *testing.B) {
	frames := benchClip(b)
	video, _ := defaultCodecs(b)
	for _, n := range bindingCounts {
		b.Run(fmt.Sprint("bindings=", n), func(b *testing.B) {
			track, err := webrtc.NewTrackLocalStaticRTP(h264Capability, "video", "live/bench")
			if err != nil {
				b.Fatal(err)
			}
			ws := make([]*countWriter, n)
			for i := range ws {
				ws[i] = &countWriter{}
				if _, err := track.Bind(&fakeContext{id: fmt.Sprint(i), ssrc: webrtc.SSRC(i), codecs: video, w: ws[i]}); err != nil {
					b.Fatal(err)
				}
			}
			packetizer := rtp.NewPacketizer(mtu, 106, 1, &codecs.H264Payloader{}, rtp.NewRandomSequencer(), 90000)
			annexB := make([][]byte, len(frames))
			for i, fr := range frames {
				for _, u := range fr.NALUs {
					annexB[i] = append(append(annexB[i], 0, 0, 0, 1), u...)
				}
			}
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				for _, p := range packetizer.Packetize(annexB[i%len(frames)], frameDuration) {
					if err := track.WriteRTP(p); err != nil {
						b.Fatal(err)
					}
				}
			}
			b.StopTimer()
			reportPackets(b, ws)
		})
	}
}

func reportPackets(b *testing.B, ws []*countWriter) {
	total := 0
	for _, w := range ws {
		total += w.pkts
	}
	b.ReportMetric(float64(total)/b.Elapsed().Seconds(), "pkts/s")
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(max(total, 1)), "ns/pkt")
}
