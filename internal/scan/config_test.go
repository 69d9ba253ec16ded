package scan

import (
	"errors"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/keyward/keyward/internal/scan/source"
)

func writeFile(t *testing.T, name, text string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestLoadConfig(t *testing.T) {
	p := writeFile(t, "rules.toml", `
# keyward scan rules
[[rules]]
id = "github-pat"
severity = "low"
description = "overridden"

[[rules]]
id = "acme-key"
description = "ACME API key"
regex = '''\b(acme_[0-9a-f]{16})\b'''
secret_group = 1
keywords = ["ACME_"]
entropy = 2.5
severity = "high"
path = '''\.env$'''
allow = ['''^acme_0000''']

[disable]
ids = ["generic-secret", "jwt"]

[allowlist]
paths = ["testdata/**", "*.snap"]
regexes = ['''^ghp_AAAA''']
stopwords = ["notreal"]
`)
	cfg, err := LoadConfig(p)
	if err != nil {
		t.Fatal(err)
	}
	e := mustEngine(t, cfg)
	byID := map[string]*Rule{}
	for _, r := range e.Rules() {
		byID[r.ID] = r
	}
	gh := byID["github-pat"]
	if gh == nil || gh.Severity != Low || gh.Description != "overridden" || gh.Validate == nil || gh.regex() == nil || len(gh.Keywords) == 0 {
		t.Fatalf("override did not keep unset fields / set given ones: %+v", gh)
	}
	if byID["generic-secret"] != nil || byID["jwt"] != nil {
		t.Error("disabled rules still present")
	}
	acme := byID["acme-key"]
	if acme == nil || acme.Severity != High || acme.Keywords[0] != "acme_" || acme.SecretGroup != 1 || acme.Entropy != 2.5 {
		t.Fatalf("added rule: %+v", acme)
	}
	r := rand.New(rand.NewPCG(30, 31))
	key := "acme_" + rs(r, csHex, 16)
	if fs := findRule(e.Scan(&source.Fragment{Path: "prod.env", Data: []byte("K=" + key)}), "acme-key"); len(fs) != 1 || fs[0].Secret != key {
		t.Errorf("custom rule findings: %v", summarize(fs))
	}
	if fs := e.Scan(&source.Fragment{Path: "prod.go", Data: []byte("K=" + key)}); len(fs) != 0 {
		t.Errorf("path-restricted custom rule ran: %v", summarize(fs))
	}
	if fs := e.Scan(&source.Fragment{Path: "prod.env", Data: []byte("K=acme_0000" + rs(r, csHex, 12))}); len(fs) != 0 {
		t.Errorf("per-rule allow ignored: %v", summarize(fs))
	}
	if !e.AllowPath("testdata/x/y") || !e.AllowPath("a/b.snap") {
		t.Error("allowlist paths not applied")
	}
	tok := ghStyle(r, "ghp_", false)
	if fs := e.Scan(&source.Fragment{Path: "x", Data: []byte(tok + "notREAL")}); len(fs) != 0 {
		t.Errorf("stop word not applied: %v", summarize(fs))
	}
}

func TestLoadConfigErrors(t *testing.T) {
	cases := []struct {
		name, text string
		want       []string
	}{
		{"invalid regex", "\n[[rules]]\nid = \"bad\"\ndescription = \"x\"\nregex = '''(unclosed'''\n", []string{`rules file `, `rule "bad" (line 5): invalid regex:`}},
		{"unknown severity", "[[rules]]\nid = \"x1\"\nregex = 'x'\n\nseverity = \"urgent\"\n", []string{`rule "x1" (line 5)`, `unknown severity "urgent"`}},
		{"missing regex", "[[rules]]\nid = \"new-rule\"\n", []string{`rule "new-rule" (line 1): missing regex`}},
		{"missing id", "[[rules]]\nregex = 'x'\n", []string{`missing id`}},
		{"duplicate id", "[[rules]]\nid = \"a\"\nregex = 'x'\n[[rules]]\nid = \"a\"\nregex = 'y'\n", []string{`rule "a" (line 5): duplicate id`}},
		{"bad group", "[[rules]]\nid = \"g\"\nregex = '(x)'\nsecret_group = 3\n", []string{`rule "g" (line 4)`, `secret_group 3`}},
		{"bad path", "[[rules]]\nid = \"p\"\nregex = 'x'\npath = '('\n", []string{`rule "p" (line 4): invalid path regex`}},
		{"bad entropy", "[[rules]]\nid = \"e\"\nregex = 'x'\nentropy = 9.0\n", []string{`rule "e" (line 4)`, `entropy`}},
		{"unknown key", "[[rules]]\nid = \"k\"\nregex = 'x'\nregx = 'y'\n", []string{`unknown key "rules.regx"`}},
		{"syntax", "[[rules]\nid=1\n", []string{`: line 2: `}},
		{"unknown disable", "[disable]\nids = [\"nope\"]\n", []string{`[disable] (line 1): unknown rule "nope"`}},
		{"bad allow regex", "\n[allowlist]\nregexes = ['(']\n", []string{`[allowlist] (line 2): invalid regex`}},
		{"bad allow path", "[allowlist]\npaths = ['a/[b']\n", []string{`[allowlist] (line 1)`}},
		{"wrong type", "[[rules]]\nid = \"t\"\nregex = 'x'\nentropy = \"high\"\n", []string{`rules file`}},
	}
	for _, c := range cases {
		p := writeFile(t, "k.toml", c.text)
		_, err := LoadConfig(p)
		if err == nil {
			t.Errorf("%s: no error", c.name)
			continue
		}
		if !errors.Is(err, ErrConfig) {
			t.Errorf("%s: error %v is not ErrConfig", c.name, err)
		}
		for _, w := range c.want {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("%s: error %q lacks %q", c.name, err, w)
			}
		}
		if !strings.Contains(err.Error(), p) {
			t.Errorf("%s: error %q does not name the file", c.name, err)
		}
	}
	if _, err := LoadConfig(filepath.Join(t.TempDir(), "missing.toml")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("missing file: %v", err)
	}
}

func TestUseDefaultRulesFalse(t *testing.T) {
	p := writeFile(t, "r.toml", "use_default_rules = false\n[[rules]]\nid = \"github-pat\"\nregex = 'zz[0-9]+'\nkeywords = [\"zz\"]\n")
	cfg, err := LoadConfig(p)
	if err != nil {
		t.Fatal(err)
	}
	e := mustEngine(t, cfg)
	if rs := e.Rules(); len(rs) != 1 || rs[0].Validate != nil || rs[0].Severity != Medium {
		t.Fatalf("rules = %+v", rs)
	}
}

func TestLoadIgnoreFile(t *testing.T) {
	p := writeFile(t, ".keywardignore", "# generated\n\nvendor/**\r\n  *.min.js  \n# docs/\n")
	globs, err := LoadIgnoreFile(p)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(globs, ",") != "vendor/**,*.min.js" {
		t.Fatalf("globs = %q", globs)
	}
	p = writeFile(t, ".keywardignore", "ok\n[bad\n")
	if _, err := LoadIgnoreFile(p); err == nil || !strings.Contains(err.Error(), "line 2") {
		t.Errorf("bad glob error = %v", err)
	}
}

func FuzzLoadConfig(f *testing.F) {
	f.Add("[[rules]]\nid = \"a\"\nregex = 'a(b)'\nsecret_group = 1\nkeywords = [\"a\"]\n")
	f.Add("[disable]\nids = [\"jwt\"]\n[allowlist]\npaths = [\"x/**\"]\nregexes = ['^x']\nstopwords = ['y']\n")
	f.Add("use_default_rules = false\n[[rules]]\nid = \"github-pat\"\nseverity = \"LOW\"\n")
	f.Add("[[rules]]\nid = \"m\"\nregex = '(?s)a.*b'\nmultiline = true\nwindow = 100\nfallback = true\nallow_match = ['q']\n")
	f.Add("[[rules]\n")
	f.Fuzz(func(t *testing.T, text string) {
		cfg, err := ParseConfig("fuzz.toml", []byte(text))
		if err != nil {
			if !errors.Is(err, ErrConfig) {
				t.Fatalf("error %v is not ErrConfig", err)
			}
			return
		}
		e, err := NewEngine(cfg)
		if err != nil {
			return
		}
		e.Scan(&source.Fragment{Path: "x", Data: []byte("ab a1b token = \"Xy7aB9cD0eF1gH2iJ3\" ghp_x\n")})
	})
}

func TestConfigErrorFormat(t *testing.T) {
	p := writeFile(t, "rules.toml", "[[rules]]\nid = \"acme\"\ndescription = \"x\"\nregex = '''(acme'''\n")
	_, err := LoadConfig(p)
	want := "rules file " + p + `: rule "acme" (line 4): invalid regex: `
	if err == nil || !strings.HasPrefix(err.Error(), want) {
		t.Fatalf("error = %v, want prefix %q", err, want)
	}
	var ce *ConfigError
	if !errors.As(err, &ce) || ce.Line != 4 || ce.Where != `rule "acme"` || ce.File != p {
		t.Fatalf("ConfigError = %+v", ce)
	}
}

func TestOverrideRegexOfBuiltinRule(t *testing.T) {
	p := writeFile(t, "r.toml", "[[rules]]\nid = \"github-pat\"\nregex = '''gh_token: (ghp_[0-9A-Za-z]{36})'''\n")
	cfg, err := LoadConfig(p)
	if err != nil {
		t.Fatal(err)
	}
	e := mustEngine(t, cfg)
	tok := ghStyle(rand.New(rand.NewPCG(80, 81)), "ghp_", false)
	fs := findRule(e.Scan(&source.Fragment{Path: "x", Data: []byte("gh_token: " + tok)}), "github-pat")
	if len(fs) != 1 || fs[0].Secret != tok {
		t.Fatalf("overridden regex: findings %v", summarize(fs))
	}
	// The checksum validator still applies.
	bad := ghStyle(rand.New(rand.NewPCG(80, 81)), "ghp_", true)
	if fs := findRule(e.Scan(&source.Fragment{Path: "x", Data: []byte("gh_token: " + bad)}), "github-pat"); len(fs) != 0 {
		t.Fatalf("validator dropped: %v", summarize(fs))
	}
}
