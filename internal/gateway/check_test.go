package gateway

import (
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
)

func steps(rep *CheckReport) string {
	var b strings.Builder
	for _, s := range rep.Steps {
		ok := "ok"
		if !s.OK {
			ok = "FAIL"
		}
		b.WriteString(s.Step + ":" + ok + " ")
	}
	return strings.TrimSpace(b.String())
}

func TestCheck(t *testing.T) {
	h := newHarness(t)
	up := newUpstream(t, func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer "+testKey {
			w.WriteHeader(401)
			return
		}
		io.WriteString(w, "secret body "+testKey)
	})
	h.integration(t, Integration{Name: "api", Upstream: up.URL, AllowPrivate: true})

	rep := h.proxy.Check(t.Context(), "api", "")
	if !rep.OK || steps(rep) != "integration:ok secret:ok connect:ok" {
		t.Fatalf("check without a path: %s %+v", steps(rep), rep)
	}
	rep = h.proxy.Check(t.Context(), "api", "/v1/me")
	if !rep.OK || steps(rep) != "integration:ok secret:ok connect:ok request:ok" || !strings.Contains(rep.Steps[3].Detail, "GET /v1/me: 200") {
		t.Fatalf("check with a path: %s %+v", steps(rep), rep)
	}
	if got := up.requests(); len(got) != 1 || got[0].Path != "/v1/me" {
		t.Fatalf("upstream saw %+v", got)
	}
	b, _ := json.Marshal(rep)
	if strings.Contains(string(b), testKey) {
		t.Fatal("the report carries the key")
	}

	// A wrong key: the request step says the upstream refuses it.
	h.secrets.set("pay/prod/key", "wrong-key")
	h.proxy.SecretChanged("pay/prod/key")
	rep = h.proxy.Check(t.Context(), "api", "/v1/me")
	if rep.OK || steps(rep) != "integration:ok secret:ok connect:ok request:FAIL" || !strings.Contains(rep.Steps[3].Detail, "answered 401") {
		t.Fatalf("wrong key: %s %+v", steps(rep), rep)
	}
	// A missing secret stops at the secret.
	h.integration(t, Integration{Name: "nosecret", Upstream: up.URL, AllowPrivate: true, Secret: "pay/prod/missing"})
	if rep = h.proxy.Check(t.Context(), "nosecret", ""); rep.OK || steps(rep) != "integration:ok secret:FAIL" {
		t.Fatalf("missing secret: %s", steps(rep))
	}
	// An upstream that is down stops at connect.
	down := newUpstream(t, nil)
	h.integration(t, Integration{Name: "down", Upstream: down.URL, AllowPrivate: true})
	down.Close()
	if rep = h.proxy.Check(t.Context(), "down", "/x"); rep.OK || steps(rep) != "integration:ok secret:ok connect:FAIL" {
		t.Fatalf("upstream down: %s", steps(rep))
	}
	// An unknown integration.
	if rep = h.proxy.Check(t.Context(), "nope", ""); rep.OK || steps(rep) != "integration:FAIL" {
		t.Fatalf("unknown: %s", steps(rep))
	}
}

// An OAuth 2.0 integration's check fetches a fresh token, and says what the
// token endpoint answered when it refuses.
func TestCheckOAuth2(t *testing.T) {
	ts := newTokenServer(t)
	up := newUpstream(t, nil)
	h := oauthHarness(t, up, ts, OAuth2{})
	for i := range 2 {
		rep := h.proxy.Check(t.Context(), "crm", "")
		if !rep.OK || steps(rep) != "integration:ok secret:ok token:ok connect:ok" {
			t.Fatalf("check %d: %s %+v", i, steps(rep), rep)
		}
	}
	if n := ts.fetches.Load(); n != 2 {
		t.Fatalf("%d token fetches for 2 checks, want a fresh one each", n)
	}
	h.secrets.set("crm/prod/client", "not-the-secret")
	h.proxy.SecretChanged("crm/prod/client")
	rep := h.proxy.Check(t.Context(), "crm", "")
	if rep.OK || steps(rep) != "integration:ok secret:ok token:FAIL" || !strings.Contains(rep.Steps[2].Detail, "invalid_client") ||
		strings.Contains(rep.Steps[2].Detail, "not-the-secret") {
		t.Fatalf("refused client: %s %+v", steps(rep), rep)
	}
}

// A check's path comes from a JSON body, not a request line: a '?', '#' or
// space in it must be refused, not sent upstream as part of the target
// (a query the paths allow-list never saw, or a broken request line).
func TestCheckPathRawCharacters(t *testing.T) {
	h := newHarness(t)
	up := newUpstream(t, func(w http.ResponseWriter, r *http.Request) {})
	h.integration(t, Integration{Name: "api", Upstream: up.URL, AllowPrivate: true, Paths: []string{"/v1/*"}})
	for _, p := range []string{"/v1/me?admin=1", "/v1/me#x", "/v1/me x", "/v1/m\u00e9"} {
		rep := h.proxy.Check(t.Context(), "api", p)
		if rep.OK || steps(rep) != "integration:ok secret:ok connect:ok request:FAIL" {
			t.Errorf("check of %q: %s", p, steps(rep))
		}
	}
	if got := up.requests(); len(got) != 0 {
		t.Fatalf("upstream saw %d requests, the first for %s?%s", len(got), got[0].Path, got[0].Query)
	}
}
