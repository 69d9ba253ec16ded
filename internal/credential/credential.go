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
	fillBase62(b[PrefixLen : PrefixLen+RandomLen])
	putChecksum(b[PrefixLen+RandomLen:], checksum(b[PrefixLen:PrefixLen+RandomLen]))
	return string(b)
}

// RandomBase62 returns n uniformly random base62 characters from
// crypto/rand: the shape of keyward's non-secret ids (token accessors, API
// key ids).
func RandomBase62(n int) string {
	b := make([]byte, n)
	fillBase62(b)
	return string(b)
}

// fillBase62 fills dst with uniformly random base62 characters.
func fillBase62(dst []byte) {
	var buf [RandomLen * 2]byte
	for i := 0; i < len(dst); {
		if _, err := rand.Read(buf[:]); err != nil {
			panic("credential: crypto/rand failed: " + err.Error())
		}
		for _, c := range buf {
			// 248 = 4*62: rejection sampling keeps the distribution uniform.
			if c >= 248 {
				continue
			}
			dst[i] = alphabet[c%62]
			i++
			if i == len(dst) {
				break
			}
		}
	}
}

// NewMarked returns a fresh credential of type t whose random part starts
// with marker, a short visible label such as "test" (client API keys mark
// their environment kind this way). The rest of the random part comes from
// crypto/rand and the checksum covers the whole random part, so a marked
// credential has the standard shape and passes Parse and every scanner. The
// marker must be base62 and at most 8 characters (it costs ~6 bits of
// randomness per character).
func NewMarked(t Type, marker string) string {
	if len(marker) > 8 {
		panic("credential: marker longer than 8 characters")
	}
	for i := 0; i < len(marker); i++ {
		if !isBase62(marker[i]) {
			panic("credential: marker is not base62")
		}
	}
	b := []byte(New(t))
	copy(b[PrefixLen:], marker)
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
	putChecksum(want[:], checksumString(s[PrefixLen:PrefixLen+RandomLen]))
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
	putChecksum(want[:], checksumString(body[:RandomLen]))
	return string(want[:]) == body[RandomLen:]
}

func checksum(random []byte) uint32 { return crc32.ChecksumIEEE(random) }

// checksumString is checksum of a string without converting it: passing
// []byte(s) to crc32 allocates (the slice escapes into its assembly), and
// Parse runs on every request. It is the slicing-by-8 algorithm of
// hash/crc32's generic code, eight bytes per step through eight tables.
func checksumString(random string) uint32 {
	t := crcTables
	crc := ^uint32(0)
	for len(random) >= 8 {
		crc ^= uint32(random[0]) | uint32(random[1])<<8 | uint32(random[2])<<16 | uint32(random[3])<<24
		crc = t[0][random[7]] ^ t[1][random[6]] ^ t[2][random[5]] ^ t[3][random[4]] ^
			t[4][crc>>24] ^ t[5][(crc>>16)&0xff] ^ t[6][(crc>>8)&0xff] ^ t[7][crc&0xff]
		random = random[8:]
	}
	for i := 0; i < len(random); i++ {
		crc = t[0][byte(crc)^random[i]] ^ (crc >> 8)
	}
	return ^crc
}

// crcTables are the slicing-by-8 tables of CRC-32 (IEEE), 8 KiB.
var crcTables = func() *[8][256]uint32 {
	t := new([8][256]uint32)
	t[0] = *crc32.IEEETable
	for i := range 256 {
		crc := t[0][i]
		for j := 1; j < 8; j++ {
			crc = t[0][crc&0xff] ^ (crc >> 8)
			t[j][i] = crc
		}
	}
	return t
}()

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
