package srt

import (
	"encoding/binary"
	"io"
	"log/slog"
	"math/rand"
	"net"
	"runtime"
	"testing"
	"time"
)

func runtimeGoroutines() int { return runtime.NumGoroutine() }

func discardLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// SRT handshake layout (draft-sharabayko-srt, section 3.2.1).
const (
	hsHeaderLen   = 16
	hsCIFLen      = 48
	hsInduction   = 1
	hsConclusion  = 0xFFFFFFFF
	hsExtHSREQ    = 1
	hsExtSID      = 5
	hsFlagHSREQ   = 1
	hsFlagCONFIG  = 4
	srtVersion151 = 0x00010501
)

// handshake builds an SRT handshake control packet.
func handshake(version uint32, ext uint16, hsType, sockID, cookie uint32, extensions []byte) []byte {
	p := make([]byte, hsHeaderLen+hsCIFLen, hsHeaderLen+hsCIFLen+len(extensions))
	binary.BigEndian.PutUint32(p[0:], 0x80000000) // control, type 0 = handshake
	binary.BigEndian.PutUint32(p[16:], version)
	binary.BigEndian.PutUint16(p[22:], ext)
	binary.BigEndian.PutUint32(p[24:], 12345) // initial sequence
	binary.BigEndian.PutUint32(p[28:], 1500)  // MTU
	binary.BigEndian.PutUint32(p[32:], 8192)  // flow window
	binary.BigEndian.PutUint32(p[36:], hsType)
	binary.BigEndian.PutUint32(p[40:], sockID)
	binary.BigEndian.PutUint32(p[44:], cookie)
	copy(p[48:], net.IPv4(127, 0, 0, 1).To16())
	return append(p, extensions...)
}

// extBlock is one handshake extension: type, length in 32-bit words, body.
func extBlock(typ uint16, words uint16, body []byte) []byte {
	b := make([]byte, 4, 4+len(body))
	binary.BigEndian.PutUint16(b[0:], typ)
	binary.BigEndian.PutUint16(b[2:], words)
	return append(b, body...)
}

// sendGarbage throws random and malformed SRT datagrams at addr: random
// bytes, truncated handshakes, and conclusions carrying a valid cookie
// but corrupted or oversized extensions and random stream ids.
func sendGarbage(t *testing.T, addr *net.UDPAddr, seed int64) int {
	t.Helper()
	rng := rand.New(rand.NewSource(seed))
	sent := 0
	send := func(c *net.UDPConn, b []byte) {
		if _, err := c.Write(b); err == nil {
			sent++
		}
	}
	dial := func() *net.UDPConn {
		c, err := net.DialUDP("udp4", nil, addr)
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	random := func(n int) []byte {
		b := make([]byte, n)
		rng.Read(b)
		return b
	}

	c := dial()
	defer func() { c.Close() }()
	for i := 0; i < 400; i++ {
		send(c, random(rng.Intn(1500)))
		if i%50 == 49 {
			c.Close()
			c = dial() // new source port
		}
	}
	for i := 0; i < 300; i++ { // control packets with random bodies
		b := random(hsHeaderLen + rng.Intn(120))
		b[0] |= 0x80
		if i%2 == 0 {
			b[0], b[1] = 0x80, 0 // handshake type
		}
		send(c, b)
	}
	induction := handshake(4, 2, hsInduction, rng.Uint32()&0x3FFFFFFF, 0, nil)
	for n := 0; n < len(induction); n++ {
		send(c, induction[:n])
	}

	// Real inductions, then broken conclusions with the cookie they earned.
	for round := 0; round < 40; round++ {
		c.Close()
		c = dial()
		sock := rng.Uint32() & 0x3FFFFFFF
		send(c, handshake(4, 2, hsInduction, sock, 0, nil))
		c.SetReadDeadline(time.Now().Add(500 * time.Millisecond))
		resp := make([]byte, 1500)
		n, err := c.Read(resp)
		if err != nil || n < hsHeaderLen+hsCIFLen {
			t.Fatalf("no induction response (round %d): n=%d err=%v", round, n, err)
		}
		cookie := binary.BigEndian.Uint32(resp[44:])

		hsreq := make([]byte, 12)
		binary.BigEndian.PutUint32(hsreq[0:], srtVersion151)
		binary.BigEndian.PutUint32(hsreq[4:], 0xBF)
		binary.BigEndian.PutUint32(hsreq[8:], 120<<16|120)
		sid := random(4 * (1 + rng.Intn(16)))
		exts := append(extBlock(hsExtHSREQ, 3, hsreq), extBlock(hsExtSID, uint16(len(sid)/4), sid)...)
		good := handshake(5, hsFlagHSREQ|hsFlagCONFIG, hsConclusion, sock, cookie, exts)

		switch round % 4 {
		case 0: // truncated anywhere
			send(c, good[:hsHeaderLen+rng.Intn(len(good)-hsHeaderLen)])
		case 1: // extension lengths that run past the packet
			bad := append([]byte(nil), good...)
			binary.BigEndian.PutUint16(bad[hsHeaderLen+hsCIFLen+2:], 0xFFFF)
			send(c, bad)
		case 2: // a few flipped bytes
			bad := append([]byte(nil), good...)
			for k := 0; k < 1+rng.Intn(4); k++ {
				bad[hsHeaderLen+rng.Intn(len(bad)-hsHeaderLen)] ^= byte(1 + rng.Intn(255))
			}
			send(c, bad)
		case 3: // flags promising extensions that are not there
			send(c, handshake(5, 0xFFFF, hsConclusion, sock, cookie, random(rng.Intn(8))))
		}
	}
	// Data packets to random socket ids.
	for i := 0; i < 200; i++ {
		b := random(hsHeaderLen + rng.Intn(1316))
		b[0] &= 0x7F
		send(c, b)
	}
	return sent
}
