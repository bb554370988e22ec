package main

// The end-to-end harness: the real onair binary, the real ffmpeg publishing
// over SRT, plain HTTP reads of the LL-HLS output, ffprobe on the bytes.

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

var onairBin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "onair-e2e")
	if err != nil {
		panic(err)
	}
	onairBin = filepath.Join(dir, "onair")
	args := []string{"build", "-o", onairBin}
	if os.Getenv("ONAIR_E2E_RACE") != "" {
		args = append(args, "-race") // the server under the race detector; races print and exit 66
	}
	if out, err := exec.Command("go", append(args, ".")...).CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "building onair: %v\n%s", err, out)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

func requireTools(t testing.TB) {
	t.Helper()
	for _, tool := range []string{"ffmpeg", "ffprobe"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("%s is required; `task deps` installs it", tool)
		}
	}
}

func freeTCP(t testing.TB) int {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

func freeUDP(t testing.TB) int {
	c, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	return c.LocalAddr().(*net.UDPAddr).Port
}

// server is a running onair process.
type server struct {
	t        testing.TB
	cmd      *exec.Cmd
	dataDir  string
	httpPort int
	srtPort  int
	log      *syncBuffer
	exited   chan struct{}
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func startServer(t testing.TB, dataDir string, extra ...string) *server {
	t.Helper()
	s := &server{t: t, dataDir: dataDir, httpPort: freeTCP(t), srtPort: freeUDP(t), log: &syncBuffer{}, exited: make(chan struct{})}
	args := append([]string{"serve", "-data", dataDir,
		"-http", fmt.Sprintf("127.0.0.1:%d", s.httpPort), "-srt", fmt.Sprintf("127.0.0.1:%d", s.srtPort),
		"-webrtc-udp", "127.0.0.1:0", "-webrtc-tcp", "off",
		"-grace", "10s", "-log-level", "debug"}, extra...)
	s.cmd = exec.Command(onairBin, args...)
	s.cmd.Stdout, s.cmd.Stderr = s.log, s.log
	if err := s.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { s.cmd.Wait(); close(s.exited) }()
	t.Cleanup(func() {
		s.kill(syscall.SIGKILL)
		if strings.Contains(s.log.String(), "WARNING: DATA RACE") {
			t.Error("the server hit a data race (ONAIR_E2E_RACE build)")
		}
		if t.Failed() {
			t.Logf("onair log:\n%s", s.log.String())
		}
	})
	deadline := time.Now().Add(15 * time.Second)
	for time.Now().Before(deadline) {
		if resp, err := http.Get(s.url("/healthz")); err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return s
			}
		}
		select {
		case <-s.exited:
			t.Fatalf("onair exited at start:\n%s", s.log.String())
		case <-time.After(50 * time.Millisecond):
		}
	}
	t.Fatalf("onair did not become healthy:\n%s", s.log.String())
	return nil
}

func (s *server) url(path string) string {
	return fmt.Sprintf("http://127.0.0.1:%d%s", s.httpPort, path)
}

func (s *server) kill(sig syscall.Signal) {
	select {
	case <-s.exited:
		return
	default:
	}
	_ = s.cmd.Process.Signal(sig)
	select {
	case <-s.exited:
	case <-time.After(20 * time.Second):
		_ = s.cmd.Process.Kill()
		<-s.exited
	}
}

// publisher is a real ffmpeg publishing a test pattern over SRT.
type publisher struct {
	cmd    *exec.Cmd
	out    *syncBuffer
	exited chan struct{}
}

type pubOpts struct {
	codec      string // "h264" (default) or "h265"
	audio      string // "aac" (default) or "opus"
	bframes    bool   // H.264 with B-frames (x264 without zerolatency)
	streamID   string
	passphrase string
	seconds    int
}

func publish(t testing.TB, s *server, o pubOpts) *publisher {
	t.Helper()
	if o.seconds == 0 {
		o.seconds = 60
	}
	vcodec := []string{"-c:v", "libx264", "-preset", "veryfast", "-tune", "zerolatency", "-g", "30", "-pix_fmt", "yuv420p"}
	if o.bframes {
		vcodec = []string{"-c:v", "libx264", "-preset", "veryfast", "-bf", "2", "-g", "30", "-pix_fmt", "yuv420p"}
	}
	if o.codec == "h265" {
		vcodec = []string{"-c:v", "libx265", "-preset", "ultrafast", "-tune", "zerolatency", "-x265-params", "keyint=30:min-keyint=30:log-level=error", "-pix_fmt", "yuv420p"}
	}
	u := fmt.Sprintf("srt://127.0.0.1:%d?streamid=%s&latency=120000", s.srtPort, o.streamID)
	if o.passphrase != "" {
		u += "&passphrase=" + o.passphrase
	}
	args := []string{"-hide_banner", "-loglevel", "error", "-re",
		"-f", "lavfi", "-i", "testsrc2=size=640x360:rate=30", "-f", "lavfi", "-i", "sine=f=440:sample_rate=48000",
		"-t", strconv.Itoa(o.seconds)}
	args = append(args, vcodec...)
	acodec := []string{"-c:a", "aac", "-b:a", "64k"}
	if o.audio == "opus" {
		acodec = []string{"-c:a", "libopus", "-b:a", "64k"}
	}
	args = append(args, acodec...)
	args = append(args, "-f", "mpegts", u)
	p := &publisher{cmd: exec.Command("ffmpeg", args...), out: &syncBuffer{}, exited: make(chan struct{})}
	p.cmd.Stdout, p.cmd.Stderr = p.out, p.out
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { p.cmd.Wait(); close(p.exited) }()
	t.Cleanup(func() { p.kill() })
	return p
}

func (p *publisher) kill() {
	select {
	case <-p.exited:
	default:
		_ = p.cmd.Process.Kill()
		<-p.exited
	}
}

// wait returns the exit error once ffmpeg ends (or fails the test after d).
func (p *publisher) wait(t testing.TB, d time.Duration) error {
	select {
	case <-p.exited:
		if !p.cmd.ProcessState.Success() {
			return fmt.Errorf("ffmpeg: %s: %s", p.cmd.ProcessState, p.out.String())
		}
		return nil
	case <-time.After(d):
		t.Fatalf("ffmpeg still running after %v", d)
		return nil
	}
}

func get(t testing.TB, url string) (int, http.Header, []byte) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	return resp.StatusCode, resp.Header, body
}

func mustGet(t testing.TB, url string) []byte {
	t.Helper()
	code, _, body := get(t, url)
	if code != 200 {
		t.Fatalf("GET %s: %d %s", url, code, body)
	}
	return body
}

// waitPlaylist polls (test set-up only) until the playlist has n complete segments.
func waitPlaylist(t testing.TB, url string, n int, d time.Duration) string {
	t.Helper()
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		resp, err := http.Get(url)
		if err == nil {
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode == 200 && strings.Count(string(body), "#EXTINF") >= n {
				return string(body)
			}
		}
		time.Sleep(200 * time.Millisecond)
	}
	t.Fatalf("%s never listed %d segments", url, n)
	return ""
}

// playlist is the parts of a media playlist the tests look at.
type playlist struct {
	mediaSeq            uint64
	lastMSN             uint64 // msn of the last segment or open segment
	lastPart            int    // index of the last part of lastMSN, -1 if none
	segURIs, partURIs   []string
	mapURI, preloadHint string
	text                string
}

var (
	reMediaSeq = regexp.MustCompile(`#EXT-X-MEDIA-SEQUENCE:(\d+)`)
	reURI      = regexp.MustCompile(`URI="([^"]+)"`)
)

func parsePlaylist(t testing.TB, text string) playlist {
	t.Helper()
	p := playlist{text: text, lastPart: -1}
	m := reMediaSeq.FindStringSubmatch(text)
	if m == nil {
		t.Fatalf("no EXT-X-MEDIA-SEQUENCE in\n%s", text)
	}
	p.mediaSeq, _ = strconv.ParseUint(m[1], 10, 64)
	msn := p.mediaSeq
	sc := bufio.NewScanner(strings.NewReader(text))
	afterInf := false
	parts := 0
	for sc.Scan() {
		line := sc.Text()
		switch {
		case strings.HasPrefix(line, "#EXT-X-MAP:"):
			p.mapURI = reURI.FindStringSubmatch(line)[1]
		case strings.HasPrefix(line, "#EXT-X-PART:"):
			p.partURIs = append(p.partURIs, reURI.FindStringSubmatch(line)[1])
			parts++
		case strings.HasPrefix(line, "#EXT-X-PRELOAD-HINT:"):
			p.preloadHint = reURI.FindStringSubmatch(line)[1]
		case strings.HasPrefix(line, "#EXTINF:"):
			afterInf = true
		case afterInf && !strings.HasPrefix(line, "#"):
			p.segURIs = append(p.segURIs, line)
			afterInf = false
			msn++
			parts = 0
		}
	}
	// lastMSN.lastPart is the newest part; lastPart -1 means segment
	// lastMSN has no part yet (everything before it is complete).
	p.lastMSN, p.lastPart = msn, parts-1
	return p
}

// probe runs ffprobe on bytes and returns the stream description.
type probeStream struct {
	CodecName    string `json:"codec_name"`
	Width        int    `json:"width"`
	Height       int    `json:"height"`
	SampleRate   string `json:"sample_rate"`
	NbReadFrames string `json:"nb_read_frames"`
}

func probe(t testing.TB, data []byte) probeStream {
	t.Helper()
	f := filepath.Join(t.TempDir(), "probe.mp4")
	if err := os.WriteFile(f, data, 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command("ffprobe", "-v", "error", "-count_frames", "-show_streams", "-of", "json", f).CombinedOutput()
	if err != nil {
		t.Fatalf("ffprobe: %v\n%s", err, out)
	}
	var r struct{ Streams []probeStream }
	if err := json.Unmarshal(out, &r); err != nil || len(r.Streams) != 1 {
		t.Fatalf("ffprobe output: %s", out)
	}
	// A clean decode too: ffmpeg prints nothing on stderr at -v error.
	if msg, err := exec.Command("ffmpeg", "-v", "error", "-i", f, "-f", "null", "-").CombinedOutput(); err != nil || len(bytes.TrimSpace(msg)) > 0 {
		t.Fatalf("ffmpeg decode errors: %v\n%s", err, msg)
	}
	return r.Streams[0]
}

func resolve(base, ref string) string {
	return base[:strings.LastIndex(base, "/")+1] + ref
}

var _ = context.Background
