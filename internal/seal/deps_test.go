package seal

import (
	"fmt"
	"testing"

	"github.com/keyward/keyward/internal/deptest"
)

// seal is a leaf: the standard library, and crypto11 in the PKCS#11 build
// only (the file that imports it is behind -tags pkcs11, so a default
// build links no cgo).
func TestImports(t *testing.T) {
	deptest.Check(t, ".", func(p string) error {
		if p == "github.com/ThalesGroup/crypto11" {
			return nil
		}
		if err := deptest.StdlibOnly(p); err != nil {
			return fmt.Errorf("%w (crypto11 aside)", err)
		}
		return nil
	})
}
