package rtpfwd

import (
	"errors"
	"io"

	"github.com/pion/rtcp"
	"github.com/pion/webrtc/v4"
)

// ReadRTCP reads the RTCP a viewer sends for sender until the sender stops,
// and asks fwd for a keyframe on every PLI or FIR (rate-limited, see
// OnKeyframeRequest). Run it in one goroutine per sender: reading RTCP is
// also what feeds pion's interceptors, so NACKs get answered. It returns nil
// when the sender stops, else the read error.
func ReadRTCP(sender *webrtc.RTPSender, fwd *Forwarder) error {
	buf := make([]byte, 1500)
	for {
		n, _, err := sender.Read(buf)
		if err != nil {
			if errors.Is(err, io.EOF) || errors.Is(err, io.ErrClosedPipe) {
				return nil
			}
			return err
		}
		if keyframeRequested(buf[:n]) {
			fwd.requestKeyframe()
		}
	}
}

// keyframeRequested reports whether a compound RTCP packet holds a picture
// loss indication or a full intra request. It reads only the common headers
// (no allocation); a malformed packet ends the scan.
func keyframeRequested(b []byte) bool {
	for len(b) >= 4 {
		var h rtcp.Header
		if err := h.Unmarshal(b); err != nil {
			return false
		}
		size := (int(h.Length) + 1) * 4
		if size > len(b) {
			return false
		}
		if h.Type == rtcp.TypePayloadSpecificFeedback && (h.Count == rtcp.FormatPLI || h.Count == rtcp.FormatFIR) {
			return true
		}
		b = b[size:]
	}
	return false
}
