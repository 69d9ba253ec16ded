package client

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// recorded is one request a fake server saw.
type recorded struct {
	Method, Path, RawQuery, ContentType, Auth string
	Body                                      string
}

// fake serves canned answers per "METHOD /path" and records every request.
type fake struct {
	t        *testing.T
	routes   map[string]func(w http.ResponseWriter, r *http.Request, body string)
	requests []recorded
}

func newFake(t *testing.T) (*fake, *Client) {
	t.Helper()
	f := &fake{t: t, routes: map[string]func(http.ResponseWriter, *http.Request, string){}}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		f.requests = append(f.requests, recorded{r.Method, r.URL.EscapedPath(), r.URL.RawQuery, r.Header.Get("Content-Type"), r.Header.Get("Authorization"), string(b)})
		h, ok := f.routes[r.Method+" "+r.URL.EscapedPath()]
		if !ok {
			w.WriteHeader(http.StatusNotFound)
			io.WriteString(w, `{"error":{"code":"not_found","message":"no route `+r.URL.Path+`"}}`)
			return
		}
		h(w, r, string(b))
	}))
	t.Cleanup(srv.Close)
	c, err := New(Config{Address: srv.URL, Token: "kwt_parenttoken"})
	if err != nil {
		t.Fatal(err)
	}
	return f, c
}

func (f *fake) json(route string, status int, body string) {
	f.routes[route] = func(w http.ResponseWriter, r *http.Request, _ string) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		io.WriteString(w, body)
	}
}

func (f *fake) last() recorded {
	f.t.Helper()
	if len(f.requests) == 0 {
		f.t.Fatal("no request was made")
	}
	return f.requests[len(f.requests)-1]
}

func decodeBody(t *testing.T, body string) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal([]byte(body), &m); err != nil {
		t.Fatalf("body %q: %v", body, err)
	}
	return m
}

const issued = `{"token":"kwt_new","accessor":"acc1","policies":["dev"],"expires_at":"2030-01-02T03:04:05Z","principal":"user:alice"}`

func TestPasswordLogin(t *testing.T) {
	f, c := newFake(t)
	f.json("POST /v1/auth/password/login", 200, issued)
	it, err := c.PasswordLogin(context.Background(), "alice", "hunter2-secret", "")
	if err != nil {
		t.Fatal(err)
	}
	if it.Token != "kwt_new" || it.Principal != "user:alice" || it.ExpiresAt == nil || it.ExpiresAt.Year() != 2030 {
		t.Fatalf("issued = %+v", it)
	}
	r := f.last()
	if r.Auth != "" {
		t.Errorf("login sent Authorization %q", r.Auth)
	}
	if strings.Contains(r.Path+r.RawQuery, "hunter2") {
		t.Errorf("password in URL %s?%s", r.Path, r.RawQuery)
	}
	m := decodeBody(t, r.Body)
	if m["username"] != "alice" || m["password"] != "hunter2-secret" {
		t.Errorf("body = %v", m)
	}
	if _, ok := m["totp"]; ok {
		t.Errorf("empty totp sent: %v", m)
	}
	if r.ContentType != "application/json" {
		t.Errorf("content type %q", r.ContentType)
	}
}

func TestPasswordLoginTOTPRequired(t *testing.T) {
	f, c := newFake(t)
	f.routes["POST /v1/auth/password/login"] = func(w http.ResponseWriter, r *http.Request, body string) {
		var in struct{ TOTP string }
		json.Unmarshal([]byte(body), &in)
		if in.TOTP == "" {
			w.WriteHeader(401)
			io.WriteString(w, `{"error":{"code":"totp_required","message":"a TOTP code is required"}}`)
			return
		}
		io.WriteString(w, issued)
	}
	_, err := c.PasswordLogin(context.Background(), "alice", "pw", "")
	if !IsTOTPRequired(err) {
		t.Fatalf("err = %v, want totp_required", err)
	}
	var apiErr *Error
	if !errors.As(err, &apiErr) || apiErr.Status != 401 {
		t.Fatalf("err = %#v", err)
	}
	it, err := c.PasswordLogin(context.Background(), "alice", "pw", "123456")
	if err != nil || it.Token != "kwt_new" {
		t.Fatalf("retry with code: %v %v", it, err)
	}
	if IsTOTPRequired(errors.New("totp_required")) {
		t.Fatal("a plain error is not an API refusal")
	}
}

func TestLoginRateLimited(t *testing.T) {
	f, c := newFake(t)
	f.routes["POST /v1/auth/password/login"] = func(w http.ResponseWriter, r *http.Request, _ string) {
		w.Header().Set("Retry-After", "42")
		w.WriteHeader(429)
		io.WriteString(w, `{"error":{"code":"rate_limited","message":"too many attempts"}}`)
	}
	_, err := c.PasswordLogin(context.Background(), "alice", "s3cret-pw", "")
	d, ok := RetryAfter(err)
	if !ok || d != 42*time.Second {
		t.Fatalf("RetryAfter = %v, %v (err %v)", d, ok, err)
	}
	if !IsCode(err, CodeRateLimited) {
		t.Fatalf("IsCode(rate_limited) false for %v", err)
	}
	if !strings.Contains(err.Error(), "retry after 42s") || strings.Contains(err.Error(), "s3cret") {
		t.Fatalf("message %q", err.Error())
	}
}

func TestParseRetryAfter(t *testing.T) {
	now := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	cases := map[string]time.Duration{
		"":              0,
		"5":             5 * time.Second,
		" 7 ":           7 * time.Second,
		"-3":            0,
		"abc":           0,
		"9999999999999": 24 * time.Hour,
		now.Add(90 * time.Second).Format(http.TimeFormat): 90 * time.Second,
		now.Add(-time.Hour).Format(http.TimeFormat):       0,
	}
	for in, want := range cases {
		if got := parseRetryAfter(in, now); got != want {
			t.Errorf("parseRetryAfter(%q) = %v, want %v", in, got, want)
		}
	}
}

func TestServiceAndJWTLogin(t *testing.T) {
	f, c := newFake(t)
	f.json("POST /v1/auth/service/login", 200, issued)
	f.json("POST /v1/auth/jwt/login", 200, issued)
	if _, err := c.ServiceLogin(context.Background(), "kwsvc-0123456789abcdef", "kws_topsecret"); err != nil {
		t.Fatal(err)
	}
	m := decodeBody(t, f.last().Body)
	if m["client_id"] != "kwsvc-0123456789abcdef" || m["client_secret"] != "kws_topsecret" {
		t.Errorf("service body = %v", m)
	}
	if _, err := c.JWTLogin(context.Background(), "github", "eyJ.x.y"); err != nil {
		t.Fatal(err)
	}
	m = decodeBody(t, f.last().Body)
	if m["issuer"] != "github" || m["jwt"] != "eyJ.x.y" {
		t.Errorf("jwt body = %v", m)
	}
	for _, r := range f.requests {
		if strings.Contains(r.Path+r.RawQuery, "secret") || strings.Contains(r.Path+r.RawQuery, "eyJ") {
			t.Errorf("credential in URL %s?%s", r.Path, r.RawQuery)
		}
	}
}

const info = `{"accessor":"acc1","principal":"user:alice","auth_method":"password","policies":["dev"],"ttl":"15m0s","renewable":true,"created_at":"2030-01-01T00:00:00Z","expires_at":"2030-01-01T00:15:00Z"}`

func TestTokenMethods(t *testing.T) {
	f, c := newFake(t)
	ctx := context.Background()
	f.json("POST /v1/auth/token/create", 200, issued)
	f.json("GET /v1/auth/token/lookup-self", 200, info)
	f.json("POST /v1/auth/token/renew-self", 200, info)
	f.json("POST /v1/auth/token/revoke-self", 200, `{"revoked":3}`)
	f.json("GET /v1/auth/token/accessors/acc%2F1", 200, info)
	f.json("POST /v1/auth/token/accessors/acc1/renew", 200, info)
	f.json("DELETE /v1/auth/token/accessors/acc1", 200, `{"revoked":1}`)

	it, err := c.CreateToken(ctx, CreateTokenRequest{Policies: []string{"dev"}, TTL: "10m", BoundCIDRs: []string{"10.0.0.0/8"}, MaxUses: 2})
	if err != nil || it.Accessor != "acc1" {
		t.Fatalf("create: %v %v", it, err)
	}
	r := f.last()
	if r.Auth != "Bearer kwt_parenttoken" {
		t.Errorf("auth %q", r.Auth)
	}
	m := decodeBody(t, r.Body)
	if m["ttl"] != "10m" || m["max_uses"] != 2.0 || m["bound_cidrs"].([]any)[0] != "10.0.0.0/8" {
		t.Errorf("create body = %v", m)
	}
	if _, ok := m["max_ttl"]; ok {
		t.Errorf("empty max_ttl sent: %v", m)
	}
	ti, err := c.LookupSelf(ctx)
	if err != nil || ti.TTL != "15m0s" || !ti.Renewable || ti.ExpiresAt == nil {
		t.Fatalf("lookup-self: %+v %v", ti, err)
	}
	if _, err := c.RenewSelf(ctx, "1h"); err != nil {
		t.Fatal(err)
	}
	if m := decodeBody(t, f.last().Body); m["increment"] != "1h" {
		t.Errorf("renew body %v", m)
	}
	if _, err := c.RenewSelf(ctx, ""); err != nil || f.last().Body != "{}" {
		t.Errorf("renew with no increment sent %q (%v)", f.last().Body, err)
	}
	if n, err := c.RevokeSelf(ctx); err != nil || n != 3 {
		t.Fatalf("revoke-self = %d, %v", n, err)
	}
	if _, err := c.LookupAccessor(ctx, "acc/1"); err != nil {
		t.Fatalf("lookup accessor with a slash must be escaped: %v", err)
	}
	if _, err := c.RenewAccessor(ctx, "acc1", "30m"); err != nil {
		t.Fatal(err)
	}
	if n, err := c.RevokeAccessor(ctx, "acc1"); err != nil || n != 1 {
		t.Fatalf("revoke accessor = %d, %v", n, err)
	}
	if f.last().Method != "DELETE" {
		t.Errorf("revoke accessor used %s", f.last().Method)
	}
}

func TestDurationJSON(t *testing.T) {
	for in, want := range map[string]time.Duration{`"15m0s"`: 15 * time.Minute, `"1h"`: time.Hour, `900000000000`: 15 * time.Minute, `""`: 0, `null`: 0} {
		var d Duration
		if err := json.Unmarshal([]byte(in), &d); err != nil || time.Duration(d) != want {
			t.Errorf("%s -> %v, %v; want %v", in, time.Duration(d), err, want)
		}
	}
	for _, bad := range []string{`"soon"`, `true`, `1.5`} {
		var d Duration
		if err := json.Unmarshal([]byte(bad), &d); err == nil {
			t.Errorf("%s accepted", bad)
		}
	}
	b, _ := json.Marshal(Duration(90 * time.Second))
	if string(b) != `"1m30s"` {
		t.Errorf("marshal = %s", b)
	}
}

func FuzzDurationJSON(f *testing.F) {
	for _, s := range []string{`"15m"`, `123`, `null`, `""`, `"-1h"`, `{}`, `"1e9"`} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		var d Duration
		if err := d.UnmarshalJSON([]byte(s)); err != nil {
			return
		}
		b, err := d.MarshalJSON()
		if err != nil {
			t.Fatal(err)
		}
		var back Duration
		if err := back.UnmarshalJSON(b); err != nil || back != d {
			t.Fatalf("%s -> %s -> %v (%v)", s, b, back, err)
		}
	})
}
