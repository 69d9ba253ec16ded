package apikey

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"net/netip"
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

// countingStore counts reads and writes, to show what is served from memory.
type countingStore struct {
	storage.Store
	reads, writes atomic.Int64
}

func (c *countingStore) Read(ctx context.Context, fn func(storage.Tx) error) error {
	c.reads.Add(1)
	return c.Store.Read(ctx, fn)
}

func (c *countingStore) Write(ctx context.Context, fn func(storage.Tx) error) error {
	c.writes.Add(1)
	return c.Store.Write(ctx, fn)
}

type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time      { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) Add(d time.Duration) { c.mu.Lock(); c.t = c.t.Add(d); c.mu.Unlock() }

func newService(t testing.TB, st storage.Store) (*Service, *clock) {
	c := &clock{t: time.Date(2026, 3, 14, 15, 9, 26, 0, time.UTC)}
	return New(st, &fakeMAC{}, Options{Now: c.Now}), c
}

var (
	inside  = netip.MustParseAddr("10.1.2.3")
	outside = netip.MustParseAddr("192.168.1.1")
)

func create(t testing.TB, s *Service, req CreateRequest) (string, *Key) {
	t.Helper()
	if req.Project == "" {
		req.Project, req.Env = "shop", "staging"
	}
	if req.Name == "" {
		req.Name = "partner"
	}
	if req.Scopes == nil {
		req.Scopes = []string{"integrations/maps"}
	}
	plain, k, err := s.Create(context.Background(), req, nil)
	if err != nil {
		t.Fatal(err)
	}
	return plain, k
}

func TestCreateVerifyFromCache(t *testing.T) {
	storagetest.Each(t, func(t *testing.T, st storage.Store) {
		cs := &countingStore{Store: st}
		s, _ := newService(t, cs)
		plain, k := create(t, s, CreateRequest{Meta: json.RawMessage(` {"team": "x", "a": [1, 2]} `), CreatedBy: "user:alice", Owner: "acme"})
		if err := credential.ParseType(plain, credential.APIKey); err != nil || !strings.HasPrefix(plain, "kwk_test") {
			t.Fatalf("issued key %v (marker %q)", err, plain[credential.PrefixLen:credential.PrefixLen+4])
		}
		if !ValidID(k.ID) || k.Kind != KindTest || k.CounterID != k.ID || string(k.Meta) != `{"a":[1,2],"team":"x"}` || k.IDHMAC == "" {
			t.Fatalf("key = %+v", k)
		}
		got, res, err := s.Verify(t.Context(), plain, inside)
		if err != nil || got.ID != k.ID || got.Name != "partner" || got.Owner != "acme" || res.Remaining != -1 || res.Rate.Limit != 0 {
			t.Fatalf("verify = %+v %+v %v", got, res, err)
		}
		reads, writes := cs.reads.Load(), cs.writes.Load()
		for range 100 {
			if _, _, err := s.Verify(t.Context(), plain, inside); err != nil {
				t.Fatal(err)
			}
		}
		if cs.reads.Load() != reads || cs.writes.Load() != writes {
			t.Fatalf("cached verifies touched storage: %d reads, %d writes", cs.reads.Load()-reads, cs.writes.Load()-writes)
		}
		// Production keys are marked live.
		live, lk := create(t, s, CreateRequest{Project: "shop", Env: "prod"})
		if !strings.HasPrefix(live, "kwk_live") || lk.Kind != KindLive {
			t.Fatalf("prod key %q kind %q", live[:8], lk.Kind)
		}
	})
}

func TestEnvKind(t *testing.T) {
	for env, want := range map[string]string{"prod": KindLive, "production": KindLive, "Live": KindLive, "staging": KindTest,
		"dev": KindTest, "sandbox": KindTest, "prod2": KindTest, "preprod": KindTest} {
		if got := EnvKind(env); got != want {
			t.Errorf("EnvKind(%q) = %q, want %q", env, got, want)
		}
	}
}

func TestMalformedRejectedBeforeLookup(t *testing.T) {
	cs := &countingStore{Store: storagetest.OpenSQLite(t, storage.Options{})}
	s, _ := newService(t, cs)
	good, _ := create(t, s, CreateRequest{})
	flip := good[:len(good)-1] + map[bool]string{true: "A", false: "B"}[good[len(good)-1] != 'A']
	reads := cs.reads.Load()
	for name, in := range map[string]string{
		"empty": "", "bad checksum": flip, "truncated": good[:30], "token type": "kwt_" + good[4:], "garbage": "not-a-key",
		"extra": good + "x", "non-base62": good[:10] + "-" + good[11:],
	} {
		if _, err := s.Lookup(t.Context(), in); !errors.Is(err, ErrMalformed) {
			t.Errorf("%s: %v, want ErrMalformed", name, err)
		}
	}
	if cs.reads.Load() != reads {
		t.Fatalf("malformed keys cost %d storage reads", cs.reads.Load()-reads)
	}
	if _, err := s.Lookup(t.Context(), credential.NewMarked(credential.APIKey, "test")); !errors.Is(err, ErrNotFound) {
		t.Fatalf("unknown key: %v", err)
	}
}

func TestCreateValidation(t *testing.T) {
	s, _ := newService(t, storagetest.OpenSQLite(t, storage.Options{}))
	big := `{"x":"` + strings.Repeat("a", MaxMetaBytes) + `"}`
	for name, req := range map[string]CreateRequest{
		"no name":            {Name: "", Scopes: []string{"integrations/maps"}},
		"control in owner":   {Name: "n", Owner: "a\x00", Scopes: []string{"integrations/maps"}},
		"control in name":    {Name: "a\nb", Scopes: []string{"integrations/maps"}},
		"no scope":           {Name: "n", Scopes: []string{}},
		"empty segment":      {Name: "n", Scopes: []string{"integrations//maps"}},
		"dotdot":             {Name: "n", Scopes: []string{"integrations/../secrets"}},
		"bad wildcard":       {Name: "n", Scopes: []string{"integrations/ma?s"}},
		"partial globstar":   {Name: "n", Scopes: []string{"integrations/m**"}},
		"meta too large":     {Name: "n", Scopes: []string{"a"}, Meta: json.RawMessage(big)},
		"meta invalid json":  {Name: "n", Scopes: []string{"a"}, Meta: json.RawMessage(`{"team":`)},
		"meta array":         {Name: "n", Scopes: []string{"a"}, Meta: json.RawMessage(`["x"]`)},
		"meta string":        {Name: "n", Scopes: []string{"a"}, Meta: json.RawMessage(`"x"`)},
		"negative quota":     {Name: "n", Scopes: []string{"a"}, Quota: -1},
		"refill no quota":    {Name: "n", Scopes: []string{"a"}, Refill: Refill{Period: "daily"}},
		"refill bad period":  {Name: "n", Scopes: []string{"a"}, Quota: 5, Refill: Refill{Period: "weekly"}},
		"refill amount only": {Name: "n", Scopes: []string{"a"}, Quota: 5, Refill: Refill{Amount: 5}},
		"bad rate":           {Name: "n", Scopes: []string{"a"}, Rate: ratelimit.Limit{Count: 5, Period: time.Millisecond}},
		"negative ttl":       {Name: "n", Scopes: []string{"a"}, TTL: -time.Second},
		"ttl too long":       {Name: "n", Scopes: []string{"a"}, TTL: MaxTTL + time.Hour},
	} {
		req.Project, req.Env = "shop", "staging"
		if _, _, err := s.Create(t.Context(), req, nil); !errors.Is(err, ErrInvalid) {
			t.Errorf("%s: %v, want ErrInvalid", name, err)
		}
	}
	if keys, _ := s.List(t.Context(), "shop", "staging", 0, ""); len(keys) != 0 {
		t.Fatalf("invalid requests stored %d keys", len(keys))
	}
	// The environment check runs when configured.
	s.opts.EnvExists = func(ctx context.Context, p, e string) error { return ErrEnvNotFound }
	if _, _, err := s.Create(t.Context(), CreateRequest{Project: "shop", Env: "nope", Name: "n", Scopes: []string{"a"}}, nil); !errors.Is(err, ErrEnvNotFound) {
		t.Fatalf("missing env: %v", err)
	}
}

// Exactly the quota succeeds under 64 concurrent callers, on both backends,
// half of them verifying (the verify API) and half authenticating then
// charging (the gateway).
func TestQuotaExactUnderConcurrency(t *testing.T) {
	storagetest.Each(t, func(t *testing.T, st storage.Store) {
		s, _ := newService(t, st)
		const quota = 100
		plain, k := create(t, s, CreateRequest{Quota: quota})
		var ok, exceeded, other atomic.Int64
		var wg sync.WaitGroup
		start := make(chan struct{})
		for i := range 64 {
			use := func() error {
				_, _, err := s.Verify(context.Background(), plain, inside)
				return err
			}
			if i%2 == 1 {
				use = func() error {
					k, err := s.Authenticate(context.Background(), plain, inside)
					if err != nil {
						return err
					}
					_, err = s.Charge(context.Background(), k, inside)
					return err
				}
			}
			wg.Go(func() {
				<-start
				for range 3 {
					err := use()
					switch {
					case err == nil:
						ok.Add(1)
					case errors.Is(err, ErrUsageExceeded):
						exceeded.Add(1)
					default:
						other.Add(1)
						t.Error(err)
					}
				}
			})
		}
		close(start)
		wg.Wait()
		if ok.Load() != quota || exceeded.Load() != 64*3-quota || other.Load() != 0 {
			t.Fatalf("ok %d, exceeded %d, other %d; want exactly %d ok", ok.Load(), exceeded.Load(), other.Load(), quota)
		}
		got, err := s.Get(t.Context(), "shop", "staging", k.ID)
		if err != nil || got.Remaining != 0 {
			t.Fatalf("remaining after = %+v, %v", got, err)
		}
	})
}

func TestQuotaRefill(t *testing.T) {
	storagetest.Each(t, func(t *testing.T, st storage.Store) {
		cs := &countingStore{Store: st}
		s, clk := newService(t, cs)
		plain, _ := create(t, s, CreateRequest{Quota: 2, Refill: Refill{Period: "daily", Amount: 3}})
		for want := int64(1); want >= 0; want-- {
			_, res, err := s.Verify(t.Context(), plain, inside)
			if err != nil || res.Remaining != want {
				t.Fatalf("use: %+v %v, want remaining %d", res, err, want)
			}
		}
		if _, _, err := s.Verify(t.Context(), plain, inside); !errors.Is(err, ErrUsageExceeded) {
			t.Fatalf("third use: %v", err)
		}
		// Known to be exhausted: further uses cost no storage until the refill.
		reads, writes := cs.reads.Load(), cs.writes.Load()
		for range 10 {
			if _, _, err := s.Verify(t.Context(), plain, inside); !errors.Is(err, ErrUsageExceeded) {
				t.Fatalf("exhausted use: %v", err)
			}
		}
		if cs.reads.Load() != reads || cs.writes.Load() != writes {
			t.Fatalf("exhausted uses touched storage: %d reads, %d writes", cs.reads.Load()-reads, cs.writes.Load()-writes)
		}
		k, _ := s.Lookup(t.Context(), plain)
		if res, err := s.Check(t.Context(), k, inside, CheckOptions{Peek: true}); err != nil || res.Remaining != 0 {
			t.Fatalf("peek before refill: %+v %v", res, err)
		}
		clk.Add(9 * time.Hour) // past midnight UTC
		if res, err := s.Check(t.Context(), k, inside, CheckOptions{Peek: true}); err != nil || res.Remaining != 3 {
			t.Fatalf("peek after refill is due: %+v %v", res, err)
		}
		for want := int64(2); want >= 0; want-- {
			_, res, err := s.Verify(t.Context(), plain, inside)
			if err != nil || res.Remaining != want {
				t.Fatalf("use after refill: %+v %v, want remaining %d", res, err, want)
			}
		}
		if _, _, err := s.Verify(t.Context(), plain, inside); !errors.Is(err, ErrUsageExceeded) {
			t.Fatalf("after the refill is used: %v", err)
		}
	})
}

func TestPeriodStart(t *testing.T) {
	at := time.Date(2026, 2, 28, 23, 59, 0, 0, time.FixedZone("x", 3*3600))
	if got := periodStart(RefillDaily, at); !got.Equal(time.Date(2026, 2, 28, 0, 0, 0, 0, time.UTC)) {
		t.Errorf("daily = %v", got)
	}
	if got := periodStart(RefillMonthly, at); !got.Equal(time.Date(2026, 2, 1, 0, 0, 0, 0, time.UTC)) {
		t.Errorf("monthly = %v", got)
	}
	k := &Key{Refill: Refill{Period: RefillMonthly}}
	if got := k.NextRefill(at); !got.Equal(time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)) {
		t.Errorf("next monthly refill = %v", got)
	}
	k.Refill.Period = RefillDaily
	if got := k.NextRefill(at); !got.Equal(time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)) {
		t.Errorf("next daily refill = %v", got)
	}
	if got := (&Key{}).NextRefill(at); !got.IsZero() {
		t.Errorf("no refill = %v", got)
	}
}

func TestRateLimit(t *testing.T) {
	s, clk := newService(t, storagetest.OpenSQLite(t, storage.Options{}))
	plain, _ := create(t, s, CreateRequest{Rate: ratelimit.Limit{Count: 2, Period: time.Minute}, Quota: 10})
	for want := 1; want >= 0; want-- {
		if _, res, err := s.Verify(t.Context(), plain, inside); err != nil || res.Rate.Remaining != want || res.Rate.Limit != 2 {
			t.Fatalf("use: %+v %v", res, err)
		}
	}
	_, res, err := s.Verify(t.Context(), plain, inside)
	if !errors.Is(err, ErrRateLimited) || res.Rate.RetryAfter != 30*time.Second {
		t.Fatalf("third use: %+v %v", res, err)
	}
	// A refused request burns no quota.
	k, _ := s.Lookup(t.Context(), plain)
	if r, _ := s.Check(t.Context(), k, inside, CheckOptions{Peek: true}); r.Remaining != 8 {
		t.Fatalf("quota after a throttled request: %d, want 8", r.Remaining)
	}
	clk.Add(30 * time.Second)
	if _, _, err := s.Verify(t.Context(), plain, inside); err != nil {
		t.Fatalf("after 30s: %v", err)
	}
}

// Authenticate checks a key without spending anything; Charge spends one
// request of the rate and one unit of the quota and records the use.
func TestAuthenticateSpendsNothingChargeSpendsOne(t *testing.T) {
	storagetest.Each(t, func(t *testing.T, st storage.Store) {
		cs := &countingStore{Store: st}
		s, clk := newService(t, cs)
		plain, _ := create(t, s, CreateRequest{Rate: ratelimit.Limit{Count: 3, Period: time.Minute}, Quota: 5,
			CIDRs: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}, TTL: time.Hour})
		k, err := s.Authenticate(t.Context(), plain, inside)
		if err != nil {
			t.Fatal(err)
		}
		writes := cs.writes.Load()
		for range 20 {
			if _, err := s.Authenticate(t.Context(), plain, inside); err != nil {
				t.Fatal(err)
			}
		}
		if cs.writes.Load() != writes {
			t.Fatalf("authentications wrote %d times", cs.writes.Load()-writes)
		}
		peek := func() Result {
			t.Helper()
			r, err := s.Check(t.Context(), k, inside, CheckOptions{Peek: true})
			if err != nil {
				t.Fatal(err)
			}
			return r
		}
		if r := peek(); r.Remaining != 5 || r.Rate.Remaining != 3 {
			t.Fatalf("after authenticating only: quota %d, rate %d left; want 5 and 3", r.Remaining, r.Rate.Remaining)
		}
		if got, _ := s.Get(t.Context(), "shop", "staging", k.ID); !got.LastUsedAt.IsZero() {
			t.Fatalf("authenticating recorded a use at %v", got.LastUsedAt)
		}
		for want := int64(4); want >= 2; want-- {
			res, err := s.Charge(t.Context(), k, inside)
			if err != nil || res.Remaining != want || res.Rate.Remaining != int(want)-2 {
				t.Fatalf("charge: %+v %v, want quota %d", res, err, want)
			}
		}
		// Over the rate: refused, and the quota is untouched.
		if res, err := s.Charge(t.Context(), k, inside); !errors.Is(err, ErrRateLimited) || res.Rate.RetryAfter != 20*time.Second {
			t.Fatalf("fourth charge: %+v %v", res, err)
		}
		if r := peek(); r.Remaining != 2 {
			t.Fatalf("quota after a throttled charge: %d, want 2", r.Remaining)
		}
		if got, _ := s.Get(t.Context(), "shop", "staging", k.ID); !got.LastUsedAt.Equal(clk.Now()) || got.LastUsedAddr != inside.String() {
			t.Fatalf("charge recorded %v %q", got.LastUsedAt, got.LastUsedAddr)
		}
		// The key's own state is Authenticate's to check.
		if _, err := s.Authenticate(t.Context(), plain, outside); !errors.Is(err, ErrSourceDenied) {
			t.Fatalf("from outside its CIDRs: %v", err)
		}
		flip := map[bool]string{true: "A", false: "B"}[plain[len(plain)-1] != 'A']
		if _, err := s.Authenticate(t.Context(), plain[:len(plain)-1]+flip, inside); !errors.Is(err, ErrMalformed) {
			t.Fatalf("bad checksum: %v", err)
		}
		clk.Add(time.Hour)
		if _, err := s.Authenticate(t.Context(), plain, inside); !errors.Is(err, ErrExpired) {
			t.Fatalf("expired: %v", err)
		}
		other, _ := create(t, s, CreateRequest{})
		ok, _ := s.Lookup(t.Context(), other)
		if _, err := s.Revoke(t.Context(), "shop", "staging", ok.ID, nil); err != nil {
			t.Fatal(err)
		}
		if _, err := s.Authenticate(t.Context(), other, inside); !errors.Is(err, ErrRevoked) {
			t.Fatalf("revoked: %v", err)
		}
	})
}

func TestExpiryCIDRAndScope(t *testing.T) {
	s, clk := newService(t, storagetest.OpenSQLite(t, storage.Options{}))
	plain, _ := create(t, s, CreateRequest{TTL: time.Hour, CIDRs: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")},
		Scopes: []string{"integrations/maps", "integrations/geo-*"}})
	k, err := s.Lookup(t.Context(), plain)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		src      netip.Addr
		resource string
		want     error
	}{
		{inside, "", nil},
		{netip.MustParseAddr("::ffff:10.9.9.9"), "", nil},
		{outside, "", ErrSourceDenied},
		{netip.Addr{}, "", ErrSourceDenied},
		{inside, "integrations/maps", nil},
		{inside, "integrations/geo-eu", nil},
		{inside, "integrations/payments", ErrScopeDenied},
		{inside, "integrations/maps/extra", ErrScopeDenied},
	} {
		if _, err := s.Check(t.Context(), k, c.src, CheckOptions{Resource: c.resource}); !errors.Is(err, c.want) && (err != nil || c.want != nil) {
			t.Errorf("check from %v on %q: %v, want %v", c.src, c.resource, err, c.want)
		}
	}
	clk.Add(time.Hour)
	if _, _, err := s.Verify(t.Context(), plain, inside); !errors.Is(err, ErrExpired) {
		t.Fatalf("after the ttl: %v", err)
	}
}

func TestRevokeReachesOtherNodes(t *testing.T) {
	storagetest.Each(t, func(t *testing.T, st storage.Store) {
		a, _ := newService(t, st)
		b, _ := newService(t, st)
		ctx := t.Context()
		poller := events.NewPoller(st, b.HandleEvent, events.Options{})
		if err := poller.Init(ctx); err != nil {
			t.Fatal(err)
		}
		plain, k := create(t, a, CreateRequest{})
		quotaPlain, qk := create(t, a, CreateRequest{Quota: 100})
		for _, p := range []string{plain, quotaPlain} {
			if _, _, err := b.Verify(ctx, p, inside); err != nil { // now cached on b
				t.Fatal(err)
			}
		}
		for _, id := range []string{k.ID, qk.ID} {
			if _, err := a.Revoke(ctx, "shop", "staging", id, nil); err != nil {
				t.Fatal(err)
			}
		}
		// On a: at once.
		if _, _, err := a.Verify(ctx, plain, inside); !errors.Is(err, ErrRevoked) {
			t.Fatalf("node a: %v", err)
		}
		// A quota key is counted in storage, which knows at once.
		if _, _, err := b.Verify(ctx, quotaPlain, inside); !errors.Is(err, ErrRevoked) {
			t.Fatalf("quota key on node b before the poll: %v", err)
		}
		if err := poller.Poll(ctx); err != nil {
			t.Fatal(err)
		}
		if _, _, err := b.Verify(ctx, plain, inside); !errors.Is(err, ErrRevoked) {
			t.Fatalf("node b after poll: %v", err)
		}
		// Revoking again is harmless; a key of another environment is not found.
		if _, err := a.Revoke(ctx, "shop", "staging", k.ID, nil); err != nil {
			t.Fatal(err)
		}
		if _, err := a.Revoke(ctx, "shop", "prod", k.ID, nil); !errors.Is(err, ErrNotFound) {
			t.Fatalf("revoke in the wrong env: %v", err)
		}
	})
}

func TestRotationGrace(t *testing.T) {
	storagetest.Each(t, func(t *testing.T, st storage.Store) {
		s, clk := newService(t, st)
		ctx := t.Context()
		oldPlain, old := create(t, s, CreateRequest{Quota: 10, TTL: 48 * time.Hour, Meta: json.RawMessage(`{"team":"x"}`)})
		if _, _, err := s.Verify(ctx, oldPlain, inside); err != nil { // cached, 9 left
			t.Fatal(err)
		}
		clk.Add(time.Hour)
		newPlain, next, prev, err := s.Rotate(ctx, "shop", "staging", old.ID, 2*time.Hour, "user:bob", nil)
		if err != nil {
			t.Fatal(err)
		}
		if next.RotatedFrom != old.ID || prev.RotatedTo != next.ID || next.Name != old.Name || string(next.Meta) != `{"team":"x"}` ||
			next.Remaining != 9 || !next.ExpiresAt.Equal(clk.Now().Add(48*time.Hour)) || !strings.HasPrefix(newPlain, "kwk_test") {
			t.Fatalf("rotated: next %+v prev %+v", next, prev)
		}
		if prev.Status(clk.Now()) != "grace" {
			t.Fatalf("old key status %q", prev.Status(clk.Now()))
		}
		// Both work during the grace period and share one quota.
		for _, p := range []string{oldPlain, newPlain, oldPlain} {
			if _, _, err := s.Verify(ctx, p, inside); err != nil {
				t.Fatalf("during grace: %v", err)
			}
		}
		got, _ := s.Get(ctx, "shop", "staging", next.ID)
		if got.Remaining != 6 {
			t.Fatalf("shared quota: %d left, want 6", got.Remaining)
		}
		// Rotating the old key again is refused; rotating the new one moves
		// the old key's counter along.
		if _, _, _, err := s.Rotate(ctx, "shop", "staging", old.ID, time.Hour, "u", nil); !errors.Is(err, ErrAlreadyRotated) {
			t.Fatalf("second rotation of the old key: %v", err)
		}
		thirdPlain, third, _, err := s.Rotate(ctx, "shop", "staging", next.ID, time.Hour, "u", nil)
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range []string{oldPlain, newPlain, thirdPlain} {
			if _, _, err := s.Verify(ctx, p, inside); err != nil {
				t.Fatalf("during overlapping grace periods: %v", err)
			}
		}
		if got, _ := s.Get(ctx, "shop", "staging", third.ID); got.Remaining != 3 {
			t.Fatalf("chain quota: %d left, want 3", got.Remaining)
		}
		// The grace ends: the old keys stop, the newest works.
		clk.Add(2 * time.Hour)
		for _, p := range []string{oldPlain, newPlain} {
			if _, _, err := s.Verify(ctx, p, inside); !errors.Is(err, ErrRevoked) {
				t.Fatalf("after grace: %v", err)
			}
		}
		if _, _, err := s.Verify(ctx, thirdPlain, inside); err != nil {
			t.Fatal(err)
		}
		if _, _, _, err := s.Rotate(ctx, "shop", "staging", third.ID, -time.Second, "u", nil); !errors.Is(err, ErrInvalid) {
			t.Fatalf("negative grace: %v", err)
		}
		// Grace 0 revokes at once.
		p4, k4 := create(t, s, CreateRequest{})
		if _, _, _, err := s.Rotate(ctx, "shop", "staging", k4.ID, 0, "u", nil); err != nil {
			t.Fatal(err)
		}
		if _, _, err := s.Verify(ctx, p4, inside); !errors.Is(err, ErrRevoked) {
			t.Fatalf("grace 0: %v", err)
		}
	})
}

func TestLastUseIsBatched(t *testing.T) {
	storagetest.Each(t, func(t *testing.T, st storage.Store) {
		cs := &countingStore{Store: st}
		s, clk := newService(t, cs)
		plain, k := create(t, s, CreateRequest{})
		writes := cs.writes.Load()
		for range 50 {
			if _, _, err := s.Verify(t.Context(), plain, inside); err != nil {
				t.Fatal(err)
			}
		}
		clk.Add(time.Second)
		s.Verify(t.Context(), plain, outside)
		if cs.writes.Load() != writes {
			t.Fatalf("verifies wrote %d times", cs.writes.Load()-writes)
		}
		// Get shows the unwritten use.
		if got, _ := s.Get(t.Context(), "shop", "staging", k.ID); !got.LastUsedAt.Equal(clk.Now()) || got.LastUsedAddr != outside.String() {
			t.Fatalf("overlay: %v %q", got.LastUsedAt, got.LastUsedAddr)
		}
		if err := s.Flush(t.Context()); err != nil {
			t.Fatal(err)
		}
		if err := s.Flush(t.Context()); err != nil { // nothing queued: no write
			t.Fatal(err)
		}
		if n := cs.writes.Load() - writes; n != 1 {
			t.Fatalf("flushes wrote %d times, want 1", n)
		}
		other, _ := newService(t, st)
		got, err := other.Get(t.Context(), "shop", "staging", k.ID)
		if err != nil || !got.LastUsedAt.Equal(clk.Now()) || got.LastUsedAddr != outside.String() {
			t.Fatalf("stored last use: %+v %v", got, err)
		}
	})
}

func TestListAndGet(t *testing.T) {
	s, _ := newService(t, storagetest.OpenSQLite(t, storage.Options{}))
	var ids []string
	for range 5 {
		_, k := create(t, s, CreateRequest{})
		ids = append(ids, k.ID)
	}
	create(t, s, CreateRequest{Project: "shop", Env: "prod"})
	keys, err := s.List(t.Context(), "shop", "staging", 3, "")
	if err != nil || len(keys) != 3 {
		t.Fatalf("page 1: %d %v", len(keys), err)
	}
	rest, _ := s.List(t.Context(), "shop", "staging", 3, keys[2].ID)
	if len(rest) != 2 {
		t.Fatalf("page 2: %d", len(rest))
	}
	if _, err := s.Get(t.Context(), "shop", "prod", ids[0]); !errors.Is(err, ErrNotFound) {
		t.Fatalf("get in the wrong env: %v", err)
	}
	if _, err := s.Get(t.Context(), "shop", "staging", "key_nope"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("get a bad id: %v", err)
	}
}

func TestSealed(t *testing.T) {
	m := &fakeMAC{}
	s := New(storagetest.OpenSQLite(t, storage.Options{}), m, Options{})
	plain, _ := create(t, s, CreateRequest{})
	s.Purge()
	m.sealed.Store(true)
	if _, _, err := s.Verify(t.Context(), plain, inside); !errors.Is(err, ErrSealed) {
		t.Fatalf("sealed verify: %v", err)
	}
}

func TestParseDuration(t *testing.T) {
	good := map[string]time.Duration{"": 0, "90d": 90 * 24 * time.Hour, "1d": 24 * time.Hour, "2w": 14 * 24 * time.Hour,
		"36h": 36 * time.Hour, "1h30m": 90 * time.Minute, "0d": 0}
	for in, want := range good {
		if got, err := ParseDuration("ttl", in); err != nil || got != want {
			t.Errorf("ParseDuration(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	for _, in := range []string{"d", "-1d", "1.5d", "09d", "x", "90", "1e3d", "99999999d", "-5m", "3660d0"} {
		if got, err := ParseDuration("ttl", in); !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), "ttl") {
			t.Errorf("ParseDuration(%q) = %v, %v; want an error naming ttl", in, got, err)
		}
	}
}

func FuzzParseDuration(f *testing.F) {
	for _, s := range []string{"90d", "2w", "1h", "", "0d", "99999999999999999999d", "1.5h", "-1d"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		d, err := ParseDuration("ttl", s)
		if err != nil {
			if !errors.Is(err, ErrInvalid) {
				t.Fatalf("error %v does not wrap ErrInvalid", err)
			}
			return
		}
		if d < 0 {
			t.Fatalf("ParseDuration(%q) = %v", s, d)
		}
	})
}

func FuzzParseRefill(f *testing.F) {
	for _, s := range []string{"daily", "monthly", "Day", "", "weekly", "MONTH"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		p, err := ParseRefill(s)
		if err != nil {
			if !errors.Is(err, ErrInvalid) {
				t.Fatalf("error %v does not wrap ErrInvalid", err)
			}
			return
		}
		if p != "" && p != RefillDaily && p != RefillMonthly || p == "" && s != "" {
			t.Fatalf("ParseRefill(%q) = %q", s, p)
		}
	})
}

func FuzzNormalizeMeta(f *testing.F) {
	for _, s := range []string{`{"team":"x"}`, `{}`, `null`, `[]`, `{"a":{"b":[1,2,{"c":null}]}}`, `{"a":1}{"b":2}`, "{\"\xff\":1}", ` `} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		out, err := NormalizeMeta(in)
		if err != nil {
			if !errors.Is(err, ErrInvalid) {
				t.Fatalf("error %v does not wrap ErrInvalid", err)
			}
			return
		}
		if out == nil {
			return
		}
		if len(out) > MaxMetaBytes*2 || !json.Valid(out) || out[0] != '{' {
			t.Fatalf("NormalizeMeta(%q) = %q", in, out)
		}
		again, err := NormalizeMeta(out)
		if err != nil || string(again) != string(out) {
			t.Fatalf("not idempotent: %q → %q (%v)", out, again, err)
		}
	})
}

func FuzzLookup(f *testing.F) {
	f.Add("kwk_")
	f.Add(credential.NewMarked(credential.APIKey, "test"))
	f.Add("kwk_0000000000000000000000000000000000000000000000")
	s, _ := newService(f, storagetest.OpenSQLite(f, storage.Options{}))
	f.Fuzz(func(t *testing.T, in string) {
		if k, err := s.Lookup(context.Background(), in); err == nil {
			t.Fatalf("fuzzed input found a key: %+v", k)
		}
	})
}

// The benchmarks run with the real barrier's pooled HMAC, as the server does.
func benchService(b *testing.B) *Service {
	res, err := barrier.Init(1, 1)
	if err != nil {
		b.Fatal(err)
	}
	bar := barrier.New()
	if err := bar.UnsealKey(res.RootKey, res.Keyring); err != nil {
		b.Fatal(err)
	}
	return New(storagetest.OpenSQLite(b, storage.Options{}), bar, Options{})
}

// BenchmarkVerifyCached is the in-process cost of verifying a cached key:
// format and checksum, HMAC, cache lookup, state checks, the rate limiter
// and the last-use note.
func BenchmarkVerifyCached(b *testing.B) {
	for _, c := range []struct {
		name string
		rate ratelimit.Limit
	}{{"no-rate", ratelimit.Limit{}}, {"rate", ratelimit.Limit{Count: 1_000_000_000, Period: time.Second}}} {
		b.Run(c.name, func(b *testing.B) {
			s := benchService(b)
			plain, _ := create(b, s, CreateRequest{Rate: c.rate})
			ctx := context.Background()
			s.Verify(ctx, plain, inside)
			b.ReportAllocs()
			for b.Loop() {
				if _, _, err := s.Verify(ctx, plain, inside); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
	// The gateway's path: Authenticate at the edge, Charge once the call
	// is authorised.
	b.Run("authenticate-charge", func(b *testing.B) {
		s := benchService(b)
		plain, _ := create(b, s, CreateRequest{Rate: ratelimit.Limit{Count: 1_000_000_000, Period: time.Second}})
		ctx := context.Background()
		s.Verify(ctx, plain, inside)
		b.ReportAllocs()
		for b.Loop() {
			k, err := s.Authenticate(ctx, plain, inside)
			if err != nil {
				b.Fatal(err)
			}
			if _, err := s.Charge(ctx, k, inside); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("rate-parallel", func(b *testing.B) {
		s := benchService(b)
		plain, _ := create(b, s, CreateRequest{Rate: ratelimit.Limit{Count: 1_000_000_000, Period: time.Second}})
		ctx := context.Background()
		s.Verify(ctx, plain, inside)
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				if _, _, err := s.Verify(ctx, plain, inside); err != nil {
					b.Fatal(err)
				}
			}
		})
	})
}

// gateStore holds the first Write until released, and can fail Writes.
type gateStore struct {
	storage.Store
	gate     chan struct{}
	entered  chan struct{}
	writes   atomic.Int64
	failNext atomic.Bool
}

var errInjected = errors.New("injected storage failure")

func (g *gateStore) Write(ctx context.Context, fn func(storage.Tx) error) error {
	if g.writes.Add(1) == 1 && g.gate != nil {
		close(g.entered)
		<-g.gate
	}
	if g.failNext.CompareAndSwap(true, false) {
		return errInjected
	}
	return g.Store.Write(ctx, fn)
}

// Uses queued while a commit runs are committed together in the next one,
// each still conditional, and every caller is answered.
func TestQuotaUsesAreGroupCommitted(t *testing.T) {
	base := storagetest.OpenSQLite(t, storage.Options{})
	setup, _ := newService(t, base)
	plain, k := create(t, setup, CreateRequest{Quota: 15})
	g := &gateStore{Store: base, gate: make(chan struct{}), entered: make(chan struct{})}
	s, _ := newService(t, g)
	ctx := context.Background()
	var wg sync.WaitGroup
	var ok, exceeded atomic.Int64
	use := func() {
		defer wg.Done()
		_, _, err := s.Verify(ctx, plain, inside)
		switch {
		case err == nil:
			ok.Add(1)
		case errors.Is(err, ErrUsageExceeded):
			exceeded.Add(1)
		default:
			t.Error(err)
		}
	}
	wg.Add(1)
	go use() // leads, and waits at the gate inside its commit
	<-g.entered
	for range 20 {
		wg.Add(1)
		go use()
	}
	for {
		s.usesMu.Lock()
		n := len(s.uses.queue)
		s.usesMu.Unlock()
		if n == 20 {
			break
		}
		time.Sleep(time.Millisecond)
	}
	close(g.gate)
	wg.Wait()
	if ok.Load() != 15 || exceeded.Load() != 6 {
		t.Fatalf("ok %d, exceeded %d; want 15 and 6", ok.Load(), exceeded.Load())
	}
	if n := g.writes.Load(); n != 2 {
		t.Fatalf("21 uses took %d commits, want 2 (one held, one for the 20 queued behind it)", n)
	}
	got, _ := setup.Get(ctx, "shop", "staging", k.ID)
	if got.Remaining != 0 {
		t.Fatalf("remaining %d", got.Remaining)
	}

	// A failed commit fails its group only; the next caller commits.
	plain2, _ := create(t, setup, CreateRequest{Quota: 5})
	g.failNext.Store(true)
	if _, _, err := s.Verify(ctx, plain2, inside); !errors.Is(err, errInjected) {
		t.Fatalf("failed commit: %v", err)
	}
	if _, res, err := s.Verify(ctx, plain2, inside); err != nil || res.Remaining != 4 {
		t.Fatalf("after a failed commit: %+v %v (the failed use must not count)", res, err)
	}
}

// A key used from a network it was not used from (in NetworkMemory), after
// another one, is reported once; its first network and known ones are not.
func TestNewNetworkIsReported(t *testing.T) {
	storagetest.Each(t, func(t *testing.T, st storage.Store) {
		c := &clock{t: time.Date(2026, 3, 14, 15, 9, 26, 0, time.UTC)}
		var got []string
		s := New(st, &fakeMAC{}, Options{Now: c.Now, OnNewNetwork: func(id, network string, _ time.Time) { got = append(got, network) }})
		plain, _ := create(t, s, CreateRequest{})
		use := func(addr string) {
			t.Helper()
			c.Add(time.Second)
			if _, _, err := s.Verify(t.Context(), plain, netip.MustParseAddr(addr)); err != nil {
				t.Fatal(err)
			}
			if err := s.Flush(t.Context()); err != nil {
				t.Fatal(err)
			}
		}
		use("10.1.2.3")   // the first network: not an anomaly
		use("10.1.2.200") // the same /24
		use("198.51.100.7")
		use("10.1.2.3") // known
		use("2001:db8:aa::1")
		use("2001:db8:aa:ff::2") // the same /48
		if want := "198.51.100.0/24,2001:db8:aa::/48"; strings.Join(got, ",") != want {
			t.Fatalf("reported %v, want %s", got, want)
		}
		// After NetworkMemory without use the key has no history: its next
		// network is a first one again, and the one after it is new.
		c.Add(NetworkMemory + time.Hour)
		use("10.1.2.3")
		if len(got) != 2 {
			t.Fatalf("a first network after a long pause was reported: %v", got)
		}
		use("198.51.100.9")
		if len(got) != 3 || got[2] != "198.51.100.0/24" {
			t.Fatalf("after NetworkMemory: %v", got)
		}
	})
}

func TestNetworkOf(t *testing.T) {
	for in, want := range map[string]string{"10.1.2.3": "10.1.2.0/24", "::ffff:10.1.2.3": "10.1.2.0/24", "2001:db8:aa:bb::1": "2001:db8:aa::/48", "": "", "nope": ""} {
		if got := NetworkOf(in); got != want {
			t.Errorf("NetworkOf(%q) = %q, want %q", in, got, want)
		}
	}
}

// Update changes a key's settings in place: the same key goes on working
// with its new scopes, rate, networks, expiry and quota, on this node at
// once and on another after its event poll; bad values change nothing;
// revoked and rotated keys are refused.
func TestUpdate(t *testing.T) {
	storagetest.Each(t, func(t *testing.T, st storage.Store) {
		a, clk := newService(t, st)
		b, _ := newService(t, st)
		ctx := t.Context()
		poller := events.NewPoller(st, b.HandleEvent, events.Options{})
		if err := poller.Init(ctx); err != nil {
			t.Fatal(err)
		}
		plain, k := create(t, a, CreateRequest{Quota: 10, Refill: Refill{Period: "monthly"}, Scopes: []string{"integrations/maps"}})
		for range 4 {
			if _, _, err := b.Verify(ctx, plain, inside); err != nil { // cached on b, 6 left
				t.Fatal(err)
			}
		}
		name, meta := "acme-gold", json.RawMessage(`{"plan":"gold"}`)
		quota := int64(100)
		rate := ratelimit.Limit{Count: 2, Period: time.Minute}
		day := 24 * time.Hour
		expires := clk.Now().Add(day)
		got, err := a.Update(ctx, "shop", "staging", k.ID, UpdateRequest{Name: &name, Meta: meta, Quota: &quota,
			Rate: &rate, Scopes: []string{"integrations/maps", "integrations/geo", "integrations/geo"},
			CIDRs: []netip.Prefix{netip.MustParsePrefix("10.1.0.0/16")}, TTL: &day}, nil)
		if err != nil {
			t.Fatal(err)
		}
		// The quota grew by 90, and so did what is left; the monthly
		// refill, which gave the old quota, now gives the new one.
		if got.Name != name || string(got.Meta) != `{"plan":"gold"}` || got.Quota != 100 || got.Remaining != 96 ||
			got.Refill.Amount != 100 || len(got.Scopes) != 2 || !got.ExpiresAt.Equal(expires) || got.Rate != rate {
			t.Fatalf("updated: %+v", got)
		}
		stored, err := a.Get(ctx, "shop", "staging", k.ID)
		if err != nil || stored.Remaining != 96 || !stored.Allows("integrations/geo") || len(stored.CIDRs) != 1 {
			t.Fatalf("stored: %+v, %v", stored, err)
		}
		if err := poller.Poll(ctx); err != nil {
			t.Fatal(err)
		}
		for i, want := range []error{nil, nil, ErrRateLimited} { // b reads the new rate of 2/min
			if _, _, err := b.Verify(ctx, plain, inside); !errors.Is(err, want) {
				t.Fatalf("on b after the poll, call %d: %v, want %v", i, err, want)
			}
		}
		if _, _, err := a.Verify(ctx, plain, outside); err == nil {
			t.Fatal("a call from outside the new network was let in")
		}

		// Set what is left; take the quota away; clear the networks.
		rem, zero := int64(1), int64(0)
		if got, err = a.Update(ctx, "shop", "staging", k.ID, UpdateRequest{Remaining: &rem}, nil); err != nil || got.Remaining != 1 {
			t.Fatalf("set remaining: %+v, %v", got, err)
		}
		if got, err = a.Update(ctx, "shop", "staging", k.ID, UpdateRequest{Quota: &zero, CIDRs: []netip.Prefix{}}, nil); err != nil ||
			got.Quota != 0 || got.Refill.Period != "" || len(got.CIDRs) != 0 {
			t.Fatalf("unlimited: %+v, %v", got, err)
		}
		// {} removes the metadata: answered and stored alike.
		if got, err = a.Update(ctx, "shop", "staging", k.ID, UpdateRequest{Meta: json.RawMessage(`{ }`)}, nil); err != nil || got.Meta != nil {
			t.Fatalf("meta {}: %s, %v", got.Meta, err)
		}
		if stored, _ := a.Get(ctx, "shop", "staging", k.ID); stored.Meta != nil {
			t.Fatalf("stored meta after {}: %s", stored.Meta)
		}
		if got, err = a.Update(ctx, "shop", "staging", k.ID, UpdateRequest{Meta: meta}, nil); err != nil || string(got.Meta) != `{"plan":"gold"}` {
			t.Fatalf("meta again: %s, %v", got.Meta, err)
		}

		// Bad values are refused and change nothing.
		empty, long := "", strings.Repeat("x", MaxNameBytes+1)
		neg, past := int64(-1), -time.Minute
		for i, bad := range []UpdateRequest{
			{Name: &empty}, {Name: &long}, {Scopes: []string{}}, {Scopes: []string{"integrations//x"}}, {Meta: json.RawMessage(`[1]`)},
			{Quota: &neg}, {Remaining: &rem}, {TTL: &past}, {Rate: &ratelimit.Limit{Count: -1, Period: time.Second}},
			{Refill: &Refill{Period: "weekly"}},
		} {
			if _, err := a.Update(ctx, "shop", "staging", k.ID, bad, nil); !errors.Is(err, ErrInvalid) {
				t.Errorf("bad update %d: %v, want ErrInvalid", i, err)
			}
		}
		if after, _ := a.Get(ctx, "shop", "staging", k.ID); after.Name != name || after.Quota != 0 || len(after.Scopes) != 2 {
			t.Fatalf("a refused update changed the key: %+v", after)
		}
		if _, err := a.Update(ctx, "shop", "prod", k.ID, UpdateRequest{Name: &name}, nil); !errors.Is(err, ErrNotFound) {
			t.Fatalf("update in the wrong env: %v", err)
		}

		// Disabled: refused here at once and on b after its poll, listed
		// as disabled, not rotatable; enabled again, it works.
		yes, no := true, false
		if got, err = a.Update(ctx, "shop", "staging", k.ID, UpdateRequest{Disabled: &yes}, nil); err != nil || got.Status(clk.Now()) != "disabled" {
			t.Fatalf("disable: %+v, %v", got, err)
		}
		if _, _, err := a.Verify(ctx, plain, inside); !errors.Is(err, ErrDisabled) {
			t.Fatalf("disabled key on a: %v", err)
		}
		if err := poller.Poll(ctx); err != nil {
			t.Fatal(err)
		}
		if _, err := b.Authenticate(ctx, plain, inside); !errors.Is(err, ErrDisabled) {
			t.Fatalf("disabled key on b after the poll: %v", err)
		}
		if _, _, _, err := a.Rotate(ctx, "shop", "staging", k.ID, time.Hour, "u", nil); !errors.Is(err, ErrDisabled) {
			t.Fatalf("rotating a disabled key: %v", err)
		}
		since := got.DisabledAt
		clk.Add(time.Minute)
		if got, _ = a.Update(ctx, "shop", "staging", k.ID, UpdateRequest{Disabled: &yes}, nil); !got.DisabledAt.Equal(since) {
			t.Fatalf("disabling again moved the time: %v, was %v", got.DisabledAt, since)
		}
		if got, err = a.Update(ctx, "shop", "staging", k.ID, UpdateRequest{Disabled: &no}, nil); err != nil || !got.DisabledAt.IsZero() {
			t.Fatalf("enable: %+v, %v", got, err)
		}
		if _, _, err := a.Verify(ctx, plain, inside); err != nil {
			t.Fatalf("enabled again: %v", err)
		}

		// A rotated key's successor holds the settings; a revoked key is done.
		_, next, _, err := a.Rotate(ctx, "shop", "staging", k.ID, time.Hour, "u", nil)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := a.Update(ctx, "shop", "staging", k.ID, UpdateRequest{Name: &name}, nil); !errors.Is(err, ErrAlreadyRotated) {
			t.Fatalf("update of a rotated key: %v", err)
		}
		if _, err := a.Revoke(ctx, "shop", "staging", next.ID, nil); err != nil {
			t.Fatal(err)
		}
		if _, err := a.Update(ctx, "shop", "staging", next.ID, UpdateRequest{Name: &name}, nil); !errors.Is(err, ErrRevoked) {
			t.Fatalf("update of a revoked key: %v", err)
		}
	})
}

// An expired key can be given a new lifetime, from now, and works again;
// "never" (0) takes its expiry away.
func TestUpdateExtendsAnExpiredKey(t *testing.T) {
	s, clk := newService(t, storagetest.OpenSQLite(t, storage.Options{}))
	ctx := t.Context()
	plain, k := create(t, s, CreateRequest{TTL: time.Hour})
	clk.Add(2 * time.Hour)
	if _, _, err := s.Verify(ctx, plain, inside); !errors.Is(err, ErrExpired) {
		t.Fatalf("before: %v, want expired", err)
	}
	week, never := 7*24*time.Hour, time.Duration(0)
	got, err := s.Update(ctx, "shop", "staging", k.ID, UpdateRequest{TTL: &week}, nil)
	if err != nil || !got.ExpiresAt.Equal(clk.Now().Add(week)) {
		t.Fatalf("extend: %v, %v", got.ExpiresAt, err)
	}
	if _, _, err := s.Verify(ctx, plain, inside); err != nil {
		t.Fatalf("after: %v", err)
	}
	if got, err = s.Update(ctx, "shop", "staging", k.ID, UpdateRequest{TTL: &never}, nil); err != nil || !got.ExpiresAt.IsZero() {
		t.Fatalf("never: %v, %v", got.ExpiresAt, err)
	}
}
