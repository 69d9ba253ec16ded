package audit

import (
	"sync/atomic"
	"syscall"
	"testing"
	"time"

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
	var n atomic.Int64
	b.SetParallelism(32)
	b.ReportAllocs()
	b.ResetTimer()
	cpu0 := processCPU()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			e := testEntry(int(n.Add(1)))
			if err := l.Append(b.Context(), e); err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "entries/s")
	b.ReportMetric(float64(l.batched.Load())/float64(l.batches.Load()), "entries/batch")
	// CPU per entry (writers and batcher, whole process) is the figure
	// that holds on a busy machine, where entries/s does not.
	b.ReportMetric(float64(processCPU()-cpu0)/1e3/float64(b.N), "cpu-µs/entry")
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

// processCPU is the user and system CPU time this process has used.
func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
