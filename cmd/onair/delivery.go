package main

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/onair/onair/actors"
	"github.com/onair/onair/actors/host"
	"github.com/onair/onair/actors/layer"
	"github.com/onair/onair/actors/packager"
	"github.com/onair/onair/actors/stream"
	"github.com/onair/onair/actors/viewer"
	"github.com/onair/onair/events"
	"github.com/onair/onair/events/blob"
	"github.com/onair/onair/media/llhls"
)

// delivery carries out the packager's and layer's effects: the hot path
// into LL-HLS renditions (memory only) and the cold path into the blob
// store and the log (fsynced, in order per stream).
type delivery struct {
	host  *host.Host
	hls   *llhls.Server
	cfg   llhls.Config
	blobs *blob.Store
	elog  host.Log
	now   func() time.Time
	log   *slog.Logger

	// live receives every frame for real-time outputs (WebRTC); nil drops them.
	live func(stream.LiveFrame)
	// keyframe asks a stream's publisher for a keyframe, where the protocol can.
	keyframe func(stream string)
	// ended tells real-time outputs that a stream's session is over.
	ended func(stream string)

	mu     sync.Mutex
	groups map[string]*llhls.Group // by stream name, the live session's group
}

func (d *delivery) register(h *host.Host) {
	h.Handle(packager.Open{}, func(_ string, e actors.Effect) { d.open(e.(packager.Open)) })
	h.Handle(packager.InitReady{}, func(_ string, e actors.Effect) { d.init(e.(packager.InitReady)) })
	h.Handle(packager.PartReady{}, func(_ string, e actors.Effect) { d.part(e.(packager.PartReady)) })
	h.Handle(packager.SegmentReady{}, func(_ string, e actors.Effect) { d.segment(e.(packager.SegmentReady)) })
	h.Handle(packager.Closed{}, func(_ string, e actors.Effect) { d.closed(e.(packager.Closed)) })
	h.Handle(layer.Store{}, func(from string, e actors.Effect) { d.store(from, e.(layer.Store)) })
	h.Handle(packager.WantKeyframe{}, func(_ string, e actors.Effect) {
		if d.keyframe != nil {
			d.keyframe(e.(packager.WantKeyframe).Stream)
		}
	})
	h.Handle(viewer.RequestKeyframe{}, func(_ string, e actors.Effect) {
		if d.keyframe != nil {
			d.keyframe(e.(viewer.RequestKeyframe).Stream)
		}
	})
	h.Handle(stream.LiveFrame{}, func(_ string, e actors.Effect) {
		if d.live != nil {
			d.live(e.(stream.LiveFrame))
		}
	})
}

func (d *delivery) group(stream string) *llhls.Group {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.groups[stream]
}

func (d *delivery) rendition(stream, track string) *llhls.Rendition {
	g := d.group(stream)
	if g == nil {
		return nil
	}
	r, err := g.Rendition(track)
	if err != nil {
		d.log.Error("rendition unavailable", "stream", stream, "track", track, "err", err)
		return nil
	}
	return r
}

func (d *delivery) open(e packager.Open) {
	g, err := llhls.NewGroup(e.Gen, d.cfg)
	if err != nil {
		d.log.Error("cannot open LL-HLS group", "stream", e.Stream, "err", err)
		return
	}
	if err := d.hls.Publish(e.Stream, g); err != nil {
		d.log.Error("cannot publish LL-HLS group", "stream", e.Stream, "err", err)
		return
	}
	d.mu.Lock()
	d.groups[e.Stream] = g
	d.mu.Unlock()
}

func (d *delivery) init(e packager.InitReady) {
	if r := d.rendition(e.Stream, e.Track); r != nil {
		if err := r.SetInit(e.Init); err != nil {
			d.log.Error("init not accepted", "stream", e.Stream, "track", e.Track, "err", err)
		}
		r.SetInfo(llhls.Info{Codecs: e.Codecs, Width: e.Config.Width, Height: e.Config.Height, Channels: e.Config.Channels})
	}
	// Cold path: the init bytes are part of the recording.
	d.host.Enqueue(e.Stream, func() {
		hash, err := d.blobs.Put(e.Init)
		if err != nil {
			d.log.Error("init segment not recorded", "stream", e.Stream, "track", e.Track, "err", err)
			return
		}
		ev := actors.NewEvent(e.Stream, d.now(), 0)
		ev.Body = &events.Event_TrackConfigured{TrackConfigured: &events.TrackConfigured{
			Track: e.Track, Codec: e.Config.Codec.String(), CodecsString: e.Codecs,
			Width: uint32(e.Config.Width), Height: uint32(e.Config.Height),
			SampleRate: uint32(e.Config.SampleRate), Channels: uint32(e.Config.Channels),
			InitBlob: hash, Layer: layer.Realtime,
		}}
		if _, err := d.appendLog(e.Stream, ev); err != nil {
			d.log.Error("track config not logged", "stream", e.Stream, "err", err)
		}
	})
}

func (d *delivery) part(e packager.PartReady) {
	if r := d.rendition(e.Stream, e.Track); r != nil {
		if err := r.AddPart(llhls.Part{Data: e.Data, Duration: e.Duration, Independent: e.Independent, ProgramDateTime: e.PDT}); err != nil {
			d.log.Warn("part not published", "stream", e.Stream, "track", e.Track, "err", err)
		}
	}
}

func (d *delivery) segment(e packager.SegmentReady) {
	if r := d.rendition(e.Stream, e.Track); r != nil {
		if _, err := r.CloseSegment(); err != nil {
			d.log.Warn("segment not closed", "stream", e.Stream, "track", e.Track, "err", err)
		}
	}
}

func (d *delivery) closed(e packager.Closed) {
	d.mu.Lock()
	g := d.groups[e.Stream]
	if g != nil && g.Gen() == e.Gen {
		delete(d.groups, e.Stream)
	} else {
		g = nil
	}
	d.mu.Unlock()
	if g != nil {
		g.End() // players get EXT-X-ENDLIST; the media stays for one window
	}
	if d.ended != nil {
		d.ended(e.Stream)
	}
}

// store writes a closed segment to the blob store, fsynced, and only then
// logs the event that references it.
func (d *delivery) store(from string, e layer.Store) {
	d.host.Enqueue(e.Stream, func() {
		reply := e.Reply
		defer func() { _ = d.host.Send(from, reply) }()
		initHash, err := d.blobs.Put(e.Init)
		if err != nil {
			reply.Err = err
			return
		}
		hash, err := d.blobs.Put(e.Data)
		if err != nil {
			reply.Err = err
			return
		}
		ss := e.Event.GetSegmentStored()
		ss.Blob, ss.InitBlob = hash, initHash
		_, reply.Err = d.appendLog(e.Stream, e.Event)
	})
}

// appendLog is used by cold-path jobs already running on the stream's queue.
func (d *delivery) appendLog(stream string, evs ...*events.Event) (uint64, error) {
	return d.elog.Append(context.Background(), stream, evs...)
}
