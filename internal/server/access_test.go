package server

import (
	"strings"
	"testing"

	"github.com/keyward/keyward/internal/device"
)

// An access review names who may read a production secret: the users,
// service accounts, issuer mappings and live tokens whose policies allow
// it, with the deciding rule; an explicit deny or an environment binding
// keeps a holder out.
func TestWhoCan(t *testing.T) {
	r, root := devNode(t)
	u := r.url
	putPolicy(t, u, root, "name: ops\nrules:\n  - resources: [\"projects/shop/**\"]\n    allow: [read, list]\n")
	putPolicy(t, u, root, "name: no-prod\nrules:\n  - resources: [\"projects/*/envs/prod/**\"]\n    deny: [\"*\"]\n")
	putPolicy(t, u, root, "name: viewer\nrules:\n  - resources: [\"projects/shop/**\"]\n    allow: [list]\n")
	for _, us := range []struct {
		name     string
		policies []string
	}{{"alice", []string{"ops"}}, {"bob", []string{"viewer"}}, {"carol", []string{"ops", "no-prod"}}} {
		if c := call(t, "POST", u+"/v1/identities/users", root, map[string]any{"name": us.name, "password": "correct horse battery", "policies": us.policies}, nil); c != 201 {
			t.Fatalf("user %s = %d", us.name, c)
		}
	}
	if c := call(t, "POST", u+"/v1/identities/services", root, map[string]any{"name": "deployer", "policies": []string{"ops"}}, nil); c != 201 {
		t.Fatalf("service = %d", c)
	}
	issuer := map[string]any{"issuer_url": "https://token.actions.githubusercontent.com", "audiences": []string{"keyward"},
		"jwks_url": "https://token.actions.githubusercontent.com/.well-known/jwks", "algorithms": []string{"RS256"}, "bound_claims": map[string][]string{"repository_owner": {"acme"}},
		"policy_map": []map[string]any{{"claim": "repository", "value": "acme/shop", "policies": []string{"ops"}}, {"claim": "repository", "value": "acme/*", "policies": []string{"viewer"}}}}
	if c := call(t, "PUT", u+"/v1/auth/jwt/issuers/github", root, issuer, nil); c != 200 {
		t.Fatalf("issuer = %d", c)
	}
	devs := device.New(r.node.store, r.node.barrier, nil)
	code, _, err := devs.CreateEnrollment(t.Context(), "", []string{"ops"}, 1, 0, "root", nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	dev, err := devs.Enroll(t.Context(), code, "thumbprint-of-a-key", "gate", nil)
	if err != nil {
		t.Fatal(err)
	}
	call(t, "POST", u+"/v1/auth/token/create", root, map[string]any{"policies": []string{"ops"}}, nil)
	call(t, "POST", u+"/v1/auth/token/create", root, map[string]any{"policies": []string{"ops"}}, nil)
	call(t, "POST", u+"/v1/auth/token/create", root, map[string]any{"policies": []string{"ops"}, "bound_envs": []string{"shop/dev"}}, nil)

	var rev struct {
		Policies []string
		Holders  []struct {
			Kind, Name, Claim, Value string
			Policies                 []string
			AllowedBy                string `json:"allowed_by"`
			Count                    int
		}
		Truncated bool
	}
	if c := call(t, "POST", u+"/v1/policies/who-can", root, map[string]string{"action": "read", "resource": "projects/shop/envs/prod/secrets/db"}, &rev); c != 200 {
		t.Fatalf("who-can = %d", c)
	}
	if strings.Join(rev.Policies, ",") != "ops,root" {
		t.Errorf("policies = %v, want ops and root", rev.Policies)
	}
	got := map[string]string{}
	for _, h := range rev.Holders {
		key := h.Kind + " " + h.Name
		if h.Claim != "" {
			key += " " + h.Claim + "=" + h.Value
		}
		if h.Kind == "tokens" {
			key += " " + strings.Join(h.Policies, ",")
		}
		got[key] = h.AllowedBy
		if h.Kind == "tokens" && h.Name == "root" && strings.Join(h.Policies, ",") == "ops" && h.Count != 2 {
			t.Errorf("root's unbound ops tokens: count %d, want 2 (the one bound to shop/dev cannot)", h.Count)
		}
	}
	for _, want := range []string{"user alice", "service deployer", "device " + dev.ID + " (gate)", "issuer github repository=acme/shop", "tokens root ops", "tokens root root"} {
		if !strings.HasPrefix(got[want], "allowed by policy") {
			t.Errorf("%s: %q, want it listed with its rule (all: %v)", want, got[want], got)
		}
	}
	for _, not := range []string{"user bob", "user carol", "issuer github", "issuer github repository=acme/*"} {
		if _, ok := got[not]; ok {
			t.Errorf("%s is listed: %v", not, got)
		}
	}
	if rev.Truncated {
		t.Error("truncated")
	}
	if c := call(t, "POST", u+"/v1/policies/who-can", root, map[string]string{"action": "read"}, nil); c != 400 {
		t.Errorf("no resource = %d, want 400", c)
	}
	reader := childToken(t, u, root, "ops")
	if c := call(t, "POST", u+"/v1/policies/who-can", reader, map[string]string{"action": "read", "resource": "x"}, nil); c != 403 {
		t.Errorf("without read on sys/access = %d, want 403", c)
	}
}
