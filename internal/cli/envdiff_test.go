package cli

import (
	"encoding/json"
	"strings"
	"testing"
)

func TestEnvDiff(t *testing.T) {
	const stagingValue, prodValue = "staging-only-value-81", "prod-only-value-27" // keyward:allow (test fixture)
	h := newHarness(t)
	h.vars["KEYWARD_TOKEN"] = "kwt_x" // keyward:allow (test fixture)
	h.fake.handle("GET /v1/projects/shop/diff", 200, `{"only_a":["debug/flag"],"only_b":["stripe/key"],"both":["api/url","db/password","ops/pager"]}`)
	h.fake.handle("GET /v1/projects/shop/envs/staging/folder", 200, `{"secrets":{"db/password":"`+stagingValue+`","api/url":"https://api.example.com","debug/flag":"1","ops/pager":"x"}}`)
	h.fake.handle("GET /v1/projects/shop/envs/prod/folder", 200, `{"secrets":{"db/password":"`+prodValue+`","api/url":"https://api.example.com","stripe/key":"x"}}`)

	r := h.must("", "env", "diff", "-p", "shop", "staging", "prod")
	if !strings.Contains(r.stdout, "- debug/flag (only in staging)") || !strings.Contains(r.stdout, "+ stripe/key (only in prod)") ||
		!strings.Contains(r.stdout, "3 in both, 1 only in staging, 1 only in prod") {
		t.Fatalf("names:\n%s", r.stdout)
	}
	if len(h.fake.requests("GET /v1/projects/shop/envs/prod/folder")) != 0 {
		t.Fatal("values were read without --values")
	}

	r = h.run("", "env", "diff", "-p", "shop", "staging", "prod", "--values", "--exit-code", "-o", "json")
	if strings.Contains(r.stdout+r.stderr, stagingValue) || strings.Contains(r.stdout+r.stderr, prodValue) {
		t.Fatal("a value was printed")
	}
	var d struct {
		OnlyA  []string `json:"only_a"`
		Differ []string
		Unread []string
	}
	if err := json.Unmarshal([]byte(r.stdout), &d); err != nil || r.code != ExitFailure {
		t.Fatalf("json %q, exit %d (want 1 with --exit-code): %v", r.stdout, r.code, err)
	}
	if strings.Join(d.Differ, ",") != "db/password" || strings.Join(d.Unread, ",") != "ops/pager" || strings.Join(d.OnlyA, ",") != "debug/flag" {
		t.Fatalf("diff %+v", d)
	}
	if q := h.fake.requests("GET /v1/projects/shop/envs/prod/folder")[0].Query; !strings.Contains(q, "recursive=true") {
		t.Fatalf("folder query %q, want recursive", q)
	}
	r = h.must("", "env", "diff", "-p", "shop", "staging", "prod", "--values")
	if !strings.Contains(r.stdout, "~ db/password (values differ)") || !strings.Contains(r.stdout, "? ops/pager (not compared") || !strings.Contains(r.stdout, "(1 with other values)") {
		t.Fatalf("values, text:\n%s", r.stdout)
	}
}

func TestEnvDiffSameExitsZero(t *testing.T) {
	h := newHarness(t)
	h.vars["KEYWARD_TOKEN"] = "kwt_x" // keyward:allow (test fixture)
	h.fake.handle("GET /v1/projects/shop/diff", 200, `{"only_a":[],"only_b":[],"both":["api/url"]}`)
	h.fake.handle("GET /v1/projects/shop/envs/staging/folder", 200, `{"secrets":{"api/url":"u"}}`)
	h.fake.handle("GET /v1/projects/shop/envs/prod/folder", 200, `{"secrets":{"api/url":"u"}}`)
	if r := h.run("", "env", "diff", "-p", "shop", "staging", "prod", "--values", "--exit-code"); r.code != 0 {
		t.Fatalf("equal environments: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
}
