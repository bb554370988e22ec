package srt

// The few libsrt calls srtgo does not wrap, or wraps in a way this package
// cannot use safely. Everything else goes through srtgo.

/*
#cgo LDFLAGS: -lsrt
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <netinet/in.h>
#include <srt/srt.h>
#include <srt/logging_api.h>

static int onair_sockname(SRTSOCKET u, unsigned char* ip, int* iplen, int* port) {
	struct sockaddr_storage ss;
	int len = sizeof(ss);
	if (srt_getsockname(u, (struct sockaddr*)&ss, &len) != 0) return -1;
	if (ss.ss_family == AF_INET) {
		struct sockaddr_in* a = (struct sockaddr_in*)&ss;
		memcpy(ip, &a->sin_addr, 4); *iplen = 4; *port = ntohs(a->sin_port);
		return 0;
	}
	if (ss.ss_family == AF_INET6) {
		struct sockaddr_in6* a = (struct sockaddr_in6*)&ss;
		memcpy(ip, &a->sin6_addr, 16); *iplen = 16; *port = ntohs(a->sin6_port);
		return 0;
	}
	return -1;
}

static int onair_streamid(SRTSOCKET u, char* buf, int* len) {
	return srt_getsockflag(u, SRTO_STREAMID, buf, len);
}
*/
import "C"

import (
	"errors"
	"net"
	"unsafe"
)

// sockID is a libsrt socket id (SRTSOCKET).
type sockID = C.SRTSOCKET

// closeID closes a socket by id. srtgo's Close also writes the socket
// struct, which races with srtgo's value-receiver Read/Accept still
// running in other goroutines; closing by id lets those calls return
// first, and srtgo's Close runs once they have.
func closeID(id sockID) { C.srt_close(id) }

// localAddr is the bound address of a socket (srtgo has no getsockname).
func localAddr(id sockID) (*net.UDPAddr, error) {
	var ip [16]byte
	var iplen, port C.int
	if C.onair_sockname(id, (*C.uchar)(unsafe.Pointer(&ip[0])), &iplen, &port) != 0 {
		return nil, errors.New("srt_getsockname failed")
	}
	return &net.UDPAddr{IP: net.IP(append([]byte(nil), ip[:iplen]...)), Port: int(port)}, nil
}

// maxStreamIDLen is the SRT limit on SRTO_STREAMID.
const maxStreamIDLen = 512

// streamIDOf reads SRTO_STREAMID; srtgo's GetSockOptString stops at 256 bytes.
func streamIDOf(id sockID) (string, error) {
	var buf [maxStreamIDLen + 1]byte
	n := C.int(len(buf))
	if C.onair_streamid(id, (*C.char)(unsafe.Pointer(&buf[0])), &n) != 0 {
		return "", errors.New("srt_getsockflag(SRTO_STREAMID) failed")
	}
	return string(buf[:n]), nil
}

// connected reports whether libsrt still has the socket connected: false
// once the peer closed it or libsrt's own idle check broke it.
func connected(id sockID) bool { return C.srt_getsockstate(id) == C.SRTS_CONNECTED }

// rejectReason is why libsrt refused a caller's connection (srtgo only
// reports "connection rejected").
func rejectReason(id sockID) RejectCode { return RejectCode(C.srt_getrejectreason(id)) }

// plainLogLines drops libsrt's own time/thread/level prefix: slog adds them.
func plainLogLines() {
	C.srt_setlogflags(C.SRT_LOGF_DISABLE_TIME | C.SRT_LOGF_DISABLE_THREADNAME |
		C.SRT_LOGF_DISABLE_SEVERITY | C.SRT_LOGF_DISABLE_EOL)
}
