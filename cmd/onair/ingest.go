package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"sync/atomic"
	"time"

	"github.com/onair/onair/actors"
	"github.com/onair/onair/actors/host"
	"github.com/onair/onair/actors/stream"
	"github.com/onair/onair/media/mpegts"
	"github.com/onair/onair/media/srt"
)

// requestTimeout bounds a protocol goroutine's wait on a stream actor.
const requestTimeout = 2 * time.Second

// srtIngest bridges SRT publishers to stream actors: it demuxes their
// MPEG-TS into frames and sends them to the stream.
type srtIngest struct {
	host   *host.Host
	stream stream.Config
	log    *slog.Logger
	ctx    context.Context
	seq    atomic.Uint64
}

func (in *srtIngest) ensureStream(name string) error {
	return in.host.Ensure(stream.Address(name), func() actors.Behaviour { return stream.New(name, in.stream) })
}

// Admit refuses early what would fail anyway: reading over SRT (not yet
// offered) and a second publisher on a live stream.
func (in *srtIngest) Admit(id srt.StreamID, remote net.Addr) error {
	if id.Mode != srt.ModePublish {
		return srt.Rejectf(srt.RejectBadMode, "%s: reading over SRT is not offered yet; play http://<host>/%s/index.m3u8 (LL-HLS)", id.Name, id.Name)
	}
	if err := in.ensureStream(id.Name); err != nil {
		return srt.Rejectf(srt.RejectOverload, "%s: %v", id.Name, err)
	}
	res, err := in.host.Request(stream.Address(id.Name), stream.CanPublish{}, requestTimeout)
	if err != nil {
		return srt.Rejectf(srt.RejectOverload, "%s: stream busy: %v", id.Name, err)
	}
	if e, _ := res.(error); e != nil {
		return &srt.Reject{Code: srt.RejectConflict, Err: e}
	}
	return nil
}

func (in *srtIngest) ServeRead(id srt.StreamID, conn *srt.Conn) { _ = conn.Close() }

func (in *srtIngest) ServePublish(id srt.StreamID, conn *srt.Conn) {
	defer conn.Close()
	pub := fmt.Sprintf("srt-%d-%s", in.seq.Add(1), conn.RemoteAddr())
	log := in.log.With("stream", id.Name, "publisher", pub)
	addr := stream.Address(id.Name)
	if err := in.ensureStream(id.Name); err != nil {
		log.Error("publish refused", "err", err)
		return
	}
	res, err := in.host.Request(addr, stream.Connect{PublisherID: pub, Protocol: "srt", Remote: conn.RemoteAddr().String()}, requestTimeout)
	if err != nil {
		log.Error("publish refused: stream did not answer", "err", err)
		return
	}
	if r := res.(stream.ConnectReply); r.Err != nil {
		// Two callers passed Admit at once; the second loses here.
		log.Warn("publish refused", "err", r.Err)
		return
	}
	log.Info("publisher connected", "remote", conn.RemoteAddr())
	start := time.Now()
	reason := in.pump(id.Name, pub, conn, log)
	in.host.Send(addr, stream.Gone{PublisherID: pub, Reason: reason})
	st := conn.Stats()
	log.Info("publisher disconnected", "reason", reason, "after", time.Since(start).Round(time.Millisecond),
		"bytes", st.BytesReceived, "lost", st.PacketsLost, "dropped", st.PacketsDropped)
}

// pump demuxes until the connection ends and returns why it ended.
func (in *srtIngest) pump(name, pub string, conn *srt.Conn, log *slog.Logger) string {
	d := mpegts.NewDemuxer(in.ctx, &messageReader{conn: conn}, mpegts.WithLogger(log))
	addr := stream.Address(name)
	tracks := map[uint16]string{}
	var video, audio bool
	for {
		tf, err := d.ReadFrame()
		if err != nil {
			st := d.Stats()
			log.Debug("demux stats", "frames", st.Frames, "dropped", st.Dropped, "resyncs", st.Resyncs, "cc_errors", st.CCErrors)
			switch {
			case errors.Is(err, io.EOF):
				return "publisher closed the connection"
			case errors.Is(err, mpegts.ErrNoSync):
				log.Warn("publisher is not sending MPEG-TS", "err", err)
				return "not MPEG-TS"
			case in.ctx.Err() != nil:
				return "server shutting down"
			}
			return err.Error()
		}
		track, ok := tracks[tf.PID]
		if !ok {
			switch {
			case tf.Frame.Codec.IsVideo() && !video:
				track, video = "video", true
			case tf.Frame.Codec.IsAudio() && !audio:
				track, audio = "audio", true
			default:
				log.Info("extra elementary stream ignored", "pid", tf.PID, "codec", tf.Frame.Codec.String())
			}
			tracks[tf.PID] = track
		}
		if track == "" {
			continue
		}
		var cfg = tf.Config
		if cfg != nil {
			c := *cfg
			cfg = &c
		}
		_ = in.host.Send(addr, stream.Frame{PublisherID: pub, Track: track, Frame: tf.Frame, Config: cfg})
	}
}

// messageReader turns SRT's one-message-per-Read into a byte stream.
type messageReader struct {
	conn *srt.Conn
	buf  [srt.MaxMessageSize]byte
	r, w int
}

func (m *messageReader) Read(p []byte) (int, error) {
	if m.r == m.w {
		n, err := m.conn.Read(m.buf[:])
		if err != nil {
			return 0, err // ErrPeerGone, ErrPeerIdle or ErrClosed: the reason is logged
		}
		m.r, m.w = 0, n
	}
	n := copy(p, m.buf[m.r:m.w])
	m.r += n
	return n, nil
}
