package main

import (
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"time"
)

// list splits a comma-separated flag value, dropping empty items.
func list(s string) []string {
	var out []string
	for _, v := range strings.Split(s, ",") {
		if v = strings.TrimSpace(v); v != "" {
			out = append(out, v)
		}
	}
	return out
}

// config is every setting of `onair serve`. Each has a flag and an
// ONAIR_* environment variable (flag wins); the defaults need no file.
type config struct {
	DataDir        string
	HTTPAddr       string
	SRTAddr        string
	SRTPassphrase  string
	SRTLatency     time.Duration
	WebRTCUDP      string
	WebRTCTCP      string
	PublicIPs      string
	ICEServers     string
	TLSCert        string
	TLSKey         string
	PartTarget     time.Duration
	MinSegment     time.Duration
	TargetDuration time.Duration
	Window         time.Duration
	Grace          time.Duration
	LogLevel       string
	LogFormat      string
}

func parseConfig(args []string) (*config, error) {
	c := &config{}
	fs := flag.NewFlagSet("onair serve", flag.ContinueOnError)
	str := func(p *string, name, def, help string) {
		fs.StringVar(p, name, envOr(name, def), help)
	}
	dur := func(p *time.Duration, name string, def time.Duration, help string) {
		d := def
		if v := os.Getenv(envName(name)); v != "" {
			if x, err := time.ParseDuration(v); err == nil {
				d = x
			}
		}
		fs.DurationVar(p, name, d, help)
	}
	str(&c.DataDir, "data", "./data", "directory for the event log (bbolt) and the blob store")
	str(&c.HTTPAddr, "http", ":8080", "HTTP listen address (LL-HLS, API, health)")
	str(&c.SRTAddr, "srt", ":8890", "SRT listen address (UDP); empty disables SRT")
	str(&c.SRTPassphrase, "srt-passphrase", "", "SRT passphrase (10-79 chars); when set, publishers must encrypt with it")
	dur(&c.SRTLatency, "srt-latency", 120*time.Millisecond, "SRT receive latency (TSBPD)")
	str(&c.WebRTCUDP, "webrtc-udp", ":8189", "WebRTC UDP address shared by every peer (ICE UDP mux); empty disables WHIP/WHEP")
	str(&c.WebRTCTCP, "webrtc-tcp", ":8189", "passive ICE-TCP fallback address; \"off\" disables it")
	str(&c.PublicIPs, "public-ip", "", "comma-separated public IPs to announce as WebRTC candidates (1:1 NAT)")
	str(&c.ICEServers, "ice-server", "", "comma-separated STUN/TURN URLs advertised to WHIP/WHEP clients (Link headers)")
	str(&c.TLSCert, "tls-cert", "", "TLS certificate file: serve HTTPS with HTTP/2 (without it: HTTP/1.1 and h2c)")
	str(&c.TLSKey, "tls-key", "", "TLS key file")
	dur(&c.PartTarget, "part-target", 200*time.Millisecond, "LL-HLS part target duration")
	dur(&c.MinSegment, "segment-min", time.Second, "cut a segment at the first keyframe after this much media")
	dur(&c.TargetDuration, "target-duration", 2*time.Second, "LL-HLS EXT-X-TARGETDURATION (the longest segment expected)")
	dur(&c.Window, "window", 30*time.Second, "how much media each live playlist lists and memory keeps")
	dur(&c.Grace, "grace", 10*time.Second, "how long a dropped publisher may take to reconnect and continue the same stream")
	str(&c.LogLevel, "log-level", "info", "debug, info, warn or error")
	str(&c.LogFormat, "log-format", "text", "text or json")
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected arguments: %s", strings.Join(fs.Args(), " "))
	}
	return c, c.validate()
}

func envName(flagName string) string {
	return "ONAIR_" + strings.ToUpper(strings.ReplaceAll(flagName, "-", "_"))
}

func envOr(flagName, def string) string {
	if v, ok := os.LookupEnv(envName(flagName)); ok {
		return v
	}
	return def
}

func (c *config) validate() error {
	var errs []error
	if c.PartTarget < 50*time.Millisecond || c.PartTarget > 2*time.Second {
		errs = append(errs, fmt.Errorf("-part-target %v: want 50ms..2s", c.PartTarget))
	}
	if c.MinSegment < c.PartTarget {
		errs = append(errs, fmt.Errorf("-segment-min %v: must be at least -part-target %v", c.MinSegment, c.PartTarget))
	}
	if c.TargetDuration < c.MinSegment {
		errs = append(errs, fmt.Errorf("-target-duration %v: must be at least -segment-min %v", c.TargetDuration, c.MinSegment))
	}
	if c.Window < 3*c.TargetDuration {
		errs = append(errs, fmt.Errorf("-window %v: must hold at least 3 target durations (%v)", c.Window, 3*c.TargetDuration))
	}
	if n := len(c.SRTPassphrase); n != 0 && (n < 10 || n > 79) {
		errs = append(errs, fmt.Errorf("-srt-passphrase: %d characters, SRT wants 10 to 79", n))
	}
	if (c.TLSCert == "") != (c.TLSKey == "") {
		errs = append(errs, errors.New("-tls-cert and -tls-key go together"))
	}
	if c.Grace < 0 {
		errs = append(errs, fmt.Errorf("-grace %v: must not be negative", c.Grace))
	}
	if _, err := parseLevel(c.LogLevel); err != nil {
		errs = append(errs, err)
	}
	if c.LogFormat != "text" && c.LogFormat != "json" {
		errs = append(errs, fmt.Errorf("-log-format %q: want text or json", c.LogFormat))
	}
	return errors.Join(errs...)
}

func parseLevel(s string) (slog.Level, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(s)); err != nil {
		return 0, fmt.Errorf("-log-level %q: want debug, info, warn or error", s)
	}
	return l, nil
}

func (c *config) logger() *slog.Logger {
	lvl, _ := parseLevel(c.LogLevel)
	opts := &slog.HandlerOptions{Level: lvl}
	if c.LogFormat == "json" {
		return slog.New(slog.NewJSONHandler(os.Stderr, opts))
	}
	return slog.New(slog.NewTextHandler(os.Stderr, opts))
}
