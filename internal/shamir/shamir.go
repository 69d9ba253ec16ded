// Package shamir splits a secret into n shares of which any k reconstruct
// it (Shamir's secret sharing over GF(2^8) with the AES polynomial
// x^8+x^4+x^3+x+1), and fewer than k reveal nothing about it.
//
// Each byte of the secret is the constant term of its own random polynomial
// of degree k-1; a share is the polynomials evaluated at one nonzero x,
// followed by that x. Coefficients and x coordinates come from crypto/rand.
// Field arithmetic is constant-time: no table lookups and no branches that
// depend on secret data.
//
// Imported by internal/barrier only.
package shamir

import (
	"crypto/rand"
	"errors"
	"fmt"
)

// Errors of Split and Combine.
var (
	ErrParams      = errors.New("shamir: want 2 <= threshold <= shares <= 255 and a non-empty secret")
	ErrTooFew      = errors.New("shamir: at least two shares are needed")
	ErrShareLength = errors.New("shamir: shares differ in length or are too short")
	ErrDuplicateX  = errors.New("shamir: two shares have the same x coordinate")
	ErrZeroX       = errors.New("shamir: a share has x coordinate 0")
)

// mul multiplies in GF(2^8) by shift-and-add, in constant time.
func mul(a, b byte) byte {
	var p byte
	for i := 0; i < 8; i++ {
		// mask is 0xff when the low bit of b is set, else 0.
		mask := -(b & 1)
		p ^= a & mask
		// Multiply a by x, reducing by the polynomial when the high bit was set.
		hi := -(a >> 7)
		a = (a << 1) ^ (0x1b & hi)
		b >>= 1
	}
	return p
}

// inv returns a^254 = a^-1 (0 for 0), by a fixed chain of multiplications.
func inv(a byte) byte {
	a2 := mul(a, a)    // a^2
	a4 := mul(a2, a2)  // a^4
	a8 := mul(a4, a4)  // a^8
	a16 := mul(a8, a8) // a^16
	a32 := mul(a16, a16)
	a64 := mul(a32, a32)
	a128 := mul(a64, a64)
	r := mul(a128, a64) // 192
	r = mul(r, a32)     // 224
	r = mul(r, a16)     // 240
	r = mul(r, a8)      // 248
	r = mul(r, a4)      // 252
	return mul(r, a2)   // 254
}

// Split divides secret into n shares, any k of which reconstruct it.
func Split(secret []byte, n, k int) ([][]byte, error) {
	if len(secret) == 0 || k < 2 || k > n || n > 255 {
		return nil, ErrParams
	}
	xs, err := distinctX(n)
	if err != nil {
		return nil, err
	}
	shares := make([][]byte, n)
	for i := range shares {
		shares[i] = make([]byte, len(secret)+1)
		shares[i][len(secret)] = xs[i]
	}
	coeff := make([]byte, k)
	for j, s := range secret {
		coeff[0] = s
		if _, err := rand.Read(coeff[1:]); err != nil {
			return nil, fmt.Errorf("shamir: %w", err)
		}
		for i := range shares {
			// Horner's rule.
			x := xs[i]
			var y byte
			for c := k - 1; c >= 0; c-- {
				y = mul(y, x) ^ coeff[c]
			}
			shares[i][j] = y
		}
	}
	clear(coeff)
	return shares, nil
}

// distinctX draws n distinct nonzero x coordinates from crypto/rand.
func distinctX(n int) ([]byte, error) {
	// A random permutation of 1..255 (Fisher-Yates with rejection sampling).
	perm := make([]byte, 255)
	for i := range perm {
		perm[i] = byte(i + 1)
	}
	var b [1]byte
	for i := len(perm) - 1; i > 0; i-- {
		limit := 256 - 256%(i+1)
		for {
			if _, err := rand.Read(b[:]); err != nil {
				return nil, fmt.Errorf("shamir: %w", err)
			}
			if int(b[0]) < limit {
				break
			}
		}
		j := int(b[0]) % (i + 1)
		perm[i], perm[j] = perm[j], perm[i]
	}
	return perm[:n], nil
}

// Combine reconstructs the secret from k or more shares by Lagrange
// interpolation at x = 0. With fewer shares than the threshold the result is
// a random-looking value, not an error: the caller checks it (the barrier
// opens its keyring with it).
func Combine(shares [][]byte) ([]byte, error) {
	if len(shares) < 2 {
		return nil, ErrTooFew
	}
	l := len(shares[0])
	if l < 2 {
		return nil, ErrShareLength
	}
	xs := make([]byte, len(shares))
	seen := [256]bool{}
	for i, s := range shares {
		if len(s) != l {
			return nil, ErrShareLength
		}
		x := s[l-1]
		if x == 0 {
			return nil, ErrZeroX
		}
		if seen[x] {
			return nil, ErrDuplicateX
		}
		seen[x] = true
		xs[i] = x
	}
	// Lagrange basis at 0: w_i = prod_{j != i} x_j / (x_j - x_i); in GF(2^8)
	// subtraction is xor.
	w := make([]byte, len(shares))
	for i := range shares {
		num, den := byte(1), byte(1)
		for j := range shares {
			if i == j {
				continue
			}
			num = mul(num, xs[j])
			den = mul(den, xs[j]^xs[i])
		}
		w[i] = mul(num, inv(den))
	}
	secret := make([]byte, l-1)
	for b := range secret {
		var v byte
		for i, s := range shares {
			v ^= mul(w[i], s[b])
		}
		secret[b] = v
	}
	return secret, nil
}
