package mpegts

import (
	"bytes"
	"context"
	"io"
	"testing"

	mp4aac "github.com/Eyevinn/mp4ff/aac"
	"github.com/asticode/go-astits"

	"github.com/onair/onair/media/av"
)

// pesPart is one PES to write: payload and, if timed, its timestamps.
type pesPart struct {
	data     []byte
	timed    bool
	pts, dts int64
}

// remux writes H.264/AAC frames back to MPEG-TS with astits' muxer, video
// access units cut into parts PES packets by split (nil: one per frame).
func remux(t *testing.T, frames []TrackFrame, split func(i int, au []byte) []pesPart) []byte {
	t.Helper()
	var out bytes.Buffer
	m := astits.NewMuxer(context.Background(), &out)
	const vpid, apid = 256, 257
	for _, es := range []astits.PMTElementaryStream{
		{ElementaryPID: vpid, StreamType: astits.StreamTypeH264Video},
		{ElementaryPID: apid, StreamType: astits.StreamTypeADTS},
	} {
		if err := m.AddElementaryStream(es); err != nil {
			t.Fatal(err)
		}
	}
	m.SetPCRPID(vpid)
	write := func(pid uint16, sid uint8, p pesPart) {
		oh := &astits.PESOptionalHeader{MarkerBits: 2}
		if p.timed {
			oh.PTSDTSIndicator = astits.PTSDTSIndicatorBothPresent
			oh.PTS = &astits.ClockReference{Base: p.pts % wrap}
			oh.DTS = &astits.ClockReference{Base: p.dts % wrap}
		}
		if _, err := m.WriteData(&astits.MuxerData{PID: pid, PES: &astits.PESData{
			Header: &astits.PESHeader{StreamID: sid, OptionalHeader: oh},
			Data:   p.data,
		}}); err != nil {
			t.Fatal(err)
		}
	}
	vi := 0
	for _, f := range frames {
		if f.Frame.Codec == av.AAC {
			h, err := mp4aac.NewADTSHeader(48000, 2, mp4aac.AAClc, uint16(len(f.Frame.Data)))
			if err != nil {
				t.Fatal(err)
			}
			write(apid, 0xc0, pesPart{append(h.Encode(), f.Frame.Data...), true, f.Frame.PTS, f.Frame.PTS})
			continue
		}
		var au []byte
		for _, u := range f.Frame.NALUs {
			au = append(append(au, 0, 0, 0, 1), u...)
		}
		parts := []pesPart{{au, true, f.Frame.PTS, f.Frame.DTS}}
		if split != nil {
			parts = split(vi, au)
			for i := range parts {
				parts[i].pts, parts[i].dts = f.Frame.PTS, f.Frame.DTS
			}
		}
		for _, p := range parts {
			write(vpid, 0xe0, p)
		}
		vi++
	}
	return out.Bytes()
}

func cleanFrames(t *testing.T) []TrackFrame {
	frames, _, err := demuxAll(t, bytes.NewReader(fixture(t, "h264_aac.ts")))
	if err != io.EOF {
		t.Fatal(err)
	}
	return frames
}

func requireSameFrames(t *testing.T, got, want []TrackFrame) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%d frames, want %d", len(got), len(want))
	}
	for i := range want {
		if !sameFrame(got[i].Frame, want[i].Frame) {
			t.Fatalf("frame %d: got %v pts %d (%d bytes), want %v pts %d (%d bytes)", i,
				got[i].Frame.Codec, got[i].Frame.PTS, got[i].Frame.Size(), want[i].Frame.Codec, want[i].Frame.PTS, want[i].Frame.Size())
		}
		if (got[i].Config == nil) != (want[i].Config == nil) {
			t.Fatalf("frame %d: config %v, want %v", i, got[i].Config, want[i].Config)
		}
	}
}

// byTrack keeps the frame order within each track: interleaving between
// tracks depends on the muxer.
func byTrack(frames []TrackFrame) []TrackFrame {
	return append(byCodec(frames, true), byCodec(frames, false)...)
}

func TestDemuxRemuxOnePESPerFrame(t *testing.T) {
	want := cleanFrames(t)
	got, d, err := demuxAll(t, bytes.NewReader(remux(t, want, nil)))
	if err != io.EOF {
		t.Fatal(err)
	}
	requireSameFrames(t, byTrack(got), byTrack(want))
	if st := d.Stats(); st.Dropped != 0 || st.ParseErrors != 0 {
		t.Fatalf("stats %+v", st)
	}
}

func TestDemuxAccessUnitSplitOverPES(t *testing.T) {
	want := cleanFrames(t)
	// Cut every access unit in three PES, only the first with a PTS, at
	// places that also cut start codes in half.
	split := func(i int, au []byte) []pesPart {
		a, b := min(len(au)/3+i%5, len(au)-2), min(2*len(au)/3, len(au)-1)
		return []pesPart{{data: au[:a], timed: true}, {data: au[a:b]}, {data: au[b:]}}
	}
	got, d, err := demuxAll(t, bytes.NewReader(remux(t, want, split)))
	if err != io.EOF {
		t.Fatal(err)
	}
	requireSameFrames(t, byTrack(got), byTrack(want))
	if st := d.Stats(); st.Dropped != 0 || st.ParseErrors != 0 {
		t.Fatalf("stats %+v", st)
	}
}

func TestDemuxUntimedVideoDropped(t *testing.T) {
	want := cleanFrames(t)
	// The first access unit has no PTS at all: it cannot be placed.
	split := func(i int, au []byte) []pesPart { return []pesPart{{data: au, timed: i != 0}} }
	got, d, err := demuxAll(t, bytes.NewReader(remux(t, want, split)))
	if err != io.EOF {
		t.Fatal(err)
	}
	video := byCodec(got, true)
	if len(video) != 59 || d.Stats().Dropped != 1 {
		t.Fatalf("%d video frames, stats %+v; want 59 and one drop", len(video), d.Stats())
	}
	// The config comes with the next access unit that has parameter sets.
	if video[0].Config != nil || video[29].Config == nil || video[29].Config.Width != 320 {
		t.Fatalf("config on %v / %v", video[0].Config, video[29].Config)
	}
}

func TestDemuxConfigChange(t *testing.T) {
	frames := cleanFrames(t)
	// Replace the SPS of the second GOP by one for another size, as an
	// encoder switching resolution does; the rest of the GOP is unchanged.
	other := readAnnexB(t, "../h264/testdata/crop.h264")
	video := byCodec(frames, true)
	for i, u := range video[30].Frame.NALUs {
		if u[0]&0x1f == 7 {
			video[30].Frame.NALUs[i] = other
		}
	}
	got, _, err := demuxAll(t, bytes.NewReader(remux(t, frames, nil)))
	if err != io.EOF {
		t.Fatal(err)
	}
	var cfgs []*av.TrackConfig
	var at []int
	for i, f := range byCodec(got, true) {
		if f.Config != nil {
			cfgs, at = append(cfgs, f.Config), append(at, i)
		}
	}
	if len(cfgs) != 2 || at[0] != 0 || at[1] != 30 || cfgs[0].Width != 320 || cfgs[1].Width != 642 || cfgs[1].Height != 362 {
		t.Fatalf("configs at %v: %+v", at, cfgs)
	}
	if !bytes.Equal(cfgs[1].PPS[0], cfgs[0].PPS[0]) {
		t.Fatal("PPS must carry over")
	}
}

func readAnnexB(t *testing.T, path string) []byte {
	for _, u := range splitFile(t, path) {
		if u[0]&0x1f == 7 {
			return u
		}
	}
	t.Fatal("no SPS in " + path)
	return nil
}

func splitFile(t *testing.T, path string) [][]byte {
	b := fixtureAt(t, path)
	var units [][]byte
	for _, part := range bytes.Split(b, []byte{0, 0, 1}) {
		part = bytes.TrimRight(part, "\x00")
		if len(part) > 0 {
			units = append(units, part)
		}
	}
	return units
}

func TestDemuxBrokenPESHeaders(t *testing.T) {
	in := remux(t, cleanFrames(t), nil)
	// Point PES_header_data_length past the data in every 10th video PES
	// (unbounded: the payload then starts mid access unit) and every 3rd
	// audio PES (bounded: astits rejects it), TS headers intact.
	damaged := bytes.Clone(in)
	seen := map[int]int{}
	broken := map[int]int{}
	for off := 0; off+188 <= len(damaged); off += 188 {
		p := damaged[off : off+188]
		pid := int(p[1]&0x1f)<<8 | int(p[2])
		if (pid != 256 && pid != 257) || p[1]&0x40 == 0 {
			continue
		}
		payload := 4
		if p[3]&0x20 != 0 {
			payload += 1 + int(p[4])
		}
		seen[pid]++
		if payload+9 <= 188 && ((pid == 256 && seen[pid]%10 == 0) || (pid == 257 && seen[pid]%3 == 0)) {
			p[payload+8] = 0xff
			broken[pid]++
		}
	}
	got, d, err := demuxAll(t, bytes.NewReader(damaged))
	if err != io.EOF {
		t.Fatal(err)
	}
	st := d.Stats()
	if v := len(byCodec(got, true)); v != 60-broken[256] {
		t.Fatalf("%d video frames, want %d lost", v, broken[256])
	}
	if a := len(byCodec(got, false)); a != seen[257]-broken[257] {
		t.Fatalf("%d audio frames of %d, want %d lost", a, seen[257], broken[257])
	}
	if st.ParseErrors != uint64(broken[257]) || st.Dropped != uint64(broken[256]) {
		t.Fatalf("stats %+v; want %d parse errors, %d dropped", st, broken[257], broken[256])
	}
}
