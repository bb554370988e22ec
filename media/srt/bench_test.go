package srt

import (
	"net"
	"sync/atomic"
	"testing"
	"time"
)

// countingHandler reads publishers and counts what arrives.
type countingHandler struct {
	msgs, bytes atomic.Int64
	stats       chan Stats
}

func (h *countingHandler) Admit(StreamID, net.Addr) error { return nil }
func (h *countingHandler) ServeRead(StreamID, *Conn)      {}
func (h *countingHandler) ServePublish(_ StreamID, c *Conn) {
	b := make([]byte, MaxMessageSize)
	for {
		n, err := c.Read(b)
		if err != nil {
			h.stats <- c.Stats()
			return
		}
		h.msgs.Add(1)
		h.bytes.Add(int64(n))
	}
}

// sendMbps paces the benchmark's sender. A live sender is paced by its
// encoder; unpaced, the 8192-packet receive buffer overflows within the
// latency window and libsrt 1.5.1 stalls the connection.
const sendMbps = 400

// BenchmarkReceive measures ServePublish receiving 1316-byte messages from
// an srtgo caller over loopback, the sender paced at sendMbps.
func BenchmarkReceive(b *testing.B) {
	h := &countingHandler{stats: make(chan Stats, 1)}
	s, _ := startServer(b, Config{}, h)
	s.log = discardLogger()
	sock, _, err := dial(b, s, "publish:live/bench", "")
	if err != nil {
		b.Fatal(err)
	}
	msg := make([]byte, MaxPayloadSize)
	for i := 0; i < len(msg); i += 188 {
		msg[i] = 0x47
	}
	b.SetBytes(MaxPayloadSize)
	b.ResetTimer()
	start := time.Now()
	interval := time.Duration(float64(time.Second) * MaxPayloadSize * 8 / (sendMbps * 1e6))
	for i := 0; i < b.N; i++ {
		if _, err := sock.Write(msg); err != nil {
			b.Fatal(err)
		}
		if i%16 == 15 {
			if d := time.Until(start.Add(time.Duration(i+1) * interval)); d > 0 {
				time.Sleep(d)
			}
		}
	}
	// Wait until delivery stops (TSBPD holds each message for the latency).
	last := int64(-1)
	for h.msgs.Load() != last {
		last = h.msgs.Load()
		time.Sleep(300 * time.Millisecond)
	}
	elapsed := time.Since(start) - 300*time.Millisecond
	b.StopTimer()
	sock.Close()
	st := <-h.stats
	b.ReportMetric(float64(h.bytes.Load())*8/elapsed.Seconds()/1e6, "Mbit/s")
	b.ReportMetric(100*float64(int64(b.N)-h.msgs.Load())/float64(b.N), "%lost")
	b.ReportMetric(float64(st.PacketsRetransmitted), "retrans")
}
