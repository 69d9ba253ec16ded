package identity

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/hmac"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"

	"github.com/keyward/keyward/internal/storage"
	"github.com/keyward/keyward/internal/storage/storagetest"
)

// Test keys are generated once per test binary: RSA generation is slow.
var testKeys = sync.OnceValue(func() (k struct {
	rsa, rsaOther *rsa.PrivateKey
	ed            ed25519.PrivateKey
	ec            *ecdsa.PrivateKey
}) {
	var err error
	if k.rsa, err = rsa.GenerateKey(rand.Reader, 2048); err != nil {
		panic(err)
	}
	if k.rsaOther, err = rsa.GenerateKey(rand.Reader, 2048); err != nil {
		panic(err)
	}
	if _, k.ed, err = ed25519.GenerateKey(rand.Reader); err != nil {
		panic(err)
	}
	if k.ec, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader); err != nil {
		panic(err)
	}
	return k
})

const testIssuerURL = "https://token.actions.githubusercontent.com"

// jwks serves a key set and counts requests; keys can change under it.
type jwks struct {
	srv  *httptest.Server
	mu   sync.Mutex
	set  jose.JSONWebKeySet
	hits atomic.Int32
}

func newJWKS(t *testing.T, keys ...jose.JSONWebKey) *jwks {
	j := &jwks{set: jose.JSONWebKeySet{Keys: keys}}
	j.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		j.hits.Add(1)
		j.mu.Lock()
		defer j.mu.Unlock()
		json.NewEncoder(w).Encode(j.set)
	}))
	t.Cleanup(j.srv.Close)
	return j
}

func (j *jwks) add(k jose.JSONWebKey) {
	j.mu.Lock()
	j.set.Keys = append(j.set.Keys, k)
	j.mu.Unlock()
}

func pub(key any, kid, alg string) jose.JSONWebKey {
	return jose.JSONWebKey{Key: key, KeyID: kid, Algorithm: alg, Use: "sig"}
}

// sign returns a compact JWT of claims signed with key under kid.
func sign(t testing.TB, alg jose.SignatureAlgorithm, key any, kid string, claims ...any) string {
	t.Helper()
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: alg, Key: jose.JSONWebKey{Key: key, KeyID: kid}},
		(&jose.SignerOptions{}).WithType("JWT"))
	if err != nil {
		t.Fatal(err)
	}
	b := jwt.Signed(signer)
	for _, c := range claims {
		b = b.Claims(c)
	}
	s, err := b.Serialize()
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// ghClaims are GitHub Actions-like claims valid at now.
func ghClaims(now time.Time, repo, ref string) map[string]any {
	return map[string]any{
		"iss":        testIssuerURL,
		"aud":        []string{"https://keyward.example"},
		"sub":        "repo:" + repo + ":ref:" + ref,
		"repository": repo,
		"ref":        ref,
		"run_id":     12345,
		"iat":        now.Unix(),
		"nbf":        now.Unix(),
		"exp":        now.Add(5 * time.Minute).Unix(),
	}
}

func githubIssuer(jwksURL string, inline json.RawMessage) Issuer {
	return Issuer{
		Name:        "github",
		IssuerURL:   testIssuerURL,
		Audiences:   []string{"https://keyward.example"},
		JWKSURL:     jwksURL,
		JWKS:        inline,
		BoundClaims: map[string][]string{"repository": {"acme/*"}, "ref": {"refs/heads/main", "refs/tags/v*"}},
		PolicyMap: []ClaimPolicy{
			{Claim: "repository", Value: "acme/app", Policies: []string{"app-deploy"}},
			{Claim: "ref", Value: "refs/heads/main", Policies: []string{"prod"}},
			{Claim: "repository", Value: "other/*", Policies: []string{"never"}},
		},
		Policies: []string{"base"},
		TokenTTL: 10 * time.Minute,
	}
}

func TestJWTLoginJWKSURL(t *testing.T) {
	storagetest.Each(t, func(t *testing.T, st storage.Store) {
		k := testKeys()
		e := newEnv(t, st)
		ctx := t.Context()
		js := newJWKS(t, pub(&k.rsa.PublicKey, "rsa1", "RS256"), pub(k.ed.Public(), "ed1", ""), pub(&k.ec.PublicKey, "ec1", "ES256"))
		if _, err := e.m.PutIssuer(ctx, githubIssuer(js.srv.URL, nil)); err != nil {
			t.Fatal(err)
		}
		now := e.clk.Now()
		good := ghClaims(now, "acme/app", "refs/heads/main")

		for _, tc := range []struct {
			alg jose.SignatureAlgorithm
			key any
			kid string
		}{{jose.RS256, k.rsa, "rsa1"}, {jose.EdDSA, k.ed, "ed1"}, {jose.ES256, k.ec, "ec1"}} {
			p, err := e.m.JWTLogin(ctx, "github", sign(t, tc.alg, tc.key, tc.kid, good), src1)
			if err != nil {
				t.Fatalf("%s: %v", tc.alg, err)
			}
			if p.ID() != "jwt:github/repo:acme/app:ref:refs/heads/main" || strings.Join(p.Policies, ",") != "app-deploy,base,prod" {
				t.Fatalf("%s: principal %+v", tc.alg, p)
			}
			if p.Metadata["repository"] != "acme/app" || p.Metadata["ref"] != "refs/heads/main" || p.Metadata["issuer"] != "github" || p.TokenTTL != 10*time.Minute {
				t.Fatalf("%s: metadata %+v", tc.alg, p.Metadata)
			}
		}
		if n := js.hits.Load(); n != 1 {
			t.Fatalf("JWKS fetched %d times for three logins, want 1 (cached)", n)
		}

		// A tag build of another acme repository: bound claims match, fewer policies.
		p, err := e.m.JWTLogin(ctx, "github", sign(t, jose.RS256, k.rsa, "rsa1", ghClaims(now, "acme/lib", "refs/tags/v1.2")), src1)
		if err != nil || strings.Join(p.Policies, ",") != "base" {
			t.Fatalf("tag build: %+v %v", p, err)
		}

		// Key rotation at the issuer: an unknown kid refetches, but not
		// within 30 s of the last fetch.
		js.add(pub(&k.rsaOther.PublicKey, "rsa2", "RS256"))
		if _, err := e.m.JWTLogin(ctx, "github", sign(t, jose.RS256, k.rsaOther, "rsa2", good), src1); !errors.Is(err, ErrInvalidCredentials) {
			t.Fatalf("new kid within 30 s of the fetch: %v", err)
		}
		e.clk.Advance(30 * time.Second)
		if _, err := e.m.JWTLogin(ctx, "github", sign(t, jose.RS256, k.rsaOther, "rsa2", good), src1); err != nil {
			t.Fatalf("rotated key: %v", err)
		}
		if n := js.hits.Load(); n != 2 {
			t.Fatalf("JWKS fetched %d times, want 2", n)
		}
		// Unknown kids do not hammer the endpoint: at most one refetch per 30 s.
		e.clk.Advance(time.Second)
		for range 3 {
			if _, err := e.m.JWTLogin(ctx, "github", sign(t, jose.RS256, k.rsaOther, "nope", good), src2); !errors.Is(err, ErrInvalidCredentials) {
				t.Fatalf("unknown kid: %v", err)
			}
		}
		if n := js.hits.Load(); n != 2 {
			t.Fatalf("JWKS fetched %d times after unknown kids within 30 s, want 2", n)
		}
		e.clk.Advance(30 * time.Second)
		e.m.Throttle().Success("src:" + src2.String())
		e.m.JWTLogin(ctx, "github", sign(t, jose.RS256, k.rsaOther, "nope", good), src2)
		if n := js.hits.Load(); n != 3 {
			t.Fatalf("JWKS fetched %d times after 30 s, want 3", n)
		}
		// The cache expires after 5 minutes.
		e.clk.Advance(5 * time.Minute)
		good = ghClaims(e.clk.Now(), "acme/app", "refs/heads/main")
		if _, err := e.m.JWTLogin(ctx, "github", sign(t, jose.RS256, k.rsa, "rsa1", good), src1); err != nil {
			t.Fatal(err)
		}
		if n := js.hits.Load(); n != 4 {
			t.Fatalf("JWKS fetched %d times after the cache expired, want 4", n)
		}

		// The JWKS endpoint goes away: once the cache is stale, 503-style error.
		js.srv.Close()
		e.clk.Advance(5 * time.Minute)
		good = ghClaims(e.clk.Now(), "acme/app", "refs/heads/main")
		_, err = e.m.JWTLogin(ctx, "github", sign(t, jose.RS256, k.rsa, "rsa1", good), src1)
		if !errors.Is(err, ErrJWKSUnavailable) || errors.Is(err, ErrInvalidCredentials) {
			t.Fatalf("JWKS down: %v", err)
		}
		// ... and it is not counted as the client's failure.
		if _, locked := e.m.Throttle().Check("src:" + src1.String()); locked {
			t.Fatal("JWKS outage locked the client out")
		}
	})
}

func TestJWTLoginRejects(t *testing.T) {
	storagetest.Each(t, func(t *testing.T, st storage.Store) {
		k := testKeys()
		e := newEnv(t, st)
		ctx := t.Context()
		js := newJWKS(t, pub(&k.rsa.PublicKey, "rsa1", "RS256"), pub(k.ed.Public(), "ed1", ""))
		if _, err := e.m.PutIssuer(ctx, githubIssuer(js.srv.URL, nil)); err != nil {
			t.Fatal(err)
		}
		now := e.clk.Now()
		with := func(mod func(c map[string]any)) map[string]any {
			c := ghClaims(now, "acme/app", "refs/heads/main")
			mod(c)
			return c
		}
		b64 := base64.RawURLEncoding
		payload, _ := json.Marshal(ghClaims(now, "acme/app", "refs/heads/main"))
		unsigned := func(header string) string {
			return b64.EncodeToString([]byte(header)) + "." + b64.EncodeToString(payload)
		}
		// HS256 keyed with the issuer's public key: the classic key-confusion attack.
		der, _ := x509.MarshalPKIXPublicKey(&k.rsa.PublicKey)
		hs := unsigned(`{"alg":"HS256","kid":"rsa1","typ":"JWT"}`)
		mac := hmac.New(sha256.New, der)
		mac.Write([]byte(hs))
		hs += "." + b64.EncodeToString(mac.Sum(nil))
		// A valid token whose payload is swapped afterwards.
		valid := sign(t, jose.RS256, k.rsa, "rsa1", ghClaims(now, "acme/app", "refs/heads/main"))
		parts := strings.Split(valid, ".")
		evilPayload := strings.Replace(string(payload), "acme/app", "acme/adm", -1)
		tampered := parts[0] + "." + b64.EncodeToString([]byte(evilPayload)) + "." + parts[2]

		cases := map[string]struct{ raw, reason string }{
			"alg none":           {unsigned(`{"alg":"none","kid":"rsa1","typ":"JWT"}`) + ".", `algorithm not allowed`},
			"alg none no sig":    {unsigned(`{"alg":"none","kid":"rsa1"}`), `algorithm not allowed`},
			"HS256 pubkey":       {hs, `algorithm not allowed`},
			"RS384 not allowed":  {sign(t, jose.RS384, k.rsa, "rsa1", ghClaims(now, "acme/app", "refs/heads/main")), `algorithm not allowed`},
			"tampered payload":   {tampered, `signature does not verify`},
			"wrong audience":     {sign(t, jose.RS256, k.rsa, "rsa1", with(func(c map[string]any) { c["aud"] = "https://other.example" })), `aud holds none`},
			"wrong issuer":       {sign(t, jose.RS256, k.rsa, "rsa1", with(func(c map[string]any) { c["iss"] = "https://evil.example" })), `iss does not match`},
			"expired":            {sign(t, jose.RS256, k.rsa, "rsa1", with(func(c map[string]any) { c["exp"] = now.Add(-61 * time.Second).Unix() })), `token expired`},
			"missing exp":        {sign(t, jose.RS256, k.rsa, "rsa1", with(func(c map[string]any) { delete(c, "exp") })), `exp is required`},
			"nbf in future":      {sign(t, jose.RS256, k.rsa, "rsa1", with(func(c map[string]any) { c["nbf"] = now.Add(2 * time.Minute).Unix() })), `nbf`},
			"iat in future":      {sign(t, jose.RS256, k.rsa, "rsa1", with(func(c map[string]any) { c["iat"] = now.Add(2 * time.Minute).Unix() })), `iat`},
			"kid not in JWKS":    {sign(t, jose.RS256, k.rsaOther, "rsa9", ghClaims(now, "acme/app", "refs/heads/main")), `kid) not in`},
			"kid of another key": {sign(t, jose.RS256, k.rsaOther, "rsa1", ghClaims(now, "acme/app", "refs/heads/main")), `signature does not verify`},
			"alg/key mismatch":   {sign(t, jose.EdDSA, k.ed, "rsa1", ghClaims(now, "acme/app", "refs/heads/main")), `signature does not verify`},
			"no kid":             {sign(t, jose.RS256, k.rsa, "", ghClaims(now, "acme/app", "refs/heads/main")), `no key id`},
			"bound ref mismatch": {sign(t, jose.RS256, k.rsa, "rsa1", with(func(c map[string]any) { c["ref"] = "refs/heads/feature" })), `bound claim "ref"`},
			"bound repo prefix":  {sign(t, jose.RS256, k.rsa, "rsa1", with(func(c map[string]any) { c["repository"] = "acmex/app" })), `bound claim "repository"`},
			"bound claim absent": {sign(t, jose.RS256, k.rsa, "rsa1", with(func(c map[string]any) { delete(c, "ref") })), `bound claim "ref"`},
			"bound claim object": {sign(t, jose.RS256, k.rsa, "rsa1", with(func(c map[string]any) { c["ref"] = map[string]any{"x": "refs/heads/main"} })), `bound claim "ref"`},
			"missing sub":        {sign(t, jose.RS256, k.rsa, "rsa1", with(func(c map[string]any) { delete(c, "sub") })), `subject claim`},
			"numeric sub":        {sign(t, jose.RS256, k.rsa, "rsa1", with(func(c map[string]any) { c["sub"] = 42 })), `malformed registered claims`},
			"oversized":          {sign(t, jose.RS256, k.rsa, "rsa1", with(func(c map[string]any) { c["pad"] = strings.Repeat("x", MaxJWTLen) })), `too large`},
			"garbage":            {"not.a.jwt", `malformed`},
			"empty":              {"", `malformed`},
		}
		for name, tc := range cases {
			e.m.Throttle().Success("src:" + src1.String())
			raw := tc.raw
			p, err := e.m.JWTLogin(ctx, "github", raw, src1)
			if !errors.Is(err, ErrInvalidCredentials) || p != nil || !strings.Contains(err.Error(), tc.reason) {
				t.Errorf("%s: got %+v, %v; want ErrInvalidCredentials for %q", name, p, err, tc.reason)
				continue
			}
			if len(raw) > 0 && strings.Contains(err.Error(), raw) {
				t.Errorf("%s: error quotes the token", name)
			}
			for _, part := range strings.Split(raw, ".") {
				if len(part) >= 16 && strings.Contains(err.Error(), part) {
					t.Errorf("%s: error quotes part of the token", name)
				}
			}
		}
		// Within the 60 s leeway an expired token still passes.
		p, err := e.m.JWTLogin(ctx, "github",
			sign(t, jose.RS256, k.rsa, "rsa1", with(func(c map[string]any) { c["exp"] = now.Add(-59 * time.Second).Unix() })), src2)
		if err != nil || p == nil {
			t.Fatalf("expired within leeway: %v", err)
		}
		if _, err := e.m.JWTLogin(ctx, "gitlab", valid, src2); !errors.Is(err, ErrInvalidCredentials) {
			t.Fatalf("unknown issuer: %v", err)
		}
	})
}

func TestJWTLoginInlineJWKS(t *testing.T) {
	storagetest.Each(t, func(t *testing.T, st storage.Store) {
		k := testKeys()
		e := newEnv(t, st)
		ctx := t.Context()
		inline, _ := json.Marshal(jose.JSONWebKeySet{Keys: []jose.JSONWebKey{pub(k.ed.Public(), "ed1", "EdDSA")}})
		iss := githubIssuer("", inline)
		iss.Name = "k8s"
		iss.Algorithms = []string{"EdDSA"}
		if _, err := e.m.PutIssuer(ctx, iss); err != nil {
			t.Fatal(err)
		}
		now := e.clk.Now()
		p, err := e.m.JWTLogin(ctx, "k8s", sign(t, jose.EdDSA, k.ed, "ed1", ghClaims(now, "acme/app", "refs/heads/main")), src1)
		if err != nil || p.Name != "k8s/repo:acme/app:ref:refs/heads/main" {
			t.Fatalf("inline JWKS: %+v %v", p, err)
		}
		// RS256 is not on this issuer's list even though the default allows it.
		if _, err := e.m.JWTLogin(ctx, "k8s", sign(t, jose.RS256, k.rsa, "ed1", ghClaims(now, "acme/app", "refs/heads/main")), src1); !errors.Is(err, ErrInvalidCredentials) {
			t.Fatalf("RS256 on an EdDSA-only issuer: %v", err)
		}
		if _, err := e.m.JWTLogin(ctx, "k8s", sign(t, jose.EdDSA, k.ed, "ed2", ghClaims(now, "acme/app", "refs/heads/main")), src1); !errors.Is(err, ErrInvalidCredentials) {
			t.Fatalf("unknown kid inline: %v", err)
		}
	})
}

func TestIssuerManagement(t *testing.T) {
	storagetest.Each(t, func(t *testing.T, st storage.Store) {
		k := testKeys()
		e := newEnv(t, st)
		ctx := t.Context()
		iss := githubIssuer("https://token.actions.githubusercontent.com/.well-known/jwks", nil)
		got, err := e.m.PutIssuer(ctx, iss)
		if err != nil {
			t.Fatal(err)
		}
		if strings.Join(got.Algorithms, ",") != "ES256,EdDSA,RS256" || got.SubjectClaim != "sub" || got.TokenMaxTTL != DefaultTokenMaxTTL {
			t.Fatalf("defaults not applied: %+v", got)
		}
		read, err := e.m.GetIssuer(ctx, "github")
		if err != nil || read.IssuerURL != testIssuerURL || len(read.PolicyMap) != 3 || read.BoundClaims["ref"][1] != "refs/tags/v*" {
			t.Fatalf("get: %+v %v", read, err)
		}
		iss.Audiences = []string{"x"}
		if _, err := e.m.PutIssuer(ctx, iss); err != nil {
			t.Fatalf("replace: %v", err)
		}
		iss2 := iss
		iss2.Name = "a-first"
		if _, err := e.m.PutIssuer(ctx, iss2); err != nil {
			t.Fatal(err)
		}
		list, err := e.m.ListIssuers(ctx)
		if err != nil || len(list) != 2 || list[0].Name != "a-first" || list[1].Audiences[0] != "x" {
			t.Fatalf("list: %+v %v", list, err)
		}
		if err := e.m.DeleteIssuer(ctx, "a-first"); err != nil {
			t.Fatal(err)
		}
		if err := e.m.DeleteIssuer(ctx, "a-first"); !errors.Is(err, ErrNotFound) {
			t.Fatalf("delete twice: %v", err)
		}
		if _, err := e.m.GetIssuer(ctx, "a-first"); !errors.Is(err, ErrNotFound) {
			t.Fatalf("get deleted: %v", err)
		}

		privInline, _ := json.Marshal(jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: k.ed, KeyID: "ed1"}}})
		symInline, _ := json.Marshal(jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: []byte("0123456789abcdef0123456789abcdef"), KeyID: "hs"}}})
		for name, tc := range map[string]struct {
			mod   func(i *Issuer)
			field string
		}{
			"bad name":           {func(i *Issuer) { i.Name = "GitHub" }, "name"},
			"no issuer url":      {func(i *Issuer) { i.IssuerURL = "" }, "issuer_url"},
			"no audience":        {func(i *Issuer) { i.Audiences = nil }, "audiences"},
			"no jwks":            {func(i *Issuer) { i.JWKSURL = "" }, "jwks_url"},
			"both jwks":          {func(i *Issuer) { i.JWKS = json.RawMessage(`{"keys":[]}`) }, "jwks_url"},
			"ftp jwks url":       {func(i *Issuer) { i.JWKSURL = "ftp://x/jwks" }, "jwks_url"},
			"HS256 allowed":      {func(i *Issuer) { i.Algorithms = []string{"RS256", "HS256"} }, "algorithms"},
			"none allowed":       {func(i *Issuer) { i.Algorithms = []string{"none"} }, "algorithms"},
			"no bound claims":    {func(i *Issuer) { i.BoundClaims = nil }, "bound_claims"},
			"empty bound values": {func(i *Issuer) { i.BoundClaims = map[string][]string{"sub": {}} }, "bound_claims"},
			"empty map policy":   {func(i *Issuer) { i.PolicyMap = []ClaimPolicy{{Claim: "sub", Value: "x"}} }, "policy_map"},
			"bad policy":         {func(i *Issuer) { i.Policies = []string{"no spaces"} }, "policies"},
			"ttl > max":          {func(i *Issuer) { i.TokenTTL, i.TokenMaxTTL = time.Hour, time.Minute }, "token_ttl"},
			"private inline key": {func(i *Issuer) { i.JWKSURL, i.JWKS = "", privInline }, "jwks"},
			"symmetric inline":   {func(i *Issuer) { i.JWKSURL, i.JWKS = "", symInline }, "jwks"},
			"empty inline":       {func(i *Issuer) { i.JWKSURL, i.JWKS = "", json.RawMessage(`{"keys":[]}`) }, "jwks"},
			"inline not json":    {func(i *Issuer) { i.JWKSURL, i.JWKS = "", json.RawMessage(`{`) }, "jwks"},
		} {
			i := githubIssuer("https://example.com/jwks", nil)
			tc.mod(&i)
			if _, err := e.m.PutIssuer(ctx, i); !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), tc.field) {
				t.Errorf("%s: err = %v, want ErrInvalid naming %s", name, err, tc.field)
			}
		}
		var ops []string
		for _, c := range e.changes {
			ops = append(ops, c.Op+" "+c.Kind+" "+c.Name)
		}
		if want := "put issuer github,put issuer github,put issuer a-first,delete issuer a-first"; strings.Join(ops, ",") != want {
			t.Fatalf("audited %s", strings.Join(ops, ","))
		}
	})
}

func TestJWTLoginThrottlesSource(t *testing.T) {
	storagetest.Each(t, func(t *testing.T, st storage.Store) {
		k := testKeys()
		e := newEnv(t, st)
		ctx := t.Context()
		inline, _ := json.Marshal(jose.JSONWebKeySet{Keys: []jose.JSONWebKey{pub(k.ed.Public(), "ed1", "")}})
		if _, err := e.m.PutIssuer(ctx, githubIssuer("", inline)); err != nil {
			t.Fatal(err)
		}
		for range 5 {
			e.m.JWTLogin(ctx, "github", "junk", src1)
		}
		good := sign(t, jose.EdDSA, k.ed, "ed1", ghClaims(e.clk.Now(), "acme/app", "refs/heads/main"))
		if _, err := e.m.JWTLogin(ctx, "github", good, src1); !errors.Is(err, ErrThrottled) {
			t.Fatalf("locked source: %v", err)
		}
		if _, err := e.m.JWTLogin(ctx, "github", good, src2); err != nil {
			t.Fatalf("other source: %v", err)
		}
		if len(e.lockouts) != 1 || e.lockouts[0] != "src:192.0.2.1" {
			t.Fatalf("lockouts %v", e.lockouts)
		}
	})
}

func FuzzJWTLogin(f *testing.F) {
	k := testKeys()
	st := storagetest.OpenSQLite(f, storage.Options{})
	e := newEnv(f, st)
	inline, _ := json.Marshal(jose.JSONWebKeySet{Keys: []jose.JSONWebKey{pub(k.ed.Public(), "ed1", ""), pub(&k.ec.PublicKey, "ec1", "")}})
	if _, err := e.m.PutIssuer(f.Context(), githubIssuer("", inline)); err != nil {
		f.Fatal(err)
	}
	now := e.clk.Now()
	f.Add(sign(f, jose.EdDSA, k.ed, "ed1", ghClaims(now, "acme/app", "refs/heads/main")))
	f.Add(sign(f, jose.ES256, k.ec, "ec1", ghClaims(now, "acme/app", "refs/heads/main")))
	f.Add(sign(f, jose.EdDSA, k.ed, "ed1", map[string]any{"sub": []any{1, []any{2}}, "ref": nil, "exp": "soon"}))
	f.Add("eyJhbGciOiJub25lIn0.e30.") // keyward:allow (test fixture)
	f.Add("a.b.c")
	f.Add("..")
	f.Add("")
	f.Fuzz(func(t *testing.T, raw string) {
		p, err := e.m.JWTLogin(t.Context(), "github", raw, netip.Addr{})
		if err == nil {
			if p == nil || p.Kind != KindJWT || !strings.HasPrefix(p.Name, "github/") {
				t.Fatalf("accepted with principal %+v", p)
			}
			return
		}
		if !errors.Is(err, ErrInvalidCredentials) {
			t.Fatalf("unexpected error kind: %v", err)
		}
		if len(raw) >= 16 && strings.Contains(err.Error(), raw) {
			t.Fatal("error quotes the token")
		}
	})
}

func TestExchangeLoginFindsTheIssuerByIss(t *testing.T) {
	storagetest.Each(t, func(t *testing.T, st storage.Store) {
		k := testKeys()
		e := newEnv(t, st)
		ctx := t.Context()
		inline, _ := json.Marshal(jose.JSONWebKeySet{Keys: []jose.JSONWebKey{pub(k.ed.Public(), "ed1", "")}})
		// Two issuers with the same URL, one per audience (CI and the mobile app),
		// and one with another URL and the same key.
		ci := githubIssuer("", inline)
		mobile := githubIssuer("", inline)
		mobile.Name, mobile.Audiences, mobile.BoundClaims = "mobile", []string{"maps-app"}, map[string][]string{"sub": {"*"}}
		mobile.PolicyMap, mobile.Policies = nil, []string{"maps-proxy"}
		other := githubIssuer("", inline)
		other.Name, other.IssuerURL = "other", "https://other.example"
		for _, iss := range []Issuer{ci, mobile, other} {
			if _, err := e.m.PutIssuer(ctx, iss); err != nil {
				t.Fatal(err)
			}
		}
		now := e.clk.Now()
		c := map[string]any{"iss": testIssuerURL, "aud": "maps-app", "sub": "alice@example.com", "iat": now.Unix(), "exp": now.Add(3 * time.Minute).Unix()}
		p, err := e.m.ExchangeLogin(ctx, sign(t, jose.EdDSA, k.ed, "ed1", c), src1)
		if err != nil {
			t.Fatal(err)
		}
		if p.ID() != "jwt:mobile/alice@example.com" || strings.Join(p.Policies, ",") != "maps-proxy" || !p.CredentialExpiresAt.Equal(time.Unix(now.Add(3*time.Minute).Unix(), 0)) {
			t.Fatalf("principal %+v", p)
		}
		// The CI audience picks the CI issuer.
		p, err = e.m.ExchangeLogin(ctx, sign(t, jose.EdDSA, k.ed, "ed1", ghClaims(now, "acme/app", "refs/heads/main")), src1)
		if err != nil || p.Name != "github/repo:acme/app:ref:refs/heads/main" {
			t.Fatalf("CI token: %+v %v", p, err)
		}
		// An iss no issuer has, a wrong audience, an expired token: refused.
		unknown := map[string]any{"iss": "https://nobody.example", "aud": "maps-app", "sub": "a", "exp": now.Add(time.Minute).Unix()}
		wrongAud := map[string]any{"iss": testIssuerURL, "aud": "someone-else", "sub": "a", "exp": now.Add(time.Minute).Unix()}
		expired := map[string]any{"iss": testIssuerURL, "aud": "maps-app", "sub": "a", "exp": now.Add(-time.Hour).Unix()}
		noIss := map[string]any{"aud": "maps-app", "sub": "a", "exp": now.Add(time.Minute).Unix()}
		for name, claims := range map[string]map[string]any{"unknown iss": unknown, "wrong aud": wrongAud, "expired": expired, "no iss": noIss} {
			if _, err := e.m.ExchangeLogin(ctx, sign(t, jose.EdDSA, k.ed, "ed1", claims), src2); !errors.Is(err, ErrInvalidCredentials) {
				t.Errorf("%s: %v", name, err)
			}
		}
		// Signed by a key the issuer does not hold.
		_, otherKey, _ := ed25519.GenerateKey(rand.Reader)
		if _, err := e.m.ExchangeLogin(ctx, sign(t, jose.EdDSA, otherKey, "ed1", c), src2); !errors.Is(err, ErrInvalidCredentials) {
			t.Fatalf("wrong key: %v", err)
		}
		// Those five failures lock the source out.
		if _, err := e.m.ExchangeLogin(ctx, sign(t, jose.EdDSA, k.ed, "ed1", c), src2); !errors.Is(err, ErrThrottled) {
			t.Fatalf("after five failures: %v", err)
		}
	})
}

func FuzzExchangeLogin(f *testing.F) {
	k := testKeys()
	st := storagetest.OpenSQLite(f, storage.Options{})
	e := newEnv(f, st)
	inline, _ := json.Marshal(jose.JSONWebKeySet{Keys: []jose.JSONWebKey{pub(k.ed.Public(), "ed1", "")}})
	if _, err := e.m.PutIssuer(f.Context(), githubIssuer("", inline)); err != nil {
		f.Fatal(err)
	}
	now := e.clk.Now()
	f.Add(sign(f, jose.EdDSA, k.ed, "ed1", ghClaims(now, "acme/app", "refs/heads/main")))
	f.Add(sign(f, jose.EdDSA, k.ed, "ed1", map[string]any{"iss": 7}))
	f.Add(sign(f, jose.EdDSA, k.ed, "ed1", map[string]any{"iss": testIssuerURL, "exp": "later"}))
	f.Add("eyJhbGciOiJub25lIn0.eyJpc3MiOiJodHRwczovL3Rva2VuLmFjdGlvbnMuZ2l0aHVidXNlcmNvbnRlbnQuY29tIn0.") // keyward:allow (test fixture)
	f.Add("")
	f.Fuzz(func(t *testing.T, raw string) {
		p, err := e.m.ExchangeLogin(t.Context(), raw, netip.Addr{})
		if err == nil {
			if p == nil || !strings.HasPrefix(p.Name, "github/") || p.CredentialExpiresAt.IsZero() {
				t.Fatalf("accepted with principal %+v", p)
			}
			return
		}
		if !errors.Is(err, ErrInvalidCredentials) {
			t.Fatalf("unexpected error kind: %v", err)
		}
	})
}
