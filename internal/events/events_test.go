package events

import (
	"context"
	"testing"
	"time"

	"github.com/keyward/keyward/internal/storage"
	"github.com/keyward/keyward/internal/storage/storagetest"
)

func TestPollDeliversNewEventsOnce(t *testing.T) {
	storagetest.Each(t, func(t *testing.T, st storage.Store) {
		ctx := t.Context()
		// An event from before the poller started is not delivered.
		add(t, st, "token.revoke", "old")
		var got []Event
		p := NewPoller(st, func(e Event) { got = append(got, e) }, Options{})
		if err := p.Init(ctx); err != nil {
			t.Fatal(err)
		}
		add(t, st, "token.revoke", "a")
		add(t, st, "policy.change", "ci")
		for range 2 {
			if err := p.Poll(ctx); err != nil {
				t.Fatal(err)
			}
		}
		if len(got) != 2 || got[0].Key != "a" || got[1].Kind != "policy.change" || got[1].Key != "ci" {
			t.Fatalf("got %+v", got)
		}
		if got[0].Seq >= got[1].Seq || got[0].Time.IsZero() {
			t.Fatalf("bad seq/time: %+v", got)
		}
		// A rolled-back change leaves no event.
		st.Write(ctx, func(tx storage.Tx) error {
			Append(ctx, tx, "token.revoke", "rolled-back")
			return context.Canceled
		})
		p.Poll(ctx)
		if len(got) != 2 {
			t.Fatalf("rolled-back event delivered: %+v", got)
		}
		n, err := Prune(ctx, st, time.Now().Add(time.Hour))
		if err != nil || n < 3 {
			t.Fatalf("prune = %d, %v", n, err)
		}
	})
}

func add(t *testing.T, st storage.Store, kind, key string) {
	t.Helper()
	err := st.Write(t.Context(), func(tx storage.Tx) error { return Append(t.Context(), tx, kind, key) })
	if err != nil {
		t.Fatal(err)
	}
}

// Sequence numbers can become visible out of order on PostgreSQL: a hole is
// waited for, then skipped after the gap timeout.
func TestHolesAreWaitedForThenSkipped(t *testing.T) {
	var got []int64
	p := NewPoller(nil, func(e Event) { got = append(got, e.Seq) }, Options{GapTimeout: 10 * time.Second})
	t0 := time.Unix(1000, 0)
	p.apply([]Event{{Seq: 1}, {Seq: 3}}, t0)
	if p.watermark != 1 || len(got) != 2 {
		t.Fatalf("watermark %d, got %v", p.watermark, got)
	}
	// 3 is delivered again by the next read (seq > 1): not handled twice.
	p.apply([]Event{{Seq: 3}}, t0.Add(time.Second))
	if len(got) != 2 {
		t.Fatalf("event handled twice: %v", got)
	}
	// 2 commits late: delivered, and the watermark passes 3.
	p.apply([]Event{{Seq: 2}, {Seq: 3}}, t0.Add(2*time.Second))
	if p.watermark != 3 || len(got) != 3 || got[2] != 2 {
		t.Fatalf("watermark %d, got %v", p.watermark, got)
	}
	// A hole that never fills (rolled back) is skipped after the timeout.
	p.apply([]Event{{Seq: 5}}, t0.Add(3*time.Second))
	if p.watermark != 3 {
		t.Fatalf("watermark moved over a fresh hole: %d", p.watermark)
	}
	p.apply(nil, t0.Add(14*time.Second))
	if p.watermark != 5 || len(p.holes) != 0 || len(p.seen) != 0 {
		t.Fatalf("watermark %d holes %v seen %v", p.watermark, p.holes, p.seen)
	}
}
