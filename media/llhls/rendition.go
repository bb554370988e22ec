package llhls

import (
	"bytes"
	"context"
	"sync"
	"sync/atomic"
	"time"
)

// Part is one CMAF fragment (moof+mdat) of the open segment.
type Part struct {
	// Data is the muxed fragment. The rendition keeps the slice: do not
	// modify it after AddPart.
	Data     []byte
	Duration time.Duration
	// Independent marks a part that starts with a sync sample
	// (INDEPENDENT=YES): players join and switch there.
	Independent bool
	// ProgramDateTime is the wall time of the part's first sample. The
	// part that opens a segment gives the segment its
	// EXT-X-PROGRAM-DATE-TIME; zero means none.
	ProgramDateTime time.Time
}

// Segment describes a closed segment.
type Segment struct {
	MSN             uint64
	Duration        time.Duration
	Parts           int
	Data            []byte // the parts concatenated; do not modify
	ProgramDateTime time.Time
	Discontinuity   bool
}

// Info is what the multivariant playlist says about a rendition.
type Info struct {
	Codecs        string  // RFC 6381, e.g. "avc1.64001f" or "mp4a.40.2"
	Width, Height int     // video
	FrameRate     float64 // video; 0 leaves FRAME-RATE out
	Channels      int     // audio; 0 leaves CHANNELS out
}

type part struct {
	data  []byte
	dur   time.Duration
	indep bool
}

type segment struct {
	msn    uint64
	start  time.Duration // media time since the rendition's first part
	dur    time.Duration
	parts  []part
	data   []byte // set when closed
	pdt    time.Time
	init   int // number of the init section it uses
	discon bool
	closed bool
}

func (s *segment) end() time.Duration { return s.start + s.dur }

// position is the newest part of a rendition, what its siblings report in
// EXT-X-RENDITION-REPORT. Published atomically so rendering one playlist
// never locks another rendition.
type position struct {
	msn  uint64
	part int
}

// Rendition is one media playlist with its init sections, parts and
// segments. One goroutine writes (SetInit, AddPart, CloseSegment, End);
// any number read. Create it with Group.Rendition.
type Rendition struct {
	name    string
	g       *Group
	cfg     Config
	ccBlock []string // Cache-Control of blocking reload answers

	mu      sync.RWMutex
	segs    []*segment // held, oldest first; the last may be open
	listed  int        // index in segs of the first segment the playlist lists
	discSeq uint64     // EXT-X-DISCONTINUITY-SEQUENCE
	nextMSN uint64
	end     time.Duration // media time at the end of the last part
	inits   map[int][]byte
	initN   int // current init section number, 0 before the first
	discon  bool
	ended   bool
	info    Info
	// changed is closed and replaced on every change: a broadcast that
	// wakes every waiter at once, with no polling.
	changed              chan struct{}
	warnedSeg, warnedPrt bool

	last atomic.Pointer[position]

	cacheMu sync.Mutex
	cache   [2]struct {
		ver uint64
		b   []byte
	}

	// Instrumentation for tests: playlist renders, condition checks made
	// by requests that had to wait, waiters parked right now.
	renders, checks, waiters atomic.Int64
}

func newRendition(name string, g *Group) *Rendition {
	return &Rendition{name: name, g: g, cfg: g.cfg, ccBlock: g.cfg.ccBlocking(),
		inits: map[int][]byte{}, changed: make(chan struct{})}
}

// Name is "video" or "audio".
func (r *Rendition) Name() string { return r.name }

// notifyLocked wakes waiters; the caller holds r.mu for writing.
func (r *Rendition) notifyLocked() {
	close(r.changed)
	r.changed = make(chan struct{})
	r.g.notify()
}

func (r *Rendition) openLocked() *segment {
	if n := len(r.segs); n > 0 && !r.segs[n-1].closed {
		return r.segs[n-1]
	}
	return nil
}

// SetInit installs a new initialization section. The next segment opened
// gets an EXT-X-MAP naming it (init1.mp4, init2.mp4, ...) and, when
// segments already used an earlier one, an EXT-X-DISCONTINUITY. Call it
// between CloseSegment and the next AddPart: a segment already open keeps
// its init. The same bytes as the current init change nothing.
func (r *Rendition) SetInit(data []byte) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.ended {
		return ErrEnded
	}
	if r.initN > 0 && bytes.Equal(r.inits[r.initN], data) {
		return nil
	}
	if r.nextMSN > 0 {
		r.discon = true
	}
	r.initN++
	r.inits[r.initN] = data
	r.notifyLocked()
	return nil
}

// SetInfo sets what the multivariant playlist announces for this
// rendition (codecs, resolution, frame rate, channels).
func (r *Rendition) SetInfo(info Info) {
	r.mu.Lock()
	r.info = info
	r.notifyLocked()
	r.mu.Unlock()
}

// MarkDiscontinuity makes the next segment opened start with
// EXT-X-DISCONTINUITY (its timestamps do not follow the previous one's).
func (r *Rendition) MarkDiscontinuity() {
	r.mu.Lock()
	if r.nextMSN > 0 && !r.ended {
		r.discon = true
		r.notifyLocked()
	}
	r.mu.Unlock()
}

// AddPart appends p to the open segment, opening segment nextMSN if none
// is open, and wakes the requests waiting for it.
func (r *Rendition) AddPart(p Part) error {
	if len(p.Data) == 0 || p.Duration <= 0 {
		return ErrBadPart
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.ended {
		return ErrEnded
	}
	if r.initN == 0 {
		return ErrNoInit
	}
	s := r.openLocked()
	if s == nil {
		s = &segment{msn: r.nextMSN, start: r.end, pdt: p.ProgramDateTime, init: r.initN, discon: r.discon}
		r.nextMSN++
		r.discon = false
		r.segs = append(r.segs, s)
	}
	s.parts = append(s.parts, part{data: p.Data, dur: p.Duration, indep: p.Independent})
	s.dur += p.Duration
	r.end += p.Duration
	if p.Duration > r.cfg.partTarget() && !r.warnedPrt {
		r.warnedPrt = true
		r.cfg.Logger.Warn("llhls: part longer than PART-TARGET; players may stall (RFC 8216bis 4.4.4.9): cut parts at or below the part target",
			"group", r.g.gen, "rendition", r.name, "msn", s.msn, "part", len(s.parts)-1,
			"duration", p.Duration, "part_target", r.cfg.partTarget())
	}
	r.last.Store(&position{msn: s.msn, part: len(s.parts) - 1})
	r.notifyLocked()
	return nil
}

// CloseSegment ends the open segment. Its bytes are its parts
// concatenated (one CMAF segment of several fragments).
func (r *Rendition) CloseSegment() (Segment, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.ended {
		return Segment{}, ErrEnded
	}
	s := r.closeLocked()
	if s == nil {
		return Segment{}, ErrNoOpenSegment
	}
	r.notifyLocked()
	return Segment{MSN: s.msn, Duration: s.dur, Parts: len(s.parts), Data: s.data,
		ProgramDateTime: s.pdt, Discontinuity: s.discon}, nil
}

func (r *Rendition) closeLocked() *segment {
	s := r.openLocked()
	if s == nil {
		return nil
	}
	n := 0
	for _, p := range s.parts {
		n += len(p.data)
	}
	// One buffer for the segment; the parts become views into it so the
	// bytes are held once.
	buf := make([]byte, 0, n)
	for i, p := range s.parts {
		off := len(buf)
		buf = append(buf, p.data...)
		s.parts[i].data = buf[off:len(buf):len(buf)]
	}
	s.data = buf
	s.closed = true
	if td := r.cfg.targetSeconds(); int64((s.dur+time.Second/2)/time.Second) > td && !r.warnedSeg {
		r.warnedSeg = true
		r.cfg.Logger.Warn("llhls: segment longer than EXT-X-TARGETDURATION: the publisher's keyframe interval is too long; set the encoder GOP to at most the target duration or raise TargetDuration",
			"group", r.g.gen, "rendition", r.name, "msn", s.msn, "duration", s.dur, "target_duration", td)
	}
	r.evictLocked()
	return s
}

// evictLocked drops segments from the playlist once it lists more than
// Window, and drops their bytes one more Window later. Called with no
// segment open.
func (r *Rendition) evictLocked() {
	listed := time.Duration(0)
	for _, s := range r.segs[r.listed:] {
		listed += s.dur
	}
	for r.listed < len(r.segs)-1 && listed-r.segs[r.listed].dur >= r.cfg.Window {
		s := r.segs[r.listed]
		listed -= s.dur
		if s.discon {
			r.discSeq++
		}
		r.listed++
	}
	var gone time.Duration
	for _, s := range r.segs[:r.listed] {
		gone += s.dur
	}
	drop := 0
	for drop < r.listed && gone > r.cfg.Window {
		gone -= r.segs[drop].dur
		r.segs[drop] = nil
		drop++
	}
	if drop > 0 {
		r.segs = r.segs[drop:]
		r.listed -= drop
		keep := r.initN
		if len(r.segs) > 0 {
			keep = r.segs[0].init
		}
		for n := range r.inits {
			if n < keep {
				delete(r.inits, n)
			}
		}
	}
}

// End closes the open segment, if any, and marks the playlist ended
// (EXT-X-ENDLIST): blocked requests are answered with the final playlist.
func (r *Rendition) End() {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.ended {
		return
	}
	r.closeLocked()
	r.ended = true
	r.notifyLocked()
}

// Wait blocks until the rendition holds part `part` of segment msn or any
// later part (a part index past the end of a closed segment means part 0
// of the next one, RFC 8216bis 6.2.5.2), or with part < 0 until segment
// msn or a later one is complete. It returns ErrEnded if the rendition
// ends first, or the context's error.
func (r *Rendition) Wait(ctx context.Context, msn uint64, part int) error {
	return r.await(ctx, 0, func() bool { return r.hasLocked(msn, part) })
}

func (r *Rendition) hasLocked(msn uint64, part int) bool {
	if part < 0 {
		c := r.lastClosedLocked()
		return c != nil && c.msn >= msn
	}
	p := r.last.Load()
	return p != nil && (p.msn > msn || p.msn == msn && p.part >= part)
}

func (r *Rendition) lastClosedLocked() *segment {
	for i := len(r.segs) - 1; i >= 0; i-- {
		if r.segs[i].closed {
			return r.segs[i]
		}
	}
	return nil
}

// await blocks until done (run under the read lock) reports true, the
// rendition ends (ErrEnded), ctx ends or, when timeout > 0, that much time
// passes (context.DeadlineExceeded). Each change to the rendition wakes it
// once to re-check: it never polls. The timer only starts when it has to
// wait, so answering from memory costs no timer.
func (r *Rendition) await(ctx context.Context, timeout time.Duration, done func() bool) error {
	for first := true; ; first = false {
		r.mu.RLock()
		ok, ended, ch := done(), r.ended, r.changed
		r.mu.RUnlock()
		if ok && first {
			return nil // answered from memory: no shared counter touched
		}
		r.checks.Add(1)
		if ok {
			return nil
		}
		if ended {
			return ErrEnded
		}
		if timeout > 0 {
			var cancel context.CancelFunc
			ctx, cancel = context.WithTimeout(ctx, timeout)
			defer cancel()
			timeout = 0
		}
		r.waiters.Add(1)
		select {
		case <-ch:
			r.waiters.Add(-1)
		case <-ctx.Done():
			r.waiters.Add(-1)
			return ctx.Err()
		}
	}
}

// fileKind is what a media URI names.
type fileKind uint8

const (
	fileInit fileKind = iota
	fileSegment
	filePart
)

// media returns the bytes of an init section, segment or part. The part
// the next EXT-X-PRELOAD-HINT names, and the open segment, are waited for;
// anything else absent is errGone at once.
func (r *Rendition) media(ctx context.Context, timeout time.Duration, kind fileKind, msn uint64, idx int) ([]byte, error) {
	var data []byte
	err := r.await(ctx, timeout, func() bool {
		var wait bool
		data, wait = r.lookupLocked(kind, msn, idx)
		return data != nil || !wait || r.ended
	})
	if err != nil {
		return nil, err
	}
	if data == nil {
		return nil, errGone
	}
	return data, nil
}

// lookupLocked finds a file; when absent, wait tells whether it is the
// next one to be produced.
func (r *Rendition) lookupLocked(kind fileKind, msn uint64, idx int) (data []byte, wait bool) {
	if kind == fileInit {
		return r.inits[idx], false
	}
	if len(r.segs) > 0 && msn >= r.segs[0].msn {
		if i := msn - r.segs[0].msn; i < uint64(len(r.segs)) {
			s := r.segs[i]
			if kind == fileSegment {
				return s.data, !s.closed
			}
			if idx < len(s.parts) {
				return s.parts[idx].data, false
			}
			return nil, !s.closed && idx == len(s.parts)
		}
	}
	// The first part of the segment not opened yet is what the preload
	// hint names once the previous segment has closed.
	return nil, kind == filePart && msn == r.nextMSN && idx == 0 && r.openLocked() == nil
}

// tooFar reports why a blocking request asks for more than RFC 8216bis
// 6.2.5.2 lets a server wait for: a segment more than two past the last
// one, or a part more than the Advance Part Limit past the last part.
func (r *Rendition) tooFar(msn uint64, part int64) (string, bool) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	if r.ended {
		return "", false
	}
	limit := uint64(1) // no segment yet: the first two may be asked for
	if c := r.lastClosedLocked(); c != nil {
		limit = c.msn + 2
	}
	if msn > limit {
		return "_HLS_msn " + itoa(msn) + " is more than two segments past the last segment; reload the playlist without _HLS_msn", true
	}
	p := r.last.Load()
	if part < 0 || p == nil {
		return "", false
	}
	var ahead float64
	switch {
	case msn == p.msn:
		ahead = float64(part - int64(p.part))
	case msn > p.msn:
		ahead = float64(part + 1) // at least: the parts of the next segment up to it
	}
	if ahead > r.cfg.advancePartLimit() {
		return "_HLS_part " + itoa(uint64(part)) + " is beyond the Advance Part Limit; reload the playlist without _HLS_msn", true
	}
	return "", false
}

// ready reports whether the rendition has a complete segment to list.
func (r *Rendition) ready() bool {
	return r.lastClosedLocked() != nil
}

// bandwidth is the peak and average bit rate of the segments listed.
func (r *Rendition) bandwidth() (peak, avg int64) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	var bytes int64
	var dur time.Duration
	for _, s := range r.segs[r.listed:] {
		if !s.closed || s.dur <= 0 {
			continue
		}
		bytes += int64(len(s.data))
		dur += s.dur
		if bps := bitrate(int64(len(s.data)), s.dur); bps > peak {
			peak = bps
		}
	}
	if dur > 0 {
		avg = bitrate(bytes, dur)
	}
	return peak, avg
}

func bitrate(n int64, d time.Duration) int64 {
	return int64((float64(n)*8)/d.Seconds() + 0.5)
}
