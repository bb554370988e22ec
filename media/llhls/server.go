package llhls

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"
)

// errGone is a media file that is not held and will not be produced.
var errGone = errors.New("llhls: no such part, segment or init section")

// Header values shared by every response (never modified in place).
var (
	ctPlaylist = []string{"application/vnd.apple.mpegurl"}
	ctVideo    = []string{"video/mp4"}
	ctAudio    = []string{"audio/mp4"}
	// Playlists change with every part; one second is the shortest
	// max-age there is and keeps a CDN from hammering the origin.
	ccPlaylist = []string{"public, max-age=1"}
	// Media URIs are scoped by generation and never name other bytes.
	ccMedia      = []string{"public, max-age=86400, immutable"}
	ccError      = "no-store"
	acceptRanges = []string{"bytes"}
	corsOrigin   = []string{"*"}
	corsExpose   = []string{"Content-Length, Content-Range, Age, Date"}
)

// Server serves the LL-HLS URL layout (see the package comment) for the
// groups published on it. Mount it at "/".
type Server struct {
	log *slog.Logger
	now func() time.Time

	mu      sync.RWMutex
	live    map[string]*Group
	retired []retiredGroup
}

// retiredGroup is a replaced or unpublished session whose media stays
// reachable (by its generation) for one Window: RFC 8216bis 6.2.1 wants
// what the last playlist listed downloadable that long.
type retiredGroup struct {
	name  string
	g     *Group
	until time.Time
}

// NewServer returns a server with nothing published. A nil logger means
// slog.Default().
func NewServer(logger *slog.Logger) *Server {
	if logger == nil {
		logger = slog.Default()
	}
	return &Server{log: logger, now: time.Now, live: map[string]*Group{}}
}

// Publish makes g the stream served under name (e.g. "live/demo"),
// replacing the group published there before, which is ended. A nil g
// unpublishes. name is one or more "/"-separated elements of
// [A-Za-z0-9_.-].
func (s *Server) Publish(name string, g *Group) error {
	if !validStreamName(name) {
		return fmt.Errorf("%w: stream %q: want elements of [A-Za-z0-9_.-] separated by /, like live/demo", ErrBadName, name)
	}
	if g == nil {
		s.Unpublish(name)
		return nil
	}
	s.mu.Lock()
	old := s.live[name]
	s.live[name] = g
	if old != nil && old != g {
		s.retireLocked(name, old)
	}
	s.mu.Unlock()
	if old != nil && old != g {
		old.End()
	}
	s.log.Debug("llhls: published", "stream", name, "gen", g.gen)
	return nil
}

// Unpublish removes the stream and ends its group. Its media stays
// downloadable for one Window; its playlists are gone at once.
func (s *Server) Unpublish(name string) {
	s.mu.Lock()
	old := s.live[name]
	delete(s.live, name)
	if old != nil {
		s.retireLocked(name, old)
	}
	s.mu.Unlock()
	if old != nil {
		old.End()
		s.log.Debug("llhls: unpublished", "stream", name, "gen", old.gen)
	}
}

// Group returns the group published under name, or nil.
func (s *Server) Group(name string) *Group {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.live[name]
}

func (s *Server) retireLocked(name string, g *Group) {
	s.pruneLocked()
	s.retired = append(s.retired, retiredGroup{name: name, g: g, until: s.now().Add(g.cfg.Window)})
	// Let go of the bytes once the window is over, even if nothing else
	// is published meanwhile.
	time.AfterFunc(g.cfg.Window+time.Second, func() {
		s.mu.Lock()
		s.pruneLocked()
		s.mu.Unlock()
	})
}

func (s *Server) pruneLocked() {
	now := s.now()
	kept := s.retired[:0]
	for _, rg := range s.retired {
		if now.Before(rg.until) {
			kept = append(kept, rg)
		}
	}
	clear(s.retired[len(kept):])
	s.retired = kept
}

// media finds the group of a media URI: the live one or a retired one
// with that generation.
func (s *Server) media(name, gen string) *Group {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if g := s.live[name]; g != nil && g.gen == gen {
		return g
	}
	now := s.now()
	for _, rg := range s.retired {
		if rg.name == name && rg.g.gen == gen && now.Before(rg.until) {
			return rg.g
		}
	}
	return nil
}

// ServeHTTP serves playlists and media files.
func (s *Server) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	h := w.Header()
	// Players run on other origins (embedded players, test pages).
	h["Access-Control-Allow-Origin"] = corsOrigin
	switch req.Method {
	case http.MethodGet, http.MethodHead:
	case http.MethodOptions:
		h.Set("Access-Control-Allow-Methods", "GET, HEAD, OPTIONS")
		h.Set("Access-Control-Allow-Headers", "Range, If-None-Match, If-Modified-Since")
		h.Set("Access-Control-Max-Age", "86400")
		w.WriteHeader(http.StatusNoContent)
		return
	default:
		h.Set("Allow", "GET, HEAD, OPTIONS")
		fail(w, http.StatusMethodNotAllowed, "method %s not allowed: LL-HLS is served with GET and HEAD", req.Method)
		return
	}
	h["Access-Control-Expose-Headers"] = corsExpose

	p := strings.TrimPrefix(req.URL.Path, "/")
	i := strings.LastIndexByte(p, '/')
	if i <= 0 {
		fail(w, http.StatusNotFound, "%q is not an LL-HLS path: want /<stream>/index.m3u8", req.URL.Path)
		return
	}
	dir, file := p[:i], p[i+1:]
	switch file {
	case "index.m3u8":
		s.serveMultivariant(w, req, dir)
		return
	case Video + ".m3u8", Audio + ".m3u8":
		s.servePlaylist(w, req, dir, strings.TrimSuffix(file, ".m3u8"))
		return
	}
	// <name>/<rendition>/<gen>/<file>
	j := strings.LastIndexByte(dir, '/')
	k := -1
	if j > 0 {
		k = strings.LastIndexByte(dir[:j], '/')
	}
	if k <= 0 {
		fail(w, http.StatusNotFound, "%q is not an LL-HLS path: want /<stream>/index.m3u8", req.URL.Path)
		return
	}
	s.serveMedia(w, req, dir[:k], dir[k+1:j], dir[j+1:], file)
}

func (s *Server) serveMultivariant(w http.ResponseWriter, req *http.Request, name string) {
	g := s.Group(name)
	if g == nil {
		notLive(w, name)
		return
	}
	ctx, cancel := context.WithTimeout(req.Context(), g.cfg.BlockTimeout)
	defer cancel()
	if err := g.awaitReady(ctx); err != nil {
		s.timedOut(w, req, "stream %q has not produced a complete segment within %v; retry shortly", name, g.cfg.BlockTimeout)
		return
	}
	serve(w, req, ctPlaylist, ccPlaylist, g.multivariant())
}

func (s *Server) servePlaylist(w http.ResponseWriter, req *http.Request, name, rendition string) {
	d, err := parseDirectives(req.URL.RawQuery)
	if err != nil {
		fail(w, http.StatusBadRequest, "%v", err)
		return
	}
	g := s.Group(name)
	if g == nil {
		notLive(w, name)
		return
	}
	r := g.lookup(rendition)
	if r == nil {
		fail(w, http.StatusNotFound, "stream %q has no %s rendition", name, rendition)
		return
	}
	cc := ccPlaylist
	if d.hasMSN {
		if why, bad := r.tooFar(d.msn, d.part); bad {
			fail(w, http.StatusBadRequest, "%s", why)
			return
		}
		err = r.await(req.Context(), r.cfg.BlockTimeout, func() bool { return r.hasLocked(d.msn, int(d.part)) })
		// The URL names a state at least this new: caches may keep it for
		// a few parts, which collapses the viewers asking for it.
		cc = r.ccBlock
	} else {
		// A playlist with no complete segment is useless to players: hold
		// the first viewers until there is one.
		err = r.await(req.Context(), r.cfg.BlockTimeout, r.ready)
	}
	if err != nil && !errors.Is(err, ErrEnded) { // ended: the final playlist answers
		what := "segment " + itoa(d.msn)
		if d.part >= 0 {
			what = "part " + itoa(d.msn) + "." + itoa(uint64(d.part))
		} else if !d.hasMSN {
			what = "a first complete segment"
		}
		s.timedOut(w, req, "stream %q %s rendition: %s not produced within %v; the publisher may have stalled, retry", name, rendition, what, r.cfg.BlockTimeout)
		return
	}
	serve(w, req, ctPlaylist, cc, r.playlist(d.skip))
}

func (s *Server) serveMedia(w http.ResponseWriter, req *http.Request, name, rendition, gen, file string) {
	kind, msn, idx, ok := parseMediaName(file)
	if !ok || (rendition != Video && rendition != Audio) {
		fail(w, http.StatusNotFound, "%q is not an LL-HLS media path: want <rendition>/<gen>/init<N>.mp4, seg<msn>.m4s or part<msn>.<i>.m4s", req.URL.Path)
		return
	}
	g := s.media(name, gen)
	if g == nil {
		if s.Group(name) == nil {
			notLive(w, name)
		} else {
			fail(w, http.StatusNotFound, "stream %q has no session %q any more (it restarted): reload index.m3u8", name, gen)
		}
		return
	}
	r := g.lookup(rendition)
	if r == nil {
		fail(w, http.StatusNotFound, "stream %q has no %s rendition", name, rendition)
		return
	}
	data, err := r.media(req.Context(), r.cfg.BlockTimeout, kind, msn, idx)
	switch {
	case errors.Is(err, errGone):
		fail(w, http.StatusNotFound, "stream %q: %s/%s/%s is not available (too old, or not the next part)", name, rendition, gen, file)
		return
	case err != nil:
		s.timedOut(w, req, "stream %q: %s/%s/%s not produced within %v; the publisher may have stalled, retry", name, rendition, gen, file, r.cfg.BlockTimeout)
		return
	}
	ct := ctVideo
	if rendition == Audio {
		ct = ctAudio
	}
	serve(w, req, ct, ccMedia, data)
}

// parseMediaName reads init<N>.mp4, seg<msn>.m4s and part<msn>.<i>.m4s,
// numbers in canonical decimal only so one file has one URI.
func parseMediaName(file string) (kind fileKind, msn uint64, idx int, ok bool) {
	num := func(s string) (uint64, bool) {
		if len(s) > 1 && s[0] == '0' {
			return 0, false
		}
		n, err := decimal(s)
		return n, err == nil
	}
	switch {
	case strings.HasPrefix(file, "init") && strings.HasSuffix(file, ".mp4"):
		n, ok := num(file[4 : len(file)-4])
		if !ok || n == 0 || n > 1<<31 {
			return 0, 0, 0, false
		}
		return fileInit, 0, int(n), true
	case strings.HasPrefix(file, "seg") && strings.HasSuffix(file, ".m4s"):
		n, ok := num(file[3 : len(file)-4])
		return fileSegment, n, -1, ok
	case strings.HasPrefix(file, "part") && strings.HasSuffix(file, ".m4s"):
		m, i, found := strings.Cut(file[4:len(file)-4], ".")
		n, ok1 := num(m)
		x, ok2 := num(i)
		if !found || !ok1 || !ok2 || x > 1<<31 {
			return 0, 0, 0, false
		}
		return filePart, n, int(x), true
	}
	return 0, 0, 0, false
}

func validStreamName(name string) bool {
	if name == "" {
		return false
	}
	for _, e := range strings.Split(name, "/") {
		if !validName(e) {
			return false
		}
	}
	return true
}

// serve writes a 200 with Content-Length, honouring HEAD. Range requests
// (and the rare conditional ones) go through http.ServeContent.
func serve(w http.ResponseWriter, req *http.Request, contentType, cacheControl []string, body []byte) {
	h := w.Header()
	h["Content-Type"] = contentType
	h["Cache-Control"] = cacheControl
	if _, ranged := req.Header["Range"]; ranged {
		http.ServeContent(w, req, "", time.Time{}, bytes.NewReader(body))
		return
	}
	h["Accept-Ranges"] = acceptRanges
	h["Content-Length"] = []string{strconv.Itoa(len(body))}
	w.WriteHeader(http.StatusOK)
	if req.Method != http.MethodHead {
		w.Write(body)
	}
}

func fail(w http.ResponseWriter, code int, format string, args ...any) {
	h := w.Header()
	h.Set("Content-Type", "text/plain; charset=utf-8")
	h.Set("Cache-Control", ccError)
	h.Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(code)
	fmt.Fprintf(w, format+"\n", args...)
}

func notLive(w http.ResponseWriter, name string) {
	fail(w, http.StatusNotFound, "stream %q is not live: nothing is published under that name", name)
}

// timedOut answers 503 unless the client has already gone.
func (s *Server) timedOut(w http.ResponseWriter, req *http.Request, format string, args ...any) {
	if req.Context().Err() != nil {
		return
	}
	fail(w, http.StatusServiceUnavailable, format, args...)
}
