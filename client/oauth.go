package client

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"encoding/asn1"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"math/big"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// OAuth identifiers (RFC 8693).
const (
	GrantTokenExchange = "urn:ietf:params:oauth:grant-type:token-exchange"
	TokenTypeIDToken   = "urn:ietf:params:oauth:token-type:id_token"
	TokenTypeJWT       = "urn:ietf:params:oauth:token-type:jwt"
)

// OAuthError is an error of the OAuth endpoints (RFC 6749 §5.2), which do
// not use keyward's error format: OAuth clients expect this one.
type OAuthError struct {
	Status      int    `json:"-"`
	Code        string `json:"error"` // invalid_grant, invalid_dpop_proof, ...
	Description string `json:"error_description"`
	// RetryAfter is set on a 429 or 503.
	RetryAfter time.Duration `json:"-"`
}

func (e *OAuthError) Error() string {
	return fmt.Sprintf("%s: %s (HTTP %d)", e.Code, e.Description, e.Status)
}

// ExchangeRequest is a token exchange (RFC 8693): an ID token from a
// trusted identity provider for a keyward access token.
type ExchangeRequest struct {
	// IDToken is the subject token.
	IDToken string
	// TokenType is its type: TokenTypeIDToken (default) or TokenTypeJWT.
	TokenType string
	// Scope, when set, narrows the token to some of the policies the ID
	// token maps to (space-separated policy names).
	Scope string
	// ClientID names the app in the audit log and introspection.
	ClientID string
}

// ExchangeResponse is the token endpoint's answer. AccessToken is shown
// only this once.
type ExchangeResponse struct {
	AccessToken     string `json:"access_token"`
	IssuedTokenType string `json:"issued_token_type"`
	TokenType       string `json:"token_type"` // "DPoP" when bound to the client's key
	ExpiresIn       int64  `json:"expires_in"` // seconds; at most 900
	Scope           string `json:"scope"`
}

// Exchange trades an ID token for an access token at POST /v1/oauth/token.
// With Config.DPoP set the request carries a proof and the token is bound to
// the prover's key: use it through a Client with the same prover.
func (c *Client) Exchange(ctx context.Context, req ExchangeRequest) (*ExchangeResponse, error) {
	tt := req.TokenType
	if tt == "" {
		tt = TokenTypeIDToken
	}
	form := url.Values{"grant_type": {GrantTokenExchange}, "subject_token": {req.IDToken}, "subject_token_type": {tt}}
	if req.Scope != "" {
		form.Set("scope", req.Scope)
	}
	if req.ClientID != "" {
		form.Set("client_id", req.ClientID)
	}
	cc := *c
	cc.token = ""       // a token request presents no keyward token
	cc.proveBare = true // but a proof, when c has a prover
	var out ExchangeResponse
	if _, err := cc.do(ctx, http.MethodPost, "/v1/oauth/token", nil, form, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// Revoke revokes token and its children (RFC 7009). Holding a token is
// enough to revoke it; an unknown token is not an error.
func (c *Client) Revoke(ctx context.Context, token string) error {
	cc := *c
	cc.token = ""
	_, err := cc.do(ctx, http.MethodPost, "/v1/oauth/revoke", nil, url.Values{"token": {token}}, nil)
	return err
}

// Introspection describes a token (RFC 7662). An inactive token (unknown,
// expired, revoked) has only Active false.
type Introspection struct {
	Active     bool   `json:"active"`
	Scope      string `json:"scope,omitempty"`
	ClientID   string `json:"client_id,omitempty"`
	TokenType  string `json:"token_type,omitempty"`
	Exp        int64  `json:"exp,omitempty"`
	Iat        int64  `json:"iat,omitempty"`
	Sub        string `json:"sub,omitempty"`
	AuthMethod string `json:"auth_method,omitempty"`
	Cnf        *struct {
		JKT string `json:"jkt"`
	} `json:"cnf,omitempty"`
	// Rate is the token's own rate limit ("100/min"); empty: none.
	Rate string `json:"rate,omitempty"`
}

// Introspect asks what token stands for; the calling token needs read on
// sys/introspect.
func (c *Client) Introspect(ctx context.Context, token string) (*Introspection, error) {
	var out Introspection
	if _, err := c.do(ctx, http.MethodPost, "/v1/oauth/introspect", nil, url.Values{"token": {token}}, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// Prover signs a DPoP proof (RFC 9449) for one request: its method, its URL,
// the access token it carries ("" for a token request), and the server's
// nonce ("" until the server asks for one, RFC 9449 §8).
type Prover func(method, url, accessToken, nonce string) (string, error)

// NewES256Prover returns a Prover signing with an ECDSA P-256 key: the kind
// Android Keystore, the iOS Secure Enclave, a TPM or a YubiKey hold without
// ever exporting it (any crypto.Signer will do).
func NewES256Prover(key crypto.Signer) (Prover, error) {
	pub, ok := key.Public().(*ecdsa.PublicKey)
	if !ok || pub.Curve != elliptic.P256() {
		return nil, errors.New("client: a DPoP key must be ECDSA P-256")
	}
	ec, err := pub.ECDH()
	if err != nil {
		return nil, fmt.Errorf("client: DPoP key: %w", err)
	}
	raw := ec.Bytes() // 0x04 || X || Y
	b64 := base64.RawURLEncoding.EncodeToString
	hdr, _ := json.Marshal(map[string]any{
		"typ": "dpop+jwt", "alg": "ES256",
		"jwk": map[string]string{"kty": "EC", "crv": "P-256", "x": b64(raw[1:33]), "y": b64(raw[33:65])},
	})
	hdrB64 := b64(hdr)
	return func(method, target, accessToken, nonce string) (string, error) {
		if i := strings.IndexAny(target, "?#"); i >= 0 {
			target = target[:i]
		}
		var jti [16]byte
		if _, err := rand.Read(jti[:]); err != nil {
			return "", err
		}
		claims := map[string]any{"jti": b64(jti[:]), "htm": method, "htu": target, "iat": time.Now().Unix()}
		if accessToken != "" {
			h := sha256.Sum256([]byte(accessToken))
			claims["ath"] = b64(h[:])
		}
		if nonce != "" {
			claims["nonce"] = nonce
		}
		cb, _ := json.Marshal(claims)
		input := hdrB64 + "." + b64(cb)
		digest := sha256.Sum256([]byte(input))
		der, err := key.Sign(rand.Reader, digest[:], crypto.SHA256)
		if err != nil {
			return "", err
		}
		var sig struct{ R, S *big.Int }
		if rest, err := asn1.Unmarshal(der, &sig); err != nil || len(rest) > 0 {
			return "", errors.New("client: the DPoP key returned a malformed signature")
		}
		rs := make([]byte, 64) // JWS ES256 is R || S, 32 bytes each (RFC 7518 §3.4)
		sig.R.FillBytes(rs[:32])
		sig.S.FillBytes(rs[32:])
		return input + "." + b64(rs), nil
	}, nil
}
