package webrtc

import (
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/pion/sdp/v3"
	"github.com/pion/webrtc/v4"

	"github.com/onair/onair/media/av"
)

var (
	// errBadSDP reports an offer that does not parse or makes no sense (400).
	errBadSDP = errors.New("bad SDP offer")
	// errNoCodec reports an offer without a codec onair takes or sends (406).
	errNoCodec = errors.New("no acceptable codec")
)

// accepted is what a 406 tells the client onair accepts.
const accepted = "onair accepts H.264 video (packetization-mode=1, no B-frames) and Opus audio"

// h264Profiles are the profile-level-ids registered for exact matching:
// baseline, constrained baseline, main, high and constrained high, the
// ones browsers and OBS offer. pion still falls back to any H.264 offer.
var h264Profiles = []string{"42001f", "42e01f", "4d001f", "64001f", "640c1f"}

// registerCodecs registers H.264 (packetization-mode 1) and Opus. NACK,
// PLI and TWCC feedback are added by the interceptor configuration.
func registerCodecs(m *webrtc.MediaEngine) error {
	fir := []webrtc.RTCPFeedback{{Type: "ccm", Parameter: "fir"}}
	for i, p := range h264Profiles {
		err := m.RegisterCodec(webrtc.RTPCodecParameters{
			RTPCodecCapability: webrtc.RTPCodecCapability{
				MimeType:     webrtc.MimeTypeH264,
				ClockRate:    90000,
				SDPFmtpLine:  "level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=" + p,
				RTCPFeedback: fir,
			},
			PayloadType: webrtc.PayloadType(102 + i),
		}, webrtc.RTPCodecTypeVideo)
		if err != nil {
			return err
		}
	}
	return m.RegisterCodec(webrtc.RTPCodecParameters{
		RTPCodecCapability: webrtc.RTPCodecCapability{
			MimeType:    webrtc.MimeTypeOpus,
			ClockRate:   48000,
			Channels:    2,
			SDPFmtpLine: "minptime=10;useinbandfec=1",
		},
		PayloadType: 111,
	}, webrtc.RTPCodecTypeAudio)
}

// offer is what onair needs to know of a client's SDP offer before it
// builds a peer connection: the media sections and their codecs.
type offer struct {
	media []offerMedia
	ufrag string // the offerer's ICE username fragment (first found)
}

type offerMedia struct {
	kind      string // "audio", "video", "application", ...
	direction string // sendrecv, sendonly, recvonly, inactive
	rejected  bool   // port 0 without bundle-only
	codecs    []offerCodec
}

type offerCodec struct {
	name  string // as in rtpmap: "H264", "opus"
	clock int
	fmtp  map[string]string
}

// parseOffer parses an SDP offer. The error says what is wrong, for the
// 400 body.
func parseOffer(b []byte) (*offer, error) {
	var sd sdp.SessionDescription
	if err := sd.UnmarshalString(string(b)); err != nil {
		return nil, fmt.Errorf("%w: %v", errBadSDP, err)
	}
	if len(sd.MediaDescriptions) == 0 {
		return nil, fmt.Errorf("%w: no m= sections", errBadSDP)
	}
	sessionDir := directionOf(sd.Attributes, "sendrecv")
	o := &offer{}
	o.ufrag, _ = sd.Attribute("ice-ufrag")
	for i, md := range sd.MediaDescriptions {
		m := offerMedia{
			kind:      md.MediaName.Media,
			direction: directionOf(md.Attributes, sessionDir),
		}
		if u, ok := md.Attribute("ice-ufrag"); ok && o.ufrag == "" {
			o.ufrag = u
		}
		_, bundleOnly := md.Attribute("bundle-only")
		m.rejected = md.MediaName.Port.Value == 0 && !bundleOnly
		byPT := map[string]int{}
		for _, a := range md.Attributes {
			switch a.Key {
			case "rtpmap":
				pt, rest, ok := strings.Cut(a.Value, " ")
				if !ok {
					return nil, fmt.Errorf("%w: m= section %d: rtpmap %q: want \"<pt> <name>/<clock>\"", errBadSDP, i, a.Value)
				}
				parts := strings.Split(rest, "/")
				clock, err := strconv.Atoi(strings.TrimSpace(safeIndex(parts, 1)))
				if err != nil || len(parts) < 2 {
					return nil, fmt.Errorf("%w: m= section %d: rtpmap %q: bad clock rate", errBadSDP, i, a.Value)
				}
				byPT[pt] = len(m.codecs)
				m.codecs = append(m.codecs, offerCodec{name: parts[0], clock: clock})
			}
		}
		for _, a := range md.Attributes {
			if a.Key != "fmtp" {
				continue
			}
			pt, params, _ := strings.Cut(a.Value, " ")
			if j, ok := byPT[pt]; ok {
				m.codecs[j].fmtp = parseFmtp(params)
			}
		}
		o.media = append(o.media, m)
	}
	return o, nil
}

func safeIndex(s []string, i int) string {
	if i < len(s) {
		return s[i]
	}
	return ""
}

func directionOf(attrs []sdp.Attribute, dflt string) string {
	for _, a := range attrs {
		switch a.Key {
		case "sendrecv", "sendonly", "recvonly", "inactive":
			return a.Key
		}
	}
	return dflt
}

func parseFmtp(s string) map[string]string {
	out := map[string]string{}
	for _, kv := range strings.Split(s, ";") {
		k, v, _ := strings.Cut(strings.TrimSpace(kv), "=")
		if k != "" {
			out[strings.ToLower(k)] = v
		}
	}
	return out
}

func (m *offerMedia) has(name string) (offerCodec, bool) {
	for _, c := range m.codecs {
		if strings.EqualFold(c.name, name) {
			return c, true
		}
	}
	return offerCodec{}, false
}

func (m *offerMedia) codecNames() string {
	var names []string
	for _, c := range m.codecs {
		n := c.name + "/" + strconv.Itoa(c.clock)
		if !slices.Contains(names, n) && !strings.EqualFold(c.name, "rtx") {
			names = append(names, n)
		}
	}
	if len(names) == 0 {
		return "no codecs"
	}
	return strings.Join(names, ", ")
}

// sends reports whether the offerer sends on this section.
func (m *offerMedia) sends() bool {
	return !m.rejected && (m.direction == "sendonly" || m.direction == "sendrecv")
}

// receives reports whether the offerer receives on this section.
func (m *offerMedia) receives() bool {
	return !m.rejected && (m.direction == "recvonly" || m.direction == "sendrecv")
}

// publishTracks checks a WHIP offer: at most one video and one audio
// section the client sends on, each with a codec onair takes (406 if not:
// RFC 9725 asks for no partially successful answers). It returns the
// codecs in the order video, audio, and whether Opus is declared stereo.
func (o *offer) publishTracks() (codecs []av.Codec, opusStereo bool, err error) {
	var video, audio int
	for _, m := range o.media {
		if !m.sends() {
			continue
		}
		switch m.kind {
		case "video":
			video++
			if _, ok := m.has("H264"); !ok {
				return nil, false, fmt.Errorf("%w: the video section offers %s; %s", errNoCodec, m.codecNames(), accepted)
			}
		case "audio":
			audio++
			c, ok := m.has("opus")
			if !ok {
				return nil, false, fmt.Errorf("%w: the audio section offers %s; %s", errNoCodec, m.codecNames(), accepted)
			}
			opusStereo = c.fmtp["sprop-stereo"] == "1"
		}
	}
	if video > 1 || audio > 1 {
		return nil, false, fmt.Errorf("%w: %d video and %d audio sections; onair takes one of each at most (a single MediaStream)", errNoCodec, video, audio)
	}
	if video == 1 {
		codecs = append(codecs, av.H264)
	}
	if audio == 1 {
		codecs = append(codecs, av.Opus)
	}
	if len(codecs) == 0 {
		return nil, false, fmt.Errorf("%w: no audio or video section the client sends on (WHIP offers use sendonly)", errBadSDP)
	}
	return codecs, opusStereo, nil
}

// playable reports whether a WHEP offer has a section of the kind that
// receives mime (e.g. "video/H264"). err is set when the section exists
// but does not offer the codec.
func (o *offer) playable(kind, mime string) (bool, error) {
	_, name, _ := strings.Cut(mime, "/")
	for _, m := range o.media {
		if m.kind != kind || !m.receives() {
			continue
		}
		if _, ok := m.has(name); !ok {
			return false, fmt.Errorf("%w: the %s section offers %s; onair sends %s", errNoCodec, kind, m.codecNames(), name)
		}
		return true, nil
	}
	return false, nil
}
