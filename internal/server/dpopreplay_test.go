package server

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/binary"
	"fmt"
	"log/slog"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/keyward/keyward/internal/storage"
	"github.com/keyward/keyward/internal/storage/postgres"
	"github.com/keyward/keyward/internal/storage/storagetest"
)

// twoPostgresNodes starts two dev nodes sharing one PostgreSQL schema and
// one public URL, as behind a load balancer.
func twoPostgresNodes(t *testing.T, publicURL string) (a, b *running) {
	t.Helper()
	url, schema := storagetest.PostgresSchema(t)
	dir := t.TempDir()
	node := func() *running {
		st, err := postgres.Open(t.Context(), url, storage.Options{Schema: schema})
		if err != nil {
			t.Fatal(err)
		}
		cfg := testConfig(dir)
		cfg.Dev = true
		cfg.PublicURL = publicURL
		return startOpts(t, cfg, Options{Store: st})
	}
	return node(), node()
}

// A DPoP proof one node accepted is refused by another node sharing the
// database, though that node's own replay cache never saw it.
func TestDPoPProofReplayedOnAnotherNode(t *testing.T) {
	const public = "https://keyward.example"
	a, b := twoPostgresNodes(t, public)
	root := a.node.DevRootToken()
	idp := newOIDCIssuer(t)
	setUpMobile(t, a.url, root, idp)
	if err := b.node.poller.Poll(t.Context()); err != nil {
		t.Fatal(err)
	}
	device, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	proof := func() string { return mustProof(t, device, "POST", public+"/v1/oauth/token", "") }
	form := exchangeForm(idp.idToken(t, "alice", 10*time.Minute, nil))

	p := proof()
	if res := post(t, a.url+"/v1/oauth/token", form, "", p); res.status != 200 {
		t.Fatalf("exchange on node a = %d %v", res.status, res.body)
	}
	res := post(t, b.url+"/v1/oauth/token", form, "", p)
	if desc, _ := res.body["error_description"].(string); res.status != 400 || res.body["error"] != "invalid_dpop_proof" || !strings.Contains(desc, "replayed") {
		t.Fatalf("the same proof on node b = %d %v, want 400 invalid_dpop_proof (replayed)", res.status, res.body)
	}
	res = post(t, b.url+"/v1/oauth/token", form, "", proof())
	at, _ := res.body["access_token"].(string)
	if res.status != 200 || at == "" {
		t.Fatalf("a fresh proof on node b = %d %v", res.status, res.body)
	}

	// A database that cannot record the claim refuses the proof (503, retry),
	// at the token endpoint and at the edge, without quoting its error.
	if err := a.node.store.Write(t.Context(), func(tx storage.Tx) error {
		_, err := tx.Exec(t.Context(), `DROP TABLE dpop_proofs`)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	res = post(t, a.url+"/v1/oauth/token", form, "", proof())
	if res.status != 503 || res.body["error"] != "temporarily_unavailable" || res.header.Get("Retry-After") == "" {
		t.Fatalf("exchange with the claims table gone = %d %v", res.status, res.body)
	}
	self := public + "/v1/auth/token/lookup-self"
	res = withProof(t, "GET", a.url+"/v1/auth/token/lookup-self", "DPoP", at, mustProof(t, device, "GET", self, at))
	if res.status != 503 || res.header.Get("Retry-After") == "" {
		t.Fatalf("a DPoP call with the claims table gone = %d %v", res.status, res.body)
	}
	if strings.Contains(fmt.Sprint(res.body), "dpop_proofs") {
		t.Fatalf("the answer quotes the database's error: %v", res.body)
	}
}

// The claims behind it: a key is claimed once until it expires, then may be
// claimed again; the sweep deletes expired claims only.
func TestSharedReplayClaims(t *testing.T) {
	a, _ := twoPostgresNodes(t, "")
	now := time.Unix(1_800_000_000, 0)
	s := sharedReplay{st: a.node.store, log: a.node.log, now: func() time.Time { return now }}
	ctx := t.Context()
	k1, k2 := [16]byte{1}, [16]byte{2}
	claim := func(k [16]byte, until time.Time, want bool) {
		t.Helper()
		got, err := s.Claim(ctx, k, until)
		if err != nil || got != want {
			t.Fatalf("Claim(%x) = %v, %v; want %v", k[0], got, err, want)
		}
	}
	claim(k1, now.Add(time.Minute), true)
	claim(k1, now.Add(2*time.Minute), false)
	claim(k2, now.Add(time.Second), true)
	now = now.Add(30 * time.Second) // k2 expired, k1 not
	claim(k2, now.Add(time.Minute), true)
	claim(k2, now.Add(time.Minute), false)
	claim(k1, now.Add(time.Minute), false)
	now = now.Add(45 * time.Second) // k1 expired
	if n, err := s.sweep(ctx); err != nil || n != 1 {
		t.Fatalf("sweep = %d, %v; want 1 (k1)", n, err)
	}
	claim(k2, now.Add(time.Minute), false)
}

// BenchmarkSharedReplayClaim measures one proof's claim on PostgreSQL (a
// write transaction per DPoP-bound call), serially and from 64 goroutines.
func BenchmarkSharedReplayClaim(b *testing.B) {
	url, schema := storagetest.PostgresSchema(b)
	st, err := postgres.Open(b.Context(), url, storage.Options{Schema: schema})
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()
	s := sharedReplay{st: st, log: slog.New(slog.DiscardHandler), now: time.Now}
	var n atomic.Uint64
	claim := func() {
		var k [16]byte
		binary.BigEndian.PutUint64(k[:], n.Add(1))
		if ok, err := s.Claim(b.Context(), k, time.Now().Add(time.Minute)); !ok || err != nil {
			b.Fatal(ok, err)
		}
	}
	b.Run("serial", func(b *testing.B) {
		for b.Loop() {
			claim()
		}
	})
	b.Run("parallel64", func(b *testing.B) {
		b.SetParallelism(32)
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				claim()
			}
		})
	})
}
