package browser

import (
	"encoding/json"
	"errors"
	"testing"
)

func TestDecodeReply(t *testing.T) {
	v, err := decodeReply("GET /status", 200, []byte(`{"value":{"ready":true}}`))
	if err != nil || string(v) != `{"ready":true}` {
		t.Errorf("success: %s, %v", v, err)
	}
	_, err = decodeReply("POST /session/x/execute/sync", 500,
		[]byte(`{"value":{"error":"javascript error","message":"javascript error: boom\n","stacktrace":"..."}}`))
	var we *Error
	if !errors.As(err, &we) || we.Code != "javascript error" || we.Message != "javascript error: boom" || we.Status != 500 {
		t.Errorf("error reply: %#v", err)
	}
	if _, err := decodeReply("GET /x", 200, []byte("<html>")); err == nil || errors.Is(err, ErrWebDriver) {
		t.Errorf("not JSON: %v; want a plain error", err)
	}
	if _, err := decodeReply("GET /x", 404, []byte(`{"value":"gone"}`)); !errors.Is(err, ErrWebDriver) {
		t.Errorf("error without a code: %v", err)
	}
}

func FuzzDecodeReply(f *testing.F) {
	f.Add(200, []byte(`{"value":null}`))
	f.Add(200, []byte(`{"value":{"sessionId":"abc","capabilities":{}}}`))
	f.Add(404, []byte(`{"value":{"error":"no such window","message":"no such window"}}`))
	f.Add(500, []byte(`{"value":[1,2]}`))
	f.Add(500, []byte(`not json`))
	f.Fuzz(func(t *testing.T, status int, raw []byte) {
		v, err := decodeReply("GET /x", status, raw)
		if err != nil {
			if v != nil {
				t.Fatalf("value %q with error %v", v, err)
			}
			return
		}
		if status >= 400 {
			t.Fatalf("HTTP %d decoded as success", status)
		}
		if !json.Valid(v) {
			t.Fatalf("value %q is not JSON", v)
		}
	})
}

func TestParseStat(t *testing.T) {
	state, pgrp, ok := parseStat([]byte("4906 (chromium (x) y) S 4899 4899 25528 0 -1"))
	if !ok || state != "S" || pgrp != 4899 {
		t.Errorf("got %q %d %v", state, pgrp, ok)
	}
	if _, _, ok := parseStat([]byte("12 (short) Z")); ok {
		t.Error("truncated stat accepted")
	}
}

func FuzzParseStat(f *testing.F) {
	f.Add([]byte("1 (init) S 0 1 1 0 -1 4194560"))
	f.Add([]byte("4906 (chromium (x) y) Z 4899 4899 25528"))
	f.Add([]byte(")"))
	f.Fuzz(func(t *testing.T, stat []byte) {
		state, _, ok := parseStat(stat)
		if ok && state == "" {
			t.Fatal("ok without a state")
		}
	})
}
