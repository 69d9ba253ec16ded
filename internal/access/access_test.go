package access

import (
	"context"
	"errors"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/keyward/keyward/internal/storage"
	"github.com/keyward/keyward/internal/storage/storagetest"
)

type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time      { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) add(d time.Duration) { c.mu.Lock(); c.t = c.t.Add(d); c.mu.Unlock() }

func issued(tx storage.Tx, r *Request) (string, error) { return "acc-" + r.ID, nil }

func TestRequestLifecycle(t *testing.T) {
	storagetest.Each(t, func(t *testing.T, st storage.Store) {
		ctx := t.Context()
		c := &clock{t: time.Unix(1_800_000_000, 0)}
		s := New(st, c.now)
		known := func(p string) bool { return p == "prod-read" || p == "prod-write" }
		r, err := s.Create(ctx, "user:alice", []string{"prod-read", "prod-read"}, 30*time.Minute, " INC-42: payments down ", known, nil)
		if err != nil {
			t.Fatal(err)
		}
		if r.State != Pending || len(r.Policies) != 1 || r.Reason != "INC-42: payments down" || !strings.HasPrefix(r.ID, "acr_") {
			t.Fatalf("created %+v", r)
		}
		if _, err := s.Decide(ctx, r.ID, "user:alice", true, "", nil); !errors.Is(err, ErrSelf) {
			t.Fatalf("self-approval: %v", err)
		}
		if _, err := s.Claim(ctx, r.ID, "user:alice", issued, nil); !errors.Is(err, ErrState) {
			t.Fatalf("claim before approval: %v", err)
		}
		var audited []string
		audit := func(_ context.Context, _ storage.Tx, r *Request) error {
			audited = append(audited, r.State)
			return nil
		}
		if r, err = s.Decide(ctx, r.ID, "user:bob", true, "ok for the incident", audit); err != nil || r.State != Approved || r.DecidedBy != "user:bob" {
			t.Fatalf("approve: %+v, %v", r, err)
		}
		if _, err := s.Decide(ctx, r.ID, "user:carol", false, "", nil); !errors.Is(err, ErrState) {
			t.Fatalf("second decision: %v", err)
		}
		if _, err := s.Claim(ctx, r.ID, "user:bob", issued, nil); !errors.Is(err, ErrNotRequester) {
			t.Fatalf("claim by the approver: %v", err)
		}
		// A failing issue leaves the request approved.
		boom := errors.New("token store down")
		if _, err := s.Claim(ctx, r.ID, "user:alice", func(storage.Tx, *Request) (string, error) { return "", boom }, nil); !errors.Is(err, boom) {
			t.Fatalf("claim with a failing issue: %v", err)
		}
		if r, err = s.Claim(ctx, r.ID, "user:alice", issued, audit); err != nil || r.State != Issued || r.Accessor != "acc-"+r.ID {
			t.Fatalf("claim: %+v, %v", r, err)
		}
		if _, err := s.Claim(ctx, r.ID, "user:alice", issued, nil); !errors.Is(err, ErrState) {
			t.Fatalf("second claim: %v", err)
		}
		if strings.Join(audited, ",") != "approved,issued" {
			t.Fatalf("audited %v", audited)
		}
		got, err := s.Get(ctx, r.ID)
		if err != nil || got.State != Issued || got.TTL != 30*time.Minute || got.Note != "ok for the incident" {
			t.Fatalf("Get = %+v, %v", got, err)
		}

		// Expiry: a pending request after a day, an approval not claimed
		// within the hour.
		c.add(time.Second)
		p, _ := s.Create(ctx, "user:alice", []string{"prod-write"}, 0, "later", known, nil)
		c.add(time.Second)
		a, _ := s.Create(ctx, "user:alice", []string{"prod-write"}, 0, "soon", known, nil)
		s.Decide(ctx, a.ID, "user:bob", true, "", nil)
		c.add(ClaimFor)
		if _, err := s.Claim(ctx, a.ID, "user:alice", issued, nil); !errors.Is(err, ErrState) {
			t.Fatalf("claim after ClaimFor: %v", err)
		}
		c.add(PendingFor)
		if _, err := s.Decide(ctx, p.ID, "user:bob", true, "", nil); !errors.Is(err, ErrState) {
			t.Fatalf("decide after PendingFor: %v", err)
		}
		list, err := s.List(ctx, time.Time{}, 10)
		if err != nil || len(list) != 3 || list[0].ID != a.ID || list[0].State != Expired || list[1].State != Expired || list[2].State != Issued {
			t.Fatalf("List = %+v, %v", list, err)
		}
		if _, err := s.Get(ctx, "acr_nope"); !errors.Is(err, ErrNotFound) {
			t.Fatalf("Get unknown: %v", err)
		}
	})
}

func TestCreateRefuses(t *testing.T) {
	s := New(nil, nil)
	known := func(p string) bool { return p == "ops" }
	for name, tc := range map[string]struct {
		policies []string
		ttl      time.Duration
		reason   string
		want     string
	}{
		"no policy":      {nil, 0, "x", "policies"},
		"root":           {[]string{"root"}, 0, "x", `"root" cannot be requested`},
		"unknown policy": {[]string{"opz"}, 0, "x", `"opz" does not exist`},
		"too long":       {[]string{"ops"}, 13 * time.Hour, "x", "ttl"},
		"too short":      {[]string{"ops"}, time.Second, "x", "ttl"},
		"no reason":      {[]string{"ops"}, 0, "  ", "reason"},
		"long reason":    {[]string{"ops"}, 0, strings.Repeat("x", MaxReason+1), "reason"},
	} {
		if _, err := s.Create(t.Context(), "user:a", tc.policies, tc.ttl, tc.reason, known, nil); !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want ErrInvalid about %q", name, err, tc.want)
		}
	}
}

// Two approvers at once: one wins, the other is told the request moved on.
func TestConcurrentDecisions(t *testing.T) {
	storagetest.Each(t, func(t *testing.T, st storage.Store) {
		s := New(st, nil)
		r, err := s.Create(t.Context(), "user:alice", []string{"ops"}, 0, "x", nil, nil)
		if err != nil {
			t.Fatal(err)
		}
		var ok atomic.Int32
		var wg sync.WaitGroup
		for i := range 8 {
			wg.Go(func() {
				if _, err := s.Decide(t.Context(), r.ID, "user:approver"+string(rune('a'+i)), i%2 == 0, "", nil); err == nil {
					ok.Add(1)
				} else if !errors.Is(err, ErrState) {
					t.Errorf("decision %d: %v", i, err)
				}
			})
		}
		wg.Wait()
		if ok.Load() != 1 {
			t.Fatalf("%d decisions succeeded, want 1", ok.Load())
		}
	})
}
