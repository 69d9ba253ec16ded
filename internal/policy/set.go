package policy

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
)

// Set is an immutable, compiled collection of policies, safe for concurrent
// use. It always holds the built-in root policy.
//
// Policies are numbered in name order. Every resource pattern becomes an
// entry holding its policy's number, its rule's index, the actions the rule
// allows and denies, and its compiled matchers. Entries are reached two ways:
//   - per policy and action (byAction), scanned when the caller holds a few
//     policies, after a cheap check of the pattern's literal prefix;
//   - through a trie keyed by the pattern's leading literal and "*"
//     segments, walked along the resource's segments when the caller holds
//     many, so the work grows with the resource's depth and the rules that
//     could match it rather than with the number of rules.
//
// Both give the same Decision: among the matching rules of the caller's
// policies, a deny wins; among several, the lowest (policy name, rule index).
type Set struct {
	names    []string // sorted; index is the policy number
	policies []*Policy
	ids      map[string]int32
	compiled []compiledPolicy
	trie     *trieNode
}

type compiledPolicy struct {
	byAction [numActions][]entry // the entries of rules naming each action, by value
}

// numActions is len(Actions); TestActions keeps them in step.
const numActions = 8

type entry struct {
	pol         int32
	rule        int32
	allow, deny uint16
	pat         pattern
}

// trieNode is reached by the literal and "*" segments leading to it. Its
// entries are the patterns whose leading literal and "*" segments are that
// path, stored by value (with the matchers for the rest of the pattern) so
// a walk reads them in sequence.
type trieNode struct {
	children map[string]*trieNode // literal next segments
	star     *trieNode            // a "*" next segment
	entries  []trieEntry
}

type trieEntry struct {
	pol, rule   int32
	allow, deny uint16
	tail        tailMatcher
}

// tailMatcher matches the part of a pattern after a prefix already matched.
type tailMatcher struct {
	segs []seg
	min  int  // segments it needs: those that are not "**"
	any  bool // it holds a "**", so it takes min segments or more
}

func newTail(segs []seg) tailMatcher {
	t := tailMatcher{segs: segs}
	for _, g := range segs {
		if g.kind == segAny {
			t.any = true
		} else {
			t.min++
		}
	}
	return t
}

func (t *tailMatcher) match(s []string) bool {
	if len(s) < t.min || !t.any && len(s) != t.min {
		return false
	}
	return matchSegs(t.segs, s)
}

// scanLimit is the most policies a caller may hold for Decide to scan them
// one by one rather than walk the trie.
const scanLimit = 4

// Compile validates and compiles ps, adding the built-in root policy. Names
// must be unique and none may be "root". Compile copies the policies: later
// changes to ps do not reach the Set.
func Compile(ps []*Policy) (*Set, error) {
	all := make([]*Policy, 0, len(ps)+1)
	seen := map[string]bool{RootName: true}
	for i, p := range ps {
		if p == nil {
			return nil, &Error{Msg: fmt.Sprintf("policy %d is nil", i)}
		}
		if err := p.Validate(); err != nil {
			return nil, fmt.Errorf("policy %q: %w", printable(p.Name), err)
		}
		if seen[p.Name] {
			return nil, &Error{Msg: fmt.Sprintf("policy %q is defined twice", p.Name)}
		}
		seen[p.Name] = true
		all = append(all, p.Clone())
	}
	all = append(all, Root())
	slices.SortFunc(all, func(a, b *Policy) int { return strings.Compare(a.Name, b.Name) })

	s := &Set{
		names:    make([]string, len(all)),
		policies: all,
		ids:      make(map[string]int32, len(all)),
		compiled: make([]compiledPolicy, len(all)),
		trie:     &trieNode{},
	}
	for id, p := range all {
		s.names[id] = p.Name
		s.ids[p.Name] = int32(id)
		cp := &s.compiled[id]
		for ri, r := range p.Rules {
			var allow, deny uint16
			for _, a := range r.Allow {
				allow |= actionMask(a)
			}
			for _, a := range r.Deny {
				deny |= actionMask(a)
			}
			for _, src := range r.Resources {
				pat, err := compilePattern(src)
				if err != nil { // unreachable: validated above
					return nil, &Error{Msg: fmt.Sprintf("policy %q: rules[%d]: %v", p.Name, ri, err)}
				}
				e := entry{pol: int32(id), rule: int32(ri), allow: allow, deny: deny, pat: pat}
				for bit := range numActions {
					if (e.allow|e.deny)&(1<<bit) != 0 {
						cp.byAction[bit] = append(cp.byAction[bit], e)
					}
				}
				n, i := s.trie, 0
				for ; i < len(pat.segs); i++ {
					g := pat.segs[i]
					if g.kind == segOne {
						if n.star == nil {
							n.star = &trieNode{}
						}
						n = n.star
						continue
					}
					if g.kind != segLit {
						break
					}
					c := n.children[g.text]
					if c == nil {
						c = &trieNode{}
						if n.children == nil {
							n.children = map[string]*trieNode{}
						}
						n.children[g.text] = c
					}
					n = c
				}
				n.entries = append(n.entries, trieEntry{pol: e.pol, rule: e.rule, allow: e.allow, deny: e.deny, tail: newTail(pat.segs[i:])})
			}
		}
	}
	return s, nil
}

// Empty returns a Set holding only the root policy.
func Empty() *Set {
	s, _ := Compile(nil)
	return s
}

// Get returns a copy of the named policy.
func (s *Set) Get(name string) (*Policy, bool) {
	id, ok := s.ids[name]
	if !ok {
		return nil, false
	}
	return s.policies[id].Clone(), true
}

// Has reports whether the Set holds a policy of that name (root included).
func (s *Set) Has(name string) bool {
	_, ok := s.ids[name]
	return ok
}

// Names returns the names of the Set's policies, sorted, root included.
func (s *Set) Names() []string {
	return slices.Clone(s.names)
}

// Policies returns copies of the Set's policies other than root, by name.
func (s *Set) Policies() []*Policy {
	out := make([]*Policy, 0, len(s.policies)-1)
	for _, p := range s.policies {
		if p.Name != RootName {
			out = append(out, p.Clone())
		}
	}
	return out
}

// Effects of a Decision.
const (
	EffectAllow       = "allow"
	EffectDeny        = "deny"
	EffectDefaultDeny = "default-deny"
)

// Decision is the outcome of Decide and the reason for it.
type Decision struct {
	Allowed bool
	// Policy names the policy whose rule decided; empty for a default deny.
	Policy string
	// Rule is the index (from 0) of the deciding rule in Policy's rules, or
	// -1 when no rule matched.
	Rule int
	// Effect is EffectAllow, EffectDeny or EffectDefaultDeny.
	Effect string
	// Action and Resource repeat the request, for String.
	Action, Resource string
}

// String explains the decision, e.g. `allowed by policy "ci" rule 1`,
// `denied by policy "ci" rule 2 (explicit deny)` or
// `denied: no policy allows read on projects/x/...`. Rule numbers count from 0.
func (d Decision) String() string {
	switch d.Effect {
	case EffectAllow:
		return fmt.Sprintf("allowed by policy %q rule %d", d.Policy, d.Rule)
	case EffectDeny:
		return fmt.Sprintf("denied by policy %q rule %d (explicit deny)", d.Policy, d.Rule)
	}
	return fmt.Sprintf("denied: no policy allows %s on %s", quoteIfOdd(d.Action), quoteIfOdd(d.Resource))
}

func quoteIfOdd(s string) string {
	q := strconv.Quote(s)
	if s == "" || q[1:len(q)-1] != s || strings.ContainsRune(s, ' ') {
		return q
	}
	return s
}

// hit is the best matching rule so far: the lowest (policy, rule).
type hit struct{ pol, rule int32 }

func (h *hit) offer(pol, rule int32) {
	if h.pol < 0 || pol < h.pol || pol == h.pol && rule < h.rule {
		h.pol, h.rule = pol, rule
	}
}

// Decide decides whether a caller bound to policies may do action on
// resource. An explicit deny in any of the policies beats any allow; without
// an allow the answer is a default deny. Unknown policy names grant nothing;
// an unknown action, or a resource with an empty, "." or ".." segment, is
// always denied.
func (s *Set) Decide(policies []string, action, resource string) Decision {
	d := Decision{Rule: -1, Effect: EffectDefaultDeny, Action: action, Resource: resource}
	bit := actionMask(action)
	if bit == 0 || bit == 1<<numActions-1 {
		return d
	}
	var buf [maxStackSegs]string
	segs, ok := splitPath(resource, buf[:0])
	if !ok {
		return d
	}
	allow, deny := hit{-1, -1}, hit{-1, -1}
	if len(policies) <= scanLimit {
		s.scan(policies, bit, resource, segs, &allow, &deny)
	} else {
		s.walk(policies, bit, segs, &allow, &deny)
	}
	switch {
	case deny.pol >= 0:
		d.Policy, d.Rule, d.Effect = s.names[deny.pol], int(deny.rule), EffectDeny
	case allow.pol >= 0:
		d.Allowed, d.Policy, d.Rule, d.Effect = true, s.names[allow.pol], int(allow.rule), EffectAllow
	}
	return d
}

// scan checks the entries of each named policy for the action.
func (s *Set) scan(policies []string, bit uint16, resource string, segs []string, allow, deny *hit) {
	ai := actionIndex(bit)
	for _, name := range policies {
		id, ok := s.ids[name]
		if !ok {
			continue
		}
		entries := s.compiled[id].byAction[ai]
		for i := range entries {
			e := &entries[i]
			p := &e.pat
			if p.nLit > 0 {
				if !strings.HasPrefix(resource, p.litPrefix) ||
					len(resource) > len(p.litPrefix) && resource[len(p.litPrefix)] != '/' {
					continue
				}
			}
			if len(segs) < p.nLit || !p.rest.match(segs[p.nLit:]) {
				continue
			}
			e.record(bit, allow, deny)
		}
	}
}

// walk follows the resource down the trie, by its literal segments and by
// "*" edges, checking the entries met on the way that belong to one of the
// named policies.
func (s *Set) walk(policies []string, bit uint16, segs []string, allow, deny *hit) {
	var stack [16]uint64 // membership bits for sets of up to 1024 policies
	mark := stack[:]
	if words := (len(s.names) + 63) / 64; words > len(stack) {
		mark = make([]uint64, words)
	}
	any := false
	for _, name := range policies {
		if id, ok := s.ids[name]; ok {
			mark[id>>6] |= 1 << (id & 63)
			any = true
		}
	}
	if any {
		walkNode(s.trie, segs, 0, mark, bit, allow, deny)
	}
}

func walkNode(n *trieNode, segs []string, depth int, mark []uint64, bit uint16, allow, deny *hit) {
	for {
		rest := segs[depth:]
		for i := range n.entries {
			e := &n.entries[i]
			if mark[e.pol>>6]&(1<<(e.pol&63)) == 0 || (e.allow|e.deny)&bit == 0 || !e.tail.match(rest) {
				continue
			}
			if e.deny&bit != 0 {
				deny.offer(e.pol, e.rule)
			}
			if e.allow&bit != 0 {
				allow.offer(e.pol, e.rule)
			}
		}
		if depth == len(segs) {
			return
		}
		if n.star != nil {
			walkNode(n.star, segs, depth+1, mark, bit, allow, deny)
		}
		if n = n.children[segs[depth]]; n == nil {
			return
		}
		depth++
	}
}

func (e *entry) record(bit uint16, allow, deny *hit) {
	if e.deny&bit != 0 {
		deny.offer(e.pol, e.rule)
	}
	if e.allow&bit != 0 {
		allow.offer(e.pol, e.rule)
	}
}

func actionIndex(bit uint16) int {
	for i := range numActions {
		if bit == 1<<i {
			return i
		}
	}
	return 0
}

// AllowedBelow reports whether action could be allowed on at least one
// resource at or below prefix, a concrete path ("" is the root of all
// resources; one trailing "/" is ignored). It is used to filter list results
// and to decide whether a list endpoint may be called at all, and errs only
// towards true: it is true when some allow rule of the policies has a
// pattern that could match a path at or below prefix and no deny rule for
// the action matches every path at or below prefix. Callers still Decide on
// each item.
func (s *Set) AllowedBelow(policies []string, action, prefix string) bool {
	bit := actionMask(action)
	if bit == 0 || bit == 1<<numActions-1 {
		return false
	}
	prefix = strings.TrimSuffix(prefix, "/")
	var buf [maxStackSegs]string
	segs := buf[:0]
	if prefix != "" {
		var ok bool
		if segs, ok = splitPath(prefix, segs); !ok {
			return false
		}
	}
	allowed := false
	for _, name := range policies {
		id, ok := s.ids[name]
		if !ok {
			continue
		}
		entries := s.compiled[id].byAction[actionIndex(bit)]
		for i := range entries {
			e := &entries[i]
			if e.deny&bit != 0 && e.pat.coversBelow(segs) {
				return false
			}
			if !allowed && e.allow&bit != 0 && e.pat.matchesBelow(segs) {
				allowed = true
			}
		}
	}
	return allowed
}
