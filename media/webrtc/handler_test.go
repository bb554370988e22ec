package webrtc

import (
	"errors"
	"fmt"
	"net"
	"net/http"
	"runtime"
	"strings"
	"testing"
	"time"
)

func TestHandlerErrors(t *testing.T) {
	e := newTestEngine(t, 0)
	in := &fakeIngest{}
	pb := &fakePlayback{closed: make(chan string, 1)}
	srv := testServer(t, NewHandler(e, in, pb))
	u := srv.URL

	for _, tc := range []struct {
		name, method, path, ctype, body string
		refuseIn, refusePb              error
		code                            int
		bodyHas                         string
		header                          [2]string
	}{
		{name: "wrong content type", method: "POST", path: "/live/a/whip", ctype: "text/plain", body: handOffer("sendonly", ""),
			code: 415, bodyHas: "application/sdp", header: [2]string{"Accept-Post", "application/sdp"}},
		{name: "no content type", method: "POST", path: "/live/a/whep", body: handOffer("recvonly", ""), code: 415},
		{name: "malformed SDP", method: "POST", path: "/live/a/whip", ctype: "application/sdp", body: "hello\r\n", code: 400, bodyHas: "bad SDP offer"},
		{name: "SDP without media", method: "POST", path: "/live/a/whip", ctype: "application/sdp",
			body: "v=0\r\no=- 1 1 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\n", code: 400, bodyHas: "no m= sections"},
		{name: "too large", method: "POST", path: "/live/a/whip", ctype: "application/sdp", body: strings.Repeat("a", MaxBody+1), code: 413},
		{name: "VP8 only", method: "POST", path: "/live/a/whip", ctype: "application/sdp", body: handOffer("sendonly", "vp8"),
			code: 406, bodyHas: "H.264"},
		{name: "WHIP offer that sends nothing", method: "POST", path: "/live/a/whip", ctype: "application/sdp", body: handOffer("recvonly", ""),
			code: 400, bodyHas: "sendonly"},
		{name: "WHEP offer that receives nothing", method: "POST", path: "/live/a/whep", ctype: "application/sdp", body: handOffer("sendonly", ""),
			code: 406, bodyHas: "recvonly"},
		{name: "WHEP viewer without H.264", method: "POST", path: "/live/a/whep", ctype: "application/sdp", body: handOffer("recvonly", "vp8"),
			code: 406, bodyHas: "onair sends H264"},
		{name: "publish conflict", method: "POST", path: "/live/a/whip", ctype: "application/sdp", body: handOffer("sendonly", ""),
			refuseIn: fmt.Errorf("stream a already has a publisher: %w", ErrConflict), code: 409, bodyHas: "already has a publisher"},
		{name: "publish forbidden", method: "POST", path: "/live/a/whip", ctype: "application/sdp", body: handOffer("sendonly", ""),
			refuseIn: fmt.Errorf("bad token: %w", ErrForbidden), code: 403},
		{name: "publish internal", method: "POST", path: "/live/a/whip", ctype: "application/sdp", body: handOffer("sendonly", ""),
			refuseIn: errors.New("disk full"), code: 500, bodyHas: "disk full"},
		{name: "unknown stream", method: "POST", path: "/live/nope/whep", ctype: "application/sdp", body: handOffer("recvonly", ""),
			refusePb: fmt.Errorf("stream nope: %w", ErrNotFound), code: 404, bodyHas: "stream nope"},
		{name: "stream not live", method: "POST", path: "/live/a/whep", ctype: "application/sdp", body: handOffer("recvonly", ""),
			refusePb: fmt.Errorf("stream a is offline: %w", ErrConflict), code: 409, header: [2]string{"Retry-After", "2"}},
		{name: "GET endpoint", method: "GET", path: "/live/a/whip", code: 405, header: [2]string{"Allow", "OPTIONS, POST"}},
		{name: "GET session", method: "GET", path: "/live/a/whip/abc", code: 405, header: [2]string{"Allow", "OPTIONS, PATCH, DELETE"}},
		{name: "unknown session", method: "DELETE", path: "/live/a/whep/abc", code: 404},
		{name: "bad kind", method: "POST", path: "/live/a/rtmp", code: 404},
		{name: "bad name", method: "POST", path: "/live/a%20b/whip", code: 404},
		{name: "dot name", method: "POST", path: "/live/../whip", code: 404},
		{name: "deep path", method: "POST", path: "/live/a/whip/b/c", code: 404},
	} {
		t.Run(tc.name, func(t *testing.T) {
			in.mu.Lock()
			in.refuse = tc.refuseIn
			in.mu.Unlock()
			pb.mu.Lock()
			pb.refuse = tc.refusePb
			pb.src = PlaySource{Video: mustTrack(t, h264Cap), Audio: mustTrack(t, opusCap)}
			pb.mu.Unlock()
			resp, body := do(t, tc.method, u+tc.path, tc.ctype, tc.body, nil)
			if resp.StatusCode != tc.code {
				t.Fatalf("%s %s: %d %q, want %d", tc.method, tc.path, resp.StatusCode, body, tc.code)
			}
			if !strings.Contains(body, tc.bodyHas) {
				t.Fatalf("body %q lacks %q", body, tc.bodyHas)
			}
			if h := tc.header; h[0] != "" && resp.Header.Get(h[0]) != h[1] {
				t.Fatalf("%s: %q, want %q", h[0], resp.Header.Get(h[0]), h[1])
			}
			if resp.Header.Get("Access-Control-Allow-Origin") != "*" {
				t.Fatal("no CORS header on an error response")
			}
		})
	}
	// Refused or failed requests leave no session behind, and every sink
	// that was handed out was closed.
	checkNoSessions(t, srv.Config.Handler.(*Handler))
	in.mu.Lock()
	defer in.mu.Unlock()
	for i, s := range in.sinks {
		if s.closes != 1 {
			t.Fatalf("sink %d closed %d times", i, s.closes)
		}
	}
}

func checkNoSessions(t *testing.T, h *Handler) {
	t.Helper()
	eventually(t, "an empty session map", func() bool {
		h.mu.Lock()
		defer h.mu.Unlock()
		return len(h.sessions) == 0
	})
}

// TestSendrecvOffers: RFC 9725 and the WHEP draft let clients offer
// sendrecv instead of sendonly or recvonly.
func TestSendrecvOffers(t *testing.T) {
	e := newTestEngine(t, 0)
	pb := &fakePlayback{closed: make(chan string, 1), src: PlaySource{Video: mustTrack(t, h264Cap), Audio: mustTrack(t, opusCap)}}
	srv := testServer(t, NewHandler(e, &fakeIngest{}, pb))
	for _, tc := range []struct{ kind, answerDir string }{{"whip", "a=recvonly"}, {"whep", "a=sendonly"}} {
		resp, answer := do(t, http.MethodPost, srv.URL+"/live/sr/"+tc.kind, "application/sdp", handOffer("sendrecv", ""), nil)
		if resp.StatusCode != http.StatusCreated {
			t.Fatalf("%s sendrecv offer: %d %s", tc.kind, resp.StatusCode, answer)
		}
		if strings.Count(answer, tc.answerDir) != 2 {
			t.Fatalf("%s answer: want %s twice:\n%s", tc.kind, tc.answerDir, answer)
		}
	}
}

func TestOptions(t *testing.T) {
	e := newTestEngine(t, 0)
	srv := testServer(t, NewHandler(e, &fakeIngest{}, nil))
	resp, _ := do(t, http.MethodOptions, srv.URL+"/live/a/whip", "", "", map[string]string{
		"Origin": "https://studio.example", "Access-Control-Request-Method": "POST",
	})
	h := resp.Header
	if resp.StatusCode != http.StatusNoContent || h.Get("Accept-Post") != "application/sdp" ||
		len(h.Values("Link")) != 2 || h.Get("Access-Control-Allow-Origin") != "*" ||
		!strings.Contains(h.Get("Access-Control-Allow-Methods"), "PATCH") ||
		!strings.Contains(h.Get("Access-Control-Allow-Headers"), "If-Match") ||
		!strings.Contains(h.Get("Access-Control-Expose-Headers"), "Location") ||
		!strings.Contains(h.Get("Access-Control-Expose-Headers"), "ETag") {
		t.Fatalf("OPTIONS endpoint: %d %v", resp.StatusCode, h)
	}
	resp, _ = do(t, http.MethodOptions, srv.URL+"/live/a/whip/whatever", "", "", nil)
	if resp.StatusCode != http.StatusNoContent || resp.Header.Get("Accept-Patch") != "application/trickle-ice-sdpfrag" {
		t.Fatalf("OPTIONS session: %d %v", resp.StatusCode, resp.Header)
	}
}

// TestSessionResource walks a session's PATCH and DELETE cases. The
// offer has no candidates, so the session never connects.
func TestSessionResource(t *testing.T) {
	e := newTestEngine(t, 0)
	in := &fakeIngest{}
	srv := testServer(t, NewHandler(e, in, nil))
	resp, answer := do(t, http.MethodPost, srv.URL+"/live/s/whip", "application/sdp", handOffer("sendonly", ""), nil)
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("POST: %d %s", resp.StatusCode, answer)
	}
	loc, etag := srv.URL+resp.Header.Get("Location"), resp.Header.Get("ETag")
	if resp.Header.Get("Accept-Patch") != "application/trickle-ice-sdpfrag" {
		t.Fatalf("201 without Accept-Patch: %v", resp.Header)
	}
	const frag = "a=ice-ufrag:EsAw\r\na=ice-pwd:bP+XJMM09aR8AiX1jdukzR6Y\r\nm=audio 9 UDP/TLS/RTP/SAVPF 0\r\na=mid:0\r\n" +
		"a=candidate:1 1 udp 2122260223 127.0.0.1 9 typ host\r\n" +
		"a=candidate:2 1 udp 2122260223 nonsense.local 9 typ host\r\na=end-of-candidates\r\n"
	for _, tc := range []struct {
		name, ctype, body, ifMatch string
		code                       int
		bodyHas                    string
	}{
		{"wrong content type", "application/sdp", frag, etag, 415, "trickle-ice-sdpfrag"},
		{"stale ETag", "application/trickle-ice-sdpfrag", frag, `"old"`, 412, "does not match"},
		{"ICE restart", "application/trickle-ice-sdpfrag", "a=ice-ufrag:new1\r\na=ice-pwd:abcdefghijklmnopqrstuv\r\n", "*", 422, "ICE restart"},
		{"new ufrag", "application/trickle-ice-sdpfrag", "a=ice-ufrag:new1\r\na=ice-pwd:abcdefghijklmnopqrstuv\r\n", etag, 422, "ICE restart"},
		{"garbage", "application/trickle-ice-sdpfrag", "hello world\r\n", etag, 400, "not an SDP line"},
		{"empty", "application/trickle-ice-sdpfrag", "", etag, 400, "empty"},
		{"candidates", "application/trickle-ice-sdpfrag", frag, etag, 204, ""},
		{"candidates without If-Match", "application/trickle-ice-sdpfrag", frag, "", 204, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			hdr := map[string]string{}
			if tc.ifMatch != "" {
				hdr["If-Match"] = tc.ifMatch
			}
			resp, body := do(t, http.MethodPatch, loc, tc.ctype, tc.body, hdr)
			if resp.StatusCode != tc.code || !strings.Contains(body, tc.bodyHas) {
				t.Fatalf("PATCH: %d %q, want %d with %q", resp.StatusCode, body, tc.code, tc.bodyHas)
			}
			if tc.code == 204 && resp.Header.Get("ETag") != "" {
				t.Fatal("a trickle PATCH answer must not carry an ETag")
			}
		})
	}
	// The session's URL under another stream name is not the session.
	other := strings.Replace(loc, "/live/s/", "/live/t/", 1)
	if resp, _ := do(t, http.MethodDelete, other, "", "", nil); resp.StatusCode != http.StatusNotFound {
		t.Fatalf("DELETE under another name: %d", resp.StatusCode)
	}
	if resp, body := do(t, http.MethodDelete, loc, "", "", nil); resp.StatusCode != http.StatusOK {
		t.Fatalf("DELETE: %d %s", resp.StatusCode, body)
	}
	if resp, _ := do(t, http.MethodPatch, loc, "application/trickle-ice-sdpfrag", frag, map[string]string{"If-Match": etag}); resp.StatusCode != http.StatusNotFound {
		t.Fatalf("PATCH after DELETE: %d", resp.StatusCode)
	}
	if resp, _ := do(t, http.MethodDelete, loc, "", "", nil); resp.StatusCode != http.StatusNotFound {
		t.Fatalf("second DELETE: %d", resp.StatusCode)
	}
	_, sink := in.last()
	if reason := <-sink.closed; !strings.Contains(reason, "DELETE") {
		t.Fatalf("close reason %q", reason)
	}
	checkNoSessions(t, srv.Config.Handler.(*Handler))
}

// TestConnectTimeout: peers that never do ICE are closed after the
// timeout, and nothing of them is left (sessions, goroutines).
func TestConnectTimeout(t *testing.T) {
	e := newTestEngine(t, 300*time.Millisecond)
	in := &fakeIngest{}
	pb := &fakePlayback{closed: make(chan string, 4), src: PlaySource{Video: mustTrack(t, h264Cap), Audio: mustTrack(t, opusCap)}}
	h := NewHandler(e, in, pb)
	srv := testServer(t, h)
	// Warm up the HTTP client and pion's lazy globals, then count.
	do(t, http.MethodOptions, srv.URL+"/live/x/whip", "", "", nil)
	http.DefaultClient.CloseIdleConnections()
	base := runtime.NumGoroutine()

	const n = 3
	for i := range n {
		resp, body := do(t, http.MethodPost, fmt.Sprintf("%s/live/x%d/whip", srv.URL, i), "application/sdp", handOffer("sendonly", ""), nil)
		if resp.StatusCode != http.StatusCreated {
			t.Fatalf("POST: %d %s", resp.StatusCode, body)
		}
	}
	resp, body := do(t, http.MethodPost, srv.URL+"/live/x/whep", "application/sdp", handOffer("recvonly", ""), nil)
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("POST whep: %d %s", resp.StatusCode, body)
	}
	for i := range n {
		in.mu.Lock()
		sink := in.sinks[i]
		in.mu.Unlock()
		select {
		case reason := <-sink.closed:
			if !strings.Contains(reason, "not connected within 300ms") {
				t.Fatalf("reason %q", reason)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("publisher that never connected was not closed")
		}
	}
	select {
	case reason := <-pb.closed:
		if !strings.Contains(reason, "not connected") {
			t.Fatalf("viewer reason %q", reason)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("viewer that never connected was not closed")
	}
	checkNoSessions(t, h)
	http.DefaultClient.CloseIdleConnections()
	eventually(t, fmt.Sprintf("goroutines back to %d (+2)", base), func() bool {
		return runtime.NumGoroutine() <= base+2
	})
}

func TestHandlerCloseEndsSessions(t *testing.T) {
	e := newTestEngine(t, time.Minute)
	in := &fakeIngest{}
	h := NewHandler(e, in, nil)
	srv := testServer(t, h)
	resp, body := do(t, http.MethodPost, srv.URL+"/live/c/whip", "application/sdp", handOffer("sendonly", ""), nil)
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("POST: %d %s", resp.StatusCode, body)
	}
	h.Close()
	_, sink := in.last()
	if reason := <-sink.closed; reason != "server shutting down" {
		t.Fatalf("reason %q", reason)
	}
	resp, _ = do(t, http.MethodPost, srv.URL+"/live/c/whip", "application/sdp", handOffer("sendonly", ""), nil)
	if resp.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("POST after Close: %d", resp.StatusCode)
	}
	checkNoSessions(t, h)
}

func TestPublicIPs(t *testing.T) {
	e, err := NewEngine(Config{UDPAddr: "127.0.0.1:0", TCPAddr: TCPOff, PublicIPs: []string{"203.0.113.7"}, Logger: testLogger()})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	if e.TCPAddr() != nil {
		t.Fatal("ICE-TCP listening although off")
	}
	srv := testServer(t, NewHandler(e, &fakeIngest{}, nil))
	resp, answer := do(t, http.MethodPost, srv.URL+"/live/p/whip", "application/sdp", handOffer("sendonly", ""), nil)
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("POST: %d %s", resp.StatusCode, answer)
	}
	port := e.UDPAddr().(*net.UDPAddr).Port
	if !strings.Contains(answer, fmt.Sprintf("203.0.113.7 %d typ host", port)) || strings.Contains(answer, "127.0.0.1 ") ||
		strings.Contains(answer, " tcp ") {
		t.Fatalf("answer candidates: want only 203.0.113.7:%d over UDP:\n%s", port, answer)
	}
}

func TestEngineErrors(t *testing.T) {
	e := newTestEngine(t, 0)
	udp, tcp := e.UDPAddr().String(), e.TCPAddr().String()
	for _, tc := range []struct {
		name string
		cfg  Config
		want error
		has  string
	}{
		{"UDP port taken", Config{UDPAddr: udp, TCPAddr: TCPOff}, ErrBind, "UDP " + udp},
		{"TCP port taken", Config{UDPAddr: "127.0.0.1:0", TCPAddr: tcp}, ErrBind, "TCP " + tcp},
		{"bad public IP", Config{UDPAddr: "127.0.0.1:0", PublicIPs: []string{"example.com"}}, ErrConfig, "example.com"},
		{"bad ICE URL", Config{UDPAddr: "127.0.0.1:0", ICEServers: []ICEServer{{URLs: []string{"http://x"}}}}, ErrConfig, "http://x"},
		{"ICE server without URL", Config{UDPAddr: "127.0.0.1:0", ICEServers: []ICEServer{{Username: "u"}}}, ErrConfig, "without URLs"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e2, err := NewEngine(tc.cfg)
			if err == nil {
				e2.Close()
				t.Fatal("no error")
			}
			if !errors.Is(err, tc.want) || !strings.Contains(err.Error(), tc.has) {
				t.Fatalf("error %q: want %v mentioning %q", err, tc.want, tc.has)
			}
		})
	}
	// A failed NewEngine releases what it bound: its UDP port is free again.
	free, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := free.LocalAddr().String()
	free.Close()
	if e3, err := NewEngine(Config{UDPAddr: port, TCPAddr: tcp}); err == nil {
		e3.Close()
		t.Fatal("no error with the TCP port taken")
	}
	again, err := net.ListenPacket("udp", port)
	if err != nil {
		t.Fatalf("UDP %s still bound after a failed NewEngine: %v", port, err)
	}
	again.Close()
}

func TestLimiter(t *testing.T) {
	var l limiter
	t0 := time.Unix(1000, 0)
	for i, tc := range []struct {
		at   time.Duration
		want bool
	}{
		{0, true}, {100 * time.Millisecond, false}, {499 * time.Millisecond, false},
		{500 * time.Millisecond, true}, {600 * time.Millisecond, false}, {2 * time.Second, true},
	} {
		if got := l.allow(t0.Add(tc.at)); got != tc.want {
			t.Fatalf("call %d at %v: %v, want %v", i, tc.at, got, tc.want)
		}
	}
}

// slowIngest returns from StartPublish only after the session's connect
// timeout has ended it.
type slowIngest struct {
	fakeIngest
	h *Handler
}

func (s *slowIngest) StartPublish(p *PublishSession) (PublishSink, error) {
	for {
		s.h.mu.Lock()
		n := len(s.h.sessions)
		s.h.mu.Unlock()
		if n == 0 {
			break
		}
		time.Sleep(time.Millisecond)
	}
	return s.fakeIngest.StartPublish(p)
}

func TestTimeoutDuringSetup(t *testing.T) {
	e := newTestEngine(t, 20*time.Millisecond)
	in := &slowIngest{}
	h := NewHandler(e, in, nil)
	in.h = h
	srv := testServer(t, h)
	resp, body := do(t, http.MethodPost, srv.URL+"/live/slow/whip", "application/sdp", handOffer("sendonly", ""), nil)
	if resp.StatusCode != http.StatusServiceUnavailable || !strings.Contains(body, "retry") {
		t.Fatalf("POST: %d %s", resp.StatusCode, body)
	}
	_, sink := in.last()
	if reason := <-sink.closed; !strings.Contains(reason, "during setup") {
		t.Fatalf("reason %q", reason)
	}
	checkNoSessions(t, h)
}
