package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"testing"
	"time"

	"github.com/onair/onair/actors"
	"github.com/onair/onair/actors/stream"
	"github.com/onair/onair/events/store"
	"github.com/onair/onair/media/llhls"
	"github.com/onair/onair/media/mpegts"
	"github.com/onair/onair/media/webrtc"
)

// fixtureFrames demuxes the 2 s test fixture (320x240 H.264, GOP 30 at 30 fps, + AAC).
func fixtureFrames(tb testing.TB) []stream.Frame {
	return fixtureFramesFrom(tb, "testdata/h264_aac.ts")
}

func fixtureFramesFrom(tb testing.TB, file string) []stream.Frame {
	tb.Helper()
	data, err := os.ReadFile(file)
	if err != nil {
		tb.Fatal(err)
	}
	d := mpegts.NewDemuxer(context.Background(), bytes.NewReader(data))
	var out []stream.Frame
	for {
		tf, err := d.ReadFrame()
		if err == io.EOF {
			return out
		}
		if err != nil {
			tb.Fatal(err)
		}
		tr := "audio"
		if tf.Frame.Codec.IsVideo() {
			tr = "video"
		}
		out = append(out, stream.Frame{Track: tr, Frame: tf.Frame, Config: tf.Config})
	}
}

func benchCore(tb testing.TB) (*core, func()) {
	dir := tb.(interface{ TempDir() string }).TempDir()
	cfg, err := parseConfig([]string{"-data", dir})
	if err != nil {
		tb.Fatal(err)
	}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	elog, err := store.Open(filepath.Join(dir, "events.db"), store.Options{})
	if err != nil {
		tb.Fatal(err)
	}
	c, err := newCore(cfg, log, elog)
	if err != nil {
		tb.Fatal(err)
	}
	return c, func() { c.host.Shutdown(); elog.Close() }
}

func goLive(tb testing.TB, c *core, name, pub string) {
	if err := c.host.Ensure(stream.Address(name), func() actors.Behaviour { return stream.New(name, c.streamCfg) }); err != nil {
		tb.Fatal(err)
	}
	res, err := c.host.Request(stream.Address(name), stream.Connect{PublisherID: pub, Protocol: "bench"}, time.Second)
	if err != nil || res.(stream.ConnectReply).Err != nil {
		tb.Fatalf("connect: %v %v", err, res)
	}
}

// BenchmarkIngestToPart measures the server's share of LL-HLS latency: from
// the moment the frame that completes a part reaches the stream actor until
// that part is available to blocked HTTP requests (actor hops, muxing,
// rendition update, waking waiters). The part's own duration (200 ms) comes
// on top and is set by -part-target.
func BenchmarkIngestToPart(b *testing.B) {
	frames := fixtureFrames(b)
	c, done := benchCore(b)
	defer done()
	const name = "live/lat"
	goLive(b, c, name, "p")
	var lat []time.Duration
	var r *llhls.Rendition
	var span int64 // media time the fixture covers, to loop it
	for _, f := range frames {
		span = max(span, f.Frame.DTS-frames[0].Frame.DTS+3000)
	}
	videoSeen := 0
	loop := int64(0)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		f := frames[i%len(frames)]
		if i > 0 && i%len(frames) == 0 {
			loop++
		}
		f.PublisherID = "p"
		f.Frame.DTS += loop * span
		f.Frame.PTS += loop * span
		if f.Track != "video" {
			c.host.Send(stream.Address(name), f)
			continue
		}
		videoSeen++
		start := time.Now()
		c.host.Send(stream.Address(name), f)
		// Every 6th video frame (200 ms at 30 fps) completes the part before it.
		if videoSeen > 1 && (videoSeen-1)%6 == 0 {
			k := (videoSeen-1)/6 - 1 // index of the completed part
			if r == nil {
				if g := c.hls.Group(name); g != nil {
					r, _ = g.Rendition("video")
				}
			}
			if r == nil {
				continue
			}
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			if err := r.Wait(ctx, uint64(k/5), k%5); err != nil {
				b.Fatalf("part %d.%d: %v", k/5, k%5, err)
			}
			cancel()
			lat = append(lat, time.Since(start))
		}
	}
	b.StopTimer()
	if len(lat) > 0 {
		slices.Sort(lat)
		b.ReportMetric(float64(lat[len(lat)/2].Microseconds()), "p50-µs")
		b.ReportMetric(float64(lat[len(lat)*95/100].Microseconds()), "p95-µs")
	}
}

// BenchmarkMemoryPerStream plays 40 s of media into several live streams
// (more than the 30 s playlist window, so each holds a full window) and
// reports the heap each one holds. Memory is dominated by the window:
// about 2 × window × bitrate (media stays one extra window for players
// still holding the previous playlist); the fixture runs at ~470 kbit/s.
func BenchmarkMemoryPerStream(b *testing.B) {
	frames := fixtureFrames(b)
	const streams = 8
	for i := 0; i < b.N; i++ {
		c, done := benchCore(b)
		runtime.GC()
		var m0, m1 runtime.MemStats
		runtime.ReadMemStats(&m0)
		for s := 0; s < streams; s++ {
			name := fmt.Sprintf("live/m%d", s)
			goLive(b, c, name, "p")
			for loop := int64(0); loop < 20; loop++ {
				for _, f := range frames {
					f.PublisherID = "p"
					f.Frame.DTS += loop * 180000
					f.Frame.PTS += loop * 180000
					c.host.Send(stream.Address(name), f)
				}
			}
			res, _ := c.host.Request(stream.Address(name), stream.GetStatus{}, 10*time.Second)
			_ = res
		}
		time.Sleep(200 * time.Millisecond) // let packagers finish their mailboxes
		c.host.Drain()
		runtime.GC()
		runtime.ReadMemStats(&m1)
		b.ReportMetric(float64(m1.HeapInuse-m0.HeapInuse)/streams/1e6, "MB/stream")
		done()
	}
}

// BenchmarkIngestToWHEP measures the server's share of WebRTC latency:
// from a frame reaching the stream actor to its last RTP packet arriving
// at a pion WHEP viewer over loopback (stream actor → forwarder goroutine
// → packetizer → SRTP → UDP → viewer). Frames are sent one at a time.
func BenchmarkIngestToWHEP(b *testing.B) {
	frames := fixtureFramesFrom(b, "testdata/h264_nobf_aac.ts") // WebRTC carries no B-frames
	c, done := benchCore(b)
	defer done()
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	engine, err := webrtc.NewEngine(webrtc.Config{UDPAddr: "127.0.0.1:0", TCPAddr: webrtc.TCPOff, Logger: log})
	if err != nil {
		b.Fatal(err)
	}
	defer engine.Close()
	r := newRTC(context.Background(), c.host, c.streamCfg, log)
	c.delivery.live = r.live
	h := webrtc.NewHandler(engine, r, r)
	defer h.Close()
	defer r.close()
	mux := http.NewServeMux()
	mux.Handle("/live/{name}/whep", h)
	mux.Handle("/live/{name}/whep/{id}", h)
	srv := httptest.NewServer(mux)
	defer srv.Close()

	const name = "live/wlat"
	goLive(b, c, name, "p")
	send := func(i int) stream.Frame {
		f := frames[i%len(frames)]
		loop := int64(i / len(frames))
		f.PublisherID = "p"
		f.Frame.DTS += loop * 180000
		f.Frame.PTS += loop * 180000
		c.host.Send(stream.Address(name), f)
		return f
	}
	// Prime the stream so the viewer can join, then join.
	i := 0
	for ; i < 10; i++ {
		send(i)
	}
	v, code, body := playWHEP(b, srv.URL+"/live/wlat/whep")
	if code != http.StatusCreated {
		b.Fatalf("WHEP: %d %s", code, body)
	}
	// Feed until the viewer has started (after the next keyframe).
	for v.videoFrames.Load() == 0 {
		send(i)
		i++
		time.Sleep(33 * time.Millisecond)
	}
	var lat []time.Duration
	b.ResetTimer()
	for n := 0; n < b.N; n++ {
		f := send(i)
		i++
		if f.Track != "video" {
			n--
			continue
		}
		before := v.videoFrames.Load()
		start := time.Now()
		for v.videoFrames.Load() == before {
			if time.Since(start) > 2*time.Second {
				b.Fatalf("frame %d never reached the viewer", i)
			}
			runtime.Gosched()
		}
		lat = append(lat, time.Since(start))
	}
	b.StopTimer()
	slices.Sort(lat)
	b.ReportMetric(float64(lat[len(lat)/2].Microseconds()), "p50-µs")
	b.ReportMetric(float64(lat[len(lat)*95/100].Microseconds()), "p95-µs")
}
