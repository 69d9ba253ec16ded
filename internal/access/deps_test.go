package access

import (
	"testing"

	"github.com/keyward/keyward/internal/deptest"
)

// Arrows point down: access requests are stored through internal/storage;
// who may decide and how a token is made are the server's.
func TestImports(t *testing.T) {
	deptest.Check(t, ".", deptest.OnlyKeyward("internal/storage", "internal/credential"))
}
