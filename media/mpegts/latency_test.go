package mpegts

import (
	"bytes"
	"context"
	"io"
	"os/exec"
	"testing"
)

// packetReader hands out one TS packet per Read and counts them.
type packetReader struct {
	b    []byte
	read int
}

func (r *packetReader) Read(p []byte) (int, error) {
	if len(r.b) == 0 {
		return 0, io.EOF
	}
	n := copy(p, r.b[:min(188, len(r.b))])
	r.b = r.b[n:]
	r.read++
	return n, nil
}

// A video access unit must come out as soon as the next PES on its PID
// starts (astits cannot know an unbounded PES ended before that), not one
// PES later: the latency budget of WHEP viewers is 300 ms.
func TestDemuxVideoLatency(t *testing.T) {
	in := fixture(t, "h264_aac.ts")
	var starts []int // packet index of each video PES start
	for i := 0; i+188 <= len(in); i += 188 {
		p := in[i:]
		if pid := int(p[1]&0x1f)<<8 | int(p[2]); pid == 256 && p[1]&0x40 != 0 {
			starts = append(starts, i/188)
		}
	}
	r := &packetReader{b: in}
	d := NewDemuxer(context.Background(), r, WithLogger(quiet))
	n := 0
	for {
		f, err := d.ReadFrame()
		if err != nil {
			break
		}
		if !f.Frame.Codec.IsVideo() {
			continue
		}
		if n+1 < len(starts) {
			// Read up to the next start, plus the two packets read ahead
			// to confirm sync at the very beginning.
			if limit := starts[n+1] + 1 + 2; r.read > limit {
				t.Fatalf("video frame %d returned after %d packets; the next PES starts at packet %d", n, r.read, starts[n+1])
			}
		}
		n++
	}
	if n != 60 {
		t.Fatalf("%d video frames", n)
	}
}

// ffmpeg writing into a pipe: a reader that cannot seek and returns
// whatever the pipe holds.
func TestDemuxFFmpegPipe(t *testing.T) {
	if _, err := exec.LookPath("ffmpeg"); err != nil {
		t.Skip("ffmpeg not installed")
	}
	cmd := exec.Command("ffmpeg", "-hide_banner", "-loglevel", "error",
		"-f", "lavfi", "-i", "testsrc2=size=320x240:rate=30", "-f", "lavfi", "-i", "sine=sample_rate=48000",
		"-t", "1", "-c:v", "libx264", "-preset", "ultrafast", "-g", "15", "-c:a", "aac", "-f", "mpegts", "pipe:1")
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	frames, d, err := demuxAll(t, out)
	if werr := cmd.Wait(); werr != nil {
		t.Fatalf("ffmpeg: %v: %s", werr, stderr.String())
	}
	if err != io.EOF {
		t.Fatal(err)
	}
	video := byCodec(frames, true)
	keys := 0
	for _, f := range video {
		if f.Frame.Key {
			keys++
		}
	}
	if len(video) != 30 || keys != 2 || video[0].Config == nil || d.Stats().Dropped != 0 {
		t.Fatalf("%d video frames, %d keys, stats %+v", len(video), keys, d.Stats())
	}
	if a := len(byCodec(frames, false)); a < 46 || a > 49 {
		t.Fatalf("%d audio frames for 1 s at 48 kHz", a)
	}
}
