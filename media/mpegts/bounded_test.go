package mpegts

import (
	"bytes"
	"context"
	"errors"
	"io"
	"sort"
	"testing"

	"github.com/asticode/go-astikit"
)

// astits wraps a logger that is not complete, allocating, once per
// gathered PES.
var _ astikit.CompleteLogger = astitsLogger{}

// timedFrame is a frame and how many input bytes had been read when
// ReadFrame returned it.
type timedFrame struct {
	TrackFrame
	read int
}

// demuxTimed demuxes in packet by packet, noting for each frame how much
// of the input had been read.
func demuxTimed(t *testing.T, in []byte, opts ...Option) ([]timedFrame, Stats) {
	t.Helper()
	r := &packetReader{b: in}
	d := NewDemuxer(context.Background(), r, append([]Option{WithLogger(quiet)}, opts...)...)
	var frames []timedFrame
	for {
		f, err := d.ReadFrame()
		if err == io.EOF {
			return frames, d.Stats()
		}
		if err != nil {
			t.Fatal(err)
		}
		frames = append(frames, timedFrame{f, r.bytes})
	}
}

func untimed(frames []timedFrame) []TrackFrame {
	out := make([]TrackFrame, len(frames))
	for i, f := range frames {
		out[i] = f.TrackFrame
	}
	return out
}

// editAudioPES calls edit with the index and the PES bytes of the first
// packet of every audio PES (PID 257) of a copy of in.
func editAudioPES(in []byte, edit func(k int, es []byte)) []byte {
	out := bytes.Clone(in)
	k := 0
	for off := 0; off+188 <= len(out); off += 188 {
		p := out[off : off+188]
		if int(p[1]&0x1f)<<8|int(p[2]) != 257 || p[1]&0x40 == 0 {
			continue
		}
		es := p[4:]
		if p[3]&0x20 != 0 {
			es = p[5+int(p[4]):]
		}
		edit(k, es)
		k++
	}
	return out
}

// audioPacket returns the byte offset of the i-th packet of the k-th
// audio PES.
func audioPacket(t *testing.T, in []byte, k, i int) int {
	t.Helper()
	pes, n := -1, 0
	for off := 0; off+188 <= len(in); off += 188 {
		p := in[off:]
		if int(p[1]&0x1f)<<8|int(p[2]) != 257 {
			continue
		}
		if p[1]&0x40 != 0 {
			pes, n = pes+1, 0
		}
		if pes == k && n == i {
			return off
		}
		n++
	}
	t.Fatalf("no packet %d in audio PES %d", i, k)
	return 0
}

// checkAudioTiming asserts, for each audio frame, that it was returned
// once its PES had been read and, if late is false for that PES, before
// any byte of the next audio PES; if late, only after the next one
// started.
func checkAudioTiming(t *testing.T, in []byte, frames []timedFrame, late func(k int) bool) {
	t.Helper()
	pes := pesOf(t, in, 257)
	for i, f := range frames {
		if !f.Frame.Codec.IsAudio() {
			continue
		}
		k := sort.Search(len(pes), func(i int) bool { return pes[i].pts > f.Frame.PTS }) - 1
		if k < 0 || k+1 == len(pes) {
			continue
		}
		next := pes[k+1].start
		switch {
		case f.read < pes[k].end:
			t.Fatalf("frame %d returned after %d bytes, before its PES ended at %d", i, f.read, pes[k].end)
		case late(k) && f.read <= next:
			t.Fatalf("frame %d of audio PES %d returned after %d bytes, before the next PES started at %d", i, k, f.read, next)
		case !late(k) && f.read > next:
			t.Fatalf("frame %d of audio PES %d returned %d bytes into the next audio PES", i, k, f.read-next)
		}
	}
}

// requireAsAstits asserts that gathering audio PES changes nothing but
// when frames come out: the same frames, in the same order per track,
// with the same configs, and the same counters as astits alone gives.
func requireAsAstits(t *testing.T, in []byte) []timedFrame {
	t.Helper()
	got, st := demuxTimed(t, in)
	want, wantSt := demuxTimed(t, in, withoutGathering())
	requireSameFrames(t, byTrack(untimed(got)), byTrack(untimed(want)))
	if st != wantSt {
		t.Fatalf("stats %+v, astits alone %+v", st, wantSt)
	}
	return got
}

func TestGatherAsAstits(t *testing.T) {
	for _, name := range []string{"h264_aac.ts", "h265_aac.ts", "h264_opus.ts", "wrap.ts"} {
		t.Run(name, func(t *testing.T) {
			in := fixture(t, name)
			got := requireAsAstits(t, in)
			checkAudioTiming(t, in, got, func(int) bool { return false })
		})
	}
}

// A PES whose declared length the packets do not add up to is left to
// astits, at the next PES start: its frames come out as before, the
// others still as soon as they are complete.
func TestGatherLengthMismatch(t *testing.T) {
	clean := fixture(t, "h264_aac.ts")
	odd := func(k int) bool { return k%2 == 1 }
	setLength := func(es []byte, n int) { es[4], es[5] = byte(n>>8), byte(n) }
	length := func(es []byte) int { return int(es[4])<<8 | int(es[5]) }
	tests := []struct {
		name string
		edit func(es []byte)
		// what astits makes of the odd PES
		lost, dropped bool
	}{
		// The next PES starts before the declared end: astits rejects it.
		{"longer than sent", func(es []byte) { setLength(es, length(es)+10) }, true, false},
		// The declared end falls inside the last packet: astits cuts the
		// last ADTS frame short, and that frame is dropped.
		{"shorter than sent", func(es []byte) { setLength(es, length(es)-1) }, false, true},
		// Unbounded, as video PES are: it ends when the next one starts.
		{"unbounded", func(es []byte) { setLength(es, 0) }, false, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			n := 0
			in := editAudioPES(clean, func(k int, es []byte) {
				if odd(k) {
					tc.edit(es)
					n++
				}
			})
			got := requireAsAstits(t, in)
			checkAudioTiming(t, in, got, odd)
			st := statsOf(t, in)
			if tc.lost != (st.ParseErrors == uint64(n)) || tc.dropped != (st.Dropped == uint64(n)) {
				t.Fatalf("%d PES edited, stats %+v", n, st)
			}
		})
	}
}

func statsOf(t *testing.T, in []byte) Stats {
	_, d, err := demuxAll(t, bytes.NewReader(in))
	if err != io.EOF {
		t.Fatal(err)
	}
	return d.Stats()
}

// A packet lost inside an audio PES costs that PES, as with astits; the
// next ones come out as soon as they are complete.
func TestGatherPacketLost(t *testing.T) {
	clean := fixture(t, "h264_aac.ts")
	audio := len(byCodec(cleanFrames(t), false))
	for _, i := range []int{3, 14} { // in the middle, the last packet
		off := audioPacket(t, clean, 2, i)
		in := append(bytes.Clone(clean[:off]), clean[off+188:]...)
		got := requireAsAstits(t, in)
		checkAudioTiming(t, in, got, func(int) bool { return false })
		if lost := audio - len(byCodec(untimed(got), false)); lost != 16 {
			t.Fatalf("packet %d lost: %d audio frames lost, want the 16 of its PES", i, lost)
		}
	}
	// Losing the first packet of a PES, astits loses the one before too:
	// it still held it, and takes the gap for damage to it. That one was
	// handed over already.
	off := audioPacket(t, clean, 2, 0)
	in := append(bytes.Clone(clean[:off]), clean[off+188:]...)
	got, _ := demuxTimed(t, in)
	ref, _ := demuxTimed(t, in, withoutGathering())
	lost, refLost := audio-len(byCodec(untimed(got), false)), audio-len(byCodec(untimed(ref), false))
	if lost != 16 || refLost != 16+16 {
		t.Fatalf("PES start lost: %d audio frames lost, %d by astits alone; want 16 and 32", lost, refLost)
	}
}

// ISO/IEC 13818-1 lets a packet be sent twice in a row. astits takes the
// copy for a gap and loses the PES; gathering keeps the first copy.
func TestGatherDuplicatePacket(t *testing.T) {
	clean := fixture(t, "h264_aac.ts")
	var in []byte
	for k := range pesOf(t, clean, 257) {
		off := audioPacket(t, clean, k, 1)
		if k == 0 {
			in = append(in, clean[:off+188]...)
		} else {
			in = append(in, clean[audioPacket(t, clean, k-1, 1)+188:off+188]...)
		}
		in = append(in, clean[off:off+188]...)
		if k == len(pesOf(t, clean, 257))-1 {
			in = append(in, clean[off+188:]...)
		}
	}
	got, st := demuxTimed(t, in)
	requireSameFrames(t, byTrack(untimed(got)), byTrack(cleanFrames(t)))
	checkAudioTiming(t, in, got, func(int) bool { return false })
	if st.CCErrors != 0 || st.Dropped != 0 || st.ParseErrors != 0 {
		t.Fatalf("stats %+v", st)
	}
}

// A PMT that turns the audio PID into a video one mid-PES hands the PES
// gathered so far back to astits, as if it had had it all along.
func TestGatherPIDChangesType(t *testing.T) {
	clean := fixture(t, "h264_aac.ts")
	// ffmpeg repeats the PMT between PES: add one in the middle of the
	// third audio PES, and turn the audio stream into H.264 (stream type
	// 0x1b) in it and every later one.
	at := audioPacket(t, clean, 2, 5)
	var in []byte
	for off := 0; off+188 <= len(clean); off += 188 {
		p := clean[off : off+188]
		if off == at {
			in = append(in, toH264(t, clean[2*188:3*188])...)
		}
		if int(p[1]&0x1f)<<8|int(p[2]) == 0x1000 && off > at {
			p = toH264(t, p)
		}
		in = append(in, p...)
	}
	got := requireAsAstits(t, in)
	audio := byCodec(untimed(got), false)
	if n := len(byCodec(cleanFrames(t), false)); len(audio) >= n-16*3 {
		t.Fatalf("%d audio frames of %d: audio went on after its PID turned to video", len(audio), n)
	}
}

// toH264 returns a copy of a one-packet PMT in which the stream on PID
// 257 is H.264.
func toH264(t *testing.T, pmt []byte) []byte {
	p := bytes.Clone(pmt)
	if int(p[1]&0x1f)<<8|int(p[2]) != 0x1000 || p[4] != 0 {
		t.Fatal("not a PMT on PID 0x1000")
	}
	sec := p[5:]
	n := 3 + (int(sec[1]&0x0f)<<8 | int(sec[2]))
	es := 12 + (int(sec[10]&0x0f)<<8 | int(sec[11]))
	for es+5 <= n-4 {
		if int(sec[es+1]&0x1f)<<8|int(sec[es+2]) == 257 {
			sec[es] = 0x1b
		}
		es += 5 + (int(sec[es+3]&0x0f)<<8 | int(sec[es+4]))
	}
	crc := crc32MPEG(sec[:n-4])
	sec[n-4], sec[n-3], sec[n-2], sec[n-1] = byte(crc>>24), byte(crc>>16), byte(crc>>8), byte(crc)
	return p
}

func crc32MPEG(b []byte) uint32 {
	crc := uint32(0xffffffff)
	for _, c := range b {
		crc ^= uint32(c) << 24
		for range 8 {
			if crc&0x80000000 != 0 {
				crc = crc<<1 ^ 0x04c11db7
			} else {
				crc <<= 1
			}
		}
	}
	return crc
}

// FuzzGather compares gathering audio PES with astits alone on any
// input: per PID, every frame astits alone yields comes out, in order
// (gathering may add some: it does not lose a complete PES to damage
// after its end, or to a packet sent twice), and the sync counters agree.
// Timestamps are left out: tracks share one unwrapping clock, and the
// order PES reach it in differs.
func FuzzGather(f *testing.F) {
	for _, name := range []string{"h264_aac.ts", "h264_opus.ts"} {
		// From a PAT and PMT to past the second AAC PES, the fourth Opus.
		in := fixture(f, name)[188*85 : 188*215]
		f.Add(in)
		// Audio PES longer and shorter than they declare, and unbounded.
		for _, delta := range []int{10, -1, -1 << 16} {
			f.Add(editAudioPES(in, func(k int, es []byte) {
				n := max(int(es[4])<<8|int(es[5])+delta, 0)
				es[4], es[5] = byte(n>>8), byte(n)
			}))
		}
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		run := func(opts ...Option) ([]TrackFrame, Stats) {
			d := NewDemuxer(context.Background(), bytes.NewReader(b), append([]Option{WithLogger(quiet), WithMaxSyncSearch(4096)}, opts...)...)
			var frames []TrackFrame
			for {
				fr, err := d.ReadFrame()
				if err != nil {
					if err != io.EOF && !errors.Is(err, ErrNoSync) {
						t.Fatalf("unexpected error %v", err)
					}
					return frames, d.Stats()
				}
				frames = append(frames, fr)
			}
		}
		got, st := run()
		want, wantSt := run(withoutGathering())
		if st.Packets != wantSt.Packets || st.Resyncs != wantSt.Resyncs || st.SkippedBytes != wantSt.SkippedBytes || st.CCErrors != wantSt.CCErrors {
			t.Fatalf("stats %+v, astits alone %+v", st, wantSt)
		}
		pids := map[uint16]bool{}
		for _, f := range want {
			pids[f.PID] = true
		}
		for pid := range pids {
			g, w := onPID(got, pid), onPID(want, pid)
			j := 0
			for _, f := range g {
				if j < len(w) && sameData(f, w[j]) {
					j++
				}
			}
			if j < len(w) {
				t.Fatalf("PID %d: astits alone yields %d frames, gathering loses the one at %d (of %d)", pid, len(w), j, len(g))
			}
		}
	})
}

func onPID(frames []TrackFrame, pid uint16) []TrackFrame {
	var out []TrackFrame
	for _, f := range frames {
		if f.PID == pid {
			out = append(out, f)
		}
	}
	return out
}

func sameData(a, b TrackFrame) bool {
	a.Frame.PTS, a.Frame.DTS, b.Frame.PTS, b.Frame.DTS = 0, 0, 0, 0
	return sameFrame(a.Frame, b.Frame)
}
