package server

import (
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
