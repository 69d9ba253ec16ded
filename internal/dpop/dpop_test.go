package dpop

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/hmac"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"math/big"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
)

// The proof of RFC 9449 Figure 2 (a token request) and the thumbprint RFC
// 9449 §6.1 gives for its key: a wire-format known answer.
const (
	rfcProof = "eyJ0eXAiOiJkcG9wK2p3dCIsImFsZyI6IkVTMjU2IiwiandrIjp7Imt0eSI6IkVDIiwieCI6Imw4dEZyaHgtMzR0VjNoUklDUkRZOXpDa0RscEJoRjQyVVFVZldWQVdCRnMiLCJ5IjoiOVZFNGpmX09rX282NHpiVFRsY3VOSmFqSG10NnY5VERWclUwQ2R2R1JEQSIsImNydiI6IlAtMjU2In19.eyJqdGkiOiItQndDM0VTYzZhY2MybFRjIiwiaHRtIjoiUE9TVCIsImh0dSI6Imh0dHBzOi8vc2VydmVyLmV4YW1wbGUuY29tL3Rva2VuIiwiaWF0IjoxNTYyMjYyNjE2fQ.2-GxA6T8lP4vfrg8v-FdWP0A0zdrj8igiMLvqRMUvwnQg4PtFLbdLXiOSsX0x7NVY-FNyJK70nfbV37xRZT3Lg" // keyward:allow (RFC 9449 example)
	rfcJKT   = "0ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA4I"
	rfcIAT   = 1562262616
)

func TestRFC9449Example(t *testing.T) {
	now := time.Unix(rfcIAT, 0)
	v := NewVerifier(Options{Now: func() time.Time { return now }})
	p, err := v.Verify(context.Background(), rfcProof, Expect{Method: "POST", URL: "https://server.example.com/token"})
	if err != nil {
		t.Fatal(err)
	}
	if p.JKT != rfcJKT || p.JTI != "-BwC3ESc6acc2lTc" || p.Algorithm != "ES256" {
		t.Fatalf("parsed %+v", p)
	}
	// The same proof again is a replay.
	if _, err := v.Verify(context.Background(), rfcProof, Expect{Method: "POST", URL: "https://server.example.com/token"}); !errors.Is(err, ErrReplayed) || !errors.Is(err, ErrInvalid) {
		t.Fatalf("replay: %v", err)
	}
}

func TestThumbprintRFC7638(t *testing.T) {
	var k jose.JSONWebKey
	err := k.UnmarshalJSON([]byte(`{"kty":"RSA","n":"0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw","e":"AQAB","alg":"RS256","kid":"2011-04-29"}`))
	if err != nil {
		t.Fatal(err)
	}
	if got, err := Thumbprint(k); err != nil || got != "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs" {
		t.Fatalf("thumbprint = %q, %v", got, err)
	}
}

func TestTokenHashRFC9449(t *testing.T) {
	// RFC 9449 §4.2's example access token and its ath.
	if got := TokenHash("Kz~8mXK1EalYznwH-LC-1fBAo.4Ljp~zsPE_NeO.gxU"); got != "fUHyO2r2Z3DZ53EsNrWBb0xWXoaNy59IiKCAqksmQEo" {
		t.Fatalf("ath = %s", got)
	}
}

// clock is a settable test clock.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

const (
	testURL   = "https://keyward.example/v1/gateway/maps/geocode"
	testToken = "kwt_0123456789abcdefghijABCDEFGHIJ0123456789ab1A2b3C" // keyward:allow (test fixture)
)

func newKey(t testing.TB) *ecdsa.PrivateKey {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func jktOf(t testing.TB, key crypto.Signer) string {
	t.Helper()
	s, err := Thumbprint(jose.JSONWebKey{Key: key.Public()})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func mustProof(t testing.TB, key crypto.Signer, method, url, tok string, at time.Time) string {
	t.Helper()
	p, err := NewProof(key, method, url, tok, at)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// raw builds a proof from a header and claims, signed by sign (nil: an
// empty signature).
func raw(t testing.TB, hdr, claims map[string]any, sign func(signingInput []byte) []byte) string {
	t.Helper()
	hb, _ := json.Marshal(hdr)
	cb, _ := json.Marshal(claims)
	in := base64.RawURLEncoding.EncodeToString(hb) + "." + base64.RawURLEncoding.EncodeToString(cb)
	var sig []byte
	if sign != nil {
		sig = sign([]byte(in))
	}
	return in + "." + base64.RawURLEncoding.EncodeToString(sig)
}

func es256(key *ecdsa.PrivateKey) func([]byte) []byte {
	return func(in []byte) []byte {
		h := sha256.Sum256(in)
		r, s, err := ecdsa.Sign(rand.Reader, key, h[:])
		if err != nil {
			panic(err)
		}
		out := make([]byte, 64)
		r.FillBytes(out[:32])
		s.FillBytes(out[32:])
		return out
	}
}

func pubJWK(key *ecdsa.PrivateKey) map[string]any {
	b, _ := json.Marshal(jose.JSONWebKey{Key: &key.PublicKey})
	var m map[string]any
	json.Unmarshal(b, &m)
	return m
}

func TestVerify(t *testing.T) {
	clk := &clock{t: time.Unix(1_800_000_000, 0)}
	v := NewVerifier(Options{Now: clk.now})
	key, other := newKey(t), newKey(t)
	jkt := jktOf(t, key)
	want := Expect{Method: "GET", URL: testURL + "?q=berlin", AccessToken: testToken, JKT: jkt}
	now := clk.now()

	good := mustProof(t, key, "GET", testURL, testToken, now)
	p, err := v.Verify(context.Background(), good, want)
	if err != nil {
		t.Fatalf("good proof: %v", err)
	}
	if p.JKT != jkt || p.ATH != TokenHash(testToken) {
		t.Fatalf("proof = %+v", p)
	}

	_, edKey, _ := ed25519.GenerateKey(rand.Reader)
	edWant := want
	edWant.JKT = jktOf(t, edKey)
	if _, err := v.Verify(context.Background(), mustProof(t, edKey, "GET", testURL, testToken, now), edWant); err != nil {
		t.Fatalf("EdDSA proof: %v", err)
	}

	hs := func(in []byte) []byte { m := hmac.New(sha256.New, []byte("secret")); m.Write(in); return m.Sum(nil) }
	claims := func() map[string]any {
		return map[string]any{"jti": "j-" + time.Now().String(), "htm": "GET", "htu": testURL, "iat": now.Unix(), "ath": TokenHash(testToken)}
	}
	hdr := func() map[string]any { return map[string]any{"typ": "dpop+jwt", "alg": "ES256", "jwk": pubJWK(key)} }
	privJWK := pubJWK(key)
	privJWK["d"] = base64.RawURLEncoding.EncodeToString(key.D.FillBytes(make([]byte, 32)))

	for name, tc := range map[string]struct {
		proof  string
		want   Expect
		reason string
	}{
		"replayed":           {good, want, "replayed"},
		"wrong htm":          {mustProof(t, key, "POST", testURL, testToken, now), want, "htm"},
		"wrong htu path":     {mustProof(t, key, "GET", "https://keyward.example/v1/gateway/maps/route", testToken, now), want, "htu"},
		"wrong htu host":     {mustProof(t, key, "GET", "https://evil.example/v1/gateway/maps/geocode", testToken, now), want, "htu"},
		"wrong htu scheme":   {mustProof(t, key, "GET", "http://keyward.example/v1/gateway/maps/geocode", testToken, now), want, "htu"},
		"iat too old":        {mustProof(t, key, "GET", testURL, testToken, now.Add(-61*time.Second)), want, "iat"},
		"iat in the future":  {mustProof(t, key, "GET", testURL, testToken, now.Add(61*time.Second)), want, "iat"},
		"another key":        {mustProof(t, other, "GET", testURL, testToken, now), want, "another key"},
		"missing ath":        {mustProof(t, key, "GET", testURL, "", now), want, "ath missing"},
		"wrong ath":          {mustProof(t, key, "GET", testURL, testToken+"x", now), want, "ath does not match"},
		"alg none":           {raw(t, map[string]any{"typ": "dpop+jwt", "alg": "none", "jwk": pubJWK(key)}, claims(), nil), want, "alg"},
		"HMAC alg":           {raw(t, map[string]any{"typ": "dpop+jwt", "alg": "HS256", "jwk": map[string]any{"kty": "oct", "k": "c2VjcmV0"}}, claims(), hs), want, "alg"},
		"jwk with d":         {raw(t, map[string]any{"typ": "dpop+jwt", "alg": "ES256", "jwk": privJWK}, claims(), es256(key)), want, "private"},
		"no jwk":             {raw(t, map[string]any{"typ": "dpop+jwt", "alg": "ES256"}, claims(), es256(key)), want, "jwk"},
		"kid instead of jwk": {raw(t, map[string]any{"typ": "dpop+jwt", "alg": "ES256", "kid": "k1", "jwk": pubJWK(key)}, claims(), es256(key)), want, "jwk only"},
		"typ JWT":            {raw(t, map[string]any{"typ": "JWT", "alg": "ES256", "jwk": pubJWK(key)}, claims(), es256(key)), want, "typ"},
		"signed by another":  {raw(t, hdr(), claims(), es256(other)), want, "signature"},
		"oversized":          {strings.Repeat("a", MaxProofLen+1), want, "too large"},
		"not a JWS":          {"a.b", want, "compact"},
		"empty":              {"", want, "no proof"},
		"no jti": {raw(t, hdr(), map[string]any{"htm": "GET", "htu": testURL, "iat": now.Unix(), "ath": TokenHash(testToken)}, es256(key)),
			want, "jti"},
		"no iat": {raw(t, hdr(), map[string]any{"jti": "x", "htm": "GET", "htu": testURL, "ath": TokenHash(testToken)}, es256(key)),
			want, "iat"},
		"crit": {raw(t, map[string]any{"typ": "dpop+jwt", "alg": "ES256", "jwk": pubJWK(key), "crit": []string{"b64"}, "b64": true}, claims(), es256(key)),
			want, "crit"},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := v.Verify(context.Background(), tc.proof, tc.want)
			if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), tc.reason) {
				t.Fatalf("err = %v, want ErrInvalid naming %q", err, tc.reason)
			}
			if strings.Contains(err.Error(), testToken) || (len(tc.proof) > 20 && strings.Contains(err.Error(), tc.proof[:20])) {
				t.Fatal("the error quotes the token or the proof")
			}
		})
	}

	// A hand-built proof that is right in every way passes: the raw helper
	// is not what made the cases above fail.
	if _, err := v.Verify(context.Background(), raw(t, hdr(), claims(), es256(key)), want); err != nil {
		t.Fatalf("hand-built proof: %v", err)
	}
	// Within the window either way.
	if _, err := v.Verify(context.Background(), mustProof(t, key, "GET", testURL, testToken, now.Add(-59*time.Second)), want); err != nil {
		t.Fatalf("59 s old: %v", err)
	}
	if _, err := v.Verify(context.Background(), mustProof(t, key, "GET", testURL, testToken, now.Add(59*time.Second)), want); err != nil {
		t.Fatalf("59 s ahead: %v", err)
	}
	// A token request: no token, no ath, any key.
	if _, err := v.Verify(context.Background(), mustProof(t, other, "POST", "https://keyward.example/v1/oauth/token", "", now), Expect{Method: "POST", URL: "https://keyward.example/v1/oauth/token"}); err != nil {
		t.Fatalf("token request proof: %v", err)
	}
}

func TestAlgorithmAllowList(t *testing.T) {
	v := NewVerifier(Options{Algorithms: []string{"EdDSA"}})
	key := newKey(t)
	_, err := v.Verify(context.Background(), mustProof(t, key, "GET", testURL, "", time.Now()), Expect{Method: "GET", URL: testURL})
	if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), "alg") {
		t.Fatalf("ES256 with an EdDSA-only verifier: %v", err)
	}
	defer func() {
		if recover() == nil {
			t.Fatal("HS256 accepted as a configured algorithm")
		}
	}()
	NewVerifier(Options{Algorithms: []string{"HS256"}})
}

func TestRSAKeyTooSmall(t *testing.T) {
	// A 1024-bit RSA jwk is refused whatever the signature.
	n := new(big.Int).Lsh(big.NewInt(1), 1023)
	n.Add(n, big.NewInt(1))
	jwk := map[string]any{"kty": "RSA", "n": base64.RawURLEncoding.EncodeToString(n.Bytes()), "e": "AQAB"}
	p := raw(t, map[string]any{"typ": "dpop+jwt", "alg": "RS256", "jwk": jwk},
		map[string]any{"jti": "x", "htm": "GET", "htu": testURL, "iat": time.Now().Unix()}, func([]byte) []byte { return make([]byte, 128) })
	if _, err := Parse(p, nil); !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), "not a key for alg") {
		t.Fatalf("1024-bit RSA: %v", err)
	}
}

// Every supported algorithm verifies a proof signed by go-jose, and refuses
// it with any byte of the signature changed, cut short or lengthened; the
// verdicts are go-jose's own.
func TestSignatureAlgorithms(t *testing.T) {
	ec := func(c elliptic.Curve) crypto.Signer {
		k, err := ecdsa.GenerateKey(c, rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		return k
	}
	_, ed, _ := ed25519.GenerateKey(rand.Reader)
	rsaKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	keys := map[string]crypto.Signer{
		"ES256": ec(elliptic.P256()), "ES384": ec(elliptic.P384()), "ES512": ec(elliptic.P521()), "EdDSA": ed,
		"RS256": rsaKey, "RS384": rsaKey, "RS512": rsaKey, "PS256": rsaKey, "PS384": rsaKey, "PS512": rsaKey,
	}
	for _, alg := range supportedAlgorithms {
		signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.SignatureAlgorithm(alg), Key: keys[alg]},
			(&jose.SignerOptions{EmbedJWK: true}).WithType(Type))
		if err != nil {
			t.Fatal(alg, err)
		}
		claims := fmt.Sprintf(`{"jti":"j-%s","htm":"GET","htu":%q,"iat":%d}`, alg, testURL, time.Now().Unix())
		jws, err := signer.Sign([]byte(claims))
		if err != nil {
			t.Fatal(alg, err)
		}
		proof, _ := jws.CompactSerialize()
		if _, err := Parse(proof, supportedAlgorithms); err != nil {
			t.Errorf("%s: a good proof: %v", alg, err)
		}
		dot := strings.LastIndexByte(proof, '.')
		sig, _ := base64.RawURLEncoding.DecodeString(proof[dot+1:])
		bad := [][]byte{sig[:len(sig)-1], append(slices.Clone(sig), 0), {}}
		for _, i := range []int{0, len(sig) / 2, len(sig) - 1} {
			b := slices.Clone(sig)
			b[i] ^= 0x01
			bad = append(bad, b)
		}
		for i, b := range bad {
			tampered := proof[:dot+1] + base64.RawURLEncoding.EncodeToString(b)
			_, err := Parse(tampered, supportedAlgorithms)
			if !errors.Is(err, ErrInvalid) {
				t.Errorf("%s: tampered signature %d accepted: %v", alg, i, err)
			}
			if parsed, perr := jose.ParseSignedCompact(tampered, []jose.SignatureAlgorithm{jose.SignatureAlgorithm(alg)}); perr == nil {
				if _, verr := parsed.Verify(keys[alg].Public()); verr == nil {
					t.Errorf("%s: go-jose accepts tampered signature %d that keyward refuses", alg, i)
				}
			}
		}
	}
}

// The key cache gives the same key for the same jwk, still checks the key
// against each proof's alg, never keeps a refused key, and stays bounded.
func TestKeyCache(t *testing.T) {
	v := NewVerifier(Options{})
	v.keys.max = 2
	now := time.Now()
	keys := []*ecdsa.PrivateKey{newKey(t), newKey(t), newKey(t)}
	for round := range 2 {
		for i, k := range keys {
			p, err := v.Verify(context.Background(), mustProof(t, k, "GET", testURL, "", now), Expect{Method: "GET", URL: testURL})
			if err != nil || p.JKT != jktOf(t, k) {
				t.Fatalf("round %d key %d: %+v, %v", round, i, p, err)
			}
			if n := len(v.keys.m); n > 2 {
				t.Fatalf("key cache holds %d keys, max 2", n)
			}
		}
	}
	// The P-256 key is cached; a proof claiming ES384 with it is refused.
	k := keys[2]
	p := raw(t, map[string]any{"typ": "dpop+jwt", "alg": "ES384", "jwk": pubJWK(k)},
		map[string]any{"jti": "x", "htm": "GET", "htu": testURL, "iat": now.Unix()}, es256(k))
	if _, err := v.Verify(context.Background(), p, Expect{Method: "GET", URL: testURL}); !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), "not a key for alg") {
		t.Fatalf("ES384 header with a cached P-256 key: %v", err)
	}
	// A jwk with private material is refused, and not cached.
	jwk := pubJWK(k)
	jwk["d"] = base64.RawURLEncoding.EncodeToString(k.D.Bytes())
	clear(v.keys.m)
	p = raw(t, map[string]any{"typ": "dpop+jwt", "alg": "ES256", "jwk": jwk},
		map[string]any{"jti": "y", "htm": "GET", "htu": testURL, "iat": now.Unix()}, es256(k))
	if _, err := v.Verify(context.Background(), p, Expect{Method: "GET", URL: testURL}); !errors.Is(err, ErrInvalid) {
		t.Fatalf("private jwk: %v", err)
	}
	if len(v.keys.m) != 0 {
		t.Fatal("a refused jwk was cached")
	}
}

func TestNormalizeURL(t *testing.T) {
	for in, want := range map[string]string{
		"https://Keyward.EXAMPLE/v1/x":           "https://keyward.example/v1/x",
		"HTTPS://keyward.example:443/v1/x":       "https://keyward.example/v1/x",
		"http://keyward.example:80/v1/x":         "http://keyward.example/v1/x",
		"http://keyward.example:8270/v1/x":       "http://keyward.example:8270/v1/x",
		"https://keyward.example:80/v1/x":        "https://keyward.example:80/v1/x",
		"https://keyward.example":                "https://keyward.example/",
		"https://keyward.example/v1/x?a=b#frag":  "https://keyward.example/v1/x",
		"https://keyward.example/v1/%7Euser/%2f": "https://keyward.example/v1/~user/%2F",
		"https://keyward.example/a/./b/../c":     "https://keyward.example/a/c",
		"https://keyward.example/a/%2E%2E/c":     "https://keyward.example/c",
		"https://keyward.example/a//b/":          "https://keyward.example/a//b/",
		"http://[::1]:8270/v1":                   "http://[::1]:8270/v1",
		"http://[::1]:80/v1":                     "http://[::1]/v1",
		"http://127.0.0.1:8270/v1/x%20y":         "http://127.0.0.1:8270/v1/x%20y",
		// A WebSocket URL is its handshake's HTTP URL.
		"wss://Keyward.example:443/v1/gateway/rt": "https://keyward.example/v1/gateway/rt",
		"ws://keyward.example:80/v1/x":            "http://keyward.example/v1/x",
		"WSS://keyward.example:80/v1/x":           "https://keyward.example:80/v1/x",
	} {
		got, err := NormalizeURL(in)
		if err != nil || got != want {
			t.Errorf("NormalizeURL(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	for _, bad := range []string{"", "/v1/x", "ftp://keyward.example/x", "https:opaque", "https://user:pw@keyward.example/x", "https:///x", "http://keyward.example/%zz"} {
		if got, err := NormalizeURL(bad); err == nil {
			t.Errorf("NormalizeURL(%q) = %q, want an error", bad, got)
		}
	}
}

func TestReplayCacheAgesOutAndIsBounded(t *testing.T) {
	c := newReplayCache(time.Minute, 3)
	t0 := time.Unix(1_800_000_000, 0)
	k := func(s string) [16]byte { return replayKey("jkt", s) }
	if c.add(k("a"), t0) != added || c.add(k("a"), t0.Add(59*time.Second)) != replayed {
		t.Fatal("a key was not remembered within the span")
	}
	c.add(k("b"), t0.Add(10*time.Second))
	c.add(k("c"), t0.Add(20*time.Second))
	if got := c.add(k("d"), t0.Add(30*time.Second)); got != full {
		t.Fatalf("fourth key in a cache of 3 = %v, want full", got)
	}
	// After one span the generation rotates: a, b, c are still remembered.
	if c.add(k("a"), t0.Add(61*time.Second)) != replayed {
		t.Fatal("a forgotten after one rotation")
	}
	// After two spans they are gone and there is room again.
	if got := c.add(k("a"), t0.Add(122*time.Second)); got != added {
		t.Fatalf("a after two spans = %v", got)
	}
	if c.len() != 1 {
		t.Fatalf("len = %d, want 1", c.len())
	}
	// A long pause drops both generations at once.
	if got := c.add(k("a"), t0.Add(time.Hour)); got != added {
		t.Fatalf("a after an hour = %v", got)
	}
}

func TestReplayCacheFullIsBusy(t *testing.T) {
	clk := &clock{t: time.Unix(1_800_000_000, 0)}
	v := NewVerifier(Options{Now: clk.now, MaxReplayEntries: 2})
	key := newKey(t)
	want := Expect{Method: "GET", URL: testURL}
	for i := range 2 {
		if _, err := v.Verify(context.Background(), mustProof(t, key, "GET", testURL, "", clk.now()), want); err != nil {
			t.Fatalf("proof %d: %v", i, err)
		}
	}
	if _, err := v.Verify(context.Background(), mustProof(t, key, "GET", testURL, "", clk.now()), want); !errors.Is(err, ErrBusy) {
		t.Fatalf("third proof: %v, want ErrBusy", err)
	}
	clk.add(5 * time.Minute)
	if _, err := v.Verify(context.Background(), mustProof(t, key, "GET", testURL, "", clk.now()), want); err != nil {
		t.Fatalf("after the entries aged out: %v", err)
	}
}

func TestConcurrentVerifyAcceptsEachProofOnce(t *testing.T) {
	v := NewVerifier(Options{})
	key := newKey(t)
	proof := mustProof(t, key, "GET", testURL, "", time.Now())
	var wg sync.WaitGroup
	var mu sync.Mutex
	ok := 0
	for range 16 {
		wg.Go(func() {
			if _, err := v.Verify(context.Background(), proof, Expect{Method: "GET", URL: testURL}); err == nil {
				mu.Lock()
				ok++
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if ok != 1 {
		t.Fatalf("a proof was accepted %d times", ok)
	}
}

func FuzzParse(f *testing.F) {
	key := newKey(f)
	now := time.Now()
	f.Add(rfcProof)
	f.Add(mustProof(f, key, "GET", testURL, testToken, now))
	f.Add(raw(f, map[string]any{"typ": "dpop+jwt", "alg": "none", "jwk": pubJWK(key)}, map[string]any{"jti": "x"}, nil))
	f.Add("e30.e30.")
	f.Add("..")
	f.Add("eyJ0eXAiOiJkcG9wK2p3dCJ9.e30.AA")
	cache := &keyCache{max: 4, m: map[string]cachedKey{}}
	f.Fuzz(func(t *testing.T, s string) {
		p, err := Parse(s, nil)
		// With a key cache, twice (the second from the cache): the same verdict.
		for range 2 {
			pc, errc := parse(s, nil, cache)
			if (err == nil) != (errc == nil) || err == nil && (pc.JKT != p.JKT || pc.JTI != p.JTI) {
				t.Fatalf("with the key cache: %+v, %v; without: %+v, %v", pc, errc, p, err)
			}
		}
		if err == nil {
			if p.JKT == "" || p.JTI == "" || p.Method == "" || p.URL == "" || p.Key == nil {
				t.Fatalf("accepted a proof with missing parts: %+v", p)
			}
		} else if !errors.Is(err, ErrInvalid) {
			t.Fatalf("error %v is not ErrInvalid", err)
		}
	})
}

func FuzzNormalizeURL(f *testing.F) {
	for _, s := range []string{testURL, "HTTP://A:80/%7e/./../b?x#y", "https://[::1]:443", "http://h/%41%2f", "http://h/a/.."} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		n, err := NormalizeURL(s)
		if err != nil {
			return
		}
		// Normalising is idempotent.
		if n2, err := NormalizeURL(n); err != nil || n2 != n {
			t.Fatalf("NormalizeURL(%q) = %q, then %q, %v", s, n, n2, err)
		}
	})
}

func BenchmarkVerify(b *testing.B) {
	v := NewVerifier(Options{MaxReplayEntries: 1 << 30})
	key := newKey(b)
	jkt := jktOf(b, key)
	proofs := make([]string, b.N)
	now := time.Now()
	for i := range proofs {
		proofs[i] = mustProof(b, key, "GET", testURL, testToken, now)
	}
	want := Expect{Method: "GET", URL: testURL, AccessToken: testToken, JKT: jkt}
	b.ResetTimer()
	for i := range b.N {
		if _, err := v.Verify(context.Background(), proofs[i], want); err != nil {
			b.Fatal(err)
		}
	}
}

// Only the jwk of a proof whose signature verified is cached, and only a
// jwk of ordinary size: a proof with anyone's public key and no valid
// signature, or a jwk padded to kilobytes (each padding a new cache entry
// for the same key), takes no cache room.
func TestKeyCacheKeepsOnlyVerifiedOrdinaryKeys(t *testing.T) {
	v := NewVerifier(Options{})
	now := time.Now()
	k := newKey(t)
	claims := func(jti string) map[string]any {
		return map[string]any{"jti": jti, "htm": "GET", "htu": testURL, "iat": now.Unix()}
	}
	forged := raw(t, map[string]any{"typ": "dpop+jwt", "alg": "ES256", "jwk": pubJWK(k)}, claims("a"), nil)
	if _, err := v.Verify(context.Background(), forged, Expect{Method: "GET", URL: testURL}); !errors.Is(err, ErrInvalid) {
		t.Fatalf("unsigned proof: %v", err)
	}
	if n := len(v.keys.m); n != 0 {
		t.Fatalf("a proof whose signature does not verify left %d cached keys", n)
	}
	padded := pubJWK(k)
	padded["x-pad"] = strings.Repeat("a", 4000)
	p := raw(t, map[string]any{"typ": "dpop+jwt", "alg": "ES256", "jwk": padded}, claims("b"), es256(k))
	if _, err := v.Verify(context.Background(), p, Expect{Method: "GET", URL: testURL}); err != nil {
		t.Fatalf("padded jwk: %v", err)
	}
	if n := len(v.keys.m); n != 0 {
		t.Fatalf("a 4 KB jwk was cached (%d keys)", n)
	}
	if _, err := v.Verify(context.Background(), mustProof(t, k, "GET", testURL, "", now), Expect{Method: "GET", URL: testURL}); err != nil {
		t.Fatal(err)
	}
	if n := len(v.keys.m); n != 1 {
		t.Fatalf("%d cached keys after a good proof, want 1", n)
	}
}

// memStore is a ReplayStore in memory, shared by verifiers standing for
// the nodes of a cluster; fail makes the next claims fail.
type memStore struct {
	mu      sync.Mutex
	claims  map[[16]byte]time.Time
	now     func() time.Time
	fail    error
	expires []time.Time
}

func (s *memStore) Claim(_ context.Context, key [16]byte, expires time.Time) (bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.fail != nil {
		return false, s.fail
	}
	s.expires = append(s.expires, expires)
	if e, ok := s.claims[key]; ok && e.After(s.now()) {
		return false, nil
	}
	s.claims[key] = expires
	return true, nil
}

// A proof one node accepted is refused by another sharing the store; a
// store that fails refuses the proof without burning it on this node.
func TestSharedReplayStore(t *testing.T) {
	clk := &clock{t: time.Unix(1_800_000_000, 0)}
	store := &memStore{claims: map[[16]byte]time.Time{}, now: clk.now}
	a := NewVerifier(Options{Now: clk.now, Shared: store})
	b := NewVerifier(Options{Now: clk.now, Shared: store})
	key := newKey(t)
	want := Expect{Method: "GET", URL: testURL}
	ctx := context.Background()

	iat := clk.now().Add(-10 * time.Second)
	p := mustProof(t, key, "GET", testURL, "", iat)
	if _, err := a.Verify(ctx, p, want); err != nil {
		t.Fatalf("node a: %v", err)
	}
	if _, err := b.Verify(ctx, p, want); !errors.Is(err, ErrReplayed) || !errors.Is(err, ErrInvalid) {
		t.Fatalf("the same proof on node b: %v, want ErrReplayed", err)
	}
	if got, want := store.expires[0], iat.Add(DefaultWindow+SharedClockSkew); !got.Equal(want) {
		t.Fatalf("claimed until %v, want iat+window+skew %v", got, want)
	}
	// A proof that fails another check never reaches the store.
	n := len(store.expires)
	if _, err := b.Verify(ctx, mustProof(t, key, "POST", testURL, "", clk.now()), want); !errors.Is(err, ErrInvalid) {
		t.Fatalf("wrong method: %v", err)
	}
	if len(store.expires) != n {
		t.Fatal("a proof refused by its checks was claimed")
	}

	store.fail = errors.New("database unreachable")
	q := mustProof(t, key, "GET", testURL, "", clk.now())
	if _, err := a.Verify(ctx, q, want); !errors.Is(err, ErrUnavailable) || errors.Is(err, ErrInvalid) {
		t.Fatalf("store failing: %v, want ErrUnavailable", err)
	}
	store.fail = nil
	if _, err := a.Verify(ctx, q, want); err != nil {
		t.Fatalf("the same proof once the store is back: %v", err)
	}
	if _, err := a.Verify(ctx, q, want); !errors.Is(err, ErrReplayed) {
		t.Fatalf("and again: %v, want ErrReplayed", err)
	}
}
