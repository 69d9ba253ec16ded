package audit

import (
	"bytes"
	"errors"
	"maps"
	"sync"
	"testing"
	"time"

	"github.com/keyward/keyward/internal/storage"
	"github.com/keyward/keyward/internal/storage/storagetest"
)

// results collects AppendAsync callbacks by request id.
type results struct {
	mu   sync.Mutex
	errs map[string]error
	all  chan struct{} // closed when want callbacks arrived
	want int
}

func newResults(want int) *results {
	return &results{errs: map[string]error{}, all: make(chan struct{}), want: want}
}

func (r *results) done(id string) func(error) {
	return func(err error) {
		r.mu.Lock()
		defer r.mu.Unlock()
		if _, dup := r.errs[id]; dup {
			panic("callback called twice for " + id)
		}
		r.errs[id] = err
		if len(r.errs) == r.want {
			close(r.all)
		}
	}
}

func (r *results) wait(t *testing.T) map[string]error {
	t.Helper()
	select {
	case <-r.all:
	case <-time.After(10 * time.Second):
		r.mu.Lock()
		defer r.mu.Unlock()
		t.Fatalf("%d of %d callbacks arrived", len(r.errs), r.want)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.errs
}

func (r *results) count() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.errs)
}

func TestAppendAsyncOrderAndCallbacks(t *testing.T) {
	storagetest.Each(t, func(t *testing.T, st storage.Store) {
		l := openLog(t, st, newSigner(t), Options{AsyncDelay: time.Millisecond})
		const n = 200
		res := newResults(n)
		for i := range n {
			e := testEntry(i + 1)
			if err := l.AppendAsync(e, res.done(e.RequestID)); err != nil {
				t.Fatalf("AppendAsync %d: %v", i+1, err)
			}
		}
		for id, err := range res.wait(t) {
			if err != nil {
				t.Errorf("%s: %v", id, err)
			}
		}
		got, err := l.List(t.Context(), Filter{Limit: MaxListLimit})
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != n {
			t.Fatalf("%d entries stored, want %d", len(got), n)
		}
		for i, e := range got {
			if want := testEntry(i + 1).RequestID; e.RequestID != want || e.Seq != int64(i+1) {
				t.Fatalf("entry %d is %s (seq %d), want %s: not in queue order", i, e.RequestID, e.Seq, want)
			}
			if e.Detail["version"] == "" {
				t.Fatalf("entry %d lost its detail: %v", i, e.Detail)
			}
		}
		mustVerify(t, l, n)
	})
}

// Alone, asynchronous entries wait for AsyncDelay; a synchronous Append
// takes them along at once, after them in the chain.
func TestAppendAsyncHeldUntilSyncAppend(t *testing.T) {
	st := storagetest.OpenSQLite(t, storage.Options{})
	l := openLog(t, st, newSigner(t), Options{AsyncDelay: time.Hour})
	res := newResults(3)
	for i := range 3 {
		e := testEntry(i + 1)
		if err := l.AppendAsync(e, res.done(e.RequestID)); err != nil {
			t.Fatal(err)
		}
	}
	time.Sleep(50 * time.Millisecond)
	if n := res.count(); n != 0 || storedEntries(t, st) != 0 {
		t.Fatalf("%d callbacks and %d rows before the delay: the entries were not held", n, storedEntries(t, st))
	}
	e := testEntry(4)
	if err := l.Append(t.Context(), e); err != nil {
		t.Fatal(err)
	}
	if e.Seq != 4 {
		t.Errorf("the synchronous entry got seq %d, want 4 (after the three queued before it)", e.Seq)
	}
	res.wait(t)
	mustVerify(t, l, 4)
}

func TestAppendAsyncFullBatchIsWritten(t *testing.T) {
	st := storagetest.OpenSQLite(t, storage.Options{})
	l := openLog(t, st, newSigner(t), Options{AsyncDelay: time.Hour, MaxBatch: 4})
	res := newResults(4)
	for i := range 4 {
		e := testEntry(i + 1)
		if err := l.AppendAsync(e, res.done(e.RequestID)); err != nil {
			t.Fatal(err)
		}
	}
	res.wait(t) // not an hour: a full batch does not wait
	mustVerify(t, l, 4)
}

func TestAppendAsyncWrittenAtClose(t *testing.T) {
	st := storagetest.OpenSQLite(t, storage.Options{})
	l, err := Open(t.Context(), st, newSigner(t), Options{AsyncDelay: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	res := newResults(5)
	for i := range 5 {
		e := testEntry(i + 1)
		if err := l.AppendAsync(e, res.done(e.RequestID)); err != nil {
			t.Fatal(err)
		}
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if n := res.count(); n != 5 {
		t.Fatalf("%d callbacks after Close, want 5", n)
	}
	if n := storedEntries(t, st); n != 5 {
		t.Fatalf("%d rows after Close, want 5", n)
	}
	if err := l.AppendAsync(testEntry(6), nil); !errors.Is(err, ErrClosed) {
		t.Errorf("AppendAsync after Close = %v, want ErrClosed", err)
	}
}

func TestAppendAsyncErrors(t *testing.T) {
	st := storagetest.OpenSQLite(t, storage.Options{})
	fs := &failingStore{Store: st}
	l := openLog(t, fs, newSigner(t), Options{AsyncDelay: time.Millisecond})
	bad := testEntry(1)
	bad.Outcome = "maybe"
	called := false
	if err := l.AppendAsync(bad, func(error) { called = true }); !errors.Is(err, ErrInvalid) {
		t.Fatalf("AppendAsync of an invalid entry = %v, want ErrInvalid", err)
	}
	fs.fail.Store(true)
	res := newResults(2)
	for i := range 2 {
		e := testEntry(i + 2)
		if err := l.AppendAsync(e, res.done(e.RequestID)); err != nil {
			t.Fatal(err)
		}
	}
	for id, err := range res.wait(t) {
		if !errors.Is(err, ErrWrite) || !errors.Is(err, errDiskFull) {
			t.Errorf("%s: callback got %v, want ErrWrite wrapping the storage error", id, err)
		}
	}
	if called {
		t.Error("the callback of a refused entry was called")
	}
	if err := l.Healthy(); !errors.Is(err, ErrWrite) {
		t.Errorf("Healthy = %v after a failed asynchronous batch", err)
	}
}

// At most MaxQueued asynchronous entries wait; past that AppendAsync
// refuses, and accepts again once they are written.
func TestAppendAsyncQueueBound(t *testing.T) {
	st := storagetest.OpenSQLite(t, storage.Options{})
	l := openLog(t, st, newSigner(t), Options{AsyncDelay: time.Hour, MaxQueued: 2})
	res := newResults(3)
	for i := range 2 {
		e := testEntry(i + 1)
		if err := l.AppendAsync(e, res.done(e.RequestID)); err != nil {
			t.Fatal(err)
		}
	}
	called := false
	if err := l.AppendAsync(testEntry(3), func(error) { called = true }); !errors.Is(err, ErrQueueFull) {
		t.Fatalf("third AppendAsync = %v, want ErrQueueFull", err)
	}
	// A synchronous append takes the queued ones along.
	if err := l.Append(t.Context(), testEntry(4)); err != nil {
		t.Fatal(err)
	}
	e := testEntry(5)
	if err := l.AppendAsync(e, res.done(e.RequestID)); err != nil {
		t.Fatalf("AppendAsync after the queue was written = %v", err)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	res.wait(t)
	if called {
		t.Error("the callback of a refused entry was called")
	}
	if n := storedEntries(t, st); n != 4 {
		t.Errorf("%d rows, want 4", n)
	}
}

// An entry given its detail as Details stores, hashes and reads back as
// the same entry given the map: through AppendAsync (which recycles its
// requests), Append (which returns the map) and AppendTx.
func TestDetailsStoreAsTheMap(t *testing.T) {
	storagetest.Each(t, func(t *testing.T, st storage.Store) {
		l := openLog(t, st, newSigner(t), Options{AsyncDelay: time.Millisecond})
		details := Details{{"method", "GET"}, {"path", "/v1/\"ping\"\n"}, {"bytes_in", "0"}, {"bytes_out", "27"}, {"bad", "\xff\x00"}}
		want := map[string]string{"method": "GET", "path": "/v1/\"ping\"\n", "bytes_in": "0", "bytes_out": "27", "bad": "\uFFFD\uFFFD"}
		const rounds = 50
		res := newResults(rounds)
		for i := range rounds {
			e := testEntry(i + 1)
			e.Detail, e.Details = nil, details
			if err := l.AppendAsync(e, res.done(e.RequestID)); err != nil {
				t.Fatal(err)
			}
		}
		for id, err := range res.wait(t) {
			if err != nil {
				t.Errorf("%s: %v", id, err)
			}
		}
		e := testEntry(rounds + 1)
		e.Detail, e.Details = nil, details
		if err := l.Append(t.Context(), e); err != nil || !maps.Equal(e.Detail, want) || e.Details != nil {
			t.Fatalf("Append: %v; entry's detail %q, details %q", err, e.Detail, e.Details)
		}
		tx := testEntry(rounds + 2)
		tx.Detail, tx.Details = nil, details
		if err := st.Write(t.Context(), func(stx storage.Tx) error { return l.AppendTx(t.Context(), stx, tx) }); err != nil || !maps.Equal(tx.Detail, want) {
			t.Fatalf("AppendTx: %v; entry's detail %q", err, tx.Detail)
		}
		got, err := l.List(t.Context(), Filter{Limit: MaxListLimit})
		if err != nil || len(got) != rounds+2 {
			t.Fatalf("List: %d entries, %v", len(got), err)
		}
		for _, g := range got {
			if !maps.Equal(g.Detail, want) {
				t.Fatalf("entry %d reads back detail %q, want %q", g.Seq, g.Detail, want)
			}
			m := testEntry(int(g.Seq))
			m.Detail = map[string]string{"method": "GET", "path": "/v1/\"ping\"\n", "bytes_in": "0", "bytes_out": "27", "bad": "\xff\x00"}
			r, _, err := l.prepare(m, false)
			if err != nil {
				t.Fatal(err)
			}
			r.seq, r.time = g.Seq, g.Time.UnixNano()
			if sum, _ := r.sum(g.PrevHash, nil); !bytes.Equal(sum[:], g.Hash) {
				t.Fatalf("entry %d: hash %x, want the map's %x", g.Seq, g.Hash, sum)
			}
		}
		mustVerify(t, l, rounds+2)
	})
}
