package barrier

import (
	"bytes"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"testing"
)

func unsealed(t testing.TB) (*Barrier, *InitResult) {
	t.Helper()
	res, err := Init(1, 1)
	if err != nil {
		t.Fatal(err)
	}
	b := New()
	if err := b.UnsealKey(res.RootKey, res.Keyring); err != nil {
		t.Fatal(err)
	}
	return b, res
}

func TestInitParams(t *testing.T) {
	for _, p := range []struct{ n, k int }{{0, 0}, {3, 4}, {256, 3}, {5, 1}, {1, 0}} {
		if _, err := Init(p.n, p.k); !errors.Is(err, ErrInvalidParams) {
			t.Errorf("Init(%d, %d) = %v", p.n, p.k, err)
		}
	}
	res, err := Init(5, 3)
	if err != nil || len(res.Shares) != 5 {
		t.Fatalf("Init(5, 3) = %v", err)
	}
}

func TestSealOpenRoundTrip(t *testing.T) {
	b, _ := unsealed(t)
	for _, size := range []int{0, 1, 1024, 64 << 10} {
		pt := bytes.Repeat([]byte{'v'}, size)
		ct, err := b.SealEnv("env-a", []byte("secret/env-a/p/1"), pt)
		if err != nil {
			t.Fatal(err)
		}
		if len(ct) != len(pt)+headerSize+nonceSize+tagSize || ct[0] != formatV1 {
			t.Fatalf("layout: len %d for %d bytes", len(ct), size)
		}
		if size > 16 && bytes.Contains(ct, pt[:16]) {
			t.Fatal("plaintext visible in ciphertext")
		}
		got, err := b.OpenEnv("env-a", []byte("secret/env-a/p/1"), ct)
		if err != nil || !bytes.Equal(got, pt) {
			t.Fatalf("open: %v", err)
		}
	}
	ct, _ := b.Encrypt([]byte("sys/x"), []byte("system value"))
	if got, err := b.Decrypt([]byte("sys/x"), ct); err != nil || string(got) != "system value" {
		t.Fatalf("system round trip: %v", err)
	}
}

func TestTamperAndBinding(t *testing.T) {
	b, _ := unsealed(t)
	aad := []byte("secret/env-a/db/1")
	ct, _ := b.SealEnv("env-a", aad, []byte("the value"))
	// Every byte of nonce, body and tag.
	for i := headerSize; i < len(ct); i++ {
		bad := bytes.Clone(ct)
		bad[i] ^= 0x01
		if _, err := b.OpenEnv("env-a", aad, bad); !errors.Is(err, ErrDecrypt) {
			t.Fatalf("flip at %d: %v", i, err)
		}
	}
	// Header: format byte and key version.
	bad := bytes.Clone(ct)
	bad[0] = 0x02
	if _, err := b.OpenEnv("env-a", aad, bad); !errors.Is(err, ErrMalformedCiphertext) {
		t.Fatalf("format byte: %v", err)
	}
	bad = bytes.Clone(ct)
	bad[4] = 9
	if _, err := b.OpenEnv("env-a", aad, bad); !errors.Is(err, ErrUnknownKeyVersion) {
		t.Fatalf("key version: %v", err)
	}
	if _, err := b.OpenEnv("env-a", []byte("secret/env-a/db/2"), ct); !errors.Is(err, ErrDecrypt) {
		t.Fatalf("wrong aad: %v", err)
	}
	if _, err := b.OpenEnv("env-b", aad, ct); !errors.Is(err, ErrDecrypt) {
		t.Fatalf("moved to another environment: %v", err)
	}
	if _, err := b.OpenEnv("env-a", aad, ct[:10]); !errors.Is(err, ErrMalformedCiphertext) {
		t.Fatalf("truncated: %v", err)
	}
}

func TestRotate(t *testing.T) {
	b, res := unsealed(t)
	old, _ := b.SealEnv("e", []byte("a"), []byte("old"))
	var stored []byte
	v, err := b.Rotate(func(k []byte) error { stored = k; return nil })
	if err != nil || v != 2 || b.KeyVersion() != 2 {
		t.Fatalf("rotate = %d, %v", v, err)
	}
	fresh, _ := b.SealEnv("e", []byte("a"), []byte("new"))
	if fresh[4] != 2 || old[4] != 1 {
		t.Fatalf("versions in headers: old %d new %d", old[4], fresh[4])
	}
	if got, err := b.OpenEnv("e", []byte("a"), old); err != nil || string(got) != "old" {
		t.Fatalf("old ciphertext after rotate: %v", err)
	}
	// A failed persist leaves the old keyring in force.
	if _, err := b.Rotate(func([]byte) error { return errors.New("disk full") }); err == nil || b.KeyVersion() != 2 {
		t.Fatalf("failed persist changed the version: %d", b.KeyVersion())
	}
	// The persisted keyring opens with the same root key and holds both versions.
	b2 := New()
	if err := b2.UnsealKey(res.RootKey, stored); err != nil {
		t.Fatal(err)
	}
	for _, ct := range [][]byte{old, fresh} {
		if _, err := b2.OpenEnv("e", []byte("a"), ct); err != nil {
			t.Fatalf("reloaded keyring: %v", err)
		}
	}
	// MAC keys survive rotation.
	if !bytes.Equal(b.MAC("token", []byte("x")), b2.MAC("token", []byte("x"))) {
		t.Fatal("MAC changed across rotation")
	}
}

func TestShares(t *testing.T) {
	res, err := Init(5, 3)
	if err != nil {
		t.Fatal(err)
	}
	b := New()
	for i, want := range []int{1, 2} {
		p, err := b.SubmitShare(res.Shares[i], 3, res.Keyring)
		if err != nil || p.Progress != want || !p.Sealed {
			t.Fatalf("share %d: %+v %v", i, p, err)
		}
	}
	if _, err := b.SubmitShare(res.Shares[1], 3, res.Keyring); !errors.Is(err, ErrDuplicateShare) {
		t.Fatalf("duplicate: %v", err)
	}
	for _, bad := range []string{"", "!!!", base64.StdEncoding.EncodeToString(make([]byte, 32)), base64.StdEncoding.EncodeToString(make([]byte, 33))} {
		if p, err := b.SubmitShare(bad, 3, res.Keyring); !errors.Is(err, ErrMalformedShare) || p.Progress != 2 {
			t.Fatalf("malformed %q: %+v %v", bad, p, err)
		}
	}
	p, err := b.SubmitShare(res.Shares[4], 3, res.Keyring)
	if err != nil || p.Sealed || b.Sealed() {
		t.Fatalf("third share: %+v %v", p, err)
	}
	if _, err := b.SubmitShare(res.Shares[0], 3, res.Keyring); !errors.Is(err, ErrAlreadyUnsealed) {
		t.Fatalf("unseal when unsealed: %v", err)
	}
	// Wrong shares: another init's shares reset the progress.
	other, _ := Init(3, 3)
	b2 := New()
	b2.SubmitShare(other.Shares[0], 3, res.Keyring)
	b2.SubmitShare(other.Shares[1], 3, res.Keyring)
	if p, err := b2.SubmitShare(other.Shares[2], 3, res.Keyring); !errors.Is(err, ErrWrongShares) || p.Progress != 0 || !b2.Sealed() {
		t.Fatalf("wrong shares: %+v %v", p, err)
	}
	// Too few: two of three leave it sealed; reset clears.
	b3 := New()
	b3.SubmitShare(res.Shares[0], 3, res.Keyring)
	b3.ResetUnseal()
	if p, _ := b3.SubmitShare(res.Shares[1], 3, res.Keyring); p.Progress != 1 {
		t.Fatalf("after reset: %+v", p)
	}
}

func TestSealWipes(t *testing.T) {
	b, _ := unsealed(t)
	ct, _ := b.SealEnv("e", nil, []byte("x"))
	b.MAC("token", []byte("t"))
	b.Seal()
	if !b.Sealed() || b.KeyVersion() != 0 {
		t.Fatal("not sealed")
	}
	if _, err := b.SealEnv("e", nil, []byte("x")); !errors.Is(err, ErrSealed) {
		t.Fatalf("seal while sealed: %v", err)
	}
	if _, err := b.OpenEnv("e", nil, ct); !errors.Is(err, ErrSealed) {
		t.Fatalf("open while sealed: %v", err)
	}
	if b.MAC("token", []byte("t")) != nil {
		t.Fatal("MAC works while sealed")
	}
	if _, err := b.SignAudit([]byte("m")); !errors.Is(err, ErrSealed) {
		t.Fatal("signing works while sealed")
	}
	if _, err := b.Rotate(func([]byte) error { return nil }); !errors.Is(err, ErrSealed) {
		t.Fatal("rotate works while sealed")
	}
}

func TestAuditSigning(t *testing.T) {
	b, _ := unsealed(t)
	sig, err := b.SignAudit([]byte("checkpoint"))
	if err != nil {
		t.Fatal(err)
	}
	pub, _ := b.AuditPublicKey()
	if !ed25519.Verify(pub, []byte("checkpoint"), sig) || ed25519.Verify(pub, []byte("other"), sig) {
		t.Fatal("audit signature does not verify")
	}
}

func TestRootKeyNeverFormats(t *testing.T) {
	_, res := unsealed(t)
	raw := res.RootKey.b
	var buf bytes.Buffer
	slog.New(slog.NewJSONHandler(&buf, nil)).Info("k", "root", res.RootKey, "res", res)
	slog.New(slog.NewTextHandler(&buf, nil)).Info("k", "root", res.RootKey)
	j, _ := json.Marshal(res.RootKey)
	outs := []string{buf.String(), string(j), res.RootKey.String()}
	for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%q", "%x", "%X", "%d"} {
		outs = append(outs, fmt.Sprintf(verb, res.RootKey), fmt.Sprintf(verb, &res.RootKey))
	}
	for _, o := range outs {
		for _, enc := range []string{fmt.Sprintf("%x", raw), base64.StdEncoding.EncodeToString(raw), string(raw)} {
			if strings.Contains(o, enc) {
				t.Fatalf("root key leaked: %q", o)
			}
		}
	}
}

func FuzzOpen(f *testing.F) {
	b, _ := unsealed(f)
	ct, _ := b.SealEnv("e", []byte("a"), []byte("value"))
	f.Add(ct)
	f.Add([]byte{1, 0, 0, 0, 1})
	f.Fuzz(func(t *testing.T, data []byte) {
		if pt, err := b.OpenEnv("e", []byte("a"), data); err == nil && !bytes.Equal(data, ct) {
			t.Fatalf("garbage opened: %q", pt)
		}
	})
}

func benchSeal(b *testing.B, size int) {
	br, _ := unsealed(b)
	pt := make([]byte, size)
	aad := []byte("secret/env/path/1")
	b.SetBytes(int64(size))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := br.SealEnv("env", aad, pt); err != nil {
			b.Fatal(err)
		}
	}
}

func benchOpen(b *testing.B, size int) {
	br, _ := unsealed(b)
	aad := []byte("secret/env/path/1")
	ct, _ := br.SealEnv("env", aad, make([]byte, size))
	b.SetBytes(int64(size))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := br.OpenEnv("env", aad, ct); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkSeal1K(b *testing.B)  { benchSeal(b, 1<<10) }
func BenchmarkSeal64K(b *testing.B) { benchSeal(b, 64<<10) }
func BenchmarkOpen1K(b *testing.B)  { benchOpen(b, 1<<10) }
func BenchmarkOpen64K(b *testing.B) { benchOpen(b, 64<<10) }

func BenchmarkMAC(b *testing.B) {
	br, _ := unsealed(b)
	data := []byte("kwt_0123456789012345678901234567890123456789abcdef")
	b.ReportAllocs()
	for b.Loop() {
		br.MAC("token", data)
	}
}

func TestMAC32MatchesMAC(t *testing.T) {
	b, _ := unsealed(t)
	for _, in := range []string{"", "kwt_x", strings.Repeat("a", 5000)} {
		got, ok := b.MAC32("token", in)
		if !ok || !bytes.Equal(got[:], b.MAC("token", []byte(in))) {
			t.Fatalf("MAC32(%d bytes) differs from MAC", len(in))
		}
	}
	if other, _ := b.MAC32("apikey", "kwt_x"); bytes.Equal(other[:], b.MAC("token", []byte("kwt_x"))) {
		t.Fatal("purposes share a key")
	}
	b.Seal()
	if _, ok := b.MAC32("token", "x"); ok {
		t.Fatal("MAC32 worked while sealed")
	}
}

func BenchmarkMAC32(b *testing.B) {
	br, _ := unsealed(b)
	data := "kwt_0123456789012345678901234567890123456789abcdef"
	b.ReportAllocs()
	for b.Loop() {
		br.MAC32("token", data)
	}
}
