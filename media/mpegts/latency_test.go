package mpegts

import (
	"bytes"
	"context"
	"io"
	"os/exec"
	"sort"
	"testing"
)

// packetReader hands out one TS packet per Read and counts them.
type packetReader struct {
	b     []byte
	read  int // packets
	bytes int
}

func (r *packetReader) Read(p []byte) (int, error) {
	if len(r.b) == 0 {
		return 0, io.EOF
	}
	n := copy(p, r.b[:min(188, len(r.b))])
	r.b = r.b[n:]
	r.read++
	r.bytes += n
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

// tsPES is where a PES sits in a TS file.
type tsPES struct {
	start, end int // byte offsets of its first packet and past its last
	pts        int64
}

// pesOf lists the PES of a PID in a clean TS file, by its PUSI packets
// and the packets of the PID between them.
func pesOf(t *testing.T, in []byte, pid int) []tsPES {
	t.Helper()
	var list []tsPES
	for off := 0; off+188 <= len(in); off += 188 {
		p := in[off : off+188]
		if int(p[1]&0x1f)<<8|int(p[2]) != pid {
			continue
		}
		if p[1]&0x40 == 0 {
			if len(list) > 0 {
				list[len(list)-1].end = off + 188
			}
			continue
		}
		es := p[4:]
		if p[3]&0x20 != 0 {
			es = p[5+int(p[4]):]
		}
		if es[7]&0x80 == 0 {
			t.Fatalf("PES at %d without PTS", off)
		}
		pts := int64(es[9]>>1&7)<<30 | int64(es[10])<<22 | int64(es[11]>>1)<<15 | int64(es[12])<<7 | int64(es[13]>>1)
		list = append(list, tsPES{start: off, end: off + 188, pts: pts})
	}
	return list
}

// The frames of an audio PES must come out as soon as its last packet is
// read: ffmpeg puts about 16 AAC frames in a PES, and waiting for the next
// PES to start held every audio frame back by about 340 ms, audio LL-HLS
// parts lagging video parts by as much.
func TestDemuxAudioLatency(t *testing.T) {
	for _, name := range []string{"h264_aac.ts", "h264_opus.ts"} {
		t.Run(name, func(t *testing.T) {
			in := fixture(t, name)
			pes := pesOf(t, in, 257)
			r := &packetReader{b: in}
			d := NewDemuxer(context.Background(), r, WithLogger(quiet))
			frames, checked := 0, map[int]bool{}
			for {
				f, err := d.ReadFrame()
				if err == io.EOF {
					break
				}
				if err != nil {
					t.Fatal(err)
				}
				if !f.Frame.Codec.IsAudio() {
					continue
				}
				frames++
				// The PES a frame comes from: the last to start at or
				// before its PTS (frame i plays at the PES PTS + i frames).
				k := sort.Search(len(pes), func(i int) bool { return pes[i].pts > f.Frame.PTS }) - 1
				if k < 0 {
					t.Fatalf("audio frame at %d before the first PES", f.Frame.PTS)
				}
				if r.bytes < pes[k].end {
					t.Fatalf("frame %d of the PES at byte %d returned after %d bytes, before the PES ended at %d", frames, pes[k].start, r.bytes, pes[k].end)
				}
				if k+1 < len(pes) {
					if next := pes[k+1].start; r.bytes > next {
						t.Fatalf("frame %d of the audio PES ending at byte %d returned after %d bytes had been read: %d bytes into the next audio PES",
							frames, pes[k].end, r.bytes, r.bytes-next)
					}
					checked[k] = true
				}
			}
			if want := len(ffprobe(t, name, "a")); frames != want {
				t.Fatalf("%d audio frames, ffprobe has %d", frames, want)
			}
			if len(checked) != len(pes)-1 || len(pes) < 5 {
				t.Fatalf("checked %d of %d audio PES", len(checked), len(pes))
			}
		})
	}
}

// ffmpeg writing into a pipe: a reader that cannot seek and returns
// whatever the pipe holds.
func TestDemuxFFmpegPipe(t *testing.T) {
	if _, err := exec.LookPath("ffmpeg"); err != nil {
		t.Fatal("ffmpeg is required (task deps installs it)")
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
