package srt

import (
	"errors"
	"strings"
	"testing"
)

func TestParseStreamID(t *testing.T) {
	ok := []struct {
		in   string
		want StreamID
	}{
		{"publish:live/demo", StreamID{Mode: ModePublish, Name: "live/demo"}},
		{"read:live/demo", StreamID{Mode: ModeRead, Name: "live/demo"}},
		{"publish:live/a.b_c-D9", StreamID{Mode: ModePublish, Name: "live/a.b_c-D9"}},
		{"publish:live/" + strings.Repeat("x", 64), StreamID{Mode: ModePublish, Name: "live/" + strings.Repeat("x", 64)}},
		{"#!::r=live/demo,m=publish", StreamID{Mode: ModePublish, Name: "live/demo"}},
		{"#!::m=publish,r=live/demo", StreamID{Mode: ModePublish, Name: "live/demo"}},
		{"#!::r=live/demo", StreamID{Mode: ModeRead, Name: "live/demo"}},
		{"#!::r=live/demo,m=request", StreamID{Mode: ModeRead, Name: "live/demo"}},
		{"#!::u=alice,r=live/demo,m=publish", StreamID{Mode: ModePublish, Name: "live/demo", User: "alice"}},
		{"#!::r=live/demo,m=publish,s=abc123,t=stream,h=example.com", StreamID{Mode: ModePublish, Name: "live/demo"}},
	}
	for _, c := range ok {
		got, err := ParseStreamID(c.in)
		if err != nil {
			t.Errorf("ParseStreamID(%q): %v", c.in, err)
			continue
		}
		if got != c.want {
			t.Errorf("ParseStreamID(%q) = %+v, want %+v", c.in, got, c.want)
		}
	}

	bad := []struct {
		in   string
		code RejectCode
		msg  string // part of the error text
	}{
		{"x", RejectBadRequest, `streamid "x": want publish:live/<name> or #!::r=live/<name>,m=publish`},
		{"", RejectBadRequest, "want publish:live/<name>"},
		{"publish:", RejectBadRequest, `must start with "live/"`},
		{"publish:demo", RejectBadRequest, `must start with "live/"`},
		{"publish:live/", RejectBadRequest, "<name> is 1 to 64"},
		{"publish:live/" + strings.Repeat("x", 65), RejectBadRequest, "<name> is 1 to 64"},
		{"publish:live/a..b", RejectBadRequest, `not ".."`},
		{"publish:live/a/b", RejectBadRequest, "<name> is 1 to 64"},
		{"publish:live/a b", RejectBadRequest, "<name> is 1 to 64"},
		{"publish:live/démo", RejectBadRequest, "<name> is 1 to 64"},
		{"PUBLISH:live/demo", RejectBadRequest, "want publish:live/<name>"},
		{"write:live/demo", RejectBadRequest, "want publish:live/<name>"},
		{" publish:live/demo", RejectBadRequest, "want publish:live/<name>"},
		{"publish:live/demo ", RejectBadRequest, "<name> is 1 to 64"},
		{"#!::", RejectBadRequest, "is not key=value"},
		{"#!::m=publish", RejectBadRequest, "no r= key"},
		{"#!::r=demo,m=publish", RejectBadRequest, `must start with "live/"`},
		{"#!::r=live/demo,m=bidirectional", RejectBadMode, `m="bidirectional" not supported`},
		{"#!::r=live/demo,m=publish,m=request", RejectBadRequest, `key "m" given twice`},
		{"#!::r=live/demo,x=1", RejectKeyNotSupported, `key "x" not supported`},
		{"#!::r=live/demo,t=file", RejectMediaNotSupported, `t="file" not supported`},
		{"#!::r=live/demo,u=", RejectBadRequest, "u= must be"},
		{"#!::r=live/demo,u=a b", RejectBadRequest, "u= must be"},
		{"#!::r=live/demo,,m=publish", RejectBadRequest, "is not key=value"},
		{"#!:{r=live/demo}", RejectBadRequest, "want publish:live/<name>"},
	}
	for _, c := range bad {
		_, err := ParseStreamID(c.in)
		if err == nil {
			t.Errorf("ParseStreamID(%q) succeeded, want an error", c.in)
			continue
		}
		if !errors.Is(err, ErrBadStreamID) {
			t.Errorf("ParseStreamID(%q) error %v is not ErrBadStreamID", c.in, err)
		}
		if got := RejectCodeOf(err); got != c.code {
			t.Errorf("ParseStreamID(%q) reject code = %v, want %v", c.in, got, c.code)
		}
		if !strings.Contains(err.Error(), c.msg) {
			t.Errorf("ParseStreamID(%q) error = %q, want it to contain %q", c.in, err, c.msg)
		}
	}
}

func TestParseStreamIDClipsLongInput(t *testing.T) {
	_, err := ParseStreamID(strings.Repeat("y", 512))
	if err == nil || len(err.Error()) > 200 {
		t.Fatalf("error for a 512-byte streamid = %q, want a short one", err)
	}
}

func TestStreamIDStringRoundTrips(t *testing.T) {
	for _, id := range []StreamID{{Mode: ModePublish, Name: "live/x"}, {Mode: ModeRead, Name: "live/y.z"}} {
		got, err := ParseStreamID(id.String())
		if err != nil || got != id {
			t.Errorf("ParseStreamID(%q) = %+v, %v; want %+v", id.String(), got, err, id)
		}
	}
}

func FuzzParseStreamID(f *testing.F) {
	for _, s := range []string{
		"publish:live/demo", "read:live/demo", "x", "", "publish:live/a..b",
		"#!::r=live/demo,m=publish", "#!::u=alice,r=live/demo,m=publish,s=1,t=stream,h=h",
		"#!::r=live/demo,m=bidirectional", "#!::r=live/demo,,", "#!::=", "#!::r=live/demo,r=live/x",
		"publish:live/" + strings.Repeat("a", 64), "read:live/\x00",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		id, err := ParseStreamID(s)
		if err != nil {
			if !errors.Is(err, ErrBadStreamID) {
				t.Fatalf("error %v is not ErrBadStreamID", err)
			}
			if c := RejectCodeOf(err); c < RejectFallback || c >= 2000 {
				t.Fatalf("reject code %d is not an access-control code", c)
			}
			if len(err.Error()) > 600 { // %q may quadruple the 80 bytes shown
				t.Fatalf("error is %d bytes long", len(err.Error()))
			}
			return
		}
		if id.Mode != ModePublish && id.Mode != ModeRead {
			t.Fatalf("mode %v", id.Mode)
		}
		name, ok := strings.CutPrefix(id.Name, "live/")
		if !ok || name == "" || len(name) > 64 || strings.Contains(name, "..") {
			t.Fatalf("accepted name %q", id.Name)
		}
		for i := 0; i < len(name); i++ {
			if !nameByte(name[i]) {
				t.Fatalf("accepted name %q", id.Name)
			}
		}
		back, err := ParseStreamID(id.String())
		if err != nil || back.Mode != id.Mode || back.Name != id.Name {
			t.Fatalf("%q -> %+v -> %q -> %+v, %v", s, id, id.String(), back, err)
		}
	})
}

func TestRejectCodeOf(t *testing.T) {
	wrapped := errors.Join(errors.New("context"), Rejectf(RejectConflict, "live/demo already has a publisher"))
	cases := []struct {
		err  error
		want RejectCode
	}{
		{nil, 0},
		{errors.New("no"), RejectForbidden},
		{&Reject{Code: RejectNotFound}, RejectNotFound},
		{wrapped, RejectConflict},
		{&StreamIDError{Code: RejectBadMode}, RejectBadMode},
	}
	for _, c := range cases {
		if got := RejectCodeOf(c.err); got != c.want {
			t.Errorf("RejectCodeOf(%v) = %v, want %v", c.err, got, c.want)
		}
	}
	if s := (&Reject{Code: RejectConflict}).Error(); !strings.Contains(s, "1409") {
		t.Errorf("Reject without Err says %q", s)
	}
}
