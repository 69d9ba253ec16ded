package scan

import (
	"bytes"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/keyward/keyward/internal/cputime"
	"github.com/keyward/keyward/internal/scan/source"
)

func mustEngine(t testing.TB, cfg *Config) *Engine {
	t.Helper()
	e, err := NewEngine(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return e
}

func findRule(fs []Finding, id string) []Finding {
	var out []Finding
	for _, f := range fs {
		if f.Rule == id {
			out = append(out, f)
		}
	}
	return out
}

func TestPositions(t *testing.T) {
	e := mustEngine(t, nil)
	r := rand.New(rand.NewPCG(1, 2))
	tok := ghStyle(r, "ghp_", false)

	// Secret on the first line of a fragment that starts mid-line.
	f := &source.Fragment{Path: "a.txt", Data: []byte("ab " + tok + "\nnext"), StartLine: 7, StartColumn: 100}
	fs := findRule(e.Scan(f), "github-pat")
	if len(fs) != 1 {
		t.Fatalf("findings = %v", summarize(fs))
	}
	got := fs[0]
	if got.Line != 7 || got.Column != 103 || got.EndLine != 7 || got.EndColumn != 103+len(tok)-1 {
		t.Errorf("first-line position = %d:%d-%d:%d, want 7:103-7:%d", got.Line, got.Column, got.EndLine, got.EndColumn, 103+len(tok)-1)
	}

	// Secret on the third line: StartColumn does not apply.
	f = &source.Fragment{Path: "a.txt", Data: []byte("x\ny\n\tk=" + tok + "\n"), StartLine: 7, StartColumn: 100}
	got = findRule(e.Scan(f), "github-pat")[0]
	if got.Line != 9 || got.Column != 4 || got.EndColumn != 3+len(tok) {
		t.Errorf("third-line position = %d:%d-%d, want 9:4-%d", got.Line, got.Column, got.EndColumn, 3+len(tok))
	}

	// LineMap (a git hunk of non-consecutive added lines).
	f = &source.Fragment{Path: "a.txt", Data: []byte("one\ntwo\nv=" + tok), LineMap: []int{3, 8, 42}}
	got = findRule(e.Scan(f), "github-pat")[0]
	if got.Line != 42 || got.Column != 3 {
		t.Errorf("LineMap position = %d:%d, want 42:3", got.Line, got.Column)
	}

	// Zero StartLine/StartColumn mean 1.
	f = &source.Fragment{Path: "a.txt", Data: []byte(tok)}
	got = findRule(e.Scan(f), "github-pat")[0]
	if got.Line != 1 || got.Column != 1 || got.EndColumn != len(tok) {
		t.Errorf("default position = %d:%d-%d", got.Line, got.Column, got.EndColumn)
	}

	// A multi-line private key.
	pem := makePEM(r, "RSA PRIVATE KEY", "\n")
	f = &source.Fragment{Path: "id_rsa", Data: []byte("# key\n" + pem + "\n"), StartLine: 1}
	got = findRule(e.Scan(f), "private-key")[0]
	lines := strings.Count(pem, "\n")
	if got.Line != 2 || got.Column != 1 || got.EndLine != 2+lines || got.EndColumn != len("-----END RSA PRIVATE KEY-----") {
		t.Errorf("PEM position = %d:%d-%d:%d, want 2:1-%d:%d", got.Line, got.Column, got.EndLine, got.EndColumn, 2+lines, len("-----END RSA PRIVATE KEY-----"))
	}
}

func TestFindingMetadata(t *testing.T) {
	e := mustEngine(t, nil)
	r := rand.New(rand.NewPCG(3, 4))
	tok := ghStyle(r, "ghp_", false)
	date := time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)
	f := &source.Fragment{Path: "src/x.go", Data: []byte("t := \"" + tok + "\""), Commit: "abc123", Author: "A", Email: "a@b.invalid", Date: date, Message: "m"}
	fs := e.Scan(f)
	if len(fs) != 1 {
		t.Fatalf("want exactly one finding (generic-secret shadowed), got %v", summarize(fs))
	}
	got := fs[0]
	if got.Commit != "abc123" || got.Author != "A" || got.Email != "a@b.invalid" || !got.Date.Equal(date) || got.File != "src/x.go" {
		t.Errorf("metadata not copied: %+v", got)
	}
	if got.Redacted != "ghp_…" {
		t.Errorf("Redacted = %q", got.Redacted)
	}
	if got.Fingerprint != Fingerprint("github-pat", "src/x.go", "abc123", tok) || len(got.Fingerprint) != 32 {
		t.Errorf("Fingerprint = %q", got.Fingerprint)
	}
	if got.Severity != Critical || got.Description == "" || got.Entropy <= 0 {
		t.Errorf("rule metadata: %+v", got)
	}
}

func TestFingerprint(t *testing.T) {
	a := Fingerprint("r", "p", "", "s")
	if a != Fingerprint("r", "p", "", "s") {
		t.Fatal("not deterministic")
	}
	for _, other := range []string{
		Fingerprint("r2", "p", "", "s"), Fingerprint("r", "p2", "", "s"),
		Fingerprint("r", "p", "c", "s"), Fingerprint("r", "p", "", "s2"),
		Fingerprint("r\x00p", "", "", "s"),
	} {
		if other == a {
			t.Error("fingerprint collision between different inputs")
		}
	}
	// Line moves do not change a finding's fingerprint.
	e := mustEngine(t, nil)
	tok := ghStyle(rand.New(rand.NewPCG(5, 6)), "ghp_", false)
	f1 := e.Scan(&source.Fragment{Path: "x", Data: []byte(tok)})
	f2 := e.Scan(&source.Fragment{Path: "x", Data: []byte("\n\n\n   " + tok)})
	if f1[0].Fingerprint != f2[0].Fingerprint {
		t.Error("fingerprint depends on position")
	}
}

func TestRedact(t *testing.T) {
	for in, want := range map[string]string{
		"ghp_abcdefghijkl": "ghp_…",
		"abcdefgh":         "ab…",
		"abc":              "…",
		"héllo-wörld-xyzw": "héll…",
	} {
		if got := Redact(in); got != want {
			t.Errorf("Redact(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestShannonEntropy(t *testing.T) {
	for in, want := range map[string]float64{"": 0, "aaaa": 0, "ab": 1, "abcd": 2, "aabb": 1} {
		if got := ShannonEntropy([]byte(in)); got != want {
			t.Errorf("ShannonEntropy(%q) = %v, want %v", in, got, want)
		}
	}
	all := make([]byte, 256)
	for i := range all {
		all[i] = byte(i)
	}
	if got := ShannonEntropy(all); got != 8 {
		t.Errorf("entropy of all bytes = %v", got)
	}
}

func TestInlineAllow(t *testing.T) {
	e := mustEngine(t, nil)
	r := rand.New(rand.NewPCG(7, 8))
	a, b := ghStyle(r, "ghp_", false), ghStyle(r, "ghp_", false)
	data := "x = \"" + a + "\" // keyward:allow\ny = \"" + b + "\"\n"
	fs := findRule(e.Scan(&source.Fragment{Path: "x", Data: []byte(data)}), "github-pat")
	if len(fs) != 1 || fs[0].Secret != b {
		t.Fatalf("findings = %v, want only the second token", summarize(fs))
	}
	// The marker is matched case-insensitively and on the end line of a multi-line secret.
	pem := makePEM(r, "PRIVATE KEY", "\n")
	fs = e.Scan(&source.Fragment{Path: "x", Data: []byte(pem + " # KEYWARD:ALLOW test fixture\n")})
	if len(findRule(fs, "private-key")) != 0 {
		t.Fatalf("marker on the END line did not suppress the key: %v", summarize(fs))
	}
}

func TestStopWordsAndAllowRegexes(t *testing.T) {
	r := rand.New(rand.NewPCG(9, 10))
	// Default stop words: AWS's documented key id.
	e := mustEngine(t, nil)
	if fs := e.Scan(&source.Fragment{Path: "x", Data: []byte("id = AKIAIOSFODNN7EXAMPLE\n")}); len(fs) != 0 {
		t.Errorf("documented AWS example reported: %v", summarize(fs))
	}
	key := "sk_live_" + rs(r, csAlnum, 30)
	tok := "glpat-" + rs(r, csAlnum, 20)
	cfg := &Config{
		StopWords:    []string{strings.ToUpper(key[10:16])},
		AllowRegexes: []*regexp.Regexp{regexp.MustCompile(`^glpat-`)},
	}
	e = mustEngine(t, cfg)
	if fs := e.Scan(&source.Fragment{Path: "x", Data: []byte(key + "\n" + tok + "\n")}); len(fs) != 0 {
		t.Errorf("stop word / allow regex did not apply: %v", summarize(fs))
	}
	// Without the config both are found.
	e = mustEngine(t, nil)
	if fs := e.Scan(&source.Fragment{Path: "x", Data: []byte(key + "\n" + tok + "\n")}); len(fs) != 2 {
		t.Errorf("findings = %v, want 2", summarize(fs))
	}
}

func TestAllowPath(t *testing.T) {
	e := mustEngine(t, &Config{AllowPaths: []string{"third_party/**", "**/*.min.js", "docs/*.md", "/root.txt", "fixtures/", "**/testdata/**/*.pem"}})
	cases := map[string]bool{
		"third_party/a/b.go":        true,
		"third_party":               true,
		"src/third_party/x.go":      false,
		"web/app.min.js":            true,
		"app.min.js":                true,
		"app.js":                    false,
		"docs/a.md":                 true,
		"docs/sub/a.md":             false,
		"root.txt":                  true,
		"sub/root.txt":              false,
		"fixtures/keys/a":           true,
		"a/fixtures/b":              true,
		"x/testdata/y/z/k.pem":      true,
		"x/testdata/k.pem":          true,
		"x/testdata/k.go":           false,
		"go.sum":                    true, // default
		"pkg/go.sum":                true,
		"node_modules/x/index.js":   true,
		"web/node_modules/x/y.js":   true,
		"img/logo.PNG":              false, // globs are case-sensitive
		"img/logo.png":              true,
		"./vendor/github.com/x.go":  true,
		"src/main.go":               false,
		"vendored/x.go":             false,
		"notvendor/x.go":            false,
		"a/b/c/package-lock.json":   true,
		"a/b/c/package-lock.json.x": false,
	}
	for p, want := range cases {
		if got := e.AllowPath(p); got != want {
			t.Errorf("AllowPath(%q) = %v, want %v", p, got, want)
		}
	}
	// Scan skips allowed paths too.
	tok := ghStyle(rand.New(rand.NewPCG(1, 1)), "ghp_", false)
	if fs := e.Scan(&source.Fragment{Path: "third_party/x", Data: []byte(tok)}); len(fs) != 0 {
		t.Errorf("allowed path scanned: %v", summarize(fs))
	}
	for _, bad := range []string{"", "/", "a/[b"} {
		if _, err := NewEngine(&Config{AllowPaths: []string{bad}}); err == nil {
			t.Errorf("glob %q accepted", bad)
		}
	}
}

func TestFallbackShadowing(t *testing.T) {
	e := mustEngine(t, nil)
	r := rand.New(rand.NewPCG(11, 12))
	tok := ghStyle(r, "ghp_", false)
	fs := e.Scan(&source.Fragment{Path: "x", Data: []byte("api_token = \"" + tok + "\"\nAuthorization: Bearer " + tok + "\n")})
	if len(fs) != 2 || fs[0].Rule != "github-pat" || fs[1].Rule != "github-pat" {
		t.Errorf("findings = %v, want two github-pat only", summarize(fs))
	}
	// A service-account key file: one finding, not also a bare private key.
	pem := makePEM(r, "PRIVATE KEY", `\n`)
	fs = e.Scan(&source.Fragment{Path: "sa.json", Data: []byte(`{"type": "service_account", "private_key": "` + pem + `\n"}`)})
	if len(fs) != 1 || fs[0].Rule != "gcp-service-account-key" || fs[0].Secret != pem {
		t.Errorf("findings = %v, want gcp-service-account-key only", summarize(fs))
	}
	// A generic finding alone is kept.
	v := rs(r, csAlnum, 30) + "42"
	fs = e.Scan(&source.Fragment{Path: "x", Data: []byte("api_token = \"" + v + "\"\n")})
	if len(fs) != 1 || fs[0].Rule != "generic-secret" || fs[0].Secret != v {
		t.Errorf("findings = %v, want generic-secret", summarize(fs))
	}
}

func TestDisabledAndCustomRules(t *testing.T) {
	r := rand.New(rand.NewPCG(13, 14))
	tok := ghStyle(r, "ghp_", false)
	e := mustEngine(t, &Config{Disabled: map[string]bool{"github-pat": true}})
	if len(findRule(e.Scan(&source.Fragment{Path: "x", Data: []byte(tok)}), "github-pat")) != 0 {
		t.Error("disabled rule ran")
	}
	for _, rr := range e.Rules() {
		if rr.ID == "github-pat" {
			t.Error("disabled rule listed")
		}
	}
	if _, err := NewEngine(&Config{Disabled: map[string]bool{"no-such-rule": true}}); err == nil {
		t.Error("disabling an unknown rule accepted")
	}
	custom := &Rule{ID: "acme", Description: "ACME key", Regex: regexp.MustCompile(`acme_[0-9a-f]{8}`), Keywords: []string{"acme_"}, Severity: Low}
	e = mustEngine(t, &Config{Rules: []*Rule{custom}, NoDefaultRules: true})
	fs := e.Scan(&source.Fragment{Path: "x", Data: []byte("k=acme_0123abcd " + tok)})
	if len(fs) != 1 || fs[0].Rule != "acme" || fs[0].Secret != "acme_0123abcd" {
		t.Errorf("findings = %v", summarize(fs))
	}
	// A rule without keywords runs on the whole fragment.
	nokw := &Rule{ID: "nokw", Description: "d", Regex: regexp.MustCompile(`zz[0-9]{4}`), Severity: Low}
	e = mustEngine(t, &Config{Rules: []*Rule{nokw}, NoDefaultRules: true})
	if fs := e.Scan(&source.Fragment{Path: "x", Data: []byte("a\nb zz1234\n")}); len(fs) != 1 || fs[0].Line != 2 {
		t.Errorf("findings = %v", summarize(fs))
	}
	// Path-restricted rule.
	pr := &Rule{ID: "pr", Description: "d", Regex: regexp.MustCompile(`zz[0-9]{4}`), Keywords: []string{"zz"}, Severity: Low, Paths: regexp.MustCompile(`\.env$`)}
	e = mustEngine(t, &Config{Rules: []*Rule{pr}, NoDefaultRules: true})
	if fs := e.Scan(&source.Fragment{Path: "a.go", Data: []byte("zz1234")}); len(fs) != 0 {
		t.Errorf("path-restricted rule ran on a.go")
	}
	if fs := e.Scan(&source.Fragment{Path: "prod.env", Data: []byte("zz1234")}); len(fs) != 1 {
		t.Errorf("path-restricted rule did not run on prod.env")
	}
	for _, bad := range []*Rule{
		{ID: "", Regex: regexp.MustCompile(`x`), Severity: Low},
		{ID: "a", Severity: Low},
		{ID: "a", Regex: regexp.MustCompile(`x`), Severity: "urgent"},
		{ID: "a", Regex: regexp.MustCompile(`x`), Severity: Low, SecretGroup: 2},
		{ID: "a", Regex: regexp.MustCompile(`x`), Severity: Low, Keywords: []string{""}},
	} {
		if _, err := NewEngine(&Config{Rules: []*Rule{bad}}); err == nil {
			t.Errorf("invalid rule %+v accepted", bad)
		}
	}
}

// TestLongLineIsLinear scans an 8 MB single line dense with keywords of
// several rules (every window extends the previous one) and checks the secret
// at its end is found at the right column. A quadratic window builder would
// not finish.
func TestLongLineIsLinear(t *testing.T) {
	e := mustEngine(t, nil)
	r := rand.New(rand.NewPCG(15, 16))
	tok := ghStyle(r, "ghp_", false)
	var b bytes.Buffer
	filler := []string{"sk ", "token=ab ", "://x ", "key- ", "password ", "eyJ ", ":AA ", "-us ", "\x00", "\xff\xfe ", "aiza "}
	for b.Len() < 8<<20 {
		b.WriteString(filler[r.IntN(len(filler))])
	}
	prefix := b.Len()
	b.WriteString(tok + " tail")
	fs := findRule(e.Scan(&source.Fragment{Path: "big.min.js.txt", Data: b.Bytes()}), "github-pat")
	if len(fs) != 1 || fs[0].Line != 1 || fs[0].Column != prefix+1 {
		t.Fatalf("findings = %v", summarize(fs))
	}
}

func TestBinaryAndInvalidUTF8(t *testing.T) {
	e := mustEngine(t, nil)
	r := rand.New(rand.NewPCG(17, 18))
	tok := ghStyle(r, "ghp_", false)
	data := []byte("\x00\x01\xff\xfe\xc3(\x00" + tok + "\x00\xe2\x82\n\x80")
	fs := findRule(e.Scan(&source.Fragment{Path: "bin", Data: data}), "github-pat")
	if len(fs) != 1 || fs[0].Secret != tok || fs[0].Column != 8 {
		t.Fatalf("findings = %v", summarize(fs))
	}
	// Invalid UTF-8 inside a secret still gives a valid UTF-8 redaction.
	fs = e.Scan(&source.Fragment{Path: "x", Data: []byte("password = \"\xff\xfe" + rs(r, csAlnum, 10) + "9!\"")})
	for _, f := range fs {
		if !utf8Valid(f.Redacted) {
			t.Errorf("Redacted %q is not valid UTF-8", f.Redacted)
		}
	}
	if e.Scan(nil) != nil || e.Scan(&source.Fragment{}) != nil {
		t.Error("empty input produced findings")
	}
}

func utf8Valid(s string) bool { return strings.ToValidUTF8(s, "") == s }

func TestConcurrentScan(t *testing.T) {
	e := mustEngine(t, nil)
	r := rand.New(rand.NewPCG(19, 20))
	var texts []string
	var secrets []string
	for range 16 {
		tok := ghStyle(r, "ghp_", false)
		texts = append(texts, strings.Repeat("token filler line\n", r.IntN(50))+"x = "+tok+"\n")
		secrets = append(secrets, tok)
	}
	var wg sync.WaitGroup
	errs := make(chan string, 64)
	for g := range 8 {
		wg.Go(func() {
			for i := range 50 {
				k := (g + i) % len(texts)
				fs := findRule(e.Scan(&source.Fragment{Path: "x", Data: []byte(texts[k])}), "github-pat")
				if len(fs) != 1 || fs[0].Secret != secrets[k] {
					errs <- "wrong findings under concurrency"
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for e := range errs {
		t.Fatal(e)
	}
}

func TestValidators(t *testing.T) {
	r := rand.New(rand.NewPCG(21, 22))
	if !validGitHubStyle([]byte(ghStyle(r, "ghp_", false))) || validGitHubStyle([]byte(ghStyle(r, "ghp_", true))) {
		t.Error("GitHub checksum")
	}
	if validGitHubStyle([]byte("ghp_short")) || validGitHubStyle([]byte("noprefix")) {
		t.Error("GitHub shape")
	}
	if !validAge([]byte(ageKey(r, false))) || validAge([]byte(ageKey(r, true))) {
		t.Error("age bech32 checksum")
	}
	if !validJWT([]byte(makeJWT(r, `{"alg":"RS256"}`))) {
		t.Error("valid JWT rejected")
	}
	for _, bad := range []string{
		makeJWT(r, `{"typ":"JWT"}`), makeJWT(r, `not json`), "a.b", "eyJ.eyJ.x.y",
		b64url(`{"alg":"none"}`) + "." + b64url(`[1]`) + ".",
	} {
		if validJWT([]byte(bad)) {
			t.Errorf("invalid JWT %q accepted", bad)
		}
	}
	if !validJWT([]byte(b64url(`{"alg":"none"}`) + "." + b64url(`{"a":1}`) + ".")) {
		t.Error("unsigned alg=none JWT rejected")
	}
	if !validPEM([]byte(makePEM(r, "RSA PRIVATE KEY", "\n"))) || !validPEM([]byte(makePEM(r, "EC PRIVATE KEY", `\n`))) {
		t.Error("valid PEM rejected")
	}
	withHeaders := "-----BEGIN RSA PRIVATE KEY-----\nProc-Type: 4,ENCRYPTED\nDEK-Info: AES-128-CBC,00\n\n" + rs(r, csB64, 128) + "\n-----END RSA PRIVATE KEY-----"
	if !validPEM([]byte(withHeaders)) {
		t.Error("PEM with RFC 1421 headers rejected")
	}
	for _, bad := range []string{
		"-----BEGIN RSA PRIVATE KEY-----\n" + rs(r, csB64, 128) + "\n-----END EC PRIVATE KEY-----",
		"-----BEGIN RSA PRIVATE KEY-----\n" + rs(r, csB64, 40) + "\n-----END RSA PRIVATE KEY-----",
		"-----BEGIN RSA PRIVATE KEY-----\n" + strings.Repeat("A", 128) + "\n-----END RSA PRIVATE KEY-----",
		"-----BEGIN RSA PRIVATE KEY-----\n" + rs(r, csB64, 64) + "...\n-----END RSA PRIVATE KEY-----",
		"-----BEGIN RSA PRIVATE KEY-----",
	} {
		if validPEM([]byte(bad)) {
			t.Errorf("invalid PEM accepted: %q", bad)
		}
	}
	for _, p := range []string{"${X}", "{{ .Values.pw }}", "<password>", "changeme", "xxxxxxxx", "********", "process.env.DB", "%(pw)s", "aaaaaaa"} {
		if !isPlaceholder([]byte(p)) {
			t.Errorf("isPlaceholder(%q) = false", p)
		}
	}
	for _, p := range []string{"Xk9!pq7Lm2", "hunter2secret"} {
		if isPlaceholder([]byte(p)) {
			t.Errorf("isPlaceholder(%q) = true", p)
		}
	}
	if !isIdentifierPath([]byte("config.Token")) || !isIdentifierPath([]byte("get()")) || isIdentifierPath([]byte("a1b2c3")) {
		t.Error("isIdentifierPath")
	}
}

func loadTree(b *testing.B, root string) ([]*source.Fragment, int64) {
	b.Helper()
	var frags []*source.Fragment
	var total int64
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		data, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		frags = append(frags, &source.Fragment{Path: filepath.ToSlash(rel), Data: data, StartLine: 1, StartColumn: 1})
		total += int64(len(data))
		return nil
	})
	if err != nil {
		b.Fatal(err)
	}
	return frags, total
}

// BenchmarkScan scans $(go env GOROOT)/src/net, file by file, on one goroutine.
func BenchmarkScan(b *testing.B) {
	frags, total := loadTree(b, filepath.Join(runtime.GOROOT(), "src", "net"))
	e := mustEngine(b, nil)
	b.SetBytes(total)
	b.ReportAllocs()
	n, iters := 0, 0
	cpu0 := cputime.Process()
	for b.Loop() {
		n = 0
		for _, f := range frags {
			n += len(e.Scan(f))
		}
		iters++
	}
	if cpu := cputime.Process() - cpu0; cpu > 0 {
		b.ReportMetric(float64(total)*float64(iters)/1e6/cpu.Seconds(), "MB/cpu-s")
	}
	b.ReportMetric(float64(n), "findings")
}

func BenchmarkNewEngine(b *testing.B) {
	for b.Loop() {
		if _, err := NewEngine(nil); err != nil {
			b.Fatal(err)
		}
	}
}

func TestValidatorClaimsBlockGenericRules(t *testing.T) {
	e := mustEngine(t, nil)
	r := rand.New(rand.NewPCG(50, 51))
	bad := ghStyle(r, "ghp_", true)
	for _, text := range []string{"GITHUB_TOKEN=" + bad, "api_token: \"" + bad + "\"", "Authorization: Bearer " + bad} {
		if fs := e.Scan(&source.Fragment{Path: "x.env", Data: []byte(text)}); len(fs) != 0 {
			t.Errorf("%q: a token with a wrong checksum was reported: %v", text, summarize(fs))
		}
	}
}

func TestQuotedInCode(t *testing.T) {
	e := mustEngine(t, nil)
	r := rand.New(rand.NewPCG(52, 53))
	v := rs(r, csAlnum, 20) + "7!"
	cases := []struct {
		path, text string
		want       bool
	}{
		{"main.go", `password := "` + v + `"`, true},
		{"main.go", `password := ` + v, false},
		{"app.py", `password = ` + v, false},
		{"app.py", `password = '` + v + `'`, true},
		{"app.env", `PASSWORD=` + v, true},
		{"app.yaml", `password: ` + v, true},
		{"App.JAVA", `password = ` + v + `;`, false},
	}
	for _, c := range cases {
		got := len(findRule(e.Scan(&source.Fragment{Path: c.path, Data: []byte(c.text)}), "generic-password")) == 1
		if got != c.want {
			t.Errorf("%s %q: reported = %v, want %v", c.path, c.text, got, c.want)
		}
	}
}

func FuzzScan(f *testing.F) {
	r := rand.New(rand.NewPCG(60, 61))
	f.Add([]byte("x = \""+ghStyle(r, "ghp_", false)+"\"\n"), 1, 1)
	f.Add([]byte(makePEM(r, "RSA PRIVATE KEY", "\n")), 3, 7)
	f.Add([]byte("password: \"Xy7aB9cD0eF1!\"\r\n\x00\xff token=abc keyward:allow\n"), 10, 1)
	f.Add([]byte("postgres://u:"+rs(r, csAlnum, 12)+"7@db/x eyJhbGciOiJIUzI1NiJ9.eyJhIjoxfQ.abc"), 1, 50)
	e := mustEngine(f, nil)
	f.Fuzz(func(t *testing.T, data []byte, startLine, startCol int) {
		startLine = max(1, startLine%1_000_000)
		startCol = max(1, startCol%1_000_000)
		frag := &source.Fragment{Path: "f.txt", Data: data, StartLine: startLine, StartColumn: startCol}
		lines := bytes.Count(data, []byte("\n"))
		for _, fd := range e.Scan(frag) {
			if fd.Line < startLine || fd.EndLine < fd.Line || fd.EndLine > startLine+lines {
				t.Fatalf("lines out of bounds: %+v (start %d, %d newlines)", fd, startLine, lines)
			}
			if fd.Column < 1 || fd.EndColumn < 1 || (fd.Line == fd.EndLine && fd.EndColumn < fd.Column) {
				t.Fatalf("columns out of bounds: %+v", fd)
			}
			if fd.Line == startLine && fd.Column < startCol {
				t.Fatalf("first-line column before StartColumn: %+v", fd)
			}
			if fd.Secret == "" || !bytes.Contains(data, []byte(fd.Secret)) {
				t.Fatalf("secret not in data: %+v", fd)
			}
			if fd.Line == fd.EndLine && fd.EndColumn-fd.Column+1 != len(fd.Secret) {
				t.Fatalf("span %d..%d does not match secret length %d", fd.Column, fd.EndColumn, len(fd.Secret))
			}
		}
	})
}

// TestAnchoredLineEnds checks that KeywordStart rules stop at each line end,
// with several keyword hits per line and lines of every length.
func TestAnchoredLineEnds(t *testing.T) {
	rule := &Rule{ID: "kv", Description: "d", Severity: Low, Keywords: []string{"k="}, KeywordStart: true,
		Regex: regexp.MustCompile(`k=([a-z]+)$`), SecretGroup: 1, Window: 64}
	e := mustEngine(t, &Config{Rules: []*Rule{rule}, NoDefaultRules: true})
	r := rand.New(rand.NewPCG(70, 71))
	for range 200 {
		var b strings.Builder
		var want []string
		for range 1 + r.IntN(8) {
			line := strings.Repeat("k=1 ", r.IntN(4))
			if r.IntN(2) == 0 {
				v := rs(r, csLower, 1+r.IntN(8))
				line += "k=" + v
				want = append(want, v)
			} else {
				line += "k=" + rs(r, csLower, 3) + "!"
			}
			b.WriteString(line + "\n")
		}
		var got []string
		for _, f := range e.Scan(&source.Fragment{Path: "x", Data: []byte(b.String())}) {
			got = append(got, f.Secret)
		}
		if strings.Join(got, ",") != strings.Join(want, ",") {
			t.Fatalf("text %q: got %q, want %q", b.String(), got, want)
		}
	}
}
