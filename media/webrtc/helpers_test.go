package webrtc

import (
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pion/ice/v4"
	"github.com/pion/interceptor"
	"github.com/pion/webrtc/v4"

	"github.com/onair/onair/media/av"
)

const h264Fmtp = "level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42e01f"

var (
	h264Cap = webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeH264, ClockRate: 90000, SDPFmtpLine: h264Fmtp}
	opusCap = webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeOpus, ClockRate: 48000, Channels: 2, SDPFmtpLine: "minptime=10;useinbandfec=1"}
)

func testLogger() *slog.Logger {
	if testing.Verbose() {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

// newTestEngine binds free loopback ports.
func newTestEngine(t *testing.T, timeout time.Duration) *Engine {
	t.Helper()
	e, err := NewEngine(Config{
		UDPAddr:        "127.0.0.1:0",
		TCPAddr:        "127.0.0.1:0",
		ConnectTimeout: timeout,
		ICEServers: []ICEServer{
			{URLs: []string{"stun:stun.example.net:3478"}},
			{URLs: []string{"turn:turn.example.net:3478?transport=udp"}, Username: "user", Credential: `pa"ss`},
		},
		Logger: testLogger(),
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = e.Close() })
	return e
}

// testServer serves h on a loopback httptest server.
func testServer(t *testing.T, h *Handler) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(h)
	t.Cleanup(func() {
		h.Close()
		srv.Close()
	})
	return srv
}

// clientAPI is a browser stand-in: its own pion API with default
// interceptors, loopback only, no mDNS. opts are network types (UDP4 if
// none) and interceptor factories registered below the defaults.
func clientAPI(t *testing.T, opts ...any) *webrtc.API {
	t.Helper()
	m := &webrtc.MediaEngine{}
	fb := []webrtc.RTCPFeedback{{Type: "nack"}, {Type: "nack", Parameter: "pli"}, {Type: "ccm", Parameter: "fir"}}
	// VP8 first, like a browser: the server must pick H.264.
	for _, c := range []webrtc.RTPCodecParameters{
		{RTPCodecCapability: webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeVP8, ClockRate: 90000, RTCPFeedback: fb}, PayloadType: 96},
		{RTPCodecCapability: webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeH264, ClockRate: 90000, SDPFmtpLine: h264Fmtp, RTCPFeedback: fb}, PayloadType: 106},
	} {
		if err := m.RegisterCodec(c, webrtc.RTPCodecTypeVideo); err != nil {
			t.Fatal(err)
		}
	}
	if err := m.RegisterCodec(webrtc.RTPCodecParameters{RTPCodecCapability: opusCap, PayloadType: 111}, webrtc.RTPCodecTypeAudio); err != nil {
		t.Fatal(err)
	}
	ir := &interceptor.Registry{}
	var networks []webrtc.NetworkType
	for _, o := range opts {
		switch o := o.(type) {
		case webrtc.NetworkType:
			networks = append(networks, o)
		case interceptor.Factory:
			ir.Add(o)
		}
	}
	if err := webrtc.RegisterDefaultInterceptors(m, ir); err != nil {
		t.Fatal(err)
	}
	s := webrtc.SettingEngine{}
	s.SetIncludeLoopbackCandidate(true)
	if len(networks) == 0 {
		networks = []webrtc.NetworkType{webrtc.NetworkTypeUDP4}
	}
	s.SetNetworkTypes(networks)
	s.SetIPFilter(func(ip net.IP) bool { return ip.IsLoopback() })
	s.SetICEMulticastDNSMode(ice.MulticastDNSModeDisabled)
	return webrtc.NewAPI(webrtc.WithMediaEngine(m), webrtc.WithInterceptorRegistry(ir), webrtc.WithSettingEngine(s))
}

// offerAndPost creates pc's offer with all candidates, POSTs it and
// applies the answer. It returns the response (body already read).
func offerAndPost(t *testing.T, pc *webrtc.PeerConnection, url string) (*http.Response, string) {
	t.Helper()
	offer, err := pc.CreateOffer(nil)
	if err != nil {
		t.Fatal(err)
	}
	gathered := webrtc.GatheringCompletePromise(pc)
	if err := pc.SetLocalDescription(offer); err != nil {
		t.Fatal(err)
	}
	<-gathered
	resp, body := do(t, http.MethodPost, url, "application/sdp", pc.LocalDescription().SDP, nil)
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("POST %s: %d %s", url, resp.StatusCode, body)
	}
	if err := pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeAnswer, SDP: body}); err != nil {
		t.Fatalf("apply answer: %v\n%s", err, body)
	}
	return resp, body
}

// do sends one request and returns the response and its body.
func do(t *testing.T, method, url, contentType, body string, hdr map[string]string) (*http.Response, string) {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		t.Fatal(err)
	}
	return resp, string(b)
}

// waitConnected waits for pc to connect.
func waitConnected(t *testing.T, pc *webrtc.PeerConnection, states <-chan webrtc.PeerConnectionState) {
	t.Helper()
	deadline := time.After(10 * time.Second)
	for {
		select {
		case s := <-states:
			switch s {
			case webrtc.PeerConnectionStateConnected:
				return
			case webrtc.PeerConnectionStateFailed, webrtc.PeerConnectionStateClosed:
				t.Fatalf("client connection %s", s)
			}
		case <-deadline:
			t.Fatalf("client not connected after 10 s (state %s)", pc.ConnectionState())
		}
	}
}

func watchState(pc *webrtc.PeerConnection) <-chan webrtc.PeerConnectionState {
	ch := make(chan webrtc.PeerConnectionState, 16)
	pc.OnConnectionStateChange(func(s webrtc.PeerConnectionState) {
		select {
		case ch <- s:
		default:
		}
	})
	return ch
}

// eventually polls cond for up to 10 s.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// fakeIngest records publish sessions and their frames.
type fakeIngest struct {
	mu       sync.Mutex
	refuse   error
	sessions []*PublishSession
	sinks    []*fakeSink
}

func (f *fakeIngest) StartPublish(s *PublishSession) (PublishSink, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.refuse != nil {
		return nil, f.refuse
	}
	sink := &fakeSink{closed: make(chan string, 1)}
	f.sessions = append(f.sessions, s)
	f.sinks = append(f.sinks, sink)
	return sink, nil
}

func (f *fakeIngest) last() (*PublishSession, *fakeSink) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.sinks) == 0 {
		return nil, nil
	}
	return f.sessions[len(f.sessions)-1], f.sinks[len(f.sinks)-1]
}

type sinkFrame struct {
	track string
	f     av.Frame
	cfg   *av.TrackConfig
}

type fakeSink struct {
	mu       sync.Mutex
	frames   []sinkFrame
	inCall   bool
	overlaps int
	closes   int
	closed   chan string
}

func (s *fakeSink) WriteFrame(track string, f av.Frame, cfg *av.TrackConfig) {
	s.mu.Lock()
	if s.inCall {
		s.overlaps++
	}
	s.inCall = true
	s.mu.Unlock()
	time.Sleep(10 * time.Microsecond) // widen the window an overlap would need
	s.mu.Lock()
	s.frames = append(s.frames, sinkFrame{track, f, cfg})
	s.inCall = false
	s.mu.Unlock()
}

func (s *fakeSink) Close(reason string) {
	s.mu.Lock()
	s.closes++
	s.mu.Unlock()
	select {
	case s.closed <- reason:
	default:
	}
}

func (s *fakeSink) track(name string) []sinkFrame {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []sinkFrame
	for _, f := range s.frames {
		if f.track == name {
			out = append(out, f)
		}
	}
	return out
}

// fakePlayback serves one PlaySource to every viewer.
type fakePlayback struct {
	mu     sync.Mutex
	refuse error
	src    PlaySource
	closed chan string
	plays  []*PlaySession
}

func (f *fakePlayback) StartPlay(s *PlaySession) (PlaySource, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.refuse != nil {
		return PlaySource{}, f.refuse
	}
	f.plays = append(f.plays, s)
	src := f.src
	src.OnClose = func(reason string) {
		select {
		case f.closed <- reason:
		default:
		}
	}
	return src, nil
}

// handOffer is a minimal browser-like offer with no candidates (the peer
// never does ICE). dir is sendonly (WHIP) or recvonly (WHEP).
func handOffer(dir, videoCodecs string) string {
	fp := strings.TrimSuffix(strings.Repeat("AB:", 32), ":")
	var b strings.Builder
	w := func(s string, args ...any) { fmt.Fprintf(&b, s+"\r\n", args...) }
	w("v=0")
	w("o=- 4611731400430051336 2 IN IP4 127.0.0.1")
	w("s=-")
	w("t=0 0")
	w("a=group:BUNDLE 0 1")
	w("a=msid-semantic: WMS")
	media := func(mid int, m, pts string, lines ...string) {
		w("m=%s 9 UDP/TLS/RTP/SAVPF %s", m, pts)
		w("c=IN IP4 0.0.0.0")
		w("a=rtcp:9 IN IP4 0.0.0.0")
		w("a=ice-ufrag:EsAw")
		w("a=ice-pwd:bP+XJMM09aR8AiX1jdukzR6Y")
		w("a=ice-options:trickle")
		w("a=fingerprint:sha-256 %s", fp)
		w("a=setup:actpass")
		w("a=mid:%d", mid)
		w("a=%s", dir)
		w("a=msid:- track%d", mid)
		w("a=rtcp-mux")
		for _, l := range lines {
			w("%s", l)
		}
	}
	media(0, "audio", "111", "a=rtpmap:111 opus/48000/2", "a=fmtp:111 minptime=10;useinbandfec=1")
	switch videoCodecs {
	case "vp8":
		media(1, "video", "96", "a=rtpmap:96 VP8/90000")
	default:
		media(1, "video", "96 106", "a=rtpmap:96 VP8/90000", "a=rtpmap:106 H264/90000",
			"a=fmtp:106 "+h264Fmtp, "a=rtcp-fb:106 nack", "a=rtcp-fb:106 nack pli")
	}
	return b.String()
}

func mustTrack(t *testing.T, c webrtc.RTPCodecCapability) *webrtc.TrackLocalStaticRTP {
	t.Helper()
	kind := "video"
	if c.MimeType == webrtc.MimeTypeOpus {
		kind = "audio"
	}
	tr, err := webrtc.NewTrackLocalStaticRTP(c, kind, "onair")
	if err != nil {
		t.Fatal(err)
	}
	return tr
}
