package llhls_test

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"time"

	"github.com/onair/onair/media/llhls"
)

// A packager host wires a session like this: one Group per session,
// published under the stream name; renditions fed with init sections,
// parts and segment cuts as the packager produces them.
func Example() {
	srv := llhls.NewServer(nil)
	g, err := llhls.NewGroup("01hz3k", llhls.Config{}) // gen: the session id
	if err != nil {
		panic(err)
	}
	if err := srv.Publish("live/demo", g); err != nil {
		panic(err)
	}

	video, _ := g.Rendition(llhls.Video)
	video.SetInit([]byte("ftyp+moov"))
	video.SetInfo(llhls.Info{Codecs: "avc1.64001f", Width: 1280, Height: 720, FrameRate: 30})
	wall := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	for i := range 10 {
		video.AddPart(llhls.Part{Data: []byte("moof+mdat"), Duration: 200 * time.Millisecond,
			Independent: i == 0, ProgramDateTime: wall.Add(time.Duration(i) * 200 * time.Millisecond)})
	}
	seg, _ := video.CloseSegment()
	fmt.Println("segment", seg.MSN, seg.Duration, len(seg.Data), "bytes")

	// Mounted at "/" by the binary; players load /live/demo/index.m3u8.
	w := httptest.NewRecorder()
	srv.ServeHTTP(w, httptest.NewRequest(http.MethodGet, "/live/demo/index.m3u8", nil))
	fmt.Println(w.Code, w.Header().Get("Content-Type"))
	fmt.Print(strings.SplitAfterN(w.Body.String(), "\n", 3)[2])
	// Output:
	// segment 0 2s 90 bytes
	// 200 application/vnd.apple.mpegurl
	// #EXT-X-STREAM-INF:BANDWIDTH=360,AVERAGE-BANDWIDTH=360,CODECS="avc1.64001f",RESOLUTION=1280x720,FRAME-RATE=30.000
	// video.m3u8
}
