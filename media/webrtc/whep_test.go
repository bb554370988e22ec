package webrtc

import (
	"bytes"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pion/rtcp"
	"github.com/pion/webrtc/v4"
	"github.com/pion/webrtc/v4/pkg/media"

	"github.com/onair/onair/media/av"
)

// feed writes the fixture to shared tracks, looping, until stop closes.
func feed(t *testing.T, vt, at *webrtc.TrackLocalStaticSample, stop <-chan struct{}) {
	aus := accessUnits(t)
	opusPkts := opusPackets(t)
	go func() {
		ai := 0
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			_ = vt.WriteSample(media.Sample{Data: annexB(aus[i%len(aus)]), Duration: time.Second/30 + 1})
			for ; ai*20 <= (i+1)*1000/30; ai++ {
				_ = at.WriteSample(media.Sample{Data: opusPkts[ai%len(opusPkts)], Duration: 20 * time.Millisecond})
			}
			time.Sleep(5 * time.Millisecond)
		}
	}()
}

// TestWHEPPlay plays shared tracks to a pion viewer and depacketizes what
// it receives back into the fixture's access units.
func TestWHEPPlay(t *testing.T) {
	aus := accessUnits(t)
	e := newTestEngine(t, 0)
	vt, err := webrtc.NewTrackLocalStaticSample(h264Cap, "video", "onair")
	if err != nil {
		t.Fatal(err)
	}
	at, err := webrtc.NewTrackLocalStaticSample(opusCap, "audio", "onair")
	if err != nil {
		t.Fatal(err)
	}
	var keyReqs atomic.Int32
	pb := &fakePlayback{closed: make(chan string, 1), src: PlaySource{Video: vt, Audio: at, OnKeyframeRequest: func() { keyReqs.Add(1) }}}
	srv := testServer(t, NewHandler(e, nil, pb))

	pc, err := clientAPI(t).NewPeerConnection(webrtc.Configuration{})
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	states := watchState(pc)
	for _, k := range []webrtc.RTPCodecType{webrtc.RTPCodecTypeVideo, webrtc.RTPCodecTypeAudio} {
		if _, err := pc.AddTransceiverFromKind(k, webrtc.RTPTransceiverInit{Direction: webrtc.RTPTransceiverDirectionRecvonly}); err != nil {
			t.Fatal(err)
		}
	}
	var (
		mu        sync.Mutex
		run       = newVideoRun()
		audioPkts int
		videoSSRC atomic.Uint32
		mimes     sync.Map
	)
	pc.OnTrack(func(tr *webrtc.TrackRemote, _ *webrtc.RTPReceiver) {
		mimes.Store(tr.Kind().String(), tr.Codec().MimeType)
		if tr.Kind() == webrtc.RTPCodecTypeVideo {
			videoSSRC.Store(uint32(tr.SSRC()))
		}
		for {
			p, _, err := tr.ReadRTP()
			if err != nil {
				return
			}
			mu.Lock()
			if tr.Kind() == webrtc.RTPCodecTypeVideo {
				run.push(p)
			} else {
				audioPkts++
			}
			mu.Unlock()
		}
	})

	resp, answer := offerAndPost(t, pc, srv.URL+"/live/cam1/whep")
	loc := resp.Header.Get("Location")
	if !strings.HasPrefix(loc, "/live/cam1/whep/") || !strings.Contains(answer, "a=sendonly") {
		t.Fatalf("Location %q, answer:\n%s", loc, answer)
	}
	waitConnected(t, pc, states)
	stop := make(chan struct{})
	defer close(stop)
	feed(t, vt, at, stop)

	eventually(t, "35 video frames and 50 audio packets", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(run.frames) >= 35 && audioPkts >= 50
	})
	for _, k := range []string{"video", "audio"} {
		m, _ := mimes.Load(k)
		if want := map[string]string{"video": webrtc.MimeTypeH264, "audio": webrtc.MimeTypeOpus}[k]; !strings.EqualFold(m.(string), want) {
			t.Fatalf("%s track codec %v, want %s", k, m, want)
		}
	}
	mu.Lock()
	for i, f := range run.frames {
		found := false
		for _, au := range aus {
			if equalNALUs(f.NALUs, au) {
				found = true
				break
			}
		}
		if !found {
			t.Fatalf("viewer frame %d is not one of the file's access units", i)
		}
	}
	if !run.frames[0].Key {
		t.Fatal("the viewer's first frame is not a keyframe")
	}
	mu.Unlock()

	// The viewer's PLI reaches the Playback.
	if err := pc.WriteRTCP([]rtcp.Packet{&rtcp.PictureLossIndication{MediaSSRC: videoSSRC.Load()}}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the keyframe request", func() bool { return keyReqs.Load() > 0 })

	resp, body := do(t, http.MethodDelete, srv.URL+loc, "", "", nil)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("DELETE: %d %s", resp.StatusCode, body)
	}
	select {
	case reason := <-pb.closed:
		if !strings.Contains(reason, "DELETE") {
			t.Fatalf("OnClose reason %q", reason)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("OnClose not called after DELETE")
	}
}

func equalNALUs(a, b [][]byte) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if !bytes.Equal(a[i], b[i]) {
			return false
		}
	}
	return true
}

// TestICETCPFallback publishes over ICE-TCP only: a client whose UDP is
// blocked reaches the engine's passive TCP listener.
func TestICETCPFallback(t *testing.T) {
	e := newTestEngine(t, 0)
	in := &fakeIngest{}
	srv := testServer(t, NewHandler(e, in, nil))

	api := clientAPI(t, webrtc.NetworkTypeTCP4)
	pc, err := api.NewPeerConnection(webrtc.Configuration{})
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	states := watchState(pc)
	vt, err := webrtc.NewTrackLocalStaticSample(h264Cap, "video", "onair")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := pc.AddTrack(vt); err != nil {
		t.Fatal(err)
	}
	_, answer := offerAndPost(t, pc, srv.URL+"/live/tcp/whip")
	if !strings.Contains(answer, "tcptype passive") {
		t.Fatalf("answer has no passive TCP candidate:\n%s", answer)
	}
	waitConnected(t, pc, states)
	pair, err := pc.SCTP().Transport().ICETransport().GetSelectedCandidatePair()
	if err == nil && pair != nil && pair.Local.Protocol != webrtc.ICEProtocolTCP {
		t.Fatalf("selected pair is %s, want TCP", pair.Local.Protocol)
	}
	aus := accessUnits(t)
	for _, au := range aus[:fileGOP] {
		if err := vt.WriteSample(media.Sample{Data: annexB(au), Duration: time.Second/30 + 1}); err != nil {
			t.Fatal(err)
		}
		time.Sleep(2 * time.Millisecond)
	}
	_, sink := in.last()
	eventually(t, "video over TCP", func() bool {
		v := sink.track(TrackVideo)
		return len(v) > 0 && equalNALUs(v[len(v)-1].f.NALUs, aus[fileGOP-1])
	})
	if v := sink.track(TrackVideo); !v[0].f.Key || v[0].f.Codec != av.H264 {
		t.Fatalf("first frame over TCP: %+v", v[0].f)
	}
}
