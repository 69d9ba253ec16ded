package audit

import (
	"bytes"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/keyward/keyward/internal/storage"
	"github.com/keyward/keyward/internal/storage/storagetest"
)

// writeBlocks appends entries through the batcher's write path, one
// transaction a batch of the given sizes, so the log holds blocks of up to
// blockMax entries whatever the timing. Times go back and forth (an entry
// carries its request's start); every seventh entry is of a rare principal
// and denied.
func writeBlocks(t *testing.T, st storage.Store, l *Log, t0 time.Time, batches ...int) {
	t.Helper()
	i := int(int64s(t, st, `SELECT seq FROM audit_head`)[0]) // numbers the test entries on from the log's head
	for _, n := range batches {
		rows := make([]*row, n)
		for j := range rows {
			i++
			e := testEntry(i)
			e.Time = t0.Add(time.Duration(i)*time.Minute - time.Duration(i*37%13)*time.Minute)
			if i%7 == 0 {
				e.Principal, e.Outcome, e.Status = "rare", OutcomeDenied, 403
			}
			r, _, err := l.prepare(e, true)
			if err != nil {
				t.Fatal(err)
			}
			rows[j] = &r
		}
		if err := st.Write(t.Context(), func(tx storage.Tx) error { return l.writeRows(t.Context(), tx, rows) }); err != nil {
			t.Fatal(err)
		}
	}
}

// blockSizes returns the entry count of every stored block, in seq order.
func blockSizes(t *testing.T, st storage.Store) []int64 {
	t.Helper()
	return int64s(t, st, `SELECT n FROM audit_blocks ORDER BY seq`)
}

// A log stored in blocks of many entries reads as the entries: List
// answers every filter and page as it would entry by entry (filterEntries),
// entries chain across blocks, Verify counts them all, and Prune cuts
// between blocks only.
func TestBlocksReadAsEntries(t *testing.T) {
	storagetest.Each(t, func(t *testing.T, st storage.Store) {
		l := openLog(t, st, newSigner(t), Options{CheckpointEvery: 50})
		t0 := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)
		writeBlocks(t, st, l, t0, 1, 64, 65, 100, 70)
		if got, want := blockSizes(t, st), []int64{1, 64, 64, 1, 64, 36, 64, 6}; !reflect.DeepEqual(got, want) {
			t.Fatalf("blocks of %v entries, want %v", got, want)
		}
		mustVerify(t, l, 300)
		all, err := l.List(t.Context(), Filter{Limit: MaxListLimit})
		if err != nil || len(all) != 300 {
			t.Fatalf("List = %d entries, %v", len(all), err)
		}
		for i, e := range all {
			if e.Seq != int64(i+1) || i > 0 && !bytes.Equal(e.PrevHash, all[i-1].Hash) || i == 0 && !bytes.Equal(e.PrevHash, zeroHash) {
				t.Fatalf("entry %d: seq %d, prev hash %x", i+1, e.Seq, e.PrevHash)
			}
		}
		for _, f := range []Filter{
			{},
			{Limit: 3},
			{AfterSeq: 70, Limit: 10},
			{AfterSeq: 64, BeforeSeq: 130},
			{Newest: true, Limit: 50},
			{Newest: true, BeforeSeq: 131, Limit: 70},
			{Newest: true, BeforeSeq: 66, AfterSeq: 2, Limit: 1000},
			{Principal: "rare"},
			{Principal: "rare", Newest: true, Limit: 5},
			{Principal: "user-1", AfterSeq: 100, BeforeSeq: 200, Limit: 1000},
			{Principal: "nobody"},
			{Outcome: OutcomeDenied, Limit: 1000},
			{ResourcePrefix: "secret/app/12", Limit: 1000},
			{Since: t0.Add(100 * time.Minute), Limit: 1000},
			{Since: t0.Add(100 * time.Minute), Until: t0.Add(150 * time.Minute), Limit: 1000},
			{Until: t0.Add(40 * time.Minute), Newest: true, Limit: 1000},
			{Since: t0.Add(250 * time.Minute), Principal: "rare", Limit: 1000},
		} {
			got, err := l.List(t.Context(), f)
			if err != nil {
				t.Fatalf("List(%+v): %v", f, err)
			}
			if want := filterEntries(all, f); !reflect.DeepEqual(got, want) {
				t.Errorf("List(%+v) = %s\nwant %s", f, seqsOf(got), seqsOf(want))
			}
		}
		// Paging back from the newest, a page at a time, meets every entry once.
		var paged []Entry
		before := int64(0)
		for {
			page, err := l.List(t.Context(), Filter{Newest: true, BeforeSeq: before, Limit: 37})
			if err != nil {
				t.Fatal(err)
			}
			if len(page) == 0 {
				break
			}
			paged = append(page, paged...)
			before = page[0].Seq
		}
		if !reflect.DeepEqual(paged, all) {
			t.Errorf("paging back read %s", seqsOf(paged))
		}

		// Prune at an entry time inside a block: only whole blocks all
		// older go; the rest verifies from the signed anchor.
		cut := all[150].Time
		n, err := l.Prune(t.Context(), cut)
		if err != nil || n < 100 {
			t.Fatalf("Prune = %d, %v; want the blocks before entry 131 or so", n, err)
		}
		left, err := l.List(t.Context(), Filter{Limit: MaxListLimit})
		if err != nil || int64(len(left)) != 300-n || len(left) == 0 {
			t.Fatalf("after pruning %d: List = %d entries, %v", n, len(left), err)
		}
		for _, e := range all[:n] {
			if !e.Time.Before(cut) {
				t.Errorf("entry %d of %s pruned before %s", e.Seq, e.Time, cut)
			}
		}
		first := left[0].Seq
		if !slices.Contains([]int64{2, 66, 130, 131, 195, 231, 295}, first) {
			t.Errorf("the log starts at %d after the prune: not a block's first entry", first)
		}
		if blockOf(all, first, cut) {
			t.Errorf("the block of entry %d was kept though all its entries are older than %s", first, cut)
		}
		if !bytes.Equal(left[0].PrevHash, all[first-2].Hash) {
			t.Errorf("first entry after the prune chains to %x, want %x", left[0].PrevHash, all[first-2].Hash)
		}
		mustVerify(t, l, 300-n)
		if got := storedEntries(t, st); got != 300-n {
			t.Errorf("%d entries stored after the prune, want %d", got, 300-n)
		}
		writeBlocks(t, st, l, t0, 10)
		mustVerify(t, l, 310-n)
	})
}

// blockOf reports whether the block of seq (by the sizes writeBlocks made)
// holds only entries older than cut.
func blockOf(all []Entry, seq int64, cut time.Time) bool {
	bounds := []int64{1, 2, 66, 130, 131, 195, 231, 295, 301}
	for i := 1; i < len(bounds); i++ {
		if seq < bounds[i] {
			for s := bounds[i-1]; s < bounds[i]; s++ {
				if !all[s-1].Time.Before(cut) {
					return false
				}
			}
			return true
		}
	}
	return false
}

// Tampering inside a block of many entries is found at the entry it
// touched, like tampering with a block of one.
func TestTamperInBlocks(t *testing.T) {
	editBlock := func(t *testing.T, st storage.Store, seq int64, edit func(b *storedBlock, es []row) (text string, hashes []byte, n int64)) {
		t.Helper()
		err := st.Write(t.Context(), func(tx storage.Tx) error {
			b, err := rawBlock(tx, seq, false)
			if err != nil {
				return err
			}
			es, err := b.entries(nil)
			if err != nil {
				return err
			}
			text, hashes, n := edit(b, es)
			_, err = tx.Exec(t.Context(), `UPDATE audit_blocks SET entries = $1, hashes = $2, n = $3 WHERE seq = $4`, text, hashes, n, b.seq)
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	texts := func(es []row) []*row {
		out := make([]*row, len(es))
		for i := range es {
			out[i] = &es[i]
		}
		return out
	}
	cases := []struct {
		name     string
		tamper   func(t *testing.T, st storage.Store)
		firstBad int64
		problem  string
	}{
		{"a field of an entry inside a block", func(t *testing.T, st storage.Store) {
			r := rawRow(t, st, 70)
			r.action = "write"
			rawUpdate(t, st, &r)
		}, 70, "entry 70: hash does not match its content chained to entry 69"},
		{"an entry rehashed inside a block", func(t *testing.T, st storage.Store) {
			r := rawRow(t, st, 70)
			r.latencyUS++
			r.hash, _ = r.computeHash(r.prevHash, nil)
			rawUpdate(t, st, &r)
		}, 71, "entry 71: hash does not match its content chained to entry 70"},
		{"the first entry of a block rehashed", func(t *testing.T, st storage.Store) {
			r := rawRow(t, st, 65)
			r.principal = "someone-else"
			r.hash, _ = r.computeHash(r.prevHash, nil)
			rawUpdate(t, st, &r)
		}, 66, "entry 66: hash does not match its content chained to entry 65"},
		{"an entry dropped from a block's text", func(t *testing.T, st storage.Store) {
			editBlock(t, st, 70, func(b *storedBlock, es []row) (string, []byte, int64) {
				return string(appendBlockText(nil, texts(slices.Delete(es, 5, 6)))), b.hashes, b.n
			})
		}, 65, "entry 65: malformed entry text: byte"},
		{"an entry dropped with its hash, the count kept", func(t *testing.T, st storage.Store) {
			editBlock(t, st, 70, func(b *storedBlock, es []row) (string, []byte, int64) {
				h := slices.Delete(slices.Clone(b.hashes), 5*HashSize, 6*HashSize)
				return string(appendBlockText(nil, texts(slices.Delete(es, 5, 6)))), h, b.n
			})
		}, 65, "entry 65: malformed block: 64 entries ending at 128 with 2016 bytes of hashes"},
		{"an entry dropped with its hash and the count", func(t *testing.T, st storage.Store) {
			editBlock(t, st, 70, func(b *storedBlock, es []row) (string, []byte, int64) {
				h := slices.Delete(slices.Clone(b.hashes), 5*HashSize, 6*HashSize)
				return string(appendBlockText(nil, texts(slices.Delete(es, 5, 6)))), h, b.n - 1
			})
		}, 65, "entry 65 missing (seq jumps from 64 to 66)"},
		{"a block deleted", func(t *testing.T, st storage.Store) {
			rawExec(t, st, `DELETE FROM audit_blocks WHERE seq = 128`)
		}, 65, "entry 65 missing (seq jumps from 64 to 129)"},
		{"two entries swapped inside a block", func(t *testing.T, st storage.Store) {
			editBlock(t, st, 70, func(b *storedBlock, es []row) (string, []byte, int64) {
				es[9], es[10] = es[10], es[9]
				return string(appendBlockText(nil, texts(es))), b.hashes, b.n
			})
		}, 74, "entry 74: hash does not match its content chained to entry 73"},
	}
	storagetest.Each(t, func(t *testing.T, st storage.Store) {
		l := openLog(t, st, newSigner(t), Options{CheckpointEvery: 1000})
		for _, c := range cases {
			t.Run(c.name, func(t *testing.T) {
				resetLog(t, st)
				writeBlocks(t, st, l, time.Now(), 130)
				mustVerify(t, l, 130)
				c.tamper(t, st)
				res, err := l.Verify(t.Context())
				if !errors.Is(err, ErrTampered) {
					t.Fatalf("Verify after tampering = %+v, %v; want ErrTampered", res, err)
				}
				if res.FirstBad != c.firstBad || !strings.HasPrefix(res.Problem, c.problem) {
					t.Errorf("Verify = FirstBad %d %q\n  want FirstBad %d %q", res.FirstBad, res.Problem, c.firstBad, c.problem)
				}
			})
		}
	})
}

// Entries queued together are written as blocks, and the sink forwards
// each of them once, in seq order.
func TestAsyncEntriesInBlocksReachTheSink(t *testing.T) {
	storagetest.Each(t, func(t *testing.T, st storage.Store) {
		var buf syncBuffer
		l := openLog(t, st, newSigner(t), Options{Sink: &buf, AsyncDelay: time.Second})
		var wg sync.WaitGroup
		for g := range 4 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := range 50 {
					if err := l.AppendAsync(testEntry(g*50+i), nil); err != nil {
						t.Error(err)
						return
					}
				}
			}()
		}
		wg.Wait()
		if err := l.Close(); err != nil {
			t.Fatal(err)
		}
		sizes := blockSizes(t, st)
		if len(sizes) >= 200 || slices.Max(sizes) < 2 {
			t.Errorf("200 queued entries stored in blocks of %v: want blocks of many", sizes)
		}
		lines := strings.Split(strings.TrimSuffix(buf.String(), "\n"), "\n")
		if len(lines) != 200 {
			t.Fatalf("the sink got %d lines, want 200", len(lines))
		}
		for i, line := range lines {
			if !strings.HasPrefix(line, fmt.Sprintf(`{"seq":%d,`, i+1)) {
				t.Fatalf("sink line %d: %.60s", i, line)
			}
		}
	})
}
