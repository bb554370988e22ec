package webrtc

import (
	"bytes"
	"net/http"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pion/rtcp"
	"github.com/pion/webrtc/v4"
	"github.com/pion/webrtc/v4/pkg/media"

	"github.com/onair/onair/media/av"
)

// TestWHIPPublish publishes the fixture from a pion client through real
// HTTP and ICE over loopback and checks the frames the Ingest receives.
func TestWHIPPublish(t *testing.T) {
	aus := accessUnits(t)
	opusPkts := opusPackets(t)
	e := newTestEngine(t, 0)
	in := &fakeIngest{}
	srv := testServer(t, NewHandler(e, in, nil))

	pc, err := clientAPI(t).NewPeerConnection(webrtc.Configuration{})
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	states := watchState(pc)
	vt, err := webrtc.NewTrackLocalStaticSample(h264Cap, "video", "onair")
	if err != nil {
		t.Fatal(err)
	}
	at, err := webrtc.NewTrackLocalStaticSample(opusCap, "audio", "onair")
	if err != nil {
		t.Fatal(err)
	}
	var plis atomic.Int32
	for _, tr := range []webrtc.TrackLocal{vt, at} {
		tx, err := pc.AddTransceiverFromTrack(tr, webrtc.RTPTransceiverInit{Direction: webrtc.RTPTransceiverDirectionSendonly})
		if err != nil {
			t.Fatal(err)
		}
		go func() {
			for {
				pkts, _, err := tx.Sender().ReadRTCP()
				if err != nil {
					return
				}
				for _, p := range pkts {
					if _, ok := p.(*rtcp.PictureLossIndication); ok {
						plis.Add(1)
					}
				}
			}
		}()
	}

	resp, answer := offerAndPost(t, pc, srv.URL+"/live/cam1/whip")
	loc := resp.Header.Get("Location")
	if !strings.HasPrefix(loc, "/live/cam1/whip/") || resp.Header.Get("ETag") == "" ||
		resp.Header.Get("Content-Type") != "application/sdp" {
		t.Fatalf("201 headers: %v", resp.Header)
	}
	if links := resp.Header.Values("Link"); len(links) != 2 ||
		links[0] != `<stun:stun.example.net:3478>; rel="ice-server"` ||
		links[1] != `<turn:turn.example.net:3478?transport=udp>; rel="ice-server"; username="user"; credential="pa\"ss"; credential-type="password"` {
		t.Fatalf("Link headers: %q", links)
	}
	if !strings.Contains(answer, "a=candidate:") || !strings.Contains(answer, "a=recvonly") ||
		!strings.Contains(answer, "H264") || strings.Contains(answer, "VP8") {
		t.Fatalf("answer lacks candidates, recvonly or H.264 (or kept VP8):\n%s", answer)
	}
	ps, sink := in.last()
	if ps == nil || ps.Stream() != "cam1" || !slices.Equal(ps.Codecs(), []av.Codec{av.H264, av.Opus}) ||
		!strings.HasPrefix(ps.Remote(), "127.0.0.1:") || !strings.HasSuffix(loc, "/"+ps.ID()) {
		t.Fatalf("publish session: %+v", ps)
	}
	waitConnected(t, pc, states)

	// Send both tracks by media time, a little faster than real time.
	ai := 0
	for i, au := range aus {
		// 1 ns over 1/30 s: pion floors each sample to whole ticks.
		if err := vt.WriteSample(media.Sample{Data: annexB(au), Duration: time.Second/30 + 1}); err != nil {
			t.Fatal(err)
		}
		for ; ai < len(opusPkts) && ai*20 <= (i+1)*1000/30; ai++ {
			if err := at.WriteSample(media.Sample{Data: opusPkts[ai], Duration: 20 * time.Millisecond}); err != nil {
				t.Fatal(err)
			}
		}
		time.Sleep(3 * time.Millisecond)
	}
	for ; ai < len(opusPkts); ai++ {
		_ = at.WriteSample(media.Sample{Data: opusPkts[ai], Duration: 20 * time.Millisecond})
	}
	// The last frame ends with its marker, so it is released at once.
	// The last frame ends with its marker, so it is released at once.
	eventually(t, "the last video frame", func() bool {
		v := sink.track(TrackVideo)
		return len(v) > 0 && slices.EqualFunc(v[len(v)-1].f.NALUs, aus[len(aus)-1], bytes.Equal)
	})

	// Keyframe requests reach the publisher as PLI.
	ps.RequestKeyframe()
	eventually(t, "a PLI at the publisher", func() bool { return plis.Load() > 0 })

	resp, body := do(t, http.MethodDelete, srv.URL+loc, "", "", nil)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("DELETE: %d %s", resp.StatusCode, body)
	}
	select {
	case reason := <-sink.closed:
		if !strings.Contains(reason, "DELETE") {
			t.Fatalf("close reason %q", reason)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("sink not closed after DELETE")
	}

	checkPublished(t, sink, aus, opusPkts)
}

func checkPublished(t *testing.T, sink *fakeSink, aus [][][]byte, opusPkts [][]byte) {
	t.Helper()
	sink.mu.Lock()
	overlaps, closes := sink.overlaps, sink.closes
	sink.mu.Unlock()
	if overlaps != 0 || closes != 1 {
		t.Fatalf("sink saw %d overlapping WriteFrame calls and %d Close calls", overlaps, closes)
	}
	video := sink.track(TrackVideo)
	if len(video) < fileFrames-3 {
		t.Fatalf("received %d video frames, want %d (±3)", len(video), fileFrames)
	}
	first := video[0].f.PTS
	if !video[0].f.Key || video[0].cfg == nil || video[0].cfg.Width != fileWidth || video[0].cfg.Height != fileHeight {
		t.Fatalf("first video frame: key %v cfg %+v", video[0].f.Key, video[0].cfg)
	}
	keys := 0
	for i, fr := range video {
		f := fr.f
		if (f.PTS-first)%frameTicks != 0 {
			t.Fatalf("video frame %d: PTS %d not on the 30 fps grid from %d", i, f.PTS, first)
		}
		idx := int((f.PTS - first) / frameTicks)
		if idx >= fileFrames || f.DTS != f.PTS || f.Codec != av.H264 {
			t.Fatalf("video frame %d: index %d, %+v", i, idx, f)
		}
		if i > 0 && f.PTS <= video[i-1].f.PTS {
			t.Fatalf("video frame %d: PTS %d not after %d", i, f.PTS, video[i-1].f.PTS)
		}
		if f.Key != (idx%fileGOP == 0) {
			t.Fatalf("video frame %d (file %d): Key %v", i, idx, f.Key)
		}
		if f.Key {
			keys++
		}
		if !slices.EqualFunc(f.NALUs, aus[idx], bytes.Equal) {
			t.Fatalf("video frame %d (file %d): NAL units differ", i, idx)
		}
	}
	if keys < fileFrames/fileGOP-1 {
		t.Fatalf("%d keyframes, want %d", keys, fileFrames/fileGOP)
	}

	audio := sink.track(TrackAudio)
	if len(audio) < len(opusPkts)-5 {
		t.Fatalf("received %d audio frames, want %d (±5)", len(audio), len(opusPkts))
	}
	if c := audio[0].cfg; c == nil || c.Codec != av.Opus || c.SampleRate != 48000 || c.Channels != 1 {
		t.Fatalf("first audio config %+v: want Opus 48 kHz mono", audio[0].cfg)
	}
	afirst := audio[0].f.PTS
	for i, fr := range audio {
		f := fr.f
		idx := int((f.PTS - afirst) / opusTicks90)
		if (f.PTS-afirst)%opusTicks90 != 0 || idx >= len(opusPkts) || !f.Key {
			t.Fatalf("audio frame %d: PTS %d (first %d)", i, f.PTS, afirst)
		}
		if i > 0 && f.PTS <= audio[i-1].f.PTS {
			t.Fatalf("audio frame %d: PTS %d not after %d", i, f.PTS, audio[i-1].f.PTS)
		}
		if !bytes.Equal(f.Data, opusPkts[idx]) {
			t.Fatalf("audio frame %d (packet %d): data differs", i, idx)
		}
	}
	// Both tracks start on one clock: the first frames are sent together.
	if d := afirst - first; d < -av.ClockRate/2 || d > av.ClockRate/2 {
		t.Fatalf("audio starts %d ticks from video: want within 0.5 s", d)
	}
}

// kickIngest hands out sinks that end their session from inside
// WriteFrame, as a moderation rule would: that must not deadlock with the
// reader calling WriteFrame.
type kickIngest struct{ fakeIngest }

func (k *kickIngest) StartPublish(s *PublishSession) (PublishSink, error) {
	sink, err := k.fakeIngest.StartPublish(s)
	return kickSink{sink.(*fakeSink), s}, err
}

type kickSink struct {
	*fakeSink
	s *PublishSession
}

func (k kickSink) WriteFrame(track string, f av.Frame, cfg *av.TrackConfig) {
	k.fakeSink.WriteFrame(track, f, cfg)
	k.s.Close("kicked by moderator")
}

func TestCloseFromSink(t *testing.T) {
	e := newTestEngine(t, 0)
	in := &kickIngest{}
	srv := testServer(t, NewHandler(e, in, nil))
	pc, err := clientAPI(t).NewPeerConnection(webrtc.Configuration{})
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	states := watchState(pc)
	at, err := webrtc.NewTrackLocalStaticSample(opusCap, "audio", "onair")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := pc.AddTrack(at); err != nil {
		t.Fatal(err)
	}
	offerAndPost(t, pc, srv.URL+"/live/k/whip")
	waitConnected(t, pc, states)
	_, sink := in.last()
	opusPkts := opusPackets(t)
	for i := 0; ; i++ {
		_ = at.WriteSample(media.Sample{Data: opusPkts[i%len(opusPkts)], Duration: 20 * time.Millisecond})
		select {
		case reason := <-sink.closed:
			if reason != "kicked by moderator" {
				t.Fatalf("reason %q", reason)
			}
			checkNoSessions(t, srv.Config.Handler.(*Handler))
			return
		case <-time.After(5 * time.Millisecond):
		}
		if i > 2000 {
			t.Fatal("session not closed after the sink closed it")
		}
	}
}
