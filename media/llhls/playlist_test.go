package llhls

import (
	"strings"
	"testing"
	"time"
)

// liveGroup is 20 complete segments (40 s, more than the 30 s window) and
// 3 parts of segment 20 in both renditions, audio one part behind.
func liveGroup(t *testing.T) (*Group, *feeder, *feeder) {
	g := newTestGroup(t, testConfig())
	v, a := newFeeder(t, g, Video), newFeeder(t, g, Audio)
	setInfo(v.r)
	setInfo(a.r)
	for range 20 {
		v.segments(1)
		a.segments(1)
	}
	v.parts(3)
	a.parts(2)
	return g, v, a
}

func TestPlaylistLive(t *testing.T) {
	g, v, a := liveGroup(t)
	golden(t, "live_video.m3u8", v.r.Playlist(false))
	golden(t, "live_audio.m3u8", a.r.Playlist(false))
	golden(t, "live_video_delta.m3u8", v.r.Playlist(true))
	golden(t, "multivariant.m3u8", g.multivariant())

	pl := string(v.r.Playlist(false))
	// 30 s window of 2 s segments: 15 listed, 5 scrolled out.
	if !strings.Contains(pl, "#EXT-X-MEDIA-SEQUENCE:5\n") || strings.Contains(pl, "seg4.m4s") {
		t.Errorf("want segments 5.. listed:\n%s", pl)
	}
	// Parts only for segments ending within 3 target durations (6 s) of
	// the end: 17, 18, 19 and the open 20.
	if strings.Contains(pl, "part16.") || !strings.Contains(pl, "part17.0.m4s") {
		t.Errorf("parts listed outside the last three target durations:\n%s", pl)
	}
	if !strings.Contains(pl, `#EXT-X-PRELOAD-HINT:TYPE=PART,URI="video/g1/part20.3.m4s"`) {
		t.Errorf("preload hint should name the next part:\n%s", pl)
	}
	if !strings.Contains(pl, `#EXT-X-RENDITION-REPORT:URI="audio.m3u8",LAST-MSN=20,LAST-PART=1`) {
		t.Errorf("rendition report should give audio's last part:\n%s", pl)
	}
}

func TestPlaylistDeltaOnlyWhenLongerThanSkipBoundary(t *testing.T) {
	g := newTestGroup(t, testConfig())
	v := newFeeder(t, g, Video)
	v.segments(6) // 12 s, the skip boundary: nothing lies beyond it
	if d := string(v.r.Playlist(true)); strings.Contains(d, "EXT-X-SKIP") || !strings.Contains(d, "#EXT-X-VERSION:6\n") {
		t.Errorf("a playlist no longer than the skip boundary must come whole:\n%s", d)
	}
	v.segments(2)
	d := string(v.r.Playlist(true))
	if !strings.Contains(d, "#EXT-X-SKIP:SKIPPED-SEGMENTS=1\n") || !strings.Contains(d, "#EXT-X-VERSION:9\n") {
		t.Errorf("want one segment skipped with version 9:\n%s", d)
	}
	// The skipped segment's tags are gone, the map applying to the rest stays.
	if strings.Contains(d, "seg0.m4s") || !strings.Contains(d, `#EXT-X-MAP:URI="video/g1/init1.mp4"`) {
		t.Errorf("delta update lists skipped segments or lost the map:\n%s", d)
	}
}

func TestPlaylistDiscontinuity(t *testing.T) {
	cfg := testConfig()
	cfg.Window = 10 * time.Second
	g := newTestGroup(t, cfg)
	v := newFeeder(t, g, Video)
	v.segments(2)
	// A new init (codec change): new map and a discontinuity.
	if err := v.r.SetInit([]byte("video init 2")); err != nil {
		t.Fatal(err)
	}
	if err := v.r.SetInit([]byte("video init 2")); err != nil { // same bytes: nothing new
		t.Fatal(err)
	}
	pending := string(v.r.Playlist(false))
	if strings.Contains(pending, "PRELOAD-HINT") {
		t.Errorf("no hint while the next part starts a discontinuity:\n%s", pending)
	}
	v.segments(2)
	// Timestamps jump: discontinuity without a new init.
	v.r.MarkDiscontinuity()
	v.segments(1)
	golden(t, "discontinuity.m3u8", v.r.Playlist(false))

	// Scroll the first discontinuity out of the 10 s window.
	v.segments(3)
	pl := string(v.r.Playlist(false))
	golden(t, "discontinuity_scrolled.m3u8", []byte(pl))
	if !strings.Contains(pl, "#EXT-X-DISCONTINUITY-SEQUENCE:1\n") || strings.Count(pl, "#EXT-X-DISCONTINUITY\n") != 1 {
		t.Errorf("want discontinuity sequence 1 and one discontinuity left:\n%s", pl)
	}
}

func TestPlaylistEnded(t *testing.T) {
	g := newTestGroup(t, testConfig())
	v := newFeeder(t, g, Video)
	v.segments(3)
	v.parts(4)
	g.End()
	pl := v.r.Playlist(false)
	golden(t, "ended.m3u8", pl)
	if !strings.HasSuffix(string(pl), "#EXT-X-ENDLIST\n") || strings.Contains(string(pl), "PRELOAD-HINT") {
		t.Errorf("ended playlist needs ENDLIST and no hint:\n%s", pl)
	}
	if d := v.r.Playlist(true); string(d) != string(pl) {
		t.Errorf("an ended playlist ignores _HLS_skip:\n%s", d)
	}
}

func TestMultivariantVariants(t *testing.T) {
	for _, tc := range []struct {
		file   string
		tracks []string
	}{
		{"multivariant_video_only.m3u8", []string{Video}},
		{"multivariant_audio_only.m3u8", []string{Audio}},
	} {
		t.Run(tc.file, func(t *testing.T) {
			g := newTestGroup(t, testConfig())
			for _, name := range tc.tracks {
				f := newFeeder(t, g, name)
				setInfo(f.r)
				f.segments(2)
			}
			golden(t, tc.file, g.multivariant())
		})
	}
}

func setInfo(r *Rendition) {
	if r.name == Video {
		r.SetInfo(Info{Codecs: "avc1.64001f", Width: 1280, Height: 720, FrameRate: 30})
	} else {
		r.SetInfo(Info{Codecs: "mp4a.40.2", Channels: 2})
	}
}

func TestMultivariantBandwidth(t *testing.T) {
	g := newTestGroup(t, testConfig())
	r, _ := g.Rendition(Video)
	if err := r.SetInit([]byte("i")); err != nil {
		t.Fatal(err)
	}
	// Two 1 s segments of 1000 and 3000 bytes: peak 24000 b/s, average 16000 b/s.
	for _, n := range []int{1000, 3000} {
		if err := r.AddPart(Part{Data: make([]byte, n), Duration: time.Second}); err != nil {
			t.Fatal(err)
		}
		if _, err := r.CloseSegment(); err != nil {
			t.Fatal(err)
		}
	}
	if mv := string(g.multivariant()); !strings.Contains(mv, "BANDWIDTH=24000,AVERAGE-BANDWIDTH=16000") {
		t.Errorf("want peak 24000 and average 16000:\n%s", mv)
	}
}

func TestAppendSeconds(t *testing.T) {
	for _, tc := range []struct {
		d    time.Duration
		dec  int
		want string
	}{
		{200 * time.Millisecond, 3, "0.200"},
		{2 * time.Second, 5, "2.00000"},
		{213333333, 5, "0.21333"},
		{2005333333, 5, "2.00533"},
		{1999995 * time.Microsecond, 5, "2.00000"},
		{12 * time.Second, 3, "12.000"},
		{1500 * time.Millisecond, 0, "2"},
	} {
		if got := string(appendSeconds(nil, tc.d, tc.dec)); got != tc.want {
			t.Errorf("appendSeconds(%v, %d) = %s, want %s", tc.d, tc.dec, got, tc.want)
		}
	}
}

func TestConfigAnnouncements(t *testing.T) {
	c := Config{PartTarget: 333333 * time.Microsecond, TargetDuration: 1500 * time.Millisecond, Window: time.Second}.withDefaults()
	if c.targetSeconds() != 2 || c.partTarget() != 334*time.Millisecond || c.Window != 6*time.Second || c.BlockTimeout != 4500*time.Millisecond {
		t.Errorf("target %d, part target %v, window %v, block timeout %v", c.targetSeconds(), c.partTarget(), c.Window, c.BlockTimeout)
	}
	if l := (Config{}).withDefaults().advancePartLimit(); l != 15 {
		t.Errorf("advance part limit for 200 ms parts = %v, want 15", l)
	}
}
