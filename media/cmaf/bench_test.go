package cmaf

import (
	"testing"

	"github.com/onair/onair/media/av"
)

// BenchmarkFragment writes one LL-HLS part: 6 frames (200 ms at 30 fps)
// of a 2 Mbit/s stream, key frame first.
func BenchmarkFragment(b *testing.B) {
	cfg, _, _ := loadVideo(b, videoFixtures[1])
	tr, err := NewTrack(cfg)
	if err != nil {
		b.Fatal(err)
	}
	const frameBytes = 2_000_000 / 8 / 30
	samples := make([]Sample, 6)
	total := 0
	for i := range samples {
		size := frameBytes * 5 / 6 // P/B frames
		if i == 0 {
			size = frameBytes * 2 // key frame
		}
		samples[i] = Sample{DTS: uint64(i) * 3000, Dur: 3000, CTO: int32(i%3) * 3000, Key: i == 0, Data: make([]byte, size)}
		total += size
	}
	b.SetBytes(int64(total))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := tr.Fragment(1, samples); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkVideoSampleData converts a 2 Mbit/s frame with AUD, SPS, PPS,
// SEI and two slices into a reused buffer.
func BenchmarkVideoSampleData(b *testing.B) {
	nalus := [][]byte{{0x09, 0xf0}, make([]byte, 25), make([]byte, 6), make([]byte, 40), make([]byte, 4000), make([]byte, 4000)}
	nalus[1][0], nalus[2][0], nalus[3][0], nalus[4][0], nalus[5][0] = 0x67, 0x68, 0x06, 0x65, 0x65
	buf := make([]byte, 0, 16<<10)
	b.SetBytes(8000)
	b.ReportAllocs()
	for b.Loop() {
		buf = VideoSampleData(buf[:0], av.H264, nalus)
	}
}
