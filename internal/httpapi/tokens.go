package httpapi

import (
	"context"
	"fmt"
	"net/http"
	"net/netip"
	"time"

	"github.com/keyward/keyward/internal/ratelimit"
	"github.com/keyward/keyward/internal/storage"
	"github.com/keyward/keyward/internal/token"
)

// Tokens serves the token endpoints under /v1/auth/token.
type Tokens struct {
	Svc   *token.Service
	Audit Auditor
	// PolicyKnown, when set, tells whether a policy of that name exists
	// (on this node); a token created with a policy that does not gets a
	// warning in the answer. nil: no warnings.
	PolicyKnown func(name string) bool
}

// MapTokenErrors registers the token package's errors.
func MapTokenErrors(m *ErrorMapper) {
	m.Map(token.ErrBadRequest, http.StatusBadRequest, CodeInvalidArgument, "")
	m.Map(token.ErrExceedsParent, http.StatusForbidden, CodePermissionDenied, "")
	m.Map(token.ErrNotFound, http.StatusNotFound, CodeNotFound, "")
	m.Map(token.ErrSealed, http.StatusServiceUnavailable, CodeSealed, "keyward is sealed")
	m.Map(token.ErrExpired, http.StatusBadRequest, CodeInvalidArgument, "")
	m.Map(token.ErrRevoked, http.StatusBadRequest, CodeInvalidArgument, "")
}

// TokenInfo is what lookups return: never the token itself.
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
	// Cnf names the client key a DPoP-bound token is bound to.
	Cnf *Confirmation `json:"cnf,omitempty"`
	// Rate is the token's own rate limit ("100/min"), counted on each node and shared by the nodes of a cluster.
	Rate string `json:"rate,omitempty"`
}

// Confirmation is a token's cnf (RFC 7800): the thumbprint of the key a
// DPoP-bound token is bound to (RFC 9449 §6.1).
type Confirmation struct {
	JKT string `json:"jkt"`
}

func timePtr(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	return &t
}

// NewTokenInfo describes t.
func NewTokenInfo(t *token.Token) *TokenInfo {
	ti := &TokenInfo{
		Accessor: t.Accessor, Parent: t.Parent, Principal: t.Principal, AuthMethod: t.AuthMethod,
		Policies: t.Policies, BoundEnvs: t.BoundEnvs, Meta: t.Meta, MaxUses: t.MaxUses, Uses: t.Uses,
		Renewable: t.Renewable(), CreatedAt: t.CreatedAt, ExpiresAt: timePtr(t.ExpiresAt),
		MaxExpiresAt: timePtr(t.MaxExpiresAt), RevokedAt: timePtr(t.RevokedAt), Rate: t.Rate.String(),
	}
	if t.TTL > 0 {
		ti.TTL = t.TTL.String()
	}
	if t.JKT != "" {
		ti.Cnf = &Confirmation{JKT: t.JKT}
	}
	for _, c := range t.BoundCIDRs {
		ti.BoundCIDRs = append(ti.BoundCIDRs, c.String())
	}
	return ti
}

// IssuedToken is the response of every endpoint that creates a token. The
// token is shown once.
type IssuedToken struct {
	Token     string     `json:"token"`
	Accessor  string     `json:"accessor"`
	Policies  []string   `json:"policies"`
	ExpiresAt *time.Time `json:"expires_at,omitempty"`
	Principal string     `json:"principal"`
	Rate      string     `json:"rate,omitempty"`
	// Warnings name what the caller may not have meant (a policy that
	// does not exist); the token was issued anyway.
	Warnings []string `json:"warnings,omitempty"`
}

// NewIssuedToken is the response for a freshly issued token.
func NewIssuedToken(plain string, t *token.Token) *IssuedToken {
	return &IssuedToken{Token: plain, Accessor: t.Accessor, Policies: t.Policies, ExpiresAt: timePtr(t.ExpiresAt), Principal: t.Principal,
		Rate: t.Rate.String()}
}

// CreateTokenRequest is the body of POST /v1/auth/token/create.
type CreateTokenRequest struct {
	Policies   []string `json:"policies,omitempty"`
	TTL        string   `json:"ttl,omitempty"`
	MaxTTL     string   `json:"max_ttl,omitempty"`
	BoundEnvs  []string `json:"bound_envs,omitempty"`
	BoundCIDRs []string `json:"bound_cidrs,omitempty"`
	MaxUses    int      `json:"max_uses,omitempty"`
	// Meta labels the new token (token.MaxMetaEntries keys of
	// [A-Za-z0-9_.-], values of at most token.MaxMetaValueLen bytes); lookups
	// show it. It is not inherited from the parent.
	Meta map[string]string `json:"meta,omitempty"`
	// Rate limits the new token's requests ("100/min"; the units of
	// ratelimit.ParseLimit). Empty: the parent's rate, if any.
	Rate string `json:"rate,omitempty"`
}

// ParseDuration reads a duration field ("15m", "1h30m", "3600" seconds).
func ParseDuration(field, s string) (time.Duration, error) {
	if s == "" {
		return 0, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		var secs int64
		if _, serr := fmt.Sscanf(s, "%d", &secs); serr == nil && fmt.Sprint(secs) == s {
			d, err = time.Duration(secs)*time.Second, nil
		}
	}
	if err != nil || d < 0 {
		return 0, Invalid("%s: %q is not a duration (e.g. 15m, 1h)", field, s)
	}
	return d, nil
}

// ParseCIDRs reads a list of CIDRs or addresses.
func ParseCIDRs(field string, in []string) ([]netip.Prefix, error) {
	var out []netip.Prefix
	for _, c := range in {
		p, err := netip.ParsePrefix(c)
		if err != nil {
			a, aerr := netip.ParseAddr(c)
			if aerr != nil {
				return nil, Invalid("%s: %q is not a CIDR or an address", field, c)
			}
			p = netip.PrefixFrom(a, a.BitLen())
		}
		out = append(out, p.Masked())
	}
	return out, nil
}

func (t *Tokens) auditFn(status int) token.AuditFunc {
	if t.Audit == nil {
		return nil
	}
	return func(ctx context.Context, tx storage.Tx) error {
		return t.Audit.AuditTx(ctx, tx, AuditEventFor(ctx, status))
	}
}

func (t *Tokens) done(r *http.Request) {
	if t.Audit != nil {
		MarkAudited(r.Context())
	}
}

func selfToken(r *http.Request) (*token.Token, error) {
	c := CallerFrom(r.Context())
	if c == nil || c.Token == nil {
		return nil, Errorf(http.StatusBadRequest, CodeInvalidArgument, "this endpoint needs an access token")
	}
	return c.Token, nil
}

func accessorRes(r *http.Request) (string, error) {
	a := r.PathValue("accessor")
	if len(a) == 0 || len(a) > 64 {
		return "", Invalid("accessor: want 1 to 64 characters")
	}
	return "auth/tokens/" + a, nil
}

// Routes returns the token routes.
func (t *Tokens) Routes() []Route {
	return []Route{
		{
			Pattern: "POST /v1/auth/token/create", AnyToken: true, Action: "issue", Resource: static("auth/tokens"),
			Summary: "Create a child of the calling token: no policy, environment, address, lifetime or rate (\"rate\": \"100/min\") beyond its parent's; \"meta\": up to 16 labels of its own.",
			Handle: func(r *http.Request) (int, any, error) {
				parent, err := selfToken(r)
				if err != nil {
					return 0, nil, err
				}
				var in CreateTokenRequest
				if err := decodeOptional(r, &in); err != nil {
					return 0, nil, err
				}
				ttl, err := ParseDuration("ttl", in.TTL)
				if err != nil {
					return 0, nil, err
				}
				maxTTL, err := ParseDuration("max_ttl", in.MaxTTL)
				if err != nil {
					return 0, nil, err
				}
				cidrs, err := ParseCIDRs("bound_cidrs", in.BoundCIDRs)
				if err != nil {
					return 0, nil, err
				}
				rate, err := ratelimit.ParseLimit(in.Rate)
				if err != nil {
					return 0, nil, Invalid("rate: %v", err)
				}
				plain, tok, err := t.Svc.Issue(r.Context(), token.Request{
					Parent: parent, Principal: parent.Principal, AuthMethod: "token", Policies: in.Policies,
					TTL: ttl, MaxTTL: maxTTL, BoundEnvs: in.BoundEnvs, BoundCIDRs: cidrs, MaxUses: in.MaxUses, Meta: in.Meta,
					Rate: rate,
				}, t.auditFn(http.StatusOK))
				if err != nil {
					return 0, nil, err
				}
				t.done(r)
				out := NewIssuedToken(plain, tok)
				out.Warnings = UnknownPolicies(t.PolicyKnown, in.Policies, "token")
				return http.StatusOK, out, nil
			},
		},
		{
			Pattern: "GET /v1/auth/token/lookup-self", AnyToken: true, Action: "read", Resource: static("auth/tokens/self"),
			Summary: "Describe the calling token.",
			Handle: func(r *http.Request) (int, any, error) {
				self, err := selfToken(r)
				if err != nil {
					return 0, nil, err
				}
				return http.StatusOK, NewTokenInfo(self), nil
			},
		},
		{
			Pattern: "POST /v1/auth/token/renew-self", AnyToken: true, Action: "write", Resource: static("auth/tokens/self"),
			Summary: "Extend the calling token by its TTL (or increment), never past its maximum.",
			Handle: func(r *http.Request) (int, any, error) {
				self, err := selfToken(r)
				if err != nil {
					return 0, nil, err
				}
				return t.renew(r, self.Accessor)
			},
		},
		{
			Pattern: "POST /v1/auth/token/revoke-self", AnyToken: true, Action: "delete", Resource: static("auth/tokens/self"),
			Summary: "Revoke the calling token and its descendants.",
			Handle: func(r *http.Request) (int, any, error) {
				self, err := selfToken(r)
				if err != nil {
					return 0, nil, err
				}
				return t.revoke(r, self.Accessor)
			},
		},
		{
			Pattern: "GET /v1/auth/token/accessors/{accessor}", Action: "read", Resource: accessorRes,
			Summary: "Describe a token by accessor.",
			Handle: func(r *http.Request) (int, any, error) {
				tok, err := t.Svc.Lookup(r.Context(), r.PathValue("accessor"))
				if err != nil {
					return 0, nil, err
				}
				return http.StatusOK, NewTokenInfo(tok), nil
			},
		},
		{
			Pattern: "POST /v1/auth/token/accessors/{accessor}/renew", Action: "write", Resource: accessorRes,
			Summary: "Renew a token by accessor.",
			Handle:  func(r *http.Request) (int, any, error) { return t.renew(r, r.PathValue("accessor")) },
		},
		{
			Pattern: "DELETE /v1/auth/token/accessors/{accessor}", Action: "delete", Resource: accessorRes,
			Summary: "Revoke a token by accessor, with all its descendants.",
			Handle:  func(r *http.Request) (int, any, error) { return t.revoke(r, r.PathValue("accessor")) },
		},
	}
}

func (t *Tokens) renew(r *http.Request, accessor string) (int, any, error) {
	var in struct {
		Increment string `json:"increment"`
	}
	if err := decodeOptional(r, &in); err != nil {
		return 0, nil, err
	}
	inc, err := ParseDuration("increment", in.Increment)
	if err != nil {
		return 0, nil, err
	}
	tok, err := t.Svc.Renew(r.Context(), accessor, inc, t.auditFn(http.StatusOK))
	if err != nil {
		return 0, nil, err
	}
	t.done(r)
	return http.StatusOK, NewTokenInfo(tok), nil
}

func (t *Tokens) revoke(r *http.Request, accessor string) (int, any, error) {
	n, err := t.Svc.Revoke(r.Context(), accessor, t.auditFn(http.StatusOK))
	if err != nil {
		return 0, nil, err
	}
	t.done(r)
	return http.StatusOK, map[string]int{"revoked": n}, nil
}
