package llhls

import (
	"errors"
	"fmt"
	"math"
	"net/url"
	"strconv"
)

// errDirective is wrapped by every Delivery Directive parse error; the
// handler answers 400 with the message.
var errDirective = errors.New("bad delivery directive")

// directives are the Delivery Directives of a media playlist request
// (RFC 8216bis 6.2.5): _HLS_msn, _HLS_part and _HLS_skip.
type directives struct {
	msn    uint64
	part   int64 // -1 when absent
	hasMSN bool
	skip   bool
}

// parseDirectives reads the directives from a raw query string. Other
// parameters (cache busters, future _HLS_ directives) are ignored.
func parseDirectives(rawQuery string) (directives, error) {
	d := directives{part: -1}
	if rawQuery == "" {
		return d, nil
	}
	q, err := url.ParseQuery(rawQuery)
	if err != nil {
		return d, fmt.Errorf("%w: malformed query string: %v", errDirective, err)
	}
	one := func(key string) (string, bool, error) {
		vs, ok := q[key]
		if !ok {
			return "", false, nil
		}
		if len(vs) != 1 {
			return "", false, fmt.Errorf("%w: %s given %d times, want once", errDirective, key, len(vs))
		}
		return vs[0], true, nil
	}
	if v, ok, err := one("_HLS_msn"); err != nil {
		return d, err
	} else if ok {
		if d.msn, err = decimal(v); err != nil {
			return d, fmt.Errorf("%w: _HLS_msn=%q: want a decimal integer (a Media Sequence Number)", errDirective, v)
		}
		d.hasMSN = true
	}
	if v, ok, err := one("_HLS_part"); err != nil {
		return d, err
	} else if ok {
		n, err := decimal(v)
		if err != nil || n > math.MaxInt32 {
			return d, fmt.Errorf("%w: _HLS_part=%q: want a decimal integer (a part index)", errDirective, v)
		}
		if !d.hasMSN {
			return d, fmt.Errorf("%w: _HLS_part needs _HLS_msn (RFC 8216bis 6.2.5.2)", errDirective)
		}
		d.part = int64(n)
	}
	if v, ok, err := one("_HLS_skip"); err != nil {
		return d, err
	} else if ok {
		if v != "YES" && v != "v2" {
			return d, fmt.Errorf("%w: _HLS_skip=%q: want YES or v2", errDirective, v)
		}
		d.skip = true
	}
	return d, nil
}

// decimal parses an RFC 8216bis decimal-integer: digits only, 0 to 2^64-1.
func decimal(s string) (uint64, error) {
	if s == "" || len(s) > 20 {
		return 0, strconv.ErrSyntax
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return 0, strconv.ErrSyntax
		}
	}
	return strconv.ParseUint(s, 10, 64)
}
