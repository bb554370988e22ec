package browser

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
)

// Error is a W3C WebDriver error reply, e.g. Code "javascript error" with the
// page's exception in Message.
type Error struct {
	Command string // "POST /session/{id}/execute/sync"
	Status  int    // HTTP status chromedriver answered with
	Code    string // WebDriver error code: "javascript error", "script timeout", ...
	Message string
}

func (e *Error) Error() string {
	return fmt.Sprintf("webdriver %s: %s (HTTP %d): %s", e.Command, e.Code, e.Status, e.Message)
}

// ErrWebDriver is wrapped by every *Error, so callers can test errors.Is.
var ErrWebDriver = errors.New("webdriver error")

func (e *Error) Unwrap() error { return ErrWebDriver }

// wd speaks the W3C WebDriver wire protocol to one chromedriver.
type wd struct {
	base   string // http://127.0.0.1:port
	client *http.Client
}

// do sends one command and returns the reply's "value".
func (w *wd) do(ctx context.Context, method, path string, body any) (json.RawMessage, error) {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return nil, fmt.Errorf("webdriver %s %s: encoding arguments: %w", method, path, err)
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, w.base+path, rd)
	if err != nil {
		return nil, err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json; charset=utf-8")
	}
	resp, err := w.client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("webdriver %s %s: %w (is chromedriver still running?)", method, path, err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, fmt.Errorf("webdriver %s %s: reading reply: %w", method, path, err)
	}
	return decodeReply(method+" "+path, resp.StatusCode, raw)
}

// decodeReply takes a WebDriver reply apart: {"value": ...} on success,
// {"value": {"error", "message", ...}} with an HTTP error status on failure.
func decodeReply(command string, status int, raw []byte) (json.RawMessage, error) {
	var reply struct {
		Value json.RawMessage `json:"value"`
	}
	if err := json.Unmarshal(raw, &reply); err != nil || reply.Value == nil {
		return nil, fmt.Errorf("webdriver %s: HTTP %d, not a WebDriver reply: %.200q", command, status, raw)
	}
	if status < 400 {
		return reply.Value, nil
	}
	e := &Error{Command: command, Status: status}
	var v struct {
		Error   string `json:"error"`
		Message string `json:"message"`
	}
	if json.Unmarshal(reply.Value, &v) == nil && v.Error != "" {
		e.Code, e.Message = v.Error, strings.TrimSpace(v.Message)
	} else {
		e.Code, e.Message = "unknown error", string(reply.Value)
	}
	return nil, e
}
