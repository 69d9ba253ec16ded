package cli

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
)

func TestTokenCreate(t *testing.T) {
	h := newHarness(t, "kwt_parent", "kwt_issuedtokenvalue")
	h.vars["KEYWARD_TOKEN"] = "kwt_parent"
	h.fake.handle("POST /v1/auth/token/create", 200, strings.Replace(issuedJSON, `}`, `,"rate":"100/min"}`, 1))

	r := h.must("", "token", "create", "--policy", "dev", "--policy", "ops", "--ttl", "10m", "--max-ttl", "1h",
		"--bound-env", "staging", "--bound-cidr", "10.0.0.0/8", "--max-uses", "3", "--rate", "100/min")
	for _, want := range []string{"Token:      kwt_issuedtokenvalue", "Accessor:   acc123", "Policies:   dev, ops", "Expires:    2099-01-01T00:00:00Z",
		"Rate limit: 100/min"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("stdout lacks %q:\n%s", want, r.stdout)
		}
	}
	if !strings.Contains(r.stderr, "shown once") {
		t.Errorf("no shown-once warning: %q", r.stderr)
	}
	req := h.fake.requests("POST /v1/auth/token/create")[0]
	if req.Auth != "Bearer kwt_parent" {
		t.Errorf("auth %q", req.Auth)
	}
	var body struct {
		Policies   []string `json:"policies"`
		TTL        string   `json:"ttl"`
		MaxTTL     string   `json:"max_ttl"`
		BoundEnvs  []string `json:"bound_envs"`
		BoundCIDRs []string `json:"bound_cidrs"`
		MaxUses    int      `json:"max_uses"`
		Rate       string   `json:"rate"`
	}
	if err := json.Unmarshal([]byte(req.Body), &body); err != nil {
		t.Fatal(err)
	}
	if strings.Join(body.Policies, ",") != "dev,ops" || body.TTL != "10m" || body.MaxTTL != "1h" || body.BoundEnvs[0] != "staging" ||
		body.BoundCIDRs[0] != "10.0.0.0/8" || body.MaxUses != 3 || body.Rate != "100/min" {
		t.Errorf("create body %+v", body)
	}

	r = h.must("", "token", "create", "-o", "json")
	var out map[string]any
	if err := json.Unmarshal([]byte(r.stdout), &out); err != nil || out["token"] != "kwt_issuedtokenvalue" || out["accessor"] != "acc123" {
		t.Errorf("-o json: %v %v\n%s", out, err, r.stdout)
	}
	if b := h.fake.requests("POST /v1/auth/token/create")[1].Body; b != "{}" {
		t.Errorf("no flags sent %s", b)
	}

	// A bad rate is a usage error naming the flag; nothing is sent.
	for _, bad := range []string{"fast", "0/min", "100/fortnight"} {
		if r := h.run("", "token", "create", "--rate", bad); r.code != 2 || !strings.Contains(r.stderr, "--rate") {
			t.Errorf("--rate %s: exit %d, stderr %q", bad, r.code, r.stderr)
		}
	}
	if n := len(h.fake.requests("POST /v1/auth/token/create")); n != 2 {
		t.Errorf("bad rates reached the server: %d requests", n)
	}
	if r := h.must("", "token", "create", "--help"); !strings.Contains(r.stdout, "--rate") || !strings.Contains(r.stdout, "per keyward node") {
		t.Errorf("--help does not explain --rate:\n%s", r.stdout)
	}
}

// --meta KEY=VALUE, repeatable, becomes the request's meta object; a
// malformed one is a usage error naming the flag, and nothing is sent.
func TestTokenCreateMeta(t *testing.T) {
	h := newHarness(t, "kwt_parent", "kwt_issuedtokenvalue")
	h.vars["KEYWARD_TOKEN"] = "kwt_parent"
	h.fake.handle("POST /v1/auth/token/create", 200, issuedJSON)

	h.must("", "token", "create", "--meta", "team=payments", "--meta", "query=a=b&c=d", "--meta", "empty=")
	var body struct {
		Meta map[string]string `json:"meta"`
	}
	if err := json.Unmarshal([]byte(h.fake.requests("POST /v1/auth/token/create")[0].Body), &body); err != nil {
		t.Fatal(err)
	}
	if len(body.Meta) != 3 || body.Meta["team"] != "payments" || body.Meta["query"] != "a=b&c=d" || body.Meta["empty"] != "" {
		t.Errorf("meta sent %v", body.Meta)
	}
	for _, args := range [][]string{
		{"--meta", "team"},
		{"--meta", "team=x", "--meta", "hunter2-value"},
		{"--meta", "team=x", "--meta", "team=y"},
	} {
		r := h.run("", append([]string{"token", "create"}, args...)...)
		if r.code != ExitUsage || !strings.Contains(r.stderr, "--meta") || strings.Contains(r.stderr, "hunter2") {
			t.Errorf("%v: exit %d, stderr %q", args, r.code, r.stderr)
		}
	}
	if n := len(h.fake.requests("POST /v1/auth/token/create")); n != 1 {
		t.Errorf("bad --meta reached the server: %d requests", n)
	}
	if r := h.must("", "token", "create", "--help"); !strings.Contains(r.stdout, "--meta") {
		t.Errorf("--help lacks --meta:\n%s", r.stdout)
	}
}

func TestTokenLookupRenewRevoke(t *testing.T) {
	h := newHarness(t)
	h.vars["KEYWARD_TOKEN"] = "kwt_parent"
	h.fake.handle("GET /v1/auth/token/lookup-self", 200, strings.Replace(tokenInfoJSON, `}`, `,"rate":"60/min","meta":{"team":"payments","client_id":"kwsvc-1"}}`, 1))
	h.fake.handle("GET /v1/auth/token/accessors/{acc}", 200, tokenInfoJSON)
	h.fake.handle("POST /v1/auth/token/renew-self", 200, tokenInfoJSON)
	h.fake.handle("POST /v1/auth/token/accessors/{acc}/renew", 200, tokenInfoJSON)
	h.fake.handle("POST /v1/auth/token/revoke-self", 200, `{"revoked":3}`)
	h.fake.handle("DELETE /v1/auth/token/accessors/{acc}", 200, `{"revoked":1}`)

	r := h.must("", "token", "lookup")
	for _, want := range []string{"Accessor:     acc123", "Principal:    user:alice", "Policies:     dev", "TTL:          15m0s", "Renewable:    yes", "Uses:         2 of 5", "Bound CIDRs:  10.0.0.0/8",
		"Rate limit:   60/min", "Meta:         client_id=kwsvc-1\n              team=payments\n"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("lookup lacks %q:\n%s", want, r.stdout)
		}
	}
	r = h.must("", "token", "lookup", "-o", "json")
	var ti map[string]any
	if err := json.Unmarshal([]byte(r.stdout), &ti); err != nil || ti["meta"].(map[string]any)["team"] != "payments" {
		t.Errorf("lookup -o json meta: %v %v", ti, err)
	}
	r = h.must("", "token", "lookup", "--accessor", "acc999", "-o", "json")
	ti = nil
	if err := json.Unmarshal([]byte(r.stdout), &ti); err != nil || ti["accessor"] != "acc123" || ti["ttl"] != "15m0s" {
		t.Errorf("lookup -o json: %v %v", ti, err)
	}
	if len(h.fake.requests("GET /v1/auth/token/accessors/acc999")) != 1 {
		t.Error("lookup --accessor did not ask for that accessor")
	}

	r = h.must("", "token", "renew", "--increment", "1h")
	if !strings.Contains(r.stdout, "Renewed token acc123") {
		t.Errorf("renew output %q", r.stdout)
	}
	if m := bodyMap(t, h.fake.requests("POST /v1/auth/token/renew-self")[0].Body); m["increment"] != "1h" {
		t.Errorf("renew body %v", m)
	}
	h.must("", "token", "renew", "--accessor", "acc999")
	if len(h.fake.requests("POST /v1/auth/token/accessors/acc999/renew")) != 1 {
		t.Error("renew --accessor did not renew that accessor")
	}

	if r := h.must("", "token", "revoke"); !strings.Contains(r.stdout, "Revoked 3 tokens") {
		t.Errorf("revoke self: %q", r.stdout)
	}
	if r := h.must("", "token", "revoke", "--accessor", "acc999"); !strings.Contains(r.stdout, "Revoked 1 token\n") {
		t.Errorf("revoke accessor: %q", r.stdout)
	}
	if r := h.must("", "token", "revoke", "--accessor", "acc999", "-o", "json"); strings.TrimSpace(r.stdout) != "{\n  \"revoked\": 1\n}" {
		t.Errorf("revoke -o json: %q", r.stdout)
	}
	if len(h.fake.requests("DELETE /v1/auth/token/accessors/acc999")) != 2 {
		t.Error("revoke --accessor did not DELETE the accessor")
	}
}

func TestTokenServerErrorShown(t *testing.T) {
	h := newHarness(t)
	h.vars["KEYWARD_TOKEN"] = "kwt_parent"
	h.fake.mux.HandleFunc("POST /v1/auth/token/create", func(w http.ResponseWriter, r *http.Request) {
		apiError(w, 403, "permission_denied", `policy "ops" is not among the parent's`)
	})
	r := h.run("", "token", "create", "--policy", "ops")
	if r.code != 1 || !strings.Contains(r.stderr, `policy "ops" is not among the parent's`) || !strings.Contains(r.stderr, "permission_denied") {
		t.Errorf("exit %d, stderr %q", r.code, r.stderr)
	}
}

func TestCheckDuration(t *testing.T) {
	for _, ok := range []string{"", "15m", "1h30m", "3600", "0"} {
		if err := checkDuration("ttl", ok); err != nil {
			t.Errorf("%q refused: %v", ok, err)
		}
	}
	for _, bad := range []string{"soon", "-1h", "1 hour", "+5", "99999999999"} {
		if err := checkDuration("ttl", bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

func TestTokenIntrospect(t *testing.T) {
	h := newHarness(t, "kwt_presented")
	h.vars["KEYWARD_TOKEN"] = "kwt_parent"
	h.fake.handle("POST /v1/oauth/introspect", 200, `{"active":true,"scope":"maps-proxy","token_type":"DPoP","sub":"jwt:corp/alice","exp":4070908800,"client_id":"maps-ios","cnf":{"jkt":"0ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA4I"},"rate":"100/min"}`)
	r := h.must("kwt_presented\n", "token", "introspect")
	for _, want := range []string{"Active:     yes", "Subject:    jwt:corp/alice", "Policies:   maps-proxy", "Type:       DPoP", "Expires:    2099-01-01T00:00:00Z", "Bound key:  0ZcOCORZNYy",
		"Rate limit: 100/min"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("stdout lacks %q:\n%s", want, r.stdout)
		}
	}
	req := h.fake.requests("POST /v1/oauth/introspect")[0]
	if req.Body != "token=kwt_presented" || req.Auth != "Bearer kwt_parent" {
		t.Errorf("request %+v", req)
	}
	if strings.Contains(r.stdout+r.stderr, "kwt_presented") {
		t.Error("the token is echoed")
	}
	if r := h.run("", "token", "introspect"); r.code == 0 {
		t.Error("no token on stdin accepted")
	}
	if r := h.run("", "token", "introspect", "kwt_presented"); r.code != 2 {
		t.Errorf("token as an argument: exit %d, want 2", r.code)
	}
}

// The server's warnings (a policy that does not exist) go to stderr, in
// text and JSON output alike; stdout keeps only the token's description.
func TestTokenCreateWarnings(t *testing.T) {
	h := newHarness(t, "kwt_parent", "kwt_issuedtokenvalue")
	h.vars["KEYWARD_TOKEN"] = "kwt_parent"
	h.fake.handle("POST /v1/auth/token/create", 200, strings.Replace(issuedJSON, `}`, `,"warnings":["policy \"reeders\" does not exist: it grants the token nothing until a policy of that name is created"]}`, 1))
	for _, args := range [][]string{{"token", "create", "--policy", "reeders"}, {"token", "create", "--policy", "reeders", "-o", "json"}} {
		r := h.must("", args...)
		if !strings.Contains(r.stderr, `Warning: policy "reeders" does not exist`) {
			t.Errorf("%v: stderr %q", args, r.stderr)
		}
		asJSON := args[len(args)-1] == "json"
		if strings.Contains(r.stdout, `"warnings"`) != asJSON || !asJSON && strings.Contains(r.stdout, "does not exist") {
			t.Errorf("%v: stdout %q", args, r.stdout) // the JSON keeps the field; text leaves it to stderr
		}
	}
}

// A token holding the root policy is revoked only with --force, by accessor
// or as the current token; nothing is revoked without it.
func TestTokenRevokeRootNeedsForce(t *testing.T) {
	h := newHarness(t)
	h.vars["KEYWARD_TOKEN"] = "kwt_root"
	rootInfo := `{"accessor":"accroot","principal":"root","auth_method":"root","policies":["root"],"created_at":"2030-01-01T00:00:00Z"}`
	h.fake.handle("GET /v1/auth/token/lookup-self", 200, rootInfo)
	h.fake.handle("GET /v1/auth/token/accessors/{acc}", 200, rootInfo)
	h.fake.handle("POST /v1/auth/token/revoke-self", 200, `{"revoked":7}`)
	h.fake.handle("DELETE /v1/auth/token/accessors/{acc}", 200, `{"revoked":7}`)
	for _, args := range [][]string{{"token", "revoke"}, {"token", "revoke", "--accessor", "accroot"}} {
		r := h.run("", args...)
		if r.code != ExitFailure || !strings.Contains(r.stderr, "token accroot holds the root policy") || !strings.Contains(r.stderr, "--force") {
			t.Errorf("%v: exit %d, stderr %q", args, r.code, r.stderr)
		}
	}
	if n := len(h.fake.requests("POST /v1/auth/token/revoke-self")) + len(h.fake.requests("DELETE /v1/auth/token/accessors/accroot")); n != 0 {
		t.Fatalf("%d revocations sent without --force", n)
	}
	if r := h.must("", "token", "revoke", "--force"); !strings.Contains(r.stdout, "Revoked 7 tokens") {
		t.Errorf("--force: %q", r.stdout)
	}
	if n := len(h.fake.requests("GET /v1/auth/token/lookup-self")); n != 1 {
		t.Errorf("--force looked the token up (%d lookups), want none", n-1)
	}
}

// A caller that may revoke a token but not read it still revokes it: the
// root guard needs the lookup, and skips when it is refused.
func TestTokenRevokeWithoutRead(t *testing.T) {
	h := newHarness(t)
	h.vars["KEYWARD_TOKEN"] = "kwt_ops"
	h.fake.handle("GET /v1/auth/token/accessors/{acc}", 403, `{"error":{"code":"permission_denied","message":"permission denied: read on auth/tokens/acc9"}}`)
	h.fake.handle("DELETE /v1/auth/token/accessors/{acc}", 200, `{"revoked":1}`)
	if r := h.must("", "token", "revoke", "--accessor", "acc9"); !strings.Contains(r.stdout, "Revoked 1 token") {
		t.Errorf("revoke: %q", r.stdout)
	}
}
