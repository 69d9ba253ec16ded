package shamir

import (
	"bytes"
	"crypto/rand"
	"testing"
)

// FIPS-197 section 4.2 worked examples in the AES field.
func TestFieldKnownAnswers(t *testing.T) {
	cases := []struct{ a, b, want byte }{
		{0x57, 0x83, 0xc1},
		{0x57, 0x13, 0xfe},
		{0x57, 0x02, 0xae},
		{0x57, 0x04, 0x47},
		{0x57, 0x08, 0x8e},
		{0x57, 0x10, 0x07},
		{0x00, 0x57, 0x00},
		{0x01, 0x57, 0x57},
	}
	for _, c := range cases {
		if got := mul(c.a, c.b); got != c.want {
			t.Errorf("{%02x}·{%02x} = {%02x}, want {%02x}", c.a, c.b, got, c.want)
		}
		if got := mul(c.b, c.a); got != c.want {
			t.Errorf("multiplication does not commute for %02x, %02x", c.a, c.b)
		}
	}
	// FIPS-197 5.1.1: the inverse of {53} is {ca}.
	if inv(0x53) != 0xca {
		t.Errorf("inv(53) = %02x, want ca", inv(0x53))
	}
	for a := 1; a < 256; a++ {
		if mul(byte(a), inv(byte(a))) != 1 {
			t.Fatalf("a·a^-1 != 1 for a = %02x", a)
		}
	}
}

func TestSplitCombine(t *testing.T) {
	for _, p := range []struct{ n, k int }{{2, 2}, {3, 2}, {5, 3}, {10, 10}, {255, 2}, {20, 7}} {
		secret := make([]byte, 32)
		rand.Read(secret)
		shares, err := Split(secret, p.n, p.k)
		if err != nil {
			t.Fatal(err)
		}
		if len(shares) != p.n {
			t.Fatalf("%d shares, want %d", len(shares), p.n)
		}
		// Several random subsets of size k (and k+1) reconstruct.
		for trial := 0; trial < 10; trial++ {
			for _, size := range []int{p.k, min(p.k+1, p.n)} {
				idx := randomSubset(p.n, size)
				sub := make([][]byte, len(idx))
				for i, j := range idx {
					sub[i] = shares[j]
				}
				got, err := Combine(sub)
				if err != nil || !bytes.Equal(got, secret) {
					t.Fatalf("n=%d k=%d: %d shares did not reconstruct: %v", p.n, p.k, size, err)
				}
			}
		}
		// k-1 shares give something else.
		if p.k > 2 {
			got, err := Combine(shares[:p.k-1])
			if err == nil && bytes.Equal(got, secret) {
				t.Fatalf("n=%d k=%d: k-1 shares reconstructed the secret", p.n, p.k)
			}
		}
	}
}

func TestXCoordinatesDistinctNonzero(t *testing.T) {
	shares, err := Split([]byte("s"), 255, 2)
	if err != nil {
		t.Fatal(err)
	}
	seen := map[byte]bool{}
	for _, s := range shares {
		x := s[len(s)-1]
		if x == 0 || seen[x] {
			t.Fatalf("bad x coordinate %d", x)
		}
		seen[x] = true
	}
}

func TestBadInput(t *testing.T) {
	for _, p := range []struct{ n, k int }{{1, 1}, {3, 1}, {2, 3}, {256, 2}, {0, 0}} {
		if _, err := Split([]byte("x"), p.n, p.k); err != ErrParams {
			t.Errorf("Split(n=%d, k=%d) = %v", p.n, p.k, err)
		}
	}
	if _, err := Split(nil, 3, 2); err != ErrParams {
		t.Error("empty secret accepted")
	}
	shares, _ := Split([]byte("secret"), 3, 2)
	if _, err := Combine(shares[:1]); err != ErrTooFew {
		t.Errorf("one share: %v", err)
	}
	if _, err := Combine([][]byte{shares[0], shares[0]}); err != ErrDuplicateX {
		t.Errorf("duplicate: %v", err)
	}
	if _, err := Combine([][]byte{shares[0], shares[1][:3]}); err != ErrShareLength {
		t.Errorf("length: %v", err)
	}
	z := bytes.Clone(shares[1])
	z[len(z)-1] = 0
	if _, err := Combine([][]byte{shares[0], z}); err != ErrZeroX {
		t.Errorf("zero x: %v", err)
	}
}

func randomSubset(n, k int) []int {
	idx := make([]int, n)
	for i := range idx {
		idx[i] = i
	}
	var b [1]byte
	for i := n - 1; i > 0; i-- {
		rand.Read(b[:])
		j := int(b[0]) % (i + 1)
		idx[i], idx[j] = idx[j], idx[i]
	}
	return idx[:k]
}

func FuzzCombine(f *testing.F) {
	f.Add([]byte{1, 2, 3, 4, 5, 6}, 3)
	f.Fuzz(func(t *testing.T, data []byte, parts int) {
		if parts < 0 {
			parts = -parts
		}
		parts = parts%6 + 1
		if len(data) < parts {
			return
		}
		size := len(data) / parts
		var shares [][]byte
		for i := 0; i < parts; i++ {
			shares = append(shares, data[i*size:(i+1)*size])
		}
		_, _ = Combine(shares) // must not panic
	})
}

func FuzzRoundTrip(f *testing.F) {
	f.Add([]byte("root key"), uint8(5), uint8(3))
	f.Fuzz(func(t *testing.T, secret []byte, n, k uint8) {
		shares, err := Split(secret, int(n), int(k))
		if err != nil {
			return
		}
		got, err := Combine(shares[len(shares)-int(k):])
		if err != nil || !bytes.Equal(got, secret) {
			t.Fatalf("round trip failed: %v", err)
		}
	})
}
