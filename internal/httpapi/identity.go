package httpapi

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"slices"
	"strconv"
	"time"

	"github.com/keyward/keyward/internal/identity"
	"github.com/keyward/keyward/internal/storage"
	"github.com/keyward/keyward/internal/token"
)

// Identity serves logins and the management of users, service accounts and
// JWT issuers.
type Identity struct {
	Mgr    *identity.Manager
	Tokens *token.Service
	Audit  Auditor
	// Filter, when set, keeps only the names a list caller may read.
	Authz Authorizer
	// Cursors, when set, seals list cursors: a page's last name may be one
	// the caller may not read, so it must not travel in clear.
	Cursors Cursors
	// PolicyKnown, when set, tells whether a policy exists: creating a user
	// or service account with one that does not answers with a warning.
	PolicyKnown func(name string) bool
}

// Cursors seals and opens list cursors (the server uses the barrier, so a
// cursor is opaque and cannot be forged).
type Cursors interface {
	Seal(kind, name string) (string, error)
	Open(kind, cursor string) (string, error)
}

// sealCursor is the cursor after name for kind ("" for none).
func (h *Identity) sealCursor(kind, name string) (string, error) {
	if name == "" || h.Cursors == nil {
		return name, nil
	}
	return h.Cursors.Seal(kind, name)
}

// MapIdentityErrors registers the identity package's errors. Every login
// failure is the same 401, whatever went wrong.
func MapIdentityErrors(m *ErrorMapper) {
	m.Map(identity.ErrInvalidCredentials, http.StatusUnauthorized, CodeUnauthenticated, "invalid credentials")
	m.Map(identity.ErrTOTPRequired, http.StatusUnauthorized, CodeTOTPRequired, "a TOTP code is required")
	m.Map(identity.ErrNotFound, http.StatusNotFound, CodeNotFound, "")
	m.Map(identity.ErrExists, http.StatusConflict, CodeConflict, "")
	m.Map(identity.ErrInvalid, http.StatusBadRequest, CodeInvalidArgument, "")
	m.Map(identity.ErrDisabled, http.StatusConflict, CodeConflict, "")
	m.Map(identity.ErrJWKSUnavailable, http.StatusServiceUnavailable, CodeUnavailable, "")
	m.Map(identity.ErrSealed, http.StatusServiceUnavailable, CodeSealed, "keyward is sealed")
}

// CodeTOTPRequired tells a client to ask for a TOTP code and retry.
const CodeTOTPRequired = "totp_required"

// loginError turns a throttled login into a 429 with Retry-After.
func loginError(err error) error {
	var te *identity.ThrottledError
	if errors.As(err, &te) {
		return &Error{Status: http.StatusTooManyRequests, Code: CodeRateLimited, RetryAfter: te.RetryAfter,
			Message: "too many failed login attempts; retry later", Err: err}
	}
	return err
}

// issue turns a principal into a token; the token row and the login's audit
// entry commit together: one storage write per login.
func (h *Identity) issue(r *http.Request, p *identity.Principal) (int, any, error) {
	ctx := r.Context()
	state(ctx).caller = &Caller{Principal: p.ID(), AuthMethod: p.Kind}
	var audit token.AuditFunc
	if h.Audit != nil {
		audit = func(ctx context.Context, tx storage.Tx) error {
			return h.Audit.AuditTx(ctx, tx, AuditEventFor(ctx, http.StatusOK))
		}
	}
	plain, t, err := h.Tokens.Issue(ctx, token.Request{
		Principal: p.ID(), AuthMethod: p.Kind, Policies: p.Policies, TTL: p.TokenTTL, MaxTTL: p.TokenMaxTTL,
		BoundCIDRs: p.BoundCIDRs, Meta: p.Metadata,
	}, audit)
	if err != nil {
		return 0, nil, err
	}
	if h.Audit != nil {
		MarkAudited(ctx)
	}
	c := state(ctx).caller
	c.Accessor, c.AccessorHMAC, c.Policies = t.Accessor, t.AccessorHMAC, t.Policies
	return http.StatusOK, NewIssuedToken(plain, t), nil
}

// done marks a management change whose audit entry the identity manager
// appended inside its transaction.
func (h *Identity) done(r *http.Request) {
	if h.Audit != nil {
		MarkAudited(r.Context())
	}
}

// UserDoc is a user as the API shows it.
type UserDoc struct {
	Name         string    `json:"name"`
	Policies     []string  `json:"policies"`
	TokenTTL     string    `json:"token_ttl,omitempty"`
	TokenMaxTTL  string    `json:"token_max_ttl,omitempty"`
	TOTPEnrolled bool      `json:"totp_enrolled"`
	Disabled     bool      `json:"disabled"`
	CreatedAt    time.Time `json:"created_at"`
	UpdatedAt    time.Time `json:"updated_at"`
	// Warnings, on creation only: a policy that does not exist.
	Warnings []string `json:"warnings,omitempty"`
}

func durString(d time.Duration) string {
	if d == 0 {
		return ""
	}
	return d.String()
}

func userDoc(u *identity.User) UserDoc {
	return UserDoc{Name: u.Name, Policies: u.Policies, TokenTTL: durString(u.TokenTTL), TokenMaxTTL: durString(u.TokenMaxTTL),
		TOTPEnrolled: u.TOTPEnrolled, Disabled: u.Disabled, CreatedAt: u.CreatedAt, UpdatedAt: u.UpdatedAt}
}

// ServiceDoc is a service account as the API shows it.
type ServiceDoc struct {
	Name               string     `json:"name"`
	ClientID           string     `json:"client_id"`
	Policies           []string   `json:"policies"`
	TokenTTL           string     `json:"token_ttl,omitempty"`
	TokenMaxTTL        string     `json:"token_max_ttl,omitempty"`
	BoundCIDRs         []string   `json:"bound_cidrs,omitempty"`
	Disabled           bool       `json:"disabled"`
	CreatedAt          time.Time  `json:"created_at"`
	SecretRotatedAt    time.Time  `json:"secret_rotated_at"`
	PreviousValidUntil *time.Time `json:"previous_valid_until,omitempty"`
}

func serviceDoc(s *identity.ServiceAccount) ServiceDoc {
	d := ServiceDoc{Name: s.Name, ClientID: s.ClientID, Policies: s.Policies, TokenTTL: durString(s.TokenTTL),
		TokenMaxTTL: durString(s.TokenMaxTTL), Disabled: s.Disabled, CreatedAt: s.CreatedAt,
		SecretRotatedAt: s.SecretCreatedAt, PreviousValidUntil: timePtr(s.PreviousSecretExpiresAt)}
	for _, c := range s.BoundCIDRs {
		d.BoundCIDRs = append(d.BoundCIDRs, c.String())
	}
	return d
}

// IssuerDoc is a JWT issuer as the API takes and shows it: identity.Issuer
// with durations as strings.
type IssuerDoc struct {
	Name         string                 `json:"name,omitempty"`
	IssuerURL    string                 `json:"issuer_url"`
	Audiences    []string               `json:"audiences"`
	JWKSURL      string                 `json:"jwks_url,omitempty"`
	JWKS         json.RawMessage        `json:"jwks,omitempty"`
	Algorithms   []string               `json:"algorithms,omitempty"`
	BoundClaims  map[string][]string    `json:"bound_claims"`
	PolicyMap    []identity.ClaimPolicy `json:"policy_map,omitempty"`
	Policies     []string               `json:"policies,omitempty"`
	TokenTTL     string                 `json:"token_ttl,omitempty"`
	TokenMaxTTL  string                 `json:"token_max_ttl,omitempty"`
	SubjectClaim string                 `json:"subject_claim,omitempty"`
}

func issuerDoc(i *identity.Issuer) IssuerDoc {
	return IssuerDoc{Name: i.Name, IssuerURL: i.IssuerURL, Audiences: i.Audiences, JWKSURL: i.JWKSURL, JWKS: i.JWKS,
		Algorithms: i.Algorithms, BoundClaims: i.BoundClaims, PolicyMap: i.PolicyMap, Policies: i.Policies,
		TokenTTL: durString(i.TokenTTL), TokenMaxTTL: durString(i.TokenMaxTTL), SubjectClaim: i.SubjectClaim}
}

type principalSettings struct {
	Policies    []string `json:"policies"`
	TokenTTL    string   `json:"token_ttl"`
	TokenMaxTTL string   `json:"token_max_ttl"`
}

func (p principalSettings) ttls() (time.Duration, time.Duration, error) {
	ttl, err := ParseDuration("token_ttl", p.TokenTTL)
	if err != nil {
		return 0, 0, err
	}
	maxTTL, err := ParseDuration("token_max_ttl", p.TokenMaxTTL)
	return ttl, maxTTL, err
}

func nameRes(prefix string) func(*http.Request) (string, error) {
	return func(r *http.Request) (string, error) {
		n := r.PathValue("name")
		if n == "" || len(n) > 128 {
			return "", Invalid("name: want 1 to 128 characters")
		}
		return prefix + n, nil
	}
}

// Routes returns the login and identity management routes.
func (h *Identity) Routes() []Route {
	users := nameRes("identities/users/")
	services := nameRes("identities/services/")
	issuers := nameRes("sys/auth/jwt/")
	return []Route{
		{
			Pattern: "POST /v1/auth/password/login", Open: true, Action: "login", Resource: static("auth/password"),
			Summary: "Log in with a user name, password and (when enrolled) a TOTP code; returns an access token.",
			Handle: func(r *http.Request) (int, any, error) {
				var in struct {
					Username string `json:"username"`
					Password string `json:"password"`
					TOTP     string `json:"totp"`
				}
				if err := decode(r, &in); err != nil {
					return 0, nil, err
				}
				AddAuditDetail(r.Context(), "username", truncate(in.Username, 64))
				p, err := h.Mgr.PasswordLogin(r.Context(), in.Username, in.Password, in.TOTP, SourceAddr(r.Context()))
				if err != nil {
					return 0, nil, loginError(err)
				}
				return h.issue(r, p)
			},
		},
		{
			Pattern: "POST /v1/auth/service/login", Open: true, Action: "login", Resource: static("auth/service"),
			Summary: "Log in with a service account's client id and secret; returns an access token.",
			Handle: func(r *http.Request) (int, any, error) {
				var in struct {
					ClientID     string `json:"client_id"`
					ClientSecret string `json:"client_secret"`
				}
				if err := decode(r, &in); err != nil {
					return 0, nil, err
				}
				AddAuditDetail(r.Context(), "client_id", truncate(in.ClientID, 64))
				p, err := h.Mgr.ServiceLogin(r.Context(), in.ClientID, in.ClientSecret, SourceAddr(r.Context()))
				if err != nil {
					return 0, nil, loginError(err)
				}
				return h.issue(r, p)
			},
		},
		{
			Pattern: "POST /v1/auth/jwt/login", Open: true, Action: "login", Resource: static("auth/jwt"),
			Summary: "Log in with a JWT from a trusted issuer (CI/CD workload identity); returns an access token.",
			Handle: func(r *http.Request) (int, any, error) {
				var in struct {
					Issuer string `json:"issuer"`
					JWT    string `json:"jwt"`
				}
				if err := decode(r, &in); err != nil {
					return 0, nil, err
				}
				AddAuditDetail(r.Context(), "issuer", truncate(in.Issuer, 64))
				p, err := h.Mgr.JWTLogin(r.Context(), in.Issuer, in.JWT, SourceAddr(r.Context()))
				if err != nil {
					return 0, nil, loginError(err)
				}
				return h.issue(r, p)
			},
		},

		// Users.
		{
			Pattern: "POST /v1/identities/users", Action: "write", Resource: static("identities/users"),
			Summary: "Create a user with a password.",
			Handle: func(r *http.Request) (int, any, error) {
				var in struct {
					Name     string `json:"name"`
					Password string `json:"password"`
					principalSettings
				}
				if err := decode(r, &in); err != nil {
					return 0, nil, err
				}
				ttl, maxTTL, err := in.ttls()
				if err != nil {
					return 0, nil, err
				}
				AddAuditDetail(r.Context(), "name", truncate(in.Name, 64))
				WillRespond(r.Context(), http.StatusCreated)
				u, err := h.Mgr.CreateUser(r.Context(), in.Name, in.Password, identity.UserOptions{Policies: in.Policies, TokenTTL: ttl, TokenMaxTTL: maxTTL})
				if err != nil {
					return 0, nil, err
				}
				h.done(r)
				doc := userDoc(u)
				doc.Warnings = UnknownPolicies(h.PolicyKnown, in.Policies, "user")
				return http.StatusCreated, doc, nil
			},
		},
		{
			Pattern: "GET /v1/identities/users", Action: "list", Resource: static("identities/users"),
			Summary: "List users by name (?limit=, ?cursor= the previous page's opaque next); only users the caller may read.",
			Handle: func(r *http.Request) (int, any, error) {
				limit, cursor, err := h.identityPage(r, "users")
				if err != nil {
					return 0, nil, err
				}
				us, err := h.Mgr.ListUsers(r.Context(), limit, cursor)
				if err != nil {
					return 0, nil, err
				}
				out := []UserDoc{}
				for i := range us {
					if h.visible(r, "identities/users/"+us[i].Name) {
						out = append(out, userDoc(&us[i]))
					}
				}
				next := ""
				if len(us) == limit {
					if next, err = h.sealCursor("users", us[len(us)-1].Name); err != nil {
						return 0, nil, err
					}
				}
				return http.StatusOK, map[string]any{"users": out, "next": next}, nil
			},
		},
		{
			Pattern: "GET /v1/identities/users/{name}", Action: "read", Resource: users,
			Summary: "Describe a user.",
			Handle: func(r *http.Request) (int, any, error) {
				u, err := h.Mgr.GetUser(r.Context(), r.PathValue("name"))
				if err != nil {
					return 0, nil, err
				}
				return http.StatusOK, userDoc(u), nil
			},
		},
		h.change("POST /v1/identities/users/{name}/disable", users, "Disable a user: logins fail and every token issued to the user (and its children) is revoked.",
			h.disableThenRevoke(h.Mgr.DisableUser, identity.KindUser)),
		h.change("POST /v1/identities/users/{name}/enable", users, "Enable a disabled user.", h.Mgr.EnableUser),
		{
			Pattern: "POST /v1/identities/users/{name}/password", Action: "write", Resource: users,
			Summary: "Set a user's password.",
			Handle: func(r *http.Request) (int, any, error) {
				var in struct {
					Password string `json:"password"`
				}
				if err := decode(r, &in); err != nil {
					return 0, nil, err
				}
				WillRespond(r.Context(), http.StatusNoContent)
				if err := h.Mgr.SetPassword(r.Context(), r.PathValue("name"), in.Password); err != nil {
					return 0, nil, err
				}
				h.done(r)
				return http.StatusNoContent, nil, nil
			},
		},
		{
			Pattern: "POST /v1/identities/users/{name}/totp", Action: "write", Resource: users,
			Summary: "Enroll a user in TOTP; returns the secret and an otpauth:// URL once.",
			Handle: func(r *http.Request) (int, any, error) {
				secret, url, err := h.Mgr.EnrollTOTP(r.Context(), r.PathValue("name"))
				if err != nil {
					return 0, nil, err
				}
				h.done(r)
				return http.StatusOK, map[string]string{"secret": secret, "url": url}, nil
			},
		},
		h.change("DELETE /v1/identities/users/{name}/totp", users, "Remove a user's TOTP enrolment.", h.Mgr.RemoveTOTP),

		// Service accounts.
		{
			Pattern: "POST /v1/identities/services", Action: "write", Resource: static("identities/services"),
			Summary: "Create a service account; its client secret is shown once.",
			Handle: func(r *http.Request) (int, any, error) {
				var in struct {
					Name       string   `json:"name"`
					BoundCIDRs []string `json:"bound_cidrs"`
					principalSettings
				}
				if err := decode(r, &in); err != nil {
					return 0, nil, err
				}
				ttl, maxTTL, err := in.ttls()
				if err != nil {
					return 0, nil, err
				}
				cidrs, err := ParseCIDRs("bound_cidrs", in.BoundCIDRs)
				if err != nil {
					return 0, nil, err
				}
				AddAuditDetail(r.Context(), "name", truncate(in.Name, 64))
				WillRespond(r.Context(), http.StatusCreated)
				svc, secret, err := h.Mgr.CreateService(r.Context(), in.Name, identity.ServiceOptions{
					Policies: in.Policies, TokenTTL: ttl, TokenMaxTTL: maxTTL, BoundCIDRs: cidrs})
				if err != nil {
					return 0, nil, err
				}
				h.done(r)
				out := map[string]any{"service": serviceDoc(svc), "client_id": svc.ClientID, "client_secret": secret}
				if ws := UnknownPolicies(h.PolicyKnown, in.Policies, "service account"); ws != nil {
					out["warnings"] = ws
				}
				return http.StatusCreated, out, nil
			},
		},
		{
			Pattern: "GET /v1/identities/services", Action: "list", Resource: static("identities/services"),
			Summary: "List service accounts by name (?limit=, ?cursor= the previous page's opaque next); only accounts the caller may read.",
			Handle: func(r *http.Request) (int, any, error) {
				limit, cursor, err := h.identityPage(r, "services")
				if err != nil {
					return 0, nil, err
				}
				ss, err := h.Mgr.ListServices(r.Context(), limit, cursor)
				if err != nil {
					return 0, nil, err
				}
				out := []ServiceDoc{}
				for i := range ss {
					if h.visible(r, "identities/services/"+ss[i].Name) {
						out = append(out, serviceDoc(&ss[i]))
					}
				}
				next := ""
				if len(ss) == limit {
					if next, err = h.sealCursor("services", ss[len(ss)-1].Name); err != nil {
						return 0, nil, err
					}
				}
				return http.StatusOK, map[string]any{"services": out, "next": next}, nil
			},
		},
		{
			Pattern: "GET /v1/identities/services/{name}", Action: "read", Resource: services,
			Summary: "Describe a service account.",
			Handle: func(r *http.Request) (int, any, error) {
				s, err := h.Mgr.GetService(r.Context(), r.PathValue("name"))
				if err != nil {
					return 0, nil, err
				}
				return http.StatusOK, serviceDoc(s), nil
			},
		},
		h.change("POST /v1/identities/services/{name}/disable", services, "Disable a service account: logins fail and every token issued to it (and its children) is revoked.",
			h.disableThenRevoke(h.Mgr.DisableService, identity.KindService)),
		h.change("POST /v1/identities/services/{name}/enable", services, "Enable a service account.", h.Mgr.EnableService),
		{
			Pattern: "POST /v1/identities/services/{name}/rotate-secret", Action: "rotate", Resource: services,
			Summary: "Issue a new client secret; the old one keeps working for the grace period.",
			Handle: func(r *http.Request) (int, any, error) {
				var in struct {
					Grace string `json:"grace"`
				}
				if err := decodeOptional(r, &in); err != nil {
					return 0, nil, err
				}
				grace, err := ParseDuration("grace", in.Grace)
				if err != nil {
					return 0, nil, err
				}
				name := r.PathValue("name")
				secret, err := h.Mgr.RotateServiceSecret(r.Context(), name, grace)
				if err != nil {
					return 0, nil, err
				}
				h.done(r)
				s, err := h.Mgr.GetService(r.Context(), name)
				if err != nil {
					return 0, nil, err
				}
				return http.StatusOK, map[string]any{"client_id": s.ClientID, "client_secret": secret,
					"previous_valid_until": timePtr(s.PreviousSecretExpiresAt)}, nil
			},
		},

		// JWT issuers.
		{
			Pattern: "PUT /v1/auth/jwt/issuers/{name}", Action: "write", Resource: issuers,
			Summary: "Create or replace a trusted JWT issuer (workload identity for CI/CD).",
			Handle: func(r *http.Request) (int, any, error) {
				var in IssuerDoc
				if err := decode(r, &in); err != nil {
					return 0, nil, err
				}
				ttl, err := ParseDuration("token_ttl", in.TokenTTL)
				if err != nil {
					return 0, nil, err
				}
				maxTTL, err := ParseDuration("token_max_ttl", in.TokenMaxTTL)
				if err != nil {
					return 0, nil, err
				}
				name := r.PathValue("name")
				if in.Name != "" && in.Name != name {
					return 0, nil, Invalid("name: the body says %q but the path says %q", truncate(in.Name, 64), name)
				}
				iss, err := h.Mgr.PutIssuer(r.Context(), identity.Issuer{Name: name, IssuerURL: in.IssuerURL, Audiences: in.Audiences,
					JWKSURL: in.JWKSURL, JWKS: in.JWKS, Algorithms: in.Algorithms, BoundClaims: in.BoundClaims, PolicyMap: in.PolicyMap,
					Policies: in.Policies, TokenTTL: ttl, TokenMaxTTL: maxTTL, SubjectClaim: in.SubjectClaim})
				if err != nil {
					return 0, nil, err
				}
				h.done(r)
				names := slices.Clone(in.Policies)
				for _, m := range in.PolicyMap {
					names = append(names, m.Policies...)
				}
				slices.Sort(names)
				out := struct {
					IssuerDoc
					Warnings []string `json:"warnings,omitempty"`
				}{issuerDoc(iss), UnknownPolicies(h.PolicyKnown, slices.Compact(names), "issuer's tokens")}
				return http.StatusOK, out, nil
			},
		},
		{
			Pattern: "GET /v1/auth/jwt/issuers", Action: "list", Resource: static("sys/auth/jwt"),
			Summary: "List trusted JWT issuers.",
			Handle: func(r *http.Request) (int, any, error) {
				is, err := h.Mgr.ListIssuers(r.Context())
				if err != nil {
					return 0, nil, err
				}
				out := []IssuerDoc{}
				for i := range is {
					out = append(out, issuerDoc(&is[i]))
				}
				return http.StatusOK, map[string]any{"issuers": out}, nil
			},
		},
		{
			Pattern: "GET /v1/auth/jwt/issuers/{name}", Action: "read", Resource: issuers,
			Summary: "Describe a trusted JWT issuer.",
			Handle: func(r *http.Request) (int, any, error) {
				iss, err := h.Mgr.GetIssuer(r.Context(), r.PathValue("name"))
				if err != nil {
					return 0, nil, err
				}
				return http.StatusOK, issuerDoc(iss), nil
			},
		},
		h.change("DELETE /v1/auth/jwt/issuers/{name}", issuers, "Stop trusting a JWT issuer.", h.Mgr.DeleteIssuer),
	}
}

// change is a route that applies fn to the named identity and answers 204.
func (h *Identity) change(pattern string, res func(*http.Request) (string, error), summary string, fn func(context.Context, string) error) Route {
	action := "write"
	if len(pattern) > 6 && pattern[:6] == "DELETE" {
		action = "delete"
	}
	return Route{
		Pattern: pattern, Action: action, Resource: res, Summary: summary,
		Handle: func(r *http.Request) (int, any, error) {
			WillRespond(r.Context(), http.StatusNoContent)
			if err := fn(r.Context(), r.PathValue("name")); err != nil {
				return 0, nil, err
			}
			h.done(r)
			return http.StatusNoContent, nil, nil
		},
	}
}

// disableThenRevoke disables a principal, then revokes every token issued
// to it, so a disabled account is locked out at once rather than when its
// tokens run out. Both steps are idempotent: if the revocation fails the
// request fails and repeating it finishes the job.
func (h *Identity) disableThenRevoke(disable func(context.Context, string) error, kind string) func(context.Context, string) error {
	return func(ctx context.Context, name string) error {
		if err := disable(ctx, name); err != nil {
			return err
		}
		if h.Tokens == nil {
			return nil
		}
		_, err := h.Tokens.RevokePrincipal(ctx, kind+":"+name, nil)
		return err
	}
}

// identityPage reads a list's ?limit= (default identity.DefaultListLimit) and
// ?cursor= (a previous page's next, opened: the last name of that page);
// the identity manager checks both.
func (h *Identity) identityPage(r *http.Request, kind string) (limit int, cursor string, err error) {
	q := r.URL.Query()
	limit = identity.DefaultListLimit
	if s := q.Get("limit"); s != "" {
		if limit, err = strconv.Atoi(s); err != nil {
			return 0, "", Invalid("limit: want 1 to %d", identity.MaxListLimit)
		}
	}
	cursor = q.Get("cursor")
	if cursor != "" && h.Cursors != nil {
		if cursor, err = h.Cursors.Open(kind, cursor); err != nil {
			return 0, "", Invalid("cursor: not a cursor from this list (use the previous page's next)")
		}
	}
	return limit, cursor, nil
}

// visible reports whether the caller may read resource (list filtering).
func (h *Identity) visible(r *http.Request, resource string) bool {
	if h.Authz == nil {
		return true
	}
	ok, _ := h.Authz.Decide(CallerFrom(r.Context()), "read", resource)
	return ok
}

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n]
	}
	return s
}
