package audit

import (
	"bytes"
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

// appendBatch appends es in one transaction (fast: one commit), as a
// group-commit batch does, and returns them as stored.
func appendBatch(t testing.TB, l *Log, es []*Entry) []Entry {
	t.Helper()
	rows := make([]*row, len(es))
	details := make([]map[string]string, len(es))
	for i, e := range es {
		r, d, err := l.prepare(e, true)
		if err != nil {
			t.Fatal(err)
		}
		rows[i], details[i] = &r, d
	}
	err := l.st.Write(t.Context(), func(tx storage.Tx) error { return l.writeRows(t.Context(), tx, rows) })
	if err != nil {
		t.Fatal(err)
	}
	out := make([]Entry, len(es))
	for i, r := range rows {
		out[i] = r.entry(details[i])
	}
	return out
}

// Filters on values inside the entry text (resource, outcome) are applied
// in Go, page after page: limit still counts matching entries, across
// pages, and each entry comes with its prev hash.
func TestListPagesThroughTextFilters(t *testing.T) {
	storagetest.Each(t, func(t *testing.T, st storage.Store) {
		l := openLog(t, st, newSigner(t), Options{CheckpointEvery: 100})
		var es []*Entry
		for i := 1; i <= 3*listPage+7; i++ {
			e := testEntry(i)
			if i%97 == 0 {
				e.Outcome = OutcomeDenied
			}
			if i%400 == 0 {
				e.Resource = "rare/" + e.Resource
			}
			es = append(es, e)
		}
		all := appendBatch(t, l, es)
		for _, f := range []Filter{
			{Outcome: OutcomeDenied, Limit: 5},                    // within the first page
			{Outcome: OutcomeDenied, Limit: 12},                   // spans pages
			{Outcome: OutcomeDenied},                              // all 15
			{ResourcePrefix: "rare/", Limit: 2},                   // page 1 then 2
			{ResourcePrefix: "rare/", AfterSeq: 400},              // from a cursor
			{ResourcePrefix: "rare/", Principal: "user-1"},        // SQL and Go filters
			{Outcome: OutcomeAllowed, Limit: MaxListLimit},        // one page of 1000
			{ResourcePrefix: "secret/app/1", Limit: 3},            // prefix of many
			{ResourcePrefix: "nothing/", Limit: 3},                // no match: every page
			{Outcome: OutcomeDenied, ResourcePrefix: "rare/"},     // both: none
			{Principal: "user-2", Limit: 600, AfterSeq: listPage}, // SQL only
			// The newest, walking seq downwards.
			{Newest: true, Limit: 7},
			{Newest: true, Outcome: OutcomeDenied, Limit: 5},                 // Go filter, across pages
			{Newest: true, Outcome: OutcomeDenied, Limit: 5, BeforeSeq: 970}, // paging back
			{Newest: true, ResourcePrefix: "rare/"},                          // every page, all 3
			{Newest: true, Principal: "user-1", Limit: 4, AfterSeq: 1400},    // both bounds
			{Newest: true, ResourcePrefix: "nothing/", Limit: 3},             // no match
			{Outcome: OutcomeDenied, BeforeSeq: 300},                         // ascending, bounded above
		} {
			got, err := l.List(t.Context(), f)
			if err != nil {
				t.Fatal(err)
			}
			want := filterEntries(all, f)
			if f.Limit == 0 && len(want) == DefaultListLimit {
				t.Fatalf("filter %+v: the test wants fewer matches than the default limit", f)
			}
			if !reflect.DeepEqual(got, want) {
				t.Errorf("List(%+v) = %d entries %v, want %d %v", f, len(got), seqsOf(got), len(want), seqsOf(want))
			}
		}
		for i := 1; i < len(all); i++ {
			if !bytes.Equal(all[i].PrevHash, all[i-1].Hash) {
				t.Fatalf("entry %d: prev hash is not entry %d's hash", all[i].Seq, all[i-1].Seq)
			}
		}
	})
}

func seqsOf(es []Entry) string {
	var b strings.Builder
	for i, e := range es {
		if i > 0 {
			b.WriteByte(' ')
		}
		fmt.Fprint(&b, e.Seq)
	}
	return b.String()
}

// List reads each entry's prev hash from the entry before, or from the
// prune anchor for the first one after a prune; an entry whose
// predecessor is gone (a log that does not verify) has none.
func TestListPrevHash(t *testing.T) {
	storagetest.Each(t, func(t *testing.T, st storage.Store) {
		t0 := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
		clk := newClock(t0)
		l := openLog(t, st, newSigner(t), Options{Now: clk.now})
		written := appendN(t, l, 6)
		clk.add(time.Hour)
		appendN(t, l, 2)
		if n, err := l.Prune(t.Context(), t0.Add(time.Hour)); err != nil || n != 6 {
			t.Fatalf("Prune = %d, %v", n, err)
		}
		got, err := l.List(t.Context(), Filter{})
		if err != nil || len(got) != 2 || got[0].Seq != 7 {
			t.Fatalf("List after prune = %v, %v", seqsOf(got), err)
		}
		if !bytes.Equal(got[0].PrevHash, written[5].Hash) || !bytes.Equal(got[1].PrevHash, got[0].Hash) {
			t.Errorf("prev hashes after prune: %x %x, want %x %x", got[0].PrevHash, got[1].PrevHash, written[5].Hash, got[0].Hash)
		}
		rawExec(t, st, `DELETE FROM audit_blocks WHERE seq = 7`)
		got, err = l.List(t.Context(), Filter{})
		if err != nil || len(got) != 1 || got[0].Seq != 8 || got[0].PrevHash != nil {
			t.Errorf("List with entry 7 deleted = %+v, %v; want entry 8 without a prev hash", got, err)
		}
	})
}

// The hash covers values, not their spelling: an entry text rewritten
// with other whitespace and escapes still verifies and lists the same.
func TestRespelledEntryTextVerifies(t *testing.T) {
	storagetest.Each(t, func(t *testing.T, st storage.Store) {
		l := openLog(t, st, newSigner(t), Options{CheckpointEvery: 3})
		appendN(t, l, 5)
		before, err := l.List(t.Context(), Filter{})
		if err != nil {
			t.Fatal(err)
		}
		rawExec(t, st, `UPDATE audit_blocks SET entries = replace(replace(entries, ',', ' , '), '"read"', '"\u0072ead"') WHERE seq = 2`)
		r := rawRow(t, st, 2)
		if text := string(r.appendEntryText(nil)); strings.Contains(text, " , ") {
			t.Fatalf("re-encoded text %s", text)
		}
		mustVerify(t, l, 5)
		after, err := l.List(t.Context(), Filter{})
		if err != nil || !reflect.DeepEqual(after, before) {
			t.Errorf("List after respelling = %+v, %v\nwant %+v", after, err, before)
		}
	})
}

// A stored entry text that does not decode makes List fail (naming the
// entry, ErrTampered), whichever filter reads it.
func TestListMalformedEntryText(t *testing.T) {
	storagetest.Each(t, func(t *testing.T, st storage.Store) {
		l := openLog(t, st, newSigner(t), Options{})
		appendN(t, l, 4)
		rawExec(t, st, `UPDATE audit_blocks SET entries = '[[]]' WHERE seq = 3`)
		for _, f := range []Filter{{}, {Outcome: OutcomeDenied}, {Principal: "user-0"}} {
			_, err := l.List(t.Context(), f)
			if !errors.Is(err, ErrTampered) || !strings.Contains(err.Error(), "entry 3: malformed entry text") {
				t.Errorf("List(%+v) with a malformed entry 3 = %v", f, err)
			}
		}
		if got, err := l.List(t.Context(), Filter{Limit: 2}); err != nil || len(got) != 2 {
			t.Errorf("List before the malformed entry = %d entries, %v", len(got), err)
		}
		if got, err := l.List(t.Context(), Filter{AfterSeq: 3}); err != nil || len(got) != 1 {
			t.Errorf("List after the malformed entry = %d entries, %v", len(got), err)
		}
	})
}

// An entry whose text is broken before the sink's tailer reads it is
// reported and skipped; the sink goes on with the next entries.
func TestSinkSkipsMalformedEntryText(t *testing.T) {
	storagetest.Each(t, func(t *testing.T, st storage.Store) {
		var buf syncBuffer
		var mu sync.Mutex
		var sinkErrs []error
		l := openLog(t, st, newSigner(t), Options{Sink: &buf, OnSinkError: func(err error) {
			mu.Lock()
			defer mu.Unlock()
			sinkErrs = append(sinkErrs, err)
		}})
		// Broken inside its own transaction, so the tailer never sees the
		// intact text.
		bad := testEntry(1)
		err := st.Write(t.Context(), func(tx storage.Tx) error {
			if err := l.AppendTx(t.Context(), tx, bad); err != nil {
				return err
			}
			_, err := tx.Exec(t.Context(), `UPDATE audit_blocks SET entries = '[["x", 1]]' WHERE seq = $1`, bad.Seq)
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
		good := appendN(t, l, 2)
		if err := l.Close(); err != nil {
			t.Fatal(err)
		}
		lines := strings.Split(strings.TrimSuffix(buf.String(), "\n"), "\n")
		if len(lines) != 2 || !strings.Contains(lines[0], `"request_id":"`+good[0].RequestID+`"`) {
			t.Errorf("sink lines:\n%s", buf.String())
		}
		mu.Lock()
		defer mu.Unlock()
		if len(sinkErrs) != 1 || !strings.Contains(sinkErrs[0].Error(), "entry 1: malformed entry text") {
			t.Errorf("sink errors = %v, want one naming entry 1", sinkErrs)
		}
	})
}

// A filter on Since starts its walk at the last checkpoint signed
// clockSlack before it, and still finds every entry at or after Since,
// also one stamped by a node whose clock runs ahead (within the slack).
func TestListSinceStartsAtCheckpoint(t *testing.T) {
	storagetest.Each(t, func(t *testing.T, st storage.Store) {
		base := time.Date(2026, 12, 5, 12, 0, 0, 0, time.UTC)
		now := base
		l := openLog(t, st, newSigner(t), Options{CheckpointEvery: 10, Now: func() time.Time { return now }})
		var all []Entry
		for k := range 100 { // batch k: seqs 10k+1..10k+10 at base+k min, a checkpoint at 10k+10
			now = base.Add(time.Duration(k) * time.Minute)
			es := make([]*Entry, 10)
			for i := range es {
				es[i] = testEntry(10*k + i + 1)
			}
			if k == 49 {
				// another node's clock, 90 s ahead of the signer's
				es[3].Time = base.Add(50*time.Minute + 30*time.Second)
			}
			all = append(all, appendBatch(t, l, es)...)
		}
		since := base.Add(50 * time.Minute)
		err := st.Read(t.Context(), func(tx storage.Tx) error {
			for _, c := range []struct {
				since time.Time
				want  int64
			}{
				{since, 490},                        // batch 48's checkpoint, signed at since-2min
				{since.Add(time.Nanosecond), 490},   // not batch 49's (since-1min)
				{base.Add(time.Minute), 0},          // before any checkpoint
				{base.Add(200 * time.Minute), 1000}, // after the last
				{base.Add(2*time.Minute + 1), 10},   // batch 0's, signed at base
			} {
				got, err := sinceStart(t.Context(), tx, c.since)
				if err != nil {
					return err
				}
				if got != c.want {
					t.Errorf("sinceStart(base+%s) = %d, want %d", c.since.Sub(base), got, c.want)
				}
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		for _, f := range []Filter{
			{Since: since, Limit: MaxListLimit},
			{Since: since, Limit: 3},
			{Since: since, Until: since.Add(10 * time.Minute)},
			{Since: since, AfterSeq: 700, Limit: 20},
			{Since: since, Principal: "user-1", Limit: 20},
			{Since: since, Outcome: OutcomeAllowed, Limit: 20},
			{Since: base, Limit: 20},
		} {
			got, err := l.List(t.Context(), f)
			if err != nil {
				t.Fatal(err)
			}
			if want := filterEntries(all, f); !reflect.DeepEqual(got, want) {
				t.Errorf("List(%+v) = %v, want %v", f, seqsOf(got), seqsOf(want))
			}
		}
		got, err := l.List(t.Context(), Filter{Since: since, Limit: 1})
		if err != nil || len(got) != 1 || got[0].Seq != 494 {
			t.Fatalf("the first entry at or after since = %v, %v; want seq 494 (stamped ahead)", seqsOf(got), err)
		}
	})
}
