package client

import (
	"context"
	"encoding/json"
	"net/url"
	"strings"
	"testing"
	"time"
)

func TestUserMethods(t *testing.T) {
	f, c := newFake(t)
	ctx := context.Background()
	user := `{"name":"alice","policies":["dev"],"token_ttl":"15m0s","token_max_ttl":"8h0m0s","disabled":false,"totp_enrolled":true,"created_at":"2030-01-01T00:00:00Z"}`
	f.json("POST /v1/identities/users", 201, user)
	f.json("GET /v1/identities/users", 200, `{"users":[`+user+`],"next":"alice"}`)
	f.json("GET /v1/identities/users/alice", 200, user)
	f.json("POST /v1/identities/users/alice/disable", 204, ``)
	f.json("POST /v1/identities/users/alice/enable", 204, ``)
	f.json("POST /v1/identities/users/alice/password", 204, ``)
	f.json("POST /v1/identities/users/alice/totp", 200, `{"secret":"JBSWY3DPEHPK3PXP","url":"otpauth://totp/keyward:alice?secret=JBSWY3DPEHPK3PXP"}`)
	f.json("DELETE /v1/identities/users/alice/totp", 204, ``)

	u, err := c.CreateUser(ctx, CreateUserRequest{Name: "alice", Password: "correct horse", TokenTTL: "15m"})
	if err != nil || u.Name != "alice" || time.Duration(u.TokenMaxTTL) != 8*time.Hour || !u.TOTPEnrolled {
		t.Fatalf("create: %+v %v", u, err)
	}
	m := decodeBody(t, f.last().Body)
	if m["password"] != "correct horse" || m["token_ttl"] != "15m" || m["policies"] == nil {
		t.Errorf("create body %v", m)
	}
	us, next, err := c.ListUsers(ctx, 1, "aaron")
	if err != nil || len(us) != 1 || next != "alice" {
		t.Fatalf("list: %v %q %v", us, next, err)
	}
	if q, _ := url.ParseQuery(f.last().RawQuery); q.Get("limit") != "1" || q.Get("cursor") != "aaron" {
		t.Errorf("list query %v", q)
	}
	if _, _, err := c.ListUsers(ctx, 0, ""); err != nil || f.last().RawQuery != "" {
		t.Errorf("list with defaults: query %q %v", f.last().RawQuery, err)
	}
	if _, err := c.GetUser(ctx, "alice"); err != nil {
		t.Fatal(err)
	}
	if err := c.DisableUser(ctx, "alice"); err != nil {
		t.Fatal(err)
	}
	if err := c.EnableUser(ctx, "alice"); err != nil {
		t.Fatal(err)
	}
	if err := c.SetUserPassword(ctx, "alice", "new-pass-123"); err != nil {
		t.Fatal(err)
	}
	if m := decodeBody(t, f.last().Body); m["password"] != "new-pass-123" {
		t.Errorf("password body %v", m)
	}
	e, err := c.EnrollTOTP(ctx, "alice")
	if err != nil || e.Secret != "JBSWY3DPEHPK3PXP" || !strings.HasPrefix(e.URL, "otpauth://") {
		t.Fatalf("enroll: %+v %v", e, err)
	}
	if err := c.RemoveTOTP(ctx, "alice"); err != nil {
		t.Fatal(err)
	}
	if _, err := c.GetUser(ctx, "bob"); !IsCode(err, "not_found") {
		t.Fatalf("missing user: %v", err)
	}
	for _, r := range f.requests {
		if u := r.Path + "?" + r.RawQuery; strings.Contains(u, "horse") || strings.Contains(u, "new-pass") {
			t.Errorf("password in URL %s", u)
		}
	}
}

func TestServiceMethods(t *testing.T) {
	f, c := newFake(t)
	ctx := context.Background()
	svc := `{"name":"ci","client_id":"kwsvc-0123456789abcdef","policies":["ci"],"token_ttl":900000000000,"bound_cidrs":["10.0.0.0/8"],"disabled":false,"created_at":"2030-01-01T00:00:00Z"}`
	f.json("POST /v1/identities/services", 201, `{"service":`+svc+`,"client_id":"kwsvc-0123456789abcdef","client_secret":"kws_secret1"}`)
	f.json("GET /v1/identities/services", 200, `{"services":[`+svc+`],"next":""}`)
	f.json("GET /v1/identities/services/ci", 200, svc)
	f.json("POST /v1/identities/services/ci/disable", 204, ``)
	f.json("POST /v1/identities/services/ci/enable", 204, ``)
	f.json("POST /v1/identities/services/ci/rotate-secret", 200, `{"client_id":"kwsvc-0123456789abcdef","client_secret":"kws_secret2","previous_valid_until":"2030-01-01T01:00:00Z"}`)

	sc, err := c.CreateService(ctx, CreateServiceRequest{Name: "ci", Policies: []string{"ci"}, BoundCIDRs: []string{"10.0.0.0/8"}})
	if err != nil || sc.ClientSecret != "kws_secret1" || sc.Service == nil || time.Duration(sc.Service.TokenTTL) != 15*time.Minute {
		t.Fatalf("create: %+v %v", sc, err)
	}
	if m := decodeBody(t, f.last().Body); m["name"] != "ci" || m["bound_cidrs"] == nil {
		t.Errorf("create body %v", m)
	}
	if ss, next, err := c.ListServices(ctx, 10, "a"); err != nil || len(ss) != 1 || ss[0].BoundCIDRs[0] != "10.0.0.0/8" || next != "" {
		t.Fatalf("list: %v %q %v", ss, next, err)
	}
	if q, _ := url.ParseQuery(f.last().RawQuery); q.Get("limit") != "10" || q.Get("cursor") != "a" {
		t.Errorf("list query %v", q)
	}
	if _, err := c.GetService(ctx, "ci"); err != nil {
		t.Fatal(err)
	}
	if err := c.DisableService(ctx, "ci"); err != nil {
		t.Fatal(err)
	}
	if err := c.EnableService(ctx, "ci"); err != nil {
		t.Fatal(err)
	}
	rc, err := c.RotateServiceSecret(ctx, "ci", "1h")
	if err != nil || rc.ClientSecret != "kws_secret2" || rc.PreviousValidUntil == nil {
		t.Fatalf("rotate: %+v %v", rc, err)
	}
	if m := decodeBody(t, f.last().Body); m["grace"] != "1h" {
		t.Errorf("rotate body %v", m)
	}
}

func TestIssuerMethods(t *testing.T) {
	f, c := newFake(t)
	ctx := context.Background()
	iss := `{"name":"github","issuer_url":"https://token.actions.githubusercontent.com","audiences":["keyward"],"jwks_url":"https://token.actions.githubusercontent.com/.well-known/jwks","bound_claims":{"repository":["acme/*"]},"policy_map":[{"claim":"ref","value":"refs/heads/main","policies":["deploy"]}],"token_ttl":"10m0s"}`
	f.json("PUT /v1/auth/jwt/issuers/github", 200, iss)
	f.json("GET /v1/auth/jwt/issuers", 200, `{"issuers":[`+iss+`]}`)
	f.json("GET /v1/auth/jwt/issuers/github", 200, iss)
	f.json("DELETE /v1/auth/jwt/issuers/github", 204, ``)

	body := json.RawMessage(`{"issuer_url":"https://token.actions.githubusercontent.com","audiences":["keyward"]}`)
	got, err := c.PutIssuer(ctx, "github", body)
	if err != nil || got.IssuerURL == "" || got.PolicyMap[0].Policies[0] != "deploy" || time.Duration(got.TokenTTL) != 10*time.Minute {
		t.Fatalf("put: %+v %v", got, err)
	}
	r := f.last()
	if r.ContentType != "application/json" || r.Body != string(body) {
		t.Errorf("put sent %s %q", r.ContentType, r.Body)
	}
	if is, err := c.ListIssuers(ctx); err != nil || len(is) != 1 || is[0].BoundClaims["repository"][0] != "acme/*" {
		t.Fatalf("list: %v %v", is, err)
	}
	if _, err := c.GetIssuer(ctx, "github"); err != nil {
		t.Fatal(err)
	}
	if err := c.DeleteIssuer(ctx, "github"); err != nil {
		t.Fatal(err)
	}
}
