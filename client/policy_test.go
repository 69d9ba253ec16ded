package client

import (
	"context"
	"errors"
	"io"
	"net/http"
	"testing"
)

func TestPolicyMethods(t *testing.T) {
	f, c := newFake(t)
	ctx := context.Background()
	doc := "name: ci\nrules:\n  - resources: [\"projects/p/**\"]\n    allow: [read]\n"
	f.routes["PUT /v1/policies/ci"] = func(w http.ResponseWriter, r *http.Request, body string) {
		io.WriteString(w, `{"name":"ci","changed":`+map[bool]string{true: "true", false: "false"}[body == doc]+`}`)
	}
	f.json("PUT /v1/policies/bad", 400, `{"error":{"code":"invalid_argument","message":"invalid policy: line 3: unknown action \"raed\""}}`)
	f.json("GET /v1/policies/ci", 200, `{"name":"ci","rules":[{"resources":["projects/p/**"],"allow":["read"]}],"document":"name: ci\n"}`)
	f.json("GET /v1/policies", 200, `{"policies":[{"name":"ci","rules":[]},{"name":"ops","description":"operators","rules":[]}]}`)
	f.json("DELETE /v1/policies/ci", 204, ``)
	f.json("POST /v1/policies/explain", 200, `{"allowed":true,"policy":"ci","rule":1,"effect":"allow","reason":"allowed by policy \"ci\" rule 1","policies":["ci"]}`)

	changed, err := c.PutPolicy(ctx, "ci", []byte(doc))
	if err != nil || !changed {
		t.Fatalf("put: %v %v", changed, err)
	}
	r := f.last()
	if r.ContentType != "application/yaml" || r.Body != doc || r.Method != "PUT" {
		t.Errorf("put sent %s %s %q", r.Method, r.ContentType, r.Body)
	}
	if changed, err := c.PutPolicy(ctx, "ci", []byte("other")); err != nil || changed {
		t.Fatalf("second put: %v %v", changed, err)
	}
	_, err = c.PutPolicy(ctx, "bad", []byte("x"))
	var apiErr *Error
	if !IsCode(err, "invalid_argument") || !errors.As(err, &apiErr) || apiErr.Message != `invalid policy: line 3: unknown action "raed"` {
		t.Fatalf("bad put: %v", err)
	}
	p, err := c.GetPolicy(ctx, "ci")
	if err != nil || p.Document != "name: ci\n" || p.Rules[0].Allow[0] != "read" {
		t.Fatalf("get: %+v %v", p, err)
	}
	if ps, err := c.ListPolicies(ctx); err != nil || len(ps) != 2 || ps[1].Description != "operators" {
		t.Fatalf("list: %v %v", ps, err)
	}
	if err := c.DeletePolicy(ctx, "ci"); err != nil {
		t.Fatal(err)
	}
	e, err := c.ExplainPolicy(ctx, "acc1", "read", "projects/p/envs/dev/secrets/x")
	if err != nil || !e.Allowed || e.Policy != "ci" || e.Rule != 1 {
		t.Fatalf("explain: %+v %v", e, err)
	}
	m := decodeBody(t, f.last().Body)
	if m["accessor"] != "acc1" || m["action"] != "read" || m["resource"] != "projects/p/envs/dev/secrets/x" {
		t.Errorf("explain body %v", m)
	}
}
