package mpegts

import (
	"context"
	"fmt"
)

// astitsLogger receives what astits logs instead of returning: only
// "parsing data failed" for the PES it flushes at the end of its input
// (of the stream, or of the packets of a gathered PES). It counts those
// as parse errors; nothing astits says may exit.
type astitsLogger struct{ d *Demuxer }

func (l astitsLogger) Error(v ...any)            { l.d.parseError(fmt.Errorf("%s", fmt.Sprint(v...))) }
func (l astitsLogger) Errorf(f string, v ...any) { l.d.parseError(fmt.Errorf(f, v...)) }
func (l astitsLogger) Fatal(v ...any)            { l.Error(v...) }
func (l astitsLogger) Fatalf(f string, v ...any) { l.Errorf(f, v...) }
func (l astitsLogger) Print(v ...any)            { l.d.log.Debug(fmt.Sprint(v...)) }
func (l astitsLogger) Printf(f string, v ...any) { l.d.log.Debug(fmt.Sprintf(f, v...)) }
func (l astitsLogger) Debug(v ...any)            { l.Print(v...) }
func (l astitsLogger) Debugf(f string, v ...any) { l.Printf(f, v...) }
func (l astitsLogger) Info(v ...any)             { l.Print(v...) }
func (l astitsLogger) Infof(f string, v ...any)  { l.Printf(f, v...) }
func (l astitsLogger) Warn(v ...any)             { l.Print(v...) }
func (l astitsLogger) Warnf(f string, v ...any)  { l.Printf(f, v...) }

// The context variants make it a complete astikit logger, which astits
// then uses as is instead of wrapping it (an allocation per method, per
// astits demuxer: one for each gathered PES).
func (l astitsLogger) DebugC(_ context.Context, v ...any)            { l.Print(v...) }
func (l astitsLogger) DebugCf(_ context.Context, f string, v ...any) { l.Printf(f, v...) }
func (l astitsLogger) InfoC(_ context.Context, v ...any)             { l.Print(v...) }
func (l astitsLogger) InfoCf(_ context.Context, f string, v ...any)  { l.Printf(f, v...) }
func (l astitsLogger) WarnC(_ context.Context, v ...any)             { l.Print(v...) }
func (l astitsLogger) WarnCf(_ context.Context, f string, v ...any)  { l.Printf(f, v...) }
func (l astitsLogger) ErrorC(_ context.Context, v ...any)            { l.Error(v...) }
func (l astitsLogger) ErrorCf(_ context.Context, f string, v ...any) { l.Errorf(f, v...) }
func (l astitsLogger) FatalC(_ context.Context, v ...any)            { l.Error(v...) }
func (l astitsLogger) FatalCf(_ context.Context, f string, v ...any) { l.Errorf(f, v...) }
