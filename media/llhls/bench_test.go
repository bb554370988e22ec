package llhls

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync"
	"testing"
	"time"
)

// discard is a ResponseWriter that keeps nothing, so benchmarks measure
// the handler, not a recorder.
type discard struct {
	h    http.Header
	code int
	n    int
}

func (w *discard) Header() http.Header         { return w.h }
func (w *discard) WriteHeader(code int)        { w.code = code }
func (w *discard) Write(p []byte) (int, error) { w.n += len(p); return len(p), nil }

// benchGroup is a live stream like liveGroup with parts of real size:
// 1 Mb/s video in 200 ms parts is 25 KB a part, 128 kb/s audio 3.2 KB.
func benchGroup(b *testing.B) (*Group, *Rendition) {
	g := newTestGroup(b, Config{Logger: quiet()})
	v, _ := g.Rendition(Video)
	a, _ := g.Rendition(Audio)
	for _, r := range []*Rendition{v, a} {
		if err := r.SetInit(make([]byte, 800)); err != nil {
			b.Fatal(err)
		}
	}
	at := t0
	for range 20 {
		for i := range 10 {
			if err := v.AddPart(Part{Data: make([]byte, 25000), Duration: partDur, Independent: i == 0, ProgramDateTime: at}); err != nil {
				b.Fatal(err)
			}
			if err := a.AddPart(Part{Data: make([]byte, 3200), Duration: partDur, Independent: true, ProgramDateTime: at}); err != nil {
				b.Fatal(err)
			}
			at = at.Add(partDur)
		}
		v.CloseSegment()
		a.CloseSegment()
	}
	v.AddPart(Part{Data: make([]byte, 25000), Duration: partDur, Independent: true, ProgramDateTime: at})
	return g, v
}

func BenchmarkServePart(b *testing.B) {
	g, _ := benchGroup(b)
	s := published(b, g)
	req := httptest.NewRequest(http.MethodGet, "/live/demo/video/g1/part19.4.m4s", nil)
	b.Run("serial", func(b *testing.B) {
		b.ReportAllocs()
		b.SetBytes(25000)
		w := &discard{h: http.Header{}}
		for b.Loop() {
			clear(w.h)
			s.ServeHTTP(w, req)
		}
		if w.code != 0 && w.code != http.StatusOK || w.n == 0 {
			b.Fatalf("status %d, %d bytes", w.code, w.n)
		}
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "req/s")
	})
	b.Run("parallel", func(b *testing.B) {
		b.ReportAllocs()
		b.SetBytes(25000)
		start := time.Now()
		b.RunParallel(func(pb *testing.PB) {
			w := &discard{h: http.Header{}}
			for pb.Next() {
				clear(w.h)
				s.ServeHTTP(w, req)
			}
		})
		b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "req/s")
	})
	// Over loopback HTTP/1.1 with keep-alive: what net/http adds.
	b.Run("http", func(b *testing.B) {
		srv := httptest.NewServer(s)
		defer srv.Close()
		url := srv.URL + "/live/demo/video/g1/part19.4.m4s"
		b.SetBytes(25000)
		start := time.Now()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				resp, err := srv.Client().Get(url)
				if err != nil {
					b.Error(err)
					return
				}
				n, _ := io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode != http.StatusOK || n != 25000 {
					b.Errorf("status %d, %d bytes", resp.StatusCode, n)
				}
			}
		})
		b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "req/s")
	})
}

func BenchmarkPlaylistRender(b *testing.B) {
	_, v := benchGroup(b)
	b.Run("render", func(b *testing.B) {
		b.ReportAllocs()
		var n int
		for b.Loop() {
			v.mu.RLock()
			n = len(v.renderLocked(make([]byte, 0, 4096), false))
			v.mu.RUnlock()
		}
		b.SetBytes(int64(n))
	})
	b.Run("delta", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			v.mu.RLock()
			v.renderLocked(make([]byte, 0, 4096), true)
			v.mu.RUnlock()
		}
	})
	b.Run("cached", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			v.playlist(false)
		}
	})
}

// BenchmarkBlockingWakeup parks n blocking playlist reloads on the next
// part, then adds it: one op is the AddPart plus every held request
// answered (woken, playlist rendered once and shared, written).
func BenchmarkBlockingWakeup(b *testing.B) {
	for _, n := range []int{100, 1000, 10000} {
		b.Run("waiters="+strconv.Itoa(n), func(b *testing.B) {
			g, v := benchGroup(b)
			s := published(b, g)
			b.ReportAllocs()
			for i := 0; b.Loop(); i++ {
				b.StopTimer()
				p := v.last.Load()
				req := httptest.NewRequest(http.MethodGet,
					"/live/demo/video.m3u8?_HLS_msn="+itoa(p.msn)+"&_HLS_part="+strconv.Itoa(p.part+1), nil)
				var wg sync.WaitGroup
				for range n {
					wg.Add(1)
					go func() {
						defer wg.Done()
						w := &discard{h: http.Header{}}
						s.ServeHTTP(w, req)
						if w.code != 0 && w.code != http.StatusOK {
							b.Errorf("status %d", w.code)
						}
					}()
				}
				parked(b, v, int64(n))
				b.StartTimer()
				if err := v.AddPart(Part{Data: make([]byte, 25000), Duration: partDur, ProgramDateTime: t0}); err != nil {
					b.Fatal(err)
				}
				wg.Wait()
				if (i+1)%9 == 0 {
					v.CloseSegment()
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(n), "ns/waiter")
		})
	}
}
