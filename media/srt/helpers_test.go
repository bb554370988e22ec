package srt

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime/pprof"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/haivision/srtgo"
)

// fixtureTS is 2 s of MPEG-TS (160x90 MPEG-2 video, MP2 audio), made with
//
//	ffmpeg -f lavfi -i testsrc=size=160x90:rate=25 -f lavfi -i sine=frequency=440:sample_rate=48000 \
//	  -t 2 -c:v mpeg2video -b:v 300k -g 25 -c:a mp2 -b:a 64k -f mpegts testdata/testsrc.ts
const fixtureTS = "testdata/testsrc.ts"

// logBuf collects a server's log output for assertions.
type logBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuf) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuf) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t *testing.T, what string, d time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", d, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// publishResult is what one ServePublish call saw.
type publishResult struct {
	id       StreamID
	msgs     int
	bytes    int
	badSync  int // messages not made of whole TS packets starting with 0x47
	err      error
	readEnd  time.Time // when Read failed
	lastData time.Time
}

// testHandler records what the server hands it.
type testHandler struct {
	admit func(StreamID, net.Addr) error
	// accepted gets one value per publisher when ServePublish starts.
	accepted chan StreamID
	// firstData gets one value per publisher when its first message arrives.
	firstData chan StreamID
	published chan publishResult
	// serveRead, when set, runs as ServeRead.
	serveRead func(StreamID, *Conn)
}

func newTestHandler() *testHandler {
	return &testHandler{
		accepted:  make(chan StreamID, 16),
		firstData: make(chan StreamID, 16),
		published: make(chan publishResult, 16),
	}
}

func (h *testHandler) Admit(id StreamID, remote net.Addr) error {
	if h.admit != nil {
		return h.admit(id, remote)
	}
	return nil
}

func (h *testHandler) ServePublish(id StreamID, c *Conn) {
	r := publishResult{id: id}
	select {
	case h.accepted <- id:
	default:
	}
	b := make([]byte, MaxMessageSize)
	for {
		n, err := c.Read(b)
		if err != nil {
			r.err, r.readEnd = err, time.Now()
			break
		}
		if r.msgs == 0 {
			h.firstData <- id
		}
		r.msgs++
		r.bytes += n
		r.lastData = time.Now()
		if n%188 != 0 {
			r.badSync++
			continue
		}
		for i := 0; i < n; i += 188 {
			if b[i] != 0x47 {
				r.badSync++
				break
			}
		}
	}
	h.published <- r
}

func (h *testHandler) ServeRead(id StreamID, c *Conn) {
	if h.serveRead != nil {
		h.serveRead(id, c)
		return
	}
	<-c.Done()
}

// startServer runs a server on a random loopback port until the test ends.
func startServer(t testing.TB, cfg Config, h Handler) (*Server, *logBuf) {
	t.Helper()
	logs := &logBuf{}
	if cfg.Addr == "" {
		cfg.Addr = "127.0.0.1:0"
	}
	cfg.Logger = slog.New(slog.NewTextHandler(io.MultiWriter(logs, testWriter{t}), &slog.HandlerOptions{Level: slog.LevelDebug}))
	s, err := NewServer(cfg, h)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Listen(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- s.Serve(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-served:
			if err != nil {
				t.Errorf("Serve: %v", err)
			}
		case <-time.After(10 * time.Second):
			t.Errorf("Serve did not return 10 s after its context was cancelled")
		}
	})
	return s, logs
}

// testWriter sends log lines to t.Log while the test runs.
type testWriter struct{ t testing.TB }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

func port(s *Server) int { return s.Addr().(*net.UDPAddr).Port }

func srtURL(s *Server, query string) string {
	return fmt.Sprintf("srt://127.0.0.1:%d?%s", port(s), query)
}

// dial connects an srtgo caller. On rejection it returns the reject code
// libsrt reported, with a non-nil error.
func dial(t testing.TB, s *Server, streamID, passphrase string) (*srtgo.SrtSocket, RejectCode, error) {
	t.Helper()
	opts := map[string]string{
		"mode":      "caller",
		"blocking":  "0",
		"transtype": "live",
		"streamid":  streamID,
		"conntimeo": "3000",
	}
	if passphrase != "" {
		opts["passphrase"] = passphrase
	}
	sock := srtgo.NewSrtSocket("127.0.0.1", uint16(port(s)), opts)
	if sock == nil {
		t.Fatal("srtgo.NewSrtSocket failed")
	}
	if err := sock.Connect(); err != nil {
		code := rejectReason(sockID(sock.GetSocket()))
		sock.Close()
		return nil, code, err
	}
	t.Cleanup(sock.Close)
	return sock, 0, nil
}

// publishFile sends a TS file over an srtgo caller, 7 TS packets per message.
func publishFile(t *testing.T, sock *srtgo.SrtSocket, path string) int {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	sent := 0
	for off := 0; off < len(data); off += MaxPayloadSize {
		end := min(off+MaxPayloadSize, len(data))
		n, err := sock.Write(data[off:end])
		if err != nil {
			t.Fatalf("write after %d bytes: %v", sent, err)
		}
		sent += n
		// Pace a little: a live sender's buffer drops what is too late.
		if (off/MaxPayloadSize)%32 == 31 {
			time.Sleep(2 * time.Millisecond)
		}
	}
	return sent
}

// ffmpegPublish starts ffmpeg sending a live test pattern to url for up
// to dur seconds, at real-time speed.
func ffmpegPublish(t *testing.T, url string, dur int) (*exec.Cmd, *logBuf) {
	t.Helper()
	out := &logBuf{}
	cmd := exec.Command("ffmpeg", "-hide_banner", "-nostdin", "-loglevel", "info",
		"-re", "-f", "lavfi", "-i", "testsrc=size=160x90:rate=25",
		"-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000",
		"-t", strconv.Itoa(dur),
		"-c:v", "mpeg2video", "-b:v", "300k", "-g", "25", "-c:a", "mp2", "-b:a", "64k",
		"-f", "mpegts", url)
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatalf("start ffmpeg: %v", err)
	}
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			cmd.Process.Kill()
			cmd.Wait()
		}
	})
	return cmd, out
}

func needTool(t *testing.T, name string) {
	t.Helper()
	if _, err := exec.LookPath(name); err != nil {
		t.Skipf("%s not installed", name)
	}
}

func fixturePath(t *testing.T) string {
	t.Helper()
	p, err := filepath.Abs(fixtureTS)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(p); err != nil {
		t.Fatalf("fixture missing: %v", err)
	}
	return p
}

func receive(t *testing.T, h *testHandler, d time.Duration) publishResult {
	t.Helper()
	select {
	case r := <-h.published:
		return r
	case <-time.After(d):
		pprof.Lookup("goroutine").WriteTo(os.Stderr, 1)
		t.Fatalf("ServePublish did not return within %v", d)
	}
	return publishResult{}
}

func firstData(t *testing.T, h *testHandler, d time.Duration) StreamID {
	t.Helper()
	select {
	case id := <-h.firstData:
		return id
	case <-time.After(d):
		t.Fatalf("no publisher data within %v", d)
	}
	return StreamID{}
}

var _ = errors.Is
