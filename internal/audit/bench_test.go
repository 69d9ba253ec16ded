package audit

import (
	"errors"
	"runtime"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/keyward/keyward/internal/cputime"
	"github.com/keyward/keyward/internal/storage"
	"github.com/keyward/keyward/internal/storage/storagetest"
)

// BenchmarkAppendParallel measures durable Append (group commit, one fsync
// per batch, synchronous=FULL) from 32×GOMAXPROCS goroutines — 64 on a
// 2-core machine — on a SQLite file store. Reported as entries/s.
func BenchmarkAppendParallel(b *testing.B) {
	benchAppendParallel(b, storagetest.OpenSQLite(b, storage.Options{}))
}

// BenchmarkAppendParallelPostgres is the same on PostgreSQL (skipped
// unless KEYWARD_TEST_POSTGRES is set).
func BenchmarkAppendParallelPostgres(b *testing.B) {
	benchAppendParallel(b, storagetest.OpenPostgres(b, storage.Options{}))
}

func benchAppendParallel(b *testing.B, st storage.Store) {
	l := openLog(b, st, newSigner(b), Options{})
	appendParallel(b, func(i int) error { return l.Append(b.Context(), testEntry(i)) })
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "entries/s")
	b.ReportMetric(float64(l.batched.Load())/float64(l.batches.Load()), "entries/batch")
}

// appendParallel runs appendOne(1), appendOne(2), ... b.N times from
// 32×GOMAXPROCS goroutines and reports the CPU per entry (writers and
// batcher, whole process), the figure that holds on a busy machine.
func appendParallel(b *testing.B, appendOne func(i int) error) {
	var n atomic.Int64
	b.SetParallelism(32)
	b.ReportAllocs()
	b.ResetTimer()
	cpu0 := cputime.Process()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if err := appendOne(int(n.Add(1))); err != nil {
				b.Error(err)
				return
			}
		}
	})
	reportCPU(b, cpu0, float64(b.N), "cpu-µs/entry")
}

// BenchmarkAppendTx measures one AppendTx per Write transaction (the
// write-path cost of auditing a change inside its own transaction).
func BenchmarkAppendTx(b *testing.B) {
	st := storagetest.OpenSQLite(b, storage.Options{})
	l := openLog(b, st, newSigner(b), Options{})
	i := 0
	b.ReportAllocs()
	for b.Loop() {
		i++
		e := testEntry(i)
		if err := st.Write(b.Context(), func(tx storage.Tx) error { return l.AppendTx(b.Context(), tx, e) }); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "entries/s")
}

// BenchmarkWriteBatch measures the write path alone, without Append's
// goroutines: one Write transaction of DefaultMaxBatch prepared entries
// (writeRows: chain, insert, checkpoint when due, head; commit with one
// fsync, synchronous=FULL) on a SQLite file store. Reported per entry.
func BenchmarkWriteBatch(b *testing.B) {
	benchWriteBatch(b, storagetest.OpenSQLite(b, storage.Options{}))
}

// BenchmarkWriteBatchPostgres is the same on PostgreSQL (skipped unless
// KEYWARD_TEST_POSTGRES is set).
func BenchmarkWriteBatchPostgres(b *testing.B) {
	benchWriteBatch(b, storagetest.OpenPostgres(b, storage.Options{}))
}

func benchWriteBatch(b *testing.B, st storage.Store) {
	l := openLog(b, st, newSigner(b), Options{})
	prepared := make([]row, DefaultMaxBatch)
	for i := range prepared {
		r, _, err := l.prepare(testEntry(i), true)
		if err != nil {
			b.Fatal(err)
		}
		prepared[i] = r
	}
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	mallocs0 := ms.Mallocs
	b.ResetTimer()
	cpu0 := cputime.Process()
	tm := prepared[0].time
	for b.Loop() {
		rows := make([]*row, len(prepared))
		for i := range prepared {
			r := prepared[i]
			tm += 1000 // as time goes by, not the same times again
			r.time = tm
			rows[i] = &r
		}
		err := st.Write(b.Context(), func(tx storage.Tx) error { return l.writeRows(b.Context(), tx, rows) })
		if err != nil {
			b.Fatal(err)
		}
	}
	n := float64(b.N * len(prepared))
	reportCPU(b, cpu0, n, "cpu-µs/entry")
	runtime.ReadMemStats(&ms)
	b.ReportMetric(float64(ms.Mallocs-mallocs0)/n, "allocs/entry")
}

// BenchmarkListSince measures List of the newest 100 entries by time
// ("keyward audit list --since 1h") in a SQLite log of 100,000 entries,
// one a second. There is no index on time: the walk starts at the last
// checkpoint signed two minutes before since (sinceStart), 1.0 ms on the
// 2-core machine, against 26 ms walking seq from the start. audit_entries'
// time index did not help here: SQLite's planner walked the rowid for
// ORDER BY seq LIMIT anyway (25 ms, wider rows).
func BenchmarkListSince(b *testing.B) {
	st := storagetest.OpenSQLite(b, storage.Options{})
	t0 := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	now := t0 // the log's clock, which signs the checkpoints, keeps up with the entries
	l := openLog(b, st, newSigner(b), Options{Now: func() time.Time { return now }})
	const total, batch = 100_000, DefaultMaxBatch
	for done := 0; done < total; done += batch {
		rows := make([]*row, 0, batch)
		for i := done; i < min(done+batch, total); i++ {
			e := testEntry(i)
			e.Time = t0.Add(time.Duration(i) * time.Second)
			now = e.Time
			r, _, err := l.prepare(e, true)
			if err != nil {
				b.Fatal(err)
			}
			rows = append(rows, &r)
		}
		if err := st.Write(b.Context(), func(tx storage.Tx) error { return l.writeRows(b.Context(), tx, rows) }); err != nil {
			b.Fatal(err)
		}
	}
	since := t0.Add((total - 100) * time.Second)
	b.ResetTimer()
	for b.Loop() {
		es, err := l.List(b.Context(), Filter{Since: since})
		if err != nil || len(es) != 100 {
			b.Fatalf("List = %d entries, %v", len(es), err)
		}
	}
}

// reportCPU reports the process's CPU time since cpu0 per unit, where the
// platform tells it (cputime.Process).
func reportCPU(b *testing.B, cpu0 time.Duration, units float64, unit string) {
	if cpu0 >= 0 {
		b.ReportMetric(float64(cputime.Process()-cpu0)/1e3/units, unit)
	}
}

// gatewayEntry is the entry of a proxied gateway call as the edge builds
// it: nine fields and the call's four details (in key order, as it adds
// them).
func gatewayEntry(i int) *Entry {
	return &Entry{
		RequestID: "01JD4K7ZQ8X3V5N2M9T6W1Y0B" + strconv.Itoa(i%10), Principal: "app:bench", AuthMethod: "token",
		AccessorHMAC: "hmac-5f0c2a9e7b1d4c3a8e6f0b2d4a6c8e0f", Action: "proxy", Resource: "integrations/up",
		SourceAddr: "127.0.0.1", UserAgent: "bench/1", Outcome: OutcomeAllowed, Status: 200, LatencyUS: 180,
		Details: Details{{"bytes_in", "0"}, {"bytes_out", strconv.Itoa(27 + i%3)}, {"method", "GET"}, {"path", "/v1/ping"}},
	}
}

// BenchmarkPrepareGatewayEntry measures what AppendAsync does with a
// gateway call's entry before it queues it (prepare: clean the fields,
// encode the detail), the detail's construction included. (Before
// Details, the detail was a map built here.)
func BenchmarkPrepareGatewayEntry(b *testing.B) {
	l := &Log{opts: Options{Now: time.Now}}
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		i++
		e := gatewayEntry(i)
		r, _, err := l.prepare(e, false)
		if err != nil || r.detail == "" {
			b.Fatal(err)
		}
	}
}

// BenchmarkChainBlocks measures the batcher's CPU work on a batch of
// DefaultMaxBatch gateway entries besides the database: hashing the chain
// and cutting the batch into blocks with their texts. Reported per entry.
func BenchmarkChainBlocks(b *testing.B) {
	l := &Log{opts: Options{Now: time.Now}}
	prepared := make([]row, DefaultMaxBatch)
	for i := range prepared {
		r, _, err := l.prepare(gatewayEntry(i), true)
		if err != nil {
			b.Fatal(err)
		}
		prepared[i] = r
	}
	rows := make([]*row, len(prepared))
	b.ReportAllocs()
	for b.Loop() {
		prev := zeroHash
		var buf []byte
		hashes := make([]byte, 0, len(rows)*HashSize)
		for i := range prepared {
			r := &prepared[i]
			r.seq, r.prevHash = int64(i+1), prev
			var sum [HashSize]byte
			sum, buf = r.sum(prev, buf)
			hashes = append(hashes, sum[:]...)
			r.hash = hashes[len(hashes)-HashSize:]
			prev = r.hash
			rows[i] = r
		}
		blocks := makeBlocks(rows, hashes)
		var ps []blockPrincipal
		for i := range blocks {
			ps = blocks[i].appendPrincipals(ps)
		}
		if len(blocks) != DefaultMaxBatch/blockMax || len(ps) != len(blocks) {
			b.Fatal(len(blocks), len(ps))
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(rows)), "ns/entry")
}

// BenchmarkAppendAsyncGateway measures AppendAsync of gateway calls'
// entries from 32×GOMAXPROCS goroutines, as the gateway queues them, on a
// SQLite file store, the batcher's writes included (an entry the full
// queue refuses is appended synchronously, as the server does).
// allocs/op and B/op are the figures that hold on a busy machine.
func BenchmarkAppendAsyncGateway(b *testing.B) {
	l := openLog(b, storagetest.OpenSQLite(b, storage.Options{}), newSigner(b), Options{})
	appendParallel(b, func(i int) error {
		e := gatewayEntry(i)
		err := l.AppendAsync(e, nil)
		if errors.Is(err, ErrQueueFull) {
			err = l.Append(b.Context(), e)
		}
		return err
	})
}
