//go:build !pkcs11 || !cgo

package seal

// PKCS11Available reports whether this binary can open a PKCS#11 module.
const PKCS11Available = false

// OpenPKCS11 returns ErrNoPKCS11: this binary was built without cgo and
// -tags pkcs11.
func OpenPKCS11(cfg PKCS11Config) (Wrapper, error) {
	if err := cfg.check(); err != nil {
		return nil, err
	}
	return nil, ErrNoPKCS11
}
