// Package srt is onair's SRT listener: it admits callers by stream id
// during the handshake, with the SRT access-control reject codes, and
// hands accepted publishers and readers to a Handler.
//
// It is built on github.com/haivision/srtgo (libsrt through cgo) in
// blocking mode: srtgo's non-blocking mode cannot interrupt a waiting Read
// or Accept on Close (its deadlines deadlock or never fire, and libsrt's
// close event is lost), while libsrt interrupts blocking calls on
// srt_close. The cost is one OS thread per blocked Read, so per
// publisher; readers only write and hold no thread while waiting.
package srt

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"runtime/debug"
	"strconv"
	"sync"
	"time"

	"github.com/haivision/srtgo"
)

// Config configures a Server. The zero value listens on :8890 without
// encryption.
type Config struct {
	// Addr is the UDP host:port to listen on; default ":8890".
	Addr string
	// Passphrase, when set (10 to 79 characters), makes encryption
	// mandatory: callers without it or with another one are refused in
	// the handshake.
	Passphrase string
	// Latency is the SRT receive latency (TSBPD); default 120 ms.
	Latency time.Duration
	// PeerIdleTimeout is how long a publisher may send nothing before its
	// connection is closed (libsrt's SRTO_PEERIDLETIMEO is set too);
	// default 1500 ms, so a vanished publisher is noticed within 2 s.
	PeerIdleTimeout time.Duration
	// Logger receives connection and rejection lines; default slog.Default().
	Logger *slog.Logger
}

// Defaults for the zero Config.
const (
	DefaultAddr            = ":8890"
	DefaultLatency         = 120 * time.Millisecond
	DefaultPeerIdleTimeout = 1500 * time.Millisecond

	minPassphrase = 10
	maxPassphrase = 79
	minPeerIdle   = 100 * time.Millisecond
	backlog       = 32
)

var (
	// ErrConfig is wrapped by every configuration error.
	ErrConfig = errors.New("srt: bad config")
	// ErrServerClosed is returned by Listen and Serve after Close.
	ErrServerClosed = errors.New("srt: server closed")
)

// Handler decides admission and serves accepted connections.
type Handler interface {
	// Admit runs during the handshake, on libsrt's receiving thread for
	// the port, so it must be quick (no network calls). A non-nil error
	// rejects the caller with the code of the *Reject in its chain (or of
	// any error with a RejectCode() RejectCode method), else 1403.
	//
	// Admitting is not connecting: libsrt still checks the passphrase
	// afterwards, so claim resources (a publisher slot) in ServePublish,
	// and use Admit only to refuse early, e.g. RejectConflict (1409) for
	// a second publisher.
	Admit(id StreamID, remote net.Addr) error
	// ServePublish owns conn until it returns; each conn.Read returns one
	// SRT message (up to 1316 bytes of MPEG-TS) and fails once the peer
	// is gone (closed, broken, or silent for PeerIdleTimeout).
	ServePublish(id StreamID, conn *Conn)
	// ServeRead owns conn until it returns, writing messages with
	// conn.Write. When the reader leaves, Write fails and conn.Done() is
	// closed (within half a second even while nothing is written).
	ServeRead(id StreamID, conn *Conn)
}

// Server is an SRT listener.
type Server struct {
	cfg Config
	h   Handler
	log *slog.Logger

	mu      sync.Mutex
	lsn     *srtgo.SrtSocket
	lsnID   sockID
	addr    *net.UDPAddr
	conns   map[*Conn]struct{}
	pending map[sockID]pendingCaller
	serving bool
	closed  bool
	closing chan struct{}
	wg      sync.WaitGroup // one per connection goroutine
}

// pendingCaller is a caller the listen callback admitted and Accept has
// not returned yet: libsrt may still refuse it (passphrase), and its log
// line names only the socket id.
type pendingCaller struct {
	remote   net.Addr
	streamID string
	at       time.Time
}

const (
	maxPending = 1024
	pendingTTL = 30 * time.Second
)

// NewServer checks cfg and fills in defaults; it does not bind yet.
func NewServer(cfg Config, h Handler) (*Server, error) {
	if h == nil {
		return nil, fmt.Errorf("%w: nil Handler", ErrConfig)
	}
	if cfg.Addr == "" {
		cfg.Addr = DefaultAddr
	}
	if _, _, err := splitAddr(cfg.Addr); err != nil {
		return nil, err
	}
	if n := len(cfg.Passphrase); n != 0 && (n < minPassphrase || n > maxPassphrase) {
		return nil, fmt.Errorf("%w: passphrase has %d characters; SRT needs %d to %d, or none for no encryption",
			ErrConfig, n, minPassphrase, maxPassphrase)
	}
	if cfg.Latency < 0 {
		return nil, fmt.Errorf("%w: Latency %v is negative; leave it 0 for 120 ms", ErrConfig, cfg.Latency)
	}
	if cfg.PeerIdleTimeout != 0 && cfg.PeerIdleTimeout < minPeerIdle {
		return nil, fmt.Errorf("%w: PeerIdleTimeout %v is below %v; leave it 0 for 1.5 s", ErrConfig, cfg.PeerIdleTimeout, minPeerIdle)
	}
	if cfg.Latency == 0 {
		cfg.Latency = DefaultLatency
	}
	if cfg.PeerIdleTimeout == 0 {
		cfg.PeerIdleTimeout = DefaultPeerIdleTimeout
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	return &Server{
		cfg:     cfg,
		h:       h,
		log:     cfg.Logger,
		conns:   map[*Conn]struct{}{},
		pending: map[sockID]pendingCaller{},
		closing: make(chan struct{}),
	}, nil
}

func splitAddr(addr string) (string, uint16, error) {
	host, portStr, err := net.SplitHostPort(addr)
	if err != nil {
		return "", 0, fmt.Errorf("%w: address %q: %v; want host:port such as :8890", ErrConfig, addr, err)
	}
	port, err := strconv.ParseUint(portStr, 10, 16)
	if err != nil {
		return "", 0, fmt.Errorf("%w: address %q: port must be 0 to 65535", ErrConfig, addr)
	}
	if host == "" {
		host = "0.0.0.0" // srtgo resolves the host; "" would fail
	}
	return host, uint16(port), nil
}

// Listen binds the UDP port. Serve calls it when it has not been called.
func (s *Server) Listen() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return ErrServerClosed
	}
	if s.lsn != nil {
		return nil
	}
	startup()
	host, port, err := splitAddr(s.cfg.Addr)
	if err != nil {
		return err
	}
	opts := map[string]string{
		"mode":          "listener",
		"blocking":      "1",
		"linger":        "0", // close at once, do not flush to a gone peer
		"transtype":     "live",
		"latency":       strconv.FormatInt(s.cfg.Latency.Milliseconds(), 10),
		"peeridletimeo": strconv.FormatInt(s.cfg.PeerIdleTimeout.Milliseconds(), 10),
	}
	if s.cfg.Passphrase != "" {
		opts["passphrase"] = s.cfg.Passphrase
		opts["enforcedencryption"] = "1"
	}
	sock := srtgo.NewSrtSocket(host, port, opts)
	if sock == nil {
		return fmt.Errorf("srt: cannot create a socket for %s (libsrt refused the options)", s.cfg.Addr)
	}
	sock.SetListenCallback(s.admit)
	if err := sock.Listen(backlog); err != nil {
		return fmt.Errorf("srt: listen on udp %s: %w; is another program using the port? choose another SRT address", s.cfg.Addr, err)
	}
	s.lsn = sock
	s.lsnID = sockID(sock.GetSocket())
	if s.addr, err = localAddr(s.lsnID); err != nil {
		s.addr = &net.UDPAddr{IP: net.ParseIP(host), Port: int(port)}
	}
	logs.add(s)
	s.log.Info("srt: listening", "addr", s.addr.String(), "encrypted", s.cfg.Passphrase != "",
		"latency", s.cfg.Latency, "peer_idle_timeout", s.cfg.PeerIdleTimeout)
	return nil
}

// Addr is the bound address, or nil before Listen.
func (s *Server) Addr() net.Addr {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.addr == nil {
		return nil
	}
	return s.addr
}

// Serve accepts connections until ctx is done or Close is called, runs
// each in its own goroutine, and returns once all handlers have returned
// (they must return once conn.Read or conn.Write fails or conn.Done() is
// closed, which Close brings about).
func (s *Server) Serve(ctx context.Context) error {
	if err := s.Listen(); err != nil {
		return err
	}
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return ErrServerClosed
	}
	if s.serving {
		s.mu.Unlock()
		return errors.New("srt: Serve called twice")
	}
	s.serving = true
	lsn := s.lsn
	s.mu.Unlock()

	stop := context.AfterFunc(ctx, func() { s.Close() })
	defer stop()

	backoff := time.Duration(0)
	for {
		sock, peer, err := lsn.Accept()
		if s.isClosed() {
			if err == nil {
				closeID(sockID(sock.GetSocket()))
				sock.Close()
			}
			break
		}
		if err != nil {
			// Spurious wake-ups and handshakes that died in the backlog;
			// back off so a persistent failure cannot spin.
			backoff = min(max(2*backoff, 5*time.Millisecond), time.Second)
			s.log.Debug("srt: accept", "err", err, "retry_in", backoff)
			select {
			case <-time.After(backoff):
			case <-s.closing:
			}
			continue
		}
		backoff = 0
		s.wg.Add(1)
		go s.serveConn(sock, peer)
	}
	s.wg.Wait()
	lsn.Close() // srtgo cleanup; no Accept runs any more
	return nil
}

func (s *Server) isClosed() bool {
	select {
	case <-s.closing:
		return true
	default:
		return false
	}
}

// Close stops listening and closes every connection. It does not wait
// for handlers; Serve returns once they have. Calling it again does nothing.
func (s *Server) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	close(s.closing)
	conns := make([]*Conn, 0, len(s.conns))
	for c := range s.conns {
		conns = append(conns, c)
	}
	lsn, serving := s.lsn, s.serving
	s.mu.Unlock()

	if lsn != nil {
		logs.remove(s)
		closeID(s.lsnID)
		if !serving {
			lsn.Close()
		} // else Serve's blocked Accept fails now, and Serve frees lsn
		s.log.Info("srt: closed", "addr", s.addr.String(), "connections", len(conns))
	}
	for _, c := range conns {
		c.Close()
	}
	return nil
}

// admit is the listen callback: it runs inside the handshake, on libsrt's
// receiving thread, before libsrt checks the passphrase.
func (s *Server) admit(ns *srtgo.SrtSocket, _ int, peer *net.UDPAddr, streamID string) bool {
	var remote net.Addr
	if peer != nil {
		remote = peer
	}
	err := s.check(streamID, remote)
	if err == nil {
		s.remember(sockID(ns.GetSocket()), remote, streamID)
		return true
	}
	code := RejectCodeOf(err)
	if serr := ns.SetRejectReason(int(code)); serr != nil {
		s.log.Warn("srt: cannot set reject reason", "code", int(code), "err", serr)
	}
	s.log.Warn("srt: rejected caller", "remote", addrString(remote), "streamid", clip(streamID),
		"code", int(code), "reason", code.String(), "err", err)
	return false
}

func (s *Server) check(streamID string, remote net.Addr) (err error) {
	if s.isClosed() {
		return Rejectf(RejectDown, "srt: server is shutting down; try again later")
	}
	id, err := ParseStreamID(streamID)
	if err != nil {
		return err
	}
	defer func() {
		if r := recover(); r != nil {
			s.log.Error("srt: Admit panicked", "streamid", id.String(), "panic", r, "stack", string(debug.Stack()))
			err = Rejectf(RejectInternal, "srt: admitting %s failed inside the server", id)
		}
	}()
	return s.h.Admit(id, remote)
}

func (s *Server) remember(id sockID, remote net.Addr, streamID string) {
	now := time.Now()
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.pending) >= maxPending {
		for k, p := range s.pending {
			if now.Sub(p.at) > pendingTTL || len(s.pending) >= maxPending {
				delete(s.pending, k)
			}
		}
	}
	s.pending[id] = pendingCaller{remote: remote, streamID: streamID, at: now}
}

func (s *Server) forget(id sockID) (pendingCaller, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	p, ok := s.pending[id]
	delete(s.pending, id)
	return p, ok
}

// libsrtRejected logs libsrt's refusal of a caller this server admitted;
// it reports false when the socket is not this server's.
func (s *Server) libsrtRejected(id sockID, why string) bool {
	p, ok := s.forget(id)
	if !ok {
		return false
	}
	code, reason := RejectCode(0), why
	switch {
	case containsWord(why, "BADSECRET"):
		code, reason = RejectBadSecret, "wrong passphrase: the caller's passphrase differs from the server's"
	case containsWord(why, "UNSECURE") && s.cfg.Passphrase != "":
		code, reason = RejectUnsecure, "no passphrase: this server requires one and the caller sent none"
	case containsWord(why, "UNSECURE"):
		code, reason = RejectUnsecure, "unexpected passphrase: the caller encrypts but this server has no passphrase"
	}
	attrs := []any{"remote", addrString(p.remote), "streamid", clip(p.streamID), "reason", reason}
	if code != 0 {
		attrs = append(attrs, "code", int(code))
	}
	s.log.Warn("srt: rejected caller", attrs...)
	return true
}

func containsWord(s, w string) bool {
	for i := 0; i+len(w) <= len(s); i++ {
		if s[i:i+len(w)] == w {
			return true
		}
	}
	return false
}

func addrString(a net.Addr) string {
	if a == nil {
		return "unknown"
	}
	return a.String()
}

func (s *Server) track(c *Conn) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return false
	}
	s.conns[c] = struct{}{}
	return true
}

func (s *Server) untrack(c *Conn) {
	s.mu.Lock()
	delete(s.conns, c)
	s.mu.Unlock()
}

func (s *Server) serveConn(sock *srtgo.SrtSocket, peer *net.UDPAddr) {
	defer s.wg.Done()
	sid := sockID(sock.GetSocket())
	pc, _ := s.forget(sid)
	var remote net.Addr = pc.remote
	if peer != nil {
		remote = peer
	}
	raw, err := streamIDOf(sid)
	var id StreamID
	if err == nil {
		id, err = ParseStreamID(raw) // cannot fail: admit parsed it
	}
	c := newConn(sock, id, remote)
	defer c.release()
	if err != nil {
		s.log.Error("srt: accepted connection without a usable streamid", "remote", addrString(remote), "err", err)
		return
	}
	idle := time.Duration(0) // readers send no data
	if id.Mode == ModePublish {
		idle = s.cfg.PeerIdleTimeout
	}
	c.monitor(idle)
	if !s.track(c) {
		return
	}
	defer s.untrack(c)

	start := time.Now()
	s.log.Info("srt: connected", "remote", addrString(remote), "streamid", id.String(), "user", id.User)
	defer func() {
		st := c.Stats()
		s.log.Info("srt: disconnected", "remote", addrString(remote), "streamid", id.String(),
			"duration", time.Since(start).Round(time.Millisecond), "reason", errString(c.Err()),
			"bytes_received", st.BytesReceived, "bytes_sent", st.BytesSent,
			"packets_lost", st.PacketsLost, "packets_retransmitted", st.PacketsRetransmitted)
	}()
	defer func() {
		if r := recover(); r != nil {
			s.log.Error("srt: handler panicked", "streamid", id.String(), "panic", r, "stack", string(debug.Stack()))
		}
		c.Close()
	}()

	switch id.Mode {
	case ModePublish:
		s.h.ServePublish(id, c)
	case ModeRead:
		s.h.ServeRead(id, c)
	}
}

func errString(err error) string {
	if err == nil {
		return "handler returned"
	}
	return err.Error()
}
