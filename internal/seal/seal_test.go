package seal

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"errors"
	"testing"
)

func softAEAD(t testing.TB) cipher.AEAD {
	t.Helper()
	key := make([]byte, 32)
	rand.Read(key)
	b, err := aes.NewCipher(key)
	if err != nil {
		t.Fatal(err)
	}
	g, err := cipher.NewGCM(b)
	if err != nil {
		t.Fatal(err)
	}
	return g
}

func TestAEADWrapRoundTrip(t *testing.T) {
	w, err := NewAEAD(softAEAD(t), "test", nil)
	if err != nil {
		t.Fatal(err)
	}
	root := bytes.Repeat([]byte{7}, 32)
	blob, err := w.Wrap(root)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(blob, root) {
		t.Fatal("the wrapped blob holds the root key in clear")
	}
	again, _ := w.Wrap(root)
	if bytes.Equal(blob, again) {
		t.Fatal("two wraps of one key are equal: the nonce is not random")
	}
	got, err := w.Unwrap(blob)
	if err != nil || !bytes.Equal(got, root) {
		t.Fatalf("Unwrap = %x, %v; want the root key", got, err)
	}
	if w.Type() != "test" || w.Close() != nil {
		t.Fatal("Type or Close")
	}
}

func TestAEADUnwrapRefuses(t *testing.T) {
	w, _ := NewAEAD(softAEAD(t), "test", nil)
	other, _ := NewAEAD(softAEAD(t), "test", nil)
	blob, err := w.Wrap(make([]byte, 32))
	if err != nil {
		t.Fatal(err)
	}
	flipped := append([]byte(nil), blob...)
	flipped[len(flipped)-1] ^= 1
	badVersion := append([]byte(nil), blob...)
	badVersion[0] = 9
	for name, c := range map[string]struct {
		w    Wrapper
		blob []byte
	}{
		"another key":    {other, blob},
		"changed byte":   {w, flipped},
		"unknown format": {w, badVersion},
		"truncated":      {w, blob[:20]},
		"empty":          {w, nil},
		"oversized":      {w, make([]byte, maxBlob+1)},
	} {
		if _, err := c.w.Unwrap(c.blob); !errors.Is(err, ErrUnwrap) {
			t.Errorf("%s: Unwrap error = %v, want ErrUnwrap", name, err)
		}
	}
	// another purpose's ciphertext under the same key does not open
	a := softAEAD(t)
	wa, _ := NewAEAD(a, "test", nil)
	nonce := make([]byte, nonceSize)
	foreign := append([]byte{blobVersion}, nonce...)
	foreign = a.Seal(foreign, nonce, make([]byte, 32), []byte("something else"))
	if _, err := wa.Unwrap(foreign); !errors.Is(err, ErrUnwrap) {
		t.Errorf("a ciphertext of another purpose opened: %v", err)
	}
}

func TestAEADWrapRefusesBadInput(t *testing.T) {
	w, _ := NewAEAD(softAEAD(t), "test", nil)
	for _, n := range []int{0, 1025} {
		if _, err := w.Wrap(make([]byte, n)); err == nil {
			t.Errorf("Wrap of %d bytes succeeded", n)
		}
	}
}

// panicky is an AEAD that panics on Seal, as crypto11's does when the
// module fails.
type panicky struct{ cipher.AEAD }

func (panicky) Seal(dst, nonce, plaintext, ad []byte) []byte { panic("C_Encrypt: CKR_DEVICE_ERROR") }

func TestAEADWrapReportsModulePanic(t *testing.T) {
	w, _ := NewAEAD(panicky{softAEAD(t)}, "test", nil)
	if _, err := w.Wrap(make([]byte, 32)); err == nil || !bytes.Contains([]byte(err.Error()), []byte("CKR_DEVICE_ERROR")) {
		t.Fatalf("Wrap error = %v, want the module's failure", err)
	}
}

func TestNewAEADChecksShape(t *testing.T) {
	b, _ := aes.NewCipher(make([]byte, 32))
	g, _ := cipher.NewGCMWithNonceSize(b, 16)
	if _, err := NewAEAD(g, "test", nil); err == nil {
		t.Fatal("an AEAD with a 16-byte nonce was accepted")
	}
}

func TestPKCS11ConfigChecked(t *testing.T) {
	for _, c := range []PKCS11Config{{Token: "t", Key: "k"}, {Lib: "/x.so", Key: "k"}, {Lib: "/x.so", Token: "t"}} {
		if _, err := OpenPKCS11(c); err == nil || errors.Is(err, ErrNoPKCS11) {
			t.Errorf("OpenPKCS11(%+v) = %v, want a named missing setting", c, err)
		}
	}
	if !PKCS11Available {
		if _, err := OpenPKCS11(PKCS11Config{Lib: "/x.so", Token: "t", Key: "k"}); !errors.Is(err, ErrNoPKCS11) {
			t.Errorf("without pkcs11 support: %v, want ErrNoPKCS11", err)
		}
	}
}

func FuzzUnwrap(f *testing.F) {
	w, _ := NewAEAD(softAEAD(f), "test", nil)
	blob, _ := w.Wrap(make([]byte, 32))
	f.Add(blob)
	f.Add([]byte{1})
	f.Fuzz(func(t *testing.T, b []byte) {
		root, err := w.Unwrap(b)
		if err == nil && !bytes.Equal(b, blob) {
			t.Fatalf("a blob other than the one wrapped opened: %x", root)
		}
	})
}
