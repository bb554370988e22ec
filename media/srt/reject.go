package srt

import (
	"errors"
	"fmt"
)

// RejectCode is an SRT connection reject reason. Codes from 1000 up are
// the SRT access-control codes (srt/access_control.h, the HTTP status
// plus 1000); codes below 1000 are libsrt's own (SRT_REJ_*).
type RejectCode int

// Access-control reject codes an application may send.
const (
	RejectFallback          RejectCode = 1000
	RejectKeyNotSupported   RejectCode = 1001
	RejectBadRequest        RejectCode = 1400
	RejectUnauthorized      RejectCode = 1401
	RejectOverload          RejectCode = 1402
	RejectForbidden         RejectCode = 1403
	RejectNotFound          RejectCode = 1404
	RejectBadMode           RejectCode = 1405
	RejectUnacceptable      RejectCode = 1406
	RejectConflict          RejectCode = 1409
	RejectMediaNotSupported RejectCode = 1415
	RejectLocked            RejectCode = 1423
	RejectInternal          RejectCode = 1500
	RejectUnimplemented     RejectCode = 1501
	RejectDown              RejectCode = 1503
)

// libsrt's own reject reasons (enum SRT_REJECT_REASON in srt/srt.h) that a
// caller of this package may see.
const (
	RejectPeer      RejectCode = 2  // SRT_REJ_PEER: the listener said no without a code
	RejectBadSecret RejectCode = 10 // SRT_REJ_BADSECRET: passphrases differ
	RejectUnsecure  RejectCode = 11 // SRT_REJ_UNSECURE: one side has a passphrase, the other none
	RejectTimeout   RejectCode = 16 // SRT_REJ_TIMEOUT: no answer to the handshake
)

func (c RejectCode) String() string {
	switch c {
	case RejectFallback:
		return "1000 fallback"
	case RejectKeyNotSupported:
		return "1001 key not supported"
	case RejectBadRequest:
		return "1400 bad request"
	case RejectUnauthorized:
		return "1401 unauthorized"
	case RejectOverload:
		return "1402 overload"
	case RejectForbidden:
		return "1403 forbidden"
	case RejectNotFound:
		return "1404 not found"
	case RejectBadMode:
		return "1405 bad mode"
	case RejectUnacceptable:
		return "1406 unacceptable"
	case RejectConflict:
		return "1409 conflict"
	case RejectMediaNotSupported:
		return "1415 media not supported"
	case RejectLocked:
		return "1423 locked"
	case RejectInternal:
		return "1500 internal error"
	case RejectUnimplemented:
		return "1501 unimplemented"
	case RejectDown:
		return "1503 service down"
	case RejectPeer:
		return "2 rejected by peer"
	case RejectBadSecret:
		return "10 wrong passphrase"
	case RejectUnsecure:
		return "11 passphrase required or unexpected"
	case RejectTimeout:
		return "16 handshake timeout"
	}
	return fmt.Sprintf("%d", int(c))
}

// Reject is an admission error carrying the reject code to send.
// Handler.Admit returns one (or wraps one) to choose the code.
type Reject struct {
	Code RejectCode
	Err  error
}

// Rejectf builds a *Reject with a formatted reason.
func Rejectf(code RejectCode, format string, args ...any) *Reject {
	return &Reject{Code: code, Err: fmt.Errorf(format, args...)}
}

func (r *Reject) Error() string {
	if r.Err == nil {
		return "srt: rejected: " + r.Code.String()
	}
	return r.Err.Error()
}

func (r *Reject) Unwrap() error { return r.Err }

// RejectCode is the code sent to the caller.
func (r *Reject) RejectCode() RejectCode { return r.Code }

// rejectCoder is what admission errors may implement to choose their code.
type rejectCoder interface{ RejectCode() RejectCode }

// RejectCodeOf returns the reject code an admission error sends: the code
// of the first error in the chain that has one, else RejectForbidden.
func RejectCodeOf(err error) RejectCode {
	if err == nil {
		return 0
	}
	var rc rejectCoder
	if errors.As(err, &rc) {
		return rc.RejectCode()
	}
	return RejectForbidden
}
