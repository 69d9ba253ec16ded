package httpapi

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"strings"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/keyward/keyward/internal/dpop"
)

const (
	boundTok   = "kwt_bound" // keyward:allow (test fixture)
	unboundTok = "kwt_plain" // keyward:allow (test fixture)
)

// dpopAuth knows one bound and one unbound token.
type dpopAuth struct{ jkt string }

func (f dpopAuth) Authenticate(_ context.Context, bearer string, _ netip.Addr) (*Caller, error) {
	switch bearer {
	case boundTok:
		return &Caller{Principal: "jwt:idp/alice", JKT: f.jkt}, nil
	case unboundTok:
		return &Caller{Principal: "user:bob"}, nil
	}
	return nil, errors.New("bad token")
}

// dpopAPI serves two routes needing a token, with v (nil: a verifier with
// the defaults) checking DPoP proofs.
func dpopAPI(t *testing.T, v *dpop.Verifier, jkt string, publicURL *url.URL, proxies []netip.Prefix) (*API, *fakeAudit) {
	t.Helper()
	audit := &fakeAudit{}
	routes := []Route{
		{Pattern: "GET /v1/self", AnyToken: true, Action: "read", Resource: static("auth/tokens/self"),
			Handle: func(r *http.Request) (int, any, error) { return 200, map[string]string{"url": RequestURL(r)}, nil }},
		// A raw route, as the gateway is: enforcement happens before it runs.
		{Pattern: "POST /v1/gateway/{integration}/{path...}", AnyToken: true, Action: "proxy", Resource: static("integrations/maps"),
			Raw: func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(204) }},
	}
	if v == nil {
		v = dpop.NewVerifier(dpop.Options{})
	}
	return New(Deps{Auth: dpopAuth{jkt: jkt}, Authz: fakeAuthz{}, Audit: audit, DPoP: v,
		PublicURL: publicURL, TrustedProxies: proxies}, routes), audit
}

func TestDPoPAtTheEdge(t *testing.T) {
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	other, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	jkt, _ := dpop.Thumbprint(jose.JSONWebKey{Key: &key.PublicKey})
	api, audit := dpopAPI(t, nil, jkt, nil, nil)
	const base = "http://keyward.test"

	proof := func(k *ecdsa.PrivateKey, method, u, tok string, at time.Time) string {
		p, err := dpop.NewProof(k, method, u, tok, at)
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	send := func(method, path, authz string, proofs ...string) *httptest.ResponseRecorder {
		r := httptest.NewRequest(method, base+path, nil)
		if authz != "" {
			r.Header.Set("Authorization", authz)
		}
		for _, p := range proofs {
			r.Header.Add("DPoP", p)
		}
		w := httptest.NewRecorder()
		api.ServeHTTP(w, r)
		return w
	}
	now := time.Now()
	good := proof(key, "GET", base+"/v1/self", boundTok, now)
	if w := send("GET", "/v1/self", "DPoP "+boundTok, good); w.Code != 200 {
		t.Fatalf("bound token with a good proof = %d %s", w.Code, w.Body)
	}
	if last := audit.events[len(audit.events)-1]; last.Detail.Get("dpop") != "bound" || last.Outcome != "allowed" {
		t.Fatalf("audit of a bound call = %+v", last)
	}
	if w := send("POST", "/v1/gateway/maps/geocode?q=x", "DPoP "+boundTok, proof(key, "POST", base+"/v1/gateway/maps/geocode", boundTok, now)); w.Code != 204 {
		t.Fatalf("raw route with a good proof = %d %s", w.Code, w.Body)
	}

	for name, tc := range map[string]struct {
		method, path, authz string
		proofs              []string
		want                string
	}{
		"no proof":            {"GET", "/v1/self", "DPoP " + boundTok, nil, `error="invalid_dpop_proof"`},
		"Bearer scheme":       {"GET", "/v1/self", "Bearer " + boundTok, nil, `error="invalid_token"`},
		"Bearer with a proof": {"GET", "/v1/self", "Bearer " + boundTok, []string{proof(key, "GET", base+"/v1/self", boundTok, now)}, `error="invalid_token"`},
		"two proofs": {"GET", "/v1/self", "DPoP " + boundTok,
			[]string{proof(key, "GET", base+"/v1/self", boundTok, now), proof(key, "GET", base+"/v1/self", boundTok, now)}, "exactly one"},
		"replayed":        {"GET", "/v1/self", "DPoP " + boundTok, []string{good}, "replayed"},
		"other method":    {"GET", "/v1/self", "DPoP " + boundTok, []string{proof(key, "POST", base+"/v1/self", boundTok, now)}, "htm"},
		"other URL":       {"GET", "/v1/self", "DPoP " + boundTok, []string{proof(key, "GET", base+"/v1/other", boundTok, now)}, "htu"},
		"other key":       {"GET", "/v1/self", "DPoP " + boundTok, []string{proof(other, "GET", base+"/v1/self", boundTok, now)}, "another key"},
		"skewed clock":    {"GET", "/v1/self", "DPoP " + boundTok, []string{proof(key, "GET", base+"/v1/self", boundTok, now.Add(-5*time.Minute))}, "iat"},
		"other token":     {"GET", "/v1/self", "DPoP " + boundTok, []string{proof(key, "GET", base+"/v1/self", unboundTok, now)}, "ath"},
		"raw route":       {"POST", "/v1/gateway/maps/geocode", "DPoP " + boundTok, nil, "invalid_dpop_proof"},
		"unbound as DPoP": {"GET", "/v1/self", "DPoP " + unboundTok, []string{proof(key, "GET", base+"/v1/self", unboundTok, now)}, "not DPoP-bound"},
	} {
		t.Run(name, func(t *testing.T) {
			before := len(audit.events)
			w := send(tc.method, tc.path, tc.authz, tc.proofs...)
			if w.Code != 401 {
				t.Fatalf("status %d %s, want 401", w.Code, w.Body)
			}
			if wa := w.Header().Get("WWW-Authenticate"); !strings.HasPrefix(wa, "DPoP ") || !strings.Contains(wa+w.Body.String(), tc.want) {
				t.Fatalf("WWW-Authenticate %q, body %s; want %q", wa, w.Body, tc.want)
			}
			if !strings.Contains(w.Body.String(), `"code":"unauthenticated"`) {
				t.Fatalf("body %s is not keyward's error", w.Body)
			}
			if strings.Contains(w.Body.String(), boundTok) || strings.Contains(w.Header().Get("WWW-Authenticate"), boundTok) {
				t.Fatal("the response quotes the token")
			}
			if len(audit.events) != before+1 || audit.events[before].Detail.Get("dpop") != "refused" || audit.events[before].Outcome != "denied" {
				t.Fatalf("audit = %+v", audit.events[before:])
			}
		})
	}

	// Unbound tokens under Bearer are untouched, with or without a DPoP header.
	if w := send("GET", "/v1/self", "Bearer "+unboundTok); w.Code != 200 || w.Header().Get("WWW-Authenticate") != "" {
		t.Fatalf("unbound bearer = %d %s", w.Code, w.Body)
	}
	if last := audit.events[len(audit.events)-1]; last.Detail.Get("dpop") != "" {
		t.Fatalf("an unbound call is audited with dpop=%q", last.Detail.Get("dpop"))
	}
}

func TestDPoPWithoutVerifierRefusesBoundTokens(t *testing.T) {
	api := New(Deps{Auth: dpopAuth{jkt: "x"}, Authz: fakeAuthz{}}, []Route{{Pattern: "GET /v1/self", AnyToken: true, Action: "read",
		Resource: static("s"), Handle: func(r *http.Request) (int, any, error) { return 200, nil, nil }}})
	r := httptest.NewRequest("GET", "/v1/self", nil)
	r.Header.Set("Authorization", "DPoP "+boundTok)
	r.Header.Set("DPoP", "x.y.z")
	w := httptest.NewRecorder()
	api.ServeHTTP(w, r)
	if w.Code != 401 {
		t.Fatalf("bound token without a verifier = %d", w.Code)
	}
}

func TestRequestURL(t *testing.T) {
	proxy := []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}
	pub, _ := url.Parse("https://keyward.example.com/kw/")
	for name, tc := range map[string]struct {
		pub     *url.URL
		proxies []netip.Prefix
		remote  string
		tls     bool
		xfp     string
		want    string
	}{
		"plain":                  {remote: "192.0.2.1:1234", want: "http://keyward.test/v1/self"},
		"TLS":                    {remote: "192.0.2.1:1234", tls: true, want: "https://keyward.test/v1/self"},
		"forwarded, trusted":     {proxies: proxy, remote: "10.1.2.3:1234", xfp: "https", want: "https://keyward.test/v1/self"},
		"forwarded, not trusted": {proxies: proxy, remote: "192.0.2.1:1234", xfp: "https", want: "http://keyward.test/v1/self"},
		"forwarded, junk":        {proxies: proxy, remote: "10.1.2.3:1234", xfp: "gopher", want: "http://keyward.test/v1/self"},
		"public URL wins":        {pub: pub, proxies: proxy, remote: "10.1.2.3:1234", xfp: "http", want: "https://keyward.example.com/kw/v1/self"},
	} {
		t.Run(name, func(t *testing.T) {
			api, _ := dpopAPI(t, nil, "", tc.pub, tc.proxies)
			r := httptest.NewRequest("GET", "http://keyward.test/v1/self?q=1", nil)
			r.RemoteAddr = tc.remote
			if tc.tls {
				r.TLS = &tls.ConnectionState{}
			}
			if tc.xfp != "" {
				r.Header.Set("X-Forwarded-Proto", tc.xfp)
			}
			r.Header.Set("Authorization", "Bearer "+unboundTok)
			w := httptest.NewRecorder()
			api.ServeHTTP(w, r)
			if w.Code != 200 || !strings.Contains(w.Body.String(), `"url":"`+tc.want+`"`) {
				t.Fatalf("got %d %s, want url %s", w.Code, w.Body, tc.want)
			}
		})
	}
}

func FuzzOAuthForm(f *testing.F) {
	f.Add("grant_type=urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Atoken-exchange&subject_token=a.b.c", "application/x-www-form-urlencoded")
	f.Add("token=a&token=b", "application/x-www-form-urlencoded")
	f.Add("%zz=1;&&=", "application/x-www-form-urlencoded; charset=utf-8")
	f.Add(`{"token":"x"}`, "application/json")
	f.Fuzz(func(t *testing.T, body, ct string) {
		r := httptest.NewRequest("POST", "/v1/oauth/revoke", strings.NewReader(body))
		r.Header.Set("Content-Type", ct)
		v, oe := form(r)
		if oe != nil {
			if oe.status < 400 || oe.Code == "" {
				t.Fatalf("error %+v", oe)
			}
			return
		}
		for k, vs := range v {
			if len(vs) != 1 {
				t.Fatalf("parameter %q repeated but accepted", k)
			}
		}
	})
}

// failingStore is a shared replay store that cannot be written.
type failingStore struct{}

func (failingStore) Claim(context.Context, [16]byte, time.Time) (bool, error) {
	return false, errors.New("pq: connection refused to 10.1.2.3")
}

// When the cluster's replay store cannot record a proof, the call is
// refused with 503 and Retry-After, without the store's error.
func TestDPoPReplayStoreDown(t *testing.T) {
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	jkt, _ := dpop.Thumbprint(jose.JSONWebKey{Key: &key.PublicKey})
	api, _ := dpopAPI(t, dpop.NewVerifier(dpop.Options{Shared: failingStore{}}), jkt, nil, nil)
	p, err := dpop.NewProof(key, "GET", "http://keyward.test/v1/self", boundTok, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	r := httptest.NewRequest("GET", "http://keyward.test/v1/self", nil)
	r.Header.Set("Authorization", "DPoP "+boundTok)
	r.Header.Set("DPoP", p)
	w := httptest.NewRecorder()
	api.ServeHTTP(w, r)
	if w.Code != 503 || w.Header().Get("Retry-After") == "" || !strings.Contains(w.Body.String(), "could not be recorded") {
		t.Fatalf("= %d (Retry-After %q) %s; want 503 with Retry-After", w.Code, w.Header().Get("Retry-After"), w.Body)
	}
	if strings.Contains(w.Body.String(), "10.1.2.3") {
		t.Fatalf("the answer quotes the store's error: %s", w.Body)
	}
}
