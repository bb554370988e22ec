// Package browser drives a real headless Chromium through chromedriver (the
// W3C WebDriver protocol) for onair's end-to-end tests: a page publishes over
// WHIP from Chromium's fake camera and microphone, another plays over WHEP or
// LL-HLS, and the test reads decoded frames and audio energy back with
// Page.Exec. The JS helpers for that live in testdata/lib.js (LibJS).
//
// Only the standard library: the Debian packages chromium and chromium-driver
// are the whole dependency (scripts/deps.sh chromium installs them).
package browser

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

var (
	// ErrNotInstalled means chromium or chromedriver is missing.
	ErrNotInstalled = errors.New("chromium/chromedriver not installed: run `scripts/deps.sh chromium` (Debian packages chromium, chromium-driver)")
	// ErrStart means chromedriver or Chromium did not come up.
	ErrStart = errors.New("browser did not start")
	// ErrClosed is returned by every call after Close.
	ErrClosed = errors.New("browser is closed")
)

// Default locations of Debian's packages.
const (
	DefaultChromium     = "/usr/bin/chromium"
	DefaultChromeDriver = "/usr/bin/chromedriver"
)

// Flags are the Chromium flags every Start passes (plus --user-data-dir with a
// fresh directory, and the fake-capture file flags from Options).
var Flags = []string{
	// This machine: root (no sandbox), no GPU, no network beyond loopback
	// (background networking and component updates only produce refused
	// connections and DNS failures), no UDP QUIC.
	"--headless",
	"--no-sandbox",
	"--disable-gpu",
	"--disable-quic",
	"--no-first-run",
	"--no-default-browser-check",
	"--disable-background-networking",
	"--disable-component-update",
	"--disable-sync",
	// Media: grant getUserMedia without a prompt, from the fake devices (a
	// moving test pattern and a beeping microphone), and let pages play
	// unmuted media without a user gesture.
	"--use-fake-ui-for-media-stream",
	"--use-fake-device-for-media-stream",
	"--autoplay-policy=no-user-gesture-required",
	// Host ICE candidates with real addresses, not mDNS .local names a
	// server (pion) would have to resolve over multicast.
	"--disable-features=WebRtcHideLocalIpsWithMdns",
	// A publisher page keeps running at full rate while the test talks to
	// the viewer page in another window.
	"--disable-background-timer-throttling",
	"--disable-backgrounding-occluded-windows",
	"--disable-renderer-backgrounding",
	"--window-size=1280,720",
}

// Options configures Start. The zero value is ready to use.
type Options struct {
	Chromium     string // default DefaultChromium
	ChromeDriver string // default DefaultChromeDriver
	// FakeVideo is a .y4m or .mjpeg file the fake camera plays in a loop
	// (--use-file-for-fake-video-capture) instead of its test pattern.
	FakeVideo string
	// FakeAudio is a .wav file the fake microphone plays
	// (--use-file-for-fake-audio-capture) instead of its beep.
	FakeAudio string
	Args      []string // more Chromium flags, after Flags
	// ScriptTimeout bounds ExecAsync and a promise returned to Exec;
	// default 30 s.
	ScriptTimeout time.Duration
}

// Browser is one chromedriver process with one session (one Chromium).
// Its methods are safe for concurrent use; WebDriver runs one command at a time.
type Browser struct {
	wd            wd
	session       string
	dir           string // temp: profile/, tmp/ (TMPDIR), home/ (HOME), chromedriver.log
	profile       string
	driver        *exec.Cmd
	exited        chan struct{} // closed when chromedriver has exited
	driverStopped bool
	chromePID     int
	startup       time.Duration

	mu      sync.Mutex // one command at a time: the current window is session state
	current string     // handle of the current window
	blank   string     // the initial window, until Open uses it
	closed  bool
}

// Start launches chromedriver on a free 127.0.0.1 port and creates a session,
// which starts Chromium with Flags and a fresh profile. ctx bounds the start
// only (30 s if it has no deadline). Close the Browser to end both processes.
func Start(ctx context.Context, opts Options) (*Browser, error) {
	t0 := time.Now()
	if opts.Chromium == "" {
		opts.Chromium = DefaultChromium
	}
	if opts.ChromeDriver == "" {
		opts.ChromeDriver = DefaultChromeDriver
	}
	if opts.ScriptTimeout <= 0 {
		opts.ScriptTimeout = 30 * time.Second
	}
	for _, p := range []string{opts.Chromium, opts.ChromeDriver} {
		if _, err := exec.LookPath(p); err != nil {
			return nil, fmt.Errorf("%w: %v", ErrNotInstalled, err)
		}
	}
	for _, f := range []*string{&opts.FakeVideo, &opts.FakeAudio} {
		if *f == "" {
			continue
		}
		if _, err := os.Stat(*f); err != nil {
			return nil, fmt.Errorf("browser: fake capture file: %w", err)
		}
		*f, _ = filepath.Abs(*f) // Chromium runs in chromedriver's directory
	}
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, 30*time.Second)
		defer cancel()
	}

	dir, err := os.MkdirTemp("", "onair-browser-")
	if err != nil {
		return nil, fmt.Errorf("browser: temp dir: %w", err)
	}
	b := &Browser{
		dir:     dir,
		profile: filepath.Join(dir, "profile"),
		wd:      wd{client: &http.Client{Timeout: opts.ScriptTimeout + 30*time.Second}},
	}
	for _, d := range []string{b.profile, b.tmp(), filepath.Join(dir, "home")} {
		if err := os.Mkdir(d, 0o700); err != nil {
			os.RemoveAll(dir)
			return nil, fmt.Errorf("browser: temp dir: %w", err)
		}
	}
	if err := b.startDriver(ctx, opts.ChromeDriver); err != nil {
		b.teardown()
		return nil, err
	}
	if err := b.newSession(ctx, opts); err != nil {
		b.teardown()
		return nil, err
	}
	b.startup = time.Since(t0)
	return b, nil
}

// startDriver runs chromedriver and waits until /status says ready. The port
// is found free and then handed over, so a lost race is retried.
func (b *Browser) startDriver(ctx context.Context, path string) error {
	logf, err := os.Create(b.logPath())
	if err != nil {
		return fmt.Errorf("browser: chromedriver log: %w", err)
	}
	defer logf.Close() // the child keeps its own descriptor
	var lastErr error
	for attempt := 0; attempt < 3; attempt++ {
		port, err := freePort()
		if err != nil {
			return fmt.Errorf("%w: finding a free port: %v", ErrStart, err)
		}
		cmd := exec.Command(path, "--port="+strconv.Itoa(port))
		cmd.Stdout, cmd.Stderr = logf, logf
		// Everything Chromium writes outside the profile (TMPDIR scratch
		// dirs, crashpad's ~/.config/chromium/Crash Reports, PulseAudio's
		// ~/.config/pulse) goes into our dir and leaves with it.
		home := filepath.Join(b.dir, "home")
		cmd.Env = append(os.Environ(), "TMPDIR="+b.tmp(), "HOME="+home,
			"XDG_CONFIG_HOME="+filepath.Join(home, ".config"),
			"XDG_CACHE_HOME="+filepath.Join(home, ".cache"))
		// Own process group: Close signals chromedriver and whatever it
		// started, and nothing else.
		cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
		if err := cmd.Start(); err != nil {
			return fmt.Errorf("%w: %s: %v", ErrStart, path, err)
		}
		exited := make(chan struct{})
		go func() { cmd.Wait(); close(exited) }()
		b.driver, b.exited, b.driverStopped = cmd, exited, false
		b.wd.base = "http://127.0.0.1:" + strconv.Itoa(port)
		lastErr = b.waitReady(ctx)
		if lastErr == nil {
			return nil
		}
		b.stopDriver()
		if ctx.Err() != nil {
			break
		}
	}
	return fmt.Errorf("%w: chromedriver: %v\n%s", ErrStart, lastErr, b.logTail())
}

func (b *Browser) waitReady(ctx context.Context) error {
	for {
		rctx, cancel := context.WithTimeout(ctx, time.Second)
		v, err := b.wd.do(rctx, "GET", "/status", nil)
		cancel()
		if err == nil {
			var st struct {
				Ready bool `json:"ready"`
			}
			if json.Unmarshal(v, &st) == nil && st.Ready {
				return nil
			}
		}
		select {
		case <-b.exited:
			return fmt.Errorf("exited before it was ready (%v)", b.driver.ProcessState)
		case <-ctx.Done():
			return fmt.Errorf("not ready: %w (last: %v)", ctx.Err(), err)
		case <-time.After(20 * time.Millisecond):
		}
	}
}

func (b *Browser) newSession(ctx context.Context, opts Options) error {
	args := append([]string(nil), Flags...)
	args = append(args, "--user-data-dir="+b.profile)
	if shmSmall() {
		// Chromium crashes when /dev/shm fills up; use /tmp instead.
		args = append(args, "--disable-dev-shm-usage")
	}
	if opts.FakeVideo != "" {
		args = append(args, "--use-file-for-fake-video-capture="+opts.FakeVideo)
	}
	if opts.FakeAudio != "" {
		args = append(args, "--use-file-for-fake-audio-capture="+opts.FakeAudio)
	}
	args = append(args, opts.Args...)
	caps := map[string]any{
		"browserName": "chrome",
		"goog:chromeOptions": map[string]any{
			"binary": opts.Chromium,
			"args":   args,
		},
		"goog:loggingPrefs": map[string]string{"browser": "ALL"},
		"timeouts": map[string]int64{
			"script":   opts.ScriptTimeout.Milliseconds(),
			"pageLoad": 30_000,
		},
	}
	v, err := b.wd.do(ctx, "POST", "/session", map[string]any{
		"capabilities": map[string]any{"alwaysMatch": caps},
	})
	if err != nil {
		return fmt.Errorf("%w: creating the session (starts %s): %v\n%s", ErrStart, opts.Chromium, err, b.logTail())
	}
	var s struct {
		SessionID string `json:"sessionId"`
	}
	if err := json.Unmarshal(v, &s); err != nil || s.SessionID == "" {
		return fmt.Errorf("%w: session reply without sessionId: %.200s", ErrStart, v)
	}
	b.session = s.SessionID
	b.chromePID = b.findChromium()
	h, err := b.wd.do(ctx, "GET", b.path("/window"), nil)
	if err != nil {
		return fmt.Errorf("%w: %v", ErrStart, err)
	}
	if err := json.Unmarshal(h, &b.current); err != nil {
		return fmt.Errorf("%w: window handle: %v", ErrStart, err)
	}
	b.blank = b.current
	return nil
}

// StartupTime is how long Start took: chromedriver, Chromium, session.
func (b *Browser) StartupTime() time.Duration { return b.startup }

// PIDs returns chromedriver's and Chromium's (browser process) ids; Chromium's
// is 0 if it could not be found.
func (b *Browser) PIDs() (chromedriver, chromium int) {
	return b.driver.Process.Pid, b.chromePID
}

// Close quits the session, ends chromedriver and Chromium (only the processes
// this Browser started) and removes the temporary profile. Calling it again
// does nothing.
func (b *Browser) Close() error {
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		return nil
	}
	b.closed = true
	b.mu.Unlock()
	var errs []error
	if b.session != "" {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		if _, err := b.wd.do(ctx, "DELETE", b.path(""), nil); err != nil {
			errs = append(errs, fmt.Errorf("browser: quitting the session: %w", err))
		}
		cancel()
	}
	if err := b.teardown(); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// teardown kills what is left and removes the temp dir.
func (b *Browser) teardown() error {
	if b.driver != nil {
		b.stopDriver()
	}
	b.killLeftovers()
	var err error
	for i := 0; i < 20; i++ { // a dying Chromium may still write its profile
		if err = os.RemoveAll(b.dir); err == nil {
			return nil
		}
		time.Sleep(50 * time.Millisecond)
	}
	return fmt.Errorf("browser: removing %s: %w", b.dir, err)
}

// stopDriver ends chromedriver's process group: TERM, then KILL, and waits
// until no process of the group runs. Only once: an empty group's id could be
// reused.
func (b *Browser) stopDriver() {
	if b.driverStopped {
		return
	}
	b.driverStopped = true
	pgid := b.driver.Process.Pid
	syscall.Kill(-pgid, syscall.SIGTERM)
	select {
	case <-b.exited:
	case <-time.After(3 * time.Second):
	}
	// Chromium may outlive chromedriver in the group; and a SIGKILLed
	// process takes a moment to go.
	syscall.Kill(-pgid, syscall.SIGKILL)
	<-b.exited
	deadline := time.Now().Add(3 * time.Second)
	for len(groupMembers(pgid)) > 0 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
}

// groupMembers lists the running processes (not zombies) of group pgid.
func groupMembers(pgid int) []int {
	ents, _ := os.ReadDir("/proc")
	var pids []int
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if state, pg, ok := procStat(pid); ok && pg == pgid && state != "Z" {
			pids = append(pids, pid)
		}
	}
	return pids
}

// procStat reads a process's state and process group from /proc.
func procStat(pid int) (state string, pgrp int, ok bool) {
	stat, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return "", 0, false
	}
	return parseStat(stat)
}

// parseStat reads state and pgrp from /proc/<pid>/stat:
// "pid (comm) state ppid pgrp ...".
func parseStat(stat []byte) (state string, pgrp int, ok bool) {
	i := bytes.LastIndexByte(stat, ')') // the command may contain spaces
	if i < 0 {
		return "", 0, false
	}
	f := strings.Fields(string(stat[i+1:]))
	if len(f) < 3 {
		return "", 0, false
	}
	pgrp, err := strconv.Atoi(f[2])
	if err != nil {
		return "", 0, false
	}
	return f[0], pgrp, true
}

// killLeftovers kills Chromium processes still running that are ours: after
// a chromedriver crash they would outlive it, and crashpad handlers leave
// the process group.
func (b *Browser) killLeftovers() {
	pids := b.ourProcs()
	if b.chromePID != 0 && b.ours(b.chromePID) {
		pids = append(pids, b.chromePID)
	}
	for _, pid := range pids {
		syscall.Kill(pid, syscall.SIGKILL)
	}
	deadline := time.Now().Add(3 * time.Second)
	for _, pid := range pids {
		for b.ours(pid) && time.Now().Before(deadline) {
			time.Sleep(10 * time.Millisecond)
		}
	}
}

// findChromium reads the browser PID from the profile's SingletonLock
// ("hostname-pid"), falling back to a /proc scan.
func (b *Browser) findChromium() int {
	if target, err := os.Readlink(filepath.Join(b.profile, "SingletonLock")); err == nil {
		if i := strings.LastIndexByte(target, '-'); i >= 0 {
			if pid, err := strconv.Atoi(target[i+1:]); err == nil && b.ours(pid) {
				return pid
			}
		}
	}
	for _, pid := range b.ourProcs() {
		cmd, _ := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/cmdline")
		if bytes.Contains(cmd, []byte("--user-data-dir=")) && !bytes.Contains(cmd, []byte("--type=")) {
			return pid
		}
	}
	return 0
}

// ours reports whether pid is a live process whose command line names this
// Browser's temp dir (--user-data-dir, crashpad's --database): a process
// this Browser started, whoever its parent is now.
func (b *Browser) ours(pid int) bool {
	cmd, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/cmdline")
	return err == nil && bytes.Contains(cmd, []byte(b.dir+"/"))
}

// ourProcs lists the live processes that are ours.
func (b *Browser) ourProcs() []int {
	ents, _ := os.ReadDir("/proc")
	var pids []int
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err == nil && b.ours(pid) {
			pids = append(pids, pid)
		}
	}
	return pids
}

func (b *Browser) tmp() string { return filepath.Join(b.dir, "tmp") }

func (b *Browser) logPath() string { return filepath.Join(b.dir, "chromedriver.log") }

// logTail is the end of chromedriver's output and of Chromium's own log
// (chromedriver starts it with --enable-logging), for errors.
func (b *Browser) logTail() string {
	var out strings.Builder
	for _, f := range []string{b.logPath(), filepath.Join(b.profile, "chrome_debug.log")} {
		data, _ := os.ReadFile(f)
		const max = 3000
		if len(data) > max {
			data = data[len(data)-max:]
		}
		if len(bytes.TrimSpace(data)) > 0 {
			fmt.Fprintf(&out, "--- %s:\n%s\n", filepath.Base(f), bytes.TrimSpace(data))
		}
	}
	if out.Len() == 0 {
		return "(chromedriver and Chromium logged nothing)"
	}
	return out.String()
}

func (b *Browser) path(p string) string { return "/session/" + b.session + p }

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// shmSmall reports whether /dev/shm is missing or too small for Chromium
// (Docker's default is 64 MiB).
func shmSmall() bool {
	var st syscall.Statfs_t
	if err := syscall.Statfs("/dev/shm", &st); err != nil {
		return true
	}
	return st.Bavail*uint64(st.Bsize) < 512<<20
}
