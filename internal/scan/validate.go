package scan

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"hash/crc32"
	"strings"

	"github.com/keyward/keyward/internal/credential"
)

// Structural validators. Each takes the secret a rule extracted and reports
// whether it can be a real credential of that kind. They are offline, cheap
// and never allocate more than the secret's size.

// validKeyward checks a keyward credential (kw<type>_ + 40 + 6 base62) with
// its CRC32 checksum.
func validKeyward(s []byte) bool {
	_, err := credential.Parse(string(s))
	return err == nil
}

// validGitHubStyle checks a GitHub-style token: a prefix ending in '_', 30
// base62 characters and 6 base62 characters holding the CRC32 of those 30.
func validGitHubStyle(s []byte) bool {
	i := bytes.IndexByte(s, '_')
	if i < 0 || len(s)-i-1 != 36 {
		return false
	}
	body := s[i+1:]
	for _, c := range body {
		if !isAlnum(c) {
			return false
		}
	}
	return credential.Base62CRC32(crc32.ChecksumIEEE(body[:30]), 6) == string(body[30:])
}

// validJWT checks a JSON Web Token's structure: three base64url parts, a
// header that is a JSON object with an "alg" string, a payload that is a
// JSON object.
func validJWT(s []byte) bool {
	parts := bytes.Split(s, []byte("."))
	if len(parts) != 3 {
		return false
	}
	var header struct {
		Alg *string `json:"alg"`
	}
	h, ok := decodeB64URL(parts[0])
	if !ok || json.Unmarshal(h, &header) != nil || header.Alg == nil || *header.Alg == "" {
		return false
	}
	p, ok := decodeB64URL(parts[1])
	if !ok {
		return false
	}
	var payload map[string]any
	if json.Unmarshal(p, &payload) != nil {
		return false
	}
	// The signature must be base64url (empty only for alg "none").
	if len(parts[2]) == 0 {
		return strings.EqualFold(*header.Alg, "none")
	}
	_, ok = decodeB64URL(parts[2])
	return ok
}

func decodeB64URL(b []byte) ([]byte, bool) {
	b = bytes.TrimRight(b, "=")
	out := make([]byte, base64.RawURLEncoding.DecodedLen(len(b)))
	n, err := base64.RawURLEncoding.Decode(out, b)
	if err != nil {
		return nil, false
	}
	return out[:n], true
}

// validPEM checks a private key block: matching BEGIN and END labels, optional
// RFC 1421 headers ("Proc-Type: …") and a body of at least 64 base64
// characters with the entropy of encoded key material. Lines may be separated
// by real newlines or by the two characters `\n` (a PEM inside a JSON or
// source string).
func validPEM(s []byte) bool {
	const begin, end, dashes = "-----BEGIN ", "-----END ", "-----"
	if !bytes.HasPrefix(s, []byte(begin)) {
		return false
	}
	rest := s[len(begin):]
	i := bytes.Index(rest, []byte(dashes))
	if i < 0 {
		return false
	}
	label := rest[:i]
	rest = rest[i+len(dashes):]
	j := bytes.LastIndex(rest, []byte(end))
	if j < 0 || !bytes.Equal(bytes.TrimSuffix(rest[j+len(end):], []byte(dashes)), label) {
		return false
	}
	body := rest[:j]
	// Normalise escaped newlines, then walk the lines.
	body = bytes.ReplaceAll(body, []byte(`\r\n`), []byte("\n"))
	body = bytes.ReplaceAll(body, []byte(`\n`), []byte("\n"))
	var b64 []byte
	pgp := bytes.Contains(label, []byte("PGP"))
	for line := range bytes.SplitSeq(body, []byte("\n")) {
		line = bytes.TrimSpace(bytes.Trim(line, `"',+`))
		line = bytes.TrimSpace(line)
		if len(line) == 0 {
			continue
		}
		if k := bytes.IndexByte(line, ':'); k > 0 && isHeaderName(line[:k]) {
			continue // RFC 1421 / OpenPGP armor header
		}
		if pgp && line[0] == '=' && len(line) == 5 {
			continue // OpenPGP armor checksum
		}
		for _, c := range line {
			switch {
			case isAlnum(c), c == '+', c == '/', c == '=':
			case c == ' ' || c == '\t' || c == '\r':
				continue
			default:
				return false
			}
			b64 = append(b64, c)
		}
	}
	return len(b64) >= 64 && ShannonEntropy(b64) >= 4.5
}

func isHeaderName(b []byte) bool {
	for _, c := range b {
		if !isAlnum(c) && c != '-' {
			return false
		}
	}
	return true
}

// validAge checks an age X25519 identity: "AGE-SECRET-KEY-1" and a bech32
// data part with a valid checksum.
func validAge(s []byte) bool {
	return bech32Valid(strings.ToLower(string(s)))
}

// bech32Valid verifies the BIP-173 checksum of a lower-case bech32 string.
func bech32Valid(s string) bool {
	const charset = "qpzry9x8gf2tvdw0s3jn54khce6mua7l"
	sep := strings.LastIndexByte(s, '1')
	if sep < 1 || len(s)-sep-1 < 6 {
		return false
	}
	hrp, data := s[:sep], s[sep+1:]
	values := make([]byte, 0, len(hrp)*2+1+len(data))
	for i := 0; i < len(hrp); i++ {
		values = append(values, hrp[i]>>5)
	}
	values = append(values, 0)
	for i := 0; i < len(hrp); i++ {
		values = append(values, hrp[i]&31)
	}
	for i := 0; i < len(data); i++ {
		v := strings.IndexByte(charset, data[i])
		if v < 0 {
			return false
		}
		values = append(values, byte(v))
	}
	gen := [5]uint32{0x3b6a57b2, 0x26508e6d, 0x1ea119fa, 0x3d4233dd, 0x2a1462b3}
	chk := uint32(1)
	for _, v := range values {
		top := chk >> 25
		chk = (chk&0x1ffffff)<<5 ^ uint32(v)
		for i := range 5 {
			if (top>>i)&1 == 1 {
				chk ^= gen[i]
			}
		}
	}
	return chk == 1
}

// validBase64Len returns a validator accepting standard base64 that decodes to
// exactly n bytes (Azure storage keys are 64 random bytes).
func validBase64Len(n int) func([]byte) bool {
	return func(s []byte) bool {
		out := make([]byte, base64.StdEncoding.DecodedLen(len(s)))
		k, err := base64.StdEncoding.Decode(out, s)
		return err == nil && k == n
	}
}

// validMixed accepts a random-looking token: at least one digit or symbol and
// at least one letter, and not an identifier path or a placeholder. Used for
// keys found only by their context (an assignment to a telling name).
func validMixed(s []byte) bool {
	if isPlaceholder(s) || isIdentifierPath(s) {
		return false
	}
	letter, other := false, false
	for _, c := range s {
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z':
			letter = true
		default:
			other = true
		}
	}
	return letter && other
}

// validGeneric is validMixed for values found only through a generic name:
// it also rejects values that spell a secret-ish word ("encryptionKey1024"),
// which are names, not random secrets.
func validGeneric(s []byte) bool {
	return validMixed(s) && !containsFold(s, secretWords) && !pathLike(s)
}

// pathLike reports a slash-separated value without an upper-case letter:
// a path or a reference such as payments/prod/stripe, not a random secret
// (16 random base64 characters are all lower-case or digits about once in
// ten million).
func pathLike(s []byte) bool {
	if bytes.IndexByte(s, '/') < 0 {
		return false
	}
	for _, c := range s {
		if 'A' <= c && c <= 'Z' {
			return false
		}
	}
	return true
}

var secretWords = [][]byte{[]byte("secret"), []byte("token"), []byte("key"), []byte("passw"), []byte("ssword"), []byte("credential"), []byte("auth")}

// validPassword accepts a plausible password: not a placeholder, not a
// reference to code or the environment, at least one letter and one digit or
// symbol, not one repeated character.
func validPassword(s []byte) bool {
	if !validMixed(s) || containsFold(s, passwordWords) {
		return false
	}
	for _, c := range s {
		switch c {
		case '(', ')', '[', ']', '{', '}':
			return false
		}
	}
	return true
}

// validBasicAuth checks the base64 of an HTTP Basic authorization header: it
// decodes to printable "user:password" with a plausible password.
func validBasicAuth(s []byte) bool {
	out := make([]byte, base64.StdEncoding.DecodedLen(len(s)))
	n, err := base64.StdEncoding.Decode(out, s)
	if err != nil {
		return false
	}
	out = out[:n]
	i := bytes.IndexByte(out, ':')
	if i < 0 || i == len(out)-1 {
		return false
	}
	for _, c := range out {
		if c < 0x20 || c > 0x7e {
			return false
		}
	}
	return !isPlaceholder(out[i+1:])
}

// validURLPassword accepts the password part of a URL's userinfo unless it is
// a placeholder or a well-known default.
func validURLPassword(s []byte) bool {
	return !isPlaceholder(s) && !containsFold(s, passwordWords)
}

// passwordWords in a password mark a stand-in ("MyPassword1", "p%40ssword").
var passwordWords = [][]byte{[]byte("passw"), []byte("ssword"), []byte("secret"), []byte("example")}

// weakDefaults are values that appear in documentation and local-development
// setups as stand-ins, not as someone's credential.
var weakDefaults = map[string]bool{
	"password": true, "passwd": true, "pass": true, "pwd": true, "secret": true,
	"changeme": true, "change_me": true, "postgres": true, "root": true, "admin": true,
	"guest": true, "test": true, "user": true, "username": true, "mypassword": true,
	"yourpassword": true, "your_password": true, "pa55word": true, "p@ssw0rd": true,
	"p@ssword": true, "example": true, "foobar": true, "null": true, "none": true,
	"true": true, "false": true, "undefined": true, "redacted": true, "hidden": true,
	"secret123": true, "password123": true, "letmein": true, "foo": true, "bar": true,
	"baz": true, "qux": true, "pw": true, "deadbeef": true, "pass123": true, "123456": true, "12345678": true, "qwerty": true,
}

// isPlaceholder reports whether a value is a stand-in rather than a secret: a
// template or environment reference, a masked or repeated value, or a
// well-known default.
func isPlaceholder(s []byte) bool {
	if len(s) == 0 {
		return true
	}
	l := strings.ToLower(string(s))
	if weakDefaults[l] {
		return true
	}
	switch l[0] {
	case '$', '<', '{':
		return true
	case '@':
		if l[len(l)-1] == '@' { // @VAR@ substitution
			return true
		}
	}
	for _, m := range []string{"${", "{{", "}}", "%(", "%s", "process.env", "getenv", "env[", "env(", "environ", "secrets.", "vault:", "<", ">"} {
		if strings.Contains(l, m) {
			return true
		}
	}
	same := true
	for i := 1; i < len(l); i++ {
		if l[i] != l[0] {
			same = false
			break
		}
	}
	if same {
		return true
	}
	masked := 0
	for _, c := range l {
		if c == '*' || c == 'x' || c == '.' || c == '•' {
			masked++
		}
	}
	return masked*2 >= len(l)
}

// isIdentifierPath reports whether s looks like code rather than a value: a
// dotted identifier chain ("config.Token", "self.api_key") or a call.
func isIdentifierPath(s []byte) bool {
	dots := 0
	for i, c := range s {
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', c == '_':
		case '0' <= c && c <= '9':
			if i == 0 {
				return false
			}
		case c == '.':
			if i == 0 || i == len(s)-1 {
				return false
			}
			dots++
		case c == '(' || c == ')':
			return true
		default:
			return false
		}
	}
	return dots > 0
}

func isAlnum(c byte) bool {
	return '0' <= c && c <= '9' || 'A' <= c && c <= 'Z' || 'a' <= c && c <= 'z'
}
