package postgres_test

import (
	"testing"

	"github.com/keyward/keyward/internal/storage"
	"github.com/keyward/keyward/internal/storage/storagetest"
)

// KEYWARD_TEST_POSTGRES=postgres://... go test -run '^$' -bench . ./internal/storage/postgres
func BenchmarkStore(b *testing.B) {
	storagetest.Bench(b, storagetest.OpenPostgres(b, storage.Options{}))
}
