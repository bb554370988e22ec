package webrtc

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/pion/webrtc/v4"
)

const (
	// MaxBody bounds an offer or a PATCH body.
	MaxBody = 64 << 10

	typeSDP  = "application/sdp"
	typeFrag = "application/trickle-ice-sdpfrag"

	kindWHIP = "whip"
	kindWHEP = "whep"

	// gatherTimeout bounds candidate gathering before answering; with the
	// muxes it takes milliseconds.
	gatherTimeout = 5 * time.Second
)

var (
	// errClosed reports a request to a Handler that is shutting down (503).
	errClosed = errors.New("the WebRTC edge is shutting down")
	// errEnded reports a session that ended while being set up (503).
	errEnded = errors.New("the session ended during setup (server shutting down, or setup slower than the connect timeout): retry")
)

// Handler serves WHIP and WHEP (http.Handler):
//
//	POST    /live/<name>/whip       offer -> 201 answer, Location /live/<name>/whip/<id>
//	POST    /live/<name>/whep       offer -> 201 answer, Location /live/<name>/whep/<id>
//	PATCH   <Location>              trickle ICE candidates -> 204 (ICE restart: 422)
//	DELETE  <Location>              ends the session -> 200
//	OPTIONS any of them             204, CORS, Link (ICE servers), Accept-Post
//
// Stream names are one path segment of letters, digits and "-_.~". Every
// response carries CORS headers for browsers on other origins. Mount it on
// /live/{name}/whip, /live/{name}/whep and the same followed by /{id}.
type Handler struct {
	e   *Engine
	in  Ingest
	pb  Playback
	log *slog.Logger
	now func() time.Time

	mu       sync.Mutex
	sessions map[string]*session
	closed   bool
}

// NewHandler serves WHIP into in and WHEP from pb over e's sockets. A nil
// in or pb answers that method with 404.
func NewHandler(e *Engine, in Ingest, pb Playback) *Handler {
	return &Handler{e: e, in: in, pb: pb, log: e.log, now: time.Now, sessions: map[string]*session{}}
}

// Close ends every session (sinks and sources see reason "server
// shutting down") and refuses new ones with 503.
func (h *Handler) Close() {
	h.mu.Lock()
	h.closed = true
	all := make([]*session, 0, len(h.sessions))
	for _, s := range h.sessions {
		all = append(all, s)
	}
	h.mu.Unlock()
	for _, s := range all {
		s.close("server shutting down")
	}
}

func (h *Handler) remove(s *session) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.sessions[s.id] == s {
		delete(h.sessions, s.id)
	}
}

// route is a parsed request path.
type route struct {
	stream, kind, id string
}

func (rt route) endpoint() string { return "/live/" + rt.stream + "/" + rt.kind }

// parseRoute splits /live/<name>/<whip|whep>[/<id>].
func parseRoute(path string) (route, bool) {
	rest, ok := strings.CutPrefix(path, "/live/")
	if !ok {
		return route{}, false
	}
	parts := strings.Split(rest, "/")
	if len(parts) < 2 || len(parts) > 3 || !validName(parts[0]) {
		return route{}, false
	}
	rt := route{stream: parts[0], kind: parts[1]}
	if rt.kind != kindWHIP && rt.kind != kindWHEP {
		return route{}, false
	}
	if len(parts) == 3 {
		if parts[2] == "" {
			return route{}, false
		}
		rt.id = parts[2]
	}
	return rt, true
}

func validName(s string) bool {
	if s == "" || s == "." || s == ".." || len(s) > 128 {
		return false
	}
	for _, c := range s {
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9', c == '-', c == '_', c == '.', c == '~':
		default:
			return false
		}
	}
	return true
}

func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	hd := w.Header()
	hd.Set("Access-Control-Allow-Origin", "*")
	hd.Set("Access-Control-Expose-Headers", "Location, Link, ETag, Accept-Patch, Accept-Post, Retry-After")
	rt, ok := parseRoute(r.URL.Path)
	if !ok {
		http.Error(w, "no WebRTC endpoint here: use /live/<name>/whip to publish or /live/<name>/whep to play (names: letters, digits, -_.~)", http.StatusNotFound)
		return
	}
	if r.Method == http.MethodOptions {
		h.options(w, rt)
		return
	}
	if rt.id == "" {
		if r.Method != http.MethodPost {
			hd.Set("Allow", "OPTIONS, POST")
			http.Error(w, r.Method+" not allowed on a "+strings.ToUpper(rt.kind)+" endpoint: POST an SDP offer", http.StatusMethodNotAllowed)
			return
		}
		h.post(w, r, rt)
		return
	}
	switch r.Method {
	case http.MethodPatch, http.MethodDelete:
	default:
		hd.Set("Allow", "OPTIONS, PATCH, DELETE")
		http.Error(w, r.Method+" not allowed on a session: PATCH trickle ICE candidates or DELETE it", http.StatusMethodNotAllowed)
		return
	}
	h.mu.Lock()
	s := h.sessions[rt.id]
	h.mu.Unlock()
	if s == nil || s.path != r.URL.Path {
		http.Error(w, "no such session (it ended, or never existed): POST a new offer to "+rt.endpoint(), http.StatusNotFound)
		return
	}
	if r.Method == http.MethodDelete {
		s.close("DELETE by client")
		w.WriteHeader(http.StatusOK)
		return
	}
	h.patch(w, r, s)
}

func (h *Handler) options(w http.ResponseWriter, rt route) {
	hd := w.Header()
	hd.Set("Access-Control-Allow-Methods", "OPTIONS, POST, PATCH, DELETE")
	hd.Set("Access-Control-Allow-Headers", "Authorization, Content-Type, If-Match")
	hd.Set("Access-Control-Max-Age", "86400")
	if rt.id == "" {
		hd.Set("Accept-Post", typeSDP)
		h.linkICEServers(hd)
	} else {
		hd.Set("Accept-Patch", typeFrag)
	}
	w.WriteHeader(http.StatusNoContent)
}

// linkICEServers adds a Link header per ICE server URL (RFC 9725 4.6).
func (h *Handler) linkICEServers(hd http.Header) {
	for _, s := range h.e.cfg.ICEServers {
		for _, u := range s.URLs {
			v := "<" + u + `>; rel="ice-server"`
			if s.Username != "" || s.Credential != "" {
				v += "; username=" + quoted(s.Username) + "; credential=" + quoted(s.Credential) + `; credential-type="password"`
			}
			hd.Add("Link", v)
		}
	}
}

// quoted is an HTTP quoted-string (RFC 9110 5.6.4); NewEngine refused
// control characters.
func quoted(s string) string {
	r := strings.NewReplacer(`\`, `\\`, `"`, `\"`)
	return `"` + r.Replace(s) + `"`
}

// readBody checks the content type and reads a bounded body, answering
// 415 or 413 itself.
func readBody(w http.ResponseWriter, r *http.Request, want, acceptHeader string) ([]byte, bool) {
	ct := r.Header.Get("Content-Type")
	if mt, _, err := mime.ParseMediaType(ct); err != nil || !strings.EqualFold(mt, want) {
		w.Header().Set(acceptHeader, want)
		http.Error(w, fmt.Sprintf("Content-Type %q: send the body as %s", ct, want), http.StatusUnsupportedMediaType)
		return nil, false
	}
	b, err := io.ReadAll(http.MaxBytesReader(w, r.Body, MaxBody))
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			http.Error(w, fmt.Sprintf("body larger than %d bytes", MaxBody), http.StatusRequestEntityTooLarge)
		} else {
			http.Error(w, "reading body: "+err.Error(), http.StatusBadRequest)
		}
		return nil, false
	}
	return b, true
}

// fail answers a refused or failed request with the status its error
// calls for and the error's text.
func fail(w http.ResponseWriter, err error) {
	code := http.StatusInternalServerError
	switch {
	case errors.Is(err, errBadSDP), errors.Is(err, errBadFrag):
		code = http.StatusBadRequest
	case errors.Is(err, errNoCodec):
		code = http.StatusNotAcceptable
	case errors.Is(err, ErrNotFound):
		code = http.StatusNotFound
	case errors.Is(err, ErrForbidden):
		code = http.StatusForbidden
	case errors.Is(err, ErrConflict):
		code = http.StatusConflict
	case errors.Is(err, errClosed), errors.Is(err, errEnded):
		code = http.StatusServiceUnavailable
	}
	http.Error(w, err.Error(), code)
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// newSession registers a session for rt and starts its connect timeout.
func (h *Handler) newSession(rt route, r *http.Request) (*session, error) {
	id := randomHex(16)
	s := &session{
		h:      h,
		id:     id,
		path:   rt.endpoint() + "/" + id,
		etag:   `"` + randomHex(8) + `"`,
		stream: rt.stream,
		remote: r.RemoteAddr,
		kind:   rt.kind,
	}
	s.log = h.log.With("session", id[:8], "stream", rt.stream, "kind", rt.kind, "remote", r.RemoteAddr)
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed {
		return nil, errClosed
	}
	h.sessions[id] = s
	timeout := h.e.cfg.ConnectTimeout
	s.timer = time.AfterFunc(timeout, func() {
		if !s.connected.Load() {
			s.close(fmt.Sprintf("not connected within %v: ICE or DTLS did not complete (firewall blocking UDP and TCP port %s?)", timeout, portOf(h.e.UDPAddr().String())))
		}
	})
	return s, nil
}

func portOf(addr string) string {
	i := strings.LastIndexByte(addr, ':')
	return addr[i+1:]
}

func (h *Handler) post(w http.ResponseWriter, r *http.Request, rt route) {
	if (rt.kind == kindWHIP && h.in == nil) || (rt.kind == kindWHEP && h.pb == nil) {
		http.Error(w, strings.ToUpper(rt.kind)+" is not enabled on this server", http.StatusNotFound)
		return
	}
	body, ok := readBody(w, r, typeSDP, "Accept-Post")
	if !ok {
		return
	}
	o, err := parseOffer(body)
	if err != nil {
		fail(w, err)
		return
	}
	var pub *PublishSession
	if rt.kind == kindWHIP {
		codecs, stereo, err := o.publishTracks()
		if err != nil {
			fail(w, err)
			return
		}
		pub = &PublishSession{codecs: codecs, opusStereo: stereo}
	}
	s, err := h.newSession(rt, r)
	if err != nil {
		fail(w, err)
		return
	}
	s.remoteUfrag = o.ufrag

	var setup func(*webrtc.PeerConnection) error
	var want []string // kinds the answer must take
	if pub != nil {
		setup, want, err = h.startPublish(s, pub)
	} else {
		setup, want, err = h.startPlay(s, o)
	}
	if err != nil {
		if errors.Is(err, ErrConflict) && rt.kind == kindWHEP {
			w.Header().Set("Retry-After", "2")
		}
		s.close("refused: " + err.Error())
		fail(w, err)
		return
	}
	answer, err := h.negotiate(r.Context(), s, string(body), setup, want, pub == nil)
	if err != nil {
		s.close("setup failed: " + err.Error())
		fail(w, err)
		return
	}
	hd := w.Header()
	hd.Set("Content-Type", typeSDP)
	hd.Set("Location", s.path)
	hd.Set("ETag", s.etag)
	hd.Set("Accept-Patch", typeFrag)
	h.linkICEServers(hd)
	w.WriteHeader(http.StatusCreated)
	_, _ = io.WriteString(w, answer)
	s.log.Info("answered")
}

// startPublish asks the Ingest for a sink and returns the peer
// connection setup that feeds it.
func (h *Handler) startPublish(s *session, p *PublishSession) (func(*webrtc.PeerConnection) error, []string, error) {
	p.s = s
	sink, err := h.in.StartPublish(p)
	if err != nil {
		return nil, nil, fmt.Errorf("publish to %q refused: %w", s.stream, err)
	}
	p.sink = sink
	if !s.setOnClose(sink.Close) {
		sink.Close("session ended during setup")
		return nil, nil, errEnded
	}
	var want []string
	for _, c := range p.codecs {
		if c.IsVideo() {
			want = append(want, "video")
		} else {
			want = append(want, "audio")
		}
	}
	return func(pc *webrtc.PeerConnection) error {
		pc.OnTrack(func(t *webrtc.TrackRemote, recv *webrtc.RTPReceiver) {
			s.goRead(func() { p.readTrack(t) })
			s.goRead(func() {
				for {
					if _, _, err := recv.ReadRTCP(); err != nil {
						return
					}
				}
			})
		})
		return nil
	}, want, nil
}

// codecOf is what pion's static tracks implement.
type codecOf interface {
	Codec() webrtc.RTPCodecCapability
}

// startPlay asks the Playback for tracks and returns the peer connection
// setup that sends them.
func (h *Handler) startPlay(s *session, o *offer) (func(*webrtc.PeerConnection) error, []string, error) {
	p := &PlaySession{s: s}
	src, err := h.pb.StartPlay(p)
	if err != nil {
		return nil, nil, fmt.Errorf("play %q refused: %w", s.stream, err)
	}
	onClose := func(reason string) {
		if src.OnClose != nil {
			src.OnClose(reason)
		}
	}
	if !s.setOnClose(onClose) {
		onClose("session ended during setup")
		return nil, nil, errEnded
	}
	var tracks []webrtc.TrackLocal
	var want []string
	for _, t := range []webrtc.TrackLocal{src.Video, src.Audio} {
		if t == nil {
			continue
		}
		kind := t.Kind().String()
		if c, ok := t.(codecOf); ok {
			ok, err := o.playable(kind, c.Codec().MimeType)
			if err != nil {
				return nil, nil, err
			}
			if !ok {
				continue // the viewer does not receive this kind
			}
		}
		tracks = append(tracks, t)
		want = append(want, kind)
	}
	if len(tracks) == 0 {
		if src.Video == nil && src.Audio == nil {
			return nil, nil, fmt.Errorf("%w: stream %q has no tracks yet", ErrConflict, s.stream)
		}
		return nil, nil, fmt.Errorf("%w: the offer receives no audio or video (WHEP offers use recvonly); %s", errNoCodec, accepted)
	}
	return func(pc *webrtc.PeerConnection) error {
		for _, t := range tracks {
			// sendonly before the offer is applied: pion pairs it with the
			// offer's section and answers sendonly even to sendrecv.
			tr, err := pc.AddTransceiverFromTrack(t, webrtc.RTPTransceiverInit{Direction: webrtc.RTPTransceiverDirectionSendonly})
			if err != nil {
				return fmt.Errorf("add %s track: %w", t.Kind(), err)
			}
			sender := tr.Sender()
			s.goRead(func() { readRTCP(sender, src.OnKeyframeRequest) })
		}
		return nil
	}, want, nil
}

// negotiate builds the session's peer connection, applies the offer and
// returns the answer with every server candidate in it.
func (h *Handler) negotiate(ctx context.Context, s *session, offerSDP string,
	setup func(*webrtc.PeerConnection) error, want []string, sending bool,
) (string, error) {
	pc, err := h.e.newPeerConnection()
	if err != nil {
		return "", fmt.Errorf("create peer connection: %w", err)
	}
	s.mu.Lock()
	if s.closing {
		s.mu.Unlock()
		_ = pc.Close()
		return "", errEnded
	}
	s.pc = pc
	s.mu.Unlock()
	pc.OnConnectionStateChange(s.stateChanged)

	if err := setup(pc); err != nil {
		return "", err
	}
	if sending {
		// pion answers a sendrecv section with sendrecv when it has a
		// track to send (and refuses an edited answer); the WHEP draft
		// wants sendonly. A viewer's sending is never used: read its
		// sendrecv as recvonly.
		offerSDP = replaceLines(offerSDP, "a=sendrecv", "a=recvonly")
	}
	if err := pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeOffer, SDP: offerSDP}); err != nil {
		return "", fmt.Errorf("%w: %v", errBadSDP, err)
	}
	answer, err := pc.CreateAnswer(nil)
	if err != nil {
		return "", fmt.Errorf("create answer: %w", err)
	}
	gathered := webrtc.GatheringCompletePromise(pc)
	if err := pc.SetLocalDescription(answer); err != nil {
		return "", fmt.Errorf("set answer: %w", err)
	}
	select {
	case <-gathered:
	case <-ctx.Done():
		return "", fmt.Errorf("client went away: %w", ctx.Err())
	case <-time.After(gatherTimeout):
		s.log.Warn("ICE gathering incomplete; answering with the candidates so far")
	}
	sdp := pc.LocalDescription().SDP
	if err := checkAnswer(sdp, want, sending); err != nil {
		return "", err
	}
	return sdp, nil
}

// replaceLines replaces the SDP lines equal to from (CRLF or LF ended).
func replaceLines(sdp, from, to string) string {
	var b strings.Builder
	for line := range strings.Lines(sdp) {
		body := strings.TrimRight(line, "\r\n")
		if body == from {
			b.WriteString(to)
			b.WriteString(line[len(body):])
			continue
		}
		b.WriteString(line)
	}
	return b.String()
}

// checkAnswer makes sure the answer takes every track kind the offer was
// accepted for, receiving (WHIP) or sending (WHEP): RFC 9725 wants no
// partially successful sessions.
func checkAnswer(sdp string, want []string, sending bool) error {
	a, err := parseOffer([]byte(sdp))
	if err != nil {
		return fmt.Errorf("own answer does not parse: %w", err)
	}
	for _, kind := range want {
		found := false
		for _, m := range a.media {
			dirOK := m.receives()
			if sending {
				dirOK = m.sends()
			}
			if m.kind == kind && dirOK && len(m.codecs) > 0 {
				found = true
			}
		}
		if !found {
			return fmt.Errorf("%w: no common %s codec with the offer; %s", errNoCodec, kind, accepted)
		}
	}
	return nil
}

func (h *Handler) patch(w http.ResponseWriter, r *http.Request, s *session) {
	body, ok := readBody(w, r, typeFrag, "Accept-Patch")
	if !ok {
		return
	}
	// RFC 9725 4.3.1: If-Match must name the ICE session; "*" asks for an
	// ICE restart. A missing If-Match is tolerated (some clients omit it).
	match := r.Header.Get("If-Match")
	if match != "" && match != "*" && match != s.etag {
		http.Error(w, "If-Match "+match+" does not match the session's ETag "+s.etag, http.StatusPreconditionFailed)
		return
	}
	f, err := parseFrag(string(body))
	if err != nil {
		fail(w, err)
		return
	}
	if match == "*" || (f.ufrag != "" && f.ufrag != s.remoteUfrag) {
		http.Error(w, "ICE restart is not supported: DELETE this session and POST a new offer", http.StatusUnprocessableEntity)
		return
	}
	s.mu.Lock()
	pc := s.pc
	s.mu.Unlock()
	if pc == nil {
		http.Error(w, "the session is still being set up: retry after the POST answered", http.StatusConflict)
		return
	}
	for _, c := range f.candidates {
		// Candidates the agent cannot use are dropped silently (RFC 9725).
		if err := pc.AddICECandidate(webrtc.ICECandidateInit{Candidate: c.value}); err != nil {
			s.log.Debug("trickled candidate ignored", "candidate", c.value, "err", err)
		}
	}
	w.WriteHeader(http.StatusNoContent)
}
