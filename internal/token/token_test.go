package token

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/keyward/keyward/internal/barrier"
	"github.com/keyward/keyward/internal/credential"
	"github.com/keyward/keyward/internal/events"
	"github.com/keyward/keyward/internal/ratelimit"
	"github.com/keyward/keyward/internal/storage"
	"github.com/keyward/keyward/internal/storage/storagetest"
)

type fakeMAC struct{ sealed atomic.Bool }

func (f *fakeMAC) MAC(purpose string, data []byte) []byte {
	if f.sealed.Load() {
		return nil
	}
	m := hmac.New(sha256.New, []byte("test key/"+purpose))
	m.Write(data)
	return m.Sum(nil)
}

// countingStore counts reads, to show what is served from memory.
type countingStore struct {
	storage.Store
	reads atomic.Int64
}

func (c *countingStore) Read(ctx context.Context, fn func(storage.Tx) error) error {
	c.reads.Add(1)
	return c.Store.Read(ctx, fn)
}

type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time      { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) Add(d time.Duration) { c.mu.Lock(); c.t = c.t.Add(d); c.mu.Unlock() }

func newService(t *testing.T, st storage.Store) (*Service, *clock) {
	c := &clock{t: time.Now()}
	return New(st, &fakeMAC{}, Options{Now: c.Now}), c
}

var local = netip.MustParseAddr("127.0.0.1")

func login(t *testing.T, s *Service, policies ...string) (string, *Token) {
	t.Helper()
	p, tok, err := s.Issue(t.Context(), Request{Principal: "user:alice", AuthMethod: "password", Policies: policies}, nil)
	if err != nil {
		t.Fatal(err)
	}
	return p, tok
}

func TestIssueVerifyFromCache(t *testing.T) {
	storagetest.Each(t, func(t *testing.T, st storage.Store) {
		cs := &countingStore{Store: st}
		s, _ := newService(t, cs)
		plain, tok := login(t, s, "ci", "ci")
		if err := credential.ParseType(plain, credential.AccessToken); err != nil {
			t.Fatalf("issued token %v", err)
		}
		if len(tok.Policies) != 1 || tok.TTL != 15*time.Minute || tok.Accessor == "" || tok.AccessorHMAC == "" {
			t.Fatalf("token = %+v", tok)
		}
		if !tok.ExpiresAt.After(time.Now()) || tok.MaxExpiresAt.Sub(tok.CreatedAt) != 8*time.Hour {
			t.Fatalf("expiry %v max %v", tok.ExpiresAt, tok.MaxExpiresAt)
		}
		got, err := s.Verify(t.Context(), plain, local)
		if err != nil || got.Accessor != tok.Accessor || got.Principal != "user:alice" {
			t.Fatalf("verify = %+v, %v", got, err)
		}
		before := cs.reads.Load()
		for range 10 {
			if _, err := s.Verify(t.Context(), plain, local); err != nil {
				t.Fatal(err)
			}
		}
		if cs.reads.Load() != before {
			t.Fatalf("cache hits read storage %d times", cs.reads.Load()-before)
		}
		// The stored row holds the hash, not the token.
		if storagetest.RawContains(t, st, []byte(plain)) {
			t.Fatal("the token is stored in plaintext")
		}
	})
}

func TestMalformedTokensCostNoLookup(t *testing.T) {
	cs := &countingStore{Store: storagetest.OpenSQLite(t, storage.Options{})}
	s, _ := newService(t, cs)
	good, _ := login(t, s, "p")
	bad := []string{
		"", "kwt_", good[:len(good)-1], good + "x", "kwk_" + good[4:],
		good[:10] + "!" + good[11:],
		good[:len(good)-1] + string(rune('0'+(good[len(good)-1]-'0'+1)%10)), // checksum off by one
	}
	before := cs.reads.Load()
	for _, b := range bad {
		if _, err := s.Verify(t.Context(), b, local); err == nil {
			t.Errorf("Verify(%q) succeeded", b)
		}
	}
	if cs.reads.Load() != before {
		t.Fatal("a malformed token reached storage")
	}
	// A well-formed token nobody issued is looked up and refused.
	if _, err := s.Verify(t.Context(), credential.New(credential.AccessToken), local); !errors.Is(err, ErrInvalid) {
		t.Fatalf("unknown token: %v", err)
	}
}

func TestExpiredFailsEvenWhenCached(t *testing.T) {
	s, clk := newService(t, storagetest.OpenSQLite(t, storage.Options{}))
	plain, _, err := s.Issue(t.Context(), Request{Principal: "p", AuthMethod: "token", Policies: []string{"p"}, TTL: time.Minute}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Verify(t.Context(), plain, local); err != nil {
		t.Fatal(err)
	}
	clk.Add(61 * time.Second)
	if _, err := s.Verify(t.Context(), plain, local); !errors.Is(err, ErrExpired) {
		t.Fatalf("expired cached token: %v", err)
	}
}

func TestRenewUpToMax(t *testing.T) {
	storagetest.Each(t, func(t *testing.T, st storage.Store) {
		s, clk := newService(t, st)
		plain, tok, err := s.Issue(t.Context(), Request{Principal: "p", AuthMethod: "token", Policies: []string{"p"},
			TTL: 10 * time.Minute, MaxTTL: 25 * time.Minute}, nil)
		if err != nil {
			t.Fatal(err)
		}
		s.Verify(t.Context(), plain, local)
		clk.Add(9 * time.Minute)
		r, err := s.Renew(t.Context(), tok.Accessor, 0, nil)
		if err != nil || r.ExpiresAt.Sub(clk.Now()) < 9*time.Minute {
			t.Fatalf("renew = %+v, %v", r, err)
		}
		clk.Add(9 * time.Minute) // 18 min after creation: alive only thanks to the renewal
		if _, err := s.Verify(t.Context(), plain, local); err != nil {
			t.Fatalf("renewed token: %v", err)
		}
		r, err = s.Renew(t.Context(), tok.Accessor, time.Hour, nil)
		if err != nil || !r.ExpiresAt.Equal(tok.MaxExpiresAt) {
			t.Fatalf("renew past max = %v (max %v), %v", r.ExpiresAt, tok.MaxExpiresAt, err)
		}
		clk.Add(8 * time.Minute)
		if _, err := s.Verify(t.Context(), plain, local); !errors.Is(err, ErrExpired) {
			t.Fatalf("past max: %v", err)
		}
		if _, err := s.Renew(t.Context(), tok.Accessor, 0, nil); !errors.Is(err, ErrExpired) {
			t.Fatalf("renew expired: %v", err)
		}
		if _, err := s.Renew(t.Context(), "nope", 0, nil); !errors.Is(err, ErrNotFound) {
			t.Fatalf("renew unknown: %v", err)
		}
	})
}

func TestChildrenCannotExceedParentAndDieWithIt(t *testing.T) {
	storagetest.Each(t, func(t *testing.T, st storage.Store) {
		s, _ := newService(t, st)
		ctx := t.Context()
		pPlain, parent, err := s.Issue(ctx, Request{Principal: "user:a", AuthMethod: "password",
			Policies: []string{"ci", "read"}, TTL: time.Hour, BoundEnvs: []string{"staging"}}, nil)
		if err != nil {
			t.Fatal(err)
		}
		bad := []Request{
			{Policies: []string{"admin"}},
			{Policies: []string{"ci"}, TTL: 2 * time.Hour},
			{Policies: []string{"ci"}, BoundEnvs: []string{"prod"}},
		}
		for _, r := range bad {
			r.Parent, r.Principal, r.AuthMethod = parent, parent.Principal, "token"
			if _, _, err := s.Issue(ctx, r, nil); !errors.Is(err, ErrExceedsParent) {
				t.Errorf("child %+v: err = %v", r, err)
			}
		}
		cPlain, child, err := s.Issue(ctx, Request{Parent: parent, Principal: parent.Principal, AuthMethod: "token",
			Policies: []string{"ci"}, TTL: 10 * time.Minute}, nil)
		if err != nil {
			t.Fatal(err)
		}
		if len(child.BoundEnvs) != 1 || child.BoundEnvs[0] != "staging" || child.Parent != parent.Accessor {
			t.Fatalf("child = %+v", child)
		}
		gPlain, _, err := s.Issue(ctx, Request{Parent: child, Principal: parent.Principal, AuthMethod: "token"}, nil)
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range []string{pPlain, cPlain, gPlain} {
			if _, err := s.Verify(ctx, p, local); err != nil {
				t.Fatal(err)
			}
		}
		n, err := s.Revoke(ctx, parent.Accessor, nil)
		if err != nil || n != 3 {
			t.Fatalf("revoke = %d, %v", n, err)
		}
		for _, p := range []string{pPlain, cPlain, gPlain} {
			if _, err := s.Verify(ctx, p, local); !errors.Is(err, ErrRevoked) {
				t.Fatalf("after revoke: %v", err)
			}
		}
		if n, err := s.Revoke(ctx, parent.Accessor, nil); err != nil || n != 0 {
			t.Fatalf("second revoke = %d, %v", n, err)
		}
	})
}

func TestRevokeRollsBackWithItsAudit(t *testing.T) {
	s, _ := newService(t, storagetest.OpenSQLite(t, storage.Options{}))
	plain, tok := login(t, s, "p")
	boom := errors.New("audit down")
	if _, err := s.Revoke(t.Context(), tok.Accessor, func(context.Context, storage.Tx) error { return boom }); !errors.Is(err, boom) {
		t.Fatalf("revoke = %v", err)
	}
	if _, err := s.Verify(t.Context(), plain, local); err != nil {
		t.Fatalf("a revocation whose audit failed took effect: %v", err)
	}
}

func TestUsesAndCIDRs(t *testing.T) {
	storagetest.Each(t, func(t *testing.T, st storage.Store) {
		s, _ := newService(t, st)
		ctx := t.Context()
		plain, _, err := s.Issue(ctx, Request{Principal: "p", AuthMethod: "token", Policies: []string{"p"}, MaxUses: 2,
			BoundCIDRs: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}}, nil)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := s.Verify(ctx, plain, local); !errors.Is(err, ErrSourceNotAllowed) {
			t.Fatalf("outside CIDR: %v", err)
		}
		in := netip.MustParseAddr("10.1.2.3")
		for i := range 2 {
			if got, err := s.Verify(ctx, plain, in); err != nil || got.Uses != i+1 {
				t.Fatalf("use %d: %+v, %v", i+1, got, err)
			}
		}
		if _, err := s.Verify(ctx, plain, in); !errors.Is(err, ErrUsesExhausted) {
			t.Fatalf("third use: %v", err)
		}
	})
}

// Recheck spends no use: a token whose last use is spent still passes it,
// until it is revoked; it checks the address like Verify.
func TestRecheckSpendsNoUse(t *testing.T) {
	storagetest.Each(t, func(t *testing.T, st storage.Store) {
		s, _ := newService(t, st)
		ctx := t.Context()
		in := netip.MustParseAddr("10.1.2.3")
		plain, tok, err := s.Issue(ctx, Request{Principal: "p", AuthMethod: "token", Policies: []string{"p"}, MaxUses: 1,
			BoundCIDRs: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}}, nil)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := s.Verify(ctx, plain, in); err != nil {
			t.Fatal(err)
		}
		for range 3 {
			if got, err := s.Recheck(ctx, plain, in); err != nil || got.Uses != 1 {
				t.Fatalf("recheck: %+v, %v", got, err)
			}
		}
		if _, err := s.Recheck(ctx, plain, local); !errors.Is(err, ErrSourceNotAllowed) {
			t.Fatalf("recheck outside CIDR: %v", err)
		}
		if _, err := s.Verify(ctx, plain, in); !errors.Is(err, ErrUsesExhausted) {
			t.Fatalf("second use: %v", err)
		}
		if _, err := s.Revoke(ctx, tok.Accessor, nil); err != nil {
			t.Fatal(err)
		}
		if _, err := s.Recheck(ctx, plain, in); !errors.Is(err, ErrRevoked) {
			t.Fatalf("recheck after revocation: %v", err)
		}
	})
}

func TestBadRequests(t *testing.T) {
	s, _ := newService(t, storagetest.OpenSQLite(t, storage.Options{}))
	for _, r := range []Request{
		{Principal: "p", AuthMethod: "x"},                                              // no policy
		{Principal: "p", AuthMethod: "x", Policies: []string{"p"}, TTL: 9 * time.Hour}, // over max
		{Principal: "p", AuthMethod: "x", Policies: []string{"p"}, TTL: -time.Second},  // negative
		{Principal: "p", AuthMethod: "x", Policies: []string{"p"}, BoundEnvs: []string{"a/b/c"}},
		{AuthMethod: "x", Policies: []string{"p"}},
	} {
		if _, _, err := s.Issue(t.Context(), r, nil); !errors.Is(err, ErrBadRequest) {
			t.Errorf("Issue(%+v) = %v", r, err)
		}
	}
}

func TestRevocationReachesOtherNodes(t *testing.T) {
	storagetest.Each(t, func(t *testing.T, st storage.Store) {
		a, _ := newService(t, st)
		b, _ := newService(t, st)
		ctx := t.Context()
		poller := events.NewPoller(st, b.HandleEvent, events.Options{})
		if err := poller.Init(ctx); err != nil {
			t.Fatal(err)
		}
		plain, tok := login(t, a, "p")
		if _, err := b.Verify(ctx, plain, local); err != nil { // now cached on b
			t.Fatal(err)
		}
		if _, err := a.Revoke(ctx, tok.Accessor, nil); err != nil {
			t.Fatal(err)
		}
		if err := poller.Poll(ctx); err != nil {
			t.Fatal(err)
		}
		if _, err := b.Verify(ctx, plain, local); !errors.Is(err, ErrRevoked) {
			t.Fatalf("node b after poll: %v", err)
		}
	})
}

func TestRootToken(t *testing.T) {
	st := storagetest.OpenSQLite(t, storage.Options{})
	s, clk := newService(t, st)
	plain := credential.New(credential.AccessToken)
	h, _ := s.Hash(plain)
	for range 2 { // idempotent
		if err := st.Write(t.Context(), func(tx storage.Tx) error { return s.AdoptRoot(t.Context(), tx, h) }); err != nil {
			t.Fatal(err)
		}
	}
	clk.Add(24 * 365 * time.Hour)
	tok, err := s.Verify(t.Context(), plain, local)
	if err != nil || !tok.IsRoot() || tok.Principal != "root" {
		t.Fatalf("root = %+v, %v", tok, err)
	}
	// Root can create a child with any policy.
	if _, _, err := s.Issue(t.Context(), Request{Parent: tok, Principal: "root", AuthMethod: "token", Policies: []string{"anything"}}, nil); err != nil {
		t.Fatal(err)
	}
}

func TestSealed(t *testing.T) {
	m := &fakeMAC{}
	s := New(storagetest.OpenSQLite(t, storage.Options{}), m, Options{})
	plain, _ := login(t, s, "p")
	m.sealed.Store(true)
	if _, err := s.Verify(t.Context(), plain, local); !errors.Is(err, ErrSealed) {
		t.Fatalf("sealed verify: %v", err)
	}
}

func FuzzVerify(f *testing.F) {
	f.Add("kwt_")
	f.Add(credential.New(credential.AccessToken))
	f.Add("kwt_0000000000000000000000000000000000000000000000")
	s := New(storagetest.OpenSQLite(f, storage.Options{}), &fakeMAC{}, Options{})
	f.Fuzz(func(t *testing.T, in string) {
		if tok, err := s.Verify(context.Background(), in, local); err == nil {
			t.Fatalf("fuzzed input verified: %+v", tok)
		}
	})
}

// The benchmark runs with the real barrier's pooled HMAC, as the server does.
func BenchmarkVerifyCached(b *testing.B) {
	res, err := barrier.Init(1, 1)
	if err != nil {
		b.Fatal(err)
	}
	bar := barrier.New()
	if err := bar.UnsealKey(res.RootKey, res.Keyring); err != nil {
		b.Fatal(err)
	}
	s := New(storagetest.OpenSQLite(b, storage.Options{}), bar, Options{})
	plain, _, err := s.Issue(context.Background(), Request{Principal: "p", AuthMethod: "x", Policies: []string{"p"}}, nil)
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	s.Verify(ctx, plain, local)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := s.Verify(ctx, plain, local); err != nil {
			b.Fatal(err)
		}
	}
}

func TestBindingIsStoredAndInherited(t *testing.T) {
	storagetest.Each(t, func(t *testing.T, st storage.Store) {
		s, _ := newService(t, st)
		ctx := t.Context()
		const jkt = "0ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA4I"
		plain, bound, err := s.Issue(ctx, Request{Principal: "jwt:idp/alice", AuthMethod: "token-exchange", Policies: []string{"maps"}, JKT: jkt}, nil)
		if err != nil {
			t.Fatal(err)
		}
		if bound.JKT != jkt {
			t.Fatalf("issued JKT = %q", bound.JKT)
		}
		got, err := s.Verify(ctx, plain, local)
		if err != nil || got.JKT != jkt {
			t.Fatalf("verify = %+v, %v", got, err)
		}
		if l, err := s.Lookup(ctx, bound.Accessor); err != nil || l.JKT != jkt {
			t.Fatalf("lookup = %+v, %v", l, err)
		}
		// A child asking for nothing is bound to the same key.
		_, child, err := s.Issue(ctx, Request{Parent: got, Principal: got.Principal, AuthMethod: "token"}, nil)
		if err != nil || child.JKT != jkt {
			t.Fatalf("child = %+v, %v", child, err)
		}
		if l, _ := s.Lookup(ctx, child.Accessor); l.JKT != jkt {
			t.Fatalf("stored child JKT = %q", l.JKT)
		}
		// Another key is refused.
		if _, _, err := s.Issue(ctx, Request{Parent: got, Principal: got.Principal, AuthMethod: "token", JKT: "another"}, nil); !errors.Is(err, ErrExceedsParent) {
			t.Fatalf("child bound to another key: %v", err)
		}
		// An unbound token stays unbound (NULL in storage).
		plainU, _ := login(t, s, "p")
		if u, err := s.Verify(ctx, plainU, local); err != nil || u.JKT != "" {
			t.Fatalf("unbound = %+v, %v", u, err)
		}
		var n int
		st.Read(ctx, func(tx storage.Tx) error {
			return tx.QueryRow(ctx, `SELECT COUNT(*) FROM tokens WHERE cnf_jkt IS NULL`).Scan(&n)
		})
		if n != 1 {
			t.Fatalf("%d tokens with a NULL cnf_jkt, want 1", n)
		}
	})
}

// A token's rate is stored, cached and reported; a child inherits its
// parent's and may only narrow it.
func TestRateIsStoredAndInherited(t *testing.T) {
	storagetest.Each(t, func(t *testing.T, st storage.Store) {
		s, _ := newService(t, st)
		ctx := t.Context()
		perMin := func(n int) ratelimit.Limit { return ratelimit.Limit{Count: n, Period: time.Minute} }
		plain, tok, err := s.Issue(ctx, Request{Principal: "service:ci", AuthMethod: "service", Policies: []string{"ci"}, Rate: perMin(100)}, nil)
		if err != nil || tok.Rate != perMin(100) {
			t.Fatalf("issue = %+v, %v", tok, err)
		}
		// From storage (another node), then from the cache.
		other, _ := newService(t, st)
		for range 2 {
			if got, err := other.Verify(ctx, plain, local); err != nil || got.Rate != perMin(100) {
				t.Fatalf("verify = %+v, %v", got, err)
			}
		}
		if l, err := other.Lookup(ctx, tok.Accessor); err != nil || l.Rate != perMin(100) {
			t.Fatalf("lookup = %+v, %v", l, err)
		}
		if f, err := other.Find(ctx, plain); err != nil || f.Rate != perMin(100) {
			t.Fatalf("find = %+v, %v", f, err)
		}
		child := func(rate ratelimit.Limit) (*Token, error) {
			_, c, err := s.Issue(ctx, Request{Parent: tok, Principal: tok.Principal, AuthMethod: "token", Rate: rate}, nil)
			return c, err
		}
		// Nothing asked: the parent's rate.
		if c, err := child(ratelimit.Limit{}); err != nil || c.Rate != perMin(100) {
			t.Fatalf("child asking for no rate = %+v, %v", c, err)
		}
		if c, err := child(ratelimit.Limit{Count: 50, Period: 30 * time.Second}); err != nil || c.Rate.String() != "50/30s" {
			t.Fatalf("narrower child = %+v, %v", c, err)
		}
		for _, looser := range []ratelimit.Limit{perMin(101), {Count: 2, Period: time.Second}, {Count: 6000, Period: time.Hour}} {
			if _, err := child(looser); !errors.Is(err, ErrExceedsParent) || !strings.Contains(err.Error(), "100/min") {
				t.Errorf("child with rate %s: %v, want ErrExceedsParent", looser, err)
			}
		}
		// No rate of its own: a child may have any.
		_, free, _ := s.Issue(ctx, Request{Principal: "user:a", AuthMethod: "password", Policies: []string{"ci"}}, nil)
		if _, c, err := s.Issue(ctx, Request{Parent: free, Principal: "user:a", AuthMethod: "token", Rate: perMin(5)}, nil); err != nil || c.Rate != perMin(5) {
			t.Fatalf("rated child of an unrated token = %+v, %v", c, err)
		}
		if l, _ := s.Lookup(ctx, free.Accessor); !l.Rate.IsZero() {
			t.Fatalf("unrated token read back with rate %v", l.Rate)
		}
		// A row written before migration 0015 (no rate column) reads back
		// unrated.
		err = st.Write(ctx, func(tx storage.Tx) error {
			_, err := tx.Exec(ctx, `INSERT INTO tokens (hash, accessor, parent, principal, auth_method, policies, bound_envs, bound_cidrs, meta,
				ttl, max_uses, uses, created_at, expires_at, max_expires_at, revoked_at)
				VALUES ($1, 'old-accessor', '', 'user:old', 'password', '["ci"]', '[]', '[]', '{}', 0, 0, 0, 1, 0, 0, 0)`, []byte("old-hash"))
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
		if l, err := s.Lookup(ctx, "old-accessor"); err != nil || !l.Rate.IsZero() {
			t.Fatalf("token from before the rate column = %+v, %v", l, err)
		}
		for _, bad := range []ratelimit.Limit{{Count: 0, Period: time.Minute}, {Count: 5, Period: time.Millisecond}, {Count: 5, Period: time.Minute, Burst: 9}} {
			if _, _, err := s.Issue(ctx, Request{Principal: "user:a", AuthMethod: "password", Policies: []string{"ci"}, Rate: bad}, nil); !errors.Is(err, ErrBadRequest) {
				t.Errorf("rate %+v: %v, want ErrBadRequest", bad, err)
			}
		}
		// A row whose rate cannot be read is an error, not "no limit".
		st.Write(ctx, func(tx storage.Tx) error {
			_, err := tx.Exec(ctx, `UPDATE tokens SET rate = 'fast' WHERE accessor = $1`, tok.Accessor)
			return err
		})
		if _, err := s.Lookup(ctx, tok.Accessor); err == nil || !strings.Contains(err.Error(), "corrupt") {
			t.Fatalf("lookup of a corrupt rate: %v", err)
		}
	})
}

func TestFind(t *testing.T) {
	s, clk := newService(t, storagetest.OpenSQLite(t, storage.Options{}))
	ctx := t.Context()
	plain, tok := login(t, s, "p")
	got, err := s.Find(ctx, plain)
	if err != nil || got.Accessor != tok.Accessor || !got.Active(clk.Now()) {
		t.Fatalf("find = %+v, %v", got, err)
	}
	if _, err := s.Revoke(ctx, tok.Accessor, nil); err != nil {
		t.Fatal(err)
	}
	if got, err := s.Find(ctx, plain); err != nil || got.Active(clk.Now()) || got.RevokedAt.IsZero() {
		t.Fatalf("find after revoke = %+v, %v", got, err)
	}
	for _, bad := range []string{"", "not-a-token", credential.New(credential.AccessToken)} {
		if _, err := s.Find(ctx, bad); !errors.Is(err, ErrInvalid) {
			t.Errorf("Find(%q) = %v, want ErrInvalid", bad, err)
		}
	}
	// Use-limited: Find counts no use.
	p2, _, err := s.Issue(ctx, Request{Principal: "user:a", AuthMethod: "password", Policies: []string{"p"}, MaxUses: 1}, nil)
	if err != nil {
		t.Fatal(err)
	}
	for range 3 {
		if got, err := s.Find(ctx, p2); err != nil || got.Uses != 0 || !got.Active(clk.Now()) {
			t.Fatalf("find use-limited = %+v, %v", got, err)
		}
	}
	clk.Add(time.Hour)
	if got, _ := s.Find(ctx, p2); got.Active(clk.Now()) {
		t.Fatal("an expired token is active")
	}
}

// A child's meta is its creator's: bounded, stored as given, and not the
// parent's. A login's meta (the server's) is not bounded by those rules.
func TestChildMeta(t *testing.T) {
	storagetest.Each(t, func(t *testing.T, st storage.Store) {
		s, _ := newService(t, st)
		ctx := t.Context()
		// A JWT login's claims may be named outside the child's key charset.
		plain, parent, err := s.Issue(ctx, Request{Principal: "jwt:idp/alice", AuthMethod: "jwt", Policies: []string{"p"},
			Meta: map[string]string{"issuer": "idp", "https://idp.example/groups": "ops"}}, nil)
		if err != nil {
			t.Fatal(err)
		}
		p, err := s.Verify(ctx, plain, local)
		if err != nil {
			t.Fatal(err)
		}
		meta := map[string]string{"team": "payments", "ticket.id": "OPS-1_2", "note": strings.Repeat("é", MaxMetaValueLen/2)}
		_, child, err := s.Issue(ctx, Request{Parent: p, Principal: p.Principal, AuthMethod: "token", Meta: meta}, nil)
		if err != nil {
			t.Fatal(err)
		}
		meta["team"] = "changed after the call"
		if child.Meta["team"] != "payments" {
			t.Errorf("the issued token shares the caller's map: %v", child.Meta)
		}
		if l, err := s.Lookup(ctx, child.Accessor); err != nil || len(l.Meta) != 3 || l.Meta["team"] != "payments" || l.Meta["issuer"] != "" {
			t.Fatalf("stored child meta = %v, %v", l.Meta, err)
		}
		// Asking for none gets none, not the parent's.
		_, bare, err := s.Issue(ctx, Request{Parent: p, Principal: p.Principal, AuthMethod: "token"}, nil)
		if err != nil {
			t.Fatal(err)
		}
		if l, err := s.Lookup(ctx, bare.Accessor); err != nil || len(l.Meta) != 0 {
			t.Fatalf("child without meta = %v, %v", l.Meta, err)
		}
		if l, err := s.Lookup(ctx, parent.Accessor); err != nil || l.Meta["issuer"] != "idp" {
			t.Fatalf("parent meta = %v, %v", l.Meta, err)
		}

		many := map[string]string{}
		for i := range MaxMetaEntries + 1 {
			many[fmt.Sprintf("k%d", i)] = "v"
		}
		for name, tc := range map[string]struct {
			meta map[string]string
			want string // in the error
		}{
			"too many entries": {many, "at most 16"},
			"empty key":        {map[string]string{"": "v"}, `key ""`},
			"long key":         {map[string]string{strings.Repeat("k", MaxMetaKeyLen+1): "v"}, `key "` + strings.Repeat("k", MaxMetaKeyLen) + `"`},
			"slash in key":     {map[string]string{"ok": "v", "a/b": "v"}, `key "a/b"`},
			"space in key":     {map[string]string{"a b": "v"}, `key "a b"`},
			"non-ASCII key":    {map[string]string{"é": "v"}, `key "é"`},
			"long value":       {map[string]string{"ok": "v", "big": strings.Repeat("v", MaxMetaValueLen+1)}, `key "big"`},
			"control in value": {map[string]string{"esc": "a\x1b[2Jb"}, `key "esc"`},
			"bad UTF-8 value":  {map[string]string{"bin": "a\xffb"}, `key "bin"`},
		} {
			_, _, err := s.Issue(ctx, Request{Parent: p, Principal: p.Principal, AuthMethod: "token", Meta: tc.meta}, nil)
			if !errors.Is(err, ErrBadRequest) || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("%s: %v, want ErrBadRequest naming %s", name, err, tc.want)
			}
			if err != nil && (strings.Contains(err.Error(), "vvvv") || strings.Contains(err.Error(), "\x1b")) {
				t.Errorf("%s: the error shows a value: %v", name, err)
			}
		}
		var n int
		st.Read(ctx, func(tx storage.Tx) error {
			return tx.QueryRow(ctx, `SELECT COUNT(*) FROM tokens`).Scan(&n)
		})
		if n != 3 {
			t.Errorf("%d tokens stored, want 3 (refused children stored nothing)", n)
		}
	})
}

// LongLived lists the live tokens set to live longer than the given span,
// as issued or renewed, and not the short-lived, revoked or expired ones.
func TestLongLived(t *testing.T) {
	storagetest.Each(t, func(t *testing.T, st storage.Store) {
		c := &clock{t: time.Now()}
		s := New(st, &fakeMAC{}, Options{Now: c.Now, MaxTTL: 30 * 24 * time.Hour})
		issue := func(ttl, maxTTL time.Duration) *Token {
			t.Helper()
			_, tok, err := s.Issue(t.Context(), Request{Principal: "service:ci", AuthMethod: "service", Policies: []string{"ci"}, TTL: ttl, MaxTTL: maxTTL}, nil)
			if err != nil {
				t.Fatal(err)
			}
			return tok
		}
		issue(15*time.Minute, 8*time.Hour) // the usual: minutes, renewable for hours
		long := issue(72*time.Hour, 720*time.Hour)
		revoked := issue(72*time.Hour, 720*time.Hour)
		if _, err := s.Revoke(t.Context(), revoked.Accessor, nil); err != nil {
			t.Fatal(err)
		}
		renewed := issue(20*time.Hour, 720*time.Hour) // a day only once renewed
		accessors := func() []string {
			t.Helper()
			got, err := s.LongLived(t.Context(), 24*time.Hour, 100)
			if err != nil {
				t.Fatal(err)
			}
			var out []string
			for _, tok := range got {
				out = append(out, tok.Accessor)
			}
			return out
		}
		if got := accessors(); !slices.Equal(got, []string{long.Accessor}) {
			t.Errorf("LongLived = %v, want only %s", got, long.Accessor)
		}
		c.Add(10 * time.Hour)
		if _, err := s.Renew(t.Context(), renewed.Accessor, 0, nil); err != nil {
			t.Fatal(err)
		}
		if got := accessors(); len(got) != 2 || !slices.Contains(got, renewed.Accessor) {
			t.Errorf("after a renewal past a day: %v, want %s and %s", got, long.Accessor, renewed.Accessor)
		}
	})
}
