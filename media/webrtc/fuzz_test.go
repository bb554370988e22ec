package webrtc

import (
	"encoding/binary"
	"testing"

	"github.com/pion/rtp"

	"github.com/onair/onair/media/av"
)

func FuzzParseOffer(f *testing.F) {
	f.Add(handOffer("sendonly", ""))
	f.Add(handOffer("recvonly", "vp8"))
	f.Add("v=0\r\no=- 1 1 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\nm=video 0 RTP/AVP 96\r\na=rtpmap:96 H264\r\n")
	f.Add("v=0\r\no=- 1 1 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\nm=audio 9 RTP/AVP 111\r\na=rtpmap:111 opus/x\r\na=fmtp:111 ;;=;sprop-stereo=1\r\n")
	f.Fuzz(func(t *testing.T, s string) {
		o, err := parseOffer([]byte(s))
		if err != nil {
			return
		}
		codecs, _, err := o.publishTracks()
		if err == nil && (len(codecs) == 0 || len(codecs) > 2) {
			t.Fatalf("publishTracks accepted %v", codecs)
		}
		_, _ = o.playable("video", "video/H264")
		_, _ = o.playable("audio", "audio/opus")
	})
}

func FuzzParseFrag(f *testing.F) {
	f.Add("a=ice-ufrag:EsAw\r\na=ice-pwd:P2uYro0UCOQ4zxjKXaWCBui1\r\nm=audio 9 RTP/AVP 0\r\na=mid:0\r\n" +
		"a=candidate:1387637174 1 udp 2122260223 192.0.2.1 61764 typ host generation 0 ufrag EsAw network-id 1\r\na=end-of-candidates\r\n")
	f.Add("a=candidate:1 1 tcp 1518280447 192.0.2.1 9 typ host tcptype active\n")
	f.Add("x")
	f.Fuzz(func(t *testing.T, s string) {
		fr, err := parseFrag(s)
		if err != nil {
			return
		}
		if len(fr.candidates) > maxFragCandidates {
			t.Fatalf("%d candidates", len(fr.candidates))
		}
		for _, c := range fr.candidates {
			if len(c.value) < len("candidate:") {
				t.Fatalf("candidate %q", c.value)
			}
		}
	})
}

// FuzzH264Frames feeds arbitrary packets (seq, ts, marker, payload
// records) through the reorder buffer and assembler: no panic, and what
// comes out is well formed.
func FuzzH264Frames(f *testing.F) {
	aus := accessUnits(f)
	var seed []byte
	for _, p := range flatten(videoPackets(aus[:3], 65534, 1<<32-3000)) {
		seed = appendRecord(seed, p)
	}
	f.Add(seed)
	f.Add([]byte{0, 1, 0, 0, 0, 0, 1, 3, 24, 0, 1})
	f.Fuzz(func(t *testing.T, b []byte) {
		var last int64
		n := 0
		a := newH264Frames(0, func(fr av.Frame, cfg *av.TrackConfig) {
			if n > 0 && fr.PTS <= last {
				t.Fatalf("PTS %d after %d", fr.PTS, last)
			}
			if n == 0 && (cfg == nil || !cfg.Ready() || !fr.Key) {
				t.Fatalf("first frame without a keyframe and config: %+v %+v", fr, cfg)
			}
			if len(fr.NALUs) == 0 || fr.PTS != fr.DTS {
				t.Fatalf("frame %+v", fr)
			}
			for _, u := range fr.NALUs {
				if len(u) == 0 {
					t.Fatal("empty NAL unit")
				}
			}
			last, n = fr.PTS, n+1
		}, nil)
		ro := newReorder(300, 36000)
		for len(b) >= 8 {
			l := int(b[7])
			if len(b) < 8+l {
				break
			}
			p := &rtp.Packet{Header: rtp.Header{
				SequenceNumber: binary.BigEndian.Uint16(b),
				Timestamp:      binary.BigEndian.Uint32(b[2:]),
				Marker:         b[6]&1 != 0,
			}, Payload: b[8 : 8+l]}
			ro.push(p, a.push)
			b = b[8+l:]
		}
		ro.flush(a.push)
	})
}

// appendRecord encodes a packet as the fuzzer reads it; payloads longer
// than 255 bytes are cut (the seed only needs the shape).
func appendRecord(b []byte, p *rtp.Packet) []byte {
	pl := p.Payload
	if len(pl) > 255 {
		pl = pl[:255]
	}
	b = binary.BigEndian.AppendUint16(b, p.SequenceNumber)
	b = binary.BigEndian.AppendUint32(b, p.Timestamp)
	m := byte(0)
	if p.Marker {
		m = 1
	}
	b = append(b, m, byte(len(pl)))
	return append(b, pl...)
}
