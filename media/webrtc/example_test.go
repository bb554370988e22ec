package webrtc_test

import (
	"log"
	"net/http"

	"github.com/onair/onair/media/av"
	"github.com/onair/onair/media/webrtc"
)

// ingest hands every publisher's frames to a packager (here: logs them).
type ingest struct{}

func (ingest) StartPublish(s *webrtc.PublishSession) (webrtc.PublishSink, error) {
	log.Printf("%s publishes %v from %s", s.Stream(), s.Codecs(), s.Remote())
	return sink{s}, nil
}

type sink struct{ s *webrtc.PublishSession }

func (k sink) WriteFrame(track string, f av.Frame, cfg *av.TrackConfig) {
	if cfg != nil {
		log.Printf("%s: new config %+v", track, *cfg)
	}
	// A packager that lost its place asks for a keyframe; the session
	// rate-limits the PLIs.
	if track == webrtc.TrackVideo && !f.Key && f.PTS < 0 {
		k.s.RequestKeyframe()
	}
}

func (k sink) Close(reason string) { log.Printf("%s ended: %s", k.s.Stream(), reason) }

// Wiring the edge: one engine (UDP and TCP port 8189), one handler on the
// HTTP mux. Playback is nil here, so WHEP answers 404.
func Example() {
	e, err := webrtc.NewEngine(webrtc.Config{
		PublicIPs:  []string{"203.0.113.7"},
		ICEServers: []webrtc.ICEServer{{URLs: []string{"stun:stun.example.net:3478"}}},
	})
	if err != nil {
		log.Fatal(err)
	}
	defer e.Close()
	h := webrtc.NewHandler(e, ingest{}, nil)
	defer h.Close()
	mux := http.NewServeMux()
	for _, p := range []string{"/live/{name}/whip", "/live/{name}/whep", "/live/{name}/whip/{id}", "/live/{name}/whep/{id}"} {
		mux.Handle(p, h)
	}
	log.Fatal(http.ListenAndServe(":8080", mux))
}
