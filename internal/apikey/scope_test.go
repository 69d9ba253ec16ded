package apikey

import (
	"errors"
	"strings"
	"testing"

	"github.com/keyward/keyward/internal/policy"
)

func TestMatchScope(t *testing.T) {
	cases := []struct {
		scope, resource string
		want            bool
	}{
		{"integrations/maps", "integrations/maps", true},
		{"integrations/maps", "integrations/map", false},
		{"integrations/maps", "integrations/maps/v1", false},
		{"integrations/maps", "integrations", false},
		{"integrations/*", "integrations/maps", true},
		{"integrations/*", "integrations/maps/v1", false},
		{"integrations/**", "integrations/maps/v1/geocode", true},
		{"integrations/**", "integrations", true},
		{"integrations/maps-*", "integrations/maps-eu", true},
		{"integrations/maps-*", "integrations/geo", false},
		{"**/maps", "integrations/maps", true},
		{"integrations/**/geocode", "integrations/maps/v1/geocode", true},
		{"integrations/**/geocode", "integrations/geocode", true},
		{"integrations/**/geocode", "integrations/maps/v1/reverse", false},
		{"**", "anything/at/all", true},
		{"*", "integrations/maps", false},
	}
	for _, c := range cases {
		if err := ValidateScope(c.scope); err != nil {
			t.Fatalf("ValidateScope(%q): %v", c.scope, err)
		}
		if got := MatchScope(c.scope, c.resource); got != c.want {
			t.Errorf("MatchScope(%q, %q) = %v, want %v", c.scope, c.resource, got, c.want)
		}
		if got := policyMatch(t, c.scope, c.resource); got != c.want {
			t.Errorf("policy disagrees on (%q, %q): %v", c.scope, c.resource, got)
		}
	}
	if MatchScopes(nil, "integrations/maps") || !MatchScopes([]string{"a", "integrations/*"}, "integrations/maps") {
		t.Error("MatchScopes")
	}
	if n := testing.AllocsPerRun(100, func() { MatchScope("integrations/**/geocode", "integrations/maps/v1/geocode") }); n != 0 {
		t.Errorf("MatchScope allocates %v times", n)
	}
}

// policyMatch is the policy language's own answer, through a one-rule policy.
func policyMatch(t testing.TB, scope, resource string) bool {
	set, err := policy.Compile([]*policy.Policy{{Name: "scope", Rules: []policy.Rule{{Resources: []string{scope}, Allow: []string{"proxy"}}}}})
	if err != nil {
		t.Fatalf("policy rejects %q: %v", scope, err)
	}
	return set.Decide([]string{"scope"}, "proxy", resource).Allowed
}

// Scopes are validated and matched exactly as policy resource patterns are.
func FuzzMatchScope(f *testing.F) {
	for _, s := range [][2]string{{"integrations/maps", "integrations/maps"}, {"a/**/b", "a/x/y/b"}, {"**/x*y", "q/xzzy"},
		{"a/*/c", "a/b/c"}, {"a//b", "a/b"}, {"a/../b", "b"}, {"**/**", "a"}, {"a?", "ab"}} {
		f.Add(s[0], s[1])
	}
	f.Fuzz(func(t *testing.T, scope, resource string) {
		err := ValidateScope(scope)
		_, perr := policy.Compile([]*policy.Policy{{Name: "scope", Rules: []policy.Rule{{Resources: []string{scope}, Allow: []string{"proxy"}}}}})
		if err != nil && !errors.Is(err, ErrInvalid) {
			t.Fatalf("error %v does not wrap ErrInvalid", err)
		}
		if (err == nil) != (perr == nil) && len(scope) <= MaxScopeBytes && strings.Count(scope, "/") < MaxScopeSegments {
			t.Fatalf("ValidateScope(%q) = %v but policy says %v", scope, err, perr)
		}
		if err != nil || perr != nil {
			return
		}
		// Resources keyward builds have no empty, "." or ".." segments.
		for seg := range strings.SplitSeq(resource, "/") {
			if seg == "" || seg == "." || seg == ".." {
				return
			}
		}
		if got, want := MatchScope(scope, resource), policyMatch(t, scope, resource); got != want {
			t.Fatalf("MatchScope(%q, %q) = %v, policy says %v", scope, resource, got, want)
		}
	})
}
