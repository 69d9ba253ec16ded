package server

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"

	"github.com/keyward/keyward/client"
	"github.com/keyward/keyward/internal/dpop"
)

// oidcIssuer is a local OpenID provider: it publishes its key set at
// /jwks and signs ID tokens with ES256, as a company IdP would.
type oidcIssuer struct {
	srv *httptest.Server
	key *ecdsa.PrivateKey
}

func newOIDCIssuer(t *testing.T) *oidcIssuer {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	set := jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: &key.PublicKey, KeyID: "idp-1", Algorithm: "ES256", Use: "sig"}}}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/jwks" {
			http.NotFound(w, r)
			return
		}
		json.NewEncoder(w).Encode(set)
	}))
	t.Cleanup(srv.Close)
	return &oidcIssuer{srv: srv, key: key}
}

// idToken signs an ID token for sub, valid for ttl.
func (o *oidcIssuer) idToken(t *testing.T, sub string, ttl time.Duration, extra map[string]any) string {
	t.Helper()
	s, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.ES256, Key: jose.JSONWebKey{Key: o.key, KeyID: "idp-1"}}, (&jose.SignerOptions{}).WithType("JWT"))
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	c := map[string]any{"iss": o.srv.URL, "aud": "maps-app", "sub": sub, "email_verified": true, "groups": []string{"field-staff"},
		"iat": now.Unix(), "exp": now.Add(ttl).Unix()}
	for k, v := range extra {
		c[k] = v
	}
	tok, err := jwt.Signed(s).Claims(c).Serialize()
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

const mapsPolicy = `name: maps-proxy
rules:
  - resources: ["integrations/maps"]
    allow: [proxy]
`

// setUpMobile configures the node the way docs/mobile.md tells an operator
// to: a policy allowing proxy on integrations/maps, and the company IdP as a
// trusted issuer mapping the field-staff group to it.
func setUpMobile(t *testing.T, u, root string, idp *oidcIssuer) {
	t.Helper()
	putPolicy(t, u, root, mapsPolicy)
	issuer := map[string]any{
		"issuer_url": idp.srv.URL, "audiences": []string{"maps-app"}, "jwks_url": idp.srv.URL + "/jwks",
		"algorithms": []string{"ES256"}, "bound_claims": map[string][]string{"email_verified": {"true"}},
		"policy_map": []map[string]any{{"claim": "groups", "value": "field-staff", "policies": []string{"maps-proxy"}}},
	}
	if c := call(t, "PUT", u+"/v1/auth/jwt/issuers/corp", root, issuer, nil); c != 200 {
		t.Fatalf("put issuer = %d", c)
	}
}

type oauthResp struct {
	status int
	header http.Header
	body   map[string]any
}

// post sends an OAuth form request, with a DPoP proof and an Authorization
// header when given.
func post(t *testing.T, endpoint string, form url.Values, authz, proof string) oauthResp {
	t.Helper()
	req, _ := http.NewRequest("POST", endpoint, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if authz != "" {
		req.Header.Set("Authorization", authz)
	}
	if proof != "" {
		req.Header.Set("DPoP", proof)
	}
	return send(t, req)
}

func send(t *testing.T, req *http.Request) oauthResp {
	t.Helper()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	out := map[string]any{}
	json.Unmarshal(data, &out)
	return oauthResp{resp.StatusCode, resp.Header, out}
}

// withProof sends method url with "Authorization: DPoP tok" and proof.
func withProof(t *testing.T, method, u, scheme, tok, proof string) oauthResp {
	t.Helper()
	req, _ := http.NewRequest(method, u, nil)
	req.Header.Set("Authorization", scheme+" "+tok)
	if proof != "" {
		req.Header.Set("DPoP", proof)
	}
	return send(t, req)
}

func exchangeForm(idToken string) url.Values {
	return url.Values{"grant_type": {"urn:ietf:params:oauth:grant-type:token-exchange"}, "subject_token": {idToken},
		"subject_token_type": {"urn:ietf:params:oauth:token-type:id_token"}, "client_id": {"maps-android"}}
}

// TestMobileAppFlow is the flow of docs/mobile.md end to end: a local OIDC
// issuer signs an ID token, the app exchanges it with a DPoP proof, then
// calls keyward with the DPoP-bound token and a fresh proof per request.
func TestMobileAppFlow(t *testing.T) {
	r, root := devNode(t)
	u := r.url
	idp := newOIDCIssuer(t)
	setUpMobile(t, u, root, idp)

	device, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader) // the phone's Secure Enclave key
	thief, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	jkt, _ := dpop.Thumbprint(jose.JSONWebKey{Key: &device.PublicKey})
	proof := func(k *ecdsa.PrivateKey, method, target, tok string, at time.Time) string {
		t.Helper()
		p, err := dpop.NewProof(k, method, target, tok, at)
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	tokenURL := u + "/v1/oauth/token"

	// The exchange.
	got := post(t, tokenURL, exchangeForm(idp.idToken(t, "alice", 10*time.Minute, nil)), "", proof(device, "POST", tokenURL, "", time.Now()))
	if got.status != 200 {
		t.Fatalf("exchange = %d %v", got.status, got.body)
	}
	at, _ := got.body["access_token"].(string)
	exp, _ := got.body["expires_in"].(float64)
	if !strings.HasPrefix(at, "kwt_") || got.body["token_type"] != "DPoP" || got.body["issued_token_type"] != "urn:ietf:params:oauth:token-type:access_token" ||
		exp <= 0 || exp > 900 || got.body["scope"] != "maps-proxy" || got.header.Get("Cache-Control") != "no-store" {
		t.Fatalf("exchange response %v %v", got.body, got.header)
	}

	self := u + "/v1/auth/token/lookup-self"
	// A call with a fresh proof succeeds; the token says what it is bound to.
	good := proof(device, "GET", self, at, time.Now())
	res := withProof(t, "GET", self, "DPoP", at, good)
	cnf, _ := res.body["cnf"].(map[string]any)
	if res.status != 200 || res.body["principal"] != "jwt:corp/alice" || cnf["jkt"] != jkt || res.body["auth_method"] != "token-exchange" {
		t.Fatalf("lookup-self with a proof = %d %v", res.status, res.body)
	}
	// Every failure is a 401 naming DPoP in WWW-Authenticate.
	for name, tc := range map[string]struct{ scheme, proof string }{
		"the token alone (Bearer)":   {"Bearer", ""},
		"the DPoP scheme, no proof":  {"DPoP", ""},
		"a replayed proof":           {"DPoP", good},
		"a proof for another URL":    {"DPoP", proof(device, "GET", u+"/v1/auth/token/renew-self", at, time.Now())},
		"a proof for another method": {"DPoP", proof(device, "POST", self, at, time.Now())},
		"a proof by another key":     {"DPoP", proof(thief, "GET", self, at, time.Now())},
		"a proof from 5 minutes ago": {"DPoP", proof(device, "GET", self, at, time.Now().Add(-5*time.Minute))},
		"a proof 5 minutes ahead":    {"DPoP", proof(device, "GET", self, at, time.Now().Add(5*time.Minute))},
		"a proof for another token":  {"DPoP", proof(device, "GET", self, root, time.Now())},
		"the Bearer scheme, a proof": {"Bearer", proof(device, "GET", self, at, time.Now())},
		"a proof for a similar URL":  {"DPoP", proof(device, "GET", self+"x", at, time.Now())},
	} {
		res := withProof(t, "GET", self, tc.scheme, at, tc.proof)
		if res.status != 401 || !strings.HasPrefix(res.header.Get("WWW-Authenticate"), "DPoP error=") {
			t.Errorf("%s: %d %q %v, want 401 with a DPoP challenge", name, res.status, res.header.Get("WWW-Authenticate"), res.body)
		}
	}
	// A child token of the bound token is bound too.
	createURL := u + "/v1/auth/token/create"
	req, _ := http.NewRequest("POST", createURL, strings.NewReader(`{"ttl":"1m"}`))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "DPoP "+at)
	req.Header.Set("DPoP", proof(device, "POST", createURL, at, time.Now()))
	child := send(t, req)
	childTok, _ := child.body["token"].(string)
	if child.status != 200 || childTok == "" {
		t.Fatalf("child = %d %v", child.status, child.body)
	}
	if res := withProof(t, "GET", self, "Bearer", childTok, ""); res.status != 401 {
		t.Fatalf("the child without a proof = %d", res.status)
	}
	if res := withProof(t, "GET", self, "DPoP", childTok, proof(device, "GET", self, childTok, time.Now())); res.status != 200 {
		t.Fatalf("the child with a proof = %d %v", res.status, res.body)
	}

	// Introspection (RFC 7662) for a resource server allowed read on sys/introspect.
	introspect := func(tok string) map[string]any {
		t.Helper()
		res := post(t, u+"/v1/oauth/introspect", url.Values{"token": {tok}}, "Bearer "+root, "")
		if res.status != 200 {
			t.Fatalf("introspect = %d %v", res.status, res.body)
		}
		return res.body
	}
	in := introspect(at)
	inCnf, _ := in["cnf"].(map[string]any)
	if in["active"] != true || in["token_type"] != "DPoP" || inCnf["jkt"] != jkt || in["sub"] != "jwt:corp/alice" ||
		in["scope"] != "maps-proxy" || in["client_id"] != "maps-android" || in["exp"].(float64)-in["iat"].(float64) > 900 {
		t.Fatalf("introspect = %v", in)
	}
	if in := introspect("kwt_not-a-token"); len(in) != 1 || in["active"] != false {
		t.Fatalf("introspect garbage = %v", in)
	}

	// Revocation (RFC 7009): the token is its own credential.
	if res := post(t, u+"/v1/oauth/revoke", url.Values{"token": {at}}, "", ""); res.status != 200 {
		t.Fatalf("revoke = %d %v", res.status, res.body)
	}
	if res := withProof(t, "GET", self, "DPoP", at, proof(device, "GET", self, at, time.Now())); res.status != 401 {
		t.Fatalf("after revocation = %d", res.status)
	}
	if res := withProof(t, "GET", self, "DPoP", childTok, proof(device, "GET", self, childTok, time.Now())); res.status != 401 {
		t.Fatalf("the child after its parent's revocation = %d", res.status)
	}
	if in := introspect(at); len(in) != 1 || in["active"] != false {
		t.Fatalf("introspect after revocation = %v", in)
	}
	// Revoking again, or a token nobody issued: 200 all the same.
	for _, tok := range []string{at, "kwt_nonsense", "x"} {
		if res := post(t, u+"/v1/oauth/revoke", url.Values{"token": {tok}}, "", ""); res.status != 200 {
			t.Fatalf("revoke %q = %d", tok, res.status)
		}
	}
	// Each revocation is audited once, with what it found.
	results := map[string]int{}
	for _, e := range newestAudit(t, u, root, 50) {
		if r := e.Detail["result"]; r != "" && (e.Resource == "auth/oauth/revoke" || strings.HasPrefix(e.Resource, "auth/tokens/")) {
			results[r]++
		}
	}
	if results["revoked"] != 1 || results["already revoked"] != 1 || results["unknown token"] != 2 {
		t.Errorf("revocations audited as %v, want one revoked, one already revoked, two unknown", results)
	}

	// Without a proof the exchange issues a Bearer token.
	got = post(t, tokenURL, exchangeForm(idp.idToken(t, "bob", 2*time.Minute, nil)), "", "")
	bearer, _ := got.body["access_token"].(string)
	if got.status != 200 || got.body["token_type"] != "Bearer" || got.body["expires_in"].(float64) > 120 {
		t.Fatalf("exchange without DPoP = %d %v (the token must not outlive the 2-minute ID token)", got.status, got.body)
	}
	if res := withProof(t, "GET", self, "Bearer", bearer, ""); res.status != 200 || res.body["cnf"] != nil {
		t.Fatalf("bearer token = %d %v", res.status, res.body)
	}
	if res := withProof(t, "GET", self, "DPoP", bearer, proof(device, "GET", self, bearer, time.Now())); res.status != 401 {
		t.Fatalf("an unbound token under the DPoP scheme = %d", res.status)
	}

	// The audit log has the exchange, with the principal and the binding,
	// and no token.
	var list struct {
		Entries []map[string]any `json:"entries"`
	}
	call(t, "GET", u+"/v1/audit?limit=1000", root, nil, &list)
	found := false
	for _, e := range list.Entries {
		d, _ := e["detail"].(map[string]any)
		if e["principal"] == "jwt:corp/alice" && e["outcome"] == "allowed" && d["grant"] == "token-exchange" && d["dpop"] == "bound" {
			found = true
		}
	}
	blob, _ := json.Marshal(list)
	if !found || strings.Contains(string(blob), at) || strings.Contains(string(blob), good) {
		t.Fatalf("audit: exchange found %v; or the log holds a token or a proof", found)
	}
}

func TestTokenExchangeRefusals(t *testing.T) {
	r, root := devNode(t)
	u := r.url
	idp := newOIDCIssuer(t)
	setUpMobile(t, u, root, idp)
	tokenURL := u + "/v1/oauth/token"
	good := idp.idToken(t, "alice", 10*time.Minute, nil)
	device, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)

	form := func(edit func(url.Values)) url.Values {
		f := exchangeForm(good)
		edit(f)
		return f
	}
	for name, tc := range map[string]struct {
		form  url.Values
		proof string
		code  int
		err   string
	}{
		"wrong grant":        {form(func(f url.Values) { f.Set("grant_type", "password") }), "", 400, "unsupported_grant_type"},
		"no subject token":   {form(func(f url.Values) { f.Del("subject_token") }), "", 400, "invalid_request"},
		"access token type":  {form(func(f url.Values) { f.Set("subject_token_type", "urn:ietf:params:oauth:token-type:access_token") }), "", 400, "invalid_request"},
		"refresh requested":  {form(func(f url.Values) { f.Set("requested_token_type", "urn:ietf:params:oauth:token-type:refresh_token") }), "", 400, "invalid_request"},
		"actor token":        {form(func(f url.Values) { f.Set("actor_token", good) }), "", 400, "invalid_request"},
		"a scope not mapped": {form(func(f url.Values) { f.Set("scope", "maps-proxy root") }), "", 400, "invalid_scope"},
		"unverified email": {form(func(f url.Values) {
			f.Set("subject_token", idp.idToken(t, "eve", 10*time.Minute, map[string]any{"email_verified": false}))
		}), "", 400, "invalid_grant"},
		"no policy": {form(func(f url.Values) {
			f.Set("subject_token", idp.idToken(t, "carol", 10*time.Minute, map[string]any{"groups": []string{"office"}}))
		}), "", 400, "invalid_grant"},
		"proof for another URL": {exchangeForm(good), mustProof(t, device, "POST", u+"/v1/oauth/revoke", ""), 400, "invalid_dpop_proof"},
		"proof with GET":        {exchangeForm(good), mustProof(t, device, "GET", tokenURL, ""), 400, "invalid_dpop_proof"},
		"junk proof":            {exchangeForm(good), "not.a.proof", 400, "invalid_dpop_proof"},
	} {
		res := post(t, tokenURL, tc.form, "", tc.proof)
		if res.status != tc.code || res.body["error"] != tc.err || res.body["error_description"] == "" {
			t.Errorf("%s: %d %v, want %d %s", name, res.status, res.body, tc.code, tc.err)
		}
		if strings.Contains(res.body["error_description"].(string), good[:30]) {
			t.Errorf("%s: the description quotes the ID token", name)
		}
	}
	// Not a form; or the token in the URL.
	req, _ := http.NewRequest("POST", tokenURL, strings.NewReader(`{"grant_type":"x"}`))
	req.Header.Set("Content-Type", "application/json")
	if res := send(t, req); res.status != 400 || res.body["error"] != "invalid_request" {
		t.Errorf("JSON body: %d %v", res.status, res.body)
	}
	if res := post(t, tokenURL+"?subject_token="+good, exchangeForm(good), "", ""); res.status != 400 || res.body["error"] != "invalid_request" {
		t.Errorf("token in the URL: %d %v", res.status, res.body)
	}
	// A scope narrows to mapped policies.
	if res := post(t, tokenURL, form(func(f url.Values) { f.Set("scope", "maps-proxy") }), "", ""); res.status != 200 || res.body["scope"] != "maps-proxy" {
		t.Errorf("scope: %d %v", res.status, res.body)
	}
	// Failed exchanges are audited as denied.
	var list struct {
		Entries []map[string]any `json:"entries"`
	}
	call(t, "GET", u+"/v1/audit?outcome=denied&limit=1000", root, nil, &list)
	n := 0
	for _, e := range list.Entries {
		if d, _ := e["detail"].(map[string]any); d["grant"] == "token-exchange" {
			n++
		}
	}
	if n < 5 {
		t.Errorf("%d denied exchanges audited, want at least 5", n)
	}
}

// mustProof signs a DPoP proof with k for method and target, accompanying
// tok ("" for a token request).
func mustProof(t *testing.T, k *ecdsa.PrivateKey, method, target, tok string) string {
	t.Helper()
	p, err := dpop.NewProof(k, method, target, tok, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func TestTokenExchangeIsThrottled(t *testing.T) {
	r, root := devNode(t)
	idp := newOIDCIssuer(t)
	setUpMobile(t, r.url, root, idp)
	other := newOIDCIssuer(t) // a key the node does not trust, same claims
	forged := other.idToken(t, "mallory", 10*time.Minute, map[string]any{"iss": idp.srv.URL})
	var last oauthResp
	for range 8 {
		last = post(t, r.url+"/v1/oauth/token", exchangeForm(forged), "", "")
	}
	if last.status != 429 || last.header.Get("Retry-After") == "" || last.body["error"] != "temporarily_unavailable" {
		t.Fatalf("after 8 forged ID tokens = %d %v %v", last.status, last.header, last.body)
	}
	// Locked out: even a good ID token waits.
	if res := post(t, r.url+"/v1/oauth/token", exchangeForm(idp.idToken(t, "alice", 10*time.Minute, nil)), "", ""); res.status != 429 {
		t.Fatalf("good ID token while locked out = %d", res.status)
	}
}

// TestGoClientDPoP runs the public client's own prover against a node: its
// proofs name URLs the way the server rebuilds them.
func TestGoClientDPoP(t *testing.T) {
	r, root := devNode(t)
	idp := newOIDCIssuer(t)
	setUpMobile(t, r.url, root, idp)
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	prove, err := client.NewES256Prover(key)
	if err != nil {
		t.Fatal(err)
	}
	app, err := client.New(client.Config{Address: r.url, Token: "", DPoP: prove})
	if err != nil {
		t.Fatal(err)
	}
	ctx := t.Context()
	res, err := app.Exchange(ctx, client.ExchangeRequest{IDToken: idp.idToken(t, "dave", 10*time.Minute, nil), ClientID: "maps-cli"})
	if err != nil || res.TokenType != "DPoP" {
		t.Fatalf("exchange = %+v, %v", res, err)
	}
	bound := app.WithToken(res.AccessToken)
	info, err := bound.LookupSelf(ctx)
	if err != nil || info.Cnf == nil || info.Principal != "jwt:corp/dave" {
		t.Fatalf("lookup-self = %+v, %v", info, err)
	}
	// The same token through a client without the key is refused.
	plain, _ := client.New(client.Config{Address: r.url, Token: res.AccessToken})
	if _, err := plain.LookupSelf(ctx); !client.IsCode(err, client.CodeUnauthenticated) {
		t.Fatalf("without the key: %v", err)
	}
	admin, _ := client.New(client.Config{Address: r.url, Token: root})
	if in, err := admin.Introspect(ctx, res.AccessToken); err != nil || !in.Active || in.Cnf == nil || in.ClientID != "maps-cli" {
		t.Fatalf("introspect = %+v, %v", in, err)
	}
	if err := app.Revoke(ctx, res.AccessToken); err != nil {
		t.Fatal(err)
	}
	if _, err := bound.LookupSelf(ctx); !client.IsCode(err, client.CodeUnauthenticated) {
		t.Fatalf("after revoke: %v", err)
	}
	if in, err := admin.Introspect(ctx, res.AccessToken); err != nil || in.Active {
		t.Fatalf("introspect after revoke = %+v, %v", in, err)
	}
}
