package gateway

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/textproto"
	"net/url"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/keyward/keyward/internal/ratelimit"
)

// Errors of a call through the proxy. Messages are written to be shown to
// the caller; none carries a secret.
var (
	ErrBadPath          = errors.New("invalid gateway path")
	ErrPathNotAllowed   = errors.New("the integration does not allow this path")
	ErrMethodNotAllowed = errors.New("the integration does not allow this method")
	ErrBadHeader        = errors.New("a request header value holds CR, LF or NUL")
	ErrBadQuery         = errors.New("invalid query string")
	ErrTooLarge         = errors.New("request body exceeds the integration's limit")
	// ErrSecretUnavailable: the integration's secret cannot be read, or its
	// value cannot be injected (empty, or control characters in a header).
	ErrSecretUnavailable = errors.New("the integration's secret is unavailable")
	// ErrUpstreamUnavailable: no response from the upstream (refused,
	// reset, TLS failure, blocked address).
	ErrUpstreamUnavailable = errors.New("the upstream could not be reached")
	// ErrUpstreamTimeout: the upstream did not answer within the
	// integration's timeout.
	ErrUpstreamTimeout = errors.New("the upstream did not answer in time")
	// ErrWebSocket: a WebSocket handshake the integration or the
	// connection cannot take.
	ErrWebSocket = errors.New("WebSocket session refused")
	// ErrTooManySessions: the node holds as many WebSocket sessions as it
	// may (TransportOptions.MaxSessions); the caller may retry later.
	ErrTooManySessions = errors.New("too many WebSocket sessions on this node; retry later")
	// ErrCredentialEnded: the caller's credential was revoked or expired
	// (or its policy changed) while a streamed answer was under way, which
	// was then cut.
	ErrCredentialEnded = errors.New("the caller's credential is no longer valid")
)

// SecretSource reads the current value of a secret and its version. The
// server implements it with the secret store.
type SecretSource interface {
	Current(ctx context.Context, project, env, path string) (value []byte, version int, err error)
}

// Proxy forwards calls to integrations, injecting their credentials.
type Proxy struct {
	svc     *Service
	src     SecretSource
	strict  *client // refuses blocked addresses at dial time
	private *client // for integrations with allow_private: pools never shared

	mu      sync.RWMutex
	secrets map[string]*secretEntry // by PROJECT/ENV/PATH
	gen     uint64                  // bumped by every invalidation

	// WebSocket sessions (websocket.go).
	sessMu       sync.Mutex
	sessClosing  chan struct{} // closed by Close
	sessClosed   bool
	sessions     sync.WaitGroup
	sessOpen     int            // sessions under way, handshakes included
	sessByCaller map[string]int // the same, by caller
	maxSessions  int
	maxPerCaller int
}

type secretEntry struct {
	value   string
	version int
}

// String, GoString and LogValue keep the value out of any print or log.
func (secretEntry) String() string       { return "[redacted]" }
func (secretEntry) GoString() string     { return "[redacted]" }
func (secretEntry) LogValue() slog.Value { return slog.StringValue("[redacted]") }
func (credential) String() string        { return "[redacted]" }
func (credential) GoString() string      { return "[redacted]" }
func (credential) LogValue() slog.Value  { return slog.StringValue("[redacted]") }

// credential is what an integration injects for one secret value, with
// every form of it that must never appear in a response header.
type credential struct {
	entry   *secretEntry
	value   string    // header value, or the query value
	needles []string  // raw, header form, base64 and URL-escaped forms
	renewAt time.Time // an OAuth 2.0 token is replaced from then on; zero: never
	expires time.Time // and may not be sent from then on
	issued  time.Time // when an OAuth 2.0 token was obtained
}

// hide adds s, and its URL-escaped and base64 forms, to the needles.
func (cr *credential) hide(s string) {
	for _, f := range []string{s, url.QueryEscape(s), url.PathEscape(s), base64.StdEncoding.EncodeToString([]byte(s))} {
		if !slices.Contains(cr.needles, f) {
			cr.needles = append(cr.needles, f)
		}
	}
}

// NewProxy returns a Proxy over the integrations of svc, resolving secrets
// through src.
func NewProxy(svc *Service, src SecretSource, o TransportOptions) *Proxy {
	if o.MaxSessions <= 0 {
		o.MaxSessions = DefaultMaxSessions
	}
	if o.MaxSessionsPerCaller <= 0 {
		o.MaxSessionsPerCaller = DefaultMaxSessionsPerCaller
	}
	return &Proxy{
		svc: svc, src: src, maxSessions: o.MaxSessions, maxPerCaller: o.MaxSessionsPerCaller,
		strict:      newClient(false, o),
		private:     newClient(true, o),
		secrets:     map[string]*secretEntry{},
		sessClosing: make(chan struct{}), sessByCaller: map[string]int{},
	}
}

// SecretChanged drops the cached value of the secret PROJECT/ENV/PATH: the
// next call reads it again.
func (p *Proxy) SecretChanged(ref string) {
	p.mu.Lock()
	delete(p.secrets, ref)
	p.gen++
	p.mu.Unlock()
}

// Purge drops every cached secret value (on seal) and idle connections.
func (p *Proxy) Purge() {
	p.mu.Lock()
	clear(p.secrets)
	p.gen++
	p.mu.Unlock()
	p.strict.closeIdle(false)
	p.private.closeIdle(false)
}

// Close ends every WebSocket session (and waits for them), releases idle
// upstream connections and keeps none after.
func (p *Proxy) Close() {
	p.closeSessions()
	p.strict.closeIdle(true)
	p.private.closeIdle(true)
}

// secret returns the current value of c's secret, from memory while no
// change was announced; read reports that it came from the store.
func (p *Proxy) secret(ctx context.Context, c *compiled) (e *secretEntry, read bool, err error) {
	ref := c.in.Secret
	p.mu.RLock()
	e, gen := p.secrets[ref], p.gen
	p.mu.RUnlock()
	if e != nil {
		return e, false, nil
	}
	v, version, err := p.src.Current(ctx, c.project, c.env, c.spath)
	if err != nil {
		return nil, true, fmt.Errorf("%w: %w", ErrSecretUnavailable, err)
	}
	e = &secretEntry{value: string(v), version: version}
	clear(v)
	p.mu.Lock()
	if p.gen == gen {
		p.secrets[ref] = e
	}
	p.mu.Unlock()
	return e, true, nil
}

// credential returns what c injects at now, computed once per secret value
// (and, for OAuth 2.0, once per access token), and the time the caller's
// timeout runs from: now when everything came from memory, else the clock
// after the secret read or the token fetch.
func (p *Proxy) credential(ctx context.Context, c *compiled, now time.Time) (*credential, time.Time, error) {
	e, read, err := p.secret(ctx, c)
	if err != nil {
		return nil, now, err
	}
	if read {
		now = time.Now()
	}
	cr := c.cred.Load()
	if cr.fresh(e, now) {
		return cr, now, nil
	}
	if c.oauth2 != nil && cr.usable(e, now) {
		// Due for renewal but still valid: renew behind the calls, which
		// keep using this token meanwhile instead of waiting for the fetch.
		c.oauth2.renewBehind(func() {
			if secret, err := injectable(e); err == nil {
				p.oauth2Credential(context.Background(), c, e, secret)
			}
		})
		return cr, now, nil
	}
	secret, err := injectable(e)
	if err != nil {
		return nil, now, err
	}
	if c.oauth2 != nil {
		cr, err := p.oauth2Credential(ctx, c, e, secret)
		return cr, time.Now(), err
	}
	cr = &credential{entry: e, value: c.inject.value(secret)}
	cr.hide(secret)
	if c.inject.Kind == InjectBasic {
		cr.hide(strings.TrimPrefix(cr.value, "Basic "))
	}
	c.cred.Store(cr)
	return cr, now, nil
}

// injectable is the secret value e as it is injected: without surrounding
// whitespace, which is never part of an API key (a trailing newline from
// echo), and refused when empty or holding control characters, which
// cannot travel in a header.
func injectable(e *secretEntry) (string, error) {
	secret := strings.Trim(e.value, " \t\r\n")
	if secret == "" {
		return "", fmt.Errorf("%w: its value is empty", ErrSecretUnavailable)
	}
	for i := 0; i < len(secret); i++ {
		if ch := secret[i]; ch < 0x20 && ch != '\t' || ch == 0x7f {
			return "", fmt.Errorf("%w: its value holds control characters", ErrSecretUnavailable)
		}
	}
	return secret, nil
}

// fresh reports whether cr was made from the secret value e and, for an
// OAuth 2.0 token, is not due for renewal at now.
func (cr *credential) fresh(e *secretEntry, now time.Time) bool {
	return cr != nil && cr.entry == e && (cr.renewAt.IsZero() || now.Before(cr.renewAt))
}

// usable reports whether cr, an OAuth 2.0 token made from the secret value
// e, can still be sent at now (past its renewal time, before its expiry
// with a margin for the call's own travel).
func (cr *credential) usable(e *secretEntry, now time.Time) bool {
	return cr != nil && cr.entry == e && !cr.expires.IsZero() && now.Before(cr.expires.Add(-tokenExpiryMargin))
}

// oauth2Credential obtains an access token with the client secret, one
// fetch at a time per integration: calls that arrive during a fetch wait
// for it and use its token. A failed fetch fails the calls of the next
// tokenFailureBackOff without another (unless the secret changes).
func (p *Proxy) oauth2Credential(ctx context.Context, c *compiled, e *secretEntry, secret string) (*credential, error) {
	o := c.oauth2
	o.mu.Lock()
	defer o.mu.Unlock()
	now := time.Now()
	if cr := c.cred.Load(); cr.fresh(e, now) {
		return cr, nil // fetched while this call waited
	}
	if o.failEntry == e && now.Before(o.failUntil) {
		return nil, o.failErr
	}
	// Not the caller's context: calls waiting on this fetch share it.
	deadline := now.Add(c.timeout)
	fctx, cancel := context.WithDeadline(context.WithoutCancel(ctx), deadline)
	token, life, err := o.fetchToken(fctx, p.client(c), secret, deadline)
	cancel()
	if err != nil {
		o.failEntry, o.failUntil, o.failErr = e, now.Add(tokenFailureBackOff), err
		return nil, err
	}
	o.failEntry, o.failErr = nil, nil
	cr := &credential{entry: e, value: c.inject.value(token), renewAt: now.Add(life - renewBefore(life)), expires: now.Add(life), issued: now}
	cr.hide(token)
	cr.hide(secret)
	c.cred.Store(cr)
	return cr, nil
}

// client is the HTTP client for c's calls.
func (p *Proxy) client(c *compiled) *client {
	if c.in.AllowPrivate {
		return p.private
	}
	return p.strict
}

// tokenRefused drops cr, an OAuth 2.0 token the upstream answered 401 to,
// so the next call fetches a new one (the token may have been revoked
// before it expired). A token younger than minTokenAgeForDrop is kept: an
// upstream path that answers 401 to every token must not make each call
// fetch a new one.
func tokenRefused(c *compiled, cr *credential) {
	if c.oauth2 != nil && time.Since(cr.issued) >= minTokenAgeForDrop {
		c.cred.CompareAndSwap(cr, nil)
	}
}

// Call describes a forwarded call for the audit log: never a body, never
// the credential.
type Call struct {
	Status   int   // status sent to the caller (0 when the proxy wrote nothing)
	BytesIn  int64 // request body bytes read from the caller
	BytesOut int64 // response body bytes written to the caller
	// Wrote is set once the response status is out: an error after that
	// cannot be reported to the caller, and the connection should be
	// aborted so a truncated body is not taken for a whole one.
	Wrote bool
	// A WebSocket session (Status 101): how long it lasted and what ended
	// it ("caller", "upstream", "credential", "integration": deleted or no
	// longer allowing it, "shutdown"). SessionEnded is also "credential"
	// for a streamed answer cut by SessionCheck.
	Duration     time.Duration
	SessionEnded string
}

// Prepared is a call that passed the integration's own checks and is ready
// to be sent.
type Prepared struct {
	c       *compiled
	path    Path // its Segs only for a WebSocket handshake: Send needs none
	query   string
	header  requestHeader
	upgrade bool // a WebSocket handshake

	// Caller identifies the caller (its principal: a user, service, app or
	// API key, whose child tokens share it) for the bound on one caller's
	// WebSocket sessions; "": none.
	Caller string

	// SessionCheck, when set, is called every SessionCheckEvery during a
	// WebSocket session or a streamed answer (unknown length, or
	// server-sent events); an error ends it (the caller's credential was
	// revoked or expired, or its policy changed).
	SessionCheck func() error
}

// WebSocket reports whether the call is a WebSocket handshake, which
// becomes a session when the upstream accepts it.
func (p Prepared) WebSocket() bool { return p.upgrade }

// Limits are the integration's rates: all its calls (rate) and each
// caller's (callerRate); zero when unset.
func (p Prepared) Limits() (rate, callerRate ratelimit.Limit) { return p.c.rate, p.c.callerRate }

// Prepare checks r against the integration name: its methods, paths and
// declared body size, and the query and headers it would forward. It sends
// nothing and reads no secret, so a caller can spend its limits between
// Prepare and Send only on calls that will be made. A refused method sets
// Allow on w.
func (p *Proxy) Prepare(w http.ResponseWriter, r *http.Request, name, escapedPath string) (Prepared, error) {
	c, err := p.svc.lookup(r.Context(), name)
	if err != nil {
		return Prepared{}, err
	}
	if !c.allowsMethod(r.Method) {
		w.Header().Set("Allow", strings.Join(c.methods, ", "))
		return Prepared{}, fmt.Errorf("%w: %s (allowed: %s)", ErrMethodNotAllowed, r.Method, strings.Join(c.methods, ", "))
	}
	var buf [16]string
	segs, escaped, err := parsePath(escapedPath, buf[:0])
	if err != nil {
		return Prepared{}, err
	}
	if !c.allowsPath(segs) {
		return Prepared{}, ErrPathNotAllowed
	}
	if r.ContentLength > c.maxBody {
		return Prepared{}, fmt.Errorf("%w: %d bytes, the limit is %d", ErrTooLarge, r.ContentLength, c.maxBody)
	}
	query := r.URL.RawQuery
	for i := 0; i < len(query); i++ {
		if ch := query[i]; ch <= 0x20 || ch == 0x7f {
			return Prepared{}, fmt.Errorf("%w: control character or space", ErrBadQuery)
		}
	}
	header := requestHeader{src: r.Header, conn: connectionTokens(r.Header)}
	if err := header.check(); err != nil {
		return Prepared{}, err
	}
	upgrade := isWebSocketHandshake(r, header.conn)
	if upgrade {
		switch {
		case !c.in.WebSocket:
			return Prepared{}, fmt.Errorf("%w: the integration does not allow WebSocket sessions", ErrWebSocket)
		case r.ProtoMajor != 1:
			return Prepared{}, fmt.Errorf("%w: a WebSocket session needs HTTP/1.1, not %s", ErrWebSocket, r.Proto)
		case r.ContentLength != 0 || len(r.TransferEncoding) > 0:
			return Prepared{}, fmt.Errorf("%w: a WebSocket handshake carries no body", ErrWebSocket)
		}
	}
	path := Path{Escaped: escaped}
	if upgrade {
		path.Segs = slices.Clone(segs) // the session checks them again (stillAllows)
	}
	return Prepared{c: c, path: path, query: query, header: header, upgrade: upgrade}, nil
}

// Send makes a prepared call: it resolves the integration's credential,
// injects it, sends r upstream and streams the answer to w. Until
// Call.Wrote is set, an error means nothing was written.
//
// Rate-limit headers that the caller set on w before Send (keyward's own,
// RateLimit-Limit at least) win over the upstream's: every RateLimit,
// RateLimit-Limit, -Remaining, -Reset and -Policy header of the upstream's
// response is then dropped, so a client never reads a mix of the two.
func (p *Proxy) Send(w http.ResponseWriter, r *http.Request, pc Prepared) (Call, error) {
	var call Call
	c, path, query, header := pc.c, pc.path, pc.query, pc.header
	// One clock read serves the credential's freshness, the deadline and
	// the idle pool, unless the credential takes a secret read or a token
	// fetch: the timeout then runs from its end.
	cr, now, err := p.credential(r.Context(), c, time.Now())
	if err != nil {
		return call, err
	}
	// Injected last: nothing the caller sent (a same-named header, a
	// "Connection: Authorization") can remove or replace it.
	switch c.inject.Kind {
	case InjectHeader:
		header.inject, header.value = c.inject.Name, cr.value
	case InjectBasic, InjectOAuth2:
		header.inject, header.value = "Authorization", cr.value
	case InjectQuery:
		if query, err = withParam(query, c.inject.Name, cr.value); err != nil {
			return call, err
		}
	}

	deadline := now.Add(c.timeout)
	var body *bodyReader
	out := &upstreamRequest{
		method: r.Method, scheme: c.scheme, host: c.host, addr: c.addr, key: c.key,
		base: c.baseRaw, target: path.Escaped, query: query,
		header: header, contentLength: r.ContentLength, deadline: deadline, now: now,
	}
	ctx := r.Context()
	var resp *http.Response
	var up *pconn // the upstream's connection once it switched to WebSocket
	if pc.upgrade {
		var release func()
		if release, err = p.reserveSession(pc.Caller); err != nil {
			return call, err
		}
		defer release() // the slot is held for the whole session
		out.contentLength, out.upgrade = 0, true
		resp, up, err = p.client(c).upgrade(ctx, out)
	} else {
		if r.Body != nil && r.Body != http.NoBody && r.ContentLength != 0 {
			body = &bodyReader{r: r.Body, limit: c.maxBody}
			out.body = body
		} else {
			out.contentLength = 0
		}
		resp, err = p.client(c).roundTrip(ctx, out)
		call.BytesIn = body.count()
		if body.tooLarge() {
			if resp != nil {
				resp.Body.Close()
			}
			return call, fmt.Errorf("%w: more than %d bytes", ErrTooLarge, c.maxBody)
		}
	}
	if err != nil {
		switch {
		case errors.Is(err, ErrAddressBlocked):
			return call, fmt.Errorf("%w: %w", ErrUpstreamUnavailable, ErrAddressBlocked)
		case ctx.Err() != nil:
			return call, ctx.Err() // the caller went away
		case isTimeout(err) || !time.Now().Before(deadline):
			return call, fmt.Errorf("%w (timeout %s)", ErrUpstreamTimeout, c.timeout)
		}
		return call, fmt.Errorf("%w: %w", ErrUpstreamUnavailable, err)
	}
	if up != nil {
		return p.session(w, pc, cr, resp, up)
	}
	defer resp.Body.Close()
	if resp.StatusCode == http.StatusUnauthorized {
		tokenRefused(c, cr)
	}

	copyResponseHeader(w.Header(), resp.Header, c.strip, cr.needles)
	w.WriteHeader(resp.StatusCode)
	call.Status, call.Wrote = resp.StatusCode, true
	stream := resp.ContentLength == -1 || strings.HasPrefix(resp.Header.Get("Content-Type"), "text/event-stream")
	var stopWatch func() bool
	if stream && pc.SessionCheck != nil {
		// A stream may last up to the timeout: a caller whose credential
		// is revoked meanwhile loses it within SessionCheckEvery.
		body := resp.Body.(*upstreamBody)
		stopWatch = watch(pc.SessionCheck, func(error) { body.cut() })
	}
	n, err := copyBody(w, resp.Body, stream)
	call.BytesOut = n
	call.BytesIn = body.count()
	if stopWatch != nil && stopWatch() {
		call.SessionEnded = "credential"
		return call, fmt.Errorf("%w while streaming the response", ErrCredentialEnded)
	}
	if err != nil {
		if isTimeout(err) {
			return call, fmt.Errorf("%w (timeout %s) while streaming the response", ErrUpstreamTimeout, c.timeout)
		}
		return call, err
	}
	return call, nil
}

// bodyReader counts the request body and stops it past the limit.
type bodyReader struct {
	r        io.Reader
	limit    int64
	n        atomic.Int64
	exceeded atomic.Bool
}

var errBodyTooLarge = errors.New("gateway: request body too large")

func (b *bodyReader) Read(p []byte) (int, error) {
	left := b.limit - b.n.Load()
	if int64(len(p)) > left+1 {
		p = p[:left+1]
	}
	n, err := b.r.Read(p)
	total := b.n.Add(int64(n))
	if total > b.limit {
		b.exceeded.Store(true)
		return 0, errBodyTooLarge
	}
	return n, err
}

// count is how many body bytes were read (0 without a body).
func (b *bodyReader) count() int64 {
	if b == nil {
		return 0
	}
	return b.n.Load()
}

// tooLarge reports whether the body went past the limit.
func (b *bodyReader) tooLarge() bool { return b != nil && b.exceeded.Load() }

// dropRequest reports whether a request header stays with keyward: the
// caller's credentials and keyward's own headers, hop-by-hop headers, and
// forwarding claims the caller could forge.
func dropRequest(k string) bool {
	switch k {
	case "Authorization", "Proxy-Authorization", "Cookie", "Dpop",
		"Connection", "Keep-Alive", "Proxy-Connection", "Te", "Trailer", "Transfer-Encoding", "Upgrade",
		"Expect", "Host", "Content-Length", "Forwarded", "X-Real-Ip":
		return true
	}
	return strings.HasPrefix(k, "X-Keyward-") || strings.HasPrefix(k, "Proxy-") || strings.HasPrefix(k, "X-Forwarded-")
}

// dropResponse: hop-by-hop response headers, and the upstream's request id
// (keyward's X-Request-Id names the call).
func dropResponse(k string) bool {
	switch k {
	case "Connection", "Keep-Alive", "Proxy-Connection", "Te", "Trailer", "Transfer-Encoding", "Upgrade", "X-Request-Id":
		return true
	}
	// keyward answers CORS itself, for the origins it allows: an
	// upstream's Access-Control-* would override that choice.
	return strings.HasPrefix(k, "Proxy-") || strings.HasPrefix(k, "Access-Control-")
}

// rateLimitHeader reports whether k is a rate-limit header of the IETF
// httpapi drafts (canonical form), which keyward also sets.
func rateLimitHeader(k string) bool {
	switch k {
	case "Ratelimit", "Ratelimit-Limit", "Ratelimit-Remaining", "Ratelimit-Reset", "Ratelimit-Policy":
		return true
	}
	return false
}

// connectionTokens are the header names listed in Connection, which the
// sender marks as hop-by-hop.
func connectionTokens(h http.Header) map[string]bool {
	vs := h["Connection"]
	if len(vs) == 0 {
		return nil
	}
	m := map[string]bool{}
	for _, v := range vs {
		for f := range strings.SplitSeq(v, ",") {
			if f = strings.TrimSpace(f); f != "" {
				m[textproto.CanonicalMIMEHeaderKey(f)] = true
			}
		}
	}
	return m
}

// requestHeader is what goes upstream of the caller's headers: all but
// the dropped ones and those named in Connection, then the injected
// credential. It is written straight to the connection (client.go), never
// copied into a map.
type requestHeader struct {
	src    http.Header
	conn   map[string]bool // names listed in the caller's Connection header
	inject string          // header carrying the credential; "" for query injection
	value  string
}

// forwarded reports whether the caller's header k goes upstream. Some
// servers (CGI and WSGI among them) read '_' in a header name as '-', so a
// name with '_' is judged as the name it would become there: X_Api_Key
// cannot stand in for an injected X-Api-Key, nor Proxy_Authorization for
// a dropped header.
func (h *requestHeader) forwarded(k string) bool {
	if strings.IndexByte(k, '_') >= 0 {
		k = textproto.CanonicalMIMEHeaderKey(strings.ReplaceAll(k, "_", "-"))
	}
	return !dropRequest(k) && !h.conn[k] && k != h.inject
}

// check refuses forwarded values with CR, LF or NUL (Go's server refuses
// most of them already; this holds whatever the server in front lets by).
func (h *requestHeader) check() error {
	for k, vs := range h.src {
		if !h.forwarded(k) {
			continue
		}
		for _, v := range vs {
			for i := 0; i < len(v); i++ {
				if c := v[i]; c <= '\r' && (c == '\r' || c == '\n' || c == 0) {
					return fmt.Errorf("%w (header %s)", ErrBadHeader, printable(k))
				}
			}
		}
	}
	return nil
}

// copyResponseHeader copies the upstream's headers to dst, except hop-by-hop
// ones, the integration's strip list, and every header one of whose values
// holds a form of the credential.
func copyResponseHeader(dst, src http.Header, strip, needles []string) {
	conn := connectionTokens(src)
	own := len(dst["Ratelimit-Limit"]) > 0 // keyward's rate-limit headers are set
next:
	for k, vs := range src {
		if dropResponse(k) || conn[k] || own && rateLimitHeader(k) {
			continue
		}
		for _, s := range strip {
			if s == k {
				continue next
			}
		}
		for _, v := range vs {
			for _, n := range needles {
				if strings.Contains(v, n) {
					continue next
				}
			}
		}
		if k == "Vary" {
			dst[k] = append(slices.Clip(dst[k]), vs...) // keyward's own "Vary: Origin" stays
			continue
		}
		dst[k] = vs
	}
}

// withParam sets the query parameter name to value: the caller's own
// values for it are removed (however they encoded the name), the rest of
// the query is kept as sent.
func withParam(raw, name, value string) (string, error) {
	if strings.Contains(raw, ";") {
		// Some servers split on ';' too: a caller could smuggle a second
		// value of the parameter past the check below.
		return "", fmt.Errorf("%w: ';' is not allowed in the query of an integration that injects a query parameter", ErrBadQuery)
	}
	var b strings.Builder
	for part := range strings.SplitSeq(raw, "&") {
		if part == "" {
			continue
		}
		k, _, _ := strings.Cut(part, "=")
		uk, err := url.QueryUnescape(k)
		if err != nil {
			return "", fmt.Errorf("%w: invalid percent-encoding in a parameter name", ErrBadQuery)
		}
		if uk == name {
			continue
		}
		b.WriteString(part)
		b.WriteByte('&')
	}
	b.WriteString(url.QueryEscape(name))
	b.WriteByte('=')
	b.WriteString(url.QueryEscape(value))
	return b.String(), nil
}

var bufPool = sync.Pool{New: func() any { b := make([]byte, 32<<10); return &b }}

// copyBody streams src to w, flushing after every write when flush is set
// (unknown length, server-sent events). A body of known length is flushed
// once, at its end: the caller then has the whole answer while keyward
// does its bookkeeping (audit entry, usage) instead of after it, and the
// flush costs no extra write (the length is declared, there is no
// terminating chunk left to send).
func copyBody(w http.ResponseWriter, src io.Reader, flush bool) (int64, error) {
	bp := bufPool.Get().(*[]byte)
	defer bufPool.Put(bp)
	buf := *bp
	var fl http.Flusher
	if flush {
		fl, _ = w.(http.Flusher)
	}
	var total int64
	for {
		n, rerr := src.Read(buf)
		if n > 0 {
			m, werr := w.Write(buf[:n])
			total += int64(m)
			if werr != nil {
				return total, werr
			}
			if fl != nil {
				fl.Flush()
			}
		}
		if rerr == io.EOF {
			if !flush {
				if f, ok := w.(http.Flusher); ok {
					f.Flush()
				}
			}
			return total, nil
		}
		if rerr != nil {
			return total, rerr
		}
	}
}
