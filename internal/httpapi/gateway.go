package httpapi

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"sync"

	"github.com/keyward/keyward/internal/gateway"
	"github.com/keyward/keyward/internal/monitor"
	"github.com/keyward/keyward/internal/ratelimit"
	"github.com/keyward/keyward/internal/storage"
)

// Error codes of the gateway's upstream failures.
const (
	CodeBadGateway     = "bad_gateway"
	CodeGatewayTimeout = "gateway_timeout"
)

// GatewayLimiter is asked before each proxied call the integration
// accepts, with the integration's rates (rate: all its calls; callerRate:
// each caller's; zero when unset). Allow returns the strictest rate
// decision that applied (the zero Decision when none) to let the call
// through, or the error to answer with, typically an *Error with status 429
// and RetryAfter.
type GatewayLimiter interface {
	Allow(r *http.Request, integration string, rate, callerRate ratelimit.Limit) (ratelimit.Decision, error)
}

// Gateway serves the integration routes and the proxy route.
type Gateway struct {
	Svc   *gateway.Service
	Proxy *gateway.Proxy
	Authz Authorizer
	Audit Auditor // nil: changes are audited by the edge after the fact; calls are not audited
	// AuditHealthy reports the audit log's state; while it returns an
	// error, proxied calls are refused with 503 before they start.
	AuditHealthy func() error
	// Limiter, when set, is asked before every proxied call; nil: no limit.
	Limiter GatewayLimiter
	// Usage, when set, counts every proxied call for the integration and
	// for the caller's token or API key (empty kind and subject when there
	// is none), by status, in one go (monitor.Usage.RecordPair).
	Usage func(kind1, subject1, kind2, subject2 string, status int)
	// Errors translates errors of the proxy route (which writes its own
	// response); nil: a mapper with the gateway's errors.
	Errors *ErrorMapper
	// DataPlaneURL, when set, returns the base URL apps call the gateway at
	// when it differs from the API's (a separate data-plane address), for
	// the gateway_url of integrations ("" when unknown).
	DataPlaneURL func(r *http.Request) string
	Log          *slog.Logger
	once         sync.Once
	// sessions counts WebSocket calls in flight: their connections are
	// hijacked, so the HTTP server's shutdown does not wait for them.
	sessMu   sync.Mutex
	sessDone bool // WaitSessions was called: no new ones
	sessions sync.WaitGroup
}

// WaitSessions refuses new WebSocket calls and waits until every one under
// way has ended and handed its audit entry to the log. Call it after the
// proxy closed its sessions.
func (h *Gateway) WaitSessions() {
	h.sessMu.Lock()
	h.sessDone = true
	h.sessMu.Unlock()
	h.sessions.Wait()
}

// beginSession counts a WebSocket call in; false once WaitSessions ran.
func (h *Gateway) beginSession() bool {
	h.sessMu.Lock()
	defer h.sessMu.Unlock()
	if h.sessDone {
		return false
	}
	h.sessions.Add(1)
	return true
}

// AsyncAuditor is implemented by an Auditor that can queue an entry
// without the caller waiting for its commit. The gateway uses it when
// present: the audit log then gathers the entries of finished calls into
// large group commits by itself (audit.Log.AppendAsync), with no goroutine
// or timer per call. done is called once with the entry's write result.
type AsyncAuditor interface {
	AuditRequestAsync(e *AuditEvent, done func(error)) error
}

// MapGatewayErrors registers the gateway package's errors.
func MapGatewayErrors(m *ErrorMapper) {
	m.Map(gateway.ErrInvalid, http.StatusBadRequest, CodeInvalidArgument, "")
	m.Map(gateway.ErrNotFound, http.StatusNotFound, CodeNotFound, "")
	m.Map(gateway.ErrExists, http.StatusConflict, CodeConflict, "")
	m.Map(gateway.ErrBadPath, http.StatusBadRequest, CodeInvalidArgument, "")
	m.Map(gateway.ErrBadHeader, http.StatusBadRequest, CodeInvalidArgument, "")
	m.Map(gateway.ErrBadQuery, http.StatusBadRequest, CodeInvalidArgument, "")
	m.Map(gateway.ErrPathNotAllowed, http.StatusForbidden, CodePermissionDenied, "")
	m.Map(gateway.ErrMethodNotAllowed, http.StatusMethodNotAllowed, CodeMethodNotAllowed, "")
	m.Map(gateway.ErrTooLarge, http.StatusRequestEntityTooLarge, CodeTooLarge, "")
	m.Map(gateway.ErrWebSocket, http.StatusBadRequest, CodeInvalidArgument, "")
	m.Map(gateway.ErrTooManySessions, http.StatusServiceUnavailable, CodeUnavailable, "")
	// Fixed messages: the causes name internal addresses and secret paths.
	m.Map(gateway.ErrSecretUnavailable, http.StatusBadGateway, CodeBadGateway, "the integration's secret is unavailable (see the server log)")
	m.Map(gateway.ErrAddressBlocked, http.StatusBadGateway, CodeBadGateway, gateway.ErrAddressBlocked.Error())
	m.Map(gateway.ErrUpstreamUnavailable, http.StatusBadGateway, CodeBadGateway, "the upstream could not be reached")
	m.Map(gateway.ErrUpstreamTimeout, http.StatusGatewayTimeout, CodeGatewayTimeout, "")
	// Its messages give only the token endpoint's status and OAuth error code.
	m.Map(gateway.ErrTokenUnavailable, http.StatusBadGateway, CodeBadGateway, "")
}

// IntegrationRequest is the body of a create or update.
type IntegrationRequest struct {
	Name                 string           `json:"name"`
	Upstream             string           `json:"upstream"`
	Secret               string           `json:"secret"`
	Inject               string           `json:"inject"`
	Methods              []string         `json:"methods,omitempty"`
	Paths                []string         `json:"paths,omitempty"`
	Timeout              gateway.Duration `json:"timeout,omitempty"`
	MaxBodyBytes         int64            `json:"max_body_bytes,omitempty"`
	StripResponseHeaders []string         `json:"strip_response_headers,omitempty"`
	AllowPrivate         bool             `json:"allow_private,omitempty"`
	Rate                 string           `json:"rate,omitempty"`
	CallerRate           string           `json:"caller_rate,omitempty"`
	// OAuth2 goes with inject "oauth2". Like every other field, an absent
	// one on PUT means none: an update replaces every setting.
	OAuth2 *gateway.OAuth2 `json:"oauth2,omitempty"`
	// WebSocket lets callers open WebSocket sessions through the
	// integration (it needs GET among the methods); absent on PUT, off.
	WebSocket bool `json:"websocket,omitempty"`
}

func (in *IntegrationRequest) integration() gateway.Integration {
	return gateway.Integration{
		Name: in.Name, Upstream: in.Upstream, Secret: in.Secret, Inject: in.Inject, Methods: in.Methods, Paths: in.Paths,
		Timeout: in.Timeout, MaxBodyBytes: in.MaxBodyBytes, StripResponseHeaders: in.StripResponseHeaders, AllowPrivate: in.AllowPrivate,
		Rate: in.Rate, CallerRate: in.CallerRate, OAuth2: in.OAuth2, WebSocket: in.WebSocket,
	}
}

// IntegrationResource is the policy resource of an integration.
func IntegrationResource(name string) string { return "integrations/" + name }

func integrationRes(r *http.Request) (string, error) {
	name := r.PathValue("name")
	if name == "" {
		name = IntegrationOf(r)
	}
	if err := gateway.ValidateName(name); err != nil {
		return "", err
	}
	return IntegrationResource(name), nil
}

// createRes authorises a create on the integration named in the body; the
// body is read (within the edge's limit) and put back for the handler. A
// body without a valid name is authorised on "integrations" and refused
// by the handler.
func createRes(r *http.Request) (string, error) {
	body, err := io.ReadAll(r.Body)
	if err != nil {
		return "", err
	}
	r.Body = io.NopCloser(bytes.NewReader(body))
	var peek struct {
		Name string `json:"name"`
	}
	if json.Unmarshal(body, &peek) == nil && gateway.ValidateName(peek.Name) == nil {
		return IntegrationResource(peek.Name), nil
	}
	return "integrations", nil
}

// IntegrationOut is an integration as the API shows it: with gateway_url,
// where apps call it, when the server knows a data-plane address of its own.
type IntegrationOut struct {
	gateway.Integration
	GatewayURL string `json:"gateway_url,omitempty"`
}

func (h *Gateway) out(r *http.Request, in gateway.Integration) IntegrationOut {
	o := IntegrationOut{Integration: in}
	if h.DataPlaneURL != nil {
		if base := h.DataPlaneURL(r); base != "" {
			o.GatewayURL = strings.TrimSuffix(base, "/") + "/v1/gateway/" + in.Name + "/"
		}
	}
	return o
}

func (h *Gateway) auditFn(status int) gateway.AuditFunc {
	if h.Audit == nil {
		return nil
	}
	return func(ctx context.Context, tx storage.Tx) error {
		return h.Audit.AuditTx(ctx, tx, AuditEventFor(ctx, status))
	}
}

func (h *Gateway) done(r *http.Request) {
	if h.Audit != nil {
		MarkAudited(r.Context())
	}
}

// checkSecret refuses an integration whose secret the caller may not read:
// whoever sets an integration's upstream decides where that secret is sent.
func (h *Gateway) checkSecret(r *http.Request, ref string) error {
	project, env, path, err := gateway.ParseSecretRef(ref)
	if err != nil {
		return err
	}
	AddAuditDetail(r.Context(), "secret", ref)
	res := SecretResource(project, env, path)
	if ok, reason := h.Authz.Decide(CallerFrom(r.Context()), "read", res); !ok {
		return &Error{Status: http.StatusForbidden, Code: CodePermissionDenied,
			Message: "permission denied: an integration may use only a secret its author may read (read on " + res + ")", Err: errors.New(reason)}
	}
	return nil
}

// Routes returns the integration routes and the proxy routes.
func (h *Gateway) Routes() []Route {
	routes := []Route{
		{
			Pattern: "POST /v1/integrations", Action: "write", Resource: createRes,
			Summary: "Create an integration: {\"name\", \"upstream\", \"secret\": \"P/E/PATH\", \"inject\", \"methods\", \"paths\", \"timeout\", \"max_body_bytes\", \"strip_response_headers\", \"allow_private\", \"rate\", \"caller_rate\", \"oauth2\": {\"token_url\", \"client_id\", \"scopes\", \"audience\", \"auth_style\"} (with \"inject\": \"oauth2\"), \"websocket\" (true: callers may open WebSocket sessions; needs GET among the methods)}; needs read on the secret.",
			Handle: func(r *http.Request) (int, any, error) {
				var in IntegrationRequest
				if err := decode(r, &in); err != nil {
					return 0, nil, err
				}
				if err := gateway.ValidateName(in.Name); err != nil {
					return 0, nil, err
				}
				if err := h.checkSecret(r, in.Secret); err != nil {
					return 0, nil, err
				}
				out, err := h.Svc.Create(r.Context(), in.integration(), caller(r), h.auditFn(http.StatusCreated))
				if err != nil {
					return 0, nil, err
				}
				h.done(r)
				return http.StatusCreated, h.out(r, *out), nil
			},
		},
		{
			Pattern: "GET /v1/integrations", Action: "list", Resource: static("integrations"),
			Summary: "List integrations (those the caller may list).",
			Handle: func(r *http.Request) (int, any, error) {
				all, err := h.Svc.List(r.Context())
				if err != nil {
					return 0, nil, err
				}
				c := CallerFrom(r.Context())
				out := []IntegrationOut{}
				for _, in := range all {
					if ok, _ := h.Authz.Decide(c, "list", IntegrationResource(in.Name)); ok {
						out = append(out, h.out(r, in))
					}
				}
				return http.StatusOK, map[string]any{"integrations": out}, nil
			},
		},
		{
			Pattern: "GET /v1/integrations/{name}", Action: "read", Resource: integrationRes,
			Summary: "Read an integration's settings (never the secret's value).",
			Handle: func(r *http.Request) (int, any, error) {
				in, err := h.Svc.Get(r.Context(), r.PathValue("name"))
				if err != nil {
					return 0, nil, err
				}
				return http.StatusOK, h.out(r, *in), nil
			},
		},
		{
			Pattern: "POST /v1/integrations/{name}/check", Action: "write", Resource: integrationRes,
			Summary: "Try an integration for its operator: its settings, its secret (for OAuth 2.0, a fresh token), a connection to the upstream and, with {\"path\"}, a GET of that path with the credential, of which only the status is reported. 200 with {\"ok\", \"steps\"} either way; needs write on the integration. With a path it spends the integration's rate limits like a proxied call (429 past them).",
			Handle: func(r *http.Request) (int, any, error) {
				var in struct {
					Path string `json:"path"`
				}
				if r.ContentLength != 0 {
					if err := decode(r, &in); err != nil {
						return 0, nil, err
					}
				}
				if in.Path != "" && !strings.HasPrefix(in.Path, "/") {
					return 0, nil, Invalid("path: want an absolute path below the upstream, e.g. /v1/me")
				}
				name := r.PathValue("name")
				if _, err := h.Svc.Get(r.Context(), name); err != nil {
					return 0, nil, err // 404 for an unknown integration
				}
				if in.Path != "" && h.Limiter != nil {
					// The request step is a call to the upstream: it spends
					// the integration's rates as a proxied call does, so a
					// check loop cannot exhaust the upstream's quota.
					rate, callerRate, err := h.Svc.Limits(r.Context(), name)
					if err != nil {
						return 0, nil, err
					}
					d, err := h.Limiter.Allow(r, name, rate, callerRate)
					if err != nil {
						return 0, nil, err
					}
					state(r.Context()).noteRate(d)
				}
				return http.StatusOK, h.Proxy.Check(r.Context(), name, in.Path), nil
			},
		},
		{
			Pattern: "PUT /v1/integrations/{name}", Action: "write", Resource: integrationRes,
			Summary: "Replace every setting of an integration (same body as create; name optional; an absent field takes its default, an absent \"oauth2\" means none, an absent \"websocket\" false); needs read on the secret.",
			Handle: func(r *http.Request) (int, any, error) {
				var in IntegrationRequest
				if err := decode(r, &in); err != nil {
					return 0, nil, err
				}
				name := r.PathValue("name")
				if in.Name != "" && in.Name != name {
					return 0, nil, Invalid("the body's name %q differs from the name in the path %q", truncate(in.Name, 64), name)
				}
				in.Name = name
				if err := h.checkSecret(r, in.Secret); err != nil {
					return 0, nil, err
				}
				out, err := h.Svc.Update(r.Context(), in.integration(), caller(r), h.auditFn(http.StatusOK))
				if err != nil {
					return 0, nil, err
				}
				h.done(r)
				return http.StatusOK, h.out(r, *out), nil
			},
		},
		{
			Pattern: "DELETE /v1/integrations/{name}", Action: "delete", Resource: integrationRes,
			Summary: "Delete an integration; calls through it stop at once.",
			Handle: func(r *http.Request) (int, any, error) {
				if err := h.Svc.Delete(r.Context(), r.PathValue("name"), h.auditFn(http.StatusNoContent)); err != nil {
					return 0, nil, err
				}
				h.done(r)
				return http.StatusNoContent, nil, nil
			},
		},
	}
	for _, m := range gateway.Methods {
		routes = append(routes, Route{
			Pattern: m + " " + gatewayPattern, Action: "proxy", Resource: integrationRes, DataPlane: true,
			Raw: h.serveProxy, OwnBodyLimit: true, AdmitsItself: true,
			Summary: "Call the integration's upstream at {path} with its credential injected; streams both ways.",
		})
	}
	return routes
}

func (h *Gateway) init() {
	h.once.Do(func() {
		if h.Errors == nil {
			h.Errors = NewErrorMapper()
			MapGatewayErrors(h.Errors)
		}
		if h.Log == nil {
			h.Log = slog.New(slog.DiscardHandler)
		}
	})
}

// serveProxy forwards one call. Its audit entry (method, path, status,
// latency, bytes; never a body or a credential) is queued for the audit
// log after the call finished, so the connection is not held for the
// group commit (when the log's queue is full it is appended at once, which
// holds the connection: backpressure), and no call starts while the audit
// log is failing (fail closed).
func (h *Gateway) serveProxy(w http.ResponseWriter, r *http.Request) {
	h.init()
	ctx := r.Context()
	name := IntegrationOf(r)
	if h.AuditHealthy != nil {
		if err := h.AuditHealthy(); err != nil {
			h.Log.Error("audit log unhealthy; refusing a gateway call", "request_id", RequestID(ctx), "err", err)
			renderError(w, r, Errorf(http.StatusServiceUnavailable, CodeUnavailable, "the audit log cannot be written; request refused"))
			return
		}
	}
	// The integration's own checks first, then its rates, then the
	// caller's key (rate, quota): each is spent only when everything
	// before it passed, and nothing is sent unless all did.
	rest := proxyPath(r.URL.EscapedPath())
	st := state(ctx)
	pc, err := h.Proxy.Prepare(w, r, name, rest)
	if err == nil && h.Limiter != nil {
		var d ratelimit.Decision
		rate, callerRate := pc.Limits()
		if d, err = h.Limiter.Allow(r, name, rate, callerRate); err == nil {
			st.noteRate(d)
		}
	}
	if err == nil {
		err = Admit(ctx)
	}
	// Keyward's RateLimit-* headers: Send keeps them over the upstream's.
	st.setRateHeaders(w.Header())
	var call gateway.Call
	if err == nil {
		if pc.WebSocket() {
			if !h.beginSession() {
				err = fmt.Errorf("%w: the gateway is shutting down", gateway.ErrTooManySessions)
			} else {
				defer h.sessions.Done() // after the audit entry below
			}
			if c := CallerFrom(ctx); c != nil {
				pc.Caller = c.Principal // children of a token share its bound
			}
		}
		// Used by sessions and streamed answers only, every second.
		pc.SessionCheck = st.api.sessionCheck(r, st, "proxy")
		if err == nil {
			call, err = h.Proxy.Send(w, r, pc)
		}
	}
	status := call.Status
	switch {
	case err == nil:
	case call.Wrote:
		AddAuditDetail(ctx, "error", "response interrupted")
		h.Log.Warn("gateway response interrupted", "request_id", RequestID(ctx), "integration", name, "err", err)
	case ctx.Err() != nil:
		status = 499 // the caller went away; nothing to write
	default:
		he := h.Errors.Translate(err)
		status = he.Status
		if status >= 500 {
			h.Log.Error("gateway call failed", "request_id", RequestID(ctx), "integration", name, "err", err)
		}
		renderError(w, r, he)
	}
	if h.Usage != nil {
		kind, subject := callerUsage(st.caller)
		h.Usage(monitor.KindIntegration, name, kind, subject, status)
	}
	// In key order: the audit log stores details sorted, which costs it a
	// comparison a detail when they come so.
	AddAuditDetail(ctx, "bytes_in", strconv.FormatInt(call.BytesIn, 10))
	AddAuditDetail(ctx, "bytes_out", strconv.FormatInt(call.BytesOut, 10))
	AddAuditDetail(ctx, "method", r.Method)
	AddAuditDetail(ctx, "path", truncate(rest, 512))
	if call.Status == http.StatusSwitchingProtocols { // a WebSocket session
		AddAuditDetail(ctx, "websocket", "true")
		AddAuditDetail(ctx, "duration_ms", strconv.FormatInt(call.Duration.Milliseconds(), 10))
	}
	if call.SessionEnded != "" {
		AddAuditDetail(ctx, "ended_by", call.SessionEnded)
	}
	h.audit(st.finalAuditEvent(status))
	if err != nil && call.Wrote {
		// Abort the connection: a body cut short must not look whole.
		panic(http.ErrAbortHandler)
	}
}

// audit hands the entry of a finished call to the audit log. Not the
// request's context: it ends with the response; the log bounds its own
// writes. The answer is already out, so a failure can only be logged.
func (h *Gateway) audit(ev *AuditEvent) {
	if h.Audit == nil {
		return
	}
	if err := appendQueued(context.Background(), h.Audit, h.AuditHealthy, h.Log, ev); err != nil {
		h.Log.Error("audit append of a gateway call failed", "request_id", ev.RequestID, "err", err)
	}
}

// proxyPath is the escaped path below /v1/gateway/NAME ("/" at least).
func proxyPath(escaped string) string {
	rest := strings.TrimPrefix(escaped, "/v1/gateway/")
	if i := strings.IndexByte(rest, '/'); i >= 0 {
		return rest[i:]
	}
	return "/"
}
