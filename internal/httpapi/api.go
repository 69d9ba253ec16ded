// Package httpapi is keyward's HTTP edge: the route table, middleware
// (request id, panic recovery, body limit, client address, metrics), the
// authentication → the credential's own limits (Limits: a token's rate) →
// authorisation → the limits of authorised requests (an API key's rate and
// quota) → handler → audit path of every route, the RateLimit-* headers of
// the strictest rate limit that applied, and the one translation of domain
// errors into DESIGN.md's error vocabulary.
//
// Handlers are thin: decode, validate, call a domain service, return a value.
// They never write the response themselves, so the audit entry is appended
// before the response leaves (fail closed: no audit, no response).
//
// Imported only by internal/server.
package httpapi

import (
	"context"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"math"
	"math/rand/v2"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/keyward/keyward/internal/apikey"
	"github.com/keyward/keyward/internal/dpop"
	"github.com/keyward/keyward/internal/monitor"
	"github.com/keyward/keyward/internal/ratelimit"
	"github.com/keyward/keyward/internal/storage"
	"github.com/keyward/keyward/internal/token"
)

// Caller is an authenticated client.
type Caller struct {
	Principal    string   // e.g. "root", "user:alice", "service:ci"
	AuthMethod   string   // "token", "root", ...
	Accessor     string   // token accessor (not secret)
	AccessorHMAC string   // what the audit log stores
	Policies     []string // bound policy names
	BoundEnvs    []string // when not empty, the only environments reachable
	// JKT, when set, binds the credential to a client key (DPoP, RFC 9449):
	// every request must carry a fresh proof signed by that key.
	JKT string
	// Token is the access token the caller presented (nil for other
	// credentials); handlers that act on it (child tokens, renew-self) use it.
	Token *token.Token
	// Key is the client API key the caller presented (nil for other
	// credentials). Its scopes replace policy evaluation: a key may only
	// proxy (action proxy) on resources its scopes match, and nothing else,
	// AnyToken routes included. Limits charges its rate and quota.
	Key *apikey.Key
}

// Authenticator turns a bearer credential into a Caller.
type Authenticator interface {
	Authenticate(ctx context.Context, bearer string, src netip.Addr) (*Caller, error)
}

// Rechecker is implemented by an Authenticator that can check a credential
// again for a request still under way without spending anything of it (a
// use of a use-limited token). The session check of a WebSocket session or
// a streamed answer uses it when present.
type Rechecker interface {
	Recheck(ctx context.Context, bearer string, src netip.Addr) (*Caller, error)
}

// Limits applies the limits of the credential a request was made with.
//
// The edge calls Authenticated once the caller is known (and its DPoP proof
// checked), before authorisation: limits that count every request the
// credential makes, refused ones included (a token's rate). It calls
// Authorized once the request is allowed, before the handler runs (on
// AdmitsItself routes, when the handler calls Admit): limits that count
// only what the credential was allowed to do (an API key's rate and quota,
// so a request refused with 403 costs the key nothing).
//
// Each returns the rate decision it applied (the zero Decision when none),
// reported to the client in the RateLimit-* headers, or an error to refuse
// the request with: typically a 429 *Error carrying Retry-After and the
// RateLimit-* headers of the limit that refused.
type Limits interface {
	Authenticated(ctx context.Context, c *Caller) (ratelimit.Decision, error)
	Authorized(ctx context.Context, c *Caller, src netip.Addr) (ratelimit.Decision, error)
}

// Authorizer decides whether a caller may perform action on resource; the
// reason explains a refusal (it may be empty when allowed).
type Authorizer interface {
	Decide(c *Caller, action, resource string) (allowed bool, reason string)
}

// AuditEvent is what the edge knows of a request when it is done.
type AuditEvent struct {
	Time        time.Time
	RequestID   string
	Caller      *Caller // nil when unauthenticated
	Action      string
	Resource    string
	SourceAddr  string
	UserAgent   string
	Outcome     string // allowed, denied, error
	Status      int
	Latency     time.Duration
	Detail      AuditDetails
	Environment string
}

// Auditor appends an audit entry durably before the response is written.
type Auditor interface {
	// AuditRequest appends through group commit (reads, refusals).
	AuditRequest(ctx context.Context, e *AuditEvent) error
	// AuditTx appends inside the transaction of a change, so the change and
	// its entry commit together.
	AuditTx(ctx context.Context, tx storage.Tx, e *AuditEvent) error
}

// Route is one endpoint.
type Route struct {
	Pattern string // ServeMux pattern with method, e.g. "GET /v1/sys/health"
	// Open routes need no token and are served while sealed when Sealed is
	// also set; all others need a valid token whose policies allow Action on
	// the resource returned by Resource.
	Open bool
	// AnyToken routes need a valid token but no policy: what they do is
	// bounded by the token itself (lookup-self, a child within its parent).
	AnyToken bool
	// WhileSealed routes are served when the barrier is sealed.
	WhileSealed bool
	// NoAudit skips the audit log (health, metrics).
	NoAudit  bool
	Action   string
	Resource func(r *http.Request) (string, error)
	Handle   func(r *http.Request) (int, any, error)
	// Raw handlers write the response themselves (metrics, streaming).
	Raw http.HandlerFunc
	// OwnBodyLimit routes bound the request body themselves (the gateway
	// applies each integration's limit); the edge's MaxBodyBytes does not
	// apply to them.
	OwnBodyLimit bool
	// AdmitsItself routes call Admit themselves once their own checks
	// passed (the gateway: the integration's methods, paths and rates), so
	// a call they refuse costs the caller's credential nothing; the edge
	// admits every other authorised request before its handler runs.
	AdmitsItself bool
	// AuditAsync routes queue their audit entry (AsyncAuditor) instead of
	// waiting for its group commit before answering: data-plane calls made
	// at a customer's request rate (key verification). The entry is still
	// written, in order, within the audit log's AsyncDelay. The edge falls
	// back to a synchronous append, which fails the request (fail closed)
	// when the log cannot be written, whenever the log is unhealthy or its
	// queue refuses the entry (full).
	AuditAsync bool
	// DataPlane routes are the ones apps, devices and customers' own
	// services call at request rate: the gateway, token exchange,
	// revocation and introspection, key verification and health. They are
	// also served on the data-plane listener (DataPlane), which serves
	// nothing else.
	DataPlane bool
	// Summary describes the route for the OpenAPI document and help.
	Summary string
}

// Deps are the services the edge needs.
type Deps struct {
	Log          *slog.Logger
	Auth         Authenticator
	Authz        Authorizer
	Audit        Auditor // nil: no audit log yet
	Sealed       func() bool
	Errors       *ErrorMapper
	Metrics      *Metrics
	MaxBodyBytes int64
	// TrustedProxies: when the peer is one of these, X-Forwarded-For names the
	// client and X-Forwarded-Proto the scheme it used.
	TrustedProxies []netip.Prefix
	// Limits, when set, applies the limits of each request's credential
	// (a token's rate; an API key's rate and quota).
	Limits Limits
	// Usage, when set, counts each request made with an access token (kind
	// "token", subject its accessor) or an API key (kind "key", subject its
	// id) by response status.
	Usage func(kind, subject string, status int)
	// DPoP verifies the proofs of DPoP-bound tokens (nil: bound tokens are
	// refused). The token endpoint shares it, so a proof is accepted once.
	DPoP *dpop.Verifier
	// PublicURL, when set, is the base URL clients address this server by
	// (scheme, host and an optional path prefix). A DPoP proof's htu is
	// compared with it plus the request path; without it the URL is rebuilt
	// from the request (see RequestURL).
	PublicURL *url.URL
	// AuditHealthy reports the audit log's state (nil: healthy); AuditAsync
	// routes append synchronously, and so fail closed, while it fails.
	AuditHealthy func() error
	// CORSOrigins are the web origins whose pages may call the DataPlane
	// routes cross-origin ("*": any), lower-case scheme://host[:port] as
	// config.Config.ParsedCORSOrigins returns them; nil: none (cors.go).
	CORSOrigins []string
}

// API serves a route table.
type API struct {
	deps      Deps
	mux       *http.ServeMux
	routes    []Route
	dataPlane map[string]bool // patterns of DataPlane routes
	// gateway maps a method to its gateway route, which ServeHTTP
	// dispatches itself (gatewayRoute); nil when another route shares the
	// gateway's path prefix, so that the mux alone decides.
	gateway map[string]gatewayRoute
}

// gatewayRoute is a gateway route, for the dispatch that skips the mux.
type gatewayRoute struct {
	pattern string
	h       http.Handler
}

// New builds the handler for routes.
func New(deps Deps, routes []Route) *API {
	if deps.Errors == nil {
		deps.Errors = NewErrorMapper()
	}
	if deps.Log == nil {
		deps.Log = slog.New(slog.DiscardHandler)
	}
	if deps.MaxBodyBytes == 0 {
		deps.MaxBodyBytes = 1 << 20
	}
	a := &API{deps: deps, mux: http.NewServeMux(), routes: routes, dataPlane: map[string]bool{}, gateway: map[string]gatewayRoute{}}
	for _, rt := range routes {
		h := a.wrap(rt)
		a.mux.Handle(rt.Pattern, h)
		if rt.DataPlane {
			a.dataPlane[rt.Pattern] = true
		}
		method, path, _ := strings.Cut(rt.Pattern, " ")
		switch {
		case path == gatewayPattern && a.gateway != nil:
			a.gateway[method] = gatewayRoute{pattern: rt.Pattern, h: h}
		case strings.HasPrefix(path, "/v1/gateway"):
			a.gateway = nil
		}
	}
	a.mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		if allow := a.allowedMethods(r); len(allow) > 0 {
			w.Header().Set("Allow", strings.Join(allow, ", "))
			a.writeError(w, r, Errorf(http.StatusMethodNotAllowed, CodeMethodNotAllowed, "%s is not allowed on %s (allowed: %s)", r.Method, r.URL.Path, strings.Join(allow, ", ")))
			return
		}
		a.writeError(w, r, Errorf(http.StatusNotFound, CodeNotFound, "no route for %s %s", r.Method, r.URL.Path))
	})
	return a
}

// allowedMethods lists the methods that have a route for r's path.
func (a *API) allowedMethods(r *http.Request) []string {
	var allow []string
	for _, m := range []string{http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodPatch, http.MethodDelete} {
		probe := r.Clone(r.Context())
		probe.Method = m
		if _, pattern := a.mux.Handler(probe); pattern != "" && pattern != "/" {
			allow = append(allow, m)
		}
	}
	return allow
}

// Routes returns the route table.
func (a *API) Routes() []Route { return a.routes }

// DataPlaneRoutes returns the routes of routes marked DataPlane, for the
// data-plane listener's API.
func DataPlaneRoutes(routes []Route) []Route {
	var out []Route
	for _, rt := range routes {
		if rt.DataPlane {
			out = append(out, rt)
		}
	}
	return out
}

type ctxKey int

const (
	keyRequest ctxKey = iota
)

// reqState is per-request state carried in the context.
type reqState struct {
	api      *API
	id       string
	start    time.Time
	src      netip.Addr
	caller   *Caller
	detail   AuditDetails // AddAuditDetail's, in detailBuf while they fit
	env      string
	audited  bool
	resource string
	action   string
	ua       string
	// status is what a handler that audits inside its transaction will
	// answer on success (WillRespond).
	status int
	// outcome, when set, overrides the audit outcome derived from the status.
	outcome string
	// dpopNonce is the server nonce to send back (DPoP-Nonce) to a request
	// that carried a DPoP proof, when the node requires nonces.
	dpopNonce string
	// rawBody is the request body before the edge's size limit, for
	// OwnBodyLimit routes.
	rawBody io.ReadCloser
	// admitted is set once Limits.Authorized ran for the request.
	admitted bool
	// rate is the strictest rate limit that applied to the request so far
	// (zero Limit: none); the response carries it in RateLimit-* headers.
	rate ratelimit.Decision
	// srcText is src as text when the request's RemoteAddr already holds
	// it (peer), else "".
	srcText string
	// rec and idHeader live here to save the request two allocations.
	rec      statusRecorder
	idHeader [1]string
	// integration is the name a gateway call gives, when the edge's
	// dispatch found its route (gatewayRouteOf) rather than the mux, which
	// sets it as a path value; IntegrationOf reads either.
	integration string
	// detailBuf holds detail while it fits: a gateway call's four to six
	// details cost no allocation.
	detailBuf [6]auditDetail
	// event is finalAuditEvent's.
	event AuditEvent
}

func state(ctx context.Context) *reqState {
	s, _ := ctx.Value(keyRequest).(*reqState)
	if s == nil {
		return &reqState{}
	}
	return s
}

// CallerFrom returns the authenticated caller of a request, or nil.
func CallerFrom(ctx context.Context) *Caller { return state(ctx).caller }

// RequestID returns the request's id.
func RequestID(ctx context.Context) string { return state(ctx).id }

// SourceAddr returns the client address of a request.
func SourceAddr(ctx context.Context) netip.Addr { return state(ctx).src }

// AddAuditDetail records a non-secret detail (a path, a version) for the
// request's audit entry, replacing the value key already has.
func AddAuditDetail(ctx context.Context, key, value string) {
	s := state(ctx)
	if s.detail == nil {
		s.detail = s.detailBuf[:0]
	}
	s.detail.Set(key, value)
}

// SetAuditEnvironment records the environment a request touched.
func SetAuditEnvironment(ctx context.Context, env string) { state(ctx).env = env }

// SetAuditOutcome overrides the audit outcome the status implies (a refused
// OAuth grant answers 400 but is "denied").
func SetAuditOutcome(ctx context.Context, outcome string) { state(ctx).outcome = outcome }

// MarkAudited tells the edge that the handler appended the request's audit
// entry itself, inside its write transaction.
func MarkAudited(ctx context.Context) { state(ctx).audited = true }

// AuditEventFor builds the audit entry of the request in ctx as it stands,
// for handlers that append it inside their own transaction.
func AuditEventFor(ctx context.Context, status int) *AuditEvent {
	ev := new(AuditEvent)
	state(ctx).fillAuditEvent(ev, status)
	return ev
}

// fillAuditEvent sets ev to the audit entry of the request as it stands.
func (s *reqState) fillAuditEvent(ev *AuditEvent, status int) {
	*ev = AuditEvent{
		Time: s.start.UTC(), RequestID: s.id, Caller: s.caller, Action: s.action, Resource: s.resource,
		SourceAddr: s.srcString(), UserAgent: s.ua, Outcome: s.outcomeOf(status), Status: status,
		Latency: time.Since(s.start), Detail: slices.Clip(s.detail), Environment: s.env,
	}
}

// finalAuditEvent is AuditEventFor for a handler that builds its
// request's event once, when done (the gateway's proxy): the event is
// the request state's own, which saves the call an allocation.
func (s *reqState) finalAuditEvent(status int) *AuditEvent {
	s.fillAuditEvent(&s.event, status)
	return &s.event
}

// srcString is the client address as text.
func (s *reqState) srcString() string {
	if s.srcText != "" {
		return s.srcText
	}
	return s.src.String()
}

// WillRespond records the status a handler answers with when its change
// commits, for AuditEventFromContext.
func WillRespond(ctx context.Context, status int) { state(ctx).status = status }

// AuditEventFromContext is AuditEventFor for code that has only the
// request's context (domain services' in-transaction audit hooks). It
// returns nil outside a request.
func AuditEventFromContext(ctx context.Context) *AuditEvent {
	s, _ := ctx.Value(keyRequest).(*reqState)
	if s == nil {
		return nil
	}
	status := s.status
	if status == 0 {
		status = http.StatusOK
	}
	ev := new(AuditEvent)
	s.fillAuditEvent(ev, status)
	return ev
}

func (s *reqState) outcomeOf(status int) string {
	if s.outcome != "" {
		return s.outcome
	}
	return outcome(status)
}

func outcome(status int) string {
	switch {
	case status == http.StatusUnauthorized || status == http.StatusForbidden || status == http.StatusTooManyRequests:
		return "denied"
	case status >= 400:
		return "error"
	}
	return "allowed"
}

// ServeHTTP runs the outer middleware: request id, panic recovery, body
// limit, client address, security headers.
func (a *API) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s := &reqState{api: a, id: newRequestID(), start: time.Now(), ua: r.UserAgent()}
	s.src, s.srcText = a.clientAddr(r)
	h := w.Header()
	s.idHeader[0] = s.id
	h["X-Request-Id"] = s.idHeader[:]
	h["X-Content-Type-Options"] = hdrNosniff
	ctx := context.WithValue(r.Context(), keyRequest, s)
	r = r.WithContext(ctx)
	if a.deps.CORSOrigins != nil && a.cors(w, r) {
		return // a preflight, answered
	}
	if !cleanPath(r.URL.Path) {
		// ServeMux would redirect to the cleaned path, silently turning
		// secrets/a/../b into secrets/b; refuse instead.
		a.writeError(w, r, Invalid("invalid path: empty, '.' or '..' segments are not allowed"))
		return
	}
	s.rawBody = r.Body
	if r.Body != http.NoBody { // nothing to bound (most gateway calls)
		r.Body = http.MaxBytesReader(w, r.Body, a.deps.MaxBodyBytes)
	}
	rec := &s.rec
	rec.ResponseWriter = w
	defer func() {
		if v := recover(); v != nil {
			if v == http.ErrAbortHandler {
				panic(v)
			}
			a.deps.Log.Error("panic serving request", "request_id", s.id, "route", r.Pattern, "panic", fmt.Sprint(v), "stack", string(debug.Stack()))
			if !rec.wrote {
				a.writeError(rec, r, &Error{Status: http.StatusInternalServerError, Code: CodeInternal, Message: "internal error"})
			}
		}
		if a.deps.Metrics != nil {
			route := r.Pattern
			if route == "" {
				route = "unmatched"
			}
			a.deps.Metrics.observeRequest(route, rec.status(), time.Since(s.start))
		}
	}()
	if name, rt, ok := a.gatewayRouteOf(r); ok {
		r.Pattern = rt.pattern
		s.integration = name // not SetPathValue: two allocations a call
		rt.h.ServeHTTP(rec, r)
		return
	}
	a.mux.ServeHTTP(rec, r)
}

// IntegrationOf is the integration a request of a gateway route (the
// pattern's {integration}) names: the edge's dispatch (gatewayRouteOf)
// records it in the request's state, the mux as a path value. Handlers of
// such routes read it here, not with r.PathValue.
func IntegrationOf(r *http.Request) string {
	if s, _ := r.Context().Value(keyRequest).(*reqState); s != nil && s.integration != "" {
		return s.integration
	}
	return r.PathValue("integration")
}

// gatewayPattern is the path of the gateway's routes.
const gatewayPattern = "/v1/gateway/{integration}/{path...}"

// gatewayRouteOf finds the gateway route of r and its integration name
// as the mux would, without the mux's tree walk and allocations: the
// data plane's every request is a gateway call. It answers only for a
// plain path, /v1/gateway/NAME/... with no escape in NAME, and leaves
// everything else (escapes, /v1/gateway/NAME without its slash, other
// methods) to the mux. r's path is clean (ServeHTTP checked it).
// TestGatewayDispatchMatchesMux holds it to the mux.
func (a *API) gatewayRouteOf(r *http.Request) (string, gatewayRoute, bool) {
	rt, ok := a.gateway[r.Method]
	if !ok || r.URL.RawPath != "" {
		return "", rt, false
	}
	rest, ok := strings.CutPrefix(r.URL.Path, "/v1/gateway/")
	i := strings.IndexByte(rest, '/')
	if !ok || i <= 0 || strings.IndexByte(rest[:i], '%') >= 0 {
		return "", rt, false
	}
	return rest[:i], rt, true
}

// wrap applies the per-route path: sealed check, authentication,
// authorisation, handler, audit, response.
func (a *API) wrap(rt Route) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s := state(r.Context())
		s.action = rt.Action
		if rt.OwnBodyLimit && s.rawBody != nil {
			r.Body = s.rawBody
		}
		if !rt.WhileSealed && a.deps.Sealed != nil && a.deps.Sealed() {
			a.finish(w, r, rt, 0, nil, Errorf(http.StatusServiceUnavailable, CodeSealed, "keyward is sealed"))
			return
		}
		if !rt.Open {
			err := a.authorize(r, rt, s)
			if s.dpopNonce != "" {
				w.Header().Set("DPoP-Nonce", s.dpopNonce) // RFC 9449 §8: the nonce to use next
			}
			if err != nil {
				a.finish(w, r, rt, 0, nil, err)
				return
			}
		}
		if rt.Raw != nil {
			s.setRateHeaders(w.Header())
			rt.Raw(w, r)
			return
		}
		status, body, err := rt.Handle(r)
		a.finish(w, r, rt, status, body, err)
	})
}

func (a *API) authorize(r *http.Request, rt Route, s *reqState) error {
	bearer, dpopScheme, ok := bearerToken(r)
	if !ok {
		return Errorf(http.StatusUnauthorized, CodeUnauthenticated, "missing bearer token (Authorization: Bearer <token>)")
	}
	refused := func(err error) error {
		if he := a.deps.Errors.Translate(err); he.Status == http.StatusServiceUnavailable || he.Status == http.StatusTooManyRequests {
			return he // sealed or storage down: not the caller's fault; over a rate or quota: say so
		}
		return &Error{Status: http.StatusUnauthorized, Code: CodeUnauthenticated, Message: "token is invalid or expired", Err: err}
	}
	// A use-limited token's use is spent only once its DPoP proof passed:
	// a refusal (a missing server nonce, a thief without the key) spends
	// none.
	recheck, peek := a.recheck()
	caller, err := recheck(r.Context(), bearer, s.src)
	if err != nil {
		return refused(err)
	}
	s.caller = caller
	// DPoP (RFC 9449): a token bound to a client key is accepted only with
	// the DPoP scheme and a fresh proof by that key for this very request.
	// Unbound tokens under the Bearer scheme pay this one comparison.
	if caller.JKT != "" || dpopScheme {
		if err := a.checkDPoP(r, caller, bearer, dpopScheme); err != nil {
			return err
		}
	}
	if peek && caller.Token != nil && caller.Token.MaxUses > 0 {
		if caller, err = a.deps.Auth.Authenticate(r.Context(), bearer, s.src); err != nil {
			return refused(err) // used up meanwhile
		}
		s.caller = caller
	}
	resource := ""
	var resErr error
	if rt.Resource != nil {
		if resource, resErr = rt.Resource(r); resErr == nil {
			s.resource = resource // for the audit entry of a refusal too
		}
	}
	// After the proof: a thief holding a bound token without its key
	// cannot spend the token's rate. Before a bad resource's 400: every
	// request the caller makes counts.
	if a.deps.Limits != nil {
		d, err := a.deps.Limits.Authenticated(r.Context(), caller)
		if err != nil {
			return err
		}
		s.noteRate(d)
	}
	if resErr != nil {
		return resErr
	}
	if !rt.AnyToken || caller.Key != nil {
		if allowed, reason := a.deps.Authz.Decide(caller, rt.Action, resource); !allowed {
			return &Error{Status: http.StatusForbidden, Code: CodePermissionDenied,
				Message: fmt.Sprintf("permission denied: %s on %s", rt.Action, resource), Err: errors.New(reason)}
		}
	}
	if rt.AdmitsItself {
		return nil
	}
	return a.admit(r.Context(), s)
}

// sessionCheck returns a check that r's credential still authenticates and
// is still allowed action on the request's resource, for a session that
// outlives the request (a WebSocket through the gateway): revocation,
// expiry and a policy change end it. nil when r had no credential.
func (a *API) sessionCheck(r *http.Request, s *reqState, action string) func() error {
	if s.caller == nil || a.deps.Auth == nil || a.deps.Authz == nil {
		return nil
	}
	// Nothing is read until a check runs: most calls end before the first.
	return func() error {
		bearer, _, _ := bearerToken(r)
		recheck, _ := a.recheck() // the request spent its use; a check spends none
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		c, err := recheck(ctx, bearer, s.src)
		if err != nil {
			return err
		}
		if ok, reason := a.deps.Authz.Decide(c, action, s.resource); !ok {
			return errors.New(reason)
		}
		return nil
	}
}

// recheck is the authenticator's check that spends no use of a
// use-limited token (Rechecker), and whether it has one; else Authenticate.
func (a *API) recheck() (func(ctx context.Context, bearer string, src netip.Addr) (*Caller, error), bool) {
	if rc, ok := a.deps.Auth.(Rechecker); ok {
		return rc.Recheck, true
	}
	return a.deps.Auth.Authenticate, false
}

// admit applies the limits that count authorised requests (Limits.Authorized),
// once per request.
func (a *API) admit(ctx context.Context, s *reqState) error {
	if a.deps.Limits == nil || s.caller == nil || s.admitted {
		return nil
	}
	s.admitted = true
	d, err := a.deps.Limits.Authorized(ctx, s.caller, s.src)
	if err != nil {
		return err
	}
	s.noteRate(d)
	return nil
}

// Admit applies the limits that count authorised requests to the request
// in ctx: what the edge does before the handler of a route without
// AdmitsItself. A route with AdmitsItself calls it once its own checks
// passed; a second call does nothing. A non-nil error refuses the request
// (render it).
func Admit(ctx context.Context) error {
	s := state(ctx)
	if s.api == nil {
		return nil
	}
	return s.api.admit(ctx, s)
}

// noteRate records a rate limit that applied to the request; the response
// reports the strictest (ratelimit.Strictest).
func (s *reqState) noteRate(d ratelimit.Decision) {
	if d.Limit != 0 {
		s.rate = ratelimit.Strictest(s.rate, d)
	}
}

// setRateHeaders writes the RateLimit-* headers of the strictest rate
// limit that applied to the request so far, if any. A refusal's own
// headers (a 429 *Error's Header) are written after them and win.
func (s *reqState) setRateHeaders(h http.Header) {
	if s.rate.Limit != 0 {
		ratelimit.SetHeaders(h, s.rate)
	}
}

// finish audits the request and writes the response.
func (a *API) finish(w http.ResponseWriter, r *http.Request, rt Route, status int, body any, err error) {
	s := state(r.Context())
	if st, ok := body.(*Stream); ok {
		defer st.Body.Close()
	}
	var herr *Error
	if err != nil {
		herr = a.deps.Errors.Translate(err)
		status = herr.Status
		if status >= 500 {
			a.deps.Log.Error("request failed", "request_id", s.id, "route", rt.Pattern, "err", err)
		} else if herr.Err != nil {
			a.deps.Log.Debug("request refused", "request_id", s.id, "route", rt.Pattern, "status", status, "err", herr.Err)
		}
	}
	if status == 0 {
		status = http.StatusOK
	}
	if a.deps.Audit != nil && !rt.NoAudit && !s.audited {
		ev := AuditEventFor(r.Context(), status)
		if aerr := a.audit(r.Context(), rt, ev); aerr != nil {
			a.deps.Log.Error("audit append failed; refusing the response", "request_id", s.id, "err", aerr)
			herr = Errorf(http.StatusServiceUnavailable, CodeUnavailable, "the audit log cannot be written; request refused")
			status = herr.Status
		}
	}
	if a.deps.Usage != nil {
		recordCaller(a.deps.Usage, s.caller, status)
	}
	s.setRateHeaders(w.Header())
	if herr != nil {
		a.writeError(w, r, herr)
		return
	}
	if wh, ok := body.(withHeaders); ok {
		maps.Copy(w.Header(), wh.header)
		body = wh.body
	}
	if status == http.StatusNoContent || body == nil {
		w.WriteHeader(status)
		return
	}
	if st, ok := body.(*Stream); ok {
		st.send(w, status)
		return
	}
	writeJSON(w, status, body)
}

// audit appends the entry of a request: queued for AuditAsync routes
// when the log takes it, else through group commit before the response.
func (a *API) audit(ctx context.Context, rt Route, ev *AuditEvent) error {
	if rt.AuditAsync {
		return appendQueued(ctx, a.deps.Audit, a.deps.AuditHealthy, a.deps.Log, ev)
	}
	return a.deps.Audit.AuditRequest(ctx, ev)
}

// appendQueued queues ev with the audit log while it is healthy and its
// queue has room (an AsyncAuditor), and otherwise appends it now, so a
// failing or overrun log is felt by the caller: an error, or the wait.
func appendQueued(ctx context.Context, aud Auditor, healthy func() error, log *slog.Logger, ev *AuditEvent) error {
	if q, ok := aud.(AsyncAuditor); ok && (healthy == nil || healthy() == nil) {
		err := q.AuditRequestAsync(ev, func(err error) {
			if err != nil {
				log.Error("queued audit append failed", "request_id", ev.RequestID, "err", err)
			}
		})
		if err == nil {
			return nil
		}
	}
	return aud.AuditRequest(ctx, ev)
}

// withHeaders is a handler's response body with extra response headers
// (Retry-After on an OAuth error).
type withHeaders struct {
	body   any
	header http.Header
}

func (a *API) writeError(w http.ResponseWriter, r *http.Request, e *Error) { renderError(w, r, e) }

// renderError writes e in the error format, with the request's id.
func renderError(w http.ResponseWriter, r *http.Request, e *Error) {
	if e.Status == http.StatusServiceUnavailable && e.Code == CodeSealed {
		w.Header().Set("Retry-After", "5")
	}
	if e.RetryAfter > 0 {
		w.Header().Set("Retry-After", strconv.Itoa(int(math.Ceil(e.RetryAfter.Seconds()))))
	}
	if e.WWWAuthenticate != "" {
		w.Header().Set("WWW-Authenticate", e.WWWAuthenticate)
	}
	for k, v := range e.Header {
		w.Header()[k] = v
	}
	writeJSON(w, e.Status, errorBody{Error: errorObject{Code: e.Code, Message: e.Message, RequestID: state(r.Context()).id, Details: e.Details}})
}

// recordCaller counts one request of the caller's credential for usage:
// an API key by its id, an access token by its accessor.
func recordCaller(usage func(kind, subject string, status int), c *Caller, status int) {
	if kind, subject := callerUsage(c); subject != "" {
		usage(kind, subject, status)
	}
}

// callerUsage is the usage kind and subject of the caller's credential:
// an API key by its id, an access token by its accessor; "", "" when
// there is none to count.
func callerUsage(c *Caller) (kind, subject string) {
	if c == nil || c.Accessor == "" {
		return "", ""
	}
	if c.Key != nil {
		return monitor.KindKey, c.Accessor
	}
	return monitor.KindToken, c.Accessor
}

// WriteError renders err for raw handlers.
func (a *API) WriteError(w http.ResponseWriter, r *http.Request, err error) {
	a.writeError(w, r, a.deps.Errors.Translate(err))
}

// cleanPath reports whether p has no empty, "." or ".." segments (a single
// trailing slash is allowed).
func cleanPath(p string) bool {
	if p == "" || p[0] != '/' {
		return false
	}
	rest := strings.TrimSuffix(p[1:], "/")
	if rest == "" {
		return true
	}
	for {
		seg, after, more := strings.Cut(rest, "/")
		if seg == "" || seg == "." || seg == ".." {
			return false
		}
		if !more {
			return true
		}
		rest = after
	}
}

// bearerToken returns the token of "Authorization: Bearer <token>" (or
// X-Keyward-Token), or of "Authorization: DPoP <token>" with dpopScheme set.
func bearerToken(r *http.Request) (tok string, dpopScheme, ok bool) {
	h := r.Header.Get("Authorization")
	if h == "" {
		if t := r.Header.Get("X-Keyward-Token"); t != "" {
			return t, false, true
		}
		return "", false, false
	}
	const bearer, dpop = "bearer ", "dpop "
	switch {
	case len(h) > len(bearer) && strings.EqualFold(h[:len(bearer)], bearer):
		return strings.TrimSpace(h[len(bearer):]), false, true
	case len(h) > len(dpop) && strings.EqualFold(h[:len(dpop)], dpop):
		return strings.TrimSpace(h[len(dpop):]), true, true
	}
	return "", false, false
}

func (a *API) clientAddr(r *http.Request) (netip.Addr, string) {
	addr, text := peer(r)
	if a.trustedProxy(addr) {
		if xff := r.Header.Get("X-Forwarded-For"); xff != "" {
			parts := strings.Split(xff, ",")
			if fa, err := netip.ParseAddr(strings.TrimSpace(parts[len(parts)-1])); err == nil {
				return fa.Unmap(), ""
			}
		}
	}
	return addr, text
}

// peerAddr is the address of the TCP peer.
func peerAddr(r *http.Request) netip.Addr {
	addr, _ := peer(r)
	return addr
}

// peer is the address of the TCP peer and, for an IPv4 address written
// as its String would write it, that text (a substring of RemoteAddr, so
// the audit entry of a call costs no formatting); "" otherwise.
func peer(r *http.Request) (netip.Addr, string) {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		host = r.RemoteAddr
	}
	addr, err := netip.ParseAddr(host)
	if err != nil {
		return netip.Addr{}, ""
	}
	if addr.Is4() { // dotted decimal, which ParseAddr accepts only in canonical form
		return addr, host
	}
	return addr.Unmap(), ""
}

func (a *API) trustedProxy(addr netip.Addr) bool {
	for _, p := range a.deps.TrustedProxies {
		if p.Contains(addr) {
			return true
		}
	}
	return false
}

// newRequestID names a request in logs, answers and the audit log: 96
// random bits, unique, and unguessable enough that a caller's IDs tell
// nothing of other requests (a counter would tell how many a node served
// between two). An ID is no secret and guards nothing, so it comes from
// math/rand/v2's generator (ChaCha8, seeded by the runtime from the
// system's), a few nanoseconds where crypto/rand's DRBG took 0.4 µs a
// request in the gateway benchmark's profile.
func newRequestID() string {
	var b [12]byte
	binary.LittleEndian.PutUint64(b[:8], rand.Uint64())
	binary.LittleEndian.PutUint32(b[8:], rand.Uint32())
	return hex.EncodeToString(b[:])
}

type statusRecorder struct {
	http.ResponseWriter
	code  int
	wrote bool
}

func (s *statusRecorder) WriteHeader(code int) {
	if !s.wrote {
		s.code = code
		s.wrote = true
	}
	s.ResponseWriter.WriteHeader(code)
}

func (s *statusRecorder) Write(b []byte) (int, error) {
	if !s.wrote {
		s.code = http.StatusOK
		s.wrote = true
	}
	return s.ResponseWriter.Write(b)
}

func (s *statusRecorder) status() int {
	if s.code == 0 {
		return http.StatusOK
	}
	return s.code
}

func (s *statusRecorder) Flush() {
	if f, ok := s.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

func (s *statusRecorder) Unwrap() http.ResponseWriter { return s.ResponseWriter }
