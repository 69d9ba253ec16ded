package device

import (
	"testing"

	"github.com/keyward/keyward/internal/deptest"
)

// Arrows point down: devices are stored through internal/storage and their
// codes made by internal/credential; proofs are checked by the caller.
func TestImports(t *testing.T) {
	deptest.Check(t, ".", deptest.OnlyKeyward("internal/storage", "internal/credential"))
}
