package httpapi

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/keyward/keyward/internal/gateway"
	"github.com/keyward/keyward/internal/ratelimit"
	"github.com/keyward/keyward/internal/storage"
	"github.com/keyward/keyward/internal/storage/storagetest"
)

const gwKey = "gw_test_key_0123456789abcdefghij" // keyward:allow (test fixture)

type staticSecret struct{}

func (staticSecret) Current(context.Context, string, string, string) ([]byte, int, error) {
	return []byte(gwKey), 1, nil
}

// chanAudit records request entries for concurrent appenders.
type chanAudit struct {
	mu     sync.Mutex
	events []*AuditEvent
	got    chan struct{}
}

func (a *chanAudit) AuditTx(context.Context, storage.Tx, *AuditEvent) error { return nil }

func (a *chanAudit) AuditRequest(_ context.Context, e *AuditEvent) error {
	a.mu.Lock()
	a.events = append(a.events, e)
	a.mu.Unlock()
	a.got <- struct{}{}
	return nil
}

// asyncAudit is chanAudit with AuditRequestAsync, as the server's
// auditor has: a queued entry is recorded and its callback run at once;
// while full is set the queue refuses, as the audit log's does when full.
type asyncAudit struct {
	*chanAudit
	full   atomic.Bool
	queued atomic.Int32
}

var errQueueFull = errors.New("queue full")

func (a *asyncAudit) AuditRequestAsync(e *AuditEvent, done func(error)) error {
	if a.full.Load() {
		return errQueueFull
	}
	a.queued.Add(1)
	a.AuditRequest(context.Background(), e)
	done(nil)
	return nil
}

type limiterFunc func(r *http.Request, name string, rate, callerRate ratelimit.Limit) (ratelimit.Decision, error)

func (f limiterFunc) Allow(r *http.Request, name string, rate, callerRate ratelimit.Limit) (ratelimit.Decision, error) {
	return f(r, name, rate, callerRate)
}

type gwFixture struct {
	srv       *httptest.Server
	audit     *chanAudit
	async     *asyncAudit // the gateway's auditor: audit, queued asynchronously
	unhealthy atomic.Bool
	hits      atomic.Int32
	gw        *Gateway
}

// newGWFixture serves the gateway routes with a token "tok" allowed to
// proxy integrations/api, "slow" and "down".
func newGWFixture(t *testing.T, opts ...func(*Deps)) *gwFixture {
	t.Helper()
	f := &gwFixture{audit: &chanAudit{got: make(chan struct{}, 100)}}
	f.async = &asyncAudit{chanAudit: f.audit}
	release := make(chan struct{})
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		f.hits.Add(1)
		if r.URL.Path == "/slow" {
			<-release
		}
		n, _ := io.Copy(io.Discard, r.Body)
		w.Header().Set("X-Got", r.Header.Get("Authorization"))
		io.WriteString(w, strings.Repeat("x", int(n%100)+10))
	}))
	t.Cleanup(up.Close)
	t.Cleanup(func() { close(release) }) // runs before up.Close
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	downAddr := ln.Addr().String()
	ln.Close()

	svc := gateway.NewService(storagetest.OpenSQLite(t, storage.Options{}), nil)
	for _, in := range []gateway.Integration{
		{Name: "api", Upstream: up.URL, MaxBodyBytes: 2 << 20},
		{Name: "slow", Upstream: up.URL, Timeout: gateway.Duration(50 * time.Millisecond)},
		{Name: "down", Upstream: "http://" + downAddr},
		{Name: "narrow", Upstream: up.URL, Paths: []string{"/ok/**"}},
		{Name: "ws", Upstream: up.URL, WebSocket: true},
	} {
		in.Secret, in.Inject, in.AllowPrivate = "p/e/k", "header:Authorization=Bearer {{secret}}", true
		if _, err := svc.Create(t.Context(), in, "test", nil); err != nil {
			t.Fatal(err)
		}
	}
	proxy := gateway.NewProxy(svc, staticSecret{}, gateway.TransportOptions{})
	t.Cleanup(proxy.Close)
	f.gw = &Gateway{Svc: svc, Proxy: proxy, Audit: f.async, AuditHealthy: func() error {
		if f.unhealthy.Load() {
			return errors.New("disk full")
		}
		return nil
	}}
	allow := map[string]bool{}
	for _, n := range []string{"api", "slow", "down", "narrow", "ws"} {
		allow["proxy integrations/"+n] = true
	}
	f.gw.Authz = fakeAuthz{allow: allow}
	errs := NewErrorMapper()
	MapGatewayErrors(errs)
	deps := Deps{Auth: fakeAuth{token: "tok"}, Authz: fakeAuthz{allow: allow}, Audit: f.audit, Errors: errs}
	for _, o := range opts {
		o(&deps)
	}
	api := New(deps, f.gw.Routes())
	f.srv = httptest.NewServer(api)
	t.Cleanup(f.srv.Close)
	return f
}

func (f *gwFixture) do(t *testing.T, method, path string, body io.Reader) (*http.Response, map[string]any) {
	t.Helper()
	req, _ := http.NewRequest(method, f.srv.URL+path, body)
	req.Header.Set("Authorization", "Bearer tok")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	var out map[string]any
	json.Unmarshal(data, &out)
	return resp, out
}

func (f *gwFixture) nextAudit(t *testing.T) *AuditEvent {
	t.Helper()
	select {
	case <-f.audit.got:
	case <-time.After(10 * time.Second):
		t.Fatal("no audit entry")
	}
	f.audit.mu.Lock()
	defer f.audit.mu.Unlock()
	return f.audit.events[len(f.audit.events)-1]
}

func errCode(m map[string]any) string {
	e, _ := m["error"].(map[string]any)
	c, _ := e["code"].(string)
	if id, _ := e["request_id"].(string); id == "" {
		return "no request id"
	}
	return c
}

func TestGatewayCallIsAuditedAfterwards(t *testing.T) {
	f := newGWFixture(t)
	resp, _ := f.do(t, "POST", "/v1/gateway/api/v1/x?secret=q", strings.NewReader("hello"))
	if resp.StatusCode != 200 || resp.Header.Get("X-Got") != "" {
		t.Fatalf("call = %d, X-Got %q", resp.StatusCode, resp.Header.Get("X-Got"))
	}
	ev := f.nextAudit(t)
	if ev.Action != "proxy" || ev.Resource != "integrations/api" || ev.Status != 200 || ev.Outcome != "allowed" ||
		ev.Detail.Get("method") != "POST" || ev.Detail.Get("path") != "/v1/x" || ev.Detail.Get("bytes_in") != "5" || ev.Detail.Get("bytes_out") != "15" {
		t.Errorf("audit event = %+v", ev)
	}
	b, _ := json.Marshal(ev)
	if strings.Contains(string(b), gwKey) || strings.Contains(string(b), "hello") || strings.Contains(string(b), "secret=q") {
		t.Errorf("the audit event holds the key, the body or the query: %s", b)
	}

	// Calls in a burst: every entry is queued.
	var wg sync.WaitGroup
	for range 20 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			f.do(t, "GET", "/v1/gateway/api/x", nil)
		}()
	}
	wg.Wait()
	for range 20 {
		f.nextAudit(t)
	}
	if n := f.async.queued.Load(); n != 21 {
		t.Errorf("%d entries queued, want 21 (every call's)", n)
	}
}

func TestGatewayRefusesWhileTheAuditLogFails(t *testing.T) {
	f := newGWFixture(t)
	f.unhealthy.Store(true)
	resp, out := f.do(t, "GET", "/v1/gateway/api/x", nil)
	if resp.StatusCode != 503 || errCode(out) != CodeUnavailable {
		t.Fatalf("call with a failing audit log = %d %v", resp.StatusCode, out)
	}
	if n := f.hits.Load(); n != 0 {
		t.Errorf("the upstream got %d calls", n)
	}
	f.unhealthy.Store(false)
	if resp, _ := f.do(t, "GET", "/v1/gateway/api/x", nil); resp.StatusCode != 200 {
		t.Errorf("after recovery = %d", resp.StatusCode)
	}
}

func TestGatewayErrorsInKeywardFormat(t *testing.T) {
	f := newGWFixture(t)
	for _, tc := range []struct {
		method, path string
		body         io.Reader
		status       int
		code         string
	}{
		{"GET", "/v1/gateway/down/x", nil, 502, CodeBadGateway},
		{"GET", "/v1/gateway/slow/slow", nil, 504, CodeGatewayTimeout},
		{"POST", "/v1/gateway/api/x", strings.NewReader(strings.Repeat("a", 2<<20+1)), 413, CodeTooLarge},
		{"GET", "/v1/gateway/api/a%2fb", nil, 400, CodeInvalidArgument},
		{"GET", "/v1/gateway/nope/x", nil, 403, CodePermissionDenied},
		{"GET", "/v1/gateway/NOPE/x", nil, 400, CodeInvalidArgument},
	} {
		resp, out := f.do(t, tc.method, tc.path, tc.body)
		if resp.StatusCode != tc.status || errCode(out) != tc.code || resp.Header.Get("Content-Type") != "application/json" {
			t.Errorf("%s %s = %d %v, want %d %s", tc.method, tc.path, resp.StatusCode, out, tc.status, tc.code)
		}
		if strings.Contains(strings.ToLower(errMessage(out)), "127.0.0.1") {
			t.Errorf("%s: the message names an internal address: %q", tc.path, errMessage(out))
		}
	}
	// The API's 1 MiB JSON limit does not apply to the proxy.
	if resp, _ := f.do(t, "POST", "/v1/gateway/api/x", strings.NewReader(strings.Repeat("a", 3<<19))); resp.StatusCode != 200 {
		t.Errorf("1.5 MiB through an integration allowing 2 MiB = %d", resp.StatusCode)
	}
}

func errMessage(m map[string]any) string {
	e, _ := m["error"].(map[string]any)
	s, _ := e["message"].(string)
	return s
}

func TestGatewayLimiterHook(t *testing.T) {
	f := newGWFixture(t)
	var asked string
	f.gw.Limiter = limiterFunc(func(r *http.Request, name string, _, _ ratelimit.Limit) (ratelimit.Decision, error) {
		asked = name
		return ratelimit.Decision{}, &Error{Status: http.StatusTooManyRequests, Code: CodeRateLimited, Message: "slow down", RetryAfter: 2 * time.Second}
	})
	resp, out := f.do(t, "GET", "/v1/gateway/api/x", nil)
	if resp.StatusCode != 429 || errCode(out) != CodeRateLimited || resp.Header.Get("Retry-After") != "2" || asked != "api" {
		t.Fatalf("limited call = %d %v (Retry-After %q, asked %q)", resp.StatusCode, out, resp.Header.Get("Retry-After"), asked)
	}
	if n := f.hits.Load(); n != 0 {
		t.Errorf("the upstream got %d calls", n)
	}
	if ev := f.nextAudit(t); ev.Status != 429 || ev.Outcome != "denied" {
		t.Errorf("audit of a limited call = %+v", ev)
	}
}

// When the audit log's queue refuses an entry (full), the gateway appends
// it at once instead; so does it with an auditor that cannot queue.
func TestGatewayAuditQueueRefused(t *testing.T) {
	f := newGWFixture(t)
	f.async.full.Store(true)
	if resp, _ := f.do(t, "GET", "/v1/gateway/api/x", nil); resp.StatusCode != 200 {
		t.Fatalf("call = %d", resp.StatusCode)
	}
	if ev := f.nextAudit(t); ev.Detail.Get("method") != "GET" || f.async.queued.Load() != 0 {
		t.Errorf("audit event = %+v, %d queued; want it appended directly", ev, f.async.queued.Load())
	}
	f.gw.Audit = f.audit // no AuditRequestAsync at all
	if resp, _ := f.do(t, "GET", "/v1/gateway/api/y", nil); resp.StatusCode != 200 {
		t.Fatalf("call = %d", resp.StatusCode)
	}
	if ev := f.nextAudit(t); ev.Detail.Get("path") != "/y" {
		t.Errorf("audit event = %+v", ev)
	}
}

// Every setting of an integration can be given on create and update:
// IntegrationRequest has a field for each of gateway.Integration's, but
// the ones the server fills.
func TestIntegrationRequestHasEverySetting(t *testing.T) {
	names := func(typ reflect.Type) map[string]bool {
		m := map[string]bool{}
		for f := range typ.Fields() {
			name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
			m[name] = true
		}
		return m
	}
	req := names(reflect.TypeFor[IntegrationRequest]())
	for name := range names(reflect.TypeFor[gateway.Integration]()) {
		switch name {
		case "created_at", "created_by", "updated_at", "updated_by":
			if req[name] {
				t.Errorf("IntegrationRequest takes %s, which the server fills", name)
			}
		default:
			if !req[name] {
				t.Errorf("IntegrationRequest has no %s", name)
			}
		}
	}
}

// The oauth2 object of a create or update body reaches the integration
// as sent, and the integration's document shows it.
func TestIntegrationRequestCarriesOAuth2(t *testing.T) {
	const oauth2 = `{"token_url":"https://login.example.com/oauth2/token","client_id":"app-123","scopes":["api","refresh"],"audience":"https://api.example.com","auth_style":"post"}`
	body := `{"name":"crm","upstream":"https://api.example.com","secret":"crm/prod/client-secret","inject":"oauth2","oauth2":` + oauth2 + `}`
	r := httptest.NewRequest("POST", "/v1/integrations", strings.NewReader(body))
	r.Header.Set("Content-Type", "application/json")
	var in IntegrationRequest
	if err := decode(r, &in); err != nil {
		t.Fatalf("decode: %v", err)
	}
	got := in.integration()
	want := gateway.OAuth2{TokenURL: "https://login.example.com/oauth2/token", ClientID: "app-123",
		Scopes: []string{"api", "refresh"}, Audience: "https://api.example.com", AuthStyle: "post"}
	if got.OAuth2 == nil || !reflect.DeepEqual(*got.OAuth2, want) || got.Inject != "oauth2" {
		t.Fatalf("integration = %+v, oauth2 %+v", got, got.OAuth2)
	}
	doc, _ := json.Marshal(got)
	var m map[string]json.RawMessage
	json.Unmarshal(doc, &m)
	if string(m["oauth2"]) != oauth2 {
		t.Errorf("document's oauth2 = %s, want %s", m["oauth2"], oauth2)
	}

	// Without it (any other inject kind) there is none, in the
	// integration and in its document.
	r = httptest.NewRequest("PUT", "/v1/integrations/crm", strings.NewReader(`{"upstream":"https://api.example.com","secret":"crm/prod/k","inject":"query:key"}`))
	in = IntegrationRequest{}
	if err := decode(r, &in); err != nil {
		t.Fatalf("decode: %v", err)
	}
	got = in.integration()
	doc, _ = json.Marshal(got)
	if got.OAuth2 != nil || strings.Contains(string(doc), "oauth2") {
		t.Errorf("without oauth2: %+v, document %s", got.OAuth2, doc)
	}
}

// The websocket setting of a create or update body reaches the
// integration, and the integration's document shows it; absent, it is off
// (an update without it turns it off) and the document omits it.
func TestIntegrationRequestCarriesWebSocket(t *testing.T) {
	integration := func(method, target, body string) (gateway.Integration, map[string]json.RawMessage) {
		t.Helper()
		r := httptest.NewRequest(method, target, strings.NewReader(body))
		r.Header.Set("Content-Type", "application/json")
		var in IntegrationRequest
		if err := decode(r, &in); err != nil {
			t.Fatalf("decode %s: %v", body, err)
		}
		got := in.integration()
		doc, _ := json.Marshal(got)
		var m map[string]json.RawMessage
		if err := json.Unmarshal(doc, &m); err != nil {
			t.Fatal(err)
		}
		return got, m
	}

	got, doc := integration("POST", "/v1/integrations", `{"name":"openai-realtime","upstream":"https://api.openai.com","secret":"ai/prod/openai-key",
		"inject":"header:Authorization=Bearer {{secret}}","methods":["GET"],"paths":["/v1/realtime"],"websocket":true}`)
	if !got.WebSocket || string(doc["websocket"]) != "true" {
		t.Errorf("with websocket true: %v, document's websocket = %s", got.WebSocket, doc["websocket"])
	}

	got, doc = integration("PUT", "/v1/integrations/openai-realtime", `{"upstream":"https://api.openai.com","secret":"ai/prod/openai-key",
		"inject":"header:Authorization=Bearer {{secret}}","websocket":false}`)
	if _, ok := doc["websocket"]; got.WebSocket || ok {
		t.Errorf("with websocket false: %v, document's websocket = %s", got.WebSocket, doc["websocket"])
	}

	got, doc = integration("PUT", "/v1/integrations/openai-realtime", `{"upstream":"https://api.openai.com","secret":"ai/prod/openai-key",
		"inject":"header:Authorization=Bearer {{secret}}"}`)
	if _, ok := doc["websocket"]; got.WebSocket || ok {
		t.Errorf("without websocket: %v, document's websocket = %s", got.WebSocket, doc["websocket"])
	}
}

// Once the edge waits for its sessions (shutdown), a WebSocket handshake
// is answered 503 and never reaches the upstream.
func TestGatewayNoSessionAfterWaitSessions(t *testing.T) {
	f := newGWFixture(t)
	f.gw.WaitSessions()
	req, _ := http.NewRequest("GET", f.srv.URL+"/v1/gateway/ws/chat", nil)
	req.Header.Set("Authorization", "Bearer tok")
	req.Header.Set("Connection", "Upgrade")
	req.Header.Set("Upgrade", "websocket")
	req.Header.Set("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ==")
	req.Header.Set("Sec-WebSocket-Version", "13")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable || f.hits.Load() != 0 {
		t.Fatalf("handshake after WaitSessions = %d, %d upstream hits", resp.StatusCode, f.hits.Load())
	}
}

// The bound on one caller's WebSocket sessions counts by principal: all of
// a principal's tokens share it.
func TestGatewaySessionBoundByPrincipal(t *testing.T) {
	f := newGWFixture(t)
	proxy := gateway.NewProxy(f.gw.Svc, staticSecret{}, gateway.TransportOptions{MaxSessionsPerCaller: 1})
	t.Cleanup(proxy.Close)
	f.gw.Proxy = proxy
	hc := &http.Client{Timeout: 3 * time.Second}
	handshake := func() (int, error) {
		req, _ := http.NewRequest("GET", f.srv.URL+"/v1/gateway/ws/slow", nil)
		req.Header.Set("Authorization", "Bearer tok")
		req.Header.Set("Connection", "Upgrade")
		req.Header.Set("Upgrade", "websocket")
		resp, err := hc.Do(req)
		if err != nil {
			return 0, err
		}
		resp.Body.Close()
		return resp.StatusCode, nil
	}
	first := make(chan struct{})
	go func() {
		close(first)
		handshake() // held by the upstream (it answers /slow only at the end of the test)
	}()
	<-first
	deadline := time.Now().Add(3 * time.Second)
	for f.hits.Load() == 0 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	if code, err := handshake(); err != nil || code != http.StatusServiceUnavailable {
		t.Fatalf("a second session of the same principal = %d, %v; want 503", code, err)
	}
}
