package h264

import (
	"bytes"
	"errors"
	"os"
	"testing"

	"github.com/onair/onair/media/av"
)

func readAU(t testing.TB, name string) [][]byte {
	t.Helper()
	b, err := os.ReadFile("testdata/" + name)
	if err != nil {
		t.Fatalf("%v (regenerate with testdata/gen.sh)", err)
	}
	return SplitAnnexB(b)
}

func TestConfigFromFFmpeg(t *testing.T) {
	tests := []struct {
		file          string
		width, height int
	}{
		{"crop.h264", 642, 362},
		{"cqm.h264", 320, 240},
		{"yuv444.h264", 320, 240},
	}
	for _, tc := range tests {
		t.Run(tc.file, func(t *testing.T) {
			nalus := readAU(t, tc.file)
			cfg, ok := Config(nalus)
			if !ok {
				t.Fatalf("Config not ok: %+v", cfg)
			}
			if cfg.Codec != av.H264 || cfg.Width != tc.width || cfg.Height != tc.height {
				t.Fatalf("got %v %dx%d, want H.264 %dx%d", cfg.Codec, cfg.Width, cfg.Height, tc.width, tc.height)
			}
			if len(cfg.SPS) != 1 || len(cfg.PPS) != 1 || !cfg.Ready() {
				t.Fatalf("got %d SPS, %d PPS", len(cfg.SPS), len(cfg.PPS))
			}
			if Type(cfg.SPS[0]) != NALUTypeSPS || Type(cfg.PPS[0]) != NALUTypePPS {
				t.Fatal("parameter sets of the wrong type")
			}
			if !IsKeyframe(nalus) {
				t.Fatal("x264's first picture is an IDR")
			}
			// The config must not alias the access unit.
			for _, u := range nalus {
				if Type(u) == NALUTypeSPS {
					u[1] ^= 0xff
				}
			}
			if cfg.SPS[0][1] == 0 || bytes.Equal(cfg.SPS[0], findType(nalus, NALUTypeSPS)) {
				t.Fatal("config SPS aliases the input")
			}
		})
	}
}

func findType(nalus [][]byte, typ NALUType) []byte {
	for _, u := range nalus {
		if Type(u) == typ {
			return u
		}
	}
	return nil
}

func TestConfigPartial(t *testing.T) {
	nalus := readAU(t, "crop.h264")
	var noPPS [][]byte
	for _, u := range nalus {
		if Type(u) != NALUTypePPS {
			noPPS = append(noPPS, u)
		}
	}
	cfg, ok := Config(noPPS)
	if ok || len(cfg.SPS) != 1 || cfg.Width != 642 {
		t.Fatalf("without PPS: ok=%v cfg=%+v, want partial config with SPS and size", ok, cfg)
	}
	if cfg, ok := Config(nil); ok || cfg.Codec != av.H264 {
		t.Fatalf("empty: ok=%v cfg=%+v", ok, cfg)
	}
	// A repeated SPS is kept once.
	sps := findType(nalus, NALUTypeSPS)
	cfg, _ = Config([][]byte{sps, sps, findType(nalus, NALUTypePPS)})
	if len(cfg.SPS) != 1 {
		t.Fatalf("got %d SPS, want duplicates dropped", len(cfg.SPS))
	}
}

func TestStripParameterSetsAndAUD(t *testing.T) {
	aud, sps, pps, sei, idr := []byte{0x09, 0xf0}, []byte{0x67, 1}, []byte{0x68, 2}, []byte{0x06, 3}, []byte{0x65, 4}
	in := [][]byte{aud, sps, pps, sei, idr}
	out := StripParameterSetsAndAUD(in)
	if len(out) != 2 || Type(out[0]) != NALUTypeSEI || Type(out[1]) != NALUTypeIDR {
		t.Fatalf("got %x, want SEI and IDR", out)
	}
	if Type(in[0]) != NALUTypeAUD || len(in) != 5 {
		t.Fatal("input modified")
	}
	plain := [][]byte{sei, idr}
	if got := StripParameterSetsAndAUD(plain); &got[0] != &plain[0] {
		t.Fatal("want the input back when nothing is stripped")
	}
}

func TestIsKeyframe(t *testing.T) {
	if IsKeyframe([][]byte{{0x09, 0xf0}, {0x41, 1}}) {
		t.Fatal("non-IDR slice taken for a keyframe")
	}
	if IsKeyframe([][]byte{{}, nil}) {
		t.Fatal("empty units taken for a keyframe")
	}
	if !IsKeyframe([][]byte{{0x06, 1}, {0x25, 1}}) { // nal_ref_idc 1, IDR
		t.Fatal("IDR missed")
	}
}

// bitWriter builds crafted parameter sets.
type bitWriter struct {
	b []byte
	n int
}

func (w *bitWriter) bits(v uint64, n int) {
	for i := n - 1; i >= 0; i-- {
		if w.n%8 == 0 {
			w.b = append(w.b, 0)
		}
		if v>>uint(i)&1 == 1 {
			w.b[len(w.b)-1] |= 0x80 >> uint(w.n%8)
		}
		w.n++
	}
}

func (w *bitWriter) ue(v uint64) {
	v++
	n := 0
	for x := v; x > 1; x >>= 1 {
		n++
	}
	w.bits(0, n)
	w.bits(v, n+1)
}

func TestHugePOCCycleRejected(t *testing.T) {
	// Baseline SPS with pic_order_cnt_type 1 and a cycle of 2^30 entries:
	// mp4ff alone would allocate 8 GiB for it.
	var w bitWriter
	w.bits(0x67, 8)
	w.bits(66, 8)
	w.bits(0, 8)
	w.bits(30, 8)
	w.ue(0)       // sps id
	w.ue(0)       // log2_max_frame_num_minus4
	w.ue(1)       // pic_order_cnt_type
	w.bits(0, 1)  // delta_pic_order_always_zero_flag
	w.ue(0)       // offset_for_non_ref_pic (se 0)
	w.ue(0)       // offset_for_top_to_bottom_field (se 0)
	w.ue(1 << 30) // num_ref_frames_in_pic_order_cnt_cycle
	w.bits(0xff, 8)
	_, _, err := PictureSize(w.b)
	if !errors.Is(err, ErrBadSPS) {
		t.Fatalf("got %v, want ErrBadSPS", err)
	}
}

func TestPictureSizeErrors(t *testing.T) {
	for _, in := range [][]byte{nil, {0x68, 1, 2}, {0x67}, {0x67, 100, 0, 30}} {
		if _, _, err := PictureSize(in); !errors.Is(err, ErrBadSPS) {
			t.Errorf("PictureSize(% x) = %v, want ErrBadSPS", in, err)
		}
	}
}

func FuzzConfig(f *testing.F) {
	for _, name := range []string{"crop.h264", "cqm.h264", "yuv444.h264"} {
		nalus := readAU(f, name)
		f.Add(findType(nalus, NALUTypeSPS), findType(nalus, NALUTypePPS))
	}
	f.Fuzz(func(t *testing.T, sps, pps []byte) {
		if len(sps) > 0 {
			sps[0] = byte(NALUTypeSPS) | 0x60
		}
		cfg, ok := Config([][]byte{sps, pps})
		if ok && (cfg.Width <= 0 || cfg.Height <= 0 || !cfg.Ready()) {
			t.Fatalf("ok with %+v", cfg)
		}
	})
}

func BenchmarkConfig(b *testing.B) {
	nalus := readAU(b, "crop.h264")
	b.ReportAllocs()
	for b.Loop() {
		if _, ok := Config(nalus); !ok {
			b.Fatal("not ok")
		}
	}
}
