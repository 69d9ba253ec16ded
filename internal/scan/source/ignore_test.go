package source

import (
	"strings"
	"testing"
)

func TestGitignoreSemantics(t *testing.T) {
	type check struct {
		path  string
		isDir bool
		want  bool
	}
	cases := []struct {
		pattern string
		checks  []check
	}{
		{"*.log", []check{{"a.log", false, true}, {"x/y/a.log", false, true}, {"a.logx", false, false}, {"log", false, false}}},
		{"/root.txt", []check{{"root.txt", false, true}, {"sub/root.txt", false, false}}},
		{"build/", []check{{"build", true, true}, {"build", false, false}, {"a/build", true, true}}},
		{"doc/*.md", []check{{"doc/a.md", false, true}, {"doc/x/a.md", false, false}, {"x/doc/a.md", false, false}}},
		{"**/cache", []check{{"cache", true, true}, {"a/b/cache", false, true}, {"a/cachex", false, false}}},
		{"a/**/b", []check{{"a/b", false, true}, {"a/x/b", false, true}, {"a/x/y/b", false, true}, {"a/x/c", false, false}}},
		{"out/**", []check{{"out", true, false}, {"out/a", false, true}, {"out/a/b", false, true}}},
		{"file?.txt", []check{{"file1.txt", false, true}, {"file12.txt", false, false}}},
		{"[!a]bc", []check{{"xbc", false, true}, {"abc", false, false}}},
		{"[0-9].txt", []check{{"5.txt", false, true}, {"a.txt", false, false}}},
		{`\#hash`, []check{{"#hash", false, true}}},
		{`\!bang`, []check{{"!bang", false, true}}},
		{"# comment", []check{{"# comment", false, false}}},
		{"trailing   ", []check{{"trailing", false, true}}},
		{`space\ `, []check{{"space ", false, true}}},
	}
	for _, c := range cases {
		ig := (&ignorer{}).with(parseIgnore("", strings.NewReader(c.pattern)))
		for _, ch := range c.checks {
			if got := ig.ignored(ch.path, ch.isDir); got != ch.want {
				t.Errorf("pattern %q, path %q (dir %v): ignored = %v, want %v", c.pattern, ch.path, ch.isDir, got, ch.want)
			}
		}
	}
}

func TestGitignoreNegationAndNesting(t *testing.T) {
	root := parseIgnore("", strings.NewReader("*.env\n!keep.env\nvendor/\n"))
	sub := parseIgnore("app", strings.NewReader("!local.env\n/only-here.txt\n"))
	ig := (&ignorer{}).with(root).with(sub)
	checks := []struct {
		path string
		want bool
	}{
		{"a.env", true},
		{"keep.env", false},
		{"x/keep.env", false},
		{"app/local.env", false}, // re-included by the nested file
		{"local.env", true},      // the nested file does not apply above it
		{"app/only-here.txt", true},
		{"app/x/only-here.txt", false}, // anchored to app/
		{"only-here.txt", false},
		{"app/b.env", true},
	}
	for _, c := range checks {
		if got := ig.ignored(c.path, false); got != c.want {
			t.Errorf("%q: ignored = %v, want %v", c.path, got, c.want)
		}
	}
	if !ig.ignored("vendor", true) || !ig.ignored("app/vendor", true) || ig.ignored("vendor", false) {
		t.Error("vendor/ should match directories only, at any depth")
	}
	var none *ignorer
	if none.ignored("a.env", false) {
		t.Error("nil ignorer ignores")
	}
}

func FuzzParseIgnore(f *testing.F) {
	for _, s := range []string{"*.log", "/a/**/b/", "!x", `\#y`, "[", "**/**/**", "a/**/**/b/**"} {
		f.Add(s, "a/b/c.log")
	}
	f.Fuzz(func(t *testing.T, pattern, path string) {
		ig := (&ignorer{}).with(parseIgnore("", strings.NewReader(pattern)))
		ig.ignored(path, false)
		ig.ignored(path, true)
	})
}
