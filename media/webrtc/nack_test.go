package webrtc

import (
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pion/interceptor"
	"github.com/pion/rtcp"
	"github.com/pion/rtp"
	"github.com/pion/webrtc/v4"
	"github.com/pion/webrtc/v4/pkg/media"
)

// dropOnce is a client interceptor that loses the first transmission of
// the nth H.264 packet, below the client's NACK responder, so only a
// retransmission asked for by the server can bring it back.
type dropOnce struct {
	interceptor.NoOp
	nth     int
	mu      sync.Mutex
	n       int
	dropped int32 // sequence number lost, -1 before
	seen    map[uint16]bool
}

func (d *dropOnce) NewInterceptor(string) (interceptor.Interceptor, error) { return d, nil }

func (d *dropOnce) BindLocalStream(info *interceptor.StreamInfo, w interceptor.RTPWriter) interceptor.RTPWriter {
	if !strings.EqualFold(info.MimeType, webrtc.MimeTypeH264) {
		return w
	}
	return interceptor.RTPWriterFunc(func(h *rtp.Header, payload []byte, a interceptor.Attributes) (int, error) {
		d.mu.Lock()
		first := !d.seen[h.SequenceNumber]
		d.seen[h.SequenceNumber] = true
		if first {
			d.n++
		}
		drop := first && d.n == d.nth
		if drop {
			d.dropped = int32(h.SequenceNumber)
		}
		d.mu.Unlock()
		if drop {
			return len(payload), nil
		}
		return w.Write(h, payload, a)
	})
}

// TestWHIPNackRecovers loses one video packet on the way in: the server's
// NACK generator asks for it, the client resends it, and the reorder
// buffer puts it back, so every frame arrives and no keyframe is needed.
// Sent at real-time pace: the retransmission must come within the 0.4 s
// the reorder buffer waits (on loopback it takes about 100 ms, the NACK
// interval).
func TestWHIPNackRecovers(t *testing.T) {
	aus := accessUnits(t)
	e := newTestEngine(t, 0)
	in := &fakeIngest{}
	srv := testServer(t, NewHandler(e, in, nil))

	drop := &dropOnce{nth: 60, dropped: -1, seen: map[uint16]bool{}}
	pc, err := clientAPI(t, drop).NewPeerConnection(webrtc.Configuration{})
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	states := watchState(pc)
	vt, err := webrtc.NewTrackLocalStaticSample(h264Cap, "video", "onair")
	if err != nil {
		t.Fatal(err)
	}
	sender, err := pc.AddTrack(vt)
	if err != nil {
		t.Fatal(err)
	}
	var nacked atomic.Int32
	nacked.Store(-1)
	go func() {
		for {
			pkts, _, err := sender.ReadRTCP()
			if err != nil {
				return
			}
			for _, p := range pkts {
				if n, ok := p.(*rtcp.TransportLayerNack); ok {
					for _, pair := range n.Nacks {
						for _, s := range pair.PacketList() {
							nacked.Store(int32(s))
						}
					}
				}
			}
		}
	}()
	offerAndPost(t, pc, srv.URL+"/live/n/whip")
	waitConnected(t, pc, states)
	_, sink := in.last()

	tick := time.NewTicker(time.Second / 30)
	defer tick.Stop()
	for _, au := range aus {
		<-tick.C
		if err := vt.WriteSample(media.Sample{Data: annexB(au), Duration: time.Second/30 + 1}); err != nil {
			t.Fatal(err)
		}
	}
	eventually(t, "the last video frame", func() bool {
		v := sink.track(TrackVideo)
		return len(v) > 0 && equalNALUs(v[len(v)-1].f.NALUs, aus[len(aus)-1])
	})
	drop.mu.Lock()
	lost := drop.dropped
	drop.mu.Unlock()
	if lost < 0 {
		t.Fatal("the client never dropped a packet")
	}
	if got := nacked.Load(); got != lost {
		t.Fatalf("server NACKed %d, the lost packet was %d", got, lost)
	}
	if v := sink.track(TrackVideo); len(v) != fileFrames {
		t.Fatalf("received %d frames, want all %d after the retransmission", len(v), fileFrames)
	}

	// The client hangs up without DELETE: DTLS close ends the session.
	pc.Close()
	select {
	case reason := <-sink.closed:
		t.Logf("closed: %s", reason)
	case <-time.After(15 * time.Second):
		t.Fatal("session not closed after the client closed its peer connection")
	}
	checkNoSessions(t, srv.Config.Handler.(*Handler))
}
