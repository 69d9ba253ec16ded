package server

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/keyward/keyward/internal/token"
)

// A page on an allowed origin may call the data plane cross-origin: its
// preflight is answered without a token, the answers carry the CORS
// headers; another origin, and the management API, get none.
func TestCORSOnTheDataPlane(t *testing.T) {
	cfg := testConfig(t.TempDir())
	cfg.Dev = true
	cfg.CORSOrigins = []string{"https://app.example.com"}
	r := start(t, cfg, nil)
	root, u := r.node.DevRootToken(), r.url
	up := newRecordingUpstream(t)
	call(t, "POST", u+"/v1/projects", root, map[string]string{"name": "pay"}, nil)
	call(t, "PUT", u+"/v1/projects/pay/envs/prod/secrets/maps-key", root, map[string]string{"value": mapsKey}, nil)
	if c := call(t, "POST", u+"/v1/integrations", root, map[string]any{"name": "maps", "upstream": up.URL, "secret": "pay/prod/maps-key",
		"inject": "header:Authorization=Bearer {{secret}}", "allow_private": true}, nil); c != 201 {
		t.Fatalf("create = %d", c)
	}
	do := func(method, path, origin string, hdr map[string]string) *http.Response {
		t.Helper()
		req, _ := http.NewRequest(method, u+path, nil)
		if origin != "" {
			req.Header.Set("Origin", origin)
		}
		for k, v := range hdr {
			req.Header.Set(k, v)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp
	}
	preflight := map[string]string{"Access-Control-Request-Method": "POST", "Access-Control-Request-Headers": "authorization, dpop, content-type"}

	resp := do("OPTIONS", "/v1/gateway/maps/geocode", "https://app.example.com", preflight)
	if resp.StatusCode != 204 || resp.Header.Get("Access-Control-Allow-Origin") != "https://app.example.com" ||
		resp.Header.Get("Access-Control-Allow-Methods") != "POST" || !strings.Contains(resp.Header.Get("Access-Control-Allow-Headers"), "Dpop") ||
		resp.Header.Get("Access-Control-Allow-Credentials") != "" {
		t.Fatalf("preflight = %d %v", resp.StatusCode, resp.Header)
	}
	if auth, _, _ := up.calls(); len(auth) != 0 {
		n := len(auth)
		t.Fatalf("a preflight reached the upstream (%d calls)", n)
	}
	resp = do("OPTIONS", "/v1/oauth/token", "https://app.example.com", preflight)
	if resp.StatusCode != 204 || resp.Header.Get("Access-Control-Allow-Origin") == "" {
		t.Fatalf("token endpoint preflight = %d %v", resp.StatusCode, resp.Header)
	}
	// Another origin; the management API: no CORS headers.
	for _, tc := range []struct{ path, origin string }{
		{"/v1/gateway/maps/geocode", "https://evil.example"},
		{"/v1/projects", "https://app.example.com"},
	} {
		resp = do("OPTIONS", tc.path, tc.origin, preflight)
		if resp.Header.Get("Access-Control-Allow-Origin") != "" || resp.StatusCode == 204 || !strings.Contains(resp.Header.Get("Vary"), "Origin") {
			t.Errorf("preflight %s from %s = %d %v", tc.path, tc.origin, resp.StatusCode, resp.Header)
		}
	}
	// The call itself: its answer can be read by the page.
	app, _, err := r.node.tokens.Issue(t.Context(), token.Request{Principal: "app:web", AuthMethod: "token", Policies: []string{"root"}, TTL: time.Hour}, nil)
	if err != nil {
		t.Fatal(err)
	}
	resp = do("GET", "/v1/gateway/maps/geocode", "https://app.example.com", map[string]string{"Authorization": "Bearer " + app})
	if resp.StatusCode != 200 || resp.Header.Get("Access-Control-Allow-Origin") != "https://app.example.com" ||
		!strings.Contains(resp.Header.Get("Access-Control-Expose-Headers"), "X-Request-Id") || !strings.Contains(resp.Header.Get("Vary"), "Origin") {
		t.Fatalf("cross-origin call = %d %v", resp.StatusCode, resp.Header)
	}
	resp = do("GET", "/v1/projects", "https://app.example.com", map[string]string{"Authorization": "Bearer " + root})
	if resp.StatusCode != 200 || resp.Header.Get("Access-Control-Allow-Origin") != "" {
		t.Fatalf("management call from a page = %d %v", resp.StatusCode, resp.Header)
	}
}
