package srt

import (
	"errors"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/haivision/srtgo"
)

const (
	// MaxPayloadSize is the largest message Write sends: 7 TS packets, the
	// SRT live-mode default payload (SRTO_PAYLOADSIZE).
	MaxPayloadSize = 1316
	// MaxMessageSize is the largest message a peer can send (a caller may
	// raise its payload size up to the MSS limit), so Read needs a buffer
	// this big.
	MaxMessageSize = 1456
)

var (
	// ErrClosed: the connection was closed on this side.
	ErrClosed = errors.New("srt: connection closed")
	// ErrPeerGone: the peer closed the connection or libsrt declared it broken.
	ErrPeerGone = errors.New("srt: peer closed or lost the connection")
	// ErrPeerIdle: a publisher sent no data for Config.PeerIdleTimeout.
	ErrPeerIdle = errors.New("srt: publisher sent nothing for the peer idle timeout")
	// ErrShortBuffer: Read was given less than MaxMessageSize bytes.
	ErrShortBuffer = errors.New("srt: read buffer smaller than one SRT message; use srt.MaxMessageSize bytes")
	// ErrMessageTooLarge: Write was given more than MaxPayloadSize bytes.
	ErrMessageTooLarge = errors.New("srt: message larger than srt.MaxPayloadSize (1316 bytes, 7 TS packets); split it")
)

// Stats are a connection's counters since it was accepted.
type Stats struct {
	BytesReceived        int64 // payload bytes returned by Read
	BytesSent            int64 // payload bytes accepted by Write
	PacketsReceived      int64 // data packets libsrt received
	PacketsSent          int64 // data packets libsrt sent, retransmissions included
	PacketsLost          int64 // receiver side: sequence gaps seen
	PacketsDropped       int64 // receiver side: too late to play, given up
	PacketsRetransmitted int64 // sender side
	RTT                  time.Duration
	Bandwidth            float64 // estimated link capacity, Mbit/s
}

// Conn is one accepted SRT connection in live mode: each Read returns one
// message, each Write sends one.
type Conn struct {
	sock   *srtgo.SrtSocket
	sid    sockID
	id     StreamID
	remote net.Addr

	// mu is held shared by every srtgo call and exclusively by release:
	// srtgo's Close writes the socket struct its other methods copy.
	mu       sync.RWMutex
	released bool

	closeOnce sync.Once
	done      chan struct{}
	err       error // why the conn closed; set before done is closed

	rx, tx  atomic.Int64 // payload bytes through Read and Write
	statsMu sync.Mutex
	last    Stats // libsrt's counters as last read

	// Liveness (see monitor).
	watchMu  sync.Mutex
	watchdog *time.Timer
	idle     time.Duration
	lastPkts int64     // data packets received at the last check
	lastSeen time.Time // when lastPkts last changed
}

func newConn(sock *srtgo.SrtSocket, id StreamID, remote net.Addr) *Conn {
	return &Conn{
		sock:   sock,
		sid:    sockID(sock.GetSocket()),
		id:     id,
		remote: remote,
		done:   make(chan struct{}),
	}
}

// StreamID is what the caller asked for.
func (c *Conn) StreamID() StreamID { return c.id }

// RemoteAddr is the caller's UDP address.
func (c *Conn) RemoteAddr() net.Addr { return c.remote }

// Done is closed once the connection is closed, by either side.
func (c *Conn) Done() <-chan struct{} { return c.done }

// Err says why the connection closed (ErrClosed, ErrPeerGone, ErrPeerIdle
// wrapped with detail), or nil while it is open.
func (c *Conn) Err() error {
	select {
	case <-c.done:
		return c.err
	default:
		return nil
	}
}

// Read reads one SRT message into b, which must hold MaxMessageSize bytes.
// It blocks until a message arrives, and fails once the connection is
// closed, the peer is gone, or (publishers) the peer went idle.
func (c *Conn) Read(b []byte) (int, error) {
	if len(b) < MaxMessageSize {
		return 0, ErrShortBuffer
	}
	c.mu.RLock()
	if c.released {
		c.mu.RUnlock()
		return 0, c.Err()
	}
	n, err := c.sock.Read(b)
	c.mu.RUnlock()
	if err != nil {
		return 0, c.fail(fmt.Errorf("%w (%s from %s): %w", ErrPeerGone, c.id, c.remote, err))
	}
	c.rx.Add(int64(n))
	return n, nil
}

// Write sends b as one SRT message (at most MaxPayloadSize bytes; for
// MPEG-TS send whole 188-byte packets, up to 7 at a time).
func (c *Conn) Write(b []byte) (int, error) {
	if len(b) > MaxPayloadSize {
		return 0, ErrMessageTooLarge
	}
	if len(b) == 0 {
		return 0, nil
	}
	c.mu.RLock()
	if c.released {
		c.mu.RUnlock()
		return 0, c.Err()
	}
	n, err := c.sock.Write(b)
	c.mu.RUnlock()
	if err != nil {
		return 0, c.fail(fmt.Errorf("%w (%s to %s): %w", ErrPeerGone, c.id, c.remote, err))
	}
	c.tx.Add(int64(n))
	return n, nil
}

// fail closes the conn with cause unless it was already closed, and
// returns the reason the conn closed first.
func (c *Conn) fail(cause error) error {
	c.closeWith(cause)
	return c.err
}

// Close closes the connection; blocked Read and Write calls return
// ErrClosed. It is safe to call more than once and from any goroutine.
func (c *Conn) Close() error {
	c.closeWith(ErrClosed)
	return nil
}

func (c *Conn) closeWith(cause error) {
	c.closeOnce.Do(func() {
		c.Stats() // keep the last counters
		c.err = cause
		close(c.done)
		c.watchMu.Lock()
		if c.watchdog != nil {
			c.watchdog.Stop()
		}
		c.watchMu.Unlock()
		// libsrt interrupts a Read or Write blocked on this socket.
		closeID(c.sid)
	})
}

// release frees srtgo's state once nothing uses the socket any more.
func (c *Conn) release() {
	c.closeWith(ErrClosed)
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.released {
		c.released = true
		c.sock.Close()
	}
}

// Stats returns the connection's counters. The byte counts are exact; the
// rest are libsrt's, fresh while the connection is up and after it closed
// the last values seen (refreshed at least every half second while up:
// libsrt refuses to report on a broken connection).
func (c *Conn) Stats() Stats {
	var st *srtgo.SrtStats
	var err error = ErrClosed
	c.mu.RLock()
	if !c.released && c.Err() == nil {
		st, err = c.sock.Stats()
	}
	c.mu.RUnlock()
	c.statsMu.Lock()
	defer c.statsMu.Unlock()
	if err == nil {
		c.last = Stats{
			PacketsReceived:      st.PktRecvTotal,
			PacketsSent:          st.PktSentTotal,
			PacketsLost:          int64(st.PktRcvLossTotal),
			PacketsDropped:       int64(st.PktRcvDropTotal),
			PacketsRetransmitted: int64(st.PktRetransTotal),
			RTT:                  time.Duration(st.MsRTT * float64(time.Millisecond)),
			Bandwidth:            st.MbpsBandwidth,
		}
	}
	out := c.last
	out.BytesReceived, out.BytesSent = c.rx.Load(), c.tx.Load()
	return out
}

// firstDataGrace is how long a publisher may stay silent after connecting:
// encoders with lookahead take a while before their first packet, and
// libsrt's own peer-idle check still catches a vanished peer meanwhile.
const firstDataGrace = 10 * time.Second

// stateCheckEvery is how often a conn checks that libsrt still has it
// connected, so a reader that left is noticed while nothing is written.
const stateCheckEvery = 500 * time.Millisecond

// monitor closes the conn once libsrt no longer has it connected, and,
// when idle > 0, once it receives no data packets for idle. libsrt's own
// idle check needs 16 expiry periods on top of SRTO_PEERIDLETIMEO (about
// 5 s at least); a live publisher sends packets many times a second, so
// silence this long means it is gone. The socket's packet counter is
// used, not Read calls, so a slow consumer is not mistaken for a silent
// peer. It runs on a timer: no goroutine waits meanwhile.
func (c *Conn) monitor(idle time.Duration) {
	c.watchMu.Lock()
	defer c.watchMu.Unlock()
	c.idle = idle
	c.lastSeen = time.Now()
	c.watchdog = time.AfterFunc(c.checkEvery(), c.check)
}

func (c *Conn) checkEvery() time.Duration {
	if c.idle <= 0 {
		return stateCheckEvery
	}
	return min(stateCheckEvery, max(c.idle/4, 10*time.Millisecond))
}

// check runs on the monitor timer, one run at a time.
func (c *Conn) check() {
	if c.Err() != nil {
		return
	}
	if !connected(c.sid) {
		c.closeWith(fmt.Errorf("%w (%s, %s): libsrt reports the connection broken", ErrPeerGone, c.id, c.remote))
		return
	}
	st := c.Stats()
	now := time.Now()
	c.watchMu.Lock()
	if st.PacketsReceived != c.lastPkts {
		c.lastPkts = st.PacketsReceived
		c.lastSeen = now
	}
	limit := c.idle
	if c.lastPkts == 0 {
		limit = max(limit, firstDataGrace)
	}
	silent := now.Sub(c.lastSeen)
	if c.idle <= 0 || silent < limit {
		c.watchdog.Reset(c.checkEvery())
		c.watchMu.Unlock()
		return
	}
	c.watchMu.Unlock()
	c.closeWith(fmt.Errorf("%w (%s from %s, silent %v)", ErrPeerIdle, c.id, c.remote, silent.Round(time.Millisecond)))
}
