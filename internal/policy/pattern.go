package policy

import (
	"fmt"
	"strings"
	"unicode/utf8"
)

// A resource pattern is compiled into a list of segment matchers. Matching a
// resource treats segments the way a shell glob treats characters: "**" is
// the star (any run of segments, including none) and every other matcher
// consumes exactly one segment. That lets the classic one-backtrack-point
// wildcard algorithm run over segments, in O(segments) for patterns with at
// most one "**" and O(pattern × resource) at worst, without allocating.

type segKind uint8

const (
	segLit  segKind = iota // exact text
	segOne                 // "*": any one segment
	segAny                 // "**": any number of segments
	segGlob                // text with "*" inside: any text within one segment
)

type seg struct {
	kind segKind
	text string // segLit: the segment; segGlob: the glob
}

func (g *seg) match(s string) bool {
	switch g.kind {
	case segLit:
		return g.text == s
	case segOne:
		return true
	case segGlob:
		return globMatch(g.text, s)
	}
	return false
}

// pattern is a compiled resource pattern.
type pattern struct {
	src  string
	segs []seg
	// nLit leading segments are literals; litPrefix is them joined by "/".
	nLit      int
	litPrefix string
	rest      tailMatcher // segs[nLit:]
	// Coverage of a whole subtree (AllowedBelow): segs[tail:] holds only "*"
	// and "**", tailStars of them "*"; tailAny says one of them is "**".
	tail      int
	tailStars int
	tailAny   bool
}

// compilePattern validates and compiles a resource pattern. Its errors are
// messages for users (they quote the pattern).
func compilePattern(src string) (pattern, error) {
	p := pattern{src: src}
	switch {
	case src == "":
		return p, fmt.Errorf("resource pattern is empty")
	case len(src) > MaxPatternBytes:
		return p, fmt.Errorf("resource pattern %q is longer than %d bytes", printable(src), MaxPatternBytes)
	case !utf8.ValidString(src):
		return p, fmt.Errorf("resource pattern %q is not valid UTF-8", printable(src))
	}
	if n := strings.Count(src, "/") + 1; n > MaxPatternSegments {
		return p, fmt.Errorf("resource pattern %q has more than %d segments", printable(src), MaxPatternSegments)
	}
	p.segs = make([]seg, 0, strings.Count(src, "/")+1)
	for rest := src; ; {
		s, after, more := strings.Cut(rest, "/")
		g, err := compileSeg(src, s)
		if err != nil {
			return p, err
		}
		p.segs = append(p.segs, g)
		if !more {
			break
		}
		rest = after
	}
	for p.nLit < len(p.segs) && p.segs[p.nLit].kind == segLit {
		p.nLit++
	}
	p.rest = newTail(p.segs[p.nLit:])
	n := -1 // the literal prefix is the start of src
	for _, g := range p.segs[:p.nLit] {
		n += 1 + len(g.text)
	}
	p.litPrefix = src[:max(n, 0)]
	p.tail = len(p.segs)
	for p.tail > 0 && (p.segs[p.tail-1].kind == segOne || p.segs[p.tail-1].kind == segAny) {
		p.tail--
		if p.segs[p.tail].kind == segAny {
			p.tailAny = true
		} else {
			p.tailStars++
		}
	}
	return p, nil
}

// ValidatePattern checks a resource pattern of the policy language, for
// other packages that grant access by pattern (API key scopes). Its errors
// are messages for users.
func ValidatePattern(src string) error {
	_, err := compilePattern(src)
	return err
}

// MatchPattern reports whether the valid resource pattern src matches
// resource, exactly as a policy rule holding src would, without compiling
// it onto the heap: it allocates nothing for patterns and resources of up
// to MaxPatternSegments segments. A resource with an empty, "." or ".."
// segment matches nothing.
func MatchPattern(src, resource string) bool {
	var pb [MaxPatternSegments]seg
	p := pb[:0]
	for rest := src; ; {
		s, after, more := strings.Cut(rest, "/")
		if len(p) == len(pb) {
			return false // not a valid pattern
		}
		p = append(p, segOf(s))
		if !more {
			break
		}
		rest = after
	}
	var rb [maxStackSegs]string
	segs, ok := splitPath(resource, rb[:0])
	return ok && matchSegs(p, segs)
}

// segOf is the matcher of one segment of a valid pattern.
func segOf(s string) seg {
	switch {
	case s == "**":
		return seg{kind: segAny}
	case s == "*":
		return seg{kind: segOne}
	case strings.Contains(s, "*"):
		return seg{kind: segGlob, text: s}
	}
	return seg{kind: segLit, text: s}
}

func compileSeg(src, s string) (seg, error) {
	switch s {
	case "":
		return seg{}, fmt.Errorf("resource pattern %q has an empty segment (a leading, trailing or double \"/\")", printable(src))
	case ".", "..":
		return seg{}, fmt.Errorf("resource pattern %q has the segment %q, which is not allowed", printable(src), s)
	case "*", "**":
		return segOf(s), nil
	}
	for _, r := range s {
		switch {
		case r < 0x20 || r == 0x7f || r == ' ' || r == utf8.RuneError:
			return seg{}, fmt.Errorf("resource pattern %q holds the character %q, which is not allowed", printable(src), r)
		case strings.ContainsRune(`?[]{}\`, r):
			return seg{}, fmt.Errorf("resource pattern %q holds %q: only \"*\" and \"**\" are wildcards", printable(src), r)
		}
	}
	if strings.Contains(s, "**") {
		return seg{}, fmt.Errorf("resource pattern %q: \"**\" must be a whole segment (write %q for text within one segment)", printable(src), strings.ReplaceAll(s, "**", "*"))
	}
	return segOf(s), nil
}

// globMatch reports whether s matches glob, where '*' matches any run of
// bytes (the text is within one segment, so it holds no '/').
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

// matchSegs reports whether the segments s match the matchers p.
func matchSegs(p []seg, s []string) bool {
	px, sx := 0, 0
	nextPx, nextSx := 0, 0
	for px < len(p) || sx < len(s) {
		if px < len(p) {
			g := &p[px]
			if g.kind == segAny {
				nextPx, nextSx = px, sx+1
				px++
				continue
			}
			if sx < len(s) && g.match(s[sx]) {
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

// The subtree questions (AllowedBelow) run the pattern as an automaton
// whose states are positions in the pattern, held in a bit set (a pattern
// has at most MaxPatternSegments segments, so 33 positions fit a uint64):
// bit i set means segs[:i] matches the segments consumed so far.

// literalsAgree reports whether the leading literal segments of p agree
// with s as far as both go: a quick way to rule most patterns out.
func (p *pattern) literalsAgree(s []string) bool {
	for i := range min(p.nLit, len(s)) {
		if p.segs[i].text != s[i] {
			return false
		}
	}
	return true
}

// closure adds, for every state before a "**", the state after it ("**"
// may match nothing).
func closure(p []seg, states uint64) uint64 {
	for i := range p {
		if states&(1<<i) != 0 && p[i].kind == segAny {
			states |= 1 << (i + 1)
		}
	}
	return states
}

// step consumes one segment x.
func step(p []seg, states uint64, x string) uint64 {
	var next uint64
	for i := range p {
		if states&(1<<i) == 0 {
			continue
		}
		if p[i].kind == segAny {
			next |= 1 << i
		} else if p[i].match(x) {
			next |= 1 << (i + 1)
		}
	}
	return closure(p, next)
}

// matchesBelow reports whether p could match some path at or below the
// path s: some leading part of p matches s whole (some state survives s),
// and the rest of p can always be satisfied by some suffix (literals and
// globs are valid segments).
func (p *pattern) matchesBelow(s []string) bool {
	if !p.literalsAgree(s) {
		return false
	}
	states := closure(p.segs, 1)
	for _, x := range s {
		if states = step(p.segs, states, x); states == 0 {
			return false
		}
	}
	return true
}

// coversBelow reports whether p matches every path at or below s: a leading
// part of p matches a leading part of s, and p's tail of "*" and "**" (with
// at least one "**") takes whatever remains, however long. It may answer
// false for an exotic pattern that does cover s; callers use it to rule a
// subtree out, so false is the safe answer.
func (p *pattern) coversBelow(s []string) bool {
	if !p.tailAny || !p.literalsAgree(s) {
		return false
	}
	head := p.segs[:p.tail]
	final := uint64(1) << len(head)
	states := closure(head, 1)
	for i := 0; i+p.tailStars <= len(s); i++ {
		if states&final != 0 {
			return true
		}
		if i == len(s) {
			break
		}
		if states = step(head, states, s[i]); states == 0 {
			return false
		}
	}
	return false
}

// maxStackSegs is how many resource segments Decide splits without
// allocating; deeper resources still work, on the heap.
const maxStackSegs = 32

// splitPath appends the segments of path to buf. ok is false when a segment
// is empty, "." or "..": such a path names nothing and is never allowed.
func splitPath(path string, buf []string) (segs []string, ok bool) {
	segs = buf
	for {
		s, rest, more := strings.Cut(path, "/")
		if s == "" || s == "." || s == ".." {
			return segs, false
		}
		segs = append(segs, s)
		if !more {
			return segs, true
		}
		path = rest
	}
}
