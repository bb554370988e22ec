package mpegts

import (
	"bytes"
	"errors"
	"fmt"
	"io"
)

const (
	packetSize = 188
	syncByte   = 0x47
	pidNull    = 0x1fff
	numPIDs    = 1 << 13
	// syncConfirm is how many packets in a row must start with the sync
	// byte before a position found while hunting counts as sync, so a
	// stray 0x47 in garbage is not taken for a packet start.
	syncConfirm = 3
)

// syncReader hands astits whole, aligned 188-byte packets. astits reads
// fixed-size chunks and gives up on the first one without a sync byte,
// with no way back into alignment; this reader hunts for the next run of
// sync bytes instead (after lost bytes, junk, a truncated packet) and
// counts it. Per packet it also notes what the demuxer needs before astits
// reassembles the PES: continuity counter gaps, and whether the PES that
// starts here carries a PTS. It drops null packets and PIDs the demuxer
// ignores, so astits never buffers them, and gathers the PES of audio
// PIDs itself (bounded.go).
type syncReader struct {
	r          io.Reader
	buf        []byte
	head, tail int

	eof bool  // r reported io.EOF: everything astits returns from now on is final
	err error // a read error or ErrNoSync; sticky

	synced    bool
	hunted    int // bytes skipped in the current hunt
	maxSearch int

	stats *counters

	// mode says, per PID, where its packets go.
	mode [numPIDs]pidMode
	// cc holds the last continuity counter seen per PID, +1; 0 is unknown.
	cc [numPIDs]uint8
	// startsWithPTS records, per PID, whether the last PES start seen
	// carries a PTS.
	startsWithPTS [numPIDs]bool

	// The state of the PIDs whose PES are gathered here rather than by
	// astits (bounded.go), the PES complete and not yet parsed, and a
	// buffer to gather the next one into.
	gather map[uint16]*gatherer
	ready  [][]byte
	spare  []byte
	// replay holds gathered packets, already counted, to give astits
	// before reading on.
	replay []byte
}

// pidMode is where the packets of a PID go.
type pidMode uint8

const (
	modeAstits pidMode = iota
	modeSkip           // a stream the demuxer does not support: dropped
	modeGather         // audio: its PES are gathered here
)

// verdict is what becomes of a packet read in sync.
type verdict uint8

const (
	toAstits verdict = iota
	withheld         // kept from astits: gathered, or dropped as astits would
	ignored          // a null packet or a PID the demuxer ignores: not counted
)

func newSyncReader(r io.Reader, maxSearch int, stats *counters) *syncReader {
	return &syncReader{r: r, buf: make([]byte, 64*packetSize), maxSearch: maxSearch, stats: stats, gather: make(map[uint16]*gatherer)}
}

// Read copies exactly one packet into p, which astits sizes to 188 bytes,
// or returns errPESReady once a PES gathered here is complete.
func (s *syncReader) Read(p []byte) (int, error) {
	if len(p) < packetSize {
		return 0, io.ErrShortBuffer
	}
	for {
		if len(s.ready) > 0 {
			return 0, errPESReady
		}
		if len(s.replay) > 0 {
			n := copy(p, s.replay[:packetSize])
			s.replay = s.replay[packetSize:]
			return n, nil
		}
		if s.err != nil {
			return 0, s.err
		}
		need := packetSize
		if !s.synced {
			need = syncConfirm * packetSize
		}
		if s.tail-s.head < need && !s.fill(need) {
			if s.err != nil {
				return 0, s.err
			}
			if s.tail-s.head < packetSize {
				// Only a partial packet left at the end: nothing to frame.
				s.stats.skippedBytes.Add(uint64(s.tail - s.head))
				s.head = s.tail
				return 0, io.EOF
			}
		}
		if !s.aligned() {
			s.synced = false
			s.head++
			s.hunted++
			s.stats.skippedBytes.Add(1)
			if s.hunted > s.maxSearch {
				s.err = fmt.Errorf("%w: no 0x47 sync byte every 188 bytes in %d bytes; is the publisher sending MPEG-TS (not FLV, not 192-byte M2TS)?", ErrNoSync, s.hunted)
			}
			continue
		}
		if s.hunted > 0 {
			s.stats.resyncs.Add(1)
		}
		s.synced, s.hunted = true, 0
		if pos := s.cutShort(); pos > 0 {
			s.stats.resyncs.Add(1)
			s.stats.skippedBytes.Add(uint64(pos - s.head))
			s.head = pos
			continue
		}
		pkt := s.buf[s.head : s.head+packetSize]
		s.head += packetSize
		v := s.inspect(pkt)
		if v == ignored {
			continue
		}
		s.stats.packets.Add(1)
		if v == withheld {
			continue
		}
		return copy(p, pkt), nil
	}
}

// aligned reports whether a packet starts at head: its sync byte, and
// while hunting also the next ones present.
func (s *syncReader) aligned() bool {
	if s.buf[s.head] != syncByte {
		return false
	}
	if s.synced {
		return true
	}
	for i := 1; i < syncConfirm; i++ {
		at := s.head + i*packetSize
		if at >= s.tail {
			break // at the end of the input: trust what there is
		}
		if s.buf[at] != syncByte {
			return false
		}
	}
	return true
}

// cutShort looks at the packet at head when the one after it, already
// buffered, lacks its sync byte: either this packet was cut short and the
// next starts inside it, or the damage comes after it. If a confirmed
// packet boundary shows up inside this packet, it returns that position
// (drop the stub, keep the packet that follows), else 0 (keep this one,
// hunt after it). It never reads: a packet is not held back waiting for
// evidence.
func (s *syncReader) cutShort() int {
	next := s.head + packetSize
	if next >= s.tail || s.buf[next] == syncByte {
		return 0
	}
	for pos := s.head + 1; pos < next; pos++ {
		i := bytes.IndexByte(s.buf[pos:next], syncByte)
		if i < 0 {
			return 0
		}
		pos += i
		if s.confirmed(pos) {
			return pos
		}
	}
	return 0
}

// confirmed reports whether packets start at pos and the syncConfirm-1
// positions after it, all buffered.
func (s *syncReader) confirmed(pos int) bool {
	for i := 0; i < syncConfirm; i++ {
		at := pos + i*packetSize
		if at >= s.tail || s.buf[at] != syncByte {
			return false
		}
	}
	return true
}

// fill reads until need bytes are buffered; false at the end of the input
// or on an error (stored in s.err).
func (s *syncReader) fill(need int) bool {
	if s.eof {
		return false
	}
	if s.head > 0 {
		s.tail = copy(s.buf, s.buf[s.head:s.tail])
		s.head = 0
	}
	for empty := 0; s.tail < need; {
		n, err := s.r.Read(s.buf[s.tail:])
		s.tail += n
		switch {
		case errors.Is(err, io.EOF):
			s.eof = true
			return s.tail >= need
		case err != nil:
			s.err = err
			return false
		case n == 0:
			if empty++; empty > 100 {
				s.err = io.ErrNoProgress
				return false
			}
		}
	}
	return true
}

// inspect notes what the demuxer needs from a packet's header and decides
// where the packet goes.
func (s *syncReader) inspect(pkt []byte) verdict {
	pid := uint16(pkt[1]&0x1f)<<8 | uint16(pkt[2])
	if pid == pidNull || s.mode[pid] == modeSkip {
		return ignored
	}
	var g *gatherer
	if s.mode[pid] == modeGather {
		g = s.gather[pid]
	}
	// astits drops packets flagged with transport_error_indicator, and
	// those without payload before they reach a PES.
	if pkt[1]&0x80 != 0 {
		if g != nil {
			return withheld
		}
		return toAstits
	}
	hasAF, hasPayload := pkt[3]&0x20 != 0, pkt[3]&0x10 != 0
	payload, discontinuity := 4, false
	if hasAF {
		payload += 1 + int(pkt[4])
		if pkt[4] > 0 && pkt[5]&0x80 != 0 { // discontinuity_indicator
			discontinuity = true
			s.cc[pid] = 0
		}
	}
	if !hasPayload {
		if g != nil {
			return withheld
		}
		return toAstits
	}
	cc, last := pkt[3]&0x0f+1, s.cc[pid]
	if last != 0 && cc != last && cc != last%16+1 {
		s.stats.ccErrors.Add(1)
	}
	s.cc[pid] = cc
	pusi := pkt[1]&0x40 != 0 // payload_unit_start_indicator
	if pusi && payload+8 <= packetSize {
		es := pkt[payload:]
		s.startsWithPTS[pid] = es[0] == 0 && es[1] == 0 && es[2] == 1 && es[7]&0x80 != 0
	}
	if g == nil {
		return toAstits
	}
	return s.route(g, pkt, min(payload, packetSize), pusi, discontinuity, cc == last)
}
