package server

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"

	"github.com/keyward/keyward/internal/storage"
)

// raw sends body as is and returns the status and the decoded JSON object.
func raw(t testing.TB, method, url, tok, contentType, body string) (int, map[string]any) {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	if tok != "" {
		req.Header.Set("Authorization", "Bearer "+tok)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	var out map[string]any
	json.Unmarshal(data, &out)
	if out == nil {
		out = map[string]any{}
	}
	out["_retry_after"] = resp.Header.Get("Retry-After")
	return resp.StatusCode, out
}

func errMsg(m map[string]any) string {
	e, _ := m["error"].(map[string]any)
	s, _ := e["message"].(string)
	return s
}

func devNode(t *testing.T) (*running, string) {
	t.Helper()
	cfg := testConfig(t.TempDir())
	cfg.Dev = true
	r := start(t, cfg, nil)
	return r, r.node.DevRootToken()
}

const stagingPolicy = `# CI may read staging only
name: payments-ci
rules:
  - resources: ["projects/payments/envs/staging/secrets/**"]
    allow: [read, list]
  - resources: ["projects/payments/envs/prod/**"]
    deny: ["*"]
`

func TestPasswordLoginPoliciesAndAudit(t *testing.T) {
	r, root := devNode(t)
	u := r.url
	// Policy as code: YAML in, idempotent.
	code, out := raw(t, "PUT", u+"/v1/policies/payments-ci", root, "application/yaml", stagingPolicy)
	if code != 200 || out["changed"] != true {
		t.Fatalf("put policy = %d %v", code, out)
	}
	if code, out = raw(t, "PUT", u+"/v1/policies/payments-ci", root, "application/yaml", stagingPolicy); code != 200 || out["changed"] != false {
		t.Fatalf("second put = %d %v", code, out)
	}
	// Bad documents: the message names the line; nothing is stored.
	for doc, want := range map[string]string{
		"name: payments-ci\nrules:\n  - resources: [\"a\"\n    allow: [read]\n":     "line",
		"name: payments-ci\nrules:\n  - resources: [\"a/**\"]\n    allow: [raed]\n": `line 4`,
		"name: payments-ci\nrules: []\n":                                            "rule",
	} {
		code, out := raw(t, "PUT", u+"/v1/policies/payments-ci", root, "application/yaml", doc)
		if code != 400 || !strings.Contains(errMsg(out), want) {
			t.Errorf("bad policy %q = %d %q, want 400 naming %q", doc, code, errMsg(out), want)
		}
	}
	if code, out := raw(t, "GET", u+"/v1/policies/payments-ci", root, "", ""); code != 200 || !strings.Contains(out["document"].(string), "staging") {
		t.Fatalf("policy after bad puts = %d %v", code, out)
	}

	// Data in two environments.
	call(t, "POST", u+"/v1/projects", root, map[string]string{"name": "payments"}, nil)
	for _, env := range []string{"staging", "prod"} {
		if c := call(t, "PUT", u+"/v1/projects/payments/envs/"+env+"/secrets/db/password", root, map[string]string{"value": env + "-pw-value"}, nil); c != 200 && c != 201 {
			t.Fatalf("put %s = %d", env, c)
		}
	}

	// A user with the policy logs in.
	if c := call(t, "POST", u+"/v1/identities/users", root, map[string]any{"name": "ci-bot", "password": "correct horse battery", "policies": []string{"payments-ci"}}, nil); c != 201 {
		t.Fatalf("create user = %d", c)
	}
	var login struct {
		Token, Accessor string
		Policies        []string
	}
	if c := call(t, "POST", u+"/v1/auth/password/login", "", map[string]string{"username": "ci-bot", "password": "correct horse battery"}, &login); c != 200 || !strings.HasPrefix(login.Token, "kwt_") {
		t.Fatalf("login = %d %+v", c, login)
	}
	if c, out := raw(t, "GET", u+"/v1/projects/payments/envs/staging/secrets/db/password", login.Token, "", ""); c != 200 || out["value"] != "staging-pw-value" {
		t.Fatalf("staging read = %d %v", c, out)
	}
	if c, _ := raw(t, "GET", u+"/v1/projects/payments/envs/prod/secrets/db/password", login.Token, "", ""); c != 403 {
		t.Fatalf("prod read = %d, want 403", c)
	}
	// explain names the rule that decided.
	code, out = raw(t, "POST", u+"/v1/policies/explain", root, "application/json",
		`{"accessor":"`+login.Accessor+`","action":"read","resource":"projects/payments/envs/prod/secrets/db/password"}`)
	if code != 200 || out["allowed"] != false || out["policy"] != "payments-ci" || out["rule"] != float64(1) || !strings.Contains(out["reason"].(string), "explicit deny") {
		t.Fatalf("explain = %d %v", code, out)
	}

	// Wrong password and unknown user: the same answer.
	c1, o1 := raw(t, "POST", u+"/v1/auth/password/login", "", "application/json", `{"username":"ci-bot","password":"wrong password!!"}`)
	c2, o2 := raw(t, "POST", u+"/v1/auth/password/login", "", "application/json", `{"username":"nobody","password":"wrong password!!"}`)
	if c1 != 401 || c2 != 401 || errMsg(o1) != errMsg(o2) {
		t.Fatalf("wrong password %d %q vs unknown user %d %q", c1, errMsg(o1), c2, errMsg(o2))
	}

	// The audit log holds the denial, without any secret value.
	var list struct {
		Entries []map[string]any `json:"entries"`
	}
	call(t, "GET", u+"/v1/audit?outcome=denied&limit=1000", root, nil, &list)
	found := false
	for _, e := range list.Entries {
		if e["resource"] == "projects/payments/envs/prod/secrets/db/password" && e["principal"] == "user:ci-bot" && e["status"] == float64(403) {
			found = true
		}
	}
	if !found {
		t.Fatalf("the prod denial is not in the audit log: %v", list.Entries)
	}
	var all struct {
		Entries []json.RawMessage `json:"entries"`
	}
	call(t, "GET", u+"/v1/audit?limit=1000", root, nil, &all)
	blob, _ := json.Marshal(all)
	for _, s := range []string{"staging-pw-value", "prod-pw-value", "correct horse battery", login.Token, root} {
		if bytes.Contains(blob, []byte(s)) {
			t.Fatalf("the audit log holds a secret")
		}
	}
	var v map[string]any
	if c := call(t, "POST", u+"/v1/audit/verify", root, nil, &v); c != 200 || v["ok"] != true || v["entries"].(float64) < 10 {
		t.Fatalf("verify = %d %v", c, v)
	}

	// A byte changed behind the server's back is found and named.
	var seq, n int64
	st := r.node.Store()
	st.Write(t.Context(), func(tx storage.Tx) error {
		// The outcome and status of a refusal, inside the block of
		// entries holding it (entries seq-n+1..seq).
		tx.QueryRow(t.Context(), `SELECT seq, n FROM audit_blocks WHERE entries LIKE '%"denied",403,%' ORDER BY seq LIMIT 1`).Scan(&seq, &n)
		_, err := tx.Exec(t.Context(), `UPDATE audit_blocks SET entries = replace(entries, '"denied",403,', '"denied",200,') WHERE seq = $1`, seq)
		return err
	})
	if seq == 0 {
		t.Fatal("no refusal found in the audit log")
	}
	c := call(t, "POST", u+"/v1/audit/verify", root, nil, &v)
	if bad, _ := v["first_bad"].(float64); c != 200 || v["ok"] != false || int64(bad) < seq-n+1 || int64(bad) > seq {
		t.Fatalf("verify after tampering with the block of entries %d..%d = %d %v", seq-n+1, seq, c, v)
	}
}

func TestLoginLockout(t *testing.T) {
	r, root := devNode(t)
	u := r.url
	call(t, "POST", u+"/v1/identities/users", root, map[string]any{"name": "alice", "password": "alice's long password"}, nil)
	var last int
	var out map[string]any
	for range 8 {
		last, out = raw(t, "POST", u+"/v1/auth/password/login", "", "application/json", `{"username":"alice","password":"not her password"}`)
	}
	if last != 429 || out["_retry_after"] == "" {
		t.Fatalf("after 8 failures = %d %v", last, out)
	}
	// Locked out: even the right password is refused for now.
	if c, _ := raw(t, "POST", u+"/v1/auth/password/login", "", "application/json", `{"username":"alice","password":"alice's long password"}`); c != 429 {
		t.Fatalf("right password while locked = %d", c)
	}
	var list struct {
		Entries []map[string]any `json:"entries"`
	}
	call(t, "GET", u+"/v1/audit?outcome=denied&limit=1000", root, nil, &list)
	lockouts := 0
	for _, e := range list.Entries {
		if e["action"] == "lockout" {
			lockouts++
		}
	}
	if lockouts == 0 {
		t.Fatal("the lockout is not audited")
	}
}

func TestJWTLoginGetsOnlyMappedPolicies(t *testing.T) {
	r, root := devNode(t)
	u := r.url
	pub, priv, _ := ed25519.GenerateKey(rand.Reader)
	jwks, _ := json.Marshal(jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: pub, KeyID: "k1", Algorithm: "EdDSA", Use: "sig"}}})
	issuer := map[string]any{
		"issuer_url": "https://ci.example", "audiences": []string{"keyward"}, "jwks": json.RawMessage(jwks),
		"algorithms": []string{"EdDSA"}, "bound_claims": map[string][]string{"repository": {"acme/*"}},
		"policy_map": []map[string]any{{"claim": "ref", "value": "refs/heads/main", "policies": []string{"deploy"}}},
		"policies":   []string{"ci-base"}, "token_ttl": "10m",
	}
	if c := call(t, "PUT", u+"/v1/auth/jwt/issuers/ci", root, issuer, nil); c != 200 {
		t.Fatalf("put issuer = %d", c)
	}
	mint := func(claims map[string]any, alg jose.SignatureAlgorithm, key any) string {
		s, err := jose.NewSigner(jose.SigningKey{Algorithm: alg, Key: jose.JSONWebKey{Key: key, KeyID: "k1"}}, nil)
		if err != nil {
			t.Fatal(err)
		}
		tok, err := jwt.Signed(s).Claims(claims).Serialize()
		if err != nil {
			t.Fatal(err)
		}
		return tok
	}
	now := time.Now()
	claims := func(ref string) map[string]any {
		return map[string]any{"iss": "https://ci.example", "aud": "keyward", "sub": "repo:acme/app", "repository": "acme/app",
			"ref": ref, "iat": now.Unix(), "exp": now.Add(5 * time.Minute).Unix()}
	}
	var got struct {
		Token     string
		Policies  []string
		Principal string
	}
	if c := call(t, "POST", u+"/v1/auth/jwt/login", "", map[string]string{"issuer": "ci", "jwt": mint(claims("refs/heads/main"), jose.EdDSA, priv)}, &got); c != 200 {
		t.Fatalf("jwt login = %d", c)
	}
	if strings.Join(got.Policies, ",") != "ci-base,deploy" || !strings.HasPrefix(got.Principal, "jwt:ci/") {
		t.Fatalf("jwt login got %+v", got)
	}
	if c := call(t, "POST", u+"/v1/auth/jwt/login", "", map[string]string{"issuer": "ci", "jwt": mint(claims("refs/heads/feature"), jose.EdDSA, priv)}, &got); c != 200 || strings.Join(got.Policies, ",") != "ci-base" {
		t.Fatalf("feature branch = %d %+v", c, got)
	}
	expired := claims("refs/heads/main")
	expired["exp"] = now.Add(-time.Hour).Unix()
	wrongAud := claims("refs/heads/main")
	wrongAud["aud"] = "someone-else"
	_, other, _ := ed25519.GenerateKey(rand.Reader)
	for name, jwtStr := range map[string]string{
		"expired":        mint(expired, jose.EdDSA, priv),
		"wrong audience": mint(wrongAud, jose.EdDSA, priv),
		"wrong key":      mint(claims("refs/heads/main"), jose.EdDSA, other),
		"alg none":       "eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0." + strings.Split(mint(claims("refs/heads/main"), jose.EdDSA, priv), ".")[1] + ".",
	} {
		if c, _ := raw(t, "POST", u+"/v1/auth/jwt/login", "", "application/json", `{"issuer":"ci","jwt":"`+jwtStr+`"}`); c != 401 {
			t.Errorf("%s JWT = %d, want 401", name, c)
		}
	}
}

func TestChildTokensAndRevocation(t *testing.T) {
	r, root := devNode(t)
	u := r.url
	var parent, child struct {
		Token, Accessor string
	}
	if c := call(t, "POST", u+"/v1/auth/token/create", root, map[string]any{"policies": []string{"a", "b"}, "ttl": "1h", "bound_envs": []string{"staging"}}, &parent); c != 200 {
		t.Fatalf("create = %d", c)
	}
	if c, out := raw(t, "POST", u+"/v1/auth/token/create", parent.Token, "application/json", `{"policies":["c"]}`); c != 403 || !strings.Contains(errMsg(out), `"c"`) {
		t.Fatalf("child with more policies = %d %v", c, out)
	}
	if c, _ := raw(t, "POST", u+"/v1/auth/token/create", parent.Token, "application/json", `{"ttl":"2h"}`); c != 403 {
		t.Fatalf("child outliving its parent = %d", c)
	}
	if c := call(t, "POST", u+"/v1/auth/token/create", parent.Token, map[string]any{"policies": []string{"a"}, "ttl": "10m"}, &child); c != 200 {
		t.Fatalf("child = %d", c)
	}
	var info map[string]any
	if c := call(t, "GET", u+"/v1/auth/token/lookup-self", child.Token, nil, &info); c != 200 || info["bound_envs"].([]any)[0] != "staging" {
		t.Fatalf("lookup-self = %d %v", c, info)
	}
	if c := call(t, "POST", u+"/v1/auth/token/renew-self", child.Token, nil, &info); c != 200 {
		t.Fatalf("renew-self = %d", c)
	}
	var rev map[string]any
	if c := call(t, "DELETE", u+"/v1/auth/token/accessors/"+parent.Accessor, root, nil, &rev); c != 200 || rev["revoked"] != float64(2) {
		t.Fatalf("revoke = %d %v", c, rev)
	}
	if c, _ := raw(t, "GET", u+"/v1/auth/token/lookup-self", child.Token, "", ""); c != 401 {
		t.Fatalf("child after parent revoked = %d", c)
	}
}

// Disabling a user or a service account revokes every token issued to it,
// children included, at once.
func TestDisableRevokesTokens(t *testing.T) {
	r, root := devNode(t)
	u := r.url
	if c := call(t, "POST", u+"/v1/identities/users", root, map[string]any{"name": "leaver", "password": "correct horse battery", "policies": []string{"default"}}, nil); c != 201 {
		t.Fatalf("create user = %d", c)
	}
	var login struct{ Token string }
	if c, out := raw(t, "POST", u+"/v1/auth/password/login", "", "application/json", `{"username":"leaver","password":"correct horse battery"}`); c != 200 {
		t.Fatalf("login = %d %v", c, out)
	} else {
		login.Token, _ = out["token"].(string)
	}
	var child struct{ Token string }
	if c := call(t, "POST", u+"/v1/auth/token/create", login.Token, map[string]any{"ttl": "5m"}, &child); c != 200 && c != 201 {
		t.Fatalf("child = %d", c)
	}
	for _, tok := range []string{login.Token, child.Token} {
		if c, _ := raw(t, "GET", u+"/v1/auth/token/lookup-self", tok, "", ""); c != 200 {
			t.Fatalf("lookup-self before disable = %d", c)
		}
	}
	if c, out := raw(t, "POST", u+"/v1/identities/users/leaver/disable", root, "", ""); c != 204 {
		t.Fatalf("disable = %d %v", c, out)
	}
	for i, tok := range []string{login.Token, child.Token} {
		if c, _ := raw(t, "GET", u+"/v1/auth/token/lookup-self", tok, "", ""); c != 401 {
			t.Errorf("token %d after disable: lookup-self = %d, want 401", i, c)
		}
	}
	// The operator's own token is untouched.
	if c, _ := raw(t, "GET", u+"/v1/auth/token/lookup-self", root, "", ""); c != 200 {
		t.Fatalf("root after disable = %d", c)
	}
	// Disabling again is not an error.
	if c, out := raw(t, "POST", u+"/v1/identities/users/leaver/disable", root, "", ""); c != 204 {
		t.Fatalf("second disable = %d %v", c, out)
	}

	// A service account likewise.
	c, out := raw(t, "POST", u+"/v1/identities/services", root, "application/json", `{"name":"old-ci","policies":["default"]}`)
	if c != 201 {
		t.Fatalf("create service = %d %v", c, out)
	}
	id, secret := out["client_id"].(string), out["client_secret"].(string)
	c, out = raw(t, "POST", u+"/v1/auth/service/login", "", "application/json", `{"client_id":"`+id+`","client_secret":"`+secret+`"}`)
	if c != 200 {
		t.Fatalf("service login = %d %v", c, out)
	}
	svcTok := out["token"].(string)
	if c, out := raw(t, "POST", u+"/v1/identities/services/old-ci/disable", root, "", ""); c != 204 {
		t.Fatalf("disable service = %d %v", c, out)
	}
	if c, _ := raw(t, "GET", u+"/v1/auth/token/lookup-self", svcTok, "", ""); c != 401 {
		t.Errorf("service token after disable: lookup-self = %d, want 401", c)
	}
}
