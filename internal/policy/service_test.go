package policy

import (
	"context"
	"errors"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/keyward/keyward/internal/storage"
	"github.com/keyward/keyward/internal/storage/storagetest"
)

// auditLog is an AuditFunc that records which policies its transaction
// sees (the change is not committed yet, so seeing it proves the audit runs
// inside the change's transaction) and counts its calls.
type auditLog struct {
	mu    sync.Mutex
	calls int
	seen  []string
	fail  error
}

func (a *auditLog) fn(ctx context.Context, tx storage.Tx) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.calls++
	if a.fail != nil {
		return a.fail
	}
	rows, err := tx.Query(ctx, `SELECT name FROM policies ORDER BY name`)
	if err != nil {
		return err
	}
	defer rows.Close()
	a.seen = a.seen[:0]
	for rows.Next() {
		var n string
		if err := rows.Scan(&n); err != nil {
			return err
		}
		a.seen = append(a.seen, n)
	}
	return rows.Err()
}

func mustParse(t *testing.T, doc string) *Policy {
	t.Helper()
	p, err := Parse([]byte(doc))
	if err != nil {
		t.Fatal(err)
	}
	return p
}

const ciDoc = `name: ci
rules:
  - resources: ["projects/payments/envs/staging/secrets/**"]
    allow: [read, list]
`

func TestService(t *testing.T) {
	storagetest.Each(t, func(t *testing.T, st storage.Store) {
		ctx := t.Context()
		svc := NewService(st)
		clock := time.Date(2026, 1, 2, 3, 4, 5, 6, time.UTC)
		svc.now = func() time.Time { return clock }
		if got := svc.Set().Names(); !slices.Equal(got, []string{RootName}) {
			t.Fatalf("new service Set: %v", got)
		}
		const res = "projects/payments/envs/staging/secrets/db"
		audit := &auditLog{}

		// Put new → changed.
		p := mustParse(t, ciDoc)
		changed, err := svc.Put(ctx, p, "alice", audit.fn)
		if err != nil || !changed {
			t.Fatalf("Put new: %v, %v", changed, err)
		}
		if audit.calls != 1 || !slices.Equal(audit.seen, []string{"ci"}) {
			t.Fatalf("audit called %d times, saw %v", audit.calls, audit.seen)
		}
		if !svc.Set().Decide([]string{"ci"}, "read", res).Allowed {
			t.Fatal("Set does not reflect the new policy")
		}

		// Put the same policy, written differently → unchanged, no audit.
		same := mustParse(t, `{"name": "ci", "rules": [{"allow": ["read", "list"], "resources": ["projects/payments/envs/staging/secrets/**"]}]}`)
		before := svc.Set()
		changed, err = svc.Put(ctx, same, "bob", audit.fn)
		if err != nil || changed {
			t.Fatalf("Put same: %v, %v", changed, err)
		}
		if audit.calls != 1 {
			t.Fatalf("audit called for an unchanged policy")
		}
		if svc.Set() != before {
			t.Fatal("the Set was rebuilt for an unchanged policy")
		}

		// Put modified → changed, with the new author and time.
		clock = clock.Add(time.Hour)
		mod := mustParse(t, ciDoc+"  - resources: [\"projects/payments/envs/staging/secrets/admin/**\"]\n    deny: [\"*\"]\n")
		changed, err = svc.Put(ctx, mod, "carol", audit.fn)
		if err != nil || !changed || audit.calls != 2 {
			t.Fatalf("Put modified: %v, %v, %d audit calls", changed, err, audit.calls)
		}
		if d := svc.Set().Decide([]string{"ci"}, "read", "projects/payments/envs/staging/secrets/admin/x"); d.Allowed || d.Rule != 1 {
			t.Fatalf("Set does not reflect the change: %v", d)
		}

		// Get, List, Records.
		got, err := svc.Get(ctx, "ci")
		if err != nil || string(got.Canonical()) != string(mod.Canonical()) {
			t.Fatalf("Get: %v\n%s", err, got.Canonical())
		}
		if _, err := svc.Get(ctx, "nosuch"); !errors.Is(err, ErrNotFound) {
			t.Fatalf("Get(nosuch): %v", err)
		}
		if r, err := svc.Get(ctx, RootName); err != nil || r.Name != RootName {
			t.Fatalf("Get(root): %v, %v", r, err)
		}
		if _, err := svc.Put(ctx, mustParse(t, "name: admins\nrules: [{resources: [\"sys/**\"], allow: [admin]}]"), "alice", nil); err != nil {
			t.Fatalf("Put with a nil audit: %v", err)
		}
		list, err := svc.List(ctx)
		if err != nil || len(list) != 2 || list[0].Name != "admins" || list[1].Name != "ci" {
			t.Fatalf("List: %+v, %v", list, err)
		}
		recs, err := svc.Records(ctx)
		if err != nil || recs[1].UpdatedBy != "carol" || !recs[1].UpdatedAt.Equal(clock) {
			t.Fatalf("Records: %+v, %v", recs, err)
		}

		// A fresh service (another node) sees the same Set after Load.
		other := NewService(st)
		if err := other.Load(ctx); err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(other.Set().Names(), []string{"admins", "ci", RootName}) || !other.Set().Decide([]string{"admins"}, "admin", "sys/x").Allowed {
			t.Fatalf("Load: %v", other.Set().Names())
		}
		if set := other.Set(); !set.Has("ci") || !set.Has(RootName) || set.Has("cj") || set.Has("") {
			t.Fatalf("Has: ci %v, root %v, cj %v", set.Has("ci"), set.Has(RootName), set.Has("cj"))
		}

		// Delete.
		if err := svc.Delete(ctx, "admins", audit.fn); err != nil {
			t.Fatal(err)
		}
		if audit.calls != 3 || !slices.Equal(audit.seen, []string{"ci"}) {
			t.Fatalf("audit called %d times, saw %v", audit.calls, audit.seen)
		}
		if _, err := svc.Get(ctx, "admins"); !errors.Is(err, ErrNotFound) {
			t.Fatalf("Get after Delete: %v", err)
		}
		if svc.Set().Decide([]string{"admins"}, "admin", "sys/x").Allowed {
			t.Fatal("deleted policy still grants")
		}
		if err := svc.Delete(ctx, "admins", audit.fn); !errors.Is(err, ErrNotFound) {
			t.Fatalf("Delete twice: %v", err)
		}
		if audit.calls != 3 {
			t.Fatal("audit called for a failed delete")
		}
		if err := svc.Delete(ctx, RootName, audit.fn); !errors.Is(err, ErrReserved) {
			t.Fatalf("Delete(root): %v", err)
		}
		if _, err := svc.Put(ctx, Root(), "alice", audit.fn); !errors.Is(err, ErrReserved) {
			t.Fatalf("Put(root): %v", err)
		}
		if _, err := svc.Put(ctx, &Policy{Name: "bad", Rules: []Rule{{Resources: []string{"x"}}}}, "alice", audit.fn); !errors.Is(err, ErrInvalid) {
			t.Fatalf("Put(invalid): %v", err)
		}
		if err := other.Load(ctx); err != nil || !slices.Equal(other.Set().Names(), []string{"ci", RootName}) {
			t.Fatalf("Load after delete: %v, %v", other.Set().Names(), err)
		}
	})
}

// TestServiceAuditFailure: the audit function runs in the change's
// transaction, so its error leaves nothing stored and the Set unchanged.
func TestServiceAuditFailure(t *testing.T) {
	storagetest.Each(t, func(t *testing.T, st storage.Store) {
		ctx := t.Context()
		svc := NewService(st)
		boom := errors.New("audit log unavailable")
		failing := &auditLog{fail: boom}

		changed, err := svc.Put(ctx, mustParse(t, ciDoc), "alice", failing.fn)
		if !errors.Is(err, boom) || changed {
			t.Fatalf("Put with a failing audit: %v, %v", changed, err)
		}
		if _, err := svc.Get(ctx, "ci"); !errors.Is(err, ErrNotFound) {
			t.Fatalf("policy stored although its audit failed: %v", err)
		}
		if _, ok := svc.Set().Get("ci"); ok {
			t.Fatal("Set changed although the audit failed")
		}

		// Stored, then a modification whose audit fails keeps the old one.
		ok := &auditLog{}
		if _, err := svc.Put(ctx, mustParse(t, ciDoc), "alice", ok.fn); err != nil {
			t.Fatal(err)
		}
		mod := mustParse(t, "name: ci\nrules: [{resources: [\"**\"], allow: [\"*\"]}]")
		if _, err := svc.Put(ctx, mod, "mallory", failing.fn); !errors.Is(err, boom) {
			t.Fatalf("Put: %v", err)
		}
		got, err := svc.Get(ctx, "ci")
		if err != nil || string(got.Canonical()) != string(mustParse(t, ciDoc).Canonical()) {
			t.Fatalf("a failed modification was stored: %v\n%s", err, got.Canonical())
		}
		if svc.Set().Decide([]string{"ci"}, "admin", "sys/x").Allowed {
			t.Fatal("Set took a modification whose audit failed")
		}
		if err := svc.Delete(ctx, "ci", failing.fn); !errors.Is(err, boom) {
			t.Fatalf("Delete: %v", err)
		}
		if _, err := svc.Get(ctx, "ci"); err != nil {
			t.Fatalf("deleted although the audit failed: %v", err)
		}
		if _, ok := svc.Set().Get("ci"); !ok {
			t.Fatal("Set lost a policy whose delete failed")
		}
	})
}

func TestServiceConcurrentPuts(t *testing.T) {
	storagetest.Each(t, func(t *testing.T, st storage.Store) {
		ctx := t.Context()
		svc := NewService(st)
		names := []string{"a", "b", "c", "d", "e", "f"}
		var wg sync.WaitGroup
		for _, n := range names {
			wg.Go(func() {
				if _, err := svc.Put(ctx, allow(n, "x/"+n), "t", nil); err != nil {
					t.Error(err)
				}
			})
		}
		wg.Wait()
		want := append(slices.Clone(names), RootName)
		if got := svc.Set().Names(); !slices.Equal(got, want) {
			t.Fatalf("Set after concurrent puts: %v", got)
		}
	})
}

func TestLoadRejectsBadRows(t *testing.T) {
	st := storagetest.OpenSQLite(t, storage.Options{})
	ctx := t.Context()
	err := st.Write(ctx, func(tx storage.Tx) error {
		_, err := tx.Exec(ctx, `INSERT INTO policies (name, document, updated_at, updated_by) VALUES ('x', 'name: y', 0, 't')`)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	svc := NewService(st)
	if err := svc.Load(ctx); err == nil {
		t.Fatal("Load accepted a corrupt row")
	}
	if got := svc.Set().Names(); !slices.Equal(got, []string{RootName}) {
		t.Fatalf("Set after a failed Load: %v", got)
	}
}

func TestServiceCanceled(t *testing.T) {
	st := storagetest.OpenSQLite(t, storage.Options{})
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	svc := NewService(st)
	if _, err := svc.Put(ctx, mustParse(t, ciDoc), "a", nil); err == nil {
		t.Fatal("Put with a canceled context succeeded")
	}
	if _, ok := svc.Set().Get("ci"); ok {
		t.Fatal("Set changed")
	}
}
