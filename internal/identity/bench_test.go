package identity

import (
	"encoding/json"
	"fmt"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/keyward/keyward/internal/storage"
	"github.com/keyward/keyward/internal/storage/storagetest"
)

// BenchmarkHashPassword measures one argon2id hash at the production
// parameters (m=19 MiB, t=2, p=1): the cost of every password login.
func BenchmarkHashPassword(b *testing.B) {
	for b.Loop() {
		hashPassword("correct horse battery staple", defaultParams)
	}
}

func BenchmarkGenerateTOTP(b *testing.B) {
	secret := []byte("12345678901234567890")
	now := time.Unix(1111111111, 0)
	for b.Loop() {
		GenerateTOTP(secret, now, 6)
	}
}

// BenchmarkServiceLogin is a successful client-credentials login on SQLite.
func BenchmarkServiceLogin(b *testing.B) {
	e := newEnv(b, storagetest.OpenSQLite(b, storage.Options{}))
	svc, secret, err := e.m.CreateService(b.Context(), "ci", ServiceOptions{})
	if err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		if _, err := e.m.ServiceLogin(b.Context(), svc.ClientID, secret, src1); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkJWTLogin is a successful JWT login on SQLite with an inline JWKS.
func BenchmarkJWTLogin(b *testing.B) {
	k := testKeys()
	for _, tc := range []struct {
		alg jose.SignatureAlgorithm
		key any
		pub any
	}{{jose.RS256, k.rsa, &k.rsa.PublicKey}, {jose.ES256, k.ec, &k.ec.PublicKey}, {jose.EdDSA, k.ed, k.ed.Public()}} {
		b.Run(string(tc.alg), func(b *testing.B) {
			e := newEnv(b, storagetest.OpenSQLite(b, storage.Options{}))
			inline, _ := json.Marshal(jose.JSONWebKeySet{Keys: []jose.JSONWebKey{pub(tc.pub, "k1", "")}})
			if _, err := e.m.PutIssuer(b.Context(), githubIssuer("", inline)); err != nil {
				b.Fatal(err)
			}
			raw := sign(b, tc.alg, tc.key, "k1", ghClaims(e.clk.Now(), "acme/app", "refs/heads/main"))
			for b.Loop() {
				if _, err := e.m.JWTLogin(b.Context(), "github", raw, src1); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkThrottleFail records failures for distinct keys at the key cap.
func BenchmarkThrottleFail(b *testing.B) {
	th := NewThrottle(ThrottleOptions{MaxKeys: 1 << 16})
	keys := make([]string, 1<<17)
	for i := range keys {
		keys[i] = fmt.Sprintf("src:10.%d.%d.%d", i>>16, i>>8&255, i&255)
	}
	i := 0
	for b.Loop() {
		th.Fail(keys[i&(len(keys)-1)])
		i++
	}
}
