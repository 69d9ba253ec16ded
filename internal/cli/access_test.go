package cli

import (
	"encoding/json"
	"strings"
	"testing"
)

const accessJSON = `{"id":"acr_abc","requester":"user:alice","policies":["prod-read"],"ttl":"30m0s","reason":"INC-42: checkout errors","state":"pending","created_at":"2030-01-01T10:00:00Z","expires_at":"2030-01-02T10:00:00Z"}`

func TestAccessCommands(t *testing.T) {
	h := newHarness(t, "kwt_granted")
	h.vars["KEYWARD_TOKEN"] = "kwt_x" // keyward:allow (test fixture)
	h.fake.handle("POST /v1/access/requests", 201, accessJSON)
	h.fake.handle("GET /v1/access/requests", 200, `{"requests":[`+accessJSON+`]}`)
	h.fake.handle("POST /v1/access/requests/acr_abc/approve", 200, strings.Replace(accessJSON, `"pending"`, `"approved"`, 1))
	h.fake.handle("POST /v1/access/requests/acr_abc/token", 200, `{"token":"kwt_granted","accessor":"acc9","policies":["prod-read"],"principal":"user:alice","expires_at":"2030-01-01T10:30:00Z"}`)

	r := h.must("", "access", "request", "--policy", "prod-read", "--ttl", "30m", "--reason", "INC-42: checkout errors")
	if !strings.Contains(r.stdout, "Requested prod-read for 30m: acr_abc") || !strings.Contains(r.stderr, "keyward access approve acr_abc") {
		t.Fatalf("request: %q / %q", r.stdout, r.stderr)
	}
	body := bodyMap(t, h.fake.requests("POST /v1/access/requests")[0].Body)
	if body["ttl"] != "30m" || body["reason"] != "INC-42: checkout errors" {
		t.Fatalf("request body %v", body)
	}
	r = h.must("", "access", "list", "--state", "pending")
	if !strings.Contains(r.stdout, "acr_abc  pending  user:alice  prod-read  30m") {
		t.Fatalf("list:\n%s", r.stdout)
	}
	if q := h.fake.requests("GET /v1/access/requests")[0].Query; !strings.Contains(q, "state=pending") {
		t.Fatalf("list query %q", q)
	}
	r = h.must("", "access", "approve", "acr_abc", "--note", "ok")
	if !strings.Contains(r.stdout, "Approved user:alice's request acr_abc for prod-read (30m)") {
		t.Fatalf("approve: %q", r.stdout)
	}
	r = h.must("", "access", "token", "acr_abc", "-o", "json")
	var it map[string]any
	if err := json.Unmarshal([]byte(r.stdout), &it); err != nil || it["token"] != "kwt_granted" {
		t.Fatalf("token json %q: %v", r.stdout, err)
	}
	for _, args := range [][]string{{"access", "request", "--policy", "x"}, {"access", "request", "--reason", "y"}, {"access", "approve"}} {
		if r := h.run("", args...); r.code != ExitUsage {
			t.Errorf("%v: exit %d, want %d", args, r.code, ExitUsage)
		}
	}
}

func TestShortDuration(t *testing.T) {
	for in, want := range map[string]string{"1h0m0s": "1h", "30m0s": "30m", "1h30m0s": "1h30m", "12h0m0s": "12h", "1m30s": "1m30s", "x": "x"} {
		if got := shortDuration(in); got != want {
			t.Errorf("shortDuration(%q) = %q, want %q", in, got, want)
		}
	}
}
