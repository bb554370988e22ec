package llhls

import (
	"errors"
	"net/url"
	"strconv"
	"testing"
)

func FuzzBlockingQuery(f *testing.F) {
	for _, s := range []string{
		"", "_HLS_msn=12", "_HLS_msn=12&_HLS_part=3", "_HLS_msn=12&_HLS_part=3&_HLS_skip=YES",
		"_HLS_skip=v2", "_HLS_part=1", "_HLS_msn=18446744073709551615", "_HLS_msn=18446744073709551616",
		"_HLS_msn=1&_HLS_msn=2", "_HLS_msn=%zz", "_HLS_msn=+1", "_HLS_msn=1;x=2", "x=1&_HLS_msn=007",
		"_HLS_msn=1&_HLS_part=2147483648", "_HLS_skip=yes", "_HLS_msn", "_HLS_msn=&_HLS_part=",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, q string) {
		d, err := parseDirectives(q)
		if err != nil {
			if !errors.Is(err, errDirective) {
				t.Fatalf("%q: error %v does not wrap errDirective", q, err)
			}
			return
		}
		if d.part >= 0 && !d.hasMSN {
			t.Fatalf("%q: part %d accepted without _HLS_msn", q, d.part)
		}
		if d.part < -1 || d.part > 1<<31 {
			t.Fatalf("%q: part %d out of range", q, d.part)
		}
		if !d.hasMSN && d.msn != 0 {
			t.Fatalf("%q: msn %d without _HLS_msn", q, d.msn)
		}
		// What was read reads back the same from its canonical form.
		v := url.Values{}
		if d.hasMSN {
			v.Set("_HLS_msn", strconv.FormatUint(d.msn, 10))
		}
		if d.part >= 0 {
			v.Set("_HLS_part", strconv.FormatInt(d.part, 10))
		}
		if d.skip {
			v.Set("_HLS_skip", "YES")
		}
		d2, err := parseDirectives(v.Encode())
		if err != nil || d2 != d {
			t.Fatalf("%q: read %+v, canonical form %q reads %+v, %v", q, d, v.Encode(), d2, err)
		}
	})
}

func FuzzMediaName(f *testing.F) {
	for _, s := range []string{
		"init1.mp4", "init0.mp4", "seg0.m4s", "seg12.m4s", "seg012.m4s", "part3.4.m4s", "part3..m4s",
		"part.4.m4s", "part3.4.5.m4s", "seg18446744073709551616.m4s", "init.mp4", "part1.m4s", "seg-1.m4s",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, name string) {
		kind, msn, idx, ok := parseMediaName(name)
		if !ok {
			return
		}
		// One file, one URI: what parses is exactly its canonical name.
		var canon string
		switch kind {
		case fileInit:
			canon = "init" + strconv.Itoa(idx) + ".mp4"
		case fileSegment:
			canon = "seg" + strconv.FormatUint(msn, 10) + ".m4s"
		case filePart:
			canon = "part" + strconv.FormatUint(msn, 10) + "." + strconv.Itoa(idx) + ".m4s"
		}
		if canon != name {
			t.Fatalf("%q parsed as %q", name, canon)
		}
	})
}
