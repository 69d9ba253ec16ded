package policy

import (
	"testing"

	"github.com/keyward/keyward/internal/deptest"
)

// Arrows point down: policy imports no keyward package but storage.
func TestImports(t *testing.T) { deptest.Check(t, ".", deptest.OnlyKeyward("internal/storage")) }
