package rtpfwd

import (
	"cmp"
	"fmt"
	"net"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/pion/ice/v4"
	"github.com/pion/interceptor"
	"github.com/pion/rtcp"
	"github.com/pion/rtp"
	"github.com/pion/webrtc/v4"

	"github.com/onair/onair/media/av"
	"github.com/onair/onair/media/h264"
	"github.com/onair/onair/media/opus"
)

// waitFor bounds how long a test waits for packets on loopback; it only
// turns a hang into a failure, no result depends on it.
const waitFor = 20 * time.Second

// newAPI returns a pion API on 127.0.0.1 only: UDP4 host candidates on the
// loopback interface, no mDNS, default codecs and interceptors (NACK,
// reports, TWCC), like a server and a browser would use.
func newAPI(t testing.TB) *webrtc.API {
	t.Helper()
	api, err := loopbackAPI()
	if err != nil {
		t.Fatal(err)
	}
	return api
}

func loopbackAPI() (*webrtc.API, error) {
	var se webrtc.SettingEngine
	se.SetNetworkTypes([]webrtc.NetworkType{webrtc.NetworkTypeUDP4})
	se.SetICEMulticastDNSMode(ice.MulticastDNSModeDisabled)
	se.SetIncludeLoopbackCandidate(true)
	se.SetIPFilter(func(ip net.IP) bool { return ip.Equal(net.IPv4(127, 0, 0, 1)) })
	m := &webrtc.MediaEngine{}
	if err := m.RegisterDefaultCodecs(); err != nil {
		return nil, err
	}
	ir := &interceptor.Registry{}
	if err := webrtc.RegisterDefaultInterceptors(m, ir); err != nil {
		return nil, err
	}
	return webrtc.NewAPI(webrtc.WithSettingEngine(se), webrtc.WithMediaEngine(m), webrtc.WithInterceptorRegistry(ir)), nil
}

// viewer is a receiving PeerConnection and what it got, per track kind.
type viewer struct {
	pc, server *webrtc.PeerConnection
	senders    []*webrtc.RTPSender

	mu      sync.Mutex
	changed *sync.Cond
	pkts    map[webrtc.RTPCodecType][]*rtp.Packet
	ssrc    map[webrtc.RTPCodecType]webrtc.SSRC
}

// connect negotiates a viewer (offerer, recvonly, as in WHEP) with a server
// PeerConnection that adds the forwarders, reads their RTCP with ReadRTCP,
// and returns once both PeerConnections are connected.
func connect(t testing.TB, api *webrtc.API, fwds ...*Forwarder) *viewer {
	t.Helper()
	v := &viewer{pkts: map[webrtc.RTPCodecType][]*rtp.Packet{}, ssrc: map[webrtc.RTPCodecType]webrtc.SSRC{}}
	v.changed = sync.NewCond(&v.mu)
	var err error
	if v.pc, err = api.NewPeerConnection(webrtc.Configuration{}); err != nil {
		t.Fatal(err)
	}
	if v.server, err = api.NewPeerConnection(webrtc.Configuration{}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = v.pc.Close()
		_ = v.server.Close()
	})
	for _, f := range fwds {
		if _, err := v.pc.AddTransceiverFromKind(f.Kind(), webrtc.RTPTransceiverInit{Direction: webrtc.RTPTransceiverDirectionRecvonly}); err != nil {
			t.Fatal(err)
		}
	}
	v.pc.OnTrack(func(tr *webrtc.TrackRemote, _ *webrtc.RTPReceiver) {
		v.mu.Lock()
		v.ssrc[tr.Kind()] = tr.SSRC()
		v.mu.Unlock()
		for {
			p, _, err := tr.ReadRTP()
			if err != nil {
				return
			}
			v.mu.Lock()
			v.pkts[tr.Kind()] = append(v.pkts[tr.Kind()], p)
			v.changed.Broadcast()
			v.mu.Unlock()
		}
	})
	connected := make(chan struct{}, 2)
	for _, pc := range []*webrtc.PeerConnection{v.pc, v.server} {
		pc.OnConnectionStateChange(func(s webrtc.PeerConnectionState) {
			if s == webrtc.PeerConnectionStateConnected {
				connected <- struct{}{}
			}
		})
	}

	offer, err := v.pc.CreateOffer(nil)
	if err != nil {
		t.Fatal(err)
	}
	gathered := webrtc.GatheringCompletePromise(v.pc)
	if err := v.pc.SetLocalDescription(offer); err != nil {
		t.Fatal(err)
	}
	<-gathered

	for _, f := range fwds {
		s, err := v.server.AddTrack(f)
		if err != nil {
			t.Fatal(err)
		}
		v.senders = append(v.senders, s)
		go func() { _ = ReadRTCP(s, f) }()
	}
	if err := v.server.SetRemoteDescription(*v.pc.LocalDescription()); err != nil {
		t.Fatal(err)
	}
	answer, err := v.server.CreateAnswer(nil)
	if err != nil {
		t.Fatal(err)
	}
	gathered = webrtc.GatheringCompletePromise(v.server)
	if err := v.server.SetLocalDescription(answer); err != nil {
		t.Fatal(err)
	}
	<-gathered
	if err := v.pc.SetRemoteDescription(*v.server.LocalDescription()); err != nil {
		t.Fatal(err)
	}
	for range 2 {
		select {
		case <-connected:
		case <-time.After(waitFor):
			t.Fatal("PeerConnections did not connect over 127.0.0.1")
		}
	}
	return v
}

// waitReady probes until n bindings of f have SRTP up.
func waitReady(t testing.TB, f *Forwarder, n int) {
	t.Helper()
	deadline := time.Now().Add(waitFor)
	for f.probeAll() < n {
		if time.Now().After(deadline) {
			t.Fatalf("only %d of %d viewers got SRTP up", f.probeAll(), n)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// count is how many frames of kind v has received: marker bits for video,
// packets with payload for audio.
func (v *viewer) count(kind webrtc.RTPCodecType) int {
	n := 0
	for _, p := range v.pkts[kind] {
		if len(p.Payload) > 0 && (p.Marker || kind == webrtc.RTPCodecTypeAudio) {
			n++
		}
	}
	return n
}

// waitCount waits until v has received n frames of kind; it paces the
// tests so no loopback socket buffer overflows.
func (v *viewer) waitCount(t testing.TB, kind webrtc.RTPCodecType, n int) {
	t.Helper()
	v.waitUntil(t, func() bool { return v.count(kind) >= n },
		func() string { return fmt.Sprintf("viewer got %d %v frames, want %d", v.count(kind), kind, n) })
}

// waitUntil waits, holding v.mu while it checks, until ok is true.
func (v *viewer) waitUntil(t testing.TB, ok func() bool, failure func() string) {
	t.Helper()
	timer := time.AfterFunc(waitFor, func() {
		v.mu.Lock()
		v.changed.Broadcast()
		v.mu.Unlock()
	})
	defer timer.Stop()
	deadline := time.Now().Add(waitFor)
	v.mu.Lock()
	defer v.mu.Unlock()
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatal(failure())
		}
		v.changed.Wait()
	}
}

// packets returns what v received of kind in sequence order, duplicates
// (NACK retransmissions) dropped.
func (v *viewer) packets(kind webrtc.RTPCodecType) []*rtp.Packet {
	v.mu.Lock()
	pkts := slices.Clone(v.pkts[kind])
	v.mu.Unlock()
	if len(pkts) == 0 {
		return nil
	}
	base := pkts[0].SequenceNumber
	key := func(p *rtp.Packet) uint16 { return p.SequenceNumber - base }
	slices.SortStableFunc(pkts, func(a, b *rtp.Packet) int { return cmp.Compare(key(a), key(b)) })
	return slices.CompactFunc(pkts, func(a, b *rtp.Packet) bool { return a.SequenceNumber == b.SequenceNumber })
}

// TestLoopbackViewers sends the clip twice (a publisher reconnect: PTS
// continues, the forwarder stays) to 1 and to 20 real PeerConnections and
// checks every viewer decodes every frame, byte for byte, with gap-free
// sequence numbers and timestamps that follow PTS.
func TestLoopbackViewers(t *testing.T) {
	for _, n := range []int{1, 20} {
		t.Run(fmt.Sprint(n), func(t *testing.T) {
			api := newAPI(t)
			clip := loadH264(t, "testdata/gop.h264", 0)
			frames := append(clip, loadH264(t, "testdata/gop.h264", int64(len(clip))*frameDuration)...)
			cfg, _ := h264.Config(clip[0].NALUs)

			f, err := NewVideo("video", "live/test", av.H264)
			if err != nil {
				t.Fatal(err)
			}
			viewers := make([]*viewer, n)
			for i := range viewers {
				viewers[i] = connect(t, api, f)
			}
			if f.Viewers() != n {
				t.Fatalf("Viewers() = %d, want %d", f.Viewers(), n)
			}
			waitReady(t, f, n)
			for i, fr := range frames {
				if err := f.WriteFrame(fr, &cfg); err != nil {
					t.Fatal(err)
				}
				for _, v := range viewers {
					v.waitCount(t, webrtc.RTPCodecTypeVideo, i+1)
				}
			}
			for i, v := range viewers {
				name := fmt.Sprint("viewer ", i)
				pkts := v.packets(webrtc.RTPCodecTypeVideo)
				checkSeq(t, name, pkts)
				checkFrames(t, name, media(pkts), frames, 0, cfg.SPS, cfg.PPS)
			}
		})
	}
}

// TestLoopbackJoinMidGOP: a viewer that joins at frame 10 gets nothing but
// the probe until the IDR at frame 30, then every frame; joining and a PLI
// from a viewer ask the publisher for a keyframe, at most every 500 ms.
func TestLoopbackJoinMidGOP(t *testing.T) {
	api := newAPI(t)
	frames := loadH264(t, "testdata/gop.h264", 0)
	cfg, _ := h264.Config(frames[0].NALUs)
	var clock fakeClock
	clock.Set(0)
	f, _ := NewVideo("video", "live/test", av.H264)
	f.now = clock.Now
	var mu sync.Mutex
	requests := 0
	pli := make(chan struct{}, 1)
	f.OnKeyframeRequest(func() {
		mu.Lock()
		requests++
		mu.Unlock()
		select {
		case pli <- struct{}{}:
		default:
		}
	})
	nreq := func() int {
		mu.Lock()
		defer mu.Unlock()
		return requests
	}

	a := connect(t, api, f)
	waitReady(t, f, 1)
	var b *viewer
	for i, fr := range frames {
		clock.Set(time.Duration(i) * 40 * time.Millisecond)
		if i == 10 {
			b = connect(t, api, f)
			waitReady(t, f, 2)
		}
		if err := f.WriteFrame(fr, &cfg); err != nil {
			t.Fatal(err)
		}
		a.waitCount(t, webrtc.RTPCodecTypeVideo, i+1)
		if i >= 30 {
			b.waitCount(t, webrtc.RTPCodecTypeVideo, i-29)
		}
		if i == 29 {
			// The probe may still be on its way; any P-frame sent to b
			// would also fail checkFrames below.
			b.waitUntil(t, func() bool { return len(b.pkts[webrtc.RTPCodecTypeVideo]) > 0 },
				func() string { return "mid-GOP viewer never got the probe" })
			if got := b.packets(webrtc.RTPCodecTypeVideo); len(got) != 1 || len(got[0].Payload) != 0 {
				t.Fatalf("mid-GOP viewer got %d packets before the IDR, want only the empty probe", len(got))
			}
		}
	}
	checkFrames(t, "a", media(a.packets(webrtc.RTPCodecTypeVideo)), frames, 0, cfg.SPS, cfg.PPS)
	bp := b.packets(webrtc.RTPCodecTypeVideo)
	checkSeq(t, "b", bp)
	checkFrames(t, "b", media(bp), frames, 30, cfg.SPS, cfg.PPS)
	// a joins at 0 ms; b joins at 400 ms (within 500 ms: no request) and
	// waits from frame 10: requests at frames 13 (520 ms) and 26 (1040 ms).
	if got := nreq(); got != 3 {
		t.Fatalf("%d keyframe requests, want 3", got)
	}

	// A PLI from a viewer, read by ReadRTCP, asks for a keyframe.
	for len(pli) > 0 {
		<-pli
	}
	clock.Set(time.Hour)
	b.mu.Lock()
	ssrc := b.ssrc[webrtc.RTPCodecTypeVideo]
	b.mu.Unlock()
	if err := b.pc.WriteRTCP([]rtcp.Packet{&rtcp.PictureLossIndication{MediaSSRC: uint32(ssrc)}}); err != nil {
		t.Fatal(err)
	}
	select {
	case <-pli:
	case <-time.After(waitFor):
		t.Fatal("a viewer's PLI did not reach OnKeyframeRequest")
	}
}

// TestLoopbackOpus sends Opus next to video on one PeerConnection: one
// packet per frame, payloads intact, timestamps PTS*8/15.
func TestLoopbackOpus(t *testing.T) {
	api := newAPI(t)
	vf, _ := NewVideo("video", "live/test", av.H264)
	af, _ := NewAudio("audio", "live/test", av.Opus)
	v := connect(t, api, vf, af)
	waitReady(t, vf, 1) // one DTLS transport (BUNDLE): SRTP is up for audio too

	pkts := loadOpus(t)
	pts0 := int64(1 << 33) // past a 33-bit MPEG-TS wrap, as the stream unwraps it
	for i, p := range pkts {
		if d := opus.PacketDuration(p); d != 960 {
			t.Fatalf("fixture: packet %d lasts %d samples, want 960", i, d)
		}
		pts := pts0 + int64(i)*1800
		if err := af.WriteFrame(av.Frame{Codec: av.Opus, PTS: pts, DTS: pts, Key: true, Data: p}, nil); err != nil {
			t.Fatal(err)
		}
		v.waitCount(t, webrtc.RTPCodecTypeAudio, i+1)
	}
	checkOpus(t, v.packets(webrtc.RTPCodecTypeAudio), pkts, pts0, af.tsOffset)
}
