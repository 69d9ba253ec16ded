package client

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"errors"
	"net/http"
	"net/url"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/keyward/keyward/internal/dpop"
)

func TestES256ProverMakesProofsKeywardAccepts(t *testing.T) {
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	prove, err := NewES256Prover(key)
	if err != nil {
		t.Fatal(err)
	}
	jkt, _ := dpop.Thumbprint(jose.JSONWebKey{Key: &key.PublicKey})
	v := dpop.NewVerifier(dpop.Options{})
	const tok = "kwt_sometoken" // keyward:allow (test fixture)
	p, err := prove("GET", "https://keyward.example/v1/gateway/maps/geocode?q=1", tok, "")
	if err != nil {
		t.Fatal(err)
	}
	got, err := v.Verify(context.Background(), p, dpop.Expect{Method: "GET", URL: "https://keyward.example/v1/gateway/maps/geocode", AccessToken: tok, JKT: jkt})
	if err != nil || got.JKT != jkt {
		t.Fatalf("verify = %+v, %v", got, err)
	}
	// A token request: no ath.
	p, _ = prove("POST", "https://keyward.example/v1/oauth/token", "", "")
	if got, err := v.Verify(context.Background(), p, dpop.Expect{Method: "POST", URL: "https://keyward.example/v1/oauth/token"}); err != nil || got.ATH != "" {
		t.Fatalf("token request proof = %+v, %v", got, err)
	}
	p384, _ := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	if _, err := NewES256Prover(p384); err == nil {
		t.Fatal("a P-384 key accepted for ES256")
	}
}

func TestExchangeBindsAndCallsCarryProofs(t *testing.T) {
	f, plain := newFake(t)
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	prove, _ := NewES256Prover(key)
	var proofs []string
	f.routes["POST /v1/oauth/token"] = func(w http.ResponseWriter, r *http.Request, body string) {
		proofs = append(proofs, r.Header.Get("DPoP"))
		w.Header().Set("Content-Type", "application/json")
		w.Write([]byte(`{"access_token":"kwt_bound","issued_token_type":"urn:ietf:params:oauth:token-type:access_token","token_type":"DPoP","expires_in":900,"scope":"maps-proxy"}`))
	}
	f.routes["GET /v1/auth/token/lookup-self"] = func(w http.ResponseWriter, r *http.Request, body string) {
		proofs = append(proofs, r.Header.Get("DPoP"))
		w.Write([]byte(`{"accessor":"a1","principal":"jwt:corp/alice"}`))
	}
	srvURL := plain.Address()
	c, err := New(Config{Address: srvURL, Token: "kwt_old", DPoP: prove})
	if err != nil {
		t.Fatal(err)
	}
	res, err := c.Exchange(context.Background(), ExchangeRequest{IDToken: "eyJ.id.token", ClientID: "maps-ios", Scope: "maps-proxy"})
	if err != nil || res.AccessToken != "kwt_bound" || res.TokenType != "DPoP" || res.ExpiresIn != 900 {
		t.Fatalf("exchange = %+v, %v", res, err)
	}
	last := f.last()
	form, _ := url.ParseQuery(last.Body)
	if last.ContentType != "application/x-www-form-urlencoded" || last.Auth != "" || form.Get("grant_type") != GrantTokenExchange ||
		form.Get("subject_token") != "eyJ.id.token" || form.Get("subject_token_type") != TokenTypeIDToken || form.Get("client_id") != "maps-ios" || form.Get("scope") != "maps-proxy" {
		t.Fatalf("exchange request = %+v", last)
	}
	v := dpop.NewVerifier(dpop.Options{})
	if _, err := v.Verify(context.Background(), proofs[0], dpop.Expect{Method: "POST", URL: srvURL + "/v1/oauth/token"}); err != nil {
		t.Fatalf("exchange proof: %v", err)
	}
	// Calls with the bound token use the DPoP scheme and a fresh proof.
	if _, err := c.WithToken(res.AccessToken).LookupSelf(context.Background()); err != nil {
		t.Fatal(err)
	}
	if f.last().Auth != "DPoP kwt_bound" {
		t.Fatalf("Authorization = %q", f.last().Auth)
	}
	if _, err := v.Verify(context.Background(), proofs[1], dpop.Expect{Method: "GET", URL: srvURL + "/v1/auth/token/lookup-self", AccessToken: "kwt_bound"}); err != nil {
		t.Fatalf("call proof: %v", err)
	}
}

func TestOAuthErrors(t *testing.T) {
	f, c := newFake(t)
	f.routes["POST /v1/oauth/token"] = func(w http.ResponseWriter, r *http.Request, body string) {
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Retry-After", "30")
		w.WriteHeader(429)
		w.Write([]byte(`{"error":"temporarily_unavailable","error_description":"too many failed attempts; retry later"}`))
	}
	_, err := c.Exchange(context.Background(), ExchangeRequest{IDToken: "x"})
	var oe *OAuthError
	if !errors.As(err, &oe) || oe.Code != "temporarily_unavailable" || oe.Status != 429 || oe.RetryAfter != 30*time.Second {
		t.Fatalf("err = %#v", err)
	}
	if f.last().Auth != "" {
		t.Fatal("the exchange sent the client's keyward token")
	}
}

func TestRevokeAndIntrospect(t *testing.T) {
	f, c := newFake(t)
	f.routes["POST /v1/oauth/revoke"] = func(w http.ResponseWriter, r *http.Request, body string) { w.WriteHeader(200) }
	f.json("POST /v1/oauth/introspect", 200, `{"active":true,"scope":"maps-proxy","token_type":"DPoP","sub":"jwt:corp/alice","exp":1900000000,"cnf":{"jkt":"abc"}}`)
	if err := c.Revoke(context.Background(), "kwt_leaked"); err != nil {
		t.Fatal(err)
	}
	if l := f.last(); l.Auth != "" || l.Body != "token=kwt_leaked" {
		t.Fatalf("revoke request = %+v", l)
	}
	in, err := c.Introspect(context.Background(), "kwt_other")
	if err != nil || !in.Active || in.Cnf == nil || in.Cnf.JKT != "abc" || in.Sub != "jwt:corp/alice" {
		t.Fatalf("introspect = %+v, %v", in, err)
	}
	if l := f.last(); l.Auth != "Bearer kwt_parenttoken" || l.Body != "token=kwt_other" {
		t.Fatalf("introspect request = %+v", l)
	}
}
