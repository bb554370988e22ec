package main

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pion/rtp/codecs"
	pion "github.com/pion/webrtc/v4"
	"github.com/pion/webrtc/v4/pkg/media"
	"github.com/pion/webrtc/v4/pkg/media/oggreader"

	"github.com/onair/onair/media/h264"
)

// whepViewer is a pion peer playing a stream over WHEP.
type whepViewer struct {
	pc                        *pion.PeerConnection
	location                  string
	videoFrames, audioPackets atomic.Int64
	keyframes                 atomic.Int64
	firstFrame                atomic.Int64 // unix nanos of the first complete video frame
	lastTS                    atomic.Int64 // RTP timestamp of the last video frame, -1 before any
	backwards                 atomic.Int64 // frames whose RTP timestamp went back
	maxStep                   atomic.Int64 // largest timestamp step between frames (90 kHz)
}

func playWHEP(t testing.TB, url string) (*whepViewer, int, string) {
	t.Helper()
	pc, err := pion.NewPeerConnection(pion.Configuration{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pc.Close() })
	v := &whepViewer{pc: pc}
	v.lastTS.Store(-1)
	for _, k := range []pion.RTPCodecType{pion.RTPCodecTypeVideo, pion.RTPCodecTypeAudio} {
		if _, err := pc.AddTransceiverFromKind(k, pion.RTPTransceiverInit{Direction: pion.RTPTransceiverDirectionRecvonly}); err != nil {
			t.Fatal(err)
		}
	}
	pc.OnTrack(func(tr *pion.TrackRemote, _ *pion.RTPReceiver) {
		var fu codecs.H264Packet
		var frame []byte
		for {
			p, _, err := tr.ReadRTP()
			if err != nil {
				return
			}
			if tr.Kind() == pion.RTPCodecTypeAudio {
				v.audioPackets.Add(1)
				continue
			}
			payload, err := fu.Unmarshal(p.Payload)
			if err == nil {
				frame = append(frame, payload...)
			}
			if p.Marker {
				if last := v.lastTS.Load(); last >= 0 {
					step := int64(int32(p.Timestamp - uint32(last)))
					if step < 0 {
						v.backwards.Add(1)
					}
					if step > v.maxStep.Load() {
						v.maxStep.Store(step)
					}
				}
				v.lastTS.Store(int64(p.Timestamp))
				if v.firstFrame.Load() == 0 {
					v.firstFrame.Store(time.Now().UnixNano())
				}
				v.videoFrames.Add(1)
				if h264.IsKeyframe(splitAnnexB(frame)) {
					v.keyframes.Add(1)
				}
				frame = frame[:0]
			}
		}
	})
	code, body, loc := exchangeSDP(t, pc, url)
	if code != http.StatusCreated {
		return nil, code, body
	}
	v.location = loc
	return v, code, body
}

// exchangeSDP runs the WHIP/WHEP HTTP exchange for pc: the complete offer
// (ICE gathered) is POSTed; on 201 the answer is applied. It returns the
// status, the body and the Location of the session resource.
func exchangeSDP(t testing.TB, pc *pion.PeerConnection, url string) (int, string, string) {
	t.Helper()
	offer, err := pc.CreateOffer(nil)
	if err != nil {
		t.Fatal(err)
	}
	gathered := pion.GatheringCompletePromise(pc)
	if err := pc.SetLocalDescription(offer); err != nil {
		t.Fatal(err)
	}
	<-gathered
	resp, err := http.Post(url, "application/sdp", strings.NewReader(pc.LocalDescription().SDP))
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode == http.StatusCreated {
		if err := pc.SetRemoteDescription(pion.SessionDescription{Type: pion.SDPTypeAnswer, SDP: string(body)}); err != nil {
			t.Fatal(err)
		}
	}
	return resp.StatusCode, string(body), resp.Header.Get("Location")
}

// deleteResource DELETEs a WHIP/WHEP session resource and returns the status.
func deleteResource(t testing.TB, url string) int {
	t.Helper()
	req, _ := http.NewRequest(http.MethodDelete, url, nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

func splitAnnexB(b []byte) [][]byte { return h264.SplitAnnexB(b) }

// TestSRTToWHEP: ffmpeg publishes H.264 + AAC over SRT, a pion viewer
// plays it over WHEP: it starts on a keyframe, keeps receiving frames,
// and gets Opus audio bridged from the AAC by ffmpeg.
func TestSRTToWHEP(t *testing.T) {
	requireTools(t)
	t.Parallel()
	s := startServer(t, t.TempDir())
	publish(t, s, pubOpts{streamID: "publish:live/rtc"})
	waitPlaylist(t, s.url("/live/rtc/video.m3u8"), 1, 30*time.Second)

	start := time.Now()
	v, code, body := playWHEP(t, s.url("/live/rtc/whep"))
	if code != http.StatusCreated {
		t.Fatalf("WHEP POST: %d %s", code, body)
	}
	deadline := time.Now().Add(20 * time.Second)
	for v.videoFrames.Load() < 60 || v.audioPackets.Load() < 50 {
		if time.Now().After(deadline) {
			t.Fatalf("after 20 s: %d video frames, %d audio packets", v.videoFrames.Load(), v.audioPackets.Load())
		}
		time.Sleep(100 * time.Millisecond)
	}
	if v.keyframes.Load() == 0 {
		t.Error("no keyframe received")
	}
	t.Logf("first frame %v after the WHEP POST; %d frames, %d keyframes, %d audio packets",
		time.Duration(v.firstFrame.Load()-start.UnixNano()).Round(time.Millisecond), v.videoFrames.Load(), v.keyframes.Load(), v.audioPackets.Load())

	// DELETE ends the session; the resource is gone afterwards.
	if code := deleteResource(t, s.url(v.location)); code != http.StatusOK {
		t.Errorf("DELETE: %d", code)
	}
}

// TestWHEPErrors: a missing stream and malformed SDP get clear errors.
func TestWHEPErrors(t *testing.T) {
	t.Parallel()
	s := startServer(t, t.TempDir())
	resp, err := http.Post(s.url("/live/none/whep"), "application/sdp", strings.NewReader("v=0\r\n"))
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadRequest && resp.StatusCode != http.StatusNotFound {
		t.Errorf("malformed SDP for a missing stream: %d %s", resp.StatusCode, body)
	}
	_, code, msg := playWHEP(t, s.url("/live/none/whep"))
	if code != http.StatusNotFound || !strings.Contains(msg, "live/none") {
		t.Errorf("missing stream: %d %q", code, msg)
	}
	resp, err = http.Post(s.url("/live/x/whip"), "text/plain", bytes.NewReader([]byte("hi")))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnsupportedMediaType {
		t.Errorf("WHIP with text/plain: %d", resp.StatusCode)
	}
}

// whipPublisher is a pion peer publishing H.264 + Opus files over WHIP,
// paced in real time, looping.
type whipPublisher struct {
	pc       *pion.PeerConnection
	location string
	stop     chan struct{}
}

func genWHIPMedia(t *testing.T) (h264File, oggFile string) {
	t.Helper()
	dir := t.TempDir()
	h264File, oggFile = dir+"/v.h264", dir+"/a.ogg"
	if out, err := exec.Command("ffmpeg", "-v", "error", "-f", "lavfi", "-i", "testsrc2=size=320x240:rate=30", "-t", "4",
		"-c:v", "libx264", "-profile:v", "baseline", "-bf", "0", "-g", "30", "-pix_fmt", "yuv420p", "-f", "h264", h264File).CombinedOutput(); err != nil {
		t.Fatalf("ffmpeg h264: %v %s", err, out)
	}
	if out, err := exec.Command("ffmpeg", "-v", "error", "-f", "lavfi", "-i", "sine=f=440:sample_rate=48000", "-t", "4",
		"-c:a", "libopus", "-page_duration", "20000", "-f", "ogg", oggFile).CombinedOutput(); err != nil {
		t.Fatalf("ffmpeg opus: %v %s", err, out)
	}
	return h264File, oggFile
}

func publishWHIP(t *testing.T, url string) (*whipPublisher, int, string) {
	t.Helper()
	vfile, afile := genWHIPMedia(t)
	pc, err := pion.NewPeerConnection(pion.Configuration{})
	if err != nil {
		t.Fatal(err)
	}
	vt, _ := pion.NewTrackLocalStaticSample(pion.RTPCodecCapability{MimeType: pion.MimeTypeH264, ClockRate: 90000,
		SDPFmtpLine: "level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42e01f"}, "video", "pub")
	at, _ := pion.NewTrackLocalStaticSample(pion.RTPCodecCapability{MimeType: pion.MimeTypeOpus, ClockRate: 48000, Channels: 2}, "audio", "pub")
	for _, tr := range []pion.TrackLocal{vt, at} {
		sender, err := pc.AddTrack(tr)
		if err != nil {
			t.Fatal(err)
		}
		go func() { // reading RTCP feeds the interceptors (NACK, PLI)
			for {
				if _, _, err := sender.ReadRTCP(); err != nil {
					return
				}
			}
		}()
	}
	code, body, loc := exchangeSDP(t, pc, url)
	if code != http.StatusCreated {
		pc.Close()
		return nil, code, body
	}
	p := &whipPublisher{pc: pc, location: loc, stop: make(chan struct{})}
	t.Cleanup(func() { p.close() })
	go p.pump(vt, at, vfile, afile)
	return p, code, body
}

func (p *whipPublisher) close() {
	select {
	case <-p.stop:
	default:
		close(p.stop)
		p.pc.Close()
	}
}

func (p *whipPublisher) pump(vt, at *pion.TrackLocalStaticSample, vfile, afile string) {
	vdata, _ := os.ReadFile(vfile)
	adata, _ := os.ReadFile(afile)
	nalus := h264.SplitAnnexB(vdata)
	// Group NAL units into access units: a new one starts at each slice
	// that begins a picture (first_mb_in_slice == 0) or at SPS/AUD.
	var aus [][]byte
	var cur []byte
	for _, n := range nalus {
		typ := n[0] & 0x1f
		newAU := typ == 7 || typ == 9 || ((typ == 1 || typ == 5) && len(n) > 1 && n[1]&0x80 != 0)
		if newAU && len(cur) > 0 && hasVCL(cur) {
			aus = append(aus, cur)
			cur = nil
		}
		cur = append(cur, 0, 0, 0, 1)
		cur = append(cur, n...)
	}
	aus = append(aus, cur)
	ogg, _, err := oggreader.NewWith(bytes.NewReader(adata))
	var packets [][]byte
	for err == nil {
		var page []byte
		var hdr *oggreader.OggPageHeader
		page, hdr, err = ogg.ParseNextPage()
		if err == nil && hdr.GranulePosition > 0 {
			packets = append(packets, page)
		}
	}
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	vi, ai := 0, 0
	start := time.Now()
	for {
		select {
		case <-p.stop:
			return
		case <-tick.C:
		}
		el := time.Since(start)
		for time.Duration(vi)*time.Second/30 <= el {
			vt.WriteSample(media.Sample{Data: aus[vi%len(aus)], Duration: time.Second / 30})
			vi++
		}
		for len(packets) > 0 && time.Duration(ai)*20*time.Millisecond <= el {
			at.WriteSample(media.Sample{Data: packets[ai%len(packets)], Duration: 20 * time.Millisecond})
			ai++
		}
	}
}

func hasVCL(au []byte) bool {
	for _, n := range h264.SplitAnnexB(au) {
		if t := n[0] & 0x1f; t == 1 || t == 5 {
			return true
		}
	}
	return false
}

// TestWHIPToLLHLSAndWHEP: a pion client publishes H.264 + Opus over WHIP;
// the stream plays over LL-HLS (Opus in CMAF) and over WHEP; a second
// WHIP publisher on the live stream gets 409.
func TestWHIPToLLHLSAndWHEP(t *testing.T) {
	requireTools(t)
	t.Parallel()
	s := startServer(t, t.TempDir())
	pub, code, body := publishWHIP(t, s.url("/live/wh/whip"))
	if code != http.StatusCreated {
		t.Fatalf("WHIP POST: %d %s", code, body)
	}
	u := s.url("/live/wh/video.m3u8")
	p := parsePlaylist(t, waitPlaylist(t, u, 2, 30*time.Second))
	init := mustGet(t, resolve(u, p.mapURI))
	seg := mustGet(t, resolve(u, p.segURIs[len(p.segURIs)-1]))
	if v := probe(t, append(append([]byte{}, init...), seg...)); v.CodecName != "h264" || v.Width != 320 || v.NbReadFrames == "0" {
		t.Errorf("WHIP video over LL-HLS probes as %+v", v)
	}
	au := s.url("/live/wh/audio.m3u8")
	ap := parsePlaylist(t, waitPlaylist(t, au, 1, 10*time.Second))
	ainit := mustGet(t, resolve(au, ap.mapURI))
	aseg := mustGet(t, resolve(au, ap.segURIs[0]))
	if a := probe(t, append(append([]byte{}, ainit...), aseg...)); a.CodecName != "opus" {
		t.Errorf("WHIP audio over LL-HLS probes as %+v", a)
	}

	_, code, body = publishWHIP(t, s.url("/live/wh/whip"))
	if code != http.StatusConflict {
		t.Errorf("second WHIP publisher: %d %s", code, body)
	}

	v, code, body := playWHEP(t, s.url("/live/wh/whep"))
	if code != http.StatusCreated {
		t.Fatalf("WHEP POST: %d %s", code, body)
	}
	deadline := time.Now().Add(20 * time.Second)
	for v.videoFrames.Load() < 30 || v.audioPackets.Load() < 30 || v.keyframes.Load() == 0 {
		if time.Now().After(deadline) {
			t.Fatalf("WHEP of a WHIP stream: %d frames, %d keyframes, %d audio packets", v.videoFrames.Load(), v.keyframes.Load(), v.audioPackets.Load())
		}
		time.Sleep(100 * time.Millisecond)
	}
	// DELETE of the publisher's resource ends its session.
	if code := deleteResource(t, s.url(pub.location)); code != http.StatusOK {
		t.Errorf("WHIP DELETE: %d", code)
	}
}

// TestWHEPManyViewers: 100 concurrent WHEP viewers of one SRT stream all
// receive keyframes and frames.
func TestWHEPManyViewers(t *testing.T) {
	requireTools(t)
	s := startServer(t, t.TempDir())
	publish(t, s, pubOpts{streamID: "publish:live/many"})
	waitPlaylist(t, s.url("/live/many/video.m3u8"), 1, 30*time.Second)

	const n = 100
	rss0, cpu0 := procUsage(t, s.cmd.Process.Pid)
	viewers := make([]*whepViewer, n)
	for i := range viewers {
		v, code, body := playWHEP(t, s.url("/live/many/whep"))
		if code != http.StatusCreated {
			t.Fatalf("viewer %d: %d %s", i, code, body)
		}
		viewers[i] = v
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		ready := 0
		for _, v := range viewers {
			if v.keyframes.Load() >= 3 {
				ready++
			}
		}
		if ready == n {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after 30 s only %d of %d viewers had 3 keyframes", ready, n)
		}
		time.Sleep(200 * time.Millisecond)
	}
	min, max := int64(1<<62), int64(0)
	for _, v := range viewers {
		f := v.videoFrames.Load()
		min, max = minInt(min, f), maxInt(max, f)
	}
	t.Logf("%d viewers: every one has >= 3 keyframes; frames per viewer %d..%d", n, min, max)
	// What the server process spends on them (a reading, not a check).
	rss1, cpu1 := procUsage(t, s.cmd.Process.Pid)
	time.Sleep(2 * time.Second)
	_, cpu2 := procUsage(t, s.cmd.Process.Pid)
	t.Logf("server: +%.0f KB RSS per viewer; %.1f ms CPU per viewer-second at 100 viewers (joining cost %.2f s CPU)",
		float64(rss1-rss0)/n, (cpu2-cpu1).Seconds()*1000/2/n, (cpu1 - cpu0).Seconds())
	if min < 30 {
		t.Errorf("a viewer got only %d frames", min)
	}
}

func minInt(a, b int64) int64 {
	if a < b {
		return a
	}
	return b
}

func maxInt(a, b int64) int64 {
	if a > b {
		return a
	}
	return b
}

// TestWHEPViewersClosedWhenStreamEnds: once the grace period is over and the
// stream ends, its WHEP viewers are told (their sessions close) instead of
// being left on a frozen picture.
func TestWHEPViewersClosedWhenStreamEnds(t *testing.T) {
	requireTools(t)
	t.Parallel()
	s := startServer(t, t.TempDir(), "-grace", "1s")
	pub := publish(t, s, pubOpts{streamID: "publish:live/bye"})
	waitPlaylist(t, s.url("/live/bye/video.m3u8"), 1, 30*time.Second)
	v, code, body := playWHEP(t, s.url("/live/bye/whep"))
	if code != http.StatusCreated {
		t.Fatalf("WHEP: %d %s", code, body)
	}
	deadline := time.Now().Add(20 * time.Second)
	for v.videoFrames.Load() == 0 {
		if time.Now().After(deadline) {
			t.Fatal("viewer never got a frame")
		}
		time.Sleep(50 * time.Millisecond)
	}
	pub.kill()
	for !strings.Contains(s.log.String(), `reason="stream ended"`) {
		if time.Now().After(deadline) {
			t.Fatalf("viewer session not closed after the stream ended")
		}
		time.Sleep(100 * time.Millisecond)
	}
	// The resource is gone.
	if code := deleteResource(t, s.url(v.location)); code != http.StatusNotFound {
		t.Errorf("DELETE after the stream ended: %d, want 404", code)
	}
}

// procUsage reads a process's resident memory (KB) and CPU time from /proc.
func procUsage(t *testing.T, pid int) (rssKB int64, cpu time.Duration) {
	t.Helper()
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(status), "\n") {
		if f := strings.Fields(line); len(f) >= 2 && f[0] == "VmRSS:" {
			fmt.Sscan(f[1], &rssKB)
		}
	}
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		t.Fatal(err)
	}
	// Fields after the command name (which may hold spaces): utime is the 12th, stime the 13th.
	f := strings.Fields(string(stat[strings.LastIndexByte(string(stat), ')')+2:]))
	var ut, st int64
	fmt.Sscan(f[11], &ut)
	fmt.Sscan(f[12], &st)
	return rssKB, time.Duration(ut+st) * 10 * time.Millisecond // USER_HZ = 100
}

// TestWHEPAcrossPublisherReconnect: a WHEP viewer stays connected while the
// SRT publisher is killed and comes back within the grace period; frames
// resume on the same session and RTP timestamps never go back or jump.
func TestWHEPAcrossPublisherReconnect(t *testing.T) {
	requireTools(t)
	t.Parallel()
	s := startServer(t, t.TempDir())
	pub := publish(t, s, pubOpts{streamID: "publish:live/rec"})
	waitPlaylist(t, s.url("/live/rec/video.m3u8"), 1, 30*time.Second)
	v, code, body := playWHEP(t, s.url("/live/rec/whep"))
	if code != http.StatusCreated {
		t.Fatalf("WHEP: %d %s", code, body)
	}
	deadline := time.Now().Add(20 * time.Second)
	for v.videoFrames.Load() < 30 {
		if time.Now().After(deadline) {
			t.Fatal("viewer got no frames before the reconnect")
		}
		time.Sleep(50 * time.Millisecond)
	}
	pub.kill()
	time.Sleep(3 * time.Second)
	before := v.videoFrames.Load()
	publish(t, s, pubOpts{streamID: "publish:live/rec"})
	deadline = time.Now().Add(20 * time.Second)
	for v.videoFrames.Load() < before+60 {
		if time.Now().After(deadline) {
			t.Fatalf("frames did not resume after the reconnect: %d then %d", before, v.videoFrames.Load())
		}
		time.Sleep(50 * time.Millisecond)
	}
	if b := v.backwards.Load(); b != 0 {
		t.Errorf("%d frames went back in RTP time across the reconnect", b)
	}
	if m := v.maxStep.Load(); m > 2*3000 {
		t.Errorf("RTP timestamps jumped by %d ticks across the reconnect (want the stream's continuous timeline)", m)
	}
	t.Logf("viewer kept its session: %d frames before, %d after; largest RTP step %d ticks", before, v.videoFrames.Load()-before, v.maxStep.Load())
}

// TestWHEPRefusesH265: WebRTC viewers cannot take H.265; the refusal says
// why and what to do, and LL-HLS keeps serving the stream.
func TestWHEPRefusesH265(t *testing.T) {
	requireTools(t)
	t.Parallel()
	s := startServer(t, t.TempDir())
	publish(t, s, pubOpts{codec: "h265", streamID: "publish:live/hevc"})
	waitPlaylist(t, s.url("/live/hevc/video.m3u8"), 1, 30*time.Second)
	_, code, body := playWHEP(t, s.url("/live/hevc/whep"))
	if code != http.StatusForbidden || !strings.Contains(body, "H.265") || !strings.Contains(body, "LL-HLS") {
		t.Fatalf("WHEP of an H.265 stream: %d %q", code, body)
	}
}

// TestWHEPRefusesBFrames: H.264 with B-frames cannot be carried over
// WebRTC; even the first viewer gets a clear refusal, LL-HLS plays it.
func TestWHEPRefusesBFrames(t *testing.T) {
	requireTools(t)
	t.Parallel()
	s := startServer(t, t.TempDir())
	publish(t, s, pubOpts{bframes: true, streamID: "publish:live/bf"})
	waitPlaylist(t, s.url("/live/bf/video.m3u8"), 1, 30*time.Second)
	_, code, body := playWHEP(t, s.url("/live/bf/whep"))
	if code != http.StatusForbidden || !strings.Contains(body, "B-frames") {
		t.Fatalf("WHEP of a stream with B-frames: %d %q", code, body)
	}
}
