package opus

import (
	"bytes"
	"errors"
	"testing"
)

// au builds one TS access unit around pkt.
func au(pkt []byte, startTrim, endTrim int, ext []byte) []byte {
	flags := byte(0xe0)
	if startTrim >= 0 {
		flags |= 0x10
	}
	if endTrim >= 0 {
		flags |= 0x08
	}
	if ext != nil {
		flags |= 0x04
	}
	b := []byte{0x7f, flags}
	n := len(pkt)
	for ; n >= 255; n -= 255 {
		b = append(b, 0xff)
	}
	b = append(b, byte(n))
	if startTrim >= 0 {
		b = append(b, 0xe0|byte(startTrim>>8), byte(startTrim)) // reserved bits set
	}
	if endTrim >= 0 {
		b = append(b, byte(endTrim>>8), byte(endTrim))
	}
	if ext != nil {
		b = append(append(b, byte(len(ext))), ext...)
	}
	return append(b, pkt...)
}

func TestParseTS(t *testing.T) {
	small := []byte{0xfc, 1, 2, 3}               // CELT 20 ms stereo, one frame
	big := bytes.Repeat([]byte{0x78, 0xaa}, 300) // 600 bytes: au_size 255+255+90
	exact := bytes.Repeat([]byte{0x08}, 255)     // au_size 0xff 0x00
	in := append(au(small, 312, -1, nil), au(big, -1, -1, []byte{9, 9, 9})...)
	in = append(in, au(exact, -1, 100, nil)...)
	in = append(in, au(nil, -1, -1, nil)...)

	pkts, err := ParseTS(in)
	if err != nil {
		t.Fatal(err)
	}
	want := []Packet{{small, 312, 0}, {big, 0, 0}, {exact, 0, 100}, {[]byte{}, 0, 0}}
	if len(pkts) != len(want) {
		t.Fatalf("%d packets, want %d", len(pkts), len(want))
	}
	for i := range want {
		if !bytes.Equal(pkts[i].Data, want[i].Data) || pkts[i].StartTrim != want[i].StartTrim || pkts[i].EndTrim != want[i].EndTrim {
			t.Errorf("packet %d: got %d bytes trims %d/%d, want %d bytes trims %d/%d", i,
				len(pkts[i].Data), pkts[i].StartTrim, pkts[i].EndTrim, len(want[i].Data), want[i].StartTrim, want[i].EndTrim)
		}
	}

	if p, err := ParseTS(in[:len(in)-4]); !errors.Is(err, ErrTruncated) || len(p) != 2 {
		t.Fatalf("cut: %d packets, %v", len(p), err)
	}
	if _, err := ParseTS([]byte{0x7f, 0xc0, 1, 0xfc}); !errors.Is(err, ErrNoControlHeader) {
		t.Fatalf("bad prefix: %v", err)
	}
	if _, err := ParseTS(nil); !errors.Is(err, ErrNoControlHeader) {
		t.Fatalf("empty: %v", err)
	}
	for _, cut := range [][]byte{{0x7f, 0xe0}, {0x7f, 0xe0, 0xff}, {0x7f, 0xf0, 1, 0}, {0x7f, 0xe4, 1}, {0x7f, 0xe4, 1, 9, 0xfc}} {
		if _, err := ParseTS(cut); !errors.Is(err, ErrTruncated) {
			t.Errorf("ParseTS(% x) = %v, want ErrTruncated", cut, err)
		}
	}
}

func TestPacketDuration(t *testing.T) {
	toc := func(config, code byte) byte { return config<<3 | code }
	tests := []struct {
		pkt  []byte
		want int
	}{
		{nil, 0},
		{[]byte{toc(0, 0)}, 480},            // SILK NB 10 ms
		{[]byte{toc(1, 0)}, 960},            // SILK NB 20 ms
		{[]byte{toc(2, 0)}, 1920},           // SILK 40 ms
		{[]byte{toc(11, 0)}, 2880},          // SILK WB 60 ms
		{[]byte{toc(12, 0)}, 480},           // hybrid SWB 10 ms
		{[]byte{toc(15, 0)}, 960},           // hybrid FB 20 ms
		{[]byte{toc(16, 0)}, 120},           // CELT NB 2.5 ms
		{[]byte{toc(29, 0)}, 240},           // CELT FB 5 ms
		{[]byte{toc(30, 0)}, 480},           // CELT FB 10 ms
		{[]byte{toc(31, 0) | 4, 0xaa}, 960}, // CELT FB 20 ms stereo
		{[]byte{toc(31, 1)}, 1920},          // two equal frames
		{[]byte{toc(31, 2), 5}, 1920},       // two frames, different sizes
		{[]byte{toc(31, 3), 6}, 5760},       // six 20 ms frames = 120 ms
		{[]byte{toc(31, 3), 0x80 | 3}, 2880},
		{[]byte{toc(31, 3), 7}, 0}, // 140 ms: invalid
		{[]byte{toc(11, 3), 3}, 0}, // 3 x 60 ms: invalid
		{[]byte{toc(16, 3), 48}, 5760},
		{[]byte{toc(31, 3)}, 0},    // frame count byte missing
		{[]byte{toc(31, 3), 0}, 0}, // zero frames
	}
	for _, tc := range tests {
		if got := PacketDuration(tc.pkt); got != tc.want {
			t.Errorf("PacketDuration(% x) = %d, want %d", tc.pkt, got, tc.want)
		}
	}
	if Channels([]byte{0xfc}) != 2 || Channels([]byte{0xf8}) != 1 || Channels(nil) != 0 {
		t.Fatal("Channels from the TOC stereo flag")
	}
}

func FuzzOpusTS(f *testing.F) {
	f.Add(au([]byte{0xfc, 1, 2, 3}, 312, -1, nil))
	f.Add(append(au(bytes.Repeat([]byte{0x78}, 300), -1, 7, []byte{1}), au([]byte{0xfb, 2}, -1, -1, nil)...))
	f.Fuzz(func(t *testing.T, b []byte) {
		pkts, err := ParseTS(b)
		total := 0
		for _, p := range pkts {
			total += len(p.Data) + 3
			if p.StartTrim < 0 || p.StartTrim >= 1<<13 || p.EndTrim < 0 || p.EndTrim >= 1<<13 {
				t.Fatalf("trim %d/%d", p.StartTrim, p.EndTrim)
			}
			if d := PacketDuration(p.Data); d < 0 || d > 5760 || d%120 != 0 {
				t.Fatalf("duration %d", d)
			}
		}
		if total > len(b) {
			t.Fatalf("packets cover %d of %d bytes", total, len(b))
		}
		if err == nil && len(pkts) == 0 {
			t.Fatal("no packets and no error")
		}
	})
}
