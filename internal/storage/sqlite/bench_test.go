package sqlite_test

import (
	"testing"

	"github.com/keyward/keyward/internal/storage"
	"github.com/keyward/keyward/internal/storage/storagetest"
)

// go test -run '^$' -bench . ./internal/storage/sqlite
func BenchmarkStore(b *testing.B) {
	storagetest.Bench(b, storagetest.OpenSQLite(b, storage.Options{}))
}
