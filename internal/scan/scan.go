// Package scan is keyward's secret-scanning engine: the rules that describe
// what a leaked credential looks like and the Engine that finds them in
// fragments of text produced by package source.
//
// # Pipeline
//
// For each fragment the Engine
//
//  1. runs one Aho-Corasick automaton (a dense DFA over byte classes,
//     ASCII case-insensitive) over the fragment to find every occurrence of
//     every rule keyword, in a single pass;
//  2. skips the rules none of whose keywords occur;
//  3. runs each rule with a keyword hit near its hits only: a rule whose
//     matches begin at a keyword (KeywordStart: prefixed tokens such as
//     ghp_, and "name = value" rules) is tried anchored at each hit, over at
//     most Window bytes and never past the line end; any other rule runs
//     over windows around its hits — the hit's line clipped to ±Window bytes,
//     or ±Window bytes for multi-line rules — merged where they overlap;
//  4. keeps the secret capture group and drops it when its structural
//     validator (checksum, JWT, PEM, bech32) rejects it — the bytes are then
//     claimed, so no generic rule reports a look-alike either — or when its
//     Shannon entropy is below the rule's minimum, it contains a stop word,
//     an allow regex matches it, or its line carries the marker
//     "keyward:allow";
//  5. drops a finding of a fallback rule (generic assignments, URLs with
//     passwords, bearer headers, bare private keys) when a more specific rule
//     found a secret overlapping it;
//  6. computes lines and columns, the redacted form and a fingerprint.
//
// Regular expressions are Go's RE2 engine, so matching is linear in the input;
// windows and line ends are found in forward passes that never rescan a
// byte, so a whole Scan is linear in the fragment's size whatever the input
// (a 200 MB line, NUL bytes, invalid UTF-8). Overlapping fragments of one
// input (see source.Overlap) can report a secret twice with the same
// fingerprint; callers deduplicate on (Fingerprint, Line, Column).
//
// # Positions
//
// Line numbers are 1-based. Columns are 1-based byte offsets within the line.
// Line/Column point at the first byte of the secret and EndLine/EndColumn at
// its last byte (inclusive), so a one-line secret spans EndColumn-Column+1
// bytes.
//
// The package never logs and never puts a secret in an error. It may be
// imported by the scan command and by anything that wants to check text for
// credentials (the log redactor, the server's push checks).
package scan

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"math"
	"regexp"
	"slices"
	"strings"
	"sync"
	"unicode/utf8"

	"github.com/keyward/keyward/internal/scan/source"
)

// DefaultWindow is how many bytes either side of a keyword hit a rule's regular
// expression sees when the rule does not set Window.
const DefaultWindow = 512

// AllowMarker on a line suppresses every finding on that line.
const AllowMarker = "keyward:allow"

// ErrInvalidRule is returned (wrapped) by NewEngine and LoadConfig for a rule
// that cannot be used: no id, no regex, a bad severity or a bad secret group.
var ErrInvalidRule = errors.New("invalid rule")

// Rule describes one kind of secret.
type Rule struct {
	// ID is the rule's stable kebab-case name, such as "github-pat".
	ID string
	// Description says what the rule finds, for reports.
	Description string
	// Regex finds candidates (Go RE2 syntax: matching is linear time).
	// Built-in rules leave it nil and compile their pattern on first use
	// (see regex), so a pre-commit scan that meets few keywords compiles
	// few regexes.
	Regex *regexp.Regexp
	// SecretGroup is the capture group holding the secret; 0 is the whole
	// match. When that group did not participate, the first non-empty group
	// is used.
	SecretGroup int
	// Keywords are lower-case strings, one of which must occur in a fragment
	// for the rule to run; the regex runs only near their occurrences. An
	// empty list makes the rule run over whole fragments (slow; avoid).
	Keywords []string
	// Entropy is the minimum Shannon entropy of the secret in bits per byte;
	// 0 disables the check.
	Entropy float64
	// Validate, when set, is a structural check of the secret (a checksum,
	// a JWT header, a PEM body). A candidate it rejects is not reported.
	Validate func(secret []byte) bool
	// Severity of a finding.
	Severity Severity
	// Paths, when set, restricts the rule to files whose path matches.
	Paths *regexp.Regexp
	// Allow drops a candidate whose secret matches any of these.
	Allow []*regexp.Regexp
	// AllowMatch drops a candidate whose whole match (name, operator and
	// value for assignment rules), extended backwards over the identifier
	// characters it starts in (so "csrf_token = …" is seen whole when the
	// regex starts at "token"), matches any of these.
	AllowMatch []*regexp.Regexp

	// MultiLine lets a secret span lines (PEM blocks): windows around
	// keyword hits are not cut at line ends.
	MultiLine bool
	// Window is how many bytes either side of a keyword hit the regex sees;
	// 0 means DefaultWindow. Single-line rules are also cut at line ends.
	Window int
	// Fallback marks a broad rule whose finding is dropped when another,
	// non-fallback rule reported a secret overlapping it.
	Fallback bool
	// KeywordStart declares that every match begins where an occurrence of
	// one of Keywords begins. The regex then runs anchored at each keyword
	// hit, over at most Window bytes (cut at the line end for single-line
	// rules), instead of unanchored over windows: on keyword-dense input
	// (minified code, logs) this replaces a scan of whole lines per rule
	// by a short anchored attempt per hit.
	KeywordStart bool

	// leftBound requires the byte before a match not to be a word character
	// [0-9A-Za-z_]. Built-in token rules use it in place of a leading \b,
	// which would stop Go's regexp from skipping to the token's literal
	// prefix.
	leftBound bool
	// quotedInCode requires, in source-code files (by extension), the secret
	// to follow a quote: there an unquoted value is an identifier or an
	// expression, not a literal. Config, env and other files accept
	// unquoted values.
	quotedInCode bool
	// allowName, when set, drops a candidate when it reports true for the
	// identifier the match starts in (extended backwards like AllowMatch,
	// up to the first byte that cannot be part of a name).
	allowName func(name []byte) bool

	// pattern, lazy and groups describe a built-in rule's regex before it
	// is compiled: its source, a shared compile-once function, and its
	// number of capture groups. Regex, when set, takes precedence.
	pattern string
	lazy    func() *regexp.Regexp
	groups  int
}

// regex returns the rule's compiled regex (compiling a built-in one on
// first use; safe for concurrent use), or nil if it has none.
func (r *Rule) regex() *regexp.Regexp {
	if r.Regex != nil {
		return r.Regex
	}
	if r.lazy != nil {
		return r.lazy()
	}
	return nil
}

// source returns the regex's source text without compiling it.
func (r *Rule) source() string {
	if r.Regex != nil {
		return r.Regex.String()
	}
	return r.pattern
}

// numSubexp returns the regex's number of capture groups without compiling it.
func (r *Rule) numSubexp() int {
	if r.Regex != nil {
		return r.Regex.NumSubexp()
	}
	return r.groups
}

// window returns the rule's effective window.
func (r *Rule) window() int {
	if r.Window > 0 {
		return r.Window
	}
	return DefaultWindow
}

// check reports whether r is usable.
func (r *Rule) check() error {
	if r.ID == "" {
		return fmt.Errorf("%w: missing id", ErrInvalidRule)
	}
	if r.Regex == nil && r.lazy == nil {
		return fmt.Errorf("%w: rule %q: missing regex", ErrInvalidRule, r.ID)
	}
	if n := r.numSubexp(); r.SecretGroup < 0 || r.SecretGroup > n {
		return fmt.Errorf("%w: rule %q: secret group %d but the regex has %d groups", ErrInvalidRule, r.ID, r.SecretGroup, n)
	}
	if _, err := ParseSeverity(string(r.Severity)); err != nil {
		return fmt.Errorf("%w: rule %q: %v", ErrInvalidRule, r.ID, err)
	}
	for _, k := range r.Keywords {
		if k == "" {
			return fmt.Errorf("%w: rule %q: empty keyword", ErrInvalidRule, r.ID)
		}
	}
	return nil
}

// ParseSeverity maps "critical", "high", "medium" or "low" (any case) to a
// Severity.
func ParseSeverity(s string) (Severity, error) {
	switch Severity(strings.ToLower(s)) {
	case Critical:
		return Critical, nil
	case High:
		return High, nil
	case Medium:
		return Medium, nil
	case Low:
		return Low, nil
	}
	return "", fmt.Errorf("unknown severity %q (want critical, high, medium or low)", s)
}

// Rank orders severities: critical 4, high 3, medium 2, low 1, anything else 0.
func (s Severity) Rank() int {
	switch s {
	case Critical:
		return 4
	case High:
		return 3
	case Medium:
		return 2
	case Low:
		return 1
	}
	return 0
}

// Engine scans fragments with a fixed rule set. It is immutable after
// NewEngine and safe for concurrent use.
type Engine struct {
	rules     []*Rule
	keywords  []string     // distinct lower-case keywords
	kwRules   [][]int      // keyword index → rules using it
	always    []int        // rules without keywords
	pathRules []int        // rules restricted to some paths
	anchored  []lazyRegexp // rule index → Regex anchored at its start (KeywordStart rules)
	// startsWord[ri]: rule ri's matches start at a keyword and not inside a
	// word, so a hit preceded by a word byte is dropped when recorded (runs
	// like "aaaa…" would otherwise record a hit per byte).
	startsWord []bool
	matcher    *keywordMatcher
	stopWords  [][]byte // lower-case
	allowRe    []*regexp.Regexp
	paths      []glob
	pool       sync.Pool
}

// NewEngine builds an engine from cfg: the default rules, replaced or extended
// by cfg.Rules (same ID replaces), minus cfg.Disabled, with the default
// allowlists plus cfg's. A nil cfg means the defaults.
func NewEngine(cfg *Config) (*Engine, error) {
	if cfg == nil {
		cfg = &Config{}
	}
	rules := DefaultRules()
	if cfg.NoDefaultRules {
		rules = nil
	}
	for _, r := range cfg.Rules {
		if err := r.check(); err != nil {
			return nil, err
		}
		if i := slices.IndexFunc(rules, func(d *Rule) bool { return d.ID == r.ID }); i >= 0 {
			rules[i] = r
		} else {
			rules = append(rules, r)
		}
	}
	for id := range cfg.Disabled {
		if !slices.ContainsFunc(rules, func(r *Rule) bool { return r.ID == id }) {
			return nil, fmt.Errorf("%w: cannot disable unknown rule %q", ErrInvalidRule, id)
		}
	}
	rules = slices.DeleteFunc(rules, func(r *Rule) bool { return cfg.Disabled[r.ID] })

	e := &Engine{rules: rules}
	kwIndex := map[string]int{}
	for i, r := range rules {
		if err := r.check(); err != nil {
			return nil, err
		}
		if len(r.Keywords) == 0 {
			e.always = append(e.always, i)
			continue
		}
		if r.MultiLine && r.window() > maxMultiLineWindow {
			return nil, fmt.Errorf("%w: rule %q: window %d exceeds %d", ErrInvalidRule, r.ID, r.window(), maxMultiLineWindow)
		}
		for _, k := range r.Keywords {
			k = lowerASCII(k)
			j, ok := kwIndex[k]
			if !ok {
				j = len(e.keywords)
				kwIndex[k] = j
				e.keywords = append(e.keywords, k)
				e.kwRules = append(e.kwRules, nil)
			}
			if !slices.Contains(e.kwRules[j], i) {
				e.kwRules[j] = append(e.kwRules[j], i)
			}
		}
	}
	e.matcher = newKeywordMatcher(e.keywords)
	e.anchored = make([]lazyRegexp, len(rules))
	e.startsWord = make([]bool, len(rules))
	for i, r := range rules {
		e.startsWord[i] = r.KeywordStart && r.leftBound
		e.anchored[i].src = `^(?:` + r.source() + `)`
	}
	for i, r := range rules {
		if r.Paths != nil {
			e.pathRules = append(e.pathRules, i)
		}
	}

	for _, w := range append(DefaultStopWords(), cfg.StopWords...) {
		if w != "" {
			e.stopWords = append(e.stopWords, []byte(lowerASCII(w)))
		}
	}
	e.allowRe = append(DefaultAllowRegexes(), cfg.AllowRegexes...)
	for _, p := range append(DefaultAllowPaths(), cfg.AllowPaths...) {
		g, err := compileGlob(p)
		if err != nil {
			return nil, err
		}
		e.paths = append(e.paths, g)
	}
	return e, nil
}

// Rules returns the engine's rules, in order. The caller must not modify them.
func (e *Engine) Rules() []*Rule { return slices.Clone(e.rules) }

// AllowPath reports whether path (slash-separated, relative to the scan
// root) matches an allow glob, so that its contents are not scanned.
func (e *Engine) AllowPath(path string) bool {
	path = strings.TrimPrefix(path, "./")
	var buf [32]string
	parts := buf[:0]
	for p := range strings.SplitSeq(path, "/") {
		parts = append(parts, p)
	}
	for _, g := range e.paths {
		if g.match(parts) {
			return true
		}
	}
	return false
}

// lazyRegexp is a regexp compiled on first use, so that a short scan (a
// pre-commit hook on one file) compiles only the anchored forms of the rules
// whose keywords it meets.
type lazyRegexp struct {
	once sync.Once
	src  string
	re   *regexp.Regexp
}

// get returns the compiled regexp. src is a valid regexp wrapped in
// ^(?:…), which always compiles.
func (l *lazyRegexp) get() *regexp.Regexp {
	l.once.Do(func() { l.re = regexp.MustCompile(l.src) })
	return l.re
}

// maxPooledInts bounds the slices a pooled scratch keeps between scans.
const maxPooledInts = 1 << 18

// maxMultiLineWindow bounds a multi-line rule's window.
const maxMultiLineWindow = 1 << 20

// scratch is per-Scan working memory, pooled.
type scratch struct {
	ruleHit  [][]int // rule index → keyword hits as (start, end) pairs
	skip     []bool  // rule index → restricted to paths that exclude this one
	ran      []int   // rules with at least one hit
	lines    []int   // offsets of '\n' in the fragment, built lazily
	linesOK  bool
	markLine []byte
	claims   [][2]int // secrets a specific rule's validator rejected
	code     bool     // the fragment's path is a source-code file
}

// cand is a finding before positions are computed.
type cand struct {
	rule       int
	start, end int // secret, offsets in Data
	mStart     int // whole match start, offsets in Data
	mEnd       int
}

// Scan finds secrets in one fragment. It never panics on any input and is
// safe for concurrent use. Findings are ordered by position. Scan does not
// consult AllowPath for f.Path beyond skipping the fragment entirely when
// the path is allowed.
func (e *Engine) Scan(f *source.Fragment) []Finding {
	if f == nil || len(f.Data) == 0 || e.AllowPath(f.Path) {
		return nil
	}
	s, _ := e.pool.Get().(*scratch)
	if s == nil {
		s = &scratch{}
	}
	defer e.pool.Put(s)
	s.linesOK = false
	s.lines = s.lines[:0]
	s.claims = s.claims[:0]
	s.code = isCodePath(f.Path)
	data := f.Data

	if len(s.ruleHit) < len(e.rules) {
		s.ruleHit = make([][]int, len(e.rules))
		s.skip = make([]bool, len(e.rules))
	}
	active := s.ruleHit[:len(e.rules)]
	skip := s.skip[:len(e.rules)]
	for _, ri := range e.pathRules {
		skip[ri] = !e.rules[ri].Paths.MatchString(f.Path)
	}
	ran := s.ran[:0]
	e.matcher.match(data, func(k, start, end int) {
		inWord := start > 0 && isWordByte(data[start-1])
		for _, ri := range e.kwRules[k] {
			if skip[ri] || inWord && e.startsWord[ri] {
				continue
			}
			if len(active[ri]) == 0 {
				ran = append(ran, ri)
			}
			active[ri] = append(active[ri], start, end)
		}
	})
	var cands []cand
	for _, ri := range ran {
		hits := active[ri]
		for i := 2; i < len(hits); i += 2 {
			if hits[i] < hits[i-2] {
				sortPairs(hits)
				break
			}
		}
		if e.rules[ri].KeywordStart {
			cands = e.runAnchored(cands, s, ri, data, hits)
		} else {
			cands = e.runRule(cands, s, ri, data, hits)
		}
		active[ri] = hits[:0]
		if cap(hits) > maxPooledInts {
			active[ri] = nil // do not keep a huge input's hit list in the pool
		}
	}
	s.ran = ran
	for _, ri := range e.always {
		if !skip[ri] {
			cands = e.runWindow(cands, s, ri, data, 0, len(data))
		}
	}
	if len(cands) == 0 {
		return nil
	}
	cands = e.dropShadowed(cands, s.claims)
	defer func() {
		if cap(s.lines) > maxPooledInts {
			s.lines = nil
		}
	}()
	out := make([]Finding, 0, len(cands))
	for _, c := range cands {
		out = append(out, e.finding(f, s, c))
	}
	return out
}

// sortPairs sorts a flat list of (start, end) pairs by start.
func sortPairs(p []int) {
	n := len(p) / 2
	idx := make([][2]int, n)
	for i := range n {
		idx[i] = [2]int{p[2*i], p[2*i+1]}
	}
	slices.SortFunc(idx, func(a, b [2]int) int { return a[0] - b[0] })
	for i, v := range idx {
		p[2*i], p[2*i+1] = v[0], v[1]
	}
}

// runRule builds the windows for rule ri from its sorted keyword hits and
// runs the rule in each. Windows are built in one forward pass: every byte is
// scanned for line ends at most once per rule.
func (e *Engine) runRule(cands []cand, s *scratch, ri int, data []byte, hits []int) []cand {
	r := e.rules[ri]
	w := r.window()
	n := len(data)
	curS, curE := -1, -1
	atLineEnd := false // the current window ends at a '\n' or at the end of data
	for i := 0; i < len(hits); i += 2 {
		p, q := hits[i], hits[i+1]
		hi := min(n, q+w)
		if curS >= 0 {
			if q <= curE {
				continue
			}
			if r.MultiLine {
				if p-w <= curE {
					curE = max(curE, hi)
					continue
				}
			} else if !atLineEnd && p-w <= curE {
				// Extend the current window along its line.
				if j := bytes.IndexByte(data[curE:hi], '\n'); j >= 0 {
					curE += j
					atLineEnd = true
				} else {
					curE = hi
					atLineEnd = curE == n
				}
				if q <= curE {
					continue
				}
			}
			cands = e.runWindow(cands, s, ri, data, curS, curE)
		}
		lo := max(0, p-w)
		if curS >= 0 && curE > lo {
			lo = min(curE, p)
		}
		if r.MultiLine {
			curS, curE = lo, hi
			continue
		}
		curS = lo
		if j := bytes.LastIndexByte(data[lo:p], '\n'); j >= 0 {
			curS = lo + j + 1
		}
		curE = hi
		atLineEnd = hi == n
		if j := bytes.IndexByte(data[p:hi], '\n'); j >= 0 {
			curE = p + j
			atLineEnd = true
		}
	}
	if curS >= 0 {
		cands = e.runWindow(cands, s, ri, data, curS, curE)
	}
	return cands
}

// runWindow runs rule ri over data[s:t] and appends the candidates that pass
// every filter.
func (e *Engine) runWindow(cands []cand, sc *scratch, ri int, data []byte, s, t int) []cand {
	if s >= t {
		return cands
	}
	r := e.rules[ri]
	for _, m := range r.regex().FindAllSubmatchIndex(data[s:t], -1) {
		cands = e.candidate(cands, sc, ri, data, s, m)
	}
	return cands
}

// runAnchored runs a KeywordStart rule's anchored regex at each keyword hit.
// Line ends are found with one forward pass over the data (each byte is
// searched at most once), so the cost is linear in the data plus the
// anchored attempts.
func (e *Engine) runAnchored(cands []cand, sc *scratch, ri int, data []byte, hits []int) []cand {
	r := e.rules[ri]
	w := r.window()
	n := len(data)
	searched := 0 // line ends before searched are known (nl is the last found)
	nl := -1      // the last '\n' found, or -1
	lastEnd := 0  // end of the last match: hits inside it are skipped
	for i := 0; i < len(hits); i += 2 {
		p := hits[i]
		if p < lastEnd || r.leftBound && p > 0 && isWordByte(data[p-1]) {
			continue
		}
		end := min(n, p+w)
		if !r.MultiLine {
			if nl < p {
				nl = -1
				from := max(p, searched)
				searched = end
				if j := bytes.IndexByte(data[from:end], '\n'); j >= 0 {
					nl = from + j
					searched = nl + 1
				}
			}
			if nl >= p && nl < end {
				end = nl
			}
		}
		m := e.anchored[ri].get().FindSubmatchIndex(data[p:end])
		if m == nil {
			continue
		}
		before := len(cands)
		cands = e.candidate(cands, sc, ri, data, p, m)
		if len(cands) > before || m[1] > 0 {
			lastEnd = p + max(m[1], 1)
		}
	}
	return cands
}

// candidate applies the rule's filters to one regex match m (offsets
// relative to data[s:]) and appends it if it passes.
func (e *Engine) candidate(cands []cand, sc *scratch, ri int, data []byte, s int, m []int) []cand {
	r := e.rules[ri]
	a, b := m[0], m[1]
	if g := r.SecretGroup; g > 0 && m[2*g] >= 0 {
		a, b = m[2*g], m[2*g+1]
	} else if g > 0 {
		a, b = -1, -1
		for k := 1; 2*k < len(m); k++ {
			if m[2*k] >= 0 && m[2*k+1] > m[2*k] {
				a, b = m[2*k], m[2*k+1]
				break
			}
		}
		if a < 0 {
			return cands
		}
	}
	if b <= a {
		return cands
	}
	if r.leftBound && s+m[0] > 0 && isWordByte(data[s+m[0]-1]) {
		return cands
	}
	if r.quotedInCode && sc.code && (s+a == 0 || !isQuote(data[s+a-1])) {
		return cands
	}
	secret := data[s+a : s+b]
	if r.Validate != nil && !r.Validate(secret) {
		if !r.Fallback {
			// The bytes have this rule's shape but cannot be real (a
			// wrong checksum): no generic rule may report them either.
			sc.claims = append(sc.claims, [2]int{s + a, s + b})
		}
		return cands
	}
	if !e.keep(r, secret) {
		return cands
	}
	if len(r.AllowMatch) > 0 || r.allowName != nil {
		ns := s + m[0]
		for lim := max(0, ns-identReach); ns > lim && isNameByte(data[ns-1]); ns-- {
		}
		if matchAny(r.AllowMatch, data[ns:s+m[1]]) {
			return cands
		}
		if r.allowName != nil {
			ne := s + m[0]
			for ne < s+m[1] && isNameByte(data[ne]) {
				ne++
			}
			if r.allowName(data[ns:ne]) {
				return cands
			}
		}
	}
	if sc.allowedLine(data, s+m[0], s+m[1]) {
		return cands
	}
	return append(cands, cand{rule: ri, start: s + a, end: s + b, mStart: s + m[0], mEnd: s + m[1]})
}

// keep applies the secret filters after the validator: entropy, stop
// words, allow regexes.
func (e *Engine) keep(r *Rule, secret []byte) bool {
	if r.Entropy > 0 && ShannonEntropy(secret) < r.Entropy {
		return false
	}
	if containsFold(secret, e.stopWords) {
		return false
	}
	for _, re := range r.Allow {
		if re.Match(secret) {
			return false
		}
	}
	for _, re := range e.allowRe {
		if re.Match(secret) {
			return false
		}
	}
	return true
}

// identReach bounds how far back AllowMatch looks for the start of the
// identifier a match begins in.
const identReach = 32

func isQuote(c byte) bool { return c == '"' || c == '\'' || c == '`' }

// codeExts are extensions of programming-language source files.
var codeExts = map[string]bool{
	".go": true, ".py": true, ".js": true, ".mjs": true, ".cjs": true, ".jsx": true,
	".ts": true, ".tsx": true, ".java": true, ".kt": true, ".kts": true, ".scala": true,
	".groovy": true, ".c": true, ".h": true, ".cc": true, ".cpp": true, ".cxx": true,
	".hpp": true, ".cs": true, ".vb": true, ".fs": true, ".rb": true, ".php": true,
	".rs": true, ".swift": true, ".m": true, ".mm": true, ".dart": true, ".lua": true,
	".pl": true, ".pm": true, ".r": true, ".ex": true, ".exs": true, ".erl": true,
	".clj": true, ".hs": true, ".ml": true, ".jl": true, ".zig": true, ".nim": true,
	".v": true, ".sol": true, ".vue": true, ".svelte": true,
}

// isCodePath reports whether p names a programming-language source file.
func isCodePath(p string) bool {
	i := strings.LastIndexByte(p, '.')
	if i < 0 || strings.IndexByte(p[i:], '/') >= 0 {
		return false
	}
	ext := p[i:]
	if codeExts[ext] {
		return true
	}
	return len(ext) <= 8 && codeExts[strings.ToLower(ext)]
}

// isNameByte reports whether c can be part of an identifier or key name
// (config keys use '.' and '-').
func isNameByte(c byte) bool { return isWordByte(c) || c == '.' || c == '-' }

func isWordByte(c byte) bool { return isAlnum(c) || c == '_' }

func matchAny(res []*regexp.Regexp, b []byte) bool {
	for _, re := range res {
		if re.Match(b) {
			return true
		}
	}
	return false
}

// allowedMarkerReach bounds how far from a secret, on its line, the allow
// marker is looked for, so that checking is constant time per finding even
// on a 200 MB line.
const allowMarkerReach = 4096

// allowedLine reports whether the first or the last line of data[a:b]
// carries the allow marker (within allowMarkerReach bytes of the match).
func (s *scratch) allowedLine(data []byte, a, b int) bool {
	if s.markerOnLine(data, a) {
		return true
	}
	return b-1 > a && bytes.IndexByte(data[a:b], '\n') >= 0 && s.markerOnLine(data, b-1)
}

// markerOnLine reports whether the line holding data[i] carries the marker,
// ignoring ASCII case.
func (s *scratch) markerOnLine(data []byte, i int) bool {
	lo := max(0, i-allowMarkerReach)
	hi := min(len(data), i+allowMarkerReach)
	ls := lo
	if j := bytes.LastIndexByte(data[lo:i], '\n'); j >= 0 {
		ls = lo + j + 1
	}
	le := hi
	if j := bytes.IndexByte(data[i:hi], '\n'); j >= 0 {
		le = i + j
	}
	s.markLine = lowerInto(s.markLine[:0], data[ls:le])
	return bytes.Contains(s.markLine, []byte(AllowMarker))
}

// dropShadowed removes fallback findings that overlap a specific finding or
// a claim (a secret a specific rule matched by shape and its validator
// rejected), and sorts by position.
func (e *Engine) dropShadowed(cands []cand, claims [][2]int) []cand {
	slices.SortStableFunc(cands, func(a, b cand) int {
		if a.start != b.start {
			return a.start - b.start
		}
		return a.end - b.end
	})
	var specific []cand
	for _, c := range cands {
		if !e.rules[c.rule].Fallback {
			specific = append(specific, c)
		}
	}
	if len(specific) == len(cands) {
		return cands // no fallback finding
	}
	for _, cl := range claims {
		specific = append(specific, cand{start: cl[0], end: cl[1], mStart: cl[0], mEnd: cl[1]})
	}
	if len(specific) == 0 {
		return cands
	}
	slices.SortFunc(specific, func(a, b cand) int { return a.start - b.start })
	out := cands[:0]
	for _, c := range cands {
		if e.rules[c.rule].Fallback && shadowed(specific, c) {
			continue
		}
		out = append(out, c)
	}
	return out
}

// shadowed reports whether c overlaps any of the specific candidates,
// sorted by start.
func shadowed(specific []cand, c cand) bool {
	// Only candidates starting before c's match ends can overlap it, and of
	// those only ones ending after c begins.
	n, _ := slices.BinarySearchFunc(specific, c.mEnd, func(s cand, t int) int { return s.start - t })
	for k := n - 1; k >= 0; k-- {
		if overlaps(specific[k], c) {
			return true
		}
		if specific[k].start+maxSpecificSpan <= min(c.start, c.mStart) {
			break
		}
	}
	return false
}

// maxSpecificSpan bounds how far before a fallback candidate an overlapping
// specific candidate can start: no built-in or configured match is longer
// than the largest window plus the line it was cut from.
const maxSpecificSpan = 2 * maxMultiLineWindow

// overlaps reports whether the secrets of a and b overlap, or one secret lies
// inside the other's match.
func overlaps(a, b cand) bool {
	return a.start < b.end && b.start < a.end ||
		a.start < b.mEnd && b.mStart < a.end
}

// finding turns a candidate into a Finding with positions and metadata.
func (e *Engine) finding(f *source.Fragment, s *scratch, c cand) Finding {
	r := e.rules[c.rule]
	secret := string(f.Data[c.start:c.end])
	line, col := position(f, s, c.start)
	endLine, endCol := position(f, s, c.end-1)
	return Finding{
		Rule:        r.ID,
		Description: r.Description,
		Severity:    r.Severity,
		File:        f.Path,
		Line:        line,
		Column:      col,
		EndLine:     endLine,
		EndColumn:   endCol,
		Commit:      f.Commit,
		Author:      f.Author,
		Email:       f.Email,
		Date:        f.Date,
		Fingerprint: Fingerprint(r.ID, f.Path, f.Commit, secret),
		Redacted:    Redact(secret),
		Entropy:     math.Round(ShannonEntropy([]byte(secret))*1000) / 1000,
		Secret:      secret,
	}
}

// position returns the 1-based line and column of byte off of f.Data.
func position(f *source.Fragment, s *scratch, off int) (line, col int) {
	if !s.linesOK {
		d := f.Data
		for i := 0; ; {
			j := bytes.IndexByte(d[i:], '\n')
			if j < 0 {
				break
			}
			s.lines = append(s.lines, i+j)
			i += j + 1
		}
		s.linesOK = true
	}
	// idx = number of newlines before off.
	idx, _ := slices.BinarySearch(s.lines, off)
	startLine := f.StartLine
	if startLine < 1 {
		startLine = 1
	}
	startCol := f.StartColumn
	if startCol < 1 {
		startCol = 1
	}
	switch {
	case len(f.LineMap) > idx:
		line = f.LineMap[idx]
	case len(f.LineMap) > 0:
		last := len(f.LineMap) - 1
		line = f.LineMap[last] + idx - last
	default:
		line = startLine + idx
	}
	if idx == 0 {
		col = startCol + off
	} else {
		col = off - s.lines[idx-1]
	}
	return line, col
}

// lowerInto appends the ASCII-lower-cased data to dst.
func lowerInto(dst, data []byte) []byte {
	dst = slices.Grow(dst, len(data))[:len(data)]
	for i, c := range data {
		dst[i] = lowerTable[c]
	}
	return dst
}

var lowerTable = func() (t [256]byte) {
	for i := range t {
		t[i] = byte(i)
		if 'A' <= i && i <= 'Z' {
			t[i] = byte(i + 'a' - 'A')
		}
	}
	return t
}()

func lowerASCII(s string) string {
	return string(lowerInto(nil, []byte(s)))
}

// containsFold reports whether b contains any of the lower-case words,
// ignoring ASCII case.
func containsFold(b []byte, words [][]byte) bool {
	if len(words) == 0 {
		return false
	}
	var buf [128]byte
	l := lowerInto(buf[:0], b)
	for _, w := range words {
		if bytes.Contains(l, w) {
			return true
		}
	}
	return false
}

// ShannonEntropy returns the Shannon entropy of b in bits per byte (0 for an
// empty slice).
func ShannonEntropy(b []byte) float64 {
	if len(b) == 0 {
		return 0
	}
	var counts [256]int
	for _, c := range b {
		counts[c]++
	}
	n := float64(len(b))
	h := 0.0
	for _, c := range counts {
		if c > 0 {
			p := float64(c) / n
			h -= p * math.Log2(p)
		}
	}
	return h
}

// Fingerprint identifies a finding independently of its line, so a baseline
// survives edits above a secret: hex(sha256(rule ‖ 0 ‖ path ‖ 0 ‖ secret
// [‖ 0 ‖ commit]))[:32]. The commit is included for findings in git history.
func Fingerprint(rule, path, commit, secret string) string {
	h := sha256.New()
	h.Write([]byte(rule))
	h.Write([]byte{0})
	h.Write([]byte(path))
	h.Write([]byte{0})
	h.Write([]byte(secret))
	if commit != "" {
		h.Write([]byte{0})
		h.Write([]byte(commit))
	}
	return hex.EncodeToString(h.Sum(nil))[:32]
}

// Redact returns the form of a secret that reports show: its first four
// characters and "…" (fewer characters for short secrets, so at most a
// quarter of a short secret is revealed).
func Redact(secret string) string {
	n := 4
	if k := utf8.RuneCountInString(secret) / 4; k < n {
		n = k
	}
	i := 0
	for range n {
		_, size := utf8.DecodeRuneInString(secret[i:])
		i += size
	}
	return strings.ToValidUTF8(secret[:i], "?") + "…"
}
