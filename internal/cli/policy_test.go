package cli

import (
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/keyward/keyward/internal/policy"
)

// fakePolicyStore serves the policy endpoints with the real parser, storing
// canonical documents, as the server does.
type fakePolicyStore struct {
	mu   sync.Mutex
	docs map[string][]byte
}

func (s *fakePolicyStore) register(t *testing.T, f *fakeKeyward) {
	s.docs = map[string][]byte{}
	f.mux.HandleFunc("GET /v1/policies/{name}", func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		doc, ok := s.docs[r.PathValue("name")]
		s.mu.Unlock()
		if !ok {
			apiError(w, 404, "not_found", "policy not found")
			return
		}
		p, _ := policy.Parse(doc)
		json.NewEncoder(w).Encode(map[string]any{"name": p.Name, "description": p.Description, "rules": p.Rules, "document": string(doc)})
	})
	f.mux.HandleFunc("PUT /v1/policies/{name}", func(w http.ResponseWriter, r *http.Request) {
		if ct := r.Header.Get("Content-Type"); ct != "application/yaml" {
			t.Errorf("PUT policy with Content-Type %q", ct)
		}
		body, _ := io.ReadAll(r.Body)
		p, err := policy.Parse(body)
		if err != nil {
			apiError(w, 400, "invalid_argument", err.Error())
			return
		}
		if p.Name != r.PathValue("name") {
			apiError(w, 400, "invalid_argument", "the document's name differs from the name in the path")
			return
		}
		c := p.Canonical()
		s.mu.Lock()
		changed := string(s.docs[p.Name]) != string(c)
		s.docs[p.Name] = c
		s.mu.Unlock()
		json.NewEncoder(w).Encode(map[string]any{"name": p.Name, "changed": changed})
	})
}

func writeFiles(t *testing.T, dir string, files map[string]string) {
	t.Helper()
	for name, content := range files {
		p := filepath.Join(dir, name)
		os.MkdirAll(filepath.Dir(p), 0o755)
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

const multiDocPolicies = `# CI and ops policies
name: ci
rules:
  - resources: ["projects/payments/envs/staging/secrets/**"]
    allow: [read, list]
---
# operators
name: ops
description: operators
rules:
  - resources: ["**"]
    allow: ["*"]
  - resources: ["sys/audit"]
    deny: [delete]
---
`

func TestPolicyApplyDirectory(t *testing.T) {
	h := newHarness(t)
	h.vars["KEYWARD_TOKEN"] = "kwt_admin"
	var store fakePolicyStore
	store.register(t, h.fake)
	dir := t.TempDir()
	writeFiles(t, dir, map[string]string{
		"a.yaml":          multiDocPolicies,
		"b.json":          `{"name": "web", "rules": [{"resources": ["projects/web/**"], "allow": ["read"]}]}`,
		"notes.txt":       "not a policy",
		"nested/c.yaml":   "name: nested\nrules:\n  - resources: [\"x/**\"]\n    allow: [read]\n",
		"nested/bad.yaml": "this: [is not",
	})

	r := h.must("", "policy", "apply", "-f", dir)
	if r.stdout != "created ci\ncreated ops\ncreated web\n" {
		t.Errorf("first apply:\n%s", r.stdout)
	}
	r = h.must("", "policy", "apply", "-f", dir)
	if r.stdout != "unchanged ci\nunchanged ops\nunchanged web\n" {
		t.Errorf("second apply:\n%s", r.stdout)
	}
	// Reformatting without changing the meaning is still unchanged; a new
	// rule is an update.
	writeFiles(t, dir, map[string]string{
		"b.json": `{"name":"web","rules":[{"resources":["projects/web/**"],"allow":["read","list"]}]}`,
	})
	r = h.must("", "policy", "apply", "-f", filepath.Join(dir, "a.yaml"), "-f", filepath.Join(dir, "b.json"), "-o", "json")
	var res []applyResult
	if err := json.Unmarshal([]byte(r.stdout), &res); err != nil || len(res) != 3 {
		t.Fatalf("-o json: %v\n%s", err, r.stdout)
	}
	if res[0].Result != "unchanged" || res[2].Result != "updated" || res[2].Name != "web" || res[1].Line != 6 {
		t.Errorf("-o json results %+v", res)
	}
	// -R includes subdirectories; the broken file fails, the others apply.
	r = h.run("", "policy", "apply", "-R", "-f", dir)
	if r.code != 1 || !strings.Contains(r.stdout, "created nested") || !strings.Contains(r.stderr, filepath.Join(dir, "nested", "bad.yaml")+":1:") {
		t.Errorf("-R: exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
	}
	if len(h.fake.requests("PUT /v1/policies/ci")) != 4 {
		t.Errorf("ci was PUT %d times, want 4", len(h.fake.requests("PUT /v1/policies/ci")))
	}
}

func TestPolicyApplyShowsServerError(t *testing.T) {
	h := newHarness(t)
	h.vars["KEYWARD_TOKEN"] = "kwt_admin"
	var store fakePolicyStore
	store.register(t, h.fake)
	file := filepath.Join(t.TempDir(), "p.yaml")
	writeFiles(t, filepath.Dir(file), map[string]string{"p.yaml": `name: good
rules:
  - resources: ["a/**"]
    allow: [read]
---
name: bad
rules:
  - resources: ["b/**"]
    allow: [raed]
`})
	r := h.run("", "policy", "apply", "-f", file)
	if r.code != 1 {
		t.Fatalf("exit %d, want 1\n%s\n%s", r.code, r.stdout, r.stderr)
	}
	if r.stdout != "created good\n" {
		t.Errorf("stdout %q", r.stdout)
	}
	// The server names line 9 of the file, where "raed" is.
	if !strings.Contains(r.stderr, file+":9: ") || strings.Contains(r.stderr, "line 9") || !strings.Contains(r.stderr, "raed") || !strings.Contains(r.stderr, "1 of 2 policy documents failed") {
		t.Errorf("stderr %q", r.stderr)
	}
	if r := h.run("", "policy", "apply"); r.code != ExitUsage {
		t.Errorf("no -f: exit %d", r.code)
	}
	if r := h.run("", "policy", "apply", "-f", filepath.Join(t.TempDir(), "missing.yaml")); r.code != 1 {
		t.Errorf("missing file: exit %d", r.code)
	}
}

func TestPolicyGetListDeleteExplain(t *testing.T) {
	h := newHarness(t)
	h.vars["KEYWARD_TOKEN"] = "kwt_admin"
	h.fake.handle("GET /v1/policies/ci", 200, `{"name":"ci","rules":[{"resources":["a/**"],"allow":["read"]}],"document":"name: ci\nrules:\n  - resources: [a/**]\n    allow: [read]\n"}`)
	h.fake.handle("GET /v1/policies/nodoc", 200, `{"name":"nodoc","rules":[{"resources":["a/**"],"deny":["write"]}]}`)
	h.fake.handle("GET /v1/policies", 200, `{"policies":[{"name":"ci","rules":[{}]},{"name":"ops","description":"operators","rules":[{},{}]}]}`)
	h.fake.handle("DELETE /v1/policies/ci", 204, "")
	h.fake.mux.HandleFunc("POST /v1/policies/explain", func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		m := bodyMap(t, string(b))
		if m["action"] == "write" {
			io.WriteString(w, `{"allowed":false,"policy":"ci","rule":2,"effect":"deny","reason":"denied by policy \"ci\" rule 2","policies":["ci"]}`)
			return
		}
		io.WriteString(w, `{"allowed":true,"policy":"ci","rule":1,"effect":"allow","reason":"allowed by policy \"ci\" rule 1","policies":["ci"]}`)
	})

	if r := h.must("", "policy", "get", "ci"); r.stdout != "name: ci\nrules:\n  - resources: [a/**]\n    allow: [read]\n" {
		t.Errorf("get: %q", r.stdout)
	}
	r := h.must("", "policy", "get", "nodoc")
	if _, err := policy.Parse([]byte(r.stdout)); err != nil || !strings.Contains(r.stdout, "deny:") {
		t.Errorf("get without a document printed %q (%v)", r.stdout, err)
	}
	r = h.must("", "policy", "get", "ci", "-o", "json")
	var p map[string]any
	if err := json.Unmarshal([]byte(r.stdout), &p); err != nil || p["name"] != "ci" {
		t.Errorf("get -o json: %v %v", p, err)
	}
	r = h.must("", "policy", "list")
	if !strings.Contains(r.stdout, "ops   2      operators") {
		t.Errorf("list:\n%s", r.stdout)
	}
	h.must("", "policy", "delete", "ci")

	r = h.must("", "policy", "explain", "--token", "acc123", "--action", "read", "--resource", "a/b")
	// The verdict is said once, whether or not the reason repeats it.
	if !strings.HasPrefix(r.stdout, `allowed by policy "ci" rule 1`+"\n") || !strings.Contains(r.stdout, `policy "ci" rule 1 (allow)`) {
		t.Errorf("explain allowed: %q", r.stdout)
	}
	r = h.must("", "policy", "explain", "--token", "acc123", "--action", "write", "--resource", "a/b")
	if !strings.HasPrefix(r.stdout, `denied by policy "ci" rule 2`+"\n") {
		t.Errorf("explain denied: %q", r.stdout)
	}
	m := bodyMap(t, h.fake.requests("POST /v1/policies/explain")[0].Body)
	if m["accessor"] != "acc123" || m["resource"] != "a/b" {
		t.Errorf("explain body %v", m)
	}
	// --policy instead of --token: the policies travel, not an accessor.
	r = h.must("", "policy", "explain", "--policy", "ci", "--policy", "ops", "--action", "read", "--resource", "a/b")
	if !strings.Contains(r.stdout, "\npolicies: ") {
		t.Errorf("explain --policy: %q", r.stdout)
	}
	m = bodyMap(t, h.fake.requests("POST /v1/policies/explain")[2].Body)
	if ps, _ := m["policies"].([]any); len(ps) != 2 || ps[1] != "ops" || m["accessor"] != nil {
		t.Errorf("explain --policy body %v", m)
	}
	for _, args := range [][]string{{"policy", "explain", "--token", "acc123"}, {"policy", "get"}, {"policy", "delete", "a", "b"},
		{"policy", "explain", "--token", "acc123", "--policy", "ci", "--action", "read", "--resource", "a"},
		{"policy", "explain", "--action", "read", "--resource", "a"}} {
		if r := h.run("", args...); r.code != ExitUsage {
			t.Errorf("%v: exit %d, want 2", args, r.code)
		}
	}
}

func TestSplitPolicyDocuments(t *testing.T) {
	type doc struct {
		line int
		text string
	}
	cases := []struct {
		in   string
		want []doc
	}{
		{"", nil},
		{"name: a\n", []doc{{1, "name: a\n"}}},
		{"---\nname: a\n", []doc{{1, "---\nname: a\n"}}},
		{"# c\n%YAML 1.2\n---\nname: a\n---\nname: b", []doc{{1, "# c\n%YAML 1.2\n---\nname: a\n"}, {5, "---\nname: b"}}},
		{"name: a\n...\nname: b\n", []doc{{1, "name: a\n...\n"}, {3, "name: b\n"}}},
		{"a: |\n  ---\n  x\n---x: 1\n--- \nb: 1\n", []doc{{1, "a: |\n  ---\n  x\n---x: 1\n"}, {5, "--- \nb: 1\n"}}},
		{"a: 1\r\n---\r\nb: 2\r\n", []doc{{1, "a: 1\r\n"}, {2, "---\r\nb: 2\r\n"}}},
	}
	for _, c := range cases {
		got := splitPolicyDocuments([]byte(c.in))
		var g []doc
		for _, d := range got {
			g = append(g, doc{d.Line, d.Text})
		}
		if len(g) != len(c.want) {
			t.Errorf("split(%q) = %v, want %v", c.in, g, c.want)
			continue
		}
		for i := range g {
			if g[i] != c.want[i] {
				t.Errorf("split(%q)[%d] = %+v, want %+v", c.in, i, g[i], c.want[i])
			}
		}
	}
}

func TestPolicyName(t *testing.T) {
	cases := []struct {
		in          string
		name        string
		empty, fail bool
	}{
		{"name: ci\nrules: []\n", "ci", false, false},
		{"\n\n---\n# just a comment\n", "", true, false},
		{"", "", true, false},
		{"rules: []\n", "", false, true},
		{"- a\n", "", false, true},
		{"name: [x]\n", "", false, true},
		{"name: ''\n", "", false, true},
		{"name: x\n  bad: indent\n", "", false, true},
		{`{"name": "web", "rules": []}`, "web", false, false},
	}
	for _, c := range cases {
		name, empty, err := policyName([]byte(c.in))
		if name != c.name || empty != c.empty || (err != nil) != c.fail {
			t.Errorf("policyName(%q) = %q, %v, %v", c.in, name, empty, err)
		}
	}
}

func FuzzSplitPolicyDocuments(f *testing.F) {
	for _, s := range []string{multiDocPolicies, "", "---", "...\n...", "a\r\n---\r\nb", "%YAML 1.2\n---\nx: 1\n---\n", "--- \n---\t\n---x\n"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		docs := splitPolicyDocuments([]byte(s))
		var joined strings.Builder
		line := 1
		for _, d := range docs {
			if d.Text == "" {
				t.Fatalf("empty document in %q", s)
			}
			if d.Line != line {
				t.Fatalf("document at line %d, want %d (input %q)", d.Line, line, s)
			}
			line += strings.Count(d.Text, "\n")
			joined.WriteString(d.Text)
			padded := d.padded()
			if strings.Count(string(padded), "\n") != d.Line-1+strings.Count(d.Text, "\n") {
				t.Fatalf("padding of %q is wrong", d.Text)
			}
			policyName(padded) // must not panic
		}
		if joined.String() != s {
			t.Fatalf("documents %+v do not join to %q", docs, s)
		}
	})
}

func TestPolicyWhoCan(t *testing.T) {
	h := newHarness(t)
	h.vars["KEYWARD_TOKEN"] = "kwt_x" // keyward:allow (test fixture)
	h.fake.handle("POST /v1/policies/who-can", 200, `{"action":"read","resource":"projects/shop/envs/prod/secrets/db","policies":["ops","root"],"holders":[
{"kind":"user","name":"alice","policies":["ops"],"allowed_by":"allowed by policy \"ops\" rule 0"},
{"kind":"service","name":"old-ci","policies":["ops"],"allowed_by":"allowed by policy \"ops\" rule 0","disabled":true},
{"kind":"issuer","name":"github","claim":"repository","value":"acme/shop","policies":["ops"],"allowed_by":"allowed by policy \"ops\" rule 0"},
{"kind":"tokens","name":"root","policies":["root"],"allowed_by":"allowed by policy \"root\" rule 0","count":1}],"truncated":false}`)
	r := h.must("", "policy", "who-can", "read", "projects/shop/envs/prod/secrets/db")
	for _, want := range []string{"Policies allowing read on projects/shop/envs/prod/secrets/db: ops, root", "user     alice", "old-ci (disabled)",
		"github (repository=acme/shop)", "root (1 live)", `allowed by policy "root" rule 0`} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("output lacks %q:\n%s", want, r.stdout)
		}
	}
	req := h.fake.requests("POST /v1/policies/who-can")
	if len(req) != 1 || !strings.Contains(req[0].Body, `"action":"read"`) || !strings.Contains(req[0].Body, `"resource":"projects/shop/envs/prod/secrets/db"`) {
		t.Fatalf("requests %+v", req)
	}
	if r := h.run("", "policy", "who-can", "read"); r.code != 2 {
		t.Errorf("one argument: exit %d, want 2", r.code)
	}
}
