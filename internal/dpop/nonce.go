package dpop

import (
	"crypto/subtle"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"time"
)

// ErrUseNonce: the server requires a nonce it issued (RFC 9449 §8) and the
// proof carries none, or one that is not current. errors.Is(err,
// ErrInvalid) holds too. The client retries with the nonce from the
// DPoP-Nonce header of the refusal.
var ErrUseNonce = errors.New("a fresh server-provided nonce is required (use_dpop_nonce)")

// Nonces issues and checks server-provided DPoP nonces (RFC 9449 §8). They
// are stateless: a time period's number and a MAC of it, so every node
// that shares the MAC key accepts the nonces of every other, and a nonce
// is accepted during its period and the next one. A proof can then only be
// made while it can be used: a proof made in advance (by malware that once
// had the device's key) expires with its nonce.
type Nonces struct {
	mac    func(data []byte) []byte // keyed MAC (at least 16 bytes); nil result: unavailable
	period time.Duration
	now    func() time.Time
}

// DefaultNoncePeriod is how long a nonce is issued for; it is accepted for
// up to twice as long.
const DefaultNoncePeriod = time.Minute

// NewNonces returns an issuer of nonces keyed by mac. period <= 0 gives
// DefaultNoncePeriod; now nil gives time.Now.
func NewNonces(mac func(data []byte) []byte, period time.Duration, now func() time.Time) *Nonces {
	if period <= 0 {
		period = DefaultNoncePeriod
	}
	if now == nil {
		now = time.Now
	}
	return &Nonces{mac: mac, period: period, now: now}
}

const nonceMACLen = 16

func (n *Nonces) period0() uint64 { return uint64(n.now().UnixNano() / int64(n.period)) }

func (n *Nonces) make(p uint64) (string, bool) {
	var b [8 + nonceMACLen]byte
	binary.BigEndian.PutUint64(b[:8], p)
	m := n.mac(append([]byte("dpop-nonce:"), b[:8]...))
	if len(m) < nonceMACLen {
		return "", false
	}
	copy(b[8:], m)
	return base64.RawURLEncoding.EncodeToString(b[:]), true
}

// Current returns the nonce to hand out now (ok false while the MAC key is
// unavailable).
func (n *Nonces) Current() (string, bool) { return n.make(n.period0()) }

// Valid reports whether s is a nonce of this period or the previous one.
func (n *Nonces) Valid(s string) bool {
	b, err := base64.RawURLEncoding.Strict().DecodeString(s)
	if err != nil || len(b) != 8+nonceMACLen {
		return false
	}
	p, cur := binary.BigEndian.Uint64(b[:8]), n.period0()
	if p != cur && p+1 != cur {
		return false
	}
	want, ok := n.make(p)
	return ok && subtle.ConstantTimeCompare([]byte(want), []byte(s)) == 1
}
