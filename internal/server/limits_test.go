package server

import (
	"fmt"
	"io"
	"maps"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"testing"

	"github.com/keyward/keyward/internal/apikey"
	"github.com/keyward/keyward/internal/httpapi"
	"github.com/keyward/keyward/internal/token"
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

// retryWithin reports whether a refusal's Retry-After is a whole number of
// seconds from 1 to max (the next request fits max seconds after the
// burst, less the time the test took).
func retryWithin(res gwResult, max int) bool {
	n, err := strconv.Atoi(res.header.Get("Retry-After"))
	return err == nil && n >= 1 && n <= max
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
	if res.status != 429 || !retryWithin(res, 30) || res.header.Get("RateLimit-Limit") != "2" ||
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

// A token's rate is set at creation, reported by lookup and introspection,
// and enforced on every request the token makes (a 403 counts too): 429
// with Retry-After and RateLimit-*, audited like any refusal.
func TestTokenRate(t *testing.T) {
	r, root := devNode(t)
	u := r.url
	for body, want := range map[string]string{`{"rate":"fast"}`: "rate", `{"rate":"0/min"}`: "rate", `{"rate":"5/ms"}`: "rate", `{"rate":5}`: "rate"} {
		if c, out := raw(t, "POST", u+"/v1/auth/token/create", root, "application/json", body); c != 400 || !strings.Contains(errMsg(out), want) {
			t.Errorf("create %s = %d %q, want 400 naming %q", body, c, errMsg(out), want)
		}
	}
	var it struct{ Token, Accessor, Rate string }
	if c := call(t, "POST", u+"/v1/auth/token/create", root, map[string]any{"policies": []string{"default"}, "rate": "3/min"}, &it); c != 200 || it.Rate != "3/min" {
		t.Fatalf("create = %d %+v", c, it)
	}
	bearer := "Bearer " + it.Token
	rateOf := func(res gwResult) string {
		return res.header.Get("RateLimit-Limit") + "/" + res.header.Get("RateLimit-Remaining")
	}
	res := gatewayCall(t, u+"/v1/auth/token/lookup-self", bearer, "")
	if res.status != 200 || !strings.Contains(res.body, `"rate":"3/min"`) || rateOf(res) != "3/2" || res.header.Get("RateLimit-Policy") != "3;w=60" {
		t.Fatalf("lookup-self = %d %v %s", res.status, res.header, res.body)
	}
	// A refused request counts, and carries the headers too.
	if res := gatewayCall(t, u+"/v1/projects/p/envs/e/secrets/s", bearer, ""); res.status != 403 || rateOf(res) != "3/1" {
		t.Fatalf("forbidden = %d %q", res.status, rateOf(res))
	}
	if res := gatewayCall(t, u+"/v1/auth/token/lookup-self", bearer, ""); res.status != 200 || rateOf(res) != "3/0" {
		t.Fatalf("third = %d %q", res.status, rateOf(res))
	}
	res = gatewayCall(t, u+"/v1/auth/token/lookup-self", bearer, "")
	if res.status != 429 || !retryWithin(res, 20) || rateOf(res) != "3/0" || !strings.Contains(res.body, "token is over its rate limit of 3/min") {
		t.Fatalf("over the rate = %d %v %s", res.status, res.header, res.body)
	}
	// Counted per token: the root token and another token are untouched.
	var other struct{ Token string }
	call(t, "POST", u+"/v1/auth/token/create", root, map[string]any{"policies": []string{"default"}, "rate": "3/min"}, &other)
	if res := gatewayCall(t, u+"/v1/auth/token/lookup-self", "Bearer "+other.Token, ""); res.status != 200 || rateOf(res) != "3/2" {
		t.Fatalf("another token = %d %q", res.status, rateOf(res))
	}
	if res := gatewayCall(t, u+"/v1/auth/token/lookup-self", "Bearer "+root, ""); res.status != 200 || rateOf(res) != "/" {
		t.Fatalf("an unrated token = %d %q", res.status, rateOf(res))
	}
	// Introspection reports the rate.
	in := post(t, u+"/v1/oauth/introspect", url.Values{"token": {it.Token}}, "Bearer "+root, "")
	if in.status != 200 || in.body["active"] != true || in.body["rate"] != "3/min" {
		t.Fatalf("introspect = %d %v", in.status, in.body)
	}
	// The refusal is audited, naming the token.
	var list struct {
		Entries []map[string]any `json:"entries"`
	}
	call(t, "GET", u+"/v1/audit?outcome=denied&limit=1000", root, nil, &list)
	found := false
	for _, e := range list.Entries {
		if e["status"] == float64(429) && e["resource"] == "auth/tokens/self" && e["accessor_hmac"] != nil && e["accessor_hmac"] != "" {
			found = true
		}
	}
	if !found {
		t.Fatalf("no audit entry for the 429: %v", list.Entries)
	}
}

// A child token's rate is its parent's unless it asks for a narrower one;
// a looser one is refused like any other child that asks for more than
// its parent holds.
func TestChildTokenRate(t *testing.T) {
	r, root := devNode(t)
	u := r.url
	var parent struct{ Token string }
	if c := call(t, "POST", u+"/v1/auth/token/create", root, map[string]any{"rate": "100/min"}, &parent); c != 200 {
		t.Fatalf("parent = %d", c)
	}
	for body, want := range map[string]string{`{}`: "100/min", `{"rate":"10/min"}`: "10/min", `{"rate":"100/hour"}`: "100/hour"} {
		var child struct{ Token, Rate string }
		code, out := raw(t, "POST", u+"/v1/auth/token/create", parent.Token, "application/json", body)
		child.Rate, _ = out["rate"].(string)
		if code != 200 || child.Rate != want {
			t.Errorf("child %s = %d %v, want rate %s", body, code, out, want)
		}
	}
	for _, body := range []string{`{"rate":"101/min"}`, `{"rate":"10/sec"}`, `{"rate":"6000/hour"}`} {
		if code, out := raw(t, "POST", u+"/v1/auth/token/create", parent.Token, "application/json", body); code != 403 ||
			!strings.Contains(errMsg(out), "looser than the parent token's 100/min") {
			t.Errorf("looser child %s = %d %q", body, code, errMsg(out))
		}
	}
}

// A successful call carries the RateLimit-* headers of the strictest rate
// limit that applied to it (the fewest requests left): an integration's
// rate or caller rate, the token's, the API key's. keyward's replace the
// upstream's; a call no limit applied to carries none of keyward's.
func TestRateLimitHeadersOnSuccess(t *testing.T) {
	f := newGatewayFixture(t)
	u := f.r.url
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Query().Get("rl") == "1" {
			w.Header().Set("RateLimit-Limit", "5000")
			w.Header().Set("RateLimit-Remaining", "4999")
			w.Header().Set("RateLimit-Reset", "3600")
			w.Header().Set("RateLimit", `"hourly";r=4999;t=3600`)
			w.Header().Set("X-RateLimit-Remaining", "4999")
		}
		io.WriteString(w, "ok")
	}))
	t.Cleanup(up.Close)
	for name, extra := range map[string]map[string]any{"rated": {"rate": "10/min"}, "each": {"caller_rate": "2/min"}, "free": nil} {
		m := map[string]any{"upstream": up.URL}
		maps.Copy(m, extra)
		f.integration(t, name, m)
	}
	token := func(rate string) string {
		var it struct{ Token string }
		if c := call(t, "POST", u+"/v1/auth/token/create", f.root, map[string]any{"rate": rate}, &it); c != 200 {
			t.Fatalf("token = %d", c)
		}
		return "Bearer " + it.Token
	}
	// rl is limit, remaining and policy; the reset (seconds until the
	// budget is full again, which moves with the clock) must be there with
	// them and within the window.
	rl := func(res gwResult) string {
		t.Helper()
		if res.status != 200 {
			t.Fatalf("call = %d %s", res.status, res.body)
		}
		h := res.header
		if reset, err := strconv.Atoi(h.Get("RateLimit-Reset")); h.Get("RateLimit-Limit") != "" && (err != nil || reset < 1 || reset > 60) {
			t.Errorf("RateLimit-Reset = %q", h.Get("RateLimit-Reset"))
		}
		return strings.Join([]string{h.Get("RateLimit-Limit"), h.Get("RateLimit-Remaining"), h.Get("RateLimit-Policy")}, " ")
	}

	plain := token("")
	for i, want := range []string{"10 9 10;w=60", "10 8 10;w=60", "10 7 10;w=60"} {
		res := gatewayCall(t, u+"/v1/gateway/rated/x?rl=1", plain, "")
		if got := rl(res); got != want {
			t.Errorf("call %d through a rated integration: %q, want %q", i, got, want)
		}
		if len(res.header.Values("RateLimit-Limit")) != 1 || res.header.Get("RateLimit") != "" || res.header.Get("X-RateLimit-Remaining") != "4999" {
			t.Errorf("call %d mixes keyward's and the upstream's headers: %v", i, res.header)
		}
	}
	if got := rl(gatewayCall(t, u+"/v1/gateway/free/x", plain, "")); got != "  " {
		t.Errorf("a call no limit applied to carries %q", got)
	}
	if res := gatewayCall(t, u+"/v1/gateway/free/x?rl=1", plain, ""); res.header.Get("RateLimit-Limit") != "5000" ||
		res.header.Get("RateLimit-Remaining") != "4999" || res.header.Get("RateLimit") == "" {
		t.Errorf("without a limit of keyward's, the upstream's headers pass: %v", res.header)
	}

	// Several limits: the one with the fewest requests left.
	rated := token("5/min")
	if got := rl(gatewayCall(t, u+"/v1/gateway/rated/x", rated, "")); got != "5 4 5;w=60" { // token 4 left, integration 6
		t.Errorf("token vs integration rate: %q", got)
	}
	if got := rl(gatewayCall(t, u+"/v1/gateway/each/x", rated, "")); got != "2 1 2;w=60" { // token 3 left, caller rate 1
		t.Errorf("token vs caller rate: %q", got)
	}
	k := createKey(t, u, f.root, "maps", "prod", map[string]any{"name": "p", "scopes": []string{"integrations/*"}, "rate": "100/min"})
	if got := rl(gatewayCall(t, u+"/v1/gateway/free/x?rl=1", "Bearer "+k.Key, "")); got != "100 99 100;w=60" {
		t.Errorf("API key's rate: %q", got)
	}
	if got := rl(gatewayCall(t, u+"/v1/gateway/rated/x", "Bearer "+k.Key, "")); got != "10 5 10;w=60" { // key 98 left, integration 5
		t.Errorf("API key vs integration rate: %q", got)
	}
}

// The limits of a credential without any cost nothing on the hot path.
func TestCredentialLimitsAllocateNothingWithoutLimits(t *testing.T) {
	r, _ := devNode(t)
	n := r.node
	ctx := t.Context()
	if _, err := n.secrets.CreateProject(ctx, "shop", "test", nil); err != nil {
		t.Fatal(err)
	}
	plain, _, err := n.apikeys.Create(ctx, apikey.CreateRequest{Project: "shop", Env: "prod", Name: "n", Scopes: []string{"integrations/maps"}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	src := netip.MustParseAddr("127.0.0.1")
	k, err := n.apikeys.Authenticate(ctx, plain, src)
	if err != nil {
		t.Fatal(err)
	}
	lim := &credentialLimits{keys: n.apikeys, lim: n.keyLimiter}
	for name, c := range map[string]*httpapi.Caller{
		"token":   callerOf(&token.Token{Accessor: "acc", Policies: []string{"p"}}),
		"API key": keyCallerOf(k),
	} {
		lim.Authorized(ctx, c, src)
		allocs := testing.AllocsPerRun(100, func() {
			if _, err := lim.Authenticated(ctx, c); err != nil {
				t.Fatal(err)
			}
			if _, err := lim.Authorized(ctx, c, src); err != nil {
				t.Fatal(err)
			}
		})
		if allocs != 0 {
			t.Errorf("%s without limits: %v allocations per request", name, allocs)
		}
	}
}
