package srt

import (
	"errors"
	"fmt"
	"strings"
)

// Mode says what a caller wants to do with a stream.
type Mode int

const (
	// ModePublish sends a stream to the server (SRT access control m=publish).
	ModePublish Mode = iota + 1
	// ModeRead receives a stream from the server (m=request, the default).
	ModeRead
)

func (m Mode) String() string {
	switch m {
	case ModePublish:
		return "publish"
	case ModeRead:
		return "read"
	}
	return fmt.Sprintf("mode(%d)", int(m))
}

// StreamID is a caller's parsed SRT stream id.
type StreamID struct {
	Mode Mode
	// Name is the stream path, always "live/<name>".
	Name string
	// User is the optional u= key of the access-control form.
	User string
}

// String gives the short form, which ParseStreamID accepts back.
func (id StreamID) String() string { return id.Mode.String() + ":" + id.Name }

// ErrBadStreamID is matched (errors.Is) by every error ParseStreamID returns.
var ErrBadStreamID = errors.New("bad streamid")

// StreamIDError says why a stream id was refused and which SRT reject code
// the caller is told.
type StreamIDError struct {
	StreamID string
	Reason   string
	Code     RejectCode
}

func (e *StreamIDError) Error() string {
	return fmt.Sprintf("streamid %q: %s", clip(e.StreamID), e.Reason)
}

// Is makes errors.Is(err, ErrBadStreamID) hold.
func (e *StreamIDError) Is(target error) bool { return target == ErrBadStreamID }

// RejectCode is the SRT reject reason sent to the caller.
func (e *StreamIDError) RejectCode() RejectCode { return e.Code }

const (
	livePrefix  = "live/"
	maxNameLen  = 64
	maxUserLen  = 64
	acPrefix    = "#!::"
	wantGeneral = "want publish:live/<name> or #!::r=live/<name>,m=publish"
	wantName    = "<name> is 1 to 64 of A-Z a-z 0-9 . _ - and not \"..\""
)

// ParseStreamID accepts "publish:live/<name>", "read:live/<name>" and the
// SRT access-control form "#!::r=live/<name>,m=publish" (keys r, m, u, s,
// t, h; m defaults to request, which is a read).
func ParseStreamID(s string) (StreamID, error) {
	bad := func(code RejectCode, reason string) (StreamID, error) {
		return StreamID{}, &StreamIDError{StreamID: s, Reason: reason, Code: code}
	}
	if rest, ok := strings.CutPrefix(s, acPrefix); ok {
		return parseAccessControl(s, rest)
	}
	modeStr, path, ok := strings.Cut(s, ":")
	if !ok {
		return bad(RejectBadRequest, wantGeneral)
	}
	var id StreamID
	switch modeStr {
	case "publish":
		id.Mode = ModePublish
	case "read":
		id.Mode = ModeRead
	default:
		return bad(RejectBadRequest, wantGeneral)
	}
	if err := checkPath(path); err != "" {
		return bad(RejectBadRequest, err)
	}
	id.Name = path
	return id, nil
}

func parseAccessControl(s, rest string) (StreamID, error) {
	bad := func(code RejectCode, reason string) (StreamID, error) {
		return StreamID{}, &StreamIDError{StreamID: s, Reason: reason, Code: code}
	}
	seen := map[string]bool{}
	var id StreamID
	var res, mode, typ string
	for _, kv := range strings.Split(rest, ",") {
		k, v, ok := strings.Cut(kv, "=")
		if !ok || k == "" {
			return bad(RejectBadRequest, fmt.Sprintf("%q is not key=value; %s", clipTo(kv, 32), wantGeneral))
		}
		if seen[k] {
			return bad(RejectBadRequest, fmt.Sprintf("key %q given twice", clipTo(k, 16)))
		}
		seen[k] = true
		switch k {
		case "r":
			res = v
		case "m":
			mode = v
		case "u":
			if v == "" || len(v) > maxUserLen || !printable(v) {
				return bad(RejectBadRequest, "u= must be 1 to 64 printable ASCII characters")
			}
			id.User = v
		case "t":
			typ = v
		case "s", "h":
			// Session id and host: nothing here depends on them.
		default:
			return bad(RejectKeyNotSupported, fmt.Sprintf("key %q not supported; use r, m, u, s, t or h", clipTo(k, 16)))
		}
	}
	if !seen["r"] {
		return bad(RejectBadRequest, "no r= key; "+wantGeneral)
	}
	switch mode {
	case "", "request":
		id.Mode = ModeRead
	case "publish":
		id.Mode = ModePublish
	default:
		return bad(RejectBadMode, fmt.Sprintf("m=%q not supported; use m=publish or m=request", clipTo(mode, 16)))
	}
	if typ != "" && typ != "stream" {
		return bad(RejectMediaNotSupported, fmt.Sprintf("t=%q not supported; only t=stream", clipTo(typ, 16)))
	}
	if err := checkPath(res); err != "" {
		return bad(RejectBadRequest, err)
	}
	id.Name = res
	return id, nil
}

// checkPath returns why p is not "live/<name>", or "" when it is.
func checkPath(p string) string {
	name, ok := strings.CutPrefix(p, livePrefix)
	if !ok {
		return fmt.Sprintf("path must start with %q; %s", livePrefix, wantGeneral)
	}
	if len(name) == 0 || len(name) > maxNameLen || strings.Contains(name, "..") {
		return wantName
	}
	for i := 0; i < len(name); i++ {
		if !nameByte(name[i]) {
			return wantName
		}
	}
	return ""
}

func nameByte(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' ||
		c == '.' || c == '_' || c == '-'
}

func printable(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < 0x21 || s[i] > 0x7e {
			return false
		}
	}
	return true
}

// clip keeps a caller-controlled string short enough for one log line.
func clip(s string) string { return clipTo(s, 80) }

func clipTo(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}
