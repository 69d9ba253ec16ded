package server

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/keyward/keyward/internal/apikey"
	"github.com/keyward/keyward/internal/audit"
	"github.com/keyward/keyward/internal/credential"
	"github.com/keyward/keyward/internal/httpapi"
	"github.com/keyward/keyward/internal/policy"
	"github.com/keyward/keyward/internal/storage"
	"github.com/keyward/keyward/internal/storage/postgres"
	"github.com/keyward/keyward/internal/storage/storagetest"
)

// keyResp is what create and rotate answer.
type keyResp struct {
	Key             string          `json:"key"`
	ID              string          `json:"id"`
	EnvironmentKind string          `json:"environment_kind"`
	Status          string          `json:"status"`
	Scopes          []string        `json:"scopes"`
	Meta            json.RawMessage `json:"meta"`
	Remaining       *int64          `json:"remaining"`
	Rate            string          `json:"rate"`
	GraceUntil      string          `json:"grace_until"`
	LastUsedAddr    string          `json:"last_used_addr"`
	Previous        *keyResp        `json:"previous"`
}

type verifyResp struct {
	Valid           bool            `json:"valid"`
	Code            string          `json:"code"`
	KeyID           string          `json:"key_id"`
	Owner           string          `json:"owner"`
	Project         string          `json:"project"`
	EnvironmentKind string          `json:"environment_kind"`
	Meta            json.RawMessage `json:"meta"`
	Remaining       *int64          `json:"remaining"`
	RateLimit       *struct {
		Limit, Remaining int
	} `json:"ratelimit"`
}

func createKey(t *testing.T, url, tok, project, env string, body map[string]any) keyResp {
	t.Helper()
	var k keyResp
	if c := call(t, "POST", url+"/v1/projects/"+project+"/envs/"+env+"/keys", tok, body, &k); c != 201 {
		t.Fatalf("create key %v = %d", body, c)
	}
	return k
}

func verifyKey(t *testing.T, url, tok string, body map[string]any) (int, verifyResp, string) {
	t.Helper()
	b, _ := json.Marshal(body)
	req, _ := http.NewRequest("POST", url+"/v1/keys/verify", bytes.NewReader(b))
	req.Header.Set("Authorization", "Bearer "+tok)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	var v verifyResp
	json.Unmarshal(data, &v)
	return resp.StatusCode, v, string(data)
}

func TestKeysOverHTTP(t *testing.T) {
	r, root := devNode(t)
	u := r.url
	call(t, "POST", u+"/v1/projects", root, map[string]string{"name": "shop"}, nil)

	k := createKey(t, u, root, "shop", "staging", map[string]any{"name": "acme", "owner": "acme-corp", "scopes": []string{"integrations/maps"},
		"ttl": "90d", "rate": "100/min", "quota": 5, "refill": "monthly", "cidrs": []string{"127.0.0.0/8"}, "meta": map[string]string{"team": "x"}})
	if !strings.HasPrefix(k.Key, "kwk_test") || credential.ParseType(k.Key, credential.APIKey) != nil || k.EnvironmentKind != "test" ||
		k.Status != "active" || k.Rate != "100/min" || *k.Remaining != 5 || string(k.Meta) != `{"team":"x"}` {
		t.Fatalf("created %+v", k)
	}
	live := createKey(t, u, root, "shop", "prod", map[string]any{"name": "acme", "scopes": []string{"integrations/maps"}})
	if !strings.HasPrefix(live.Key, "kwk_live") || live.EnvironmentKind != "live" {
		t.Fatalf("prod key %q kind %q", live.Key[:8], live.EnvironmentKind)
	}

	// Bad inputs: a clear 400 naming the field, nothing stored.
	for body, want := range map[string]string{
		`{"name":"x","scopes":["a"],"meta":{"big":"` + strings.Repeat("a", apikey.MaxMetaBytes) + `"}}`: "meta",
		`{"name":"x","scopes":["a"],"meta":"not an object"}`:                                            "meta",
		`{"name":"x","scopes":["a"],"meta":{"team":}`:                                                   "JSON",
		`{"name":"x","scopes":["a/../b"]}`:                                                              "scope",
		`{"name":"x","scopes":["a"],"ttl":"90x"}`:                                                       "ttl",
		`{"name":"x","scopes":["a"],"rate":"100/fortnight"}`:                                            "rate",
		`{"name":"x","scopes":["a"],"refill":"daily"}`:                                                  "quota",
		`{"name":"x","scopes":["a"],"cidrs":["10.0.0.0/33"]}`:                                           "cidrs",
		`{"scopes":["a"]}`:                      "name",
		`{"name":"x"}`:                          "scope",
		`{"name":"x","scopes":["a"],"bogus":1}`: "bogus",
	} {
		code, out := raw(t, "POST", u+"/v1/projects/shop/envs/staging/keys", root, "application/json", body)
		if code != 400 || !strings.Contains(errMsg(out), want) {
			t.Errorf("create %s = %d %q, want 400 naming %q", body[:min(len(body), 60)], code, errMsg(out), want)
		}
	}
	if code, _ := raw(t, "POST", u+"/v1/projects/shop/envs/nope/keys", root, "application/json", `{"name":"x","scopes":["a"]}`); code != 404 {
		t.Errorf("create in a missing environment = %d", code)
	}
	var list struct {
		Keys []keyResp `json:"keys"`
	}
	if c := call(t, "GET", u+"/v1/projects/shop/envs/staging/keys", root, nil, &list); c != 200 || len(list.Keys) != 1 || list.Keys[0].ID != k.ID {
		t.Fatalf("list = %d %+v", c, list)
	}

	// Verify: valid, consumes one use, reports the rate and quota.
	code, v, _ := verifyKey(t, u, root, map[string]any{"key": k.Key, "source_addr": "127.0.0.1", "resource": "integrations/maps"})
	if code != 200 || !v.Valid || v.Code != "VALID" || v.KeyID != k.ID || v.Owner != "acme-corp" || v.Project != "shop" ||
		v.EnvironmentKind != "test" || *v.Remaining != 4 || v.RateLimit.Limit != 100 || v.RateLimit.Remaining != 99 || string(v.Meta) != `{"team":"x"}` {
		t.Fatalf("verify = %d %+v", code, v)
	}
	if _, v, _ = verifyKey(t, u, root, map[string]any{"key": k.Key, "source_addr": "127.0.0.1", "consume": false}); !v.Valid || *v.Remaining != 4 {
		t.Fatalf("verify without consuming = %+v", v)
	}
	for body, want := range map[string]string{
		`{"key": "` + k.Key + `", "source_addr": "10.0.0.1"}`:                                  "FORBIDDEN",
		`{"key": "` + k.Key + `"}`:                                                             "FORBIDDEN",
		`{"key": "` + k.Key + `", "source_addr": "127.0.0.1", "resource": "integrations/pay"}`: "FORBIDDEN",
	} {
		code, out := raw(t, "POST", u+"/v1/keys/verify", root, "application/json", body)
		if code != 200 || out["valid"] != false || out["code"] != want {
			t.Errorf("verify %s = %d %v, want %s", body, code, out, want)
		}
	}
	for _, body := range []string{`{}`, `{"key": 5}`, `{"key": "x", "source_addr": "not-an-ip"}`, `{"key": "x", "extra": 1}`} {
		if code, _ := raw(t, "POST", u+"/v1/keys/verify", root, "application/json", body); code != 400 {
			t.Errorf("verify %s = %d, want 400", body, code)
		}
	}

	// No oracle: a key the caller may not read answers exactly like one
	// that does not exist, and consumes nothing.
	r.node.policies.Put(t.Context(), &policy.Policy{Name: "verifier-elsewhere", Rules: []policy.Rule{{
		Resources: []string{"projects/other/**"}, Allow: []string{"read"}}}}, "test", nil)
	other := childToken(t, u, root, "verifier-elsewhere")
	_, hidden, hiddenBody := verifyKey(t, u, other, map[string]any{"key": k.Key})
	_, missing, missingBody := verifyKey(t, u, other, map[string]any{"key": credential.NewMarked(credential.APIKey, "test")})
	if hidden.Code != "NOT_FOUND" || hiddenBody != missingBody || missing.Code != "NOT_FOUND" {
		t.Fatalf("unreadable key %s vs unknown key %s", hiddenBody, missingBody)
	}
	flip := k.Key[:len(k.Key)-1] + map[bool]string{true: "A", false: "B"}[k.Key[len(k.Key)-1] != 'A']
	if _, v, _ := verifyKey(t, u, root, map[string]any{"key": flip}); v.Valid || v.Code != "NOT_FOUND" {
		t.Fatalf("bad checksum = %+v", v)
	}
	if _, v, _ := verifyKey(t, u, root, map[string]any{"key": k.Key, "source_addr": "127.0.0.1", "consume": false}); *v.Remaining != 4 {
		t.Fatalf("refused verifications consumed quota: %d left", *v.Remaining)
	}

	// Quota: the remaining uses, then USAGE_EXCEEDED.
	for range 4 {
		verifyKey(t, u, root, map[string]any{"key": k.Key, "source_addr": "127.0.0.1"})
	}
	if _, v, _ := verifyKey(t, u, root, map[string]any{"key": k.Key, "source_addr": "127.0.0.1"}); v.Valid || v.Code != "USAGE_EXCEEDED" || *v.Remaining != 0 {
		t.Fatalf("over quota = %+v", v)
	}

	// Rotate with a grace period, then revoke the successor.
	var rot keyResp
	if c := call(t, "POST", u+"/v1/projects/shop/envs/staging/keys/"+k.ID+"/rotate", root, map[string]string{"grace": "1h"}, &rot); c != 200 ||
		rot.Previous == nil || rot.Previous.Status != "grace" || rot.Previous.GraceUntil == "" || !strings.HasPrefix(rot.Key, "kwk_test") {
		t.Fatalf("rotate = %d %+v", c, rot)
	}
	if c, _ := raw(t, "POST", u+"/v1/projects/shop/envs/staging/keys/"+k.ID+"/rotate", root, "application/json", `{}`); c != 409 {
		t.Fatalf("rotating a rotated key = %d", c)
	}
	if c := call(t, "POST", u+"/v1/projects/shop/envs/staging/keys/"+rot.ID+"/revoke", root, nil, nil); c != 200 {
		t.Fatalf("revoke = %d", c)
	}
	if _, v, _ := verifyKey(t, u, root, map[string]any{"key": rot.Key, "source_addr": "127.0.0.1"}); v.Code != "REVOKED" {
		t.Fatalf("verify revoked = %+v", v)
	}
	var got keyResp
	if c := call(t, "GET", u+"/v1/projects/shop/envs/staging/keys/"+k.ID, root, nil, &got); c != 200 || got.LastUsedAddr != "127.0.0.1" {
		t.Fatalf("get = %d %+v", c, got)
	}
	if c, _ := raw(t, "GET", u+"/v1/projects/shop/envs/prod/keys/"+k.ID, root, "", ""); c != 404 {
		t.Fatalf("key under another environment = %d", c)
	}
	if c, out := raw(t, "GET", u+"/v1/projects/shop/envs/staging/keys/not-a-key-id", root, "", ""); c != 400 || !strings.Contains(errMsg(out), "key id") {
		t.Fatalf("bad key id = %d %v", c, out)
	}
}

func childToken(t *testing.T, url, root string, policies ...string) string {
	t.Helper()
	var it struct{ Token string }
	if c := call(t, "POST", url+"/v1/auth/token/create", root, map[string]any{"policies": policies}, &it); c != 200 {
		t.Fatalf("create token = %d", c)
	}
	return it.Token
}

// gatewayStub serves a stand-in for the gateway's proxy route through the
// node's own authenticator and authorizer, the way the real route is served.
func gatewayStub(t *testing.T, n *Node) string {
	t.Helper()
	api := httpapi.New(httpapi.Deps{
		Auth: &tokenAuth{svc: n.tokens, keys: n.apikeys}, Authz: policyAuthz{svc: n.policies},
		Limits: &credentialLimits{keys: n.apikeys, lim: n.keyLimiter}, Errors: func() *httpapi.ErrorMapper {
			m := httpapi.NewErrorMapper()
			httpapi.MapKeyErrors(m)
			return m
		}(),
	}, []httpapi.Route{{
		Pattern: "GET /v1/gateway/{integration}/{path...}", Action: "proxy",
		Resource: func(r *http.Request) (string, error) { return "integrations/" + httpapi.IntegrationOf(r), nil },
		Handle: func(r *http.Request) (int, any, error) {
			return 200, map[string]string{"principal": httpapi.CallerFrom(r.Context()).Principal}, nil
		},
	}})
	srv := httptest.NewServer(api)
	t.Cleanup(srv.Close)
	return srv.URL
}

func gw(t *testing.T, url, key string) (int, http.Header) {
	t.Helper()
	req, _ := http.NewRequest("GET", url, nil)
	req.Header.Set("Authorization", "Bearer "+key)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode, resp.Header
}

func TestKeysOnTheGateway(t *testing.T) {
	r, root := devNode(t)
	u := r.url
	call(t, "POST", u+"/v1/projects", root, map[string]string{"name": "shop"}, nil)
	g := gatewayStub(t, r.node)
	maps := g + "/v1/gateway/maps/v1/geocode"

	// Scopes: only proxy, only within them.
	k := createKey(t, u, root, "shop", "prod", map[string]any{"name": "a", "scopes": []string{"integrations/maps"}})
	if c, _ := gw(t, maps, k.Key); c != 200 {
		t.Fatalf("in scope = %d", c)
	}
	if c, _ := gw(t, g+"/v1/gateway/payments/charge", k.Key); c != 403 {
		t.Fatalf("out of scope = %d", c)
	}

	// Rate limit: 429 with Retry-After and the RateLimit-* headers.
	rk := createKey(t, u, root, "shop", "prod", map[string]any{"name": "r", "scopes": []string{"integrations/*"}, "rate": "2/min"})
	for i := range 2 {
		if c, _ := gw(t, maps, rk.Key); c != 200 {
			t.Fatalf("request %d under the rate = %d", i, c)
		}
	}
	c, h := gw(t, maps, rk.Key)
	if c != 429 || h.Get("Retry-After") != "30" || h.Get("RateLimit-Limit") != "2" || h.Get("RateLimit-Remaining") != "0" ||
		h.Get("RateLimit-Reset") == "" || h.Get("RateLimit-Policy") != "2;w=60" {
		t.Fatalf("over the rate = %d %v", c, h)
	}

	// Quota: exactly the quota, then 429.
	qk := createKey(t, u, root, "shop", "prod", map[string]any{"name": "q", "scopes": []string{"integrations/maps"}, "quota": 3, "refill": "daily"})
	for i := range 3 {
		if c, _ := gw(t, maps, qk.Key); c != 200 {
			t.Fatalf("request %d within the quota = %d", i, c)
		}
	}
	if c, h := gw(t, maps, qk.Key); c != 429 || h.Get("Retry-After") == "" {
		t.Fatalf("over the quota = %d %v", c, h)
	}

	// Revoked mid-stream: the next request is refused.
	if c, _ := gw(t, maps, k.Key); c != 200 {
		t.Fatal(c)
	}
	call(t, "POST", u+"/v1/projects/shop/envs/prod/keys/"+k.ID+"/revoke", root, nil, nil)
	if c, _ := gw(t, maps, k.Key); c != 401 {
		t.Fatalf("after revoke = %d", c)
	}

	// Bound to another network; expired; malformed: 401.
	ck := createKey(t, u, root, "shop", "prod", map[string]any{"name": "c", "scopes": []string{"integrations/maps"}, "cidrs": []string{"10.0.0.0/8"}})
	if c, _ := gw(t, maps, ck.Key); c != 401 {
		t.Fatalf("from outside the CIDR = %d", c)
	}
	ek := createKey(t, u, root, "shop", "prod", map[string]any{"name": "e", "scopes": []string{"integrations/maps"}, "ttl": "1h"})
	r.node.Store().Write(t.Context(), func(tx storage.Tx) error {
		_, err := tx.Exec(t.Context(), `UPDATE api_keys SET expires_at = 1 WHERE id = $1`, ek.ID)
		return err
	})
	r.node.apikeys.Purge()
	if c, _ := gw(t, maps, ek.Key); c != 401 {
		t.Fatalf("expired = %d", c)
	}
	if c, _ := gw(t, maps, ek.Key[:20]); c != 401 {
		t.Fatalf("truncated = %d", c)
	}
}

// A key revoked on one node is refused by another node sharing the
// database after its next poll of the events log (every 200 ms), even
// though that node had it cached.
func TestKeyRevocationReachesOtherNode(t *testing.T) {
	url, schema := storagetest.PostgresSchema(t)
	open := func() storage.Store {
		s, err := postgres.Open(t.Context(), url, storage.Options{Schema: schema})
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	dir := t.TempDir()
	node := func() *Node {
		cfg := testConfig(dir)
		cfg.Dev = true
		n, err := New(t.Context(), cfg, Options{Store: open()})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { n.Close() })
		return n
	}
	a := node()
	b := node()
	ctx := t.Context()
	if _, err := a.secrets.CreateProject(ctx, "shop", "test", nil); err != nil {
		t.Fatal(err)
	}
	plain, k, err := a.apikeys.Create(ctx, apikey.CreateRequest{Project: "shop", Env: "prod", Name: "n", Scopes: []string{"integrations/maps"}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	gb := gatewayStub(t, b) + "/v1/gateway/maps/x"
	if c, _ := gw(t, gb, plain); c != 200 {
		t.Fatalf("node b before revoke = %d", c)
	}
	if _, err := a.apikeys.Revoke(ctx, "shop", "prod", k.ID, nil); err != nil {
		t.Fatal(err)
	}
	if err := b.poller.Poll(ctx); err != nil { // what b's poller does every 200 ms
		t.Fatal(err)
	}
	if c, _ := gw(t, gb, plain); c != 401 {
		t.Fatalf("node b after its poll = %d, want 401", c)
	}
}

// A verification answers before its audit entry is committed (the entry
// is queued), and the entry then lands, without the key.
func TestVerifyIsAuditedAfterAnswering(t *testing.T) {
	r, root := devNode(t)
	u := r.url
	call(t, "POST", u+"/v1/projects", root, map[string]string{"name": "shop"}, nil)
	k := createKey(t, u, root, "shop", "prod", map[string]any{"name": "acme", "scopes": []string{"integrations/maps"}})
	b, _ := json.Marshal(map[string]any{"key": k.Key})
	req, _ := http.NewRequest("POST", u+"/v1/keys/verify", bytes.NewReader(b))
	req.Header.Set("Authorization", "Bearer "+root)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	id := resp.Header.Get("X-Request-Id")
	if resp.StatusCode != 200 || id == "" {
		t.Fatalf("verify = %d, request id %q", resp.StatusCode, id)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		entries, err := r.node.auditLog.List(t.Context(), audit.Filter{ResourcePrefix: "keys/verify", Limit: 1000})
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range entries {
			if e.RequestID != id {
				continue
			}
			if e.Action != "read" || e.Status != 200 || e.Outcome != "allowed" {
				t.Fatalf("entry of the verification = %+v", e)
			}
			if js, _ := json.Marshal(e); strings.Contains(string(js), k.Key) {
				t.Fatalf("the entry holds the key: %s", js)
			}
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("no audit entry for request %s after 10 s", id)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// PATCH .../keys/{id} changes a key in place: the same key verifies with
// its new settings; the change is audited with the fields it named; bad
// bodies are 400s that change nothing; a caller without write is refused.
func TestKeyUpdateOverHTTP(t *testing.T) {
	r, root := devNode(t)
	u := r.url
	call(t, "POST", u+"/v1/projects", root, map[string]string{"name": "shop"}, nil)
	k := createKey(t, u, root, "shop", "staging", map[string]any{"name": "acme", "scopes": []string{"integrations/maps"},
		"rate": "100/min", "quota": 5, "cidrs": []string{"10.0.0.0/8"}})
	path := u + "/v1/projects/shop/envs/staging/keys/" + k.ID
	var got keyResp
	if c := call(t, "PATCH", path, root, map[string]any{"quota": 50, "rate": "", "cidrs": []string{}, "meta": map[string]string{"plan": "gold"},
		"scopes": []string{"integrations/maps", "integrations/geo"}, "ttl": "30d"}, &got); c != 200 ||
		got.ID != k.ID || *got.Remaining != 50 || got.Rate != "" || string(got.Meta) != `{"plan":"gold"}` || len(got.Scopes) != 2 {
		t.Fatalf("update = %d %+v", c, got)
	}
	code, v, _ := verifyKey(t, u, root, map[string]any{"key": k.Key, "source_addr": "192.0.2.7", "resource": "integrations/geo"})
	if code != 200 || !v.Valid || *v.Remaining != 49 || v.RateLimit != nil {
		t.Fatalf("verify after the update = %d %+v", code, v)
	}
	found := false
	for _, e := range newestAudit(t, u, root, 50) {
		found = found || e.Action == "write" && e.Resource == "projects/shop/envs/staging/keys/"+k.ID && e.Status == 200 &&
			e.Detail["changed"] == "scopes,meta,cidrs,ttl,rate,quota"
	}
	if !found {
		t.Fatal("no audit entry of the update")
	}

	for body, want := range map[string]string{
		`{}`:                             "nothing to change",
		`{"quota":-1}`:                   "quota",
		`{"remaining":500}`:              "remaining",
		`{"ttl":"soon"}`:                 "ttl",
		`{"ttl":"0s"}`:                   "ttl",
		`{"rate":"5/fortnight"}`:         "rate",
		`{"scopes":[]}`:                  "scope",
		`{"cidrs":["10.0.0.0/33"]}`:      "cidrs",
		`{"refill_amount":5}`:            "refill",
		`{"name":"x","bogus":1}`:         "bogus",
		`{"meta":"not an object"}`:       "meta",
		`{"refill":"fortnightly"}`:       "refill",
		`{"name":"` + "\x01" + `"}`:      "JSON",
		`{"owner":"` + "a\\u0000" + `"}`: "owner",
	} {
		code, out := raw(t, "PATCH", path, root, "application/json", body)
		if code != 400 || !strings.Contains(errMsg(out), want) {
			t.Errorf("update %s = %d %q, want 400 naming %q", body, code, errMsg(out), want)
		}
	}
	if c := call(t, "GET", path, root, nil, &got); c != 200 || *got.Remaining != 49 || len(got.Scopes) != 2 || got.Status != "active" {
		t.Fatalf("after refused updates: %d %+v", c, got)
	}

	// Disabled: verify says DISABLED, the gateway refuses it; enabled
	// again, it is valid.
	if c := call(t, "PATCH", path, root, map[string]any{"disabled": true}, &got); c != 200 || got.Status != "disabled" {
		t.Fatalf("disable = %d %+v", c, got)
	}
	if _, v, _ := verifyKey(t, u, root, map[string]any{"key": k.Key, "source_addr": "192.0.2.7"}); v.Valid || v.Code != "DISABLED" {
		t.Fatalf("verify a disabled key = %+v", v)
	}
	if c, _ := raw(t, "POST", path+"/rotate", root, "application/json", `{}`); c != 409 {
		t.Fatalf("rotate a disabled key = %d, want 409", c)
	}
	if c := call(t, "PATCH", path, root, map[string]any{"disabled": false}, &got); c != 200 || got.Status != "active" {
		t.Fatalf("enable = %d %+v", c, got)
	}
	if _, v, _ := verifyKey(t, u, root, map[string]any{"key": k.Key, "source_addr": "192.0.2.7"}); !v.Valid {
		t.Fatalf("verify an enabled key = %+v", v)
	}

	putPolicy(t, u, root, "name: key-reader\nrules:\n  - resources: [\"projects/shop/envs/staging/keys/**\"]\n    allow: [read]\n")
	reader := childToken(t, u, root, "key-reader")
	if c, _ := raw(t, "PATCH", path, reader, "application/json", `{"quota":1000}`); c != 403 {
		t.Fatalf("update by a reader = %d, want 403", c)
	}
	if c, _ := raw(t, "PATCH", u+"/v1/projects/shop/envs/prod/keys/"+k.ID, root, "application/json", `{"quota":1}`); c != 404 {
		t.Fatalf("update under another environment = %d, want 404", c)
	}
	if c := call(t, "POST", path+"/revoke", root, nil, nil); c != 200 {
		t.Fatal("revoke")
	}
	if c, _ := raw(t, "PATCH", path, root, "application/json", `{"quota":1}`); c != 409 {
		t.Fatalf("update of a revoked key = %d, want 409", c)
	}
}
