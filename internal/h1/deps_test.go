package h1

import (
	"testing"

	"github.com/keyward/keyward/internal/deptest"
)

// h1 is a leaf on the standard library alone: the code between the
// internet and the handlers adds no dependency, and imports none of the
// keyward packages it serves.
func TestImports(t *testing.T) { deptest.Check(t, ".", deptest.StdlibOnly) }
