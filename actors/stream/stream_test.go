package stream

import (
	"errors"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/onair/onair/actors"
	"github.com/onair/onair/actors/packager"
	"github.com/onair/onair/media/av"
)

// harness drives the behaviour with a virtual clock, the way sim will.
type harness struct {
	s   *Stream
	ctx *actors.Context
}

func newHarness() *harness {
	return &harness{
		s:   New("live/t", Config{Grace: 10 * time.Second}),
		ctx: &actors.Context{Now: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC), Self: "stream/live/t", Rand: rand.New(rand.NewPCG(7, 7))},
	}
}

func (h *harness) send(msg any) []actors.Effect { return h.s.Receive(h.ctx, msg) }

func (h *harness) advance(d time.Duration) { h.ctx.Now = h.ctx.Now.Add(d) }

func respond(t *testing.T, fx []actors.Effect) any {
	t.Helper()
	for _, e := range fx {
		if r, ok := e.(actors.Respond); ok {
			return r.Msg
		}
	}
	t.Fatal("no Respond effect")
	return nil
}

func frames(fx []actors.Effect) []packager.Frame {
	var out []packager.Frame
	for _, e := range fx {
		if s, ok := e.(actors.Send); ok {
			if f, ok := s.Msg.(packager.Frame); ok {
				out = append(out, f)
			}
		}
	}
	return out
}

func logged(fx []actors.Effect) []string {
	var out []string
	for _, e := range fx {
		if a, ok := e.(actors.Append); ok {
			for _, ev := range a.Events {
				out = append(out, ev.TypeName())
			}
		}
	}
	return out
}

func video(dts int64, key bool) av.Frame {
	return av.Frame{Codec: av.H264, DTS: dts, PTS: dts + 3000, Key: key, NALUs: [][]byte{{0x65}}}
}

func TestSecondPublisherConflicts(t *testing.T) {
	h := newHarness()
	if r := respond(t, h.send(Connect{PublisherID: "a", Protocol: "srt"})).(ConnectReply); r.Err != nil {
		t.Fatal(r.Err)
	}
	if err, _ := respond(t, h.send(CanPublish{})).(error); !errors.Is(err, ErrConflict) {
		t.Fatalf("CanPublish while live: %v", err)
	}
	if r := respond(t, h.send(Connect{PublisherID: "b"})).(ConnectReply); !errors.Is(r.Err, ErrConflict) {
		t.Fatalf("second Connect: %v", r.Err)
	}
}

// TestReconnectKeepsTimelineContinuous: a publisher that comes back with
// a different clock continues the same session, and its frames follow on
// from the last one without a jump.
func TestReconnectKeepsTimelineContinuous(t *testing.T) {
	h := newHarness()
	fx := h.send(Connect{PublisherID: "a"})
	if got := logged(fx); len(got) != 2 || got[0] != "stream.announced" || got[1] != "publisher.connected" {
		t.Fatalf("connect events %v", got)
	}
	session := h.s.session
	// Audio before the first keyframe and a non-key picture are held back.
	if len(frames(h.send(Frame{PublisherID: "a", Track: "video", Frame: video(500000, false)}))) != 0 {
		t.Fatal("a frame before the first keyframe was forwarded")
	}
	var last int64
	for i := int64(0); i < 60; i++ {
		out := frames(h.send(Frame{PublisherID: "a", Track: "video", Frame: video(900000+i*3000, i%30 == 0)}))
		if len(out) != 1 {
			t.Fatalf("frame %d not forwarded", i)
		}
		if out[0].Frame.DTS != i*3000 {
			t.Fatalf("frame %d at %d, want %d (timeline starts at 0)", i, out[0].Frame.DTS, i*3000)
		}
		last = out[0].Frame.DTS
	}
	fx = h.send(Gone{PublisherID: "a", Reason: "peer idle"})
	if got := logged(fx); len(got) != 1 || got[0] != "publisher.disconnected" {
		t.Fatalf("gone events %v", got)
	}
	if h.s.state != Grace {
		t.Fatalf("state %v, want grace", h.s.state)
	}
	h.advance(4 * time.Second)
	fx = h.send(Connect{PublisherID: "b"})
	if got := logged(fx); len(got) != 1 || got[0] != "publisher.connected" {
		t.Fatalf("reconnect events %v (a new session would announce)", got)
	}
	if h.s.session != session {
		t.Fatal("reconnect started a new session")
	}
	// The new encoder's clock starts somewhere else entirely.
	out := frames(h.send(Frame{PublisherID: "b", Track: "video", Frame: video(123, true)}))
	if len(out) != 1 || out[0].Frame.DTS != last+3000 {
		t.Fatalf("first frame after reconnect at %v, want %d", out, last+3000)
	}
	// Frames from the old publisher are dropped.
	if len(frames(h.send(Frame{PublisherID: "a", Track: "video", Frame: video(0, true)}))) != 0 {
		t.Fatal("frame from a replaced publisher forwarded")
	}
}

func TestGraceExpiryEndsStream(t *testing.T) {
	h := newHarness()
	h.send(Connect{PublisherID: "a"})
	fx := h.send(Gone{PublisherID: "a"})
	var timer actors.SetTimer
	for _, e := range fx {
		if st, ok := e.(actors.SetTimer); ok {
			timer = st
		}
	}
	if timer.After != 10*time.Second {
		t.Fatalf("grace timer %v", timer.After)
	}
	h.advance(timer.After)
	fx = h.send(timer.Msg)
	ended := false
	for _, e := range fx {
		if s, ok := e.(actors.Send); ok {
			if _, ok := s.Msg.(packager.End); ok {
				ended = true
			}
		}
	}
	if !ended || h.s.state != Idle {
		t.Fatalf("grace expiry: ended=%v state=%v", ended, h.s.state)
	}
	// A stale timer from an earlier session does nothing.
	if fx := h.send(timer.Msg); len(fx) != 0 {
		t.Fatalf("stale timer produced %v", fx)
	}
	// The name can go live again, as a new session.
	fx = h.send(Connect{PublisherID: "c"})
	if got := logged(fx); len(got) != 2 || got[0] != "stream.announced" {
		t.Fatalf("new session events %v", got)
	}
}

// TestDeterministic: the same inputs give the same effects, run after run.
func TestDeterministic(t *testing.T) {
	run := func() []string {
		h := newHarness()
		var log []string
		rec := func(fx []actors.Effect) {
			for _, e := range fx {
				log = append(log, fmtEffect(e))
			}
		}
		rec(h.send(Connect{PublisherID: "a"}))
		for i := int64(0); i < 10; i++ {
			rec(h.send(Frame{PublisherID: "a", Track: "video", Frame: video(i*3000, i == 0)}))
		}
		rec(h.send(Gone{PublisherID: "a"}))
		h.advance(11 * time.Second)
		rec(h.send(graceOver{Session: h.s.session}))
		return log
	}
	a, b := run(), run()
	if len(a) != len(b) {
		t.Fatalf("runs differ in length: %d vs %d", len(a), len(b))
	}
	for i := range a {
		if a[i] != b[i] {
			t.Fatalf("effect %d differs:\n%s\n%s", i, a[i], b[i])
		}
	}
}

func fmtEffect(e actors.Effect) string {
	switch e := e.(type) {
	case actors.Append:
		s := "append"
		for _, ev := range e.Events {
			s += " " + ev.String()
		}
		return s
	case actors.Send:
		return "send " + e.To
	}
	return "effect"
}

// TestAudioBeforeKeyframeDropped: audio sampled before the keyframe the
// timeline starts at would land before media time 0; it is dropped.
func TestAudioBeforeKeyframeDropped(t *testing.T) {
	h := newHarness()
	h.send(Connect{PublisherID: "a"})
	h.send(Frame{PublisherID: "a", Track: "video", Frame: video(90000, true)})
	aac := av.Frame{Codec: av.AAC, DTS: 90000 - 1920, PTS: 90000 - 1920, Key: true, Data: []byte{1}}
	if out := frames(h.send(Frame{PublisherID: "a", Track: "audio", Frame: aac})); len(out) != 0 {
		t.Fatalf("audio before the keyframe forwarded at %d", out[0].Frame.DTS)
	}
	aac.DTS, aac.PTS = 90000+1920, 90000+1920
	if out := frames(h.send(Frame{PublisherID: "a", Track: "audio", Frame: aac})); len(out) != 1 || out[0].Frame.DTS != 1920 {
		t.Fatalf("audio after the keyframe: %v", out)
	}
}

// TestConfigSurvivesDroppedFrames: the codec config arrives on the first
// frame of a track; when that frame is dropped (audio before the first
// keyframe) the config still reaches the packager with the next frame.
func TestConfigSurvivesDroppedFrames(t *testing.T) {
	h := newHarness()
	h.send(Connect{PublisherID: "a"})
	acfg := &av.TrackConfig{Codec: av.AAC, SampleRate: 48000, Channels: 2, AudioSpecificConfig: []byte{0x11, 0x90}}
	aac := av.Frame{Codec: av.AAC, DTS: 1000, PTS: 1000, Key: true, Data: []byte{1}}
	if out := frames(h.send(Frame{PublisherID: "a", Track: "audio", Frame: aac, Config: acfg})); len(out) != 0 {
		t.Fatal("audio before the first keyframe forwarded")
	}
	h.send(Frame{PublisherID: "a", Track: "video", Frame: video(5000, true), Config: &av.TrackConfig{Codec: av.H264}})
	aac.DTS, aac.PTS = 6000, 6000
	out := frames(h.send(Frame{PublisherID: "a", Track: "audio", Frame: aac}))
	if len(out) != 1 || out[0].Config != acfg {
		t.Fatalf("first forwarded audio frame lacks its config: %+v", out)
	}
	aac.DTS, aac.PTS = 7920, 7920
	if out := frames(h.send(Frame{PublisherID: "a", Track: "audio", Frame: aac})); len(out) != 1 || out[0].Config != nil {
		t.Fatal("config repeated on later frames")
	}
}
