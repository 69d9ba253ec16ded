package server

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/keyward/keyward/internal/token"
)

// An OAuth 2.0 upstream through a whole node: the operator stores the
// client secret and creates the integration over the API; an app's calls
// reach the upstream with an access token keyward fetched once; neither
// the token nor the client secret reaches the app; a client the token
// endpoint refuses gives 502 naming the OAuth error, never the secret.
func TestGatewayOAuth2Upstream(t *testing.T) {
	const secret = "oauth-client-secret-4c1d" // keyward:allow (test fixture)
	var fetches atomic.Int64
	tokens := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n := fetches.Add(1)
		id, pw, _ := r.BasicAuth()
		if r.FormValue("grant_type") != "client_credentials" || id != "crm-client" || pw != secret {
			w.WriteHeader(401)
			io.WriteString(w, `{"error":"invalid_client"}`)
			return
		}
		fmt.Fprintf(w, `{"access_token":"crm-token-%d","token_type":"Bearer","expires_in":3600}`, n)
	}))
	defer tokens.Close()
	up := newRecordingUpstream(t)

	r, root := devNode(t)
	u := r.url
	call(t, "POST", u+"/v1/projects", root, map[string]string{"name": "crm"}, nil)
	if c := call(t, "PUT", u+"/v1/projects/crm/envs/prod/secrets/client", root, map[string]string{"value": secret}, nil); c != 200 {
		t.Fatalf("put secret = %d", c)
	}
	var created map[string]any
	if c := call(t, "POST", u+"/v1/integrations", root, map[string]any{
		"name": "crm", "upstream": up.URL, "secret": "crm/prod/client", "inject": "oauth2", "allow_private": true,
		"oauth2": map[string]any{"token_url": tokens.URL + "/token", "client_id": "crm-client", "scopes": []string{"api"}},
	}, &created); c != 201 {
		t.Fatalf("create integration = %d %v", c, created)
	}
	if o, _ := created["oauth2"].(map[string]any); o["client_id"] != "crm-client" || o["auth_style"] != "basic" {
		t.Fatalf("created oauth2 settings = %v", created["oauth2"])
	}
	app, _, err := r.node.tokens.Issue(t.Context(), token.Request{Principal: "app:crm", AuthMethod: "token", Policies: []string{"root"}, TTL: time.Hour}, nil)
	if err != nil {
		t.Fatal(err)
	}
	for range 3 {
		res := gatewayCall(t, u+"/v1/gateway/crm/accounts", "Bearer "+app, "")
		if res.status != 200 {
			t.Fatalf("gateway call = %d %s", res.status, res.body)
		}
		all := res.body + strings.Join(flatten(res.header), "\n")
		if strings.Contains(all, "crm-token-") || strings.Contains(all, secret) {
			t.Fatal("the access token or the client secret reached the app")
		}
	}
	auth, _, _ := up.calls()
	if fetches.Load() != 1 || len(auth) != 3 || auth[0] != "Bearer crm-token-1" || auth[2] != "Bearer crm-token-1" {
		t.Fatalf("%d fetches; upstream saw %q", fetches.Load(), auth)
	}

	// A refused client: 502 with the OAuth error code.
	if c := call(t, "PUT", u+"/v1/integrations/crm", root, map[string]any{
		"upstream": up.URL, "secret": "crm/prod/client", "inject": "oauth2", "allow_private": true,
		"oauth2": map[string]any{"token_url": tokens.URL + "/token", "client_id": "someone-else"},
	}, nil); c != 200 {
		t.Fatalf("update integration = %d", c)
	}
	res := gatewayCall(t, u+"/v1/gateway/crm/accounts", "Bearer "+app, "")
	if res.status != 502 || !strings.Contains(res.body, "invalid_client") || strings.Contains(res.body, secret) {
		t.Fatalf("refused client: %d %s", res.status, res.body)
	}
}

// The integration check over the API: steps in order, no secret in the
// report; 404 for an unknown integration; an app allowed only to proxy may
// not run it.
func TestIntegrationCheckRoute(t *testing.T) {
	up := newRecordingUpstream(t)
	r, root := devNode(t)
	u := r.url
	call(t, "POST", u+"/v1/projects", root, map[string]string{"name": "pay"}, nil)
	call(t, "PUT", u+"/v1/projects/pay/envs/prod/secrets/maps-key", root, map[string]string{"value": mapsKey}, nil)
	if c := call(t, "POST", u+"/v1/integrations", root, map[string]any{"name": "maps", "upstream": up.URL, "secret": "pay/prod/maps-key",
		"inject": "header:Authorization=Bearer {{secret}}", "allow_private": true}, nil); c != 201 {
		t.Fatalf("create = %d", c)
	}
	var rep struct {
		OK    bool `json:"ok"`
		Steps []struct {
			Step   string `json:"step"`
			OK     bool   `json:"ok"`
			Detail string `json:"detail"`
		} `json:"steps"`
	}
	code, out := raw(t, "POST", u+"/v1/integrations/maps/check", root, "application/json", `{"path":"/geocode/json"}`)
	b, _ := json.Marshal(out)
	json.Unmarshal(b, &rep)
	if code != 200 || !rep.OK || len(rep.Steps) != 4 || rep.Steps[3].Step != "request" || strings.Contains(string(b), mapsKey) {
		t.Fatalf("check = %d %s", code, b)
	}
	if auth, _, _ := up.calls(); len(auth) != 1 || auth[0] != "Bearer "+mapsKey {
		t.Fatalf("upstream saw %q", auth)
	}
	if c := call(t, "POST", u+"/v1/integrations/nope/check", root, nil, nil); c != 404 {
		t.Fatalf("unknown integration = %d, want 404", c)
	}
	code, _ = raw(t, "PUT", u+"/v1/policies/app", root, "application/yaml", "name: app\nrules:\n  - resources: [\"integrations/maps\"]\n    allow: [proxy]\n")
	if code != 200 {
		t.Fatalf("policy = %d", code)
	}
	app, _, err := r.node.tokens.Issue(t.Context(), token.Request{Principal: "app:x", AuthMethod: "token", Policies: []string{"app"}, TTL: time.Hour}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if c := call(t, "POST", u+"/v1/integrations/maps/check", app, nil, nil); c != 403 {
		t.Fatalf("check with proxy only = %d, want 403", c)
	}

	// A check that calls the upstream spends the integration's rate like
	// a proxied call; one without a path does not call it and is not
	// counted.
	if c := call(t, "PUT", u+"/v1/integrations/maps", root, map[string]any{"upstream": up.URL, "secret": "pay/prod/maps-key",
		"inject": "header:Authorization=Bearer {{secret}}", "allow_private": true, "rate": "2/h"}, nil); c != 200 {
		t.Fatalf("update = %d", c)
	}
	for i := range 3 {
		if c := call(t, "POST", u+"/v1/integrations/maps/check", root, nil, nil); c != 200 {
			t.Fatalf("check %d without a path = %d, want 200", i, c)
		}
	}
	res := gatewayCall(t, u+"/v1/gateway/maps/geocode/json", "Bearer "+app, "")
	if res.status != 200 || res.header.Get("RateLimit-Remaining") != "1" {
		t.Fatalf("proxied call = %d, RateLimit-Remaining %q; want 200 and 1", res.status, res.header.Get("RateLimit-Remaining"))
	}
	code, _ = raw(t, "POST", u+"/v1/integrations/maps/check", root, "application/json", `{"path":"/geocode/json"}`)
	if code != 200 {
		t.Fatalf("check with the last call of the hour = %d, want 200", code)
	}
	before, _, _ := up.calls()
	req, _ := http.NewRequest("POST", u+"/v1/integrations/maps/check", strings.NewReader(`{"path":"/geocode/json"}`))
	req.Header.Set("Authorization", "Bearer "+root)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 429 || resp.Header.Get("Retry-After") == "" {
		t.Fatalf("check over the rate = %d, Retry-After %q; want 429 with it", resp.StatusCode, resp.Header.Get("Retry-After"))
	}
	if after, _, _ := up.calls(); len(after) != len(before) {
		t.Fatalf("a refused check reached the upstream (%d calls, then %d)", len(before), len(after))
	}
	if res := gatewayCall(t, u+"/v1/gateway/maps/geocode/json", "Bearer "+app, ""); res.status != 429 {
		t.Fatalf("proxied call after the checks = %d, want 429", res.status)
	}
}
