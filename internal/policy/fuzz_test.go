package policy

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

// FuzzParse: Parse never panics; every error wraps ErrInvalid; whatever
// parses validates, compiles, and survives Canonical unchanged (and
// Canonical is a fixed point).
func FuzzParse(f *testing.F) {
	files, _ := filepath.Glob("testdata/policies/*")
	for _, file := range files {
		b, err := os.ReadFile(file)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	for _, s := range []string{
		example,
		"name: a\nrules: [{resources: [x], allow: [read]}]",
		"name: a\nrules:\n  - resources: &r [x]\n    allow: [read]\n  - resources: *r\n    deny: ['*']\n",
		"name: a\nrules: [{resources: [x], allow: [raed]}]",
		"name: 'a'\ndescription: |\n  many\n  lines\nrules: [{resources: ['**/x*y/*'], deny: [admin]}]",
		"{\"name\": \"a\", \"rules\": []}",
		"name: a\nrules: [{resources: [x], allow: [read]}]\n---\nname: b\n",
		"a: &a [*a]",
		"- &x\n  - *x\n",
		"name: !!binary aGVsbG8=\nrules: [{resources: [x], allow: [read]}]",
		"name: a\n<<: {rules: []}",
		"\xff\xfe",
		"",
		"---",
		"null",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		p, err := Parse(data)
		if err != nil {
			if !errors.Is(err, ErrInvalid) {
				t.Fatalf("error does not wrap ErrInvalid: %v", err)
			}
			return
		}
		if err := p.Validate(); err != nil {
			t.Fatalf("parsed policy does not validate: %v", err)
		}
		s, err := Compile([]*Policy{p})
		if err != nil {
			t.Fatalf("parsed policy does not compile: %v", err)
		}
		for _, r := range p.Rules {
			for _, res := range r.Resources {
				s.Decide([]string{p.Name}, "read", res)
				s.AllowedBelow([]string{p.Name}, "read", res)
			}
		}
		c := p.Canonical()
		q, err := Parse(c)
		if err != nil {
			t.Fatalf("canonical form does not parse: %v\n%s", err, c)
		}
		if !reflect.DeepEqual(normal(p), normal(q)) {
			t.Fatalf("canonical round trip changed the policy:\n%#v\n%#v\n%s", p, q, c)
		}
		if c2 := q.Canonical(); string(c2) != string(c) {
			t.Fatalf("Canonical is not a fixed point:\n%s\n%s", c, c2)
		}
	})
}

// normal makes nil and empty lists equal.
func normal(p *Policy) *Policy {
	c := p.Clone()
	for i := range c.Rules {
		r := &c.Rules[i]
		if len(r.Allow) == 0 {
			r.Allow = nil
		}
		if len(r.Deny) == 0 {
			r.Deny = nil
		}
	}
	return c
}

// FuzzDecide: a random pattern and resource never panic; "**" matches every
// well-formed resource; the pattern matches exactly when the reference
// matcher says so; both Decide paths agree; AllowedBelow is true on a
// resource the pattern allows.
func FuzzDecide(f *testing.F) {
	for _, s := range [][2]string{
		{"projects/*/envs/prod/**", "projects/a/envs/prod/secrets/x"},
		{"**/x", "x"},
		{"a/**/b/**/c", "a/b/c"},
		{"p-*-q/*", "p--q/z"},
		{"*a*a*a*", "aaaa"},
		{"a/*", "a/"},
		{"a", "a//b"},
		{"**", "."},
		{"x", ""},
	} {
		f.Add(s[0], s[1])
	}
	f.Fuzz(func(t *testing.T, pat, resource string) {
		s, err := Compile([]*Policy{
			{Name: "p", Rules: []Rule{{Resources: []string{pat}, Allow: []string{"read"}}}},
			{Name: "all", Rules: []Rule{{Resources: []string{"**"}, Allow: []string{"read"}}}},
		})
		wellFormed := validResource(resource)
		if err == nil {
			got := s.Decide([]string{"p"}, "read", resource)
			walked := s.Decide(append([]string{"p"}, padding...), "read", resource)
			if got != walked {
				t.Fatalf("scan %v, walk %v", got, walked)
			}
			want := wellFormed && refMatch(strings.Split(pat, "/"), strings.Split(resource, "/"))
			if got.Allowed != want {
				t.Fatalf("%q on %q: %v, want allowed=%v", pat, resource, got, want)
			}
			if got.Allowed && !s.AllowedBelow([]string{"p"}, "read", resource) {
				t.Fatalf("%q allows %q, but AllowedBelow says no", pat, resource)
			}
		} else if !errors.Is(err, ErrInvalid) {
			t.Fatalf("Compile error does not wrap ErrInvalid: %v", err)
		} else {
			s = mustCompile(t, allow("all", "**"))
		}
		if d := s.Decide([]string{"all"}, "read", resource); d.Allowed != wellFormed {
			t.Fatalf(`"**" on %q: %v (well-formed: %v)`, resource, d, wellFormed)
		}
		s.AllowedBelow([]string{"all", "p"}, "read", resource)
	})
}
