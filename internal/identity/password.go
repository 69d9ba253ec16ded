package identity

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"golang.org/x/crypto/argon2"
)

// Passwords are hashed with argon2id at OWASP's recommended minimum
// (m=19 MiB, t=2, p=1), a 16-byte random salt and a 32-byte output, and
// stored in the PHC string format:
//
//	$argon2id$v=19$m=19456,t=2,p=1$<salt, base64 unpadded>$<hash, base64 unpadded>
//
// Verification reads the parameters from the stored string, so raising them
// later leaves existing hashes valid.

// argonParams are argon2id cost parameters.
type argonParams struct {
	memory  uint32 // KiB
	time    uint32
	threads uint8
}

var defaultParams = argonParams{memory: 19 * 1024, time: 2, threads: 1}

const (
	saltLen = 16
	keyLen  = 32

	// Bounds on parameters read from a stored hash, so a corrupt or hostile
	// row cannot make a login allocate gigabytes or spin for minutes.
	maxMemory  = 256 * 1024 // KiB
	maxTime    = 16
	maxThreads = 16
	minSalt    = 8
	maxSalt    = 64
	minKey     = 16
	maxKey     = 64
)

var errBadHash = errors.New("identity: malformed password hash")

// hashPassword returns the PHC encoding of password hashed with p.
func hashPassword(password string, p argonParams) string {
	salt := make([]byte, saltLen)
	rand.Read(salt)
	key := argon2.IDKey([]byte(password), salt, p.time, p.memory, p.threads, keyLen)
	return encodePHC(p, salt, key)
}

func encodePHC(p argonParams, salt, key []byte) string {
	b64 := base64.RawStdEncoding
	return fmt.Sprintf("$argon2id$v=%d$m=%d,t=%d,p=%d$%s$%s",
		argon2.Version, p.memory, p.time, p.threads, b64.EncodeToString(salt), b64.EncodeToString(key))
}

// decodePHC parses an argon2id PHC string strictly and within the bounds above.
func decodePHC(s string) (p argonParams, salt, key []byte, err error) {
	parts := strings.Split(s, "$")
	if len(parts) != 6 || parts[0] != "" || parts[1] != "argon2id" {
		return p, nil, nil, errBadHash
	}
	if parts[2] != "v="+strconv.Itoa(argon2.Version) {
		return p, nil, nil, fmt.Errorf("%w: unsupported version", errBadHash)
	}
	kv := strings.Split(parts[3], ",")
	if len(kv) != 3 {
		return p, nil, nil, errBadHash
	}
	num := func(s, prefix string, lo, hi uint64) (uint64, bool) {
		v, ok := strings.CutPrefix(s, prefix)
		if !ok || v == "" || (len(v) > 1 && v[0] == '0') {
			return 0, false
		}
		n, err := strconv.ParseUint(v, 10, 32)
		return n, err == nil && lo <= n && n <= hi
	}
	threads, ok1 := num(kv[2], "p=", 1, maxThreads)
	memory, ok2 := num(kv[0], "m=", 8*threads, maxMemory)
	time, ok3 := num(kv[1], "t=", 1, maxTime)
	if !ok1 || !ok2 || !ok3 {
		return p, nil, nil, fmt.Errorf("%w: parameters out of range", errBadHash)
	}
	b64 := base64.RawStdEncoding.Strict()
	salt, err = b64.DecodeString(parts[4])
	if err != nil || len(salt) < minSalt || len(salt) > maxSalt {
		return p, nil, nil, fmt.Errorf("%w: bad salt", errBadHash)
	}
	key, err = b64.DecodeString(parts[5])
	if err != nil || len(key) < minKey || len(key) > maxKey {
		return p, nil, nil, fmt.Errorf("%w: bad hash", errBadHash)
	}
	return argonParams{memory: uint32(memory), time: uint32(time), threads: uint8(threads)}, salt, key, nil
}

// verifyPassword reports whether password matches the PHC string encoded,
// comparing in constant time.
func verifyPassword(password, encoded string) (bool, error) {
	p, salt, key, err := decodePHC(encoded)
	if err != nil {
		return false, err
	}
	got := argon2.IDKey([]byte(password), salt, p.time, p.memory, p.threads, uint32(len(key)))
	return subtle.ConstantTimeCompare(got, key) == 1, nil
}

// checkNewPassword enforces the password rules.
func checkNewPassword(password string) error {
	if n := len([]rune(password)); n < MinPasswordLen {
		return invalid("password", "must be at least %d characters", MinPasswordLen)
	}
	if len(password) > MaxPasswordLen {
		return invalid("password", "must be at most %d bytes", MaxPasswordLen)
	}
	return nil
}
