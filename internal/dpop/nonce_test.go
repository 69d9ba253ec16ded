package dpop

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"errors"
	"strings"
	"testing"
	"time"
)

func testMAC(key string) func([]byte) []byte {
	return func(b []byte) []byte {
		m := hmac.New(sha256.New, []byte(key))
		m.Write(b)
		return m.Sum(nil)
	}
}

func TestNonces(t *testing.T) {
	c := &clock{t: time.Unix(1_800_000_000, 0)}
	n := NewNonces(testMAC("k1"), time.Minute, c.now)
	cur, ok := n.Current()
	if !ok || !n.Valid(cur) {
		t.Fatalf("current nonce %q not valid", cur)
	}
	// Another node with the same key accepts it; another key does not.
	if !NewNonces(testMAC("k1"), time.Minute, c.now).Valid(cur) || NewNonces(testMAC("k2"), time.Minute, c.now).Valid(cur) {
		t.Fatal("nonce validity does not follow the key")
	}
	c.add(time.Minute)
	if !n.Valid(cur) {
		t.Fatal("a nonce of the previous period is refused")
	}
	if next, _ := n.Current(); next == cur {
		t.Fatal("the nonce did not change with the period")
	}
	c.add(time.Minute)
	if n.Valid(cur) {
		t.Fatal("a nonce two periods old is accepted")
	}
	for _, bad := range []string{"", "x", cur + "A", strings.Repeat("A", len(cur)), cur[:len(cur)-2] + "AA"} {
		if n.Valid(bad) {
			t.Errorf("Valid(%q) = true", bad)
		}
	}
	// A sealed MAC key: no nonce.
	if _, ok := NewNonces(func([]byte) []byte { return nil }, 0, nil).Current(); ok {
		t.Fatal("a nonce without a MAC key")
	}
}

// With nonces required, a proof needs the current nonce: none, a stale one
// or another server's is ErrUseNonce; the current one passes.
func TestVerifyRequiresNonce(t *testing.T) {
	c := &clock{t: time.Now()}
	nonces := NewNonces(testMAC("k"), time.Minute, c.now)
	v := NewVerifier(Options{Now: c.now, Nonces: nonces})
	key := newKey(t)
	want := Expect{Method: "GET", URL: testURL, AccessToken: testToken, JKT: jktOf(t, key)}
	cur, _ := v.Nonce()
	stale := cur
	c.add(2 * time.Minute)
	cur, _ = v.Nonce()
	other, _ := NewNonces(testMAC("other"), time.Minute, c.now).Current()
	for name, nonce := range map[string]string{"none": "", "stale": stale, "another server's": other} {
		p, err := NewProofWithNonce(key, "GET", testURL, testToken, nonce, c.now())
		if err != nil {
			t.Fatal(err)
		}
		if _, err := v.Verify(context.Background(), p, want); !errors.Is(err, ErrUseNonce) || !errors.Is(err, ErrInvalid) {
			t.Errorf("%s nonce: %v, want ErrUseNonce", name, err)
		}
	}
	p, _ := NewProofWithNonce(key, "GET", testURL, testToken, cur, c.now())
	got, err := v.Verify(context.Background(), p, want)
	if err != nil || got.Nonce != cur {
		t.Fatalf("current nonce: %+v, %v", got, err)
	}
	// Without nonces required, a nonce in a proof is ignored.
	if _, err := NewVerifier(Options{Now: c.now}).Verify(context.Background(), p, want); err != nil {
		t.Fatalf("nonce not required: %v", err)
	}
	if _, ok := NewVerifier(Options{}).Nonce(); ok {
		t.Fatal("a verifier without nonces hands one out")
	}
}

// Only this period's nonce and the previous one's are valid: no other
// string, however close, passes.
func FuzzNonceValid(f *testing.F) {
	c := &clock{t: time.Unix(1_800_000_000, 0)}
	n := NewNonces(testMAC("k"), time.Minute, c.now)
	cur, _ := n.Current()
	prev, _ := n.make(n.period0() - 1)
	f.Add(cur)
	f.Add(prev)
	f.Add("")
	f.Add("AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA")
	f.Fuzz(func(t *testing.T, s string) {
		if n.Valid(s) && s != cur && s != prev {
			t.Fatalf("Valid(%q) = true; only %q and %q are", s, cur, prev)
		}
	})
}
