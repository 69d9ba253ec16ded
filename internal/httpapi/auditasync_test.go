package httpapi

import (
	"context"
	"errors"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
)

// queueAudit records which path each entry took. Its synchronous appends
// fail while failSync is set.
type queueAudit struct {
	fakeAudit
	mu       sync.Mutex
	async    []*AuditEvent
	full     atomic.Bool // the queue refuses, as the audit log's does when full
	failSync atomic.Bool
}

func (q *queueAudit) AuditRequest(ctx context.Context, e *AuditEvent) error {
	if q.failSync.Load() {
		return errors.New("disk full")
	}
	return q.fakeAudit.AuditRequest(ctx, e)
}

func (q *queueAudit) AuditRequestAsync(e *AuditEvent, done func(error)) error {
	if q.full.Load() {
		return errors.New("queue full")
	}
	q.mu.Lock()
	q.async = append(q.async, e)
	q.mu.Unlock()
	done(nil)
	return nil
}

func (q *queueAudit) counts() (sync, async int) {
	q.mu.Lock()
	defer q.mu.Unlock()
	return len(q.fakeAudit.events), len(q.async)
}

// An AuditAsync route queues its entry while the log is healthy and its
// queue takes it; otherwise it appends synchronously, and so fails closed.
// Other routes always append synchronously.
func TestAuditAsyncRoutes(t *testing.T) {
	aud := &queueAudit{}
	var unhealthy atomic.Bool
	ok := func(r *http.Request) (int, any, error) { return 200, map[string]string{"ok": "yes"}, nil }
	api := New(Deps{
		Auth: fakeAuth{"good"}, Authz: fakeAuthz{map[string]bool{"read keys/verify": true}}, Audit: aud,
		AuditHealthy: func() error {
			if unhealthy.Load() {
				return errors.New("disk full")
			}
			return nil
		},
	}, []Route{
		{Pattern: "POST /verify", Action: "read", Resource: static("keys/verify"), AuditAsync: true, Handle: ok},
		{Pattern: "POST /other", Action: "read", Resource: static("keys/verify"), Handle: ok},
	})
	want := func(step string, code, wantCode, wantSync, wantAsync int) {
		t.Helper()
		s, a := aud.counts()
		if code != wantCode || s != wantSync || a != wantAsync {
			t.Fatalf("%s: status %d, %d sync and %d queued entries; want %d, %d and %d", step, code, s, a, wantCode, wantSync, wantAsync)
		}
	}
	w, _ := do(t, api, "POST", "/verify", "good", "")
	want("first call", w.Code, 200, 0, 1)
	w, _ = do(t, api, "POST", "/other", "good", "")
	want("a route without AuditAsync", w.Code, 200, 1, 1)
	w, _ = do(t, api, "POST", "/verify", "good", "")
	want("second call", w.Code, 200, 1, 2)
	// The queue refuses (full): the entry is appended synchronously.
	aud.full.Store(true)
	w, _ = do(t, api, "POST", "/verify", "good", "")
	want("queue full", w.Code, 200, 2, 2)
	aud.full.Store(false)
	w, _ = do(t, api, "POST", "/verify", "good", "")
	want("queue with room again", w.Code, 200, 2, 3)
	// An unhealthy log: synchronous, and a failing append refuses the call.
	unhealthy.Store(true)
	aud.failSync.Store(true)
	w, eb := do(t, api, "POST", "/verify", "good", "")
	if w.Code != 503 || eb.Error.Code != CodeUnavailable {
		t.Fatalf("call while the audit log fails = %d %+v, want 503", w.Code, eb)
	}
	if _, a := aud.counts(); a != 3 {
		t.Fatalf("an entry was queued while the log was unhealthy")
	}
}
