//go:build pkcs11 && cgo

package seal

import (
	"fmt"
	"strings"

	"github.com/ThalesGroup/crypto11"
)

// PKCS11Available reports whether this binary can open a PKCS#11 module.
const PKCS11Available = true

// OpenPKCS11 logs in to the token and finds (or, with cfg.Create, makes) the
// AES-256 key that wraps the root key. A key made here is a token object,
// sensitive and not extractable: its bits never leave the module.
func OpenPKCS11(cfg PKCS11Config) (Wrapper, error) {
	if err := cfg.check(); err != nil {
		return nil, err
	}
	ctx, err := crypto11.Configure(&crypto11.Config{Path: cfg.Lib, TokenLabel: cfg.Token, Pin: cfg.Pin, GCMIVLength: nonceSize})
	if err != nil {
		return nil, fmt.Errorf("seal: pkcs11: opening token %q with %s: %w", cfg.Token, cfg.Lib, err)
	}
	keys, err := ctx.FindKeys(nil, []byte(cfg.Key))
	if err != nil {
		ctx.Close()
		return nil, fmt.Errorf("seal: pkcs11: looking for key %q: %w", cfg.Key, err)
	}
	var key *crypto11.SecretKey
	switch {
	case len(keys) > 1:
		ctx.Close()
		return nil, fmt.Errorf("seal: pkcs11: token %q holds %d keys labelled %q; keep one", cfg.Token, len(keys), cfg.Key)
	case len(keys) == 1:
		key = keys[0]
	case !cfg.Create:
		ctx.Close()
		return nil, fmt.Errorf("seal: pkcs11: token %q holds no key labelled %q", cfg.Token, cfg.Key)
	default:
		id := []byte("keyward:" + cfg.Key)
		if key, err = ctx.GenerateSecretKeyWithLabel(id, []byte(cfg.Key), 256, crypto11.CipherAES); err != nil {
			ctx.Close()
			return nil, fmt.Errorf("seal: pkcs11: generating AES key %q: %w", cfg.Key, err)
		}
	}
	aead, err := key.NewGCM()
	if err != nil {
		ctx.Close()
		if strings.Contains(err.Error(), "not implemented") {
			return nil, fmt.Errorf("seal: pkcs11: key %q is not an AES key with GCM: %w", cfg.Key, err)
		}
		return nil, fmt.Errorf("seal: pkcs11: key %q: %w", cfg.Key, err)
	}
	return NewAEAD(aead, "pkcs11", ctx.Close)
}
