//go:build pkcs11 && cgo

package seal_test

import (
	"bytes"
	"strings"
	"testing"

	"github.com/keyward/keyward/internal/seal"
	"github.com/keyward/keyward/internal/seal/sealtest"
)

func TestPKCS11WrapsWithSoftHSM(t *testing.T) {
	cfg := sealtest.SoftHSM(t)
	if _, err := seal.OpenPKCS11(cfg); err == nil || !strings.Contains(err.Error(), "no key labelled") {
		t.Fatalf("opening without the key and without Create: %v, want 'no key labelled'", err)
	}
	cfg.Create = true
	w, err := seal.OpenPKCS11(cfg)
	if err != nil {
		t.Fatal(err)
	}
	root := bytes.Repeat([]byte{0x5a}, 32)
	blob, err := w.Wrap(root)
	if err != nil {
		t.Fatal(err)
	}
	if w.Type() != "pkcs11" {
		t.Fatalf("Type = %q", w.Type())
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}

	// A second session (a restart) finds the same key and opens the blob.
	cfg.Create = false
	w2, err := seal.OpenPKCS11(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer w2.Close()
	got, err := w2.Unwrap(blob)
	if err != nil || !bytes.Equal(got, root) {
		t.Fatalf("Unwrap after reopening = %x, %v", got, err)
	}
	blob[len(blob)-1] ^= 1
	if _, err := w2.Unwrap(blob); err == nil {
		t.Fatal("a changed blob opened")
	}
}

func TestPKCS11RefusesWrongPinAndToken(t *testing.T) {
	cfg := sealtest.SoftHSM(t)
	bad := cfg
	bad.Pin = "00000000"
	if _, err := seal.OpenPKCS11(bad); err == nil {
		t.Fatal("a wrong PIN opened the token")
	} else if strings.Contains(err.Error(), bad.Pin) {
		t.Fatalf("the error shows the PIN: %v", err)
	}
	bad = cfg
	bad.Token = "no-such-token"
	if _, err := seal.OpenPKCS11(bad); err == nil || !strings.Contains(err.Error(), "no-such-token") {
		t.Fatalf("an unknown token: %v, want its name in the error", err)
	}
	bad = cfg
	bad.Lib = "/nonexistent/libpkcs11.so"
	if _, err := seal.OpenPKCS11(bad); err == nil || !strings.Contains(err.Error(), bad.Lib) {
		t.Fatalf("a missing module: %v, want its path in the error", err)
	}
}
