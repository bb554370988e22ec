// Package mpegts demuxes the MPEG-TS that publishers send over SRT into
// access units: H.264 and H.265 pictures, AAC and Opus frames, each with
// 64-bit timestamps on the 90 kHz clock and the track config a packager
// needs. Transport packets, PAT/PMT and PES are parsed by
// github.com/asticode/go-astits; this package adds what ingest needs on
// top: resync after corrupt or lost bytes, access units split over several
// PES, ADTS and Opus framing, 33-bit wrap, and counters.
//
// # Errors
//
// ReadFrame stops, returning the error, only when going on cannot help:
//   - io.EOF at the end of the input, after every buffered frame;
//   - ErrNoSync when no packet boundary turns up within the sync search
//     limit (the input is not MPEG-TS);
//   - the reader's own error, wrapped (the connection broke);
//   - the context's error once it is cancelled (checked between packets:
//     close the reader to unblock a read in progress).
//
// Everything else is corruption the stream recovers from, counted in Stats
// and logged at debug level (the first one at warn): lost sync (hunt for
// the next run of 0x47 bytes, Resyncs/SkippedBytes), continuity counter
// gaps (astits drops the damaged PES, CCErrors), PES or PSI sections
// astits rejects (ParseErrors), payloads that are not valid Annex B, ADTS
// or Opus framing, and PES that cannot be timed (Dropped).
//
// # Timing and latency
//
// Timestamps are the publisher's own, unwrapped past 2^33 on one timeline
// shared by all tracks, not rebased to zero. A video access unit is
// returned as soon as the next PES on its PID starts (ffmpeg and OBS send
// unbounded video PES, so nothing can end one sooner). The frames of an
// audio PES are returned as soon as the packet that completes it is read
// (audio PES declare their length), or when the next PES on its PID
// starts if the length does not add up; they are timed PES PTS + i*1024
// samples (AAC) or by the durations of the Opus packets before them.
//
// # Limits
//
// Packets are 188 bytes (not 192-byte M2TS or 204-byte FEC). An ADTS or
// Opus frame split across two PES is dropped with the damaged PES:
// encoders used for ingest align audio frames to PES. Opus trim values
// are parsed but not carried on (av.Frame has no field for them).
package mpegts

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"sync/atomic"

	"github.com/asticode/go-astits"

	"github.com/onair/onair/media/av"
)

// ErrNoSync reports input in which no MPEG-TS packet boundary was found.
var ErrNoSync = errors.New("mpegts: no sync")

// DefaultMaxSyncSearch is how many bytes the demuxer skips looking for
// packet boundaries before it gives up with ErrNoSync.
const DefaultMaxSyncSearch = 1 << 20

// maxAccessUnit bounds a video access unit assembled from several PES: a
// stream that keeps sending continuation PES is broken, not 4K.
const maxAccessUnit = 16 << 20

// Track is an elementary stream the demuxer delivers frames for.
type Track struct {
	PID   uint16
	Codec av.Codec
}

// TrackFrame is one frame and the track it belongs to.
type TrackFrame struct {
	PID   uint16
	Frame av.Frame
	// Config is non-nil on the first frame of a track whose config is
	// known and whenever it changes (new SPS/PPS, new ADTS parameters).
	// Treat it as read-only: it is shared with the demuxer.
	Config *av.TrackConfig
}

// Stats counts what the demuxer saw. All counters only grow.
type Stats struct {
	Packets      uint64 // TS packets read in sync (null packets excluded)
	Frames       uint64 // frames returned by ReadFrame
	Dropped      uint64 // PES payloads or frames discarded: unknown PID, no timestamp, bad framing
	Resyncs      uint64 // times sync was lost and found again
	SkippedBytes uint64 // bytes discarded while hunting for sync, or a partial last packet
	CCErrors     uint64 // continuity counter gaps: packets lost before the demuxer
	ParseErrors  uint64 // PES headers or PSI sections astits could not parse
}

type counters struct {
	packets, frames, dropped, resyncs, skippedBytes, ccErrors, parseErrors atomic.Uint64
}

// Option configures a Demuxer.
type Option func(*options)

type options struct {
	log           *slog.Logger
	maxSyncSearch int
	noGather      bool
}

// WithLogger sets where the demuxer logs (default slog.Default()).
func WithLogger(l *slog.Logger) Option { return func(o *options) { o.log = l } }

// WithMaxSyncSearch sets how many bytes may be skipped in one hunt for
// packet boundaries before ReadFrame fails with ErrNoSync.
func WithMaxSyncSearch(n int) Option { return func(o *options) { o.maxSyncSearch = n } }

// withoutGathering leaves audio PES to astits as well, handed over when
// the next PES on their PID starts: the reference tests compare with.
func withoutGathering() Option { return func(o *options) { o.noGather = true } }

// Demuxer reads frames from an MPEG-TS byte stream. ReadFrame is not safe
// for concurrent use; Stats and Tracks may be called from any goroutine.
type Demuxer struct {
	ctx      context.Context
	log      *slog.Logger
	noGather bool
	src      *syncReader
	ts       *astits.Demuxer
	stats    counters

	// psi holds the payload of the last single-packet PAT or PMT per PID:
	// muxers repeat them every few hundred milliseconds, and skipping the
	// identical ones saves astits a quarter of its allocations.
	psi        map[uint16][]byte
	lastSingle *astits.Packet

	pmtPIDs map[uint16]bool
	// tablePIDs are the PMT PIDs the PAT names, which astits parses as
	// tables whatever a PMT says.
	tablePIDs map[uint16]bool

	tracks  map[uint16]*track
	list    atomic.Pointer[[]Track]
	ignored map[uint16]bool
	clock   unwrapper

	queue  []TrackFrame
	next   int
	err    error
	warned bool
}

// NewDemuxer returns a demuxer reading from r. Reads are done in
// ReadFrame, as frames are asked for.
func NewDemuxer(ctx context.Context, r io.Reader, opts ...Option) *Demuxer {
	o := options{log: slog.Default(), maxSyncSearch: DefaultMaxSyncSearch}
	for _, opt := range opts {
		opt(&o)
	}
	d := &Demuxer{
		ctx:      ctx,
		log:      o.log,
		noGather: o.noGather,
		tracks:   make(map[uint16]*track),
		ignored:  make(map[uint16]bool),
		psi:      make(map[uint16][]byte),
		pmtPIDs:  make(map[uint16]bool),

		tablePIDs: make(map[uint16]bool),
	}
	d.list.Store(&[]Track{})
	d.src = newSyncReader(r, o.maxSyncSearch, &d.stats)
	d.ts = astits.NewDemuxer(ctx, d.src,
		astits.DemuxerOptPacketSize(packetSize), // never autodetect: it peeks and rewinds
		astits.DemuxerOptLogger(astitsLogger{d}),
		astits.DemuxerOptPacketsParser(d.skipRepeatedPSI),
	)
	return d
}

// Tracks returns the tracks announced so far, by PID. The PMT comes before
// the first frame, so after ReadFrame has returned a frame it lists every
// track of the program.
func (d *Demuxer) Tracks() []Track { return slices.Clone(*d.list.Load()) }

// Stats returns the counters so far.
func (d *Demuxer) Stats() Stats {
	c := &d.stats
	return Stats{
		Packets:      c.packets.Load(),
		Frames:       c.frames.Load(),
		Dropped:      c.dropped.Load(),
		Resyncs:      c.resyncs.Load(),
		SkippedBytes: c.skippedBytes.Load(),
		CCErrors:     c.ccErrors.Load(),
		ParseErrors:  c.parseErrors.Load(),
	}
}

// ReadFrame returns the next frame in stream order (decode order within a
// track). See the package documentation for the errors that end it.
func (d *Demuxer) ReadFrame() (TrackFrame, error) {
	for {
		if d.next < len(d.queue) {
			f := d.queue[d.next]
			d.queue[d.next] = TrackFrame{}
			if d.next++; d.next == len(d.queue) {
				d.queue, d.next = d.queue[:0], 0
			}
			d.stats.frames.Add(1)
			return f, nil
		}
		if d.err != nil {
			return TrackFrame{}, d.err
		}
		data, err := d.ts.NextData()
		switch {
		case err == nil:
			d.handleData(data)
		case errors.Is(err, errPESReady):
		default:
			d.stop(err)
		}
		// After what astits returned: a PES start on a gathered PID may
		// have made astits hand over an earlier PES of that PID.
		d.parseGathered()
	}
}

func (d *Demuxer) handleData(data *astits.DemuxerData) {
	if data.PMT != nil {
		d.pmtPIDs[data.PID] = true
	}
	if (data.PAT != nil || data.PMT != nil) && d.lastSingle != nil && d.lastSingle.Header.PID == data.PID {
		d.psi[data.PID] = d.lastSingle.Payload
	}
	switch {
	case data.PAT != nil:
		// astits parses what comes on these PIDs as tables from now on.
		for _, p := range data.PAT.Programs {
			if pid := p.ProgramMapID; p.ProgramNumber > 0 {
				d.tablePIDs[pid] = true
				if d.src.mode[pid] == modeGather {
					d.src.setMode(pid, modeAstits)
				}
			}
		}
	case data.PMT != nil:
		d.handlePMT(data.PMT)
	case data.PES != nil:
		d.handlePES(data.PID, data.PES)
	}
}

// skipRepeatedPSI is astits' packets parser hook: it tells astits to skip
// a one-packet payload identical to the last PAT or PMT on its PID, and
// otherwise remembers the packet so ReadFrame can cache it if it turns out
// to be one.
func (d *Demuxer) skipRepeatedPSI(ps []*astits.Packet) ([]*astits.DemuxerData, bool, error) {
	d.lastSingle = nil
	if len(ps) != 1 {
		return nil, false, nil
	}
	p := ps[0]
	if prev, ok := d.psi[p.Header.PID]; ok && bytes.Equal(prev, p.Payload) {
		return nil, true, nil
	}
	d.lastSingle = p
	return nil, false, nil
}

// stop decides whether an astits error ends the stream; if it does, the
// access units still pending are flushed first.
func (d *Demuxer) stop(err error) {
	switch {
	case errors.Is(err, astits.ErrNoMorePackets):
		d.err = io.EOF
		d.src.handOverAll()
	case d.src.err != nil:
		d.err = d.src.err
		if !errors.Is(d.err, ErrNoSync) {
			d.err = fmt.Errorf("mpegts: reading input: %w", d.src.err)
		}
	case d.ctx.Err() != nil:
		d.err = d.ctx.Err()
	default:
		// astits consumed the packets of the section or PES it rejected:
		// the next call goes on with the following ones.
		d.parseError(err)
		return
	}
	for _, pid := range d.pids() {
		if t := d.tracks[pid]; t.pending != nil {
			d.finishVideo(t)
		}
	}
}

func (d *Demuxer) parseError(err error) {
	d.stats.parseErrors.Add(1)
	d.corrupt("mpegts: skipping corrupt data", "err", err)
}

// corrupt logs damage the stream recovers from: once at warn so it is
// seen, then at debug so a broken publisher cannot flood the log.
func (d *Demuxer) corrupt(msg string, args ...any) {
	level := slog.LevelDebug
	if !d.warned {
		d.warned = true
		level = slog.LevelWarn
	}
	d.log.Log(d.ctx, level, msg, args...)
}

func (d *Demuxer) drop(msg string, args ...any) {
	d.stats.dropped.Add(1)
	d.corrupt(msg, args...)
}

func (d *Demuxer) push(f TrackFrame) { d.queue = append(d.queue, f) }

func (d *Demuxer) pids() []uint16 {
	list := *d.list.Load()
	pids := make([]uint16, len(list))
	for i, t := range list {
		pids[i] = t.PID
	}
	return pids
}

// handlePMT adds the tracks a PMT announces. A PID whose stream type
// changes starts over as a new track.
func (d *Demuxer) handlePMT(pmt *astits.PMTData) {
	changed := false
	for _, es := range pmt.ElementaryStreams {
		pid := es.ElementaryPID
		codec, channels := codecOf(es)
		if codec == av.CodecUnknown {
			if !d.ignored[pid] {
				d.ignored[pid] = true
				d.log.Info("mpegts: skipping unsupported stream", "pid", pid, "stream_type", fmt.Sprintf("0x%02x", uint8(es.StreamType)))
			}
			if _, ok := d.tracks[pid]; ok {
				delete(d.tracks, pid)
				changed = true
			}
			// Drop its packets before astits buffers them, unless a broken
			// PMT names a PID the tables themselves travel on.
			mode := modeAstits
			if pid >= 0x10 && !d.pmtPIDs[pid] {
				mode = modeSkip
			}
			d.src.setMode(pid, mode)
			continue
		}
		// Audio PES are gathered, except on PIDs astits takes for tables
		// (below 0x20, and PMT PIDs).
		mode := modeAstits
		if codec.IsAudio() && !d.noGather && pid >= 0x20 && !d.tablePIDs[pid] {
			mode = modeGather
		}
		d.src.setMode(pid, mode)
		delete(d.ignored, pid)
		if t := d.tracks[pid]; t != nil && t.Codec == codec {
			t.channels = channels
			continue
		}
		d.tracks[pid] = &track{Track: Track{PID: pid, Codec: codec}, channels: channels}
		changed = true
		d.log.Debug("mpegts: track", "pid", pid, "codec", codec)
	}
	if changed {
		list := make([]Track, 0, len(d.tracks))
		for _, t := range d.tracks {
			list = append(list, t.Track)
		}
		slices.SortFunc(list, func(a, b Track) int { return int(a.PID) - int(b.PID) })
		d.list.Store(&list)
	}
}

// opusRegistration is the format_identifier "Opus".
const opusRegistration = 'O'<<24 | 'p'<<16 | 'u'<<8 | 's'

// codecOf maps a PMT entry to a codec, and for Opus the channel count its
// extension descriptor gives (0 if absent).
func codecOf(es *astits.PMTElementaryStream) (av.Codec, int) {
	switch es.StreamType {
	case astits.StreamTypeH264Video:
		return av.H264, 0
	case astits.StreamTypeH265Video:
		return av.H265, 0
	case astits.StreamTypeADTS:
		return av.AAC, 0
	case astits.StreamTypePrivateData:
		opus, channels := false, 0
		for _, desc := range es.ElementaryStreamDescriptors {
			if desc.Registration != nil && desc.Registration.FormatIdentifier == opusRegistration {
				opus = true
			}
			// Extension descriptor, tag 0x80: channel_config_code.
			if ext := desc.Extension; ext != nil && ext.Tag == 0x80 && ext.Unknown != nil && len(*ext.Unknown) > 0 {
				if code := (*ext.Unknown)[0]; code <= 8 {
					channels = int(code)
					if code == 0 { // dual mono
						channels = 2
					}
				}
			}
		}
		if opus {
			return av.Opus, channels
		}
	}
	return av.CodecUnknown, 0
}
