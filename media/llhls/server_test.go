package llhls

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// TestBlockingReloadIsHeldNotPolled proves a blocking reload waits on the
// rendition: it is parked before the part exists, is woken exactly once by
// AddPart, and renders the playlist exactly once.
func TestBlockingReloadIsHeldNotPolled(t *testing.T) {
	g := newTestGroup(t, testConfig())
	v := newFeeder(t, g, Video)
	v.segments(2)
	v.parts(3)
	s := published(t, g)

	ch := goGet(s, "/live/demo/video.m3u8?_HLS_msn=2&_HLS_part=3")
	parked(t, v.r, 1)
	notYet(t, ch)
	checks, renders := v.r.checks.Load(), v.r.renders.Load()
	if checks != 1 || renders != 0 {
		t.Fatalf("while held: %d condition checks, %d renders; want 1 and 0 (a loop would count more)", checks, renders)
	}

	v.addPart()
	w := answered(t, ch)
	if w.Code != http.StatusOK || !strings.Contains(w.Body.String(), `URI="video/g1/part2.3.m4s"`) {
		t.Fatalf("got %d, want the playlist with part 2.3:\n%s", w.Code, w.Body)
	}
	if c, r := v.r.checks.Load(), v.r.renders.Load(); c != 2 || r != 1 {
		t.Errorf("after one AddPart: %d checks, %d renders; want 2 and 1", c, r)
	}
	if cc := w.Header().Get("Cache-Control"); cc != "public, max-age=1" {
		t.Errorf("blocking response Cache-Control %q", cc)
	}
}

func TestBlockingReloadWholeSegment(t *testing.T) {
	g := newTestGroup(t, testConfig())
	v := newFeeder(t, g, Video)
	v.segments(1)
	v.parts(2)
	s := published(t, g)

	// _HLS_msn alone waits for the segment to be complete, not for parts.
	ch := goGet(s, "/live/demo/video.m3u8?_HLS_msn=1")
	parked(t, v.r, 1)
	v.addPart()
	parked(t, v.r, 1) // woken, re-checked, parked again
	notYet(t, ch)
	v.closeSegment()
	w := answered(t, ch)
	if w.Code != http.StatusOK || !strings.Contains(w.Body.String(), "video/g1/seg1.m4s\n") {
		t.Fatalf("got %d, want the playlist with segment 1:\n%s", w.Code, w.Body)
	}
}

// RFC 8216bis 6.2.5.2: a part index past the last part of a closed segment
// means part 0 of the next segment.
func TestBlockingPartPastSegmentEnd(t *testing.T) {
	g := newTestGroup(t, testConfig())
	v := newFeeder(t, g, Video)
	v.segments(1)
	v.parts(4)
	s := published(t, g)

	ch := goGet(s, "/live/demo/video.m3u8?_HLS_msn=1&_HLS_part=4")
	parked(t, v.r, 1)
	v.closeSegment() // segment 1 ends with 4 parts: 1.4 never exists
	parked(t, v.r, 1)
	notYet(t, ch)
	v.addPart() // 2.0
	w := answered(t, ch)
	if w.Code != http.StatusOK || !strings.Contains(w.Body.String(), "part2.0.m4s") {
		t.Fatalf("got %d, want the playlist with part 2.0:\n%s", w.Code, w.Body)
	}
}

func TestBlockingAlreadyAvailable(t *testing.T) {
	g := newTestGroup(t, testConfig())
	v := newFeeder(t, g, Video)
	v.segments(20)
	s := published(t, g)
	// Segment 0 left the playlist long ago: the whole current playlist.
	for _, q := range []string{"_HLS_msn=0", "_HLS_msn=0&_HLS_part=0", "_HLS_msn=19&_HLS_part=9", "_HLS_msn=19"} {
		w := get(s, http.MethodGet, "/live/demo/video.m3u8?"+q)
		if w.Code != http.StatusOK || !strings.Contains(w.Body.String(), "seg19.m4s") {
			t.Errorf("%s: got %d, want the current playlist at once", q, w.Code)
		}
	}
}

func TestBlockingBadRequests(t *testing.T) {
	g := newTestGroup(t, testConfig())
	v := newFeeder(t, g, Video)
	v.segments(3) // last segment 2, last part 2.9
	v.parts(2)    // last part 3.1
	s := published(t, g)
	for _, tc := range []struct{ query, body string }{
		{"_HLS_part=1", "_HLS_part needs _HLS_msn"},
		{"_HLS_msn=5", "more than two segments past the last"},
		{"_HLS_msn=3&_HLS_part=17", "Advance Part Limit"},
		{"_HLS_msn=4&_HLS_part=15", "Advance Part Limit"},
		{"_HLS_msn=abc", `_HLS_msn="abc"`},
		{"_HLS_msn=-1", `_HLS_msn="-1"`},
		{"_HLS_msn=99999999999999999999999", "decimal integer"},
		{"_HLS_msn=1&_HLS_msn=2", "given 2 times"},
		{"_HLS_msn=1&_HLS_part=x", `_HLS_part="x"`},
		{"_HLS_skip=NO", "want YES or v2"},
		{"_HLS_msn=%zz", "malformed query"},
	} {
		w := get(s, http.MethodGet, "/live/demo/video.m3u8?"+tc.query)
		if w.Code != http.StatusBadRequest || !strings.Contains(w.Body.String(), tc.body) {
			t.Errorf("%s: got %d %q, want 400 mentioning %q", tc.query, w.Code, w.Body, tc.body)
		}
		if cc := w.Header().Get("Cache-Control"); cc != "no-store" {
			t.Errorf("%s: error Cache-Control %q", tc.query, cc)
		}
	}
	// Within the limits: held (answered here by ending the stream).
	for _, q := range []string{"_HLS_msn=4", "_HLS_msn=3&_HLS_part=16", "_HLS_msn=4&_HLS_part=14"} {
		if why, bad := v.r.tooFar(mustDirectives(t, q)); bad {
			t.Errorf("%s refused: %s", q, why)
		}
	}
}

func mustDirectives(t *testing.T, q string) (uint64, int64) {
	d, err := parseDirectives(q)
	if err != nil {
		t.Fatal(err)
	}
	return d.msn, d.part
}

func TestBlockingTimeout(t *testing.T) {
	cfg := testConfig()
	cfg.BlockTimeout = time.Millisecond // nothing will ever add the part
	g := newTestGroup(t, cfg)
	v := newFeeder(t, g, Video)
	v.segments(1)
	s := published(t, g)
	w := get(s, http.MethodGet, "/live/demo/video.m3u8?_HLS_msn=1&_HLS_part=0")
	if w.Code != http.StatusServiceUnavailable || !strings.Contains(w.Body.String(), "part 1.0 not produced") {
		t.Fatalf("got %d %q, want 503", w.Code, w.Body)
	}
	if w.Header().Get("Cache-Control") != "no-store" {
		t.Errorf("503 Cache-Control %q", w.Header().Get("Cache-Control"))
	}
	// The hinted part itself times out the same way.
	if w := get(s, http.MethodGet, "/live/demo/video/g1/part1.0.m4s"); w.Code != http.StatusServiceUnavailable {
		t.Errorf("hinted part: got %d, want 503", w.Code)
	}
}

func TestBlockingAnsweredWhenEnded(t *testing.T) {
	g := newTestGroup(t, testConfig())
	v := newFeeder(t, g, Video)
	v.segments(2)
	v.parts(1)
	s := published(t, g)
	ch := goGet(s, "/live/demo/video.m3u8?_HLS_msn=2&_HLS_part=1")
	parked(t, v.r, 1)
	g.End()
	w := answered(t, ch)
	if w.Code != http.StatusOK || !strings.HasSuffix(w.Body.String(), "#EXT-X-ENDLIST\n") {
		t.Fatalf("got %d, want the final playlist:\n%s", w.Code, w.Body)
	}
	// Once ended, directives are ignored (RFC 8216bis 6.2.5.2), even far ones.
	if w := get(s, http.MethodGet, "/live/demo/video.m3u8?_HLS_msn=100&_HLS_part=3&_HLS_skip=YES"); w.Code != http.StatusOK || !strings.Contains(w.Body.String(), "ENDLIST") {
		t.Errorf("ended playlist with directives: got %d", w.Code)
	}
}

func TestFirstPlaylistWaitsForASegment(t *testing.T) {
	g := newTestGroup(t, testConfig())
	v := newFeeder(t, g, Video)
	a := newFeeder(t, g, Audio)
	s := published(t, g)
	media := goGet(s, "/live/demo/video.m3u8")
	index := goGet(s, "/live/demo/index.m3u8")
	parked(t, v.r, 1)
	v.parts(10)
	a.parts(10)
	notYet(t, media)
	notYet(t, index)
	v.closeSegment()
	if w := answered(t, media); w.Code != http.StatusOK || !strings.Contains(w.Body.String(), "seg0.m4s") {
		t.Fatalf("media playlist: %d\n%s", w.Code, w.Body)
	}
	notYet(t, index) // audio has parts but no segment: its codecs are not settled
	a.closeSegment()
	w := answered(t, index)
	if w.Code != http.StatusOK || !strings.Contains(w.Body.String(), `AUDIO="audio"`) {
		t.Fatalf("multivariant: %d\n%s", w.Code, w.Body)
	}
	if ct := w.Header().Get("Content-Type"); ct != "application/vnd.apple.mpegurl" {
		t.Errorf("Content-Type %q", ct)
	}
}

func TestDeltaUpdateOverHTTP(t *testing.T) {
	g, _, _ := liveGroup(t)
	s := published(t, g)
	for _, skip := range []string{"YES", "v2"} {
		w := get(s, http.MethodGet, "/live/demo/video.m3u8?_HLS_skip="+skip)
		if w.Code != http.StatusOK || !strings.Contains(w.Body.String(), "#EXT-X-SKIP:SKIPPED-SEGMENTS=8\n") {
			t.Errorf("_HLS_skip=%s: %d\n%s", skip, w.Code, w.Body)
		}
	}
	w := get(s, http.MethodGet, "/live/demo/video.m3u8?_HLS_msn=20&_HLS_part=2&_HLS_skip=YES")
	if w.Code != http.StatusOK || !strings.Contains(w.Body.String(), "EXT-X-SKIP") {
		t.Errorf("blocking delta update: %d\n%s", w.Code, w.Body)
	}
}

func TestMediaFiles(t *testing.T) {
	g := newTestGroup(t, testConfig())
	v := newFeeder(t, g, Video)
	a := newFeeder(t, g, Audio)
	v.segments(1)
	a.segments(1)
	v.parts(2)
	s := published(t, g)

	seg0 := bytes.Join([][]byte{}, nil)
	for i := range 10 {
		seg0 = append(seg0, v.partData(0, i)...)
	}
	for _, tc := range []struct {
		path, ct string
		body     []byte
	}{
		{"/live/demo/video/g1/init1.mp4", "video/mp4", []byte("video init 1")},
		{"/live/demo/video/g1/seg0.m4s", "video/mp4", seg0},
		{"/live/demo/video/g1/part0.3.m4s", "video/mp4", v.partData(0, 3)},
		{"/live/demo/video/g1/part1.1.m4s", "video/mp4", v.partData(1, 1)},
		{"/live/demo/audio/g1/part0.0.m4s", "audio/mp4", a.partData(0, 0)},
	} {
		w := get(s, http.MethodGet, tc.path)
		if w.Code != http.StatusOK || !bytes.Equal(w.Body.Bytes(), tc.body) {
			t.Errorf("%s: %d %q, want %q", tc.path, w.Code, w.Body, tc.body)
			continue
		}
		h := w.Header()
		if h.Get("Content-Type") != tc.ct || h.Get("Cache-Control") != "public, max-age=86400, immutable" ||
			h.Get("Access-Control-Allow-Origin") != "*" || h.Get("Content-Length") != itoa(uint64(len(tc.body))) {
			t.Errorf("%s: headers %v", tc.path, h)
		}
	}

	// HEAD: headers, no body.
	w := get(s, http.MethodHead, "/live/demo/video/g1/seg0.m4s")
	if w.Code != http.StatusOK || w.Body.Len() != 0 || w.Header().Get("Content-Length") != itoa(uint64(len(seg0))) {
		t.Errorf("HEAD: %d, %d body bytes, Content-Length %q", w.Code, w.Body.Len(), w.Header().Get("Content-Length"))
	}
	// Range.
	w = get(s, http.MethodGet, "/live/demo/video/g1/seg0.m4s", "Range", "bytes=4-9")
	if w.Code != http.StatusPartialContent || !bytes.Equal(w.Body.Bytes(), seg0[4:10]) || w.Header().Get("Content-Range") != "bytes 4-9/"+itoa(uint64(len(seg0))) {
		t.Errorf("Range: %d %q %q", w.Code, w.Body, w.Header().Get("Content-Range"))
	}
	// CORS preflight.
	w = get(s, http.MethodOptions, "/live/demo/video/g1/seg0.m4s")
	if w.Code != http.StatusNoContent || !strings.Contains(w.Header().Get("Access-Control-Allow-Headers"), "Range") {
		t.Errorf("OPTIONS: %d %v", w.Code, w.Header())
	}
	if w := get(s, http.MethodPost, "/live/demo/index.m3u8"); w.Code != http.StatusMethodNotAllowed {
		t.Errorf("POST: %d", w.Code)
	}

	for _, tc := range []struct{ path, body string }{
		{"/live/other/index.m3u8", `stream "live/other" is not live`},
		{"/live/other/video.m3u8", `stream "live/other" is not live`},
		{"/live/other/video/g1/seg0.m4s", `stream "live/other" is not live`},
		{"/live/demo/video/g0/seg0.m4s", `no session "g0"`},
		{"/live/demo/video/g1/seg7.m4s", "not available"},
		{"/live/demo/video/g1/part1.3.m4s", "not available"}, // not the next part (1.2 is)
		{"/live/demo/video/g1/part2.0.m4s", "not available"}, // segment 1 is still open
		{"/live/demo/video/g1/init2.mp4", "not available"},
		{"/live/demo/video/g1/seg00.m4s", "not an LL-HLS media path"},
		{"/live/demo/video/g1/part1.m4s", "not an LL-HLS media path"},
		{"/live/demo/subs/g1/seg0.m4s", "not an LL-HLS media path"},
		{"/index.m3u8", "not an LL-HLS path"},
		{"/live/demo/other.m3u8", "not an LL-HLS path"},
	} {
		w := get(s, http.MethodGet, tc.path)
		if w.Code != http.StatusNotFound || !strings.Contains(w.Body.String(), tc.body) {
			t.Errorf("%s: got %d %q, want 404 mentioning %q", tc.path, w.Code, w.Body, tc.body)
		}
		if w.Header().Get("Cache-Control") != "no-store" || w.Header().Get("Access-Control-Allow-Origin") != "*" {
			t.Errorf("%s: 404 headers %v", tc.path, w.Header())
		}
	}
	if w := get(s, http.MethodGet, "/live/demo/audio.m3u8"); w.Code != http.StatusOK {
		t.Errorf("audio playlist: %d", w.Code)
	}
}

func TestPreloadHintedPartIsHeld(t *testing.T) {
	g := newTestGroup(t, testConfig())
	v := newFeeder(t, g, Video)
	v.segments(1)
	v.parts(2)
	s := published(t, g)

	ch := goGet(s, "/live/demo/video/g1/part1.2.m4s")
	parked(t, v.r, 1)
	notYet(t, ch)
	v.addPart()
	if w := answered(t, ch); w.Code != http.StatusOK || !bytes.Equal(w.Body.Bytes(), v.partData(1, 2)) {
		t.Fatalf("hinted part: %d %q", w.Code, w.Body)
	}

	// The hint was 1.3 but the segment closed instead: 404, not a hang.
	ch = goGet(s, "/live/demo/video/g1/part1.3.m4s")
	parked(t, v.r, 1)
	v.closeSegment()
	if w := answered(t, ch); w.Code != http.StatusNotFound {
		t.Fatalf("part of a closed segment: %d %q", w.Code, w.Body)
	}
	// With no segment open the hint is part 0 of the next one.
	ch = goGet(s, "/live/demo/video/g1/part2.0.m4s")
	parked(t, v.r, 1)
	v.addPart()
	if w := answered(t, ch); w.Code != http.StatusOK || !bytes.Equal(w.Body.Bytes(), v.partData(2, 0)) {
		t.Fatalf("first part of the next segment: %d %q", w.Code, w.Body)
	}
	// The open segment is held too, until it closes.
	ch = goGet(s, "/live/demo/video/g1/seg2.m4s")
	parked(t, v.r, 1)
	v.addPart()
	parked(t, v.r, 1)
	seg := v.closeSegment()
	if w := answered(t, ch); w.Code != http.StatusOK || !bytes.Equal(w.Body.Bytes(), seg.Data) {
		t.Fatalf("open segment: %d %q", w.Code, w.Body)
	}
	// A hinted part of an ended stream: 404 at once.
	ch = goGet(s, "/live/demo/video/g1/part3.0.m4s")
	parked(t, v.r, 1)
	g.End()
	if w := answered(t, ch); w.Code != http.StatusNotFound {
		t.Fatalf("hint after end: %d", w.Code)
	}
}

func TestEviction(t *testing.T) {
	cfg := testConfig()
	cfg.Window = 10 * time.Second
	g := newTestGroup(t, cfg)
	v := newFeeder(t, g, Video)
	v.segments(2)
	if err := v.r.SetInit([]byte("video init 2")); err != nil {
		t.Fatal(err)
	}
	v.segments(10) // 24 s: 5 listed (7..11), 5 more held (2..6)
	s := published(t, g)

	pl := get(s, http.MethodGet, "/live/demo/video.m3u8").Body.String()
	if !strings.Contains(pl, "#EXT-X-MEDIA-SEQUENCE:7\n") || strings.Contains(pl, "seg6.m4s") {
		t.Fatalf("want segments 7..11 listed:\n%s", pl)
	}
	for path, want := range map[string]int{
		"/live/demo/video/g1/seg2.m4s":    http.StatusOK, // out of the playlist, still downloadable
		"/live/demo/video/g1/part2.5.m4s": http.StatusOK,
		"/live/demo/video/g1/seg1.m4s":    http.StatusNotFound, // gone
		"/live/demo/video/g1/part0.0.m4s": http.StatusNotFound,
		"/live/demo/video/g1/init1.mp4":   http.StatusNotFound, // no held segment uses it
		"/live/demo/video/g1/init2.mp4":   http.StatusOK,
	} {
		if w := get(s, http.MethodGet, path); w.Code != want {
			t.Errorf("%s: %d, want %d", path, w.Code, want)
		}
	}
	if n := len(v.r.segs); n != 10 {
		t.Errorf("%d segments held, want 10 (two windows)", n)
	}
}

func TestRepublishKeepsOldMediaForAWindow(t *testing.T) {
	now := t0
	s := NewServer(quiet())
	s.now = func() time.Time { return now }
	g1 := newTestGroup(t, testConfig())
	v1 := newFeeder(t, g1, Video)
	v1.segments(1)
	if err := s.Publish("live/demo", g1); err != nil {
		t.Fatal(err)
	}
	g2, err := NewGroup("g2", testConfig())
	if err != nil {
		t.Fatal(err)
	}
	v2 := newFeeder(t, g2, Video)
	v2.segments(1)
	if err := s.Publish("live/demo", g2); err != nil {
		t.Fatal(err)
	}
	if !v1.r.ended {
		t.Error("the replaced group should be ended")
	}
	if pl := get(s, http.MethodGet, "/live/demo/video.m3u8").Body.String(); !strings.Contains(pl, "video/g2/seg0.m4s") {
		t.Errorf("playlist should be the new session's:\n%s", pl)
	}
	if w := get(s, http.MethodGet, "/live/demo/video/g1/seg0.m4s"); w.Code != http.StatusOK {
		t.Errorf("old session media right after republish: %d", w.Code)
	}
	now = now.Add(31 * time.Second)
	if w := get(s, http.MethodGet, "/live/demo/video/g1/seg0.m4s"); w.Code != http.StatusNotFound {
		t.Errorf("old session media a window later: %d", w.Code)
	}
	s.Unpublish("live/demo")
	if w := get(s, http.MethodGet, "/live/demo/index.m3u8"); w.Code != http.StatusNotFound {
		t.Errorf("unpublished playlist: %d", w.Code)
	}
	if w := get(s, http.MethodGet, "/live/demo/video/g2/seg0.m4s"); w.Code != http.StatusOK {
		t.Errorf("unpublished session media: %d", w.Code)
	}
}

func TestNames(t *testing.T) {
	s := NewServer(quiet())
	g := newTestGroup(t, testConfig())
	for _, name := range []string{"", "/live/x", "live/x/", "live//x", "live/../x", "live/x y", "live/é"} {
		if err := s.Publish(name, g); !errors.Is(err, ErrBadName) {
			t.Errorf("Publish(%q): %v", name, err)
		}
	}
	for _, gen := range []string{"", "a/b", "..", "a b"} {
		if _, err := NewGroup(gen, Config{}); !errors.Is(err, ErrBadName) {
			t.Errorf("NewGroup(%q): %v", gen, err)
		}
	}
	if _, err := g.Rendition("subtitles"); !errors.Is(err, ErrBadName) {
		t.Errorf("Rendition(subtitles): %v", err)
	}
}

func TestRenditionErrors(t *testing.T) {
	g := newTestGroup(t, testConfig())
	r, _ := g.Rendition(Video)
	if err := r.AddPart(Part{Data: []byte("x"), Duration: partDur}); !errors.Is(err, ErrNoInit) {
		t.Errorf("AddPart before SetInit: %v", err)
	}
	if err := r.SetInit([]byte("init")); err != nil {
		t.Fatal(err)
	}
	if err := r.AddPart(Part{Duration: partDur}); !errors.Is(err, ErrBadPart) {
		t.Errorf("AddPart without data: %v", err)
	}
	if err := r.AddPart(Part{Data: []byte("x")}); !errors.Is(err, ErrBadPart) {
		t.Errorf("AddPart without duration: %v", err)
	}
	if _, err := r.CloseSegment(); !errors.Is(err, ErrNoOpenSegment) {
		t.Errorf("CloseSegment with nothing open: %v", err)
	}
	if err := r.AddPart(Part{Data: []byte("ab"), Duration: partDur}); err != nil {
		t.Fatal(err)
	}
	if err := r.AddPart(Part{Data: []byte("cd"), Duration: partDur}); err != nil {
		t.Fatal(err)
	}
	seg, err := r.CloseSegment()
	if err != nil || seg.MSN != 0 || seg.Parts != 2 || seg.Duration != 2*partDur || string(seg.Data) != "abcd" {
		t.Errorf("CloseSegment = %+v, %v", seg, err)
	}

	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := r.Wait(ctx, 1, 0); !errors.Is(err, context.Canceled) {
		t.Errorf("Wait with a cancelled context: %v", err)
	}
	if err := r.Wait(ctx, 0, 1); err != nil {
		t.Errorf("Wait for an existing part: %v", err)
	}
	g.End()
	if err := r.Wait(context.Background(), 1, 0); !errors.Is(err, ErrEnded) {
		t.Errorf("Wait after End: %v", err)
	}
	if err := r.AddPart(Part{Data: []byte("x"), Duration: partDur}); !errors.Is(err, ErrEnded) {
		t.Errorf("AddPart after End: %v", err)
	}
	if _, err := g.Rendition(Audio); !errors.Is(err, ErrEnded) {
		t.Errorf("new rendition after End: %v", err)
	}
}

func TestLongSegmentAndPartAreLoggedOnce(t *testing.T) {
	var logs bytes.Buffer
	cfg := testConfig()
	cfg.Logger = slogTo(&logs)
	g := newTestGroup(t, cfg)
	r, _ := g.Rendition(Video)
	if err := r.SetInit([]byte("init")); err != nil {
		t.Fatal(err)
	}
	for range 2 {
		// A 4 s GOP against a 2 s target, in 250 ms parts against 200 ms.
		for range 16 {
			if err := r.AddPart(Part{Data: []byte("x"), Duration: 250 * time.Millisecond}); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := r.CloseSegment(); err != nil {
			t.Fatal(err)
		}
	}
	out := logs.String()
	if strings.Count(out, "segment longer than EXT-X-TARGETDURATION") != 1 || strings.Count(out, "part longer than PART-TARGET") != 1 {
		t.Errorf("want each warning once:\n%s", out)
	}
	if pl := string(r.Playlist(false)); !strings.Contains(pl, "#EXT-X-TARGETDURATION:2\n") || !strings.Contains(pl, "#EXTINF:4.00000,") {
		t.Errorf("the target stays announced and the long segment listed:\n%s", pl)
	}
}

// TestHTTP2BlockingAndCancel runs a blocking reload over a real HTTP/2
// connection, and checks that a client giving up releases its waiter.
func TestHTTP2BlockingAndCancel(t *testing.T) {
	g := newTestGroup(t, testConfig())
	v := newFeeder(t, g, Video)
	v.segments(1)
	v.parts(1)
	srv := httptest.NewUnstartedServer(published(t, g))
	srv.EnableHTTP2 = true
	srv.StartTLS()
	defer srv.Close()
	client := srv.Client()

	type result struct {
		resp *http.Response
		body string
		err  error
	}
	fetch := func(ctx context.Context, path string) <-chan result {
		ch := make(chan result, 1)
		go func() {
			req, _ := http.NewRequestWithContext(ctx, http.MethodGet, srv.URL+path, nil)
			resp, err := client.Do(req)
			if err != nil {
				ch <- result{err: err}
				return
			}
			b, err := io.ReadAll(resp.Body)
			resp.Body.Close()
			ch <- result{resp: resp, body: string(b), err: err}
		}()
		return ch
	}

	ch := fetch(context.Background(), "/live/demo/video.m3u8?_HLS_msn=1&_HLS_part=1")
	parked(t, v.r, 1)
	v.addPart()
	select {
	case res := <-ch:
		if res.err != nil || res.resp.ProtoMajor != 2 || res.resp.StatusCode != http.StatusOK || !strings.Contains(res.body, "part1.1.m4s") {
			t.Fatalf("HTTP/2 blocking reload: %+v %v\n%s", res.resp, res.err, res.body)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("blocking reload over HTTP/2 never answered")
	}

	ctx, cancel := context.WithCancel(context.Background())
	ch = fetch(ctx, "/live/demo/video/g1/part1.2.m4s")
	parked(t, v.r, 1)
	cancel()
	parked(t, v.r, 0) // the handler stopped waiting
	if res := <-ch; !errors.Is(res.err, context.Canceled) {
		t.Errorf("cancelled request: %v", res.err)
	}
}

func TestSetInitDuringOpenSegmentAppliesToTheNext(t *testing.T) {
	g := newTestGroup(t, testConfig())
	v := newFeeder(t, g, Video)
	v.segments(1)
	v.parts(2)
	if err := v.r.SetInit([]byte("video init 2")); err != nil {
		t.Fatal(err)
	}
	v.parts(8)
	v.closeSegment()
	v.parts(1)
	pl := string(v.r.Playlist(false))
	i1, i2 := strings.Index(pl, "seg1.m4s"), strings.Index(pl, `#EXT-X-MAP:URI="video/g1/init2.mp4"`)
	if i2 < i1 || !strings.Contains(pl[i1:], "#EXT-X-DISCONTINUITY\n") {
		t.Errorf("init 2 should start at segment 2 with a discontinuity:\n%s", pl)
	}
}
