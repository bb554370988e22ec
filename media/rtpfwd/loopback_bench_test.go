package rtpfwd

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/pion/rtp"
	"github.com/pion/rtp/codecs"
	"github.com/pion/webrtc/v4"

	"github.com/onair/onair/media/av"
	"github.com/onair/onair/media/h264"
)

// viewerHostEnv makes the test binary a process hosting receiving
// PeerConnections for BenchmarkLoopbackViewers, so the benchmark's CPU
// time is the sending side's alone.
const viewerHostEnv = "RTPFWD_VIEWER_HOST"

const loopbackSeconds = 5

// loopbackViewers is 100, or RTPFWD_LOOPBACK_VIEWERS.
var loopbackViewers = func() int {
	if n, err := strconv.Atoi(os.Getenv("RTPFWD_LOOPBACK_VIEWERS")); err == nil && n > 0 {
		return n
	}
	return 100
}()

// viewerHost speaks a line protocol on stdin/stdout: it prints one offer
// (JSON) per viewer, reads one answer per viewer, then counts what arrives
// until stdin says "stop", and prints "packets bytes".
func viewerHost() int {
	fail := func(err error) int { fmt.Fprintln(os.Stderr, "viewer host:", err); return 1 }
	n, err := strconv.Atoi(os.Getenv(viewerHostEnv))
	if err != nil {
		return fail(err)
	}
	api, err := loopbackAPI()
	if err != nil {
		return fail(err)
	}
	var pkts, bytes atomic.Int64
	pcs := make([]*webrtc.PeerConnection, n)
	out := json.NewEncoder(os.Stdout)
	for i := range pcs {
		pc, err := api.NewPeerConnection(webrtc.Configuration{})
		if err != nil {
			return fail(err)
		}
		pcs[i] = pc
		if _, err := pc.AddTransceiverFromKind(webrtc.RTPCodecTypeVideo, webrtc.RTPTransceiverInit{Direction: webrtc.RTPTransceiverDirectionRecvonly}); err != nil {
			return fail(err)
		}
		pc.OnTrack(func(tr *webrtc.TrackRemote, _ *webrtc.RTPReceiver) {
			buf := make([]byte, 1500)
			for {
				m, _, err := tr.Read(buf)
				if err != nil {
					return
				}
				pkts.Add(1)
				bytes.Add(int64(m))
			}
		})
		offer, err := pc.CreateOffer(nil)
		if err != nil {
			return fail(err)
		}
		gathered := webrtc.GatheringCompletePromise(pc)
		if err := pc.SetLocalDescription(offer); err != nil {
			return fail(err)
		}
		<-gathered
		if err := out.Encode(pc.LocalDescription()); err != nil {
			return fail(err)
		}
	}
	in := bufio.NewReader(os.Stdin)
	dec := json.NewDecoder(in)
	for _, pc := range pcs {
		var answer webrtc.SessionDescription
		if err := dec.Decode(&answer); err != nil {
			return fail(err)
		}
		if err := pc.SetRemoteDescription(answer); err != nil {
			return fail(err)
		}
	}
	_, _ = io.ReadAll(io.MultiReader(dec.Buffered(), in)) // "stop", then EOF
	fmt.Printf("%d %d\n", pkts.Load(), bytes.Load())
	for _, pc := range pcs {
		_ = pc.Close()
	}
	return 0
}

// BenchmarkLoopbackViewers streams the 2 Mbit/s clip in real time for 5 s
// to 100 pion viewers in a child process over 127.0.0.1, through a
// Forwarder and, for comparison, pion's TrackLocalStaticRTP, and reports
// the sender's CPU seconds per viewer per second. Run it with
// -benchtime=1x.
func BenchmarkLoopbackViewers(b *testing.B) {
	frames := benchClip(b)
	cfg, _ := h264.Config(frames[0].NALUs)
	for _, kind := range []string{"forwarder", "static"} {
		b.Run(kind, func(b *testing.B) {
			for range b.N {
				var track webrtc.TrackLocal
				var write func(i int, fr av.Frame)
				var fwd *Forwarder
				if kind == "forwarder" {
					fwd, _ = NewVideo("video", "live/bench", av.H264)
					track = fwd
					write = func(_ int, fr av.Frame) {
						if err := fwd.WriteFrame(fr, &cfg); err != nil {
							b.Fatal(err)
						}
					}
				} else {
					st, _ := webrtc.NewTrackLocalStaticRTP(h264Capability, "video", "live/bench")
					track = st
					packetizer := rtp.NewPacketizer(mtu, 106, 1, &codecs.H264Payloader{}, rtp.NewRandomSequencer(), 90000)
					annexB := make([][]byte, len(frames))
					for i, fr := range frames {
						for _, u := range fr.NALUs {
							annexB[i] = append(append(annexB[i], 0, 0, 0, 1), u...)
						}
					}
					write = func(i int, _ av.Frame) {
						for _, p := range packetizer.Packetize(annexB[i%len(frames)], frameDuration) {
							_ = st.WriteRTP(p)
						}
					}
				}
				runLoopback(b, track, fwd, frames, write)
			}
		})
	}
}

func runLoopback(b *testing.B, track webrtc.TrackLocal, fwd *Forwarder, frames []av.Frame, write func(int, av.Frame)) {
	api := newAPI(b)
	cmd := exec.Command(os.Args[0], "-test.run=^$", "-test.bench=^$")
	cmd.Env = append(os.Environ(), fmt.Sprintf("%s=%d", viewerHostEnv, loopbackViewers))
	cmd.Stderr = os.Stderr
	stdin, _ := cmd.StdinPipe()
	stdout, _ := cmd.StdoutPipe()
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	defer func() { _ = cmd.Wait() }()
	dec := json.NewDecoder(stdout)
	enc := json.NewEncoder(stdin)
	connected := make(chan struct{}, loopbackViewers)
	// All offers first: the host writes them all before reading answers.
	offers := make([]webrtc.SessionDescription, loopbackViewers)
	for i := range offers {
		if err := dec.Decode(&offers[i]); err != nil {
			b.Fatal(err)
		}
	}
	for _, offer := range offers {
		pc, err := api.NewPeerConnection(webrtc.Configuration{})
		if err != nil {
			b.Fatal(err)
		}
		defer pc.Close()
		pc.OnConnectionStateChange(func(s webrtc.PeerConnectionState) {
			if s == webrtc.PeerConnectionStateConnected {
				connected <- struct{}{}
			}
		})
		s, err := pc.AddTrack(track)
		if err != nil {
			b.Fatal(err)
		}
		if fwd != nil {
			go func() { _ = ReadRTCP(s, fwd) }()
		} else {
			go func() {
				buf := make([]byte, 1500)
				for {
					if _, _, err := s.Read(buf); err != nil {
						return
					}
				}
			}()
		}
		if err := pc.SetRemoteDescription(offer); err != nil {
			b.Fatal(err)
		}
		answer, err := pc.CreateAnswer(nil)
		if err != nil {
			b.Fatal(err)
		}
		gathered := webrtc.GatheringCompletePromise(pc)
		if err := pc.SetLocalDescription(answer); err != nil {
			b.Fatal(err)
		}
		<-gathered
		if err := enc.Encode(pc.LocalDescription()); err != nil {
			b.Fatal(err)
		}
	}
	for range loopbackViewers {
		select {
		case <-connected:
		case <-time.After(time.Minute):
			b.Fatal("viewers did not connect")
		}
	}
	if fwd != nil {
		waitReady(b, fwd, loopbackViewers)
	} else {
		time.Sleep(time.Second) // let SRTP come up: TrackLocalStaticRTP drops writes until then
	}

	nframes := loopbackSeconds * 30
	var before, after syscall.Rusage
	b.ResetTimer()
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &before)
	start := time.Now()
	for i := range nframes {
		time.Sleep(time.Until(start.Add(time.Duration(i) * time.Second / 30)))
		fr := frames[i%len(frames)]
		fr.PTS = int64(i) * frameDuration
		fr.DTS = fr.PTS
		write(i, fr)
	}
	wall := time.Since(start).Seconds()
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &after)
	b.StopTimer()
	time.Sleep(200 * time.Millisecond) // the last packets in flight
	_, _ = io.WriteString(stdin, "stop\n")
	_ = stdin.Close()
	var pkts, bytes int64
	if _, err := fmt.Fscan(bufio.NewReader(io.MultiReader(dec.Buffered(), stdout)), &pkts, &bytes); err != nil {
		b.Fatal(err)
	}
	cpu := tv(after.Utime) + tv(after.Stime) - tv(before.Utime) - tv(before.Stime)
	b.ReportMetric(cpu/(float64(loopbackViewers)*wall)*1e3, "cpu-ms/viewer/s")
	b.ReportMetric(cpu/wall, "cores")
	b.ReportMetric(float64(bytes)*8/wall/float64(loopbackViewers)/1e6, "Mbit/s/viewer")
	b.ReportMetric(float64(pkts)/wall, "pkts/s")
}

func tv(t syscall.Timeval) float64 { return float64(t.Sec) + float64(t.Usec)/1e6 }
