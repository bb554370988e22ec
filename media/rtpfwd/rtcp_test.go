package rtpfwd

import (
	"testing"

	"github.com/pion/rtcp"
)

func marshalRTCP(t testing.TB, pkts ...rtcp.Packet) []byte {
	t.Helper()
	b, err := rtcp.Marshal(pkts)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestKeyframeRequested(t *testing.T) {
	rr := &rtcp.ReceiverReport{SSRC: 1, Reports: []rtcp.ReceptionReport{{SSRC: 2, FractionLost: 3}}}
	nack := &rtcp.TransportLayerNack{SenderSSRC: 1, MediaSSRC: 2, Nacks: []rtcp.NackPair{{PacketID: 7}}}
	pli := &rtcp.PictureLossIndication{SenderSSRC: 1, MediaSSRC: 2}
	fir := &rtcp.FullIntraRequest{SenderSSRC: 1, MediaSSRC: 2, FIR: []rtcp.FIREntry{{SSRC: 2, SequenceNumber: 1}}}
	remb := &rtcp.ReceiverEstimatedMaximumBitrate{SenderSSRC: 1, Bitrate: 1e6, SSRCs: []uint32{2}}
	for _, tc := range []struct {
		name string
		b    []byte
		want bool
	}{
		{"PLI", marshalRTCP(t, pli), true},
		{"FIR", marshalRTCP(t, fir), true},
		{"RR then PLI", marshalRTCP(t, rr, nack, pli), true},
		{"RR and NACK", marshalRTCP(t, rr, nack), false},
		{"REMB (PSFB, FMT 15)", marshalRTCP(t, rr, remb), false},
		{"truncated before PLI", marshalRTCP(t, rr, pli)[:len(marshalRTCP(t, rr))+6], false},
		{"empty", nil, false},
		{"bad version", []byte{0x01, 206, 0, 2, 0, 0, 0, 1, 0, 0, 0, 2}, false},
	} {
		if got := keyframeRequested(tc.b); got != tc.want {
			t.Errorf("%s: keyframeRequested = %v, want %v", tc.name, got, tc.want)
		}
	}
}

// FuzzKeyframeRequested checks the RTCP scan never panics and agrees with
// pion's full parser whenever that parser accepts the packet.
func FuzzKeyframeRequested(f *testing.F) {
	f.Add(marshalRTCP(f, &rtcp.PictureLossIndication{SenderSSRC: 1, MediaSSRC: 2}))
	f.Add(marshalRTCP(f, &rtcp.ReceiverReport{SSRC: 1}, &rtcp.FullIntraRequest{MediaSSRC: 2, FIR: []rtcp.FIREntry{{SSRC: 2}}}))
	f.Add(marshalRTCP(f, &rtcp.ReceiverReport{SSRC: 1}, &rtcp.TransportLayerNack{MediaSSRC: 2, Nacks: []rtcp.NackPair{{PacketID: 1}}}))
	f.Add([]byte{0x80, 206, 0xff, 0xff})
	f.Fuzz(func(t *testing.T, b []byte) {
		got := keyframeRequested(b)
		pkts, err := rtcp.Unmarshal(b)
		if err != nil {
			return
		}
		want := false
		for _, p := range pkts {
			switch p.(type) {
			case *rtcp.PictureLossIndication, *rtcp.FullIntraRequest:
				want = true
			}
		}
		if got != want {
			t.Fatalf("keyframeRequested = %v, pion parses %d packets (%T...) with a PLI/FIR: %v", got, len(pkts), pkts[0], want)
		}
	})
}
