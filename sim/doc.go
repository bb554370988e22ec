// Package sim will run onair's actor behaviours deterministically: a
// virtual clock, seeded randomness, simulated links and viewers, and
// invariants checked after every step, so the same seed always gives the
// same run.
//
// The behaviours in actors/ are already written for it: they take their
// time and randomness from actors.Context and return effects instead of
// acting (see actors/stream's tests, which drive one under a virtual
// clock). The runtime itself arrives with the simulation issue.
package sim
