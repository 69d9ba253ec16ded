// Package seal protects the root key at rest with a key that never leaves a
// hardware security module, so a node can unseal itself at start (auto
// unseal) instead of waiting for operators' Shamir shares.
//
// A Wrapper encrypts the root key under the module's key (AES-256-GCM
// inside the module) and decrypts it again at start. The wrapped root key
// is stored beside the sealed keyring; without the module it is useless,
// and the Shamir shares made at initialisation still unseal the node (they
// are then recovery shares).
//
// PKCS#11 needs cgo: OpenPKCS11 works in binaries built with -tags pkcs11
// and returns ErrNoPKCS11 otherwise.
//
// Imported by internal/server only.
package seal

import (
	"crypto/cipher"
	"crypto/rand"
	"errors"
	"fmt"
)

// Wrapper encrypts and decrypts the root key under a key it holds
// elsewhere. Implementations are safe for concurrent use.
type Wrapper interface {
	// Wrap encrypts root; the result is safe to store.
	Wrap(root []byte) ([]byte, error)
	// Unwrap decrypts what Wrap returned, or fails with ErrUnwrap.
	Unwrap(blob []byte) ([]byte, error)
	// Type names the kind of seal ("pkcs11"), for health and logs.
	Type() string
	// Close releases the module.
	Close() error
}

// Errors of unwrapping.
var (
	// ErrUnwrap: the blob is not a root key wrapped by this key (another
	// key, another module, or changed bytes).
	ErrUnwrap = errors.New("seal: the wrapped root key does not open with this key (another HSM key, or the stored blob was changed)")
	// ErrNoPKCS11: this binary was built without PKCS#11 support.
	ErrNoPKCS11 = errors.New("seal: this keyward was built without PKCS#11 support; build it with cgo and -tags pkcs11 (go build -tags pkcs11 ./cmd/keyward)")
)

// blobVersion is the first byte of a wrapped root key: AES-256-GCM with a
// 96-bit random nonce, additional data wrapAAD.
const (
	blobVersion = 1
	nonceSize   = 12
	tagSize     = 16
	// maxBlob bounds what Unwrap reads (a root key is 32 bytes).
	maxBlob = 1 + nonceSize + 1024 + tagSize
)

// wrapAAD binds a blob to its purpose: a ciphertext made for something
// else under the same module key does not open as a root key.
var wrapAAD = []byte("keyward/seal/root-key/v1")

// aeadWrapper frames the root key under an AEAD: version ‖ nonce ‖
// ciphertext+tag.
type aeadWrapper struct {
	aead  cipher.AEAD
	typ   string
	close func() error
}

// NewAEAD returns a Wrapper that encrypts under aead (a 12-byte-nonce
// AEAD such as AES-GCM, in a module or not). close, when not nil, runs at
// Close.
func NewAEAD(aead cipher.AEAD, typ string, close func() error) (Wrapper, error) {
	if aead.NonceSize() != nonceSize || aead.Overhead() != tagSize {
		return nil, fmt.Errorf("seal: want an AEAD with a %d-byte nonce and a %d-byte tag, got %d and %d", nonceSize, tagSize, aead.NonceSize(), aead.Overhead())
	}
	return &aeadWrapper{aead: aead, typ: typ, close: close}, nil
}

func (w *aeadWrapper) Type() string { return w.typ }

func (w *aeadWrapper) Close() error {
	if w.close == nil {
		return nil
	}
	return w.close()
}

func (w *aeadWrapper) Wrap(root []byte) (out []byte, err error) {
	if len(root) == 0 || len(root) > 1024 {
		return nil, fmt.Errorf("seal: a root key of %d bytes cannot be wrapped", len(root))
	}
	out = make([]byte, 1+nonceSize, 1+nonceSize+len(root)+tagSize)
	out[0] = blobVersion
	if _, err := rand.Read(out[1:]); err != nil {
		return nil, fmt.Errorf("seal: reading a nonce: %w", err)
	}
	// crypto11's AEAD panics when the module fails; report it instead.
	defer func() {
		if p := recover(); p != nil {
			out, err = nil, fmt.Errorf("seal: the module failed to encrypt: %v", p)
		}
	}()
	return w.aead.Seal(out, out[1:1+nonceSize], root, wrapAAD), nil
}

func (w *aeadWrapper) Unwrap(blob []byte) ([]byte, error) {
	if len(blob) < 1+nonceSize+tagSize+1 || len(blob) > maxBlob {
		return nil, fmt.Errorf("%w: %d bytes is not the size of a wrapped root key", ErrUnwrap, len(blob))
	}
	if blob[0] != blobVersion {
		return nil, fmt.Errorf("%w: unknown format %d", ErrUnwrap, blob[0])
	}
	root, err := w.aead.Open(nil, blob[1:1+nonceSize], blob[1+nonceSize:], wrapAAD)
	if err != nil {
		return nil, ErrUnwrap
	}
	return root, nil
}

// PKCS11Config names the module, token and key that wrap the root key.
type PKCS11Config struct {
	Lib   string // path of the module's shared library
	Token string // token label
	Pin   string // user PIN
	Key   string // label of the AES key; created (256 bits) when Create and missing
	// Create makes the key when the token has none of that label (at
	// initialisation); otherwise a missing key is an error.
	Create bool
}

func (c PKCS11Config) check() error {
	switch {
	case c.Lib == "":
		return errors.New("seal: pkcs11: the module's library path is empty (--pkcs11-lib)")
	case c.Token == "":
		return errors.New("seal: pkcs11: the token label is empty (--pkcs11-token)")
	case c.Key == "":
		return errors.New("seal: pkcs11: the key label is empty (--pkcs11-key)")
	}
	return nil
}
