package server

import (
	"fmt"
	"strings"
	"testing"
)

// gatewayFixture is a node with a project "maps", a secret and a local
// upstream, and a way to add integrations pointing at it.
type gatewayFixture struct {
	r    *running
	root string
	up   *upstream
}

func newGatewayFixture(t *testing.T) *gatewayFixture {
	t.Helper()
	r, root := devNode(t)
	f := &gatewayFixture{r: r, root: root, up: newUpstream(t)}
	call(t, "POST", r.url+"/v1/projects", root, map[string]string{"name": "maps"}, nil)
	if c := call(t, "PUT", r.url+"/v1/projects/maps/envs/prod/secrets/k", root, map[string]string{"value": "upstream-key-value-1"}, nil); c != 200 && c != 201 {
		t.Fatalf("put secret = %d", c)
	}
	return f
}

func (f *gatewayFixture) integration(t *testing.T, name string, extra map[string]any) {
	t.Helper()
	m := map[string]any{"name": name, "upstream": f.up.srv.URL, "secret": "maps/prod/k",
		"inject": "header:Authorization=Bearer {{secret}}", "allow_private": true}
	for k, v := range extra {
		m[k] = v
	}
	if c := call(t, "POST", f.r.url+"/v1/integrations", f.root, m, nil); c != 201 {
		t.Fatalf("create integration %s = %d", name, c)
	}
}

// remaining is the quota a key has left, read without spending any.
func (f *gatewayFixture) remaining(t *testing.T, key string) int64 {
	t.Helper()
	_, v, body := verifyKey(t, f.r.url, f.root, map[string]any{"key": key, "consume": false})
	if v.Remaining == nil {
		t.Fatalf("verify = %s", body)
	}
	return *v.Remaining
}

// A key's rate and quota are spent only by calls it is allowed to make:
// calls refused with 403 (outside its scopes, outside the integration's
// paths) or 429 by the integration's own rate cost it nothing, and every
// call that reaches the upstream costs exactly one unit.
func TestKeyChargedOnlyWhenAuthorized(t *testing.T) {
	f := newGatewayFixture(t)
	u := f.r.url
	f.integration(t, "maps", map[string]any{"paths": []string{"/v1/**"}})
	f.integration(t, "maps-slow", map[string]any{"rate": "1/min"})
	f.integration(t, "pay", nil)
	k := createKey(t, u, f.root, "maps", "prod", map[string]any{"name": "partner", "scopes": []string{"integrations/maps", "integrations/maps-slow"},
		"quota": 5, "rate": "100/min"})
	key := "Bearer " + k.Key

	statuses := []int{}
	for _, path := range []string{"/v1/gateway/pay/v1/x", "/v1/gateway/pay/v1/x", "/v1/gateway/maps/v2/x", "/v1/gateway/maps/admin",
		"/v1/gateway/maps-slow/x", "/v1/gateway/maps-slow/x", "/v1/gateway/maps-slow/x"} {
		statuses = append(statuses, gatewayCall(t, u+path, key, "").status)
	}
	if fmt.Sprint(statuses) != "[403 403 403 403 200 429 429]" {
		t.Fatalf("statuses = %v", statuses)
	}
	if n := f.remaining(t, k.Key); n != 4 {
		t.Fatalf("after 1 call made and 6 refused: %d left, want 4", n)
	}
	// A key may do nothing but proxy: its other requests are 403 and free.
	if c, _ := raw(t, "GET", u+"/v1/projects/maps/envs/prod/secrets/k", k.Key, "", ""); c != 403 {
		t.Fatalf("reading a secret with a key = %d", c)
	}
	// The rest of the quota, exactly.
	for i := range 4 {
		if res := gatewayCall(t, u+"/v1/gateway/maps/v1/geo", key, ""); res.status != 200 {
			t.Fatalf("call %d within the quota = %d %s", i, res.status, res.body)
		}
	}
	if n := f.remaining(t, k.Key); n != 0 {
		t.Fatalf("after 5 calls: %d left", n)
	}
	if res := gatewayCall(t, u+"/v1/gateway/maps/v1/geo", key, ""); res.status != 429 || !strings.Contains(res.body, "quota") {
		t.Fatalf("over the quota = %d %s", res.status, res.body)
	}
	// A forbidden call stays a 403, quota or not.
	if res := gatewayCall(t, u+"/v1/gateway/pay/v1/x", key, ""); res.status != 403 {
		t.Fatalf("out of scope with no quota left = %d", res.status)
	}
	if n := len(f.up.seen()); n != 5 {
		t.Fatalf("the upstream got %d calls, want the 5 paid for", n)
	}
}

// A key over its own rate is refused with 429 and its headers before the
// upstream is called, and spends no quota.
func TestKeyRateOnTheGateway(t *testing.T) {
	f := newGatewayFixture(t)
	u := f.r.url
	f.integration(t, "maps", nil)
	k := createKey(t, u, f.root, "maps", "prod", map[string]any{"name": "partner", "scopes": []string{"integrations/maps"},
		"quota": 10, "rate": "2/min"})
	for i := range 2 {
		if res := gatewayCall(t, u+"/v1/gateway/maps/x", "Bearer "+k.Key, ""); res.status != 200 {
			t.Fatalf("call %d = %d", i, res.status)
		}
	}
	res := gatewayCall(t, u+"/v1/gateway/maps/x", "Bearer "+k.Key, "")
	if res.status != 429 || res.header.Get("Retry-After") != "30" || res.header.Get("RateLimit-Limit") != "2" ||
		res.header.Get("RateLimit-Remaining") != "0" || !strings.Contains(res.body, "rate limit of 2/min") {
		t.Fatalf("over the rate = %d %v %s", res.status, res.header, res.body)
	}
	if n := f.remaining(t, k.Key); n != 8 {
		t.Fatalf("quota after a throttled call: %d, want 8", n)
	}
	if n := len(f.up.seen()); n != 2 {
		t.Fatalf("upstream calls = %d", n)
	}
}
