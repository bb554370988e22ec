// Package transcode bridges codecs with an ffmpeg child process: frames
// go in on stdin as an elementary stream, come back on stdout as MPEG-TS
// (which media/mpegts already demuxes, timestamps and all), and are put
// back on the caller's timeline.
package transcode

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os/exec"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/Eyevinn/mp4ff/aac"

	"github.com/onair/onair/media/av"
	"github.com/onair/onair/media/mpegts"
)

// Errors.
var (
	ErrNoFFmpeg = errors.New("transcode: ffmpeg not found in PATH (install the ffmpeg package)")
	ErrClosed   = errors.New("transcode: closed")
	ErrInput    = errors.New("transcode: input frame does not match the bridge")
)

// Bridge is one running ffmpeg converting AAC to Opus (48 kHz) for WebRTC.
type Bridge struct {
	cmd    *exec.Cmd
	stdin  io.WriteCloser
	cfg    av.TrackConfig
	out    chan av.Frame
	log    *slog.Logger
	start  time.Time
	done   chan struct{}
	waitMu sync.Mutex
	err    error

	mu      sync.Mutex
	base    int64 // input PTS of the first frame written
	haveIn  bool
	outBase int64 // output PTS of the first frame read
	haveOut bool
	closed  bool
	header  []byte
}

// AACToOpus starts ffmpeg for an AAC track described by cfg. bitrate is in bit/s.
func AACToOpus(ctx context.Context, cfg av.TrackConfig, bitrate int, log *slog.Logger) (*Bridge, error) {
	if cfg.Codec != av.AAC || cfg.SampleRate <= 0 || cfg.Channels <= 0 {
		return nil, fmt.Errorf("%w: want an AAC config with sample rate and channels, got %s %d Hz %d ch",
			ErrInput, cfg.Codec, cfg.SampleRate, cfg.Channels)
	}
	if _, err := exec.LookPath("ffmpeg"); err != nil {
		return nil, ErrNoFFmpeg
	}
	if log == nil {
		log = slog.Default()
	}
	if bitrate <= 0 {
		bitrate = 64000
	}
	// Low-delay settings: no input probing, 20 ms Opus frames, every
	// packet flushed, no mux delay. Opus wants 48 kHz.
	cmd := exec.CommandContext(ctx, "ffmpeg", "-hide_banner", "-loglevel", "error", "-nostdin",
		"-probesize", "32", "-analyzeduration", "0", "-fflags", "nobuffer",
		"-f", "aac", "-i", "pipe:0",
		"-c:a", "libopus", "-ar", "48000", "-b:a", strconv.Itoa(bitrate), "-application", "lowdelay", "-frame_duration", "20",
		"-flush_packets", "1", "-muxdelay", "0", "-muxpreload", "0",
		"-f", "mpegts", "pipe:1")
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL} // never outlive onair
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("transcode: start ffmpeg: %w", err)
	}
	b := &Bridge{cmd: cmd, stdin: stdin, cfg: cfg, out: make(chan av.Frame, 256), log: log, start: time.Now(), done: make(chan struct{})}
	go b.read(ctx, stdout, &stderr)
	return b, nil
}

func (b *Bridge) read(ctx context.Context, stdout io.Reader, stderr *bytes.Buffer) {
	defer close(b.out)
	d := mpegts.NewDemuxer(ctx, stdout, mpegts.WithLogger(b.log))
	for {
		tf, err := d.ReadFrame()
		if err != nil {
			break
		}
		if tf.Frame.Codec != av.Opus {
			continue
		}
		f := tf.Frame
		b.mu.Lock()
		if !b.haveOut {
			b.outBase, b.haveOut = f.PTS, true
		}
		f.PTS = f.PTS - b.outBase + b.base
		f.DTS = f.PTS
		b.mu.Unlock()
		b.out <- f
	}
	err := b.cmd.Wait()
	b.waitMu.Lock()
	if err != nil && stderr.Len() > 0 {
		err = fmt.Errorf("%w: %s", err, bytes.TrimSpace(stderr.Bytes()))
	}
	b.err = err
	b.waitMu.Unlock()
	close(b.done)
}

// Write feeds one raw AAC frame (no ADTS header) with its PTS.
func (b *Bridge) Write(f av.Frame) error {
	if f.Codec != av.AAC {
		return fmt.Errorf("%w: %s frame", ErrInput, f.Codec)
	}
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		return ErrClosed
	}
	if !b.haveIn {
		b.base, b.haveIn = f.PTS, true
	}
	h, err := adtsHeader(b.cfg, len(f.Data))
	b.mu.Unlock()
	if err != nil {
		return err
	}
	if _, err := b.stdin.Write(append(h, f.Data...)); err != nil {
		return fmt.Errorf("transcode: ffmpeg stdin: %w", err)
	}
	return nil
}

func adtsHeader(cfg av.TrackConfig, n int) ([]byte, error) {
	h, err := aac.NewADTSHeader(cfg.SampleRate, byte(cfg.Channels), aac.AAClc, uint16(n))
	if err != nil {
		return nil, fmt.Errorf("transcode: ADTS header: %w", err)
	}
	return h.Encode(), nil
}

// Frames delivers Opus frames (PTS on the input's 90 kHz timeline); it is
// closed when ffmpeg exits.
func (b *Bridge) Frames() <-chan av.Frame { return b.out }

// Close ends the input and waits for ffmpeg to exit; it returns ffmpeg's error, if any.
func (b *Bridge) Close() error {
	b.mu.Lock()
	if !b.closed {
		b.closed = true
		b.stdin.Close()
	}
	b.mu.Unlock()
	select {
	case <-b.done:
	case <-time.After(5 * time.Second):
		_ = b.cmd.Process.Kill()
		<-b.done
	}
	b.waitMu.Lock()
	defer b.waitMu.Unlock()
	return b.err
}

// CPU is the CPU time ffmpeg used so far (user+system), once it has exited.
func (b *Bridge) CPU() time.Duration {
	if st := b.cmd.ProcessState; st != nil {
		return st.UserTime() + st.SystemTime()
	}
	return 0
}
