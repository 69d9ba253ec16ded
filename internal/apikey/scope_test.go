package apikey

import (
	"errors"
	"strings"
	"testing"
)

// Scopes are policy resource patterns (the matching itself is tested in
// the policy package); what apikey adds is a shorter length limit and
// ErrInvalid on every refusal.
func TestScopes(t *testing.T) {
	for scope, want := range map[string]string{
		"":                        "empty",
		"a//b":                    "empty segment",
		"integrations/../secrets": `".."`,
		"integrations/ma?s":       "wildcards",
		"integrations/**maps":     "whole segment",
		strings.Repeat("a", 300):  "longer than 256 bytes",
		"integrations/\x00":       "not allowed",
	} {
		err := ValidateScope(scope)
		if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), want) {
			t.Errorf("ValidateScope(%q) = %v, want ErrInvalid naming %q", scope, err, want)
		}
	}
	if err := ValidateScope("integrations/maps-*"); err != nil {
		t.Fatal(err)
	}
	if MatchScopes(nil, "integrations/maps") || !MatchScopes([]string{"a", "integrations/*"}, "integrations/maps") ||
		MatchScopes([]string{"integrations/*"}, "integrations/maps/v1") {
		t.Error("MatchScopes does not answer as any of its patterns")
	}
	if n := testing.AllocsPerRun(100, func() { MatchScopes([]string{"x", "integrations/**/geocode"}, "integrations/maps/v1/geocode") }); n != 0 {
		t.Errorf("MatchScopes allocates %v times", n)
	}
}
