package client

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// Error codes of keyward's vocabulary that callers of the login methods act on.
const (
	// CodeUnauthenticated: wrong credentials, or a missing or dead token.
	CodeUnauthenticated = "unauthenticated"
	// CodeTOTPRequired: the password was right but the account needs a TOTP
	// code; ask for one and log in again with it.
	CodeTOTPRequired = "totp_required"
	// CodeRateLimited: too many attempts; see RetryAfter.
	CodeRateLimited = "rate_limited"
)

// IssuedToken is a freshly issued token. Token is shown only this once.
type IssuedToken struct {
	Token     string     `json:"token"`
	Accessor  string     `json:"accessor"`
	Policies  []string   `json:"policies"`
	ExpiresAt *time.Time `json:"expires_at,omitempty"`
	Principal string     `json:"principal"`
	// Rate is the token's own rate limit ("100/min"); empty: none.
	Rate string `json:"rate,omitempty"`
	// Warnings name what the caller may not have meant, such as a policy
	// that does not exist; the token was issued anyway.
	Warnings []string `json:"warnings,omitempty"`
}

// TokenInfo describes a token; it never carries the token itself.
type TokenInfo struct {
	Accessor     string            `json:"accessor"`
	Parent       string            `json:"parent,omitempty"`
	Principal    string            `json:"principal"`
	AuthMethod   string            `json:"auth_method"`
	Policies     []string          `json:"policies"`
	BoundEnvs    []string          `json:"bound_envs,omitempty"`
	BoundCIDRs   []string          `json:"bound_cidrs,omitempty"`
	Meta         map[string]string `json:"meta,omitempty"`
	TTL          string            `json:"ttl,omitempty"`
	MaxUses      int               `json:"max_uses,omitempty"`
	Uses         int               `json:"uses,omitempty"`
	Renewable    bool              `json:"renewable"`
	CreatedAt    time.Time         `json:"created_at"`
	ExpiresAt    *time.Time        `json:"expires_at,omitempty"`
	MaxExpiresAt *time.Time        `json:"max_expires_at,omitempty"`
	RevokedAt    *time.Time        `json:"revoked_at,omitempty"`
	// Cnf, on a DPoP-bound token, holds the thumbprint of its key.
	Cnf *struct {
		JKT string `json:"jkt"`
	} `json:"cnf,omitempty"`
	// Rate is the token's own rate limit ("100/min"), counted on each
	// keyward node; empty: none.
	Rate string `json:"rate,omitempty"`
}

// CreateTokenRequest asks for a child of the calling token. Nothing in it
// may exceed the parent: no policy, environment, address, lifetime or rate
// beyond the parent's. Durations are Go duration strings ("15m").
type CreateTokenRequest struct {
	Policies   []string          `json:"policies,omitempty"`
	TTL        string            `json:"ttl,omitempty"`
	MaxTTL     string            `json:"max_ttl,omitempty"`
	BoundEnvs  []string          `json:"bound_envs,omitempty"`
	BoundCIDRs []string          `json:"bound_cidrs,omitempty"`
	MaxUses    int               `json:"max_uses,omitempty"`
	Meta       map[string]string `json:"meta,omitempty"`
	// Rate limits the new token's requests: "N/sec", "N/min", "N/hour",
	// "N/day" or "N/30s". Empty: the parent's rate, if it has one.
	Rate string `json:"rate,omitempty"`
}

// IsTOTPRequired reports whether a login failed only for want of a TOTP code.
func IsTOTPRequired(err error) bool { return IsCode(err, CodeTOTPRequired) }

// RateLimitError is a 429 refusal together with how long the server asks
// the caller to wait. errors.As(err, new(*Error)) still finds the API error.
type RateLimitError struct {
	Err *Error
	// RetryAfter is the server's Retry-After, 0 when it sent none.
	RetryAfter time.Duration
}

func (e *RateLimitError) Error() string {
	if e.RetryAfter <= 0 {
		return e.Err.Error()
	}
	return fmt.Sprintf("%s; retry after %s", e.Err.Error(), e.RetryAfter)
}

// Unwrap returns the API error.
func (e *RateLimitError) Unwrap() error { return e.Err }

// RetryAfter returns how long a rate-limited caller should wait, and whether
// err is a rate-limit refusal at all.
func RetryAfter(err error) (time.Duration, bool) {
	var rl *RateLimitError
	if errors.As(err, &rl) {
		return rl.RetryAfter, true
	}
	return 0, IsCode(err, CodeRateLimited)
}

// parseRetryAfter reads a Retry-After header: delay-seconds or an HTTP date.
func parseRetryAfter(v string, now time.Time) time.Duration {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0
	}
	if n, err := strconv.ParseInt(v, 10, 64); err == nil {
		if n <= 0 {
			return 0
		}
		if n > int64(24*time.Hour/time.Second) {
			n = int64(24 * time.Hour / time.Second)
		}
		return time.Duration(n) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil && t.After(now) {
		return t.Sub(now).Round(time.Second)
	}
	return 0
}

// headerCapture records the headers of the last response it carries.
type headerCapture struct {
	rt  http.RoundTripper
	hdr *http.Header
}

func (h headerCapture) RoundTrip(r *http.Request) (*http.Response, error) {
	resp, err := h.rt.RoundTrip(r)
	if resp != nil {
		*h.hdr = resp.Header
	}
	return resp, err
}

// login posts credentials to a login endpoint. The credentials travel only
// in the JSON body; a 429 becomes a *RateLimitError carrying Retry-After.
func (c *Client) login(ctx context.Context, path string, body any) (*IssuedToken, error) {
	var hdr http.Header
	hc := *c.hc
	rt := hc.Transport
	if rt == nil {
		rt = http.DefaultTransport
	}
	hc.Transport = headerCapture{rt: rt, hdr: &hdr}
	cc := *c
	cc.hc = &hc
	cc.token = "" // a login never sends a token it may be replacing
	var it IssuedToken
	status, err := cc.do(ctx, http.MethodPost, path, nil, body, &it)
	if err != nil {
		var apiErr *Error
		if status == http.StatusTooManyRequests && errors.As(err, &apiErr) {
			return nil, &RateLimitError{Err: apiErr, RetryAfter: parseRetryAfter(hdr.Get("Retry-After"), time.Now())}
		}
		return nil, err
	}
	return &it, nil
}

// PasswordLogin logs a user in. totp may be empty; when the account needs a
// code the error satisfies IsTOTPRequired.
func (c *Client) PasswordLogin(ctx context.Context, username, password, totp string) (*IssuedToken, error) {
	body := struct {
		Username string `json:"username"`
		Password string `json:"password"`
		TOTP     string `json:"totp,omitempty"`
	}{username, password, totp}
	return c.login(ctx, "/v1/auth/password/login", body)
}

// ServiceLogin logs a service account in with its client id and secret.
func (c *Client) ServiceLogin(ctx context.Context, clientID, secret string) (*IssuedToken, error) {
	body := struct {
		ClientID     string `json:"client_id"`
		ClientSecret string `json:"client_secret"`
	}{clientID, secret}
	return c.login(ctx, "/v1/auth/service/login", body)
}

// JWTLogin exchanges a workload's JWT from a trusted issuer for a token.
func (c *Client) JWTLogin(ctx context.Context, issuer, jwt string) (*IssuedToken, error) {
	body := struct {
		Issuer string `json:"issuer"`
		JWT    string `json:"jwt"`
	}{issuer, jwt}
	return c.login(ctx, "/v1/auth/jwt/login", body)
}

// CreateToken creates a child of the calling token.
func (c *Client) CreateToken(ctx context.Context, req CreateTokenRequest) (*IssuedToken, error) {
	var it IssuedToken
	if _, err := c.do(ctx, http.MethodPost, "/v1/auth/token/create", nil, req, &it); err != nil {
		return nil, err
	}
	return &it, nil
}

func (c *Client) tokenInfo(ctx context.Context, method, path string, in any) (*TokenInfo, error) {
	var ti TokenInfo
	if _, err := c.do(ctx, method, path, nil, in, &ti); err != nil {
		return nil, err
	}
	return &ti, nil
}

func renewBody(increment string) any {
	return struct {
		Increment string `json:"increment,omitempty"`
	}{increment}
}

func accessorPath(accessor string) string {
	return "/v1/auth/token/accessors/" + url.PathEscape(accessor)
}

// LookupSelf describes the calling token.
func (c *Client) LookupSelf(ctx context.Context) (*TokenInfo, error) {
	return c.tokenInfo(ctx, http.MethodGet, "/v1/auth/token/lookup-self", nil)
}

// RenewSelf extends the calling token by increment ("1h"; empty: its TTL),
// never past its maximum lifetime.
func (c *Client) RenewSelf(ctx context.Context, increment string) (*TokenInfo, error) {
	return c.tokenInfo(ctx, http.MethodPost, "/v1/auth/token/renew-self", renewBody(increment))
}

func (c *Client) revoke(ctx context.Context, method, path string) (int, error) {
	var r struct {
		Revoked int `json:"revoked"`
	}
	_, err := c.do(ctx, method, path, nil, nil, &r)
	return r.Revoked, err
}

// RevokeSelf revokes the calling token and its descendants, returning how
// many tokens were revoked.
func (c *Client) RevokeSelf(ctx context.Context) (int, error) {
	return c.revoke(ctx, http.MethodPost, "/v1/auth/token/revoke-self")
}

// LookupAccessor describes the token with that accessor.
func (c *Client) LookupAccessor(ctx context.Context, accessor string) (*TokenInfo, error) {
	return c.tokenInfo(ctx, http.MethodGet, accessorPath(accessor), nil)
}

// RenewAccessor renews the token with that accessor.
func (c *Client) RenewAccessor(ctx context.Context, accessor, increment string) (*TokenInfo, error) {
	return c.tokenInfo(ctx, http.MethodPost, accessorPath(accessor)+"/renew", renewBody(increment))
}

// RevokeAccessor revokes the token with that accessor and its descendants,
// returning how many tokens were revoked.
func (c *Client) RevokeAccessor(ctx context.Context, accessor string) (int, error) {
	return c.revoke(ctx, http.MethodDelete, accessorPath(accessor))
}

// Duration is a duration in a response. It reads a Go duration string
// ("15m0s"), or a number of nanoseconds, and writes a duration string.
type Duration time.Duration

// String formats d like time.Duration.
func (d Duration) String() string { return time.Duration(d).String() }

// MarshalJSON writes d as a Go duration string.
func (d Duration) MarshalJSON() ([]byte, error) { return json.Marshal(time.Duration(d).String()) }

// UnmarshalJSON reads a duration string, a number of nanoseconds or null.
func (d *Duration) UnmarshalJSON(b []byte) error {
	s := strings.TrimSpace(string(b))
	if s == "null" {
		return nil
	}
	if strings.HasPrefix(s, `"`) {
		var str string
		if err := json.Unmarshal(b, &str); err != nil {
			return err
		}
		if str == "" {
			*d = 0
			return nil
		}
		v, err := time.ParseDuration(str)
		if err != nil {
			return fmt.Errorf("client: duration %q: %w", str, err)
		}
		*d = Duration(v)
		return nil
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		return fmt.Errorf("client: duration: want a string or nanoseconds, got %.32q", s)
	}
	*d = Duration(n)
	return nil
}
