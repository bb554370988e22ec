package mpegts

import (
	"bytes"
	"context"
	"errors"
	"slices"

	"github.com/asticode/go-astits"
)

// Audio PES end early.
//
// astits hands a PES over when the next PES on its PID starts: it cannot
// know sooner where an unbounded one ends. Audio PES are bounded: they
// declare their length (PES_packet_length), and ffmpeg and OBS put 10 to
// 16 AAC frames in each, so waiting for the next one would hold every
// audio frame back by about 340 ms at 48 kHz. For audio PIDs the sync
// reader therefore gathers each bounded PES itself, withholding its
// packets from astits, and hands it over the moment the packet that
// completes it arrives. It is still astits that parses it (a throwaway
// astits demuxer over the gathered packets), so frames, timestamps and
// errors are those astits gives at the next PES start. The only
// difference: astits loses a complete PES to a gap after its end, or to
// a packet sent twice, and gathering does not.
//
// Whenever the packets do not add up to the declared length exactly at a
// packet's end (too short when the next PES starts, or overrun inside a
// packet: a broken muxer), the gathered packets go to astits at the next
// PES start on the PID or at the end of the input, as without gathering.
// A gap or a discontinuity flag inside a PES loses it, as with astits.
// An unbounded PES, or one whose header does not fit in its first
// packet, is left to astits. So is video: the access unit a PES carries
// may continue in the next one, which is only known when that one starts.

// errPESReady is returned to astits in place of a packet so that ReadFrame
// gets control back as soon as a gathered PES is complete, instead of
// astits reading on until it has data of its own.
var errPESReady = errors.New("mpegts: gathered PES ready")

// maxGathered bounds the packets gathered for one PES, handed over to
// astits when it is reached. The longest PES that declares its length
// (65535 bytes after the length field) fits in 357 packets; only a PES
// overrunning its length, or carried a few bytes per packet, gets there.
const maxGathered = 1024

// gatherer is the state of one audio PID.
type gatherer struct {
	// open: a PES start on this PID went to astits (unbounded, or its
	// header unreadable), so astits may be assembling it.
	open      bool
	gathering bool
	raw       []byte // the packets of the PES being gathered, as read
	want      int    // 6 + PES_packet_length: where the PES ends
	have      int    // PES bytes gathered
	cc        uint8  // continuity counter of the last packet gathered
}

// setMode says where the packets of a PID go from now on.
func (s *syncReader) setMode(pid uint16, m pidMode) {
	was := s.mode[pid]
	if was == m {
		return
	}
	s.mode[pid] = m
	if was == modeGather {
		// The PID carries something else now: astits takes over the PES
		// gathered so far, as if it had had it all along.
		if g := s.gather[pid]; g.gathering {
			s.replay = append(s.replay, g.raw...)
		}
		delete(s.gather, pid)
	}
	if m == modeGather {
		// Packets of this PID may have gone to astits before: the first
		// gathered PES start makes astits hand them over.
		s.gather[pid] = &gatherer{open: true}
	}
}

// route decides where a packet with a payload on a gathered PID goes.
// off is where its payload starts; dup tells a packet sent a second time,
// which ISO/IEC 13818-1 allows: with the same continuity counter as the
// packet before.
func (s *syncReader) route(g *gatherer, pkt []byte, off int, pusi, discontinuity, dup bool) verdict {
	if dup && !g.open {
		// astits would take it for a gap and lose the PES; the first copy
		// is all there is to keep.
		return withheld
	}
	cc := pkt[3] & 0x0f
	// astits drops the PES it is assembling when a packet does not follow
	// on from the last (a gap, a discontinuity flag): so does this, the
	// PES being lost either way.
	follows := !discontinuity && cc == (g.cc+1)&0x0f
	if !pusi {
		switch {
		case g.gathering && follows:
			g.add(pkt, off, cc)
			if g.have == g.want || len(g.raw) >= maxGathered*packetSize {
				s.handOver(g)
			}
		case g.gathering:
			g.gathering = false
		case g.open:
			return toAstits // the continuation of a PES astits is assembling
		}
		// Else left over past the end of a PES already handed over, or
		// after a gap: astits would not have parsed it either.
		return withheld
	}
	if g.gathering {
		if follows {
			s.handOver(g) // came up short or overran: astits judges it
		} else {
			g.gathering = false
		}
	}
	es := pkt[off:]
	if len(es) < 6 || es[0] != 0 || es[1] != 0 || es[2] != 1 || es[4]|es[5] == 0 {
		g.open = true
		return toAstits
	}
	g.gathering, g.want, g.have = true, 6+(int(es[4])<<8|int(es[5])), 0
	if g.raw == nil {
		g.raw, s.spare = s.spare, nil
	}
	if n := (g.want/184 + 2) * packetSize; cap(g.raw) < n {
		g.raw = make([]byte, 0, n)
	}
	g.raw = g.raw[:0]
	g.add(pkt, off, cc)
	if g.have == g.want {
		s.handOver(g)
	}
	if g.open {
		// astits is assembling an earlier PES of this PID: it hands that
		// over on this PES start, its payload made no PES start code so
		// that astits ignores what it then assembles.
		g.open = false
		pkt[off] = 0xff
		return toAstits
	}
	return withheld
}

func (g *gatherer) add(pkt []byte, off int, cc uint8) {
	g.raw = append(g.raw, pkt...)
	g.have += packetSize - off
	g.cc = cc
}

func (s *syncReader) handOver(g *gatherer) {
	s.ready = append(s.ready, g.raw)
	g.raw, g.gathering = nil, false
}

// handOverAll hands over every PES still being gathered, as astits does
// with what it holds at the end of the input.
func (s *syncReader) handOverAll() {
	pids := make([]uint16, 0, len(s.gather))
	for pid, g := range s.gather {
		if g.gathering {
			pids = append(pids, pid)
		}
	}
	slices.Sort(pids)
	for _, pid := range pids {
		s.handOver(s.gather[pid])
	}
}

// parseGathered has astits parse the PES the sync reader handed over.
func (d *Demuxer) parseGathered() {
	for i, raw := range d.src.ready {
		d.parsePackets(raw)
		d.src.ready[i] = nil
		d.src.spare = raw[:0]
	}
	d.src.ready = d.src.ready[:0]
}

// parsePackets runs the packets of one PES through astits as the main
// astits demuxer would have: astits copies what it keeps, so raw can be
// reused.
func (d *Demuxer) parsePackets(raw []byte) {
	// Not d.ctx: the packets are all here, and a cancelled context would
	// make every call fail.
	ts := astits.NewDemuxer(context.Background(), bytes.NewReader(raw),
		astits.DemuxerOptPacketSize(packetSize),
		astits.DemuxerOptLogger(astitsLogger{d}),
	)
	// Each call consumes at least a packet or returns data, ErrNoMorePackets
	// at the end: the bound only guards against a change in astits.
	for range len(raw)/packetSize + 2 {
		data, err := ts.NextData()
		switch {
		case errors.Is(err, astits.ErrNoMorePackets):
			return
		case err != nil:
			d.parseError(err)
		case data.PES != nil:
			d.handlePES(data.PID, data.PES)
		}
	}
}
