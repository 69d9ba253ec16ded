package scan

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"os"
	"path"
	"regexp"
	"strings"

	"github.com/BurntSushi/toml"
)

// Config adjusts the default rule set. It comes from a TOML rules file
// (--config, or .keyward-scan.toml at the scan root) and .keywardignore.
type Config struct {
	// Rules replace the default rule with the same ID or are added.
	Rules []*Rule
	// Disabled names rules that do not run.
	Disabled map[string]bool
	// AllowPaths are globs of paths not to scan ("vendor/**", "**/*.min.js";
	// a pattern without '/' matches a file or directory name at any depth).
	AllowPaths []string
	// AllowRegexes drop a finding whose secret matches one of them.
	AllowRegexes []*regexp.Regexp
	// StopWords drop a finding whose secret contains one (ignoring case).
	StopWords []string
	// NoDefaultRules starts from an empty rule set instead of DefaultRules.
	NoDefaultRules bool
}

// ErrConfig matches (errors.Is) every error LoadConfig, ParseConfig and
// LoadIgnoreFile return for a malformed file.
var ErrConfig = errors.New("invalid scan configuration")

// ConfigError is the error for a malformed rules or ignore file. Its message
// reads like `rules file F: rule "id" (line N): invalid regex: …`.
type ConfigError struct {
	File    string // the file as named by the caller
	Kind    string // "rules file" or "ignore file"
	Where   string // `rule "id"`, "[disable]", "[allowlist]" or ""
	Line    int    // 1-based; 0 when unknown
	Message string
}

// Error formats the file, where in it, and what is wrong; never a secret.
func (e *ConfigError) Error() string {
	var b strings.Builder
	b.WriteString(e.Kind + " " + e.File + ": ")
	switch {
	case e.Where != "" && e.Line > 0:
		fmt.Fprintf(&b, "%s (line %d): ", e.Where, e.Line)
	case e.Where != "":
		b.WriteString(e.Where + ": ")
	case e.Line > 0:
		fmt.Fprintf(&b, "line %d: ", e.Line)
	}
	b.WriteString(e.Message)
	return b.String()
}

// Is makes errors.Is(err, ErrConfig) true.
func (e *ConfigError) Is(target error) bool { return target == ErrConfig }

func cfgErr(file, where string, line int, format string, args ...any) error {
	return &ConfigError{File: file, Kind: "rules file", Where: where, Line: line, Message: fmt.Sprintf(format, args...)}
}

// fileRule is a [[rules]] table.
type fileRule struct {
	ID           string   `toml:"id"`
	Description  string   `toml:"description"`
	Regex        string   `toml:"regex"`
	SecretGroup  int      `toml:"secret_group"`
	Keywords     []string `toml:"keywords"`
	Entropy      float64  `toml:"entropy"`
	Severity     string   `toml:"severity"`
	Path         string   `toml:"path"`
	Allow        []string `toml:"allow"`
	AllowMatch   []string `toml:"allow_match"`
	MultiLine    bool     `toml:"multiline"`
	Window       int      `toml:"window"`
	Fallback     bool     `toml:"fallback"`
	KeywordStart bool     `toml:"keyword_start"`
}

type fileConfig struct {
	UseDefault *bool      `toml:"use_default_rules"`
	Rules      []fileRule `toml:"rules"`
	Disable    struct {
		IDs []string `toml:"ids"`
	} `toml:"disable"`
	Allowlist struct {
		Paths     []string `toml:"paths"`
		Regexes   []string `toml:"regexes"`
		StopWords []string `toml:"stopwords"`
	} `toml:"allowlist"`
}

// LoadConfig reads a TOML rules file:
//
//	use_default_rules = true          # false: only the rules below
//	[[rules]]
//	id = "acme-key"                   # an existing id overrides that rule's given fields
//	description = "ACME API key"
//	regex = '''\bacme_[0-9a-f]{32}\b'''
//	secret_group = 0
//	keywords = ["acme_"]
//	entropy = 3.0
//	severity = "high"                 # critical, high, medium, low
//	path = '''\.env$'''               # only matching paths
//	allow = ['''^acme_0+$''']         # per-rule allowlist on the secret
//	allow_match = ['''(?i)test''']    # per-rule allowlist on the whole match
//	multiline = false
//	window = 512                      # bytes of context around a keyword hit
//	keyword_start = false             # matches begin at a keyword: run anchored there
//	fallback = false                  # dropped when a specific rule finds the same secret
//	[disable]
//	ids = ["generic-secret"]
//	[allowlist]
//	paths = ["testdata/**"]
//	regexes = ['''^dummy''']
//	stopwords = ["sample"]
//
// Errors name the file, the rule and the line.
func LoadConfig(file string) (*Config, error) {
	data, err := os.ReadFile(file)
	if err != nil {
		return nil, err
	}
	return ParseConfig(file, data)
}

// ParseConfig is LoadConfig on bytes already read; name is used in errors.
func ParseConfig(name string, data []byte) (*Config, error) {
	var fc fileConfig
	md, err := toml.Decode(string(data), &fc)
	if err != nil {
		var pe toml.ParseError
		if errors.As(err, &pe) {
			return nil, cfgErr(name, "", pe.Position.Line, "%s", pe.Message)
		}
		return nil, cfgErr(name, "", 0, "%v", err)
	}
	if und := md.Undecoded(); len(und) > 0 {
		return nil, cfgErr(name, "", 0, "unknown key %q", und[0].String())
	}
	lines := locateRules(data)
	cfg := &Config{Disabled: map[string]bool{}}
	if fc.UseDefault != nil && !*fc.UseDefault {
		cfg.NoDefaultRules = true
	}
	defaults := map[string]*Rule{}
	for _, r := range DefaultRules() {
		defaults[r.ID] = r
	}
	seen := map[string]bool{}
	for i, fr := range fc.Rules {
		loc := lines.rule(i)
		fail := func(key, format string, args ...any) error {
			return cfgErr(name, fmt.Sprintf("rule %q", fr.ID), loc.line(key), format, args...)
		}
		if fr.ID == "" {
			return nil, fail("", "missing id")
		}
		if seen[fr.ID] {
			return nil, fail("id", "duplicate id")
		}
		seen[fr.ID] = true
		def := func(key string) bool { return isDefinedAt(md, i, key) }
		var r *Rule
		if base, ok := defaults[fr.ID]; ok && !cfg.NoDefaultRules {
			r = base
		} else {
			r = &Rule{ID: fr.ID, Severity: Medium}
			if !def("regex") {
				return nil, fail("", "missing regex")
			}
		}
		if def("description") {
			r.Description = fr.Description
		}
		if def("regex") {
			re, err := regexp.Compile(fr.Regex)
			if err != nil {
				return nil, fail("regex", "invalid regex: %v", err)
			}
			r.Regex = re
			// What the built-in rule knew about its own regex (where
			// matches start) does not hold for a new one.
			r.KeywordStart, r.leftBound = false, false
			if !def("secret_group") {
				r.SecretGroup = min(r.SecretGroup, re.NumSubexp())
			}
		}
		if def("secret_group") {
			r.SecretGroup = fr.SecretGroup
		}
		if n := r.numSubexp(); r.SecretGroup < 0 || r.SecretGroup > n {
			return nil, fail("secret_group", "secret_group %d but the regex has %d groups", r.SecretGroup, n)
		}
		if def("keywords") {
			r.Keywords = nil
			for _, k := range fr.Keywords {
				if k == "" {
					return nil, fail("keywords", "empty keyword")
				}
				r.Keywords = append(r.Keywords, lowerASCII(k))
			}
		}
		if def("entropy") {
			if fr.Entropy < 0 || fr.Entropy > 8 {
				return nil, fail("entropy", "entropy %v out of range 0..8", fr.Entropy)
			}
			r.Entropy = fr.Entropy
		}
		if def("severity") {
			sev, err := ParseSeverity(fr.Severity)
			if err != nil {
				return nil, fail("severity", "%v", err)
			}
			r.Severity = sev
		}
		if def("path") {
			re, err := regexp.Compile(fr.Path)
			if err != nil {
				return nil, fail("path", "invalid path regex: %v", err)
			}
			r.Paths = re
		}
		if def("allow") {
			r.Allow = nil
			for _, a := range fr.Allow {
				re, err := regexp.Compile(a)
				if err != nil {
					return nil, fail("allow", "invalid allow regex: %v", err)
				}
				r.Allow = append(r.Allow, re)
			}
		}
		if def("allow_match") {
			r.AllowMatch = nil
			for _, a := range fr.AllowMatch {
				re, err := regexp.Compile(a)
				if err != nil {
					return nil, fail("allow_match", "invalid allow_match regex: %v", err)
				}
				r.AllowMatch = append(r.AllowMatch, re)
			}
		}
		if def("multiline") {
			r.MultiLine = fr.MultiLine
		}
		if def("window") {
			if fr.Window < 0 || fr.Window > 1<<20 {
				return nil, fail("window", "window %d out of range 0..1048576", fr.Window)
			}
			r.Window = fr.Window
		}
		if def("fallback") {
			r.Fallback = fr.Fallback
		}
		if def("keyword_start") {
			r.KeywordStart = fr.KeywordStart
		}
		cfg.Rules = append(cfg.Rules, r)
	}
	for _, id := range fc.Disable.IDs {
		if _, ok := defaults[id]; !ok && !seen[id] {
			return nil, cfgErr(name, "[disable]", lines.disable, "unknown rule %q", id)
		}
		cfg.Disabled[id] = true
	}
	for _, p := range fc.Allowlist.Paths {
		if _, err := compileGlob(p); err != nil {
			return nil, cfgErr(name, "[allowlist]", lines.allowlist, "%v", err)
		}
		cfg.AllowPaths = append(cfg.AllowPaths, p)
	}
	for _, a := range fc.Allowlist.Regexes {
		re, err := regexp.Compile(a)
		if err != nil {
			return nil, cfgErr(name, "[allowlist]", lines.allowlist, "invalid regex: %v", err)
		}
		cfg.AllowRegexes = append(cfg.AllowRegexes, re)
	}
	cfg.StopWords = append(cfg.StopWords, fc.Allowlist.StopWords...)
	return cfg, nil
}

// isDefinedAt reports whether key is set in the i-th [[rules]] table.
// MetaData.IsDefined does not index arrays of tables, so look at the keys.
func isDefinedAt(md toml.MetaData, i int, key string) bool {
	n := -1
	for _, k := range md.Keys() {
		if len(k) == 1 && k[0] == "rules" {
			n++
			continue
		}
		if len(k) == 2 && k[0] == "rules" && k[1] == key && n == i {
			return true
		}
	}
	return false
}

// ruleLines locates, by reading the file as text, the line of each
// [[rules]] table and of the keys inside it; BurntSushi/toml reports
// positions only for syntax errors.
type ruleLines struct {
	rules     []ruleLoc
	disable   int
	allowlist int
}

type ruleLoc struct {
	header int
	keys   map[string]int
}

func (l ruleLines) rule(i int) ruleLoc {
	if i < len(l.rules) {
		return l.rules[i]
	}
	return ruleLoc{}
}

// line returns the line of key in the table, or the table's header line.
func (r ruleLoc) line(key string) int {
	if n, ok := r.keys[key]; ok {
		return n
	}
	return r.header
}

var keyLine = regexp.MustCompile(`^\s*"?([A-Za-z0-9_-]+)"?\s*=`)

func locateRules(data []byte) ruleLines {
	var l ruleLines
	cur := -1
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 0, 64*1024), len(data)+1)
	for n := 1; sc.Scan(); n++ {
		t := strings.TrimSpace(sc.Text())
		switch {
		case strings.HasPrefix(t, "[[") && strings.Trim(strings.TrimSpace(strings.Trim(t, "[]")), `"`) == "rules":
			l.rules = append(l.rules, ruleLoc{header: n, keys: map[string]int{}})
			cur = len(l.rules) - 1
			continue
		case strings.HasPrefix(t, "["):
			cur = -1
			switch strings.TrimSpace(strings.Trim(t, "[]")) {
			case "disable":
				l.disable = n
			case "allowlist":
				l.allowlist = n
			}
			continue
		}
		if cur >= 0 {
			if m := keyLine.FindStringSubmatch(t); m != nil {
				if _, dup := l.rules[cur].keys[m[1]]; !dup {
					l.rules[cur].keys[m[1]] = n
				}
			}
		}
	}
	return l
}

// LoadIgnoreFile reads a .keywardignore file: one path glob per line, blank
// lines and lines starting with '#' ignored.
func LoadIgnoreFile(file string) ([]string, error) {
	data, err := os.ReadFile(file)
	if err != nil {
		return nil, err
	}
	var globs []string
	for n, line := range strings.Split(string(data), "\n") {
		line = strings.TrimSpace(strings.TrimSuffix(line, "\r"))
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		if _, err := compileGlob(line); err != nil {
			return nil, &ConfigError{File: file, Kind: "ignore file", Line: n + 1, Message: err.Error()}
		}
		globs = append(globs, line)
	}
	return globs, nil
}

// glob is a compiled path pattern.
type glob struct {
	segs     []globSeg
	anywhere bool // no '/' in the pattern: match any suffix of the path
}

// globSeg is one '/'-separated piece of a glob, with fast paths for the
// common shapes (a plain name, "*.ext", "**").
type globSeg struct {
	kind int // segLiteral, segSuffix, segAny (**), segPattern
	s    string
}

const (
	segLiteral = iota
	segSuffix
	segAny
	segPattern
)

func (g globSeg) match(name string) bool {
	switch g.kind {
	case segLiteral:
		return name == g.s
	case segSuffix:
		return strings.HasSuffix(name, g.s)
	}
	ok, _ := path.Match(g.s, name)
	return ok
}

// compileGlob parses a path glob. Rules, like .gitignore's: a pattern without
// a '/' (other than a trailing one) matches a file or directory name at any
// depth; otherwise it is anchored at the scan root. "**" matches any number
// of directories. A pattern matching a directory matches everything under it.
func compileGlob(p string) (glob, error) {
	orig := p
	p = strings.TrimSpace(p)
	p = strings.TrimSuffix(p, "/")
	p = strings.TrimPrefix(p, "./")
	if p == "" {
		return glob{}, fmt.Errorf("empty path glob %q", orig)
	}
	g := glob{anywhere: !strings.Contains(p, "/")}
	p = strings.TrimPrefix(p, "/")
	for s := range strings.SplitSeq(p, "/") {
		switch {
		case s == "":
			continue
		case s == "**":
			g.segs = append(g.segs, globSeg{kind: segAny})
			continue
		}
		if _, err := path.Match(s, ""); err != nil {
			return glob{}, fmt.Errorf("invalid path glob %q: %v", orig, err)
		}
		switch {
		case !strings.ContainsAny(s, `*?[\`):
			g.segs = append(g.segs, globSeg{kind: segLiteral, s: s})
		case s[0] == '*' && !strings.ContainsAny(s[1:], `*?[\`):
			g.segs = append(g.segs, globSeg{kind: segSuffix, s: s[1:]})
		default:
			g.segs = append(g.segs, globSeg{kind: segPattern, s: s})
		}
	}
	if len(g.segs) == 0 {
		return glob{}, fmt.Errorf("empty path glob %q", orig)
	}
	return g, nil
}

// match reports whether the path, split into its segments, matches.
func (g glob) match(parts []string) bool {
	if g.anywhere {
		for i := range parts {
			if matchSegs(g.segs, parts[i:]) {
				return true
			}
		}
		return false
	}
	return matchSegs(g.segs, parts)
}

// matchSegs matches pattern segments against a prefix of the path's
// segments (a match on a directory covers what is under it).
func matchSegs(pat []globSeg, parts []string) bool {
	if len(pat) == 0 {
		return true
	}
	if pat[0].kind == segAny {
		for i := 0; i <= len(parts); i++ {
			if matchSegs(pat[1:], parts[i:]) {
				return true
			}
		}
		return false
	}
	if len(parts) == 0 {
		return false
	}
	return pat[0].match(parts[0]) && matchSegs(pat[1:], parts[1:])
}

// DefaultStopWords are substrings that mark a secret as an example or a
// placeholder: a match containing one (ignoring case) is not reported.
func DefaultStopWords() []string {
	return []string{
		"example", "placeholder", "xxxxxxxx", "your_api_key", "your-api-key",
		"yourapikey", "your_token", "your-token", "your_secret", "your-secret",
		"insert_your", "insert-your", "replace_me", "replace-me", "replaceme",
		"changeme", "dummy", "redacted", "00000000000000",
		"akiaiosfodnn7example", // AWS's documented access key id
	}
}

// documentedExamples are keys published in providers' documentation.
var documentedExamples = []string{
	`^sk_test_4eC39HqLyjWDarjtT1zdp7dc$`,         // Stripe's documented test key
	`^wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY$`, // AWS's documented secret key
}

// DefaultAllowRegexes drop secrets that are references or documented
// examples rather than credentials.
func DefaultAllowRegexes() []*regexp.Regexp {
	out := []*regexp.Regexp{
		regexp.MustCompile(`^\$\{?[A-Za-z_][A-Za-z0-9_]*\}?$`), // $VAR, ${VAR}
		regexp.MustCompile(`^\{\{.*\}\}$`),                     // {{ template }}
		regexp.MustCompile(`^%[A-Za-z_][A-Za-z0-9_]*%$`),       // %VAR%
	}
	for _, e := range documentedExamples {
		out = append(out, regexp.MustCompile(e))
	}
	return out
}

// DefaultAllowPaths are globs of files that hold digests, not secrets, or
// third-party code.
func DefaultAllowPaths() []string {
	return []string{
		"go.sum", "go.work.sum", "package-lock.json", "npm-shrinkwrap.json",
		"yarn.lock", "pnpm-lock.yaml", "Cargo.lock", "poetry.lock", "Pipfile.lock",
		"composer.lock", "Gemfile.lock", "uv.lock",
		".git", "node_modules", "vendor", ".keyward-scan.toml",
		"*.png", "*.jpg", "*.jpeg", "*.gif", "*.ico", "*.webp", "*.bmp", "*.tiff",
		"*.woff", "*.woff2", "*.ttf", "*.otf", "*.eot",
		"*.pdf", "*.zip", "*.gz", "*.tgz", "*.bz2", "*.xz", "*.7z", "*.jar",
		"*.exe", "*.dll", "*.so", "*.dylib", "*.a", "*.o", "*.class", "*.pyc",
		"*.mp3", "*.mp4", "*.mov", "*.avi", "*.wav",
	}
}
