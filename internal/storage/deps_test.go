package storage_test

import (
	"testing"

	"github.com/keyward/keyward/internal/deptest"
)

// Arrows point down: storage imports no keyward package, and the backends
// import only storage. (Test files and storagetest may import more.)
func TestImports(t *testing.T) {
	deptest.Check(t, ".", deptest.OnlyKeyward())
	deptest.Check(t, "sqlite", deptest.OnlyKeyward("internal/storage"))
	deptest.Check(t, "postgres", deptest.OnlyKeyward("internal/storage"))
}
