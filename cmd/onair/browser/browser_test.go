package browser

// These tests drive the real Chromium installed by `scripts/deps.sh chromium`;
// without it they fail (ErrNotInstalled says what to run), they never skip.

import (
	"bytes"
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// startBrowser starts Chromium for one test and closes it after, printing
// the console log if the test failed.
func startBrowser(t *testing.T, opts Options) *Browser {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	b, err := Start(ctx, opts)
	if err != nil {
		t.Fatalf("starting the browser: %v", err)
	}
	t.Logf("browser started in %v", b.StartupTime().Round(time.Millisecond))
	t.Cleanup(func() {
		if t.Failed() {
			dumpLogs(t, b)
		}
		if err := b.Close(); err != nil {
			t.Errorf("closing the browser: %v", err)
		}
	})
	return b
}

func dumpLogs(t *testing.T, b *Browser) {
	logs, err := b.Logs()
	if err != nil {
		t.Logf("console log: %v", err)
		return
	}
	for _, e := range logs {
		t.Logf("console: %v", e)
	}
}

// serve serves testdata/ (the pages and lib.js) on 127.0.0.1.
func serve(t *testing.T) string {
	t.Helper()
	mux := http.NewServeMux()
	mux.Handle("/lib.js", LibHandler())
	mux.Handle("/", http.FileServer(http.Dir("testdata")))
	srv := httptest.NewServer(mux) // 127.0.0.1, a free port
	t.Cleanup(srv.Close)
	return srv.URL
}

func open(t *testing.T, b *Browser, url string) *Page {
	t.Helper()
	p, err := b.Open(url)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func TestFakeCameraAndMicrophone(t *testing.T) {
	b := startBrowser(t, Options{})
	p := open(t, b, serve(t)+"/camera.html")

	type media struct {
		Video, Audio  string
		Width, Height int
		FrameRate     float64
	}
	m, err := As[media](p.Exec("return start()"))
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("getUserMedia: %+v", m)
	if m.Video == "" || m.Audio == "" {
		t.Fatalf("want a fake camera and microphone, got video %q audio %q", m.Video, m.Audio)
	}

	ms, err := As[int](p.Exec("return waitFrames(document.getElementById('v'), 30, 15000)"))
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("30 frames presented in %d ms", ms)
	n, err := As[int](p.Exec("return countFrames(document.getElementById('v'), 1000)"))
	if err != nil {
		t.Fatal(err)
	}
	if n <= 0 {
		t.Fatalf("countFrames over 1 s = %d after the video played; want frames", n)
	}
	t.Logf("countFrames over 1 s: %d", n)

	// The fake microphone beeps; its energy must show in an AnalyserNode.
	rms, err := As[float64](p.Exec("return audioEnergy(stream, 2000)"))
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("fake microphone: highest RMS over 2 s = %.3f", rms)
	if rms < 0.01 {
		t.Fatalf("fake microphone RMS = %v over 2 s; want the beep (> 0.01)", rms)
	}
}

func TestWebRTCLoopback(t *testing.T) {
	b := startBrowser(t, Options{})
	p := open(t, b, serve(t)+"/webrtc.html")

	type cands struct{ Offer, Answer []string }
	c, err := As[cands](p.Exec("return loopback()"))
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("ICE candidates: offer %q answer %q", c.Offer, c.Answer)
	checkReceived(t, p)
}

// TestTwoPages is the WHIP/WHEP shape: the sending page and the receiving
// page are separate windows, and the SDP goes through the test, as it will go
// through onair. The sender keeps sending while the test talks to the
// receiver.
func TestTwoPages(t *testing.T) {
	b := startBrowser(t, Options{})
	url := serve(t) + "/webrtc.html"
	pub := open(t, b, url)
	view := open(t, b, url)
	if pub.Handle() == view.Handle() {
		t.Fatal("two Opens gave the same window")
	}

	offer, err := As[string](pub.Exec("return offer()"))
	if err != nil {
		t.Fatal(err)
	}
	answer, err := As[string](view.Exec("return answer(arguments[0])", offer))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := pub.Exec("return accept(arguments[0])", answer); err != nil {
		t.Fatal(err)
	}
	checkReceived(t, view)

	// Closing the publisher's window ends its peer connection; the viewer
	// page is still there.
	if err := pub.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := view.Exec("return 1"); err != nil {
		t.Fatalf("viewer after closing the publisher: %v", err)
	}
}

// checkReceived asserts that the receiving page decodes video and hears
// audio, and that getStats agrees.
func checkReceived(t *testing.T, p *Page) {
	t.Helper()
	type recv struct {
		Ms               int
		RMS              float64
		FramesDecoded    int
		FramesReceived   int
		Codec            string
		Width, Height    int
		TotalVideoFrames int
	}
	r, err := As[recv](p.Exec("return received(30)"))
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("received: %+v", r)
	if r.FramesDecoded < 30 {
		t.Errorf("inbound-rtp framesDecoded = %d after 30 frames were presented; want >= 30", r.FramesDecoded)
	}
	if r.Width == 0 || r.Height == 0 {
		t.Errorf("received video is %dx%d", r.Width, r.Height)
	}
}

func TestExec(t *testing.T) {
	b := startBrowser(t, Options{})
	p := open(t, b, serve(t)+"/camera.html")

	if n, err := As[int](p.Exec("return arguments[0] + arguments[1]", 2, 3)); err != nil || n != 5 {
		t.Errorf("arguments: got %d, %v; want 5", n, err)
	}
	if s, err := As[string](p.Exec("return new Promise((r) => setTimeout(() => r('later'), 50))")); err != nil || s != "later" {
		t.Errorf("awaited promise: got %q, %v; want later", s, err)
	}
	if s, err := As[string](p.ExecAsync("const done = arguments[arguments.length-1]; setTimeout(() => done(arguments[0]), 50)", "async")); err != nil || s != "async" {
		t.Errorf("ExecAsync: got %q, %v; want async", s, err)
	}

	_, err := p.Exec("throw new Error('boom-from-page')")
	var we *Error
	if !errors.As(err, &we) || we.Code != "javascript error" || !strings.Contains(we.Message, "boom-from-page") {
		t.Errorf("thrown exception: got %v; want a javascript error with the message", err)
	}
	if !errors.Is(err, ErrWebDriver) {
		t.Errorf("errors.Is(%v, ErrWebDriver) = false", err)
	}
	_, err = p.Exec("return Promise.reject(new Error('rejected-in-page'))")
	if !errors.As(err, &we) || !strings.Contains(we.Message, "rejected-in-page") {
		t.Errorf("rejected promise: got %v", err)
	}
	if err := b.SetScriptTimeout(500 * time.Millisecond); err != nil {
		t.Fatal(err)
	}
	_, err = p.ExecAsync("/* never calls back */")
	if !errors.As(err, &we) || we.Code != "script timeout" {
		t.Errorf("ExecAsync without callback: got %v; want script timeout", err)
	}
	if err := b.SetScriptTimeout(30 * time.Second); err != nil {
		t.Fatal(err)
	}

	if _, err := p.Exec("console.log('hello-from-page'); console.error('trouble-in-page')"); err != nil {
		t.Fatal(err)
	}
	logs, err := b.Logs()
	if err != nil {
		t.Fatal(err)
	}
	var all strings.Builder
	for _, e := range logs {
		all.WriteString(e.String() + "\n")
	}
	for _, want := range []string{"hello-from-page", "trouble-in-page"} {
		if !strings.Contains(all.String(), want) {
			t.Errorf("console log has no %q:\n%s", want, all.String())
		}
	}

	png, err := p.Screenshot()
	if err != nil || !bytes.HasPrefix(png, []byte("\x89PNG")) {
		t.Errorf("screenshot: %d bytes, %v", len(png), err)
	}
}

func TestClose(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	b, err := Start(ctx, Options{})
	if err != nil {
		t.Fatalf("starting the browser: %v", err)
	}
	p := open(t, b, "about:blank")
	driver, chromium := b.PIDs()
	if chromium == 0 {
		b.Close()
		t.Fatal("Chromium's PID not found")
	}
	dir := b.dir
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	for _, pid := range []int{driver, chromium} {
		if alive(pid) {
			t.Errorf("process %d still running after Close", pid)
		}
	}
	if pids := groupMembers(driver); len(pids) > 0 {
		t.Errorf("processes %v of chromedriver's group %d still running after Close", pids, driver)
	}
	if _, err := os.Stat(dir); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("temp dir %s left behind: %v", dir, err)
	}
	if err := b.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	if _, err := p.Exec("return 1"); !errors.Is(err, ErrClosed) {
		t.Errorf("Exec after Close: %v; want ErrClosed", err)
	}
}

// alive reports whether pid runs; a zombie does not (here PID 1 reaps
// orphans only now and then).
func alive(pid int) bool {
	state, _, ok := procStat(pid)
	return ok && state != "Z"
}

func TestStartWithoutChromium(t *testing.T) {
	_, err := Start(context.Background(), Options{Chromium: "/nonexistent/chromium"})
	if !errors.Is(err, ErrNotInstalled) || !strings.Contains(err.Error(), "scripts/deps.sh chromium") {
		t.Fatalf("got %v; want ErrNotInstalled telling to run scripts/deps.sh chromium", err)
	}
}

func TestStartBrokenChromium(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	b, err := Start(ctx, Options{Chromium: "/bin/false"})
	if err == nil {
		b.Close()
		t.Fatal("Start with /bin/false as Chromium succeeded")
	}
	if !errors.Is(err, ErrStart) {
		t.Fatalf("got %v; want ErrStart", err)
	}
	t.Logf("error: %v", err)
}

// TestFakeVideoFile plays a file through the fake camera, the way a test
// can send known pictures.
func TestFakeVideoFile(t *testing.T) {
	y4m := filepath.Join(t.TempDir(), "pattern.y4m")
	ff := exec.Command("ffmpeg", "-v", "error", "-f", "lavfi", "-i", "testsrc2=size=320x240:rate=30",
		"-frames:v", "30", "-pix_fmt", "yuv420p", y4m)
	if out, err := ff.CombinedOutput(); err != nil {
		t.Fatalf("ffmpeg (scripts/deps.sh installs it): %v\n%s", err, out)
	}
	b := startBrowser(t, Options{FakeVideo: y4m})
	p := open(t, b, serve(t)+"/camera.html")
	type media struct{ Width, Height int }
	m, err := As[media](p.Exec("return start()"))
	if err != nil {
		t.Fatal(err)
	}
	if m.Width != 320 || m.Height != 240 {
		t.Errorf("camera from %s is %dx%d; want the file's 320x240", y4m, m.Width, m.Height)
	}
	if _, err := p.Exec("return waitFrames(document.getElementById('v'), 30, 15000)"); err != nil {
		t.Fatal(err)
	}
}

// TestCloseAfterDriverCrash: when chromedriver dies, Close still ends
// Chromium (all of its processes) and removes the temp dir.
func TestCloseAfterDriverCrash(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	b, err := Start(ctx, Options{})
	if err != nil {
		t.Fatalf("starting the browser: %v", err)
	}
	driver, chromium := b.PIDs()
	if err := syscall.Kill(driver, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	<-b.exited
	if !alive(chromium) {
		t.Fatalf("Chromium %d died with chromedriver; the test proves nothing", chromium)
	}
	if err := b.Close(); err == nil {
		t.Error("Close after a chromedriver crash: no error; want the failed quit reported")
	} else {
		t.Logf("Close: %v", err)
	}
	if alive(chromium) {
		t.Errorf("Chromium %d still running", chromium)
	}
	if pids := b.ourProcs(); len(pids) > 0 {
		t.Errorf("processes %v still running with %s", pids, b.dir)
	}
	if pids := groupMembers(driver); len(pids) > 0 {
		t.Errorf("processes %v of chromedriver's group %d still running", pids, driver)
	}
	if _, err := os.Stat(b.dir); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("temp dir %s left behind", b.dir)
	}
}
