// Package webrtc is onair's WebRTC edge: WHIP ingest (RFC 9725) and WHEP
// playback (draft-ietf-wish-whep) over HTTP, on pion/webrtc.
//
// An Engine owns the network side: one UDP port shared by every peer (ICE
// UDP mux), a passive ICE-TCP listener on the same port number as a
// fallback, and the pion API configured with onair's codecs (H.264, Opus)
// and interceptors (NACK both ways, RTCP reports, TWCC feedback). A Handler
// serves the WHIP and WHEP HTTP resources on top of it and hands media to
// the rest of onair through two small interfaces: Ingest (publishers'
// frames, depacketized to av.Frame) and Playback (the shared tracks viewers
// receive).
package webrtc

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"time"

	"github.com/pion/ice/v4"
	"github.com/pion/interceptor"
	"github.com/pion/interceptor/pkg/nack"
	"github.com/pion/stun/v4"
	"github.com/pion/webrtc/v4"
)

// DefaultPort is the UDP (and ICE-TCP) port of the WebRTC edge.
const DefaultPort = "8189"

// DefaultConnectTimeout is how long a new peer has to complete ICE and DTLS.
const DefaultConnectTimeout = 15 * time.Second

// TCPOff as Config.TCPAddr disables the ICE-TCP fallback.
const TCPOff = "off"

var (
	// ErrBind reports a UDP or TCP port the engine could not listen on.
	ErrBind = errors.New("webrtc: cannot listen")
	// ErrConfig reports an invalid Config field.
	ErrConfig = errors.New("webrtc: bad config")
)

// ICEServer is a STUN or TURN server advertised to clients in Link headers
// (RFC 9725 section 4.6). The server itself does not use it: its
// candidates come from its own addresses and Config.PublicIPs.
type ICEServer struct {
	URLs       []string // stun:host:port, turn:host:port?transport=udp, turns:...
	Username   string   // TURN only
	Credential string   // TURN long-term password
}

// Config configures an Engine. The zero value serves on port 8189 (UDP and
// TCP) on every interface.
type Config struct {
	// UDPAddr is the one UDP address every peer uses (ICE UDP mux).
	// Default ":8189". "127.0.0.1:0" picks a free loopback port (tests).
	UDPAddr string
	// TCPAddr is the passive ICE-TCP fallback for networks that block UDP.
	// Default ":8189"; TCPOff disables it.
	TCPAddr string
	// PublicIPs replace the host candidates' addresses (1:1 NAT, e.g. a
	// cloud VM's elastic IP). Empty: the interfaces' own addresses.
	PublicIPs []string
	// ICEServers are advertised to clients; see ICEServer.
	ICEServers []ICEServer
	// ConnectTimeout bounds the time from the answer to a connected peer
	// (ICE and DTLS). Default DefaultConnectTimeout.
	ConnectTimeout time.Duration
	// Logger receives session events and pion's warnings. Default slog.Default().
	Logger *slog.Logger
}

// Engine owns the ICE sockets and the pion API every peer connection is
// made with. Close it to release the ports.
type Engine struct {
	cfg    Config
	log    *slog.Logger
	api    *webrtc.API
	udp    net.PacketConn
	udpMux ice.UDPMux
	tcp    net.Listener
	tcpMux ice.TCPMux
}

// NewEngine binds the UDP port (and the TCP port unless disabled) and
// prepares the pion API.
func NewEngine(cfg Config) (*Engine, error) {
	if cfg.UDPAddr == "" {
		cfg.UDPAddr = ":" + DefaultPort
	}
	if cfg.TCPAddr == "" {
		cfg.TCPAddr = ":" + DefaultPort
	}
	if cfg.ConnectTimeout <= 0 {
		cfg.ConnectTimeout = DefaultConnectTimeout
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if err := validate(&cfg); err != nil {
		return nil, err
	}
	e := &Engine{cfg: cfg, log: cfg.Logger.With("component", "webrtc")}
	logs := &pionLogs{log: e.log}

	udp, err := net.ListenPacket("udp", cfg.UDPAddr)
	if err != nil {
		return nil, fmt.Errorf("%w: UDP %s for WebRTC media: %w (is another onair or WebRTC server using the port? choose another)", ErrBind, cfg.UDPAddr, err)
	}
	e.udp = udp
	e.udpMux = webrtc.NewICEUDPMux(logs.NewLogger("udpmux"), udp)
	if cfg.TCPAddr != TCPOff {
		tcp, err := net.Listen("tcp", cfg.TCPAddr)
		if err != nil {
			_ = e.udpMux.Close()
			return nil, fmt.Errorf("%w: TCP %s for ICE-TCP: %w (choose another address, or %q to disable ICE-TCP)", ErrBind, cfg.TCPAddr, err, TCPOff)
		}
		e.tcp = tcp
		e.tcpMux = webrtc.NewICETCPMux(logs.NewLogger("tcpmux"), tcp, 8)
	}

	api, err := e.newAPI(logs)
	if err != nil {
		_ = e.Close()
		return nil, err
	}
	e.api = api
	return e, nil
}

func validate(cfg *Config) error {
	for _, ip := range cfg.PublicIPs {
		if net.ParseIP(ip) == nil {
			return fmt.Errorf("%w: public IP %q is not an IP address", ErrConfig, ip)
		}
	}
	for _, s := range cfg.ICEServers {
		if hasCTL(s.Username) || hasCTL(s.Credential) {
			return fmt.Errorf("%w: ICE server username or credential has control characters", ErrConfig)
		}
		if len(s.URLs) == 0 {
			return fmt.Errorf("%w: ICE server without URLs", ErrConfig)
		}
		for _, u := range s.URLs {
			if _, err := stun.ParseURI(u); err != nil {
				return fmt.Errorf("%w: ICE server URL %q: %w (want stun:host:port or turn:host:port?transport=udp)", ErrConfig, u, err)
			}
			if strings.ContainsAny(u, "<>\r\n") {
				return fmt.Errorf("%w: ICE server URL %q has characters a Link header cannot carry", ErrConfig, u)
			}
		}
	}
	return nil
}

// newAPI builds the media engine (codecs), interceptors and settings.
func (e *Engine) newAPI(logs *pionLogs) (*webrtc.API, error) {
	m := &webrtc.MediaEngine{}
	if err := registerCodecs(m); err != nil {
		return nil, fmt.Errorf("webrtc: register codecs: %w", err)
	}
	ir := &interceptor.Registry{}
	// A smaller NACK history than pion's 1024 packets: it is kept per
	// viewer, and 256 packets (over a second of 2 Mbit/s video) covers any
	// useful retransmission.
	if err := webrtc.ConfigureNackWithOptions(m, ir,
		[]nack.GeneratorOption{nack.WithGeneratorLoggerFactory(logs)},
		nack.ResponderSize(256), nack.WithResponderLoggerFactory(logs)); err != nil {
		return nil, fmt.Errorf("webrtc: NACK: %w", err)
	}
	if err := webrtc.ConfigureRTCPReports(ir); err != nil {
		return nil, fmt.Errorf("webrtc: RTCP reports: %w", err)
	}
	// TWCC feedback lets publishers' congestion control size the uplink.
	if err := webrtc.ConfigureTWCCSender(m, ir); err != nil {
		return nil, fmt.Errorf("webrtc: TWCC: %w", err)
	}

	s := webrtc.SettingEngine{LoggerFactory: logs}
	s.SetICEUDPMux(e.udpMux)
	networks := []webrtc.NetworkType{webrtc.NetworkTypeUDP4, webrtc.NetworkTypeUDP6}
	if e.tcpMux != nil {
		s.SetICETCPMux(e.tcpMux)
		networks = append(networks, webrtc.NetworkTypeTCP4, webrtc.NetworkTypeTCP6)
	}
	s.SetNetworkTypes(networks)
	// No mDNS: it would open a multicast socket per peer; browsers' .local
	// candidates are found as peer-reflexive from their checks anyway.
	s.SetICEMulticastDNSMode(ice.MulticastDNSModeDisabled)
	// A mux bound to loopback only has loopback candidates, which pion
	// skips unless told (tests, local setups).
	if isLoopback(e.udp.LocalAddr()) {
		s.SetIncludeLoopbackCandidate(true)
	}
	if len(e.cfg.PublicIPs) > 0 {
		if err := s.SetICEAddressRewriteRules(webrtc.ICEAddressRewriteRule{
			External:        e.cfg.PublicIPs,
			AsCandidateType: webrtc.ICECandidateTypeHost,
			Mode:            webrtc.ICEAddressRewriteReplace,
		}); err != nil {
			return nil, fmt.Errorf("%w: public IPs: %w", ErrConfig, err)
		}
	}
	// Consent freshness: a silent peer is disconnected after 5 s, failed
	// (and closed) after 10 s.
	s.SetICETimeouts(5*time.Second, 10*time.Second, 2*time.Second)
	return webrtc.NewAPI(webrtc.WithMediaEngine(m), webrtc.WithInterceptorRegistry(ir),
		webrtc.WithSettingEngine(s)), nil
}

func hasCTL(s string) bool {
	return strings.ContainsFunc(s, func(r rune) bool { return r < 0x20 || r == 0x7f })
}

func isLoopback(a net.Addr) bool {
	u, ok := a.(*net.UDPAddr)
	return ok && u.IP.IsLoopback()
}

// API returns the pion API peer connections of this engine are made with
// (its codecs, interceptors and sockets), for packages that build their own.
func (e *Engine) API() *webrtc.API { return e.api }

// UDPAddr is the bound UDP address (the real port when Config asked for 0).
func (e *Engine) UDPAddr() net.Addr { return e.udp.LocalAddr() }

// TCPAddr is the bound ICE-TCP address, or nil when ICE-TCP is off.
func (e *Engine) TCPAddr() net.Addr {
	if e.tcp == nil {
		return nil
	}
	return e.tcp.Addr()
}

// Close releases the ports. Close the Handlers using the engine first.
func (e *Engine) Close() error {
	var errs []error
	if e.tcpMux != nil {
		errs = append(errs, e.tcpMux.Close())
	}
	if e.udpMux != nil {
		errs = append(errs, e.udpMux.Close())
	}
	return errors.Join(errs...)
}

func (e *Engine) newPeerConnection() (*webrtc.PeerConnection, error) {
	return e.api.NewPeerConnection(webrtc.Configuration{
		BundlePolicy:  webrtc.BundlePolicyMaxBundle,
		RTCPMuxPolicy: webrtc.RTCPMuxPolicyRequire,
	})
}
