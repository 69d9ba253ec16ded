package httpapi

import (
	"context"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/keyward/keyward/internal/ratelimit"
)

// fakeLimits records the edge's calls and answers as told.
type fakeLimits struct {
	mu                 sync.Mutex
	calls              []string
	authn, authz       ratelimit.Decision
	authnErr, authzErr error
}

func (f *fakeLimits) Authenticated(_ context.Context, c *Caller) (ratelimit.Decision, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, "authenticated")
	return f.authn, f.authnErr
}

func (f *fakeLimits) Authorized(_ context.Context, c *Caller, _ netip.Addr) (ratelimit.Decision, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, "authorized")
	return f.authz, f.authzErr
}

func (f *fakeLimits) took() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := f.calls
	f.calls = nil
	return out
}

func decision(limit, remaining int) ratelimit.Decision {
	return ratelimit.Decision{Allowed: true, Limit: limit, Window: time.Minute, Remaining: remaining, Reset: time.Second}
}

func limited429(limit int) error {
	h := http.Header{}
	ratelimit.SetHeaders(h, ratelimit.Decision{Limit: limit, Window: time.Minute, RetryAfter: 3 * time.Second, Reset: time.Minute})
	return &Error{Status: http.StatusTooManyRequests, Code: CodeRateLimited, Message: "slow down", RetryAfter: 3 * time.Second, Header: h}
}

// The edge applies Authenticated before authorisation and Authorized only
// to allowed requests, before the handler; refusals are audited; the
// strictest rate that applied is in the RateLimit-* headers.
func TestEdgeLimits(t *testing.T) {
	lim := &fakeLimits{}
	audit := &fakeAudit{}
	ran := 0
	api := New(Deps{Auth: fakeAuth{token: "tok"}, Authz: fakeAuthz{allow: map[string]bool{"read things/a": true}}, Audit: audit, Limits: lim},
		[]Route{{Pattern: "GET /things/{name}", Action: "read",
			Resource: func(r *http.Request) (string, error) { return "things/" + r.PathValue("name"), nil },
			Handle:   func(r *http.Request) (int, any, error) { ran++; return 200, map[string]string{"ok": "yes"}, nil }}})
	get := func(name string) *httptest.ResponseRecorder {
		t.Helper()
		req := httptest.NewRequest("GET", "/things/"+name, nil)
		req.Header.Set("Authorization", "Bearer tok")
		w := httptest.NewRecorder()
		api.ServeHTTP(w, req)
		return w
	}
	rateOf := func(w *httptest.ResponseRecorder) string {
		return w.Header().Get("RateLimit-Limit") + "/" + w.Header().Get("RateLimit-Remaining")
	}

	// No limit applied: no headers.
	if w := get("a"); w.Code != 200 || rateOf(w) != "/" || !slices.Equal(lim.took(), []string{"authenticated", "authorized"}) {
		t.Fatalf("unlimited = %d %q", w.Code, rateOf(w))
	}
	// Both applied: the one with fewer left.
	lim.authn, lim.authz = decision(100, 50), decision(10, 3)
	if w := get("a"); w.Code != 200 || rateOf(w) != "10/3" || w.Header().Get("RateLimit-Policy") != "10;w=60" || w.Header().Get("Retry-After") != "" {
		t.Fatalf("limited = %d %v", w.Code, w.Header())
	}
	lim.took()
	// Forbidden: Authorized is never asked; the token's rate still shows.
	if w := get("b"); w.Code != 403 || rateOf(w) != "100/50" || !slices.Equal(lim.took(), []string{"authenticated"}) {
		t.Fatalf("forbidden = %d %q", w.Code, rateOf(w))
	}
	// Refused at either step: 429 with the refusal's headers, no handler, audited.
	for _, c := range []struct {
		name  string
		set   func()
		calls []string
	}{
		{"authenticated", func() { lim.authnErr, lim.authzErr = limited429(7), nil }, []string{"authenticated"}},
		{"authorized", func() { lim.authnErr, lim.authzErr = nil, limited429(7) }, []string{"authenticated", "authorized"}},
	} {
		c.set()
		ran = 0
		w := get("a")
		if w.Code != 429 || ran != 0 || w.Header().Get("Retry-After") != "3" || w.Header().Get("RateLimit-Limit") != "7" ||
			!slices.Equal(lim.took(), c.calls) {
			t.Errorf("refused by %s = %d (handler ran %d times) %v", c.name, w.Code, ran, w.Header())
		}
		if ev := audit.events[len(audit.events)-1]; ev.Status != 429 || ev.Outcome != "denied" || ev.Caller == nil {
			t.Errorf("audit of a refusal by %s = %+v", c.name, ev)
		}
	}
}

// On the gateway a caller's key is charged (Authorized) only once the
// integration accepted the call: its path globs and its own rates.
func TestGatewayAdmitsAfterTheIntegrationsChecks(t *testing.T) {
	lim := &fakeLimits{}
	f := newGWFixture(t, func(d *Deps) { d.Limits = lim })
	var refuse bool
	f.gw.Limiter = limiterFunc(func(r *http.Request, name string, _, _ ratelimit.Limit) (ratelimit.Decision, error) {
		if refuse {
			return ratelimit.Decision{}, limited429(5)
		}
		return decision(5, 1), nil
	})

	if resp, _ := f.do(t, "GET", "/v1/gateway/narrow/elsewhere", nil); resp.StatusCode != 403 || !slices.Equal(lim.took(), []string{"authenticated"}) {
		t.Fatalf("path outside the globs = %d", resp.StatusCode)
	}
	f.nextAudit(t)
	refuse = true
	if resp, _ := f.do(t, "GET", "/v1/gateway/api/x", nil); resp.StatusCode != 429 || resp.Header.Get("RateLimit-Limit") != "5" ||
		!slices.Equal(lim.took(), []string{"authenticated"}) {
		t.Fatalf("over the integration's rate = %d", resp.StatusCode)
	}
	f.nextAudit(t)
	refuse = false
	lim.authz = decision(60, 40)
	resp, _ := f.do(t, "GET", "/v1/gateway/narrow/ok/x", nil)
	if resp.StatusCode != 200 || !slices.Equal(lim.took(), []string{"authenticated", "authorized"}) ||
		resp.Header.Get("RateLimit-Limit") != "5" || resp.Header.Get("RateLimit-Remaining") != "1" {
		t.Fatalf("accepted call = %d %v", resp.StatusCode, resp.Header)
	}
	f.nextAudit(t)
	// Refused by the key's own limits: nothing reaches the upstream.
	lim.authzErr = limited429(60)
	hits := f.hits.Load()
	if resp, _ := f.do(t, "GET", "/v1/gateway/api/x", nil); resp.StatusCode != 429 || resp.Header.Get("RateLimit-Limit") != "60" || f.hits.Load() != hits {
		t.Fatalf("over the key's limits = %d, upstream calls %d", resp.StatusCode, f.hits.Load()-hits)
	}
	if ev := f.nextAudit(t); ev.Status != 429 || ev.Outcome != "denied" {
		t.Fatalf("audit = %+v", ev)
	}
}
