package apikey

import (
	"fmt"
	"strings"
	"unicode/utf8"
)

// Scope limits.
const (
	MaxScopes        = 32
	MaxScopeBytes    = 256
	MaxScopeSegments = 32
)

// A scope is a resource pattern in the policy language (DESIGN.md): segments
// separated by "/", "*" matches one segment, "**" any number (including
// none), and "*" inside a segment matches any text within it. A key whose
// scopes hold "integrations/maps" may proxy through that integration; one
// holding "integrations/*" through any.

// ValidateScope checks one scope and returns a message naming what is wrong.
func ValidateScope(s string) error {
	switch {
	case s == "":
		return fmt.Errorf("%w: a scope is empty", ErrInvalid)
	case len(s) > MaxScopeBytes:
		return fmt.Errorf("%w: scope %q is longer than %d bytes", ErrInvalid, printable(s), MaxScopeBytes)
	case !utf8.ValidString(s):
		return fmt.Errorf("%w: scope %q is not valid UTF-8", ErrInvalid, printable(s))
	case strings.Count(s, "/")+1 > MaxScopeSegments:
		return fmt.Errorf("%w: scope %q has more than %d segments", ErrInvalid, printable(s), MaxScopeSegments)
	}
	for seg := range strings.SplitSeq(s, "/") {
		switch seg {
		case "":
			return fmt.Errorf("%w: scope %q has an empty segment (a leading, trailing or double \"/\")", ErrInvalid, printable(s))
		case ".", "..":
			return fmt.Errorf("%w: scope %q has the segment %q, which is not allowed", ErrInvalid, printable(s), seg)
		case "*", "**":
			continue
		}
		for _, r := range seg {
			switch {
			case r < 0x20 || r == 0x7f || r == ' ' || r == utf8.RuneError:
				return fmt.Errorf("%w: scope %q holds the character %q, which is not allowed", ErrInvalid, printable(s), r)
			case strings.ContainsRune(`?[]{}\`, r):
				return fmt.Errorf("%w: scope %q holds %q: only \"*\" and \"**\" are wildcards", ErrInvalid, printable(s), r)
			}
		}
		if strings.Contains(seg, "**") {
			return fmt.Errorf("%w: scope %q: \"**\" must be a whole segment", ErrInvalid, printable(s))
		}
	}
	return nil
}

// MatchScopes reports whether any of scopes matches resource. It allocates
// nothing.
func MatchScopes(scopes []string, resource string) bool {
	for _, s := range scopes {
		if MatchScope(s, resource) {
			return true
		}
	}
	return false
}

// nextSeg returns the segment of s starting at byte i and the start of the
// following one; len(s)+1 once s is consumed.
func nextSeg(s string, i int) (seg string, next int) {
	k := strings.IndexByte(s[i:], '/')
	if k < 0 {
		return s[i:], len(s) + 1
	}
	return s[i : i+k], i + k + 1
}

// MatchScope reports whether the (valid) scope pattern matches resource:
// the one-backtrack-point wildcard algorithm run over segments, as the
// policy package does, on byte offsets so that nothing is allocated.
func MatchScope(pattern, resource string) bool {
	pEnd, rEnd := len(pattern)+1, len(resource)+1
	px, rx := 0, 0
	if resource == "" {
		rx = rEnd
	}
	backPx, backRx := -1, rEnd+1
	for px < pEnd || rx < rEnd {
		if px < pEnd {
			p, pn := nextSeg(pattern, px)
			if p == "**" {
				backPx, backRx = px, rEnd+1
				if rx < rEnd {
					_, backRx = nextSeg(resource, rx)
				}
				px = pn
				continue
			}
			if rx < rEnd {
				r, rn := nextSeg(resource, rx)
				if segMatch(p, r) {
					px, rx = pn, rn
					continue
				}
			}
		}
		if backPx >= 0 && backRx <= rEnd {
			px, rx = backPx, backRx
			continue
		}
		return false
	}
	return true
}

func segMatch(p, s string) bool {
	if p == "*" {
		return true
	}
	if strings.IndexByte(p, '*') < 0 {
		return p == s
	}
	return globMatch(p, s)
}

// globMatch reports whether s matches glob, where '*' matches any run of
// bytes within one segment.
func globMatch(glob, s string) bool {
	px, sx := 0, 0
	nextPx, nextSx := 0, 0
	for px < len(glob) || sx < len(s) {
		if px < len(glob) {
			c := glob[px]
			if c == '*' {
				nextPx, nextSx = px, sx+1
				px++
				continue
			}
			if sx < len(s) && s[sx] == c {
				px++
				sx++
				continue
			}
		}
		if 0 < nextSx && nextSx <= len(s) {
			px, sx = nextPx, nextSx
			continue
		}
		return false
	}
	return true
}
