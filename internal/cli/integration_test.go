package cli

import (
	"encoding/json"
	"strings"
	"testing"
)

const integrationJSON = `{"name":"stripe","upstream":"https://api.stripe.com","secret":"payments/prod/stripe-key",
"inject":"header:Authorization=Bearer {{secret}}","methods":["GET","POST"],"paths":["/v1/**"],"timeout":"10s",
"max_body_bytes":1048576,"strip_response_headers":[],"allow_private":false,
"created_at":"2030-01-01T00:00:00Z","created_by":"user:alice","updated_at":"2030-01-01T00:00:00Z","updated_by":"user:alice"}`

func TestIntegrationCreate(t *testing.T) {
	h := newHarness(t)
	h.vars["KEYWARD_TOKEN"] = "kwt_admintoken"
	h.fake.handle("POST /v1/integrations", 201, integrationJSON)
	r := h.must("", "integration", "create", "stripe", "--upstream", "https://api.stripe.com", "--secret", "payments/prod/stripe-key",
		"--inject", "header:Authorization=Bearer {{secret}}", "--method", "GET", "--method", "post", "--path", "/v1/**",
		"--timeout", "10s", "--max-body", "1MiB", "--strip-header", "X-Debug,X-Trace", "--rate", "100/s", "--caller-rate", "60/min")
	if !strings.Contains(r.stdout, "Created integration stripe -> https://api.stripe.com") || !strings.Contains(r.stdout, "/v1/gateway/stripe/<path>") {
		t.Errorf("stdout = %q", r.stdout)
	}
	reqs := h.fake.requests("POST /v1/integrations")
	if len(reqs) != 1 || reqs[0].Auth != "Bearer kwt_admintoken" || reqs[0].ContentType != "application/json" {
		t.Fatalf("requests = %+v", reqs)
	}
	var body map[string]any
	json.Unmarshal([]byte(reqs[0].Body), &body)
	want := map[string]any{"name": "stripe", "upstream": "https://api.stripe.com", "secret": "payments/prod/stripe-key",
		"inject": "header:Authorization=Bearer {{secret}}", "methods": []any{"GET", "post"}, "paths": []any{"/v1/**"},
		"timeout": "10s", "max_body_bytes": float64(1 << 20), "strip_response_headers": []any{"X-Debug", "X-Trace"},
		"rate": "100/s", "caller_rate": "60/min"}
	for k, v := range want {
		if b, _ := json.Marshal(body[k]); string(b) != mustJSON(v) {
			t.Errorf("body[%s] = %s, want %s", k, b, mustJSON(v))
		}
	}
	if _, ok := body["allow_private"]; ok {
		t.Errorf("allow_private sent without the flag: %v", body)
	}
}

func mustJSON(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

func TestIntegrationUsageErrors(t *testing.T) {
	h := newHarness(t)
	for _, args := range [][]string{
		{"integration", "create", "x", "--secret", "p/e/k", "--inject", "query:key"},
		{"integration", "create", "x", "--upstream", "https://a.example", "--secret", "p/e/k", "--inject", "query:key", "--max-body", "lots"},
		{"integration", "create", "x", "--upstream", "https://a.example", "--secret", "p/e/k", "--inject", "query:key", "--timeout", "soon"},
		{"integration", "get"},
		{"integration", "delete", "a", "b"},
	} {
		if r := h.run("", args...); r.code != ExitUsage {
			t.Errorf("%v: exit %d, want %d (stderr %q)", args, r.code, ExitUsage, r.stderr)
		}
	}
	if n := len(h.fake.requests("POST /v1/integrations")); n != 0 {
		t.Errorf("%d requests sent for usage errors", n)
	}
}

func TestIntegrationUpdateKeepsOtherSettings(t *testing.T) {
	h := newHarness(t)
	h.fake.handle("GET /v1/integrations/stripe", 200, integrationJSON)
	h.fake.handle("PUT /v1/integrations/stripe", 200, integrationJSON)
	h.must("", "integration", "update", "stripe", "--timeout", "20s", "--path", "/v1/charges/**")
	reqs := h.fake.requests("PUT /v1/integrations/stripe")
	if len(reqs) != 1 {
		t.Fatalf("PUT requests = %d", len(reqs))
	}
	var body map[string]any
	json.Unmarshal([]byte(reqs[0].Body), &body)
	if body["timeout"] != "20s" || mustJSON(body["paths"]) != `["/v1/charges/**"]` || mustJSON(body["methods"]) != `["GET","POST"]` ||
		body["upstream"] != "https://api.stripe.com" || body["secret"] != "payments/prod/stripe-key" || body["name"] != nil || body["created_at"] != nil {
		t.Errorf("update body = %v", body)
	}
}

func TestIntegrationGetListDelete(t *testing.T) {
	h := newHarness(t)
	h.fake.handle("GET /v1/integrations/stripe", 200, integrationJSON)
	h.fake.handle("GET /v1/integrations", 200, `{"integrations":[`+integrationJSON+`]}`)
	h.fake.handle("DELETE /v1/integrations/stripe", 204, "")
	h.fake.handle("GET /v1/integrations/nope", 404, `{"error":{"code":"not_found","message":"integration \"nope\": not found","request_id":"r1"}}`)
	r := h.must("", "integration", "get", "stripe")
	for _, want := range []string{"upstream:", "https://api.stripe.com", "header:Authorization=Bearer {{secret}}", "/v1/**", "1048576 bytes", "user:alice"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("get output lacks %q:\n%s", want, r.stdout)
		}
	}
	r = h.must("", "integration", "list", "-o", "json")
	var list []map[string]any
	if err := json.Unmarshal([]byte(r.stdout), &list); err != nil || len(list) != 1 || list[0]["name"] != "stripe" {
		t.Errorf("list -o json = %q (%v)", r.stdout, err)
	}
	r = h.must("", "integration", "list")
	if !strings.Contains(r.stdout, "NAME") || !strings.Contains(r.stdout, "stripe") {
		t.Errorf("list = %q", r.stdout)
	}
	h.must("", "integration", "delete", "stripe")
	if n := len(h.fake.requests("DELETE /v1/integrations/stripe")); n != 1 {
		t.Errorf("%d DELETE requests", n)
	}
	if r := h.run("", "integration", "get", "nope"); r.code != ExitFailure || !strings.Contains(r.stderr, "not found") {
		t.Errorf("get nope: %d %q", r.code, r.stderr)
	}
}
