package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"github.com/onair/onair/actors/host"
	"github.com/onair/onair/actors/packager"
	"github.com/onair/onair/actors/stream"
	"github.com/onair/onair/events"
	"github.com/onair/onair/events/blob"
	"github.com/onair/onair/events/bus"
	"github.com/onair/onair/events/store"
	"github.com/onair/onair/media/llhls"
	"github.com/onair/onair/media/srt"
	"github.com/onair/onair/media/webrtc"
)

func serveMain(args []string) int {
	cfg, err := parseConfig(args)
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "onair serve: %v\n", err)
		return 2
	}
	log := cfg.logger()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := serve(ctx, cfg, log, nil); err != nil {
		log.Error("onair stopped", "err", err)
		return 1
	}
	return 0
}

// serve runs the server until ctx is done, then shuts down gracefully:
// ingest stops, open segments are finished and recorded, the log is
// flushed. ready, when set, receives the bound addresses.
func serve(ctx context.Context, cfg *config, log *slog.Logger, ready func(http, srt net.Addr)) error {
	if err := os.MkdirAll(cfg.DataDir, 0o755); err != nil {
		return fmt.Errorf("data dir: %w", err)
	}
	evbus := bus.New(log)
	defer evbus.Close()
	elog, err := store.Open(filepath.Join(cfg.DataDir, "events.db"), store.Options{
		OnCommit: func(evs []*events.Event) {
			if err := evbus.Publish(evs...); err != nil {
				log.Warn("event bus publish failed", "err", err)
			}
		},
	})
	if err != nil {
		return fmt.Errorf("event log: %w", err)
	}
	defer elog.Close()
	c, err := newCore(cfg, log, elog)
	if err != nil {
		return err
	}
	h, hls, streamCfg := c.host, c.hls, c.streamCfg

	// HTTP first, so a port conflict fails before publishers are accepted.
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Cache-Control", "no-store")
		_ = json.NewEncoder(w).Encode(map[string]any{"status": "ok", "version": version})
	})
	mux.HandleFunc("GET /api/v1/streams/{stream}", func(w http.ResponseWriter, r *http.Request) {
		name := "live/" + r.PathValue("stream")
		res, err := h.Request(stream.Address(name), stream.GetStatus{}, requestTimeout)
		if err != nil {
			http.Error(w, fmt.Sprintf("stream %q is not known to this server", name), http.StatusNotFound)
			return
		}
		st := res.(stream.Status)
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Cache-Control", "no-store")
		_ = json.NewEncoder(w).Encode(map[string]any{
			"name": st.Name, "state": st.State.String(), "session": st.Session, "publisher": st.Publisher,
			"protocol": st.Protocol, "media_time": st.MediaTime, "frames": st.Frames, "dropped": st.Dropped,
		})
	})
	mux.Handle("/live/", hls)
	var rtcOut *rtc
	var rtcHandler *webrtc.Handler
	if cfg.WebRTCUDP != "" {
		engine, err := webrtc.NewEngine(webrtc.Config{UDPAddr: cfg.WebRTCUDP, TCPAddr: cfg.WebRTCTCP,
			PublicIPs: list(cfg.PublicIPs), ICEServers: iceServers(cfg.ICEServers), Logger: log})
		if err != nil {
			return fmt.Errorf("WebRTC: %w", err)
		}
		defer engine.Close()
		rtcOut = newRTC(ctx, h, streamCfg, log)
		c.delivery.live = rtcOut.live
		c.delivery.keyframe = rtcOut.requestKeyframe
		c.delivery.ended = rtcOut.ended
		rtcHandler = webrtc.NewHandler(engine, rtcOut, rtcOut)
		for _, p := range []string{"/live/{name}/whip", "/live/{name}/whip/{id}", "/live/{name}/whep", "/live/{name}/whep/{id}"} {
			mux.Handle(p, rtcHandler)
		}
	}
	hsrv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second, ErrorLog: slog.NewLogLogger(log.Handler(), slog.LevelWarn)}
	hsrv.Protocols = new(http.Protocols)
	hsrv.Protocols.SetHTTP1(true)
	hsrv.Protocols.SetHTTP2(true)
	hsrv.Protocols.SetUnencryptedHTTP2(true) // h2c for players and proxies that speak it
	hln, err := net.Listen("tcp", cfg.HTTPAddr)
	if err != nil {
		return fmt.Errorf("HTTP listen %s: %w", cfg.HTTPAddr, err)
	}
	httpErr := make(chan error, 1)
	go func() {
		if cfg.TLSCert != "" {
			httpErr <- hsrv.ServeTLS(hln, cfg.TLSCert, cfg.TLSKey)
		} else {
			httpErr <- hsrv.Serve(hln)
		}
	}()

	ingestCtx, stopIngest := context.WithCancel(context.Background())
	defer stopIngest()
	var srtSrv *srt.Server
	srtDone := make(chan error, 1)
	if cfg.SRTAddr != "" {
		in := &srtIngest{host: h, stream: streamCfg, log: log, ctx: ingestCtx}
		srtSrv, err = srt.NewServer(srt.Config{Addr: cfg.SRTAddr, Passphrase: cfg.SRTPassphrase, Latency: cfg.SRTLatency, Logger: log}, in)
		if err == nil {
			err = srtSrv.Listen()
		}
		if err != nil {
			hsrv.Close()
			return fmt.Errorf("SRT: %w", err)
		}
		go func() { srtDone <- srtSrv.Serve(ingestCtx) }()
	} else {
		srtDone <- nil
	}
	var srtAddr net.Addr
	if srtSrv != nil {
		srtAddr = srtSrv.Addr()
	}
	log.Info("onair serving", "version", version, "http", hln.Addr().String(), "srt", addrString(srtAddr),
		"webrtc", cfg.WebRTCUDP, "data", cfg.DataDir, "part_target", cfg.PartTarget, "grace", cfg.Grace)
	if ready != nil {
		ready(hln.Addr(), srtAddr)
	}

	select {
	case <-ctx.Done():
		log.Info("shutting down: finishing open segments")
	case err := <-httpErr:
		stopIngest()
		return fmt.Errorf("HTTP server: %w", err)
	}

	// 1. No new media: close publishers and viewers.
	stopIngest()
	if rtcHandler != nil {
		rtcHandler.Close()
		rtcOut.close()
	}
	if srtSrv != nil {
		_ = srtSrv.Close()
	}
	<-srtDone
	// 2. End every stream: packagers flush their open segments.
	for _, name := range h.Names("stream/") {
		if _, err := h.Request(name, stream.Shutdown{Reason: "server shutdown"}, 5*time.Second); err != nil {
			log.Warn("stream did not finish", "actor", name, "err", err)
		}
	}
	// 3. Let each stage empty its mailbox in order, then the cold path.
	for _, prefix := range []string{"stream/", "packager/", "layer/"} {
		h.StopPrefix(prefix)
	}
	h.Shutdown()
	// 4. Players get their final playlists; then HTTP stops.
	sctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	_ = hsrv.Shutdown(sctx)
	log.Info("onair stopped cleanly")
	return nil
}

func iceServers(s string) []webrtc.ICEServer {
	var out []webrtc.ICEServer
	for _, u := range list(s) {
		out = append(out, webrtc.ICEServer{URLs: []string{u}})
	}
	return out
}

func addrString(a net.Addr) string {
	if a == nil {
		return "off"
	}
	return a.String()
}

// core is the media engine without network listeners: actors, LL-HLS
// delivery and the recording path. Benchmarks drive it directly.
type core struct {
	host      *host.Host
	hls       *llhls.Server
	delivery  *delivery
	streamCfg stream.Config
}

func newCore(cfg *config, log *slog.Logger, elog *store.Store) (*core, error) {
	blobs, err := blob.Open(filepath.Join(cfg.DataDir, "blobs"))
	if err != nil {
		return nil, fmt.Errorf("blob store: %w", err)
	}
	h := host.New(host.Config{Log: elog, Logger: log, Seed: uint64(time.Now().UnixNano())})
	hlsCfg := llhls.Config{PartTarget: cfg.PartTarget, TargetDuration: cfg.TargetDuration, Window: cfg.Window, Logger: log}
	hls := llhls.NewServer(log)
	d := &delivery{host: h, hls: hls, cfg: hlsCfg, blobs: blobs, elog: elog, now: time.Now, log: log, groups: map[string]*llhls.Group{}}
	d.register(h)
	return &core{host: h, hls: hls, delivery: d,
		streamCfg: stream.Config{Grace: cfg.Grace, Packager: packager.Config{PartTarget: cfg.PartTarget, MinSegment: cfg.MinSegment}}}, nil
}
