package llhls

import (
	"bytes"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"runtime"
	"testing"
	"time"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/")

// t0 is the wall time of the first sample in every synthetic stream.
var t0 = time.Date(2026, 3, 14, 15, 9, 26, 535_000_000, time.UTC)

const partDur = 200 * time.Millisecond

func quiet() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

func testConfig() Config {
	return Config{Logger: quiet()}
}

func newTestGroup(t testing.TB, cfg Config) *Group {
	t.Helper()
	g, err := NewGroup("g1", cfg)
	if err != nil {
		t.Fatal(err)
	}
	return g
}

// feeder writes a synthetic rendition: parts of partDur, ten per
// segment (2 s), the first of each segment independent, wall times that
// follow the media.
type feeder struct {
	t    testing.TB
	r    *Rendition
	at   time.Time
	msn  uint64
	part int
}

func newFeeder(t testing.TB, g *Group, name string) *feeder {
	t.Helper()
	r, err := g.Rendition(name)
	if err != nil {
		t.Fatal(err)
	}
	if err := r.SetInit([]byte(name + " init 1")); err != nil {
		t.Fatal(err)
	}
	return &feeder{t: t, r: r, at: t0}
}

func (f *feeder) partData(msn uint64, i int) []byte {
	return []byte(fmt.Sprintf("%s part %d.%d;", f.r.name, msn, i))
}

func (f *feeder) addPart() {
	f.t.Helper()
	err := f.r.AddPart(Part{Data: f.partData(f.msn, f.part), Duration: partDur,
		Independent: f.part == 0, ProgramDateTime: f.at})
	if err != nil {
		f.t.Fatal(err)
	}
	f.at = f.at.Add(partDur)
	f.part++
}

func (f *feeder) closeSegment() Segment {
	f.t.Helper()
	s, err := f.r.CloseSegment()
	if err != nil {
		f.t.Fatal(err)
	}
	f.msn++
	f.part = 0
	return s
}

// segments adds n complete segments of ten parts.
func (f *feeder) segments(n int) {
	f.t.Helper()
	for range n {
		for range 10 {
			f.addPart()
		}
		f.closeSegment()
	}
}

func (f *feeder) parts(n int) {
	f.t.Helper()
	for range n {
		f.addPart()
	}
}

// golden compares got with testdata/name, or rewrites it with -update.
func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -run %s -update to create it)", err, t.Name())
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs from the golden file (run with -update if the change is intended)\n--- got\n%s\n--- want\n%s", name, got, want)
	}
}

// published returns a server with g published as live/demo.
func published(t testing.TB, g *Group) *Server {
	t.Helper()
	s := NewServer(quiet())
	if err := s.Publish("live/demo", g); err != nil {
		t.Fatal(err)
	}
	return s
}

// get runs one request through the handler.
func get(h http.Handler, method, target string, hdr ...string) *httptest.ResponseRecorder {
	req := httptest.NewRequest(method, target, nil)
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, req)
	return w
}

// goGet runs the request in the background; the response arrives on the
// channel.
func goGet(h http.Handler, target string) <-chan *httptest.ResponseRecorder {
	ch := make(chan *httptest.ResponseRecorder, 1)
	go func() { ch <- get(h, http.MethodGet, target) }()
	return ch
}

// parked waits until n requests wait on r. The counter is set by the
// waiter itself right before it blocks, so this needs no timing guess.
func parked(t testing.TB, r *Rendition, n int64) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for r.waiters.Load() != n {
		if time.Now().After(deadline) {
			t.Fatalf("%d requests waiting on %s, want %d", r.waiters.Load(), r.name, n)
		}
		runtime.Gosched()
		time.Sleep(100 * time.Microsecond)
	}
}

// notYet fails if the response already arrived.
func notYet(t testing.TB, ch <-chan *httptest.ResponseRecorder) {
	t.Helper()
	select {
	case w := <-ch:
		t.Fatalf("request answered while it should be held: %d %s", w.Code, w.Body)
	case <-time.After(20 * time.Millisecond):
	}
}

// answered waits for the response (the bound only fails a broken test).
func answered(t testing.TB, ch <-chan *httptest.ResponseRecorder) *httptest.ResponseRecorder {
	t.Helper()
	select {
	case w := <-ch:
		return w
	case <-time.After(10 * time.Second):
		t.Fatal("held request was never answered")
		return nil
	}
}

func slogTo(w io.Writer) *slog.Logger { return slog.New(slog.NewTextHandler(w, nil)) }
