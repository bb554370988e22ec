package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os/exec"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/onair/onair/events"
	"github.com/onair/onair/events/blob"
	"github.com/onair/onair/events/store"
)

// TestSRTToLLHLS publishes H.264 and H.265 with AAC over SRT with ffmpeg and
// checks the LL-HLS output: the tags, and that init + part and init +
// segment decode with ffprobe.
func TestSRTToLLHLS(t *testing.T) {
	requireTools(t)
	for _, tc := range []struct{ codec, probeName, codecsPrefix, audio, audioCodecs string }{
		{"h264", "h264", "avc1.", "aac", "mp4a.40.2"},
		{"h265", "hevc", "hvc1.", "aac", "mp4a.40.2"},
		{"h264", "h264", "avc1.", "opus", "opus"},
	} {
		t.Run(tc.codec+"+"+tc.audio, func(t *testing.T) {
			t.Parallel()
			s := startServer(t, t.TempDir())
			publish(t, s, pubOpts{codec: tc.codec, audio: tc.audio, streamID: "publish:live/demo"})
			video := waitPlaylist(t, s.url("/live/demo/video.m3u8"), 3, 30*time.Second)

			code, hdr, mv := get(t, s.url("/live/demo/index.m3u8"))
			if code != 200 || hdr.Get("Content-Type") != "application/vnd.apple.mpegurl" {
				t.Fatalf("multivariant: %d %q", code, hdr.Get("Content-Type"))
			}
			for _, want := range []string{"#EXT-X-STREAM-INF:", "BANDWIDTH=", "CODECS=\"" + tc.codecsPrefix, "," + tc.audioCodecs + "\"",
				"RESOLUTION=640x360", `AUDIO="audio"`, "#EXT-X-MEDIA:TYPE=AUDIO", `URI="audio.m3u8"`, "video.m3u8"} {
				if !strings.Contains(string(mv), want) {
					t.Errorf("multivariant lacks %q:\n%s", want, mv)
				}
			}
			for _, want := range []string{"#EXT-X-TARGETDURATION:2", "#EXT-X-SERVER-CONTROL:CAN-BLOCK-RELOAD=YES",
				"PART-HOLD-BACK=", "CAN-SKIP-UNTIL=", "#EXT-X-PART-INF:PART-TARGET=0.2", "#EXT-X-MAP:",
				"#EXT-X-PROGRAM-DATE-TIME:", "#EXT-X-PART:DURATION=", "INDEPENDENT=YES", "#EXT-X-PRELOAD-HINT:TYPE=PART",
				`#EXT-X-RENDITION-REPORT:URI="audio.m3u8"`} {
				if !strings.Contains(video, want) {
					t.Errorf("video playlist lacks %q:\n%s", want, video)
				}
			}
			if strings.Contains(video, "#EXT-X-DISCONTINUITY") {
				t.Errorf("unexpected discontinuity:\n%s", video)
			}
			base := s.url("/live/demo/video.m3u8")
			p := parsePlaylist(t, video)
			init := mustGet(t, resolve(base, p.mapURI))
			part := mustGet(t, resolve(base, p.partURIs[0]))
			seg := mustGet(t, resolve(base, p.segURIs[len(p.segURIs)-1]))
			if v := probe(t, append(append([]byte{}, init...), seg...)); v.CodecName != tc.probeName || v.Width != 640 || v.Height != 360 || v.NbReadFrames != "30" {
				t.Errorf("init+segment probes as %+v, want %s 640x360 with 30 frames", v, tc.probeName)
			}
			if v := probe(t, append(append([]byte{}, init...), part...)); v.CodecName != tc.probeName || v.NbReadFrames == "0" {
				t.Errorf("init+part probes as %+v", v)
			}

			abase := s.url("/live/demo/audio.m3u8")
			ap := parsePlaylist(t, waitPlaylist(t, abase, 2, 10*time.Second))
			ainit := mustGet(t, resolve(abase, ap.mapURI))
			aseg := mustGet(t, resolve(abase, ap.segURIs[0]))
			if a := probe(t, append(append([]byte{}, ainit...), aseg...)); a.CodecName != tc.audio || a.SampleRate != "48000" {
				t.Errorf("audio probes as %+v", a)
			}

			// A real HLS client (ffmpeg's demuxer) plays the live stream
			// from the multivariant playlist: video and audio decode.
			vFrames, aFrames := playHLS(t, s.url("/live/demo/index.m3u8"), 3)
			if vFrames < 60 || aFrames < 50 {
				t.Errorf("ffmpeg played %d video and %d audio frames in 3 s", vFrames, aFrames)
			}

			// HTTP/2 without TLS (h2c) serves the same playlist.
			h2c := &http.Client{Transport: &http.Transport{Protocols: h2cOnly()}}
			resp, err := h2c.Get(s.url("/live/demo/index.m3u8"))
			if err != nil {
				t.Fatalf("h2c: %v", err)
			}
			resp.Body.Close()
			if resp.ProtoMajor != 2 {
				t.Errorf("h2c answered over %s", resp.Proto)
			}
		})
	}
}

// playHLS plays url with ffmpeg for secs seconds and counts decoded frames
// per stream (framecrc lines: stream index first).
func playHLS(t *testing.T, url string, secs int) (video, audio int) {
	t.Helper()
	out, err := exec.Command("ffmpeg", "-v", "error", "-i", url, "-t", fmt.Sprint(secs), "-f", "framecrc", "-").Output()
	if err != nil {
		t.Fatalf("ffmpeg playing %s: %v", url, err)
	}
	for _, line := range strings.Split(string(out), "\n") {
		switch {
		case strings.HasPrefix(line, "0,"):
			video++
		case strings.HasPrefix(line, "1,"):
			audio++
		}
	}
	return video, audio
}

func h2cOnly() *http.Protocols {
	p := new(http.Protocols)
	p.SetUnencryptedHTTP2(true)
	return p
}

// TestBlockingReloadReturnsNextPart asks for the part after the newest one:
// the server holds the request and answers with a playlist that has it.
func TestBlockingReloadReturnsNextPart(t *testing.T) {
	requireTools(t)
	t.Parallel()
	s := startServer(t, t.TempDir())
	publish(t, s, pubOpts{streamID: "publish:live/block"})
	u := s.url("/live/block/video.m3u8")
	p := parsePlaylist(t, waitPlaylist(t, u, 2, 30*time.Second))
	for i := 0; i < 10; i++ {
		msn, part := p.lastMSN, p.lastPart+1
		code, hdr, body := get(t, fmt.Sprintf("%s?_HLS_msn=%d&_HLS_part=%d", u, msn, part))
		if code != 200 {
			t.Fatalf("blocking reload: %d %s", code, body)
		}
		next := parsePlaylist(t, string(body))
		if next.lastMSN < msn || (next.lastMSN == msn && next.lastPart < part) {
			t.Fatalf("asked for %d.%d, got a playlist ending at %d.%d", msn, part, next.lastMSN, next.lastPart)
		}
		if !strings.Contains(hdr.Get("Cache-Control"), "max-age") {
			t.Errorf("blocking response Cache-Control %q", hdr.Get("Cache-Control"))
		}
		p = next
	}
	// The preload-hinted part is held until it exists, then served.
	hint := resolve(u, p.preloadHint)
	if code, _, body := get(t, hint); code != 200 || len(body) == 0 {
		t.Fatalf("preload hint %s: %d", hint, code)
	}
	// Impossible requests get RFC 8216bis answers.
	if code, _, _ := get(t, u+"?_HLS_part=1"); code != 400 {
		t.Errorf("_HLS_part without _HLS_msn: %d, want 400", code)
	}
	if code, _, _ := get(t, fmt.Sprintf("%s?_HLS_msn=%d", u, p.lastMSN+10)); code != 400 {
		t.Errorf("msn far in the future: %d, want 400", code)
	}
	if code, _, _ := get(t, s.url("/live/nosuch/index.m3u8")); code != 404 {
		t.Errorf("unknown stream: %d, want 404", code)
	}
}

// TestPublisherReconnectContinuesStream kills the publisher and restarts it
// within the grace period: a client following the playlist sees no error,
// no media sequence restart, and parts keep coming on the same session.
func TestPublisherReconnectContinuesStream(t *testing.T) {
	requireTools(t)
	t.Parallel()
	s := startServer(t, t.TempDir())
	pub := publish(t, s, pubOpts{streamID: "publish:live/re"})
	u := s.url("/live/re/video.m3u8")
	first := parsePlaylist(t, waitPlaylist(t, u, 2, 30*time.Second))
	gen := first.mapURI[:strings.LastIndex(first.mapURI, "/")]

	// A follower doing blocking reloads all through the reconnect.
	ctx, cancel := context.WithCancel(context.Background())
	var mu sync.Mutex
	var followErr error
	last := first
	done := make(chan struct{})
	go func() {
		defer close(done)
		p := first
		for ctx.Err() == nil {
			req, _ := http.NewRequestWithContext(ctx, "GET", fmt.Sprintf("%s?_HLS_msn=%d&_HLS_part=%d", u, p.lastMSN, p.lastPart+1), nil)
			resp, err := http.DefaultClient.Do(req)
			if ctx.Err() != nil {
				return
			}
			if err != nil {
				mu.Lock()
				followErr = err
				mu.Unlock()
				return
			}
			body := make([]byte, 0, 8192)
			buf := make([]byte, 4096)
			for {
				n, err := resp.Body.Read(buf)
				body = append(body, buf[:n]...)
				if err != nil {
					break
				}
			}
			resp.Body.Close()
			if resp.StatusCode != 200 {
				mu.Lock()
				followErr = fmt.Errorf("status %d: %s", resp.StatusCode, body)
				mu.Unlock()
				return
			}
			next := parsePlaylist(t, string(body))
			if next.mediaSeq < p.mediaSeq || next.lastMSN < p.lastMSN {
				mu.Lock()
				followErr = fmt.Errorf("playlist went back: seq %d->%d, msn %d->%d", p.mediaSeq, next.mediaSeq, p.lastMSN, next.lastMSN)
				mu.Unlock()
				return
			}
			p = next
			mu.Lock()
			last = p
			mu.Unlock()
		}
	}()

	time.Sleep(2 * time.Second)
	pub.kill() // SIGKILL: no SRT shutdown, the server must notice by itself
	killedAt := time.Now()
	time.Sleep(3 * time.Second)
	mu.Lock()
	atKill := last
	mu.Unlock()
	publish(t, s, pubOpts{streamID: "publish:live/re"})
	// Parts must come again, past what was there while the publisher was gone.
	deadline := time.Now().Add(30 * time.Second)
	for {
		mu.Lock()
		cur, err := last, followErr
		mu.Unlock()
		if err != nil {
			t.Fatalf("follower: %v", err)
		}
		if cur.lastMSN >= atKill.lastMSN+3 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no new parts after reconnect: at kill %d.%d, now %d.%d", atKill.lastMSN, atKill.lastPart, cur.lastMSN, cur.lastPart)
		}
		time.Sleep(100 * time.Millisecond)
	}
	cancel()
	<-done
	final := parsePlaylist(t, string(mustGet(t, u)))
	if !strings.Contains(final.mapURI, gen) {
		t.Errorf("session changed across the reconnect: %s then %s", gen, final.mapURI)
	}
	if final.mediaSeq < first.mediaSeq {
		t.Errorf("media sequence restarted: %d then %d", first.mediaSeq, final.mediaSeq)
	}
	if strings.Contains(final.text, "#EXT-X-DISCONTINUITY") {
		t.Errorf("reconnect with the same encoder settings made a discontinuity:\n%s", final.text)
	}
	if !strings.Contains(s.log.String(), "publisher reconnected within grace period") {
		t.Error("log does not say the publisher reconnected")
	}
	t.Logf("publisher killed at %s; reconnect continued session %s", killedAt.Format(time.StampMilli), gen)
}

// TestBadInputKeepsServing: garbage datagrams, a bad streamid, a wrong
// passphrase and a second publisher each get their clear error, and a good
// publisher on another stream keeps being served.
func TestBadInputKeepsServing(t *testing.T) {
	requireTools(t)
	t.Parallel()
	const pass = "correct-horse-battery"
	s := startServer(t, t.TempDir(), "-srt-passphrase", pass)
	good := publish(t, s, pubOpts{streamID: "publish:live/good", passphrase: pass})
	waitPlaylist(t, s.url("/live/good/video.m3u8"), 1, 30*time.Second)

	// Garbage on the SRT port.
	c, err := net.Dial("udp", fmt.Sprintf("127.0.0.1:%d", s.srtPort))
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 200; i++ {
		junk := make([]byte, 16+i*7%1400)
		for j := range junk {
			junk[j] = byte(i*31 + j*17)
		}
		c.Write(junk)
	}
	c.Close()

	bad := publish(t, s, pubOpts{streamID: "bogus", passphrase: pass, seconds: 5})
	if err := bad.wait(t, 20*time.Second); err == nil {
		t.Error("ffmpeg with a bad streamid succeeded")
	}
	wrong := publish(t, s, pubOpts{streamID: "publish:live/other", passphrase: "wrong-passphrase-123", seconds: 5})
	if err := wrong.wait(t, 20*time.Second); err == nil {
		t.Error("ffmpeg with a wrong passphrase succeeded")
	}
	second := publish(t, s, pubOpts{streamID: "publish:live/good", passphrase: pass, seconds: 5})
	if err := second.wait(t, 20*time.Second); err == nil {
		t.Error("a second publisher on a live stream was accepted")
	}

	logs := s.log.String()
	for _, want := range []string{`streamid \"bogus\"`, "wrong passphrase", "already has a live publisher"} {
		if !strings.Contains(logs, want) {
			t.Errorf("log lacks %q", want)
		}
	}
	// The good stream still advances.
	p := parsePlaylist(t, string(mustGet(t, s.url("/live/good/video.m3u8"))))
	code, _, _ := get(t, fmt.Sprintf("%s?_HLS_msn=%d", s.url("/live/good/video.m3u8"), p.lastMSN+1))
	if code != 200 {
		t.Errorf("good stream stopped advancing: %d", code)
	}
	select {
	case <-good.exited:
		t.Errorf("the good publisher was disconnected: %s", good.out.String())
	default:
	}
}

// TestCrashAndGracefulStop: SIGKILL mid-stream loses nothing that was
// logged, the stream goes live again after a restart, and SIGTERM
// finishes the open segment and logs the end.
func TestCrashAndGracefulStop(t *testing.T) {
	requireTools(t)
	t.Parallel()
	data := t.TempDir()
	s := startServer(t, data)
	publish(t, s, pubOpts{streamID: "publish:live/crash"})
	waitPlaylist(t, s.url("/live/crash/video.m3u8"), 3, 30*time.Second)
	s.kill(syscall.SIGKILL)

	before := readLog(t, data, "live/crash")
	checkLog(t, data, before)
	if len(before) < 4 || before[0].TypeName() != "stream.announced" {
		t.Fatalf("log after SIGKILL: %d events, first %v", len(before), typeNames(before))
	}

	s2 := startServer(t, data)
	pub := publish(t, s2, pubOpts{streamID: "publish:live/crash"})
	waitPlaylist(t, s2.url("/live/crash/video.m3u8"), 2, 30*time.Second)
	pub.kill()
	time.Sleep(500 * time.Millisecond)
	s2.kill(syscall.SIGTERM)
	if code := s2.cmd.ProcessState.ExitCode(); code != 0 {
		t.Fatalf("SIGTERM exit code %d\n%s", code, s2.log.String())
	}
	if !strings.Contains(s2.log.String(), "stopped cleanly") {
		t.Error("no clean-stop log line")
	}
	after := readLog(t, data, "live/crash")
	checkLog(t, data, after)
	for i := range before {
		if after[i].Seq != before[i].Seq || after[i].TypeName() != before[i].TypeName() {
			t.Fatalf("event %d changed across restart", i)
		}
	}
	tail := typeNames(after[len(before):])
	if tail[0] != "stream.announced" || tail[len(tail)-1] != "stream.ended" || !strings.Contains(strings.Join(tail, " "), "segment.stored") {
		t.Errorf("second session events: %v", tail)
	}
}

func readLog(t *testing.T, data, stream string) []*events.Event {
	t.Helper()
	st, err := store.Open(data+"/events.db", store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	var evs []*events.Event
	if err := st.Read(stream, 1, func(ev *events.Event) error { evs = append(evs, ev); return nil }); err != nil {
		t.Fatal(err)
	}
	return evs
}

// checkLog: sequence numbers are gap-free, and every segment an event
// names is in the blob store with the right content.
func checkLog(t *testing.T, data string, evs []*events.Event) {
	t.Helper()
	blobs, err := blob.Open(data + "/blobs")
	if err != nil {
		t.Fatal(err)
	}
	for i, ev := range evs {
		if ev.Seq != uint64(i+1) {
			t.Fatalf("event %d has seq %d", i, ev.Seq)
		}
		if ss := ev.GetSegmentStored(); ss != nil {
			for _, h := range []string{ss.Blob, ss.InitBlob} {
				if _, err := blobs.Get(h); err != nil {
					t.Errorf("seq %d: %v", ev.Seq, err)
				}
			}
		}
	}
}

func typeNames(evs []*events.Event) []string {
	var out []string
	for _, ev := range evs {
		out = append(out, ev.TypeName())
	}
	return out
}

var _ = errors.Is

// TestGraceExpiryEndsStream: a publisher that does not come back within the
// grace period ends the stream cleanly: players get EXT-X-ENDLIST and the
// log says stream.ended after the last recorded segment.
func TestGraceExpiryEndsStream(t *testing.T) {
	requireTools(t)
	t.Parallel()
	data := t.TempDir()
	s := startServer(t, data, "-grace", "1s")
	pub := publish(t, s, pubOpts{streamID: "publish:live/gone"})
	u := s.url("/live/gone/video.m3u8")
	waitPlaylist(t, u, 2, 30*time.Second)
	pub.kill()
	deadline := time.Now().Add(20 * time.Second)
	for {
		code, _, body := get(t, u)
		if code == 200 && strings.Contains(string(body), "#EXT-X-ENDLIST") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no ENDLIST after the grace period: %d\n%s", code, body)
		}
		time.Sleep(200 * time.Millisecond)
	}
	s.kill(syscall.SIGTERM)
	evs := readLog(t, data, "live/gone")
	checkLog(t, data, evs)
	names := typeNames(evs)
	if names[len(names)-1] != "stream.ended" || !strings.Contains(evs[len(evs)-1].GetStreamEnded().GetReason(), "grace") {
		t.Errorf("log ends with %v (%v)", names[len(names)-1], evs[len(evs)-1])
	}
	if !slices.Contains(names, "publisher.disconnected") {
		t.Errorf("no publisher.disconnected in %v", names)
	}
}
