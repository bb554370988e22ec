package main

import (
	"encoding/binary"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pion/ice/v4"
	"github.com/pion/interceptor"
	"github.com/pion/rtcp"
	pion "github.com/pion/webrtc/v4"
)

// lossyConn is the viewer's UDP socket on a link that loses the first
// copy of every nth video packet. It sits below SRTP, like a real network:
// a loss injected above SRTP (in an interceptor) is not a loss to SRTP,
// whose replay protection then rejects the retransmission, which carries
// the same SSRC and sequence number, as a replay. SRTP leaves the RTP
// header in the clear, so the sequence number can be read here.
type lossyConn struct {
	net.PacketConn
	every int
	pt    uint8

	mu      sync.Mutex
	n       int
	seen    map[uint16]bool
	dropped map[uint16]bool
	resent  int // dropped sequence numbers that arrived again
}

func (c *lossyConn) ReadFrom(b []byte) (int, net.Addr, error) {
	for {
		n, addr, err := c.PacketConn.ReadFrom(b)
		if err != nil || !c.lose(b[:n]) {
			return n, addr, err
		}
	}
}

// lose reports whether to drop p. RTP has version 2 in the top bits of
// the first byte (STUN and DTLS do not, RFC 7983); RTCP's packet types
// never match the video payload type.
func (c *lossyConn) lose(p []byte) bool {
	if len(p) < 12 || p[0]>>6 != 2 || p[1]&0x7f != c.pt {
		return false
	}
	seq := binary.BigEndian.Uint16(p[2:4])
	c.mu.Lock()
	defer c.mu.Unlock()
	switch {
	case c.dropped[seq]:
		c.resent++
	case !c.seen[seq]:
		c.seen[seq] = true
		c.n++
		if c.n%c.every == 0 {
			c.dropped[seq] = true
			return true
		}
	}
	return false
}

func (c *lossyConn) counts() (dropped, resent int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.dropped), c.resent
}

// nackCounter is a viewer interceptor registered before pion's defaults,
// so it is the innermost RTCP writer and sees every NACK the generator
// sends.
type nackCounter struct {
	interceptor.NoOp
	mu         sync.Mutex
	pkts, seqs int
}

func (c *nackCounter) NewInterceptor(string) (interceptor.Interceptor, error) { return c, nil }

func (c *nackCounter) BindRTCPWriter(w interceptor.RTCPWriter) interceptor.RTCPWriter {
	return interceptor.RTCPWriterFunc(func(pkts []rtcp.Packet, a interceptor.Attributes) (int, error) {
		c.mu.Lock()
		for _, p := range pkts {
			if nack, ok := p.(*rtcp.TransportLayerNack); ok {
				c.pkts++
				for _, pair := range nack.Nacks {
					c.seqs += len(pair.PacketList())
				}
			}
		}
		c.mu.Unlock()
		return w.Write(pkts, a)
	})
}

func (c *nackCounter) counts() (pkts, seqs int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.pkts, c.seqs
}

// seqSet records the sequence numbers the application reads, unwrapped.
type seqSet struct {
	mu     sync.Mutex
	got    map[int64]bool
	last   uint16
	cycles int64
	max    int64
	min    int64
}

func (s *seqSet) add(seq uint16) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.got == nil {
		s.got = map[int64]bool{}
		s.last = seq
		s.min, s.max = int64(seq), int64(seq)
	}
	if seq < s.last && s.last-seq > 1<<15 {
		s.cycles++
	} else if seq > s.last && seq-s.last > 1<<15 {
		// a late packet from before a wrap
		s.got[(s.cycles-1)<<16+int64(seq)] = true
		return
	}
	s.last = seq
	v := s.cycles<<16 + int64(seq)
	s.got[v] = true
	s.min, s.max = min(s.min, v), max(s.max, v)
}

// ratio is the share of sequence numbers received from the first to
// margin packets before the newest: older ones have had time to be resent.
func (s *seqSet) ratio(margin int64) (got, span int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for v := s.min; v <= s.max-margin; v++ {
		span++
		if s.got[v] {
			got++
		}
	}
	return got, span
}

// TestWHEPRecoversLossWithNACK: a WHEP viewer on a link that loses every
// 10th video packet asks for them with NACKs, and the server resends them
// from its history, so the viewer ends up with (almost) every packet.
func TestWHEPRecoversLossWithNACK(t *testing.T) {
	requireTools(t)
	t.Parallel()
	s := startServer(t, t.TempDir())
	publish(t, s, pubOpts{streamID: "publish:live/lossy"})
	waitPlaylist(t, s.url("/live/lossy/video.m3u8"), 1, 30*time.Second)

	m := &pion.MediaEngine{}
	if err := m.RegisterCodec(pion.RTPCodecParameters{
		RTPCodecCapability: pion.RTPCodecCapability{
			MimeType: pion.MimeTypeH264, ClockRate: 90000,
			SDPFmtpLine: "level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42e01f",
		},
		PayloadType: 102,
	}, pion.RTPCodecTypeVideo); err != nil {
		t.Fatal(err)
	}
	nacks := &nackCounter{}
	ir := &interceptor.Registry{}
	ir.Add(nacks) // first: innermost
	if err := pion.RegisterDefaultInterceptors(m, ir); err != nil {
		t.Fatal(err)
	}
	udp, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	link := &lossyConn{PacketConn: udp, every: 10, pt: 102, seen: map[uint16]bool{}, dropped: map[uint16]bool{}}
	mux := pion.NewICEUDPMux(nil, link)
	t.Cleanup(func() { mux.Close() })
	var se pion.SettingEngine
	se.SetICEUDPMux(mux)
	se.SetIncludeLoopbackCandidate(true)
	se.SetNetworkTypes([]pion.NetworkType{pion.NetworkTypeUDP4})
	se.SetICEMulticastDNSMode(ice.MulticastDNSModeDisabled)
	pc, err := pion.NewAPI(pion.WithMediaEngine(m), pion.WithInterceptorRegistry(ir), pion.WithSettingEngine(se)).NewPeerConnection(pion.Configuration{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pc.Close() })
	if _, err := pc.AddTransceiverFromKind(pion.RTPCodecTypeVideo,
		pion.RTPTransceiverInit{Direction: pion.RTPTransceiverDirectionRecvonly}); err != nil {
		t.Fatal(err)
	}
	var seqs seqSet
	pc.OnTrack(func(tr *pion.TrackRemote, _ *pion.RTPReceiver) {
		for {
			p, _, err := tr.ReadRTP()
			if err != nil {
				return
			}
			seqs.add(p.SequenceNumber)
		}
	})
	offer, err := pc.CreateOffer(nil)
	if err != nil {
		t.Fatal(err)
	}
	gathered := pion.GatheringCompletePromise(pc)
	if err := pc.SetLocalDescription(offer); err != nil {
		t.Fatal(err)
	}
	<-gathered
	resp, err := http.Post(s.url("/live/lossy/whep"), "application/sdp", strings.NewReader(pc.LocalDescription().SDP))
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("WHEP POST: %d %s", resp.StatusCode, body)
	}
	if !strings.Contains(string(body), "a=rtcp-fb:102 nack\r\n") {
		t.Fatalf("the answer does not offer NACK for H.264:\n%s", body)
	}
	if err := pc.SetRemoteDescription(pion.SessionDescription{Type: pion.SDPTypeAnswer, SDP: string(body)}); err != nil {
		t.Fatal(err)
	}

	// Wait for a few seconds of video: at 30 fps that is well over a
	// thousand packets, so a tenth lost for good shows clearly.
	const margin = 60
	deadline := time.Now().Add(30 * time.Second)
	for {
		if _, span := seqs.ratio(margin); span >= 1000 {
			break
		}
		if time.Now().After(deadline) {
			_, span := seqs.ratio(margin)
			t.Fatalf("only %d video packets after 30 s", span)
		}
		time.Sleep(100 * time.Millisecond)
	}
	got, span := seqs.ratio(margin)
	dropped, resent := link.counts()
	nackPkts, nackSeqs := nacks.counts()
	ratio := float64(got) / float64(span)
	t.Logf("received %d of %d sequence numbers (%.1f%%); dropped %d, sent %d NACKs for %d packets, %d resent",
		got, span, 100*ratio, dropped, nackPkts, nackSeqs, resent)
	if ratio < 0.97 {
		t.Errorf("viewer got %.1f%% of the packets, want >= 97%%: lost packets are not resent", 100*ratio)
	}
}
