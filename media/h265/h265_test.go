package h265

import (
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

func findType(nalus [][]byte, typ NALUType) []byte {
	for _, u := range nalus {
		if Type(u) == typ {
			return u
		}
	}
	return nil
}

func TestConfigFromFFmpeg(t *testing.T) {
	tests := []struct {
		file          string
		width, height int
	}{
		{"crop.h265", 642, 362},
		{"yuv444.h265", 320, 240},
	}
	for _, tc := range tests {
		t.Run(tc.file, func(t *testing.T) {
			nalus := readAU(t, tc.file)
			cfg, ok := Config(nalus)
			if !ok {
				t.Fatalf("Config not ok: %+v", cfg)
			}
			if cfg.Codec != av.H265 || cfg.Width != tc.width || cfg.Height != tc.height {
				t.Fatalf("got %v %dx%d, want H.265 %dx%d", cfg.Codec, cfg.Width, cfg.Height, tc.width, tc.height)
			}
			if len(cfg.VPS) != 1 || len(cfg.SPS) != 1 || len(cfg.PPS) != 1 || !cfg.Ready() {
				t.Fatalf("got %d VPS, %d SPS, %d PPS", len(cfg.VPS), len(cfg.SPS), len(cfg.PPS))
			}
			if !IsKeyframe(nalus) {
				t.Fatal("x265's first picture is an IRAP")
			}
			sps := findType(nalus, NALUTypeSPS)
			sps[2] ^= 0xff
			if cfg.SPS[0][2] == sps[2] {
				t.Fatal("config SPS aliases the input")
			}
		})
	}
}

func TestConfigPartial(t *testing.T) {
	nalus := readAU(t, "crop.h265")
	cfg, ok := Config([][]byte{findType(nalus, NALUTypeSPS), findType(nalus, NALUTypePPS)})
	if ok || cfg.Width != 642 || len(cfg.VPS) != 0 {
		t.Fatalf("without VPS: ok=%v cfg=%+v, want partial config", ok, cfg)
	}
}

func TestTypesAndKeyframes(t *testing.T) {
	// nal_unit_type sits in bits 1..6 of the first header byte.
	unit := func(typ NALUType) []byte { return []byte{byte(typ) << 1, 1, 0xaa} }
	for typ := NALUType(0); typ < 64; typ++ {
		if got := Type(unit(typ)); got != typ {
			t.Fatalf("Type = %d, want %d", got, typ)
		}
		want := typ >= 16 && typ <= 21
		if got := IsKeyframe([][]byte{unit(NALUTypeAUD), unit(typ)}); got != want {
			t.Errorf("type %d: IsKeyframe = %v, want %v", typ, got, want)
		}
	}
	in := [][]byte{unit(NALUTypeAUD), unit(NALUTypeVPS), unit(NALUTypeSPS), unit(NALUTypePPS), unit(NALUTypeSEIPrefix), unit(NALUTypeIDRWRADL)}
	out := StripParameterSetsAndAUD(in)
	if len(out) != 2 || Type(out[0]) != NALUTypeSEIPrefix || Type(out[1]) != NALUTypeIDRWRADL || len(in) != 6 {
		t.Fatalf("strip: got %x", out)
	}
	if got := StripParameterSetsAndAUD(out); &got[0] != &out[0] {
		t.Fatal("want the input back when nothing is stripped")
	}
}

func TestPictureSizeErrors(t *testing.T) {
	for _, in := range [][]byte{nil, {0x42}, {0x44, 1, 2}, {0x42, 1, 0, 0, 0}} {
		if _, _, err := PictureSize(in); !errors.Is(err, ErrBadSPS) {
			t.Errorf("PictureSize(% x) = %v, want ErrBadSPS", in, err)
		}
	}
}

func FuzzConfig(f *testing.F) {
	for _, name := range []string{"crop.h265", "yuv444.h265"} {
		f.Add(findType(readAU(f, name), NALUTypeSPS))
	}
	f.Fuzz(func(t *testing.T, sps []byte) {
		if len(sps) > 0 {
			sps[0] = byte(NALUTypeSPS) << 1
		}
		cfg, _ := Config([][]byte{sps})
		if cfg.Width < 0 || cfg.Height < 0 || cfg.Width > 1<<16 {
			t.Fatalf("size %dx%d", cfg.Width, cfg.Height)
		}
	})
}
