package annexb

import (
	"bytes"
	"fmt"
	"testing"
)

func TestSplit(t *testing.T) {
	tests := []struct {
		name string
		in   []byte
		want [][]byte
	}{
		{"empty", nil, nil},
		{"no start code", []byte{1, 2, 3}, nil},
		{"three-byte", []byte{0, 0, 1, 0x65, 1, 2}, [][]byte{{0x65, 1, 2}}},
		{"four-byte", []byte{0, 0, 0, 1, 0x67, 1, 0, 0, 0, 1, 0x68, 2}, [][]byte{{0x67, 1}, {0x68, 2}}},
		{"mixed with leading junk", []byte{9, 9, 0, 0, 1, 0x09, 0xf0, 0, 0, 1, 0x65, 7}, [][]byte{{0x09, 0xf0}, {0x65, 7}}},
		{"trailing zeros trimmed", []byte{0, 0, 1, 0x41, 5, 0, 0, 0, 0, 0, 1, 0x41, 6, 0, 0}, [][]byte{{0x41, 5}, {0x41, 6}}},
		{"empty units dropped", []byte{0, 0, 1, 0, 0, 1, 0x41, 0, 0, 1}, [][]byte{{0x41}}},
		{"start code only", []byte{0, 0, 0, 1}, nil},
		{"emulation prevention kept", []byte{0, 0, 1, 0x41, 0, 0, 3, 1}, [][]byte{{0x41, 0, 0, 3, 1}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := Split(tc.in)
			if fmt.Sprint(got) != fmt.Sprint(tc.want) {
				t.Fatalf("Split(% x) = %v, want %v", tc.in, got, tc.want)
			}
		})
	}
}

func TestSplitUnitsAreCapped(t *testing.T) {
	in := []byte{0, 0, 1, 0x67, 1, 0, 0, 1, 0x68, 2}
	units := Split(in)
	_ = append(units[0], 0xff) // must not clobber the next unit
	if !bytes.Equal(units[1], []byte{0x68, 2}) {
		t.Fatalf("append to unit 0 overwrote unit 1: %x", units[1])
	}
}

func FuzzSplitAnnexB(f *testing.F) {
	f.Add([]byte{0, 0, 0, 1, 0x67, 1, 0, 0, 1, 0x68, 2, 0, 0, 1, 0x65, 0, 0, 3, 1})
	f.Add([]byte{0, 0, 1})
	f.Add([]byte{0, 0, 0, 0, 0})
	f.Fuzz(func(t *testing.T, b []byte) {
		units := Split(b)
		total := 0
		for _, u := range units {
			if len(u) == 0 {
				t.Fatal("empty unit")
			}
			if u[len(u)-1] == 0 {
				t.Fatal("unit ends in a zero byte")
			}
			if bytes.Contains(u, startCode) {
				t.Fatalf("unit % x contains a start code", u)
			}
			if !bytes.Contains(b, u) {
				t.Fatal("unit not taken from the input")
			}
			total += len(u) + len(startCode)
		}
		if total > len(b) {
			t.Fatalf("units cover %d bytes of %d", total, len(b))
		}
		// Re-joining with start codes gives the same units back.
		var joined []byte
		for _, u := range units {
			joined = append(append(joined, startCode...), u...)
		}
		if again := Split(joined); fmt.Sprint(again) != fmt.Sprint(units) {
			t.Fatalf("split(join(units)) = %v, want %v", again, units)
		}
	})
}

func BenchmarkSplit(b *testing.B) {
	// A typical access unit: AUD, SPS, PPS, SEI, then a 20 KB slice.
	au := []byte{0, 0, 0, 1, 0x09, 0xf0, 0, 0, 0, 1, 0x67, 1, 2, 3, 0, 0, 0, 1, 0x68, 4, 0, 0, 1, 0x06, 5, 0, 0, 1, 0x65}
	for i := 0; i < 20000; i++ {
		au = append(au, byte(i%251)+1)
	}
	b.SetBytes(int64(len(au)))
	b.ReportAllocs()
	for b.Loop() {
		if len(Split(au)) != 5 {
			b.Fatal("want 5 units")
		}
	}
}
