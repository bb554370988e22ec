// Package llhls delivers live streams as Low-Latency HLS (RFC 8216bis):
// it keeps the live window of each rendition in memory (init sections,
// CMAF parts and segments), renders the media and multivariant playlists,
// holds blocking playlist reloads and preload-hinted part requests until
// what they ask for exists, and serves it all over HTTP.
//
// It only stores and serves. Where parts and segments are cut is decided
// by the caller (the packager actor), which hands over bytes that are
// already muxed. One writer per Rendition, any number of HTTP readers.
//
// URL layout, relative to where the Server is mounted (name is the stream
// name, e.g. "live/demo"):
//
//	/<name>/index.m3u8                      multivariant playlist
//	/<name>/<rendition>.m3u8                media playlist ("video" or "audio")
//	/<name>/<rendition>/<gen>/init<N>.mp4   Nth init section of the session
//	/<name>/<rendition>/<gen>/seg<msn>.m4s  segment
//	/<name>/<rendition>/<gen>/part<msn>.<i>.m4s  part i of segment msn
//
// Media URIs carry the Group's generation (one per publishing session), so
// they never name different bytes twice and are served as immutable.
package llhls

import (
	"errors"
	"log/slog"
	"math"
	"strconv"
	"time"
)

// Rendition names: the only two a Group carries.
const (
	Video = "video"
	Audio = "audio"
)

var (
	// ErrEnded is returned when the rendition has ended (EXT-X-ENDLIST)
	// before what was asked for exists, or when writing to it after End.
	ErrEnded = errors.New("llhls: rendition has ended")
	// ErrNoInit is returned by AddPart before any SetInit: a part cannot be
	// played without its initialization section.
	ErrNoInit = errors.New("llhls: no init section yet (call SetInit first)")
	// ErrBadPart is returned for a part without bytes or without duration.
	ErrBadPart = errors.New("llhls: part needs data and a positive duration")
	// ErrNoOpenSegment is returned by CloseSegment when no part was added
	// since the last close.
	ErrNoOpenSegment = errors.New("llhls: no open segment to close (add a part first)")
	// ErrBadName is returned for a stream name, generation or rendition
	// name that cannot appear in the URL layout.
	ErrBadName = errors.New("llhls: invalid name")
)

// Config sets the timing a Group announces to players. The zero value
// gives the defaults.
type Config struct {
	// PartTarget is announced as PART-TARGET, rounded up to the
	// millisecond. Default 200 ms. Parts longer than the announced value
	// break RFC 8216bis 4.4.4.9; they are still served and logged once
	// per rendition.
	PartTarget time.Duration
	// TargetDuration is announced as EXT-X-TARGETDURATION, rounded up to
	// whole seconds. Default 2 s.
	//
	// Policy when a segment is longer (its EXTINF rounds above the target:
	// the publisher's keyframe interval is longer than planned): the
	// segment is listed anyway and the first such segment of a rendition
	// is logged as a warning naming the fix (shorter GOP at the encoder or
	// a longer TargetDuration). The announced value never changes during a
	// session, because RFC 8216bis 6.2.1 forbids changing it and 6.2.4
	// requires all renditions of a variant to share it; a player copes
	// better with one long segment than with a target that moves.
	TargetDuration time.Duration
	// Window is how much media the playlist lists (segments older than
	// that leave the playlist). Default 30 s; never less than three
	// target durations (RFC 8216bis 6.2.2). Bytes stay in memory for one
	// more Window after leaving the playlist, because clients that loaded
	// the older playlist must still be able to fetch them (6.2.2).
	Window time.Duration
	// BlockTimeout is the longest a blocking playlist reload or a request
	// for a not-yet-produced part is held before 503. Default three
	// target durations (RFC 8216bis 6.2.5.2).
	BlockTimeout time.Duration
	// Logger receives the per-rendition warnings. Default slog.Default().
	Logger *slog.Logger
}

func (c Config) withDefaults() Config {
	if c.PartTarget <= 0 {
		c.PartTarget = 200 * time.Millisecond
	}
	if c.TargetDuration <= 0 {
		c.TargetDuration = 2 * time.Second
	}
	if c.PartTarget > c.TargetDuration {
		c.PartTarget = c.TargetDuration
	}
	if c.Window <= 0 {
		c.Window = 30 * time.Second
	}
	if min := 3 * time.Duration(c.targetSeconds()) * time.Second; c.Window < min {
		c.Window = min
	}
	if c.BlockTimeout <= 0 {
		c.BlockTimeout = 3 * c.TargetDuration
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	return c
}

// targetSeconds is EXT-X-TARGETDURATION.
func (c Config) targetSeconds() int64 {
	s := int64(math.Ceil(c.TargetDuration.Seconds()))
	if s < 1 {
		s = 1
	}
	return s
}

// partTarget is PART-TARGET as announced (whole milliseconds, rounded up).
func (c Config) partTarget() time.Duration {
	return (c.PartTarget + time.Millisecond - 1) / time.Millisecond * time.Millisecond
}

// skipBoundary is CAN-SKIP-UNTIL: six target durations, the minimum
// RFC 8216bis 4.4.3.8 allows, so delta updates stay as small as allowed.
func (c Config) skipBoundary() time.Duration {
	return 6 * time.Duration(c.targetSeconds()) * time.Second
}

// advancePartLimit is RFC 8216bis 6.2.5.2: how many parts past the last
// one a blocking request may ask for before it is refused.
func (c Config) advancePartLimit() float64 {
	pt := c.partTarget().Seconds()
	if pt < 1 {
		return 3 / pt
	}
	return 3
}

// ccBlocking is the Cache-Control of a blocking reload's answer. Its URL
// names a state at least that new, so caches may keep it for a few parts,
// which collapses the viewers asking for the same part into one request.
func (c Config) ccBlocking() []string {
	return []string{"public, max-age=" + strconv.FormatInt(max(1, int64(5*c.partTarget()/time.Second)), 10)}
}

// validName reports whether s is a non-empty path element made of
// [A-Za-z0-9_.-], not "." or "..".
func validName(s string) bool {
	if s == "" || s == "." || s == ".." || len(s) > 128 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-' || c == '.') {
			return false
		}
	}
	return true
}
