package httpapi

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/keyward/keyward/internal/storage"
)

type fakeAuth struct{ token string }

func (f fakeAuth) Authenticate(_ context.Context, bearer string, _ netip.Addr) (*Caller, error) {
	if bearer != f.token {
		return nil, errors.New("bad token")
	}
	return &Caller{Principal: "user:t", Policies: []string{"p"}}, nil
}

type fakeAuthz struct{ allow map[string]bool }

func (f fakeAuthz) Decide(_ *Caller, action, resource string) (bool, string) {
	return f.allow[action+" "+resource], "test"
}

type fakeAudit struct {
	fail   atomic.Bool
	events []*AuditEvent
}

func (f *fakeAudit) AuditTx(_ context.Context, _ storage.Tx, e *AuditEvent) error {
	f.events = append(f.events, e)
	return nil
}

func (f *fakeAudit) AuditRequest(_ context.Context, e *AuditEvent) error {
	if f.fail.Load() {
		return errors.New("disk full")
	}
	f.events = append(f.events, e)
	return nil
}

var errDomain = errors.New("thing is busy")

func testAPI(t *testing.T, sealed *atomic.Bool, audit *fakeAudit) *API {
	t.Helper()
	m := NewErrorMapper()
	m.Map(errDomain, http.StatusConflict, CodeConflict, "")
	routes := []Route{
		{Pattern: "GET /open", Open: true, WhileSealed: true, Handle: func(r *http.Request) (int, any, error) {
			return 200, map[string]string{"ok": "yes"}, nil
		}},
		{Pattern: "POST /echo/{name}", Action: "write", Resource: func(r *http.Request) (string, error) {
			return "things/" + r.PathValue("name"), nil
		}, Handle: func(r *http.Request) (int, any, error) {
			var in struct {
				V string `json:"v"`
			}
			if err := decode(r, &in); err != nil {
				return 0, nil, err
			}
			AddAuditDetail(r.Context(), "len", "x")
			return 201, in, nil
		}},
		{Pattern: "GET /panic", Open: true, Handle: func(r *http.Request) (int, any, error) { panic("boom") }},
		{Pattern: "GET /domain", Open: true, Handle: func(r *http.Request) (int, any, error) { return 0, nil, errDomain }},
		{Pattern: "GET /internal", Open: true, Handle: func(r *http.Request) (int, any, error) {
			return 0, nil, errors.New("pq: password=hunter2 failed") // keyward:allow (test fixture)
		}},
	}
	var auditor Auditor
	if audit != nil {
		auditor = audit
	}
	return New(Deps{Auth: fakeAuth{"good"}, Authz: fakeAuthz{map[string]bool{"write things/a": true}},
		Sealed: sealed.Load, Errors: m, Audit: auditor, MaxBodyBytes: 64, Metrics: NewMetrics(sealed.Load)}, routes)
}

func do(t *testing.T, h http.Handler, method, path, token, body string) (*httptest.ResponseRecorder, errorBody) {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req := httptest.NewRequest(method, path, rd)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, req)
	var eb errorBody
	_ = json.Unmarshal(w.Body.Bytes(), &eb)
	return w, eb
}

func TestRequestPath(t *testing.T) {
	var sealed atomic.Bool
	audit := &fakeAudit{}
	api := testAPI(t, &sealed, audit)
	cases := []struct {
		name, method, path, token, body string
		status                          int
		code                            string
	}{
		{"open", "GET", "/open", "", "", 200, ""},
		{"no token", "POST", "/echo/a", "", `{"v":"x"}`, 401, CodeUnauthenticated},
		{"bad token", "POST", "/echo/a", "nope", `{"v":"x"}`, 401, CodeUnauthenticated},
		{"denied", "POST", "/echo/b", "good", `{"v":"x"}`, 403, CodePermissionDenied},
		{"allowed", "POST", "/echo/a", "good", `{"v":"x"}`, 201, ""},
		{"unknown field", "POST", "/echo/a", "good", `{"w":"x"}`, 400, CodeInvalidArgument},
		{"bad json", "POST", "/echo/a", "good", `{"v":`, 400, CodeInvalidArgument},
		{"two values", "POST", "/echo/a", "good", `{"v":"x"}{}`, 400, CodeInvalidArgument},
		{"empty", "POST", "/echo/a", "good", ``, 400, CodeInvalidArgument},
		{"too large", "POST", "/echo/a", "good", `{"v":"` + strings.Repeat("x", 100) + `"}`, 413, CodeTooLarge},
		{"panic", "GET", "/panic", "", "", 500, CodeInternal},
		{"domain error", "GET", "/domain", "", "", 409, CodeConflict},
		{"unknown route", "GET", "/nope", "", "", 404, CodeNotFound},
		{"wrong method", "DELETE", "/open", "", "", 405, CodeMethodNotAllowed},
		{"dotdot", "POST", "/echo/a/../b", "good", `{"v":"x"}`, 400, CodeInvalidArgument},
		{"double slash", "GET", "//open", "", "", 400, CodeInvalidArgument},
		{"encoded dotdot", "POST", "/echo/%2e%2e", "good", `{"v":"x"}`, 400, CodeInvalidArgument},
	}
	for _, c := range cases {
		w, eb := do(t, api, c.method, c.path, c.token, c.body)
		if w.Code != c.status {
			t.Errorf("%s: status %d, want %d (%s)", c.name, w.Code, c.status, w.Body)
			continue
		}
		if c.code != "" && eb.Error.Code != c.code {
			t.Errorf("%s: code %q, want %q", c.name, eb.Error.Code, c.code)
		}
		if c.code != "" && eb.Error.RequestID != w.Header().Get("X-Request-Id") {
			t.Errorf("%s: request id mismatch", c.name)
		}
	}
	// Every non-open request was audited, denied ones included.
	var denied, allowed int
	for _, e := range audit.events {
		switch e.Outcome {
		case "denied":
			denied++
		case "allowed":
			allowed++
		}
	}
	if denied != 3 || allowed != 2 {
		t.Errorf("audit outcomes: %d denied, %d allowed; events %d", denied, allowed, len(audit.events))
	}
}

func TestInternalErrorsAreNotShown(t *testing.T) {
	var sealed atomic.Bool
	api := testAPI(t, &sealed, nil)
	w, eb := do(t, api, "GET", "/internal", "", "")
	if w.Code != 500 || strings.Contains(w.Body.String(), "hunter2") || eb.Error.Message != "internal error" {
		t.Fatalf("internal error leaked: %d %s", w.Code, w.Body)
	}
}

func TestSealedRefusesAndAuditFailureFailsClosed(t *testing.T) {
	var sealed atomic.Bool
	audit := &fakeAudit{}
	api := testAPI(t, &sealed, audit)
	sealed.Store(true)
	if w, eb := do(t, api, "POST", "/echo/a", "good", `{"v":"x"}`); w.Code != 503 || eb.Error.Code != CodeSealed {
		t.Fatalf("sealed: %d %+v", w.Code, eb)
	}
	if w, _ := do(t, api, "GET", "/open", "", ""); w.Code != 200 {
		t.Fatalf("open WhileSealed route refused: %d", w.Code)
	}
	sealed.Store(false)
	audit.fail.Store(true)
	if w, eb := do(t, api, "POST", "/echo/a", "good", `{"v":"x"}`); w.Code != 503 || eb.Error.Code != CodeUnavailable {
		t.Fatalf("audit failure: %d %+v, want 503", w.Code, eb)
	}
}

func TestMetricsCountRoutes(t *testing.T) {
	var sealed atomic.Bool
	api := testAPI(t, &sealed, nil)
	do(t, api, "GET", "/open", "", "")
	do(t, api, "GET", "/open", "", "")
	w := httptest.NewRecorder()
	api.deps.Metrics.Handler().ServeHTTP(w, httptest.NewRequest("GET", "/metrics", nil))
	body := w.Body.String()
	for _, want := range []string{`keyward_http_requests_total{route="GET /open",status="200"} 2`, `keyward_sealed 0`, "keyward_http_request_duration_seconds_bucket"} {
		if !strings.Contains(body, want) {
			t.Errorf("metrics lack %q", want)
		}
	}
}

func TestBearerToken(t *testing.T) {
	for h, want := range map[string]string{"Bearer abc": "abc", "bearer  abc ": "abc", "Basic abc": "", "Bearer": "", "": "",
		"DPoP abc": "dpop:abc", "dpop abc": "dpop:abc", "DPoP": "", "DPoPabc": ""} {
		r := httptest.NewRequest("GET", "/", nil)
		if h != "" {
			r.Header.Set("Authorization", h)
		}
		got, dpopScheme, _ := bearerToken(r)
		if dpopScheme {
			got = "dpop:" + got
		}
		if got != want {
			t.Errorf("bearerToken(%q) = %q, want %q", h, got, want)
		}
	}
}

func FuzzDecode(f *testing.F) {
	f.Add(`{"shares":5,"threshold":3}`)
	f.Add(`{"shares":"x"}`)
	f.Fuzz(func(t *testing.T, body string) {
		r := httptest.NewRequest("POST", "/", strings.NewReader(body))
		var v InitRequest
		_ = decode(r, &v) // must not panic
	})
}

// The client address an audit entry records is the address's own text,
// whether it was taken from RemoteAddr as written or formatted, from the
// peer or, behind a trusted proxy, from X-Forwarded-For.
func TestClientAddrText(t *testing.T) {
	a := &API{deps: Deps{TrustedProxies: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}}}
	for _, c := range []struct{ remote, xff, want string }{
		{"192.0.2.7:1234", "", "192.0.2.7"},
		{"[::ffff:192.0.2.7]:1234", "", "192.0.2.7"},
		{"[2001:db8::1]:443", "", "2001:db8::1"},
		{"[2001:0db8:0::1]:443", "", "2001:db8::1"},
		{"[fe80::1%eth0]:443", "", "fe80::1%eth0"},
		{"10.1.2.3:80", "198.51.100.9", "198.51.100.9"},
		{"10.1.2.3:80", "junk", "10.1.2.3"},
		{"192.0.2.1:80", "198.51.100.9", "192.0.2.1"}, // not a trusted proxy
		{"garbage", "", "invalid IP"},
	} {
		r := httptest.NewRequest("GET", "/", nil)
		r.RemoteAddr = c.remote
		if c.xff != "" {
			r.Header.Set("X-Forwarded-For", c.xff)
		}
		var s reqState
		s.src, s.srcText = a.clientAddr(r)
		if got := s.srcString(); got != c.want || got != s.src.String() {
			t.Errorf("RemoteAddr %q, X-Forwarded-For %q: source %q (address %s), want %q", c.remote, c.xff, got, s.src, c.want)
		}
	}
}

// Request IDs are 24 hex digits (96 bits) and do not repeat.
func TestNewRequestIDIsUniqueHex(t *testing.T) {
	seen := map[string]bool{}
	for range 20000 {
		id := newRequestID()
		if b, err := hex.DecodeString(id); err != nil || len(b) != 12 {
			t.Fatalf("request ID %q: %d bytes, %v", id, len(b), err)
		}
		if seen[id] {
			t.Fatalf("request ID %q given twice", id)
		}
		seen[id] = true
	}
}

// decode takes a JSON body under any JSON media type (or none) and
// refuses others with 415, before reading it.
func TestDecodeContentType(t *testing.T) {
	for ct, ok := range map[string]bool{
		"":                                  true,
		"application/json":                  true,
		"application/json; charset=utf-8":   true,
		"Application/JSON":                  true,
		"application/merge-patch+json":      true,
		"text/plain":                        false,
		"application/jsonx":                 false,
		"application/x-www-form-urlencoded": false,
		"application/json;;":                false,
	} {
		r := httptest.NewRequest("POST", "/", strings.NewReader(`{"name":"x"}`))
		if ct != "" {
			r.Header.Set("Content-Type", ct)
		}
		var v struct{ Name string }
		err := decode(r, &v)
		var he *Error
		switch {
		case ok && (err != nil || v.Name != "x"):
			t.Errorf("%q: %v, %+v", ct, err, v)
		case !ok && (!errors.As(err, &he) || he.Status != http.StatusUnsupportedMediaType):
			t.Errorf("%q: %v, want a 415", ct, err)
		}
	}
}
