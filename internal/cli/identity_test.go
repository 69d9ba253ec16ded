package cli

import (
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

const userJSON = `{"name":"alice","policies":["dev","ops"],"token_ttl":"1h0m0s","totp_enrolled":true,"disabled":false,"created_at":"2030-01-01T00:00:00Z","updated_at":"2030-01-02T00:00:00Z"}`

func TestUserCommands(t *testing.T) {
	h := newHarness(t, "correct-horse", "JBSWY3DPEHPK3PXP")
	h.vars["KEYWARD_TOKEN"] = "kwt_admin"
	h.fake.handle("POST /v1/identities/users", 201, userJSON)
	// Three pages; the middle one holds only users the caller may not see.
	h.fake.mux.HandleFunc("GET /v1/identities/users", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		switch r.URL.Query().Get("cursor") {
		case "":
			io.WriteString(w, `{"users":[`+userJSON+`],"next":"alice"}`)
		case "alice":
			io.WriteString(w, `{"users":[],"next":"bob"}`)
		default:
			io.WriteString(w, `{"users":[`+strings.Replace(userJSON, "alice", "carol", 1)+`],"next":""}`)
		}
	})
	h.fake.handle("GET /v1/identities/users/alice", 200, userJSON)
	h.fake.mux.HandleFunc("GET /v1/identities/users/bob", func(w http.ResponseWriter, r *http.Request) {
		apiError(w, 404, "not_found", `user "bob" not found`)
	})
	for _, p := range []string{"POST /v1/identities/users/alice/disable", "POST /v1/identities/users/alice/enable",
		"POST /v1/identities/users/alice/password", "DELETE /v1/identities/users/alice/totp"} {
		h.fake.handle(p, 204, "")
	}
	h.fake.handle("POST /v1/identities/users/alice/totp", 200, `{"secret":"JBSWY3DPEHPK3PXP","url":"otpauth://totp/keyward:alice?issuer=keyward"}`)

	r := h.must("correct-horse\n", "user", "create", "alice", "--policy", "dev", "--policy", "ops", "--token-ttl", "1h")
	if !strings.Contains(r.stdout, "created user alice with policies dev, ops") || strings.Contains(r.stdout+r.stderr, "correct-horse") {
		t.Errorf("create output %q %q", r.stdout, r.stderr)
	}
	m := bodyMap(t, h.fake.requests("POST /v1/identities/users")[0].Body)
	if m["name"] != "alice" || m["password"] != "correct-horse" || m["token_ttl"] != "1h" || len(m["policies"].([]any)) != 2 {
		t.Errorf("create body %v", m)
	}
	if r := h.run("\n", "user", "create", "carol", "--password-stdin"); r.code != 1 || !strings.Contains(r.stderr, "password is empty") {
		t.Errorf("empty password: exit %d %q", r.code, r.stderr)
	}

	r = h.must("", "user", "list")
	lines := strings.Split(strings.TrimSpace(r.stdout), "\n")
	if len(lines) != 3 || !strings.HasPrefix(lines[0], "NAME") || !strings.Contains(lines[1], "alice") || !strings.Contains(lines[1], "dev,ops") ||
		!strings.Contains(lines[2], "carol") {
		t.Errorf("list:\n%s", r.stdout)
	}
	var cursors []string
	for _, req := range h.fake.requests("GET /v1/identities/users") {
		q, _ := url.ParseQuery(req.Query)
		cursors = append(cursors, q.Get("limit")+":"+q.Get("cursor"))
	}
	if strings.Join(cursors, ",") != "1000:,1000:alice,1000:bob" {
		t.Errorf("list pages asked for (limit:cursor): %v", cursors)
	}
	r = h.must("", "user", "list", "-o", "json")
	var us []map[string]any
	if err := json.Unmarshal([]byte(r.stdout), &us); err != nil || len(us) != 2 || us[0]["token_ttl"] != "1h0m0s" || us[1]["name"] != "carol" {
		t.Errorf("list -o json: %v %v", us, err)
	}
	r = h.must("", "user", "get", "alice")
	for _, want := range []string{"Policies:       dev, ops", "Token TTL:      1h0m0s", "Token max TTL:  default", "TOTP:           yes"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("get lacks %q:\n%s", want, r.stdout)
		}
	}
	if r := h.run("", "user", "get", "bob"); r.code != 1 || !strings.Contains(r.stderr, `user "bob" not found`) {
		t.Errorf("missing user: exit %d %q", r.code, r.stderr)
	}
	if r := h.must("", "user", "disable", "alice"); r.stdout != "disabled user alice\n" {
		t.Errorf("disable: %q", r.stdout)
	}
	if r := h.must("", "user", "enable", "alice", "-o", "json"); !strings.Contains(r.stdout, `"result": "enabled"`) {
		t.Errorf("enable -o json: %q", r.stdout)
	}
	h.must("new-password-1\n", "user", "passwd", "alice")
	if m := bodyMap(t, h.fake.requests("POST /v1/identities/users/alice/password")[0].Body); m["password"] != "new-password-1" {
		t.Errorf("passwd body %v", m)
	}
	r = h.must("", "user", "totp", "enroll", "alice")
	if !strings.Contains(r.stdout, "TOTP secret:  JBSWY3DPEHPK3PXP") || !strings.Contains(r.stdout, "otpauth URL:  otpauth://totp/keyward:alice") || !strings.Contains(r.stderr, "shown once") {
		t.Errorf("enroll: %q %q", r.stdout, r.stderr)
	}
	h.must("", "user", "totp", "remove", "alice")
	if len(h.fake.requests("DELETE /v1/identities/users/alice/totp")) != 1 {
		t.Error("totp remove did not DELETE")
	}
}

const serviceJSON = `{"name":"ci","client_id":"kwsvc-0123456789abcdef","policies":["ci"],"token_ttl":"15m0s","bound_cidrs":["10.20.0.0/16"],"disabled":false,"created_at":"2030-01-01T00:00:00Z","secret_rotated_at":"2030-01-01T00:00:00Z"}`

func TestServiceCommands(t *testing.T) {
	h := newHarness(t)
	h.vars["KEYWARD_TOKEN"] = "kwt_admin"
	h.fake.handle("POST /v1/identities/services", 201, `{"service":`+serviceJSON+`,"client_id":"kwsvc-0123456789abcdef","client_secret":"kws_firstsecret"}`)
	h.fake.handle("GET /v1/identities/services", 200, `{"services":[`+serviceJSON+`]}`)
	h.fake.handle("GET /v1/identities/services/ci", 200, serviceJSON)
	h.fake.handle("POST /v1/identities/services/ci/disable", 204, "")
	h.fake.handle("POST /v1/identities/services/ci/enable", 204, "")
	h.fake.handle("POST /v1/identities/services/ci/rotate-secret", 200, `{"client_id":"kwsvc-0123456789abcdef","client_secret":"kws_secondsecret","previous_valid_until":"2030-01-01T01:00:00Z"}`)

	r := h.must("", "service", "create", "ci", "--policy", "ci", "--bound-cidr", "10.20.0.0/16", "--token-ttl", "15m")
	if !strings.Contains(r.stdout, "Client ID:      kwsvc-0123456789abcdef") || !strings.Contains(r.stdout, "Client secret:  kws_firstsecret") {
		t.Errorf("create stdout %q", r.stdout)
	}
	if !strings.Contains(r.stderr, "Store the client secret now") {
		t.Errorf("create warning missing: %q", r.stderr)
	}
	m := bodyMap(t, h.fake.requests("POST /v1/identities/services")[0].Body)
	if m["name"] != "ci" || m["bound_cidrs"].([]any)[0] != "10.20.0.0/16" || m["token_ttl"] != "15m" {
		t.Errorf("create body %v", m)
	}
	r = h.must("", "service", "create", "ci", "-o", "json")
	var sc map[string]any
	if err := json.Unmarshal([]byte(r.stdout), &sc); err != nil || sc["client_secret"] != "kws_firstsecret" {
		t.Errorf("create -o json: %v %v", sc, err)
	}
	if r := h.must("", "service", "list"); !strings.Contains(r.stdout, "kwsvc-0123456789abcdef") {
		t.Errorf("list: %q", r.stdout)
	}
	r = h.must("", "service", "list", "-o", "json")
	var ss []map[string]any
	if err := json.Unmarshal([]byte(r.stdout), &ss); err != nil || len(ss) != 1 || ss[0]["name"] != "ci" {
		t.Errorf("list -o json: %v %v", ss, err)
	}
	r = h.must("", "service", "get", "ci")
	if !strings.Contains(r.stdout, "Bound CIDRs:      10.20.0.0/16") || strings.Contains(r.stdout, "kws_") {
		t.Errorf("get: %q", r.stdout)
	}
	h.must("", "service", "disable", "ci")
	h.must("", "service", "enable", "ci")
	r = h.must("", "service", "rotate-secret", "ci", "--grace", "1h")
	if !strings.Contains(r.stdout, "kws_secondsecret") || !strings.Contains(r.stdout, "works until 2030-01-01T01:00:00Z") {
		t.Errorf("rotate: %q", r.stdout)
	}
	if m := bodyMap(t, h.fake.requests("POST /v1/identities/services/ci/rotate-secret")[0].Body); m["grace"] != "1h" {
		t.Errorf("rotate body %v", m)
	}
	if r := h.run("", "service", "rotate-secret", "ci", "--grace", "later"); r.code != ExitUsage {
		t.Errorf("bad grace: exit %d", r.code)
	}
}

func TestIssuerCommands(t *testing.T) {
	h := newHarness(t)
	h.vars["KEYWARD_TOKEN"] = "kwt_admin"
	iss := `{"name":"github","issuer_url":"https://token.actions.githubusercontent.com","audiences":["keyward"],"jwks_url":"https://token.actions.githubusercontent.com/.well-known/jwks","bound_claims":{"repository":["acme/*"]},"policy_map":[{"claim":"ref","value":"refs/heads/main","policies":["deploy"]}],"token_ttl":"10m0s"}`
	h.fake.handle("PUT /v1/auth/jwt/issuers/github", 200, iss)
	h.fake.handle("GET /v1/auth/jwt/issuers", 200, `{"issuers":[`+iss+`]}`)
	h.fake.handle("GET /v1/auth/jwt/issuers/github", 200, iss)
	h.fake.handle("DELETE /v1/auth/jwt/issuers/github", 204, "")

	dir := t.TempDir()
	yamlFile := filepath.Join(dir, "github.yaml")
	os.WriteFile(yamlFile, []byte(`# GitHub Actions
issuer_url: https://token.actions.githubusercontent.com
audiences: [keyward]
jwks_url: https://token.actions.githubusercontent.com/.well-known/jwks
bound_claims:
  repository: ["acme/*"]
policy_map:
  - {claim: ref, value: refs/heads/main, policies: [deploy]}
token_ttl: 600
`), 0o600)
	r := h.must("", "issuer", "put", "github", "-f", yamlFile)
	if !strings.Contains(r.stdout, "saved issuer github") {
		t.Errorf("put: %q", r.stdout)
	}
	req := h.fake.requests("PUT /v1/auth/jwt/issuers/github")[0]
	var sent map[string]any
	if err := json.Unmarshal([]byte(req.Body), &sent); err != nil || req.ContentType != "application/json" {
		t.Fatalf("put sent %s %q: %v", req.ContentType, req.Body, err)
	}
	if sent["issuer_url"] != "https://token.actions.githubusercontent.com" || sent["token_ttl"] != "600" ||
		sent["bound_claims"].(map[string]any)["repository"].([]any)[0] != "acme/*" ||
		sent["policy_map"].([]any)[0].(map[string]any)["policies"].([]any)[0] != "deploy" {
		t.Errorf("put body %v", sent)
	}
	jsonFile := filepath.Join(dir, "github.json")
	os.WriteFile(jsonFile, []byte(`{"name":"github","issuer_url":"https://x","audiences":["a"]}`), 0o600)
	h.must("", "issuer", "put", "github", "-f", jsonFile)
	if r := h.run("", "issuer", "put", "gitlab", "-f", jsonFile); r.code != 1 || !strings.Contains(r.stderr, "differs") {
		t.Errorf("name mismatch: exit %d %q", r.code, r.stderr)
	}
	if r := h.run("", "issuer", "put", "github"); r.code != ExitUsage {
		t.Errorf("no -f: exit %d", r.code)
	}
	h.must(`{"issuer_url":"https://x","audiences":["a"]}`, "issuer", "put", "github", "-f", "-")
	if n := len(h.fake.requests("PUT /v1/auth/jwt/issuers/github")); n != 3 {
		t.Errorf("%d PUTs, want 3", n)
	}

	if r := h.must("", "issuer", "list"); !strings.Contains(r.stdout, "github") || !strings.Contains(r.stdout, "https://token.actions.githubusercontent.com") {
		t.Errorf("list: %q", r.stdout)
	}
	r = h.must("", "issuer", "get", "github")
	for _, want := range []string{"Bound claim:    repository in acme/*", "Policy map:     ref=refs/heads/main -> deploy", "Token TTL:      10m0s"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("get lacks %q:\n%s", want, r.stdout)
		}
	}
	h.must("", "issuer", "delete", "github")
}

func TestIssuerDocument(t *testing.T) {
	cases := []struct {
		in, want string
		ok       bool
	}{
		{`{"issuer_url":"https://x"}`, `{"issuer_url":"https://x"}`, true},
		{"issuer_url: https://x\naudiences: [a, b]\n", `{"audiences":["a","b"],"issuer_url":"https://x"}`, true},
		{"name: gh\ntoken_ttl: 15m\ntoken_max_ttl: 3600\n", `{"name":"gh","token_max_ttl":"3600","token_ttl":"15m"}`, true},
		{"jwks:\n  keys:\n    - {kty: OKP, crv: Ed25519, x: abc}\n", `{"jwks":{"keys":[{"crv":"Ed25519","kty":"OKP","x":"abc"}]}}`, true},
		{"bound_claims:\n  1: [x]\n", `{"bound_claims":{"1":["x"]}}`, true},
		{"name: other\n", "", false},
		{"- a\n- b\n", "", false},
		{"", "", false},
		{"a: 1\n---\nb: 2\n", "", false},
		{"a: .nan\n", "", false},
		{"a: [\n", "", false},
	}
	for _, c := range cases {
		got, err := issuerDocument([]byte(c.in), "gh")
		if (err == nil) != c.ok || (c.ok && string(got) != c.want) {
			t.Errorf("issuerDocument(%q) = %s, %v; want %s ok=%v", c.in, got, err, c.want, c.ok)
		}
	}
}

func FuzzIssuerDocument(f *testing.F) {
	for _, s := range []string{`{"issuer_url":"https://x"}`, "issuer_url: x\naudiences: [a]\n", "a: {b: [1, 2.5, true, null]}\n",
		"? [a]\n: b\n", "a: &x [1]\nb: *x\n", "a: 2001-12-14t21:59:43.10-05:00\n", "x: !!binary aGk=\n"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		out, err := issuerDocument([]byte(s), "n")
		if err != nil {
			return
		}
		var m map[string]any
		if err := json.Unmarshal(out, &m); err != nil {
			t.Fatalf("issuerDocument(%q) = %s: not a JSON object: %v", s, out, err)
		}
		if n, ok := m["name"]; ok && n != "n" {
			t.Fatalf("a mismatched name passed: %v", n)
		}
	})
}

// A server that hands back the cursor it was given would page forever: the
// list fails instead, naming the cursor.
func TestListFailsOnARepeatedCursor(t *testing.T) {
	h := newHarness(t)
	h.vars["KEYWARD_TOKEN"] = "kwt_admin"
	h.fake.handle("GET /v1/identities/services", 200, `{"services":[`+serviceJSON+`],"next":"ci"}`)
	r := h.run("", "service", "list")
	if r.code != 1 || !strings.Contains(r.stderr, `cursor "ci"`) || r.stdout != "" {
		t.Errorf("exit %d, stdout %q, stderr %q", r.code, r.stdout, r.stderr)
	}
	if n := len(h.fake.requests("GET /v1/identities/services")); n != 2 {
		t.Errorf("%d requests, want 2", n)
	}
}

// user create and service create print the server's warnings (a policy
// that does not exist) on stderr.
func TestIdentityCreateWarnings(t *testing.T) {
	h := newHarness(t, "correct-horse", "kws_firstsecret")
	h.vars["KEYWARD_TOKEN"] = "kwt_admin"
	warn := `"warnings":["policy \"opps\" does not exist: it grants the user nothing until a policy of that name is created"]`
	h.fake.handle("POST /v1/identities/users", 201, strings.Replace(userJSON, `{`, `{`+warn+`,`, 1))
	h.fake.handle("POST /v1/identities/services", 201, `{"service":`+serviceJSON+`,"client_id":"kwsvc-0123456789abcdef","client_secret":"kws_firstsecret",`+
		strings.Replace(warn, "the user", "the service account", 1)+`}`)
	r := h.must("correct-horse\n", "user", "create", "alice", "--policy", "opps", "--password-stdin")
	if !strings.Contains(r.stderr, `Warning: policy "opps" does not exist: it grants the user nothing`) || strings.Contains(r.stdout, "Warning") {
		t.Errorf("user create: stdout %q, stderr %q", r.stdout, r.stderr)
	}
	r = h.must("", "service", "create", "ci", "--policy", "opps", "-o", "json")
	if !strings.Contains(r.stderr, `Warning: policy "opps" does not exist: it grants the service account nothing`) {
		t.Errorf("service create: stderr %q", r.stderr)
	}
}
