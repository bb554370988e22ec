package cmaf

import (
	"bytes"
	"encoding/binary"
	"errors"
	"testing"

	"github.com/Eyevinn/mp4ff/mp4"

	"github.com/onair/onair/media/av"
)

// FuzzNewTrack feeds arbitrary parameter sets and audio configs: NewTrack
// must return an error or an init segment mp4ff can read back, never panic.
func FuzzNewTrack(f *testing.F) {
	for _, fx := range videoFixtures {
		cfg, _, _ := loadVideo(f, fx)
		var vps []byte
		if len(cfg.VPS) > 0 {
			vps = cfg.VPS[0]
		}
		f.Add(byte(cfg.Codec), vps, cfg.SPS[0], cfg.PPS[0], []byte(nil), 0, 0)
	}
	f.Add(byte(av.AAC), []byte(nil), []byte(nil), []byte(nil), []byte{0x11, 0x90}, 48000, 2)
	f.Add(byte(av.AAC), []byte(nil), []byte(nil), []byte(nil), []byte{0x2b, 0x92, 0x08, 0x00}, 24000, 2)
	f.Add(byte(av.Opus), []byte(nil), []byte(nil), []byte(nil), []byte(nil), 48000, 2)
	f.Fuzz(func(t *testing.T, codec byte, vps, sps, pps, asc []byte, rate, channels int) {
		cfg := av.TrackConfig{
			Codec: av.Codec(codec % 6), SampleRate: rate % 200000, Channels: channels % 10,
			AudioSpecificConfig: asc, Width: 320, Height: 240,
		}
		if len(vps) > 0 {
			cfg.VPS = [][]byte{vps}
		}
		if len(sps) > 0 {
			cfg.SPS = [][]byte{sps}
		}
		if len(pps) > 0 {
			cfg.PPS = [][]byte{pps}
		}
		tr, err := NewTrack(cfg)
		if err != nil {
			if !errors.Is(err, ErrBadConfig) && !errors.Is(err, ErrIncompleteConfig) && !errors.Is(err, ErrUnsupportedCodec) {
				t.Fatalf("error without sentinel: %v", err)
			}
			return
		}
		if tr.Codecs() == "" || tr.Timescale() == 0 {
			t.Fatalf("track without codecs %q or timescale %d", tr.Codecs(), tr.Timescale())
		}
		file, err := mp4.DecodeFile(bytes.NewReader(tr.Init()))
		if err != nil || file.Init == nil || len(file.Init.Moov.Traks) != 1 {
			t.Fatalf("init segment does not read back: %v", err)
		}
	})
}

// FuzzVideoSampleData checks that the output is exactly the kept NAL units,
// each behind its 4-byte length, after the bytes already in dst.
func FuzzVideoSampleData(f *testing.F) {
	f.Add(true, []byte{2, 0x09, 0xf0, 3, 0x67, 1, 2, 0, 2, 0x65, 0x88})
	f.Add(false, []byte{3, 0x46, 1, 0x50, 2, 0x40, 1, 3, 0x26, 1, 0xaf})
	f.Fuzz(func(t *testing.T, h264 bool, blob []byte) {
		codec := av.H265
		if h264 {
			codec = av.H264
		}
		var nalus [][]byte
		for len(blob) > 0 {
			n := min(int(blob[0]), len(blob)-1)
			nalus = append(nalus, blob[1:1+n])
			blob = blob[1+n:]
		}
		prefix := []byte{0xde, 0xad}
		out := VideoSampleData(append([]byte(nil), prefix...), codec, nalus)
		if !bytes.HasPrefix(out, prefix) {
			t.Fatal("dst contents lost")
		}
		out = out[len(prefix):]
		for _, u := range nalus {
			if len(u) == 0 {
				continue
			}
			typ := nalType(codec, u)
			dropped := (codec == av.H264 && (typ == 7 || typ == 8 || typ == 9 || typ == 12)) ||
				(codec == av.H265 && (typ >= 32 && typ <= 35 || typ == 38))
			if dropped {
				continue
			}
			if len(out) < 4 || int(binary.BigEndian.Uint32(out)) != len(u) || !bytes.Equal(out[4:4+len(u)], u) {
				t.Fatalf("NAL unit type %d missing or changed", typ)
			}
			out = out[4+len(u):]
		}
		if len(out) != 0 {
			t.Fatalf("%d unexpected trailing bytes", len(out))
		}
	})
}

// FuzzFragment builds fragments from arbitrary sample tables and reads them
// back with mp4ff: every field must survive.
func FuzzFragment(f *testing.F) {
	f.Add(uint32(1), uint64(126000), []byte{10, 0xb8, 0x0b, 0, 0, 1, 20, 0xb8, 0x0b, 0xe8, 0x03, 0})
	f.Add(uint32(7), uint64(1)<<40, []byte{0, 0, 4, 0x18, 0xfc, 1})
	f.Fuzz(func(t *testing.T, seq uint32, dts uint64, table []byte) {
		tr, err := NewTrack(av.TrackConfig{Codec: av.Opus, SampleRate: 48000, Channels: 2})
		if err != nil {
			t.Fatal(err)
		}
		video := len(table) > 0 && table[0]&1 == 1
		if video {
			cfg, _, _ := loadVideo(t, videoFixtures[0])
			if tr, err = NewTrack(cfg); err != nil {
				t.Fatal(err)
			}
		}
		// Each 6-byte record: size, dur (2), cto (2), key.
		var samples []Sample
		next := dts
		for len(table) >= 6 && len(samples) < 64 {
			s := Sample{
				DTS:  next,
				Dur:  uint32(binary.LittleEndian.Uint16(table[1:])),
				CTO:  int32(int16(binary.LittleEndian.Uint16(table[3:]))),
				Key:  table[5]&1 == 1,
				Data: bytes.Repeat([]byte{table[0]}, int(table[0])),
			}
			samples = append(samples, s)
			next += uint64(s.Dur)
			table = table[6:]
		}
		frag, err := tr.Fragment(seq, samples)
		if len(samples) == 0 {
			if !errors.Is(err, ErrNoSamples) {
				t.Fatalf("no samples: %v", err)
			}
			return
		}
		if err != nil {
			t.Fatal(err)
		}
		file, err := mp4.DecodeFile(bytes.NewReader(append(append([]byte(nil), tr.Init()...), frag...)))
		if err != nil {
			t.Fatal(err)
		}
		fr := file.Segments[0].Fragments[0]
		if fr.Moof.Mfhd.SequenceNumber != seq {
			t.Fatalf("seq %d, want %d", fr.Moof.Mfhd.SequenceNumber, seq)
		}
		got, err := fr.GetFullSamples(file.Init.Moov.Mvex.Trex)
		if err != nil || len(got) != len(samples) {
			t.Fatalf("%d samples (%v), want %d", len(got), err, len(samples))
		}
		for i, g := range got {
			w := samples[i]
			sync := g.IsSync()
			wantSync := w.Key || !video
			if g.DecodeTime != w.DTS || g.Dur != w.Dur || g.CompositionTimeOffset != w.CTO ||
				!bytes.Equal(g.Data, w.Data) || sync != wantSync {
				t.Fatalf("sample %d: got dts %d dur %d cto %d sync %v, want %d %d %d %v",
					i, g.DecodeTime, g.Dur, g.CompositionTimeOffset, sync, w.DTS, w.Dur, w.CTO, wantSync)
			}
		}
	})
}
