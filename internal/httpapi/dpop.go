package httpapi

import (
	"errors"
	"net/http"
	"strings"
	"time"

	"github.com/keyward/keyward/internal/dpop"
)

// DPoP at the edge (RFC 9449 §7). A token bound to a client key (its
// Caller.JKT) is accepted only when the request
//   - names it with the DPoP scheme: "Authorization: DPoP <token>" (the
//     Bearer scheme and X-Keyward-Token are refused for a bound token, and
//     the DPoP scheme for an unbound one);
//   - carries exactly one DPoP header holding a proof for this method and
//     this URL (RequestURL), whose ath is the hash of this token, signed by
//     the key whose thumbprint the token is bound to, and never seen before.
// A refusal is a 401 with "WWW-Authenticate: DPoP error=..." and the usual
// JSON error body; the audit entry records dpop=refused and the reason.
// An accepted call's audit entry records dpop=bound.

// checkDPoP enforces the rules above for a caller with a bound token or a
// request using the DPoP scheme.
func (a *API) checkDPoP(r *http.Request, c *Caller, tok string, dpopScheme bool) error {
	ctx := r.Context()
	refuse := func(code, reason string) error {
		AddAuditDetail(ctx, "dpop", "refused")
		AddAuditDetail(ctx, "dpop_error", reason)
		return &Error{Status: http.StatusUnauthorized, Code: CodeUnauthenticated, Message: reason,
			WWWAuthenticate: a.dpopChallenge(code, reason)}
	}
	switch {
	case c.JKT == "":
		return refuse("invalid_token", "the token is not DPoP-bound: send it as Authorization: Bearer")
	case !dpopScheme:
		return refuse("invalid_token", "the token is DPoP-bound: send it as Authorization: DPoP with a DPoP proof header")
	case a.deps.DPoP == nil:
		return refuse("invalid_token", "this server does not accept DPoP-bound tokens")
	}
	if n, ok := a.deps.DPoP.Nonce(); ok {
		state(ctx).dpopNonce = n
	}
	proofs := r.Header.Values("DPoP")
	if len(proofs) != 1 {
		return refuse("invalid_dpop_proof", "exactly one DPoP proof header is required")
	}
	_, err := a.deps.DPoP.Verify(ctx, proofs[0], dpop.Expect{Method: r.Method, URL: RequestURL(r), AccessToken: tok, JKT: c.JKT})
	switch {
	case errors.Is(err, dpop.ErrUseNonce):
		return refuse("use_dpop_nonce", "a fresh server nonce is required: sign a new proof with the nonce of the DPoP-Nonce header")
	case errors.Is(err, dpop.ErrBusy):
		return &Error{Status: http.StatusServiceUnavailable, Code: CodeUnavailable, RetryAfter: 5 * time.Second,
			Message: "too many DPoP proofs in flight; retry shortly", Err: err}
	case errors.Is(err, dpop.ErrUnavailable):
		return &Error{Status: http.StatusServiceUnavailable, Code: CodeUnavailable, RetryAfter: time.Second,
			Message: "the DPoP proof could not be recorded against replay; retry shortly with a new proof"}
	case errors.Is(err, dpop.ErrInvalid):
		return refuse("invalid_dpop_proof", err.Error())
	case err != nil: // the request's own URL did not parse (a bad Host)
		return refuse("invalid_dpop_proof", "the request URL cannot be checked against the proof")
	}
	AddAuditDetail(ctx, "dpop", "bound")
	return nil
}

// dpopChallenge is a WWW-Authenticate value for the DPoP scheme.
func (a *API) dpopChallenge(code, reason string) string {
	algs := dpop.DefaultAlgorithms
	if a.deps.DPoP != nil {
		algs = a.deps.DPoP.Algorithms()
	}
	return `DPoP error="` + code + `", error_description="` + quoteEscape(reason) + `", algs="` + strings.Join(algs, " ") + `"`
}

// quoteEscape makes s safe inside a quoted-string.
func quoteEscape(s string) string {
	return strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(s)
}

// RequestURL is the URL a client addressed to make r, without query: what a
// DPoP proof's htu must name. With Deps.PublicURL set it is that URL plus
// the request path, whatever Host the request carried. Otherwise the scheme
// is https when the connection is TLS, else X-Forwarded-Proto when the peer
// is a trusted proxy, else http; and the host is the Host header.
//
// Behind a proxy that terminates TLS or rewrites Host, set the public URL:
// the rebuilt URL would not be the one the client signed.
func RequestURL(r *http.Request) string {
	a := state(r.Context()).api
	path := r.URL.EscapedPath()
	if a != nil && a.deps.PublicURL != nil {
		u := a.deps.PublicURL
		return u.Scheme + "://" + u.Host + strings.TrimSuffix(u.EscapedPath(), "/") + path
	}
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	} else if a != nil && a.trustedProxy(peerAddr(r)) {
		if p := strings.ToLower(r.Header.Get("X-Forwarded-Proto")); p == "https" || p == "http" {
			scheme = p
		}
	}
	return scheme + "://" + r.Host + path
}
