package server

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"strings"
	"testing"
	"time"

	"github.com/keyward/keyward/client"
	"github.com/keyward/keyward/internal/dpop"
)

// With --dpop-nonce, the token endpoint and the gateway refuse a proof
// without the server's nonce, hand the nonce out in DPoP-Nonce, and accept
// the retry that carries it (RFC 9449 §8).
func TestDPoPNonceRequired(t *testing.T) {
	cfg := testConfig(t.TempDir())
	cfg.Dev, cfg.DPoPNonce = true, true
	r := start(t, cfg, nil)
	root, u := r.node.DevRootToken(), r.url
	up := newUpstream(t)
	call(t, "POST", u+"/v1/projects", root, map[string]string{"name": "maps"}, nil)
	call(t, "PUT", u+"/v1/projects/maps/envs/prod/secrets/k", root, map[string]string{"value": "nonce-upstream-key-9d"}, nil)
	if c := call(t, "POST", u+"/v1/integrations", root, map[string]any{"name": "maps", "upstream": up.srv.URL, "secret": "maps/prod/k",
		"inject": "header:Authorization=Bearer {{secret}}", "allow_private": true}, nil); c != 201 {
		t.Fatalf("create integration = %d", c)
	}
	idp := newOIDCIssuer(t)
	setUpMobile(t, u, root, idp)
	device, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	proof := func(method, target, tok, nonce string) string {
		t.Helper()
		p, err := dpop.NewProofWithNonce(device, method, target, tok, nonce, time.Now())
		if err != nil {
			t.Fatal(err)
		}
		return p
	}

	// The exchange: refused without a nonce, with the nonce to use.
	tokenURL := u + "/v1/oauth/token"
	form := exchangeForm(idp.idToken(t, "alice", 10*time.Minute, nil))
	ex := post(t, tokenURL, form, "", proof("POST", tokenURL, "", ""))
	nonce := ex.header.Get("DPoP-Nonce")
	if ex.status != 400 || ex.body["error"] != "use_dpop_nonce" || nonce == "" {
		t.Fatalf("exchange without a nonce = %d %v (DPoP-Nonce %q)", ex.status, ex.body, nonce)
	}
	ex = post(t, tokenURL, form, "", proof("POST", tokenURL, "", nonce))
	at, _ := ex.body["access_token"].(string)
	if ex.status != 200 || at == "" {
		t.Fatalf("exchange with the nonce = %d %v", ex.status, ex.body)
	}

	// The gateway: the same.
	target := u + "/v1/gateway/maps/v1/geocode"
	res := withProof(t, "GET", target, "DPoP", at, proof("GET", target, at, ""))
	if res.status != 401 || !strings.Contains(res.header.Get("WWW-Authenticate"), `error="use_dpop_nonce"`) || res.header.Get("DPoP-Nonce") == "" {
		t.Fatalf("gateway call without a nonce = %d %v", res.status, res.header)
	}
	res = withProof(t, "GET", target, "DPoP", at, proof("GET", target, at, res.header.Get("DPoP-Nonce")))
	if res.status != 200 || res.header.Get("DPoP-Nonce") == "" {
		t.Fatalf("gateway call with the nonce = %d %v", res.status, res.header)
	}
	// A made-up nonce is refused like a missing one.
	res = withProof(t, "GET", target, "DPoP", at, proof("GET", target, at, "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"))
	if res.status != 401 || !strings.Contains(res.header.Get("WWW-Authenticate"), "use_dpop_nonce") {
		t.Fatalf("gateway call with a made-up nonce = %d %v", res.status, res.header)
	}
	if n := len(up.seen()); n != 1 {
		t.Fatalf("the upstream saw %d calls, want 1", n)
	}
}

// The public Go client follows a server that requires DPoP nonces: the
// refusal's nonce is remembered and the request sent once more.
func TestGoClientDPoPNonce(t *testing.T) {
	_, app, _, res, err := nonceClient(t)
	if err != nil || res.TokenType != "DPoP" {
		t.Fatalf("exchange = %+v, %v", res, err)
	}
	if info, err := app.WithToken(res.AccessToken).LookupSelf(t.Context()); err != nil || info.Cnf == nil {
		t.Fatalf("lookup-self = %+v, %v", info, err)
	}
}

// A refusal for a missing nonce (or any DPoP refusal) spends no use of a
// use-limited bound token: only a request whose proof passed does. Else a
// client's first call after a nonce expired costs two uses, and a thief
// holding the token without its key can use it up.
func TestDPoPRefusalSpendsNoUse(t *testing.T) {
	r, app, prove, res, err := nonceClient(t)
	if err != nil {
		t.Fatalf("exchange: %v", err)
	}
	child, err := app.WithToken(res.AccessToken).CreateToken(t.Context(), client.CreateTokenRequest{MaxUses: 2})
	if err != nil {
		t.Fatalf("child token: %v", err)
	}
	// A thief without the key: refused, and no use spent.
	for range 3 {
		if c := withProof(t, "GET", r.url+"/v1/auth/token/lookup-self", "DPoP", child.Token, "").status; c != 401 {
			t.Fatalf("lookup-self without a proof = %d", c)
		}
	}
	// A client that has no nonce yet (a fresh one): refused once, then
	// accepted; two calls for the two uses.
	fresh, err := client.New(client.Config{Address: r.url, DPoP: prove})
	if err != nil {
		t.Fatal(err)
	}
	c := fresh.WithToken(child.Token)
	for i := range 2 {
		if _, err := c.LookupSelf(t.Context()); err != nil {
			t.Fatalf("call %d of 2: %v", i+1, err)
		}
	}
	if _, err := c.LookupSelf(t.Context()); err == nil {
		t.Fatal("a third call with a 2-use token succeeded")
	}
}

// nonceClient runs a dev node that requires DPoP nonces and exchanges an ID
// token through the Go client with a fresh P-256 key.
func nonceClient(t *testing.T) (*running, *client.Client, client.Prover, *client.ExchangeResponse, error) {
	t.Helper()
	cfg := testConfig(t.TempDir())
	cfg.Dev, cfg.DPoPNonce = true, true
	r := start(t, cfg, nil)
	idp := newOIDCIssuer(t)
	setUpMobile(t, r.url, r.node.DevRootToken(), idp)
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	prove, err := client.NewES256Prover(key)
	if err != nil {
		t.Fatal(err)
	}
	app, err := client.New(client.Config{Address: r.url, DPoP: prove})
	if err != nil {
		t.Fatal(err)
	}
	res, err := app.Exchange(t.Context(), client.ExchangeRequest{IDToken: idp.idToken(t, "erin", 10*time.Minute, nil), ClientID: "maps-cli"})
	return r, app, prove, res, err
}
