package client

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"time"
)

// KeyInfo describes a client API key; it never holds the key itself.
type KeyInfo struct {
	ID              string          `json:"id"`
	Project         string          `json:"project"`
	Env             string          `json:"env"`
	EnvironmentKind string          `json:"environment_kind"` // "live" or "test"
	Name            string          `json:"name"`
	Owner           string          `json:"owner,omitempty"`
	Status          string          `json:"status"` // active, grace, expired, revoked
	Scopes          []string        `json:"scopes"`
	Meta            json.RawMessage `json:"meta,omitempty"`
	CIDRs           []string        `json:"cidrs,omitempty"`
	Rate            string          `json:"rate,omitempty"`
	Quota           int64           `json:"quota,omitempty"`
	Remaining       *int64          `json:"remaining,omitempty"`
	Refill          string          `json:"refill,omitempty"`
	RefillAmount    int64           `json:"refill_amount,omitempty"`
	CreatedBy       string          `json:"created_by"`
	CreatedAt       time.Time       `json:"created_at"`
	ExpiresAt       *time.Time      `json:"expires_at,omitempty"`
	RevokedAt       *time.Time      `json:"revoked_at,omitempty"`
	DisabledAt      *time.Time      `json:"disabled_at,omitempty"` // suspended since
	GraceUntil      *time.Time      `json:"grace_until,omitempty"`
	RotatedFrom     string          `json:"rotated_from,omitempty"`
	RotatedTo       string          `json:"rotated_to,omitempty"`
	LastUsedAt      *time.Time      `json:"last_used_at,omitempty"`
	LastUsedAddr    string          `json:"last_used_addr,omitempty"`
}

// IssuedKey is a new key with its description. Key is shown once.
type IssuedKey struct {
	Key string `json:"key"`
	KeyInfo
	// Previous is the rotated key (rotate only), valid until its GraceUntil.
	Previous *KeyInfo `json:"previous,omitempty"`
	// Warnings are set by CreateKey: scopes that match no integration (the
	// key was created anyway).
	Warnings []string `json:"warnings,omitempty"`
}

// CreateKeyRequest describes a key to create.
type CreateKeyRequest struct {
	Name         string          `json:"name"`
	Owner        string          `json:"owner,omitempty"`
	Scopes       []string        `json:"scopes"`
	Meta         json.RawMessage `json:"meta,omitempty"`   // a JSON object, at most 4 KiB
	TTL          string          `json:"ttl,omitempty"`    // "90d", "12h"; empty: never expires
	Rate         string          `json:"rate,omitempty"`   // "100/min"; per node
	Quota        int64           `json:"quota,omitempty"`  // uses in all; 0: unlimited
	Refill       string          `json:"refill,omitempty"` // "daily" or "monthly" (UTC)
	RefillAmount int64           `json:"refill_amount,omitempty"`
	CIDRs        []string        `json:"cidrs,omitempty"`
}

// UpdateKeyRequest names the settings of a key to change; a nil field
// stays as it is.
type UpdateKeyRequest struct {
	Name         *string         `json:"name,omitempty"`
	Owner        *string         `json:"owner,omitempty"`
	Scopes       []string        `json:"scopes,omitempty"`
	Meta         json.RawMessage `json:"meta,omitempty"`  // {} removes it
	CIDRs        *[]string       `json:"cidrs,omitempty"` // empty: any network
	TTL          *string         `json:"ttl,omitempty"`   // from now ("90d"), or "never"
	Rate         *string         `json:"rate,omitempty"`  // "": none
	Quota        *int64          `json:"quota,omitempty"` // 0: unlimited; what is left moves with it
	Remaining    *int64          `json:"remaining,omitempty"`
	Refill       *string         `json:"refill,omitempty"` // daily, monthly, "": none
	RefillAmount *int64          `json:"refill_amount,omitempty"`
	Disabled     *bool           `json:"disabled,omitempty"` // true suspends the key, false lets it work again
}

// VerifyKeyRequest asks whether a key is valid.
type VerifyKeyRequest struct {
	Key        string `json:"key"`
	Resource   string `json:"resource,omitempty"`    // must be covered by the key's scopes
	SourceAddr string `json:"source_addr,omitempty"` // checked against the key's CIDRs
	Consume    *bool  `json:"consume,omitempty"`     // false: do not use a request of its rate and quota
}

// KeyRateLimit is a key's rate-limit state.
type KeyRateLimit struct {
	Limit      int   `json:"limit"`
	Remaining  int   `json:"remaining"`
	Reset      int64 `json:"reset"` // seconds
	RetryAfter int64 `json:"retry_after,omitempty"`
}

// KeyVerification is the answer of VerifyKey. Code is VALID, NOT_FOUND,
// EXPIRED, REVOKED, DISABLED, RATE_LIMITED, USAGE_EXCEEDED or FORBIDDEN.
type KeyVerification struct {
	Valid           bool            `json:"valid"`
	Code            string          `json:"code"`
	Message         string          `json:"message,omitempty"`
	KeyID           string          `json:"key_id,omitempty"`
	Name            string          `json:"name,omitempty"`
	Owner           string          `json:"owner,omitempty"`
	Project         string          `json:"project,omitempty"`
	Env             string          `json:"env,omitempty"`
	EnvironmentKind string          `json:"environment_kind,omitempty"`
	Scopes          []string        `json:"scopes,omitempty"`
	Meta            json.RawMessage `json:"meta,omitempty"`
	Remaining       *int64          `json:"remaining,omitempty"`
	RateLimit       *KeyRateLimit   `json:"ratelimit,omitempty"`
	ExpiresAt       *time.Time      `json:"expires_at,omitempty"`
}

func keysBase(project, env string) string { return envBase(project, env) + "/keys" }

// CreateKey creates a client API key in project/env.
func (c *Client) CreateKey(ctx context.Context, project, env string, req CreateKeyRequest) (*IssuedKey, error) {
	var k IssuedKey
	_, err := c.do(ctx, http.MethodPost, keysBase(project, env), nil, req, &k)
	return &k, err
}

// ListKeys lists up to limit keys (0: the server's default) after cursor,
// and returns the cursor of the next page ("" at the end).
func (c *Client) ListKeys(ctx context.Context, project, env string, limit int, cursor string) ([]KeyInfo, string, error) {
	var r struct {
		Keys []KeyInfo `json:"keys"`
		Next string    `json:"next"`
	}
	_, err := c.do(ctx, http.MethodGet, keysBase(project, env), pageQuery(limit, cursor), nil, &r)
	return r.Keys, r.Next, err
}

// GetKey describes a key.
func (c *Client) GetKey(ctx context.Context, project, env, id string) (*KeyInfo, error) {
	var k KeyInfo
	_, err := c.do(ctx, http.MethodGet, keysBase(project, env)+"/"+url.PathEscape(id), nil, nil, &k)
	return &k, err
}

// UpdateKey changes some settings of a key in place (the key itself stays
// the same) and returns it as it now is.
func (c *Client) UpdateKey(ctx context.Context, project, env, id string, req UpdateKeyRequest) (*KeyInfo, error) {
	var k KeyInfo
	_, err := c.do(ctx, http.MethodPatch, keysBase(project, env)+"/"+url.PathEscape(id), nil, req, &k)
	return &k, err
}

// RevokeKey revokes a key now.
func (c *Client) RevokeKey(ctx context.Context, project, env, id string) (*KeyInfo, error) {
	var k KeyInfo
	_, err := c.do(ctx, http.MethodPost, keysBase(project, env)+"/"+url.PathEscape(id)+"/revoke", nil, map[string]any{}, &k)
	return &k, err
}

// RotateKey issues a successor of a key; the old key stays valid for grace
// ("": the server's default, 24h; "0s": revoked at once).
func (c *Client) RotateKey(ctx context.Context, project, env, id, grace string) (*IssuedKey, error) {
	body := map[string]any{}
	if grace != "" {
		body["grace"] = grace
	}
	var k IssuedKey
	_, err := c.do(ctx, http.MethodPost, keysBase(project, env)+"/"+url.PathEscape(id)+"/rotate", nil, body, &k)
	return &k, err
}

// VerifyKey verifies a client API key, as a customer's own API does before
// serving a request made with it. The key travels in the body, never in a URL.
func (c *Client) VerifyKey(ctx context.Context, req VerifyKeyRequest) (*KeyVerification, error) {
	var v KeyVerification
	_, err := c.do(ctx, http.MethodPost, "/v1/keys/verify", nil, req, &v)
	return &v, err
}
