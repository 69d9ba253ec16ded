package audit

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/keyward/keyward/internal/storage"
	"github.com/keyward/keyward/internal/storage/storagetest"
)

func TestAppendStoresWhatItReturns(t *testing.T) {
	storagetest.Each(t, func(t *testing.T, st storage.Store) {
		l := openLog(t, st, newSigner(t), Options{})
		e := testEntry(1)
		e.Time = time.Date(2025, 3, 1, 12, 0, 0, 123456789, time.FixedZone("x", 3600))
		if err := l.Append(t.Context(), e); err != nil {
			t.Fatal(err)
		}
		if e.Seq != 1 || !bytes.Equal(e.PrevHash, zeroHash) || len(e.Hash) != HashSize {
			t.Fatalf("after Append: seq %d prev %x hash %x", e.Seq, e.PrevHash, e.Hash)
		}
		if e.Time.Location() != time.UTC || e.Time.UnixNano() != time.Date(2025, 3, 1, 11, 0, 0, 123456789, time.UTC).UnixNano() {
			t.Errorf("Time = %v, want UTC with nanoseconds kept", e.Time)
		}
		e2 := testEntry(2) // zero Time: the log's clock
		if err := l.Append(t.Context(), e2); err != nil {
			t.Fatal(err)
		}
		if e2.Seq != 2 || !bytes.Equal(e2.PrevHash, e.Hash) || e2.Time.IsZero() {
			t.Fatalf("second entry: seq %d, prev %x (want %x), time %v", e2.Seq, e2.PrevHash, e.Hash, e2.Time)
		}
		got, err := l.List(t.Context(), Filter{})
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != 2 || !reflect.DeepEqual(got[0], *e) || !reflect.DeepEqual(got[1], *e2) {
			t.Fatalf("List =\n%+v\nwant\n%+v\n%+v", got, *e, *e2)
		}
		mustVerify(t, l, 2)
	})
}

func TestAppendWithDoneContextWritesNothing(t *testing.T) {
	st := storagetest.OpenSQLite(t, storage.Options{})
	l := openLog(t, st, newSigner(t), Options{})
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if err := l.Append(ctx, testEntry(1)); !errors.Is(err, context.Canceled) {
		t.Fatalf("Append with a cancelled context = %v", err)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if n := storedEntries(t, st); n != 0 {
		t.Errorf("%d entries written for a cancelled Append", n)
	}
}

func TestAppendRejectsInvalid(t *testing.T) {
	st := storagetest.OpenSQLite(t, storage.Options{})
	l := openLog(t, st, newSigner(t), Options{})
	for _, e := range []*Entry{
		nil,
		{RequestID: "r"},
		{RequestID: "r", Outcome: "maybe"},
		{RequestID: "r", Outcome: OutcomeAllowed, Time: time.Date(3000, 1, 1, 0, 0, 0, 0, time.UTC)},
	} {
		if err := l.Append(t.Context(), e); !errors.Is(err, ErrInvalid) {
			t.Errorf("Append(%+v) = %v, want ErrInvalid", e, err)
		}
	}
	if n := storedEntries(t, st); n != 0 {
		t.Errorf("%d entries stored after invalid appends", n)
	}
}

// Appends from many goroutines through Append and AppendTx, on two Logs
// sharing the store (two nodes), form one contiguous, verifiable chain.
func TestConcurrentAppendAndAppendTx(t *testing.T) {
	storagetest.Each(t, func(t *testing.T, st storage.Store) {
		signer := newSigner(t)
		a := openLog(t, st, signer, Options{CheckpointEvery: 7, MaxBatch: 5})
		b := openLog(t, st, signer, Options{CheckpointEvery: 7})
		const workers, each = 12, 15
		var mu sync.Mutex
		seen := map[int64]string{}
		record := func(e *Entry) {
			mu.Lock()
			defer mu.Unlock()
			if prev, dup := seen[e.Seq]; dup {
				t.Errorf("seq %d given to %s and %s", e.Seq, prev, e.RequestID)
			}
			seen[e.Seq] = e.RequestID
		}
		var wg sync.WaitGroup
		for w := range workers {
			wg.Go(func() {
				l := []*Log{a, b}[w%2]
				for i := range each {
					e := testEntry(w*1000 + i)
					var err error
					if w%3 == 0 {
						// A change and its entry in one transaction.
						err = st.Write(t.Context(), func(tx storage.Tx) error {
							if err := storage.PutSys(t.Context(), tx, e.RequestID, []byte("v")); err != nil {
								return err
							}
							return l.AppendTx(t.Context(), tx, e)
						})
					} else {
						err = l.Append(t.Context(), e)
					}
					if err != nil {
						t.Errorf("worker %d entry %d: %v", w, i, err)
						return
					}
					record(e)
				}
			})
		}
		wg.Wait()
		const total = workers * each
		for seq := int64(1); seq <= total; seq++ {
			if _, ok := seen[seq]; !ok {
				t.Errorf("no caller got seq %d", seq)
			}
		}
		res := mustVerify(t, a, total)
		if res.Checkpoints < total/7 {
			t.Errorf("%d checkpoints for %d entries every 7", res.Checkpoints, total)
		}
		if n := count(t, st, "sys"); n != int64(workers/3*each) {
			t.Errorf("%d sys rows, want %d", n, workers/3*each)
		}
	})
}

func TestAppendTxRollback(t *testing.T) {
	storagetest.Each(t, func(t *testing.T, st storage.Store) {
		l := openLog(t, st, newSigner(t), Options{CheckpointEvery: 4})
		appendN(t, l, 3)
		errAbort := errors.New("handler failed")
		e := testEntry(99)
		err := st.Write(t.Context(), func(tx storage.Tx) error {
			if err := l.AppendTx(t.Context(), tx, e); err != nil {
				return err
			}
			if e.Seq != 4 {
				t.Errorf("AppendTx seq = %d, want 4", e.Seq)
			}
			return errAbort
		})
		if !errors.Is(err, errAbort) {
			t.Fatalf("Write = %v", err)
		}
		if n := storedEntries(t, st); n != 3 {
			t.Fatalf("%d entries after a rolled-back AppendTx, want 3", n)
		}
		if n := count(t, st, "audit_checkpoints"); n != 0 {
			t.Fatalf("%d checkpoints after a rolled-back AppendTx, want 0", n)
		}
		mustVerify(t, l, 3)
		next := testEntry(5)
		if err := l.Append(t.Context(), next); err != nil {
			t.Fatal(err)
		}
		if next.Seq != 4 {
			t.Errorf("after rollback the next seq is %d, want 4", next.Seq)
		}
		mustVerify(t, l, 4)
	})
}

func TestStorageFailure(t *testing.T) {
	storagetest.Each(t, func(t *testing.T, st storage.Store) {
		fs := &failingStore{Store: st}
		l := openLog(t, fs, newSigner(t), Options{})
		appendN(t, l, 2)
		if err := l.Healthy(); err != nil {
			t.Fatalf("Healthy = %v before any failure", err)
		}
		fs.fail.Store(true)
		// Every caller of a failing batch gets the error.
		var wg sync.WaitGroup
		errs := make([]error, 8)
		for i := range errs {
			wg.Go(func() { errs[i] = l.Append(t.Context(), testEntry(10+i)) })
		}
		wg.Wait()
		for i, err := range errs {
			if !errors.Is(err, ErrWrite) || !errors.Is(err, errDiskFull) || !errors.Is(err, storage.ErrUnavailable) {
				t.Errorf("caller %d: Append = %v, want ErrWrite wrapping the storage error", i, err)
			}
		}
		if err := l.Healthy(); !errors.Is(err, ErrWrite) {
			t.Errorf("Healthy = %v after a failed append", err)
		}
		fs.fail.Store(false)
		e := testEntry(20)
		if err := l.Append(t.Context(), e); err != nil {
			t.Fatal(err)
		}
		if e.Seq != 3 {
			t.Errorf("seq after recovery = %d, want 3", e.Seq)
		}
		if err := l.Healthy(); err != nil {
			t.Errorf("Healthy = %v after a later success", err)
		}
		mustVerify(t, l, 3)
	})
}

// A failing statement inside AppendTx (here: the head row is gone) marks
// the log unhealthy.
func TestAppendTxFailureIsUnhealthy(t *testing.T) {
	st := storagetest.OpenSQLite(t, storage.Options{})
	l := openLog(t, st, newSigner(t), Options{})
	rawExec(t, st, `DELETE FROM audit_head`)
	err := st.Write(t.Context(), func(tx storage.Tx) error { return l.AppendTx(t.Context(), tx, testEntry(1)) })
	if !errors.Is(err, ErrWrite) || !errors.Is(err, ErrTampered) {
		t.Fatalf("AppendTx without a head row = %v", err)
	}
	if l.Healthy() == nil {
		t.Error("Healthy = nil after a failed AppendTx")
	}
}

func TestCheckpoints(t *testing.T) {
	storagetest.Each(t, func(t *testing.T, st storage.Store) {
		signer := newSigner(t)
		l := openLog(t, st, signer, Options{CheckpointEvery: 10})
		appendN(t, l, 25)
		if n := count(t, st, "audit_checkpoints"); n != 2 {
			t.Fatalf("%d checkpoints after 25 entries every 10, want 2", n)
		}
		// While sealed, appends go on and checkpoints wait.
		signer.fail.Store(true)
		appendN(t, l, 10) // 26..35: checkpoint due at 30
		if n := count(t, st, "audit_checkpoints"); n != 2 || l.SignFailures() == 0 {
			t.Fatalf("sealed: %d checkpoints, %d sign failures", n, l.SignFailures())
		}
		signer.fail.Store(false)
		appendN(t, l, 1) // 36: the overdue checkpoint
		seqs := int64s(t, st, `SELECT seq FROM audit_checkpoints ORDER BY seq`)
		if fmt.Sprint(seqs) != "[10 20 36]" {
			t.Errorf("checkpoints at %v, want [10 20 36]", seqs)
		}
		// Close signs the head.
		if err := l.Close(); err != nil {
			t.Fatal(err)
		}
		if err := l.Append(t.Context(), testEntry(1)); !errors.Is(err, ErrClosed) {
			t.Errorf("Append after Close = %v", err)
		}
		l2 := openLog(t, st, signer, Options{CheckpointEvery: 10})
		appendN(t, l2, 1)
		if err := l2.Close(); err != nil {
			t.Fatal(err)
		}
		res := mustVerify(t, l2, 37)
		if res.Checkpoints != 4 {
			t.Errorf("Verify counted %d checkpoints, want 4 (10, 20, 36, 37)", res.Checkpoints)
		}
	})
}

func TestCloseFinishesPendingAppends(t *testing.T) {
	st := storagetest.OpenSQLite(t, storage.Options{})
	l := openLog(t, st, newSigner(t), Options{})
	var wg sync.WaitGroup
	var mu sync.Mutex
	ok := 0
	for i := range 50 {
		wg.Go(func() {
			err := l.Append(t.Context(), testEntry(i))
			if err != nil && !errors.Is(err, ErrClosed) {
				t.Errorf("Append: %v", err)
			}
			if err == nil {
				mu.Lock()
				ok++
				mu.Unlock()
			}
		})
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	wg.Wait()
	if n := storedEntries(t, st); n != int64(ok) {
		t.Errorf("%d entries stored, %d appends succeeded", n, ok)
	}
	mustVerify(t, l, int64(ok))
}

// Hostile header values are stored cleaned, on both backends, and never
// fail the batch they share with other callers.
func TestCleansFields(t *testing.T) {
	storagetest.Each(t, func(t *testing.T, st storage.Store) {
		l := openLog(t, st, newSigner(t), Options{})
		e := testEntry(1)
		e.UserAgent = "evil\x00agent\xff\xfe" + strings.Repeat("é", MaxFieldBytes)
		e.Principal = "q\"u\\o\x01\t\n\u2028😀'; DROP TABLE x; --"
		e.Resource = `secret/{"a":[1]}/\u0041`
		e.Detail = map[string]string{}
		for i := range MaxDetailKeys + 5 {
			e.Detail[fmt.Sprintf("k%02d\x00", i)] = "v\xc3"
		}
		if err := l.Append(t.Context(), e); err != nil {
			t.Fatal(err)
		}
		if e.Principal != "q\"u\\o\x01\t\n\u2028😀'; DROP TABLE x; --" || e.Resource != `secret/{"a":[1]}/\u0041` {
			t.Errorf("awkward but valid values changed: %q %q", e.Principal, e.Resource)
		}
		if strings.ContainsRune(e.UserAgent, 0) || len(e.UserAgent) > MaxFieldBytes || !strings.HasPrefix(e.UserAgent, "evil\uFFFDagent\uFFFD") {
			t.Errorf("UserAgent stored as %q", e.UserAgent[:min(len(e.UserAgent), 40)])
		}
		if len(e.Detail) != MaxDetailKeys+1 || e.Detail["_truncated"] != "5" || e.Detail["k00\uFFFD"] != "v\uFFFD" {
			t.Errorf("Detail stored as %v", e.Detail)
		}
		got, err := l.List(t.Context(), Filter{})
		if err != nil || len(got) != 1 || !reflect.DeepEqual(got[0], *e) {
			t.Fatalf("List = %+v, %v", got, err)
		}
		mustVerify(t, l, 1)
	})
}

func TestList(t *testing.T) {
	storagetest.Each(t, func(t *testing.T, st storage.Store) {
		t0 := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
		clk := newClock(t0)
		l := openLog(t, st, newSigner(t), Options{Now: clk.now})
		for i := 1; i <= 30; i++ {
			clk.set(t0.Add(time.Duration(i) * time.Minute))
			e := testEntry(i) // principal user-(i%3), resource secret/app/i
			if i%5 == 0 {
				e.Outcome = OutcomeDenied
				e.Resource = "token/" + e.Resource
			}
			if err := l.Append(t.Context(), e); err != nil {
				t.Fatal(err)
			}
		}
		seqs := func(f Filter) string {
			t.Helper()
			es, err := l.List(t.Context(), f)
			if err != nil {
				t.Fatal(err)
			}
			var b strings.Builder
			for i, e := range es {
				if i > 0 {
					b.WriteByte(' ')
				}
				fmt.Fprint(&b, e.Seq)
			}
			return b.String()
		}
		for _, c := range []struct {
			name string
			f    Filter
			want string
		}{
			{"since/until", Filter{Since: t0.Add(10 * time.Minute), Until: t0.Add(13 * time.Minute)}, "10 11 12"},
			{"principal", Filter{Principal: "user-1", Limit: 4}, "1 4 7 10"},
			{"resource prefix", Filter{ResourcePrefix: "token/"}, "5 10 15 20 25 30"},
			{"prefix is not a pattern", Filter{ResourcePrefix: "secret/app/1_"}, ""},
			{"prefix of one", Filter{ResourcePrefix: "secret/app/2"}, "2 21 22 23 24 26 27 28 29"},
			{"outcome", Filter{Outcome: OutcomeDenied, Limit: 2}, "5 10"},
			{"after seq", Filter{AfterSeq: 27}, "28 29 30"},
			{"limit", Filter{Limit: 3}, "1 2 3"},
			{"combined", Filter{Principal: "user-0", Outcome: OutcomeDenied, Since: t0.Add(16 * time.Minute)}, "30"},
			{"newest", Filter{Newest: true, Limit: 3}, "28 29 30"},
			{"newest since/until", Filter{Newest: true, Since: t0.Add(10 * time.Minute), Until: t0.Add(13 * time.Minute), Limit: 2}, "11 12"},
			{"newest principal", Filter{Newest: true, Principal: "user-1", Limit: 3}, "22 25 28"},
			{"newest before", Filter{Newest: true, Principal: "user-1", Limit: 3, BeforeSeq: 22}, "13 16 19"},
			{"newest outcome", Filter{Newest: true, Outcome: OutcomeDenied, Limit: 2, BeforeSeq: 26}, "20 25"},
			{"newest, fewer than the limit", Filter{Newest: true, AfterSeq: 27}, "28 29 30"},
			{"before, ascending", Filter{BeforeSeq: 4}, "1 2 3"},
		} {
			if got := seqs(c.f); got != c.want {
				t.Errorf("%s: List = [%s], want [%s]", c.name, got, c.want)
			}
		}
		if got := seqs(Filter{}); strings.Count(got, " ") != 29 {
			t.Errorf("default limit returned [%s]", got)
		}
	})
}

func TestListLimitIsCapped(t *testing.T) {
	st := storagetest.OpenSQLite(t, storage.Options{})
	l := openLog(t, st, newSigner(t), Options{})
	var wg sync.WaitGroup
	for i := range MaxListLimit + 10 {
		wg.Go(func() {
			if err := l.Append(t.Context(), testEntry(i)); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	got, err := l.List(t.Context(), Filter{Limit: 5000})
	if err != nil || len(got) != MaxListLimit {
		t.Fatalf("List(Limit 5000) = %d entries, %v; want %d", len(got), err, MaxListLimit)
	}
	got, err = l.List(t.Context(), Filter{})
	if err != nil || len(got) != DefaultListLimit {
		t.Fatalf("List() = %d entries, %v; want %d", len(got), err, DefaultListLimit)
	}
}

func TestPrune(t *testing.T) {
	storagetest.Each(t, func(t *testing.T, st storage.Store) {
		t0 := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
		clk := newClock(t0)
		l := openLog(t, st, newSigner(t), Options{Now: clk.now, CheckpointEvery: 5})
		for range 30 {
			clk.add(time.Second)
			appendN(t, l, 1) // entry i at t0 + i s
		}
		n, err := l.Prune(t.Context(), t0.Add(10500*time.Millisecond))
		if err != nil || n != 10 {
			t.Fatalf("Prune = %d, %v; want 10", n, err)
		}
		res := mustVerify(t, l, 20)
		if res.Checkpoints != 4 {
			t.Errorf("%d checkpoints left, want 4 (15, 20, 25, 30)", res.Checkpoints)
		}
		if first, _ := l.List(t.Context(), Filter{Limit: 1}); len(first) != 1 || first[0].Seq != 11 {
			t.Errorf("first entry after prune: %+v", first)
		}
		if n, err := l.Prune(t.Context(), t0.Add(5*time.Second)); err != nil || n != 0 {
			t.Errorf("second prune of older entries = %d, %v", n, err)
		}
		// The chain goes on from the remaining entries.
		clk.add(time.Second)
		appendN(t, l, 2)
		mustVerify(t, l, 22)
		// Prune everything; Verify starts from the anchor, appends go on.
		n, err = l.Prune(t.Context(), t0.Add(time.Hour))
		if err != nil || n != 22 {
			t.Fatalf("Prune all = %d, %v; want 22", n, err)
		}
		mustVerify(t, l, 0)
		e := testEntry(1)
		if err := l.Append(t.Context(), e); err != nil || e.Seq != 33 {
			t.Fatalf("Append after pruning all: seq %d, %v", e.Seq, err)
		}
		mustVerify(t, l, 1)

		// The anchor is signed: moving or forging it is detected.
		rawExec(t, st, `UPDATE audit_anchor SET seq = seq - 1`)
		res, err = l.Verify(t.Context())
		if !errors.Is(err, ErrTampered) || res.Problem != "prune anchor at 31: bad signature" {
			t.Errorf("moved anchor: Verify = %+v, %v", res, err)
		}
		rawExec(t, st, `UPDATE audit_anchor SET seq = 0, signature = $1, hash = $2`, []byte{}, zeroHash)
		res, err = l.Verify(t.Context())
		if !errors.Is(err, ErrTampered) || res.FirstBad != 1 || res.Problem != "entry 1 missing (the log starts at 33)" {
			t.Errorf("anchor reset to genesis: Verify = %+v, %v", res, err)
		}
	})
}

func TestSinkGetsCommittedEntries(t *testing.T) {
	storagetest.Each(t, func(t *testing.T, st storage.Store) {
		var buf syncBuffer
		var mu sync.Mutex
		var sinkErrs []error
		l := openLog(t, st, newSigner(t), Options{Sink: &buf, OnSinkError: func(err error) {
			mu.Lock()
			defer mu.Unlock()
			sinkErrs = append(sinkErrs, err)
		}})
		var want []*Entry
		want = append(want, appendN(t, l, 5)...)
		committed := testEntry(100)
		if err := st.Write(t.Context(), func(tx storage.Tx) error { return l.AppendTx(t.Context(), tx, committed) }); err != nil {
			t.Fatal(err)
		}
		want = append(want, committed)
		errAbort := errors.New("abort")
		if err := st.Write(t.Context(), func(tx storage.Tx) error {
			if err := l.AppendTx(t.Context(), tx, testEntry(101)); err != nil {
				return err
			}
			return errAbort
		}); !errors.Is(err, errAbort) {
			t.Fatal(err)
		}
		// Another node's entry is not this sink's business.
		other := openLog(t, st, newSigner(t), Options{})
		appendN(t, other, 1)
		want = append(want, appendN(t, l, 3)...)
		if err := l.Close(); err != nil {
			t.Fatal(err)
		}
		lines := strings.Split(strings.TrimSuffix(buf.String(), "\n"), "\n")
		if len(lines) != len(want) {
			t.Fatalf("sink got %d lines, want %d:\n%s", len(lines), len(want), buf.String())
		}
		for i, line := range lines {
			w, _ := json.Marshal(want[i])
			if line != string(w) {
				t.Errorf("line %d:\n got %s\nwant %s", i, line, w)
			}
		}
		mu.Lock()
		defer mu.Unlock()
		if len(sinkErrs) != 0 || l.SinkDropped() != 0 {
			t.Errorf("sink errors %v, dropped %d", sinkErrs, l.SinkDropped())
		}
	})
}

func TestBlockedSinkDoesNotBlockAppend(t *testing.T) {
	st := storagetest.OpenSQLite(t, storage.Options{})
	release := make(chan struct{})
	sink := &blockingSink{release: release}
	l := openLog(t, st, newSigner(t), Options{Sink: sink, SinkBuffer: 4})
	const n = 40
	appendN(t, l, n) // would hang here if the sink could block appends
	// The tailer forwards all n; at most 1 (in Write) + 4 (buffered) fit.
	for l.SinkDropped() < n-5 {
		time.Sleep(time.Millisecond)
	}
	close(release)
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if got := int(l.SinkDropped()) + sink.lines(); got != n {
		t.Errorf("dropped %d + delivered %d = %d, want %d", l.SinkDropped(), sink.lines(), got, n)
	}
	mustVerify(t, l, n)
}

func TestSinkWriteErrorsAreReported(t *testing.T) {
	st := storagetest.OpenSQLite(t, storage.Options{})
	errs := make(chan error, 10)
	l := openLog(t, st, newSigner(t), Options{Sink: errWriter{}, OnSinkError: func(err error) { errs <- err }})
	appendN(t, l, 2)
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	close(errs)
	n := 0
	for err := range errs {
		if !errors.Is(err, errDiskFull) {
			t.Errorf("sink error %v", err)
		}
		n++
	}
	if n != 2 {
		t.Errorf("%d sink errors reported, want 2", n)
	}
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

type blockingSink struct {
	release chan struct{}
	mu      sync.Mutex
	n       int
}

func (s *blockingSink) Write(p []byte) (int, error) {
	<-s.release
	s.mu.Lock()
	defer s.mu.Unlock()
	s.n++
	return len(p), nil
}

func (s *blockingSink) lines() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.n
}

type errWriter struct{}

func (errWriter) Write([]byte) (int, error) { return 0, errDiskFull }

func TestOpenChecks(t *testing.T) {
	st := storagetest.OpenSQLite(t, storage.Options{})
	if _, err := Open(t.Context(), st, nil, Options{}); err == nil {
		t.Error("Open without a signer succeeded")
	}
	rawExec(t, st, `DELETE FROM audit_head`)
	if _, err := Open(t.Context(), st, newSigner(t), Options{}); !errors.Is(err, ErrTampered) {
		t.Errorf("Open without a head row = %v, want ErrTampered", err)
	}
}

// A lone writer never waits for the linger, however long it is: nobody else
// is inside Append.
func TestLingerLoneWriterNeverWaits(t *testing.T) {
	st := storagetest.OpenSQLite(t, storage.Options{})
	l := openLog(t, st, newSigner(t), Options{Linger: time.Hour})
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	for i := range 20 {
		if err := l.Append(ctx, testEntry(i)); err != nil {
			t.Fatalf("append %d: %v (the batcher waited for nobody)", i, err)
		}
	}
	mustVerify(t, l, 20)
}

// The batcher waits for a caller that is inside Append but has not queued
// its entry yet, and writes as soon as that caller queues or leaves.
func TestLingerWaitsForInflightCallers(t *testing.T) {
	st := storagetest.OpenSQLite(t, storage.Options{})
	l := openLog(t, st, newSigner(t), Options{Linger: time.Hour})
	l.inflight.Add(1) // a caller still preparing its entry
	done := make(chan error, 1)
	go func() { done <- l.Append(t.Context(), testEntry(1)) }()
	select {
	case err := <-done:
		t.Fatalf("Append returned (%v) while another caller was inside Append: the batcher did not linger", err)
	case <-time.After(100 * time.Millisecond):
	}
	l.leave() // that caller gives up
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("Append still waiting after the other caller left")
	}
	if l.batches.Load() != 1 || l.batched.Load() != 1 {
		t.Errorf("batches %d holding %d entries, want 1 and 1", l.batches.Load(), l.batched.Load())
	}
}

// With a negative Linger the batcher never waits.
func TestLingerDisabled(t *testing.T) {
	st := storagetest.OpenSQLite(t, storage.Options{})
	l := openLog(t, st, newSigner(t), Options{Linger: -1})
	l.inflight.Add(1)
	defer l.inflight.Add(-1)
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	if err := l.Append(ctx, testEntry(1)); err != nil {
		t.Fatal(err)
	}
}
