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

const oauth2IntegrationJSON = `{"name":"crm","upstream":"https://example.my.salesforce.com","secret":"crm/prod/salesforce-client-secret",
"inject":"oauth2","oauth2":{"token_url":"https://example.my.salesforce.com/services/oauth2/token","client_id":"3MVG9abc",
"scopes":["api","refresh_token"],"audience":"https://api.example.com","auth_style":"post"},
"methods":["GET"],"paths":["/**"],"timeout":"30s","max_body_bytes":10485760,"strip_response_headers":[],"allow_private":false,
"created_at":"2030-01-01T00:00:00Z","created_by":"user:alice","updated_at":"2030-01-01T00:00:00Z","updated_by":"user:alice"}`

func TestIntegrationCreateOAuth2(t *testing.T) {
	h := newHarness(t)
	h.fake.handle("POST /v1/integrations", 201, oauth2IntegrationJSON)
	h.must("", "integration", "create", "crm", "--upstream", "https://example.my.salesforce.com",
		"--secret", "crm/prod/salesforce-client-secret", "--inject", "oauth2",
		"--token-url", "https://example.my.salesforce.com/services/oauth2/token", "--client-id", "3MVG9abc",
		"--scope", "api", "--scope", "refresh_token web", "--audience", "https://api.example.com", "--client-auth", "post")
	reqs := h.fake.requests("POST /v1/integrations")
	if len(reqs) != 1 {
		t.Fatalf("requests = %+v", reqs)
	}
	body := bodyMap(t, reqs[0].Body)
	want := `{"audience":"https://api.example.com","auth_style":"post","client_id":"3MVG9abc","scopes":["api","refresh_token","web"],"token_url":"https://example.my.salesforce.com/services/oauth2/token"}`
	if got := mustJSON(body["oauth2"]); got != want || body["inject"] != "oauth2" {
		t.Errorf("inject %v, oauth2 = %s, want %s", body["inject"], got, want)
	}

	// Only the flags given: no scopes, audience or auth_style of the CLI's own.
	h.must("", "integration", "create", "crm", "--upstream", "https://example.my.salesforce.com",
		"--secret", "crm/prod/salesforce-client-secret", "--inject", "oauth2",
		"--token-url", "https://example.my.salesforce.com/services/oauth2/token", "--client-id", "3MVG9abc")
	reqs = h.fake.requests("POST /v1/integrations")
	want = `{"client_id":"3MVG9abc","token_url":"https://example.my.salesforce.com/services/oauth2/token"}`
	if got := mustJSON(bodyMap(t, reqs[1].Body)["oauth2"]); got != want {
		t.Errorf("oauth2 = %s, want %s", got, want)
	}

	// Other kinds send no oauth2 object.
	h.must("", "integration", "create", "stripe", "--upstream", "https://api.stripe.com", "--secret", "payments/prod/stripe-key",
		"--inject", "header:Authorization=Bearer {{secret}}")
	reqs = h.fake.requests("POST /v1/integrations")
	if _, ok := bodyMap(t, reqs[2].Body)["oauth2"]; ok {
		t.Errorf("oauth2 sent with a header inject: %s", reqs[2].Body)
	}
}

func TestIntegrationOAuth2UsageErrors(t *testing.T) {
	h := newHarness(t)
	h.fake.handle("GET /v1/integrations/stripe", 200, integrationJSON)
	h.fake.handle("GET /v1/integrations/crm", 200, oauth2IntegrationJSON)
	create := []string{"integration", "create", "x", "--upstream", "https://a.example", "--secret", "p/e/k"}
	for _, tc := range []struct {
		args []string
		flag string // named in the error
	}{
		{append(create[:len(create):len(create)], "--inject", "query:key", "--token-url", "https://a.example/token"), "--token-url"},
		{append(create[:len(create):len(create)], "--inject", "basic:u", "--client-id", "c"), "--client-id"},
		{append(create[:len(create):len(create)], "--inject", "header:X-Key={{secret}}", "--scope", "api"), "--scope"},
		{append(create[:len(create):len(create)], "--inject", "query:key", "--audience", "a"), "--audience"},
		{append(create[:len(create):len(create)], "--inject", "query:key", "--client-auth", "post"), "--client-auth"},
		{append(create[:len(create):len(create)], "--inject", "oauth2", "--client-id", "c"), "--token-url"},
		{append(create[:len(create):len(create)], "--inject", "oauth2", "--token-url", "https://a.example/token"), "--client-id"},
		{append(create[:len(create):len(create)], "--inject", "oauth2", "--token-url", "https://a.example/token", "--client-id", "c",
			"--client-auth", "jwt"), "--client-auth"},
		// update: the integration injects a header, and --inject does not change that
		{[]string{"integration", "update", "stripe", "--client-id", "c"}, "--client-id"},
		// update: switching away from oauth2 while setting its flags
		{[]string{"integration", "update", "crm", "--inject", "query:key", "--scope", "api"}, "--scope"},
		// update: switching to oauth2 needs the token URL and client id
		{[]string{"integration", "update", "stripe", "--inject", "oauth2", "--client-id", "c"}, "--token-url"},
	} {
		r := h.run("", tc.args...)
		if r.code != ExitUsage || !strings.HasPrefix(r.stderr, "Error: "+tc.flag+" ") {
			t.Errorf("%v: exit %d, want %d and an error about %s (stderr %q)", tc.args, r.code, ExitUsage, tc.flag, r.stderr)
		}
	}
	if n := len(h.fake.requests("POST /v1/integrations")); n != 0 {
		t.Errorf("%d POST requests sent for usage errors", n)
	}
	if n := len(h.fake.requests("PUT /v1/integrations/stripe")) + len(h.fake.requests("PUT /v1/integrations/crm")); n != 0 {
		t.Errorf("%d PUT requests sent for usage errors", n)
	}
}

func TestIntegrationUpdateOAuth2(t *testing.T) {
	h := newHarness(t)
	h.fake.handle("GET /v1/integrations/crm", 200, oauth2IntegrationJSON)
	h.fake.handle("PUT /v1/integrations/crm", 200, oauth2IntegrationJSON)
	h.fake.handle("GET /v1/integrations/stripe", 200, integrationJSON)
	h.fake.handle("PUT /v1/integrations/stripe", 200, integrationJSON)
	put := func(name string) map[string]any { t.Helper(); return lastPut(t, h, name) }

	// Another setting: the oauth2 object goes back as it was.
	h.must("", "integration", "update", "crm", "--timeout", "20s")
	b := put("crm")
	want := `{"audience":"https://api.example.com","auth_style":"post","client_id":"3MVG9abc","scopes":["api","refresh_token"],"token_url":"https://example.my.salesforce.com/services/oauth2/token"}`
	if got := mustJSON(b["oauth2"]); got != want || b["inject"] != "oauth2" || b["timeout"] != "20s" {
		t.Errorf("update --timeout: %v", b)
	}

	// One oauth2 flag: that field changes, the others stay.
	h.must("", "integration", "update", "crm", "--scope", "api", "--audience", "", "--client-auth", "basic")
	want = `{"auth_style":"basic","client_id":"3MVG9abc","scopes":["api"],"token_url":"https://example.my.salesforce.com/services/oauth2/token"}`
	if got := mustJSON(put("crm")["oauth2"]); got != want {
		t.Errorf("update --scope: oauth2 = %s, want %s", got, want)
	}

	// Switching to another kind drops the oauth2 object.
	h.must("", "integration", "update", "crm", "--inject", "header:Authorization=Bearer {{secret}}")
	if b := put("crm"); b["oauth2"] != nil || b["inject"] != "header:Authorization=Bearer {{secret}}" {
		t.Errorf("switched away from oauth2: %v", b)
	}

	// Switching to oauth2 sends the new object.
	h.must("", "integration", "update", "stripe", "--inject", "oauth2", "--token-url", "https://login.example.com/token", "--client-id", "c1")
	b = put("stripe")
	want = `{"client_id":"c1","token_url":"https://login.example.com/token"}`
	if got := mustJSON(b["oauth2"]); got != want || b["inject"] != "oauth2" {
		t.Errorf("switched to oauth2: %v", b)
	}
}

func TestIntegrationGetShowsOAuth2(t *testing.T) {
	h := newHarness(t)
	h.fake.handle("GET /v1/integrations/crm", 200, oauth2IntegrationJSON)
	h.fake.handle("GET /v1/integrations/stripe", 200, integrationJSON)
	r := h.must("", "integration", "get", "crm")
	for _, want := range []string{
		"inject:", "oauth2",
		"token url:", "https://example.my.salesforce.com/services/oauth2/token",
		"client id:", "3MVG9abc",
		"scopes:", "api refresh_token",
		"audience:", "https://api.example.com",
		"client auth:", "post",
	} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("get output lacks %q:\n%s", want, r.stdout)
		}
	}
	r = h.must("", "integration", "get", "crm", "-o", "json")
	var doc map[string]any
	if err := json.Unmarshal([]byte(r.stdout), &doc); err != nil {
		t.Fatalf("get -o json = %q: %v", r.stdout, err)
	}
	if o, _ := doc["oauth2"].(map[string]any); o["token_url"] != "https://example.my.salesforce.com/services/oauth2/token" ||
		o["client_id"] != "3MVG9abc" || mustJSON(o["scopes"]) != `["api","refresh_token"]` || o["audience"] != "https://api.example.com" || o["auth_style"] != "post" {
		t.Errorf("get -o json oauth2 = %v", doc["oauth2"])
	}
	// Other kinds show no OAuth2 rows.
	r = h.must("", "integration", "get", "stripe")
	if strings.Contains(r.stdout, "token url") || strings.Contains(r.stdout, "client id") {
		t.Errorf("OAuth2 rows for a header integration:\n%s", r.stdout)
	}
}

const websocketIntegrationJSON = `{"name":"openai-realtime","upstream":"https://api.openai.com","secret":"ai/prod/openai-key",
"inject":"header:Authorization=Bearer {{secret}}","methods":["GET"],"paths":["/v1/realtime"],"timeout":"30s",
"max_body_bytes":10485760,"strip_response_headers":[],"allow_private":false,"websocket":true,
"created_at":"2030-01-01T00:00:00Z","created_by":"user:alice","updated_at":"2030-01-01T00:00:00Z","updated_by":"user:alice"}`

func TestIntegrationCreateWebSocket(t *testing.T) {
	h := newHarness(t)
	h.fake.handle("POST /v1/integrations", 201, websocketIntegrationJSON)
	h.must("", "integration", "create", "openai-realtime", "--upstream", "https://api.openai.com", "--secret", "ai/prod/openai-key",
		"--inject", "header:Authorization=Bearer {{secret}}", "--method", "GET", "--path", "/v1/realtime", "--websocket")
	reqs := h.fake.requests("POST /v1/integrations")
	if len(reqs) != 1 {
		t.Fatalf("requests = %+v", reqs)
	}
	if b := bodyMap(t, reqs[0].Body); b["websocket"] != true || mustJSON(b["methods"]) != `["GET"]` {
		t.Errorf("create --websocket: body = %v", b)
	}

	// Without the flag, the field is not sent (the server's default: off).
	h.must("", "integration", "create", "stripe", "--upstream", "https://api.stripe.com", "--secret", "payments/prod/stripe-key",
		"--inject", "header:Authorization=Bearer {{secret}}")
	reqs = h.fake.requests("POST /v1/integrations")
	if _, ok := bodyMap(t, reqs[1].Body)["websocket"]; ok {
		t.Errorf("websocket sent without the flag: %s", reqs[1].Body)
	}

	if r := h.run("", "integration", "create", "x", "--upstream", "https://a.example", "--secret", "p/e/k", "--inject", "query:key",
		"--websocket=maybe"); r.code != ExitUsage {
		t.Errorf("--websocket=maybe: exit %d, want %d (stderr %q)", r.code, ExitUsage, r.stderr)
	}
	if n := len(h.fake.requests("POST /v1/integrations")); n != 2 {
		t.Errorf("%d POST requests, want 2", n)
	}
}

func TestIntegrationUpdateWebSocket(t *testing.T) {
	h := newHarness(t)
	h.fake.handle("GET /v1/integrations/openai-realtime", 200, websocketIntegrationJSON)
	h.fake.handle("PUT /v1/integrations/openai-realtime", 200, websocketIntegrationJSON)
	h.fake.handle("GET /v1/integrations/stripe", 200, integrationJSON)
	h.fake.handle("PUT /v1/integrations/stripe", 200, integrationJSON)
	put := func(name string) map[string]any { t.Helper(); return lastPut(t, h, name) }

	// Another setting: websocket goes back as it was, on or off.
	h.must("", "integration", "update", "openai-realtime", "--timeout", "20s")
	if b := put("openai-realtime"); b["websocket"] != true || b["timeout"] != "20s" {
		t.Errorf("update --timeout of a websocket integration: %v", b)
	}
	h.must("", "integration", "update", "stripe", "--timeout", "20s")
	if b := put("stripe"); b["websocket"] != nil || b["timeout"] != "20s" {
		t.Errorf("update --timeout of another integration: %v", b)
	}

	// --websocket=false turns it off: the field is absent, and an update
	// replaces every setting, so the server takes it as off.
	h.must("", "integration", "update", "openai-realtime", "--websocket=false")
	if b := put("openai-realtime"); b["websocket"] != nil || b["upstream"] != "https://api.openai.com" {
		t.Errorf("update --websocket=false: %v", b)
	}

	// --websocket turns it on.
	h.must("", "integration", "update", "stripe", "--websocket")
	if b := put("stripe"); b["websocket"] != true || mustJSON(b["methods"]) != `["GET","POST"]` {
		t.Errorf("update --websocket: %v", b)
	}
}

func TestIntegrationGetShowsWebSocket(t *testing.T) {
	h := newHarness(t)
	h.fake.handle("GET /v1/integrations/openai-realtime", 200, websocketIntegrationJSON)
	h.fake.handle("GET /v1/integrations/stripe", 200, integrationJSON)
	row := func(out string) string {
		t.Helper()
		for line := range strings.Lines(out) {
			if f := strings.Fields(line); len(f) == 2 && f[0] == "websocket:" {
				return f[1]
			}
		}
		t.Errorf("no websocket row:\n%s", out)
		return ""
	}
	if got := row(h.must("", "integration", "get", "openai-realtime").stdout); got != "yes" {
		t.Errorf("websocket integration: websocket row = %q, want yes", got)
	}
	if got := row(h.must("", "integration", "get", "stripe").stdout); got != "no" {
		t.Errorf("other integration: websocket row = %q, want no", got)
	}
	r := h.must("", "integration", "get", "openai-realtime", "-o", "json")
	var doc map[string]any
	if err := json.Unmarshal([]byte(r.stdout), &doc); err != nil || doc["websocket"] != true {
		t.Errorf("get -o json = %q (%v)", r.stdout, err)
	}
}

func TestIntegrationCheck(t *testing.T) {
	h := newHarness(t)
	h.vars["KEYWARD_TOKEN"] = "kwt_admintoken"
	h.fake.handle("POST /v1/integrations/stripe/check", 200, `{"integration":"stripe","ok":true,"steps":[
{"step":"integration","ok":true,"detail":"settings are valid","ms":0},
{"step":"secret","ok":true,"detail":"payments/prod/stripe-key, version 2","ms":1},
{"step":"connect","ok":true,"detail":"https://api.stripe.com is reachable","ms":40},
{"step":"request","ok":true,"detail":"GET /v1/balance: 200, 312 bytes","ms":120}]}`)
	r := h.must("", "integration", "check", "stripe", "--path", "/v1/balance")
	for _, want := range []string{"secret", "version 2", "connect", "GET /v1/balance: 200"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("stdout lacks %q: %q", want, r.stdout)
		}
	}
	reqs := h.fake.requests("POST /v1/integrations/stripe/check")
	if len(reqs) != 1 || !strings.Contains(reqs[0].Body, `"path":"/v1/balance"`) {
		t.Fatalf("requests = %+v", reqs)
	}
	// A failed step: exit 1, the step named.
	h.fake.handle("POST /v1/integrations/crm/check", 200, `{"integration":"crm","ok":false,"steps":[
{"step":"integration","ok":true,"detail":"settings are valid","ms":0},
{"step":"secret","ok":true,"detail":"crm/prod/client, version 1","ms":1},
{"step":"token","ok":false,"detail":"the upstream's OAuth token endpoint did not issue a token: it answered 401 (invalid_client)","ms":80}]}`)
	r = h.run("", "integration", "check", "crm")
	if r.code != ExitFailure || !strings.Contains(r.stdout, "token") || !strings.Contains(r.stdout, "FAILED") || !strings.Contains(r.stdout, "invalid_client") {
		t.Fatalf("failed check: exit %d, stdout %q", r.code, r.stdout)
	}
	if r := h.run("", "integration", "check", "crm", "--path", "v1/me"); r.code != ExitUsage {
		t.Fatalf("relative --path: exit %d", r.code)
	}
}

// lastPut is the JSON body of the last PUT of the integration name.
func lastPut(t *testing.T, h *harness, name string) map[string]any {
	t.Helper()
	reqs := h.fake.requests("PUT /v1/integrations/" + name)
	if len(reqs) == 0 {
		t.Fatal("no PUT")
	}
	return bodyMap(t, reqs[len(reqs)-1].Body)
}
