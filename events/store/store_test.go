package store

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/onair/onair/events"
)

// openT opens a store in a fresh temp dir (or at path) and closes it when
// the test ends.
func openT(t testing.TB, path string, opts Options) *Store {
	t.Helper()
	if path == "" {
		path = filepath.Join(t.TempDir(), "events.db")
	}
	s, err := Open(path, opts)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// ev is a small event that carries id in MediaTime so tests can tell
// events apart after a round trip.
func ev(id int64) *events.Event {
	return &events.Event{
		WallTimeUnixNano: 1_795_000_000_000_000_000 + id,
		MediaTime:        id,
		Body: &events.Event_PublisherConnected{PublisherConnected: &events.PublisherConnected{
			SessionId: "s1", Protocol: "srt", RemoteAddr: "127.0.0.1:5000", PublisherId: fmt.Sprint("p", id),
		}},
	}
}

// readAll returns stream's events from seq from.
func readAll(t testing.TB, s *Store, stream string, from uint64) []*events.Event {
	t.Helper()
	var out []*events.Event
	if err := s.Read(stream, from, func(e *events.Event) error { out = append(out, e); return nil }); err != nil {
		t.Fatalf("Read(%q, %d): %v", stream, from, err)
	}
	return out
}

// checkSeqs fails unless evs are stream's seqs from..from+len-1.
func checkSeqs(t testing.TB, stream string, evs []*events.Event, from uint64) {
	t.Helper()
	for i, e := range evs {
		if want := from + uint64(i); e.Seq != want || e.Stream != stream {
			t.Fatalf("event %d: %s seq %d, want %s seq %d", i, e.Stream, e.Seq, stream, want)
		}
	}
}

func TestRoundTrip(t *testing.T) {
	s := openT(t, "", Options{})
	ctx := context.Background()
	streams := []string{"live/a", "live/b", "live/c"}
	want := map[string][]*events.Event{}
	// Interleave streams and batch sizes so every stream's seqs are
	// assigned across several commits.
	id := int64(0)
	for round := range 5 {
		for si, st := range streams {
			var batch []*events.Event
			for range 1 + (round+si)%3 {
				id++
				batch = append(batch, ev(id))
			}
			last, err := s.Append(ctx, st, batch...)
			if err != nil {
				t.Fatal(err)
			}
			want[st] = append(want[st], batch...)
			if last != uint64(len(want[st])) {
				t.Fatalf("%s: Append returned %d, want %d", st, last, len(want[st]))
			}
			for i, e := range batch {
				if wantSeq := last - uint64(len(batch)-1-i); e.Seq != wantSeq || e.Stream != st || e.SchemaVersion != events.SchemaVersion {
					t.Fatalf("%s: appended event got seq %d stream %q schema %d, want seq %d", st, e.Seq, e.Stream, e.SchemaVersion, wantSeq)
				}
			}
		}
	}
	for _, st := range streams {
		got := readAll(t, s, st, 1)
		checkSeqs(t, st, got, 1)
		if len(got) != len(want[st]) {
			t.Fatalf("%s: read %d events, appended %d", st, len(got), len(want[st]))
		}
		for i := range got {
			if !proto.Equal(got[i], want[st][i]) {
				t.Fatalf("%s seq %d: read %v, appended %v", st, i+1, got[i], want[st][i])
			}
		}
		if last, err := s.LastSeq(st); err != nil || last != uint64(len(want[st])) {
			t.Fatalf("LastSeq(%s) = %d, %v; want %d", st, last, err, len(want[st]))
		}
	}
	names, err := s.Streams()
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(names, ",") != strings.Join(streams, ",") {
		t.Fatalf("Streams() = %q, want %q", names, streams)
	}

	// And the same after a reopen.
	path := s.db.Path()
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s2 := openT(t, path, Options{})
	for _, st := range streams {
		got := readAll(t, s2, st, 1)
		if len(got) != len(want[st]) {
			t.Fatalf("after reopen %s: %d events, want %d", st, len(got), len(want[st]))
		}
		checkSeqs(t, st, got, 1)
	}
	if last, err := s2.Append(ctx, "live/a", ev(1000)); err != nil || last != uint64(len(want["live/a"])+1) {
		t.Fatalf("Append after reopen = %d, %v; want %d", last, err, len(want["live/a"])+1)
	}
}

func TestReadFrom(t *testing.T) {
	s := openT(t, "", Options{})
	const n = 2*readChunk + 7 // crosses Read's chunk boundaries
	batch := make([]*events.Event, n)
	for i := range batch {
		batch[i] = ev(int64(i + 1))
	}
	if _, err := s.Append(context.Background(), "live/a", batch...); err != nil {
		t.Fatal(err)
	}
	for _, from := range []uint64{0, 1, 2, readChunk - 1, readChunk, readChunk + 1, 2 * readChunk, n - 1, n, n + 1, 1 << 40} {
		got := readAll(t, s, "live/a", from)
		first := max(from, 1)
		wantLen := 0
		if first <= n {
			wantLen = int(n - first + 1)
		}
		if len(got) != wantLen {
			t.Fatalf("Read from %d: %d events, want %d", from, len(got), wantLen)
		}
		checkSeqs(t, "live/a", got, first)
		for _, e := range got {
			if e.MediaTime != int64(e.Seq) {
				t.Fatalf("seq %d holds event %d", e.Seq, e.MediaTime)
			}
		}
	}

	// fn's error stops the read and comes back as is.
	stop := errors.New("enough")
	calls := 0
	err := s.Read("live/a", 1, func(*events.Event) error {
		calls++
		if calls == readChunk+3 {
			return stop
		}
		return nil
	})
	if err != stop || calls != readChunk+3 {
		t.Fatalf("Read with failing fn: err %v after %d calls, want %v after %d", err, calls, stop, readChunk+3)
	}
}

func TestNoStream(t *testing.T) {
	s := openT(t, "", Options{})
	if _, err := s.Append(context.Background(), "live/a", ev(1)); err != nil {
		t.Fatal(err)
	}
	err := s.Read("live/nope", 1, func(*events.Event) error { return nil })
	if !errors.Is(err, ErrNoStream) || !strings.Contains(err.Error(), "live/nope") {
		t.Fatalf("Read of a missing stream: %v, want ErrNoStream naming it", err)
	}
	if last, err := s.LastSeq("live/nope"); last != 0 || err != nil {
		t.Fatalf("LastSeq of a missing stream = %d, %v; want 0, nil", last, err)
	}
	if _, err := s.Append(context.Background(), "", ev(1)); !errors.Is(err, ErrEmptyStream) {
		t.Fatalf("Append to \"\": %v, want ErrEmptyStream", err)
	}
	// The file's own marker bucket is not a stream.
	if _, err := s.Append(context.Background(), string(metaBucket), ev(1)); err == nil {
		t.Fatal("Append to the reserved bucket name succeeded")
	}
	if err := s.Read(string(metaBucket), 1, func(*events.Event) error { return nil }); !errors.Is(err, ErrNoStream) {
		t.Fatalf("Read of the reserved bucket: %v, want ErrNoStream", err)
	}
	if names, _ := s.Streams(); len(names) != 1 || names[0] != "live/a" {
		t.Fatalf("Streams() = %q, want [live/a]", names)
	}
}

func TestAppendRejectsBadInput(t *testing.T) {
	s := openT(t, "", Options{})
	ctx := context.Background()
	if _, err := s.Append(ctx, "live/a", ev(1), nil); err == nil {
		t.Fatal("Append of a nil event succeeded")
	}
	canceled, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := s.Append(canceled, "live/a", ev(2)); !errors.Is(err, context.Canceled) {
		t.Fatalf("Append with a canceled ctx: %v, want context.Canceled", err)
	}
	if last, _ := s.LastSeq("live/a"); last != 0 {
		t.Fatalf("rejected appends were stored: LastSeq %d", last)
	}
	if names, _ := s.Streams(); len(names) != 0 {
		t.Fatalf("rejected appends created streams %q", names)
	}
	if last, err := s.Append(ctx, "live/a", ev(3)); err != nil || last != 1 {
		t.Fatalf("Append after rejections = %d, %v; want 1", last, err)
	}
}

// TestBadEventFailsAlone: an event that cannot be encoded fails its own
// Append, not the others that share its group commit.
func TestBadEventFailsAlone(t *testing.T) {
	held, release := make(chan struct{}), make(chan struct{})
	var once sync.Once
	s := openT(t, "", Options{OnCommit: func([]*events.Event) {
		once.Do(func() { close(held); <-release }) // hold the committer after the first commit
	}})
	ctx := context.Background()
	firstDone := make(chan error, 1)
	go func() { _, err := s.Append(ctx, "live/a", ev(1)); firstDone <- err }()
	<-held

	// Queue a good and a bad request behind the held commit, so that they
	// land in the same batch.
	bad := ev(2)
	bad.GetPublisherConnected().RemoteAddr = "\xff\xfe not UTF-8"
	var wg sync.WaitGroup
	var goodSeq uint64
	var goodErr, badErr error
	wg.Add(2)
	go func() { defer wg.Done(); goodSeq, goodErr = s.Append(ctx, "live/a", ev(3), ev(4)) }()
	go func() { defer wg.Done(); _, badErr = s.Append(ctx, "live/b", ev(5), bad) }()
	for len(s.reqs) < 2 {
		runtime.Gosched()
	}
	before := s.Stats()
	close(release)
	wg.Wait()
	if err := <-firstDone; err != nil {
		t.Fatal(err)
	}
	if badErr == nil || !strings.Contains(badErr.Error(), "live/b") {
		t.Fatalf("bad event: err %v, want an error naming live/b", badErr)
	}
	if goodErr != nil || goodSeq != 3 {
		t.Fatalf("good append in the same batch = %d, %v; want 3, nil", goodSeq, goodErr)
	}
	if st := s.Stats(); st.Commits != before.Commits+1 {
		t.Fatalf("good and bad requests took %d commits, want 1 shared", st.Commits-before.Commits)
	}
	checkSeqs(t, "live/a", readAll(t, s, "live/a", 1), 1)
	if got := len(readAll(t, s, "live/a", 1)); got != 3 {
		t.Fatalf("live/a holds %d events, want 3", got)
	}
	if err := s.Read("live/b", 1, func(*events.Event) error { return nil }); !errors.Is(err, ErrNoStream) {
		t.Fatalf("failed request left stream live/b behind: %v", err)
	}
	if bad.Seq != 0 {
		t.Fatalf("unstored event kept seq %d", bad.Seq)
	}
}

func TestCloseDrainsAppends(t *testing.T) {
	path := filepath.Join(t.TempDir(), "events.db")
	s, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	const writers, each = 8, 50
	type ack struct {
		seq uint64
		id  int64
	}
	acks := make(chan ack, writers*each)
	var wg sync.WaitGroup
	var closedErrs, otherErrs sync.Map
	started := make(chan struct{}, writers)
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			started <- struct{}{}
			for i := range each {
				id := int64(w*each + i)
				seq, err := s.Append(context.Background(), "live/a", ev(id))
				switch {
				case err == nil:
					acks <- ack{seq, id}
				case errors.Is(err, ErrClosed):
					closedErrs.Store(id, err)
					return
				default:
					otherErrs.Store(id, err)
					return
				}
			}
		}()
	}
	for range writers {
		<-started
	}
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	wg.Wait()
	close(acks)
	otherErrs.Range(func(k, v any) bool { t.Errorf("append %v: %v, want success or ErrClosed", k, v); return true })

	if _, err := s.Append(context.Background(), "live/a", ev(-1)); !errors.Is(err, ErrClosed) {
		t.Fatalf("Append after Close: %v, want ErrClosed", err)
	}
	if err := s.Read("live/a", 1, func(*events.Event) error { return nil }); !errors.Is(err, ErrClosed) {
		t.Fatalf("Read after Close: %v, want ErrClosed", err)
	}
	if _, err := s.LastSeq("live/a"); !errors.Is(err, ErrClosed) {
		t.Fatalf("LastSeq after Close: %v, want ErrClosed", err)
	}

	// Every acknowledged append is on disk, and nothing else is.
	s2 := openT(t, path, Options{})
	got := map[uint64]int64{}
	if err := s2.Read("live/a", 1, func(e *events.Event) error { got[e.Seq] = e.MediaTime; return nil }); err != nil && !errors.Is(err, ErrNoStream) {
		t.Fatal(err)
	}
	n := 0
	for a := range acks {
		n++
		if id, ok := got[a.seq]; !ok || id != a.id {
			t.Fatalf("acknowledged seq %d (event %d) reads back as %d, %v", a.seq, a.id, id, ok)
		}
	}
	if len(got) != n {
		t.Fatalf("log holds %d events, %d were acknowledged", len(got), n)
	}
	t.Logf("%d of %d appends acknowledged before Close", n, writers*each)
}

func TestLocked(t *testing.T) {
	path := filepath.Join(t.TempDir(), "events.db")
	openT(t, path, Options{})
	s2, err := Open(path, Options{Timeout: 100 * time.Millisecond})
	if err == nil {
		s2.Close()
		t.Fatal("second Open of a locked file succeeded")
	}
	if !errors.Is(err, ErrLocked) || !strings.Contains(err.Error(), path) {
		t.Fatalf("second Open: %v, want ErrLocked naming %s", err, path)
	}
}

func TestOnCommit(t *testing.T) {
	var (
		s        *Store
		mu       sync.Mutex
		seen     = map[string][]uint64{}
		problems []string
	)
	s = openT(t, "", Options{OnCommit: func(evs []*events.Event) {
		// Everything handed over must already be readable by a fresh Read.
		last := map[string]uint64{}
		for _, e := range evs {
			if l, ok := last[e.Stream]; ok && e.Seq != l+1 {
				problems = append(problems, fmt.Sprintf("%s: seq %d follows %d in one commit", e.Stream, e.Seq, l))
			}
			last[e.Stream] = e.Seq
		}
		for st, l := range last {
			var read uint64
			if err := s.Read(st, l, func(e *events.Event) error { read = e.Seq; return nil }); err != nil || read != l {
				problems = append(problems, fmt.Sprintf("%s seq %d announced but a fresh Read finds %d (%v)", st, l, read, err))
			}
		}
		mu.Lock()
		for _, e := range evs {
			seen[e.Stream] = append(seen[e.Stream], e.Seq)
		}
		mu.Unlock()
	}})
	const writers, each = 6, 40
	var wg sync.WaitGroup
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			st := fmt.Sprint("live/", w%3)
			for i := range each {
				seq, err := s.Append(context.Background(), st, ev(int64(i)), ev(int64(i)))
				if err != nil {
					t.Error(err)
					return
				}
				// OnCommit has run by the time Append answers.
				mu.Lock()
				l := seen[st]
				if len(l) == 0 || l[len(l)-1] < seq {
					t.Errorf("%s: Append returned seq %d before OnCommit saw it", st, seq)
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	for _, p := range problems {
		t.Error(p)
	}
	for st, seqs := range seen {
		if len(seqs) != 2*each*writers/3 {
			t.Errorf("%s: OnCommit saw %d events, want %d", st, len(seqs), 2*each*writers/3)
		}
		for i, seq := range seqs {
			if seq != uint64(i+1) {
				t.Fatalf("%s: OnCommit's %dth event has seq %d: not in seq order", st, i+1, seq)
			}
		}
	}
}

func TestConcurrentAppend(t *testing.T) {
	s := openT(t, "", Options{})
	const writers, each, nstreams = 16, 200, 4
	type rec struct {
		stream string
		seq    uint64
	}
	acked := make([][]rec, writers)
	var wg sync.WaitGroup
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			st := fmt.Sprint("live/", w%nstreams)
			for i := range each {
				seq, err := s.Append(context.Background(), st, ev(int64(w*each+i)))
				if err != nil {
					t.Error(err)
					return
				}
				acked[w] = append(acked[w], rec{st, seq})
			}
		}()
	}
	wg.Wait()
	if t.Failed() {
		return
	}
	byID := map[int64]rec{}
	for st := range nstreams {
		name := fmt.Sprint("live/", st)
		got := readAll(t, s, name, 1)
		checkSeqs(t, name, got, 1) // contiguous from 1
		if len(got) != writers/nstreams*each {
			t.Fatalf("%s: %d events, want %d", name, len(got), writers/nstreams*each)
		}
		for _, e := range got {
			if prev, dup := byID[e.MediaTime]; dup {
				t.Fatalf("event %d stored twice: %v and %s seq %d", e.MediaTime, prev, name, e.Seq)
			}
			byID[e.MediaTime] = rec{name, e.Seq}
		}
	}
	if len(byID) != writers*each {
		t.Fatalf("%d distinct events stored, %d appended", len(byID), writers*each)
	}
	for w, recs := range acked {
		for i, r := range recs {
			if got := byID[int64(w*each+i)]; got != r {
				t.Fatalf("writer %d event %d: Append said %v, log has %v", w, i, r, got)
			}
			// One writer's appends keep their order in the log.
			if i > 0 && r.seq <= recs[i-1].seq {
				t.Fatalf("writer %d: seq %d after %d", w, r.seq, recs[i-1].seq)
			}
		}
	}
	st := s.Stats()
	if st.Events != writers*each || st.Commits == 0 || st.Commits > st.Events {
		t.Fatalf("Stats %+v after %d single-event appends", st, writers*each)
	}
	t.Logf("group commit: %d events in %d commits, %.1f events/commit", st.Events, st.Commits, float64(st.Events)/float64(st.Commits))
}

// TestReadCallbackMayAppend: fn runs outside bbolt's read transaction. An
// Append from inside fn that grows the file needs bbolt to remap it,
// which waits for every read transaction: inside one, it never returns.
func TestReadCallbackMayAppend(t *testing.T) {
	// No Close in a cleanup: after a deadlock it would hang too.
	s, err := Open(filepath.Join(t.TempDir(), "events.db"), Options{})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for i := range 3 {
		if _, err := s.Append(ctx, "live/a", ev(int64(i+1))); err != nil {
			t.Fatal(err)
		}
	}
	big := ev(100)
	big.GetPublisherConnected().SessionId = strings.Repeat("x", 4<<20) // forces the file, and its mapping, to grow
	done := make(chan error, 1)
	var read []uint64
	go func() {
		done <- s.Read("live/a", 1, func(e *events.Event) error {
			read = append(read, e.Seq)
			if e.Seq == 1 {
				if _, err := s.Append(ctx, "live/b", big); err != nil {
					return err
				}
			}
			// Appending to the stream being read does not extend this Read.
			_, err := s.Append(ctx, "live/a", ev(int64(e.Seq)+10))
			return err
		})
	}()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(20 * time.Second):
		// Not a timing assertion: a deadlock never finishes.
		t.Fatal("Read deadlocked: Append from fn waits for the read transaction")
	}
	defer s.Close()
	if len(read) != 3 {
		t.Fatalf("Read delivered seqs %v, want the 3 present when it began", read)
	}
	if last, _ := s.LastSeq("live/a"); last != 6 {
		t.Fatalf("LastSeq = %d, want 6", last)
	}
}
