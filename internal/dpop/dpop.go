// Package dpop verifies DPoP proofs (RFC 9449): the short JWTs a client signs
// with its own key for every request, so that an access token bound to that
// key (its cnf.jkt, a JWK thumbprint per RFC 7638) is useless without the
// private key.
//
// A proof is accepted when it
//   - is a compact JWS of at most MaxProofLen bytes with typ "dpop+jwt";
//   - is signed with an algorithm on the verifier's allow-list (asymmetric
//     only: never "none", never an HMAC) by the public key in its jwk header,
//     which carries no private member;
//   - carries jti, htm (equal to the request's method), htu (equal to the
//     request's URL without query and fragment, after RFC 3986 syntax- and
//     scheme-based normalisation), and an iat within ±Window of now;
//   - carries ath = base64url(SHA-256(access token)) when it accompanies an
//     access token, and is signed by the key whose thumbprint the token is
//     bound to;
//   - has not been seen before: its (key thumbprint, jti) goes into a replay
//     cache that remembers it for as long as the iat window could accept it.
//
// The replay cache is in memory, per node. With Options.Shared every
// accepted proof is also claimed in a store the nodes of a cluster share
// (keyward's database on PostgreSQL), so a proof accepted by one node is
// refused by all; a proof is claimed only after every other check passed,
// and a store that cannot be written refuses the proof (ErrUnavailable)
// rather than skip the check. Without it, with N nodes behind a load
// balancer that does not pin a client to one node, a captured proof could be
// replayed at most once on each other node, within the iat window, for the
// same method and URL and with the same token. With Options.Nonces a
// proof must also carry a current server-provided nonce (RFC 9449 §8,
// nonce.go), so it can be made only while it can be used.
//
// Every failure is ErrInvalid wrapped with a fixed reason that never quotes
// the proof, the token or a claim value. The package imports no keyward
// package; internal/httpapi uses it at the edge.
package dpop

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"math/big"
	"slices"
	"strings"
	"sync"
	"time"

	jose "github.com/go-jose/go-jose/v4"
)

// Limits and defaults.
const (
	// MaxProofLen caps a proof; longer ones are refused before any parsing.
	// An RSA-4096 jwk and a long URL fit in well under half of it.
	MaxProofLen = 8 << 10
	// DefaultWindow is how far iat may be from now, either way.
	DefaultWindow = 60 * time.Second
	// DefaultMaxReplayEntries bounds the replay cache (about 40 MB at worst).
	DefaultMaxReplayEntries = 1 << 20

	maxJTILen   = 256
	maxNonceLen = 512
	minRSABits  = 2048
)

// Type is the typ header of a DPoP proof.
const Type = "dpop+jwt"

// DefaultAlgorithms are the signature algorithms a Verifier accepts unless
// told otherwise. ES256 is what Android Keystore and the iOS Secure Enclave
// sign with.
var DefaultAlgorithms = []string{"ES256", "ES384", "EdDSA", "PS256", "RS256"}

// supportedAlgorithms are every algorithm a Verifier may be configured with:
// asymmetric only, so a public key can never serve as an HMAC secret.
var supportedAlgorithms = []string{"ES256", "ES384", "ES512", "EdDSA", "PS256", "PS384", "PS512", "RS256", "RS384", "RS512"}

// Errors.
var (
	// ErrInvalid: the proof is missing, malformed, or does not match the
	// request. The wrapping message gives a fixed reason.
	ErrInvalid = errors.New("invalid DPoP proof")
	// ErrReplayed: the proof was seen before (errors.Is(err, ErrInvalid) holds too).
	ErrReplayed = errors.New("DPoP proof replayed")
	// ErrBusy: the replay cache is full, so no new proof can be accepted
	// until old entries age out. A server answers 503 and the client retries.
	ErrBusy = errors.New("DPoP replay cache is full")
	// ErrUnavailable: the shared replay store (Options.Shared) could not
	// record the proof, so it is refused; a server answers 503 and the
	// client retries with a new proof. The wrapped cause is for the log.
	ErrUnavailable = errors.New("DPoP replay store unavailable")
)

func invalid(reason string) error { return fmt.Errorf("%w: %s", ErrInvalid, reason) }

// Proof is a parsed proof whose signature verified.
type Proof struct {
	// Algorithm is the alg header.
	Algorithm string
	// Key is the public key of the jwk header; JKT is its RFC 7638
	// SHA-256 thumbprint, base64url.
	Key crypto.PublicKey
	JKT string
	// The claims.
	JTI      string
	Method   string // htm
	URL      string // htu, as sent
	IssuedAt time.Time
	ATH      string // "" when absent
	Nonce    string // "" when absent
}

// header is the proof's JOSE header, decoded by this package (not by
// go-jose) so that every check below sees exactly these values.
type header struct {
	Typ  string          `json:"typ"`
	Alg  string          `json:"alg"`
	JWK  json.RawMessage `json:"jwk"`
	Crit json.RawMessage `json:"crit"`
	// Headers that would make the key come from somewhere other than jwk.
	Kid string          `json:"kid"`
	X5c json.RawMessage `json:"x5c"`
	Jku string          `json:"jku"`
	X5u string          `json:"x5u"`
}

type claims struct {
	JTI   *string      `json:"jti"`
	HTM   *string      `json:"htm"`
	HTU   *string      `json:"htu"`
	IAT   *json.Number `json:"iat"`
	ATH   *string      `json:"ath"`
	Nonce *string      `json:"nonce"`
}

// privateMembers are JWK members that hold private or symmetric key
// material (RFC 7518 §6); a proof's jwk must carry none of them.
var privateMembers = []string{"d", "p", "q", "dp", "dq", "qi", "oth", "k", "priv"}

// Parse checks a proof's form and signature, not its claims against a
// request: that is Verifier.Verify. algs is the allow-list (nil: the
// defaults).
func Parse(proof string, algs []string) (*Proof, error) { return parse(proof, algs, nil) }

// parse is Parse with a cache of decoded jwk headers (nil: none).
func parse(proof string, algs []string, keys *keyCache) (*Proof, error) {
	if algs == nil {
		algs = DefaultAlgorithms
	}
	if proof == "" {
		return nil, invalid("no proof")
	}
	if len(proof) > MaxProofLen {
		return nil, invalid("proof too large")
	}
	hseg, rest, ok := strings.Cut(proof, ".")
	pseg, sseg, ok2 := strings.Cut(rest, ".")
	if !ok || !ok2 || strings.IndexByte(sseg, '.') >= 0 {
		return nil, invalid("not a compact JWS")
	}
	hb, err := base64.RawURLEncoding.Strict().DecodeString(hseg)
	if err != nil {
		return nil, invalid("header is not base64url")
	}
	var h header
	if err := strictUnmarshal(hb, &h); err != nil {
		return nil, invalid("header is not a JSON object")
	}
	if !strings.EqualFold(h.Typ, Type) {
		return nil, invalid(`typ is not "dpop+jwt"`)
	}
	if !slices.Contains(algs, h.Alg) || !slices.Contains(supportedAlgorithms, h.Alg) {
		return nil, invalid("alg is not allowed")
	}
	if len(h.Crit) > 0 {
		return nil, invalid("crit headers are not supported")
	}
	if h.Kid != "" || len(h.X5c) > 0 || h.Jku != "" || h.X5u != "" {
		return nil, invalid("the key must be given in jwk only")
	}
	key, jkt, cached, err := keys.publicJWK(h.JWK)
	if err != nil {
		return nil, err
	}
	if !keyFitsAlg(key, h.Alg) {
		return nil, invalid("jwk is not a key for alg")
	}
	sig, err := base64.RawURLEncoding.Strict().DecodeString(sseg)
	if err != nil {
		return nil, invalid("malformed JWS")
	}
	if !verifySignature(h.Alg, key, proof[:len(hseg)+1+len(pseg)], sig) {
		return nil, invalid("signature does not verify with the jwk")
	}
	if !cached {
		keys.add(h.JWK, key, jkt) // only a key that signed this proof
	}
	payload, err := base64.RawURLEncoding.Strict().DecodeString(pseg)
	if err != nil {
		return nil, invalid("malformed JWS")
	}
	var c claims
	if err := strictUnmarshal(payload, &c); err != nil {
		return nil, invalid("claims are malformed")
	}
	p := &Proof{Algorithm: h.Alg, Key: key, JKT: jkt}
	switch {
	case c.JTI == nil || *c.JTI == "" || len(*c.JTI) > maxJTILen:
		return nil, invalid("jti missing or longer than 256 bytes")
	case c.HTM == nil || *c.HTM == "":
		return nil, invalid("htm missing")
	case c.HTU == nil || *c.HTU == "":
		return nil, invalid("htu missing")
	case c.IAT == nil:
		return nil, invalid("iat missing")
	}
	p.JTI, p.Method, p.URL = *c.JTI, *c.HTM, *c.HTU
	iat, err := c.IAT.Float64()
	if err != nil || math.IsNaN(iat) || iat < 0 || iat > 1<<40 {
		return nil, invalid("iat is not a time")
	}
	p.IssuedAt = time.Unix(int64(iat), 0)
	if c.ATH != nil {
		p.ATH = *c.ATH
	}
	if c.Nonce != nil {
		if len(*c.Nonce) > maxNonceLen {
			return nil, invalid("nonce too long")
		}
		p.Nonce = *c.Nonce
	}
	return p, nil
}

// strictUnmarshal decodes one JSON object and nothing after it.
func strictUnmarshal(b []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	if err := dec.Decode(v); err != nil {
		return err
	}
	if dec.More() {
		return errors.New("trailing data")
	}
	return nil
}

// publicJWK decodes the proof's jwk: a public key with no private member,
// and its thumbprint. Decoded keys are remembered by their exact JSON text
// when c is not nil (cached reports a key found there): a device signs
// every proof with the same key, and decoding it (go-jose's JSON,
// big-number parsing, the point check, the thumbprint) costs tens of
// microseconds a proof.
func (c *keyCache) publicJWK(raw json.RawMessage) (key crypto.PublicKey, jkt string, cached bool, err error) {
	if len(raw) == 0 || raw[0] != '{' {
		return nil, "", false, invalid("jwk header missing")
	}
	if c != nil {
		c.mu.RLock()
		e, ok := c.m[string(raw)]
		c.mu.RUnlock()
		if ok {
			return e.key, e.jkt, true, nil
		}
	}
	key, jkt, err = decodeJWK(raw)
	return key, jkt, false, err
}

// add caches the key decoded from raw, the jwk of a proof whose signature
// verified (a bad proof costs its sender, not the cache), unless raw is
// longer than maxCachedJWK: padding (whitespace, unknown members) would
// make room for many entries of one key.
func (c *keyCache) add(raw json.RawMessage, key crypto.PublicKey, jkt string) {
	if c == nil || len(raw) > maxCachedJWK {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.m) >= c.max {
		clear(c.m) // keys of devices still calling come back on their next proof
	}
	c.m[string(raw)] = cachedKey{key, jkt}
}

// keyCache maps a jwk header's JSON text to its decoded public key.
type keyCache struct {
	max int
	mu  sync.RWMutex
	m   map[string]cachedKey
}

type cachedKey struct {
	key crypto.PublicKey
	jkt string
}

// defaultMaxKeys bounds a Verifier's key cache, and maxCachedJWK the jwk
// text of a cached key (an RSA-4096 jwk is about 750 bytes, a P-256 one
// about 130): about 10 MB at worst.
const (
	defaultMaxKeys = 10000
	maxCachedJWK   = 1 << 10
)

func decodeJWK(raw json.RawMessage) (crypto.PublicKey, string, error) {
	var members map[string]json.RawMessage
	if err := json.Unmarshal(raw, &members); err != nil {
		return nil, "", invalid("jwk is not a JSON object")
	}
	for _, m := range privateMembers {
		if _, ok := members[m]; ok {
			return nil, "", invalid("jwk holds private key material")
		}
	}
	var k jose.JSONWebKey
	if err := k.UnmarshalJSON(raw); err != nil || !k.Valid() || !k.IsPublic() {
		return nil, "", invalid("jwk is not a usable public key")
	}
	jkt, err := Thumbprint(k)
	if err != nil {
		return nil, "", invalid("jwk has no thumbprint")
	}
	return k.Key, jkt, nil
}

// verifySignature checks a JWS signature (RFC 7515 §5.2, with RFC 7518's
// algorithms) over signingInput, the proof's "header.payload". The caller
// has checked that key is of the kind alg signs with (keyFitsAlg).
func verifySignature(alg string, key crypto.PublicKey, signingInput string, sig []byte) bool {
	var h crypto.Hash
	switch alg {
	case "ES256", "RS256", "PS256":
		h = crypto.SHA256
	case "ES384", "RS384", "PS384":
		h = crypto.SHA384
	case "ES512", "RS512", "PS512":
		h = crypto.SHA512
	case "EdDSA":
		k, ok := key.(ed25519.PublicKey)
		return ok && ed25519.Verify(k, []byte(signingInput), sig)
	default:
		return false
	}
	hh := h.New()
	hh.Write([]byte(signingInput))
	digest := hh.Sum(nil)
	switch k := key.(type) {
	case *ecdsa.PublicKey:
		// R and S, each the curve's size in bytes, big-endian (RFC 7518 §3.4).
		size := (k.Curve.Params().BitSize + 7) / 8
		if len(sig) != 2*size {
			return false
		}
		r, s := new(big.Int).SetBytes(sig[:size]), new(big.Int).SetBytes(sig[size:])
		return ecdsa.Verify(k, digest, r, s)
	case *rsa.PublicKey:
		if alg[0] == 'P' {
			// RFC 7518 §3.5: the salt is as long as the hash.
			return rsa.VerifyPSS(k, h, digest, sig, &rsa.PSSOptions{SaltLength: rsa.PSSSaltLengthEqualsHash, Hash: h}) == nil
		}
		return rsa.VerifyPKCS1v15(k, h, digest, sig) == nil
	}
	return false
}

func keyFitsAlg(key any, alg string) bool {
	switch k := key.(type) {
	case *ecdsa.PublicKey:
		switch alg {
		case "ES256":
			return k.Curve == elliptic.P256()
		case "ES384":
			return k.Curve == elliptic.P384()
		case "ES512":
			return k.Curve == elliptic.P521()
		}
	case ed25519.PublicKey:
		return alg == "EdDSA"
	case *rsa.PublicKey:
		return (strings.HasPrefix(alg, "RS") || strings.HasPrefix(alg, "PS")) && k.N.BitLen() >= minRSABits
	}
	return false
}

// Thumbprint is the RFC 7638 JWK thumbprint of a public key with SHA-256,
// base64url without padding: the value of a bound token's cnf.jkt.
func Thumbprint(k jose.JSONWebKey) (string, error) {
	if !k.IsPublic() {
		pub := k.Public()
		k = pub
	}
	sum, err := k.Thumbprint(crypto.SHA256)
	if err != nil {
		return "", err
	}
	return base64.RawURLEncoding.EncodeToString(sum), nil
}

// TokenHash is the ath of a proof that accompanies accessToken:
// base64url(SHA-256(accessToken)).
func TokenHash(accessToken string) string {
	sum := sha256.Sum256([]byte(accessToken))
	return base64.RawURLEncoding.EncodeToString(sum[:])
}

// Options configure a Verifier. The zero value gives the defaults.
type Options struct {
	// Window is how far a proof's iat may be from now, in the past or the
	// future (default DefaultWindow).
	Window time.Duration
	// Now is the clock (default time.Now).
	Now func() time.Time
	// Algorithms is the allow-list (default DefaultAlgorithms; a subset of
	// the asymmetric JWS algorithms).
	Algorithms []string
	// MaxReplayEntries bounds the replay cache (default DefaultMaxReplayEntries).
	MaxReplayEntries int
	// Nonces, when set, makes every proof carry a current server nonce
	// (RFC 9449 §8); a proof without one fails with ErrUseNonce.
	Nonces *Nonces
	// Shared, when set, is where proofs accepted here are claimed for every
	// node sharing it: a proof another node accepted is refused as replayed.
	Shared ReplayStore
}

// ReplayStore records accepted proofs for the nodes of a cluster.
type ReplayStore interface {
	// Claim records key until expires and reports whether it was new: false
	// when it was claimed before and that record has not expired. It must
	// be atomic across the nodes sharing the store.
	Claim(ctx context.Context, key [16]byte, expires time.Time) (bool, error)
}

// SharedClockSkew is how far apart the clocks of nodes sharing a
// ReplayStore may be: a claim outlives the last moment its proof's iat
// window ends on this node's clock by this much.
const SharedClockSkew = time.Minute

// Verifier checks proofs against requests and remembers the ones it
// accepted. It is safe for concurrent use.
type Verifier struct {
	opts   Options
	replay *replayCache
	keys   *keyCache
}

// NewVerifier returns a Verifier. It panics on an algorithm that is not an
// asymmetric JWS algorithm (a programming error).
func NewVerifier(opts Options) *Verifier {
	if opts.Window <= 0 {
		opts.Window = DefaultWindow
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Algorithms == nil {
		opts.Algorithms = DefaultAlgorithms
	}
	for _, a := range opts.Algorithms {
		if !slices.Contains(supportedAlgorithms, a) {
			panic("dpop: algorithm " + a + " is not supported")
		}
	}
	if opts.MaxReplayEntries <= 0 {
		opts.MaxReplayEntries = DefaultMaxReplayEntries
	}
	// An accepted proof has iat >= now-Window, so it could be accepted
	// again until iat+Window <= now+2·Window: remember it that long.
	return &Verifier{opts: opts, replay: newReplayCache(2*opts.Window, opts.MaxReplayEntries),
		keys: &keyCache{max: defaultMaxKeys, m: map[string]cachedKey{}}}
}

// Nonce returns the nonce to send in DPoP-Nonce headers when the verifier
// requires nonces (ok false otherwise, or while they cannot be made).
func (v *Verifier) Nonce() (string, bool) {
	if v.opts.Nonces == nil {
		return "", false
	}
	return v.opts.Nonces.Current()
}

// Algorithms returns the allow-list (for WWW-Authenticate's algs).
func (v *Verifier) Algorithms() []string { return slices.Clone(v.opts.Algorithms) }

// Expect is what a proof must match.
type Expect struct {
	// Method and URL are the request's. URL is absolute; its query and
	// fragment are ignored.
	Method string
	URL    string
	// AccessToken, when set, is the token the proof accompanies: ath must
	// be its hash.
	AccessToken string
	// JKT, when set, is the thumbprint the proof's key must have (the
	// token's cnf.jkt).
	JKT string
}

// Verify checks proof against want and, when it passes, records it so that
// it is never accepted again: on this node, and with Options.Shared on every
// node sharing the store. ctx bounds the shared claim.
func (v *Verifier) Verify(ctx context.Context, proof string, want Expect) (*Proof, error) {
	p, err := parse(proof, v.opts.Algorithms, v.keys)
	if err != nil {
		return nil, err
	}
	if p.Method != want.Method {
		return nil, invalid("htm does not match the request method")
	}
	wantURL, err := NormalizeURL(want.URL)
	if err != nil {
		return nil, fmt.Errorf("dpop: the request URL: %w", err)
	}
	if got, err := NormalizeURL(p.URL); err != nil || got != wantURL {
		return nil, invalid("htu does not match the request URL")
	}
	now := v.opts.Now()
	if d := p.IssuedAt.Sub(now); d > v.opts.Window || d < -v.opts.Window {
		return nil, invalid("iat is outside the accepted window (check the device clock)")
	}
	if want.AccessToken != "" {
		if p.ATH == "" {
			return nil, invalid("ath missing")
		}
		if subtle.ConstantTimeCompare([]byte(p.ATH), []byte(TokenHash(want.AccessToken))) != 1 {
			return nil, invalid("ath does not match the access token")
		}
	}
	if want.JKT != "" && subtle.ConstantTimeCompare([]byte(p.JKT), []byte(want.JKT)) != 1 {
		return nil, invalid("the proof is signed by another key than the token is bound to")
	}
	if v.opts.Nonces != nil && (p.Nonce == "" || !v.opts.Nonces.Valid(p.Nonce)) {
		return nil, fmt.Errorf("%w: %w", ErrInvalid, ErrUseNonce)
	}
	// Last, so that only a proof that passed every check takes a slot.
	k := replayKey(p.JKT, p.JTI)
	switch v.replay.add(k, now) {
	case replayed:
		return nil, fmt.Errorf("%w: %w", ErrInvalid, ErrReplayed)
	case full:
		return nil, ErrBusy
	}
	if v.opts.Shared != nil {
		// The proof can be accepted anywhere until its iat window ends:
		// iat+Window, on the clock of a node up to SharedClockSkew behind.
		fresh, err := v.opts.Shared.Claim(ctx, k, p.IssuedAt.Add(v.opts.Window+SharedClockSkew))
		if err != nil {
			v.replay.remove(k) // not accepted: the client may send it again
			return nil, fmt.Errorf("%w: %w", ErrUnavailable, err)
		}
		if !fresh {
			return nil, fmt.Errorf("%w: %w", ErrInvalid, ErrReplayed)
		}
	}
	return p, nil
}

func replayKey(jkt, jti string) [16]byte {
	h := sha256.New()
	h.Write([]byte(jkt))
	h.Write([]byte{0})
	h.Write([]byte(jti))
	var k [16]byte
	copy(k[:], h.Sum(nil))
	return k
}

// replayCache remembers keys for at least span, in two generations: new
// keys go into cur; when cur is span old it becomes prev and the old prev
// is dropped. No sweep, no per-entry time: memory is bounded by max, and
// a key lives between span and 2·span.
type replayCache struct {
	span time.Duration
	max  int

	mu       sync.Mutex
	cur      map[[16]byte]struct{}
	prev     map[[16]byte]struct{}
	curStart time.Time
}

type addResult int

const (
	added addResult = iota
	replayed
	full
)

func newReplayCache(span time.Duration, max int) *replayCache {
	return &replayCache{span: span, max: max, cur: map[[16]byte]struct{}{}, prev: map[[16]byte]struct{}{}}
}

func (c *replayCache) add(k [16]byte, now time.Time) addResult {
	c.mu.Lock()
	defer c.mu.Unlock()
	if age := now.Sub(c.curStart); age >= c.span {
		if age >= 2*c.span {
			c.prev = map[[16]byte]struct{}{}
		} else {
			c.prev = c.cur
		}
		c.cur = map[[16]byte]struct{}{}
		c.curStart = now
	}
	if _, ok := c.cur[k]; ok {
		return replayed
	}
	if _, ok := c.prev[k]; ok {
		return replayed
	}
	if len(c.cur)+len(c.prev) >= c.max {
		return full
	}
	c.cur[k] = struct{}{}
	return added
}

// remove forgets k (a proof that was not accepted after all).
func (c *replayCache) remove(k [16]byte) {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.cur, k)
	delete(c.prev, k)
}

// len returns the number of keys held.
func (c *replayCache) len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.cur) + len(c.prev)
}
