package llhls

import (
	"context"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
)

// Group is the renditions of one publishing session of a stream: video,
// audio or both, under one generation id that scopes their media URIs.
type Group struct {
	gen string
	cfg Config

	video, audio atomic.Pointer[Rendition]
	// version counts changes to any rendition; cached playlists are keyed
	// by it (a playlist shows its siblings' positions too).
	version atomic.Uint64

	mu      sync.Mutex
	changed chan struct{} // closed and replaced on any change
	ended   bool
}

// NewGroup returns an empty group. gen must be unique per session (for
// example the session id) and made of [A-Za-z0-9_.-]: URIs under it are
// served as immutable, so two sessions must never share one.
func NewGroup(gen string, cfg Config) (*Group, error) {
	if !validName(gen) {
		return nil, fmt.Errorf("%w: generation %q: use 1-128 of [A-Za-z0-9_.-]", ErrBadName, gen)
	}
	return &Group{gen: gen, cfg: cfg.withDefaults(), changed: make(chan struct{})}, nil
}

// Gen is the generation id.
func (g *Group) Gen() string { return g.gen }

// Rendition returns the rendition named Video or Audio, creating it on
// first use.
func (g *Group) Rendition(name string) (*Rendition, error) {
	p := g.slot(name)
	if p == nil {
		return nil, fmt.Errorf("%w: rendition %q: want %q or %q", ErrBadName, name, Video, Audio)
	}
	if r := p.Load(); r != nil {
		return r, nil
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	if r := p.Load(); r != nil {
		return r, nil
	}
	if g.ended {
		return nil, ErrEnded
	}
	r := newRendition(name, g)
	p.Store(r)
	g.notifyLocked()
	return r, nil
}

func (g *Group) slot(name string) *atomic.Pointer[Rendition] {
	switch name {
	case Video:
		return &g.video
	case Audio:
		return &g.audio
	}
	return nil
}

// lookup returns the rendition or nil.
func (g *Group) lookup(name string) *Rendition {
	if p := g.slot(name); p != nil {
		return p.Load()
	}
	return nil
}

// renditions returns the renditions that exist, video first.
func (g *Group) renditions() []*Rendition {
	var rs []*Rendition
	if r := g.video.Load(); r != nil {
		rs = append(rs, r)
	}
	if r := g.audio.Load(); r != nil {
		rs = append(rs, r)
	}
	return rs
}

// End ends every rendition (EXT-X-ENDLIST) and refuses new ones.
func (g *Group) End() {
	g.mu.Lock()
	g.ended = true
	g.notifyLocked()
	g.mu.Unlock()
	for _, r := range g.renditions() {
		r.End()
	}
}

func (g *Group) notify() {
	g.mu.Lock()
	g.notifyLocked()
	g.mu.Unlock()
}

func (g *Group) notifyLocked() {
	g.version.Add(1)
	close(g.changed)
	g.changed = make(chan struct{})
}

// awaitReady blocks until the multivariant playlist can describe the
// session: every rendition that received parts has a complete segment (so
// its init, codecs and bit rate are known), or the group ended.
func (g *Group) awaitReady(ctx context.Context) error {
	for {
		g.mu.Lock()
		ch, ended := g.changed, g.ended
		g.mu.Unlock()
		if ended || g.ready() {
			return nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

func (g *Group) ready() bool {
	some := false
	for _, r := range g.renditions() {
		r.mu.RLock()
		ready, started := r.ready(), r.last.Load() != nil
		r.mu.RUnlock()
		if started && !ready {
			return false
		}
		some = some || ready
	}
	return some
}

// multivariant renders the multivariant playlist: one variant (video with
// its audio as an EXT-X-MEDIA rendition, or whichever of the two exists).
func (g *Group) multivariant() []byte {
	var vi, ai Info
	var vpeak, vavg, apeak, aavg int64
	v, a := g.video.Load(), g.audio.Load()
	if v != nil && !v.started() {
		v = nil
	}
	if a != nil && !a.started() {
		a = nil
	}
	if v != nil {
		vi = v.infoCopy()
		vpeak, vavg = v.bandwidth()
	}
	if a != nil {
		ai = a.infoCopy()
		apeak, aavg = a.bandwidth()
	}

	b := []byte("#EXTM3U\n#EXT-X-INDEPENDENT-SEGMENTS\n")
	if v != nil && a != nil {
		b = append(b, "#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID=\"audio\",NAME=\"audio\",DEFAULT=YES,AUTOSELECT=YES"...)
		if ai.Channels > 0 {
			b = append(b, ",CHANNELS=\""...)
			b = strconv.AppendInt(b, int64(ai.Channels), 10)
			b = append(b, '"')
		}
		b = append(b, ",URI=\"audio.m3u8\"\n"...)
	}
	if v == nil && a == nil {
		return b // nothing published yet: an empty multivariant playlist
	}
	b = append(b, "#EXT-X-STREAM-INF:BANDWIDTH="...)
	b = strconv.AppendInt(b, max(vpeak+apeak, 1), 10)
	b = append(b, ",AVERAGE-BANDWIDTH="...)
	b = strconv.AppendInt(b, max(vavg+aavg, 1), 10)
	codecs := vi.Codecs
	if ai.Codecs != "" {
		if codecs != "" {
			codecs += ","
		}
		codecs += ai.Codecs
	}
	if codecs != "" {
		b = append(b, ",CODECS=\""...)
		b = append(b, codecs...)
		b = append(b, '"')
	}
	if v != nil {
		if vi.Width > 0 && vi.Height > 0 {
			b = append(b, ",RESOLUTION="...)
			b = strconv.AppendInt(b, int64(vi.Width), 10)
			b = append(b, 'x')
			b = strconv.AppendInt(b, int64(vi.Height), 10)
		}
		if vi.FrameRate > 0 {
			b = append(b, ",FRAME-RATE="...)
			b = strconv.AppendFloat(b, vi.FrameRate, 'f', 3, 64)
		}
		if a != nil {
			b = append(b, ",AUDIO=\"audio\""...)
		}
		b = append(b, "\nvideo.m3u8\n"...)
	} else {
		b = append(b, "\naudio.m3u8\n"...)
	}
	return b
}

func (r *Rendition) started() bool { return r.last.Load() != nil }

func (r *Rendition) infoCopy() Info {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return r.info
}
