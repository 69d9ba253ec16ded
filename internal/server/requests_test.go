package server

import (
	"strings"
	"testing"
	"time"

	"github.com/keyward/keyward/internal/audit"
)

// Just-in-time access end to end: alice asks for prod-read; she cannot
// approve it herself, nor can dave (no admin on its policy); bob approves;
// only alice exchanges it for a token, once; that token reads production
// and expires with the ttl asked for.
func TestAccessRequestFlow(t *testing.T) {
	r, root := devNode(t)
	u := r.url
	call(t, "POST", u+"/v1/projects", root, map[string]string{"name": "shop"}, nil)
	call(t, "PUT", u+"/v1/projects/shop/envs/prod/secrets/db", root, map[string]string{"value": "prod-password"}, nil)
	putPolicy(t, u, root, "name: prod-read\nrules:\n  - resources: [\"projects/shop/envs/prod/**\"]\n    allow: [read]\n")
	putPolicy(t, u, root, "name: prod-approver\nrules:\n  - resources: [\"sys/access/policies/prod-*\"]\n    allow: [admin]\n")
	login := func(name string, policies ...string) string {
		t.Helper()
		if c := call(t, "POST", u+"/v1/identities/users", root, map[string]any{"name": name, "password": "correct horse battery", "policies": policies}, nil); c != 201 {
			t.Fatalf("user %s = %d", name, c)
		}
		var out struct{ Token string }
		if c := call(t, "POST", u+"/v1/auth/password/login", "", map[string]string{"username": name, "password": "correct horse battery"}, &out); c != 200 {
			t.Fatalf("login %s = %d", name, c)
		}
		return out.Token
	}
	alice, bob, dave := login("alice", "default"), login("bob", "prod-approver"), login("dave", "default")

	if c := call(t, "GET", u+"/v1/projects/shop/envs/prod/secrets/db", alice, nil, nil); c != 403 {
		t.Fatalf("alice before = %d, want 403", c)
	}
	var req struct {
		ID, State, Requester, TTL string
		Policies                  []string
	}
	if c := call(t, "POST", u+"/v1/access/requests", alice, map[string]any{"policies": []string{"prod-read"}, "ttl": "15m", "reason": "INC-7: checkout errors"}, &req); c != 201 {
		t.Fatalf("request = %d", c)
	}
	if req.State != "pending" || req.Requester != "user:alice" || req.TTL != "15m0s" {
		t.Fatalf("request %+v", req)
	}
	path := u + "/v1/access/requests/" + req.ID
	if c := call(t, "POST", path+"/approve", alice, nil, nil); c != 403 {
		t.Fatalf("self-approval = %d, want 403", c)
	}
	if c := call(t, "POST", path+"/approve", dave, nil, nil); c != 404 {
		t.Fatalf("approval by dave (who may not see it) = %d, want 404", c)
	}
	var list struct{ Requests []struct{ ID, State string } }
	if c := call(t, "GET", u+"/v1/access/requests?state=pending", bob, nil, &list); c != 200 || len(list.Requests) != 1 || list.Requests[0].ID != req.ID {
		t.Fatalf("bob's pending list = %d %+v", c, list)
	}
	if c := call(t, "GET", u+"/v1/access/requests", dave, nil, &list); c != 200 || len(list.Requests) != 0 {
		t.Fatalf("dave's list = %d %+v", c, list)
	}
	if c := call(t, "POST", path+"/token", alice, nil, nil); c != 409 {
		t.Fatalf("token before approval = %d, want 409", c)
	}
	if c := call(t, "POST", path+"/approve", bob, map[string]string{"note": "ok for INC-7"}, &req); c != 200 || req.State != "approved" {
		t.Fatalf("approval = %d %+v", c, req)
	}
	if c := call(t, "POST", path+"/token", bob, nil, nil); c != 403 {
		t.Fatalf("token for the approver = %d, want 403", c)
	}
	var tok struct {
		Token     string
		Accessor  string
		ExpiresAt time.Time `json:"expires_at"`
		Policies  []string
	}
	if c := call(t, "POST", path+"/token", alice, nil, &tok); c != 200 || strings.Join(tok.Policies, ",") != "prod-read" {
		t.Fatalf("token = %d %+v", c, tok)
	}
	if left := time.Until(tok.ExpiresAt); left > 15*time.Minute || left < 14*time.Minute {
		t.Fatalf("token expires in %s, want the 15m asked for", left)
	}
	var secret struct{ Value string }
	if c := call(t, "GET", u+"/v1/projects/shop/envs/prod/secrets/db", tok.Token, nil, &secret); c != 200 || secret.Value != "prod-password" {
		t.Fatalf("read with the granted token = %d %q", c, secret.Value)
	}
	if c := call(t, "POST", path+"/token", alice, nil, nil); c != 409 {
		t.Fatalf("second exchange = %d, want 409", c)
	}
	var info struct{ Meta map[string]string }
	call(t, "GET", u+"/v1/auth/token/lookup-self", tok.Token, nil, &info)
	if info.Meta["access_request"] != req.ID || info.Meta["approved_by"] != "user:bob" {
		t.Fatalf("the token's meta = %v", info.Meta)
	}
	entries, err := r.node.auditLog.List(t.Context(), audit.Filter{ResourcePrefix: "sys/access/requests", Limit: 50})
	if err != nil {
		t.Fatal(err)
	}
	var trail []string
	for _, e := range entries {
		if e.Outcome == "allowed" && e.Detail["state"] != "" {
			trail = append(trail, e.Principal+" "+e.Detail["state"])
		}
	}
	if got := strings.Join(trail, ", "); got != "user:alice pending, user:bob approved, user:alice issued" {
		t.Fatalf("audit trail: %s", got)
	}

	// Refusals: an unknown policy, root, no reason; a denial is final.
	for _, body := range []map[string]any{
		{"policies": []string{"prod-raed"}, "reason": "x"},
		{"policies": []string{"root"}, "reason": "x"},
		{"policies": []string{"prod-read"}},
		{"policies": []string{"prod-read"}, "reason": "x", "ttl": "2d"},
	} {
		if c := call(t, "POST", u+"/v1/access/requests", alice, body, nil); c != 400 {
			t.Errorf("request %v = %d, want 400", body, c)
		}
	}
	call(t, "POST", u+"/v1/access/requests", alice, map[string]any{"policies": []string{"prod-read"}, "reason": "again"}, &req)
	if c := call(t, "POST", u+"/v1/access/requests/"+req.ID+"/deny", bob, map[string]string{"note": "use staging"}, &req); c != 200 || req.State != "denied" {
		t.Fatalf("deny = %d %+v", c, req)
	}
	if c := call(t, "POST", u+"/v1/access/requests/"+req.ID+"/token", alice, nil, nil); c != 409 {
		t.Fatalf("token of a denied request = %d, want 409", c)
	}
}
