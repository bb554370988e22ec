package aac

import (
	"bytes"
	"errors"
	"os"
	"testing"

	"github.com/onair/onair/media/av"
)

func fixture(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile("testdata/" + name)
	if err != nil {
		t.Fatalf("%v (regenerate with testdata/gen.sh)", err)
	}
	return b
}

// withCRC rewrites ADTS frames as if protection were on: the CRC value is
// not checked by the parser, only its two bytes skipped.
func withCRC(t *testing.T, b []byte) []byte {
	t.Helper()
	var out []byte
	for off := 0; off < len(b); {
		h, err := ParseHeader(b[off:])
		if err != nil {
			t.Fatal(err)
		}
		hdr := bytes.Clone(b[off : off+7])
		hdr[1] &^= 1 // protection_absent = 0
		n := h.FrameLen + 2
		hdr[3] = hdr[3]&^3 | byte(n>>11)
		hdr[4] = byte(n >> 3)
		hdr[5] = hdr[5]&0x1f | byte(n&7)<<5
		out = append(append(append(out, hdr...), 0xbe, 0xef), b[off+7:off+h.FrameLen]...)
		off += h.FrameLen
	}
	return out
}

func TestParseADTSFromFFmpeg(t *testing.T) {
	tests := []struct {
		file                string
		frames, rate, chans int
		asc                 []byte
		firstLen            int
	}{
		// ffprobe -show_entries packet=size: 11 frames, the first 139 bytes.
		{"stereo48k.aac", 11, 48000, 2, []byte{0x11, 0x90}, 139 - 7},
		{"mono44k.aac", 10, 44100, 1, []byte{0x12, 0x08}, 0},
	}
	for _, tc := range tests {
		t.Run(tc.file, func(t *testing.T) {
			in := fixture(t, tc.file)
			for _, crc := range []bool{false, true} {
				b := in
				if crc {
					b = withCRC(t, in)
				}
				frames, cfg, err := ParseADTS(b)
				if err != nil {
					t.Fatal(err)
				}
				if len(frames) != tc.frames {
					t.Fatalf("crc=%v: %d frames, want %d", crc, len(frames), tc.frames)
				}
				want := av.TrackConfig{Codec: av.AAC, SampleRate: tc.rate, Channels: tc.chans, AudioSpecificConfig: tc.asc}
				if cfg.Codec != want.Codec || cfg.SampleRate != want.SampleRate || cfg.Channels != want.Channels ||
					!bytes.Equal(cfg.AudioSpecificConfig, want.AudioSpecificConfig) || !cfg.Ready() {
					t.Fatalf("crc=%v: cfg %+v, want %+v", crc, cfg, want)
				}
				if tc.firstLen > 0 && len(frames[0]) != tc.firstLen {
					t.Fatalf("first frame %d bytes, want %d", len(frames[0]), tc.firstLen)
				}
				// Same payloads with and without CRC.
				plain, _, _ := ParseADTS(in)
				for i := range frames {
					if !bytes.Equal(frames[i], plain[i]) {
						t.Fatalf("crc=%v: frame %d differs", crc, i)
					}
				}
			}
		})
	}
}

func TestParseADTSErrors(t *testing.T) {
	good := fixture(t, "stereo48k.aac")
	h, _ := ParseHeader(good)

	frames, cfg, err := ParseADTS(good[:len(good)-5])
	if !errors.Is(err, ErrTruncated) || len(frames) != 10 || !cfg.Ready() {
		t.Fatalf("truncated: %d frames, cfg %+v, err %v; want 10 frames, config, ErrTruncated", len(frames), cfg, err)
	}
	junk := append(bytes.Clone(good[:h.FrameLen]), 0x12, 0x34, 0x56, 0x78, 0x9a, 0xbc, 0xde, 0xf0)
	if frames, _, err := ParseADTS(junk); !errors.Is(err, ErrNoSync) || len(frames) != 1 {
		t.Fatalf("trailing junk: %d frames, err %v", len(frames), err)
	}
	if _, _, err := ParseADTS(nil); !errors.Is(err, ErrNoSync) {
		t.Fatalf("empty: %v", err)
	}

	mutate := func(f func(b []byte)) []byte {
		b := bytes.Clone(good[:h.FrameLen])
		f(b)
		return b
	}
	unsupported := map[string][]byte{
		"main profile":   mutate(func(b []byte) { b[2] &^= 0xc0 }),
		"reserved rate":  mutate(func(b []byte) { b[2] = b[2]&^0x3c | 13<<2 }),
		"PCE channels":   mutate(func(b []byte) { b[2] &^= 1; b[3] &^= 0xc0 }),
		"two raw blocks": mutate(func(b []byte) { b[6] |= 1 }),
	}
	for name, b := range unsupported {
		if _, _, err := ParseADTS(b); !errors.Is(err, ErrUnsupported) {
			t.Errorf("%s: got %v, want ErrUnsupported", name, err)
		}
	}
	// Second frame at 44.1 kHz after a 48 kHz one.
	second := mutate(func(b []byte) { b[2] = b[2]&^0x3c | 4<<2 })
	if frames, _, err := ParseADTS(append(bytes.Clone(good[:h.FrameLen]), second...)); !errors.Is(err, ErrConfigChanged) || len(frames) != 1 {
		t.Fatalf("format change: %d frames, %v", len(frames), err)
	}
	if _, _, err := ParseADTS(mutate(func(b []byte) { b[3] &^= 3; b[4] = 0; b[5] &= 0x1f })); !errors.Is(err, ErrNoSync) {
		t.Fatalf("zero frame_length: %v", err)
	}
}

func FuzzADTS(f *testing.F) {
	f.Add(fixture(f, "stereo48k.aac"))
	f.Add(fixture(f, "mono44k.aac")[:200])
	f.Add([]byte{0xff, 0xf1, 0x4c, 0x80, 0x01, 0x1f, 0xfc})
	f.Fuzz(func(t *testing.T, b []byte) {
		frames, cfg, err := ParseADTS(b)
		total := 0
		for _, fr := range frames {
			if len(fr) == 0 {
				t.Fatal("empty frame")
			}
			total += len(fr) + 7
		}
		if total > len(b) {
			t.Fatalf("frames cover %d of %d bytes", total, len(b))
		}
		if len(frames) > 0 && !cfg.Ready() {
			t.Fatalf("frames without a ready config: %+v", cfg)
		}
		if err == nil && len(frames) == 0 {
			t.Fatal("no frames and no error")
		}
	})
}

func BenchmarkParseADTS(b *testing.B) {
	in := fixture(b, "stereo48k.aac")
	b.SetBytes(int64(len(in)))
	b.ReportAllocs()
	for b.Loop() {
		if _, _, err := ParseADTS(in); err != nil {
			b.Fatal(err)
		}
	}
}
