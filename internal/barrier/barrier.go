// Package barrier is the only holder of keyward's key material. Everything
// that is encrypted at rest, and every keyed hash, goes through it.
//
// Keys, from the top:
//   - the root key (256 bits), never stored: split into Shamir shares at
//     init (or, in dev mode only, kept in a key file beside the data);
//   - the keyring, sealed under the root key: versioned 256-bit data keys,
//     plus a MAC key and an audit-signing seed that never rotate;
//   - per-environment keys, HKDF-SHA256(data key, "env/" + environment id),
//     so a leaked derived key reveals no other environment.
//
// Ciphertext layout (every value at rest):
//
//	0x01 ‖ key version (4 bytes, big endian) ‖ nonce (12) ‖ ciphertext ‖ tag (16)
//
// AES-256-GCM with a random 96-bit nonce; the additional data is the header
// followed by the caller's row identity (e.g. "secret/<env-id>/<path>/<v>"),
// so a ciphertext moved to another row, or relabelled with another key
// version, fails to open. Rotate the keyring well before 2^32 seals per key.
//
// The package does no I/O: the server persists the sealed keyring it returns.
// It may be imported by internal/server and the domain services that seal
// values through interfaces they declare.
package barrier

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/ed25519"
	"crypto/hkdf"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"log/slog"
	"sync"
	"time"

	"github.com/keyward/keyward/internal/shamir"
)

// Errors. None of their messages carries key material or plaintext.
var (
	ErrSealed              = errors.New("barrier: sealed")
	ErrAlreadyUnsealed     = errors.New("barrier: already unsealed")
	ErrInvalidParams       = errors.New("want 1 <= threshold <= shares <= 255, and a threshold of at least 2 when there are several shares")
	ErrMalformedShare      = errors.New("the share is malformed (not a keyward unseal share)")
	ErrDuplicateShare      = errors.New("this share was already submitted")
	ErrWrongShares         = errors.New("the shares do not open the keyring; unseal progress was reset")
	ErrUnknownKeyVersion   = errors.New("barrier: ciphertext names a key version the keyring does not hold")
	ErrDecrypt             = errors.New("barrier: ciphertext does not open (tampered, or bound to another row)")
	ErrMalformedCiphertext = errors.New("barrier: malformed ciphertext")
)

const (
	keySize     = 32
	formatV1    = 0x01
	headerSize  = 5
	nonceSize   = 12
	tagSize     = 16
	keyringAAD  = "keyward/keyring"
	redactedStr = "[REDACTED]"
)

// RootKey is the 256-bit root key. It cannot be compared with == and never
// formats as anything but [REDACTED].
type RootKey struct {
	_ [0]func()
	b []byte
}

func (RootKey) String() string               { return redactedStr }
func (RootKey) GoString() string             { return redactedStr }
func (RootKey) Format(f fmt.State, _ rune)   { f.Write([]byte(redactedStr)) }
func (RootKey) LogValue() slog.Value         { return slog.StringValue(redactedStr) }
func (RootKey) MarshalJSON() ([]byte, error) { return []byte(`"` + redactedStr + `"`), nil }
func (RootKey) MarshalText() ([]byte, error) { return []byte(redactedStr), nil }

// InitResult is what initialisation produces. Shares and the root key are
// shown once; Keyring is stored.
type InitResult struct {
	Shares  []string
	RootKey RootKey
	Keyring []byte
}

// InitResult holds unseal shares: it never formats or logs them.
func (InitResult) String() string               { return redactedStr }
func (InitResult) Format(f fmt.State, _ rune)   { f.Write([]byte(redactedStr)) }
func (InitResult) LogValue() slog.Value         { return slog.StringValue(redactedStr) }
func (InitResult) MarshalJSON() ([]byte, error) { return []byte(`"` + redactedStr + `"`), nil }

// keyring is the plaintext keyring, serialised as JSON before sealing.
type keyring struct {
	Keys      []keyEntry `json:"keys"`
	MACKey    []byte     `json:"mac_key"`
	AuditSeed []byte     `json:"audit_seed"`
}

type keyEntry struct {
	Version uint32    `json:"version"`
	Key     []byte    `json:"key"`
	Created time.Time `json:"created"`
}

func randomKey() []byte {
	b := make([]byte, keySize)
	if _, err := rand.Read(b); err != nil {
		panic("barrier: crypto/rand failed: " + err.Error())
	}
	return b
}

// Init generates a root key and a first keyring, and splits the root key
// into shares of which threshold reconstruct it. With one share the share is
// the root key itself.
func Init(shares, threshold int) (*InitResult, error) {
	if threshold < 1 || shares < threshold || shares > 255 || (shares > 1 && threshold < 2) {
		return nil, ErrInvalidParams
	}
	root := randomKey()
	kr := &keyring{
		Keys:      []keyEntry{{Version: 1, Key: randomKey(), Created: time.Now().UTC()}},
		MACKey:    randomKey(),
		AuditSeed: randomKey(),
	}
	sealed, err := sealKeyring(root, kr)
	if err != nil {
		return nil, err
	}
	var out []string
	if shares == 1 {
		out = []string{base64.StdEncoding.EncodeToString(root)}
	} else {
		parts, err := shamir.Split(root, shares, threshold)
		if err != nil {
			return nil, err
		}
		for _, p := range parts {
			out = append(out, base64.StdEncoding.EncodeToString(p))
			clear(p)
		}
	}
	kr.wipe()
	return &InitResult{Shares: out, RootKey: RootKey{b: root}, Keyring: sealed}, nil
}

func (kr *keyring) wipe() {
	for _, k := range kr.Keys {
		clear(k.Key)
	}
	clear(kr.MACKey)
	clear(kr.AuditSeed)
}

func gcm(key []byte) cipher.AEAD {
	b, err := aes.NewCipher(key)
	if err != nil {
		panic("barrier: " + err.Error())
	}
	g, err := cipher.NewGCM(b)
	if err != nil {
		panic("barrier: " + err.Error())
	}
	return g
}

func sealKeyring(root []byte, kr *keyring) ([]byte, error) {
	pt, err := json.Marshal(kr)
	if err != nil {
		return nil, err
	}
	defer clear(pt)
	return sealWith(gcm(root), 0, []byte(keyringAAD), pt), nil
}

func openKeyring(root, blob []byte) (*keyring, error) {
	pt, err := openWith(func(uint32) (cipher.AEAD, error) { return gcm(root), nil }, []byte(keyringAAD), blob)
	if err != nil {
		return nil, err
	}
	defer clear(pt)
	var kr keyring
	if err := json.Unmarshal(pt, &kr); err != nil {
		return nil, fmt.Errorf("barrier: keyring is corrupt: %w", err)
	}
	if len(kr.Keys) == 0 || len(kr.MACKey) != keySize || len(kr.AuditSeed) != keySize {
		return nil, errors.New("barrier: keyring is corrupt")
	}
	return &kr, nil
}

// sealWith encrypts under aead with the given version in the header.
func sealWith(aead cipher.AEAD, version uint32, aad, plaintext []byte) []byte {
	out := make([]byte, headerSize+nonceSize, headerSize+nonceSize+len(plaintext)+tagSize)
	out[0] = formatV1
	binary.BigEndian.PutUint32(out[1:headerSize], version)
	if _, err := rand.Read(out[headerSize:]); err != nil {
		panic("barrier: crypto/rand failed: " + err.Error())
	}
	full := additionalData(out[:headerSize], aad)
	return aead.Seal(out, out[headerSize:headerSize+nonceSize], plaintext, full)
}

func openWith(aeadFor func(uint32) (cipher.AEAD, error), aad, ct []byte) ([]byte, error) {
	if len(ct) < headerSize+nonceSize+tagSize || ct[0] != formatV1 {
		return nil, ErrMalformedCiphertext
	}
	version := binary.BigEndian.Uint32(ct[1:headerSize])
	aead, err := aeadFor(version)
	if err != nil {
		return nil, err
	}
	full := additionalData(ct[:headerSize], aad)
	pt, err := aead.Open(nil, ct[headerSize:headerSize+nonceSize], ct[headerSize+nonceSize:], full)
	if err != nil {
		return nil, ErrDecrypt
	}
	return pt, nil
}

// additionalData authenticates the header together with the row identity.
func additionalData(header, aad []byte) []byte {
	full := make([]byte, 0, len(header)+len(aad))
	return append(append(full, header...), aad...)
}

// Progress reports unsealing.
type Progress struct {
	Progress  int
	Threshold int
	Sealed    bool
}

// Barrier holds the unsealed keyring. It is safe for concurrent use and
// starts sealed.
type Barrier struct {
	mu      sync.RWMutex
	root    []byte
	kr      *keyring
	newest  keyEntry
	signer  ed25519.PrivateKey
	macKeys sync.Map // purpose -> []byte
	aeads   sync.Map // aeadKey -> cipher.AEAD

	// Shares submitted toward the threshold.
	pending [][]byte
}

type aeadKey struct {
	version uint32
	env     string
}

// New returns a sealed barrier.
func New() *Barrier { return &Barrier{} }

// Sealed reports whether the barrier holds no keys.
func (b *Barrier) Sealed() bool {
	b.mu.RLock()
	defer b.mu.RUnlock()
	return b.kr == nil
}

// UnsealKey opens the keyring with the root key itself (dev mode).
func (b *Barrier) UnsealKey(root RootKey, sealedKeyring []byte) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.kr != nil {
		return ErrAlreadyUnsealed
	}
	return b.installLocked(append([]byte(nil), root.b...), sealedKeyring)
}

// UnsealRoot opens the keyring with a root key unwrapped by an HSM (auto
// unseal). The barrier takes root: it is cleared when it does not open the
// keyring, and by Seal otherwise.
func (b *Barrier) UnsealRoot(root, sealedKeyring []byte) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.kr != nil {
		clear(root)
		return ErrAlreadyUnsealed
	}
	return b.installLocked(root, sealedKeyring)
}

// WrapRoot hands the root key to wrap (an HSM's encryption) and returns
// what wrap made. The key is lent for the call only: wrap must not keep it.
func (k RootKey) WrapRoot(wrap func(root []byte) ([]byte, error)) ([]byte, error) {
	return wrap(k.b)
}

// WrapRoot is RootKey.WrapRoot for the root key of an unsealed barrier.
func (b *Barrier) WrapRoot(wrap func(root []byte) ([]byte, error)) ([]byte, error) {
	b.mu.RLock()
	defer b.mu.RUnlock()
	if b.kr == nil {
		return nil, ErrSealed
	}
	return wrap(b.root)
}

func (b *Barrier) installLocked(root, sealedKeyring []byte) error {
	kr, err := openKeyring(root, sealedKeyring)
	if err != nil {
		clear(root)
		return err
	}
	b.root, b.kr = root, kr
	b.newest = kr.Keys[0]
	for _, k := range kr.Keys {
		if k.Version > b.newest.Version {
			b.newest = k
		}
	}
	b.signer = ed25519.NewKeyFromSeed(kr.AuditSeed)
	return nil
}

// DecodeShare parses an encoded share for a given threshold.
func DecodeShare(share string, threshold int) ([]byte, error) {
	raw, err := base64.StdEncoding.DecodeString(share)
	if err != nil {
		return nil, ErrMalformedShare
	}
	switch {
	case threshold == 1 && len(raw) == keySize:
		return raw, nil
	case threshold > 1 && len(raw) == keySize+1 && raw[keySize] != 0:
		return raw, nil
	}
	clear(raw)
	return nil, ErrMalformedShare
}

// SubmitShare adds one share toward threshold. When the threshold is
// reached the shares are combined and the keyring opened; shares that do not
// open it reset the progress.
func (b *Barrier) SubmitShare(share string, threshold int, sealedKeyring []byte) (Progress, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.kr != nil {
		return Progress{Threshold: threshold}, ErrAlreadyUnsealed
	}
	raw, err := DecodeShare(share, threshold)
	if err != nil {
		return Progress{Progress: len(b.pending), Threshold: threshold, Sealed: true}, err
	}
	for _, p := range b.pending {
		if hmac.Equal(p, raw) || (threshold > 1 && p[keySize] == raw[keySize]) {
			clear(raw)
			return Progress{Progress: len(b.pending), Threshold: threshold, Sealed: true}, ErrDuplicateShare
		}
	}
	b.pending = append(b.pending, raw)
	if len(b.pending) < threshold {
		return Progress{Progress: len(b.pending), Threshold: threshold, Sealed: true}, nil
	}
	var root []byte
	if threshold == 1 {
		root = append([]byte(nil), b.pending[0]...)
	} else {
		root, err = shamir.Combine(b.pending)
	}
	b.resetLocked()
	if err != nil {
		return Progress{Threshold: threshold, Sealed: true}, ErrWrongShares
	}
	if err := b.installLocked(root, sealedKeyring); err != nil {
		if errors.Is(err, ErrDecrypt) || errors.Is(err, ErrMalformedCiphertext) {
			return Progress{Threshold: threshold, Sealed: true}, ErrWrongShares
		}
		return Progress{Threshold: threshold, Sealed: true}, err
	}
	return Progress{Progress: threshold, Threshold: threshold, Sealed: false}, nil
}

// ResetUnseal discards the shares submitted so far.
func (b *Barrier) ResetUnseal() {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.resetLocked()
}

func (b *Barrier) resetLocked() {
	for _, p := range b.pending {
		clear(p)
	}
	b.pending = nil
}

// Seal wipes every key from memory. The byte slices holding keys are zeroed;
// AES key schedules inside crypto/aes values cannot be reached and are only
// dropped for the garbage collector, and Go may have copied key bytes
// during earlier use: wiping narrows the window, it does not close it.
func (b *Barrier) Seal() {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.kr != nil {
		b.kr.wipe()
	}
	clear(b.root)
	clear(b.signer)
	b.root, b.kr, b.signer, b.newest = nil, nil, nil, keyEntry{}
	b.macKeys.Range(func(k, v any) bool {
		clear(v.(*macState).key)
		b.macKeys.Delete(k)
		return true
	})
	b.aeads.Clear()
	b.resetLocked()
}

// KeyVersion returns the newest keyring version (0 when sealed).
func (b *Barrier) KeyVersion() uint32 {
	b.mu.RLock()
	defer b.mu.RUnlock()
	return b.newest.Version
}

// Rotate adds a keyring version. persist receives the new sealed keyring;
// only when it succeeds does the new version come into use.
func (b *Barrier) Rotate(persist func(sealedKeyring []byte) error) (uint32, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.kr == nil {
		return 0, ErrSealed
	}
	next := keyEntry{Version: b.newest.Version + 1, Key: randomKey(), Created: time.Now().UTC()}
	kr := &keyring{Keys: append(append([]keyEntry(nil), b.kr.Keys...), next), MACKey: b.kr.MACKey, AuditSeed: b.kr.AuditSeed}
	sealed, err := sealKeyring(b.root, kr)
	if err != nil {
		clear(next.Key)
		return 0, err
	}
	if err := persist(sealed); err != nil {
		clear(next.Key)
		return 0, err
	}
	b.kr, b.newest = kr, next
	return next.Version, nil
}

// aead returns the AEAD of (version, env), deriving and caching it.
// env "" is the keyring key itself (system values).
func (b *Barrier) aead(version uint32, env string) (cipher.AEAD, error) {
	k := aeadKey{version, env}
	if a, ok := b.aeads.Load(k); ok {
		return a.(cipher.AEAD), nil
	}
	b.mu.RLock()
	defer b.mu.RUnlock()
	if b.kr == nil {
		return nil, ErrSealed
	}
	var key []byte
	for _, e := range b.kr.Keys {
		if e.Version == version {
			key = e.Key
		}
	}
	if key == nil {
		return nil, ErrUnknownKeyVersion
	}
	if env != "" {
		dk, err := hkdf.Key(sha256.New, key, nil, "env/"+env, keySize)
		if err != nil {
			return nil, err
		}
		key = dk
		defer clear(dk)
	}
	a := gcm(key)
	b.aeads.Store(k, a)
	return a, nil
}

func (b *Barrier) newestVersion() (uint32, error) {
	b.mu.RLock()
	defer b.mu.RUnlock()
	if b.kr == nil {
		return 0, ErrSealed
	}
	return b.newest.Version, nil
}

// Encrypt seals a system value (not tied to an environment) with the newest key.
func (b *Barrier) Encrypt(aad, plaintext []byte) ([]byte, error) {
	return b.SealEnv("", aad, plaintext)
}

// Decrypt opens a value sealed by Encrypt.
func (b *Barrier) Decrypt(aad, ciphertext []byte) ([]byte, error) {
	return b.OpenEnv("", aad, ciphertext)
}

// SealEnv seals plaintext with the environment's key of the newest version.
func (b *Barrier) SealEnv(envID string, aad, plaintext []byte) ([]byte, error) {
	v, err := b.newestVersion()
	if err != nil {
		return nil, err
	}
	a, err := b.aead(v, envID)
	if err != nil {
		return nil, err
	}
	return sealWith(a, v, aad, plaintext), nil
}

// OpenEnv opens a ciphertext sealed by SealEnv for the same environment and
// additional data.
func (b *Barrier) OpenEnv(envID string, aad, ciphertext []byte) ([]byte, error) {
	if b.Sealed() {
		return nil, ErrSealed
	}
	return openWith(func(v uint32) (cipher.AEAD, error) { return b.aead(v, envID) }, aad, ciphertext)
}

// macState is the derived key of one MAC purpose and a pool of HMAC states
// keyed with it, so the hot path (token and key lookups) does not rebuild
// the HMAC for every call.
type macState struct {
	key  []byte
	pool sync.Pool // of *macWork
}

// macWork is a pooled HMAC with scratch space, so MAC32 allocates nothing.
type macWork struct {
	h   hash.Hash
	buf []byte
	sum [sha256.Size]byte
}

// MAC returns HMAC-SHA256(data) under a key derived for purpose from the
// keyring's MAC key, which survives rotation (tokens are looked up by it).
// It returns nil when sealed; callers sit behind the seal check.
func (b *Barrier) MAC(purpose string, data []byte) []byte {
	st := b.macState(purpose)
	if st == nil {
		return nil
	}
	w := st.pool.Get().(*macWork)
	w.h.Reset()
	w.h.Write(data)
	out := w.h.Sum(nil)
	st.pool.Put(w)
	return out
}

// MAC32 is MAC for a string, returned by value: the token hot path calls it
// on every request and it allocates nothing. ok is false when sealed.
func (b *Barrier) MAC32(purpose, data string) (out [sha256.Size]byte, ok bool) {
	st := b.macState(purpose)
	if st == nil {
		return out, false
	}
	w := st.pool.Get().(*macWork)
	w.h.Reset()
	if len(data) <= 4096 {
		w.buf = append(w.buf[:0], data...)
		w.h.Write(w.buf)
	} else {
		w.h.Write([]byte(data))
	}
	copy(out[:], w.h.Sum(w.sum[:0]))
	st.pool.Put(w)
	return out, true
}

func (b *Barrier) macState(purpose string) *macState {
	if v, ok := b.macKeys.Load(purpose); ok {
		return v.(*macState)
	}
	b.mu.RLock()
	defer b.mu.RUnlock()
	if b.kr == nil {
		return nil
	}
	dk, err := hkdf.Key(sha256.New, b.kr.MACKey, nil, "mac/"+purpose, keySize)
	if err != nil {
		return nil
	}
	st := &macState{key: dk}
	st.pool.New = func() any { return &macWork{h: hmac.New(sha256.New, st.key)} }
	actual, _ := b.macKeys.LoadOrStore(purpose, st)
	return actual.(*macState)
}

// SignAudit signs an audit checkpoint with the keyring's Ed25519 key.
func (b *Barrier) SignAudit(msg []byte) ([]byte, error) {
	b.mu.RLock()
	defer b.mu.RUnlock()
	if b.signer == nil {
		return nil, ErrSealed
	}
	return ed25519.Sign(b.signer, msg), nil
}

// AuditPublicKey returns the public key that verifies audit checkpoints.
func (b *Barrier) AuditPublicKey() (ed25519.PublicKey, error) {
	b.mu.RLock()
	defer b.mu.RUnlock()
	if b.signer == nil {
		return nil, ErrSealed
	}
	return append(ed25519.PublicKey(nil), b.signer.Public().(ed25519.PublicKey)...), nil
}
