package viewer

import (
	"math/rand/v2"
	"testing"
	"time"

	"github.com/onair/onair/actors"
)

func TestKeyframeRequestsAreRateLimited(t *testing.T) {
	v := New("live/a", "v1")
	c := &actors.Context{Now: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC), Self: "viewer/live/a/v1", Rand: rand.New(rand.NewPCG(1, 1))}
	v.Receive(c, Joined{Protocol: "whep", Remote: "127.0.0.1:1"})
	passed := 0
	// A PLI every 100 ms for 2 s: one request per 500 ms gets through.
	for i := 0; i < 20; i++ {
		for _, e := range v.Receive(c, KeyframeRequest{}) {
			if r, ok := e.(RequestKeyframe); ok && r.Stream == "live/a" {
				passed++
			}
		}
		c.Now = c.Now.Add(100 * time.Millisecond)
	}
	if passed != 4 {
		t.Fatalf("%d requests passed on, want 4 (at 0, 0.5, 1.0, 1.5 s)", passed)
	}
	fx := v.Receive(c, Left{Reason: "DELETE"})
	stopped := false
	for _, e := range fx {
		if _, ok := e.(actors.Stop); ok {
			stopped = true
		}
	}
	if !stopped {
		t.Fatal("viewer did not stop after leaving")
	}
	if fx := v.Receive(c, KeyframeRequest{}); len(fx) != 0 {
		t.Fatal("a viewer that left still asks for keyframes")
	}
	st := v.stats
	if st.KeyframeRequests != 21 || st.KeyframeRequestsPassed != 4 || st.Protocol != "whep" {
		t.Fatalf("stats %+v", st)
	}
}
