package llhls

import (
	"strconv"
	"time"
)

// playlist returns the media playlist, full or as a delta update (skip).
// Renders are cached per group version: the many requests a new part
// wakes at once share one render.
func (r *Rendition) playlist(skip bool) []byte {
	ver := r.g.version.Load() // before reading state: the bytes are at least this new
	i := 0
	if skip {
		i = 1
	}
	r.cacheMu.Lock()
	defer r.cacheMu.Unlock()
	if c := &r.cache[i]; c.b != nil && c.ver == ver {
		return c.b
	}
	r.mu.RLock()
	b := r.renderLocked(make([]byte, 0, len(r.cache[i].b)+512), skip)
	r.mu.RUnlock()
	r.renders.Add(1)
	r.cache[i].ver, r.cache[i].b = ver, b
	return b
}

// Playlist renders the media playlist as served without delivery
// directives (skip: as the delta update _HLS_skip=YES gets).
func (r *Rendition) Playlist(skip bool) []byte { return r.playlist(skip) }

func (r *Rendition) renderLocked(b []byte, skip bool) []byte {
	cfg := r.cfg
	segs := r.segs[r.listed:]
	var open *segment
	closed := segs
	if n := len(segs); n > 0 && !segs[n-1].closed {
		open, closed = segs[n-1], segs[:n-1]
	}

	// Delta update (RFC 8216bis 6.2.5.1): segments whose end is further
	// than the skip boundary from the end of the last complete segment.
	skipped := 0
	if skip && !r.ended && len(closed) > 0 {
		last := closed[len(closed)-1].end()
		for skipped < len(closed) && last-closed[skipped].end() > cfg.skipBoundary() {
			skipped++
		}
	}

	b = append(b, "#EXTM3U\n#EXT-X-VERSION:"...)
	if skipped > 0 {
		b = append(b, '9') // EXT-X-SKIP
	} else {
		b = append(b, '6') // EXT-X-MAP
	}
	b = append(b, "\n#EXT-X-TARGETDURATION:"...)
	b = strconv.AppendInt(b, cfg.targetSeconds(), 10)
	b = append(b, "\n#EXT-X-SERVER-CONTROL:CAN-BLOCK-RELOAD=YES,PART-HOLD-BACK="...)
	b = appendSeconds(b, 3*cfg.partTarget(), 3)
	b = append(b, ",CAN-SKIP-UNTIL="...)
	b = appendSeconds(b, cfg.skipBoundary(), 3)
	b = append(b, "\n#EXT-X-PART-INF:PART-TARGET="...)
	b = appendSeconds(b, cfg.partTarget(), 3)
	b = append(b, "\n#EXT-X-MEDIA-SEQUENCE:"...)
	first := r.nextMSN
	if len(segs) > 0 {
		first = segs[0].msn
	}
	b = strconv.AppendUint(b, first, 10)
	b = append(b, '\n')
	if r.discSeq > 0 {
		b = append(b, "#EXT-X-DISCONTINUITY-SEQUENCE:"...)
		b = strconv.AppendUint(b, r.discSeq, 10)
		b = append(b, '\n')
	}
	if skipped > 0 {
		b = append(b, "#EXT-X-SKIP:SKIPPED-SEGMENTS="...)
		b = strconv.AppendInt(b, int64(skipped), 10)
		b = append(b, '\n')
	}

	// Parts are listed for segments ending within three target durations
	// of the end (RFC 8216bis 6.2.2), whole segments at a time so part
	// indexes stay those of the parent segment.
	partsFrom := r.end - 3*time.Duration(cfg.targetSeconds())*time.Second
	mapN := 0
	for _, s := range segs[skipped:] {
		if s.discon {
			b = append(b, "#EXT-X-DISCONTINUITY\n"...)
		}
		if s.init != mapN {
			mapN = s.init
			b = append(b, "#EXT-X-MAP:URI=\""...)
			b = r.appendURI(b, "init", uint64(s.init), -1, ".mp4")
			b = append(b, "\"\n"...)
		}
		if !s.pdt.IsZero() {
			b = append(b, "#EXT-X-PROGRAM-DATE-TIME:"...)
			b = s.pdt.UTC().AppendFormat(b, "2006-01-02T15:04:05.000Z07:00")
			b = append(b, '\n')
		}
		if !s.closed || s.end() > partsFrom {
			for i, p := range s.parts {
				b = append(b, "#EXT-X-PART:DURATION="...)
				b = appendSeconds(b, p.dur, 5)
				b = append(b, ",URI=\""...)
				b = r.appendURI(b, "part", s.msn, i, ".m4s")
				b = append(b, '"')
				if p.indep {
					b = append(b, ",INDEPENDENT=YES"...)
				}
				b = append(b, '\n')
			}
		}
		if s.closed {
			b = append(b, "#EXTINF:"...)
			b = appendSeconds(b, s.dur, 5)
			b = append(b, ",\n"...)
			b = r.appendURI(b, "seg", s.msn, -1, ".m4s")
			b = append(b, '\n')
		}
	}

	// The next part, unless the next segment starts a discontinuity: its
	// init may differ and the hint would race the new EXT-X-MAP.
	if !r.ended && r.initN > 0 && (open != nil || !r.discon) {
		b = append(b, "#EXT-X-PRELOAD-HINT:TYPE=PART,URI=\""...)
		if open != nil {
			b = r.appendURI(b, "part", open.msn, len(open.parts), ".m4s")
		} else {
			b = r.appendURI(b, "part", r.nextMSN, 0, ".m4s")
		}
		b = append(b, "\"\n"...)
	}
	for _, sib := range r.g.renditions() {
		if sib == r {
			continue
		}
		if p := sib.last.Load(); p != nil {
			b = append(b, "#EXT-X-RENDITION-REPORT:URI=\""...)
			b = append(b, sib.name...)
			b = append(b, ".m3u8\",LAST-MSN="...)
			b = strconv.AppendUint(b, p.msn, 10)
			b = append(b, ",LAST-PART="...)
			b = strconv.AppendInt(b, int64(p.part), 10)
			b = append(b, '\n')
		}
	}
	if r.ended {
		b = append(b, "#EXT-X-ENDLIST\n"...)
	}
	return b
}

// appendURI appends "<rendition>/<gen>/<prefix><n>[.<i>]<ext>", relative
// to the media playlist.
func (r *Rendition) appendURI(b []byte, prefix string, n uint64, i int, ext string) []byte {
	b = append(b, r.name...)
	b = append(b, '/')
	b = append(b, r.g.gen...)
	b = append(b, '/')
	b = append(b, prefix...)
	b = strconv.AppendUint(b, n, 10)
	if i >= 0 {
		b = append(b, '.')
		b = strconv.AppendInt(b, int64(i), 10)
	}
	return append(b, ext...)
}

// appendSeconds appends d in seconds with exactly decimals digits after
// the point, rounded half up, without going through floating point.
func appendSeconds(b []byte, d time.Duration, decimals int) []byte {
	unit := time.Second
	for range decimals {
		unit /= 10
	}
	n := (int64(d) + int64(unit)/2) / int64(unit)
	scale := int64(time.Second / unit)
	b = strconv.AppendInt(b, n/scale, 10)
	if decimals == 0 {
		return b
	}
	b = append(b, '.')
	frac := n % scale
	for div := scale / 10; div > 0; div /= 10 {
		b = append(b, byte('0'+frac/div%10))
	}
	return b
}

func itoa(n uint64) string { return strconv.FormatUint(n, 10) }
