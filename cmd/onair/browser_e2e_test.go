package main

import (
	"context"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/onair/onair/cmd/onair/browser"
)

// page is the shell the browser tests load: lib.js (the WHIP/WHEP client
// helpers) and a video element.
const page = `<!doctype html><meta charset="utf-8"><script src="lib.js"></script>
<video id="v" autoplay muted playsinline></video>`

func startBrowser(t *testing.T) (*browser.Browser, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	b, err := browser.Start(ctx, browser.Options{})
	if err != nil {
		t.Fatalf("headless Chromium: %v", err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			if logs, err := b.Logs(); err == nil {
				for _, l := range logs {
					t.Logf("console %s: %s", l.Level, l.Message)
				}
			}
		}
		b.Close()
	})
	mux := http.NewServeMux()
	mux.Handle("/lib.js", browser.LibHandler())
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html")
		w.Write([]byte(page))
	})
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return b, srv.URL
}

func openPage(t *testing.T, b *browser.Browser, url string) *browser.Page {
	t.Helper()
	p, err := b.Open(url)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// playInBrowser plays url over WHEP in a new page and returns how long 30
// frames took to show and the audio energy heard.
func playInBrowser(t *testing.T, b *browser.Browser, pages, url string) (int, float64) {
	t.Helper()
	p := openPage(t, b, pages+"/viewer")
	ms, err := browser.As[int](p.Exec(`return (async () => {
		const v = document.getElementById('v');
		window.viewer = await whepPlay(arguments[0], v);
		await connected(window.viewer.pc, 15000);
		return await waitFrames(v, 30, 20000);
	})()`, url))
	if err != nil {
		t.Fatalf("WHEP in Chromium: %v", err)
	}
	rms, err := browser.As[float64](p.Exec(`return waitAudio(window.viewer.stream, 0.005, 15000)`))
	if err != nil {
		t.Fatalf("WHEP audio in Chromium: %v", err)
	}
	stats, _ := p.Exec(`return inboundVideoStats(window.viewer.pc)`)
	t.Logf("Chromium WHEP: 30 frames in %d ms, audio RMS %.3f, stats %s", ms, rms, stats)
	return ms, rms
}

// TestBrowserWHIPToWHEPAndLLHLS: Chromium publishes its fake camera and
// microphone over WHIP; a second page plays it over WHEP (frames decoded,
// audio heard) and ffprobe decodes the LL-HLS output.
func TestBrowserWHIPToWHEPAndLLHLS(t *testing.T) {
	requireTools(t)
	s := startServer(t, t.TempDir())
	b, pages := startBrowser(t)
	pub := openPage(t, b, pages+"/studio")
	codec, err := browser.As[string](pub.Exec(`return (async () => {
		const media = await navigator.mediaDevices.getUserMedia({video: {width: 640, height: 480}, audio: true});
		window.session = await whipPublish(arguments[0], media);
		await connected(window.session.pc, 15000);
		const sdp = window.session.pc.remoteDescription.sdp;
		return (sdp.match(/a=rtpmap:\d+ (H264|VP8|VP9|AV1)/) || [])[1] || "none";
	})()`, s.url("/live/browser/whip")))
	if err != nil {
		t.Fatalf("WHIP from Chromium: %v", err)
	}
	t.Logf("Chromium publishes %s", codec)

	u := s.url("/live/browser/video.m3u8")
	p := parsePlaylist(t, waitPlaylist(t, u, 2, 30*time.Second))
	init := mustGet(t, resolve(u, p.mapURI))
	seg := mustGet(t, resolve(u, p.segURIs[len(p.segURIs)-1]))
	if v := probe(t, append(append([]byte{}, init...), seg...)); v.CodecName != "h264" || v.NbReadFrames == "0" {
		t.Errorf("Chromium's WHIP video over LL-HLS probes as %+v", v)
	}
	au := s.url("/live/browser/audio.m3u8")
	ap := parsePlaylist(t, waitPlaylist(t, au, 1, 10*time.Second))
	if a := probe(t, append(mustGet(t, resolve(au, ap.mapURI)), mustGet(t, resolve(au, ap.segURIs[0]))...)); a.CodecName != "opus" {
		t.Errorf("Chromium's WHIP audio over LL-HLS probes as %+v", a)
	}

	_, rms := playInBrowser(t, b, pages, s.url("/live/browser/whep"))
	if rms < 0.005 {
		t.Errorf("no audio energy at the WHEP viewer (%v)", rms)
	}
	status, err := browser.As[int](pub.Exec(`return window.session.stop()`))
	if err != nil || status != 200 {
		t.Errorf("WHIP DELETE from Chromium: %d %v", status, err)
	}
	if !strings.Contains(s.log.String(), "protocol=whip") {
		t.Error("no WHIP publisher in the server log")
	}
}

// TestBrowserPlaysSRTOverWHEP: ffmpeg publishes over SRT, Chromium plays
// over WHEP with AAC bridged to Opus.
func TestBrowserPlaysSRTOverWHEP(t *testing.T) {
	requireTools(t)
	s := startServer(t, t.TempDir())
	publish(t, s, pubOpts{streamID: "publish:live/tv"})
	waitPlaylist(t, s.url("/live/tv/video.m3u8"), 1, 30*time.Second)
	b, pages := startBrowser(t)
	_, rms := playInBrowser(t, b, pages, s.url("/live/tv/whep"))
	if rms < 0.005 {
		t.Errorf("no audio energy from the bridged AAC (%v)", rms)
	}
}

// TestBrowserPlaysLLHLSWithHlsJS: hls.js in Chromium plays the LL-HLS
// output of an SRT publish in low-latency mode.
func TestBrowserPlaysLLHLSWithHlsJS(t *testing.T) {
	requireTools(t)
	hlsjs, err := os.ReadFile("testdata/hlsjs/node_modules/hls.js/dist/hls.min.js")
	if err != nil {
		t.Fatalf("hls.js is missing (task deps-test runs npm ci in cmd/onair/testdata/hlsjs): %v", err)
	}
	s := startServer(t, t.TempDir())
	publish(t, s, pubOpts{streamID: "publish:live/hlsjs"})
	waitPlaylist(t, s.url("/live/hlsjs/video.m3u8"), 2, 30*time.Second)
	b, pages := startBrowser(t)
	p := openPage(t, b, pages+"/player")
	if _, err := p.Exec(`const s = document.createElement('script'); s.textContent = arguments[0]; document.head.appendChild(s); return Hls.isSupported()`, string(hlsjs)); err != nil {
		t.Fatalf("loading hls.js: %v", err)
	}
	type result struct {
		Ms      int
		Latency float64
		Time    float64
		Codecs  string
	}
	r, err := browser.As[result](p.Exec(`return (async () => {
		const v = document.getElementById('v');
		const hls = new Hls({lowLatencyMode: true});
		window.hls = hls;
		const codecs = new Set();
		hls.on(Hls.Events.BUFFER_CODECS, (_, d) => {
			for (const t of Object.values(d)) { if (t && (t.codec || t.levelCodec)) codecs.add(t.codec || t.levelCodec); }
		});
		hls.on(Hls.Events.ERROR, (_, d) => { if (d.fatal) console.error("hls.js fatal: " + d.details); });
		hls.loadSource(arguments[0]);
		hls.attachMedia(v);
		const ms = await waitFrames(v, 60, 30000);
		return {ms, latency: hls.latency, time: v.currentTime, codecs: [...codecs].join(",")};
	})()`, s.url("/live/hlsjs/index.m3u8")))
	if err != nil {
		t.Fatalf("hls.js playback: %v", err)
	}
	t.Logf("hls.js: 60 frames in %d ms, codecs %s, latency %.2f s behind the live edge", r.Ms, r.Codecs, r.Latency)
	if r.Time <= 0 || !strings.Contains(r.Codecs, "avc1") {
		t.Errorf("hls.js result %+v", r)
	}
}
