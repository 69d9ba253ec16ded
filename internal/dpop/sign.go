package dpop

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"errors"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/cryptosigner"
)

// NewProof signs a proof for one request: method and url (its query and
// fragment are left out of htu), and the access token it accompanies ("" for
// a token request, which carries no ath). The algorithm follows the key: ES256
// or ES384 for ECDSA P-256 or P-384, EdDSA for Ed25519, PS256 for RSA.
// keyward's tests use it; so can a Go client.
func NewProof(key crypto.Signer, method, url, accessToken string, now time.Time) (string, error) {
	return NewProofWithNonce(key, method, url, accessToken, "", now)
}

// NewProofWithNonce is NewProof with the server-provided nonce of a
// DPoP-Nonce header (RFC 9449 §8; "" for none).
func NewProofWithNonce(key crypto.Signer, method, url, accessToken, nonce string, now time.Time) (string, error) {
	var alg jose.SignatureAlgorithm
	switch k := key.Public().(type) {
	case *ecdsa.PublicKey:
		switch k.Curve {
		case elliptic.P256():
			alg = jose.ES256
		case elliptic.P384():
			alg = jose.ES384
		default:
			return "", errors.New("dpop: unsupported ECDSA curve")
		}
	case ed25519.PublicKey:
		alg = jose.EdDSA
	case *rsa.PublicKey:
		alg = jose.PS256
	default:
		return "", errors.New("dpop: unsupported key type")
	}
	var sk any = key
	switch key.(type) {
	case *ecdsa.PrivateKey, ed25519.PrivateKey, *rsa.PrivateKey:
	default:
		sk = cryptosigner.Opaque(key) // a key that cannot leave its keystore
	}
	s, err := jose.NewSigner(jose.SigningKey{Algorithm: alg, Key: sk},
		(&jose.SignerOptions{EmbedJWK: true}).WithType(Type))
	if err != nil {
		return "", err
	}
	var jti [16]byte
	rand.Read(jti[:])
	c := map[string]any{
		"jti": base64.RawURLEncoding.EncodeToString(jti[:]),
		"htm": method,
		"htu": stripQuery(url),
		"iat": now.Unix(),
	}
	if accessToken != "" {
		c["ath"] = TokenHash(accessToken)
	}
	if nonce != "" {
		c["nonce"] = nonce
	}
	payload, err := json.Marshal(c)
	if err != nil {
		return "", err
	}
	jws, err := s.Sign(payload)
	if err != nil {
		return "", err
	}
	return jws.CompactSerialize()
}

func stripQuery(u string) string {
	for i := 0; i < len(u); i++ {
		if u[i] == '?' || u[i] == '#' {
			return u[:i]
		}
	}
	return u
}
