package mpegts

// wrap is the period of MPEG-TS timestamps: 33 bits of the 90 kHz clock,
// about 26.5 hours.
const wrap = 1 << 33

// unwrapper turns 33-bit PTS/DTS into a 64-bit timeline that keeps
// growing across wraps. One unwrapper serves every track of a session, so
// audio and video stay on the same timeline even when one track crosses
// the wrap before the other.
type unwrapper struct {
	ref     int64
	started bool
}

// unwrap places raw on the timeline next to the last timestamp seen and
// moves the reference there. Use it for DTS, which only grows.
func (u *unwrapper) unwrap(raw int64) int64 {
	raw &= wrap - 1
	if !u.started {
		u.started = true
		u.ref = raw
		return raw
	}
	u.ref = nearest(raw, u.ref)
	return u.ref
}

// nearest returns the value congruent to raw modulo 2^33 closest to ref:
// timestamps of one session never jump by half the wrap (13 hours).
func nearest(raw, ref int64) int64 {
	raw &= wrap - 1
	v := ref - (ref%wrap+wrap)%wrap + raw
	switch {
	case v-ref > wrap/2:
		v -= wrap
	case ref-v > wrap/2:
		v += wrap
	}
	return v
}
