package httpapi

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"github.com/keyward/keyward/internal/apikey"
	"github.com/keyward/keyward/internal/ratelimit"
	"github.com/keyward/keyward/internal/secret"
	"github.com/keyward/keyward/internal/storage"
)

// Keys serves client API keys: management under an environment, and
// POST /v1/keys/verify for customers' own APIs.
type Keys struct {
	Svc   *apikey.Service
	Authz Authorizer
	Audit Auditor // nil: changes are audited by the edge after the fact
	Now   func() time.Time
	// ScopeWarnings, when set, names each of a new key's scopes that
	// matches no integration (a typo most likely); the key is created
	// anyway and the answer carries the warnings.
	ScopeWarnings func(ctx context.Context, scopes []string) []string
}

// MapKeyErrors registers the apikey package's errors.
func MapKeyErrors(m *ErrorMapper) {
	m.Map(apikey.ErrInvalid, http.StatusBadRequest, CodeInvalidArgument, "")
	m.Map(apikey.ErrMalformed, http.StatusBadRequest, CodeInvalidArgument, "")
	m.Map(apikey.ErrNotFound, http.StatusNotFound, CodeNotFound, "")
	m.Map(apikey.ErrEnvNotFound, http.StatusNotFound, CodeNotFound, "")
	m.Map(apikey.ErrAlreadyRotated, http.StatusConflict, CodeConflict, "")
	m.Map(apikey.ErrRevoked, http.StatusConflict, CodeConflict, "")
	m.Map(apikey.ErrExpired, http.StatusConflict, CodeConflict, "")
	m.Map(apikey.ErrDisabled, http.StatusConflict, CodeConflict, "")
	m.Map(apikey.ErrSealed, http.StatusServiceUnavailable, CodeSealed, "keyward is sealed")
	m.Map(apikey.ErrRateLimited, http.StatusTooManyRequests, CodeRateLimited, "")
	m.Map(apikey.ErrUsageExceeded, http.StatusTooManyRequests, CodeRateLimited, "")
}

// KeyInfo describes a key: never the key itself.
type KeyInfo struct {
	ID              string          `json:"id"`
	Project         string          `json:"project"`
	Env             string          `json:"env"`
	EnvironmentKind string          `json:"environment_kind"` // live or test
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
	DisabledAt      *time.Time      `json:"disabled_at,omitempty"`
	GraceUntil      *time.Time      `json:"grace_until,omitempty"`
	RotatedFrom     string          `json:"rotated_from,omitempty"`
	RotatedTo       string          `json:"rotated_to,omitempty"`
	LastUsedAt      *time.Time      `json:"last_used_at,omitempty"`
	LastUsedAddr    string          `json:"last_used_addr,omitempty"`
}

// NewKeyInfo describes k as of now.
func NewKeyInfo(k *apikey.Key, now time.Time) *KeyInfo {
	ki := &KeyInfo{
		ID: k.ID, Project: k.Project, Env: k.Env, EnvironmentKind: k.Kind, Name: k.Name, Owner: k.Owner,
		Status: k.Status(now), Scopes: k.Scopes, Meta: k.Meta, Rate: k.Rate.String(), Quota: k.Quota,
		Refill: k.Refill.Period, RefillAmount: k.Refill.Amount, CreatedBy: k.CreatedBy, CreatedAt: k.CreatedAt,
		ExpiresAt: timePtr(k.ExpiresAt), DisabledAt: timePtr(k.DisabledAt), RotatedFrom: k.RotatedFrom, RotatedTo: k.RotatedTo,
		LastUsedAt: timePtr(k.LastUsedAt), LastUsedAddr: k.LastUsedAddr,
	}
	if k.Quota > 0 {
		rem := k.Remaining
		ki.Remaining = &rem
	}
	for _, c := range k.CIDRs {
		ki.CIDRs = append(ki.CIDRs, c.String())
	}
	if k.Revoked(now) {
		ki.RevokedAt = timePtr(k.RevokedAt)
	} else if !k.RevokedAt.IsZero() {
		ki.GraceUntil = timePtr(k.RevokedAt)
	}
	return ki
}

// IssuedKey is the response of create and rotate. The key is shown once.
type IssuedKey struct {
	Key string `json:"key"`
	*KeyInfo
	// Previous is the rotated key, valid until its grace_until.
	Previous *KeyInfo `json:"previous,omitempty"`
	// Warnings, on creation: scopes that match no integration.
	Warnings []string `json:"warnings,omitempty"`
}

// CreateKeyRequest is the body of POST .../keys.
type CreateKeyRequest struct {
	Name         string          `json:"name"`
	Owner        string          `json:"owner,omitempty"`
	Scopes       []string        `json:"scopes"`
	Meta         json.RawMessage `json:"meta,omitempty"`
	TTL          string          `json:"ttl,omitempty"`  // "90d", "12h"
	Rate         string          `json:"rate,omitempty"` // "100/min"
	Quota        int64           `json:"quota,omitempty"`
	Refill       string          `json:"refill,omitempty"` // daily, monthly
	RefillAmount int64           `json:"refill_amount,omitempty"`
	CIDRs        []string        `json:"cidrs,omitempty"`
}

// UpdateKeyRequest is the body of PATCH .../keys/{id}: the settings to
// change; an absent field stays as it is.
type UpdateKeyRequest struct {
	Name   *string         `json:"name,omitempty"`
	Owner  *string         `json:"owner,omitempty"`
	Scopes []string        `json:"scopes,omitempty"`
	Meta   json.RawMessage `json:"meta,omitempty"`  // {} removes it
	CIDRs  *[]string       `json:"cidrs,omitempty"` // [] lets every network in
	// TTL sets the expiry from now ("90d"), or "never".
	TTL          *string `json:"ttl,omitempty"`
	Rate         *string `json:"rate,omitempty"`  // "" removes it
	Quota        *int64  `json:"quota,omitempty"` // 0: unlimited
	Remaining    *int64  `json:"remaining,omitempty"`
	Refill       *string `json:"refill,omitempty"` // daily, monthly, "" (none)
	RefillAmount *int64  `json:"refill_amount,omitempty"`
	// Disabled suspends the key (true) until it is set false again.
	Disabled *bool `json:"disabled,omitempty"`
}

// updateRequest turns the body into the domain request, and names the
// fields it changes (for the audit entry).
func updateRequest(in *UpdateKeyRequest) (apikey.UpdateRequest, []string, error) {
	req := apikey.UpdateRequest{Name: in.Name, Owner: in.Owner, Scopes: in.Scopes, Meta: in.Meta, Quota: in.Quota, Remaining: in.Remaining,
		Disabled: in.Disabled}
	var changed []string
	for _, f := range []struct {
		name string
		set  bool
	}{{"name", in.Name != nil}, {"owner", in.Owner != nil}, {"scopes", in.Scopes != nil}, {"meta", in.Meta != nil},
		{"cidrs", in.CIDRs != nil}, {"ttl", in.TTL != nil}, {"rate", in.Rate != nil}, {"quota", in.Quota != nil},
		{"remaining", in.Remaining != nil}, {"refill", in.Refill != nil || in.RefillAmount != nil}, {"disabled", in.Disabled != nil}} {
		if f.set {
			changed = append(changed, f.name)
		}
	}
	if len(changed) == 0 {
		return req, nil, Invalid("nothing to change: give at least one of name, owner, scopes, meta, cidrs, ttl, rate, quota, remaining, refill, disabled")
	}
	if in.CIDRs != nil {
		cidrs, err := ParseCIDRs("cidrs", *in.CIDRs)
		if err != nil {
			return req, nil, err
		}
		req.CIDRs = append([]netip.Prefix{}, cidrs...) // empty, not nil: clears
	}
	if in.TTL != nil {
		var ttl time.Duration // "never"
		if *in.TTL != "never" {
			var err error
			if ttl, err = apikey.ParseDuration("ttl", *in.TTL); err != nil {
				return req, nil, err
			}
			if ttl <= 0 {
				return req, nil, Invalid("ttl: want a duration such as 90d, or \"never\"")
			}
		}
		req.TTL = &ttl
	}
	if in.Rate != nil {
		rate, err := ratelimit.ParseLimit(*in.Rate)
		if err != nil {
			return req, nil, Invalid("%v", err)
		}
		req.Rate = &rate
	}
	switch {
	case in.Refill != nil:
		req.Refill = &apikey.Refill{Period: *in.Refill}
		if in.RefillAmount != nil {
			req.Refill.Amount = *in.RefillAmount
		}
	case in.RefillAmount != nil:
		return req, nil, Invalid("refill_amount needs refill (daily or monthly)")
	}
	return req, changed, nil
}

// VerifyKeyRequest is the body of POST /v1/keys/verify.
type VerifyKeyRequest struct {
	Key string `json:"key"`
	// Resource, when set, must be covered by the key's scopes.
	Resource string `json:"resource,omitempty"`
	// SourceAddr is the address the key was presented from, checked against
	// the key's CIDRs (a key with CIDRs fails without it).
	SourceAddr string `json:"source_addr,omitempty"`
	// Consume: false reports the state without using the rate or quota.
	Consume *bool `json:"consume,omitempty"`
}

// Verification codes.
const (
	VerifyValid         = "VALID"
	VerifyNotFound      = "NOT_FOUND"
	VerifyExpired       = "EXPIRED"
	VerifyRevoked       = "REVOKED"
	VerifyDisabled      = "DISABLED"
	VerifyRateLimited   = "RATE_LIMITED"
	VerifyUsageExceeded = "USAGE_EXCEEDED"
	VerifyForbidden     = "FORBIDDEN"
)

// VerifyRateLimit is the rate-limit state in a verification.
type VerifyRateLimit struct {
	Limit      int   `json:"limit"`
	Remaining  int   `json:"remaining"`
	Reset      int64 `json:"reset"`                 // seconds until fully replenished
	RetryAfter int64 `json:"retry_after,omitempty"` // seconds, when limited
}

// VerifyKeyResponse answers POST /v1/keys/verify. A key that does not
// exist, is malformed, or that the caller may not read is NOT_FOUND and
// carries nothing else.
type VerifyKeyResponse struct {
	Valid           bool             `json:"valid"`
	Code            string           `json:"code"`
	Message         string           `json:"message,omitempty"`
	KeyID           string           `json:"key_id,omitempty"`
	Name            string           `json:"name,omitempty"`
	Owner           string           `json:"owner,omitempty"`
	Project         string           `json:"project,omitempty"`
	Env             string           `json:"env,omitempty"`
	EnvironmentKind string           `json:"environment_kind,omitempty"`
	Scopes          []string         `json:"scopes,omitempty"`
	Meta            json.RawMessage  `json:"meta,omitempty"`
	Remaining       *int64           `json:"remaining,omitempty"`
	RateLimit       *VerifyRateLimit `json:"ratelimit,omitempty"`
	ExpiresAt       *time.Time       `json:"expires_at,omitempty"`
}

func ceilSeconds(d time.Duration) int64 {
	if d <= 0 {
		return 0
	}
	return int64((d + time.Second - 1) / time.Second)
}

func (h *Keys) now() time.Time {
	if h.Now != nil {
		return h.Now()
	}
	return time.Now()
}

func keyValues(r *http.Request) (project, env, id string, err error) {
	project, env, id = r.PathValue("project"), r.PathValue("env"), r.PathValue("id")
	if err := secret.ValidateName("project", project); err != nil {
		return "", "", "", err
	}
	if err := secret.ValidateName("environment", env); err != nil {
		return "", "", "", err
	}
	if id != "" && !apikey.ValidID(id) {
		return "", "", "", Invalid("key id %q: want key_ followed by 20 letters and digits", printableID(id))
	}
	return project, env, id, nil
}

func printableID(s string) string {
	if len(s) > 40 {
		s = s[:40] + "…"
	}
	return strconv.Quote(s)[1 : len(strconv.Quote(s))-1]
}

func keysRes(r *http.Request) (string, error) {
	p, e, _, err := keyValues(r)
	if err != nil {
		return "", err
	}
	SetAuditEnvironment(r.Context(), p+"/"+e)
	return "projects/" + p + "/envs/" + e + "/keys", nil
}

func keyRes(r *http.Request) (string, error) {
	p, e, id, err := keyValues(r)
	if err != nil {
		return "", err
	}
	SetAuditEnvironment(r.Context(), p+"/"+e)
	AddAuditDetail(r.Context(), "key_id", id)
	return apikey.Resource(p, e, id), nil
}

func (h *Keys) auditFn(status int) apikey.AuditFunc {
	if h.Audit == nil {
		return nil
	}
	return func(ctx context.Context, tx storage.Tx, id string) error {
		AddAuditDetail(ctx, "key_id", id)
		return h.Audit.AuditTx(ctx, tx, AuditEventFor(ctx, status))
	}
}

func (h *Keys) done(r *http.Request) {
	if h.Audit != nil {
		MarkAudited(r.Context())
	}
}

// createRequest turns the body into the domain request.
func createRequest(in *CreateKeyRequest) (apikey.CreateRequest, error) {
	req := apikey.CreateRequest{Name: in.Name, Owner: in.Owner, Scopes: in.Scopes, Meta: in.Meta, Quota: in.Quota,
		Refill: apikey.Refill{Period: in.Refill, Amount: in.RefillAmount}}
	var err error
	if req.TTL, err = apikey.ParseDuration("ttl", in.TTL); err != nil {
		return req, err
	}
	if req.Rate, err = ratelimit.ParseLimit(in.Rate); err != nil {
		return req, Invalid("%v", err)
	}
	if req.CIDRs, err = ParseCIDRs("cidrs", in.CIDRs); err != nil {
		return req, err
	}
	return req, nil
}

// Routes returns the key routes.
func (h *Keys) Routes() []Route {
	return []Route{
		{
			Pattern: "POST /v1/projects/{project}/envs/{env}/keys", Action: "write", Resource: keysRes,
			Summary: "Create a client API key (kwk_…), shown once: {\"name\", \"scopes\", \"ttl\", \"rate\", \"quota\", \"refill\", \"cidrs\", \"meta\", \"owner\"}.",
			Handle: func(r *http.Request) (int, any, error) {
				p, e, _, _ := keyValues(r)
				var in CreateKeyRequest
				if err := decode(r, &in); err != nil {
					return 0, nil, err
				}
				req, err := createRequest(&in)
				if err != nil {
					return 0, nil, err
				}
				req.Project, req.Env, req.CreatedBy = p, e, caller(r)
				plain, k, err := h.Svc.Create(r.Context(), req, h.auditFn(http.StatusCreated))
				if err != nil {
					return 0, nil, err
				}
				h.done(r)
				out := &IssuedKey{Key: plain, KeyInfo: NewKeyInfo(k, h.now())}
				if h.ScopeWarnings != nil {
					out.Warnings = h.ScopeWarnings(r.Context(), req.Scopes)
				}
				return http.StatusCreated, out, nil
			},
		},
		{
			Pattern: "GET /v1/projects/{project}/envs/{env}/keys", Action: "list", Resource: keysRes,
			Summary: "List the environment's API keys (?limit=, ?cursor=); only keys the caller may list or read.",
			Handle: func(r *http.Request) (int, any, error) {
				p, e, _, _ := keyValues(r)
				q := r.URL.Query()
				limit := 100
				if s := q.Get("limit"); s != "" {
					n, err := strconv.Atoi(s)
					if err != nil || n < 1 || n > 1000 {
						return 0, nil, Invalid("limit: want 1 to 1000")
					}
					limit = n
				}
				cursor := q.Get("cursor")
				if cursor != "" && !apikey.ValidID(cursor) {
					return 0, nil, Invalid("cursor: want a key id")
				}
				keys, err := h.Svc.List(r.Context(), p, e, limit, cursor)
				if err != nil {
					return 0, nil, err
				}
				c, now := CallerFrom(r.Context()), h.now()
				out := []*KeyInfo{}
				for _, k := range keys {
					if ok, _ := h.Authz.Decide(c, "list", k.Resource()); ok {
						out = append(out, NewKeyInfo(k, now))
					} else if ok, _ := h.Authz.Decide(c, "read", k.Resource()); ok {
						out = append(out, NewKeyInfo(k, now))
					}
				}
				next := ""
				if len(keys) == limit {
					next = keys[len(keys)-1].ID
				}
				return http.StatusOK, map[string]any{"keys": out, "next": next}, nil
			},
		},
		{
			Pattern: "GET /v1/projects/{project}/envs/{env}/keys/{id}", Action: "read", Resource: keyRes,
			Summary: "Describe an API key (never the key itself).",
			Handle: func(r *http.Request) (int, any, error) {
				p, e, id, _ := keyValues(r)
				k, err := h.Svc.Get(r.Context(), p, e, id)
				if err != nil {
					return 0, nil, err
				}
				return http.StatusOK, NewKeyInfo(k, h.now()), nil
			},
		},
		{
			Pattern: "PATCH /v1/projects/{project}/envs/{env}/keys/{id}", Action: "write", Resource: keyRes,
			Summary: "Change some settings of an API key in place, the key staying the same: {\"name\", \"owner\", \"scopes\", \"meta\", \"cidrs\", \"ttl\" (from now, or \"never\"), \"rate\" (\"\": none), \"quota\" (what is left moves with it), \"remaining\", \"refill\", \"refill_amount\", \"disabled\" (true suspends the key, false lets it work again)}; every node uses them within a second.",
			Handle: func(r *http.Request) (int, any, error) {
				p, e, id, _ := keyValues(r)
				var in UpdateKeyRequest
				if err := decode(r, &in); err != nil {
					return 0, nil, err
				}
				req, changed, err := updateRequest(&in)
				if err != nil {
					return 0, nil, err
				}
				AddAuditDetail(r.Context(), "changed", strings.Join(changed, ","))
				k, err := h.Svc.Update(r.Context(), p, e, id, req, h.auditFn(http.StatusOK))
				if err != nil {
					return 0, nil, err
				}
				h.done(r)
				return http.StatusOK, NewKeyInfo(k, h.now()), nil
			},
		},
		{
			Pattern: "POST /v1/projects/{project}/envs/{env}/keys/{id}/revoke", Action: "delete", Resource: keyRes,
			Summary: "Revoke an API key now, on every node within a second (ends a rotation's grace period early).",
			Handle: func(r *http.Request) (int, any, error) {
				p, e, id, _ := keyValues(r)
				if err := decodeOptional(r, &struct{}{}); err != nil {
					return 0, nil, err
				}
				k, err := h.Svc.Revoke(r.Context(), p, e, id, h.auditFn(http.StatusOK))
				if err != nil {
					return 0, nil, err
				}
				h.done(r)
				return http.StatusOK, NewKeyInfo(k, h.now()), nil
			},
		},
		{
			Pattern: "POST /v1/projects/{project}/envs/{env}/keys/{id}/rotate", Action: "rotate", Resource: keyRes,
			Summary: "Issue a successor with the same settings, shown once; the old key stays valid for {\"grace\": \"24h\"} (default 24h, \"0s\": revoke now).",
			Handle: func(r *http.Request) (int, any, error) {
				p, e, id, _ := keyValues(r)
				var in struct {
					Grace *string `json:"grace"`
				}
				if err := decodeOptional(r, &in); err != nil {
					return 0, nil, err
				}
				grace := apikey.DefaultGrace
				if in.Grace != nil {
					g, err := apikey.ParseDuration("grace", *in.Grace)
					if err != nil {
						return 0, nil, err
					}
					grace = g
				}
				AddAuditDetail(r.Context(), "grace", grace.String())
				plain, next, old, err := h.Svc.Rotate(r.Context(), p, e, id, grace, caller(r), h.auditFn(http.StatusOK))
				if err != nil {
					return 0, nil, err
				}
				h.done(r)
				now := h.now()
				return http.StatusOK, &IssuedKey{Key: plain, KeyInfo: NewKeyInfo(next, now), Previous: NewKeyInfo(old, now)}, nil
			},
		},
		{
			Pattern: "POST /v1/keys/verify", AnyToken: true, Action: "read", Resource: static("keys/verify"), DataPlane: true,
			AuditAsync: true,
			Summary:    "Verify a client API key for your own API: {\"key\", \"resource\", \"source_addr\", \"consume\"}; needs read on the key. Uses one request of its rate and quota unless consume is false.",
			Handle:     h.verify,
		},
	}
}

// verify answers POST /v1/keys/verify. Everything short of a readable key
// is NOT_FOUND, so the endpoint tells a caller nothing about keys it may
// not read, and consumes nothing of them.
func (h *Keys) verify(r *http.Request) (int, any, error) {
	var in VerifyKeyRequest
	if err := decode(r, &in); err != nil {
		return 0, nil, err
	}
	if in.Key == "" {
		return 0, nil, Invalid("key is required")
	}
	if len(in.Resource) > 1024 {
		return 0, nil, Invalid("resource: at most 1024 bytes")
	}
	var src netip.Addr
	if in.SourceAddr != "" {
		a, err := netip.ParseAddr(in.SourceAddr)
		if err != nil {
			return 0, nil, Invalid("source_addr: %q is not an IP address", printableID(in.SourceAddr))
		}
		src = a
	}
	ctx := r.Context()
	k, err := h.Svc.Lookup(ctx, in.Key)
	switch {
	case errors.Is(err, apikey.ErrMalformed):
		AddAuditDetail(ctx, "code", VerifyNotFound)
		return http.StatusOK, &VerifyKeyResponse{Code: VerifyNotFound, Message: "not a keyward API key: wrong length, prefix or checksum"}, nil
	case errors.Is(err, apikey.ErrNotFound):
		AddAuditDetail(ctx, "code", VerifyNotFound)
		return http.StatusOK, &VerifyKeyResponse{Code: VerifyNotFound}, nil
	case err != nil:
		return 0, nil, err
	}
	if ok, _ := h.Authz.Decide(CallerFrom(ctx), "read", k.Resource()); !ok {
		AddAuditDetail(ctx, "code", VerifyNotFound)
		return http.StatusOK, &VerifyKeyResponse{Code: VerifyNotFound}, nil
	}
	AddAuditDetail(ctx, "key_id", k.ID)
	res, err := h.Svc.Check(ctx, k, src, apikey.CheckOptions{Peek: in.Consume != nil && !*in.Consume, Resource: in.Resource})
	out := &VerifyKeyResponse{
		KeyID: k.ID, Name: k.Name, Owner: k.Owner, Project: k.Project, Env: k.Env, EnvironmentKind: k.Kind,
		Scopes: k.Scopes, Meta: k.Meta, ExpiresAt: timePtr(k.ExpiresAt),
	}
	switch {
	case err == nil:
		out.Valid, out.Code = true, VerifyValid
	case errors.Is(err, apikey.ErrRevoked):
		out.Code = VerifyRevoked
	case errors.Is(err, apikey.ErrDisabled):
		out.Code = VerifyDisabled
	case errors.Is(err, apikey.ErrExpired):
		out.Code = VerifyExpired
	case errors.Is(err, apikey.ErrRateLimited):
		out.Code = VerifyRateLimited
	case errors.Is(err, apikey.ErrUsageExceeded):
		out.Code, res.Remaining = VerifyUsageExceeded, 0
	case errors.Is(err, apikey.ErrSourceDenied), errors.Is(err, apikey.ErrScopeDenied):
		out.Code, out.Message = VerifyForbidden, err.Error()
	default:
		return 0, nil, err
	}
	if res.Remaining >= 0 && k.Quota > 0 {
		rem := res.Remaining
		out.Remaining = &rem
	}
	if d := res.Rate; d.Limit > 0 {
		out.RateLimit = &VerifyRateLimit{Limit: d.Limit, Remaining: d.Remaining, Reset: ceilSeconds(d.Reset), RetryAfter: ceilSeconds(d.RetryAfter)}
	}
	AddAuditDetail(ctx, "code", out.Code)
	return http.StatusOK, out, nil
}
