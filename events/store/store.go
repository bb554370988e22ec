// Package store is onair's durable event log on bbolt: one bucket per
// stream, 8-byte big-endian sequence keys, checksummed records (see
// package events), group commit with fsync before any append returns.
//
// Crash safety comes from bbolt's copy-on-write pages and its two meta
// pages: a transaction torn by a crash is never referenced by a valid
// meta page, so Open finds the last committed one. Records carry their
// own checksum on top so bit rot is reported rather than replayed.
package store

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	bolt "go.etcd.io/bbolt"
	bolterrors "go.etcd.io/bbolt/errors"

	"github.com/onair/onair/events"
)

// Errors.
var (
	ErrClosed      = errors.New("store: closed")
	ErrLocked      = errors.New("store: data dir is in use by another onair process")
	ErrNoStream    = errors.New("store: no such stream")
	ErrEmptyStream = errors.New("store: stream name is empty")
)

// metaBucket holds nothing yet; it marks the file as an onair log.
var metaBucket = []byte("\x00onair")

// Options tune a store.
type Options struct {
	// Timeout waits for another process to release the file lock; default 1 s.
	Timeout time.Duration
	// MaxBatch caps how many appends share one transaction; default 4096.
	MaxBatch int
	// OnCommit runs after each durable commit, with that commit's events
	// in log order, on the committer goroutine, before the appenders get
	// their answer: keep it quick and never call Append from it (the
	// committer would wait for itself).
	OnCommit func([]*events.Event)
	Logger   *slog.Logger
}

type request struct {
	stream string
	evs    []*events.Event
	done   chan result
}

type result struct {
	last uint64
	err  error
}

// Store is the event log.
type Store struct {
	db   *bolt.DB
	opts Options
	reqs chan *request

	mu     sync.RWMutex // guards closed against sends on reqs
	closed bool
	wg     sync.WaitGroup

	statMu       sync.Mutex
	commits      uint64
	committedEvs uint64
}

// Open opens (creating if needed) the log at path and checks it.
func Open(path string, opts Options) (*Store, error) {
	if opts.Timeout <= 0 {
		opts.Timeout = time.Second
	}
	if opts.MaxBatch <= 0 {
		opts.MaxBatch = 4096
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	db, err := bolt.Open(path, 0o644, &bolt.Options{Timeout: opts.Timeout, FreelistType: bolt.FreelistMapType})
	if errors.Is(err, bolterrors.ErrTimeout) {
		return nil, fmt.Errorf("%w (%s)", ErrLocked, path)
	}
	if errors.Is(err, bolterrors.ErrInvalid) || errors.Is(err, bolterrors.ErrChecksum) {
		// Both meta pages bad: more than a torn last commit, which bbolt
		// survives by falling back to the other meta page.
		return nil, fmt.Errorf("store: open %s: %w (the file is damaged or not an onair log; restore it from a backup)", path, err)
	}
	if err != nil {
		return nil, fmt.Errorf("store: open %s: %w", path, err)
	}
	s := &Store{db: db, opts: opts, reqs: make(chan *request, 1024)}
	if err := s.check(); err != nil {
		db.Close()
		if errors.Is(err, events.ErrCorrupt) {
			return nil, fmt.Errorf("store: open %s: %w (the log is damaged; restore it from a backup)", path, err)
		}
		return nil, fmt.Errorf("store: open %s: %w", path, err)
	}
	s.wg.Add(1)
	go s.commitLoop()
	return s, nil
}

// check verifies the newest record of every stream, where a torn write
// would show, and creates the meta bucket.
func (s *Store) check() error {
	return s.db.Update(func(tx *bolt.Tx) error {
		if _, err := tx.CreateBucketIfNotExists(metaBucket); err != nil {
			return err
		}
		return tx.ForEach(func(name []byte, b *bolt.Bucket) error {
			if string(name) == string(metaBucket) {
				return nil
			}
			k, v := b.Cursor().Last()
			if k == nil {
				return nil
			}
			if _, err := events.Decode(v); err != nil {
				return fmt.Errorf("store: stream %s seq %d: %w", name, binary.BigEndian.Uint64(k), err)
			}
			return nil
		})
	})
}

// Append adds evs to stream's log, assigning Seq and Stream, and returns
// the last sequence number once the events are on disk.
func (s *Store) Append(ctx context.Context, stream string, evs ...*events.Event) (uint64, error) {
	if stream == "" {
		return 0, ErrEmptyStream
	}
	if stream == string(metaBucket) {
		return 0, fmt.Errorf("store: stream name %q is reserved; pick another", stream)
	}
	if len(evs) == 0 {
		return s.LastSeq(stream)
	}
	for i, ev := range evs {
		// A nil event would panic on the committer goroutine and take the
		// process down with it.
		if ev == nil {
			return 0, fmt.Errorf("store: append to %q: event %d of %d is nil", stream, i, len(evs))
		}
	}
	// An already finished ctx must not race an open queue slot.
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	req := &request{stream: stream, evs: evs, done: make(chan result, 1)}
	s.mu.RLock()
	if s.closed {
		s.mu.RUnlock()
		return 0, ErrClosed
	}
	select {
	case s.reqs <- req:
	case <-ctx.Done():
		s.mu.RUnlock()
		return 0, ctx.Err()
	}
	s.mu.RUnlock()
	// Once queued the append will happen; waiting is only about the answer.
	r := <-req.done
	return r.last, r.err
}

// commitLoop is the group commit: everything queued while the previous
// transaction was fsyncing goes into the next one.
func (s *Store) commitLoop() {
	defer s.wg.Done()
	for first := range s.reqs {
		batch := []*request{first}
		n := len(first.evs)
	fill:
		for n < s.opts.MaxBatch {
			select {
			case r, ok := <-s.reqs:
				if !ok {
					break fill
				}
				batch = append(batch, r)
				n += len(r.evs)
			default:
				break fill
			}
		}
		s.commit(batch)
	}
}

func (s *Store) commit(batch []*request) {
	results := make([]result, len(batch))
	var committed []*events.Event
	err := s.db.Update(func(tx *bolt.Tx) error {
		committed = committed[:0]
		for i, r := range batch {
			reqErr, txErr := s.put(tx, r)
			if txErr != nil {
				return txErr
			}
			if reqErr != nil {
				// This request fails alone; the rest of the batch still commits.
				results[i].err = reqErr
				continue
			}
			results[i].last = r.evs[len(r.evs)-1].Seq
			committed = append(committed, r.evs...)
		}
		return nil
	})
	if err != nil {
		committed = nil
		for i, r := range batch {
			results[i] = result{err: fmt.Errorf("store: commit: %w", err)}
			unassign(r.evs)
		}
	}
	// Counters and OnCommit before the answers: once Append returns, its
	// events are in Stats and have been handed to OnCommit, and OnCommit
	// never reads an event its appender is already free to change.
	if err == nil {
		s.statMu.Lock()
		s.commits++
		s.committedEvs += uint64(len(committed))
		s.statMu.Unlock()
		if s.opts.OnCommit != nil && len(committed) > 0 {
			s.opts.OnCommit(committed)
		}
	}
	for i, r := range batch {
		r.done <- results[i]
	}
}

// put writes one request's events. reqErr fails only this request and
// leaves the bucket untouched: every record is encoded before the first
// Put, so an event that cannot be encoded (e.g. a string that is not
// UTF-8) costs nothing. txErr, after some Puts, must abort the transaction.
func (s *Store) put(tx *bolt.Tx, r *request) (reqErr, txErr error) {
	var next uint64
	if b := tx.Bucket([]byte(r.stream)); b != nil {
		next = b.Sequence()
	}
	recs := make([][]byte, len(r.evs))
	var err error
	for i, ev := range r.evs {
		next++
		ev.Stream, ev.Seq = r.stream, next
		if ev.SchemaVersion == 0 {
			ev.SchemaVersion = events.SchemaVersion
		}
		// bbolt keeps the value slice until commit: each record owns its bytes.
		if recs[i], err = events.Encode(ev); err != nil {
			unassign(r.evs)
			return fmt.Errorf("store: append to %q, event %d of %d: %w", r.stream, i, len(r.evs), err), nil
		}
	}
	// Created only now, so a request that fails leaves no empty stream behind.
	b, err := tx.CreateBucketIfNotExists([]byte(r.stream))
	if err != nil {
		unassign(r.evs)
		return fmt.Errorf("store: stream %q: %w", r.stream, err), nil
	}
	for i, ev := range r.evs {
		if err := b.Put(seqKey(ev.Seq), recs[i]); err != nil {
			return nil, fmt.Errorf("stream %q seq %d: %w", r.stream, ev.Seq, err)
		}
	}
	return nil, b.SetSequence(next)
}

// unassign clears the sequence numbers of events that were not stored, so
// no caller mistakes them for logged ones.
func unassign(evs []*events.Event) {
	for _, ev := range evs {
		ev.Seq = 0
	}
}

func seqKey(seq uint64) []byte {
	var k [8]byte
	binary.BigEndian.PutUint64(k[:], seq)
	return k[:]
}

// readChunk bounds how many events Read decodes per read transaction.
const readChunk = 256

// Read calls fn for each event of stream with Seq >= from, in order,
// until fn returns an error (returned as is) or the log ends. It reads the
// log as it was when Read began: events appended meanwhile, even by fn,
// are not delivered.
//
// fn runs outside any bbolt transaction, so it may Append: an open read
// transaction would block the commit that has to grow the file, and
// Append would wait for it forever.
func (s *Store) Read(stream string, from uint64, fn func(*events.Event) error) error {
	var last uint64 // the newest seq when Read began
	first := true
	buf := make([]*events.Event, 0, readChunk)
	for {
		buf = buf[:0]
		err := s.view(func(tx *bolt.Tx) error {
			b := tx.Bucket([]byte(stream))
			if b == nil || stream == string(metaBucket) {
				return fmt.Errorf("%w: %q", ErrNoStream, stream)
			}
			c := b.Cursor()
			if first {
				if k, _ := c.Last(); k != nil {
					last = binary.BigEndian.Uint64(k)
				}
				first = false
			}
			for k, v := c.Seek(seqKey(from)); k != nil && len(buf) < readChunk; k, v = c.Next() {
				seq := binary.BigEndian.Uint64(k)
				if seq > last {
					break
				}
				ev, err := events.Decode(v)
				if err != nil {
					return fmt.Errorf("store: stream %s seq %d: %w", stream, seq, err)
				}
				buf = append(buf, ev)
				from = seq + 1
			}
			return nil
		})
		// Events before a damaged one are still delivered.
		for _, ev := range buf {
			if err := fn(ev); err != nil {
				return err
			}
		}
		if err != nil {
			return err
		}
		if len(buf) < readChunk || from > last {
			return nil
		}
	}
}

// view is db.View with a closed store reported as ErrClosed.
func (s *Store) view(fn func(*bolt.Tx) error) error {
	err := s.db.View(fn)
	if errors.Is(err, bolterrors.ErrDatabaseNotOpen) {
		return ErrClosed
	}
	return err
}

// LastSeq is the sequence of stream's newest event, 0 for none.
func (s *Store) LastSeq(stream string) (uint64, error) {
	var last uint64
	err := s.view(func(tx *bolt.Tx) error {
		if b := tx.Bucket([]byte(stream)); b != nil {
			if k, _ := b.Cursor().Last(); k != nil {
				last = binary.BigEndian.Uint64(k)
			}
		}
		return nil
	})
	return last, err
}

// Streams lists every stream with a log.
func (s *Store) Streams() ([]string, error) {
	var out []string
	err := s.view(func(tx *bolt.Tx) error {
		return tx.ForEach(func(name []byte, _ *bolt.Bucket) error {
			if string(name) != string(metaBucket) {
				out = append(out, string(name))
			}
			return nil
		})
	})
	return out, err
}

// Stats reports how well group commit is batching.
type Stats struct {
	Commits, Events uint64
}

// Stats returns the commit counters.
func (s *Store) Stats() Stats {
	s.statMu.Lock()
	defer s.statMu.Unlock()
	return Stats{Commits: s.commits, Events: s.committedEvs}
}

// Close finishes queued appends and closes the file. Safe to call twice.
func (s *Store) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	close(s.reqs)
	s.mu.Unlock()
	s.wg.Wait()
	return s.db.Close()
}
