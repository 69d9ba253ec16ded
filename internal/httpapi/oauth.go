package httpapi

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"mime"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/keyward/keyward/internal/device"
	"github.com/keyward/keyward/internal/dpop"
	"github.com/keyward/keyward/internal/identity"
	"github.com/keyward/keyward/internal/storage"
	"github.com/keyward/keyward/internal/token"
)

// OAuth serves the OAuth 2.0 endpoints an app uses instead of holding a
// third-party key:
//   - POST /v1/oauth/token: token exchange (RFC 8693). The app sends the ID
//     token its user got from the company's identity provider; keyward checks
//     it against the trusted JWT issuers (as /v1/auth/jwt/login does) and
//     returns an access token of at most MaxExchangeTTL carrying the mapped
//     policies. With a DPoP proof (RFC 9449) on the request the token is bound
//     to the proof's key, and every call made with it needs a fresh proof.
//   - POST /v1/oauth/revoke: revocation (RFC 7009) by the token's holder.
//   - POST /v1/oauth/introspect: introspection (RFC 7662) for a caller allowed
//     read on sys/introspect.
//
// These routes speak OAuth, not keyward's JSON dialect: requests are
// application/x-www-form-urlencoded, and the token and revocation endpoints
// answer errors as RFC 6749 §5.2 objects ({"error": "invalid_grant",
// "error_description": "..."}), because that is what OAuth client libraries
// (AppAuth and the like) parse. Refusals by the edge itself (sealed, an
// invalid caller token on introspect) keep keyward's format.
type OAuth struct {
	Mgr    *identity.Manager
	Tokens *token.Service
	Audit  Auditor
	// DPoP is the edge's verifier (one replay cache for the whole node).
	DPoP *dpop.Verifier
	// Devices, when set, enables the device grant (GrantDevice).
	Devices *device.Service
	// Now is the clock (default time.Now).
	Now func() time.Time
}

// OAuth identifiers (RFC 8693 §3, RFC 9449 §5).
const (
	GrantTokenExchange = "urn:ietf:params:oauth:grant-type:token-exchange"
	// GrantDevice: an enrolled device, proving its key with the DPoP
	// proof of the request, gets a token bound to that key.
	GrantDevice          = "urn:keyward:params:oauth:grant-type:device"
	TokenTypeIDToken     = "urn:ietf:params:oauth:token-type:id_token"
	TokenTypeJWT         = "urn:ietf:params:oauth:token-type:jwt"
	TokenTypeAccessToken = "urn:ietf:params:oauth:token-type:access_token"
)

// MaxExchangeTTL caps a token issued by exchange: an app re-exchanges
// (its ID token, which it refreshes with its identity provider) to go on.
const MaxExchangeTTL = 15 * time.Minute

// AuthMethodExchange names tokens issued by token exchange.
const AuthMethodExchange = "token-exchange"

// OAuthError is an RFC 6749 §5.2 error response.
type OAuthError struct {
	Code        string `json:"error"`
	Description string `json:"error_description,omitempty"`

	status     int
	retryAfter time.Duration
	dpopNonce  string // sent as DPoP-Nonce (use_dpop_nonce)
	cause      error  // an internal failure: the edge logs it and answers 500
}

func oauthErr(status int, code, format string, args ...any) *OAuthError {
	return &OAuthError{Code: code, Description: fmt.Sprintf(format, args...), status: status}
}

// render returns what a handler returns for e. Refusals of the caller's
// credentials (rather than of a malformed request) are audited as denied.
func (e *OAuthError) render(ctx context.Context) (int, any, error) {
	if e.cause != nil {
		return 0, nil, e.cause
	}
	switch e.Code {
	case "invalid_grant", "invalid_dpop_proof", "invalid_scope", "temporarily_unavailable":
		SetAuditOutcome(ctx, "denied")
	}
	AddAuditDetail(ctx, "oauth_error", e.Code)
	h := http.Header{}
	if e.retryAfter > 0 {
		h.Set("Retry-After", fmt.Sprint(int(e.retryAfter.Round(time.Second)/time.Second)))
	}
	if e.dpopNonce != "" {
		h.Set("DPoP-Nonce", e.dpopNonce)
	}
	return e.status, withHeaders{body: e, header: h}, nil
}

// TokenResponse is the token endpoint's answer (RFC 8693 §2.2.1).
type TokenResponse struct {
	AccessToken     string `json:"access_token"`
	IssuedTokenType string `json:"issued_token_type"`
	TokenType       string `json:"token_type"` // "DPoP" or "Bearer"
	ExpiresIn       int64  `json:"expires_in"`
	Scope           string `json:"scope"` // the policies, space-separated
}

// IntrospectionResponse is the introspection endpoint's answer (RFC 7662
// §2.2). An inactive token says nothing but active: false.
type IntrospectionResponse struct {
	Active     bool          `json:"active"`
	Scope      string        `json:"scope,omitempty"`
	ClientID   string        `json:"client_id,omitempty"`
	TokenType  string        `json:"token_type,omitempty"`
	Exp        int64         `json:"exp,omitempty"`
	Iat        int64         `json:"iat,omitempty"`
	Sub        string        `json:"sub,omitempty"`
	AuthMethod string        `json:"auth_method,omitempty"`
	Cnf        *Confirmation `json:"cnf,omitempty"`
	// Rate is the token's own rate limit ("100/min"; an extension member,
	// RFC 7662 §2.2).
	Rate string `json:"rate,omitempty"`
}

func (o *OAuth) now() time.Time {
	if o.Now != nil {
		return o.Now()
	}
	return time.Now()
}

// Routes returns the OAuth routes.
func (o *OAuth) Routes() []Route {
	return []Route{
		{
			Pattern: "POST /v1/oauth/token", Open: true, Action: "login", DataPlane: true,
			Summary: "Token exchange (RFC 8693): an ID token from a trusted issuer for an access token of at most 15 minutes; DPoP-bound (RFC 9449) when a DPoP proof header is sent.",
			Handle: func(r *http.Request) (int, any, error) {
				status, body, oe := o.exchange(r)
				if oe != nil {
					return oe.render(r.Context())
				}
				return status, body, nil
			},
		},
		{
			Pattern: "POST /v1/oauth/revoke", Open: true, Action: "delete", DataPlane: true,
			Summary: "Revoke a token and its children (RFC 7009): the form's token is the credential. Unknown tokens also get 200.",
			Handle: func(r *http.Request) (int, any, error) {
				status, oe := o.revoke(r)
				if oe != nil {
					return oe.render(r.Context())
				}
				return status, nil, nil
			},
		},
		{
			Pattern: "POST /v1/oauth/introspect", Action: "read", Resource: static("sys/introspect"), DataPlane: true,
			Summary: "Describe a token (RFC 7662): active, scope (policies), exp, iat, sub, token_type, cnf.jkt, rate. Needs read on sys/introspect.",
			Handle: func(r *http.Request) (int, any, error) {
				body, oe := o.introspect(r)
				if oe != nil {
					return oe.render(r.Context())
				}
				return http.StatusOK, body, nil
			},
		},
	}
}

// form reads an OAuth request's parameters: form-encoded, in the body only
// (a token in a URL ends up in logs), none repeated (RFC 6749 §3.2).
func form(r *http.Request) (url.Values, *OAuthError) {
	if r.URL.RawQuery != "" {
		return nil, oauthErr(http.StatusBadRequest, "invalid_request", "parameters go in the request body, never in the URL")
	}
	mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if err != nil || mt != "application/x-www-form-urlencoded" {
		return nil, oauthErr(http.StatusBadRequest, "invalid_request", "Content-Type must be application/x-www-form-urlencoded")
	}
	if err := r.ParseForm(); err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return nil, oauthErr(http.StatusRequestEntityTooLarge, "invalid_request", "request body exceeds %d bytes", mbe.Limit)
		}
		return nil, oauthErr(http.StatusBadRequest, "invalid_request", "the body is not a valid form")
	}
	for k, v := range r.PostForm {
		if len(v) > 1 {
			return nil, oauthErr(http.StatusBadRequest, "invalid_request", "parameter %q is repeated", truncate(k, 64))
		}
	}
	return r.PostForm, nil
}

func (o *OAuth) exchange(r *http.Request) (int, any, *OAuthError) {
	ctx := r.Context()
	s := state(ctx)
	s.resource = "auth/oauth/token"
	AddAuditDetail(ctx, "grant", "token-exchange")
	f, oe := form(r)
	if oe != nil {
		return 0, nil, oe
	}
	switch gt := f.Get("grant_type"); gt {
	case GrantTokenExchange:
	case GrantDevice:
		if o.Devices == nil {
			return 0, nil, oauthErr(http.StatusBadRequest, "unsupported_grant_type", "this server enrolls no devices")
		}
		return o.deviceGrant(r, f)
	case "":
		return 0, nil, oauthErr(http.StatusBadRequest, "invalid_request", "grant_type is required")
	default:
		return 0, nil, oauthErr(http.StatusBadRequest, "unsupported_grant_type", "grant_type must be %s or %s", GrantTokenExchange, GrantDevice)
	}
	subject := f.Get("subject_token")
	if subject == "" {
		return 0, nil, oauthErr(http.StatusBadRequest, "invalid_request", "subject_token is required")
	}
	if stt := f.Get("subject_token_type"); stt != TokenTypeIDToken && stt != TokenTypeJWT {
		return 0, nil, oauthErr(http.StatusBadRequest, "invalid_request", "subject_token_type must be %s or %s", TokenTypeIDToken, TokenTypeJWT)
	}
	if rtt := f.Get("requested_token_type"); rtt != "" && rtt != TokenTypeAccessToken {
		return 0, nil, oauthErr(http.StatusBadRequest, "invalid_request", "requested_token_type: only %s is issued", TokenTypeAccessToken)
	}
	if f.Has("actor_token") || f.Has("actor_token_type") {
		return 0, nil, oauthErr(http.StatusBadRequest, "invalid_request", "delegation (actor_token) is not supported")
	}
	clientID := f.Get("client_id")
	if clientID != "" {
		if len(clientID) > 128 || !printableASCII(clientID) {
			return 0, nil, oauthErr(http.StatusBadRequest, "invalid_request", "client_id: at most 128 printable characters")
		}
		AddAuditDetail(ctx, "client_id", clientID)
	}
	proofs := r.Header.Values("DPoP")
	if len(proofs) > 1 {
		return 0, nil, oauthErr(http.StatusBadRequest, "invalid_dpop_proof", "at most one DPoP proof header")
	}

	// The subject token first: a proof is only checked (and its jti only
	// takes a replay-cache slot) for a caller who holds a valid ID token.
	p, err := o.Mgr.ExchangeLogin(ctx, subject, SourceAddr(ctx))
	if err != nil {
		var te *identity.ThrottledError
		switch {
		case errors.As(err, &te):
			e := oauthErr(http.StatusTooManyRequests, "temporarily_unavailable", "too many failed attempts; retry later")
			e.retryAfter = te.RetryAfter
			return 0, nil, e
		case errors.Is(err, identity.ErrInvalidCredentials):
			AddAuditDetail(ctx, "reason", truncate(strings.TrimPrefix(err.Error(), identity.ErrInvalidCredentials.Error()+": "), 128))
			return 0, nil, oauthErr(http.StatusBadRequest, "invalid_grant", "the subject token was not accepted (signature, issuer, audience, expiry or claim conditions)")
		case errors.Is(err, identity.ErrJWKSUnavailable), errors.Is(err, identity.ErrSealed), errors.Is(err, storage.ErrUnavailable):
			return 0, nil, oauthErr(http.StatusServiceUnavailable, "temporarily_unavailable", "the identity provider's keys or keyward's storage are unavailable; retry later")
		}
		return 0, nil, o.serverError(ctx, err)
	}
	s.caller = &Caller{Principal: p.ID(), AuthMethod: AuthMethodExchange}
	AddAuditDetail(ctx, "issuer", p.Metadata["issuer"])

	policies := p.Policies
	if scope := f.Get("scope"); scope != "" {
		// A scope narrows the token to some of the mapped policies.
		policies = nil
		for _, sc := range strings.Fields(scope) {
			if !slices.Contains(p.Policies, sc) {
				return 0, nil, oauthErr(http.StatusBadRequest, "invalid_scope", "scope %q is not among the policies the subject token maps to", truncate(sc, 64))
			}
			policies = append(policies, sc)
		}
	}
	if len(policies) == 0 {
		return 0, nil, oauthErr(http.StatusBadRequest, "invalid_grant", "the subject token maps to no policy")
	}

	now := o.now()
	ttl := MaxExchangeTTL
	if p.TokenTTL > 0 && p.TokenTTL < ttl {
		ttl = p.TokenTTL
	}
	if !p.CredentialExpiresAt.IsZero() {
		ttl = min(ttl, p.CredentialExpiresAt.Sub(now))
	}
	ttl = ttl.Truncate(time.Second)
	if ttl < time.Second {
		return 0, nil, oauthErr(http.StatusBadRequest, "invalid_grant", "the subject token has expired")
	}

	jkt := ""
	if len(proofs) == 1 {
		if o.DPoP == nil {
			return 0, nil, oauthErr(http.StatusBadRequest, "invalid_dpop_proof", "this server does not accept DPoP proofs")
		}
		proof, oe := o.checkProof(ctx, r, proofs[0])
		if oe != nil {
			return 0, nil, oe
		}
		jkt = proof.JKT
	}

	meta := maps.Clone(p.Metadata)
	if meta == nil {
		meta = map[string]string{}
	}
	meta["grant"] = "token-exchange"
	if clientID != "" {
		meta["client_id"] = clientID
	}
	return o.issue(r, token.Request{
		Principal: p.ID(), AuthMethod: AuthMethodExchange, Policies: policies, TTL: ttl, MaxTTL: ttl,
		BoundCIDRs: p.BoundCIDRs, Meta: meta, JKT: jkt,
	}, nil)
}

// AuthMethodDevice names tokens issued to enrolled devices.
const AuthMethodDevice = "device"

// deviceGrant issues an enrolled device a token bound to its key: the
// request's DPoP proof must be signed by the key the device enrolled with.
func (o *OAuth) deviceGrant(r *http.Request, f url.Values) (int, any, *OAuthError) {
	ctx := r.Context()
	state(ctx).resource = "auth/oauth/token"
	AddAuditDetail(ctx, "grant", "device")
	id := f.Get("device_id")
	if id == "" {
		return 0, nil, oauthErr(http.StatusBadRequest, "invalid_request", "device_id is required")
	}
	refused := func() (int, any, *OAuthError) {
		AddAuditDetail(ctx, "device_id", truncate(id, 64))
		return 0, nil, oauthErr(http.StatusBadRequest, "invalid_grant", "unknown or disabled device, or the proof is not signed by its key")
	}
	// The device first: a proof is checked (and takes a replay-cache slot)
	// only for an enrolled, enabled device.
	d, err := o.Devices.Get(ctx, id)
	switch {
	case errors.Is(err, device.ErrNotFound) || err == nil && !d.Enabled():
		return refused()
	case err != nil:
		return 0, nil, o.serverError(ctx, err)
	}
	proofs := r.Header.Values("DPoP")
	if len(proofs) != 1 || o.DPoP == nil {
		return 0, nil, oauthErr(http.StatusBadRequest, "invalid_dpop_proof", "exactly one DPoP proof, signed by the device's key, is required")
	}
	proof, oe := o.checkProof(ctx, r, proofs[0])
	if oe != nil {
		return 0, nil, oe
	}
	if !d.HoldsKey(proof.JKT) {
		return refused()
	}
	state(ctx).caller = &Caller{Principal: d.Principal(), AuthMethod: AuthMethodDevice}
	AddAuditDetail(ctx, "device_id", d.ID)
	return o.issue(r, token.Request{
		Principal: d.Principal(), AuthMethod: AuthMethodDevice, Policies: d.Policies, TTL: MaxExchangeTTL, MaxTTL: MaxExchangeTTL,
		Meta: map[string]string{"grant": "device", "device_id": d.ID, "enrollment_id": d.EnrollmentID}, JKT: proof.JKT,
	}, func(ctx context.Context, tx storage.Tx) error { return device.NoteToken(ctx, tx, d, o.now()) })
}

// checkProof verifies a DPoP proof for the token endpoint (no access token
// yet) and notes it in the audit entry.
func (o *OAuth) checkProof(ctx context.Context, r *http.Request, proof string) (*dpop.Proof, *OAuthError) {
	p, err := o.DPoP.Verify(ctx, proof, dpop.Expect{Method: r.Method, URL: RequestURL(r)})
	switch {
	case errors.Is(err, dpop.ErrUseNonce):
		// RFC 9449 §8: the client retries with this nonce.
		e := oauthErr(http.StatusBadRequest, "use_dpop_nonce", "a fresh server nonce is required: sign a new proof with the nonce of the DPoP-Nonce header")
		e.dpopNonce, _ = o.DPoP.Nonce()
		return nil, e
	case errors.Is(err, dpop.ErrBusy):
		e := oauthErr(http.StatusServiceUnavailable, "temporarily_unavailable", "too many DPoP proofs in flight; retry shortly")
		e.retryAfter = 5 * time.Second
		return nil, e
	case errors.Is(err, dpop.ErrUnavailable):
		e := oauthErr(http.StatusServiceUnavailable, "temporarily_unavailable", "the DPoP proof could not be recorded against replay; retry shortly with a new proof")
		e.retryAfter = time.Second
		return nil, e
	case err != nil:
		return nil, oauthErr(http.StatusBadRequest, "invalid_dpop_proof", "%s", dpopReason(err))
	}
	AddAuditDetail(ctx, "dpop", "bound")
	return p, nil
}

// issue issues the token of a grant, with the request's audit entry (and
// also, when set) in its transaction, and answers with it.
func (o *OAuth) issue(r *http.Request, req token.Request, also token.AuditFunc) (int, any, *OAuthError) {
	ctx := r.Context()
	now := o.now()
	audit := also
	if o.Audit != nil {
		audit = func(ctx context.Context, tx storage.Tx) error {
			if also != nil {
				if err := also(ctx, tx); err != nil {
					return err
				}
			}
			return o.Audit.AuditTx(ctx, tx, AuditEventFor(ctx, http.StatusOK))
		}
	}
	plain, t, err := o.Tokens.Issue(ctx, req, audit)
	if err != nil {
		if errors.Is(err, token.ErrSealed) || errors.Is(err, storage.ErrUnavailable) {
			return 0, nil, oauthErr(http.StatusServiceUnavailable, "temporarily_unavailable", "keyward cannot issue tokens right now; retry later")
		}
		return 0, nil, o.serverError(ctx, err)
	}
	if o.Audit != nil {
		MarkAudited(ctx)
	}
	c := state(ctx).caller
	c.Accessor, c.AccessorHMAC, c.Policies = t.Accessor, t.AccessorHMAC, t.Policies
	return http.StatusOK, &TokenResponse{
		AccessToken: plain, IssuedTokenType: TokenTypeAccessToken, TokenType: tokenType(t),
		ExpiresIn: int64(t.ExpiresAt.Sub(now).Round(time.Second) / time.Second), Scope: strings.Join(t.Policies, " "),
	}, nil
}

// serverError hands an internal failure to the edge, which logs it and
// answers with keyward's 500 (or 503 for storage trouble).
func (o *OAuth) serverError(_ context.Context, err error) *OAuthError {
	return &OAuthError{cause: err}
}

// dpopReason is the fixed reason of a dpop error, without the package's prefix.
func dpopReason(err error) string {
	msg := err.Error()
	if r, ok := strings.CutPrefix(msg, dpop.ErrInvalid.Error()+": "); ok {
		if strings.HasPrefix(r, "DPoP proof") {
			return r // "DPoP proof replayed"
		}
		return "DPoP proof: " + r
	}
	return "the DPoP proof cannot be checked against this request"
}

// clientID is the OAuth client a token was issued to, as a service login or
// a token exchange recorded it in the token's meta. A child token's meta is
// whatever its creator wrote, so a child names no client.
func clientID(t *token.Token) string {
	if t.Parent != "" {
		return ""
	}
	return t.Meta["client_id"]
}

func tokenType(t *token.Token) string {
	if t.JKT != "" {
		return "DPoP"
	}
	return "Bearer"
}

func printableASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < 0x21 || s[i] > 0x7e {
			return false
		}
	}
	return true
}

// revoke serves RFC 7009. Holding a token is enough to revoke it (and its
// children): revocation can only take power away. A bound token needs no
// proof here either, so whoever finds a leaked token can kill it. An
// unknown, malformed or already revoked token gets 200 too (RFC 7009 §2.2),
// so the endpoint tells nobody whether a guess exists.
func (o *OAuth) revoke(r *http.Request) (int, *OAuthError) {
	ctx := r.Context()
	s := state(ctx)
	s.resource = "auth/oauth/revoke"
	f, oe := form(r)
	if oe != nil {
		return 0, oe
	}
	plain := f.Get("token")
	if plain == "" {
		return 0, oauthErr(http.StatusBadRequest, "invalid_request", "token is required")
	}
	var audit func(ctx context.Context, tx storage.Tx, result string) error
	if o.Audit != nil {
		audit = func(ctx context.Context, tx storage.Tx, result string) error {
			AddAuditDetail(ctx, "result", result)
			return o.Audit.AuditTx(ctx, tx, AuditEventFor(ctx, http.StatusOK))
		}
	}
	result, audited, err := revokeHeld(ctx, o.Tokens, plain, audit)
	switch {
	case errors.Is(err, token.ErrSealed), errors.Is(err, storage.ErrUnavailable):
		return 0, oauthErr(http.StatusServiceUnavailable, "temporarily_unavailable", "retry later")
	case err != nil:
		return 0, o.serverError(ctx, err)
	case audited:
		MarkAudited(ctx)
	default:
		AddAuditDetail(ctx, "result", result)
	}
	return http.StatusOK, nil
}

// revokeHeld revokes the access token plain names, and its children, on
// the authority of holding it (RFC 7009 revocation, leak reports). The
// request's caller and resource become the token's; audit, when set,
// appends the entry of a revocation in its transaction, and audited
// reports that it committed. result is "unknown token", "already
// revoked" or "revoked".
func revokeHeld(ctx context.Context, tokens *token.Service, plain string,
	audit func(ctx context.Context, tx storage.Tx, result string) error) (result string, audited bool, err error) {
	t, err := tokens.Find(ctx, plain)
	if errors.Is(err, token.ErrInvalid) {
		return "unknown token", false, nil
	}
	if err != nil {
		return "", false, err
	}
	s := state(ctx)
	s.caller = &Caller{Principal: t.Principal, AuthMethod: t.AuthMethod, Accessor: t.Accessor, AccessorHMAC: t.AccessorHMAC, Policies: t.Policies}
	s.resource = "auth/tokens/" + t.Accessor
	if !t.RevokedAt.IsZero() {
		return "already revoked", false, nil
	}
	var fn token.AuditFunc
	ran := false
	if audit != nil {
		fn = func(ctx context.Context, tx storage.Tx) error { ran = true; return audit(ctx, tx, "revoked") }
	}
	switch _, err := tokens.Revoke(ctx, t.Accessor, fn); {
	case errors.Is(err, token.ErrNotFound): // tidied away meanwhile
		return "revoked", false, nil
	case err != nil:
		return "", false, err
	}
	return "revoked", ran, nil
}

// introspect serves RFC 7662 to a caller allowed read on sys/introspect:
// a resource server of the customer's, which received a keyward token and
// wants to know what it stands for.
func (o *OAuth) introspect(r *http.Request) (any, *OAuthError) {
	ctx := r.Context()
	f, oe := form(r)
	if oe != nil {
		return nil, oe
	}
	plain := f.Get("token")
	if plain == "" {
		return nil, oauthErr(http.StatusBadRequest, "invalid_request", "token is required")
	}
	t, err := o.Tokens.Find(ctx, plain)
	switch {
	case errors.Is(err, token.ErrInvalid):
		AddAuditDetail(ctx, "active", "false")
		return &IntrospectionResponse{}, nil
	case errors.Is(err, token.ErrSealed), errors.Is(err, storage.ErrUnavailable):
		return nil, oauthErr(http.StatusServiceUnavailable, "temporarily_unavailable", "retry later")
	case err != nil:
		return nil, o.serverError(ctx, err)
	}
	AddAuditDetail(ctx, "token", t.AccessorHMAC)
	if !t.Active(o.now()) {
		AddAuditDetail(ctx, "active", "false")
		return &IntrospectionResponse{}, nil
	}
	AddAuditDetail(ctx, "active", "true")
	out := &IntrospectionResponse{
		Active: true, Scope: strings.Join(t.Policies, " "), ClientID: clientID(t), TokenType: tokenType(t),
		Iat: t.CreatedAt.Unix(), Sub: t.Principal, AuthMethod: t.AuthMethod, Rate: t.Rate.String(),
	}
	if !t.ExpiresAt.IsZero() {
		out.Exp = t.ExpiresAt.Unix()
	}
	if t.JKT != "" {
		out.Cnf = &Confirmation{JKT: t.JKT}
	}
	return out, nil
}
