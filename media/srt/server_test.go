package srt

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"runtime/pprof"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

func TestFFmpegPublish(t *testing.T) {
	needTool(t, "ffmpeg")
	h := newTestHandler()
	s, logs := startServer(t, Config{}, h)
	cmd, out := ffmpegPublish(t, srtURL(s, "streamid=publish:live/demo"), 2)
	if err := cmd.Wait(); err != nil {
		t.Fatalf("ffmpeg: %v\n%s", err, out)
	}
	r := receive(t, h, 10*time.Second)
	if r.id != (StreamID{Mode: ModePublish, Name: "live/demo"}) {
		t.Errorf("id = %+v", r.id)
	}
	if r.bytes < 20_000 || r.badSync != 0 {
		t.Errorf("got %d messages, %d bytes, %d not whole TS packets; want > 20 kB of TS", r.msgs, r.bytes, r.badSync)
	}
	if !errors.Is(r.err, ErrPeerGone) {
		t.Errorf("Read error after ffmpeg exit = %v, want ErrPeerGone", r.err)
	}
	s.mu.Lock()
	pending := len(s.pending)
	s.mu.Unlock()
	if pending != 0 {
		t.Errorf("%d admitted callers still pending after accept", pending)
	}
	waitFor(t, "disconnect log line", 5*time.Second, func() bool {
		return strings.Contains(logs.String(), "srt: disconnected")
	})
	if !strings.Contains(logs.String(), fmt.Sprintf("bytes_received=%d ", r.bytes)) {
		t.Errorf("disconnect line does not report the %d bytes received:\n%s", r.bytes, logs)
	}
}

func TestSrtLiveTransmitAccessControlStreamID(t *testing.T) {
	needTool(t, "srt-live-transmit")
	fixture := fixturePath(t)
	want, err := os.ReadFile(fixture)
	if err != nil {
		t.Fatal(err)
	}
	h := newTestHandler()
	var admitted []StreamID
	var mu sync.Mutex
	h.admit = func(id StreamID, _ net.Addr) error {
		mu.Lock()
		admitted = append(admitted, id)
		mu.Unlock()
		return nil
	}
	s, _ := startServer(t, Config{}, h)
	for _, sid := range []string{"#!::r=live/demo,m=publish", "#!::u=alice,r=live/demo,m=publish"} {
		var out bytes.Buffer
		cmd := exec.Command("srt-live-transmit", "-a", "no", "-chunk", "1316", "-t", "20",
			"file://con", srtURL(s, "streamid="+sid))
		cmd.Stdout, cmd.Stderr = &out, &out
		stdin, err := cmd.StdinPipe() // it polls stdin, so a pipe, not a file
		if err != nil {
			t.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		// It drops what it reads before it is connected.
		select {
		case <-h.accepted:
		case <-time.After(10 * time.Second):
			t.Fatal("srt-live-transmit did not connect")
		}
		time.Sleep(100 * time.Millisecond)
		go func() {
			stdin.Write(want)
			stdin.Close()
		}()
		if err := cmd.Wait(); err != nil {
			t.Fatalf("srt-live-transmit %q: %v\n%s", sid, err, &out)
		}
		t.Logf("srt-live-transmit: %s", &out)
		r := receive(t, h, 10*time.Second)
		wantID := StreamID{Mode: ModePublish, Name: "live/demo"}
		if strings.Contains(sid, "u=alice") {
			wantID.User = "alice"
		}
		if r.id != wantID {
			t.Errorf("%q: id = %+v, want %+v", sid, r.id, wantID)
		}
		// It keeps a last partial chunk, and stays connected after EOF
		// until the server finds it idle.
		if r.bytes < len(want)-MaxPayloadSize || r.badSync != 0 {
			t.Errorf("%q: got %d bytes (%d messages not whole TS packets), want the %d bytes of the file",
				sid, r.bytes, r.badSync, len(want))
		}
		if !errors.Is(r.err, ErrPeerIdle) {
			t.Errorf("%q: Read error %v, want ErrPeerIdle", sid, r.err)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	if len(admitted) != 2 || admitted[1].User != "alice" {
		t.Errorf("Admit saw %+v", admitted)
	}
}

func TestBadStreamIDRejectedWith1400(t *testing.T) {
	h := newTestHandler()
	admits := 0
	h.admit = func(StreamID, net.Addr) error { admits++; return nil }
	s, logs := startServer(t, Config{}, h)

	_, code, err := dial(t, s, "x", "")
	if err == nil {
		t.Fatal("connect with streamid \"x\" succeeded")
	}
	if code != RejectBadRequest {
		t.Errorf("client got reject reason %v, want %v", code, RejectBadRequest)
	}
	line := lineWith(logs.String(), "srt: rejected caller")
	for _, want := range []string{"code=1400", `streamid \"x\": want publish:live/<name> or #!::r=live/<name>,m=publish`} {
		if !strings.Contains(line, want) {
			t.Errorf("rejection log line %q lacks %q", line, want)
		}
	}

	if _, err := exec.LookPath("ffmpeg"); err == nil {
		cmd, out := ffmpegPublish(t, srtURL(s, "streamid=nonsense"), 2)
		err := cmd.Wait()
		if err == nil {
			t.Errorf("ffmpeg with a bad streamid succeeded:\n%s", out)
		}
		if !strings.Contains(out.String(), "failed") {
			t.Errorf("ffmpeg output does not report the failed connection:\n%s", out)
		}
		t.Logf("ffmpeg says: %s", lineWith(out.String(), "REJECT"))
	}

	// The server still serves good callers.
	sock, _, err := dial(t, s, "publish:live/demo", "")
	if err != nil {
		t.Fatalf("good caller after bad ones: %v", err)
	}
	publishFile(t, sock, fixturePath(t))
	firstData(t, h, 5*time.Second)
	if admits != 1 {
		t.Errorf("Admit ran %d times, want once (bad streamids never reach it)", admits)
	}
}

func TestPassphrase(t *testing.T) {
	const pass = "correct-horse-battery"
	h := newTestHandler()
	s, logs := startServer(t, Config{Passphrase: pass}, h)

	_, code, err := dial(t, s, "publish:live/demo", "wrong-passphrase")
	if err == nil || code != RejectBadSecret {
		t.Errorf("wrong passphrase: err=%v code=%v, want %v", err, code, RejectBadSecret)
	}
	waitFor(t, "wrong passphrase log line", 5*time.Second, func() bool {
		return strings.Contains(logs.String(), "wrong passphrase")
	})
	if line := lineWith(logs.String(), "wrong passphrase"); !strings.Contains(line, "streamid=publish:live/demo") ||
		!strings.Contains(line, "remote=127.0.0.1:") || !strings.Contains(line, "code=10") {
		t.Errorf("wrong passphrase line %q lacks streamid, remote or code", line)
	}

	_, code, err = dial(t, s, "publish:live/demo", "")
	if err == nil || code != RejectUnsecure {
		t.Errorf("no passphrase: err=%v code=%v, want %v", err, code, RejectUnsecure)
	}
	waitFor(t, "missing passphrase log line", 5*time.Second, func() bool {
		return strings.Contains(logs.String(), "no passphrase: this server requires one")
	})

	if _, err := exec.LookPath("ffmpeg"); err == nil {
		cmd, out := ffmpegPublish(t, srtURL(s, "streamid=publish:live/ff"), 1)
		if err := cmd.Wait(); err == nil {
			t.Errorf("ffmpeg without passphrase succeeded:\n%s", out)
		}
		waitFor(t, "ffmpeg rejection log line", 5*time.Second, func() bool {
			return strings.Contains(lineWith(logs.String(), "streamid=publish:live/ff"), "no passphrase")
		})

		// AES-256 and a larger latency (ffmpeg takes microseconds): the
		// listener adopts the caller's key length and the larger latency.
		cmd, out = ffmpegPublish(t, srtURL(s, "streamid=publish:live/ff&pbkeylen=32&latency=250000&passphrase="+pass), 1)
		if err := cmd.Wait(); err != nil {
			t.Fatalf("ffmpeg with the passphrase: %v\n%s", err, out)
		}
		r := receive(t, h, 10*time.Second)
		if r.id.Name != "live/ff" || r.bytes < 10_000 || r.badSync != 0 {
			t.Errorf("encrypted publish: %+v", r)
		}
	}

	sock, _, err := dial(t, s, "publish:live/demo", pass)
	if err != nil {
		t.Fatalf("right passphrase: %v", err)
	}
	publishFile(t, sock, fixturePath(t))
	firstData(t, h, 5*time.Second)
}

func TestUnexpectedPassphraseLogged(t *testing.T) {
	s, logs := startServer(t, Config{}, newTestHandler())
	_, code, err := dial(t, s, "publish:live/demo", "caller-has-one")
	if err == nil || code != RejectUnsecure {
		t.Errorf("err=%v code=%v, want %v", err, code, RejectUnsecure)
	}
	waitFor(t, "unexpected passphrase log line", 5*time.Second, func() bool {
		return strings.Contains(logs.String(), "unexpected passphrase: the caller encrypts but this server has no passphrase")
	})
}

// oneLivePublisher is the admission pattern the stream actor will use:
// Admit refuses early, ServePublish claims the name.
type oneLivePublisher struct {
	*testHandler
	mu   sync.Mutex
	live map[string]bool
}

func (h *oneLivePublisher) Admit(id StreamID, _ net.Addr) error {
	switch {
	case id.Name == "live/panic":
		panic("handler bug")
	case id.Name == "live/forbidden":
		return errors.New("not on the list")
	case id.Mode != ModePublish:
		return nil
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.live[id.Name] {
		return fmt.Errorf("admit %s: %w", id, Rejectf(RejectConflict, "%s already has a publisher", id.Name))
	}
	return nil
}

func (h *oneLivePublisher) ServePublish(id StreamID, c *Conn) {
	h.mu.Lock()
	if h.live[id.Name] {
		h.mu.Unlock()
		return // lost a race with another publisher
	}
	h.live[id.Name] = true
	h.mu.Unlock()
	defer func() {
		h.mu.Lock()
		delete(h.live, id.Name)
		h.mu.Unlock()
	}()
	h.testHandler.ServePublish(id, c)
}

func TestAdmitRejectCodes(t *testing.T) {
	h := &oneLivePublisher{testHandler: newTestHandler(), live: map[string]bool{}}
	s, logs := startServer(t, Config{}, h)

	first, _, err := dial(t, s, "publish:live/demo", "")
	if err != nil {
		t.Fatal(err)
	}
	publishFile(t, first, fixturePath(t))
	firstData(t, h.testHandler, 5*time.Second)

	for _, c := range []struct {
		streamID string
		want     RejectCode
	}{
		{"publish:live/demo", RejectConflict},
		{"#!::r=live/demo,m=publish", RejectConflict},
		{"publish:live/forbidden", RejectForbidden},
		{"publish:live/panic", RejectInternal},
		{"#!::r=live/demo,m=bidirectional", RejectBadMode},
	} {
		_, code, err := dial(t, s, c.streamID, "")
		if err == nil || code != c.want {
			t.Errorf("%s: err=%v code=%v, want %v", c.streamID, err, code, c.want)
		}
	}
	if !strings.Contains(logs.String(), "live/demo already has a publisher") {
		t.Errorf("conflict not logged:\n%s", logs)
	}
	if !strings.Contains(logs.String(), "Admit panicked") {
		t.Errorf("panic not logged")
	}

	// Reading is allowed while the publisher is live.
	if _, _, err := dial(t, s, "read:live/demo", ""); err != nil {
		t.Errorf("reader: %v", err)
	}
	first.Close()
	receive(t, h.testHandler, 10*time.Second)
	second, _, err := dial(t, s, "publish:live/demo", "")
	if err != nil {
		t.Fatalf("publisher after the first left: %v", err)
	}
	publishFile(t, second, fixturePath(t))
	firstData(t, h.testHandler, 5*time.Second)
}

func TestPublisherKilledIsDetected(t *testing.T) {
	needTool(t, "ffmpeg")
	h := newTestHandler()
	s, _ := startServer(t, Config{}, h)
	cmd, _ := ffmpegPublish(t, srtURL(s, "streamid=publish:live/demo"), 60)
	firstData(t, h, 10*time.Second)
	time.Sleep(300 * time.Millisecond)
	killed := time.Now()
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	cmd.Wait()
	r := receive(t, h, 10*time.Second)
	if !errors.Is(r.err, ErrPeerIdle) && !errors.Is(r.err, ErrPeerGone) {
		t.Errorf("Read error = %v, want ErrPeerIdle or ErrPeerGone", r.err)
	}
	t.Logf("Read failed %v after SIGKILL (%v after the last message): %v",
		r.readEnd.Sub(killed).Round(time.Millisecond), r.readEnd.Sub(r.lastData).Round(time.Millisecond), r.err)

	sock, _, err := dial(t, s, "publish:live/demo", "")
	if err != nil {
		t.Fatalf("publisher after the killed one: %v", err)
	}
	publishFile(t, sock, fixturePath(t))
	firstData(t, h, 5*time.Second)
}

func TestServeReadToFFprobe(t *testing.T) {
	needTool(t, "ffprobe")
	ts, err := os.ReadFile(fixturePath(t))
	if err != nil {
		t.Fatal(err)
	}
	h := newTestHandler()
	served := make(chan error, 1)
	h.serveRead = func(id StreamID, c *Conn) {
		served <- writeTS(c, ts)
	}
	s, _ := startServer(t, Config{}, h)
	out, err := exec.Command("ffprobe", "-v", "error", "-rw_timeout", "10000000",
		"-show_entries", "stream=codec_name", "-of", "csv=p=0",
		srtURL(s, "streamid=read:live/demo")).CombinedOutput()
	if err != nil {
		t.Fatalf("ffprobe: %v\n%s", err, out)
	}
	if got := strings.Fields(strings.ReplaceAll(string(out), ",", " ")); !slices.Contains(got, "mpeg2video") || !slices.Contains(got, "mp2") {
		t.Errorf("ffprobe found streams %q, want mpeg2video and mp2", out)
	}
	if err := <-served; err != nil {
		t.Errorf("ServeRead: %v", err)
	}
}

// writeTS sends ts as live SRT messages of 7 TS packets, then closes.
func writeTS(c *Conn, ts []byte) error {
	defer c.Close()
	if _, err := c.Write(make([]byte, MaxPayloadSize+1)); !errors.Is(err, ErrMessageTooLarge) {
		return fmt.Errorf("oversized Write: %v, want ErrMessageTooLarge", err)
	}
	for off := 0; off < len(ts); off += MaxPayloadSize {
		if _, err := c.Write(ts[off:min(off+MaxPayloadSize, len(ts))]); err != nil {
			return err
		}
		if (off/MaxPayloadSize)%32 == 31 {
			time.Sleep(2 * time.Millisecond)
		}
	}
	time.Sleep(300 * time.Millisecond) // let the last packets through the latency window
	return nil
}

func TestServeReadToSrtgoCaller(t *testing.T) {
	ts, err := os.ReadFile(fixturePath(t))
	if err != nil {
		t.Fatal(err)
	}
	h := newTestHandler()
	readerGone := make(chan error, 1)
	h.serveRead = func(id StreamID, c *Conn) {
		if _, err := c.Read(make([]byte, 100)); !errors.Is(err, ErrShortBuffer) {
			t.Errorf("short Read: %v, want ErrShortBuffer", err)
		}
		for off := 0; off < len(ts); off += MaxPayloadSize {
			if _, err := c.Write(ts[off:min(off+MaxPayloadSize, len(ts))]); err != nil {
				t.Errorf("Write: %v", err)
				return
			}
		}
		// Keep the conn open until the caller leaves, writing nothing.
		select {
		case <-c.Done():
			readerGone <- c.Err()
		case <-time.After(15 * time.Second):
			readerGone <- errors.New("reader leaving not noticed in 15 s")
		}
	}
	s, _ := startServer(t, Config{}, h)
	sock, _, err := dial(t, s, "read:live/demo", "")
	if err != nil {
		t.Fatal(err)
	}
	var got []byte
	b := make([]byte, MaxMessageSize)
	for len(got) < len(ts) {
		n, err := sock.Read(b)
		if err != nil {
			t.Fatalf("after %d bytes: %v", len(got), err)
		}
		got = append(got, b[:n]...)
	}
	if !bytes.Equal(got, ts) {
		t.Fatalf("reader got %d bytes that differ from the %d sent", len(got), len(ts))
	}
	left := time.Now()
	sock.Close()
	if err := <-readerGone; !errors.Is(err, ErrPeerGone) {
		t.Errorf("conn.Err() after the reader left = %v, want ErrPeerGone", err)
	}
	t.Logf("reader leaving noticed after %v", time.Since(left).Round(time.Millisecond))
}

func TestGarbageDatagramsDoNotWedgeServer(t *testing.T) {
	h := newTestHandler()
	s, _ := startServer(t, Config{}, h)
	sent := sendGarbage(t, s.Addr().(*net.UDPAddr), 1)
	t.Logf("sent %d garbage datagrams", sent)
	sock, _, err := dial(t, s, "publish:live/demo", "")
	if err != nil {
		t.Fatalf("publisher after garbage: %v", err)
	}
	publishFile(t, sock, fixturePath(t))
	firstData(t, h, 5*time.Second)
}

func TestCloseLeavesNoGoroutines(t *testing.T) {
	// Warm up libsrt and srtgo's one-time state (its poller goroutine).
	{
		s, _ := startServer(t, Config{}, newTestHandler())
		if _, _, err := dial(t, s, "read:live/warm", ""); err != nil {
			t.Fatal(err)
		}
	}
	time.Sleep(200 * time.Millisecond)
	before := runtimeGoroutines()

	h := newTestHandler()
	s, err := NewServer(Config{Addr: "127.0.0.1:0", Logger: discardLogger()}, h)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- s.Serve(ctx) }()
	waitFor(t, "listening", 5*time.Second, func() bool { return s.Addr() != nil })
	pub, _, err := dial(t, s, "publish:live/demo", "")
	if err != nil {
		t.Fatal(err)
	}
	publishFile(t, pub, fixturePath(t))
	firstData(t, h, 5*time.Second)
	if _, _, err := dial(t, s, "read:live/demo", ""); err != nil {
		t.Fatal(err)
	}
	during := runtimeGoroutines()

	cancel()
	select {
	case err := <-served:
		if err != nil {
			t.Errorf("Serve: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Serve did not return after cancel")
	}
	r := receive(t, h, 5*time.Second)
	if !errors.Is(r.err, ErrClosed) {
		t.Errorf("publisher Read after shutdown: %v, want ErrClosed", r.err)
	}
	if err := s.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	if err := s.Serve(context.Background()); !errors.Is(err, ErrServerClosed) {
		t.Errorf("Serve after Close: %v, want ErrServerClosed", err)
	}
	// Tolerance 1: srtgo starts a goroutine per libsrt log line.
	after := runtimeGoroutines()
	for deadline := time.Now().Add(5 * time.Second); after > before+1; after = runtimeGoroutines() {
		if time.Now().After(deadline) {
			pprof.Lookup("goroutine").WriteTo(os.Stderr, 1)
			t.Fatalf("%d goroutines before, %d 5 s after shutdown", before, after)
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Logf("goroutines: %d before, %d serving, %d after shutdown", before, during, after)
}

func TestListenErrors(t *testing.T) {
	busy, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	addr := busy.LocalAddr().String()
	s, err := NewServer(Config{Addr: addr, Logger: discardLogger()}, newTestHandler())
	if err != nil {
		t.Fatal(err)
	}
	err = s.Listen()
	if err == nil {
		s.Close()
		t.Fatalf("Listen on busy %s succeeded", addr)
	}
	if !strings.Contains(err.Error(), addr) || !strings.Contains(err.Error(), "another program") {
		t.Errorf("bind error does not name the address and the likely cause: %v", err)
	}
	t.Logf("bind error: %v", err)
	if err := s.Close(); err != nil {
		t.Error(err)
	}

	for _, cfg := range []Config{
		{Addr: "nonsense"},
		{Addr: "127.0.0.1:99999"},
		{Passphrase: "short"},
		{Passphrase: strings.Repeat("p", 80)},
		{Latency: -time.Second},
		{PeerIdleTimeout: time.Millisecond},
	} {
		if _, err := NewServer(cfg, newTestHandler()); !errors.Is(err, ErrConfig) {
			t.Errorf("NewServer(%+v) = %v, want ErrConfig", cfg, err)
		}
	}
	for _, pass := range []string{strings.Repeat("p", 10), strings.Repeat("p", 79)} {
		s, err := NewServer(Config{Addr: "127.0.0.1:0", Passphrase: pass, Logger: discardLogger()}, newTestHandler())
		if err != nil {
			t.Fatal(err)
		}
		if err := s.Listen(); err != nil {
			t.Errorf("passphrase of %d characters: %v", len(pass), err)
		}
		s.Close()
	}
	if _, err := NewServer(Config{}, nil); !errors.Is(err, ErrConfig) {
		t.Errorf("nil handler: %v", err)
	}
}

func TestCloseBeforeServe(t *testing.T) {
	s, err := NewServer(Config{Addr: "127.0.0.1:0", Logger: discardLogger()}, newTestHandler())
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Listen(); err != nil {
		t.Fatal(err)
	}
	s.Close()
	s.Close()
	if err := s.Listen(); !errors.Is(err, ErrServerClosed) {
		t.Errorf("Listen after Close: %v", err)
	}
}

func lineWith(text, sub string) string {
	for _, l := range strings.Split(text, "\n") {
		if strings.Contains(l, sub) {
			return l
		}
	}
	return ""
}
