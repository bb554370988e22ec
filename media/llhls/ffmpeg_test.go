package llhls

import (
	"bytes"
	"context"
	"errors"
	"net/http/httptest"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/Eyevinn/mp4ff/mp4"
)

// cmafTrack is a fixture split the way a packager hands it over: the init
// section and one moof+mdat per part.
type cmafTrack struct {
	init    []byte
	frags   []cmafFrag
	samples int
}

type cmafFrag struct {
	data []byte
	dur  time.Duration
	sync bool
}

func loadCMAF(t *testing.T, path string) cmafTrack {
	t.Helper()
	f, err := mp4.ReadMP4File(path)
	if err != nil {
		t.Fatalf("%s: %v (regenerate with testdata/gen.sh)", path, err)
	}
	var tr cmafTrack
	var b bytes.Buffer
	if err := f.Init.Encode(&b); err != nil {
		t.Fatal(err)
	}
	tr.init = bytes.Clone(b.Bytes())
	trex := f.Init.Moov.Mvex.Trex
	scale := int64(f.Init.Moov.Trak.Mdia.Mdhd.Timescale)
	for _, seg := range f.Segments {
		for _, frag := range seg.Fragments {
			ss, err := frag.GetFullSamples(trex)
			if err != nil || len(ss) == 0 {
				t.Fatalf("%s: fragment samples: %v", path, err)
			}
			var dur int64
			for _, s := range ss {
				dur += int64(s.Dur)
			}
			b.Reset()
			if err := frag.Encode(&b); err != nil {
				t.Fatal(err)
			}
			tr.frags = append(tr.frags, cmafFrag{data: bytes.Clone(b.Bytes()),
				dur: time.Duration(dur * int64(time.Second) / scale), sync: ss[0].IsSync()})
			tr.samples += len(ss)
		}
	}
	return tr
}

// feedCMAF packages the fixtures as a packager would, in time order:
// video segments cut at keyframes, audio segments cut where video's are.
// pace, when set, is slept after each part (a live source).
func feedCMAF(t *testing.T, g *Group, video, audio cmafTrack, pace time.Duration) {
	t.Helper()
	v, _ := g.Rendition(Video)
	a, _ := g.Rendition(Audio)
	must := func(err error) {
		if err != nil {
			t.Error(err)
		}
	}
	must(v.SetInit(video.init))
	v.SetInfo(Info{Codecs: "avc1.4d400d", Width: 320, Height: 180, FrameRate: 25})
	must(a.SetInit(audio.init))
	a.SetInfo(Info{Codecs: "mp4a.40.2", Channels: 2})

	var vi, ai int
	var vat, aat, cut time.Duration
	for vi < len(video.frags) || ai < len(audio.frags) {
		if vi < len(video.frags) && (ai == len(audio.frags) || vat <= aat) {
			f := video.frags[vi]
			if f.sync && vi > 0 {
				_, err := v.CloseSegment()
				must(err)
				cut = vat
			}
			must(v.AddPart(Part{Data: f.data, Duration: f.dur, Independent: f.sync, ProgramDateTime: t0.Add(vat)}))
			vat += f.dur
			vi++
		} else {
			f := audio.frags[ai]
			if cut > 0 && aat >= cut {
				_, err := a.CloseSegment()
				must(err)
				cut = 0
			}
			must(a.AddPart(Part{Data: f.data, Duration: f.dur, Independent: true, ProgramDateTime: t0.Add(aat)}))
			aat += f.dur
			ai++
		}
		if pace > 0 {
			time.Sleep(pace)
		}
	}
	_, err := v.CloseSegment()
	must(err)
	_, err = a.CloseSegment()
	must(err)
}

func ffprobe(t *testing.T, args ...string) string {
	t.Helper()
	out, err := ffprobeRun(args...)
	if err != nil {
		t.Fatalf("ffprobe %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return out
}

func ffprobeRun(args ...string) (string, error) {
	if _, err := exec.LookPath("ffprobe"); err != nil {
		return "", errors.New("ffprobe is needed (apt-get install ffmpeg)")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, "ffprobe", append([]string{"-v", "error"}, args...)...).CombinedOutput()
	return string(out), err
}

// TestFFprobeReadsEndedStream has ffmpeg's HLS demuxer read every packet
// of both renditions through the multivariant playlist.
func TestFFprobeReadsEndedStream(t *testing.T) {
	video, audio := loadCMAF(t, "testdata/video.mp4"), loadCMAF(t, "testdata/audio.mp4")
	g := newTestGroup(t, testConfig())
	feedCMAF(t, g, video, audio, 0)
	g.End()
	srv := httptest.NewServer(published(t, g))
	defer srv.Close()

	out := ffprobe(t, "-count_packets", "-show_entries", "stream=codec_name,nb_read_packets",
		"-of", "csv=p=0", srv.URL+"/live/demo/index.m3u8")
	t.Logf("ffprobe counted:\n%s", out)
	want := "h264," + itoa(uint64(video.samples)) + "\naac," + itoa(uint64(audio.samples)) + "\n"
	if !strings.Contains(out, "h264,"+itoa(uint64(video.samples))) || !strings.Contains(out, "aac,"+itoa(uint64(audio.samples))) {
		t.Errorf("ffprobe read:\n%swant:\n%s", out, want)
	}
}

// TestFFprobeJoinsLiveStream has ffmpeg join the live playlist (no
// EXT-X-ENDLIST, open segment, preload hint) and find both streams.
func TestFFprobeJoinsLiveStream(t *testing.T) {
	video, audio := loadCMAF(t, "testdata/video.mp4"), loadCMAF(t, "testdata/audio.mp4")
	g := newTestGroup(t, testConfig())
	feedCMAF(t, g, video, audio, 0)
	// Leave an open segment with a part in each rendition.
	v, _ := g.Rendition(Video)
	a, _ := g.Rendition(Audio)
	if err := v.AddPart(Part{Data: video.frags[0].data, Duration: video.frags[0].dur, Independent: true}); err != nil {
		t.Fatal(err)
	}
	if err := a.AddPart(Part{Data: audio.frags[0].data, Duration: audio.frags[0].dur, Independent: true}); err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(published(t, g))
	defer srv.Close()

	out := ffprobe(t, "-show_entries", "stream=codec_name,width,height,sample_rate,channels",
		"-of", "csv=p=0", srv.URL+"/live/demo/index.m3u8")
	t.Logf("ffprobe found:\n%s", out)
	if !strings.Contains(out, "h264,320,180") || !strings.Contains(out, "aac,48000,2") {
		t.Errorf("ffprobe found:\n%s", out)
	}
}

// TestFFprobeFollowsLiveStream has ffmpeg join while the stream is being
// produced: its first playlist request waits for the first segment, it
// reloads the live playlists as segments come, and stops at
// EXT-X-ENDLIST having read every packet (it joined at segment 0, the
// live edge of a one-segment playlist).
func TestFFprobeFollowsLiveStream(t *testing.T) {
	video, audio := loadCMAF(t, "testdata/video.mp4"), loadCMAF(t, "testdata/audio.mp4")
	g := newTestGroup(t, testConfig())
	srv := httptest.NewServer(published(t, g))
	defer srv.Close()

	type result struct {
		out string
		err error
	}
	done := make(chan result, 1)
	go func() {
		out, err := ffprobeRun("-count_packets", "-show_entries", "stream=codec_name,nb_read_packets",
			"-of", "csv=p=0", srv.URL+"/live/demo/index.m3u8")
		done <- result{out, err}
	}()
	feedCMAF(t, g, video, audio, 10*time.Millisecond)
	g.End()
	res := <-done
	if res.err != nil {
		t.Fatalf("ffprobe: %v\n%s", res.err, res.out)
	}
	if !strings.Contains(res.out, "h264,"+itoa(uint64(video.samples))) || !strings.Contains(res.out, "aac,"+itoa(uint64(audio.samples))) {
		t.Errorf("ffprobe read:\n%swant h264,%d and aac,%d", res.out, video.samples, audio.samples)
	}
}
