package server

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
)

// A leak report revokes the keyward credentials it carries — a token with
// its children, an API key — with no other authority, audits each with
// where it was found, and ignores what is not a live keyward credential.
// GitHub's secret scanning format gets GitHub's answer.
func TestLeakReportRevokes(t *testing.T) {
	r, root := devNode(t)
	u := r.url
	call(t, "POST", u+"/v1/projects", root, map[string]string{"name": "shop"}, nil)
	newToken := func() (tok, accessor string) {
		var out struct{ Token, Accessor string }
		if c := call(t, "POST", u+"/v1/auth/token/create", root, map[string]any{"ttl": "1h", "policies": []string{"default"}}, &out); c != 200 && c != 201 {
			t.Fatalf("token = %d", c)
		}
		return out.Token, out.Accessor
	}
	leaked, _ := newToken()
	var child struct{ Token string }
	call(t, "POST", u+"/v1/auth/token/create", leaked, map[string]any{"ttl": "10m", "policies": []string{"default"}}, &child)
	var key struct{ Key, ID string }
	if c := call(t, "POST", u+"/v1/projects/shop/envs/prod/keys", root, map[string]any{"name": "partner", "scopes": []string{"integrations/maps"}}, &key); c != 201 {
		t.Fatalf("create key = %d", c)
	}
	report := func(body string) (int, string) {
		t.Helper()
		resp, err := http.Post(u+"/v1/leaks", "application/json", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	lookup := func(tok string) int {
		c, _ := raw(t, "GET", u+"/v1/auth/token/lookup-self", tok, "", "")
		return c
	}

	c, out := report(`{"credentials": ["` + leaked + `", "` + key.Key + `", "kwt_notarealtokenatall", "AKIAIOSFODNN7EXAMPLE"], "source": "https://github.com/acme/app/blob/main/.env"}`)
	if c != 200 || !strings.Contains(out, `"received":4`) || !strings.Contains(out, `"revoked":2`) {
		t.Fatalf("report = %d %s", c, out)
	}
	if lookup(leaked) != 401 || lookup(child.Token) != 401 {
		t.Error("the leaked token or its child still works")
	}
	var verify struct{ Valid bool }
	call(t, "POST", u+"/v1/keys/verify", root, map[string]any{"key": key.Key}, &verify)
	if verify.Valid {
		t.Error("the leaked API key still verifies")
	}
	// Audited, with the source, as revocations of the leaked credentials.
	found := map[string]bool{}
	for _, e := range newestAudit(t, u, root, 20) {
		if e.Detail["reason"] == "leak report" && e.Detail["result"] == "revoked" && strings.Contains(e.Detail["source"], "acme/app") {
			found[strings.SplitN(e.Resource, "/", 2)[0]] = true
		}
	}
	if !found["auth"] || !found["projects"] {
		t.Errorf("audited leak revocations: %v", found)
	}

	// Again: nothing left to revoke; GitHub's format labels the matches.
	other, _ := newToken()
	body := `[{"token":"` + leaked + `","type":"keyward_token","url":"https://github.com/acme/app/blob/main/a.go","source":"content"},
		{"token":"` + other + `","type":"keyward_token","url":"https://github.com/acme/app/blob/main/b.go","source":"content"},
		{"token":"kwk_nope","type":"keyward_api_key","url":"u","source":"content"}]`
	c, out = report(body)
	var labels []struct {
		TokenHash string `json:"token_hash"`
		TokenType string `json:"token_type"`
		Label     string `json:"label"`
	}
	json.Unmarshal([]byte(out), &labels)
	sum := sha256.Sum256([]byte(other))
	if c != 200 || len(labels) != 3 || labels[0].Label != "true_positive" || labels[1].Label != "true_positive" ||
		labels[1].TokenHash != hex.EncodeToString(sum[:]) || labels[2].Label != "false_positive" || labels[2].TokenType != "keyward_api_key" {
		t.Fatalf("GitHub-format report = %d %s", c, out)
	}
	if lookup(other) != 401 {
		t.Error("the token reported in GitHub's format still works")
	}
	if strings.Contains(out, other) {
		t.Error("the answer repeats a reported credential")
	}

	// Bad reports are 400s, and a live credential of the reporter's is
	// never needed.
	for _, b := range []string{`{}`, `{"credentials": "x"}`, `[{"token": 5}]`, `"x"`, `{"credentials": [], "extra": 1}`,
		`{"credentials": [` + strings.Repeat(`"x",`, 100) + `"x"]}`} {
		if c, out := report(b); c != 400 {
			t.Errorf("report %.40s = %d %s, want 400", b, c, out)
		}
	}
	if c, _ := report(`{"credentials": []}`); c != 200 {
		t.Errorf("empty report = %d", c)
	}
}

// Leak reports are open, so one address may send leakReportRate.Count a
// minute; past that, 429 with Retry-After before the body is read.
func TestLeakReportsRateLimited(t *testing.T) {
	r, _ := devNode(t)
	post := func() *http.Response {
		t.Helper()
		resp, err := http.Post(r.url+"/v1/leaks", "application/json", strings.NewReader(`{"credentials": ["kwt_notarealtokenatall"]}`))
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp
	}
	for i := range leakReportRate.Count {
		if resp := post(); resp.StatusCode != 200 {
			t.Fatalf("report %d = %d, want 200", i+1, resp.StatusCode)
		}
	}
	resp := post()
	if resp.StatusCode != 429 || resp.Header.Get("Retry-After") == "" {
		t.Fatalf("report past the limit = %d (Retry-After %q), want 429 with Retry-After", resp.StatusCode, resp.Header.Get("Retry-After"))
	}
}
