package storagetest

import (
	"strconv"
	"sync/atomic"
	"testing"

	"github.com/keyward/keyward/internal/storage"
)

// Bench measures s with parallel callers (b.RunParallel, GOMAXPROCS
// goroutines; raise with -cpu): "Write" is one single-row insert into sys per
// Write transaction, "Read" one point GetSys per Read transaction over 1000
// rows. Values are 256 bytes, the size of a sealed small secret.
func Bench(b *testing.B, s storage.Store) {
	ctx := b.Context()
	value := make([]byte, 256)
	var seq atomic.Int64
	b.Run("Write", func(b *testing.B) {
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				k := "bench/w/" + strconv.FormatInt(seq.Add(1), 10)
				if err := s.Write(ctx, func(tx storage.Tx) error { return storage.PutSys(ctx, tx, k, value) }); err != nil {
					b.Error(err)
					return
				}
			}
		})
	})
	b.Run("Read", func(b *testing.B) {
		const rows = 1000
		err := s.Write(ctx, func(tx storage.Tx) error {
			for i := range rows {
				if err := storage.PutSys(ctx, tx, "bench/r/"+strconv.Itoa(i), value); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			b.Fatal(err)
		}
		b.ReportAllocs()
		b.ResetTimer()
		b.RunParallel(func(pb *testing.PB) {
			i := 0
			for pb.Next() {
				k := "bench/r/" + strconv.Itoa(i%rows)
				i += 7
				err := s.Read(ctx, func(tx storage.Tx) error {
					v, err := storage.GetSys(ctx, tx, k)
					if err == nil && len(v) != len(value) {
						b.Errorf("read %d bytes", len(v))
					}
					return err
				})
				if err != nil {
					b.Error(err)
					return
				}
			}
		})
	})
}
