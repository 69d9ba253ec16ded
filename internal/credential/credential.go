// Package credential implements the one shape shared by every bearer
// credential keyward issues:
//
//	kw<type>_<40 random base62 chars><6 base62 chars: CRC32 of the random part>
//
// The fixed prefix lets scanners (keyward's own and others) recognise a leaked
// credential; the checksum lets a server reject a mistyped or truncated value
// before any lookup, and lets a scanner discard look-alikes that cannot be real.
//
// The package holds no key material and performs no I/O: it generates, parses and
// checks strings. It may be imported by any package (token, apikey, device, scan).
package credential

import (
	"crypto/rand"
	"errors"
	"hash/crc32"
)

// Type is the one-letter kind of a credential.
type Type byte

// The credential types keyward issues.
const (
	AccessToken  Type = 't' // kwt_: access token
	RefreshToken Type = 'r' // kwr_: refresh token
	APIKey       Type = 'k' // kwk_: client API key
	Enrollment   Type = 'e' // kwe_: device enrollment code
	Wrapped      Type = 'w' // kww_: wrapped-response token
)

// Lengths of the parts of a credential.
const (
	PrefixLen   = 4  // "kw" + type + "_"
	RandomLen   = 40 // 40 base62 chars ≈ 238 bits
	ChecksumLen = 6  // CRC32 in base62, zero-padded
	Len         = PrefixLen + RandomLen + ChecksumLen
)

const alphabet = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"

// Errors returned by Parse. None of them includes the credential itself.
var (
	ErrLength   = errors.New("credential: wrong length")
	ErrPrefix   = errors.New("credential: unknown prefix")
	ErrCharset  = errors.New("credential: invalid character")
	ErrChecksum = errors.New("credential: checksum mismatch")
)

// Valid reports whether t is one of the issued types.
func (t Type) Valid() bool {
	switch t {
	case AccessToken, RefreshToken, APIKey, Enrollment, Wrapped:
		return true
	}
	return false
}

// Prefix returns the credential prefix of t, such as "kwt_".
func (t Type) Prefix() string { return "kw" + string(t) + "_" }

// New returns a fresh credential of type t from crypto/rand.
func New(t Type) string {
	if !t.Valid() {
		panic("credential: invalid type")
	}
	b := make([]byte, Len)
	copy(b, t.Prefix())
	var buf [RandomLen * 2]byte
	i := PrefixLen
	for i < PrefixLen+RandomLen {
		if _, err := rand.Read(buf[:]); err != nil {
			panic("credential: crypto/rand failed: " + err.Error())
		}
		for _, c := range buf {
			// 248 = 4*62: rejection sampling keeps the distribution uniform.
			if c >= 248 {
				continue
			}
			b[i] = alphabet[c%62]
			i++
			if i == PrefixLen+RandomLen {
				break
			}
		}
	}
	putChecksum(b[PrefixLen+RandomLen:], checksum(b[PrefixLen:PrefixLen+RandomLen]))
	return string(b)
}

// Parse checks s and returns its type. It validates length, prefix, alphabet
// and checksum, in that order, without allocating.
func Parse(s string) (Type, error) {
	if len(s) != Len {
		return 0, ErrLength
	}
	if s[0] != 'k' || s[1] != 'w' || s[3] != '_' || !Type(s[2]).Valid() {
		return 0, ErrPrefix
	}
	for i := PrefixLen; i < Len; i++ {
		if !isBase62(s[i]) {
			return 0, ErrCharset
		}
	}
	var want [ChecksumLen]byte
	putChecksum(want[:], checksum([]byte(s[PrefixLen:PrefixLen+RandomLen])))
	if string(want[:]) != s[PrefixLen+RandomLen:] {
		return 0, ErrChecksum
	}
	return Type(s[2]), nil
}

// ParseType is Parse that also requires the type to be want.
func ParseType(s string, want Type) error {
	t, err := Parse(s)
	if err != nil {
		return err
	}
	if t != want {
		return ErrPrefix
	}
	return nil
}

// ValidChecksum reports whether the 46 characters after a "kw?_" prefix carry a
// correct checksum. Scanners use it on candidates they matched by shape.
func ValidChecksum(body string) bool {
	if len(body) != RandomLen+ChecksumLen {
		return false
	}
	for i := 0; i < len(body); i++ {
		if !isBase62(body[i]) {
			return false
		}
	}
	var want [ChecksumLen]byte
	putChecksum(want[:], checksum([]byte(body[:RandomLen])))
	return string(want[:]) == body[RandomLen:]
}

func checksum(random []byte) uint32 { return crc32.ChecksumIEEE(random) }

// putChecksum writes v in base62, most significant digit first, zero-padded.
func putChecksum(dst []byte, v uint32) {
	for i := len(dst) - 1; i >= 0; i-- {
		dst[i] = alphabet[v%62]
		v /= 62
	}
}

// Base62CRC32 encodes v as n base62 digits, most significant first, zero-padded.
// GitHub-style tokens use it with n = 6; the scanner validates them with it.
func Base62CRC32(v uint32, n int) string {
	b := make([]byte, n)
	putChecksum(b, v)
	return string(b)
}

func isBase62(c byte) bool {
	return '0' <= c && c <= '9' || 'A' <= c && c <= 'Z' || 'a' <= c && c <= 'z'
}
