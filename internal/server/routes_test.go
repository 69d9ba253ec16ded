package server

import (
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/keyward/keyward/internal/apikey"
	"github.com/keyward/keyward/internal/audit"
	"github.com/keyward/keyward/internal/credential"
	"github.com/keyward/keyward/internal/httpapi"
	"github.com/keyward/keyward/internal/policy"
	"github.com/keyward/keyward/internal/storage"
	"github.com/keyward/keyward/internal/token"
)

// openRoutes are the only routes served without a token: health, metrics
// and the API description hold no data; init and unseal run before any token
// can exist and are guarded by the seal; login routes hand out tokens; the
// OAuth revocation endpoint takes the token to revoke as its credential.
var openRoutes = []string{
	"GET /v1/sys/health", "GET /metrics", "GET /v1/sys/openapi.json",
	"POST /v1/sys/init", "POST /v1/sys/unseal",
	"POST /v1/auth/password/login", "POST /v1/auth/service/login", "POST /v1/auth/jwt/login",
	// OAuth: token exchange is a login (an ID token in, a token out);
	// revocation is authorised by holding the token it revokes (RFC 7009).
	"POST /v1/oauth/token", "POST /v1/oauth/revoke",
	// A device enrolls with a one-time code and a proof of its key: the
	// code is its credential.
	"POST /v1/devices/enroll",
	// The dashboard's static files: no data; the page calls the API with
	// the user's token.
	"GET /ui/{file...}",
	// A leak report revokes the credentials it carries: they are its
	// authority, as for RFC 7009.
	"POST /v1/leaks",
}

// dataPlaneRoutes are the only routes of the data-plane listener
// (--gateway-listen): what apps, devices and customers' own services call.
// A route added to it is exposed wherever that listener is; add it here
// only on purpose.
var dataPlaneRoutes = []string{
	"GET /v1/sys/health",
	"POST /v1/oauth/token", "POST /v1/oauth/revoke", "POST /v1/oauth/introspect",
	"POST /v1/keys/verify",
	"POST /v1/devices/enroll",
	"POST /v1/leaks",
}

// concretePath fills a route pattern's wildcards.
func concretePath(pattern string) (method, path string) {
	method, path, _ = strings.Cut(pattern, " ")
	r := strings.NewReplacer("{project}", "p1", "{env}", "dev", "{path...}", "db/password",
		"{name}", "n1", "{accessor}", "acc1", "{version}", "1", "{id}", "key_00000000000000000000", "{integration}", "n1")
	path = r.Replace(path)
	if strings.HasSuffix(path, "/diff") {
		path += "?a=dev&b=prod"
	}
	return method, path
}

func TestEveryRouteIsAuthenticatedAndAuthorized(t *testing.T) {
	dir := t.TempDir()
	cfg := testConfig(dir)
	cfg.Dev = true
	r := start(t, cfg, nil)
	n := r.node
	ctx := t.Context()

	// A policy per action, allowing it everywhere, and one that allows nothing here.
	for _, a := range policy.Actions {
		p := &policy.Policy{Name: "all-" + a, Rules: []policy.Rule{{Resources: []string{"**"}, Allow: []string{a}}}}
		if _, err := n.policies.Put(ctx, p, "test", nil); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := n.policies.Put(ctx, &policy.Policy{Name: "unrelated",
		Rules: []policy.Rule{{Resources: []string{"elsewhere/**"}, Allow: []string{"*"}}}}, "test", nil); err != nil {
		t.Fatal(err)
	}
	issue := func(policies ...string) (string, *token.Token) {
		t.Helper()
		plain, tok, err := n.tokens.Issue(ctx, token.Request{Principal: "user:test", AuthMethod: "password", Policies: policies}, nil)
		if err != nil {
			t.Fatal(err)
		}
		return plain, tok
	}
	expired, expTok := issue("all-read")
	revoked, revTok := issue("all-read")
	if err := n.store.Write(ctx, func(tx storage.Tx) error {
		_, err := tx.Exec(ctx, `UPDATE tokens SET expires_at = 1 WHERE accessor = $1`, expTok.Accessor)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	if _, err := n.tokens.Revoke(ctx, revTok.Accessor, nil); err != nil {
		t.Fatal(err)
	}
	// Client API keys: one valid key scoped to everything (it may still
	// only proxy), one revoked, one expired.
	if _, err := n.secrets.CreateProject(ctx, "kp", "test", nil); err != nil {
		t.Fatal(err)
	}
	newKey := func() (string, *apikey.Key) {
		t.Helper()
		plain, k, err := n.apikeys.Create(ctx, apikey.CreateRequest{Project: "kp", Env: "dev", Name: "walker", Scopes: []string{"**"}}, nil)
		if err != nil {
			t.Fatal(err)
		}
		return plain, k
	}
	keyAll, _ := newKey()
	keyRevoked, krk := newKey()
	if _, err := n.apikeys.Revoke(ctx, "kp", "dev", krk.ID, nil); err != nil {
		t.Fatal(err)
	}
	keyExpired, kek := newKey()
	if err := n.store.Write(ctx, func(tx storage.Tx) error {
		_, err := tx.Exec(ctx, `UPDATE api_keys SET expires_at = 1 WHERE id = $1`, kek.ID)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	goodKey := credential.NewMarked(credential.APIKey, "test")
	badKeyChecksum := goodKey[:len(goodKey)-1] + map[bool]string{true: "A", false: "B"}[goodKey[len(goodKey)-1] != 'A']

	good := credential.New(credential.AccessToken)
	badChecksum := good[:len(good)-1] + map[bool]string{true: "A", false: "B"}[good[len(good)-1] != 'A']

	var open []string
	routes := slices.Clone(n.api.Routes())
	// Sealing ends the walk: it goes last.
	slices.SortStableFunc(routes, func(a, b httpapi.Route) int {
		return map[bool]int{true: 1, false: 0}[a.Pattern == "POST /v1/sys/seal"] - map[bool]int{true: 1, false: 0}[b.Pattern == "POST /v1/sys/seal"]
	})
	for _, rt := range routes {
		if rt.Open {
			open = append(open, rt.Pattern)
			continue
		}
		if rt.Action == "" || rt.Resource == nil {
			t.Errorf("%s declares no action or resource", rt.Pattern)
			continue
		}
		if !slices.Contains(policy.Actions, rt.Action) {
			t.Errorf("%s declares action %q, not a policy action", rt.Pattern, rt.Action)
		}
		method, path := concretePath(rt.Pattern)
		body := `{}`
		if method == http.MethodGet || method == http.MethodDelete {
			body = ""
		}
		do := func(tok string) int {
			t.Helper()
			req, _ := http.NewRequest(method, r.url+path, strings.NewReader(body))
			if body != "" {
				req.Header.Set("Content-Type", "application/json")
			}
			if tok != "" {
				req.Header.Set("Authorization", "Bearer "+tok)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatalf("%s: %v", rt.Pattern, err)
			}
			resp.Body.Close()
			return resp.StatusCode
		}
		for name, tok := range map[string]string{
			"no token": "", "malformed": "not-a-token", "bad checksum": badChecksum, "truncated": good[:20],
			"unknown": good, "expired": expired, "revoked": revoked,
			"unknown key": goodKey, "key with a bad checksum": badKeyChecksum, "revoked key": keyRevoked, "expired key": keyExpired,
		} {
			if code := do(tok); code != http.StatusUnauthorized {
				t.Errorf("%s with %s token: %d, want 401", rt.Pattern, name, code)
			}
		}
		without, _ := issue("unrelated")
		code := do(without)
		if rt.AnyToken {
			if code == http.StatusUnauthorized || code == http.StatusForbidden {
				t.Errorf("%s (any token) without a policy: %d", rt.Pattern, code)
			}
		} else if code != http.StatusForbidden {
			t.Errorf("%s without the policy: %d, want 403", rt.Pattern, code)
		}
		// An API key reaches nothing but proxy routes, AnyToken ones included.
		if code := do(keyAll); rt.Action == "proxy" && (code == http.StatusUnauthorized || code == http.StatusForbidden) ||
			rt.Action != "proxy" && code != http.StatusForbidden {
			t.Errorf("%s with an API key scoped to everything: %d", rt.Pattern, code)
		}
		with, _ := issue("all-" + rt.Action)
		if code := do(with); code == http.StatusUnauthorized || code == http.StatusForbidden || code >= 500 {
			t.Errorf("%s with policy all-%s: %d", rt.Pattern, rt.Action, code)
		}
	}
	slices.Sort(open)
	want := slices.Clone(openRoutes)
	slices.Sort(want)
	if !slices.Equal(open, want) {
		t.Errorf("open routes = %v, want %v", open, want)
	}
	var data []string
	for _, rt := range httpapi.DataPlaneRoutes(n.api.Routes()) {
		if !strings.Contains(rt.Pattern, " /v1/gateway/") {
			data = append(data, rt.Pattern)
		}
	}
	slices.Sort(data)
	want = slices.Clone(dataPlaneRoutes)
	slices.Sort(want)
	if !slices.Equal(data, want) {
		t.Errorf("data-plane routes (but the gateway's) = %v, want %v", data, want)
	}

	if !n.barrier.Sealed() {
		t.Error("the seal route with the admin policy did not seal")
	}
	// Every refusal above is in the audit log.
	es, err := n.auditLog.List(ctx, auditFilterDenied())
	if err != nil {
		t.Fatal(err)
	}
	if len(es) < 10 {
		t.Fatalf("only %d denied entries audited", len(es))
	}
}

func auditFilterDenied() audit.Filter { return audit.Filter{Outcome: "denied", Limit: 1000} }
