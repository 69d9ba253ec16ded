package policy

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"testing"
)

// refMatch is the specification matchSegs is checked against, written as
// plain dynamic programming: "**" takes zero or more segments, "*" one, a
// segment with "*" inside is a glob within one segment (refGlob), anything
// else is literal. m[i][j] says pat[i:] matches res[j:].
func refMatch(pat, res []string) bool {
	m := make([][]bool, len(pat)+1)
	for i := range m {
		m[i] = make([]bool, len(res)+1)
	}
	m[len(pat)][len(res)] = true
	for i := len(pat) - 1; i >= 0; i-- {
		for j := len(res); j >= 0; j-- {
			switch {
			case pat[i] == "**":
				m[i][j] = m[i+1][j] || j < len(res) && m[i][j+1]
			case j < len(res):
				m[i][j] = refGlob(pat[i], res[j]) && m[i+1][j+1]
			}
		}
	}
	return m[0][0]
}

// refGlob: '*' matches any run of bytes, other bytes themselves.
func refGlob(g, s string) bool {
	m := make([][]bool, len(g)+1)
	for i := range m {
		m[i] = make([]bool, len(s)+1)
	}
	m[len(g)][len(s)] = true
	for i := len(g) - 1; i >= 0; i-- {
		for j := len(s); j >= 0; j-- {
			switch {
			case g[i] == '*':
				m[i][j] = m[i+1][j] || j < len(s) && m[i][j+1]
			case j < len(s):
				m[i][j] = g[i] == s[j] && m[i+1][j+1]
			}
		}
	}
	return m[0][0]
}

func validResource(r string) bool {
	for _, s := range strings.Split(r, "/") {
		if s == "" || s == "." || s == ".." {
			return false
		}
	}
	return true
}

func mustCompile(t testing.TB, ps ...*Policy) *Set {
	t.Helper()
	s, err := Compile(ps)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func allow(name string, patterns ...string) *Policy {
	return &Policy{Name: name, Rules: []Rule{{Resources: patterns, Allow: []string{"read"}}}}
}

// TestMatchAgainstReference runs random patterns over random resources
// from a small alphabet, where matches are frequent, on both Decide paths.
func TestMatchAgainstReference(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	segs := []string{"a", "b", "ab", "*", "**", "a*", "*b", "a*b", "*a*"}
	words := []string{"a", "b", "ab", "ba", "aab", "x"}
	for i := range 20000 {
		var pat, res []string
		for range 1 + rng.IntN(5) {
			pat = append(pat, segs[rng.IntN(len(segs))])
		}
		for range 1 + rng.IntN(6) {
			res = append(res, words[rng.IntN(len(words))])
		}
		p, r := strings.Join(pat, "/"), strings.Join(res, "/")
		s := mustCompile(t, allow("p", p))
		want := refMatch(pat, res)
		if got := s.Decide([]string{"p"}, "read", r).Allowed; got != want {
			t.Fatalf("case %d: scan: %q on %q = %v, want %v", i, p, r, got, want)
		}
		if got := s.Decide(append([]string{"p"}, padding...), "read", r).Allowed; got != want {
			t.Fatalf("case %d: walk: %q on %q = %v, want %v", i, p, r, got, want)
		}
	}
}

// TestBelowAgainstReference checks AllowedBelow against brute force: every
// path of the small alphabet at or up to two segments below the prefix.
func TestBelowAgainstReference(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	segs := []string{"a", "b", "*", "**", "a*"}
	words := []string{"a", "b", "ab"}
	var suffixes [][]string
	suffixes = append(suffixes, nil)
	for _, w := range words {
		suffixes = append(suffixes, []string{w})
		for _, v := range words {
			suffixes = append(suffixes, []string{w, v})
		}
	}
	for i := range 5000 {
		var apat, dpat, prefix []string
		for range 1 + rng.IntN(4) {
			apat = append(apat, segs[rng.IntN(len(segs))])
		}
		for range 1 + rng.IntN(4) {
			dpat = append(dpat, segs[rng.IntN(len(segs))])
		}
		for range rng.IntN(4) {
			prefix = append(prefix, words[rng.IntN(len(words))])
		}
		ap, dp := strings.Join(apat, "/"), strings.Join(dpat, "/")
		s := mustCompile(t, &Policy{Name: "p", Rules: []Rule{
			{Resources: []string{ap}, Allow: []string{"read"}},
			{Resources: []string{dp}, Deny: []string{"read"}},
		}})
		got := s.AllowedBelow([]string{"p"}, "read", strings.Join(prefix, "/"))
		// Ground truth over the sampled paths: some path is allowed and not denied.
		truth := false
		for _, suf := range suffixes {
			path := append(slices.Clone(prefix), suf...)
			if len(path) > 0 && refMatch(apat, path) && !refMatch(dpat, path) {
				truth = true
			}
		}
		// AllowedBelow may say true when no sampled path is allowed (paths
		// deeper than the sample, or a deny it cannot prove total), but never
		// false when one is.
		if truth && !got {
			t.Fatalf("case %d: allow %q deny %q below %q: false, but a path is allowed", i, ap, dp, strings.Join(prefix, "/"))
		}
		// With no deny in the way it is exact: the allow pattern can match
		// below the prefix iff AllowedBelow says so.
		s2 := mustCompile(t, allow("p", ap))
		could := false
		for _, suf := range suffixes {
			path := append(slices.Clone(prefix), suf...)
			could = could || len(path) > 0 && refMatch(apat, path)
		}
		if got2 := s2.AllowedBelow([]string{"p"}, "read", strings.Join(prefix, "/")); could && !got2 {
			t.Fatalf("case %d: allow %q below %q: false, but a path matches", i, ap, strings.Join(prefix, "/"))
		}
	}
}

func TestCoversBelow(t *testing.T) {
	tests := []struct {
		pattern, prefix string
		want            bool
	}{
		{"**", "", true},
		{"**", "a/b", true},
		{"a/**", "a", true},
		{"a/**", "a/b/c", true},
		{"a/**", "b", false},
		{"a/**", "", false},
		{"a/*/**", "a", false}, // "a" itself is not matched
		{"a/*/**", "a/b", true},
		{"a/**/*", "a", false},
		{"a/**/*", "a/b", true},
		{"a/*", "a", false},
		{"a/**/b", "a", false},
		{"*/x/**", "q/x/y", true},
		{"p-*/**", "p-1", true},
		{"p-*/**", "q", false},
		{"**/secrets/**", "projects/a/secrets", true},
		{"**/secrets/**", "projects/a", false},
	}
	for _, tt := range tests {
		p, err := compilePattern(tt.pattern)
		if err != nil {
			t.Fatal(err)
		}
		var segs []string
		if tt.prefix != "" {
			segs = strings.Split(tt.prefix, "/")
		}
		if got := p.coversBelow(segs); got != tt.want {
			t.Errorf("%q covers %q = %v, want %v", tt.pattern, tt.prefix, got, tt.want)
		}
	}
}

func TestCompile(t *testing.T) {
	a := allow("a", "x/**")
	s := mustCompile(t, a, allow("b", "y"))
	if got := s.Names(); !slices.Equal(got, []string{"a", "b", "root"}) {
		t.Fatalf("Names = %v", got)
	}
	// The Set holds copies: changing the input or Get's result changes nothing.
	a.Rules[0].Resources[0] = "**"
	g, ok := s.Get("a")
	if !ok || g.Rules[0].Resources[0] != "x/**" {
		t.Fatalf("Get(a) = %#v, %v", g, ok)
	}
	g.Rules[0].Resources[0] = "**"
	if s.Decide([]string{"a"}, "read", "z").Allowed {
		t.Fatal("a mutation reached the Set")
	}
	if r, ok := s.Get(RootName); !ok || !slices.Equal(r.Rules[0].Resources, []string{"**"}) {
		t.Fatalf("Get(root) = %#v, %v", r, ok)
	}
	if _, ok := s.Get("nosuch"); ok {
		t.Fatal("Get(nosuch) found something")
	}
	if ps := s.Policies(); len(ps) != 2 || ps[0].Name != "a" || ps[1].Name != "b" {
		t.Fatalf("Policies = %+v", ps)
	}

	for name, ps := range map[string][]*Policy{
		"duplicate": {allow("a", "x"), allow("a", "y")},
		"root":      {allow("root", "x")},
		"invalid":   {allow("a", "x//y")},
		"nil":       {nil},
	} {
		if _, err := Compile(ps); !errors.Is(err, ErrInvalid) {
			t.Errorf("%s: Compile: %v, want ErrInvalid", name, err)
		}
	}
	if e := Empty(); !slices.Equal(e.Names(), []string{RootName}) || !e.Decide([]string{RootName}, "admin", "sys/x").Allowed {
		t.Fatal("Empty set is not just root")
	}
}

func TestDecisionString(t *testing.T) {
	for _, tt := range []struct {
		d    Decision
		want string
	}{
		{Decision{Allowed: true, Policy: "ci", Rule: 1, Effect: EffectAllow}, `allowed by policy "ci" rule 1`},
		{Decision{Policy: "ci", Rule: 2, Effect: EffectDeny}, `denied by policy "ci" rule 2 (explicit deny)`},
		{Decision{Rule: -1, Effect: EffectDefaultDeny, Action: "read", Resource: "projects/x/y"}, `denied: no policy allows read on projects/x/y`},
		{Decision{Rule: -1, Effect: EffectDefaultDeny, Action: "read", Resource: "a b\n"}, `denied: no policy allows read on "a b\n"`},
	} {
		if got := tt.d.String(); got != tt.want {
			t.Errorf("String() = %s, want %s", got, tt.want)
		}
	}
}

func TestDeepResource(t *testing.T) {
	// Deeper than the stack buffer: still decided correctly.
	deep := strings.Repeat("a/", 100) + "leaf"
	s := mustCompile(t, allow("p", "a/**/leaf"), allow("q", "a/*"))
	if !s.Decide([]string{"p"}, "read", deep).Allowed || !s.Decide(append([]string{"p"}, padding...), "read", deep).Allowed {
		t.Fatal("deep resource not allowed")
	}
	if s.Decide([]string{"q"}, "read", deep).Allowed {
		t.Fatal("a/* matched a deep resource")
	}
}

// TestManyPolicies runs the trie walk on a Set too large for its stack
// membership bitmap.
func TestManyPolicies(t *testing.T) {
	var ps []*Policy
	for i := range 1500 {
		ps = append(ps, allow(fmt.Sprintf("p%04d", i), fmt.Sprintf("projects/p%d/**", i)))
	}
	s := mustCompile(t, ps...)
	names := []string{"p0001", "p0002", "p0003", "p0004", "p1499"}
	if d := s.Decide(names, "read", "projects/p1499/envs/x"); !d.Allowed || d.Policy != "p1499" {
		t.Fatalf("got %v", d)
	}
	if d := s.Decide(names, "read", "projects/p1498/envs/x"); d.Allowed {
		t.Fatalf("got %v", d)
	}
}

func TestDecideConcurrent(t *testing.T) {
	s := loadTestdata(t)
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for range 1000 {
				if !s.Decide([]string{"ci"}, "read", "projects/payments/envs/staging/secrets/db").Allowed {
					t.Error("not allowed")
					return
				}
				if s.Decide([]string{"ops", "freeze", "a", "b", "c"}, "write", "integrations/x").Allowed {
					t.Error("allowed")
					return
				}
			}
		})
	}
	wg.Wait()
}

// bench100x10 builds 100 policies of 10 rules each, shaped like real ones:
// per-project environment grants, cross-project wildcards, a "**" in the
// middle, globs and denies.
func bench100x10(t testing.TB) (*Set, []string) {
	var ps []*Policy
	var names []string
	for i := range 100 {
		proj := fmt.Sprintf("proj%02d", i)
		p := &Policy{Name: fmt.Sprintf("team-%02d", i), Rules: []Rule{
			{Resources: []string{"projects/" + proj + "/envs/dev/**"}, Allow: []string{"*"}},
			{Resources: []string{"projects/" + proj + "/envs/staging/secrets/**"}, Allow: []string{"read", "list", "write"}},
			{Resources: []string{"projects/" + proj + "/envs/prod/secrets/**"}, Allow: []string{"read", "list"}},
			{Resources: []string{"projects/" + proj + "/envs/prod/secrets/root/**"}, Deny: []string{"*"}},
			{Resources: []string{"projects/" + proj + "/envs/*/keys/*"}, Allow: []string{"issue", "rotate"}},
			{Resources: []string{"projects/" + proj + "/**/ci-*"}, Allow: []string{"read"}},
			{Resources: []string{"integrations/" + proj + "-*"}, Allow: []string{"proxy"}},
			{Resources: []string{"identities/service/" + proj + "-*"}, Allow: []string{"read", "list"}},
			{Resources: []string{"projects/*/envs/" + proj + "-preview/secrets/**"}, Allow: []string{"read"}},
			{Resources: []string{"sys/teams/" + proj}, Allow: []string{"read"}, Deny: []string{"admin"}},
		}}
		ps = append(ps, p)
		names = append(names, p.Name)
	}
	return mustCompile(t, ps...), names
}

var benchRequests = []struct {
	action, resource string
	allowed          bool
}{
	{"read", "projects/proj42/envs/prod/secrets/db/password", true},
	{"read", "projects/proj42/envs/prod/secrets/root/key", false},
	{"write", "projects/proj99/envs/staging/secrets/api/token", true},
	{"read", "projects/nosuch/envs/prod/secrets/db", false},
}

func TestDecide100x10(t *testing.T) {
	s, names := bench100x10(t)
	for _, r := range benchRequests {
		if d := s.Decide(names, r.action, r.resource); d.Allowed != r.allowed {
			t.Errorf("%s %s: %v", r.action, r.resource, d)
		}
		if d := s.Decide(names[:3], r.action, r.resource); d.Allowed && !r.allowed {
			t.Errorf("3 policies: %s %s: %v", r.action, r.resource, d)
		}
	}
	for _, n := range [][]string{names, names[40:43]} {
		allocs := testing.AllocsPerRun(100, func() {
			for _, r := range benchRequests {
				s.Decide(n, r.action, r.resource)
			}
		})
		if allocs != 0 {
			t.Errorf("Decide with %d policies allocates %v times per 4 calls", len(n), allocs)
		}
	}
}

func BenchmarkDecide100x10(b *testing.B) {
	s, names := bench100x10(b)
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		r := &benchRequests[i%len(benchRequests)]
		s.Decide(names, r.action, r.resource)
		i++
	}
}

func BenchmarkDecide3of100(b *testing.B) {
	s, names := bench100x10(b)
	names = names[40:43]
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		r := &benchRequests[i%len(benchRequests)]
		s.Decide(names, r.action, r.resource)
		i++
	}
}

func BenchmarkAllowedBelow3of100(b *testing.B) {
	s, names := bench100x10(b)
	names = names[40:43]
	b.ReportAllocs()
	for b.Loop() {
		s.AllowedBelow(names, "read", "projects/proj42/envs/prod/secrets")
	}
}

func BenchmarkCompile100x10(b *testing.B) {
	s, _ := bench100x10(b)
	ps := s.Policies()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Compile(ps); err != nil {
			b.Fatal(err)
		}
	}
}
