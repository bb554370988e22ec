package rtpfwd

import (
	"encoding/hex"
	"math/rand/v2"
	"strings"

	"github.com/pion/webrtc/v4"
)

// The codecs pion's RegisterDefaultCodecs offers, so a default MediaEngine
// negotiates them.
var (
	h264Capability = webrtc.RTPCodecCapability{
		MimeType:    webrtc.MimeTypeH264,
		ClockRate:   90000,
		SDPFmtpLine: "level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42e01f",
		RTCPFeedback: []webrtc.RTCPFeedback{
			{Type: "goog-remb"}, {Type: "ccm", Parameter: "fir"}, {Type: "nack"}, {Type: "nack", Parameter: "pli"},
		},
	}
	opusCapability = webrtc.RTPCodecCapability{
		MimeType:    webrtc.MimeTypeOpus,
		ClockRate:   48000,
		Channels:    2,
		SDPFmtpLine: "minptime=10;useinbandfec=1",
	}
)

// match picks the negotiated codec to send: for Opus the first Opus entry;
// for H.264 an entry with packetization-mode=1 (FU-A needs it), preferring
// the profile of the stream's SPS when one was seen, else constrained
// baseline, else the viewer's first choice.
func (f *Forwarder) match(offered []webrtc.RTPCodecParameters) (webrtc.RTPCodecParameters, bool) {
	best, bestScore := webrtc.RTPCodecParameters{}, -1
	want := f.profile.Load()
	wantIDC, wantFlags := byte(0x42), byte(0xe0)
	if want != 0 {
		wantIDC, wantFlags = byte(want>>8), byte(want)
	}
	for _, c := range offered {
		if !strings.EqualFold(c.MimeType, f.capability.MimeType) || c.ClockRate != f.capability.ClockRate {
			continue
		}
		if !f.video {
			return c, true
		}
		params := fmtp(c.SDPFmtpLine)
		if params["packetization-mode"] != "1" {
			continue
		}
		score := 0
		if pli, err := hex.DecodeString(params["profile-level-id"]); err == nil && len(pli) == 3 {
			if pli[0] == wantIDC {
				score += 2
			}
			if pli[1] == wantFlags {
				score++
			}
		}
		if score > bestScore {
			best, bestScore = c, score
		}
	}
	return best, bestScore >= 0
}

// fmtp splits an a=fmtp parameter line ("a=1;b=2") into lower-case keys
// and their values.
func fmtp(line string) map[string]string {
	out := map[string]string{}
	for p := range strings.SplitSeq(line, ";") {
		k, v, _ := strings.Cut(strings.TrimSpace(p), "=")
		out[strings.ToLower(k)] = strings.ToLower(strings.TrimSpace(v))
	}
	return out
}

// randUint32 seeds sequence numbers and timestamp offsets (RFC 3550 5.1).
func randUint32() uint32 { return rand.Uint32() }
