package policy

import (
	"errors"
	"reflect"
	"strings"
	"testing"
)

const example = `# The example from DESIGN.md.
name: payments-ci
rules:
  - resources: ["projects/payments/envs/staging/secrets/**"]
    allow: [read, list]
  - resources: ["projects/payments/envs/prod/**"]
    deny: ["*"]
`

func TestParseExample(t *testing.T) {
	p, err := Parse([]byte(example))
	if err != nil {
		t.Fatal(err)
	}
	want := &Policy{Name: "payments-ci", Rules: []Rule{
		{Resources: []string{"projects/payments/envs/staging/secrets/**"}, Allow: []string{"read", "list"}},
		{Resources: []string{"projects/payments/envs/prod/**"}, Deny: []string{"*"}},
	}}
	if !reflect.DeepEqual(p, want) {
		t.Fatalf("got %#v\nwant %#v", p, want)
	}
}

func TestParseJSON(t *testing.T) {
	p, err := Parse([]byte(`{"name": "j", "description": "caf\u00e9", "rules": [{"resources": ["sys/**"], "allow": ["admin"], "deny": ["delete"]}]}`))
	if err != nil {
		t.Fatal(err)
	}
	if p.Name != "j" || p.Description != "café" || len(p.Rules) != 1 || p.Rules[0].Deny[0] != "delete" {
		t.Fatalf("got %#v", p)
	}
}

func TestParseBad(t *testing.T) {
	tests := []struct {
		name, doc string
		want      string // substring of the error
		reserved  bool
	}{
		{"syntax", "name: a\nrules:\n  - resources: [x\n    allow: [read]\n", "line ", false},
		{"syntax tab", "name: a\n\trules: []\n", "line 2: ", false},
		{"bad indentation", "name: a\nrules:\n  - resources: [x]\n   allow: [read]\n", "line 2: did not find expected", false},
		{"unknown action", "name: a\nrules:\n  - resources: [x]\n    allow:\n      - read\n      - raed\n", `line 6: unknown action "raed" (want one of read, list, write, delete, rotate, proxy, issue, admin, or "*" for all)`, false},
		{"unknown deny action", "name: a\nrules:\n  - resources: [x]\n    deny: [READ]\n", `line 4: unknown action "READ"`, false},
		{"duplicate action", "name: a\nrules:\n  - resources: [x]\n    allow: [read, read]\n", `line 4: rules[0]: action "read" appears twice in allow`, false},
		{"empty rules", "name: a\nrules: []\n", `line 2: policy "a" has no rules`, false},
		{"missing rules", "name: a\n", `policy "a" has no rules`, false},
		{"no resources", "name: a\nrules:\n  - allow: [read]\n", "line 3: rules[0] has no resources", false},
		{"empty resources", "name: a\nrules:\n  - resources: []\n    allow: [read]\n", "line 3: rules[0] has no resources", false},
		{"neither allow nor deny", "name: a\nrules:\n  - resources: [x]\n  - resources: [y]\n    allow: []\n", "line 3: rules[0] neither allows nor denies anything", false},
		{"bad name", "name: Payments\nrules:\n  - resources: [x]\n    allow: [read]\n", `line 1: name "Payments" is not valid`, false},
		{"name with leading dash", "name: -a\nrules:\n  - resources: [x]\n    allow: [read]\n", `name "-a" is not valid`, false},
		{"name too long", "name: " + strings.Repeat("a", 65) + "\nrules:\n  - resources: [x]\n    allow: [read]\n", "is not valid", false},
		{"no name", "rules:\n  - resources: [x]\n    allow: [read]\n", "line 1: name is required", false},
		{"root", "\nname: root\nrules:\n  - resources: [x]\n    allow: [read]\n", `line 2: name "root" is reserved`, true},
		{"unknown field", "name: a\nrules:\n  - resources: [x]\n    allow: [read]\n    alow: [write]\n", `line 5: unknown field "alow" (want one of resources, allow, deny)`, false},
		{"unknown top field", "name: a\nversion: 2\nrules:\n  - resources: [x]\n    allow: [read]\n", `line 2: unknown field "version"`, false},
		{"duplicate field", "name: a\nname: b\nrules:\n  - resources: [x]\n    allow: [read]\n", `line 2: field "name" appears twice (first at line 1)`, false},
		{"allow not a list", "name: a\nrules:\n  - resources: [x]\n    allow: read\n", "line 4: allow must be a list", false},
		{"name not a string", "name: [a]\nrules:\n  - resources: [x]\n    allow: [read]\n", "line 1: name must be a string", false},
		{"not a mapping", "- a\n- b\n", "line 1: a policy must be a mapping", false},
		{"rule not a mapping", "name: a\nrules: [x]\n", "line 2: rules[0] must be a mapping", false},
		{"empty document", "", "empty policy document", false},
		{"comment only", "# nothing\n", "empty policy document", false},
		{"two documents", "name: a\nrules:\n  - resources: [x]\n    allow: [read]\n---\nname: b\nrules:\n  - resources: [x]\n    allow: [read]\n", "line 5: more than one document (use ParseMulti", false},
		{"empty segment", "name: a\nrules:\n  - resources:\n      - ok/x\n      - projects//x\n    allow: [read]\n", `line 5: rules[0]: resource pattern "projects//x" has an empty segment`, false},
		{"trailing slash", "name: a\nrules:\n  - resources: [projects/]\n    allow: [read]\n", "has an empty segment", false},
		{"leading slash", "name: a\nrules:\n  - resources: [/projects]\n    allow: [read]\n", "has an empty segment", false},
		{"dot", "name: a\nrules:\n  - resources: [projects/./x]\n    allow: [read]\n", `has the segment "."`, false},
		{"dotdot", "name: a\nrules:\n  - resources: [projects/../sys]\n    allow: [read]\n", `has the segment ".."`, false},
		{"empty pattern", "name: a\nrules:\n  - resources: [\"\"]\n    allow: [read]\n", "resource pattern is empty", false},
		{"triple star", "name: a\nrules:\n  - resources: [\"a/***\"]\n    allow: [read]\n", `"**" must be a whole segment`, false},
		{"question mark", "name: a\nrules:\n  - resources: [\"a/b?\"]\n    allow: [read]\n", `only "*" and "**" are wildcards`, false},
		{"space", "name: a\nrules:\n  - resources: [\"a/b c\"]\n    allow: [read]\n", "is not allowed", false},
		{"too deep", "name: a\nrules:\n  - resources: [" + strings.Repeat("a/", MaxPatternSegments) + "a]\n    allow: [read]\n", "more than 32 segments", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := Parse([]byte(tt.doc))
			if err == nil {
				t.Fatalf("Parse succeeded: %#v", p)
			}
			if !errors.Is(err, ErrInvalid) {
				t.Errorf("error %v does not wrap ErrInvalid", err)
			}
			if errors.Is(err, ErrReserved) != tt.reserved {
				t.Errorf("errors.Is(%v, ErrReserved) = %v", err, !tt.reserved)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %q does not contain %q", err, tt.want)
			}
		})
	}
}

func TestValidateWithoutLines(t *testing.T) {
	p := &Policy{Name: "a", Rules: []Rule{{Resources: []string{"x"}, Allow: []string{"raed"}}}}
	err := p.Validate()
	if !errors.Is(err, ErrInvalid) || !strings.HasPrefix(err.Error(), `unknown action "raed"`) {
		t.Fatalf("Validate: %v", err)
	}
	var pe *Error
	if !errors.As(err, &pe) || pe.Line != 0 {
		t.Fatalf("want an *Error without a line, got %#v", err)
	}
	if err := (&Policy{Name: "a", Description: "\xff", Rules: p.Rules}).Validate(); err == nil {
		t.Fatal("invalid UTF-8 in the description passed")
	}
}

func TestParseMulti(t *testing.T) {
	doc := "---\n" + example + "---\n# empty document\n---\nname: b\nrules:\n  - resources: [\"**\"]\n    deny: [\"*\"]\n---\n"
	ps, err := ParseMulti([]byte(doc))
	if err != nil {
		t.Fatal(err)
	}
	if len(ps) != 2 || ps[0].Name != "payments-ci" || ps[1].Name != "b" {
		t.Fatalf("got %d policies: %+v", len(ps), ps)
	}
	_, err = ParseMulti([]byte("name: a\nrules: [{resources: [x], allow: [read]}]\n---\nname: a\nrules: [{resources: [y], allow: [read]}]\n"))
	if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), `line 4: policy "a" is defined twice (first at line 1)`) {
		t.Fatalf("duplicate names: %v", err)
	}
	_, err = ParseMulti([]byte("name: a\nrules: [{resources: [x], allow: [read]}]\n---\nname: b\nrules: [{resources: [y], allow: [raed]}]\n"))
	if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), `line 5: unknown action "raed"`) {
		t.Fatalf("error in a later document: %v", err)
	}
	ps, err = ParseMulti(nil)
	if err != nil || len(ps) != 0 {
		t.Fatalf("empty stream: %v, %v", ps, err)
	}
}

func TestParseLimits(t *testing.T) {
	big := make([]byte, MaxDocumentBytes+1)
	if _, err := Parse(big); !errors.Is(err, ErrInvalid) {
		t.Fatalf("oversized input: %v", err)
	}
	var b strings.Builder
	b.WriteString("name: a\nrules:\n")
	for range MaxRules + 1 {
		b.WriteString("- {resources: [x], allow: [read]}\n")
	}
	if _, err := Parse([]byte(b.String())); !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), "more than 1000 rules") {
		t.Fatalf("too many rules: %v", err)
	}
}

func TestAliases(t *testing.T) {
	doc := "name: a\nrules:\n  - resources: &r [x, y]\n    allow: &acts [read]\n  - resources: *r\n    deny: *acts\n"
	p, err := Parse([]byte(doc))
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(p.Rules[1], Rule{Resources: []string{"x", "y"}, Deny: []string{"read"}}) {
		t.Fatalf("got %#v", p.Rules[1])
	}
}

func TestCanonical(t *testing.T) {
	p, err := Parse([]byte(example))
	if err != nil {
		t.Fatal(err)
	}
	want := `name: payments-ci
rules:
  - resources: [projects/payments/envs/staging/secrets/**]
    allow: [read, list]
  - resources: [projects/payments/envs/prod/**]
    deny: ['*']
`
	if got := string(p.Canonical()); got != want {
		t.Fatalf("Canonical:\n%s\nwant:\n%s", got, want)
	}
	// The same policy written differently has the same encoding.
	other := `{"rules": [{"allow": ["read", "list"], "resources": ["projects/payments/envs/staging/secrets/**"]},
		{"deny": ["*"], "resources": ["projects/payments/envs/prod/**"]}], "name": "payments-ci"}`
	q, err := Parse([]byte(other))
	if err != nil {
		t.Fatal(err)
	}
	if string(q.Canonical()) != want {
		t.Fatalf("JSON form encodes as:\n%s", q.Canonical())
	}
	// Odd strings survive the round trip.
	r := &Policy{Name: "odd", Description: "line one\nline: two # not a comment\n'quoted' \"too\"", Rules: []Rule{
		{Resources: []string{"*", "**", "*/x", "true", "123", "a:b", "-x", "x,y", "%x", "@x", "x|y", "'x", "#x", "&a", "!x", "é"}, Allow: []string{"*"}, Deny: []string{"read"}},
	}}
	if err := r.Validate(); err != nil {
		t.Fatal(err)
	}
	back, err := Parse(r.Canonical())
	if err != nil {
		t.Fatalf("Parse(Canonical): %v\n%s", err, r.Canonical())
	}
	if !reflect.DeepEqual(back, r) {
		t.Fatalf("round trip:\n got %#v\nwant %#v", back, r)
	}
}

func TestActions(t *testing.T) {
	if len(Actions) != numActions {
		t.Fatalf("len(Actions) = %d, numActions = %d", len(Actions), numActions)
	}
	var all uint16
	for i, a := range Actions {
		if m := actionMask(a); m != 1<<i {
			t.Errorf("actionMask(%q) = %b, want bit %d", a, m, i)
		}
		all |= actionMask(a)
	}
	if actionMask(AllActions) != all || actionMask("READ") != 0 || actionMask("") != 0 {
		t.Error("actionMask of \"*\", \"READ\" or \"\" is wrong")
	}
}
