package store

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/onair/onair/events"
)

// BenchmarkAppend: one op is one event appended by one of P concurrent
// appenders, each Append waiting for its fsync. Group commit is what lets
// throughput grow with P.
func BenchmarkAppend(b *testing.B) {
	for _, p := range []int{1, 8, 64} {
		b.Run(fmt.Sprintf("appenders=%d", p), func(b *testing.B) {
			s, err := Open(filepath.Join(b.TempDir(), "events.db"), Options{})
			if err != nil {
				b.Fatal(err)
			}
			defer s.Close()
			var next atomic.Int64
			var wg sync.WaitGroup
			b.ResetTimer()
			for w := range p {
				wg.Add(1)
				go func() {
					defer wg.Done()
					st := fmt.Sprint("live/", w%4)
					for i := next.Add(1); i <= int64(b.N); i = next.Add(1) {
						if _, err := s.Append(context.Background(), st, ev(i)); err != nil {
							b.Error(err)
							return
						}
					}
				}()
			}
			wg.Wait()
			b.StopTimer()
			st := s.Stats()
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
			b.ReportMetric(float64(st.Events)/float64(st.Commits), "events/commit")
		})
	}
}

var errEnough = errors.New("enough")

// BenchmarkRead: replay speed, one op is one event decoded and delivered.
func BenchmarkRead(b *testing.B) {
	const n = 20_000
	s, err := Open(filepath.Join(b.TempDir(), "events.db"), Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	batch := make([]*events.Event, 1000)
	for i := 0; i < n; i += len(batch) {
		for j := range batch {
			batch[j] = ev(int64(i + j))
		}
		if _, err := s.Append(context.Background(), "live/a", batch...); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportAllocs()
	b.ResetTimer()
	read := 0
	for read < b.N {
		err := s.Read("live/a", 1, func(*events.Event) error {
			read++
			if read == b.N {
				return errEnough
			}
			return nil
		})
		if err != nil && err != errEnough {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(read)/b.Elapsed().Seconds(), "events/s")
}
