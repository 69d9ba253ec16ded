package apikey

import (
	"fmt"

	"github.com/keyward/keyward/internal/policy"
)

// Scope limits.
const (
	MaxScopes     = 32
	MaxScopeBytes = 256
)

// A scope is a resource pattern in the policy language (DESIGN.md): segments
// separated by "/", "*" matches one segment, "**" any number (including
// none), and "*" inside a segment matches any text within it. A key whose
// scopes hold "integrations/maps" may proxy through that integration; one
// holding "integrations/*" through any. Validation and matching are the
// policy package's own, so a scope means exactly what the same pattern
// means in a policy rule.

// ValidateScope checks one scope and returns a message naming what is wrong.
func ValidateScope(s string) error {
	if len(s) > MaxScopeBytes {
		return fmt.Errorf("%w: scope %q is longer than %d bytes", ErrInvalid, printable(s), MaxScopeBytes)
	}
	if err := policy.ValidatePattern(s); err != nil {
		return fmt.Errorf("%w: scope: %w", ErrInvalid, err)
	}
	return nil
}

// MatchScopes reports whether any of scopes matches resource. It allocates
// nothing.
func MatchScopes(scopes []string, resource string) bool {
	for _, s := range scopes {
		if policy.MatchPattern(s, resource) {
			return true
		}
	}
	return false
}
