package policy

import (
	"strings"
	"testing"
)

// decideOne is the policy engine's own answer for one pattern, through a
// one-rule policy.
func decideOne(t testing.TB, pattern, resource string) bool {
	set, err := Compile([]*Policy{{Name: "p", Rules: []Rule{{Resources: []string{pattern}, Allow: []string{"proxy"}}}}})
	if err != nil {
		t.Fatalf("Compile(%q): %v", pattern, err)
	}
	return set.Decide([]string{"p"}, "proxy", resource).Allowed
}

func TestMatchPattern(t *testing.T) {
	cases := []struct {
		pattern, resource string
		want              bool
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
		{"integrations/*", "integrations/..", false},
		{"**", "a//b", false},
	}
	for _, c := range cases {
		if err := ValidatePattern(c.pattern); err != nil {
			t.Fatalf("ValidatePattern(%q): %v", c.pattern, err)
		}
		if got := MatchPattern(c.pattern, c.resource); got != c.want {
			t.Errorf("MatchPattern(%q, %q) = %v, want %v", c.pattern, c.resource, got, c.want)
		}
		if got := decideOne(t, c.pattern, c.resource); got != c.want {
			t.Errorf("a rule holding %q decides %v on %q, want %v", c.pattern, got, c.resource, c.want)
		}
	}
	if n := testing.AllocsPerRun(100, func() { MatchPattern("integrations/**/geocode", "integrations/maps/v1/geocode") }); n != 0 {
		t.Errorf("MatchPattern allocates %v times", n)
	}
	for _, bad := range []string{"", "a//b", "a/../b", "a/**b", "a?", strings.Repeat("a/", MaxPatternSegments) + "a"} {
		if ValidatePattern(bad) == nil {
			t.Errorf("ValidatePattern(%q) accepted it", bad)
		}
	}
}

// MatchPattern answers exactly as a compiled rule does.
func FuzzMatchPattern(f *testing.F) {
	for _, s := range [][2]string{{"integrations/maps", "integrations/maps"}, {"a/**/b", "a/x/y/b"}, {"**/x*y", "q/xzzy"},
		{"a/*/c", "a/b/c"}, {"**/**", "a"}, {"a*b*c", "axxbyyc"}, {"*", "a/.."}} {
		f.Add(s[0], s[1])
	}
	f.Fuzz(func(t *testing.T, pattern, resource string) {
		if ValidatePattern(pattern) != nil {
			return
		}
		if got, want := MatchPattern(pattern, resource), decideOne(t, pattern, resource); got != want {
			t.Fatalf("MatchPattern(%q, %q) = %v, a rule decides %v", pattern, resource, got, want)
		}
	})
}
