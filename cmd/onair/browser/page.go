package browser

import (
	"context"
	_ "embed"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"time"
)

// LibJS is testdata/lib.js: countFrames, waitFrames, audioEnergy,
// waitAudio, whipPublish, whepPlay. Serve it next to a test page
// (LibHandler) and load it with <script src="lib.js">.
//
//go:embed testdata/lib.js
var LibJS []byte

// LibHandler serves LibJS.
func LibHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/javascript; charset=utf-8")
		w.Header().Set("Cache-Control", "no-store")
		w.Write(LibJS)
	})
}

// Page is one browser window. Commands on a Page first make its window the
// session's current one; the other windows keep running meanwhile.
type Page struct {
	b      *Browser
	handle string
}

// Open loads url in a new window and returns it; the first Open reuses the
// empty window the session started with.
func (b *Browser) Open(url string) (*Page, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return nil, ErrClosed
	}
	handle := b.blank
	b.blank = ""
	if handle == "" {
		v, err := b.wd.do(context.Background(), "POST", b.path("/window/new"), map[string]string{"type": "window"})
		if err != nil {
			return nil, fmt.Errorf("browser: new window: %w", err)
		}
		var w struct {
			Handle string `json:"handle"`
		}
		if err := json.Unmarshal(v, &w); err != nil || w.Handle == "" {
			return nil, fmt.Errorf("browser: new window: no handle in %.200s", v)
		}
		handle = w.Handle
	}
	p := &Page{b: b, handle: handle}
	if _, err := p.cmd("POST", "/url", map[string]string{"url": url}); err != nil {
		return p, fmt.Errorf("browser: opening %s: %w", url, err)
	}
	return p, nil
}

// Handle is the WebDriver window handle.
func (p *Page) Handle() string { return p.handle }

// Navigate loads url in this page and waits for its load event.
func (p *Page) Navigate(url string) error {
	p.b.mu.Lock()
	defer p.b.mu.Unlock()
	if _, err := p.cmd("POST", "/url", map[string]string{"url": url}); err != nil {
		return fmt.Errorf("browser: navigating to %s: %w", url, err)
	}
	return nil
}

// Exec runs script as the body of a function with args as arguments[...] and
// returns its JSON result. A returned promise is awaited (up to the script
// timeout), so `return countFrames(v, 2000)` works; a rejection or a thrown
// exception comes back as an *Error with Code "javascript error".
func (p *Page) Exec(script string, args ...any) (json.RawMessage, error) {
	return p.exec("/execute/sync", script, args)
}

// ExecAsync runs script with a callback appended to args: the script ends by
// calling arguments[arguments.length-1](result). If it does not within the
// script timeout (Options.ScriptTimeout) the error's Code is "script timeout".
func (p *Page) ExecAsync(script string, args ...any) (json.RawMessage, error) {
	return p.exec("/execute/async", script, args)
}

func (p *Page) exec(kind, script string, args []any) (json.RawMessage, error) {
	if args == nil {
		args = []any{}
	}
	p.b.mu.Lock()
	defer p.b.mu.Unlock()
	v, err := p.cmd("POST", kind, map[string]any{"script": script, "args": args})
	if err != nil {
		return nil, fmt.Errorf("browser: script %q: %w", abbrev(script), err)
	}
	return v, nil
}

// Screenshot is a PNG of the page's viewport.
func (p *Page) Screenshot() ([]byte, error) {
	p.b.mu.Lock()
	defer p.b.mu.Unlock()
	v, err := p.cmd("GET", "/screenshot", nil)
	if err != nil {
		return nil, fmt.Errorf("browser: screenshot: %w", err)
	}
	var s string
	if err := json.Unmarshal(v, &s); err != nil {
		return nil, fmt.Errorf("browser: screenshot: %w", err)
	}
	return base64.StdEncoding.DecodeString(s)
}

// Close closes this page's window (its peer connections end with it).
func (p *Page) Close() error {
	p.b.mu.Lock()
	defer p.b.mu.Unlock()
	if _, err := p.cmd("DELETE", "/window", nil); err != nil {
		return fmt.Errorf("browser: closing window: %w", err)
	}
	p.b.current = ""
	return nil
}

// cmd switches to the page's window if needed and sends one command; the
// caller holds b.mu.
func (p *Page) cmd(method, path string, body any) (json.RawMessage, error) {
	b := p.b
	if b.closed {
		return nil, ErrClosed
	}
	ctx := context.Background()
	if b.current != p.handle {
		if _, err := b.wd.do(ctx, "POST", b.path("/window"), map[string]string{"handle": p.handle}); err != nil {
			return nil, err
		}
		b.current = p.handle
	}
	return b.wd.do(ctx, method, b.path(path), body)
}

// SetScriptTimeout changes the script timeout (Options.ScriptTimeout) for
// the following Exec and ExecAsync calls on all pages.
func (b *Browser) SetScriptTimeout(d time.Duration) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return ErrClosed
	}
	if _, err := b.wd.do(context.Background(), "POST", b.path("/timeouts"), map[string]int64{"script": d.Milliseconds()}); err != nil {
		return fmt.Errorf("browser: setting the script timeout: %w", err)
	}
	if t := d + 30*time.Second; t > b.wd.client.Timeout {
		b.wd.client.Timeout = t
	}
	return nil
}

// LogEntry is one browser console message or page error.
type LogEntry struct {
	Time    time.Time
	Level   string // "SEVERE", "WARNING", "INFO", "DEBUG"
	Source  string // "console-api", "javascript", "network", ...
	Message string
}

func (e LogEntry) String() string {
	return fmt.Sprintf("%s %s %s: %s", e.Time.Format("15:04:05.000"), e.Level, e.Source, e.Message)
}

// Logs returns the browser console messages (console.log, uncaught errors,
// failed requests) logged since the previous call, from all pages.
func (b *Browser) Logs() ([]LogEntry, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return nil, ErrClosed
	}
	v, err := b.wd.do(context.Background(), "POST", b.path("/se/log"), map[string]string{"type": "browser"})
	if err != nil {
		return nil, fmt.Errorf("browser: reading console logs: %w", err)
	}
	var raw []struct {
		Level     string `json:"level"`
		Message   string `json:"message"`
		Source    string `json:"source"`
		Timestamp int64  `json:"timestamp"`
	}
	if err := json.Unmarshal(v, &raw); err != nil {
		return nil, fmt.Errorf("browser: console logs: %w", err)
	}
	out := make([]LogEntry, len(raw))
	for i, r := range raw {
		out[i] = LogEntry{Time: time.UnixMilli(r.Timestamp), Level: r.Level, Source: r.Source, Message: r.Message}
	}
	return out, nil
}

// As decodes a script result: n, err := browser.As[int](page.Exec(...)).
func As[T any](raw json.RawMessage, err error) (T, error) {
	var v T
	if err != nil {
		return v, err
	}
	if err := json.Unmarshal(raw, &v); err != nil {
		return v, fmt.Errorf("browser: script result %.200s: %w", raw, err)
	}
	return v, nil
}

func abbrev(s string) string {
	s = strings.Join(strings.Fields(s), " ")
	if len(s) > 60 {
		s = s[:57] + "..."
	}
	return s
}
