// Package projections will hold onair's read models, each rebuilt by
// replaying the event log (events/store) and kept current from the bus
// (events/bus): VOD, the interaction timeline, moderation, statistics.
//
// Nothing lives here yet: the foundation records the events these read
// models need (stream lifecycle, track configs, every stored segment); the
// projections arrive with the interactive-timeline and recording issues.
package projections
