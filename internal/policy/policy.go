// Package policy is keyward's authorization model: named policy documents of
// rules, compiled into an immutable Set that answers "may these policies do
// this action on this resource?", and a Service that stores the documents.
//
// A resource is a slash-separated path (projects/<p>/envs/<e>/secrets/...,
// integrations/<name>, identities/<kind>/<name>, sys/...). A rule names
// resource patterns and the actions it allows and denies. In a pattern "*"
// matches exactly one segment, "**" any number of segments (zero or more) and
// a "*" inside a segment (prod-*) matches any text within that one segment.
//
// Invariants:
//   - An explicit deny in any of a caller's policies beats every allow; no
//     matching allow means deny. A resource with an empty, "." or ".."
//     segment is never allowed.
//   - Decide is a pure function of the compiled Set and its arguments: it does
//     no I/O, takes no locks and allocates nothing for callers bound to up to
//     1024 policies. Patterns are compiled into segment matchers once, at
//     Compile; no regular expression runs on the request path.
//   - The built-in policy "root" (allow "*" on "**") is in every Set and can
//     be neither defined nor deleted.
//   - Documents are validated before they are stored; what is stored is the
//     Canonical encoding, so an apply of an unchanged file is a no-op.
//
// Files: policy.go (documents: parse, validate, canonical encoding),
// pattern.go (resource patterns), set.go (compiled decisions), service.go
// (storage). Imported by the server and its HTTP and CLI layers; it imports
// only internal/storage.
package policy

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"

	"go.yaml.in/yaml/v3"
)

// Actions are the actions a rule may allow or deny, in canonical order.
// "*" in a rule's allow or deny list means all of them.
var Actions = []string{"read", "list", "write", "delete", "rotate", "proxy", "issue", "admin"}

// AllActions is the wildcard that stands for every action in a rule.
const AllActions = "*"

// RootName is the name of the built-in policy that allows everything.
const RootName = "root"

// Limits on a policy document. They bound the work Parse and Compile do on
// untrusted input.
const (
	MaxDocumentBytes    = 1 << 20 // one YAML or JSON input to Parse or ParseMulti
	MaxNameBytes        = 64      // a policy name
	MaxDescriptionBytes = 1024    // a policy description
	MaxRules            = 1000    // rules in one policy
	MaxResources        = 100     // resource patterns in one rule
	MaxPatternBytes     = 512     // one resource pattern
	MaxPatternSegments  = 32      // segments in one resource pattern
	MaxDocuments        = 1000    // policies in one ParseMulti stream
)

// Errors. Every parse and validation error wraps ErrInvalid.
var (
	// ErrInvalid: a policy document is malformed or breaks a rule.
	ErrInvalid = errors.New("invalid policy")
	// ErrNotFound: no stored policy has that name.
	ErrNotFound = errors.New("policy not found")
	// ErrReserved: the name belongs to the built-in root policy.
	ErrReserved = errors.New(`policy name "root" is reserved for the built-in policy`)
)

// Error is a parse or validation error. Line is the 1-based line in the
// input it refers to, or 0 when unknown (a Policy built in code). It wraps
// ErrInvalid, and ErrReserved too when the document tried to define "root".
type Error struct {
	Line int
	Msg  string
	also error
}

// Error returns "line N: message", or the message alone when Line is 0.
func (e *Error) Error() string {
	if e.Line > 0 {
		return fmt.Sprintf("line %d: %s", e.Line, e.Msg)
	}
	return e.Msg
}

// Unwrap returns ErrInvalid (and ErrReserved for a document named "root").
func (e *Error) Unwrap() []error {
	if e.also != nil {
		return []error{ErrInvalid, e.also}
	}
	return []error{ErrInvalid}
}

func errAt(line int, format string, args ...any) *Error {
	return &Error{Line: line, Msg: fmt.Sprintf(format, args...)}
}

// Rule allows and denies actions on the resources its patterns match.
type Rule struct {
	Resources []string `json:"resources" yaml:"resources"`
	Allow     []string `json:"allow,omitempty" yaml:"allow,omitempty"`
	Deny      []string `json:"deny,omitempty" yaml:"deny,omitempty"`
}

// Policy is a named list of rules.
type Policy struct {
	Name        string `json:"name" yaml:"name"`
	Description string `json:"description,omitempty" yaml:"description,omitempty"`
	Rules       []Rule `json:"rules" yaml:"rules"`
}

// Root returns the built-in root policy: allow "*" on "**".
func Root() *Policy {
	return &Policy{
		Name:        RootName,
		Description: "built-in: every action on every resource",
		Rules:       []Rule{{Resources: []string{"**"}, Allow: []string{AllActions}}},
	}
}

// Clone returns a deep copy of p.
func (p *Policy) Clone() *Policy {
	c := &Policy{Name: p.Name, Description: p.Description, Rules: make([]Rule, len(p.Rules))}
	for i, r := range p.Rules {
		c.Rules[i] = Rule{Resources: slices.Clone(r.Resources), Allow: slices.Clone(r.Allow), Deny: slices.Clone(r.Deny)}
	}
	return c
}

// Validate checks p against the rules Parse applies (without line numbers):
// a valid name other than "root", at least one rule, and in every rule at
// least one valid resource pattern and at least one known action.
func (p *Policy) Validate() error {
	return validate(p, nil)
}

// Parse reads one policy from YAML or JSON (JSON is YAML). Unknown fields,
// syntax errors and broken rules are errors that name the line; every error
// wraps ErrInvalid.
func Parse(data []byte) (*Policy, error) {
	ps, err := parse(data, 1)
	if err != nil {
		return nil, err
	}
	if len(ps) == 0 {
		return nil, errAt(0, "empty policy document")
	}
	return ps[0], nil
}

// ParseMulti reads a YAML stream of policies separated by "---". Empty
// documents are skipped; two policies with one name are an error.
func ParseMulti(data []byte) ([]*Policy, error) {
	return parse(data, MaxDocuments)
}

func parse(data []byte, max int) (ps []*Policy, err error) {
	if len(data) > MaxDocumentBytes {
		return nil, errAt(0, "policy input is larger than %d bytes", MaxDocumentBytes)
	}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	seen := map[string]int{}
	for {
		var doc yaml.Node
		if err := decodeNode(dec, &doc); err == io.EOF {
			return ps, nil
		} else if err != nil {
			return nil, err
		}
		root := &doc
		if root.Kind == yaml.DocumentNode && len(root.Content) == 1 {
			root = root.Content[0]
		}
		if isEmpty(root) {
			continue
		}
		if len(ps) == max {
			if max == 1 {
				return nil, errAt(doc.Line, "more than one document (use ParseMulti for a stream of policies)")
			}
			return nil, errAt(doc.Line, "more than %d documents", max)
		}
		p, pos, err := fromNode(root)
		if err != nil {
			return nil, err
		}
		if err := validate(p, pos); err != nil {
			return nil, err
		}
		if first, dup := seen[p.Name]; dup {
			return nil, errAt(pos.name, "policy %q is defined twice (first at line %d)", p.Name, first)
		}
		seen[p.Name] = pos.name
		ps = append(ps, p)
	}
}

// decodeNode decodes the next document, turning a panic inside the YAML
// library into an error: Parse sees untrusted input and must never crash
// the server.
func decodeNode(dec *yaml.Decoder, n *yaml.Node) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = errAt(0, "malformed YAML")
		}
	}()
	err = dec.Decode(n)
	if err == nil || err == io.EOF {
		return err
	}
	return yamlError(err)
}

// yamlError rewrites the YAML library's "yaml: line 3: ..." into an *Error.
func yamlError(err error) *Error {
	msg := strings.TrimPrefix(err.Error(), "yaml: ")
	if rest, ok := strings.CutPrefix(msg, "line "); ok {
		num, tail, ok := strings.Cut(rest, ": ")
		if n, err := strconv.Atoi(num); err == nil && ok {
			return errAt(n, "%s", tail)
		}
	}
	return errAt(0, "%s", msg)
}

func isEmpty(n *yaml.Node) bool {
	switch n.Kind {
	case 0:
		return true
	case yaml.DocumentNode:
		return len(n.Content) == 0
	case yaml.ScalarNode:
		return n.Tag == "!!null"
	}
	return false
}

// positions records where each part of a parsed policy was, for errors.
type positions struct {
	doc   int
	name  int
	rules int
	rule  []rulePos
}

type rulePos struct {
	line                   int
	resources, allow, deny []int // line of each element
	resKey                 int
}

func (p *positions) ruleLine(i int) int {
	if p == nil || i >= len(p.rule) {
		return 0
	}
	return p.rule[i].line
}

// line returns the line of list element j of rule i, or of the rule.
func (p *positions) line(i int, list string, j int) int {
	if p == nil || i >= len(p.rule) {
		return 0
	}
	var l []int
	switch list {
	case "resources":
		l = p.rule[i].resources
	case "allow":
		l = p.rule[i].allow
	case "deny":
		l = p.rule[i].deny
	}
	if j < len(l) {
		return l[j]
	}
	return p.rule[i].line
}

func deref(n *yaml.Node) *yaml.Node {
	for i := 0; n.Kind == yaml.AliasNode && n.Alias != nil && i < 8; i++ {
		n = n.Alias
	}
	return n
}

// fromNode builds a Policy from a YAML tree, refusing unknown and repeated
// fields and values of the wrong shape.
func fromNode(n *yaml.Node) (*Policy, *positions, error) {
	n = deref(n)
	pos := &positions{doc: n.Line}
	if n.Kind != yaml.MappingNode {
		return nil, nil, errAt(n.Line, "a policy must be a mapping with name and rules")
	}
	p := &Policy{}
	err := eachField(n, []string{"name", "description", "rules"}, func(key string, k, v *yaml.Node) error {
		var err error
		switch key {
		case "name":
			pos.name = v.Line
			p.Name, err = scalar(v, "name")
		case "description":
			p.Description, err = scalar(v, "description")
		case "rules":
			pos.rules = k.Line
			p.Rules, pos.rule, err = rules(v)
		}
		return err
	})
	if err != nil {
		return nil, nil, err
	}
	if pos.name == 0 {
		pos.name = n.Line
	}
	if pos.rules == 0 {
		pos.rules = n.Line
	}
	return p, pos, nil
}

// eachField calls fn for each key of mapping n, which must be one of known
// and appear once.
func eachField(n *yaml.Node, known []string, fn func(key string, k, v *yaml.Node) error) error {
	seen := map[string]int{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := deref(n.Content[i]), deref(n.Content[i+1])
		if k.Kind != yaml.ScalarNode {
			return errAt(k.Line, "a field name must be a string")
		}
		if !slices.Contains(known, k.Value) {
			return errAt(k.Line, "unknown field %q (want one of %s)", printable(k.Value), strings.Join(known, ", "))
		}
		if first, dup := seen[k.Value]; dup {
			return errAt(k.Line, "field %q appears twice (first at line %d)", k.Value, first)
		}
		seen[k.Value] = k.Line
		if err := fn(k.Value, k, v); err != nil {
			return err
		}
	}
	return nil
}

func scalar(n *yaml.Node, what string) (string, error) {
	if n.Kind != yaml.ScalarNode {
		return "", errAt(n.Line, "%s must be a string", what)
	}
	if n.Tag == "!!null" {
		return "", nil
	}
	return n.Value, nil
}

func stringList(n *yaml.Node, what string) ([]string, []int, error) {
	if n.Kind == yaml.ScalarNode && n.Tag == "!!null" {
		return nil, nil, nil
	}
	if n.Kind != yaml.SequenceNode {
		return nil, nil, errAt(n.Line, "%s must be a list, like [a, b]", what)
	}
	if len(n.Content) > MaxResources {
		return nil, nil, errAt(n.Line, "%s has more than %d entries", what, MaxResources)
	}
	var out []string
	var lines []int
	for _, e := range n.Content {
		e = deref(e)
		s, err := scalar(e, "each entry of "+what)
		if err != nil {
			return nil, nil, err
		}
		out = append(out, s)
		lines = append(lines, e.Line)
	}
	return out, lines, nil
}

func rules(n *yaml.Node) ([]Rule, []rulePos, error) {
	if n.Kind == yaml.ScalarNode && n.Tag == "!!null" {
		return nil, nil, nil
	}
	if n.Kind != yaml.SequenceNode {
		return nil, nil, errAt(n.Line, "rules must be a list of rules")
	}
	if len(n.Content) > MaxRules {
		return nil, nil, errAt(n.Line, "more than %d rules", MaxRules)
	}
	rs := make([]Rule, 0, len(n.Content))
	ps := make([]rulePos, 0, len(n.Content))
	for i, e := range n.Content {
		e = deref(e)
		if e.Kind != yaml.MappingNode {
			return nil, nil, errAt(e.Line, "rules[%d] must be a mapping with resources and allow or deny", i)
		}
		var r Rule
		rp := rulePos{line: e.Line, resKey: e.Line}
		err := eachField(e, []string{"resources", "allow", "deny"}, func(key string, k, v *yaml.Node) error {
			var err error
			switch key {
			case "resources":
				rp.resKey = k.Line
				r.Resources, rp.resources, err = stringList(v, "resources")
			case "allow":
				r.Allow, rp.allow, err = stringList(v, "allow")
			case "deny":
				r.Deny, rp.deny, err = stringList(v, "deny")
			}
			return err
		})
		if err != nil {
			return nil, nil, err
		}
		rs = append(rs, r)
		ps = append(ps, rp)
	}
	return rs, ps, nil
}

// validName reports whether s matches ^[a-z0-9][a-z0-9_-]{0,63}$.
func validName(s string) bool {
	if len(s) == 0 || len(s) > MaxNameBytes {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('a' <= c && c <= 'z' || '0' <= c && c <= '9' || i > 0 && (c == '_' || c == '-')) {
			return false
		}
	}
	return true
}

// validate checks p; pos, when not nil, supplies line numbers.
func validate(p *Policy, pos *positions) error {
	var nameLine, rulesLine int
	if pos != nil {
		nameLine, rulesLine = pos.name, pos.rules
	}
	switch {
	case p.Name == "":
		return errAt(nameLine, "name is required")
	case p.Name == RootName:
		e := errAt(nameLine, "name %q is reserved for the built-in policy", RootName)
		e.also = ErrReserved
		return e
	case !validName(p.Name):
		return errAt(nameLine, "name %q is not valid (use 1 to %d lowercase letters, digits, '_' and '-', starting with a letter or digit)", printable(p.Name), MaxNameBytes)
	}
	if len(p.Description) > MaxDescriptionBytes {
		return errAt(nameLine, "description is longer than %d bytes", MaxDescriptionBytes)
	}
	if !utf8.ValidString(p.Description) {
		return errAt(nameLine, "description is not valid UTF-8")
	}
	if len(p.Rules) == 0 {
		return errAt(rulesLine, "policy %q has no rules (want at least one)", p.Name)
	}
	if len(p.Rules) > MaxRules {
		return errAt(rulesLine, "policy %q has more than %d rules", p.Name, MaxRules)
	}
	for i, r := range p.Rules {
		line := pos.ruleLine(i)
		if len(r.Resources) == 0 {
			return errAt(line, "rules[%d] has no resources (want at least one pattern)", i)
		}
		if len(r.Resources) > MaxResources {
			return errAt(line, "rules[%d] has more than %d resources", i, MaxResources)
		}
		if len(r.Allow) == 0 && len(r.Deny) == 0 {
			return errAt(line, "rules[%d] neither allows nor denies anything (want allow or deny)", i)
		}
		for j, res := range r.Resources {
			if _, err := compilePattern(res); err != nil {
				return errAt(pos.line(i, "resources", j), "rules[%d]: %s", i, err)
			}
		}
		for _, list := range []struct {
			name    string
			actions []string
		}{{"allow", r.Allow}, {"deny", r.Deny}} {
			for j, a := range list.actions {
				if actionMask(a) == 0 {
					return errAt(pos.line(i, list.name, j), "unknown action %q (want one of %s, or \"*\" for all)", printable(a), strings.Join(Actions, ", "))
				}
				if slices.Index(list.actions, a) < j {
					return errAt(pos.line(i, list.name, j), "rules[%d]: action %q appears twice in %s", i, a, list.name)
				}
			}
		}
	}
	return nil
}

// actionMask returns the bit of an action, all bits for "*", or 0 when the
// action is unknown.
func actionMask(a string) uint16 {
	switch a {
	case "read":
		return 1 << 0
	case "list":
		return 1 << 1
	case "write":
		return 1 << 2
	case "delete":
		return 1 << 3
	case "rotate":
		return 1 << 4
	case "proxy":
		return 1 << 5
	case "issue":
		return 1 << 6
	case "admin":
		return 1 << 7
	case AllActions:
		return 1<<8 - 1
	}
	return 0
}

// Canonical returns a stable YAML encoding of p: fields in a fixed order,
// lists in flow style, two-space indentation, no comments. Two documents
// that parse to the same policy have the same canonical encoding, so
// comparing it tells whether an apply changes anything. Rule order and the
// order within lists are kept: they are the author's.
func (p *Policy) Canonical() []byte {
	str := func(s string) *yaml.Node { return &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: s} }
	list := func(ss []string) *yaml.Node {
		n := &yaml.Node{Kind: yaml.SequenceNode, Tag: "!!seq", Style: yaml.FlowStyle}
		for _, s := range ss {
			n.Content = append(n.Content, str(s))
		}
		return n
	}
	doc := &yaml.Node{Kind: yaml.MappingNode, Tag: "!!map"}
	doc.Content = append(doc.Content, str("name"), str(p.Name))
	if p.Description != "" {
		doc.Content = append(doc.Content, str("description"), str(p.Description))
	}
	rs := &yaml.Node{Kind: yaml.SequenceNode, Tag: "!!seq"}
	for _, r := range p.Rules {
		m := &yaml.Node{Kind: yaml.MappingNode, Tag: "!!map"}
		m.Content = append(m.Content, str("resources"), list(r.Resources))
		if len(r.Allow) > 0 {
			m.Content = append(m.Content, str("allow"), list(r.Allow))
		}
		if len(r.Deny) > 0 {
			m.Content = append(m.Content, str("deny"), list(r.Deny))
		}
		rs.Content = append(rs.Content, m)
	}
	doc.Content = append(doc.Content, str("rules"), rs)

	var buf bytes.Buffer
	enc := yaml.NewEncoder(&buf)
	enc.SetIndent(2)
	err := enc.Encode(doc)
	if err == nil {
		err = enc.Close()
	}
	if err != nil {
		// Unreachable for a validated policy; stay deterministic anyway.
		b, _ := json.Marshal(p)
		return b
	}
	return buf.Bytes()
}

// printable makes user input safe to put in an error message.
func printable(s string) string {
	if len(s) > 80 {
		s = s[:80] + "…"
	}
	return strings.ToValidUTF8(s, "?")
}
