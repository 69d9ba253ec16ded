package server

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"
)

// upstream is a third-party API on loopback that records the credential
// each call carried.
type upstream struct {
	srv  *httptest.Server
	mu   sync.Mutex
	auth []string
}

func newUpstream(t *testing.T) *upstream {
	u := &upstream{}
	u.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		u.mu.Lock()
		u.auth = append(u.auth, r.Header.Get("Authorization"))
		u.mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, `{"lat":52.52,"lng":13.40,"path":"`+r.URL.Path+`"}`)
	}))
	t.Cleanup(u.srv.Close)
	return u
}

func (u *upstream) seen() []string {
	u.mu.Lock()
	defer u.mu.Unlock()
	return append([]string(nil), u.auth...)
}

// TestMobileGatewayEndToEnd is issue 5's whole story on one node: the real maps
// key stays on the server; a phone exchanges its user's ID token for a
// DPoP-bound token and calls the upstream through the gateway, which
// injects the key; a stolen token without the device key is useless; a
// revoked token stops at once; a partner's API key with a quota of 3 makes
// exactly 3 calls; and every call is counted in usage.
func TestMobileGatewayEndToEnd(t *testing.T) {
	r, root := devNode(t)
	u := r.url
	up := newUpstream(t)
	const mapsKey = "maps-upstream-key-7f3a9c" // keyward:allow (test fixture)

	// The operator stores the key and defines the integration.
	call(t, "POST", u+"/v1/projects", root, map[string]string{"name": "maps"}, nil)
	if c := call(t, "PUT", u+"/v1/projects/maps/envs/prod/secrets/upstream/api-key", root, map[string]string{"value": mapsKey}, nil); c != 200 && c != 201 {
		t.Fatalf("put secret = %d", c)
	}
	integ := map[string]any{"name": "maps", "upstream": up.srv.URL, "secret": "maps/prod/upstream/api-key",
		"inject": "header:Authorization=Bearer {{secret}}", "methods": []string{"GET"}, "paths": []string{"/v1/**"}, "allow_private": true}
	if c := call(t, "POST", u+"/v1/integrations", root, integ, nil); c != 201 {
		t.Fatalf("create integration = %d", c)
	}

	// The phone: ID token from the company IdP → exchange with a DPoP proof.
	idp := newOIDCIssuer(t)
	setUpMobile(t, u, root, idp)
	device, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	thief, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tokenURL := u + "/v1/oauth/token"
	proof := func(k *ecdsa.PrivateKey, method, target, tok string) string {
		return mustProof(t, k, method, target, tok)
	}
	ex := post(t, tokenURL, exchangeForm(idp.idToken(t, "alice", 10*time.Minute, nil)), "", proof(device, "POST", tokenURL, ""))
	at, _ := ex.body["access_token"].(string)
	if ex.status != 200 || ex.body["token_type"] != "DPoP" {
		t.Fatalf("exchange = %d %v", ex.status, ex.body)
	}

	// A DPoP-bound gateway call: the upstream gets the real key, the phone
	// never sees it.
	target := u + "/v1/gateway/maps/v1/geocode"
	res := gatewayCall(t, target+"?q=berlin", "DPoP "+at, proof(device, "GET", target, at))
	if res.status != 200 || !strings.Contains(res.body, `"path":"/v1/geocode"`) {
		t.Fatalf("gateway call = %d %s", res.status, res.body)
	}
	if seen := up.seen(); len(seen) != 1 || seen[0] != "Bearer "+mapsKey {
		t.Fatalf("upstream saw %q, want the injected key", seen)
	}
	if strings.Contains(res.body, mapsKey) || strings.Contains(strings.Join(flatten(res.header), " "), mapsKey) {
		t.Fatal("the upstream key reached the client")
	}
	// A stolen token is useless without the device key: no proof, a proof
	// by another key, a replayed proof, a proof for another path.
	replay := proof(device, "GET", target, at)
	if res := gatewayCall(t, target, "DPoP "+at, replay); res.status != 200 {
		t.Fatalf("second call = %d %s", res.status, res.body)
	}
	for name, tc := range map[string][2]string{
		"bearer, no proof":     {"Bearer " + at, ""},
		"another key's proof":  {"DPoP " + at, proof(thief, "GET", target, at)},
		"a replayed proof":     {"DPoP " + at, replay},
		"another path's proof": {"DPoP " + at, proof(device, "GET", u+"/v1/gateway/maps/v1/other", at)},
	} {
		if res := gatewayCall(t, target, tc[0], tc[1]); res.status != 401 {
			t.Errorf("%s: %d, want 401", name, res.status)
		}
	}
	// Paths outside the integration's globs are refused before any upstream call.
	other := u + "/v1/gateway/maps/admin/keys"
	if res := gatewayCall(t, other, "DPoP "+at, proof(device, "GET", other, at)); res.status != 403 {
		t.Errorf("path outside the globs = %d %s, want 403", res.status, res.body)
	}
	if n := len(up.seen()); n != 2 {
		t.Fatalf("upstream got %d calls, want exactly the 2 allowed ones", n)
	}
	// Revocation: the next call is refused.
	if rv := post(t, u+"/v1/oauth/revoke", url.Values{"token": {at}}, "", ""); rv.status != 200 {
		t.Fatalf("revoke = %d %v", rv.status, rv.body)
	}
	if res := gatewayCall(t, target, "DPoP "+at, proof(device, "GET", target, at)); res.status != 401 {
		t.Fatalf("call after revoke = %d, want 401", res.status)
	}

	// A partner's API key with a quota of 3: exactly 3 calls go through.
	var key struct {
		Key string `json:"key"`
		ID  string `json:"id"`
	}
	if c := call(t, "POST", u+"/v1/projects/maps/envs/prod/keys", root,
		map[string]any{"name": "partner", "scopes": []string{"integrations/maps"}, "quota": 3}, &key); c != 201 || !strings.HasPrefix(key.Key, "kwk_") {
		t.Fatalf("create key = %d %+v", c, key)
	}
	ok := 0
	for range 5 {
		switch res := gatewayCall(t, target, "Bearer "+key.Key, ""); res.status {
		case 200:
			ok++
		case 429:
		default:
			t.Fatalf("key call = %d %s", res.status, res.body)
		}
	}
	if ok != 3 {
		t.Errorf("%d key calls succeeded, want exactly the quota (3)", ok)
	}
	// A key can do nothing but proxy.
	var nosy struct {
		Key string `json:"key"`
	}
	if c := call(t, "POST", u+"/v1/projects/maps/envs/prod/keys", root,
		map[string]any{"name": "nosy", "scopes": []string{"integrations/maps"}}, &nosy); c != 201 {
		t.Fatalf("create key = %d", c)
	}
	if c, _ := raw(t, "GET", u+"/v1/projects/maps/envs/prod/secrets/upstream/api-key", nosy.Key, "", ""); c != 403 {
		t.Errorf("key reading the secret = %d, want 403", c)
	}

	// Usage: per integration, per key, by status.
	if err := r.node.usage.Flush(t.Context()); err != nil {
		t.Fatal(err)
	}
	_, out := raw(t, "GET", u+"/v1/usage?kind=integration&subject=maps", root, "", "")
	if got := usageCount(out, 200); got != 5 {
		t.Errorf("integration usage 200 = %d, want 5 (2 phone + 3 key calls); %v", got, out)
	}
	_, out = raw(t, "GET", u+"/v1/usage?kind=key&subject="+key.ID, root, "", "")
	// The key is charged after it authenticated, so the calls past its
	// quota are counted for it too, as 429s.
	if got, refused := usageCount(out, 200), usageCount(out, 429); got != 3 || refused != 2 {
		t.Errorf("key usage 200 = %d, 429 = %d, want 3 and 2; %v", got, refused, out)
	}
}

type gwResult struct {
	status int
	header http.Header
	body   string
}

func gatewayCall(t *testing.T, target, authz, proof string) gwResult {
	t.Helper()
	req, _ := http.NewRequest("GET", target, nil)
	req.Header.Set("Authorization", authz)
	if proof != "" {
		req.Header.Set("DPoP", proof)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return gwResult{resp.StatusCode, resp.Header, string(b)}
}

func flatten(h http.Header) []string {
	var out []string
	for k, vs := range h {
		for _, v := range vs {
			out = append(out, k+": "+v)
		}
	}
	return out
}

func usageCount(out map[string]any, status int) int {
	n := 0
	rows, _ := out["usage"].([]any)
	for _, row := range rows {
		m, _ := row.(map[string]any)
		if m["status"] == float64(status) {
			n += int(m["count"].(float64))
		}
	}
	return n
}

// An integration's rate bounds all calls through it, its caller rate the
// calls of each token; over either, 429 with Retry-After and RateLimit-*,
// and the upstream is not called.
func TestGatewayIntegrationRateLimits(t *testing.T) {
	r, root := devNode(t)
	u := r.url
	up := newUpstream(t)
	call(t, "POST", u+"/v1/projects", root, map[string]string{"name": "maps"}, nil)
	if c := call(t, "PUT", u+"/v1/projects/maps/envs/prod/secrets/k", root, map[string]string{"value": "upstream-key-value-1"}, nil); c != 200 && c != 201 {
		t.Fatalf("put secret = %d", c)
	}
	base := map[string]any{"upstream": up.srv.URL, "secret": "maps/prod/k", "inject": "header:Authorization=Bearer {{secret}}", "allow_private": true}
	with := func(name string, extra map[string]any) map[string]any {
		m := map[string]any{"name": name}
		for k, v := range base {
			m[k] = v
		}
		for k, v := range extra {
			m[k] = v
		}
		return m
	}
	// Bad limits are 400 naming the field; nothing is stored.
	for field, bad := range map[string]string{"rate": "fast", "caller_rate": "0/min"} {
		code, out := raw(t, "POST", u+"/v1/integrations", root, "application/json", mustMarshal(t, with("bad", map[string]any{field: bad})))
		if code != 400 || !strings.Contains(errMsg(out), field) {
			t.Errorf("%s %q = %d %q, want 400 naming the field", field, bad, code, errMsg(out))
		}
	}
	if c, _ := raw(t, "GET", u+"/v1/integrations/bad", root, "", ""); c != 404 {
		t.Errorf("a refused integration was stored (%d)", c)
	}
	if c := call(t, "POST", u+"/v1/integrations", root, with("total", map[string]any{"rate": "2/min"}), nil); c != 201 {
		t.Fatalf("create total = %d", c)
	}
	if c := call(t, "POST", u+"/v1/integrations", root, with("each", map[string]any{"caller_rate": "1/min"}), nil); c != 201 {
		t.Fatalf("create each = %d", c)
	}
	var got struct {
		Rate string `json:"rate"`
	}
	if c := call(t, "GET", u+"/v1/integrations/total", root, nil, &got); c != 200 || got.Rate == "" {
		t.Fatalf("get total = %d %+v", c, got)
	}
	token := func() string {
		var tok struct{ Token string }
		if c := call(t, "POST", u+"/v1/auth/token/create", root, map[string]any{"ttl": "5m"}, &tok); c != 200 && c != 201 {
			t.Fatalf("token = %d", c)
		}
		return tok.Token
	}
	a, b := token(), token()
	// Total: 2 calls a minute whoever makes them.
	statuses := []int{}
	var last gwResult
	for _, tok := range []string{a, b, a} {
		last = gatewayCall(t, u+"/v1/gateway/total/x", "Bearer "+tok, "")
		statuses = append(statuses, last.status)
	}
	if fmt.Sprint(statuses) != "[200 200 429]" {
		t.Fatalf("total-limited statuses = %v, want [200 200 429]", statuses)
	}
	if last.header.Get("Retry-After") == "" || last.header.Get("RateLimit-Limit") != "2" || !strings.Contains(last.body, "rate limit") {
		t.Errorf("429 lacks its headers or message: %v %s", last.header, last.body)
	}
	// Per caller: 1 call a minute each.
	statuses = statuses[:0]
	for _, tok := range []string{a, a, b, b} {
		statuses = append(statuses, gatewayCall(t, u+"/v1/gateway/each/x", "Bearer "+tok, "").status)
	}
	if fmt.Sprint(statuses) != "[200 429 200 429]" {
		t.Fatalf("caller-limited statuses = %v, want [200 429 200 429]", statuses)
	}
	if n := len(up.seen()); n != 4 {
		t.Errorf("upstream got %d calls, want the 4 allowed", n)
	}
}

func mustMarshal(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
