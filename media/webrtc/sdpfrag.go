package webrtc

import (
	"errors"
	"fmt"
	"strings"
)

// errBadFrag reports a PATCH body that is not a trickle-ice-sdpfrag (400).
var errBadFrag = errors.New("bad trickle-ice-sdpfrag")

// sdpFrag is what a WHIP/WHEP PATCH carries (RFC 8840 fragment): ICE
// credentials and candidates, per media section.
type sdpFrag struct {
	ufrag, pwd string
	candidates []fragCandidate
	end        bool // a=end-of-candidates
}

type fragCandidate struct {
	mid   string // "" when the fragment names none
	value string // "candidate:..." as ICECandidateInit wants it
}

// maxFragCandidates bounds the candidates of one PATCH.
const maxFragCandidates = 64

// parseFrag parses a trickle-ice-sdpfrag body. Lines it does not need
// (m=, c=, other a= lines) are skipped; lines that are not SDP at all
// make it fail.
func parseFrag(body string) (*sdpFrag, error) {
	f := &sdpFrag{}
	mid := ""
	lines := 0
	for line := range strings.Lines(body) {
		line = strings.TrimRight(line, "\r\n")
		if line == "" {
			continue
		}
		lines++
		if len(line) < 2 || line[1] != '=' || line[0] < 'a' || line[0] > 'z' {
			return nil, fmt.Errorf("%w: line %q is not an SDP line (want x=value)", errBadFrag, clip(line))
		}
		if line[0] == 'm' {
			mid = ""
			continue
		}
		if line[0] != 'a' {
			continue
		}
		key, val, _ := strings.Cut(line[2:], ":")
		switch key {
		case "ice-ufrag":
			f.ufrag = val
		case "ice-pwd":
			f.pwd = val
		case "mid":
			mid = val
		case "end-of-candidates":
			f.end = true
		case "candidate":
			if len(strings.Fields(val)) < 8 {
				return nil, fmt.Errorf("%w: candidate %q: want foundation, component, transport, priority, address, port, typ, type", errBadFrag, clip(val))
			}
			if len(f.candidates) == maxFragCandidates {
				return nil, fmt.Errorf("%w: more than %d candidates", errBadFrag, maxFragCandidates)
			}
			f.candidates = append(f.candidates, fragCandidate{mid: mid, value: "candidate:" + val})
		}
	}
	if lines == 0 {
		return nil, fmt.Errorf("%w: empty body", errBadFrag)
	}
	return f, nil
}

func clip(s string) string {
	if len(s) > 80 {
		return s[:80] + "..."
	}
	return s
}
