package server

import (
	"strings"
	"testing"
)

// A token, user or service account created with a policy that does not
// exist is issued (policy as code may create it later) with a warning
// naming it; known policies, and a child inheriting its parent's, give
// none. A policy created afterwards then applies to the token.
func TestCreateWarnsOfUnknownPolicy(t *testing.T) {
	r, root := devNode(t)
	u := r.url
	putPolicy(t, u, root, "name: readers\nrules:\n  - resources: [\"projects\"]\n    allow: [list]\n")
	c, out := raw(t, "POST", u+"/v1/auth/token/create", root, "application/json", `{"policies":["readers","reeders"],"ttl":"10m"}`)
	if c != 200 {
		t.Fatalf("create = %d %v", c, out)
	}
	ws, _ := out["warnings"].([]any)
	if len(ws) != 1 || !strings.Contains(ws[0].(string), `policy "reeders" does not exist`) {
		t.Fatalf("warnings = %v, want one naming reeders", out["warnings"])
	}
	typo := out["token"].(string)
	if c, out := raw(t, "POST", u+"/v1/auth/token/create", root, "application/json", `{"policies":["readers"],"ttl":"10m"}`); c != 200 || out["warnings"] != nil {
		t.Fatalf("known policy: %d, warnings %v", c, out["warnings"])
	}
	if c, out := raw(t, "POST", u+"/v1/auth/token/create", typo, "application/json", `{"ttl":"5m"}`); c != 200 || out["warnings"] != nil {
		t.Fatalf("child inheriting: %d, warnings %v", c, out["warnings"])
	}
	// Once "reeders" exists, the token holds it.
	if c, _ := raw(t, "GET", u+"/v1/identities/users", typo, "", ""); c != 403 {
		t.Fatalf("before the policy: list users = %d, want 403", c)
	}
	putPolicy(t, u, root, "name: reeders\nrules:\n  - resources: [\"identities/users\"]\n    allow: [list]\n")
	if c, out := raw(t, "GET", u+"/v1/identities/users", typo, "", ""); c != 200 {
		t.Fatalf("after the policy: list users = %d %v", c, out)
	}

	// Users and service accounts: the same warning, on creation only.
	c, out = raw(t, "POST", u+"/v1/identities/users", root, "application/json",
		`{"name":"alice","password":"correct horse battery","policies":["readers","writers"]}`)
	if ws, _ := out["warnings"].([]any); c != 201 || len(ws) != 1 || !strings.Contains(ws[0].(string), `policy "writers" does not exist: it grants the user nothing`) {
		t.Fatalf("create user = %d %v", c, out)
	}
	if c, out := raw(t, "GET", u+"/v1/identities/users/alice", root, "", ""); c != 200 || out["warnings"] != nil {
		t.Fatalf("get user = %d %v (warnings only on creation)", c, out)
	}
	c, out = raw(t, "POST", u+"/v1/identities/services", root, "application/json", `{"name":"ci","policies":["ci-deploy"]}`)
	if ws, _ := out["warnings"].([]any); c != 201 || len(ws) != 1 || !strings.Contains(ws[0].(string), `policy "ci-deploy" does not exist: it grants the service account nothing`) {
		t.Fatalf("create service = %d %v", c, out)
	}
	if c, out := raw(t, "POST", u+"/v1/identities/services", root, "application/json", `{"name":"ci2","policies":["readers"]}`); c != 201 || out["warnings"] != nil {
		t.Fatalf("create service with a known policy = %d %v", c, out)
	}
}

// A client API key created with a scope that matches no integration is
// created, with a warning naming the scope; scopes that match one (by
// name or pattern) give none.
func TestKeyCreateWarnsOfUnmatchedScope(t *testing.T) {
	r, root := devNode(t)
	u := r.url
	call(t, "POST", u+"/v1/projects", root, map[string]string{"name": "pay"}, nil)
	call(t, "PUT", u+"/v1/projects/pay/envs/prod/secrets/maps-key", root, map[string]string{"value": mapsKey}, nil)
	if c := call(t, "POST", u+"/v1/integrations", root, map[string]any{"name": "maps", "upstream": "http://127.0.0.1:1", "secret": "pay/prod/maps-key",
		"inject": "header:Authorization=Bearer {{secret}}", "allow_private": true}, nil); c != 201 {
		t.Fatalf("create integration = %d", c)
	}
	c, out := raw(t, "POST", u+"/v1/projects/pay/envs/prod/keys", root, "application/json",
		`{"name":"acme","scopes":["integrations/maps","integrations/m*","integrations/mapz"]}`)
	ws, _ := out["warnings"].([]any)
	if c != 201 || len(ws) != 1 || !strings.Contains(ws[0].(string), `scope "integrations/mapz" matches no integration`) {
		t.Fatalf("create key = %d, warnings %v", c, out["warnings"])
	}
	if c, out := raw(t, "POST", u+"/v1/projects/pay/envs/prod/keys", root, "application/json",
		`{"name":"ok","scopes":["integrations/**"]}`); c != 201 || out["warnings"] != nil {
		t.Fatalf("create key with a matching pattern = %d, warnings %v", c, out["warnings"])
	}
}

// POST /v1/policies/explain takes a set of policies instead of a token's
// accessor: the decision, its rule and a reason even when allowed; an
// unknown policy is warned of; accessor and policies together, or neither,
// are refused.
func TestExplainPolicies(t *testing.T) {
	r, root := devNode(t)
	u := r.url
	putPolicy(t, u, root, "name: ci\nrules:\n  - resources: [\"projects/pay/**\"]\n    allow: [read]\n  - resources: [\"projects/pay/envs/prod/**\"]\n    deny: [\"*\"]\n")
	explain := func(body string) (int, map[string]any) {
		t.Helper()
		return raw(t, "POST", u+"/v1/policies/explain", root, "application/json", body)
	}
	c, out := explain(`{"policies":["ci"],"action":"read","resource":"projects/pay/envs/dev/secrets/x"}`)
	if c != 200 || out["allowed"] != true || out["reason"] != `allowed by policy "ci" rule 0` || out["rule"] != 0.0 || out["warnings"] != nil {
		t.Fatalf("allowed: %d %v", c, out)
	}
	c, out = explain(`{"policies":["ci","cii"],"action":"read","resource":"projects/pay/envs/prod/secrets/x"}`)
	ws, _ := out["warnings"].([]any)
	if c != 200 || out["allowed"] != false || out["effect"] != "deny" || out["rule"] != 1.0 || len(ws) != 1 || !strings.Contains(ws[0].(string), `"cii"`) {
		t.Fatalf("denied: %d %v", c, out)
	}
	for _, body := range []string{`{"action":"read","resource":"a"}`, `{"accessor":"x","policies":["ci"],"action":"read","resource":"a"}`,
		`{"policies":["ci"],"resource":"a"}`} {
		if c, out := explain(body); c != 400 {
			t.Errorf("%s = %d %v, want 400", body, c, out)
		}
	}
}

// putPolicy stores a policy document (YAML; its name is in it) and fails the
// test unless it is accepted.
func putPolicy(t *testing.T, u, token, doc string) {
	t.Helper()
	name := ""
	for _, line := range strings.Split(doc, "\n") {
		if n, ok := strings.CutPrefix(line, "name: "); ok {
			name = strings.TrimSpace(n)
			break
		}
	}
	if c, out := raw(t, "PUT", u+"/v1/policies/"+name, token, "application/yaml", doc); c != 200 {
		t.Fatalf("put policy %s = %d %v", name, c, out)
	}
}

// A JWT issuer naming policies that do not exist (in policies or its
// policy map) is saved, with a warning for each missing policy.
func TestIssuerPutWarnsOfUnknownPolicy(t *testing.T) {
	r, root := devNode(t)
	u := r.url
	putPolicy(t, u, root, "name: deploy\nrules:\n  - resources: [\"projects\"]\n    allow: [list]\n")
	issuer := map[string]any{
		"issuer_url": "https://idp.example.com", "audiences": []string{"keyward"}, "jwks_url": "https://idp.example.com/jwks",
		"bound_claims": map[string][]string{"sub": {"*"}}, "policies": []string{"deploy", "reed"},
		"policy_map": []map[string]any{{"claim": "ref", "value": "main", "policies": []string{"deploy", "reed", "ship"}}},
	}
	var out map[string]any
	if c := call(t, "PUT", u+"/v1/auth/jwt/issuers/ci", root, issuer, &out); c != 200 {
		t.Fatalf("put issuer = %d %v", c, out)
	}
	ws, _ := out["warnings"].([]any)
	if len(ws) != 2 || !strings.Contains(ws[0].(string), `policy "reed" does not exist: it grants the issuer's tokens nothing`) ||
		!strings.Contains(ws[1].(string), `policy "ship"`) || out["issuer_url"] != "https://idp.example.com" {
		t.Fatalf("put issuer answer = %v", out)
	}
	out = nil
	if c := call(t, "GET", u+"/v1/auth/jwt/issuers/ci", root, nil, &out); c != 200 || out["warnings"] != nil {
		t.Fatalf("get issuer = %d %v (warnings only when saved)", c, out)
	}
}
