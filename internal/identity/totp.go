package identity

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha1"
	"crypto/subtle"
	"encoding/base32"
	"encoding/binary"
	"net/url"
	"strconv"
	"time"
)

// TOTP follows RFC 6238 with the parameters every authenticator app
// supports: HMAC-SHA1, a 30-second step, 6 digits by default (8 allowed), a
// 160-bit secret (RFC 4226's recommendation), and one step of clock skew
// either way. A code is accepted once: the step it belongs to is stored per
// user and codes for that step or an earlier one are refused.

const (
	totpStep      = 30 // seconds
	totpSkew      = 1  // steps accepted either side of now
	totpSecretLen = 20 // bytes
	totpDigits    = 6
)

var b32 = base32.StdEncoding.WithPadding(base32.NoPadding)

// GenerateTOTP returns the RFC 6238 code (HMAC-SHA1, 30 s step) of secret at
// time t with the given number of digits. digits must be 6, 7 or 8; any other
// value is treated as 6.
func GenerateTOTP(secret []byte, t time.Time, digits int) string {
	return hotp(secret, totpCounter(t), digits)
}

func totpCounter(t time.Time) uint64 {
	s := t.Unix()
	if s < 0 {
		return 0
	}
	return uint64(s) / totpStep
}

// hotp is RFC 4226's HOTP with dynamic truncation.
func hotp(secret []byte, counter uint64, digits int) string {
	if digits < 6 || digits > 8 {
		digits = 6
	}
	var msg [8]byte
	binary.BigEndian.PutUint64(msg[:], counter)
	h := hmac.New(sha1.New, secret)
	h.Write(msg[:])
	sum := h.Sum(nil)
	off := sum[len(sum)-1] & 0x0f
	v := binary.BigEndian.Uint32(sum[off:off+4]) & 0x7fffffff
	mod := uint32(1)
	for range digits {
		mod *= 10
	}
	s := strconv.FormatUint(uint64(v%mod), 10)
	for len(s) < digits {
		s = "0" + s
	}
	return s
}

// matchTOTP returns the step of the window [now-skew, now+skew] whose code
// equals code, comparing every candidate in constant time.
func matchTOTP(secret []byte, now time.Time, digits int, code string) (step uint64, ok bool) {
	if len(code) != digits {
		return 0, false
	}
	cur := totpCounter(now)
	for d := -totpSkew; d <= totpSkew; d++ {
		s := cur + uint64(d)
		if d < 0 && cur < uint64(-d) {
			continue
		}
		want := hotp(secret, s, digits)
		if subtle.ConstantTimeCompare([]byte(want), []byte(code)) == 1 {
			step, ok = s, true
		}
	}
	return step, ok
}

// newTOTPSecret returns a fresh secret and its base32 (unpadded) form.
func newTOTPSecret() ([]byte, string) {
	secret := make([]byte, totpSecretLen)
	rand.Read(secret)
	return secret, b32.EncodeToString(secret)
}

// otpauthURL builds the Key Uri Format URL that authenticator apps read
// from a QR code.
func otpauthURL(issuer, account, secretB32 string, digits int) string {
	q := url.Values{}
	q.Set("secret", secretB32)
	q.Set("issuer", issuer)
	q.Set("algorithm", "SHA1")
	q.Set("digits", strconv.Itoa(digits))
	q.Set("period", strconv.Itoa(totpStep))
	return "otpauth://totp/" + url.PathEscape(issuer) + ":" + url.PathEscape(account) + "?" + q.Encode()
}

func totpAAD(name string) []byte { return []byte("identity/user/" + name + "/totp") }
