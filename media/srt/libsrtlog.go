package srt

import (
	"context"
	"log/slog"
	"regexp"
	"strconv"
	"strings"
	"sync"

	"github.com/haivision/srtgo"
)

// libsrt is process-global: one startup, one log handler, one log level.
// startup is idempotent; srt_cleanup is never called, because it would
// tear down every SRT socket in the process (the OS reclaims all at exit).
var (
	startOnce sync.Once
	logs      = &logRouter{servers: map[*Server]struct{}{}}
)

func startup() {
	startOnce.Do(func() {
		srtgo.InitSRT()
		plainLogLines()
		// Warning is the lowest level that names a passphrase rejection;
		// below it libsrt logs per packet.
		srtgo.SrtSetLogLevel(srtgo.SrtLogLevelWarning)
		srtgo.SrtSetLogHandler(logs.handle)
	})
}

// logRouter passes libsrt's log lines to the servers' loggers, and turns
// the one that says why libsrt refused a handshake after the listen
// callback admitted it (passphrase checks run after the callback) into a
// clear line on the server that admitted that socket.
type logRouter struct {
	mu      sync.Mutex
	servers map[*Server]struct{}
}

func (r *logRouter) add(s *Server) {
	r.mu.Lock()
	r.servers[s] = struct{}{}
	r.mu.Unlock()
}

func (r *logRouter) remove(s *Server) {
	r.mu.Lock()
	delete(r.servers, s)
	r.mu.Unlock()
}

func (r *logRouter) each(f func(*Server) bool) {
	r.mu.Lock()
	list := make([]*Server, 0, len(r.servers))
	for s := range r.servers {
		list = append(list, s)
	}
	r.mu.Unlock()
	for _, s := range list {
		if f(s) {
			return
		}
	}
}

// rejectLine matches libsrt 1.5's "@<socket>:newConnection: connection
// rejected due to: <reason>" (api.cpp, LOG_WARNING).
var rejectLine = regexp.MustCompile(`@(\d+):newConnection: connection rejected due to: (.*)`)

// handle runs on a goroutine srtgo starts per log line.
func (r *logRouter) handle(level srtgo.SrtLogLevel, file string, line int, area, msg string) {
	msg = strings.TrimSpace(msg)
	if m := rejectLine.FindStringSubmatch(msg); m != nil {
		id, err := strconv.ParseInt(m[1], 10, 32)
		if err == nil {
			handled := false
			r.each(func(s *Server) bool {
				handled = s.libsrtRejected(sockID(id), m[2])
				return handled
			})
			if handled {
				return
			}
		}
	}
	lvl := slog.LevelDebug
	switch {
	case level <= srtgo.SrtLogLevelCrit:
		lvl = slog.LevelError
	case level <= srtgo.SrtLogLevelErr && !strings.Contains(msg, "enforced encryption"):
		// The enforced-encryption errors accompany a passphrase
		// rejection, which is logged clearly on its own.
		lvl = slog.LevelWarn
	}
	r.each(func(s *Server) bool {
		s.log.Log(context.Background(), lvl, "libsrt: "+msg, "area", area, "src", file+":"+strconv.Itoa(line))
		return false
	})
}
