package dpop

import (
	"testing"

	"github.com/keyward/keyward/internal/deptest"
)

// dpop is a leaf: it imports no keyward package, so the edge, the token
// endpoint and tests can all use it.
func TestImports(t *testing.T) { deptest.Check(t, ".", deptest.OnlyKeyward()) }
